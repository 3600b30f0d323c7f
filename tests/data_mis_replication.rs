//! A block driven onto one rack by datanode kills is moved back onto two
//! racks by the replication monitor once the other rack is back (a copy on
//! the other rack, then a surplus replica deleted from the crowded one), and
//! fsck never calls the block HEALTHY while it sits on one rack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use cluster::{MiniCluster, fsck_block_id, random_bytes, wait_until};
use serde_json::Value;

const BLOCK: usize = 1024 * 1024;

/// The racks of the live replicas of the first block of `/f` in `fsck`.
fn racks(fsck: &Value) -> BTreeSet<String> {
    fsck["files"][0]["blocks"][0]["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["rack"].as_str().unwrap().to_owned())
        .collect()
}

/// Deletes every file of block `id` (data and meta) below `dir`.
fn wipe_block(dir: &Path, id: u64) {
    let prefix = format!("blk_{id}");
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                dirs.push(path);
            } else if name == prefix || name.starts_with(&format!("{prefix}_")) {
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
}

#[test]
fn a_block_left_on_one_rack_is_spread_over_two_again() {
    // Rack 1: dn1..dn3; rack 2: dn4, dn5.
    let mut cluster = MiniCluster::builder()
        .rack(3)
        .rack(2)
        .block_size(BLOCK as u64)
        .heartbeat(Duration::from_millis(300))
        .stale_after(Duration::from_secs(1))
        .dead_after(Duration::from_secs(3))
        .start();
    let su = cluster.superuser();
    let bytes = random_bytes(31, BLOCK / 2);
    cluster.put_bytes(&su, &bytes, "/f");
    let fsck = cluster.fsck("/f");
    let id = fsck_block_id(&fsck["files"][0]["blocks"][0]);
    assert_eq!(racks(&fsck).len(), 2, "{fsck}");
    let rack2: Vec<String> = cluster
        .datanodes()
        .into_iter()
        .filter(|n| cluster.rack(n) == cluster.rack("dn4"))
        .collect();

    eprintln!("--- kill rack 2 ({rack2:?}); re-replication can only use rack 1");
    {
        for node in &rack2 {
            cluster.kill(node);
        }
        wait_until(
            &format!("blk_{id} has 3 live replicas, all on rack 1"),
            Duration::from_secs(40),
            || {
                let fsck = cluster.fsck("/f");
                fsck["files"][0]["blocks"][0]["live_replicas"] == 3 && racks(&fsck).len() == 1
            },
        );
        let fsck = cluster.fsck("/f");
        assert_eq!(fsck["racks"], 1, "{fsck}");
        assert_eq!(
            fsck["status"], "HEALTHY",
            "one live rack: nothing better exists"
        );
    }

    eprintln!("--- rack 2 comes back empty; the block is moved onto two racks");
    {
        for node in &rack2 {
            wipe_block(&cluster.data_dir(node), id);
            cluster.start(node);
        }
        let mut seen_one_rack = 0;
        wait_until(
            &format!("blk_{id} has 3 live replicas on 2 racks and fsck calls /f HEALTHY"),
            Duration::from_secs(40),
            || {
                let fsck = cluster.fsck("/f");
                let block = &fsck["files"][0]["blocks"][0];
                if fsck["racks"] == 2 && racks(&fsck).len() == 1 {
                    seen_one_rack += 1;
                    assert_eq!(block["mis_replicated"], true, "{fsck}");
                    assert_eq!(fsck["status"], "MIS_REPLICATED", "{fsck}");
                }
                block["live_replicas"] == 3
                    && racks(&fsck).len() == 2
                    && fsck["status"] == "HEALTHY"
                    && fsck["summary"]["mis_replicated_blocks"] == 0
            },
        );
        eprintln!("fsck saw the block on one rack of two {seen_one_rack} times, never HEALTHY");
        let back = cluster.dfs(&su, &["cat", "/f"]);
        assert!(
            back.status.success() && back.stdout == bytes,
            "{:?}",
            back.status
        );
    }

    eprintln!("--- it stays so: no more copies, no more deletes");
    {
        std::thread::sleep(Duration::from_secs(4));
        let fsck = cluster.fsck("/f");
        assert_eq!(fsck["files"][0]["blocks"][0]["live_replicas"], 3, "{fsck}");
        assert_eq!(racks(&fsck).len(), 2, "{fsck}");
    }
}
