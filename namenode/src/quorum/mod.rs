//! The namenode quorum (ZooKeeper's design): fast leader election, then Zab's
//! discovery, synchronization and atomic broadcast of metadata transactions.
//!
//! - [`election`]: fast leader election as a pure vote-box state machine.
//! - [`sync`]: discovery's epoch choice and the DIFF / TRUNC / SNAP decision.
//! - [`broadcast`]: the leader's propose / ACK / commit bookkeeping and the
//!   learner's journal / ACK / apply side.
//!
//! - [`peer`]: the runtime: one task that runs the cores against the
//!   network, the clock, the epoch files and the journal, and is the only
//!   writer of the namespace.
//! - [`transport`]: the `QuorumProtocol` gRPC server and clients.
//!
//! The three cores are pure: events and the time come in, actions go out.
//! Only `peer` and `transport` do I/O.

use std::net::SocketAddr;
use std::time::Instant;

use dfs_proto::ids::Epoch;

pub(crate) mod broadcast;
pub(crate) mod election;
pub(crate) mod peer;
pub(crate) mod sync;
pub(crate) mod transport;

#[cfg(test)]
mod replay;

/// Where this namenode stands in the quorum, as the RPC services see it.
#[derive(Debug, Clone)]
pub(crate) struct RoleStatus {
    /// LOOKING, FOLLOWING, LEADING or OBSERVING.
    pub(crate) state: election::PeerState,
    /// Whether it leads with a quorum synced: the only state that serves
    /// clients (while its lease lasts: see [`RoleStatus::serves`]).
    pub(crate) serving: bool,
    /// Until when a leader may serve without hearing from its quorum again;
    /// `None` when it needs no lease (it is the only voter) or does not lead.
    pub(crate) lease_until: Option<Instant>,
    /// Its current epoch (the one datanode commands carry).
    pub(crate) epoch: Epoch,
    /// The leader's client address, once known.
    pub(crate) leader: Option<SocketAddr>,
}

impl RoleStatus {
    /// Before the first election.
    pub(crate) fn looking(epoch: Epoch) -> Self {
        RoleStatus {
            state: election::PeerState::Looking,
            serving: false,
            lease_until: None,
            epoch,
            leader: None,
        }
    }

    /// Whether it may answer clients and command datanodes at `now`: it
    /// leads, and has heard from a quorum recently enough that no other
    /// leader can have been elected meanwhile. A leader frozen past its
    /// lease refuses from the moment it wakes, before its own timers notice.
    pub(crate) fn serves(&self, now: Instant) -> bool {
        self.serving && self.lease_until.is_none_or(|until| now < until)
    }
}

#[cfg(test)]
#[path = "ensemble_sim_test.rs"]
mod ensemble_sim;
