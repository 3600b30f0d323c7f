//! Block scanner tests: the throttle and the schedule as pure functions of
//! the time passed in, then the scanner over a real store in a temp dir.

use dfs_proto::checksum::chunk_checksums;
use dfs_proto::ids::GenStamp;
use tempfile::TempDir;

use super::*;
use crate::reports::ReportQueue;
use crate::test_files::{find_file, flip_byte};

const MIB: u64 = 1024 * 1024;
const GS: GenStamp = GenStamp(1001);
const HOUR: Duration = Duration::from_secs(3600);

fn rate(bytes_per_second: u64) -> NonZeroU64 {
    NonZeroU64::new(bytes_per_second).expect("positive rate")
}

fn info(block: u64, gs: u64) -> ReplicaInfo {
    ReplicaInfo {
        block: BlockId(block),
        gen_stamp: GenStamp(gs),
        length: 4096,
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The blocks due at `now`, in the order the scanner takes them, each marked scanned.
fn drain_due(schedule: &mut Schedule, now: Instant) -> Vec<u64> {
    let mut due = Vec::new();
    while let Some(info) = schedule.next_due(now) {
        due.push(info.block.0);
        schedule.scanned(info.block, now);
    }
    due
}

#[test]
fn time_to_read_is_bytes_over_the_rate() {
    assert_eq!(time_to_read(MIB, rate(MIB)), secs(1));
    assert_eq!(time_to_read(MIB / 2, rate(MIB)), Duration::from_millis(500));
    assert_eq!(time_to_read(3, rate(2)), Duration::from_millis(1500));
    assert_eq!(time_to_read(0, rate(1)), Duration::ZERO);
    assert_eq!(time_to_read(u64::MAX, rate(1)), secs(u64::MAX));
    assert_eq!(
        time_to_read(u64::MAX, rate(u64::MAX)),
        secs(1),
        "no overflow at the extremes"
    );
}

#[test]
fn the_throttle_pauses_until_the_reads_since_the_start_average_the_rate() {
    let t0 = Instant::now();
    let mut throttle = Throttle::new(rate(MIB), t0);
    assert_eq!(
        throttle.pause_after(MIB, t0 + Duration::from_millis(100)),
        Duration::from_millis(900)
    );
    // It slept 900 ms, then took 10 ms to read the next slice.
    assert_eq!(
        throttle.pause_after(MIB, t0 + Duration::from_millis(1010)),
        Duration::from_millis(990)
    );
    // Slow reads (a busy disk) owe no pause.
    assert_eq!(throttle.pause_after(MIB, t0 + secs(5)), Duration::ZERO);
    assert_eq!(pause_for(3 * MIB, rate(MIB), secs(5)), Duration::ZERO);
}

#[test]
fn a_throttle_that_fell_behind_does_not_burst_to_catch_up() {
    let t0 = Instant::now();
    let mut throttle = Throttle::new(rate(MIB), t0);
    // An hour idle (or on a slow disk) banks nothing.
    assert_eq!(throttle.pause_after(MIB, t0 + HOUR), Duration::ZERO);
    assert_eq!(
        throttle.pause_after(MIB, t0 + HOUR + Duration::from_millis(10)),
        Duration::from_millis(990)
    );
}

#[test]
fn pauses_too_short_for_the_timer_are_carried_over_not_lost() {
    let t0 = Instant::now();
    let mut throttle = Throttle::new(rate(MIB), t0);
    // 4 KiB at 1 MiB/s: 3.9 ms each.
    assert_eq!(throttle.pause_after(4096, t0), Duration::ZERO);
    assert_eq!(throttle.pause_after(4096, t0), Duration::ZERO);
    let owed = throttle.pause_after(4096, t0);
    assert_eq!(owed, time_to_read(3 * 4096, rate(MIB)));
    assert!(owed >= MIN_PAUSE);
}

#[test]
fn a_rate_far_above_the_disk_never_pauses() {
    let t0 = Instant::now();
    let mut throttle = Throttle::new(rate(u64::MAX), t0);
    for _ in 0..100 {
        assert_eq!(throttle.pause_after(MIB, t0), Duration::ZERO);
    }
}

#[test]
fn replicas_found_at_start_up_are_due_at_once_in_block_order() {
    let t0 = Instant::now();
    let mut schedule = Schedule::new(HOUR);
    assert!(schedule.is_refresh_due(t0));
    assert_eq!(
        schedule.next_due(t0),
        None,
        "nothing known before the first list"
    );
    schedule.refresh(vec![info(30, 1), info(10, 1), info(20, 1)], t0);
    assert_eq!(schedule.next_due(t0), Some(info(10, 1)));
    assert_eq!(drain_due(&mut schedule, t0), vec![10, 20, 30]);
    assert_eq!(schedule.next_due(t0), None);
}

#[test]
fn a_verified_replica_is_due_again_one_period_later_and_not_before() {
    let t0 = Instant::now();
    let mut schedule = Schedule::new(HOUR);
    schedule.refresh(vec![info(1, 1)], t0);
    assert_eq!(drain_due(&mut schedule, t0 + secs(5)), vec![1]);
    assert_eq!(schedule.next_due(t0 + secs(5) + HOUR - secs(1)), None);
    assert_eq!(schedule.next_due(t0 + secs(5) + HOUR), Some(info(1, 1)));
    // A refresh that lists it unchanged keeps its last verification.
    schedule.refresh(vec![info(1, 1)], t0 + secs(600));
    assert_eq!(schedule.next_due(t0 + secs(5) + HOUR - secs(1)), None);
    assert_eq!(schedule.next_due(t0 + secs(5) + HOUR), Some(info(1, 1)));
}

#[test]
fn a_replica_that_appears_later_is_due_one_period_after_it_is_first_seen() {
    let t0 = Instant::now();
    let mut schedule = Schedule::new(HOUR);
    schedule.refresh(vec![info(1, 1)], t0);
    assert_eq!(drain_due(&mut schedule, t0), vec![1]);
    let seen = t0 + secs(600);
    schedule.refresh(vec![info(1, 1), info(2, 1)], seen);
    assert_eq!(schedule.next_due(seen), None, "just written, not due yet");
    assert_eq!(drain_due(&mut schedule, t0 + HOUR), vec![1]);
    assert_eq!(drain_due(&mut schedule, seen + HOUR), vec![2]);
}

#[test]
fn a_changed_replica_counts_as_new_and_a_missing_one_is_forgotten() {
    let t0 = Instant::now();
    let mut schedule = Schedule::new(HOUR);
    schedule.refresh(vec![info(1, 1), info(2, 1), info(3, 1)], t0);
    assert_eq!(drain_due(&mut schedule, t0), vec![1, 2, 3]);
    let later = t0 + secs(1800);
    let longer = ReplicaInfo {
        length: 9000,
        ..info(3, 1)
    };
    // 1 got a new gen stamp, 2 was deleted, 3 was cut to another length.
    schedule.refresh(vec![info(1, 2), longer], later);
    assert_eq!(drain_due(&mut schedule, t0 + HOUR), Vec::<u64>::new());
    assert_eq!(schedule.next_due(later + HOUR), Some(info(1, 2)));
    assert_eq!(drain_due(&mut schedule, later + HOUR), vec![1, 3]);
    assert!(!schedule.tracked.contains_key(&BlockId(2)));
}

#[test]
fn the_replica_verified_longest_ago_goes_first() {
    let t0 = Instant::now();
    let mut schedule = Schedule::new(HOUR);
    schedule.refresh(vec![info(1, 1), info(2, 1), info(3, 1)], t0);
    schedule.scanned(BlockId(3), t0);
    schedule.scanned(BlockId(1), t0 + secs(1));
    schedule.scanned(BlockId(2), t0 + secs(2));
    assert_eq!(drain_due(&mut schedule, t0 + 2 * HOUR), vec![3, 1, 2]);
}

#[test]
fn a_forgotten_replica_comes_back_as_new_at_the_next_refresh() {
    let t0 = Instant::now();
    let mut schedule = Schedule::new(HOUR);
    schedule.refresh(vec![info(1, 1)], t0);
    schedule.forget(BlockId(1));
    assert_eq!(schedule.next_due(t0), None);
    schedule.refresh(vec![info(1, 1)], t0 + secs(600));
    assert_eq!(schedule.next_due(t0 + HOUR), None);
    assert_eq!(schedule.next_due(t0 + secs(600) + HOUR), Some(info(1, 1)));
}

#[test]
fn the_list_is_reread_every_period_but_at_least_every_ten_minutes() {
    let t0 = Instant::now();
    let mut short = Schedule::new(secs(2));
    short.refresh(Vec::new(), t0);
    assert!(!short.is_refresh_due(t0 + Duration::from_millis(1999)));
    assert!(short.is_refresh_due(t0 + secs(2)));
    let mut long = Schedule::new(504 * HOUR);
    long.refresh(Vec::new(), t0);
    assert!(!long.is_refresh_due(t0 + secs(599)));
    assert!(long.is_refresh_due(t0 + secs(600)));
}

#[test]
fn idle_time_runs_to_the_next_due_replica_or_the_next_refresh() {
    let t0 = Instant::now();
    let mut empty = Schedule::new(secs(60));
    assert_eq!(empty.idle_for(t0), Duration::ZERO, "the first list is due");
    empty.refresh(Vec::new(), t0);
    assert_eq!(empty.idle_for(t0), secs(60), "nothing tracked: the refresh");

    let mut schedule = Schedule::new(secs(60));
    schedule.refresh(vec![info(1, 1)], t0);
    assert_eq!(schedule.idle_for(t0), Duration::ZERO, "never verified");
    schedule.scanned(BlockId(1), t0 + secs(30));
    assert_eq!(schedule.idle_for(t0 + secs(50)), secs(10), "refresh at 60");
    schedule.refreshed_at = Some(t0 + secs(40));
    assert_eq!(schedule.idle_for(t0 + secs(50)), secs(40), "due at 90");
    assert_eq!(schedule.idle_for(t0 + secs(500)), Duration::ZERO, "overdue");
}

#[test]
fn a_period_too_long_for_the_clock_never_comes_due() {
    let t0 = Instant::now();
    let mut schedule = Schedule::new(Duration::MAX);
    schedule.refresh(vec![info(1, 1)], t0);
    assert_eq!(drain_due(&mut schedule, t0), vec![1]);
    assert_eq!(schedule.next_due(t0 + 1000 * HOUR), None);
    assert_eq!(schedule.idle_for(t0), REFRESH_EVERY_MAX);
}

// ---- the scanner over a real store ----

/// Bytes that differ from chunk to chunk.
fn pattern(len: u64, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761).rotate_right(13) as u8) ^ seed)
        .collect()
}

