//! Lease recovery: closes a file whose writer's lease expired, as HDFS's
//! block recovery does, simplified.
//!
//! ```text
//!   last block?  none ───────────────────────────────► Complete(no block)
//!       │ some             committed (length known, not ──► Complete(it, as it is)
//!       │                  reopened by an append)
//!       v
//!   replicas of its generation stamp on datanodes not dead
//!       ├─ finalized ones: their (shortest) length ─┐
//!       ├─ else rbw ones: the shortest length ──────┤
//!       │                                           v   length > 0
//!       │                          Complete(last at that length) ─► FinalizeRbw to every
//!       │                                                          rbw at least that long,
//!       │                                                          delete the others
//!       └─ none, or length 0 ─► AbandonBlock(last) ─► Complete(the block before)
//! ```
//!
//! The shortest length stands in for HDFS's replica synchronisation: every
//! replica of a pipeline generation holds the same bytes up to what it got,
//! so the shortest live one is a length each of them can be cut back to. The
//! generation stamp is kept: the block map treats an rbw replica of a
//! complete block by its stamp and length alone (long enough: finalize it;
//! else delete it), so a replica reported late, or to a leader elected after
//! the recovery, is still put right, and a writer that comes back has no
//! lease left for its `AddBlock` or `Complete`.
//!
//! The txns are the writer's own (`AbandonBlock`, `Complete`) issued in the
//! holder's name, so the namespace checks them as usual: if the writer
//! closed the file meanwhile, they fail and nothing changes.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::blocks::manager::{BlockManager, WrittenReplicas};
use crate::error::Error;
use crate::namespace::{Caller, Op, OpenFile};
use crate::namesystem::Namesystem;
use crate::txn::BlockRecord;

/// What recovery does with a file's last block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LastBlock {
    /// Commit it at this many bytes.
    Keep {
        /// Bytes every chosen replica holds.
        length: u64,
    },
    /// No live replica holds a byte of it: drop it from the file.
    Drop,
}

/// Chooses the last block's fate from its replicas of the current
/// generation stamp: finalized replicas first (the writer's last packet
/// reached them), else the shortest rbw replica; nothing (or nothing but
/// empty replicas) drops the block.
pub(crate) fn plan_last_block(written: &WrittenReplicas) -> LastBlock {
    let shortest = if written.finalized.is_empty() {
        written.rbw.iter().min()
    } else {
        written.finalized.iter().min()
    };
    match shortest {
        Some(&length) if length > 0 => LastBlock::Keep { length },
        _ => LastBlock::Drop,
    }
}

/// How a recovery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recovered {
    /// The file is closed; its last block (if any) as committed.
    Closed {
        /// The last block at its recovered length.
        last: Option<BlockRecord>,
    },
    /// The last block had no data and is gone; the file is closed with the
    /// block before it (if any) last.
    DroppedLastBlock {
        /// The dropped block.
        dropped: BlockRecord,
    },
    /// The file is no longer written by that holder (closed, deleted, or
    /// taken over meanwhile): nothing to do.
    NotNeeded,
}

/// What a recovery works with.
#[derive(Debug, Clone)]
pub(crate) struct Recovery {
    pub(crate) namesystem: Namesystem,
    pub(crate) blocks: Arc<Mutex<BlockManager>>,
    /// Who the recovery's writes run as (the superuser).
    pub(crate) caller: Caller,
}

