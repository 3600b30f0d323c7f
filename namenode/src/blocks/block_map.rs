//! The block map: which datanodes hold a replica of which block.
//!
//! Soft state, never journaled: rebuilt from full block reports after a
//! restart and kept current by incremental reports, bad-block reports and
//! datanode deaths. It also queues the commands (delete, replicate) each
//! datanode picks up with its next heartbeat. What a block *should* be
//! (generation stamp, length, replication) comes from the namespace as an
//! [`Expected`] passed in, so this module never touches the tree.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use dfs_proto::ids::{BlockId, DatanodeId, GenStamp};

/// What the namespace says a block should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expected {
    pub(crate) gen_stamp: GenStamp,
    /// Committed length; `None` while the block is being written.
    pub(crate) length: Option<u64>,
    pub(crate) replication: u16,
}

/// One replica as a datanode reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reported {
    pub(crate) block: BlockId,
    pub(crate) gen_stamp: GenStamp,
    pub(crate) length: u64,
}

/// A command waiting for a datanode's next heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// Delete this replica.
    Delete { block: BlockId, gen_stamp: GenStamp },
    /// Copy this finalized replica to `targets`.
    Replicate {
        block: BlockId,
        gen_stamp: GenStamp,
        length: u64,
        targets: Vec<DatanodeId>,
    },
}

/// Why a replica is not counted as healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Corruption {
    /// A reader or the datanode found bad checksums.
    Reported,
    /// Older generation stamp than the namespace's: missed a pipeline recovery.
    StaleGenStamp,
    /// Length disagrees with the committed length.
    WrongLength,
}

#[derive(Debug, Default)]
struct Replicas {
    healthy: BTreeMap<DatanodeId, Reported>,
    corrupt: BTreeMap<DatanodeId, Corruption>,
}

/// How long a scheduled re-replication may take before it is scheduled again.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(60);

/// Every known replica of every block, and the commands queued for datanodes.
#[derive(Debug, Default)]
pub(crate) struct BlockMap {
    blocks: HashMap<BlockId, Replicas>,
    by_datanode: HashMap<DatanodeId, BTreeSet<BlockId>>,
    commands: HashMap<DatanodeId, Vec<Command>>,
    /// Blocks with a replication in flight, and when it was scheduled.
    replicating: HashMap<BlockId, Instant>,
}

impl BlockMap {
    /// Replaces everything known of `datanode`'s replicas with a full report.
    /// Replicas of unknown blocks are scheduled for deletion.
    pub(crate) fn full_report(
        &mut self,
        datanode: &DatanodeId,
        replicas: &[Reported],
        expected: impl Fn(BlockId) -> Option<Expected>,
    ) {
        let previous = self.by_datanode.remove(datanode).unwrap_or_default();
        for block in previous {
            self.forget(block, datanode);
        }
        for replica in replicas {
            self.received(datanode, *replica, &expected);
        }
    }

    /// Records a replica a datanode just finalized.
    pub(crate) fn received(
        &mut self,
        datanode: &DatanodeId,
        replica: Reported,
        expected: impl Fn(BlockId) -> Option<Expected>,
    ) {
        let Some(want) = expected(replica.block) else {
            self.queue(
                datanode,
                Command::Delete {
                    block: replica.block,
                    gen_stamp: replica.gen_stamp,
                },
            );
            return;
        };
        let corruption = if replica.gen_stamp < want.gen_stamp {
            Some(Corruption::StaleGenStamp)
        } else if want.length.is_some_and(|len| len != replica.length) {
            Some(Corruption::WrongLength)
        } else {
            None
        };
        let entry = self.blocks.entry(replica.block).or_default();
        entry.healthy.remove(datanode);
        entry.corrupt.remove(datanode);
        match corruption {
            None => {
                entry.healthy.insert(datanode.clone(), replica);
            }
            Some(why) => {
                tracing::warn!(block = %replica.block, %datanode, reason = ?why, "replica is not healthy");
                entry.corrupt.insert(datanode.clone(), why);
                // A stale replica is useless: delete it at once.
                if why == Corruption::StaleGenStamp {
                    self.queue(
                        datanode,
                        Command::Delete {
                            block: replica.block,
                            gen_stamp: replica.gen_stamp,
                        },
                    );
                }
            }
        }
        self.by_datanode
            .entry(datanode.clone())
            .or_default()
            .insert(replica.block);
    }

