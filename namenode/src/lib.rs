//! The dfs namenode: the file-system namespace and the registry of datanodes.
//!
//! - [`txn`]: metadata transactions, the only way the namespace changes.
//! - `namespace`: the in-memory inode tree, permission checks and `apply`.
//! - `journal`: CRC-framed, group-committed log segments and snapshots.
//! - `namesystem`: the namespace and its journal (`Replica`), and the handle RPCs use.
//! - `epoch`: the persisted current epoch.
//! - `groups`: a caller's groups (config table, then the OS, then the claim).
//! - `datanodes`: registered datanodes, their racks and liveness.
//! - `lease`: writers' lease clocks, the lease monitor and lease recovery.
//! - `blocks`: the block map, rack-aware placement, block keys and the replication monitor.
//! - `quorum`: namenode HA: election, discovery/sync and broadcast cores and
//!   the peer task that runs them (the namespace's only writer).
//! - `retry_cache`: writes retried after a failover apply at most once.
//! - `service`: thin gRPC adapters over the above.
//! - `metrics`: the Prometheus metrics `/metrics` serves (collectors, journal histograms).
//! - `http`: the HTTP face (WebHDFS, `/metrics`, status pages) over the same state.
//! - [`config`]: the namenode's TOML configuration.
//! - `server`: wires it all together; [`run`] is the binary's entry point.

mod blocks;
pub mod config;
mod datanodes;
mod epoch;
mod error;
mod groups;
mod http;
mod journal;
mod lease;
mod metrics;
mod namespace;
mod namesystem;
mod quorum;
mod retry_cache;
mod server;
mod service;
pub mod txn;

pub use config::NamenodeConfig;
pub use error::Error;
pub use server::run;
