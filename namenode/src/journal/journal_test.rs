//! Journal behaviour through its API and the files it leaves: round trips,
//! group commit, torn tails, corruption, checkpoints, truncation, poisoning.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::segment::{self, FRAME_HEADER_LEN, HEADER_LEN};
use super::*;
use crate::txn::Epoch;

/// Shorthand for a zxid.
fn z(n: u64) -> Zxid {
    Zxid(n)
}

/// A payload whose length and bytes depend on the zxid.
fn payload(n: u64) -> Vec<u8> {
    format!("txn-{n}-{}", "x".repeat((n % 7) as usize)).into_bytes()
}

/// The records `append_all` writes for `range`.
fn records(range: std::ops::RangeInclusive<u64>) -> Vec<(Zxid, Vec<u8>)> {
    range.map(|n| (z(n), payload(n))).collect()
}

/// Opens a journal that must recover cleanly.
fn open_with(dir: &Path, options: JournalOptions) -> (Journal, Recovered) {
    open(dir, options).unwrap()
}

/// Opens a journal with default options that must recover cleanly.
fn open_default(dir: &Path) -> (Journal, Recovered) {
    open_with(dir, JournalOptions::default())
}

/// Appends `payload(n)` for every `n`, then awaits durability of all.
async fn append_all(journal: &Journal, range: std::ops::RangeInclusive<u64>) {
    let receivers: Vec<_> = range.map(|n| journal.append(z(n), payload(n))).collect();
    for receiver in receivers {
        receiver.await.unwrap().unwrap();
    }
}

/// Journal file names in `dir`, sorted, without the lock file and the marker.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != LOCK_FILE && name != marker::FILE)
        .collect();
    names.sort();
    names
}

/// Where the segment starting at `first` lives.
fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(segment::file_name(z(first)))
}

/// Where the snapshot of `zxid` lives.
fn snapshot_path(dir: &Path, zxid: u64) -> PathBuf {
    dir.join(snapshot::file_name(z(zxid)))
}

/// Byte offset of the frame for `zxid` in a segment that starts at `first`.
fn frame_offset(first: u64, zxid: u64) -> usize {
    HEADER_LEN
        + (first..zxid)
            .map(|n| FRAME_HEADER_LEN + payload(n).len())
            .sum::<usize>()
}

/// Damages one byte of a file in place.
fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

/// Writes a segment file by hand.
fn write_segment(dir: &Path, first: u64, prev: u64, zxids: &[u64]) -> PathBuf {
    let mut bytes = Vec::new();
    segment::encode_header(&mut bytes, z(prev));
    for n in zxids {
        segment::encode_frame(&mut bytes, z(*n), &payload(*n));
    }
    let path = segment_path(dir, first);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Opens `dir` expecting `JournalCorrupt`; returns its file, offset and reason.
fn expect_corrupt(dir: &Path) -> (PathBuf, u64, String) {
    match open(dir, JournalOptions::default()) {
        Err(Error::JournalCorrupt {
            file,
            offset,
            reason,
        }) => (file, offset, reason),
        other => panic!("expected JournalCorrupt, got {other:?}"),
    }
}

/// Whether a journal call failed with `JournalFailed`.
fn is_journal_failed(result: Result<(), Error>) -> bool {
    matches!(result, Err(Error::JournalFailed { .. }))
}

#[tokio::test]
async fn a_fresh_directory_recovers_nothing() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("journal");
    let (journal, recovered) = open_default(&dir);
    assert_eq!(recovered.snapshot, None);
    assert!(recovered.txns.is_empty());
    assert_eq!(journal.last_zxid(), Zxid::ZERO);
    assert!(files(&dir).is_empty(), "no segment before the first append");
}

#[tokio::test]
async fn many_records_round_trip_across_reopens_and_epochs() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let first_epoch: Vec<u64> = (1..=600).map(|c| Zxid::new(Epoch(1), c).0).collect();
    let second_epoch: Vec<u64> = (1..=400).map(|c| Zxid::new(Epoch(2), c).0).collect();
    {
        let (journal, _) = open_default(dir);
        let receivers: Vec<_> = first_epoch
            .iter()
            .map(|n| journal.append(z(*n), payload(*n)))
            .collect();
        for receiver in receivers {
            receiver.await.unwrap().unwrap();
        }
        assert_eq!(journal.last_zxid(), z(*first_epoch.last().unwrap()));
    }
    {
        let (journal, recovered) = open_default(dir);
        assert_eq!(recovered.txns.len(), 600);
        for n in &second_epoch {
            journal.append(z(*n), payload(*n)).await.unwrap().unwrap();
        }
    }
    let (journal, recovered) = open_default(dir);
    let expected: Vec<(Zxid, Vec<u8>)> = first_epoch
        .iter()
        .chain(&second_epoch)
        .map(|n| (z(*n), payload(*n)))
        .collect();
    assert_eq!(recovered.snapshot, None);
    assert_eq!(recovered.txns, expected);
    assert_eq!(journal.last_zxid(), z(*second_epoch.last().unwrap()));
    assert_eq!(
        files(dir),
        vec![
            segment::file_name(z(first_epoch[0])),
            segment::file_name(z(second_epoch[0])),
        ],
        "each open starts a new segment"
    );
}

#[tokio::test]
async fn appends_queued_during_one_fsync_share_the_next() {
    let tmp = TempDir::new().unwrap();
    let (journal, _) = open_default(tmp.path());
    let receivers = {
        let _paused = journal.pause_writer();
        (1..=1000)
            .map(|n| journal.append(z(n), payload(n)))
            .collect::<Vec<_>>()
    };
    for receiver in receivers {
        receiver.await.unwrap().unwrap();
    }
    // One batch: its data fsync plus the directory fsync for the new segment.
    assert_eq!(journal.fsync_count(), 2);
    assert_eq!(journal.last_zxid(), z(1000));
}

