//! The dfs datanode: stores block replicas and reports to every namenode.
//!
//! - [`config`]: the datanode's TOML configuration.
//! - `identity`: the datanode id persisted in its data dir.
//! - `block_store`: replica and CRC meta files, rbw -> finalized, start-up scan.
//! - `block_access`: block keys from the namenodes, the token check on every transfer, own tokens.
//! - `data_path`: what every transfer shares (store, reports, live writers, timeouts).
//! - `pipeline`: the WriteBlock pipeline stage: forward, write, merge acks, recover.
//! - `block_reader`: ReadBlock ranges and BlockChecksum of finalized replicas.
//! - `scanner`: verifies every finalized replica against its checksums, throttled, once a period.
//! - `transfer`: this node as a writer: re-replication and rbw copies to replacements.
//! - `service`: the DataTransfer gRPC service, a thin adapter over the three above.
//! - `metrics`: the Prometheus metrics `/metrics` serves (a collector, and the events transfers count).
//! - `http`: the HTTP face (WebHDFS data transfers, `/metrics`, status page).
//! - `reports`: replica changes queued for each namenode's incremental reports.
//! - `namenode_actor`: registration, heartbeats, block reports and commands, one actor per namenode.
//! - `server`: wires it together; [`run`] is the binary's entry point.

mod block_access;
mod block_reader;
mod block_store;
pub mod config;
mod data_path;
mod error;
mod http;
mod identity;
mod metrics;
mod namenode_actor;
mod pipeline;
mod reports;
mod scanner;
mod server;
mod service;
mod transfer;

#[cfg(test)]
mod data_transfer_test;
#[cfg(test)]
mod test_files;

pub use config::DatanodeConfig;
pub use error::Error;
pub use server::run;
