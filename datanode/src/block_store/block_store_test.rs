//! Block store tests: each builds a store in a temp dir and checks files and replies.

use std::fs::{self, OpenOptions};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use dfs_proto::checksum::{CHUNK_SIZE, chunk_checksums, verify_chunks};
use dfs_proto::ids::{BlockId, GenStamp};
use tempfile::TempDir;

use super::error::PacketFault;
use super::layout::{Layout, meta_len_for};
use super::*;
use crate::test_files::flip_byte;

const PACKET: usize = 64 * 1024;
const B: BlockId = BlockId(0x0012_3456);
const GS: GenStamp = GenStamp(1001);

fn open_store() -> (TempDir, BlockStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, report) = BlockStore::open(dir.path()).expect("open");
    assert_eq!(report, ScanReport::default());
    (dir, store)
}

fn reopen(dir: &TempDir) -> (BlockStore, ScanReport) {
    BlockStore::open(dir.path()).expect("reopen")
}

fn layout(dir: &TempDir) -> Layout {
    Layout::new(dir.path())
}

/// Bytes that differ from chunk to chunk and from seed to seed.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761).rotate_right(13) as u8) ^ seed)
        .collect()
}

/// Appends `data` in 64 KiB packets at the writer's current length.
fn write_packets(w: &mut RbwWriter, data: &[u8]) {
    for packet in data.chunks(PACKET) {
        let offset = w.len();
        w.write_packet(offset, packet, &chunk_checksums(packet), true)
            .expect("write packet");
    }
}

fn write_block(store: &BlockStore, block: BlockId, gs: GenStamp, data: &[u8]) -> ReplicaInfo {
    let mut w = store.create_rbw(block, gs).expect("create rbw");
    write_packets(&mut w, data);
    store.finalize(w).expect("finalize")
}

/// Reads a whole replica in odd-sized ranges, verifying every chunk.
fn read_block(store: &BlockStore, block: BlockId, gs: GenStamp) -> Vec<u8> {
    let mut r = store.open_finalized(block, gs).expect("open finalized");
    assert_eq!((r.block(), r.gen_stamp()), (block, gs));
    let mut out = Vec::new();
    while (out.len() as u64) < r.len() {
        let (start, data, sums) = r.read_chunks(out.len() as u64, 40_000).expect("read");
        assert_eq!(
            start,
            out.len() as u64,
            "reads continue where the last ended"
        );
        assert_eq!(start % CHUNK_SIZE as u64, 0);
        verify_chunks(&data, &sums).expect("chunks verify");
        assert!(!data.is_empty());
        out.extend_from_slice(&data);
    }
    out
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).expect("stat").len()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn write_finalize_read_round_trips_every_length_around_chunk_and_packet_edges() {
    let (dir, store) = open_store();
    let lengths = [
        0,
        1,
        511,
        512,
        513,
        PACKET - 1,
        PACKET,
        PACKET + 1,
        (1 << 20) + 3,
    ];
    for (i, &len) in lengths.iter().enumerate() {
        let block = BlockId(i as u64 * 0x1_0101);
        let data = pattern(len, i as u8);
        let info = write_block(&store, block, GS, &data);
        assert_eq!(
            info,
            ReplicaInfo {
                block,
                gen_stamp: GS,
                length: len as u64
            }
        );
        assert_eq!(read_block(&store, block, GS), data, "length {len}");
        let l = layout(&dir);
        assert_eq!(file_len(&l.finalized_block(block)), len as u64);
        assert_eq!(
            file_len(&l.finalized_meta(block, GS)),
            meta_len_for(len as u64)
        );
        assert!(!l.rbw_block(block).exists());
    }
    assert_eq!(store.replicas().len(), lengths.len());
}

#[test]
fn read_chunks_widens_a_range_to_whole_chunks_and_clips_it_at_the_end() {
    let (_dir, store) = open_store();
    let data = pattern(1300, 3);
    write_block(&store, B, GS, &data);
    let mut r = store.open_finalized(B, GS).expect("open");
    assert_eq!(r.len(), 1300);

    let (start, got, sums) = r.read_chunks(700, 10).expect("read");
    assert_eq!((start, got.as_slice()), (512, &data[512..1024]));
    assert_eq!(sums, chunk_checksums(&data[512..1024]));

    let (start, got, sums) = r.read_chunks(1000, 10_000).expect("read to the end");
    assert_eq!((start, got.as_slice()), (512, &data[512..]));
    assert_eq!(sums.len(), 2);
    verify_chunks(&got, &sums).expect("verifies");

    let (start, got, sums) = r.read_chunks(1300, 10).expect("empty at the end");
    assert_eq!((start, got.len(), sums.len()), (1024, 0, 0));
    assert!(matches!(
        r.read_chunks(1301, 1),
        Err(Error::OutOfRange {
            offset: 1301,
            length: 1300,
            ..
        })
    ));
}

