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
#[path = "manager_test.rs"]
mod tests;