fn write_replica(store: &BlockStore, block: BlockId, data: &[u8]) -> ReplicaInfo {
    let mut w = store.create_rbw(block, GS).expect("create rbw");
    for packet in data.chunks(64 * 1024) {
        let offset = w.len();
        w.write_packet(offset, packet, &chunk_checksums(packet), true)
            .expect("write packet");
    }
    store.finalize(w).expect("finalize")
}

/// A scanner of a fresh store in a temp dir, with the queue of its one namenode.
fn scanner(settings: ScanSettings) -> (TempDir, BlockScanner, Arc<ReportQueue>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _) = BlockStore::open(dir.path()).expect("open store");
    let (hub, mut queues) = ReportHub::new(1);
    let scanner = BlockScanner::new(
        Arc::new(store),
        hub,
        settings,
        crate::metrics::Events::default(),
        Handle::current(),
        CancellationToken::new(),
    );
    (dir, scanner, queues.remove(0))
}

/// Runs one `scan_due` on a blocking thread, as the datanode does.
async fn scan_due(mut scanner: BlockScanner) -> (BlockScanner, ControlFlow<()>) {
    tokio::task::spawn_blocking(move || {
        let flow = scanner.scan_due();
        (scanner, flow)
    })
    .await
    .expect("scan task")
}

