//! Blocks and leases: the write path (Create, AddBlock, AbandonBlock,
//! BumpGenStamp, Complete), the blocks that apply frees, and the block queries.

use proptest::prelude::*;

use super::namespace_test::{
    CLIENT, Fixture, MIB, alice, bob, complete, create, create_with, delete, hdfs, mkdir_p, policy,
    rename, setrep,
};
use super::tree::{FIRST_BLOCK_ID, FIRST_GEN_STAMP};
use super::*;
use crate::txn::{GenStamp, Txn};

/// Another client process, not holding any lease.
const OTHER: &str = "0ther";

fn add_block(path: &str, client: &str, previous: Option<BlockRecord>) -> Op {
    Op::AddBlock {
        path: path.into(),
        client: client.into(),
        previous,
    }
}
fn abandon(path: &str, client: &str, block: BlockId) -> Op {
    Op::AbandonBlock {
        path: path.into(),
        client: client.into(),
        block,
    }
}
fn bump(path: &str, client: &str, block: BlockId) -> Op {
    Op::BumpGenStamp {
        path: path.into(),
        client: client.into(),
        block,
    }
}

/// `op` (a Create) from client `who`.
fn by(who: &str, mut op: Op) -> Op {
    if let Op::Create { client, .. } = &mut op {
        *client = who.to_owned();
    }
    op
}

/// `block` as the client reports it after writing `length` bytes.
fn written(block: BlockRecord, length: u64) -> Option<BlockRecord> {
    Some(BlockRecord { length, ..block })
}

impl Fixture {
    /// AddBlock as `CLIENT`; returns the new block.
    fn add(&mut self, path: &str, previous: Option<BlockRecord>) -> BlockRecord {
        match self.ok(add_block(path, CLIENT, previous), &hdfs()) {
            Some(Txn::AddBlock { block, .. }) => block,
            other => panic!("AddBlock of {path} gave {other:?}"),
        }
    }

