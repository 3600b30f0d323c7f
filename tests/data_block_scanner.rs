//! The block scanner finds a flipped byte in a finalized replica that nobody
//! reads: its datanode reports the replica corrupt, the namenode
//! re-replicates the block from a good copy and deletes the bad one, and the
//! file reads back whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::time::Duration;

use cluster::{MiniCluster, flip_byte, fsck_addresses, fsck_block_id, random_bytes, wait_until};

#[test]
fn the_block_scanner_finds_a_flipped_byte_nobody_reads_and_the_block_is_repaired() {
    // Three replicas and a spare node: the namenode never places a copy on
    // a node that holds a corrupt replica, and deletes that replica only
    // once the block has its three healthy ones again.
    let cluster = MiniCluster::builder()
        .rack(2)
        .rack(2)
        .replication(3)
        .datanode_config("scan_period_ms", 1_000)
        .datanode_config("scan_bytes_per_second", 64 << 20)
        .start();
    let su = cluster.superuser();
    let bytes = random_bytes(41, 300_000);
    cluster.put_bytes(&su, &bytes, "/f");

    let fsck = cluster.fsck("/f");
    let block = fsck["files"][0]["blocks"][0].clone();
    let id = fsck_block_id(&block);
    assert_eq!(fsck_addresses(&block).len(), 3, "{block}");
    let victim_addr = fsck_addresses(&block)[0].clone();
    let victim = cluster.datanode_at(&victim_addr);

    eprintln!("--- flip a byte of {victim}'s replica of blk_{id}, and read nothing");
    let replica = cluster
        .finalized_replica(&victim, id)
        .unwrap_or_else(|| panic!("{victim} has no finalized blk_{id}"));
    flip_byte(&replica, 100_000);

    eprintln!("--- {victim}'s scanner finds it; the namenode learns the replica is corrupt");
    {
        wait_until(
            &format!("the namenode holds {victim}'s replica of blk_{id} corrupt"),
            Duration::from_secs(30),
            || {
                let block = &cluster.fsck("/f")["files"][0]["blocks"][0];
                block["corrupt_replicas"] == 1 && !fsck_addresses(block).contains(&victim_addr)
            },
        );
        for node in cluster.datanodes() {
            let reads = cluster.reads_served(&node);
            assert!(
                !reads
                    .iter()
                    .any(|(b, _)| b.starts_with(&format!("blk_{id}_"))),
                "{node} served a read of blk_{id}: a reader, not the scanner, may have found it"
            );
        }
        let log = std::fs::read_to_string(cluster.log(&victim)).unwrap();
        assert!(
            log.lines()
                .any(|l| l.contains("block scanner found a checksum mismatch")
                    && l.contains(&format!("block=blk_{id} "))),
            "{victim}'s log has no scanner warning for blk_{id}"
        );
    }

    eprintln!("--- re-replication: 3 good replicas again, the bad one deleted from disk");
    {
        wait_until(
            &format!("blk_{id} has 3 healthy replicas and no corrupt one"),
            Duration::from_secs(30),
            || {
                let block = &cluster.fsck("/f")["files"][0]["blocks"][0];
                block["live_replicas"] == 3 && block["corrupt_replicas"] == 0
            },
        );
        wait_until(
            "the corrupt replica file is gone",
            Duration::from_secs(15),
            || {
                // It may come back as a fresh, good copy: then it must read right.
                cluster
                    .finalized_replica(&victim, id)
                    .is_none_or(|path| std::fs::read(path).unwrap() == bytes)
            },
        );
        let fsck = cluster.fsck("/f");
        assert_eq!(fsck["status"], "HEALTHY", "{fsck}");
        assert_eq!(fsck["summary"]["under_replicated_blocks"], 0, "{fsck}");
    }

    eprintln!("--- dfs get returns the original bytes");
    {
        let target = cluster.dir().join("back");
        cluster.dfs_ok(&su, &["get", "/f", target.to_str().unwrap()]);
        assert!(
            std::fs::read(&target).unwrap() == bytes,
            "get returned other bytes"
        );
    }
}
