//! Replica changes on their way to the namenodes: the data path records a
//! finalized, deleted or corrupt replica, or an rbw replica its pipeline
//! left behind, once (the block scanner records corrupt replicas too, and a
//! priority scan the replicas it verified), and
//! every namenode actor takes its own copy when it next sends an
//! incremental block report.
//!
//! ```text
//!   pipeline / deletes / reader / scanner ──► ReportHub ──► ReportQueue (one per namenode)
//!                                                             │ notify
//!                                                             v
//!                                              namenode actor: take() -> BlockReport(full = false)
//!                                                              failed? put_back()
//! ```
//!
//! A queue holds at most one change per block (a newer one replaces an older
//! one), so it is bounded by the number of blocks this datanode touched while
//! the namenode was unreachable, never by the number of events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dfs_proto::ids::{BlockId, GenStamp};
use tokio::sync::Notify;

use crate::block_store::ReplicaInfo;

/// One replica change, as an incremental block report carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// A replica was finalized.
    Received(ReplicaInfo),
    /// A replica was deleted.
    Deleted {
        /// The block.
        block: BlockId,
        /// Its generation stamp.
        gen_stamp: GenStamp,
    },
    /// A pipeline stopped before the last packet and left this rbw replica
    /// (lease recovery needs its length).
    RbwLeft(ReplicaInfo),
}

/// Changes not yet reported to one namenode.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    /// The newest change of each block.
    pub(crate) changes: HashMap<BlockId, Change>,
    /// Replicas found corrupt.
    pub(crate) corrupt: HashMap<BlockId, ReplicaInfo>,
    /// Replicas a priority scan found intact (a namenode suspected them).
    pub(crate) verified: HashMap<BlockId, ReplicaInfo>,
}

impl Pending {
    /// Whether there is nothing to report.
    pub(crate) fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.corrupt.is_empty() && self.verified.is_empty()
    }
}

/// The changes waiting for one namenode.
#[derive(Debug, Default)]
pub(crate) struct ReportQueue {
    pending: Mutex<Pending>,
    notify: Notify,
}

impl ReportQueue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until there may be something to take. Cancel-safe.
    pub(crate) async fn changed(&self) {
        self.notify.notified().await;
    }

    /// Takes everything pending.
    pub(crate) fn take(&self) -> Pending {
        std::mem::take(&mut *self.lock())
    }

    /// Returns changes whose report failed; changes recorded meanwhile win.
    pub(crate) fn put_back(&self, old: Pending) {
        let mut pending = self.lock();
        for (block, change) in old.changes {
            pending.changes.entry(block).or_insert(change);
        }
        // A verdict recorded meanwhile (corrupt or verified) beats either old one.
        for (block, info) in old.corrupt {
            if !pending.verified.contains_key(&block) {
                pending.corrupt.entry(block).or_insert(info);
            }
        }
        for (block, info) in old.verified {
            if !pending.corrupt.contains_key(&block) {
                pending.verified.entry(block).or_insert(info);
            }
        }
    }

    fn record(&self, f: impl FnOnce(&mut Pending)) {
        f(&mut self.lock());
        self.notify.notify_one();
    }
}

/// Fans replica changes out to every namenode's queue; cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReportHub {
    queues: Arc<[Arc<ReportQueue>]>,
}

impl ReportHub {
    /// A hub with one queue per namenode; also returns the queues, in order.
    pub(crate) fn new(namenodes: usize) -> (ReportHub, Vec<Arc<ReportQueue>>) {
        let queues: Vec<Arc<ReportQueue>> = (0..namenodes)
            .map(|_| Arc::new(ReportQueue::default()))
            .collect();
        let hub = ReportHub {
            queues: queues.clone().into(),
        };
        (hub, queues)
    }

    fn record(&self, f: impl Fn(&mut Pending)) {
        for queue in self.queues.iter() {
            queue.record(&f);
        }
    }

    /// A replica was finalized.
    pub(crate) fn received(&self, info: ReplicaInfo) {
        self.record(|p| {
            p.corrupt.remove(&info.block);
            p.changes.insert(info.block, Change::Received(info));
        });
    }

    /// A replica was deleted.
    pub(crate) fn deleted(&self, block: BlockId, gen_stamp: GenStamp) {
        self.record(|p| {
            p.corrupt.remove(&block);
            p.changes
                .insert(block, Change::Deleted { block, gen_stamp });
        });
    }

    /// A pipeline stopped and left an rbw replica that no writer holds.
    pub(crate) fn rbw_left(&self, info: ReplicaInfo) {
        self.record(|p| {
            p.changes.insert(info.block, Change::RbwLeft(info));
        });
    }

    /// A replica was found corrupt.
    pub(crate) fn corrupt(&self, info: ReplicaInfo) {
        self.record(|p| {
            p.verified.remove(&info.block);
            p.corrupt.insert(info.block, info);
        });
    }

    /// A priority scan found a replica intact.
    pub(crate) fn verified(&self, info: ReplicaInfo) {
        self.record(|p| {
            p.corrupt.remove(&info.block);
            p.verified.insert(info.block, info);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(block: u64, gs: u64) -> ReplicaInfo {
        ReplicaInfo {
            block: BlockId(block),
            gen_stamp: GenStamp(gs),
            length: 10,
        }
    }

    #[test]
    fn every_queue_gets_each_change_and_a_newer_change_of_a_block_replaces_the_older() {
        let (hub, queues) = ReportHub::new(2);
        hub.received(info(1, 1));
        hub.received(info(2, 1));
        hub.deleted(BlockId(1), GenStamp(1));
        hub.rbw_left(info(3, 1));
        for q in &queues {
            let p = q.take();
            assert_eq!(p.changes.len(), 3);
            assert_eq!(p.changes[&BlockId(3)], Change::RbwLeft(info(3, 1)));
            assert_eq!(
                p.changes[&BlockId(1)],
                Change::Deleted {
                    block: BlockId(1),
                    gen_stamp: GenStamp(1)
                }
            );
            assert!(q.take().is_empty());
        }
    }

    #[test]
    fn a_failed_report_is_put_back_under_newer_changes() {
        let (hub, queues) = ReportHub::new(1);
        let q = &queues[0];
        hub.received(info(1, 1));
        hub.corrupt(info(3, 1));
        let failed = q.take();
        hub.received(info(1, 2));
        q.put_back(failed);
        let p = q.take();
        assert_eq!(p.changes[&BlockId(1)], Change::Received(info(1, 2)));
        assert_eq!(p.corrupt.len(), 1);
    }

    #[test]
    fn the_latest_verdict_on_a_replica_wins() {
        let (hub, queues) = ReportHub::new(1);
        let q = &queues[0];
        hub.verified(info(1, 1));
        hub.corrupt(info(2, 1));
        hub.corrupt(info(1, 1));
        hub.verified(info(2, 1));
        let p = q.take();
        assert_eq!(p.corrupt.keys().collect::<Vec<_>>(), vec![&BlockId(1)]);
        assert_eq!(p.verified.keys().collect::<Vec<_>>(), vec![&BlockId(2)]);
        // A verdict recorded after a failed report beats the one put back.
        hub.corrupt(info(2, 1));
        q.put_back(p);
        let p = q.take();
        assert!(p.verified.is_empty());
        assert_eq!(p.corrupt.len(), 2);
    }
}
