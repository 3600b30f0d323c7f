//! The block manager: the datanode registry and the block map behind one
//! lock, with the decisions that need both: where a new block goes, in which
//! order a reader should try replicas, and which blocks need new replicas.
//!
//! The replication monitor (`check_replication`) repairs, per complete block:
//!
//! ```text
//!  corrupt replicas replaced         delete them
//!  too few healthy replicas          copy one to targets placement chooses
//!  all on one rack, others usable    copy one to another rack (mis-replicated) ...
//!  more than its replication         ... then delete a surplus one, from the
//!                                    rack holding the most, never the last
//!                                    one on a rack
//! ```
//!
//! Targets leave out the nodes a copy of that block failed to reach lately
//! (`in_flight`), and every target reserves a block of its space until it
//! reports the replica.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use dfs_proto::ids::{BlockId, DatanodeId, GenStamp};
use dfs_proto::topology::{NodeLocation, RackPath, TopologyTable, distance};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::block_map::{BlockMap, Command, Expected};
use super::in_flight::{InFlight, Transfer};
use super::placement::{self, Candidate, PlacementError, PlacementRequest};
use crate::datanodes::{Datanode, HeartbeatOutcome, Liveness, Registry, Storage};

/// Where a client or datanode reaches a datanode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) id: DatanodeId,
    pub(crate) transfer_addr: SocketAddr,
    pub(crate) rack: RackPath,
}

impl Location {
    fn of(node: &Datanode) -> Self {
        Location {
            id: node.id.clone(),
            transfer_addr: node.transfer_addr,
            rack: node.rack.clone(),
        }
    }
}

/// What live datanodes hold of a block being written, for lease recovery.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct WrittenReplicas {
    /// Bytes in each finalized replica.
    pub(crate) finalized: Vec<u64>,
    /// Bytes in each unfinalized replica that no pipeline writes.
    pub(crate) rbw: Vec<u64>,
}

/// Datanodes and their replicas.
#[derive(Debug)]
pub(crate) struct BlockManager {
    pub(crate) datanodes: Registry,
    pub(crate) map: BlockMap,
    topology: TopologyTable,
    rng: StdRng,
    /// Datanodes already handled as dead (their replicas forgotten).
    dead: HashSet<DatanodeId>,
    /// Datanodes whose reports were judged against a namespace that lacked
    /// some of their blocks (we were behind the quorum).
    misjudged: HashSet<DatanodeId>,
    /// Datanodes asked to register again, and so to send a full report.
    stale_reports: HashSet<DatanodeId>,
    /// Blocks sent to targets that have not reported them yet.
    in_flight: InFlight,
}

impl BlockManager {
    /// A manager with no datanodes yet.
    pub(crate) fn new(datanodes: Registry, topology: TopologyTable, seed: u64) -> Self {
        BlockManager {
            datanodes,
            map: BlockMap::default(),
            topology,
            rng: StdRng::seed_from_u64(seed),
            dead: HashSet::new(),
            misjudged: HashSet::new(),
            stale_reports: HashSet::new(),
            in_flight: InFlight::default(),
        }
    }

    /// The rack of an address, from the topology table.
    pub(crate) fn rack_of(&self, ip: IpAddr) -> RackPath {
        self.topology.resolve(ip)
    }

    /// Records a registration (a datanode back from the dead counts again).
    pub(crate) fn register(
        &mut self,
        id: DatanodeId,
        transfer_addr: SocketAddr,
        storage: Storage,
        now: Instant,
    ) -> RackPath {
        let rack = self.rack_of(transfer_addr.ip());
        self.dead.remove(&id);
        self.stale_reports.remove(&id);
        self.datanodes
            .register(id, transfer_addr, rack.clone(), storage, now);
        rack
    }

