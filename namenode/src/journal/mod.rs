//! The namenode's journal: CRC-framed log segments written with group-commit
//! fsync, snapshots (checkpoints) with log truncation behind them, and exact
//! recovery.
//!
//! The journal knows only framed bytes keyed by [`Zxid`]: it never decodes a
//! `Txn`. The namespace task appends in zxid order and awaits durability
//! before it acknowledges anything; it must not touch the files itself.
//!
//! # Group commit
//!
//! ```text
//!  namespace task                     journal-writer thread (std::thread)
//!  --------------                     -----------------------------------
//!  append(z1, p1) --+                 loop {
//!  append(z2, p2) --+--> queue ----->   block for one command, then take what
//!  append(z3, p3) --+   (in call        else is queued (<= max_batch in all)
//!       |               order)          frame each record into one buffer
//!       |                               write_all(buffer)     -- one write
//!       |                               sync_data()           -- one fsync
//!       v                               ack every record of the batch  --+
//!  await receiver  <-------------------------------------------------------+
//!  (resolves only                      (appends queued during this fsync
//!   once durable)                       share the next one)
//!                                     }
//!  checkpoint(z, image) ----> queue:  commit what is staged, write the
//!                                     snapshot, roll the log, truncate
//!  truncate_after(z) -------> queue:  commit, then cut the log after z (TRUNC)
//!  install_snapshot(z, img) > queue:  commit, then replace everything (SNAP)
//!  read_after(z, max) ------> queue:  commit, then read frames > z from the
//!                                     segment files (DIFF)
//! ```
//!
//! After any write or fsync failure the journal is poisoned: the failed
//! batch and every later append or checkpoint fail with `JournalFailed`, so
//! an undurable record is never acknowledged. The namenode must stop.
//!
//! # Files
//!
//! All integers are little-endian. A directory fsync follows every file
//! creation, rename and deletion.
//!
//! ```text
//! log.<first zxid, 016x>        a segment; its first record has that zxid
//!   header (16 B)   "DFSJ" | u32 version=1 | u64 prev_zxid
//!   frame*          u32 payload_len | u32 crc32c | u64 zxid | payload
//!                   crc32c covers the zxid bytes, then the payload;
//!                   payload_len <= 64 MiB
//! snapshot.<zxid, 016x>         the image reflecting every txn <= zxid
//!   "DFSS" | u32 version=1 | u64 zxid | u64 image_len | u32 crc32c | image
//!                   crc32c covers the zxid and image_len bytes, then the image;
//!                   written as snapshot.<zxid>.tmp, fsynced, renamed
//! journal.lock                  flock'd while a journal has the directory open
//! seen_zxid                     a zxid known durable (see `marker`); a log
//!                               ending before it refuses to open
//! ```
//!
//! `prev_zxid` is the last zxid logged before the segment (0 for the first
//! segment ever), so recovery detects a missing segment or a log truncated
//! behind a snapshot it cannot read. A segment is opened by the first append
//! after `open`, a checkpoint, a truncation or a snapshot install, so a
//! crashed or cut tail is never appended to.
//!
//! # Recovery
//!
//! The newest snapshot that verifies is the base (an invalid newer one is
//! skipped with a warning), then every frame with a greater zxid is replayed,
//! in order, across segments. A bad frame at the end of the last segment
//! with no valid frame anywhere after it is a torn tail: it is cut off
//! (`set_len` + fsync, with a warning naming file and offset). Any other bad
//! frame or header, zxids that do not increase, and gaps fail with
//! `JournalCorrupt` naming the file and byte offset.
//!
//! # Truncation
//!
//! A checkpoint keeps the newest `snapshots_to_keep` snapshots and deletes
//! the segments wholly covered by the *oldest* of them, so the log needed to
//! fall back to an older snapshot is still there.
//!
//! # Zab synchronization
//!
//! The writer keeps every durable frame's zxid and offset, and publishes the
//! zxids with the log start (the oldest kept segment's `prev_zxid`, or the
//! last durable zxid when no segment is left) for [`Journal::log_view`].
//!
//! - TRUNC, [`Journal::truncate_after`]: the segments after the one holding
//!   `z` are deleted newest first (a directory fsync after each, so a crash
//!   leaves a prefix of the log), then that one is cut right after `z`'s
//!   frame (`set_len` + fsync). A `z` no frame carries (the newest snapshot's,
//!   or the log start) empties the log and keeps only that snapshot.
//! - DIFF, [`Journal::read_after`]: frames are read back from the segment
//!   files and verified, one page of at most `max_bytes` at a time.
//! - SNAP, [`Journal::install_snapshot`]: the image is fsynced as a tmp file,
//!   the segments and newer snapshots are deleted (each step leaves an older
//!   state of our own), then the snapshot is renamed into place and the older
//!   snapshots deleted.