    /// The file's blocks as hdfs reads them.
    fn blocks(&self, path: &str) -> FileBlocks {
        self.ns
            .block_locations(path, &hdfs(), 0, 0)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A file written by `CLIENT` in blocks of these lengths, then closed.
    fn write_file(&mut self, path: &str, lengths: &[u64]) -> Vec<BlockRecord> {
        self.ok(create_with(path, false, true, 3), &hdfs());
        let mut previous = None;
        let mut blocks = Vec::new();
        for &length in lengths {
            let block = self.add(path, previous);
            previous = written(block, length);
            blocks.push(BlockRecord { length, ..block });
        }
        self.ok(complete(path, CLIENT, previous), &hdfs());
        blocks
    }
}

fn ids(blocks: &[BlockRecord]) -> Vec<BlockId> {
    blocks.iter().map(|b| b.id).collect()
}

#[test]
fn a_file_is_as_long_as_its_committed_blocks() {
    let mut f = Fixture::new();
    f.ok(create("/f"), &hdfs());
    assert_eq!(f.info("/f").length, 0);
    let first = f.add("/f", None);
    assert_eq!(first.id, FIRST_BLOCK_ID);
    assert_eq!(first.gen_stamp, FIRST_GEN_STAMP);
    assert_eq!(first.length, 0);
    let second = f.add("/f", written(first, 128 * MIB));
    assert_eq!(second.id, BlockId(FIRST_BLOCK_ID.0 + 1));
    assert!(second.gen_stamp > first.gen_stamp);
    // The block being written counts 0 until the next AddBlock commits it.
    assert_eq!(f.info("/f").length, 128 * MIB);
    let third = f.add("/f", written(second, 128 * MIB));
    assert_eq!(f.info("/f").length, 256 * MIB);
    assert!(f.blocks("/f").under_construction);

    f.ok(complete("/f", CLIENT, written(third, 5)), &hdfs());
    assert_eq!(f.info("/f").length, 256 * MIB + 5);
    let blocks = f.blocks("/f");
    assert!(!blocks.under_construction);
    assert_eq!(blocks.length, 256 * MIB + 5);
    assert_eq!(
        blocks.blocks,
        vec![
            (
                0,
                BlockRecord {
                    length: 128 * MIB,
                    ..first
                }
            ),
            (
                128 * MIB,
                BlockRecord {
                    length: 128 * MIB,
                    ..second
                }
            ),
            (256 * MIB, BlockRecord { length: 5, ..third }),
        ]
    );
    // Complete set the file's mtime.
    assert_eq!(f.info("/f").mtime_ms, f.now_ms);
}

#[test]
fn an_empty_file_is_completed_without_blocks() {
    let mut f = Fixture::new();
    f.ok(create("/e"), &hdfs());
    f.ok(complete("/e", CLIENT, None), &hdfs());
    let blocks = f.blocks("/e");
    assert!(!blocks.under_construction);
    assert!(blocks.blocks.is_empty());
    assert_eq!(blocks.length, 0);
}

#[test]
fn only_the_lease_holder_may_add_blocks() {
    let mut f = Fixture::new();
    f.ok(create("/f"), &hdfs());
    let block = f.add("/f", None);
    // The same user from another client process holds no lease either.
    let err = f.err(add_block("/f", OTHER, written(block, 1)), &hdfs());
    assert!(
        matches!(&err, Error::LeaseMismatch { holder: Some(h), client, .. } if h == CLIENT && client == OTHER),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "No lease on /f: lease held by c0ffee, not by 0ther."
    );
    for op in [
        abandon("/f", OTHER, block.id),
        bump("/f", OTHER, block.id),
        complete("/f", OTHER, written(block, 1)),
    ] {
        let err = f.err(op.clone(), &hdfs());
        assert!(matches!(err, Error::LeaseMismatch { .. }), "{op:?}: {err}");
    }
    f.ok(complete("/f", CLIENT, written(block, 1)), &hdfs());
    // Once closed, nobody holds a lease on it.
    let err = f.err(add_block("/f", CLIENT, written(block, 1)), &hdfs());
    assert_eq!(
        err.to_string(),
        "No lease on /f: File is not open for writing."
    );
    assert!(matches!(
        f.err(bump("/f", CLIENT, block.id), &hdfs()),
        Error::LeaseMismatch { holder: None, .. }
    ));
    // Directories and missing files are not leases at all.
    f.ok(mkdir_p("/d"), &hdfs());
    assert!(matches!(
        f.err(add_block("/d", CLIENT, None), &hdfs()),
        Error::IsADirectory { .. }
    ));
    assert!(matches!(
        f.err(add_block("/nope", CLIENT, None), &hdfs()),
        Error::NotFound { .. }
    ));
    assert!(matches!(
        f.err(add_block("/f", "", None), &hdfs()),
        Error::InvalidArgument {
            field: "client",
            ..
        }
    ));
}

#[test]
fn a_previous_block_that_is_not_the_files_last_is_refused() {
    let mut f = Fixture::new();
    f.ok(create("/f"), &hdfs());
    let first = f.add("/f", None);
    let second = f.add("/f", written(first, 7));
    let stranger = BlockRecord {
        id: BlockId(42),
        gen_stamp: GenStamp(1001),
        length: 0,
    };
    let err = f.err(add_block("/f", CLIENT, Some(stranger)), &hdfs());
    assert!(
        matches!(err, Error::BlockMismatch { expected, got, .. } if expected == Some(second) && got == Some(stranger)),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("'/f': the file's last block is {second}, not blk_42_1001")
    );
    // No previous while the file has blocks, and the one before the last
    // while the last has bytes, are mismatches too.
    let second_with_bytes = f.add("/f", written(second, 9));
    let _ = second_with_bytes;
    assert!(matches!(
        f.err(add_block("/f", CLIENT, None), &hdfs()),
        Error::BlockMismatch { got: None, .. }
    ));
    // Longer than a block: refused.
    let huge = written(second, 128 * MIB + 1);
    assert!(matches!(
        f.err(add_block("/f", CLIENT, huge), &hdfs()),
        Error::InvalidArgument {
            field: "previous",
            ..
        }
    ));
    // A file without blocks takes only `None`.
    f.ok(create("/g"), &hdfs());
    assert!(matches!(
        f.err(add_block("/g", CLIENT, Some(first)), &hdfs()),
        Error::BlockMismatch { expected: None, .. }
    ));
}

#[test]
fn a_retried_add_block_gets_the_block_it_already_got() {
    let mut f = Fixture::new();
    f.ok(create("/f"), &hdfs());
    let first = f.add("/f", None);
    // The answer was lost: the same request again allocates nothing.
    assert_eq!(f.ok(add_block("/f", CLIENT, None), &hdfs()), None);
    let second = f.add("/f", written(first, 10));
    assert_eq!(
        f.ok(add_block("/f", CLIENT, written(first, 10)), &hdfs()),
        None
    );
    assert_eq!(
        ids(&f
            .blocks("/f")
            .blocks
            .iter()
            .map(|b| b.1)
            .collect::<Vec<_>>()),
        vec![first.id, second.id]
    );
    assert_eq!(f.ns.tree.next_block_id(), BlockId(second.id.0 + 1));
}

#[test]
fn abandon_drops_the_last_block_and_frees_it() {
    let mut f = Fixture::new();
    f.ok(create("/f"), &hdfs());
    let first = f.add("/f", None);
    let second = f.add("/f", written(first, 3));
    let err = f.err(abandon("/f", CLIENT, first.id), &hdfs());
    assert!(
        matches!(err, Error::NotLastBlock { block, last, .. } if block == first.id && last == Some(second.id)),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "'/f': {} is not the file's last block ({})",
            first.id, second.id
        )
    );
    f.ok(abandon("/f", CLIENT, second.id), &hdfs());
    assert_eq!(f.freed, vec![second]);
    assert_eq!(f.ns.block_owner(second.id), None);
    let blocks = f.blocks("/f");
    assert_eq!(blocks.blocks, vec![(0, written(first, 3).unwrap())]);
    assert_eq!(blocks.length, 3);
    // The client asks again with the committed block as previous; ids are
    // never reused.
    let third = f.add("/f", written(first, 3));
    assert_eq!(third.id, BlockId(second.id.0 + 1));
    f.ok(abandon("/f", CLIENT, third.id), &hdfs());
    f.ok(abandon("/f", CLIENT, first.id), &hdfs());
    assert!(matches!(
        f.err(abandon("/f", CLIENT, first.id), &hdfs()),
        Error::NotLastBlock { last: None, .. }
    ));
}

