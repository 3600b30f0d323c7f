//! Leases in the namespace: the index of files under construction that the
//! lease monitor works from, and the txns lease recovery issues in the
//! holder's name (HDFS: delete of an open file is allowed, create over
//! another writer's file is refused until its lease is recovered).

use super::namespace_test::{
    CLIENT, Fixture, MIB, complete, create, create_with, delete, hdfs, mkdir_p, rename,
};
use super::*;
use crate::txn::Txn;

/// Another client, the one whose create may trigger recovery.
const OTHER: &str = "0ther";

fn open_files(f: &Fixture) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> =
        f.ns.open_files()
            .into_iter()
            .map(|o| (o.path, o.holder))
            .collect();
    files.sort();
    files
}

fn open(path: &str) -> (String, String) {
    (path.to_owned(), CLIENT.to_owned())
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

/// The namespace the fixture's log rebuilds, and the one its image decodes to.
fn rebuilt(f: &Fixture) -> [Namespace; 2] {
    let mut replayed = Namespace::new(super::namespace_test::policy());
    for txn in &f.log {
        replayed.apply(txn).unwrap();
    }
    let image = postcard::to_stdvec(&f.ns).unwrap();
    let decoded: Namespace = postcard::from_bytes(&image).unwrap();
    [replayed, decoded]
}

#[test]
fn the_open_files_index_follows_create_complete_rename_and_delete() {
    let mut f = Fixture::new();
    f.ok(mkdir_p("/d"), &hdfs());
    f.ok(create("/d/a"), &hdfs());
    f.ok(create("/d/b"), &hdfs());
    f.ok(create("/c"), &hdfs());
    assert_eq!(open_files(&f), vec![open("/c"), open("/d/a"), open("/d/b")]);
    f.ok(complete("/c", CLIENT, None), &hdfs());
    f.ok(rename("/d", "/e"), &hdfs());
    assert_eq!(open_files(&f), vec![open("/e/a"), open("/e/b")]);
    f.ok(delete("/e/a", false), &hdfs());
    assert_eq!(open_files(&f), vec![open("/e/b")]);
    for namespace in rebuilt(&f) {
        let files: Vec<String> = namespace.open_files().into_iter().map(|o| o.path).collect();
        assert_eq!(files, vec!["/e/b".to_owned()]);
    }
    // Overwriting (by the writer itself) replaces the open file by an open file.
    f.ok(create_with("/e/b", true, false, 3), &hdfs());
    assert_eq!(open_files(&f), vec![open("/e/b")]);
    f.ok(delete("/e", true), &hdfs());
    assert!(open_files(&f).is_empty());
}

#[test]
fn an_open_file_may_be_deleted_but_not_created_over_by_another_client() {
    let mut f = Fixture::new();
    f.ok(create("/f"), &hdfs());
    let mut over = create_with("/f", true, false, 3);
    if let Op::Create { client, .. } = &mut over {
        *client = OTHER.into();
    }
    match f.err(over.clone(), &hdfs()) {
        Error::AlreadyBeingCreated { holder, client, .. } => {
            assert_eq!((holder.as_str(), client.as_str()), (CLIENT, OTHER));
        }
        e => panic!("expected AlreadyBeingCreated, got {e}"),
    }
    f.ok(delete("/f", false), &hdfs());
    assert!(open_files(&f).is_empty(), "the lease went with the file");
    f.ok(over, &hdfs());
    assert_eq!(open_files(&f), vec![("/f".to_owned(), OTHER.to_owned())]);
}

#[test]
fn recovery_closes_a_file_in_its_holders_name_at_the_chosen_length() {
    let mut f = Fixture::new();
    f.ok(create("/f._COPYING_"), &hdfs());
    let first = add_block(&mut f, "/f._COPYING_", None);
    let first = BlockRecord {
        length: MIB,
        ..first
    };
    let last = add_block(&mut f, "/f._COPYING_", Some(first));
    // What the replicas agree on: 70 000 bytes of the last block.
    let recovered = BlockRecord {
        length: 70_000,
        ..last
    };
    f.ok(complete("/f._COPYING_", CLIENT, Some(recovered)), &hdfs());
    assert!(open_files(&f).is_empty());
    let blocks = f.ns.block_locations("/f._COPYING_", &hdfs(), 0, 0).unwrap();
    assert!(!blocks.under_construction);
    assert_eq!(blocks.lease_holder, None);
    assert_eq!(blocks.length, MIB + 70_000);
    assert_eq!(blocks.blocks, vec![(0, first), (MIB, recovered)]);
    // The writer coming back has no lease left.
    let late = Op::AddBlock {
        path: "/f._COPYING_".into(),
        client: CLIENT.into(),
        previous: Some(recovered),
    };
    assert!(matches!(
        f.err(late, &hdfs()),
        Error::LeaseMismatch { holder: None, .. }
    ));
    for namespace in rebuilt(&f) {
        assert_eq!(namespace.digest(), f.ns.digest());
    }
}

#[test]
fn recovery_drops_a_last_block_without_data_and_closes_with_the_one_before() {
    let mut f = Fixture::new();
    f.ok(create("/g"), &hdfs());
    let first = add_block(&mut f, "/g", None);
    let first = BlockRecord {
        length: 42,
        ..first
    };
    let last = add_block(&mut f, "/g", Some(first));
    let abandon = Op::AbandonBlock {
        path: "/g".into(),
        client: CLIENT.into(),
        block: last.id,
    };
    f.ok(abandon, &hdfs());
    assert_eq!(f.freed, vec![last], "its replicas are garbage");
    assert_eq!(open_files(&f), vec![open("/g")], "not closed yet");
    f.ok(complete("/g", CLIENT, Some(first)), &hdfs());
    assert!(open_files(&f).is_empty());
    let blocks = f.ns.block_locations("/g", &hdfs(), 0, 0).unwrap();
    assert_eq!(blocks.blocks, vec![(0, first)]);
    assert_eq!(blocks.length, 42);
    for namespace in rebuilt(&f) {
        assert_eq!(namespace.digest(), f.ns.digest());
        assert!(namespace.open_files().is_empty());
    }
}