mod marker;
mod recovery;
mod segment;
mod snapshot;
mod writer;

#[cfg(test)]
mod journal_test;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, mpsc};
use std::thread::JoinHandle;

use nix::fcntl::{Flock, FlockArg};
use tokio::sync::oneshot;
use tracing::{error, info};

use crate::error::Error;
use crate::metrics::JournalMetrics;
use crate::txn::Zxid;

use writer::{Command, Writer};

/// Name of the lock file that keeps a second journal out of the directory.
const LOCK_FILE: &str = "journal.lock";

/// Tuning for [`open`].
#[derive(Debug, Clone)]
pub(crate) struct JournalOptions {
    /// Most records (and checkpoints) written per fsync; default 1024, at least 1.
    pub(crate) max_batch: usize,
    /// Snapshots kept after a checkpoint; default 2, at least 1.
    pub(crate) snapshots_to_keep: usize,
    /// Start even when the log ends before the `seen_zxid` marker (the
    /// operator accepts the loss); default false.
    pub(crate) accept_shorter_log: bool,
    /// Where the writer records its group commits (fsync time, batch size).
    pub(crate) metrics: JournalMetrics,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            max_batch: 1024,
            snapshots_to_keep: 2,
            accept_shorter_log: false,
            metrics: JournalMetrics::default(),
        }
    }
}

/// What recovery found: the state to rebuild the namespace from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// The newest valid snapshot: the zxid it reflects and its image bytes.
    pub(crate) snapshot: Option<(Zxid, Vec<u8>)>,
    /// Every logged txn with a zxid above the snapshot's, ascending.
    pub(crate) txns: Vec<(Zxid, Vec<u8>)>,
}

/// A cheap-to-clone handle to the journal's writer thread.
///
/// Dropping the last handle lets the writer finish what is queued, then
/// waits for it to exit (at most one batch and its fsync).
#[derive(Debug, Clone)]
pub(crate) struct Journal {
    /// Shared by every clone.
    inner: Arc<Inner>,
}

/// The part of a [`Journal`] its clones share.
#[derive(Debug)]
struct Inner {
    /// The queue's sending end and the last zxid queued, locked together so
    /// the zxid check and the queue order agree.
    queue: Mutex<Queue>,
    /// State the writer publishes.
    shared: Arc<Shared>,
    /// The writer thread, joined on drop.
    thread: Option<JoinHandle<()>>,
}

/// The submitting side of the writer's queue.
#[derive(Debug)]
struct Queue {
    /// `None` only while [`Inner`] drops.
    ///
    /// Unbounded: `append` must stay synchronous and ordered, so it cannot
    /// wait for room. The namespace task bounds it by awaiting its appends.
    tx: Option<mpsc::Sender<Command>>,
    /// The last zxid accepted into the queue (or recovered).
    last_queued: Zxid,
}

/// State the writer thread publishes to the handles.
#[derive(Debug, Default)]
struct Shared {
    /// The last zxid made durable.
    last_zxid: AtomicU64,
    /// Why the journal failed, once it has.
    poisoned: OnceLock<String>,
    /// Every fsync the writer issued (files and directory).
    fsyncs: AtomicU64,
    /// Group commits, as metrics see them.
    metrics: JournalMetrics,
    /// The durable log's zxids, for [`Journal::log_view`].
    index: Mutex<LogIndex>,
    /// Fault injection and pacing for tests.
    #[cfg(test)]
    hooks: TestHooks,
}

impl Shared {
    /// Why the journal failed, if it has.
    fn poison_reason(&self) -> Option<String> {
        self.poisoned.get().cloned()
    }