    /// Records a heartbeat and hands over the commands queued for the
    /// datanode; `None` when it must register first.
    pub(crate) fn heartbeat(
        &mut self,
        id: &DatanodeId,
        storage: Storage,
        active_transfers: u32,
        now: Instant,
    ) -> Option<Vec<Command>> {
        match self.datanodes.heartbeat(id, storage, active_transfers, now) {
            HeartbeatOutcome::MustRegister => None,
            HeartbeatOutcome::Accepted if self.stale_reports.contains(id) => None,
            HeartbeatOutcome::Accepted => {
                self.dead.remove(id);
                Some(self.map.take_commands(id))
            }
        }
    }

    /// A report from `datanode` was judged while we do not serve, against a
    /// namespace that may lag the quorum's: what it asked for (deletes of
    /// blocks we did not know yet, ...) is dropped, and the datanode will be
    /// asked for its report again once we caught up.
    pub(crate) fn drop_judgement_while_behind(&mut self, datanode: &DatanodeId) {
        if !self.map.take_commands(datanode).is_empty() {
            self.misjudged.insert(datanode.clone());
        }
    }

    /// Our namespace just caught up with the quorum (we follow or lead a new
    /// epoch): every datanode whose report was misjudged meanwhile must
    /// register again, which brings its full report; it stays live (and
    /// writable) meanwhile. Commands queued before are dropped.
    pub(crate) fn request_full_reports(&mut self) {
        self.map.clear_commands();
        self.stale_reports.extend(self.misjudged.drain());
    }

    /// Where datanode `id` is, if registered.
    pub(crate) fn location(&self, id: &DatanodeId) -> Option<Location> {
        self.datanodes.get(id).map(Location::of)
    }

    fn candidates(&self, now: Instant) -> Vec<Candidate> {
        self.datanodes
            .all()
            .into_iter()
            .map(|node| Candidate {
                id: node.id.clone(),
                rack: node.rack.clone(),
                state: self.datanodes.liveness(node, now),
                remaining: node.storage.remaining,
                active_transfers: node.active_transfers,
                scheduled: self.in_flight.count(&node.id),
            })
            .collect()
    }

