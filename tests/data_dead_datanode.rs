//! A datanode silent past `dead_after` loses its replicas in the namenode's
//! eyes: every block it held is copied elsewhere until fsck shows three live
//! replicas on two racks again, and new blocks avoid it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cluster::{MiniCluster, random_bytes, wait_until};

const BLOCK: usize = 1024 * 1024;

/// Every block of `path` as `(name, addresses, racks)`.
fn blocks(cluster: &MiniCluster, path: &str) -> Vec<(String, Vec<String>, BTreeSet<String>)> {
    let fsck = cluster.fsck(path);
    fsck["files"][0]["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let locations = b["locations"].as_array().unwrap();
            (
                b["name"].as_str().unwrap().to_owned(),
                locations
                    .iter()
                    .map(|l| l["address"].as_str().unwrap().to_owned())
                    .collect(),
                locations
                    .iter()
                    .map(|l| l["rack"].as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn blocks_of_a_dead_datanode_are_re_replicated() {
    let mut cluster = MiniCluster::builder()
        .rack(3)
        .rack(3)
        .block_size(BLOCK as u64)
        .heartbeat(Duration::from_millis(300))
        .stale_after(Duration::from_secs(1))
        .dead_after(Duration::from_secs(3))
        .start();
    let su = cluster.superuser();
    let bytes = random_bytes(11, 4 * BLOCK);
    let source = cluster.dir().join("local");
    std::fs::write(&source, &bytes).unwrap();
    cluster.dfs_ok(&su, &["put", source.to_str().unwrap(), "/f"]);

    // The datanode holding the most replicas of /f.
    let mut held: BTreeMap<String, usize> = BTreeMap::new();
    for (_, addresses, _) in blocks(&cluster, "/f") {
        for address in addresses {
            *held.entry(address).or_default() += 1;
        }
    }
    let (victim_addr, count) = held.into_iter().max_by_key(|(_, n)| *n).unwrap();
    let victim = cluster.datanode_at(&victim_addr);

    eprintln!("--- kill {victim} (holds {count} replicas of /f); the namenode calls it dead");
    {
        cluster.kill(&victim);
        wait_until(
            &format!("{victim} is dead"),
            Duration::from_secs(20),
            || cluster.datanode_state(&victim) == "dead",
        );
    }

    eprintln!("--- every block is back to 3 live replicas on 2 racks, none on {victim}");
    {
        wait_until(
            "every block of /f has 3 live replicas",
            Duration::from_secs(30),
            || {
                blocks(&cluster, "/f")
                    .iter()
                    .all(|(_, addresses, _)| addresses.len() == 3)
            },
        );
        for (name, addresses, racks) in blocks(&cluster, "/f") {
            assert!(!addresses.contains(&victim_addr), "{name} on {addresses:?}");
            assert_eq!(racks.len(), 2, "{name} on {addresses:?}");
        }
        let fsck = cluster.fsck("/f");
        assert_eq!(fsck["status"], "HEALTHY", "{fsck}");
        assert_eq!(fsck["summary"]["under_replicated_blocks"], 0, "{fsck}");
        assert_eq!(fsck["summary"]["missing_replicas"], 0, "{fsck}");
        let back = cluster.dfs(&su, &["cat", "/f"]);
        assert!(
            back.status.success() && back.stdout == bytes,
            "{:?}",
            back.status
        );
    }

    eprintln!("--- new blocks avoid the dead datanode");
    {
        cluster.dfs_ok(&su, &["put", source.to_str().unwrap(), "/g"]);
        for (name, addresses, racks) in blocks(&cluster, "/g") {
            assert_eq!(addresses.len(), 3, "{name} on {addresses:?}");
            assert!(!addresses.contains(&victim_addr), "{name} on {addresses:?}");
            assert_eq!(racks.len(), 2, "{name} on {addresses:?}");
        }
    }
}