#[tokio::test]
async fn one_pass_reports_exactly_the_flipped_replica_and_leaves_the_good_one() {
    let (dir, scanner, queue) = scanner(ScanSettings {
        period: HOUR,
        bytes_per_second: rate(u64::MAX),
    });
    let good = write_replica(&scanner.store, BlockId(1), &pattern(MIB + 3000, 1));
    let bad = write_replica(&scanner.store, BlockId(2), &pattern(MIB + 3000, 2));
    let file = find_file(dir.path(), &format!("blk_{}", bad.block.0)).expect("block file");
    flip_byte(&file, MIB + 100);

    let (scanner, flow) = scan_due(scanner).await;
    assert_eq!(flow, ControlFlow::Continue(()));
    let reported = queue.take();
    assert_eq!(
        reported.corrupt.into_values().collect::<Vec<_>>(),
        vec![bad],
        "only the flipped replica, with its gen stamp"
    );
    assert!(reported.changes.is_empty(), "{:?}", reported.changes);
    assert_eq!(
        scanner.store.replicas().len(),
        2,
        "the scanner reports, it deletes nothing"
    );
    for block in [good.block, bad.block] {
        assert!(
            matches!(scanner.schedule.tracked[&block].verified, Verified::At(_)),
            "{block} scanned"
        );
    }

    // Both were scanned: nothing is due again within the period.
    let (_scanner, flow) = scan_due(scanner).await;
    assert_eq!(flow, ControlFlow::Continue(()));
    assert!(queue.take().is_empty());
}

