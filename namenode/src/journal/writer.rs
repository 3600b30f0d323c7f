//! The writer thread: drains the queue in batches, writes each batch with one
//! `write_all` and one `sync_data`, then acknowledges it; runs checkpoints in
//! queue order. The only code that writes journal files after recovery.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

use nix::fcntl::Flock;
use tokio::sync::oneshot;
use tracing::{debug, error, info};

use crate::error::Error;
use crate::txn::Zxid;

use super::recovery::{LogState, SegmentInfo};
use super::{Shared, segment, snapshot, sync_dir};

/// Where the submitter of a command learns its outcome.
pub(super) type Done = oneshot::Sender<Result<(), Error>>;

/// A request to the writer thread, executed in queue order.
#[derive(Debug)]
pub(super) enum Command {
    /// Log one record; `done` fires once it is fsynced.
    Append {
        /// Strictly greater than every zxid queued before it.
        zxid: Zxid,
        /// The framed record's bytes.
        payload: Vec<u8>,
        /// Fires after the fsync that covers this record.
        done: Done,
    },
    /// Write a snapshot, roll the log and truncate behind the snapshots kept.
    Checkpoint {
        /// The last txn the image reflects.
        zxid: Zxid,
        /// The namespace image.
        image: Vec<u8>,
        /// Fires when the snapshot is durable and old files are gone.
        done: Done,
    },
}

impl Command {
    /// Answers the command without running it.
    pub(super) fn refuse(self, reason: String) {
        let (Command::Append { done, .. } | Command::Checkpoint { done, .. }) = self;
        // The submitter may have stopped waiting; nothing to tell it then.
        let _ = done.send(Err(Error::JournalFailed { reason }));
    }
}

/// The writer's state: the open segment, the batch being built, and what is on disk.
#[derive(Debug)]
pub(super) struct Writer {
    /// The journal directory.
    dir: PathBuf,
    /// Most commands taken from the queue per batch (at least 1).
    max_batch: usize,
    /// Snapshots kept after a checkpoint (at least 1).
    snapshots_to_keep: usize,
    /// State read by the handles.
    shared: Arc<Shared>,
    /// The segment appends go to; `None` until the first append after open or a checkpoint.
    current: Option<File>,
    /// Segments on disk, ascending; the last is `current` when that is open.
    segments: Vec<SegmentInfo>,
    /// Snapshots kept on disk, ascending.
    snapshots: Vec<Zxid>,
    /// The last zxid made durable.
    last_durable: Zxid,
    /// The staged batch's bytes: frames, preceded by a header when it opens a segment.
    buf: Vec<u8>,
    /// The first zxid of the segment the staged batch opens, if it opens one.
    opens_segment: Option<Zxid>,
    /// The last zxid staged in `buf`.
    staged_last: Option<Zxid>,
    /// Submitters of the staged records, in zxid order.
    waiters: Vec<Done>,
    /// Held for the writer's lifetime so no second journal opens the directory.
    _lock: Flock<File>,
}

impl Writer {
    /// A writer continuing from recovered `state`.
    pub(super) fn new(
        dir: &Path,
        max_batch: usize,
        snapshots_to_keep: usize,
        state: LogState,
        shared: Arc<Shared>,
        lock: Flock<File>,
    ) -> Writer {
        Writer {
            dir: dir.to_owned(),
            max_batch: max_batch.max(1),
            snapshots_to_keep: snapshots_to_keep.max(1),
            shared,
            current: None,
            segments: state.segments,
            snapshots: state.snapshots,
            last_durable: state.last_zxid,
            buf: Vec::new(),
            opens_segment: None,
            staged_last: None,
            waiters: Vec::new(),
            _lock: lock,
        }
    }

    /// Serves commands until every handle is gone.
    ///
    /// Each round blocks for one command, then takes whatever else is queued
    /// (up to `max_batch` in all): everything submitted while the previous
    /// fsync ran shares the next one.
    pub(super) fn run(mut self, queue: mpsc::Receiver<Command>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        while let Ok(first) = queue.recv() {
            #[cfg(test)]
            self.shared.hooks.wait_at_gate();
            batch.push(first);
            batch.extend(queue.try_iter().take(self.max_batch - 1));
            for command in batch.drain(..) {
                self.handle(command);
            }
            self.commit();
        }
        debug!(last_zxid = %self.last_durable, "journal writer stopped");
    }

    /// Stages an append or runs a checkpoint after committing what is staged.
    fn handle(&mut self, command: Command) {
        if let Some(reason) = self.shared.poison_reason() {
            return command.refuse(reason);
        }
        match command {
            Command::Append {
                zxid,
                payload,
                done,
            } => {
                let after = self.staged_last.unwrap_or(self.last_durable);
                if zxid <= after {
                    let reason = format!("zxid {zxid} does not follow {after}");
                    let _ = done.send(Err(Error::JournalFailed { reason }));
                    return;
                }
                if self.current.is_none() && self.buf.is_empty() {
                    segment::encode_header(&mut self.buf, self.last_durable);
                    self.opens_segment = Some(zxid);
                }
                segment::encode_frame(&mut self.buf, zxid, &payload);
                self.staged_last = Some(zxid);
                self.waiters.push(done);
            }
            Command::Checkpoint { zxid, image, done } => {
                self.commit();
                let _ = done.send(self.checkpoint(zxid, &image));
            }
        }
    }