#[test]
fn rbw_replica_is_never_readable() {
    let (_dir, store) = open_store();
    let mut w = store.create_rbw(B, GS).expect("create");
    write_packets(&mut w, &pattern(4096, 1));
    w.sync().expect("sync");
    assert!(matches!(
        store.open_finalized(B, GS),
        Err(Error::ReplicaNotFound { block: B })
    ));
    assert!(store.replicas().is_empty());
    drop(w);
    assert!(matches!(
        store.open_finalized(B, GS),
        Err(Error::ReplicaNotFound { .. })
    ));
}

#[test]
fn checksum_mismatching_packet_with_verify_writes_nothing() {
    let (dir, store) = open_store();
    let good = pattern(1024, 1);
    let bad = pattern(2048, 2);
    let mut sums = chunk_checksums(&bad);
    sums[2] ^= 1;
    let mut w = store.create_rbw(B, GS).expect("create");
    write_packets(&mut w, &good);
    let err = w
        .write_packet(1024, &bad, &sums, true)
        .expect_err("bad chunk");
    assert!(
        matches!(
            err,
            Error::ChecksumMismatch {
                block: B,
                offset: 2048
            }
        ),
        "{err:?}"
    );
    assert_eq!(w.len(), 1024);
    w.sync().expect("sync");
    let l = layout(&dir);
    assert_eq!(file_len(&l.rbw_block(B)), 1024);
    assert_eq!(file_len(&l.rbw_meta(B, GS)), meta_len_for(1024));
    store.finalize(w).expect("finalize");
    assert_eq!(read_block(&store, B, GS), good);
}

#[test]
fn an_unverified_bad_packet_is_stored_and_caught_by_verify_all() {
    let (_dir, store) = open_store();
    let data = pattern(2048, 2);
    let mut sums = chunk_checksums(&data);
    sums[3] ^= 1;
    let mut w = store.create_rbw(B, GS).expect("create");
    w.write_packet(0, &data, &sums, false)
        .expect("not verified");
    store.finalize(w).expect("finalize");
    let mut r = store.open_finalized(B, GS).expect("open");
    assert!(matches!(
        r.verify_all(|_| ControlFlow::Continue(())),
        Err(Error::ChecksumMismatch {
            block: B,
            offset: 1536
        })
    ));
}

#[test]
fn verify_all_paces_every_slice_and_stops_when_told() {
    let (_dir, store) = open_store();
    let data = pattern(2 * (1 << 20) + 700, 4);
    write_block(&store, B, GS, &data);
    let mut r = store.open_finalized(B, GS).expect("open");
    let mut slices = Vec::new();
    let done = r
        .verify_all(|n| {
            slices.push(n);
            ControlFlow::Continue(())
        })
        .expect("clean replica verifies");
    assert_eq!(done, ControlFlow::Continue(()));
    assert_eq!(slices, vec![1 << 20, 1 << 20, 700]);

    let mut r = store.open_finalized(B, GS).expect("open");
    let mut calls = 0;
    let stopped = r
        .verify_all(|_| {
            calls += 1;
            ControlFlow::Break(())
        })
        .expect("stopped, not failed");
    assert_eq!((stopped, calls), (ControlFlow::Break(()), 1));
}

#[test]
fn resend_from_an_earlier_chunk_boundary_replaces_the_tail() {
    let (_dir, store) = open_store();
    let first = pattern(3 * PACKET + 100, 1);
    let resent = pattern(PACKET + 700, 9);
    let mut w = store.create_rbw(B, GS).expect("create");
    write_packets(&mut w, &first);
    let at = PACKET as u64;
    w.write_packet(at, &resent, &chunk_checksums(&resent), true)
        .expect("resend");
    assert_eq!(w.len(), at + resent.len() as u64);
    store.finalize(w).expect("finalize");
    let mut expected = first[..PACKET].to_vec();
    expected.extend_from_slice(&resent);
    assert_eq!(read_block(&store, B, GS), expected);
}

#[test]
fn a_partial_last_chunk_is_extended_in_place_or_by_rewriting_it_whole() {
    let (_dir, store) = open_store();
    let data = pattern(5000, 4);
    let mut w = store.create_rbw(B, GS).expect("create");
    w.write_packet(0, &data[..700], &chunk_checksums(&data[..700]), true)
        .expect("hflushed packet");
    w.sync().expect("hflush");
    assert!(matches!(
        w.write_packet(
            600,
            &data[600..900],
            &chunk_checksums(&data[600..900]),
            true
        ),
        Err(Error::InvalidPacket {
            offset: 600,
            reason: PacketFault::NotSequential { length: 700 },
            ..
        })
    ));
    let tail = &data[700..900];
    w.write_packet(700, tail, &chunk_checksums(tail), true)
        .expect("continued where it ends");
    assert_eq!(w.len(), 900);
    let rewrite = &data[512..];
    w.write_packet(512, rewrite, &chunk_checksums(rewrite), true)
        .expect("rewrite from the chunk start");
    assert_eq!(w.len(), 5000);
    store.finalize(w).expect("finalize");
    assert_eq!(read_block(&store, B, GS), data);
}