#[tokio::test]
async fn a_replica_deleted_before_its_scan_is_skipped_quietly() {
    let (_dir, mut scanner, queue) = scanner(ScanSettings {
        period: HOUR,
        bytes_per_second: rate(u64::MAX),
    });
    let gone = write_replica(&scanner.store, BlockId(1), &pattern(5000, 1));
    let kept = write_replica(&scanner.store, BlockId(2), &pattern(5000, 2));
    scanner
        .schedule
        .refresh(scanner.store.replicas(), Instant::now());
    scanner.store.delete(gone.block, None).expect("delete");

    let (scanner, flow) = scan_due(scanner).await;
    assert_eq!(flow, ControlFlow::Continue(()));
    assert!(queue.take().is_empty(), "a deleted replica is not corrupt");
    assert!(!scanner.schedule.tracked.contains_key(&gone.block));
    assert!(matches!(
        scanner.schedule.tracked[&kept.block].verified,
        Verified::At(_)
    ));
}

#[tokio::test]
async fn shutdown_stops_a_throttled_scan_within_a_slice() {
    let (_dir, scanner, queue) = scanner(ScanSettings {
        period: HOUR,
        bytes_per_second: rate(MIB),
    });
    // Four seconds of reading at 1 MiB/s.
    let block = write_replica(&scanner.store, BlockId(1), &pattern(4 * MIB, 1)).block;
    let shutdown = scanner.sleeper.shutdown.clone();
    let scanning = tokio::spawn(scan_due(scanner));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = Instant::now();
    shutdown.cancel();
    let (scanner, flow) = tokio::time::timeout(secs(2), scanning)
        .await
        .expect("the scan stops promptly")
        .expect("scan task");
    assert!(asked.elapsed() < secs(1), "{:?}", asked.elapsed());
    assert_eq!(flow, ControlFlow::Break(()));
    assert_eq!(
        scanner.schedule.tracked[&block].verified,
        Verified::Never,
        "stopped mid-replica, in a throttle pause"
    );
    assert!(queue.take().is_empty());
}

#[tokio::test]
async fn shutdown_wakes_an_idle_scanner() {
    let (_dir, scanner, _queue) = scanner(ScanSettings {
        period: HOUR,
        bytes_per_second: rate(MIB),
    });
    let shutdown = scanner.sleeper.shutdown.clone();
    let running = tokio::task::spawn_blocking(move || scanner.run());
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown.cancel();
    tokio::time::timeout(secs(1), running)
        .await
        .expect("the scanner stops promptly")
        .expect("scan task");
}

#[test]
fn a_priority_scan_reports_its_verdict_on_exactly_the_replica_asked_for() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _) = BlockStore::open(dir.path()).expect("open store");
    let (hub, queues) = ReportHub::new(2);
    let good = write_replica(&store, BlockId(1), &pattern(MIB + 3000, 1));
    let bad = write_replica(&store, BlockId(2), &pattern(MIB + 3000, 2));
    let file = find_file(dir.path(), &format!("blk_{}", bad.block.0)).expect("block file");
    flip_byte(&file, MIB + 100);
    let events = crate::metrics::Events::default();

    verify_now(&store, &hub, &events, good.block, GS);
    verify_now(&store, &hub, &events, bad.block, GS);
    // Another stamp, or no replica at all: no verdict.
    verify_now(&store, &hub, &events, good.block, GenStamp(GS.0 + 1));
    verify_now(&store, &hub, &events, BlockId(3), GS);
    for queue in &queues {
        let reported = queue.take();
        assert_eq!(
            reported.verified.into_values().collect::<Vec<_>>(),
            vec![good]
        );
        assert_eq!(
            reported.corrupt.into_values().collect::<Vec<_>>(),
            vec![bad]
        );
        assert!(reported.changes.is_empty());
    }
    assert_eq!(store.replicas().len(), 2, "it deletes nothing");
    let found = events
        .checksum_errors
        .get_or_create(&crate::metrics::FoundBy::SCANNER)
        .get();
    assert_eq!(found, 1, "the bad replica counts as one checksum error");
}