    /// Judges an unfinalized replica a datanode holds with no writer: it is
    /// deleted once its block is gone, complete, or at a newer generation
    /// stamp; a block still being written keeps it (its writer may recover).
    pub(crate) fn abandoned_rbw(
        &mut self,
        datanode: &DatanodeId,
        block: BlockId,
        gen_stamp: GenStamp,
        expected: impl Fn(BlockId) -> Option<Expected>,
    ) {
        let useless = match expected(block) {
            None => true,
            Some(want) => want.length.is_some() || gen_stamp < want.gen_stamp,
        };
        if useless {
            tracing::info!(%block, %datanode, "deleting an abandoned unfinalized replica");
            self.queue(datanode, Command::Delete { block, gen_stamp });
        }
    }

    /// Records that a datanode no longer holds a replica.
    pub(crate) fn deleted(&mut self, datanode: &DatanodeId, block: BlockId) {
        if let Some(blocks) = self.by_datanode.get_mut(datanode) {
            blocks.remove(&block);
        }
        self.forget(block, datanode);
    }

    /// Marks a replica corrupt (a reader saw bad checksums). It is deleted
    /// once a healthy copy has replaced it.
    pub(crate) fn mark_corrupt(&mut self, datanode: &DatanodeId, block: BlockId) {
        let Some(entry) = self.blocks.get_mut(&block) else {
            return;
        };
        entry.healthy.remove(datanode);
        entry.corrupt.insert(datanode.clone(), Corruption::Reported);
        self.by_datanode
            .entry(datanode.clone())
            .or_default()
            .insert(block);
    }

    /// Forgets every replica of a dead datanode and its queued commands.
    pub(crate) fn remove_datanode(&mut self, datanode: &DatanodeId) {
        for block in self.by_datanode.remove(datanode).unwrap_or_default() {
            self.forget(block, datanode);
        }
        self.commands.remove(datanode);
    }

    /// Drops freed blocks (their file is gone) and tells their holders to delete them.
    pub(crate) fn free(&mut self, blocks: impl IntoIterator<Item = (BlockId, GenStamp)>) {
        for (block, gen_stamp) in blocks {
            let Some(replicas) = self.blocks.remove(&block) else {
                continue;
            };
            self.replicating.remove(&block);
            let holders = replicas
                .healthy
                .into_keys()
                .chain(replicas.corrupt.into_keys());
            for datanode in holders {
                if let Some(blocks) = self.by_datanode.get_mut(&datanode) {
                    blocks.remove(&block);
                }
                self.queue(&datanode, Command::Delete { block, gen_stamp });
            }
        }
    }

    /// Healthy holders of `block`, then corrupt ones.
    pub(crate) fn holders(&self, block: BlockId) -> (Vec<DatanodeId>, Vec<DatanodeId>) {
        match self.blocks.get(&block) {
            Some(r) => (
                r.healthy.keys().cloned().collect(),
                r.corrupt.keys().cloned().collect(),
            ),
            None => (Vec::new(), Vec::new()),
        }
    }

    /// Healthy replicas of `block` with the given generation stamp.
    pub(crate) fn healthy_count(&self, block: BlockId, gen_stamp: GenStamp) -> usize {
        self.blocks.get(&block).map_or(0, |r| {
            r.healthy
                .values()
                .filter(|rep| rep.gen_stamp == gen_stamp)
                .count()
        })
    }

    /// Takes the commands queued for `datanode`.
    pub(crate) fn take_commands(&mut self, datanode: &DatanodeId) -> Vec<Command> {
        self.commands.remove(datanode).unwrap_or_default()
    }