#[test]
fn misplaced_or_miscounted_packets_are_rejected_without_writing() {
    let (_dir, store) = open_store();
    let data = pattern(2048, 5);
    let sums = chunk_checksums(&data);
    let mut w = store.create_rbw(B, GS).expect("create");
    write_packets(&mut w, &data);
    let cases = [
        (4096, &data[..], &sums[..]),
        (1000, &data[..], &sums[..]),
        (2048, &data[..], &sums[..3]),
        (2048, &data[..100], &sums[..]),
    ];
    for (offset, d, s) in cases {
        let err = w.write_packet(offset, d, s, false).expect_err("rejected");
        assert!(
            matches!(err, Error::InvalidPacket { .. }),
            "{offset}: {err:?}"
        );
        assert_eq!(w.len(), 2048);
    }
    w.write_packet(2048, &[], &[], true)
        .expect("an empty packet is fine");
    store.finalize(w).expect("finalize");
    assert_eq!(read_block(&store, B, GS), data);
}

#[test]
fn reopen_finds_finalized_replicas_and_rbw_leftovers() {
    let (dir, store) = open_store();
    let a = pattern(PACKET + 5, 1);
    write_block(&store, B, GS, &a);
    let leftover = BlockId(77);
    let mut w = store.create_rbw(leftover, GenStamp(3)).expect("create");
    write_packets(&mut w, &pattern(1300, 2));
    w.sync().expect("sync");
    drop(w);
    let used = store.used_bytes();
    assert_eq!(
        used,
        (PACKET as u64 + 5 + meta_len_for(PACKET as u64 + 5)) + 1300 + meta_len_for(1300)
    );
    drop(store);

    let (store, report) = reopen(&dir);
    assert_eq!(
        store.replicas(),
        vec![ReplicaInfo {
            block: B,
            gen_stamp: GS,
            length: a.len() as u64
        }]
    );
    assert_eq!(
        report.rbw,
        vec![ReplicaInfo {
            block: leftover,
            gen_stamp: GenStamp(3),
            length: 1300
        }]
    );
    assert!(report.corrupt.is_empty());
    assert_eq!(store.used_bytes(), used);
    assert_eq!(read_block(&store, B, GS), a);
    assert!(store.open_finalized(leftover, GenStamp(3)).is_err());
}

#[test]
fn an_rbw_leftover_is_cut_back_to_its_verified_prefix() {
    let (dir, store) = open_store();
    let mut w = store.create_rbw(B, GS).expect("create");
    write_packets(&mut w, &pattern(3 * 512 + 100, 1));
    w.sync().expect("sync");
    drop(w);
    drop(store);
    let l = layout(&dir);
    flip_byte(&l.rbw_block(B), 512 + 7);

    let (store, report) = reopen(&dir);
    assert_eq!(
        report.rbw,
        vec![ReplicaInfo {
            block: B,
            gen_stamp: GS,
            length: 512
        }]
    );
    assert_eq!(file_len(&l.rbw_block(B)), 512);
    assert_eq!(file_len(&l.rbw_meta(B, GS)), meta_len_for(512));
    assert_eq!(store.used_bytes(), 512 + meta_len_for(512));
}

#[test]
fn an_rbw_leftover_with_fewer_checksums_than_data_keeps_only_covered_chunks() {
    let (dir, store) = open_store();
    let mut w = store.create_rbw(B, GS).expect("create");
    write_packets(&mut w, &pattern(2000, 1));
    w.sync().expect("sync");
    drop(w);
    drop(store);
    let l = layout(&dir);
    // A crash after the data reached the disk and only two checksums did.
    let meta = OpenOptions::new()
        .write(true)
        .open(l.rbw_meta(B, GS))
        .expect("open");
    meta.set_len(meta_len_for(1024)).expect("truncate");

    let (_store, report) = reopen(&dir);
    assert_eq!(report.rbw.first().map(|r| r.length), Some(1024));
}

#[test]
fn a_block_file_whose_length_disagrees_with_its_meta_is_reported_corrupt_and_not_served() {
    let (dir, store) = open_store();
    write_block(&store, B, GS, &pattern(1024, 1));
    drop(store);
    let l = layout(&dir);
    let f = OpenOptions::new()
        .append(true)
        .open(l.finalized_block(B))
        .expect("open");
    f.set_len(1025).expect("grow");

    let (store, report) = reopen(&dir);
    assert_eq!(
        report.corrupt,
        vec![CorruptReplica {
            block: B,
            gen_stamp: Some(GS),
            state: ReplicaState::Finalized,
            reason: Corruption::LengthMismatch {
                block_len: 1025,
                meta_len: meta_len_for(1024)
            },
        }]
    );
    assert!(matches!(
        store.open_finalized(B, GS),
        Err(Error::ReplicaNotFound { .. })
    ));
    assert!(store.replicas().is_empty());
    assert!(!l.finalized_block(B).exists(), "moved aside");
    assert_eq!(
        files_in(&l.corrupt),
        vec![format!("blk_{}", B.0), format!("blk_{}_{}.meta", B.0, GS.0)]
    );
}

