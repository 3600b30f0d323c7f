//! A namenode knows where the replicas are when it comes to lead, even if
//! the datanodes reported them before it had the blocks in its namespace.
//!
//! Datanodes send a full block report once when they register with a
//! namenode, then only incremental ones (and a full one every 6 h). A
//! namenode that receives reports while it is behind the leader (started
//! late, or cut off) sees replicas of blocks it does not know yet. Here nn3
//! gets every full report while it has an empty namespace, is then synced,
//! and then leads: reading the files must still work.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::time::Duration;

use cluster::{MiniCluster, random_bytes, wait_until};

const ELECTION: Duration = Duration::from_secs(30);
const BLOCK: usize = 1024 * 1024;

#[test]
fn a_namenode_that_got_the_block_reports_before_its_sync_knows_the_replicas_when_it_leads() {
    let mut cluster = MiniCluster::builder()
        .namenodes(3)
        .rack(2)
        .rack(1)
        .heartbeat(Duration::from_millis(100))
        .block_size(BLOCK as u64)
        .lay_out();
    let su = cluster.superuser();
    let bytes = random_bytes(7, 2 * BLOCK + 4096);
    let local = cluster.dir().join("local.bin");
    std::fs::write(&local, &bytes).unwrap();

    eprintln!("--- nn1 and nn2 with the datanodes: put a 3-block file");
    {
        cluster.start("nn1");
        cluster.start("nn2");
        assert_eq!(cluster.wait_for_leader(ELECTION), "nn2");
        for dn in cluster.datanodes() {
            cluster.start(&dn);
        }
        cluster.wait_datanodes_live();
        cluster.dfs_ok(&su, &["put", local.to_str().unwrap(), "/f"]);
    }

    eprintln!(
        "--- stop nn1 and nn2; nn3 starts alone and gets every full report, knowing no block"
    );
    {
        cluster.stop("nn1");
        cluster.stop("nn2");
        cluster.start("nn3");
        let nn3 = cluster.addr("nn3").to_string();
        for dn in cluster.datanodes() {
            let log = cluster.log(&dn);
            wait_until(&format!("{dn} registers with nn3"), ELECTION, || {
                std::fs::read_to_string(&log).is_ok_and(|text| {
                    text.lines()
                        .any(|l| l.contains("registered with namenode") && l.contains(&nn3))
                })
            });
        }
        // The full report follows the registration at once.
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(cluster.ha_status_of("nn3")["state"], "LOOKING");
    }

    eprintln!("--- nn2 returns and syncs nn3; then nn2 dies and nn1 returns: nn3 leads");
    {
        cluster.start("nn2");
        assert_eq!(cluster.wait_for_leader(ELECTION), "nn2");
        cluster.wait_following("nn3", "nn2", ELECTION);
        cluster.kill("nn2");
        cluster.start("nn1");
        assert_eq!(cluster.wait_for_leader(ELECTION), "nn3");
    }

    eprintln!("--- the file reads back through nn3");
    {
        let out = cluster.dfs(&su, &["cat", "/f"]);
        assert!(
            out.status.success(),
            "cat through nn3 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == bytes, "/f reads back other bytes");
    }
}
