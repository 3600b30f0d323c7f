//! `dfs_client`: the library a program uses to talk to dfs, and the `dfs` command set.
//!
//! - [`config`]: the client configuration (`dfs.toml`).
//! - `failover`: routes every namenode RPC to the leader, retrying across failover.
//! - `identity`: who the caller is (user, groups, client id).
//! - [`fs`]: [`DfsClient`], the façade: namespace operations and the entry
//!   points of the data path.
//! - [`blocks`]: blocks and replica locations.
//! - [`output_stream`]: [`OutputStream`], writing a file through datanode pipelines.
//! - [`input_stream`]: [`InputStream`], reading a file with verification and failover.
//! - `lease_renewer`: renews the client's lease while it has files open for writing.
//! - [`checksum`]: [`FileChecksum`], a file's composite CRC32C.
//! - [`peer_status`]: each namenode's quorum state, asked directly (`dfs admin ha-status`).
//! - `owned_task`: spawned tasks that die with their owner.
//! - [`error`]: the client's error type, mapped back from `tonic::Status`.
//! - [`cli`]: the `dfs` commands.

pub mod blocks;
pub mod checksum;
pub mod cli;
pub mod config;
pub mod error;
mod failover;
pub mod fs;
mod identity;
pub mod input_stream;
mod lease_renewer;
pub mod output_stream;
mod owned_task;
pub mod peer_status;

#[cfg(test)]
mod fake_cluster;

pub use blocks::{Block, BlockLocations, Datanode, LocatedBlock};
pub use checksum::FileChecksum;
pub use config::ClientConfig;
pub use error::Error;
pub use fs::{
    AppendOptions, ContentSummary, CreateOptions, DatanodeReport, DfsClient, FileKind, FileStatus,
};
pub use input_stream::InputStream;
pub use output_stream::OutputStream;
pub use peer_status::{PeerReport, PeerState, PeerStatus};