#[test]
fn a_replica_truncated_under_a_running_store_is_refused_as_corrupt() {
    let (dir, store) = open_store();
    write_block(&store, B, GS, &pattern(4096, 1));
    let f = OpenOptions::new()
        .write(true)
        .open(layout(&dir).finalized_block(B))
        .expect("open");
    f.set_len(1000).expect("truncate");
    assert!(matches!(
        store.open_finalized(B, GS),
        Err(Error::CorruptReplica {
            block: B,
            reason: Corruption::LengthMismatch { .. }
        })
    ));
}

#[test]
fn a_flipped_byte_is_caught_by_verify_all_and_by_verify_chunks_on_read_output() {
    let (dir, store) = open_store();
    let data = pattern((1 << 20) + 3000, 6);
    write_block(&store, B, GS, &data);
    let mut r = store.open_finalized(B, GS).expect("open");
    let verified = r
        .verify_all(|_| ControlFlow::Continue(()))
        .expect("clean replica verifies");
    assert_eq!(verified, ControlFlow::Continue(()));
    flip_byte(&layout(&dir).finalized_block(B), 1_050_000);

    let mut r = store.open_finalized(B, GS).expect("open");
    let err = r
        .verify_all(|_| ControlFlow::Continue(()))
        .expect_err("flipped byte");
    assert!(
        matches!(err, Error::ChecksumMismatch { block: B, offset } if offset == 1_050_000 / 512 * 512),
        "{err:?}"
    );
    let (start, got, sums) = r.read_chunks(1_049_990, 100).expect("read");
    assert_eq!(start, 1_049_600);
    let bad = verify_chunks(&got, &sums).expect_err("mismatch");
    assert_eq!(start + bad.chunk as u64 * 512, 1_049_600);
    let (_, got, sums) = r.read_chunks(0, 4096).expect("read elsewhere");
    verify_chunks(&got, &sums).expect("other chunks still verify");
}

#[test]
fn a_stale_gen_stamp_is_refused() {
    let (_dir, store) = open_store();
    write_block(&store, B, GenStamp(5), &pattern(100, 1));
    for asked in [GenStamp(4), GenStamp(6)] {
        assert!(matches!(
            store.open_finalized(B, asked),
            Err(Error::GenStampMismatch { expected, found: GenStamp(5), .. }) if expected == asked
        ));
    }
    for gs in [GenStamp(4), GenStamp(5)] {
        assert!(matches!(
            store.create_rbw(B, gs),
            Err(Error::ReplicaExists {
                gen_stamp: GenStamp(5),
                ..
            })
        ));
    }
    assert!(matches!(
        store.delete(B, Some(GenStamp(4))),
        Err(Error::GenStampMismatch { .. })
    ));
    assert_eq!(read_block(&store, B, GenStamp(5)), pattern(100, 1));
}

#[test]
fn delete_removes_both_files() {
    let (dir, store) = open_store();
    write_block(&store, B, GS, &pattern(3000, 1));
    store.delete(B, Some(GS)).expect("delete");
    let l = layout(&dir);
    assert!(!l.finalized_block(B).exists());
    assert!(!l.finalized_meta(B, GS).exists());
    assert!(store.replicas().is_empty());
    assert_eq!(store.used_bytes(), 0);
    assert!(matches!(
        store.delete(B, None),
        Err(Error::ReplicaNotFound { .. })
    ));
    assert!(matches!(
        store.open_finalized(B, GS),
        Err(Error::ReplicaNotFound { .. })
    ));
}

#[test]
fn deleting_a_replica_being_written_fails_its_finalize() {
    let (dir, store) = open_store();
    let mut w = store.create_rbw(B, GS).expect("create");
    write_packets(&mut w, &pattern(3000, 1));
    store.delete(B, None).expect("delete");
    let l = layout(&dir);
    assert!(!l.rbw_block(B).exists());
    assert!(!l.rbw_meta(B, GS).exists());
    assert!(matches!(
        store.finalize(w),
        Err(Error::ReplicaNotFound { .. })
    ));
    assert!(store.replicas().is_empty());
    assert!(files_in(&l.finalized).is_empty());
}

#[test]
fn finalize_replaces_an_older_gen_stamp() {
    let (dir, store) = open_store();
    write_block(&store, B, GenStamp(1), &pattern(5000, 1));
    let newer = pattern(700, 2);
    let info = write_block(&store, B, GenStamp(2), &newer);
    assert_eq!(info.gen_stamp, GenStamp(2));
    assert_eq!(store.replicas(), vec![info]);
    assert_eq!(read_block(&store, B, GenStamp(2)), newer);
    assert!(matches!(
        store.open_finalized(B, GenStamp(1)),
        Err(Error::GenStampMismatch { .. })
    ));
    let l = layout(&dir);
    assert_eq!(
        files_in(&l.finalized_dir(B)),
        vec![format!("blk_{}", B.0), format!("blk_{}_2.meta", B.0)]
    );
    assert_eq!(store.used_bytes(), 700 + meta_len_for(700));
    drop(store);
    let (store, report) = reopen(&dir);
    assert!(report.corrupt.is_empty());
    assert_eq!(store.replicas(), vec![info]);
}

