//! The writer thread: drains the queue in batches, writes each batch with one
//! `write_all` and one `sync_data`, then acknowledges it; runs checkpoints,
//! truncations, snapshot installs and log reads in queue order. The only code
//! that writes journal files after recovery.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Instant;

use nix::fcntl::Flock;
use tokio::sync::oneshot;
use tracing::{debug, error, info};

use crate::error::Error;
use crate::txn::Zxid;

use super::recovery::{LogState, SegmentInfo};
use super::segment::FRAME_HEADER_LEN;
use super::{LogIndex, Recovered, Shared, marker, segment, snapshot, sync_dir};

/// Where the submitter of a command learns its outcome.
pub(super) type Done = oneshot::Sender<Result<(), Error>>;

/// Records read back from the log, ascending: zxid and payload.
pub(super) type Records = Vec<(Zxid, Vec<u8>)>;

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
    /// Durably remove every record after `zxid` (a Zab TRUNC).
    TruncateAfter {
        /// The last zxid kept.
        zxid: Zxid,
        /// Fires when the cut is durable.
        done: Done,
    },
    /// Replace the whole journal with a snapshot from the leader (a Zab SNAP).
    InstallSnapshot {
        /// The last txn the image reflects.
        zxid: Zxid,
        /// The namespace image.
        image: Vec<u8>,
        /// Fires when the snapshot is durable and every other file is gone.
        done: Done,
    },
    /// Read the durable records after `zxid` from the segment files (a Zab DIFF).
    ReadAfter {
        /// Records up to and including this one are skipped.
        zxid: Zxid,
        /// Payload bytes per answer, past the first record.
        max_bytes: usize,
        /// Gets the records.
        done: oneshot::Sender<Result<Records, Error>>,
    },
    /// Read back what recovery would: the newest snapshot and the log after it.
    Load {
        /// Gets the snapshot and the records.
        done: oneshot::Sender<Result<Recovered, Error>>,
    },
}

