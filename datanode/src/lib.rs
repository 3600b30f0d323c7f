//! The dfs datanode: stores block replicas and reports to every namenode.
//!
//! - [`config`]: the datanode's TOML configuration.
//! - `identity`: the datanode id persisted in its data dir.
//! - `block_store`: replica and CRC meta files, rbw -> finalized, start-up scan.
//! - `namenode_actor`: registration and heartbeats, one actor per namenode.
//! - `server`: wires it together; [`run`] is the binary's entry point.

mod block_store;
pub mod config;
mod error;
mod identity;
mod namenode_actor;
mod server;

pub use config::DatanodeConfig;
pub use error::Error;
pub use server::run;
