//! The namenode quorum (Zab): discovery, synchronization and the atomic
//! broadcast of metadata transactions, as pure state machines.
//!
//! - [`sync`]: discovery's epoch choice and the DIFF / TRUNC / SNAP decision.
//! - [`broadcast`]: the leader's propose / ACK / commit bookkeeping and the
//!   learner's journal / ACK / apply side.
//!
//! Everything here is pure: events come in, actions go out. The runtime that
//! owns sockets, timers and the journal (`peer.rs`, to come) executes them;
//! these modules must not touch the journal, the namespace or the network.

pub(crate) mod broadcast;
pub(crate) mod sync;
