//! The dfs namenode: the file-system namespace and the registry of datanodes.
//!
//! - [`txn`]: metadata transactions, the only way the namespace changes.
//! - `namespace`: the in-memory inode tree, permission checks and `apply`.
//! - `journal`: CRC-framed, group-committed log segments and snapshots.
//! - `namesystem`: the single writer task: check, zxid, apply, journal.
//! - `epoch`: the persisted current epoch.
//! - `groups`: a caller's groups (config table, then the OS, then the claim).
//! - `datanodes`: registered datanodes, their racks and liveness.
//! - `blocks`: block management; so far the rack-aware placement policy.
//! - `quorum`: namenode HA; so far the pure election, discovery/sync and broadcast cores.
//! - `service`: thin gRPC adapters over the above.
//! - [`config`]: the namenode's TOML configuration.
//! - `server`: wires it all together; [`run`] is the binary's entry point.

mod blocks;
pub mod config;
mod datanodes;
mod epoch;
mod error;
mod groups;
mod journal;
mod namespace;
mod namesystem;
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the quorum runtime (quorum/peer.rs) is not wired in yet"
    )
)]
mod quorum;
mod server;
mod service;
pub mod txn;

pub use config::NamenodeConfig;
pub use error::Error;
pub use server::run;