#[test]
fn a_bump_gives_a_higher_gen_stamp_and_the_old_one_is_then_refused_as_previous() {
    let mut f = Fixture::new();
    f.ok(create("/f"), &hdfs());
    let first = f.add("/f", None);
    let Some(Txn::BumpGenStamp { gen_stamp, .. }) = f.ok(bump("/f", CLIENT, first.id), &hdfs())
    else {
        panic!("no bump");
    };
    assert!(gen_stamp > first.gen_stamp);
    let bumped = BlockRecord { gen_stamp, ..first };
    assert_eq!(f.ns.block_owner(first.id).unwrap().record, bumped);
    let err = f.err(add_block("/f", CLIENT, written(first, 4)), &hdfs());
    assert!(matches!(err, Error::BlockMismatch { .. }), "{err}");
    assert!(
        f.err(complete("/f", CLIENT, written(first, 4)), &hdfs())
            .to_string()
            .contains(&bumped.to_string())
    );
    let second = f.add("/f", written(bumped, 4));
    assert!(second.gen_stamp > gen_stamp);
    // Only the last block is bumped.
    assert!(matches!(
        f.err(bump("/f", CLIENT, first.id), &hdfs()),
        Error::NotLastBlock { .. }
    ));
}

#[test]
fn complete_is_idempotent_for_the_same_client() {
    let mut f = Fixture::new();
    f.ok(create("/f"), &hdfs());
    let block = f.add("/f", None);
    f.ok(complete("/f", CLIENT, written(block, 8)), &hdfs());
    let digest = f.ns.digest();
    assert_eq!(
        f.ok(complete("/f", CLIENT, written(block, 8)), &hdfs()),
        None
    );
    assert_eq!(f.ns.digest(), digest);
    // Another block is not a retry.
    let stale = BlockRecord {
        gen_stamp: GenStamp(block.gen_stamp.0 + 100),
        ..block
    };
    assert!(matches!(
        f.err(complete("/f", CLIENT, Some(stale)), &hdfs()),
        Error::LeaseMismatch { holder: None, .. }
    ));
    // While open, the last block must match.
    f.ok(create("/g"), &hdfs());
    assert!(matches!(
        f.err(complete("/g", CLIENT, Some(block)), &hdfs()),
        Error::BlockMismatch { .. }
    ));
}