#[tokio::test]
async fn max_batch_caps_the_records_per_fsync() {
    let tmp = TempDir::new().unwrap();
    let options = JournalOptions {
        max_batch: 100,
        ..JournalOptions::default()
    };
    let (journal, _) = open_with(tmp.path(), options);
    let receivers = {
        let _paused = journal.pause_writer();
        (1..=1000)
            .map(|n| journal.append(z(n), payload(n)))
            .collect::<Vec<_>>()
    };
    for receiver in receivers {
        receiver.await.unwrap().unwrap();
    }
    assert_eq!(journal.fsync_count(), 10 + 1);
}

#[tokio::test]
async fn unpaced_appends_all_complete_and_survive_reopen() {
    let tmp = TempDir::new().unwrap();
    let (journal, _) = open_default(tmp.path());
    append_all(&journal, 1..=1000).await;
    assert_eq!(journal.last_zxid(), z(1000));
    drop(journal);
    assert_eq!(open_default(tmp.path()).1.txns, records(1..=1000));
}

#[tokio::test]
async fn a_non_increasing_zxid_is_refused_without_poisoning() {
    let tmp = TempDir::new().unwrap();
    let (journal, _) = open_default(tmp.path());
    append_all(&journal, 5..=5).await;
    assert!(is_journal_failed(
        journal.append(z(5), payload(5)).await.unwrap()
    ));
    assert!(is_journal_failed(
        journal.append(z(3), payload(3)).await.unwrap()
    ));
    append_all(&journal, 6..=6).await;
    drop(journal);

    let (journal, recovered) = open_default(tmp.path());
    assert_eq!(recovered.txns, records(5..=6));
    assert!(
        is_journal_failed(journal.append(z(6), payload(6)).await.unwrap()),
        "the recovered last zxid bounds new appends"
    );
}

#[tokio::test]
async fn an_oversized_record_is_refused() {
    let tmp = TempDir::new().unwrap();
    let (journal, _) = open_default(tmp.path());
    let huge = vec![0; segment::MAX_PAYLOAD + 1];
    assert!(is_journal_failed(journal.append(z(1), huge).await.unwrap()));
    append_all(&journal, 1..=1).await;
}

/// Writes records 1..=3 in one segment and returns its bytes and where frame 3 starts.
async fn three_record_segment(dir: &Path) -> (Vec<u8>, usize) {
    let (journal, _) = open_default(dir);
    append_all(&journal, 1..=3).await;
    drop(journal);
    let bytes = std::fs::read(segment_path(dir, 1)).unwrap();
    (bytes, frame_offset(1, 3))
}

#[tokio::test]
async fn a_tail_torn_at_any_byte_of_the_last_frame_is_cut_off() {
    let tmp = TempDir::new().unwrap();
    let (bytes, last_frame) = three_record_segment(&tmp.path().join("orig")).await;
    for cut in last_frame..bytes.len() {
        let dir = tmp.path().join(format!("cut-{cut}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(segment_path(&dir, 1), &bytes[..cut]).unwrap();
        {
            let (journal, recovered) = open_default(&dir);
            assert_eq!(recovered.txns, records(1..=2), "cut at {cut}");
            assert_eq!(journal.last_zxid(), z(2));
            let len = std::fs::metadata(segment_path(&dir, 1)).unwrap().len();
            assert_eq!(len, last_frame as u64, "cut at {cut}");
            append_all(&journal, 3..=4).await;
        }
        let (_, recovered) = open_default(&dir);
        assert_eq!(recovered.txns, records(1..=4), "cut at {cut}");
        assert_eq!(
            files(&dir),
            vec![segment::file_name(z(1)), segment::file_name(z(3))],
            "appends after recovery go to a new segment"
        );
    }
}

#[tokio::test]
async fn a_last_frame_failing_its_crc_is_a_torn_tail() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let (bytes, last_frame) = three_record_segment(dir).await;
    flip_byte(&segment_path(dir, 1), bytes.len() - 1);
    let (_, recovered) = open_default(dir);
    assert_eq!(recovered.txns, records(1..=2));
    let len = std::fs::metadata(segment_path(dir, 1)).unwrap().len();
    assert_eq!(len, last_frame as u64);
}

#[tokio::test]
async fn zeros_after_the_last_frame_are_a_torn_tail() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let (mut bytes, _) = three_record_segment(dir).await;
    let end = bytes.len();
    bytes.extend_from_slice(&[0; 4096]);
    std::fs::write(segment_path(dir, 1), &bytes).unwrap();
    let (_, recovered) = open_default(dir);
    assert_eq!(recovered.txns, records(1..=3));
    let len = std::fs::metadata(segment_path(dir, 1)).unwrap().len();
    assert_eq!(len, end as u64);
}

#[tokio::test]
async fn a_last_segment_torn_in_its_header_or_empty_is_removed() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    three_record_segment(dir).await;
    for len in 0..=HEADER_LEN {
        let mut torn = Vec::new();
        segment::encode_header(&mut torn, z(3));
        torn.truncate(len);
        std::fs::write(segment_path(dir, 4), torn).unwrap();
        let (journal, recovered) = open_default(dir);
        assert_eq!(recovered.txns, records(1..=3), "header cut at {len}");
        assert_eq!(files(dir), vec![segment::file_name(z(1))]);
        drop(journal);
    }
    let (journal, _) = open_default(dir);
    append_all(&journal, 4..=4).await;
}