    /// Every block with at least one known replica.
    pub(crate) fn blocks(&self) -> impl Iterator<Item = BlockId> + '_ {
        self.blocks.keys().copied()
    }

    /// Whether a re-replication of `block` was scheduled recently enough to wait for it.
    pub(crate) fn is_replicating(&self, block: BlockId, now: Instant) -> bool {
        self.replicating
            .get(&block)
            .is_some_and(|at| now.duration_since(*at) < REPLICATION_TIMEOUT)
    }

    /// Queues a copy of `block` from `source` to `targets`.
    pub(crate) fn schedule_replication(
        &mut self,
        source: &DatanodeId,
        replica: Reported,
        targets: Vec<DatanodeId>,
        now: Instant,
    ) {
        self.replicating.insert(replica.block, now);
        self.queue(
            source,
            Command::Replicate {
                block: replica.block,
                gen_stamp: replica.gen_stamp,
                length: replica.length,
                targets,
            },
        );
    }

    /// Deletes corrupt replicas of blocks that have enough healthy ones again.
    pub(crate) fn invalidate_replaced_corrupt(&mut self, block: BlockId, replication: u16) {
        let Some(entry) = self.blocks.get_mut(&block) else {
            return;
        };
        if entry.healthy.len() < usize::from(replication) || entry.corrupt.is_empty() {
            return;
        }
        let Some(gen_stamp) = entry.healthy.values().next().map(|r| r.gen_stamp) else {
            return;
        };
        let corrupt: Vec<DatanodeId> = std::mem::take(&mut entry.corrupt).into_keys().collect();
        self.replicating.remove(&block);
        for datanode in corrupt {
            if let Some(blocks) = self.by_datanode.get_mut(&datanode) {
                blocks.remove(&block);
            }
            self.queue(&datanode, Command::Delete { block, gen_stamp });
        }
    }

    /// Forgets a surplus replica and tells its datanode to delete it.
    pub(crate) fn remove_excess(&mut self, datanode: &DatanodeId, replica: Reported) {
        if let Some(blocks) = self.by_datanode.get_mut(datanode) {
            blocks.remove(&replica.block);
        }
        self.forget(replica.block, datanode);
        self.queue(
            datanode,
            Command::Delete {
                block: replica.block,
                gen_stamp: replica.gen_stamp,
            },
        );
    }

    /// A healthy replica of `block` on `datanode`, if there is one.
    pub(crate) fn replica(&self, block: BlockId, datanode: &DatanodeId) -> Option<Reported> {
        self.blocks.get(&block)?.healthy.get(datanode).copied()
    }

    fn forget(&mut self, block: BlockId, datanode: &DatanodeId) {
        if let Some(entry) = self.blocks.get_mut(&block) {
            entry.healthy.remove(datanode);
            entry.corrupt.remove(datanode);
            if entry.healthy.is_empty() && entry.corrupt.is_empty() {
                self.blocks.remove(&block);
            }
        }
    }

    fn queue(&mut self, datanode: &DatanodeId, command: Command) {
        let queue = self.commands.entry(datanode.clone()).or_default();
        if !queue.contains(&command) {
            queue.push(command);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> DatanodeId {
        DatanodeId::parse(s).unwrap()
    }

    fn rep(block: u64, gs: u64, length: u64) -> Reported {
        Reported {
            block: BlockId(block),
            gen_stamp: GenStamp(gs),
            length,
        }
    }

    fn known(block: BlockId) -> Option<Expected> {
        (block.0 < 100).then_some(Expected {
            gen_stamp: GenStamp(5),
            length: Some(10),
            replication: 3,
        })
    }

    #[test]
    fn a_full_report_replaces_what_a_datanode_held() {
        let mut map = BlockMap::default();
        map.full_report(&dn("a"), &[rep(1, 5, 10), rep(2, 5, 10)], known);
        map.full_report(&dn("a"), &[rep(2, 5, 10)], known);
        assert_eq!(map.holders(BlockId(1)).0, Vec::<DatanodeId>::new());
        assert_eq!(map.holders(BlockId(2)).0, vec![dn("a")]);
    }

    #[test]
    fn replicas_of_unknown_blocks_are_deleted() {
        let mut map = BlockMap::default();
        map.full_report(&dn("a"), &[rep(500, 1, 10)], known);
        assert_eq!(
            map.take_commands(&dn("a")),
            vec![Command::Delete {
                block: BlockId(500),
                gen_stamp: GenStamp(1)
            }]
        );
        assert!(
            map.take_commands(&dn("a")).is_empty(),
            "commands are handed out once"
        );
    }

    #[test]
    fn stale_and_wrong_length_replicas_are_not_healthy() {
        let mut map = BlockMap::default();
        map.received(&dn("a"), rep(1, 4, 10), known);
        map.received(&dn("b"), rep(1, 5, 9), known);
        map.received(&dn("c"), rep(1, 5, 10), known);
        let (healthy, corrupt) = map.holders(BlockId(1));
        assert_eq!(healthy, vec![dn("c")]);
        assert_eq!(corrupt, vec![dn("a"), dn("b")]);
        assert_eq!(
            map.take_commands(&dn("a")).len(),
            1,
            "the stale replica is deleted"
        );
        assert!(
            map.take_commands(&dn("b")).is_empty(),
            "kept until replaced"
        );
    }

    #[test]
    fn a_reported_corrupt_replica_is_deleted_once_replaced() {
        let mut map = BlockMap::default();
        for d in ["a", "b", "c"] {
            map.received(&dn(d), rep(1, 5, 10), known);
        }
        map.mark_corrupt(&dn("a"), BlockId(1));
        assert_eq!(map.healthy_count(BlockId(1), GenStamp(5)), 2);
        map.invalidate_replaced_corrupt(BlockId(1), 3);
        assert!(map.take_commands(&dn("a")).is_empty());
        map.received(&dn("d"), rep(1, 5, 10), known);
        map.invalidate_replaced_corrupt(BlockId(1), 3);
        assert_eq!(map.take_commands(&dn("a")).len(), 1);
        assert_eq!(map.holders(BlockId(1)).1, Vec::<DatanodeId>::new());
    }

    #[test]
    fn abandoned_rbw_replicas_go_once_their_block_is_done() {
        let mut map = BlockMap::default();
        let writing = |_: BlockId| {
            Some(Expected {
                gen_stamp: GenStamp(5),
                length: None,
                replication: 3,
            })
        };
        map.abandoned_rbw(&dn("a"), BlockId(1), GenStamp(5), writing);
        assert!(
            map.take_commands(&dn("a")).is_empty(),
            "its writer may still recover it"
        );
        map.abandoned_rbw(&dn("a"), BlockId(1), GenStamp(4), writing);
        assert_eq!(map.take_commands(&dn("a")).len(), 1, "older generation");
        map.abandoned_rbw(&dn("a"), BlockId(1), GenStamp(5), known);
        assert_eq!(map.take_commands(&dn("a")).len(), 1, "block complete");
        map.abandoned_rbw(&dn("a"), BlockId(500), GenStamp(5), known);
        assert_eq!(map.take_commands(&dn("a")).len(), 1, "block unknown");
        assert_eq!(map.blocks().count(), 0, "never counted as a replica");
    }

    #[test]
    fn freed_blocks_are_deleted_everywhere_and_dead_nodes_forgotten() {
        let mut map = BlockMap::default();
        map.received(&dn("a"), rep(1, 5, 10), known);
        map.received(&dn("b"), rep(1, 5, 10), known);
        map.received(&dn("b"), rep(2, 5, 10), known);
        map.free([(BlockId(1), GenStamp(5))]);
        assert_eq!(map.take_commands(&dn("a")).len(), 1);
        assert_eq!(map.take_commands(&dn("b")).len(), 1);
        map.remove_datanode(&dn("b"));
        assert_eq!(map.blocks().count(), 0);
    }
}