    /// Writes and fsyncs the staged batch, then answers its submitters.
    fn commit(&mut self) {
        let Some(last) = self.staged_last.take() else {
            return;
        };
        let result = self.write_staged();
        self.buf.clear();
        self.opens_segment = None;
        match result {
            Ok(()) => {
                self.last_durable = last;
                self.shared.last_zxid.store(last.0, Ordering::Release);
                if let Some(segment) = self.segments.last_mut() {
                    segment.end = last;
                }
                for done in self.waiters.drain(..) {
                    let _ = done.send(Ok(()));
                }
            }
            Err(e) => {
                let reason = self.poison(format!("appending through zxid {last}: {e}"));
                for done in self.waiters.drain(..) {
                    let _ = done.send(Err(Error::JournalFailed {
                        reason: reason.clone(),
                    }));
                }
            }
        }
    }

    /// One `write_all` and one `sync_data` for the whole batch (plus a
    /// directory fsync when the batch opens a segment).
    fn write_staged(&mut self) -> io::Result<()> {
        let opens_segment = self.opens_segment;
        if let Some(first) = opens_segment {
            let path = self.dir.join(segment::file_name(first));
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            debug!(file = %path.display(), "opened journal segment");
            self.segments.push(SegmentInfo {
                path,
                first,
                end: self.last_durable,
            });
            self.current = Some(file);
        }
        let file = self
            .current
            .as_mut()
            .ok_or_else(|| io::Error::other("no open segment"))?;
        #[cfg(test)]
        self.shared.hooks.fail_if(super::FailPoint::Write)?;
        file.write_all(&self.buf)?;
        #[cfg(test)]
        self.shared.hooks.fail_if(super::FailPoint::Sync)?;
        file.sync_data()?;
        self.shared.count_fsync();
        if opens_segment.is_some() {
            sync_dir(&self.dir)?;
            self.shared.count_fsync();
        }
        Ok(())
    }

    /// Checks a checkpoint request and runs it; an I/O failure poisons the journal.
    fn checkpoint(&mut self, zxid: Zxid, image: &[u8]) -> Result<(), Error> {
        if let Some(reason) = self.shared.poison_reason() {
            return Err(Error::JournalFailed { reason });
        }
        if zxid > self.last_durable {
            return Err(Error::JournalFailed {
                reason: format!(
                    "checkpoint at zxid {zxid} is ahead of the last logged zxid {}",
                    self.last_durable
                ),
            });
        }
        if let Some(&newest) = self.snapshots.last()
            && zxid < newest
        {
            return Err(Error::JournalFailed {
                reason: format!("checkpoint at zxid {zxid} is older than the snapshot at {newest}"),
            });
        }
        self.write_checkpoint(zxid, image).map_err(|e| {
            let reason = self.poison(format!("checkpoint at zxid {zxid}: {e}"));
            Error::JournalFailed { reason }
        })
    }

    /// Makes the snapshot durable, rolls the log, then deletes the snapshots
    /// beyond `snapshots_to_keep` and the segments the oldest kept one covers.
    ///
    /// Truncating behind the *oldest* kept snapshot, not the new one, keeps
    /// the log that recovery replays when a newer snapshot fails to verify.
    fn write_checkpoint(&mut self, zxid: Zxid, image: &[u8]) -> Result<(), Error> {
        let (tmp, path) = snapshot::write_tmp(&self.dir, zxid, image)?;
        self.shared.count_fsync();
        fs::rename(&tmp, &path)?;
        sync_dir(&self.dir)?;
        self.shared.count_fsync();
        // The next append opens a segment named for its zxid.
        self.current = None;

        if self.snapshots.last() != Some(&zxid) {
            self.snapshots.push(zxid);
        }
        let excess = self.snapshots.len().saturating_sub(self.snapshots_to_keep);
        let old_snapshots: Vec<Zxid> = self.snapshots.drain(..excess).collect();
        for old in &old_snapshots {
            remove_if_exists(&self.dir.join(snapshot::file_name(*old)))?;
        }
        let oldest_kept = self.snapshots.first().copied().unwrap_or(zxid);
        // Segment ends ascend, so the covered segments are a prefix.
        let covered = self
            .segments
            .iter()
            .take_while(|s| s.end <= oldest_kept)
            .count();
        let old_segments: Vec<SegmentInfo> = self.segments.drain(..covered).collect();
        for old in &old_segments {
            remove_if_exists(&old.path)?;
        }
        sync_dir(&self.dir)?;
        self.shared.count_fsync();
        info!(
            %zxid,
            image_bytes = image.len(),
            removed_snapshots = old_snapshots.len(),
            removed_segments = old_segments.len(),
            "checkpoint written"
        );
        Ok(())
    }

    /// Marks the journal failed for good and returns the reason handed to callers.
    fn poison(&mut self, reason: String) -> String {
        error!(%reason, "journal failed; refusing every later append");
        self.current = None;
        self.shared.poison(reason)
    }
}

/// Deletes a file; one already gone is fine.
fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
