//! The block scanner (HDFS's VolumeScanner): reads every finalized replica in
//! the background and checks it against its stored CRC32C chunk checksums, so
//! that a replica rotting on disk is reported and replaced before a reader
//! needs it, or before its last good copy goes too.
//!
//! ```text
//!   blocking thread, one per datanode
//!     every min(period, 10 min): store.replicas() ──► Schedule (last verified, per block)
//!     loop: Schedule::next_due ──► open_finalized + verify_all, 1 MiB slices
//!                                    │ after each slice: Throttle pause; stop at shutdown
//!                                    v
//!           ChecksumMismatch / CorruptReplica ──► ReportHub::corrupt ──► every namenode
//!     nothing due: sleep until something is (or shutdown)
//! ```
//!
//! It reads through the block store and reports through the [`ReportHub`],
//! as the block reader does; it never moves or deletes a replica (the
//! namenode has a corrupt one replaced, then deleted).
//!
//! # Priority scans
//!
//! A reader's report of a bad replica only makes the namenode suspect it;
//! the leader then sends `VerifyBlocks`, and [`verify_now`] checks each
//! named replica at once, outside the schedule and unthrottled (one replica
//! per command, asked for only by a reader of its file, once a minute at
//! most). Its verdict goes to every namenode: `corrupt` as above, or
//! `verified` (intact), which clears the suspicion. The datanode is the only
//! judge of its replicas.
//!
//! # When a replica is due
//!
//! Each replica is verified at most once per period (`scan_period_ms`). The
//! bookkeeping (when each replica was last verified) lives in memory only:
//!
//! - A replica found at start-up has never been verified by this process, so
//!   every (re)start begins with a pass over all of them, in block order,
//!   throttled as always. HDFS resumes a pass from a cursor it saves on disk;
//!   without one (a new volume) it starts a pass at once, which is what every
//!   start is here.
//! - A replica that appears later (finalized by a pipeline or a
//!   re-replication) is due one period after the scanner first sees it: it
//!   was just written, and the last datanode of its pipeline checked every
//!   chunk on the way in. One whose generation stamp or length changes
//!   (recovery) counts as new.
//! - After that, a replica is due one period after its last verification,
//!   the longest-unverified first.
//!
//! The store's replica list is re-read every `min(period, 10 min)`: a new
//! replica may be seen (and so be due) that much late, and a deleted one is
//! forgotten then.
//!
//! # Failures
//!
//! A checksum mismatch, or files that disagree with each other
//! (`CorruptReplica`), is logged at warn and reported corrupt to every
//! namenode; if the replica is still there a period later, it is verified
//! and reported again. A replica deleted or replaced before or while it is
//! read (not found, another generation stamp or length) is skipped quietly.
//! Any other error (I/O) is logged, the replica is tried again a period
//! later, and the scan goes on.
//!
//! # Pacing and shutdown
//!
//! The scanner reads 1 MiB slices and, after each, sleeps as long as it
//! takes to keep its reads at or below `scan_bytes_per_second`, so it never
//! starves the data path; time it falls behind (a busy disk) is not made up
//! with a burst. It sleeps on the runtime's timer and wakes at shutdown, so
//! shutdown waits for at most one slice.

use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroU64;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dfs_proto::ids::{BlockId, GenStamp};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::block_store::{self, BlockStore, ReplicaInfo};
use crate::metrics::{Events, FoundBy};
use crate::reports::ReportHub;

/// Longest time between two reads of the store's replica list.
const REFRESH_EVERY_MAX: Duration = Duration::from_secs(10 * 60);
/// Shorter pauses are carried over to the next slice (the throttle counts
/// every byte of its window, so nothing is lost); the timer's resolution is
/// 1 ms anyway.
const MIN_PAUSE: Duration = Duration::from_millis(10);

/// The block scanner's period and rate (`DatanodeConfig::scan_period_ms`,
/// `scan_bytes_per_second`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanSettings {
    /// Time between two verifications of one replica; positive.
    pub(crate) period: Duration,
    /// Bytes the scanner may read per second.
    pub(crate) bytes_per_second: NonZeroU64,
}

/// Verifies one block store's finalized replicas; runs on a blocking thread.
#[derive(Debug)]
pub(crate) struct BlockScanner {
    store: Arc<BlockStore>,
    reports: ReportHub,
    schedule: Schedule,
    throttle: Throttle,
    sleeper: Sleeper,
    /// Replicas and bytes verified, checksum errors found.
    events: Events,
}