#[test]
fn create_over_a_file_being_written_is_refused_unless_its_writer_overwrites() {
    let mut f = Fixture::new();
    f.ok(create("/f"), &hdfs());
    let block = f.add("/f", None);
    let other = by(OTHER, create_with("/f", true, false, 3));
    let err = f.err(other, &hdfs());
    assert_eq!(
        err.to_string(),
        "Failed to CREATE_FILE /f for 0ther because this file lease is currently owned by c0ffee"
    );
    assert!(matches!(
        f.err(create("/f"), &hdfs()),
        Error::AlreadyBeingCreated { .. }
    ));
    // The writer itself may start over; the old blocks are freed.
    f.ok(create_with("/f", true, false, 3), &hdfs());
    assert_eq!(f.freed, vec![block]);
    assert!(f.blocks("/f").blocks.is_empty());
}

#[test]
fn overwrite_and_delete_free_blocks_and_rename_keeps_them() {
    let mut f = Fixture::new();
    let a = f.write_file("/d/a", &[MIB, 1]);
    let b = f.write_file("/d/e/b", &[2]);
    let c = f.write_file("/c", &[3, 4]);

    f.ok(rename("/d", "/moved"), &hdfs());
    assert!(f.freed.is_empty());
    assert_eq!(f.blocks("/moved/a").length, MIB + 1);

    f.ok(create_with("/c", true, false, 1), &hdfs());
    assert_eq!(f.freed, c);
    assert!(c.iter().all(|blk| f.ns.block_owner(blk.id).is_none()));

    f.ok(delete("/moved", true), &hdfs());
    assert_eq!(f.freed, [a.clone(), b.clone()].concat(), "in tree order");
    assert_eq!(f.ns.block_ids().count(), 0);
    // Frees are journaled state changes: replay frees the same blocks.
    let mut replica = Namespace::new(policy());
    let mut freed = Vec::new();
    for txn in &f.log {
        freed.extend(replica.apply(txn).unwrap());
    }
    assert_eq!(ids(&freed), ids(&[c, a, b].concat()));
}

#[test]
fn files_being_written_may_be_renamed_and_deleted() {
    let mut f = Fixture::new();
    f.ok(create("/f"), &hdfs());
    let block = f.add("/f", None);
    f.ok(rename("/f", "/g"), &hdfs());
    let owner = f.ns.block_owner(block.id).unwrap();
    assert!(owner.is_last_under_construction);
    assert_eq!(owner.path, "/g");
    // The lease moved with the file.
    let second = f.add("/g", written(block, 1));
    f.ok(delete("/g", false), &hdfs());
    assert_eq!(f.freed, vec![written(block, 1).unwrap(), second]);
}

#[test]
fn block_locations_give_offsets_and_filter_by_range() {
    let mut f = Fixture::new();
    let blocks = f.write_file("/f", &[100, 100, 50]);
    let at = |f: &Fixture, offset, length| -> Vec<u64> {
        f.ns.block_locations("/f", &hdfs(), offset, length)
            .unwrap()
            .blocks
            .iter()
            .map(|(o, _)| *o)
            .collect()
    };
    assert_eq!(at(&f, 0, 0), vec![0, 100, 200]);
    assert_eq!(at(&f, 0, 100), vec![0]);
    assert_eq!(at(&f, 0, 101), vec![0, 100]);
    assert_eq!(at(&f, 99, 2), vec![0, 100]);
    assert_eq!(at(&f, 150, 0), vec![100, 200]);
    assert_eq!(at(&f, 249, 1), vec![200]);
    assert_eq!(at(&f, 250, 0), Vec::<u64>::new(), "at the end");
    assert_eq!(at(&f, u64::MAX, u64::MAX), Vec::<u64>::new());
    let all = f.ns.block_locations("/f", &hdfs(), 0, 0).unwrap();
    assert_eq!((all.length, all.replication), (250, 3));
    assert_eq!(all.blocks.get(2).map(|b| b.1), blocks.get(2).copied());

    // An empty block stands where it is.
    f.write_file("/z", &[0, 5]);
    let z = f.ns.block_locations("/z", &hdfs(), 0, 0).unwrap();
    assert_eq!(z.blocks.iter().map(|b| b.0).collect::<Vec<_>>(), vec![0, 0]);

    // A file being written shows its last block from its start on.
    f.ok(create("/w"), &hdfs());
    let first = f.add("/w", None);
    let second = f.add("/w", written(first, 10));
    let w = f.ns.block_locations("/w", &hdfs(), 10, 0).unwrap();
    assert!(w.under_construction);
    assert_eq!(w.length, 10);
    assert_eq!(w.blocks, vec![(10, second)]);
    let w = f.ns.block_locations("/w", &hdfs(), 500, 1).unwrap();
    assert_eq!(w.blocks, vec![(10, second)]);
    let w = f.ns.block_locations("/w", &hdfs(), 0, 10).unwrap();
    assert_eq!(w.blocks, vec![(0, written(first, 10).unwrap())]);

    // READ on the file, and a directory has no blocks.
    f.ok(
        Op::SetPermission {
            path: "/f".into(),
            mode: 0o600,
        },
        &hdfs(),
    );
    assert!(matches!(
        f.ns.block_locations("/f", &alice(), 0, 0),
        Err(Error::PermissionDenied { .. })
    ));
    assert!(matches!(
        f.ns.block_locations("/", &hdfs(), 0, 0),
        Err(Error::IsADirectory { .. })
    ));
}