impl Command {
    /// Answers the command without running it.
    pub(super) fn refuse(self, reason: String) {
        let error = Error::JournalFailed { reason };
        // The submitter may have stopped waiting; nothing to tell it then.
        match self {
            Command::Append { done, .. }
            | Command::Checkpoint { done, .. }
            | Command::TruncateAfter { done, .. }
            | Command::InstallSnapshot { done, .. } => {
                let _ = done.send(Err(error));
            }
            Command::ReadAfter { done, .. } => {
                let _ = done.send(Err(error));
            }
            Command::Load { done } => {
                let _ = done.send(Err(error));
            }
        }
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
    /// The staged records' zxids and their offsets in `buf`.
    staged: Vec<(Zxid, u64)>,
    /// The last zxid staged in `buf`.
    staged_last: Option<Zxid>,
    /// Submitters of the staged records, in zxid order.
    waiters: Vec<Done>,
    /// What the `seen_zxid` marker on disk records.
    marked: Zxid,
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
        marked: Zxid,
        shared: Arc<Shared>,
        lock: Flock<File>,
    ) -> Writer {
        let writer = Writer {
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
            staged: Vec::new(),
            staged_last: None,
            waiters: Vec::new(),
            marked,
            _lock: lock,
        };
        writer.publish_index();
        writer
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
                self.staged.push((zxid, self.buf.len() as u64));
                segment::encode_frame(&mut self.buf, zxid, &payload);
                self.staged_last = Some(zxid);
                self.waiters.push(done);
            }
            Command::Checkpoint { zxid, image, done } => {
                self.commit();
                let _ = done.send(self.checkpoint(zxid, &image));
            }
            Command::TruncateAfter { zxid, done } => {
                self.commit();
                let _ = done.send(self.truncate_after(zxid));
            }
            Command::InstallSnapshot { zxid, image, done } => {
                self.commit();
                let _ = done.send(self.install_snapshot(zxid, &image));
            }
            Command::ReadAfter {
                zxid,
                max_bytes,
                done,
            } => {
                self.commit();
                let _ = done.send(self.read_after(zxid, max_bytes));
            }
            Command::Load { done } => {
                self.commit();
                let _ = done.send(self.load());
            }
        }
    }

    /// Writes and fsyncs the staged batch, then answers its submitters.
    fn commit(&mut self) {
        let Some(last) = self.staged_last.take() else {
            return;
        };
        let result = self.write_staged();
        let staged = std::mem::take(&mut self.staged);
        let written = self.buf.len() as u64;
        self.buf.clear();
        self.opens_segment = None;
        match result {
            Ok(()) => {
                self.shared
                    .metrics
                    .txns_per_fsync
                    .observe(staged.len() as f64);
                self.last_durable = last;
                self.shared.last_zxid.store(last.0, Ordering::Release);
                if let Some(segment) = self.segments.last_mut() {
                    segment.end = last;
                    let base = segment.len;
                    segment
                        .frames
                        .extend(staged.iter().map(|&(zxid, at)| (zxid, base + at)));
                    segment.len = base + written;
                }
                let log_start = self.log_start();
                self.shared.update_index(|index| {
                    index.log_start = log_start;
                    index.zxids.extend(staged.iter().map(|&(zxid, _)| zxid));
                });
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
                prev: self.last_durable,
                end: self.last_durable,
                len: 0,
                frames: Vec::new(),
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
        let started = Instant::now();
        file.sync_data()?;
        self.shared
            .metrics
            .fsync
            .observe(started.elapsed().as_secs_f64());
        self.shared.count_fsync();
        if opens_segment.is_some() {
            sync_dir(&self.dir)?;
            self.shared.count_fsync();
            // Every record before this segment is durable: mark the last one.
            self.raise_marker(self.last_durable)?;
        }
        Ok(())
    }

    /// Records `zxid` in the marker when it is above what it records.
    fn raise_marker(&mut self, zxid: Zxid) -> io::Result<()> {
        if zxid > self.marked {
            self.write_marker(zxid)?;
        }
        Ok(())
    }

    /// Lowers the marker to `zxid` before records after it are removed on
    /// the quorum's behalf, so a crash half way never looks like a loss.
    fn lower_marker(&mut self, zxid: Zxid) -> io::Result<()> {
        if zxid < self.marked {
            self.write_marker(zxid)?;
        }
        Ok(())
    }

    fn write_marker(&mut self, zxid: Zxid) -> io::Result<()> {
        let fsyncs = marker::write(&self.dir, zxid)?;
        self.shared.fsyncs.fetch_add(fsyncs, Ordering::Relaxed);
        self.marked = zxid;
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
        self.publish_index();
        info!(
            %zxid,
            image_bytes = image.len(),
            removed_snapshots = old_snapshots.len(),
            removed_segments = old_segments.len(),
            "checkpoint written"
        );
        Ok(())
    }

    /// The last zxid before the log: the oldest kept segment's `prev`, or the
    /// last durable zxid (a snapshot's) when no segment is left.
    fn log_start(&self) -> Zxid {
        self.segments
            .first()
            .map_or(self.last_durable, |segment| segment.prev)
    }

    /// Republishes the zxid index the handles read, from the segments.
    fn publish_index(&self) {
        let log_start = self.log_start();
        let zxids = self
            .segments
            .iter()
            .flat_map(|segment| segment.frames.iter().map(|&(zxid, _)| zxid))
            .collect();
        self.shared
            .update_index(|index| *index = LogIndex { log_start, zxids });
    }

    /// Refuses with the poison reason once the journal has failed.
    fn check_healthy(&self) -> Result<(), Error> {
        match self.shared.poison_reason() {
            Some(reason) => Err(Error::JournalFailed { reason }),
            None => Ok(()),
        }
    }

    /// Checks a truncation request and runs it; an I/O failure poisons the journal.
    fn truncate_after(&mut self, zxid: Zxid) -> Result<(), Error> {
        self.check_healthy()?;
        let refuse = |reason: String| Err(Error::JournalFailed { reason });
        let newest_snapshot = self.snapshots.last().copied();
        if let Some(newest) = newest_snapshot
            && zxid < newest
        {
            return refuse(format!(
                "cannot truncate after zxid {zxid}: the history before the snapshot at \
                 {newest} is gone (this needs a SNAP)"
            ));
        }
        let log_start = self.log_start();
        if zxid < log_start {
            return refuse(format!(
                "cannot truncate after zxid {zxid}: the log starts after {log_start}"
            ));
        }
        if zxid > self.last_durable {
            return refuse(format!(
                "cannot truncate after zxid {zxid}: the log ends at {}",
                self.last_durable
            ));
        }
        let is_logged = self.segments.iter().any(|segment| {
            segment
                .frames
                .binary_search_by_key(&zxid, |&(z, _)| z)
                .is_ok()
        });
        if !is_logged && zxid != log_start && Some(zxid) != newest_snapshot {
            return refuse(format!(
                "cannot truncate after zxid {zxid}: it is not in the log"
            ));
        }
        let result = self.lower_marker(zxid).and_then(|()| {
            if is_logged {
                self.cut_log_after(zxid)
            } else {
                self.clear_log_behind(zxid)
            }
        });
        result.map_err(|e| {
            let reason = self.poison(format!("truncating after zxid {zxid}: {e}"));
            Error::JournalFailed { reason }
        })?;
        self.set_last_durable(zxid);
        info!(%zxid, "journal truncated");
        Ok(())
    }

    /// Makes `zxid` the last durable zxid and republishes the index.
    fn set_last_durable(&mut self, zxid: Zxid) {
        self.last_durable = zxid;
        self.shared.last_zxid.store(zxid.0, Ordering::Release);
        self.publish_index();
    }

    /// Deletes the segments after the one logging `zxid` (newest first, so a
    /// crash leaves a prefix of the log), then cuts that one right after
    /// `zxid`'s frame.
    fn cut_log_after(&mut self, zxid: Zxid) -> io::Result<()> {
        // The next append opens a segment: never write after a cut point.
        self.current = None;
        self.remove_segments_after(zxid)?;
        if let Some(last) = self.segments.last_mut() {
            let keep = last.frames.partition_point(|&(z, _)| z <= zxid);
            if let Some(&(_, cut)) = last.frames.get(keep) {
                let file = OpenOptions::new().write(true).open(&last.path)?;
                file.set_len(cut)?;
                file.sync_all()?;
                self.shared.count_fsync();
                last.frames.truncate(keep);
                last.len = cut;
            }
            last.end = zxid;
        }
        Ok(())
    }

    /// Deletes, newest first, every segment whose first record is after
    /// `zxid`, with a directory fsync after each.
    fn remove_segments_after(&mut self, zxid: Zxid) -> io::Result<()> {
        while let Some(last) = self.segments.last()
            && last.first > zxid
        {
            remove_if_exists(&last.path)?;
            sync_dir(&self.dir)?;
            self.shared.count_fsync();
            debug!(file = %last.path.display(), "removed journal segment");
            self.segments.pop();
        }
        Ok(())
    }

    /// Empties the log for a `zxid` no frame carries (the newest snapshot's or
    /// the log start): segments after it go first, then the older ones and
    /// every snapshot but `zxid`'s, so recovery is that snapshot (or nothing)
    /// with an empty log and the next segment's `prev` is `zxid`.
    fn clear_log_behind(&mut self, zxid: Zxid) -> io::Result<()> {
        self.current = None;
        self.remove_segments_after(zxid)?;
        self.remove_segments_after(Zxid::ZERO)?;
        if !self.snapshots.contains(&zxid) {
            // The log start with no snapshot there: the log was whole, no snapshot to drop.
            return Ok(());
        }
        let old: Vec<Zxid> = self
            .snapshots
            .iter()
            .copied()
            .filter(|&s| s != zxid)
            .collect();
        for snapshot_zxid in &old {
            remove_if_exists(&self.dir.join(snapshot::file_name(*snapshot_zxid)))?;
        }
        self.snapshots.retain(|&s| s == zxid);
        if !old.is_empty() {
            sync_dir(&self.dir)?;
            self.shared.count_fsync();
        }
        Ok(())
    }

    /// Replaces the journal with a snapshot at `zxid`; an I/O failure poisons it.
    fn install_snapshot(&mut self, zxid: Zxid, image: &[u8]) -> Result<(), Error> {
        self.check_healthy()?;
        self.lower_marker(zxid)
            .map_err(Error::from)
            .and_then(|()| self.write_installed_snapshot(zxid, image))
            .and_then(|()| self.raise_marker(zxid).map_err(Error::from))
            .map_err(|e| {
                let reason = self.poison(format!("installing the snapshot at zxid {zxid}: {e}"));
                Error::JournalFailed { reason }
            })?;
        self.set_last_durable(zxid);
        info!(%zxid, image_bytes = image.len(), "snapshot installed");
        Ok(())
    }

    /// Writes the snapshot durably and deletes every other journal file.
    ///
    /// Order matters for a crash half way: the image is fsynced under its
    /// tmp name first; the segments go newest first and the snapshots newer
    /// than `zxid` next (each step leaves an older state of our own, never a
    /// snapshot with a log that does not follow it); only then is the
    /// snapshot renamed into place, and the older snapshots deleted.
    fn write_installed_snapshot(&mut self, zxid: Zxid, image: &[u8]) -> Result<(), Error> {
        self.current = None;
        let (tmp, path) = snapshot::write_tmp(&self.dir, zxid, image)?;
        self.shared.count_fsync();
        self.remove_segments_after(Zxid::ZERO)?;
        // Every snapshot file, including newer ones recovery skipped as invalid.
        let mut others = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            if let Some(other) = name.to_str().and_then(snapshot::parse_file_name)
                && other != zxid
            {
                others.push(other);
            }
        }
        others.sort_unstable();
        for newer in others.iter().rev().filter(|&&other| other > zxid) {
            remove_if_exists(&self.dir.join(snapshot::file_name(*newer)))?;
            sync_dir(&self.dir)?;
            self.shared.count_fsync();
        }
        fs::rename(&tmp, &path)?;
        for older in others.iter().filter(|&&other| other < zxid) {
            remove_if_exists(&self.dir.join(snapshot::file_name(*older)))?;
        }
        sync_dir(&self.dir)?;
        self.shared.count_fsync();
        self.snapshots = vec![zxid];
        Ok(())
    }

    /// Reads the durable records after `zxid` from the segment files: the
    /// first one, then more while their payloads total at most `max_bytes`.
    fn read_after(&self, zxid: Zxid, max_bytes: usize) -> Result<Records, Error> {
        self.check_healthy()?;
        let log_start = self.log_start();
        if zxid < log_start {
            return Err(Error::JournalFailed {
                reason: format!(
                    "cannot read after zxid {zxid}: the log starts after {log_start} \
                     (this needs a SNAP)"
                ),
            });
        }
        let mut records = Vec::new();
        let mut total = 0usize;
        for segment in self.segments.iter().filter(|segment| segment.end > zxid) {
            let from = segment.frames.partition_point(|&(z, _)| z <= zxid);
            let Some(wanted) = segment.frames.get(from..).filter(|w| !w.is_empty()) else {
                continue;
            };
            let mut file = BufReader::new(File::open(&segment.path)?);
            let mut at = wanted.first().map_or(0, |&(_, offset)| offset);
            file.seek(SeekFrom::Start(at))?;
            for &(expected, offset) in wanted {
                let (frame_zxid, payload) = read_frame(&mut file, &segment.path, at)?;
                if frame_zxid != expected || at != offset {
                    return Err(Error::JournalCorrupt {
                        file: segment.path.clone(),
                        offset: at,
                        reason: format!(
                            "found zxid {frame_zxid} where zxid {expected} was logged at {offset}"
                        ),
                    });
                }
                if !records.is_empty() && total + payload.len() > max_bytes {
                    return Ok(records);
                }
                at += (FRAME_HEADER_LEN + payload.len()) as u64;
                total += payload.len();
                records.push((frame_zxid, payload));
            }
        }
        Ok(records)
    }

    /// The newest snapshot and every durable record after it, as recovery
    /// would find them now.
    fn load(&self) -> Result<Recovered, Error> {
        self.check_healthy()?;
        let snapshot = match self.snapshots.last() {
            Some(&zxid) => Some((
                zxid,
                snapshot::read(&self.dir.join(snapshot::file_name(zxid)), zxid)?,
            )),
            None => None,
        };
        let from = snapshot
            .as_ref()
            .map_or_else(|| self.log_start(), |(zxid, _)| *zxid);
        let txns = self.read_after(from, usize::MAX)?;
        Ok(Recovered { snapshot, txns })
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

/// Reads and verifies the frame at `at` (the reader's position) in `path`.
fn read_frame(file: &mut impl Read, path: &Path, at: u64) -> Result<(Zxid, Vec<u8>), Error> {
    let mut bytes = vec![0u8; FRAME_HEADER_LEN];
    file.read_exact(&mut bytes)?;
    let len = bytes
        .get(..4)
        .and_then(|raw| raw.try_into().ok())
        .map_or(0, u32::from_le_bytes) as usize;
    let corrupt = |reason: String| Error::JournalCorrupt {
        file: path.to_owned(),
        offset: at,
        reason,
    };
    if len > segment::MAX_PAYLOAD {
        return Err(corrupt(
            segment::FrameError::BadLength(len as u32).to_string(),
        ));
    }
    bytes.resize(FRAME_HEADER_LEN + len, 0);
    file.read_exact(bytes.get_mut(FRAME_HEADER_LEN..).unwrap_or_default())?;
    let frame = segment::decode_frame(&bytes, 0).map_err(|e| corrupt(e.to_string()))?;
    let payload = bytes.split_off(FRAME_HEADER_LEN);
    Ok((frame.zxid, payload))
}