    /// Chooses datanodes for `wanted` more replicas of `block` in a write
    /// pipeline, in pipeline order, and reserves a block of space on each
    /// until it reports the replica. The writer is the datanode at
    /// `writer_ip`, if one is there.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn choose_targets(
        &mut self,
        block: BlockId,
        writer_ip: Option<IpAddr>,
        wanted: usize,
        chosen: &[DatanodeId],
        excluded: &[DatanodeId],
        block_size: u64,
        now: Instant,
    ) -> Result<Vec<Location>, PlacementError> {
        let targets = self.place(writer_ip, wanted, chosen, excluded, block_size, now)?;
        for target in &targets {
            self.in_flight
                .scheduled(&target.id, block, Transfer::Write, now);
        }
        Ok(targets)
    }

    /// `datanode` reported a replica of `block` (finalized or rbw): the
    /// space reserved for it there is in its reports from now on.
    pub(crate) fn arrived(&mut self, datanode: &DatanodeId, block: BlockId) {
        self.in_flight.arrived(datanode, block);
    }

    /// Chooses targets under the placement policy; reserves nothing.
    fn place(
        &mut self,
        writer_ip: Option<IpAddr>,
        wanted: usize,
        chosen: &[DatanodeId],
        excluded: &[DatanodeId],
        block_size: u64,
        now: Instant,
    ) -> Result<Vec<Location>, PlacementError> {
        let writer = writer_ip.and_then(|ip| {
            self.datanodes
                .all()
                .into_iter()
                .find(|n| n.transfer_addr.ip() == ip)
                .map(|n| n.id.clone())
        });
        let candidates = self.candidates(now);
        let request = PlacementRequest {
            writer: writer.as_ref(),
            replicas: wanted + chosen.len(),
            chosen,
            excluded,
            block_size,
            min_replicas: 1,
        };
        let ids = placement::choose_targets(&request, &candidates, &mut self.rng)?;
        Ok(ids.iter().filter_map(|id| self.location(id)).collect())
    }

    /// Orders replica holders for a reader at `client_ip`: nearest first
    /// (same node, same rack, elsewhere), ties shuffled, stale nodes last,
    /// dead and unknown nodes left out.
    pub(crate) fn sort_for_reader(
        &mut self,
        holders: &[DatanodeId],
        client_ip: Option<IpAddr>,
        now: Instant,
    ) -> Vec<Location> {
        let client = client_ip.map(|ip| NodeLocation {
            rack: self.rack_of(ip),
            node: ip.to_string(),
        });
        let mut ranked: Vec<(bool, u32, Location)> = holders
            .iter()
            .filter_map(|id| self.datanodes.get(id))
            .filter_map(|node| {
                let stale = match self.datanodes.liveness(node, now) {
                    Liveness::Live => false,
                    Liveness::Stale => true,
                    Liveness::Dead => return None,
                };
                let here = NodeLocation {
                    rack: node.rack.clone(),
                    node: node.transfer_addr.ip().to_string(),
                };
                let hops = client.as_ref().map_or(0, |c| distance(c, &here));
                Some((stale, hops, Location::of(node)))
            })
            .collect();
        ranked.shuffle(&mut self.rng);
        // Stable: shuffled order survives among equals.
        ranked.sort_by_key(|(stale, hops, _)| (*stale, *hops));
        ranked
            .into_iter()
            .map(|(_, _, location)| location)
            .collect()
    }

    /// The replicas of `block` at `gen_stamp` on datanodes not dead: what
    /// lease recovery chooses the block's length from.
    pub(crate) fn written_replicas(
        &self,
        block: BlockId,
        gen_stamp: GenStamp,
        now: Instant,
    ) -> WrittenReplicas {
        let is_alive = |id: &DatanodeId| {
            self.datanodes
                .get(id)
                .is_some_and(|n| self.datanodes.liveness(n, now) != Liveness::Dead)
        };
        let (healthy, _) = self.map.holders(block);
        let finalized = healthy
            .iter()
            .filter(|id| is_alive(id))
            .filter_map(|id| self.map.replica(block, id))
            .filter(|r| r.gen_stamp == gen_stamp)
            .map(|r| r.length)
            .collect();
        let rbw = self
            .map
            .rbw_replicas(block)
            .into_iter()
            .filter(|(id, r)| r.gen_stamp == gen_stamp && is_alive(id))
            .map(|(_, r)| r.length)
            .collect();
        WrittenReplicas { finalized, rbw }
    }

    /// Periodic upkeep (the replication monitor): forgets the replicas of
    /// newly dead datanodes, finalizes or deletes the rbw replicas of blocks
    /// no longer being written, and repairs complete blocks as the module
    /// docs say. `expected` gives each block's size (the file's block size,
    /// what a target must have room for) and replication.
    pub(crate) fn check_replication(
        &mut self,
        now: Instant,
        expected: impl Fn(BlockId) -> Option<Expected>,
    ) {
        let newly_dead: Vec<DatanodeId> = self
            .datanodes
            .all()
            .into_iter()
            .filter(|n| self.datanodes.liveness(n, now) == Liveness::Dead)
            .map(|n| n.id.clone())
            .filter(|id| !self.dead.contains(id))
            .collect();
        for id in newly_dead {
            tracing::info!(datanode = %id, "datanode dead; its replicas are lost");
            self.map.remove_datanode(&id);
            self.in_flight.remove_datanode(&id);
            self.dead.insert(id);
        }
        for (block, target) in self.in_flight.expire(now) {
            tracing::warn!(%block, %target, "re-replication target never reported the block; not choosing it again for a while");
        }
        self.map.settle_rbw(&expected);
        let blocks: Vec<BlockId> = self.map.blocks().collect();
        for block in blocks {
            let Some(want) = expected(block) else {
                continue;
            };
            // Blocks being written are the pipeline's business.
            if want.length.is_none() {
                continue;
            }
            self.map
                .invalidate_replaced_corrupt(block, want.replication);
            let (healthy, corrupt) = self.map.holders(block);
            let replication = usize::from(want.replication);
            let repair = if healthy.len() < replication {
                Repair::Copy {
                    missing: replication - healthy.len(),
                }
            } else if self.is_mis_replicated(&healthy, replication, now) {
                Repair::CopyToAnotherRack
            } else if healthy.len() > replication {
                self.remove_excess(block, &healthy, replication);
                continue;
            } else {
                continue;
            };
            if self.map.is_replicating(block, now) {
                continue;
            }
            self.schedule_copy(block, &healthy, &corrupt, repair, want, now);
        }
    }

    /// Whether every healthy replica of a block that wants ≥ 2 sits on one
    /// rack while a live datanode elsewhere could take one (HDFS's
    /// `verifyBlockPlacement` with its two-rack minimum).
    fn is_mis_replicated(&self, healthy: &[DatanodeId], replication: usize, now: Instant) -> bool {
        if replication < 2 {
            return false;
        }
        let racks: HashSet<&RackPath> = healthy
            .iter()
            .filter_map(|id| self.datanodes.get(id))
            .map(|n| &n.rack)
            .collect();
        let [rack] = racks.into_iter().collect::<Vec<_>>()[..] else {
            return false;
        };
        self.datanodes
            .all()
            .into_iter()
            .any(|n| n.rack != *rack && self.datanodes.liveness(n, now) == Liveness::Live)
    }

    /// Queues a copy of `block` from a live healthy holder to new targets:
    /// as placement chooses them, or (`CopyToAnotherRack`) one off the
    /// rack that holds every replica. Leaves out corrupt holders and
    /// targets that failed to receive this block lately.
    fn schedule_copy(
        &mut self,
        block: BlockId,
        healthy: &[DatanodeId],
        corrupt: &[DatanodeId],
        repair: Repair,
        want: Expected,
        now: Instant,
    ) {
        let source = healthy.iter().find(|id| {
            self.datanodes
                .get(id)
                .is_some_and(|n| self.datanodes.liveness(n, now) == Liveness::Live)
        });
        let Some(source) = source.cloned() else {
            return;
        };
        let Some(replica) = self.map.replica(block, &source) else {
            return;
        };
        let mut excluded: Vec<DatanodeId> = corrupt.to_vec();
        excluded.extend(self.in_flight.backed_off(block, now));
        let (wanted, why) = match repair {
            Repair::Copy { missing } => (missing, "re-replicating an under-replicated block"),
            Repair::CopyToAnotherRack => {
                let crowded = self.datanodes.get(&source).map(|n| n.rack.clone());
                excluded.extend(
                    self.datanodes
                        .all()
                        .into_iter()
                        .filter(|n| Some(&n.rack) == crowded.as_ref())
                        .map(|n| n.id.clone()),
                );
                (1, "copying a mis-replicated block to another rack")
            }
        };
        // Room for a whole block, as for a write (HDFS's rule), not just
        // for the bytes this one holds.
        let size = want.block_size.max(replica.length);
        match self.place(None, wanted, healthy, &excluded, size, now) {
            Ok(targets) if !targets.is_empty() => {
                let ids: Vec<DatanodeId> = targets.into_iter().map(|t| t.id).collect();
                tracing::info!(%block, %source, targets = ?ids, "{why}");
                for target in &ids {
                    self.in_flight
                        .scheduled(target, block, Transfer::Replication, now);
                }
                self.map.schedule_replication(&source, replica, ids, now);
            }
            Ok(_) => tracing::debug!(%block, "no target for re-replication"),
            Err(e) => tracing::debug!(%block, error = %e, "no target for re-replication"),
        }
    }
}