    /// Records the first failure and returns the reason callers will see.
    fn poison(&self, reason: String) -> String {
        self.poisoned.get_or_init(|| reason).clone()
    }

    /// Counts one fsync.
    fn count_fsync(&self) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
    }

    /// Changes the published index under its lock.
    fn update_index(&self, change: impl FnOnce(&mut LogIndex)) {
        change(&mut self.index.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// The zxids of the durable log, as the writer publishes them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct LogIndex {
    /// The last zxid before the log: the oldest kept segment's `prev_zxid`,
    /// or the last durable zxid when no segment is left.
    log_start: Zxid,
    /// Every durable frame's zxid, ascending, all above `log_start`.
    zxids: Vec<Zxid>,
}

/// Opens (creating if needed) the journal directory, recovers it, and starts
/// the writer thread. Blocks on disk I/O: call it before serving, or from
/// `spawn_blocking`.
///
/// # Errors
/// `JournalCorrupt` when the log is damaged other than by a torn tail (see
/// the module docs), `JournalFailed` when another journal holds the
/// directory, `Io` when it cannot be read or repaired.
pub(crate) fn open(dir: &Path, options: JournalOptions) -> Result<(Journal, Recovered), Error> {
    fs::create_dir_all(dir)?;
    let lock = lock_dir(dir)?;
    let (recovered, state) = recovery::recover(dir)?;
    let marked = marker::check(dir, state.last_zxid, options.accept_shorter_log)?;
    info!(
        dir = %dir.display(),
        snapshot = %recovered.snapshot.as_ref().map_or(Zxid::ZERO, |(zxid, _)| *zxid),
        txns = recovered.txns.len(),
        last_zxid = %state.last_zxid,
        "journal recovered"
    );
    let last_zxid = state.last_zxid;
    let shared = Arc::new(Shared {
        last_zxid: AtomicU64::new(last_zxid.0),
        metrics: options.metrics.clone(),
        ..Shared::default()
    });
    let writer = Writer::new(
        dir,
        options.max_batch,
        options.snapshots_to_keep,
        state,
        marked,
        Arc::clone(&shared),
        lock,
    );
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("journal-writer".to_owned())
        .spawn(move || writer.run(rx))?;
    let journal = Journal {
        inner: Arc::new(Inner {
            queue: Mutex::new(Queue {
                tx: Some(tx),
                last_queued: last_zxid,
            }),
            shared,
            thread: Some(thread),
        }),
    };
    Ok((journal, recovered))
}

/// Takes the directory's lock file, so two journals never write one log.
fn lock_dir(dir: &Path) -> Result<Flock<File>, Error> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| Error::JournalFailed {
        reason: format!(
            "cannot lock {}: {errno} (is another namenode using it?)",
            path.display()
        ),
    })
}

