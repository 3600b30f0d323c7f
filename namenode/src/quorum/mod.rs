//! The namenode quorum (ZooKeeper's design): fast leader election, then Zab's
//! discovery, synchronization and atomic broadcast of metadata transactions.
//!
//! - [`election`]: fast leader election as a pure vote-box state machine.
//! - [`sync`]: discovery's epoch choice and the DIFF / TRUNC / SNAP decision.
//! - [`broadcast`]: the leader's propose / ACK / commit bookkeeping and the
//!   learner's journal / ACK / apply side.
//!
//! Everything here is pure: events and the time come in, actions go out. The
//! runtime that owns sockets, timers and the journal (`peer.rs`, to come) is
//! the only part that may do I/O; these modules must not touch the journal,
//! the namespace or the network.

pub(crate) mod broadcast;
pub(crate) mod election;
pub(crate) mod sync;

#[cfg(test)]
mod replay;

#[cfg(test)]
#[path = "ensemble_sim_test.rs"]
mod ensemble_sim;