impl BlockScanner {
    /// A scanner of `store` that reports corrupt replicas to `reports` and
    /// counts its progress in `events`; it sleeps on `runtime`'s timer and
    /// stops at `shutdown`.
    pub(crate) fn new(
        store: Arc<BlockStore>,
        reports: ReportHub,
        settings: ScanSettings,
        events: Events,
        runtime: Handle,
        shutdown: CancellationToken,
    ) -> Self {
        BlockScanner {
            store,
            reports,
            schedule: Schedule::new(settings.period),
            throttle: Throttle::new(settings.bytes_per_second, Instant::now()),
            sleeper: Sleeper { runtime, shutdown },
            events,
        }
    }

    /// Scans until shutdown: verifies whatever is due, then sleeps until
    /// something is. Blocks; run it on a blocking thread (it calls
    /// `Handle::block_on` to sleep).
    pub(crate) fn run(mut self) {
        let span = tracing::info_span!("block_scanner");
        let _entered = span.enter();
        tracing::info!(
            period_ms = self.schedule.period.as_millis(),
            bytes_per_second = self.throttle.bytes_per_second.get(),
            "block scanner started"
        );
        while self.scan_due().is_continue() {
            let idle = self.schedule.idle_for(Instant::now());
            if self.sleeper.sleep(idle).is_break() {
                break;
            }
        }
        tracing::info!("block scanner stopped");
    }

    /// Verifies every replica due now, re-reading the store's replica list
    /// first when that is due. `Break` at shutdown.
    fn scan_due(&mut self) -> ControlFlow<()> {
        let mut scanned = 0u64;
        loop {
            if self.sleeper.is_shutdown() {
                return ControlFlow::Break(());
            }
            let now = Instant::now();
            if self.schedule.is_refresh_due(now) {
                self.schedule.refresh(self.store.replicas(), now);
            }
            let Some(info) = self.schedule.next_due(now) else {
                break;
            };
            self.scan(info)?;
            scanned += 1;
        }
        if scanned > 0 {
            tracing::debug!(replicas = scanned, "scan pass done");
        }
        ControlFlow::Continue(())
    }

    /// Verifies one replica and records the outcome; `Break` at shutdown.
    fn scan(&mut self, info: ReplicaInfo) -> ControlFlow<()> {
        let mut reader = match self.store.open_finalized(info.block, info.gen_stamp) {
            Ok(reader) => reader,
            Err(e) => {
                // Opened under the store's lock: a corrupt verdict here is
                // about the replica the map lists now.
                self.record_failure(info, e);
                return ControlFlow::Continue(());
            }
        };
        let opened = reader.info();
        let (sleeper, throttle) = (&self.sleeper, &mut self.throttle);
        let verified =
            reader.verify_all(|bytes| sleeper.sleep(throttle.pause_after(bytes, Instant::now())));
        match verified {
            Ok(ControlFlow::Continue(())) => {
                tracing::debug!(block = %opened.block, gen_stamp = %opened.gen_stamp, length = opened.length, "replica verified");
                self.schedule.scanned(opened.block, Instant::now());
                self.events.scanned_replicas.inc();
                self.events.scanned_bytes.inc_by(opened.length);
            }
            Ok(ControlFlow::Break(())) => return ControlFlow::Break(()),
            // The open files outlive a delete, but a recovery rewrites them
            // in place: a failure then says nothing about what is stored now.
            Err(e) if self.store.finalized(opened.block) != Some(opened) => {
                tracing::debug!(block = %opened.block, gen_stamp = %opened.gen_stamp, error = %e, "replica replaced while scanned; skipped");
                self.schedule.forget(opened.block);
            }
            Err(e) => self.record_failure(opened, e),
        }
        ControlFlow::Continue(())
    }

    /// Logs a failed verification of `info`, reports it if it is corrupt,
    /// and tells the schedule when to try it again.
    fn record_failure(&mut self, info: ReplicaInfo, e: block_store::Error) {
        let failure = report_failure(&self.reports, info, e);
        count_failure(&self.events, failure);
        if failure == Failure::Gone {
            self.schedule.forget(info.block);
        } else {
            self.schedule.scanned(info.block, Instant::now());
        }
    }
}

/// What a failed verification says of the replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Deleted or replaced before it was read: nothing to say.
    Gone,
    /// Bad checksums or files that disagree: reported corrupt.
    Corrupt,
    /// Could not be read (I/O): no verdict.
    Unread,
}