/// Fsyncs a directory, making creations, renames and deletions in it durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Journal {
    /// Queues a record; the receiver resolves once it is fsynced.
    ///
    /// Group commit: every record queued while one fsync runs shares the
    /// next. Records reach the log in call order. Refused with
    /// `JournalFailed` (without poisoning) when `zxid` does not exceed every
    /// zxid appended before or the payload exceeds 64 MiB; fails with
    /// `JournalFailed` once the journal is poisoned. A receiver that errors
    /// (the writer is gone) means the record is not durable either.
    pub(crate) fn append(
        &self,
        zxid: Zxid,
        payload: Vec<u8>,
    ) -> oneshot::Receiver<Result<(), Error>> {
        let (done, receiver) = oneshot::channel();
        let mut queue = self.lock_queue();
        let refusal = if payload.len() > segment::MAX_PAYLOAD {
            Some(format!(
                "record {zxid} of {} bytes exceeds the {} byte limit",
                payload.len(),
                segment::MAX_PAYLOAD
            ))
        } else if zxid <= queue.last_queued {
            Some(format!("zxid {zxid} does not follow {}", queue.last_queued))
        } else {
            None
        };
        let command = Command::Append {
            zxid,
            payload,
            done,
        };
        match refusal {
            Some(reason) => command.refuse(reason),
            None => {
                if self.submit(&queue, command) {
                    queue.last_queued = zxid;
                }
            }
        }
        receiver
    }

    /// Writes a snapshot image that reflects every txn up to and including
    /// `zxid` (all already appended), durably, rolls the log to a new
    /// segment, then deletes the snapshots beyond `snapshots_to_keep` and the
    /// segments the oldest kept snapshot wholly covers. Runs in queue order
    /// with appends.
    ///
    /// Cancel-safe: once called, the checkpoint runs even if this future is dropped.
    ///
    /// # Errors
    /// `JournalFailed` when the journal is poisoned or fails now (it is then
    /// poisoned), or, without poisoning, when `zxid` is ahead of the log or
    /// older than the newest snapshot.
    pub(crate) async fn checkpoint(&self, zxid: Zxid, image: Vec<u8>) -> Result<(), Error> {
        let (done, receiver) = oneshot::channel();
        {
            let queue = self.lock_queue();
            self.submit(&queue, Command::Checkpoint { zxid, image, done });
        }
        receiver.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    /// Durably removes every record after `zxid` (a Zab TRUNC), in queue
    /// order with appends: a restart then recovers exactly up to `zxid`,
    /// [`Journal::last_zxid`] is `zxid`, and the next append (which must
    /// follow `zxid`) opens a new segment.
    ///
    /// Cancel-safe: once called, the truncation runs even if this future is dropped.
    ///
    /// # Errors
    /// `JournalFailed` when the journal is poisoned or fails now (it is then
    /// poisoned), or, without poisoning, when `zxid` is older than the newest
    /// snapshot (the history before it is gone: a SNAP case) or the log
    /// start, is after the last durable zxid, or is not in the log and is
    /// neither the newest snapshot's zxid nor the log start.
    pub(crate) async fn truncate_after(&self, zxid: Zxid) -> Result<(), Error> {
        let (done, receiver) = oneshot::channel();
        {
            let mut queue = self.lock_queue();
            // Lowered before the outcome is known: the writer re-checks every
            // append against what is durable, so a refused truncation cannot
            // let a stale append through.
            if self.submit(&queue, Command::TruncateAfter { zxid, done }) {
                queue.last_queued = queue.last_queued.min(zxid);
            }
        }
        receiver.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    /// Replaces the whole journal with the leader's snapshot (a Zab SNAP), in
    /// queue order with appends: the snapshot is made durable as a
    /// checkpoint's is, then every segment and every other snapshot is
    /// deleted, so a restart recovers this snapshot and an empty log.
    /// [`Journal::last_zxid`] is `zxid` afterwards; appends continue after it.
    ///
    /// Cancel-safe: once called, the install runs even if this future is dropped.
    ///
    /// # Errors
    /// `JournalFailed` when the journal is poisoned or fails now (it is then poisoned).
    pub(crate) async fn install_snapshot(&self, zxid: Zxid, image: Vec<u8>) -> Result<(), Error> {
        let (done, receiver) = oneshot::channel();
        {
            let mut queue = self.lock_queue();
            if self.submit(&queue, Command::InstallSnapshot { zxid, image, done }) {
                queue.last_queued = zxid;
            }
        }
        receiver.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    /// The durable records after `zxid`, ascending, read from the segment
    /// files (a Zab DIFF): the first one, then more while their payloads
    /// total at most `max_bytes`. Page by calling again after the last zxid
    /// returned; an empty answer means the log ends at or before `zxid`.
    ///
    /// Runs on the writer thread in queue order, after the appends queued
    /// before it are durable; appends queued meanwhile wait for the read.
    ///
    /// # Errors
    /// `JournalFailed` when `zxid` is older than the log start (a SNAP case)
    /// or the journal is poisoned; `JournalCorrupt` when a frame no longer
    /// verifies; `Io` when a segment cannot be read.
    pub(crate) async fn read_after(
        &self,
        zxid: Zxid,
        max_bytes: usize,
    ) -> Result<Vec<(Zxid, Vec<u8>)>, Error> {
        let (done, receiver) = oneshot::channel();
        {
            let queue = self.lock_queue();
            self.submit(
                &queue,
                Command::ReadAfter {
                    zxid,
                    max_bytes,
                    done,
                },
            );
        }
        receiver.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    /// What recovery would rebuild from now: the newest snapshot and every
    /// durable record after it (run in queue order, after the appends queued
    /// before it are durable). A namenode whose namespace ran ahead of its
    /// journal's agreed history (a TRUNC) rebuilds it from this.
    ///
    /// # Errors
    /// `JournalFailed` when the journal is poisoned; `SnapshotCorrupt`,
    /// `JournalCorrupt` or `Io` when the files no longer read back.
    pub(crate) async fn load(&self) -> Result<Recovered, Error> {
        let (done, receiver) = oneshot::channel();
        {
            let queue = self.lock_queue();
            self.submit(&queue, Command::Load { done });
        }
        receiver.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    /// Resolves once everything appended before the call is durable.
    ///
    /// # Errors
    /// `JournalFailed` when the journal is poisoned.
    pub(crate) async fn barrier(&self) -> Result<(), Error> {
        self.read_after(Zxid(u64::MAX), 0).await.map(drop)
    }

    /// The durable log for `quorum::sync::LogView`: the log start (the oldest
    /// kept segment's `prev_zxid`, or the last durable zxid when no segment
    /// is left) and every durable record's zxid, ascending. Copies the index
    /// (8 bytes a record); records still being appended are not in it, and
    /// the caller leaves out those not yet committed.
    pub(crate) fn log_view(&self) -> (Zxid, Vec<Zxid>) {
        let index = self
            .inner
            .shared
            .index
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (index.log_start, index.zxids.clone())
    }

    /// The last zxid made durable.
    pub(crate) fn last_zxid(&self) -> Zxid {
        Zxid(self.inner.shared.last_zxid.load(Ordering::Acquire))
    }

    /// Locks the queue; its state stays consistent even if a holder panicked.
    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.inner
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands a command to the writer, or refuses it when the journal is
    /// poisoned or the writer is gone. Returns whether it was queued.
    fn submit(&self, queue: &Queue, command: Command) -> bool {
        if let Some(reason) = self.inner.shared.poison_reason() {
            command.refuse(reason);
            return false;
        }
        match queue.tx.as_ref().map(|tx| tx.send(command)) {
            Some(Ok(())) => true,
            Some(Err(mpsc::SendError(command))) => {
                command.refuse(writer_gone_reason());
                false
            }
            None => false,
        }
    }
}

/// Why a command failed when the writer thread is no longer running.
fn writer_gone_reason() -> String {
    "the journal writer thread is gone".to_owned()
}

/// The error for a command the writer thread never answered.
fn writer_gone() -> Error {
    Error::JournalFailed {
        reason: writer_gone_reason(),
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let queue = self.queue.get_mut().unwrap_or_else(PoisonError::into_inner);
        // Closing the queue ends the writer's loop once it has drained it.
        queue.tx = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            error!("journal writer thread panicked");
        }
    }
}

/// Where a test makes the writer fail.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailPoint {
    /// Before the batch's `write_all`.
    Write,
    /// After the write, before its `sync_data`.
    Sync,
}

/// Test-only fault injection and pacing.
#[cfg(test)]
#[derive(Debug, Default)]
struct TestHooks {
    /// The next failure to inject, consumed when hit.
    fail_next: Mutex<Option<FailPoint>>,
    /// Held by a test to stop the writer before it drains the queue.
    gate: Mutex<()>,
}

#[cfg(test)]
impl TestHooks {
    /// Fails once at `point` if a test asked for it.
    fn fail_if(&self, point: FailPoint) -> io::Result<()> {
        let mut next = self
            .fail_next
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *next == Some(point) {
            *next = None;
            return Err(io::Error::other(format!("injected failure at {point:?}")));
        }
        Ok(())
    }

    /// Waits while a test holds the gate.
    fn wait_at_gate(&self) {
        drop(self.gate.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

#[cfg(test)]
impl Journal {
    /// Fsyncs issued so far (segment data, directories, snapshots).
    fn fsync_count(&self) -> u64 {
        self.inner.shared.fsyncs.load(Ordering::Relaxed)
    }

    /// Makes the writer fail once at `point`.
    fn fail_next(&self, point: FailPoint) {
        *self
            .inner
            .shared
            .hooks
            .fail_next
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(point);
    }

    /// Holds the writer after it takes its next command and before it drains
    /// the rest of the queue, until the guard drops.
    fn pause_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .shared
            .hooks
            .gate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
