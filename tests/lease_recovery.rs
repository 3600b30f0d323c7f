//! kill -9 of a `dfs put` in the middle of a block: the writer's lease
//! expires and the namenode recovers its `._COPYING_` file. Past the soft
//! limit, a new put of the same destination triggers the recovery (its
//! create is told to retry and does); past the hard limit the namenode's
//! lease monitor recovers the file by itself, closed at what every replica
//! of the last block holds, readable, and left under its `._COPYING_` name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::io::Write;
use std::process::{Child, Stdio};
use std::time::Duration;

use cluster::{MiniCluster, random_bytes, wait_until};

const BLOCK: usize = 1024 * 1024;
/// Three whole blocks and half of the fourth, fed before the kill.
const FED: usize = 3 * BLOCK + BLOCK / 2;
const SOFT_LIMIT: Duration = Duration::from_secs(1);
const HARD_LIMIT: Duration = Duration::from_secs(8);

/// Bytes in `node`'s rbw replicas, by block id.
fn rbw_lengths(cluster: &MiniCluster, node: &str) -> Vec<(u64, u64)> {
    let dir = cluster.data_dir(node).join("current").join("rbw");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_prefix("blk_").and_then(|n| n.parse().ok()) else {
            continue;
        };
        found.push((id, entry.metadata().map_or(0, |m| m.len())));
    }
    found
}

/// Starts `dfs put - PATH`, feeds it `bytes` without closing its stdin,
/// waits until the block being written holds its share on three
/// datanodes, and kills the put with SIGKILL.
fn put_and_kill(cluster: &MiniCluster, user: &str, path: &str, bytes: &[u8]) {
    // Only this put's blocks count, not rbw leftovers of an earlier one.
    let before: std::collections::HashSet<u64> = cluster
        .datanodes()
        .iter()
        .flat_map(|dn| rbw_lengths(cluster, dn))
        .map(|(id, _)| id)
        .collect();
    let mut put: Child = cluster
        .dfs_command(user)
        .args(["put", "-", path])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = put.stdin.as_mut().unwrap();
    stdin.write_all(bytes).unwrap();
    stdin.flush().unwrap();
    let tail = (bytes.len() % BLOCK) as u64;
    wait_until(
        "the last block's half is on three datanodes",
        Duration::from_secs(30),
        || {
            let holders = cluster
                .datanodes()
                .iter()
                .filter(|dn| {
                    rbw_lengths(cluster, dn)
                        .iter()
                        .any(|(id, l)| *l == tail && !before.contains(id))
                })
                .count();
            holders == 3
        },
    );
    put.kill().unwrap();
    put.wait().unwrap();
}

/// Whether fsck says the file is being written.
fn is_under_construction(cluster: &MiniCluster, path: &str) -> bool {
    let fsck = cluster.fsck(path);
    fsck["files"][0]["under_construction"]
        .as_bool()
        .unwrap_or_else(|| panic!("no file in {fsck}"))
}

#[test]
fn a_killed_writers_file_is_recovered_and_the_destination_can_be_put_again() {
    let cluster = MiniCluster::builder()
        .rack(2)
        .rack(2)
        .block_size(BLOCK as u64)
        .lease_limits(SOFT_LIMIT, HARD_LIMIT)
        .start();
    let su = cluster.superuser();
    cluster.dfs_ok(&su, &["mkdir", "/up"]);
    let local = tempfile::tempdir().unwrap();
    let fresh = random_bytes(7, 2 * BLOCK + 1000);
    let fresh_file = local.path().join("fresh");
    std::fs::write(&fresh_file, &fresh).unwrap();
    let fresh_file = fresh_file.to_str().unwrap();

    eprintln!("--- kill -9 a put of /up/a mid-block; its file stays under construction");
    {
        put_and_kill(&cluster, &su, "/up/a", &random_bytes(1, FED));
        assert!(is_under_construction(&cluster, "/up/a._COPYING_"));
    }

    eprintln!("--- past the soft limit, put -f /up/a: its create recovers the lease and retries");
    {
        std::thread::sleep(SOFT_LIMIT + Duration::from_millis(500));
        cluster.dfs_ok(&su, &["put", "-f", fresh_file, "/up/a"]);
        let back = cluster.dfs(&su, &["cat", "/up/a"]);
        assert!(back.status.success(), "{back:?}");
        assert!(back.stdout == fresh, "/up/a reads back other bytes");
        let listing = cluster.dfs_ok(&su, &["ls", "/up"]);
        assert!(!listing.contains("._COPYING_"), "{listing}");
        let log = std::fs::read_to_string(cluster.log("nn1")).unwrap();
        assert!(
            log.contains("soft limit passed; lease recovery requested"),
            "the create did not ask for recovery"
        );
    }

    eprintln!("--- kill -9 a put of /up/b; past the hard limit the namenode closes it alone");
    let written = random_bytes(2, FED);
    {
        put_and_kill(&cluster, &su, "/up/b", &written);
        assert!(is_under_construction(&cluster, "/up/b._COPYING_"));
        wait_until(
            "the lease monitor closes /up/b._COPYING_",
            HARD_LIMIT + Duration::from_secs(20),
            || !is_under_construction(&cluster, "/up/b._COPYING_"),
        );
    }

    eprintln!("--- the recovered file holds every byte the replicas had, and reads back");
    {
        let fsck = cluster.fsck("/up/b._COPYING_");
        assert_eq!(fsck["files"][0]["length"], FED as u64, "{fsck}");
        let mut back = Vec::new();
        wait_until(
            "the recovered last block is finalized and readable",
            Duration::from_secs(20),
            || {
                let out = cluster.dfs(&su, &["cat", "/up/b._COPYING_"]);
                back = out.stdout;
                out.status.success()
            },
        );
        assert!(back == written, "/up/b._COPYING_ reads back other bytes");
        wait_until(
            "every block has its three replicas",
            Duration::from_secs(30),
            || cluster.fsck("/up/b._COPYING_")["summary"]["under_replicated_blocks"] == 0,
        );
        let fsck = cluster.fsck("/up/b._COPYING_");
        assert_eq!(fsck["status"], "HEALTHY", "{fsck}");
    }

    eprintln!("--- put -f /up/b now succeeds at once");
    {
        cluster.dfs_ok(&su, &["put", "-f", fresh_file, "/up/b"]);
        let back = cluster.dfs(&su, &["cat", "/up/b"]);
        assert!(back.stdout == fresh, "/up/b reads back other bytes");
    }
}