/// Logs a failed verification of `info` and reports it if it is corrupt.
fn report_failure(reports: &ReportHub, info: ReplicaInfo, e: block_store::Error) -> Failure {
    let ReplicaInfo {
        block, gen_stamp, ..
    } = info;
    match e {
        block_store::Error::ReplicaNotFound { .. }
        | block_store::Error::GenStampMismatch { .. } => {
            tracing::debug!(%block, %gen_stamp, error = %e, "replica gone or replaced before its scan; skipped");
            Failure::Gone
        }
        block_store::Error::ChecksumMismatch { offset, .. } => {
            tracing::warn!(%block, %gen_stamp, offset, "block scanner found a checksum mismatch; replica reported corrupt");
            reports.corrupt(info);
            Failure::Corrupt
        }
        block_store::Error::CorruptReplica { reason, .. } => {
            tracing::warn!(%block, %gen_stamp, %reason, "block scanner found a corrupt replica; reported");
            reports.corrupt(info);
            Failure::Corrupt
        }
        e => {
            tracing::warn!(%block, %gen_stamp, error = %e, "block scanner could not verify a replica; trying again next period");
            Failure::Unread
        }
    }
}

/// A priority scan: verifies this datanode's replica of `block` at
/// `gen_stamp` now, because a reader reported it bad, and reports the
/// verdict to every namenode (`verified` or `corrupt`; nothing when the
/// replica is gone or unreadable). Blocks on disk reads: call it on a
/// blocking thread.
pub(crate) fn verify_now(
    store: &BlockStore,
    reports: &ReportHub,
    events: &Events,
    block: BlockId,
    gen_stamp: GenStamp,
) {
    let mut reader = match store.open_finalized(block, gen_stamp) {
        Ok(reader) => reader,
        Err(e) => {
            let info = ReplicaInfo {
                block,
                gen_stamp,
                length: 0,
            };
            count_failure(events, report_failure(reports, info, e));
            return;
        }
    };
    let opened = reader.info();
    match reader.verify_all(|_| ControlFlow::Continue(())) {
        Ok(_) => {
            tracing::info!(%block, %gen_stamp, length = opened.length, "replica a reader reported is intact");
            reports.verified(opened);
        }
        // Rewritten in place by a recovery meanwhile: no verdict on what is stored now.
        Err(e) if store.finalized(block) != Some(opened) => {
            tracing::debug!(%block, %gen_stamp, error = %e, "replica replaced while verified; skipped");
        }
        Err(e) => count_failure(events, report_failure(reports, opened, e)),
    }
}

/// Counts a corrupt verdict as a checksum error the scanner found.
fn count_failure(events: &Events, failure: Failure) {
    if failure == Failure::Corrupt {
        events
            .checksum_errors
            .get_or_create(&FoundBy::SCANNER)
            .inc();
    }
}

/// Sleeps a blocking thread on the runtime's timer, waking early at shutdown.
#[derive(Debug)]
struct Sleeper {
    runtime: Handle,
    shutdown: CancellationToken,
}

impl Sleeper {
    fn is_shutdown(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Sleeps `pause`; `Break` when shutdown comes first, or has come.
    fn sleep(&self, pause: Duration) -> ControlFlow<()> {
        if self.is_shutdown() {
            return ControlFlow::Break(());
        }
        if pause.is_zero() {
            return ControlFlow::Continue(());
        }
        self.runtime.block_on(async {
            // Both branches are cancel-safe: neither holds anything when dropped.
            tokio::select! {
                () = self.shutdown.cancelled() => ControlFlow::Break(()),
                () = tokio::time::sleep(pause) => ControlFlow::Continue(()),
            }
        })
    }
}

/// Paces reads to a byte rate: after `bytes` read since `start`, the reader
/// should be no earlier than `start + bytes / rate`. A reader that is later
/// than that (a slow disk, an idle spell) starts a new window instead of
/// banking the slack, so it never bursts above the rate to catch up.
#[derive(Debug)]
struct Throttle {
    bytes_per_second: NonZeroU64,
    start: Instant,
    bytes: u64,
}

impl Throttle {
    fn new(bytes_per_second: NonZeroU64, start: Instant) -> Self {
        Throttle {
            bytes_per_second,
            start,
            bytes: 0,
        }
    }

    /// Counts `bytes` more read and returns how long to pause at `now` to
    /// keep to the rate (zero for a pause shorter than [`MIN_PAUSE`], which
    /// a later one makes up for).
    fn pause_after(&mut self, bytes: u64, now: Instant) -> Duration {
        self.bytes = self.bytes.saturating_add(bytes);
        let pause = pause_for(
            self.bytes,
            self.bytes_per_second,
            now.saturating_duration_since(self.start),
        );
        if pause.is_zero() {
            self.start = now;
            self.bytes = 0;
        }
        if pause < MIN_PAUSE {
            Duration::ZERO
        } else {
            pause
        }
    }
}

/// How long a reader that read `bytes` in `elapsed` must pause to average
/// at most `bytes_per_second`.
fn pause_for(bytes: u64, bytes_per_second: NonZeroU64, elapsed: Duration) -> Duration {
    time_to_read(bytes, bytes_per_second).saturating_sub(elapsed)
}

/// The time `bytes` take at `bytes_per_second`.
fn time_to_read(bytes: u64, bytes_per_second: NonZeroU64) -> Duration {
    let rate = bytes_per_second.get();
    let nanos = u128::from(bytes % rate) * 1_000_000_000 / u128::from(rate);
    // bytes % rate < rate, so nanos < 10^9 and fits.
    Duration::new(bytes / rate, u32::try_from(nanos).unwrap_or(999_999_999))
}

/// When a tracked replica was last verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verified {
    /// Found at start-up: nothing is known of it, so it is due at once.
    /// Orders before every `At`.
    Never,
    /// Verified then, or first seen then when it appeared after start-up.
    At(Instant),
}

