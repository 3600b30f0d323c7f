//! Blocks sent to datanodes that have not reported them yet, and the
//! re-replication targets that failed.
//!
//! HDFS's `blocksScheduled` and pending-reconstruction timeouts. A datanode
//! reports its free space only with each heartbeat, so a node chosen as a
//! target (of a write pipeline or a re-replication) would look as roomy to
//! the next choice as before, and one pass of the replication monitor could
//! send it far more blocks than it has room for. So every target choice is
//! remembered here until the node reports the replica (finalized or rbw),
//! and placement reserves one block of space for each (`placement`, "usable").
//!
//! ```text
//!   choose target ──scheduled()──► in flight ──arrived()──► gone
//!                                    │ older than its timeout
//!                                    v
//!                   write: gone     re-replication: gone, and the target is
//!                                   not chosen for that block for BACKOFF
//! ```
//!
//! A write's entry times out after `WRITE_TIMEOUT` (HDFS rolls its counts
//! every 10 minutes); a re-replication's after the monitor's own
//! `REPLICATION_TIMEOUT`, when it schedules the copy again: the target that
//! never got the block is left out then, so a node that cannot take it
//! (full, broken disk, unreachable from the source) is not chosen again at
//! once. Pure: time comes in as an argument.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dfs_proto::ids::{BlockId, DatanodeId};

use super::block_map::REPLICATION_TIMEOUT;

/// How long a write target's reservation lasts without a report.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How long a failed re-replication target is not chosen for that block.
const BACKOFF: Duration = Duration::from_secs(5 * 60);

/// Why a block is on its way to a datanode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transfer {
    /// It is in a client's write pipeline.
    Write,
    /// The replication monitor asked another datanode to copy it there.
    Replication,
}

impl Transfer {
    fn timeout(self) -> Duration {
        match self {
            Transfer::Write => WRITE_TIMEOUT,
            Transfer::Replication => REPLICATION_TIMEOUT,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Scheduled {
    kind: Transfer,
    at: Instant,
}

/// Blocks on their way to each datanode, and failed targets backing off.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    scheduled: HashMap<DatanodeId, HashMap<BlockId, Scheduled>>,
    /// Until when a target that failed to receive a block is left out for it.
    backoff: HashMap<(BlockId, DatanodeId), Instant>,
}

impl InFlight {
    /// Records that `block` was sent to `target` at `now`.
    pub(crate) fn scheduled(
        &mut self,
        target: &DatanodeId,
        block: BlockId,
        kind: Transfer,
        now: Instant,
    ) {
        self.scheduled
            .entry(target.clone())
            .or_default()
            .insert(block, Scheduled { kind, at: now });
    }

    /// `target` reported a replica of `block`: its reservation ends.
    pub(crate) fn arrived(&mut self, target: &DatanodeId, block: BlockId) {
        if let Some(blocks) = self.scheduled.get_mut(target) {
            blocks.remove(&block);
            if blocks.is_empty() {
                self.scheduled.remove(target);
            }
        }
        self.backoff.remove(&(block, target.clone()));
    }

    /// Blocks on their way to `target`: the space placement reserves there.
    pub(crate) fn count(&self, target: &DatanodeId) -> u32 {
        self.scheduled
            .get(target)
            .map_or(0, |b| u32::try_from(b.len()).unwrap_or(u32::MAX))
    }

    /// Drops reservations older than their timeout; the targets of expired
    /// re-replications back off from their block. Returns those targets.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<(BlockId, DatanodeId)> {
        let mut failed = Vec::new();
        for (target, blocks) in &mut self.scheduled {
            blocks.retain(|block, s| {
                let is_live = now.saturating_duration_since(s.at) < s.kind.timeout();
                if !is_live && s.kind == Transfer::Replication {
                    failed.push((*block, target.clone()));
                }
                is_live
            });
        }
        self.scheduled.retain(|_, blocks| !blocks.is_empty());
        self.backoff.retain(|_, until| *until > now);
        for key in &failed {
            self.backoff.insert(key.clone(), now + BACKOFF);
        }
        failed
    }

    /// Targets not to choose for `block` now: they failed to receive it.
    pub(crate) fn backed_off(&self, block: BlockId, now: Instant) -> Vec<DatanodeId> {
        self.backoff
            .iter()
            .filter(|((b, _), until)| *b == block && **until > now)
            .map(|((_, target), _)| target.clone())
            .collect()
    }

    /// Forgets a dead datanode's reservations (its back-offs stay: it may return).
    pub(crate) fn remove_datanode(&mut self, datanode: &DatanodeId) {
        self.scheduled.remove(datanode);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> DatanodeId {
        DatanodeId::parse(s).unwrap()
    }

    #[test]
    fn a_target_reserves_a_block_until_it_reports_the_replica() {
        let mut f = InFlight::default();
        let now = Instant::now();
        f.scheduled(&dn("a"), BlockId(1), Transfer::Write, now);
        f.scheduled(&dn("a"), BlockId(2), Transfer::Replication, now);
        f.scheduled(&dn("b"), BlockId(1), Transfer::Write, now);
        assert_eq!((f.count(&dn("a")), f.count(&dn("b"))), (2, 1));
        f.arrived(&dn("a"), BlockId(1));
        f.arrived(&dn("a"), BlockId(9));
        assert_eq!(f.count(&dn("a")), 1);
        f.remove_datanode(&dn("b"));
        assert_eq!(f.count(&dn("b")), 0);
    }

    #[test]
    fn a_failed_replication_target_backs_off_from_that_block_only() {
        let mut f = InFlight::default();
        let now = Instant::now();
        f.scheduled(&dn("a"), BlockId(1), Transfer::Replication, now);
        f.scheduled(&dn("b"), BlockId(2), Transfer::Write, now);
        assert!(f.expire(now + Duration::from_secs(1)).is_empty());
        let timed_out = now + REPLICATION_TIMEOUT;
        assert_eq!(f.expire(timed_out), vec![(BlockId(1), dn("a"))]);
        assert_eq!(f.count(&dn("a")), 0, "its reservation is gone");
        assert_eq!(f.backed_off(BlockId(1), timed_out), vec![dn("a")]);
        assert!(f.backed_off(BlockId(2), timed_out).is_empty());
        assert_eq!(f.count(&dn("b")), 1, "a write waits longer");
        // The back-off ends, or the block arrives there after all.
        assert!(f.backed_off(BlockId(1), timed_out + BACKOFF).is_empty());
        f.expire(timed_out + BACKOFF);
        assert!(f.backed_off(BlockId(1), timed_out).is_empty());
        assert!(
            f.expire(now + WRITE_TIMEOUT).is_empty(),
            "writes never back off"
        );
        assert_eq!(f.count(&dn("b")), 0);
    }

    #[test]
    fn a_replica_arriving_late_ends_the_back_off() {
        let mut f = InFlight::default();
        let now = Instant::now();
        f.scheduled(&dn("a"), BlockId(1), Transfer::Replication, now);
        f.expire(now + REPLICATION_TIMEOUT);
        f.arrived(&dn("a"), BlockId(1));
        assert!(
            f.backed_off(BlockId(1), now + REPLICATION_TIMEOUT)
                .is_empty()
        );
    }
}