#[test]
fn create_rbw_refuses_a_second_writer_and_discards_an_older_leftover() {
    let (dir, store) = open_store();
    let w = store.create_rbw(B, GenStamp(1)).expect("create");
    assert!(matches!(
        store.create_rbw(B, GenStamp(2)),
        Err(Error::ReplicaExists {
            gen_stamp: GenStamp(1),
            ..
        })
    ));
    drop(w);
    assert!(matches!(
        store.create_rbw(B, GenStamp(1)),
        Err(Error::ReplicaExists { .. })
    ));
    let mut w = store
        .create_rbw(B, GenStamp(2))
        .expect("replaces the leftover");
    write_packets(&mut w, &pattern(10, 1));
    store.finalize(w).expect("finalize");
    assert!(files_in(&layout(&dir).rbw).is_empty());
}

#[test]
fn used_bytes_follows_writes_resends_and_finalizes() {
    let (_dir, store) = open_store();
    let mut w = store.create_rbw(B, GS).expect("create");
    assert_eq!(store.used_bytes(), meta_len_for(0));
    write_packets(&mut w, &pattern(2 * PACKET, 1));
    assert_eq!(
        store.used_bytes(),
        2 * PACKET as u64 + meta_len_for(2 * PACKET as u64)
    );
    w.write_packet(512, &[1; 10], &chunk_checksums(&[1; 10]), true)
        .expect("resend");
    assert_eq!(store.used_bytes(), 522 + meta_len_for(522));
    store.finalize(w).expect("finalize");
    assert_eq!(store.used_bytes(), 522 + meta_len_for(522));
}

#[test]
fn an_interrupted_finalize_is_completed_by_the_scan() {
    let (dir, store) = open_store();
    let data = pattern(5000, 1);
    let mut w = store.create_rbw(B, GS).expect("create");
    write_packets(&mut w, &data);
    w.sync().expect("sync");
    drop(w);
    drop(store);
    let l = layout(&dir);
    // The crash came after the meta rename and before the block rename.
    fs::create_dir_all(l.finalized_dir(B)).expect("mkdir");
    fs::rename(l.rbw_meta(B, GS), l.finalized_meta(B, GS)).expect("rename meta");

    let (store, report) = reopen(&dir);
    assert_eq!(report.rolled_forward, vec![B]);
    assert!(report.rbw.is_empty() && report.corrupt.is_empty());
    assert_eq!(read_block(&store, B, GS), data);
}

#[test]
fn an_interrupted_replacing_finalize_serves_the_new_generation_after_restart() {
    for renamed_block in [false, true] {
        let (dir, store) = open_store();
        write_block(&store, B, GenStamp(1), &pattern(900, 1));
        let newer = pattern(900, 2);
        let mut w = store.create_rbw(B, GenStamp(2)).expect("create");
        write_packets(&mut w, &newer);
        w.sync().expect("sync");
        drop(w);
        drop(store);
        let l = layout(&dir);
        fs::rename(l.rbw_meta(B, GenStamp(2)), l.finalized_meta(B, GenStamp(2)))
            .expect("rename meta");
        if renamed_block {
            fs::rename(l.rbw_block(B), l.finalized_block(B)).expect("rename block");
        }

        let (store, report) = reopen(&dir);
        assert!(report.corrupt.is_empty(), "{report:?}");
        assert_eq!(report.rolled_forward.len(), usize::from(!renamed_block));
        assert_eq!(read_block(&store, B, GenStamp(2)), newer);
        assert!(
            !l.finalized_meta(B, GenStamp(1)).exists(),
            "stale meta removed"
        );
        assert!(files_in(&l.rbw).is_empty());
    }
}

#[test]
fn a_truncated_meta_header_or_a_wrong_magic_makes_a_replica_corrupt() {
    let (dir, store) = open_store();
    let truncated = BlockId(1);
    let wrong_magic = BlockId(2);
    let rbw_bad = BlockId(3);
    write_block(&store, truncated, GS, &[]);
    write_block(&store, wrong_magic, GS, &pattern(600, 1));
    let mut w = store.create_rbw(rbw_bad, GS).expect("create");
    write_packets(&mut w, &pattern(600, 1));
    w.sync().expect("sync");
    drop(w);
    drop(store);
    let l = layout(&dir);
    let meta = OpenOptions::new()
        .write(true)
        .open(l.finalized_meta(truncated, GS))
        .expect("open");
    meta.set_len(5).expect("truncate");
    flip_byte(&l.finalized_meta(wrong_magic, GS), 0);
    flip_byte(&l.rbw_meta(rbw_bad, GS), 1);

    let (store, report) = reopen(&dir);
    let mut reasons: Vec<_> = report
        .corrupt
        .iter()
        .map(|c| (c.block, c.state, c.reason))
        .collect();
    reasons.sort_by_key(|r| r.0);
    assert_eq!(
        reasons,
        vec![
            (
                truncated,
                ReplicaState::Finalized,
                Corruption::TruncatedHeader { meta_len: 5 }
            ),
            (
                wrong_magic,
                ReplicaState::Finalized,
                Corruption::BadMagic { found: *b"\x04FSM" }
            ),
            (
                rbw_bad,
                ReplicaState::Rbw,
                Corruption::BadMagic { found: *b"D\x06SM" }
            ),
        ]
    );
    assert!(store.replicas().is_empty());
    assert!(report.rbw.is_empty());
}