#[tokio::test]
async fn a_flipped_byte_mid_log_names_file_and_frame_offset() {
    let tmp = TempDir::new().unwrap();
    let orig = tmp.path().join("orig");
    {
        let (journal, _) = open_default(&orig);
        append_all(&journal, 1..=5).await;
    }
    let bytes = std::fs::read(segment_path(&orig, 1)).unwrap();
    let (start, end) = (frame_offset(1, 3), frame_offset(1, 4));
    for at in start..end {
        let dir = tmp.path().join(format!("flip-{at}"));
        std::fs::create_dir(&dir).unwrap();
        let path = segment_path(&dir, 1);
        std::fs::write(&path, &bytes).unwrap();
        flip_byte(&path, at);
        let (file, offset, reason) = expect_corrupt(&dir);
        assert_eq!(file, path, "flip at {at}");
        assert_eq!(offset, start as u64, "flip at {at}: {reason}");
        assert_eq!(
            std::fs::read(&path).unwrap().len(),
            bytes.len(),
            "left as found"
        );
    }
}

#[tokio::test]
async fn a_torn_frame_in_a_segment_that_is_not_the_last_is_corrupt() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    three_record_segment(dir).await;
    {
        let (journal, _) = open_default(dir);
        append_all(&journal, 4..=5).await;
    }
    let first = segment_path(dir, 1);
    let len = std::fs::metadata(&first).unwrap().len();
    flip_byte(&first, len as usize - 1);
    let (file, offset, reason) = expect_corrupt(dir);
    assert_eq!((file, offset), (first, frame_offset(1, 3) as u64));
    assert!(reason.contains("not the last"), "{reason}");
}

#[tokio::test]
async fn bad_segment_headers_are_corrupt_unless_torn_at_the_end() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let first = write_segment(dir, 1, 0, &[1, 2]);
    let second = write_segment(dir, 3, 2, &[3]);

    flip_byte(&first, 0);
    assert_eq!(expect_corrupt(dir).0, first);
    flip_byte(&first, 0);

    flip_byte(&second, 5);
    let (file, offset, _) = expect_corrupt(dir);
    assert_eq!(
        (file, offset),
        (second.clone(), 4),
        "full-length bad header, even last"
    );
    flip_byte(&second, 5);

    std::fs::write(&first, b"DFSJ").unwrap();
    let (file, offset, _) = expect_corrupt(dir);
    assert_eq!((file, offset), (first, 0), "short header, not last");
}

#[tokio::test]
async fn zxids_that_do_not_increase_are_corrupt() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let path = write_segment(dir, 5, 0, &[5, 7, 6]);
    let third = HEADER_LEN + 2 * FRAME_HEADER_LEN + payload(5).len() + payload(7).len();
    let (file, offset, reason) = expect_corrupt(dir);
    assert_eq!((file, offset), (path, third as u64));
    assert!(reason.contains("does not follow"), "{reason}");

    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    write_segment(dir, 1, 0, &[1, 2, 3]);
    let path = write_segment(dir, 3, 3, &[3, 4]);
    let (file, offset, _) = expect_corrupt(dir);
    assert_eq!((file, offset), (path, HEADER_LEN as u64));

    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let path = write_segment(dir, 1, 0, &[2, 3]);
    let (file, offset, reason) = expect_corrupt(dir);
    assert_eq!((file, offset), (path, HEADER_LEN as u64));
    assert!(reason.contains("named"), "{reason}");
}

#[tokio::test]
async fn a_missing_segment_is_corrupt() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    write_segment(dir, 1, 0, &[1, 2]);
    let last = write_segment(dir, 5, 4, &[5, 6]);
    let (file, offset, reason) = expect_corrupt(dir);
    assert_eq!((file, offset), (last, 8));
    assert!(reason.contains("missing"), "{reason}");
}

#[tokio::test]
async fn a_checkpoint_then_appends_reopen_as_snapshot_plus_later_txns() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    {
        let (journal, _) = open_default(dir);
        append_all(&journal, 1..=10).await;
        journal
            .checkpoint(z(10), b"image@10".to_vec())
            .await
            .unwrap();
        append_all(&journal, 11..=15).await;
        assert_eq!(journal.last_zxid(), z(15));
    }
    let (journal, recovered) = open_default(dir);
    assert_eq!(recovered.snapshot, Some((z(10), b"image@10".to_vec())));
    assert_eq!(recovered.txns, records(11..=15));
    assert_eq!(journal.last_zxid(), z(15));
}

#[tokio::test]
async fn a_checkpoint_runs_after_the_appends_queued_before_it() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    {
        let (journal, _) = open_default(dir);
        let pending: Vec<_> = (1..=3).map(|n| journal.append(z(n), payload(n))).collect();
        journal.checkpoint(z(3), b"image@3".to_vec()).await.unwrap();
        let later = journal.append(z(4), payload(4));
        for receiver in pending {
            receiver.await.unwrap().unwrap();
        }
        later.await.unwrap().unwrap();
    }
    let (_, recovered) = open_default(dir);
    assert_eq!(recovered.snapshot, Some((z(3), b"image@3".to_vec())));
    assert_eq!(recovered.txns, records(4..=4));
}

#[tokio::test]
async fn a_checkpoint_behind_the_log_replays_what_follows_it() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    {
        let (journal, _) = open_default(dir);
        append_all(&journal, 1..=10).await;
        journal.checkpoint(z(7), b"image@7".to_vec()).await.unwrap();
        append_all(&journal, 11..=12).await;
    }
    let (_, recovered) = open_default(dir);
    assert_eq!(recovered.snapshot, Some((z(7), b"image@7".to_vec())));
    assert_eq!(recovered.txns, records(8..=12));
}

