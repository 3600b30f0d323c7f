//! The namenode quorum: leader election among the namenodes, then (in later
//! slices) discovery, synchronization and the atomic broadcast of metadata
//! transactions.
//!
//! - [`election`]: fast leader election as a pure vote-box state machine.
//!
//! Everything here is pure: events and the time come in, actions go out. The
//! runtime that owns sockets and timers (`peer.rs`, to come) is the only part
//! that may do I/O; these modules must not touch the journal, the namespace
//! or the network.

pub(crate) mod election;
