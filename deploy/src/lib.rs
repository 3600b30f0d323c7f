//! The local multi-process dfs cluster launcher, used by `dfs-cluster` and by
//! the integration tests' `MiniCluster`.
//!
//! - [`spec`] – the shape of a cluster ([`ClusterSpec`]): namenodes (an ensemble when more
//!   than one, optionally with observers), datanodes per rack, timers.
//! - [`layout`] – the cluster directory ([`Layout`]) and the config files written into it.
//! - [`state`] – `cluster.json`, every node's name, address, config and pid.
//! - [`node`] – node names (`nn1`, `dn4`) and roles.
//! - `ports` – free ports below the kernel's ephemeral range, held until their node starts.
//! - [`binaries`] – where the `namenode`, `datanode` and `dfs` binaries are.
//! - [`process`] – spawning a node, waiting for `ready`, signals, stopping by pid.
//! - [`netns`] – network namespaces (one per node, a bridge in its own) for partition benchmarks.
//! - `liveness` – asking the namenodes whether every datanode is live.
//! - `ensemble` – asking the namenodes who leads.
//! - [`cluster`] – [`Cluster`], a directory plus the processes running it.
//! - [`cli`] – the `dfs-cluster` subcommands.
//! - [`bench`](mod@bench) – `dfs-cluster bench`: put, get and pipeline throughput against same-run
//!   baselines; `bench failover` and `bench mkdirs` for the namenode ensemble.
//! - [`error`] – [`Error`].

pub mod bench;
pub mod binaries;
pub mod cli;
pub mod cluster;
mod ensemble;
pub mod error;
pub mod layout;
mod liveness;
pub mod netns;
pub mod node;
mod ports;
pub mod process;
pub mod spec;
pub mod state;

pub use binaries::Binaries;
pub use cluster::Cluster;
pub use error::Error;
pub use layout::Layout;
pub use node::{NodeName, Role};
pub use process::{SpawnMode, log_tail};
pub use spec::{ClusterSpec, QuorumTimers};
pub use state::{ClusterState, NodeState};