#[test]
fn orphan_files_are_moved_aside_as_corrupt() {
    let (dir, store) = open_store();
    write_block(&store, B, GS, &pattern(600, 1));
    let mut w = store.create_rbw(BlockId(5), GS).expect("create");
    write_packets(&mut w, &pattern(600, 1));
    drop(w);
    drop(store);
    let l = layout(&dir);
    fs::remove_file(l.finalized_block(B)).expect("rm block");
    fs::remove_file(l.rbw_meta(BlockId(5), GS)).expect("rm meta");

    let (store, report) = reopen(&dir);
    let mut reasons: Vec<_> = report.corrupt.iter().map(|c| (c.block, c.reason)).collect();
    reasons.sort_by_key(|r| r.0);
    assert_eq!(
        reasons,
        vec![
            (BlockId(5), Corruption::MissingMeta),
            (B, Corruption::MissingBlock)
        ]
    );
    assert!(store.replicas().is_empty());
    assert_eq!(files_in(&l.corrupt).len(), 2);
}

#[test]
fn garbage_names_in_the_dirs_are_ignored_and_left_alone() {
    let (dir, store) = open_store();
    write_block(&store, B, GS, &pattern(600, 1));
    drop(store);
    let l = layout(&dir);
    let garbage: Vec<PathBuf> = vec![
        l.rbw.join("notes.txt"),
        l.rbw.join("blk_007"),
        l.rbw.join("blk_1_x.meta"),
        l.finalized.join("blk_9"),
        l.finalized.join("subdirX"),
        l.finalized_dir(B).join("blk_12.tmp"),
        // A well-formed name in another block's subdir.
        l.finalized_dir(B).join("blk_0"),
    ];
    for path in &garbage {
        fs::write(path, b"junk").expect("write garbage");
    }
    fs::create_dir(l.rbw.join("subdir0")).expect("a dir where files belong");
    fs::write(l.tmp.join("scratch"), b"x").expect("scratch");

    let (store, report) = reopen(&dir);
    let mut ignored = report.ignored.clone();
    ignored.sort();
    let mut expected = garbage.clone();
    expected.push(l.rbw.join("subdir0"));
    expected.sort();
    assert_eq!(ignored, expected);
    assert!(report.corrupt.is_empty());
    assert!(garbage.iter().all(|p| p.exists()), "left alone");
    assert_eq!(read_block(&store, B, GS), pattern(600, 1));
    assert!(files_in(&l.tmp).is_empty(), "tmp is scratch");
}

#[test]
fn writers_and_readers_on_several_threads_share_one_store() {
    let (_dir, store) = open_store();
    write_block(&store, B, GS, &pattern(PACKET * 3, 7));
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let store = &store;
            s.spawn(move || {
                let block = BlockId(1000 + u64::from(t));
                let data = pattern(PACKET * 2 + usize::from(t), t);
                write_block(store, block, GS, &data);
                assert_eq!(read_block(store, block, GS), data);
                assert_eq!(read_block(store, B, GS), pattern(PACKET * 3, 7));
            });
        }
    });
    assert_eq!(store.replicas().len(), 5);
}

#[test]
fn recover_rbw_bumps_a_leftover_cuts_it_inside_a_chunk_and_continues() {
    let (dir, store) = open_store();
    let data = pattern(5000, 3);
    let mut w = store.create_rbw(B, GenStamp(1)).expect("create");
    write_packets(&mut w, &data[..3000]);
    assert!(
        matches!(
            store.recover_rbw(B, GenStamp(1), GenStamp(2), 1000),
            Err(Error::ReplicaExists { .. })
        ),
        "a live writer is never taken over"
    );
    drop(w);
    assert!(matches!(
        store.recover_rbw(B, GenStamp(5), GenStamp(6), 1000),
        Err(Error::GenStampMismatch { .. })
    ));
    let mut w = store
        .recover_rbw(B, GenStamp(1), GenStamp(2), 1000)
        .expect("recover");
    assert_eq!(w.len(), 1000);
    assert!(layout(&dir).rbw_meta(B, GenStamp(2)).exists());
    // The client resends from the chunk boundary below the acked length.
    w.write_packet(
        512,
        &data[512..5000],
        &chunk_checksums(&data[512..5000]),
        true,
    )
    .expect("resend");
    let info = store.finalize(w).expect("finalize");
    assert_eq!((info.gen_stamp, info.length), (GenStamp(2), 5000));
    assert_eq!(read_block(&store, B, GenStamp(2)), data);
}