#[test]
fn block_owner_follows_renames_and_forgets_deleted_blocks() {
    let mut f = Fixture::new();
    let blocks = f.write_file("/a/b/f", &[1, 2]);
    let [first, second] = blocks.as_slice() else {
        panic!("two blocks")
    };
    f.ok(setrep("/a/b/f", 5), &hdfs());
    assert_eq!(
        f.ns.block_owner(second.id),
        Some(BlockOwner {
            record: *second,
            replication: 5,
            block_size: 128 * MIB,
            is_last_under_construction: false,
            reopened_from: None,
            path: "/a/b/f".into(),
        })
    );
    f.ok(rename("/a", "/x"), &hdfs());
    f.ok(rename("/x/b/f", "/x/g"), &hdfs());
    assert_eq!(f.ns.block_owner(first.id).unwrap().path, "/x/g");
    f.ok(delete("/x", true), &hdfs());
    assert_eq!(f.ns.block_owner(first.id), None);
    assert_eq!(f.ns.block_owner(BlockId(7)), None);
}

#[test]
fn only_a_reader_of_its_file_learns_a_blocks_owner_for_a_bad_replica_report() {
    let mut f = Fixture::new();
    let blocks = f.write_file("/a/f", &[1]);
    let block = blocks[0].id;
    assert_eq!(
        f.ns.readable_block_owner(block, &alice())
            .unwrap()
            .map(|o| o.path),
        Some("/a/f".to_owned())
    );
    f.ok(
        Op::SetPermission {
            path: "/a/f".into(),
            mode: 0o600,
        },
        &hdfs(),
    );
    assert!(matches!(
        f.ns.readable_block_owner(block, &alice()),
        Err(Error::PermissionDenied { .. })
    ));
    assert!(f.ns.readable_block_owner(block, &hdfs()).unwrap().is_some());
    assert!(matches!(
        f.ns.readable_block_owner(BlockId(7), &alice()),
        Ok(None)
    ));
}

#[test]
fn walk_files_lists_every_file_below_a_path_with_its_blocks() {
    let mut f = Fixture::new();
    f.write_file("/d/x", &[1]);
    f.write_file("/d/s/y", &[2, 3]);
    f.write_file("/e", &[4]);
    let files = f.ns.walk_files("/d", &hdfs()).unwrap();
    let summary: Vec<(&str, u64, usize)> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.length, b.blocks.len()))
        .collect();
    assert_eq!(summary, vec![("/d/s/y", 5, 2), ("/d/x", 1, 1)]);
    assert_eq!(f.ns.walk_files("/e", &hdfs()).unwrap().len(), 1);
    f.ok(
        Op::SetPermission {
            path: "/d/s".into(),
            mode: 0o700,
        },
        &hdfs(),
    );
    assert!(matches!(
        f.ns.walk_files("/d", &bob()),
        Err(Error::PermissionDenied { .. })
    ));
}