#[derive(Debug, Clone, Copy)]
struct Tracked {
    info: ReplicaInfo,
    verified: Verified,
}

/// Which replica is due for verification next: pure bookkeeping, with the
/// time passed in.
#[derive(Debug)]
struct Schedule {
    period: Duration,
    refresh_every: Duration,
    tracked: HashMap<BlockId, Tracked>,
    /// The tracked replicas by last verification, never-verified first.
    queue: BTreeSet<(Verified, BlockId)>,
    /// When the replica list was last read; `None` before the first read.
    refreshed_at: Option<Instant>,
}

impl Schedule {
    fn new(period: Duration) -> Self {
        Schedule {
            period,
            refresh_every: period.min(REFRESH_EVERY_MAX),
            tracked: HashMap::new(),
            queue: BTreeSet::new(),
            refreshed_at: None,
        }
    }

    fn is_refresh_due(&self, now: Instant) -> bool {
        self.refreshed_at
            .is_none_or(|at| at.checked_add(self.refresh_every).is_some_and(|t| t <= now))
    }

    /// Takes the store's current replica list: the first list's replicas
    /// were never verified; a later list's new (or changed) replicas count
    /// as verified `now`; replicas missing from it are forgotten.
    fn refresh(&mut self, listed: Vec<ReplicaInfo>, now: Instant) {
        let is_first = self.refreshed_at.is_none();
        let mut old = std::mem::take(&mut self.tracked);
        self.queue.clear();
        for info in listed {
            let verified = match old.remove(&info.block) {
                Some(t) if t.info == info => t.verified,
                _ if is_first => Verified::Never,
                _ => Verified::At(now),
            };
            self.tracked.insert(info.block, Tracked { info, verified });
            self.queue.insert((verified, info.block));
        }
        self.refreshed_at = Some(now);
    }

    /// When a replica verified at `verified` is due again; `None`: never
    /// (a period too long for the clock).
    fn due_at(&self, verified: Verified, now: Instant) -> Option<Instant> {
        match verified {
            Verified::Never => Some(now),
            Verified::At(at) => at.checked_add(self.period),
        }
    }

    /// The replica to verify at `now`, if one is due: never-verified ones
    /// first (in block order), then the one verified longest ago.
    fn next_due(&self, now: Instant) -> Option<ReplicaInfo> {
        let &(verified, block) = self.queue.first()?;
        let is_due = self.due_at(verified, now).is_some_and(|due| due <= now);
        is_due
            .then(|| self.tracked.get(&block).map(|t| t.info))
            .flatten()
    }

    /// Records that `block` was scanned at `now` (verified, reported
    /// corrupt, or failed): it is due again one period later.
    fn scanned(&mut self, block: BlockId, now: Instant) {
        if let Some(t) = self.tracked.get_mut(&block) {
            self.queue.remove(&(t.verified, block));
            t.verified = Verified::At(now);
            self.queue.insert((t.verified, block));
        }
    }

    /// Stops tracking `block` (deleted or replaced); if a replica of it is
    /// listed again, the next refresh tracks it as new.
    fn forget(&mut self, block: BlockId) {
        if let Some(t) = self.tracked.remove(&block) {
            self.queue.remove(&(t.verified, block));
        }
    }

    /// How long nothing is to be done after `now`: until the next replica
    /// is due or the list is to be re-read, whichever comes first.
    fn idle_for(&self, now: Instant) -> Duration {
        let refresh = match self.refreshed_at {
            None => Some(now),
            Some(at) => at.checked_add(self.refresh_every),
        };
        let due = self
            .queue
            .first()
            .and_then(|&(verified, _)| self.due_at(verified, now));
        [refresh, due]
            .into_iter()
            .flatten()
            .min()
            .map_or(self.refresh_every, |t| t.saturating_duration_since(now))
    }
}

#[cfg(test)]
#[path = "scanner_test.rs"]
mod tests;