#[test]
fn recover_rbw_moves_a_finalized_replica_back_and_a_replacement_keeps_its_new_stamp() {
    let (_dir, store) = open_store();
    let data = pattern(2000, 4);
    write_block(&store, B, GenStamp(1), &data);
    let w = store
        .recover_rbw(B, GenStamp(1), GenStamp(2), 1500)
        .expect("recover finalized");
    assert_eq!(w.len(), 2000, "a finalized replica is not cut back");
    assert!(store.replicas().is_empty(), "no longer finalized");
    assert!(store.open_finalized(B, GenStamp(2)).is_err());
    drop(w);
    // Already under the new stamp (a replacement): accepted as it is.
    let mut w = store
        .recover_rbw(B, GenStamp(1), GenStamp(2), 1500)
        .expect("recover again");
    w.write_packet(1024, &data[1024..], &chunk_checksums(&data[1024..]), true)
        .expect("rest");
    store.finalize(w).expect("finalize");
    assert_eq!(read_block(&store, B, GenStamp(2)), data);
    drop(store);
}

#[test]
fn a_recovery_never_shortens_or_overwrites_a_finalized_replica() {
    let (_dir, store) = open_store();
    let data = pattern(3000, 6);
    write_block(&store, B, GenStamp(1), &data);
    // The forged "recovery, acked length 0" of issue 9.
    let mut w = store
        .recover_rbw(B, GenStamp(1), GenStamp(2), 0)
        .expect("reopen");
    assert_eq!((w.len(), w.finalized_floor()), (3000, 3000));
    let other = pattern(3000, 99);
    w.write_packet(0, &other, &chunk_checksums(&other), true)
        .expect("a resend inside the finalized bytes is taken as already written");
    let straddling = pattern(1000, 98);
    assert!(matches!(
        w.write_packet(2560, &straddling, &chunk_checksums(&straddling), true),
        Err(Error::InvalidPacket {
            reason: PacketFault::BelowFinalized { floor: 3000 },
            ..
        })
    ));
    drop(w);
    // The floor survives a second recovery of the rbw it became.
    let w = store
        .recover_rbw(B, GenStamp(2), GenStamp(3), 0)
        .expect("again");
    assert_eq!((w.len(), w.finalized_floor()), (3000, 3000));
    store.finalize(w).expect("finalize");
    assert_eq!(read_block(&store, B, GenStamp(3)), data);
    // An append past the floor still works.
    let mut w = store
        .recover_rbw(B, GenStamp(3), GenStamp(4), 3000)
        .expect("reopen to append");
    let tail = pattern(600, 7);
    let mut whole = data.clone();
    whole.extend_from_slice(&tail);
    let from = 2560;
    w.write_packet(
        from as u64,
        &whole[from..],
        &chunk_checksums(&whole[from..]),
        true,
    )
    .expect_err("rewriting the partial last chunk would overwrite finalized bytes");
    drop(w);
}

#[test]
fn open_prefix_reads_an_rbw_prefix_with_a_recomputed_tail_checksum() {
    let (_dir, store) = open_store();
    let data = pattern(3000, 5);
    let mut w = store.create_rbw(B, GenStamp(1)).expect("create");
    write_packets(&mut w, &data);
    assert!(matches!(
        store.open_prefix(B, GenStamp(1), 1700),
        Err(Error::ReplicaExists { .. })
    ));
    drop(w);
    let mut r = store.open_prefix(B, GenStamp(2), 1700).expect("prefix");
    let (start, got, sums) = r.read_chunks(0, 10_000).expect("read");
    assert_eq!((start, got.as_slice()), (0, &data[..1700]));
    verify_chunks(&got, &sums).expect("the cut chunk's checksum is recomputed");
    assert_eq!(r.read_all_checksums().expect("sums"), sums);
    assert!(matches!(
        store.open_prefix(B, GenStamp(1), 3001),
        Err(Error::CorruptReplica { .. })
    ));
    assert!(matches!(
        store.open_prefix(B, GenStamp(0), 10),
        Err(Error::GenStampMismatch { .. })
    ));
}

#[test]
fn a_discarding_store_finalizes_the_full_length_but_keeps_no_data() {
    let (dir, mut store) = open_store();
    store.set_discard_data(true);
    let data = pattern(3 * PACKET + 100, 7);
    let info = write_block(&store, B, GS, &data);
    assert_eq!(info.length, data.len() as u64);
    let l = layout(&dir);
    assert_eq!(file_len(&l.finalized_block(B)), 0);
    assert!(
        store.open_finalized(B, GS).is_err(),
        "a replica without its data cannot be read back"
    );
}

