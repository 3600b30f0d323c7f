//! The registry of datanodes: where each one is, on which rack, how much
//! space it has, and whether it is live, stale or dead.
//!
//! Soft state, rebuilt from registrations and heartbeats after a restart;
//! never journaled. Time comes in as an argument so the liveness rules are
//! testable without a clock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dfs_proto::ids::DatanodeId;
use dfs_proto::topology::RackPath;

/// Bytes of space on a datanode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Storage {
    pub(crate) capacity: u64,
    pub(crate) used: u64,
    pub(crate) remaining: u64,
}

/// How recently a datanode was heard from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Heartbeating.
    Live,
    /// Silent past the stale interval: avoided for writes, sorted last for reads.
    Stale,
    /// Silent past the dead interval: its replicas are lost.
    Dead,
}

/// What the namenode knows of one datanode.
#[derive(Debug, Clone)]
pub(crate) struct Datanode {
    pub(crate) id: DatanodeId,
    pub(crate) transfer_addr: SocketAddr,
    pub(crate) rack: RackPath,
    pub(crate) storage: Storage,
    /// Reads and writes in progress, from its last heartbeat.
    pub(crate) active_transfers: u32,
    pub(crate) last_contact: Instant,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeartbeatOutcome {
    /// Recorded.
    Accepted,
    /// This namenode does not know the datanode: it must register again.
    MustRegister,
}

/// Every datanode that has registered since this namenode started.
#[derive(Debug)]
pub(crate) struct Registry {
    stale_after: Duration,
    dead_after: Duration,
    nodes: HashMap<DatanodeId, Datanode>,
}

impl Registry {
    /// An empty registry with the given silence thresholds.
    pub(crate) fn new(stale_after: Duration, dead_after: Duration) -> Self {
        Registry {
            stale_after,
            dead_after,
            nodes: HashMap::new(),
        }
    }

    /// Records a (re-)registration; a datanode that moved keeps its id.
    pub(crate) fn register(
        &mut self,
        id: DatanodeId,
        transfer_addr: SocketAddr,
        rack: RackPath,
        storage: Storage,
        now: Instant,
    ) {
        let node = Datanode {
            id: id.clone(),
            transfer_addr,
            rack,
            storage,
            active_transfers: 0,
            last_contact: now,
        };
        if let Some(old) = self.nodes.insert(id, node)
            && old.transfer_addr != transfer_addr
        {
            tracing::info!(datanode = %old.id, old = %old.transfer_addr, new = %transfer_addr, "datanode changed address");
        }
    }

    /// Records a heartbeat.
    pub(crate) fn heartbeat(
        &mut self,
        id: &DatanodeId,
        storage: Storage,
        active_transfers: u32,
        now: Instant,
    ) -> HeartbeatOutcome {
        match self.nodes.get_mut(id) {
            Some(node) => {
                node.storage = storage;
                node.active_transfers = active_transfers;
                node.last_contact = now;
                HeartbeatOutcome::Accepted
            }
            None => HeartbeatOutcome::MustRegister,
        }
    }

    /// Whether `id` is registered.
    pub(crate) fn contains(&self, id: &DatanodeId) -> bool {
        self.nodes.contains_key(id)
    }

    /// The datanode registered as `id`.
    pub(crate) fn get(&self, id: &DatanodeId) -> Option<&Datanode> {
        self.nodes.get(id)
    }

    /// The liveness of `node` at `now`.
    pub(crate) fn liveness(&self, node: &Datanode, now: Instant) -> Liveness {
        let silence = now.saturating_duration_since(node.last_contact);
        if silence >= self.dead_after {
            Liveness::Dead
        } else if silence >= self.stale_after {
            Liveness::Stale
        } else {
            Liveness::Live
        }
    }

    /// Every datanode, ordered by rack then address.
    pub(crate) fn all(&self) -> Vec<&Datanode> {
        let mut nodes: Vec<&Datanode> = self.nodes.values().collect();
        nodes.sort_by(|a, b| (&a.rack, a.transfer_addr).cmp(&(&b.rack, b.transfer_addr)));
        nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> DatanodeId {
        DatanodeId::parse(s).unwrap()
    }

    fn registry_with_one(now: Instant) -> Registry {
        let mut r = Registry::new(Duration::from_secs(30), Duration::from_secs(600));
        r.register(
            id("dn1"),
            "127.0.1.1:9866".parse().unwrap(),
            "/dc1/rack1".parse().unwrap(),
            Storage::default(),
            now,
        );
        r
    }

    #[test]
    fn silence_turns_a_datanode_stale_then_dead() {
        let t0 = Instant::now();
        let r = registry_with_one(t0);
        let node = r.all()[0];
        assert_eq!(
            r.liveness(node, t0 + Duration::from_secs(29)),
            Liveness::Live
        );
        assert_eq!(
            r.liveness(node, t0 + Duration::from_secs(30)),
            Liveness::Stale
        );
        assert_eq!(
            r.liveness(node, t0 + Duration::from_secs(599)),
            Liveness::Stale
        );
        assert_eq!(
            r.liveness(node, t0 + Duration::from_secs(600)),
            Liveness::Dead
        );
    }

    #[test]
    fn a_heartbeat_revives_a_stale_datanode() {
        let t0 = Instant::now();
        let mut r = registry_with_one(t0);
        let later = t0 + Duration::from_secs(100);
        assert_eq!(
            r.heartbeat(&id("dn1"), Storage::default(), 0, later),
            HeartbeatOutcome::Accepted
        );
        assert_eq!(r.liveness(r.all()[0], later), Liveness::Live);
    }

    #[test]
    fn an_unknown_datanode_is_told_to_register() {
        let t0 = Instant::now();
        let mut r = registry_with_one(t0);
        assert_eq!(
            r.heartbeat(&id("dn9"), Storage::default(), 0, t0),
            HeartbeatOutcome::MustRegister
        );
        assert!(!r.contains(&id("dn9")));
    }
}
