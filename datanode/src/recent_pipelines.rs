//! A small bounded ring of the write pipelines this datanode took part in
//! lately (block, targets, bytes, outcome), newest last, for its status
//! page. Each pipeline stage records one summary when it ends.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use dfs_proto::ids::{BlockId, GenStamp};

/// Summaries kept; older ones are dropped.
pub(crate) const KEPT: usize = 32;

/// How one pipeline stage ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PipelineSummary {
    pub(crate) block: BlockId,
    pub(crate) gen_stamp: GenStamp,
    /// Whether it was a pipeline recovery rather than a new replica.
    pub(crate) recovery: bool,
    /// The writer's client name.
    pub(crate) client: String,
    /// Transfer addresses of the nodes after this one, in pipeline order.
    pub(crate) downstream: Vec<String>,
    /// The replica's length after the last packet acknowledged.
    pub(crate) bytes: u64,
    /// "finalized", "kept rbw (copy)", or what went wrong.
    pub(crate) outcome: String,
    /// When it ended, ms since the Unix epoch.
    pub(crate) ended_ms: u64,
}

/// The last [`KEPT`] pipeline summaries.
#[derive(Debug, Default)]
pub(crate) struct RecentPipelines(Mutex<VecDeque<PipelineSummary>>);

impl RecentPipelines {
    /// Adds `summary`, dropping the oldest past [`KEPT`].
    pub(crate) fn record(&self, summary: PipelineSummary) {
        let mut ring = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len() == KEPT {
            ring.pop_front();
        }
        ring.push_back(summary);
    }

    /// The summaries, newest first.
    pub(crate) fn newest_first(&self) -> Vec<PipelineSummary> {
        let ring = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        ring.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(block: u64) -> PipelineSummary {
        PipelineSummary {
            block: BlockId(block),
            gen_stamp: GenStamp(1001),
            recovery: false,
            client: "c".into(),
            downstream: vec![],
            bytes: 0,
            outcome: "finalized".into(),
            ended_ms: 0,
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_and_lists_them_first() {
        let ring = RecentPipelines::default();
        for block in 0..(KEPT as u64 + 5) {
            ring.record(summary(block));
        }
        let listed = ring.newest_first();
        assert_eq!(listed.len(), KEPT);
        assert_eq!(
            listed.first().map(|s| s.block),
            Some(BlockId(KEPT as u64 + 4))
        );
        assert_eq!(listed.last().map(|s| s.block), Some(BlockId(5)));
    }
}