impl Recovery {
    /// Closes `file` for its holder, as the module doc describes.
    ///
    /// Cancel-safe between its writes: each is one committed txn, and a
    /// recovery stopped half-way (the last block dropped, the file not yet
    /// closed) is finished by the next one.
    ///
    /// # Errors
    /// A write's refusal (`NotLeader`, the file changed meanwhile).
    pub(crate) async fn recover(&self, file: &OpenFile) -> Result<Recovered, Error> {
        let state = match self.namesystem.read(|ns| ns.writer_blocks(&file.path)) {
            Ok((state, _)) => state,
            Err(Error::NotFound { .. } | Error::IsADirectory { .. }) => {
                return Ok(Recovered::NotNeeded);
            }
            Err(e) => return Err(e),
        };
        if state.lease_holder.as_deref() != Some(file.holder.as_str()) {
            return Ok(Recovered::NotNeeded);
        }
        let mut records = state.blocks.iter().map(|(_, block)| *block);
        let Some(last) = records.next_back() else {
            self.complete(file, None).await?;
            return Ok(Recovered::Closed { last: None });
        };
        let previous = records.next_back();
        if last.length > 0 && state.reopened_from.is_none() {
            // Committed already (the writer abandoned the block after it, or
            // a recovery stopped half-way): its length is known.
            self.complete(file, Some(last)).await?;
            return Ok(Recovered::Closed { last: Some(last) });
        }
        let written = self
            .blocks()
            .written_replicas(last.id, last.gen_stamp, Instant::now());
        match plan_last_block(&written) {
            // A reopened block keeps the bytes it held before the append:
            // its replicas reopen at their full length at least.
            LastBlock::Keep { length } if state.reopened_from.is_some() && length < last.length => {
                tracing::warn!(block = %last, length, "reopened replica shorter than the block was; keeping the recorded length");
                self.complete(file, Some(last)).await?;
                Ok(Recovered::Closed { last: Some(last) })
            }
            LastBlock::Drop if let Some(previous) = state.reopened_from => {
                // The appender never got a pipeline going: the finalized
                // replicas of the earlier stamp still hold the block whole.
                tracing::warn!(block = %last, %previous, "no replica of a reopened block under its new stamp; restamping the finalized ones");
                self.complete(file, Some(last)).await?;
                self.blocks()
                    .map
                    .restamp_finalized(last.id, previous, last.gen_stamp, last.length);
                Ok(Recovered::Closed { last: Some(last) })
            }
            LastBlock::Keep { length } => {
                let last = BlockRecord { length, ..last };
                self.complete(file, Some(last)).await?;
                self.blocks()
                    .map
                    .finalize_rbw(last.id, last.gen_stamp, length);
                Ok(Recovered::Closed { last: Some(last) })
            }
            LastBlock::Drop => {
                let abandon = Op::AbandonBlock {
                    path: file.path.clone(),
                    client: file.holder.clone(),
                    block: last.id,
                };
                self.namesystem
                    .write(abandon, self.caller.clone(), None)
                    .await?;
                self.complete(file, previous).await?;
                Ok(Recovered::DroppedLastBlock { dropped: last })
            }
        }
    }

    async fn complete(&self, file: &OpenFile, last: Option<BlockRecord>) -> Result<(), Error> {
        let op = Op::Complete {
            path: file.path.clone(),
            client: file.holder.clone(),
            last,
        };
        self.namesystem.write(op, self.caller.clone(), None).await?;
        Ok(())
    }

    fn blocks(&self) -> std::sync::MutexGuard<'_, BlockManager> {
        self.blocks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(finalized: &[u64], rbw: &[u64]) -> WrittenReplicas {
        WrittenReplicas {
            finalized: finalized.to_vec(),
            rbw: rbw.to_vec(),
        }
    }

    #[test]
    fn finalized_replicas_decide_the_length_before_rbw_ones() {
        assert_eq!(
            plan_last_block(&written(&[4096], &[100, 9000])),
            LastBlock::Keep { length: 4096 }
        );
    }

    #[test]
    fn without_a_finalized_replica_the_shortest_rbw_wins() {
        assert_eq!(
            plan_last_block(&written(&[], &[70_000, 65_536, 131_072])),
            LastBlock::Keep { length: 65_536 }
        );
    }

    #[test]
    fn a_block_nobody_wrote_a_byte_of_is_dropped() {
        assert_eq!(plan_last_block(&written(&[], &[])), LastBlock::Drop);
        assert_eq!(plan_last_block(&written(&[], &[0, 512])), LastBlock::Drop);
    }
}
