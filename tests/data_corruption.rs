//! A flipped byte in a finalized replica on disk: readers still get the
//! right bytes from another replica, the namenode learns of the bad replica
//! (the reader's report, confirmed by the datanode's priority scan),
//! re-replicates the block and deletes the bad copy. With every replica
//! flipped, the read fails naming the block.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::time::Duration;

use cluster::{MiniCluster, flip_byte, fsck_addresses, fsck_block_id, random_bytes, wait_until};

const BLOCK: usize = 1024 * 1024;

#[test]
fn a_flipped_byte_is_detected_reported_and_repaired() {
    let cluster = MiniCluster::builder()
        .rack(3)
        .rack(3)
        .block_size(BLOCK as u64)
        .start();
    let su = cluster.superuser();
    let bytes = random_bytes(9, 2 * BLOCK + BLOCK / 2);
    cluster.put_bytes(&su, &bytes, "/f");

    let fsck = cluster.fsck("/f");
    let block = fsck["files"][0]["blocks"][1].clone();
    let id = fsck_block_id(&block);
    let victim = cluster.datanode_at(&fsck_addresses(&block)[0]);
    let victim_addr = cluster.addr(&victim).to_string();

    eprintln!("--- flip a byte of {victim}'s replica of block {id}");
    let replica = cluster
        .finalized_replica(&victim, id)
        .unwrap_or_else(|| panic!("{victim} has no finalized blk_{id}"));
    flip_byte(&replica, 4096 + 17);

    eprintln!("--- a reader on {victim}'s own address still gets the right bytes");
    {
        // Same host, distance 0: the namenode lists the victim first for this reader.
        let config = cluster.client_config_bound_to(cluster.addr(&victim).ip());
        let target = cluster.dir().join("back");
        let out = cluster
            .dfs_command(&su)
            .env("DFS_CONFIG", &config)
            .args(["get", "/f", target.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(
            std::fs::read(&target).unwrap() == bytes,
            "get returned other bytes"
        );
        let tried = cluster
            .reads_served(&victim)
            .iter()
            .filter(|(b, _)| b.starts_with(&format!("blk_{id}_")))
            .count();
        assert!(
            tried >= 1,
            "the reader never tried {victim}'s corrupt replica"
        );
    }

    eprintln!("--- the reader's report is confirmed by {victim}'s own scan");
    {
        // The report only makes the replica suspect; the datanode's priority
        // scan, a heartbeat later, makes it corrupt.
        wait_until(
            "the namenode no longer lists the victim's replica as healthy",
            Duration::from_secs(20),
            || !fsck_addresses(&cluster.fsck("/f")["files"][0]["blocks"][1]).contains(&victim_addr),
        );
        // MIS_REPLICATED when the victim held its rack's only replica.
        let fsck = cluster.fsck("/f");
        assert_ne!(
            fsck["status"], "CORRUPT",
            "two good replicas remain: {fsck}"
        );
    }

    eprintln!("--- re-replication: 3 good replicas again, the bad one deleted from disk");
    {
        wait_until(
            "block {id} has 3 healthy replicas and no corrupt one",
            Duration::from_secs(30),
            || {
                let fsck = cluster.fsck("/f");
                let block = &fsck["files"][0]["blocks"][1];
                block["live_replicas"] == 3 && fsck["summary"]["corrupt_replicas"] == 0
            },
        );
        wait_until(
            "the corrupt replica file is gone",
            Duration::from_secs(15),
            || {
                // It may come back as a fresh, good copy: then it must read right.
                cluster
                    .finalized_replica(&victim, id)
                    .is_none_or(|path| std::fs::read(path).unwrap()[..] == bytes[BLOCK..2 * BLOCK])
            },
        );
        let fsck = cluster.fsck("/f");
        assert_eq!(fsck["status"], "HEALTHY", "{fsck}");
        assert_eq!(fsck["summary"]["under_replicated_blocks"], 0, "{fsck}");
        let back = cluster.dfs(&su, &["cat", "/f"]);
        assert!(
            back.status.success() && back.stdout == bytes,
            "{:?}",
            back.status
        );
    }

    eprintln!("--- every replica of block 0 flipped: the read fails naming the block");
    {
        let fsck = cluster.fsck("/f");
        let block = fsck["files"][0]["blocks"][0].clone();
        let id = fsck_block_id(&block);
        for address in fsck_addresses(&block) {
            let node = cluster.datanode_at(&address);
            flip_byte(&cluster.finalized_replica(&node, id).unwrap(), 100);
        }
        let out = cluster.dfs(&su, &["cat", "/f"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "cat of a corrupt block succeeded");
        // The client's own warnings (one per bad replica) come first.
        let error = stderr
            .lines()
            .find(|l| l.starts_with("cat: "))
            .unwrap_or_else(|| {
                panic!("no `cat:` error line: {stderr}");
            });
        assert!(
            error.contains(&format!("could not read blk_{id} of '/f' from any replica")),
            "{error}"
        );
        assert_eq!(error.matches("checksum mismatch").count(), 3, "{error}");
        wait_until("fsck calls /f CORRUPT", Duration::from_secs(10), || {
            cluster.fsck("/f")["status"] == "CORRUPT"
        });
        let out = cluster.dfs(&su, &["fsck", "/f"]);
        assert!(!out.status.success(), "fsck of a corrupt file exits 0");
    }
}