#[test]
fn the_digest_sees_blocks_and_leases() {
    let mut f = Fixture::new();
    f.ok(create("/f"), &hdfs());
    let mut seen = vec![f.ns.digest()];
    let mut step = |f: &mut Fixture, op: Op| {
        f.ok(op.clone(), &hdfs());
        let digest = f.ns.digest();
        assert!(!seen.contains(&digest), "{op:?} left the digest unchanged");
        seen.push(digest);
    };
    step(&mut f, add_block("/f", CLIENT, None));
    let block = f.blocks("/f").blocks[0].1;
    step(&mut f, bump("/f", CLIENT, block.id));
    let block = f.blocks("/f").blocks[0].1;
    step(&mut f, abandon("/f", CLIENT, block.id));
    step(&mut f, add_block("/f", CLIENT, None));
    let block = f.blocks("/f").blocks[0].1;
    step(&mut f, complete("/f", CLIENT, written(block, 1)));
    // The same tree with another lease holder differs.
    let mut a = Fixture::new();
    let mut b = Fixture::new();
    a.ok(create("/f"), &hdfs());
    b.ok(by(OTHER, create("/f")), &hdfs());
    assert_ne!(a.ns.digest(), b.ns.digest());
}

#[test]
fn a_postcard_round_trip_keeps_the_digest_and_the_block_index() {
    let mut f = Fixture::new();
    let blocks = f.write_file("/d/f", &[1, 2, 3]);
    f.ok(create("/d/open"), &hdfs());
    let open = f.add("/d/open", None);
    let bytes = postcard::to_stdvec(&f.ns).unwrap();
    let mut loaded: Namespace = postcard::from_bytes(&bytes).unwrap();
    loaded.set_policy(policy());
    assert_eq!(loaded.digest(), f.ns.digest());
    for block in &blocks {
        assert_eq!(loaded.block_owner(block.id), f.ns.block_owner(block.id));
        assert_eq!(loaded.block_owner(block.id).unwrap().path, "/d/f");
    }
    assert!(
        loaded
            .block_owner(open.id)
            .unwrap()
            .is_last_under_construction
    );
    // The lease and the counters survived: the writer goes on where it was.
    let mut f2 = Fixture {
        ns: loaded,
        ..Fixture::new()
    };
    let next = f2.add("/d/open", written(open, 9));
    assert_eq!(next.id, BlockId(open.id.0 + 1));
    f2.ok(rename("/d", "/e"), &hdfs());
    assert_eq!(f2.ns.block_owner(blocks[0].id).unwrap().path, "/e/f");
}

#[test]
fn an_image_with_a_block_in_two_files_or_above_the_counters_is_refused() {
    let mut f = Fixture::new();
    let blocks = f.write_file("/f", &[1]);
    f.write_file("/g", &[1]);
    let dup = {
        let mut ns = f.ns.clone();
        let g = ns
            .tree
            .resolve(&FsPath::parse("/g").unwrap())
            .target()
            .unwrap();
        if let Some(file) = ns.tree.file_mut(g) {
            file.blocks[0].id = blocks[0].id;
        }
        postcard::to_stdvec(&ns).unwrap()
    };
    assert!(postcard::from_bytes::<Namespace>(&dup).is_err());
    let above = {
        let mut ns = f.ns.clone();
        let g = ns
            .tree
            .resolve(&FsPath::parse("/g").unwrap())
            .target()
            .unwrap();
        if let Some(file) = ns.tree.file_mut(g) {
            file.blocks[0].id = BlockId(u64::MAX);
        }
        postcard::to_stdvec(&ns).unwrap()
    };
    assert!(postcard::from_bytes::<Namespace>(&above).is_err());
}

