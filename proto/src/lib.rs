//! What both sides of a dfs wire must agree on.
//!
//! - [`v1`]: the generated gRPC services and messages (package `dfs.v1`).
//! - [`ids`]: typed ids (`DatanodeId`, `BlockId`, `GenStamp`, `Epoch`, `Zxid`, `ServerId`).
//! - [`byte_size`]: byte counts for people (`1.5 GiB`).
//! - [`checksum`]: CRC32C checksums over 512-byte chunks.
//! - [`wall_clock`]: milliseconds since the Unix epoch, as expiries and proofs carry them.
//! - [`topology`]: rack paths, the address→rack table and network distance.
//! - [`status`]: error kinds carried in `tonic::Status` metadata.
//! - [`mac`]: HMAC-SHA256 tags (block access tokens, the cluster secret).
//! - [`cluster_proof`]: the cluster-secret proof on datanode requests.
//! - [`block_token`]: block access tokens: grants, keys, signing and verification.
//! - [`exposition`]: Prometheus exposition text: a scrape's text and collectors' gauges.
//! - [`request_metrics`]: per-request metrics of the gRPC and WebHDFS servers (tower layers).
//! - [`webhdfs`]: WebHDFS parameters, paths and `RemoteException` errors, for both HTTP faces.

pub mod block_token;
pub mod byte_size;
pub mod checksum;
pub mod cluster_proof;
pub mod exposition;
pub mod ids;
pub mod mac;
pub mod request_metrics;
pub mod status;
pub mod topology;
pub mod wall_clock;
pub mod webhdfs;

/// Generated code for the `dfs.v1` package.
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all,
    clippy::unwrap_used,
    clippy::expect_used
)]
pub mod v1 {
    tonic::include_proto!("dfs.v1");
}
