//! Append in the namespace: who may append, which block it reopens under
//! which stamp, and that the log and the image rebuild the same state.

use super::namespace_test::{
    CLIENT, Fixture, MIB, alice, bob, chmod, complete, create, hdfs, mkdir_p,
};
use super::*;
use crate::txn::{GenStamp, Reopen, Txn};

const OTHER: &str = "0ther";

fn append(path: &str, client: &str, new_block: bool) -> Op {
    Op::Append {
        path: path.into(),
        client: client.into(),
        new_block,
    }
}

fn add_block(f: &mut Fixture, path: &str, previous: Option<BlockRecord>) -> BlockRecord {
    let op = Op::AddBlock {
        path: path.into(),
        client: CLIENT.into(),
        previous,
    };
    match f.ok(op, &hdfs()) {
        Some(Txn::AddBlock { block, .. }) => block,
        other => panic!("AddBlock of {path} gave {other:?}"),
    }
}

/// A complete file `/f` (128 MiB blocks) with one block of `length` bytes.
fn file_of(f: &mut Fixture, length: u64) -> BlockRecord {
    f.ok(create("/f"), &hdfs());
    let block = add_block(f, "/f", None);
    let last = BlockRecord { length, ..block };
    f.ok(complete("/f", CLIENT, Some(last)), &hdfs());
    last
}

fn last_block(f: &Fixture) -> (BlockRecord, bool) {
    let (blocks, _) = f.ns.writer_blocks("/f").unwrap();
    (
        blocks.blocks.last().unwrap().1,
        blocks.reopened_from.is_some(),
    )
}

fn rebuilt_digests(f: &Fixture) -> [u64; 2] {
    let mut replayed = Namespace::new(super::namespace_test::policy());
    for txn in &f.log {
        replayed.apply(txn).unwrap();
    }
    let image = postcard::to_stdvec(&f.ns).unwrap();
    let decoded: Namespace = postcard::from_bytes(&image).unwrap();
    [replayed.digest(), decoded.digest()]
}

#[test]
fn an_append_to_a_partial_last_block_reopens_it_under_a_new_stamp() {
    let mut f = Fixture::new();
    let last = file_of(&mut f, 1000);
    let txn = f.ok(append("/f", CLIENT, false), &hdfs());
    let Some(Txn::Append {
        reopen: Some(reopen),
        ..
    }) = txn
    else {
        panic!("expected a reopening append, got {txn:?}");
    };
    assert_eq!(reopen.previous, last.gen_stamp);
    assert!(reopen.gen_stamp > last.gen_stamp);
    let (now, reopened) = last_block(&f);
    assert_eq!(
        (now.id, now.gen_stamp, now.length),
        (last.id, reopen.gen_stamp, 1000)
    );
    assert!(reopened);
    let open: Vec<_> =
        f.ns.open_files()
            .into_iter()
            .map(|o| (o.path, o.holder))
            .collect();
    assert_eq!(open, vec![("/f".to_owned(), CLIENT.to_owned())]);
    // The file keeps its length while it is written again.
    assert_eq!(f.info("/f").length, 1000);
    assert_eq!(rebuilt_digests(&f), [f.ns.digest(); 2]);
    // Complete at the new length closes it and clears the mark.
    f.ok(
        complete(
            "/f",
            CLIENT,
            Some(BlockRecord {
                length: 5000,
                ..now
            }),
        ),
        &hdfs(),
    );
    assert_eq!(
        last_block(&f),
        (
            BlockRecord {
                length: 5000,
                ..now
            },
            false
        )
    );
    assert_eq!(f.info("/f").length, 5000);
    assert_eq!(rebuilt_digests(&f), [f.ns.digest(); 2]);
}