#[test]
fn block_txns_that_do_not_fit_the_tree_are_errors_and_change_nothing() {
    let mut f = Fixture::new();
    let closed = f.write_file("/closed", &[1]);
    f.ok(create("/f"), &hdfs());
    let first = f.add("/f", None);
    let fresh = |id: u64, gs: u64| BlockRecord {
        id: BlockId(id),
        gen_stamp: GenStamp(gs),
        length: 0,
    };
    let next = f.ns.tree.next_block_id().0;
    let next_gs = f.ns.tree.next_gen_stamp().0;
    let corrupt = [
        // A reused id, a reused stamp, a new block with bytes.
        Txn::AddBlock {
            path: "/f".into(),
            previous: Some(first),
            block: fresh(closed[0].id.0, next_gs),
        },
        Txn::AddBlock {
            path: "/f".into(),
            previous: Some(first),
            block: fresh(next, first.gen_stamp.0),
        },
        Txn::AddBlock {
            path: "/f".into(),
            previous: Some(first),
            block: BlockRecord {
                length: 1,
                ..fresh(next, next_gs)
            },
        },
        // Not the last block; a closed file; a directory; a missing file.
        Txn::AddBlock {
            path: "/f".into(),
            previous: None,
            block: fresh(next, next_gs),
        },
        Txn::AddBlock {
            path: "/closed".into(),
            previous: Some(closed[0]),
            block: fresh(next, next_gs),
        },
        Txn::AddBlock {
            path: "/".into(),
            previous: None,
            block: fresh(next, next_gs),
        },
        Txn::AbandonBlock {
            path: "/nope".into(),
            block: first.id,
        },
        Txn::AbandonBlock {
            path: "/closed".into(),
            block: closed[0].id,
        },
        Txn::BumpGenStamp {
            path: "/f".into(),
            block: first.id,
            gen_stamp: first.gen_stamp,
        },
        Txn::BumpGenStamp {
            path: "/f".into(),
            block: closed[0].id,
            gen_stamp: GenStamp(next_gs),
        },
        Txn::Complete {
            path: "/f".into(),
            last: None,
            mtime_ms: 1,
        },
        Txn::Complete {
            path: "/f".into(),
            last: written(first, 128 * MIB + 1),
            mtime_ms: 1,
        },
        Txn::Complete {
            path: "/closed".into(),
            last: Some(closed[0]),
            mtime_ms: 1,
        },
        Txn::Create {
            path: "/h".into(),
            perm: f.info("/f").perm,
            overwrite: false,
            replication: 3,
            block_size: MIB,
            mtime_ms: 1,
            client: "not a client".into(),
        },
    ];
    let before = (f.ns.digest(), f.ns.inode_count());
    for txn in corrupt {
        assert!(f.ns.apply(&txn).is_err(), "{txn:?} applied");
        assert_eq!((f.ns.digest(), f.ns.inode_count()), before, "{txn:?}");
    }
}

// --- property: random writes replay exactly ---

/// One step of a random write workload; indexes pick among a few files and
/// clients, and `stale` makes the client name an outdated block.
#[derive(Debug, Clone)]
enum Step {
    Create {
        file: usize,
        client: usize,
        overwrite: bool,
    },
    AddBlock {
        file: usize,
        client: usize,
        length: u64,
        stale: bool,
    },
    Abandon {
        file: usize,
        client: usize,
    },
    Bump {
        file: usize,
        client: usize,
    },
    Complete {
        file: usize,
        client: usize,
        length: u64,
        stale: bool,
    },
    Delete {
        file: usize,
    },
    Rename {
        file: usize,
        to: usize,
    },
}

const FILES: [&str; 4] = ["/a", "/b", "/d/c", "/d/e/f"];
const CLIENTS: [&str; 2] = [CLIENT, OTHER];

fn arb_step() -> impl Strategy<Value = Step> {
    let file = 0..FILES.len();
    // Mostly the writer, so that most block ops get through.
    let client = prop::sample::select(vec![0usize, 0, 0, 1]);
    let length = prop::sample::select(vec![0u64, 1, 512, MIB]);
    prop_oneof![
        3 => (file.clone(), client.clone(), any::<bool>())
            .prop_map(|(file, client, overwrite)| Step::Create { file, client, overwrite }),
        8 => (file.clone(), client.clone(), length.clone(), prop::bool::weighted(0.1))
            .prop_map(|(file, client, length, stale)| Step::AddBlock { file, client, length, stale }),
        1 => (file.clone(), client.clone()).prop_map(|(file, client)| Step::Abandon { file, client }),
        1 => (file.clone(), client.clone()).prop_map(|(file, client)| Step::Bump { file, client }),
        2 => (file.clone(), client.clone(), length, prop::bool::weighted(0.1))
            .prop_map(|(file, client, length, stale)| Step::Complete { file, client, length, stale }),
        1 => file.clone().prop_map(|file| Step::Delete { file }),
        1 => (file.clone(), file).prop_map(|(file, to)| Step::Rename { file, to }),
    ]
}

/// The file's last block as its writer would report it.
fn last_block(f: &Fixture, path: &str, length: u64, stale: bool) -> Option<BlockRecord> {
    let blocks = f.ns.block_locations(path, &hdfs(), 0, 0).ok()?;
    let (_, last) = blocks.blocks.last()?;
    let gen_stamp = if stale {
        GenStamp(last.gen_stamp.0.saturating_sub(1))
    } else {
        last.gen_stamp
    };
    Some(BlockRecord {
        length,
        gen_stamp,
        ..*last
    })
}