#[tokio::test]
async fn checkpoints_delete_old_snapshots_and_the_segments_they_cover() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let (journal, _) = open_default(dir);
    for round in 0..4u64 {
        let (first, last) = (round * 10 + 1, round * 10 + 10);
        append_all(&journal, first..=last).await;
        journal
            .checkpoint(z(last), format!("image@{last}").into_bytes())
            .await
            .unwrap();
    }
    append_all(&journal, 41..=42).await;
    // Kept: snapshots 30 and 40, and the log after the older one.
    assert_eq!(
        files(dir),
        vec![
            segment::file_name(z(31)),
            segment::file_name(z(41)),
            snapshot::file_name(z(30)),
            snapshot::file_name(z(40)),
        ]
    );
    drop(journal);
    let (_, recovered) = open_default(dir);
    assert_eq!(recovered.snapshot, Some((z(40), b"image@40".to_vec())));
    assert_eq!(recovered.txns, records(41..=42));
}

#[tokio::test]
async fn keeping_one_snapshot_truncates_the_whole_covered_log() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let options = JournalOptions {
        snapshots_to_keep: 1,
        ..JournalOptions::default()
    };
    {
        let (journal, _) = open_with(dir, options.clone());
        append_all(&journal, 1..=5).await;
        journal.checkpoint(z(5), b"five".to_vec()).await.unwrap();
        assert_eq!(files(dir), vec![snapshot::file_name(z(5))]);
    }
    {
        let (journal, recovered) = open_with(dir, options.clone());
        assert_eq!(recovered.snapshot, Some((z(5), b"five".to_vec())));
        assert!(recovered.txns.is_empty());
        assert_eq!(journal.last_zxid(), z(5));
        append_all(&journal, 6..=7).await;
    }
    let (_, recovered) = open_with(dir, options);
    assert_eq!(recovered.txns, records(6..=7));
}

#[tokio::test]
async fn a_corrupt_newest_snapshot_falls_back_to_the_older_one() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    {
        let (journal, _) = open_default(dir);
        append_all(&journal, 1..=5).await;
        journal.checkpoint(z(5), b"image@5".to_vec()).await.unwrap();
        append_all(&journal, 6..=10).await;
        journal
            .checkpoint(z(10), b"image@10".to_vec())
            .await
            .unwrap();
        append_all(&journal, 11..=12).await;
    }
    flip_byte(&snapshot_path(dir, 10), snapshot::HEADER_LEN + 2);
    let (journal, recovered) = open_default(dir);
    assert_eq!(recovered.snapshot, Some((z(5), b"image@5".to_vec())));
    assert_eq!(recovered.txns, records(6..=12));
    assert_eq!(journal.last_zxid(), z(12));
}

#[tokio::test]
async fn no_valid_snapshot_before_a_truncated_log_is_an_error() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let options = JournalOptions {
        snapshots_to_keep: 1,
        ..JournalOptions::default()
    };
    {
        let (journal, _) = open_with(dir, options);
        append_all(&journal, 1..=5).await;
        journal.checkpoint(z(5), b"image@5".to_vec()).await.unwrap();
        append_all(&journal, 6..=7).await;
    }
    flip_byte(&snapshot_path(dir, 5), 0);
    let (file, offset, reason) = expect_corrupt(dir);
    assert_eq!((file, offset), (segment_path(dir, 6), 8));
    assert!(reason.contains("truncated"), "{reason}");
}

#[tokio::test]
async fn a_checkpoint_ahead_of_the_log_is_refused_without_poisoning() {
    let tmp = TempDir::new().unwrap();
    let (journal, _) = open_default(tmp.path());
    append_all(&journal, 1..=3).await;
    assert!(is_journal_failed(journal.checkpoint(z(4), vec![]).await));
    journal.checkpoint(z(3), b"three".to_vec()).await.unwrap();
    assert!(is_journal_failed(journal.checkpoint(z(2), vec![]).await));
    append_all(&journal, 4..=4).await;
}

#[tokio::test]
async fn a_write_failure_poisons_the_journal() {
    let tmp = TempDir::new().unwrap();
    {
        let (journal, _) = open_default(tmp.path());
        append_all(&journal, 1..=1).await;
        journal.fail_next(FailPoint::Write);
        assert!(is_journal_failed(
            journal.append(z(2), payload(2)).await.unwrap()
        ));
        assert!(is_journal_failed(
            journal.append(z(3), payload(3)).await.unwrap()
        ));
        assert!(is_journal_failed(journal.checkpoint(z(1), vec![]).await));
        assert_eq!(journal.last_zxid(), z(1));
    }
    let (_, recovered) = open_default(tmp.path());
    assert_eq!(recovered.txns, records(1..=1));
}

#[tokio::test]
async fn an_fsync_failure_poisons_the_whole_batch_and_later_appends() {
    let tmp = TempDir::new().unwrap();
    let (journal, _) = open_default(tmp.path());
    append_all(&journal, 1..=1).await;
    journal.fail_next(FailPoint::Sync);
    let batch = {
        let _paused = journal.pause_writer();
        (2..=4)
            .map(|n| journal.append(z(n), payload(n)))
            .collect::<Vec<_>>()
    };
    for receiver in batch {
        assert!(is_journal_failed(receiver.await.unwrap()));
    }
    assert!(is_journal_failed(
        journal.append(z(5), payload(5)).await.unwrap()
    ));
    assert_eq!(journal.last_zxid(), z(1));
}

