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
    /// Its HTTP server (WebHDFS), when it runs one.
    pub(crate) http_addr: Option<SocketAddr>,
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

/// A registration refused: the id belongs to a live datanode elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdInUse {
    /// Where the datanode registered as this id lives.
    pub(crate) live_at: SocketAddr,
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

    /// Whether `id` may register at `transfer_addr` now: a new id, the same
    /// address again (a restart), or a datanode that moved. A datanode id is
    /// its identity (its replicas are listed under it), so two live nodes
    /// must never share one: while the node registered as `id` is live
    /// (heard from within the stale interval), a registration from another
    /// address is refused; once it has gone silent past the stale interval
    /// (HDFS's heartbeats come every few seconds, so it stopped) a node
    /// that moved may take its id back without waiting to be declared dead.
    ///
    /// # Errors
    /// [`IdInUse`] naming the live node's address.
    pub(crate) fn may_register(
        &self,
        id: &DatanodeId,
        transfer_addr: SocketAddr,
        now: Instant,
    ) -> Result<(), IdInUse> {
        match self.nodes.get(id) {
            Some(node)
                if node.transfer_addr != transfer_addr
                    && self.liveness(node, now) == Liveness::Live =>
            {
                Err(IdInUse {
                    live_at: node.transfer_addr,
                })
            }
            _ => Ok(()),
        }
    }

    /// Records a (re-)registration that [`Registry::may_register`]
    /// admitted; a datanode that moved keeps its id.
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
            http_addr: None,
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

    /// Records where a registered datanode serves HTTP (WebHDFS redirects go there).
    pub(crate) fn set_http_addr(&mut self, id: &DatanodeId, http_addr: Option<SocketAddr>) {
        if let Some(node) = self.nodes.get_mut(id) {
            node.http_addr = http_addr;
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
    fn a_live_datanodes_id_is_refused_from_another_address_until_it_goes_silent() {
        let t0 = Instant::now();
        let mut r = registry_with_one(t0);
        let home: SocketAddr = "127.0.1.1:9866".parse().unwrap();
        let elsewhere: SocketAddr = "127.0.1.1:9999".parse().unwrap();
        let other_host: SocketAddr = "127.0.2.5:9866".parse().unwrap();
        // The node keeps heartbeating: another port or host is refused, and
        // the refusal names where the live node is.
        let beat = t0 + Duration::from_secs(20);
        r.heartbeat(&id("dn1"), Storage::default(), 0, beat);
        let later = beat + Duration::from_secs(29);
        for addr in [elsewhere, other_host] {
            assert_eq!(
                r.may_register(&id("dn1"), addr, later),
                Err(IdInUse { live_at: home })
            );
        }
        // Re-registering from its own address (a restart) and new ids are fine.
        assert_eq!(r.may_register(&id("dn1"), home, later), Ok(()));
        assert_eq!(r.may_register(&id("dn2"), elsewhere, later), Ok(()));
        // Silent past the stale interval: a datanode that moved comes back.
        let silent = beat + Duration::from_secs(30);
        assert_eq!(r.may_register(&id("dn1"), other_host, silent), Ok(()));
        r.register(
            id("dn1"),
            other_host,
            "/dc1/rack2".parse().unwrap(),
            Storage::default(),
            silent,
        );
        assert_eq!(r.get(&id("dn1")).unwrap().transfer_addr, other_host);
        // And now its old address is the one refused.
        assert_eq!(
            r.may_register(&id("dn1"), home, silent),
            Err(IdInUse {
                live_at: other_host
            })
        );
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