#[test]
fn new_block_a_full_block_or_no_block_reopen_nothing() {
    let mut f = Fixture::new();
    let last = file_of(&mut f, 1000);
    let txn = f.ok(append("/f", CLIENT, true), &hdfs());
    assert!(
        matches!(txn, Some(Txn::Append { reopen: None, .. })),
        "{txn:?}"
    );
    assert_eq!(last_block(&f), (last, false));
    // The next block follows the short one.
    let second = add_block(&mut f, "/f", Some(last));
    f.ok(
        complete(
            "/f",
            CLIENT,
            Some(BlockRecord {
                length: 10,
                ..second
            }),
        ),
        &hdfs(),
    );
    assert_eq!(f.info("/f").length, 1010);

    let mut full = Fixture::new();
    file_of(&mut full, 128 * MIB);
    let txn = full.ok(append("/f", CLIENT, false), &hdfs());
    assert!(
        matches!(txn, Some(Txn::Append { reopen: None, .. })),
        "{txn:?}"
    );

    let mut empty = Fixture::new();
    empty.ok(create("/f"), &hdfs());
    empty.ok(complete("/f", CLIENT, None), &hdfs());
    let txn = empty.ok(append("/f", CLIENT, false), &hdfs());
    assert!(
        matches!(txn, Some(Txn::Append { reopen: None, .. })),
        "{txn:?}"
    );
    assert_eq!(rebuilt_digests(&empty), [empty.ns.digest(); 2]);
}

#[test]
fn a_second_appender_is_refused_with_hdfs_words() {
    let mut f = Fixture::new();
    file_of(&mut f, 1000);
    f.ok(append("/f", CLIENT, false), &hdfs());
    let err = f.err(append("/f", OTHER, false), &hdfs());
    assert!(
        matches!(
            err,
            Error::AlreadyBeingCreated {
                op: "APPEND_FILE",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "Failed to APPEND_FILE /f for {OTHER} because this file lease is currently owned by {CLIENT}"
        )
    );
    // The holder itself cannot append twice either.
    let err = f.err(append("/f", CLIENT, false), &hdfs());
    assert!(matches!(err, Error::AlreadyBeingCreated { .. }), "{err}");
}

#[test]
fn append_needs_write_on_the_file_and_an_existing_file() {
    let mut f = Fixture::new();
    f.ok(mkdir_p("/d"), &hdfs());
    f.ok(chmod("/d", 0o777), &hdfs());
    f.ok(
        Op::Create {
            path: "/d/f".into(),
            mode: Some(0o644),
            overwrite: false,
            create_parent: false,
            replication: 3,
            block_size: 128 * MIB,
            client: CLIENT.into(),
        },
        &alice(),
    );
    f.ok(complete("/d/f", CLIENT, None), &alice());
    let err = f.err(append("/d/f", OTHER, false), &bob());
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    f.ok(append("/d/f", OTHER, false), &alice());
    let err = f.err(append("/d/missing", CLIENT, false), &hdfs());
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        Error::NotFound {
            path: "/d/missing".into()
        }
        .to_string()
    );
    let err = f.err(append("/d", CLIENT, false), &hdfs());
    assert!(matches!(err, Error::IsADirectory { .. }), "{err}");
}

#[test]
fn a_replayed_append_that_does_not_fit_is_refused() {
    let mut f = Fixture::new();
    let last = file_of(&mut f, 1000);
    let stale = Txn::Append {
        path: "/f".into(),
        client: CLIENT.into(),
        reopen: Some(Reopen {
            previous: GenStamp(last.gen_stamp.0 + 7),
            gen_stamp: GenStamp(last.gen_stamp.0 + 8),
        }),
    };
    let before = f.ns.digest();
    assert!(f.ns.apply(&stale).is_err());
    assert_eq!(f.ns.digest(), before);
}

#[test]
fn content_summary_counts_files_directories_and_replicas() {
    let mut f = Fixture::new();
    f.ok(mkdir_p("/d/e"), &hdfs());
    f.ok(create("/d/e/f"), &hdfs());
    let block = add_block(&mut f, "/d/e/f", None);
    f.ok(
        complete(
            "/d/e/f",
            CLIENT,
            Some(BlockRecord {
                length: 100,
                ..block
            }),
        ),
        &hdfs(),
    );
    let summary = f.ns.content_summary("/d", &hdfs()).unwrap();
    assert_eq!(
        summary,
        ContentSummary {
            length: 100,
            file_count: 1,
            directory_count: 2,
            space_consumed: 300,
        }
    );
    let file = f.ns.content_summary("/d/e/f", &hdfs()).unwrap();
    assert_eq!(
        (file.file_count, file.directory_count, file.length),
        (1, 0, 100)
    );
    f.ok(chmod("/d/e", 0o700), &hdfs());
    let err = f.ns.content_summary("/d", &bob()).unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
}