fn to_op(f: &Fixture, step: &Step) -> Op {
    let path = |i: usize| FILES[i].to_owned();
    let client = |i: usize| CLIENTS[i].to_owned();
    match *step {
        Step::Create {
            file,
            client: c,
            overwrite,
        } => by(&client(c), create_with(&path(file), overwrite, true, 2)),
        Step::AddBlock {
            file,
            client: c,
            length,
            stale,
        } => add_block(
            &path(file),
            &client(c),
            last_block(f, &path(file), length, stale),
        ),
        Step::Abandon { file, client: c } => {
            let id = last_block(f, &path(file), 0, false).map_or(BlockId(1), |b| b.id);
            abandon(&path(file), &client(c), id)
        }
        Step::Bump { file, client: c } => {
            let id = last_block(f, &path(file), 0, false).map_or(BlockId(1), |b| b.id);
            bump(&path(file), &client(c), id)
        }
        Step::Complete {
            file,
            client: c,
            length,
            stale,
        } => complete(
            &path(file),
            &client(c),
            last_block(f, &path(file), length, stale),
        ),
        Step::Delete { file } => delete(&path(file), true),
        Step::Rename { file, to } => rename(&path(file), &path(to)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_random_write_workload_replays_to_the_same_digest_and_next_ids(
        steps in proptest::collection::vec(arb_step(), 1..60)
    ) {
        let mut f = Fixture::new();
        f.ok(mkdir_p("/d/e"), &hdfs());
        let mut freed = Vec::new();
        for step in &steps {
            let op = to_op(&f, step);
            // run() panics if a checked txn fails to apply.
            if f.run(op, &hdfs()).is_ok() {
                freed.extend(f.freed.iter().copied());
            }
        }
        let mut replica = Namespace::new(policy());
        let mut replayed = Vec::new();
        for txn in &f.log {
            let decoded = super::namespace_test::journaled(txn);
            match replica.apply(&decoded) {
                Ok(blocks) => replayed.extend(blocks),
                Err(e) => prop_assert!(false, "{:?}: {}", txn, e),
            }
        }
        prop_assert_eq!(replica.digest(), f.ns.digest());
        prop_assert_eq!(replica.tree.next_block_id(), f.ns.tree.next_block_id());
        prop_assert_eq!(replica.tree.next_gen_stamp(), f.ns.tree.next_gen_stamp());
        prop_assert_eq!(replayed, freed);
        // The index agrees with a walk, in the original and after a load.
        let image: Namespace = postcard::from_bytes(&postcard::to_stdvec(&f.ns).unwrap()).unwrap();
        prop_assert_eq!(image.digest(), f.ns.digest());
        let files = f.ns.walk_files("/", &hdfs()).unwrap();
        let mut walked = 0;
        for (path, blocks) in &files {
            for (_, block) in &blocks.blocks {
                walked += 1;
                for ns in [&f.ns, &image] {
                    let owner = ns.block_owner(block.id);
                    prop_assert_eq!(owner.map(|o| (o.path, o.record)), Some((path.clone(), *block)));
                }
            }
        }
        prop_assert_eq!(walked, f.ns.block_ids().count());
        prop_assert_eq!(walked, image.block_ids().count());
    }
}

#[test]
fn the_census_counts_inodes_and_offers_only_blocks_of_final_length() {
    let mut f = Fixture::new();
    f.ok(mkdir_p("/a/b"), &hdfs());
    f.ok(create("/a/done"), &hdfs());
    let first = f.add("/a/done", None);
    let second = f.add("/a/done", written(first, MIB));
    f.ok(complete("/a/done", CLIENT, written(second, 7)), &hdfs());
    f.ok(create("/a/b/open"), &hdfs());
    let open_first = f.add("/a/b/open", None);
    let open_second = f.add("/a/b/open", written(open_first, MIB));

    let mut offered = Vec::new();
    let census =
        f.ns.census(|block, replication| offered.push((block.id, replication)));
    assert_eq!(
        census,
        Census {
            files: 2,
            directories: 3,
            blocks: 4,
            files_under_construction: 1,
        }
    );
    // The open file's last block is still being written: not judged yet.
    offered.sort();
    let mut expected = vec![(first.id, 3), (second.id, 3), (open_first.id, 3)];
    expected.sort();
    assert_eq!(offered, expected);
    assert!(!offered.iter().any(|(id, _)| *id == open_second.id));
}
