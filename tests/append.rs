//! `dfs append` (alias `appendToFile`) against a real cluster: onto a
//! partial last block (its length not a multiple of 512 either), onto a full
//! one, with `--new-block` (a short block in the middle that every reader
//! and fsck handle), from stdin, a second appender refused in HDFS's words,
//! another user without WRITE refused, kill -9 of a pipeline datanode
//! mid-append, and kill -9 of the appending client (lease recovery keeps
//! every acknowledged byte).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use cluster::{MiniCluster, random_bytes, wait_until};

const BLOCK: usize = 1024 * 1024;

fn write_local(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `dfs get PATH -` (which verifies every chunk's checksum) as `user`.
fn get(cluster: &MiniCluster, user: &str, path: &str) -> Vec<u8> {
    let out = cluster.dfs(user, &["get", path, "-"]);
    assert!(
        out.status.success(),
        "get {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Each block's length in fsck, in file order, and the file's fsck status.
fn block_lengths(cluster: &MiniCluster, path: &str) -> (Vec<u64>, String) {
    let fsck = cluster.fsck(path);
    let lengths = fsck["files"][0]["blocks"]
        .as_array()
        .unwrap_or_else(|| panic!("no blocks in {fsck}"))
        .iter()
        .map(|b| b["length"].as_u64().unwrap())
        .collect();
    (lengths, fsck["status"].as_str().unwrap_or("?").to_owned())
}

fn assert_same(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: first difference at byte {at}");
    }
}

#[test]
fn appends_round_trip_onto_partial_and_full_blocks_and_with_new_block() {
    let cluster = MiniCluster::builder()
        .rack(2)
        .rack(2)
        .block_size(BLOCK as u64)
        .start();
    let su = cluster.superuser();
    cluster.dfs_ok(&su, &["mkdir", "/a"]);
    let local = tempfile::tempdir().unwrap();

    eprintln!("--- append to a partial last block whose length is not a multiple of 512");
    let mut want = random_bytes(1, 1000);
    {
        let first = write_local(local.path(), "first", &want);
        cluster.dfs_ok(&su, &["put", &first, "/a/f"]);
        let more = random_bytes(2, 3000);
        let second = write_local(local.path(), "second", &more);
        let third_bytes = random_bytes(3, 77);
        let third = write_local(local.path(), "third", &third_bytes);
        cluster.dfs_ok(&su, &["append", &second, &third, "/a/f"]);
        want.extend_from_slice(&more);
        want.extend_from_slice(&third_bytes);
        assert_same(&get(&cluster, &su, "/a/f"), &want, "after one append");
        let (lengths, status) = block_lengths(&cluster, "/a/f");
        assert_eq!(lengths, vec![want.len() as u64], "the block grew in place");
        assert_eq!(status, "HEALTHY");
    }

    eprintln!("--- appendToFile from stdin fills the block, crosses into the next");
    {
        let more = random_bytes(4, BLOCK + 12_345);
        let mut child = cluster
            .dfs_command(&su)
            .args(["appendToFile", "-", "/a/f"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&more).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        want.extend_from_slice(&more);
        assert_same(&get(&cluster, &su, "/a/f"), &want, "after the stdin append");
        let (lengths, _) = block_lengths(&cluster, "/a/f");
        assert_eq!(lengths, vec![BLOCK as u64, (want.len() - BLOCK) as u64]);
    }

    eprintln!("--- --new-block leaves a short block in the middle; readers and fsck take it");
    {
        let more = random_bytes(5, 5000);
        let file = write_local(local.path(), "nb", &more);
        cluster.dfs_ok(&su, &["append", "--new-block", &file, "/a/f"]);
        want.extend_from_slice(&more);
        let (lengths, status) = block_lengths(&cluster, "/a/f");
        let short = (want.len() - BLOCK - 5000) as u64;
        assert_eq!(lengths, vec![BLOCK as u64, short, 5000]);
        assert_eq!(status, "HEALTHY");
        assert_same(
            &get(&cluster, &su, "/a/f"),
            &want,
            "with a short middle block",
        );
        let cat = cluster.dfs(&su, &["cat", "/a/f"]);
        assert_same(&cat.stdout, &want, "cat");
        // Equal bytes, equal checksum, whatever the blocks.
        let copy = write_local(local.path(), "whole", &want);
        cluster.dfs_ok(&su, &["put", &copy, "/a/copy"]);
        let sums = cluster.dfs_ok(&su, &["checksum", "/a/f", "/a/copy"]);
        let sums: Vec<&str> = sums
            .lines()
            .map(|l| l.split_whitespace().nth(2).unwrap_or(""))
            .collect();
        assert_eq!(sums.len(), 2, "{sums:?}");
        assert_eq!(sums[0], sums[1], "checksums of equal bytes differ");
    }

    eprintln!("--- append to a full last block starts a new one");
    {
        let full = random_bytes(6, BLOCK);
        let file = write_local(local.path(), "full", &full);
        cluster.dfs_ok(&su, &["put", &file, "/a/full"]);
        let more = random_bytes(7, 700);
        let tail = write_local(local.path(), "tail", &more);
        cluster.dfs_ok(&su, &["append", &tail, "/a/full"]);
        let (lengths, status) = block_lengths(&cluster, "/a/full");
        assert_eq!(lengths, vec![BLOCK as u64, 700]);
        assert_eq!(status, "HEALTHY");
        let mut both = full;
        both.extend_from_slice(&more);
        assert_same(&get(&cluster, &su, "/a/full"), &both, "full + tail");
    }

    eprintln!("--- append to a missing file creates it; to a directory is refused");
    {
        let bytes = random_bytes(8, 10);
        let file = write_local(local.path(), "new", &bytes);
        cluster.dfs_ok(&su, &["append", &file, "/a/new"]);
        assert_same(&get(&cluster, &su, "/a/new"), &bytes, "created by append");
        let out = cluster.dfs(&su, &["append", &file, "/a"]);
        assert!(!out.status.success());
    }

    eprintln!("--- content summary: dfs count");
    {
        let out = cluster.dfs_ok(&su, &["count", "/a"]);
        let fields: Vec<&str> = out.split_whitespace().collect();
        let total = (want.len() + BLOCK + 700 + want.len() + 10) as u64;
        assert_eq!(fields[..3], ["1", "4", &total.to_string()][..], "{out}");
    }
}

#[test]
fn a_second_appender_and_a_user_without_write_are_refused() {
    let cluster = MiniCluster::builder()
        .rack(3)
        .block_size(BLOCK as u64)
        .start();
    let su = cluster.superuser();
    cluster.dfs_ok(&su, &["mkdir", "/s"]);
    cluster.dfs_ok(&su, &["chmod", "777", "/s"]);
    let local = tempfile::tempdir().unwrap();
    let bytes = random_bytes(1, 1000);
    let file = write_local(local.path(), "f", &bytes);
    cluster.dfs_ok("alice", &["put", &file, "/s/f"]);
    cluster.dfs_ok("alice", &["chmod", "644", "/s/f"]);

    eprintln!("--- bob has no WRITE on alice's file");
    {
        let out = cluster.dfs("bob", &["append", &file, "/s/f"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Permission denied"), "{err}");
        assert_eq!(get(&cluster, &su, "/s/f").len(), 1000, "nothing appended");
    }

    eprintln!("--- while alice appends from stdin, another appender is refused in HDFS's words");
    {
        let mut first: Child = cluster
            .dfs_command("alice")
            .args(["append", "-", "/s/f"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = first.stdin.as_mut().unwrap();
        stdin.write_all(&random_bytes(2, 100)).unwrap();
        stdin.flush().unwrap();
        wait_until(
            "alice's append holds the lease",
            Duration::from_secs(20),
            || cluster.fsck("/s/f")["files"][0]["under_construction"] == true,
        );
        let out = cluster.dfs("alice", &["append", &file, "/s/f"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Failed to APPEND_FILE /s/f for")
                && err.contains("because this file lease is currently owned by"),
            "{err}"
        );
        drop(first.stdin.take());
        let out = first.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(get(&cluster, &su, "/s/f").len(), 1100);
    }
}
