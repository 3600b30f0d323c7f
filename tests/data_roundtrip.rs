//! `dfs put` then `dfs get`/`cat` returns the very bytes put, at every size
//! around the chunk (512 B), packet (64 KiB) and block (1 MiB) edges, and
//! `dfs checksum` depends on the bytes only, not on the block size.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use cluster::{MiniCluster, random_bytes};

const BLOCK: usize = 1024 * 1024;

#[track_caller]
fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes, want {}; first difference at {first:?}",
            got.len(),
            want.len()
        );
    }
}

/// The hex of `dfs checksum PATH` (`PATH<TAB>COMPOSITE-CRC32C<TAB>hex`).
fn checksum(cluster: &MiniCluster, path: &str) -> String {
    let line = cluster.dfs_ok("alice", &["checksum", path]);
    let fields: Vec<&str> = line.trim_end().split('\t').collect();
    assert_eq!(fields.len(), 3, "checksum line: {line:?}");
    assert_eq!(fields[0], path);
    assert_eq!(fields[1], "COMPOSITE-CRC32C");
    fields[2].to_owned()
}

fn write_local(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn put_then_get_returns_the_same_bytes_at_every_edge() {
    let cluster = MiniCluster::builder()
        .rack(3)
        .rack(3)
        .block_size(BLOCK as u64)
        .start();
    let local = cluster.dir().join("local");
    std::fs::create_dir(&local).unwrap();
    cluster.dfs_ok(&cluster.superuser(), &["mkdir", "/rt"]);
    cluster.dfs_ok(&cluster.superuser(), &["chown", "alice", "/rt"]);

    let sizes = [
        0,
        1,
        511,
        512,
        513,
        65535,
        65536,
        65537,
        BLOCK - 1,
        BLOCK,
        BLOCK + 1,
        3 * BLOCK + BLOCK / 2,
    ];

    eprintln!("--- put and get files of {sizes:?} bytes");
    for (i, &size) in sizes.iter().enumerate() {
        let bytes = random_bytes(1000 + i as u64, size);
        let source = write_local(&local, &format!("in{size}"), &bytes);
        let remote = format!("/rt/f{size}");
        cluster.dfs_ok("alice", &["put", &source, &remote]);
        let target = local.join(format!("out{size}"));
        cluster.dfs_ok("alice", &["get", &remote, target.to_str().unwrap()]);
        assert_same(
            &format!("get of {size} bytes"),
            &std::fs::read(&target).unwrap(),
            &bytes,
        );
        let stat: serde_json::Value =
            serde_json::from_str(&cluster.dfs_ok("alice", &["stat", "--json", &remote])).unwrap();
        assert_eq!(stat[0]["length"], size as u64, "{stat}");
        let fsck = cluster.fsck(&remote);
        let blocks = fsck["files"][0]["blocks"].as_array().unwrap();
        assert_eq!(
            blocks.len(),
            size.div_ceil(BLOCK),
            "blocks of {size}: {fsck}"
        );
    }

    eprintln!("--- cat prints a multi-block file and two files in order");
    {
        let big = random_bytes(1000 + sizes.len() as u64 - 1, 3 * BLOCK + BLOCK / 2);
        let out = cluster.dfs("alice", &["cat", "/rt/f3670016"]);
        assert!(out.status.success(), "{out:?}");
        assert_same("cat", &out.stdout, &big);
        let out = cluster.dfs("alice", &["cat", "/rt/f513", "/rt/f1"]);
        let mut want = random_bytes(1004, 513);
        want.extend(random_bytes(1001, 1));
        assert_same("cat of two files", &out.stdout, &want);
    }

    eprintln!("--- put - takes stdin");
    {
        let bytes = random_bytes(7, 2 * BLOCK + 12345);
        let mut child = cluster
            .dfs_command("alice")
            .args(["put", "-", "/rt/stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // Several writes, so the client sees a stream, not one read.
        for piece in bytes.chunks(100_000) {
            stdin.write_all(piece).unwrap();
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "put -: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let back = cluster.dfs("alice", &["get", "/rt/stdin", "-"]);
        assert!(back.status.success(), "{back:?}");
        assert_same("put - then get -", &back.stdout, &bytes);

        let out = cluster
            .dfs_command("alice")
            .args(["put", "-", "/rt/empty-stdin"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "put - of nothing: {out:?}");
        let back = cluster.dfs("alice", &["cat", "/rt/empty-stdin"]);
        assert!(back.status.success() && back.stdout.is_empty(), "{back:?}");
    }

    eprintln!("--- checksum: same bytes, other block size, same sum; other bytes, other sum");
    {
        let bytes = random_bytes(42, 3 * BLOCK + BLOCK / 2);
        let source = write_local(&local, "sum", &bytes);
        cluster.dfs_ok("alice", &["put", &source, "/rt/sum1m"]);
        cluster.dfs_ok(
            "alice",
            &["put", "--block-size", "2M", &source, "/rt/sum2m"],
        );
        assert_eq!(cluster.fsck("/rt/sum1m")["summary"]["total_blocks"], 4);
        assert_eq!(cluster.fsck("/rt/sum2m")["summary"]["total_blocks"], 2);
        let one = checksum(&cluster, "/rt/sum1m");
        assert_eq!(
            one,
            checksum(&cluster, "/rt/sum2m"),
            "block size changed the sum"
        );

        let mut other = bytes.clone();
        other[BLOCK + 7] ^= 0x01;
        let source = write_local(&local, "sum-other", &other);
        cluster.dfs_ok("alice", &["put", &source, "/rt/other"]);
        assert_ne!(one, checksum(&cluster, "/rt/other"), "one flipped bit");
        let mut shorter = bytes;
        shorter.pop();
        let source = write_local(&local, "sum-shorter", &shorter);
        cluster.dfs_ok("alice", &["put", &source, "/rt/shorter"]);
        assert_ne!(one, checksum(&cluster, "/rt/shorter"), "one byte less");
    }
}