#[tokio::test]
async fn a_second_journal_cannot_open_a_directory_in_use() {
    let tmp = TempDir::new().unwrap();
    let (journal, _) = open_default(tmp.path());
    assert!(matches!(
        open(tmp.path(), JournalOptions::default()),
        Err(Error::JournalFailed { .. })
    ));
    let clone = journal.clone();
    drop(journal);
    append_all(&clone, 1..=1).await;
    drop(clone);
    assert_eq!(open_default(tmp.path()).1.txns, records(1..=1));
}

#[tokio::test]
async fn an_unfinished_snapshot_is_removed_on_open() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let tmp_name = format!("{}{}", snapshot::file_name(z(9)), snapshot::TMP_SUFFIX);
    std::fs::write(dir.join(&tmp_name), b"half").unwrap();
    std::fs::write(dir.join("unrelated"), b"kept").unwrap();
    let (_, recovered) = open_default(dir);
    assert_eq!(recovered.snapshot, None);
    assert_eq!(files(dir), vec!["unrelated".to_owned()]);
}

// --- Zab synchronization: TRUNC, DIFF, SNAP, and the log view ---

/// A payload unlike `payload(n)`: what a new leader sends after a truncation.
fn other_payload(n: u64) -> Vec<u8> {
    format!("leader-{n}").into_bytes()
}

/// Appends `other_payload(n)` for every `n`, then awaits durability of all.
async fn append_other(journal: &Journal, range: std::ops::RangeInclusive<u64>) {
    let receivers: Vec<_> = range
        .map(|n| journal.append(z(n), other_payload(n)))
        .collect();
    for receiver in receivers {
        receiver.await.unwrap().unwrap();
    }
}

/// The records `append_other` writes for `range`.
fn other_records(range: std::ops::RangeInclusive<u64>) -> Vec<(Zxid, Vec<u8>)> {
    range.map(|n| (z(n), other_payload(n))).collect()
}

/// Zxids `first..=last`.
fn zxids(range: std::ops::RangeInclusive<u64>) -> Vec<Zxid> {
    range.map(z).collect()
}

/// Three segments: 1..=4, 5..=8 and 9..=12 (each reopen starts one).
async fn three_segments(dir: &Path) -> Journal {
    for range in [1..=4, 5..=8] {
        let (journal, _) = open_default(dir);
        append_all(&journal, range).await;
    }
    let (journal, _) = open_default(dir);
    append_all(&journal, 9..=12).await;
    assert_eq!(
        files(dir),
        vec![
            segment::file_name(z(1)),
            segment::file_name(z(5)),
            segment::file_name(z(9)),
        ]
    );
    journal
}

/// Reads every record after `zxid` in pages of `max_bytes`; returns the pages.
async fn read_pages(
    journal: &Journal,
    mut zxid: Zxid,
    max_bytes: usize,
) -> Vec<Vec<(Zxid, Vec<u8>)>> {
    let mut pages = Vec::new();
    loop {
        let page = journal.read_after(zxid, max_bytes).await.unwrap();
        let Some(&(last, _)) = page.last() else {
            return pages;
        };
        zxid = last;
        pages.push(page);
    }
}

#[tokio::test]
async fn a_truncation_mid_segment_recovers_exactly_the_prefix_and_appends_continue() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    {
        let (journal, _) = open_default(dir);
        append_all(&journal, 1..=10).await;
        journal.truncate_after(z(6)).await.unwrap();
        assert_eq!(journal.last_zxid(), z(6));
        assert_eq!(journal.log_view(), (Zxid::ZERO, zxids(1..=6)));
        let len = std::fs::metadata(segment_path(dir, 1)).unwrap().len();
        assert_eq!(len, frame_offset(1, 7) as u64, "cut right after zxid 6");
    }
    {
        let (journal, recovered) = open_default(dir);
        assert_eq!(recovered.txns, records(1..=6));
        assert_eq!(journal.last_zxid(), z(6));
        append_other(&journal, 7..=8).await;
        assert_eq!(
            files(dir),
            vec![segment::file_name(z(1)), segment::file_name(z(7))]
        );
    }
    let (journal, recovered) = open_default(dir);
    let mut expected = records(1..=6);
    expected.extend(other_records(7..=8));
    assert_eq!(recovered.txns, expected);
    assert_eq!(journal.log_view(), (Zxid::ZERO, zxids(1..=8)));
}

#[tokio::test]
async fn appends_after_a_truncation_open_a_new_segment_without_a_reopen() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    {
        let (journal, _) = open_default(dir);
        append_all(&journal, 1..=10).await;
        journal.truncate_after(z(4)).await.unwrap();
        append_other(&journal, 5..=6).await;
        assert_eq!(
            files(dir),
            vec![segment::file_name(z(1)), segment::file_name(z(5))]
        );
        assert_eq!(journal.last_zxid(), z(6));
    }
    let (journal, recovered) = open_default(dir);
    let mut expected = records(1..=4);
    expected.extend(other_records(5..=6));
    assert_eq!(recovered.txns, expected);
    append_other(&journal, 7..=7).await;
    drop(journal);
    expected.extend(other_records(7..=7));
    assert_eq!(open_default(dir).1.txns, expected);
}

#[tokio::test]
async fn a_truncation_across_segments_deletes_the_later_ones() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    {
        let journal = three_segments(dir).await;
        journal.truncate_after(z(8)).await.unwrap();
        assert_eq!(
            files(dir),
            vec![segment::file_name(z(1)), segment::file_name(z(5))],
            "a cut at a segment's end deletes only the later segments"
        );
        journal.truncate_after(z(3)).await.unwrap();
        assert_eq!(files(dir), vec![segment::file_name(z(1))]);
        assert_eq!(journal.last_zxid(), z(3));
        assert_eq!(journal.log_view(), (Zxid::ZERO, zxids(1..=3)));
    }
    {
        let (journal, recovered) = open_default(dir);
        assert_eq!(recovered.txns, records(1..=3));
        append_other(&journal, 4..=5).await;
    }
    let (_, recovered) = open_default(dir);
    let mut expected = records(1..=3);
    expected.extend(other_records(4..=5));
    assert_eq!(recovered.txns, expected);
}