#[test]
fn finalize_rbw_cuts_a_left_replica_inside_a_chunk_and_serves_it() {
    let (_dir, store) = open_store();
    let data = pattern(3 * PACKET + 700, 9);
    let mut w = store.create_rbw(B, GS).expect("create");
    write_packets(&mut w, &data);
    drop(w);
    let left = store.abandoned_rbw_of(B).expect("left without a writer");
    assert_eq!(left.length, data.len() as u64);
    assert_eq!(store.abandoned_rbw(), vec![left]);
    // Lease recovery settled on a length inside a chunk.
    let length = 2 * PACKET as u64 + 1000;
    let info = store.finalize_rbw(B, GS, length).expect("finalize rbw");
    assert_eq!(
        info,
        ReplicaInfo {
            block: B,
            gen_stamp: GS,
            length
        }
    );
    assert_eq!(read_block(&store, B, GS), &data[..length as usize]);
    assert!(store.abandoned_rbw().is_empty());
    // Asked again (a repeated command): already done.
    assert_eq!(store.finalize_rbw(B, GS, length).expect("again"), info);
}

#[test]
fn finalize_rbw_refuses_a_short_replica_another_stamp_or_a_live_writer() {
    let (_dir, store) = open_store();
    let mut w = store.create_rbw(B, GS).expect("create");
    write_packets(&mut w, &pattern(1000, 1));
    assert!(store.abandoned_rbw_of(B).is_none(), "a writer holds it");
    assert!(matches!(
        store.finalize_rbw(B, GS, 500),
        Err(Error::ReplicaExists { .. })
    ));
    drop(w);
    assert!(matches!(
        store.finalize_rbw(B, GenStamp(GS.0 + 1), 500),
        Err(Error::GenStampMismatch { .. })
    ));
    assert!(matches!(
        store.finalize_rbw(B, GS, 2000),
        Err(Error::CorruptReplica { .. })
    ));
    assert!(matches!(
        store.finalize_rbw(BlockId(7), GS, 1),
        Err(Error::ReplicaNotFound { .. })
    ));
}

#[test]
fn an_append_inside_a_partial_last_chunk_extends_its_stored_checksum() {
    use dfs_proto::checksum::chunk_checksums_at;
    let (_dir, store) = open_store();
    let old = pattern(1000, 5);
    write_block(&store, B, GenStamp(1), &old);
    let new = pattern(3000, 6);
    let mut w = store
        .recover_rbw(B, GenStamp(1), GenStamp(2), 1000)
        .expect("reopen for append");
    assert_eq!((w.len(), w.finalized_floor()), (1000, 1000));
    // A packet below the boundary whose first checksum is wrong is refused whole.
    let mut bad = chunk_checksums_at(1000, &new[..24]);
    bad[0] ^= 1;
    assert!(matches!(
        w.write_packet(1000, &new[..24], &bad, true),
        Err(Error::ChecksumMismatch { offset: 1000, .. })
    ));
    assert_eq!(w.len(), 1000);
    // The first packet completes the chunk only; the next spans many.
    w.write_packet(
        1000,
        &new[..24],
        &chunk_checksums_at(1000, &new[..24]),
        true,
    )
    .expect("head");
    w.write_packet(1024, &new[24..], &chunk_checksums(&new[24..]), true)
        .expect("rest");
    store.finalize(w).expect("finalize");
    let expected: Vec<u8> = old.iter().chain(&new).copied().collect();
    assert_eq!(read_block(&store, B, GenStamp(2)), expected);

    // One packet that starts inside a chunk and crosses boundaries.
    let (_dir, store) = open_store();
    write_block(&store, B, GenStamp(1), &old);
    let mut w = store
        .recover_rbw(B, GenStamp(1), GenStamp(2), 1000)
        .expect("reopen for append");
    w.write_packet(1000, &new, &chunk_checksums_at(1000, &new), true)
        .expect("spanning packet");
    // A misplaced one inside a chunk is not the length: refused.
    assert!(matches!(
        w.write_packet(3999, &new[..1], &chunk_checksums_at(3999, &new[..1]), true),
        Err(Error::InvalidPacket { .. })
    ));
    store.finalize(w).expect("finalize");
    assert_eq!(read_block(&store, B, GenStamp(2)), expected);
}

#[test]
fn finalize_rbw_moves_an_unwritten_reopened_replica_to_the_new_stamp() {
    let (_dir, store) = open_store();
    let data = pattern(1000, 7);
    write_block(&store, B, GenStamp(1), &data);
    assert!(
        store.finalize_rbw(B, GenStamp(3), 999).is_err(),
        "another length"
    );
    let info = store.finalize_rbw(B, GenStamp(3), 1000).expect("restamp");
    assert_eq!((info.gen_stamp, info.length), (GenStamp(3), 1000));
    assert_eq!(read_block(&store, B, GenStamp(3)), data);
    assert!(store.open_finalized(B, GenStamp(1)).is_err());
}