/// What a block's replicas lack.
#[derive(Debug, Clone, Copy)]
enum Repair {
    /// Fewer healthy replicas than its replication.
    Copy { missing: usize },
    /// Enough, but all on one rack.
    CopyToAnotherRack,
}

impl BlockManager {
    /// Deletes replicas beyond `keep`, as HDFS chooses them: from the rack
    /// holding the most replicas, the node with the least space left, so the
    /// block stays on as many racks as it was.
    fn remove_excess(&mut self, block: BlockId, healthy: &[DatanodeId], keep: usize) {
        let mut holders: Vec<&Datanode> = healthy
            .iter()
            .filter_map(|id| self.datanodes.get(id))
            .collect();
        while holders.len() > keep {
            let crowded_rack = holders
                .iter()
                .map(|n| &n.rack)
                .max_by_key(|rack| holders.iter().filter(|n| &n.rack == *rack).count())
                .cloned();
            let victim = holders
                .iter()
                .enumerate()
                .filter(|(_, n)| Some(&n.rack) == crowded_rack.as_ref())
                .min_by_key(|(_, n)| n.storage.remaining)
                .map(|(i, _)| i);
            let Some(i) = victim else {
                return;
            };
            let node = holders.remove(i);
            if let Some(replica) = self.map.replica(block, &node.id) {
                tracing::info!(%block, datanode = %node.id, "deleting a surplus replica");
                self.map.remove_excess(&node.id.clone(), replica);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::blocks::block_map::{REPLICATION_TIMEOUT, Reported};

    fn dn(s: &str) -> DatanodeId {
        DatanodeId::parse(s).unwrap()
    }

    /// Racks 1 and 2, three datanodes each at 127.0.R.N.
    fn cluster(now: Instant) -> BlockManager {
        let topology: TopologyTable = TopologyTable::new(
            RackPath::default_rack(),
            vec![
                (
                    "127.0.1.0/24".parse().unwrap(),
                    "/dc1/rack1".parse().unwrap(),
                ),
                (
                    "127.0.2.0/24".parse().unwrap(),
                    "/dc1/rack2".parse().unwrap(),
                ),
            ],
        );
        let registry = Registry::new(Duration::from_secs(30), Duration::from_secs(600));
        let mut manager = BlockManager::new(registry, topology, 7);
        for rack in 1..=2 {
            for n in 1..=3 {
                let storage = Storage {
                    capacity: 1 << 40,
                    used: 0,
                    remaining: 1 << 40,
                };
                let addr: SocketAddr = format!("127.0.{rack}.{n}:9866").parse().unwrap();
                manager.register(dn(&format!("r{rack}n{n}")), addr, storage, now);
            }
        }
        manager
    }

    #[test]
    fn after_catching_up_every_datanode_registers_again_and_old_commands_are_dropped() {
        let now = Instant::now();
        let mut m = cluster(now);
        let storage = Storage::default();
        let unknown = Reported {
            block: BlockId(9),
            gen_stamp: GenStamp(1),
            length: 1,
        };
        // A report judged against a namespace without block 9 queues a delete.
        m.map.received(&dn("r1n1"), unknown, |_| None);
        m.drop_judgement_while_behind(&dn("r1n1"));
        assert_eq!(
            m.heartbeat(&dn("r1n1"), storage, 0, now),
            Some(vec![]),
            "not yet"
        );
        m.request_full_reports();
        assert_eq!(
            m.heartbeat(&dn("r1n1"), storage, 0, now),
            None,
            "re-register"
        );
        let addr: SocketAddr = "127.0.1.1:9866".parse().unwrap();
        m.register(dn("r1n1"), addr, storage, now);
        assert_eq!(m.heartbeat(&dn("r1n1"), storage, 0, now), Some(vec![]));
        // The others were judged right: nothing to ask them.
        assert_eq!(m.heartbeat(&dn("r2n1"), storage, 0, now), Some(vec![]));
        assert!(
            m.choose_targets(BlockId(1), None, 3, &[], &[], 1 << 20, now)
                .is_ok()
        );
    }

    #[test]
    fn a_writer_on_a_datanode_heads_the_pipeline_and_racks_are_two() {
        let now = Instant::now();
        let mut m = cluster(now);
        let ip: IpAddr = "127.0.2.2".parse().unwrap();
        let targets = m
            .choose_targets(BlockId(1), Some(ip), 3, &[], &[], 1 << 20, now)
            .unwrap();
        assert_eq!(targets[0].id, dn("r2n2"));
        let racks: HashSet<_> = targets.iter().map(|t| t.rack.clone()).collect();
        assert_eq!(racks.len(), 2);
    }

    #[test]
    fn readers_get_their_own_rack_first_and_stale_nodes_last() {
        let now = Instant::now();
        let mut m = cluster(now);
        let holders = [dn("r1n1"), dn("r2n1"), dn("r2n3")];
        let client: IpAddr = "127.0.2.7".parse().unwrap();
        for _ in 0..20 {
            let order = m.sort_for_reader(&holders, Some(client), now);
            assert_eq!(order.len(), 3);
            assert_eq!(order[2].id, dn("r1n1"), "the other rack comes last");
        }
        let on_node: IpAddr = "127.0.1.1".parse().unwrap();
        assert_eq!(
            m.sort_for_reader(&holders, Some(on_node), now)[0].id,
            dn("r1n1")
        );
        // r1n1 heartbeats on; the others fall silent and go stale.
        let later = now + Duration::from_secs(40);
        m.heartbeat(&dn("r1n1"), Storage::default(), 0, later);
        let order = m.sort_for_reader(&holders, Some(client), later);
        assert_eq!(order[0].id, dn("r1n1"), "stale nodes sort last");
    }

    #[test]
    fn lost_replicas_of_a_dead_datanode_are_copied_elsewhere() {
        let now = Instant::now();
        let mut m = cluster(now);
        let expected = |_: BlockId| {
            Some(Expected {
                gen_stamp: GenStamp(1),
                length: Some(100),
                replication: 3,
                block_size: 100,
            })
        };
        let replica = Reported {
            block: BlockId(9),
            gen_stamp: GenStamp(1),
            length: 100,
        };
        for id in ["r1n1", "r2n1", "r2n2"] {
            m.map.received(&dn(id), replica, expected);
        }
        // Everyone but r2n2 keeps heartbeating past the dead interval.
        let later = now + Duration::from_secs(601);
        for id in ["r1n1", "r1n2", "r1n3", "r2n1", "r2n3"] {
            m.heartbeat(
                &dn(id),
                Storage {
                    capacity: 1 << 40,
                    used: 0,
                    remaining: 1 << 40,
                },
                0,
                later,
            );
        }
        m.check_replication(later, expected);
        let commands: Vec<Command> = ["r1n1", "r2n1"]
            .iter()
            .flat_map(|id| m.map.take_commands(&dn(id)))
            .collect();
        assert_eq!(commands.len(), 1, "{commands:?}");
        let Command::Replicate { targets, .. } = &commands[0] else {
            panic!("expected a replication, got {commands:?}");
        };
        assert_eq!(targets.len(), 1);
        assert!(![dn("r1n1"), dn("r2n1"), dn("r2n2")].contains(&targets[0]));
        m.check_replication(later, expected);
        assert!(
            m.map.take_commands(&dn("r1n1")).is_empty(),
            "not scheduled twice"
        );
    }

    #[test]
    fn surplus_replicas_are_deleted_from_the_crowded_rack() {
        let now = Instant::now();
        let mut m = cluster(now);
        let expected = |_: BlockId| {
            Some(Expected {
                gen_stamp: GenStamp(1),
                length: Some(100),
                replication: 3,
                block_size: 100,
            })
        };
        let replica = Reported {
            block: BlockId(9),
            gen_stamp: GenStamp(1),
            length: 100,
        };
        for id in ["r1n1", "r2n1", "r2n2", "r2n3"] {
            m.map.received(&dn(id), replica, expected);
        }
        m.check_replication(now, expected);
        let (healthy, _) = m.map.holders(BlockId(9));
        assert_eq!(healthy.len(), 3);
        assert!(
            healthy.contains(&dn("r1n1")),
            "the only copy on rack 1 stays"
        );
        let deleted: usize = ["r2n1", "r2n2", "r2n3"]
            .iter()
            .map(|id| m.map.take_commands(&dn(id)).len())
            .sum();
        assert_eq!(deleted, 1);
    }

    /// Heartbeats from every datanode of [`cluster`] at `at`, with the free
    /// space `remaining` gives each (by name).
    fn beat_all(m: &mut BlockManager, at: Instant, remaining: impl Fn(&str) -> u64) {
        for rack in 1..=2 {
            for n in 1..=3 {
                let name = format!("r{rack}n{n}");
                let storage = Storage {
                    capacity: 1 << 40,
                    used: 0,
                    remaining: remaining(&name),
                };
                m.heartbeat(&dn(&name), storage, 0, at);
            }
        }
    }

    /// Complete blocks of 10 bytes, replication 3, in files of 100-byte blocks.
    fn small(_: BlockId) -> Option<Expected> {
        Some(Expected {
            gen_stamp: GenStamp(1),
            length: Some(10),
            replication: 3,
            block_size: 100,
        })
    }

    fn replica(block: u64) -> Reported {
        Reported {
            block: BlockId(block),
            gen_stamp: GenStamp(1),
            length: 10,
        }
    }

    /// Every Replicate command queued, as (source, block, targets).
    fn replications(m: &mut BlockManager) -> Vec<(String, BlockId, Vec<DatanodeId>)> {
        let mut out = Vec::new();
        for rack in 1..=2 {
            for n in 1..=3 {
                let name = format!("r{rack}n{n}");
                for command in m.map.take_commands(&dn(&name)) {
                    if let Command::Replicate { block, targets, .. } = command {
                        out.push((name.clone(), block, targets));
                    }
                }
            }
        }
        out
    }

    fn rack_of(id: &DatanodeId) -> &str {
        &id.as_str()[..2]
    }

    #[test]
    fn a_block_on_one_rack_gets_a_replica_on_another_then_loses_a_surplus_one() {
        for seed in 0..20 {
            let now = Instant::now();
            let mut m = cluster(now);
            m.rng = StdRng::seed_from_u64(seed);
            for id in ["r1n1", "r1n2", "r1n3"] {
                m.map.received(&dn(id), replica(9), small);
            }
            m.check_replication(now, small);
            let copies = replications(&mut m);
            let [(_, BlockId(9), targets)] = &copies[..] else {
                panic!("seed {seed}: expected one copy, got {copies:?}");
            };
            let [target] = &targets[..] else {
                panic!("seed {seed}: one target, got {targets:?}");
            };
            assert_eq!(rack_of(target), "r2", "seed {seed}: another rack");
            m.check_replication(now, small);
            assert!(replications(&mut m).is_empty(), "seed {seed}: once");

            // The copy arrives: four replicas, one goes, from rack 1.
            m.map.received(target, replica(9), small);
            m.arrived(target, BlockId(9));
            m.check_replication(now, small);
            let (healthy, _) = m.map.holders(BlockId(9));
            assert_eq!(healthy.len(), 3, "seed {seed}: {healthy:?}");
            assert!(healthy.contains(target), "seed {seed}");
            let racks: HashSet<&str> = healthy.iter().map(rack_of).collect();
            assert_eq!(racks.len(), 2, "seed {seed}: {healthy:?}");
            m.check_replication(now, small);
            assert!(replications(&mut m).is_empty(), "seed {seed}: repaired");
        }
    }

    #[test]
    fn a_block_copied_onto_one_rack_moves_as_soon_as_the_other_rack_is_back() {
        let now = Instant::now();
        let mut m = cluster(now);
        for id in ["r1n1", "r1n2"] {
            m.map.received(&dn(id), replica(9), small);
        }
        // Rack 2 is dead: the third replica can only go to rack 1.
        let later = now + Duration::from_secs(601);
        let roomy = |_: &str| 1 << 40;
        for id in ["r1n1", "r1n2", "r1n3"] {
            m.heartbeat(
                &dn(id),
                Storage {
                    capacity: 1 << 40,
                    used: 0,
                    remaining: 1 << 40,
                },
                0,
                later,
            );
        }
        m.check_replication(later, small);
        let copies = replications(&mut m);
        assert_eq!(copies.len(), 1, "{copies:?}");
        assert_eq!(copies[0].2, vec![dn("r1n3")]);
        m.map.received(&dn("r1n3"), replica(9), small);
        m.arrived(&dn("r1n3"), BlockId(9));
        // Rack 2 registers again a moment later: the copy that is done does
        // not hold the repair back.
        for n in 1..=3 {
            let addr: SocketAddr = format!("127.0.2.{n}:9866").parse().unwrap();
            m.register(dn(&format!("r2n{n}")), addr, Storage::default(), later);
        }
        beat_all(&mut m, later, roomy);
        m.check_replication(later, small);
        let copies = replications(&mut m);
        let [(_, _, targets)] = &copies[..] else {
            panic!("one copy to rack 2: {copies:?}");
        };
        assert_eq!(targets.len(), 1);
        assert_eq!(rack_of(&targets[0]), "r2");
    }

    #[test]
    fn a_block_on_the_only_live_rack_stays_there() {
        let now = Instant::now();
        let mut m = cluster(now);
        for id in ["r1n1", "r1n2", "r1n3"] {
            m.map.received(&dn(id), replica(9), small);
        }
        // Rack 2 falls silent past the dead interval.
        let later = now + Duration::from_secs(601);
        for id in ["r1n1", "r1n2", "r1n3"] {
            m.heartbeat(&dn(id), Storage::default(), 0, later);
        }
        m.check_replication(later, small);
        assert!(replications(&mut m).is_empty());
        assert_eq!(m.map.holders(BlockId(9)).0.len(), 3, "nothing deleted");
    }

    #[test]
    fn re_replication_targets_need_room_for_a_whole_block_and_what_is_on_its_way() {
        for seed in 0..20 {
            let now = Instant::now();
            let mut m = cluster(now);
            m.rng = StdRng::seed_from_u64(seed);
            // Room for one 100-byte block on r2n1; the other rack-2 nodes
            // could hold the 10 bytes of the replica, but not a block.
            beat_all(&mut m, now, |name| match name {
                "r2n1" => 100,
                "r2n2" | "r2n3" => 99,
                _ => 1 << 40,
            });
            for block in [9, 10] {
                for id in ["r1n1", "r2n3"] {
                    m.map.received(&dn(id), replica(block), small);
                }
            }
            m.check_replication(now, small);
            let targets: Vec<DatanodeId> = replications(&mut m)
                .into_iter()
                .flat_map(|(_, _, t)| t)
                .collect();
            assert_eq!(targets.len(), 2, "seed {seed}: {targets:?}");
            assert!(
                !targets.contains(&dn("r2n2")),
                "seed {seed}: without room for a block: {targets:?}"
            );
            let on_r2n1 = targets.iter().filter(|t| **t == dn("r2n1")).count();
            assert!(
                on_r2n1 <= 1,
                "seed {seed}: r2n1 has room for one block, got {targets:?}"
            );
        }
    }

    #[test]
    fn a_failed_re_replication_target_is_not_chosen_again_at_once() {
        let now = Instant::now();
        let mut m = cluster(now);
        // Two nodes could take the copy; the others are full.
        let room = |name: &str| match name {
            "r1n1" | "r2n1" | "r2n2" | "r2n3" => 1 << 40,
            _ => 0,
        };
        beat_all(&mut m, now, room);
        for id in ["r1n1", "r2n1"] {
            m.map.received(&dn(id), replica(9), small);
        }
        m.check_replication(now, small);
        let first = replications(&mut m);
        let [(_, _, targets)] = &first[..] else {
            panic!("one copy: {first:?}");
        };
        let failed = targets[0].clone();
        // It never arrives. Once the copy times out, the other node is chosen.
        let later = now + REPLICATION_TIMEOUT;
        beat_all(&mut m, later, room);
        m.check_replication(later, small);
        let second = replications(&mut m);
        let [(_, _, targets)] = &second[..] else {
            panic!("one copy again: {second:?}");
        };
        assert_eq!(targets.len(), 1);
        assert_ne!(targets[0], failed, "the failed target was chosen again");
        // With no other node left, none is chosen rather than the failed one.
        let other = targets[0].clone();
        let much_later = later + REPLICATION_TIMEOUT;
        beat_all(&mut m, much_later, room);
        m.check_replication(much_later, small);
        assert!(
            replications(&mut m).is_empty(),
            "both targets failed lately; {failed} and {other} back off"
        );
    }
}