#[tokio::test]
async fn a_truncation_to_the_log_start_empties_the_log() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    {
        let journal = three_segments(dir).await;
        journal.truncate_after(Zxid::ZERO).await.unwrap();
        assert!(files(dir).is_empty());
        assert_eq!(journal.last_zxid(), Zxid::ZERO);
        append_other(&journal, 1..=2).await;
    }
    assert_eq!(open_default(dir).1.txns, other_records(1..=2));
}

#[tokio::test]
async fn a_truncation_to_a_logged_snapshot_zxid_keeps_the_snapshots() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    {
        let (journal, _) = open_default(dir);
        append_all(&journal, 1..=5).await;
        journal.checkpoint(z(5), b"image@5".to_vec()).await.unwrap();
        append_all(&journal, 6..=10).await;
        journal.checkpoint(z(8), b"image@8".to_vec()).await.unwrap();
        append_all(&journal, 11..=12).await;
        journal.truncate_after(z(8)).await.unwrap();
        assert_eq!(journal.last_zxid(), z(8));
        assert_eq!(journal.log_view(), (z(5), zxids(6..=8)));
    }
    let (journal, recovered) = open_default(dir);
    assert_eq!(recovered.snapshot, Some((z(8), b"image@8".to_vec())));
    assert!(recovered.txns.is_empty());
    assert_eq!(journal.last_zxid(), z(8));
    append_other(&journal, 9..=9).await;
    drop(journal);
    // The older snapshot still has the log it needs.
    flip_byte(&snapshot_path(dir, 8), snapshot::HEADER_LEN + 1);
    let (_, recovered) = open_default(dir);
    assert_eq!(recovered.snapshot, Some((z(5), b"image@5".to_vec())));
    let mut expected = records(6..=8);
    expected.extend(other_records(9..=9));
    assert_eq!(recovered.txns, expected);
}

#[tokio::test]
async fn a_truncation_to_an_unlogged_snapshot_zxid_leaves_only_that_snapshot() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let epoch2 = |c| Zxid::new(Epoch(2), c).0;
    {
        let (journal, _) = open_default(dir);
        append_all(&journal, 1..=3).await;
        append_all(&journal, epoch2(1)..=epoch2(2)).await;
        // The image at 4 reflects 1..=3: no record carries zxid 4.
        journal.checkpoint(z(4), b"image@4".to_vec()).await.unwrap();
        journal.truncate_after(z(4)).await.unwrap();
        assert_eq!(files(dir), vec![snapshot::file_name(z(4))]);
        assert_eq!(journal.last_zxid(), z(4));
        assert_eq!(journal.log_view(), (z(4), vec![]));
        append_other(&journal, 5..=5).await;
    }
    let (journal, recovered) = open_default(dir);
    assert_eq!(recovered.snapshot, Some((z(4), b"image@4".to_vec())));
    assert_eq!(recovered.txns, other_records(5..=5));
    assert_eq!(journal.log_view(), (z(4), zxids(5..=5)));
}

#[tokio::test]
async fn truncations_the_log_cannot_honour_are_refused_without_poisoning() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let (journal, _) = open_default(dir);
    append_all(&journal, 1..=3).await;
    append_all(&journal, 7..=10).await;
    journal.checkpoint(z(8), b"image@8".to_vec()).await.unwrap();
    let refused = |result: Result<(), Error>| match result {
        Err(Error::JournalFailed { reason }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let below = refused(journal.truncate_after(z(7)).await);
    assert!(below.contains("snapshot at"), "{below}");
    let absent = refused(journal.truncate_after(z(5)).await);
    assert!(absent.contains("snapshot at"), "{absent}");
    let ahead = refused(journal.truncate_after(z(11)).await);
    assert!(ahead.contains("ends at"), "{ahead}");
    assert_eq!(journal.last_zxid(), z(10));
    append_all(&journal, 11..=11).await;
    assert_eq!(journal.last_zxid(), z(11));
    drop(journal);
    let (journal, recovered) = open_default(dir);
    assert_eq!(recovered.txns, records(9..=11));
    // A zxid between logged ones is no prefix of the log.
    drop(journal);
    let tmp = TempDir::new().unwrap();
    let (journal, _) = open_default(tmp.path());
    append_all(&journal, 1..=3).await;
    append_all(&journal, 7..=8).await;
    let gap = refused(journal.truncate_after(z(5)).await);
    assert!(gap.contains("not in the log"), "{gap}");
    append_all(&journal, 9..=9).await;
}

#[tokio::test]
async fn a_refused_truncation_does_not_let_a_stale_append_through() {
    let tmp = TempDir::new().unwrap();
    let (journal, _) = open_default(tmp.path());
    append_all(&journal, 1..=10).await;
    journal.checkpoint(z(8), vec![]).await.unwrap();
    assert!(is_journal_failed(journal.truncate_after(z(5)).await));
    assert!(is_journal_failed(
        journal.append(z(6), payload(6)).await.unwrap()
    ));
    append_all(&journal, 11..=11).await;
}

#[tokio::test]
async fn a_torn_tail_after_a_truncation_is_cut_off() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    {
        let (journal, _) = open_default(dir);
        append_all(&journal, 1..=10).await;
        journal.truncate_after(z(6)).await.unwrap();
    }
    let torn = |path: &Path| {
        let mut bytes = std::fs::read(path).unwrap();
        let len = bytes.len();
        segment::encode_frame(&mut bytes, z(99), b"never acknowledged");
        bytes.truncate(len + FRAME_HEADER_LEN + 3);
        std::fs::write(path, bytes).unwrap();
    };
    torn(&segment_path(dir, 1));
    {
        let (journal, recovered) = open_default(dir);
        assert_eq!(recovered.txns, records(1..=6));
        append_other(&journal, 7..=8).await;
    }
    torn(&segment_path(dir, 7));
    let (journal, recovered) = open_default(dir);
    let mut expected = records(1..=6);
    expected.extend(other_records(7..=8));
    assert_eq!(recovered.txns, expected);
    assert_eq!(journal.last_zxid(), z(8));
}

#[tokio::test]
async fn read_after_returns_later_records_across_segments_in_pages() {
    let tmp = TempDir::new().unwrap();
    let journal = three_segments(tmp.path()).await;
    assert_eq!(
        journal.read_after(z(2), usize::MAX).await.unwrap(),
        records(3..=12)
    );
    assert_eq!(
        journal.read_after(Zxid::ZERO, 0).await.unwrap(),
        records(1..=1),
        "a page holds at least one record"
    );
    assert!(
        journal
            .read_after(z(12), usize::MAX)
            .await
            .unwrap()
            .is_empty()
    );

    let max_bytes = 30;
    let pages = read_pages(&journal, z(2), max_bytes).await;
    assert!(pages.len() > 2, "{} pages", pages.len());
    for page in &pages {
        let bytes: usize = page.iter().map(|(_, p)| p.len()).sum();
        assert!(page.len() == 1 || bytes <= max_bytes, "{bytes} bytes");
    }
    assert_eq!(pages.concat(), records(3..=12));
}

#[tokio::test]
async fn read_after_sees_appends_queued_before_it() {
    let tmp = TempDir::new().unwrap();
    let (journal, _) = open_default(tmp.path());
    let pending: Vec<_> = (1..=3).map(|n| journal.append(z(n), payload(n))).collect();
    assert_eq!(
        journal.read_after(Zxid::ZERO, usize::MAX).await.unwrap(),
        records(1..=3)
    );
    for receiver in pending {
        receiver.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn read_after_reads_the_segment_files() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let journal = three_segments(dir).await;
    flip_byte(&segment_path(dir, 5), frame_offset(5, 7) + FRAME_HEADER_LEN);
    assert_eq!(
        journal
            .read_after(z(2), usize::MAX)
            .await
            .unwrap_err()
            .to_string(),
        Error::JournalCorrupt {
            file: segment_path(dir, 5),
            offset: frame_offset(5, 7) as u64,
            reason: "frame CRC32C mismatch".to_owned(),
        }
        .to_string()
    );
    assert_eq!(
        journal.read_after(z(7), usize::MAX).await.unwrap(),
        records(8..=12)
    );
}

#[tokio::test]
async fn read_after_refuses_a_zxid_before_the_log_start() {
    let tmp = TempDir::new().unwrap();
    let options = JournalOptions {
        snapshots_to_keep: 1,
        ..JournalOptions::default()
    };
    let (journal, _) = open_with(tmp.path(), options);
    append_all(&journal, 1..=5).await;
    journal.checkpoint(z(5), b"five".to_vec()).await.unwrap();
    append_all(&journal, 6..=8).await;
    assert_eq!(journal.log_view(), (z(5), zxids(6..=8)));
    match journal.read_after(z(4), usize::MAX).await {
        Err(Error::JournalFailed { reason }) => assert!(reason.contains("SNAP"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        journal.read_after(z(5), usize::MAX).await.unwrap(),
        records(6..=8)
    );
}

#[tokio::test]
async fn the_log_view_follows_checkpoints_and_reopens() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    {
        let (journal, _) = open_default(dir);
        assert_eq!(journal.log_view(), (Zxid::ZERO, vec![]));
        append_all(&journal, 1..=10).await;
        assert_eq!(journal.log_view(), (Zxid::ZERO, zxids(1..=10)));
        for round in 1..4u64 {
            let (first, last) = (round * 10 + 1, round * 10 + 10);
            journal.checkpoint(z(first - 1), vec![]).await.unwrap();
            append_all(&journal, first..=last).await;
        }
        // Snapshots 20 and 30 are kept, and the log after the older one.
        assert_eq!(journal.log_view(), (z(20), zxids(21..=40)));
        journal.checkpoint(z(40), vec![]).await.unwrap();
        assert_eq!(journal.log_view(), (z(30), zxids(31..=40)));
    }
    let (journal, _) = open_default(dir);
    assert_eq!(journal.log_view(), (z(30), zxids(31..=40)));
    let options = JournalOptions {
        snapshots_to_keep: 1,
        ..JournalOptions::default()
    };
    drop(journal);
    let (journal, _) = open_with(dir, options);
    journal.checkpoint(z(40), vec![]).await.unwrap();
    assert_eq!(journal.log_view(), (z(40), vec![]));
}

#[tokio::test]
async fn an_installed_snapshot_replaces_the_whole_journal() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    {
        let (journal, _) = open_default(dir);
        append_all(&journal, 1..=10).await;
        journal.checkpoint(z(5), b"image@5".to_vec()).await.unwrap();
        append_all(&journal, 11..=12).await;
        journal
            .install_snapshot(z(100), b"leader@100".to_vec())
            .await
            .unwrap();
        assert_eq!(files(dir), vec![snapshot::file_name(z(100))]);
        assert_eq!(journal.last_zxid(), z(100));
        assert_eq!(journal.log_view(), (z(100), vec![]));
        assert!(
            journal
                .read_after(z(100), usize::MAX)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(is_journal_failed(
            journal.append(z(100), payload(100)).await.unwrap()
        ));
    }
    {
        let (journal, recovered) = open_default(dir);
        assert_eq!(recovered.snapshot, Some((z(100), b"leader@100".to_vec())));
        assert!(recovered.txns.is_empty());
        assert_eq!(journal.last_zxid(), z(100));
        append_other(&journal, 101..=102).await;
    }
    let (journal, recovered) = open_default(dir);
    assert_eq!(recovered.snapshot, Some((z(100), b"leader@100".to_vec())));
    assert_eq!(recovered.txns, other_records(101..=102));
    assert_eq!(journal.log_view(), (z(100), zxids(101..=102)));
}

#[tokio::test]
async fn an_installed_snapshot_older_than_ours_removes_the_newer_ones() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    {
        let (journal, _) = open_default(dir);
        append_all(&journal, 1..=10).await;
        journal
            .checkpoint(z(10), b"ours@10".to_vec())
            .await
            .unwrap();
        // A newer snapshot recovery would skip as invalid still goes.
        std::fs::write(snapshot_path(dir, 50), b"garbage").unwrap();
        journal
            .install_snapshot(z(4), b"leader@4".to_vec())
            .await
            .unwrap();
        assert_eq!(files(dir), vec![snapshot::file_name(z(4))]);
        assert_eq!(journal.last_zxid(), z(4));
        append_other(&journal, 5..=6).await;
    }
    let (_, recovered) = open_default(dir);
    assert_eq!(recovered.snapshot, Some((z(4), b"leader@4".to_vec())));
    assert_eq!(recovered.txns, other_records(5..=6));
}

#[tokio::test]
async fn sync_commands_on_a_poisoned_journal_fail() {
    let tmp = TempDir::new().unwrap();
    let (journal, _) = open_default(tmp.path());
    append_all(&journal, 1..=2).await;
    journal.fail_next(FailPoint::Write);
    assert!(is_journal_failed(
        journal.append(z(3), payload(3)).await.unwrap()
    ));
    assert!(is_journal_failed(journal.truncate_after(z(1)).await));
    assert!(is_journal_failed(
        journal.install_snapshot(z(9), vec![]).await
    ));
    assert!(matches!(
        journal.read_after(Zxid::ZERO, usize::MAX).await,
        Err(Error::JournalFailed { .. })
    ));
}

/// Opens `dir` expecting `JournalBehindMarker`; returns where the log ends and the marker.
fn expect_behind_marker(dir: &Path) -> (Zxid, Zxid) {
    match open(dir, JournalOptions::default()) {
        Err(Error::JournalBehindMarker { last, marked, .. }) => (last, marked),
        other => panic!("expected JournalBehindMarker, got {other:?}"),
    }
}

#[tokio::test]
async fn a_log_that_lost_records_behind_the_marker_refuses_to_open() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    {
        let (journal, _) = open_default(dir);
        append_all(&journal, 1..=3).await;
    }
    {
        // The segment this append opens marks everything before it.
        let (journal, _) = open_default(dir);
        append_all(&journal, 4..=5).await;
    }
    assert_eq!(marker::read(dir).unwrap(), Some(z(3)));
    // Losing the open segment's records is a torn tail's business, not the marker's.
    {
        let (journal, recovered) = open_default(dir);
        assert_eq!(recovered.txns, records(1..=5));
        drop(journal);
    }
    // Every segment gone (say, a restored older copy): refused, naming both zxids.
    std::fs::remove_file(segment_path(dir, 1)).unwrap();
    std::fs::remove_file(segment_path(dir, 4)).unwrap();
    assert_eq!(expect_behind_marker(dir), (Zxid::ZERO, z(3)));
    let err = open(dir, JournalOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("accept_shorter_journal") && err.contains("another namenode"),
        "{err}"
    );
    // The operator accepts the loss: it opens, and the marker follows the log.
    let accept = JournalOptions {
        accept_shorter_log: true,
        ..JournalOptions::default()
    };
    {
        let (journal, recovered) = open_with(dir, accept);
        assert!(recovered.txns.is_empty());
        assert_eq!(journal.last_zxid(), Zxid::ZERO);
    }
    assert_eq!(marker::read(dir).unwrap(), Some(Zxid::ZERO));
    open_default(dir);
}

#[tokio::test]
async fn a_truncation_lowers_the_marker_before_it_cuts() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    {
        let (journal, _) = open_default(dir);
        append_all(&journal, 1..=3).await;
    }
    {
        let (journal, _) = open_default(dir);
        append_all(&journal, 4..=6).await;
        assert_eq!(marker::read(dir).unwrap(), Some(z(3)));
        // TRUNC: the quorum drops txns this journal held; no loss on restart.
        journal.truncate_after(z(2)).await.unwrap();
        assert_eq!(marker::read(dir).unwrap(), Some(z(2)));
    }
    let (journal, recovered) = open_default(dir);
    assert_eq!(recovered.txns, records(1..=2));
    // A SNAP at a higher zxid raises it again.
    journal
        .install_snapshot(z(10), b"image".to_vec())
        .await
        .unwrap();
    assert_eq!(marker::read(dir).unwrap(), Some(z(10)));
    drop(journal);
    let (_, recovered) = open_default(dir);
    assert_eq!(recovered.snapshot, Some((z(10), b"image".to_vec())));
}
