//! Block placement spreads every block's three replicas over exactly two
//! racks, and a reader on a rack reads every block from a datanode on its
//! own rack (counted from the datanodes' `read block` log lines).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use cluster::{MiniCluster, random_bytes};

const BLOCK: usize = 1024 * 1024;
const BLOCKS: usize = 5;

#[test]
fn replicas_span_two_racks_and_readers_stay_on_their_rack() {
    let cluster = MiniCluster::builder()
        .rack(3)
        .rack(3)
        .block_size(BLOCK as u64)
        .start();
    let bytes = random_bytes(5, BLOCKS * BLOCK - 1000);
    let source = cluster.dir().join("placed");
    std::fs::write(&source, &bytes).unwrap();
    let su = cluster.superuser();
    cluster.dfs_ok(&su, &["put", source.to_str().unwrap(), "/placed"]);

    let mut blocks = BTreeSet::new();
    eprintln!("--- fsck: each of the {BLOCKS} blocks has 3 replicas on 3 datanodes on 2 racks");
    {
        let fsck = cluster.fsck("/placed");
        assert_eq!(fsck["status"], "HEALTHY", "{fsck}");
        assert_eq!(fsck["racks"], 2, "{fsck}");
        assert_eq!(fsck["summary"]["mis_replicated_blocks"], 0, "{fsck}");
        assert_eq!(fsck["summary"]["under_replicated_blocks"], 0, "{fsck}");
        let listed = fsck["files"][0]["blocks"].as_array().unwrap();
        assert_eq!(listed.len(), BLOCKS, "{fsck}");
        for block in listed {
            let locations = block["locations"].as_array().unwrap();
            assert_eq!(block["live_replicas"], 3, "{block}");
            assert_eq!(locations.len(), 3, "{block}");
            let nodes: BTreeSet<String> = locations
                .iter()
                .map(|l| cluster.datanode_at(l["address"].as_str().unwrap()))
                .collect();
            assert_eq!(nodes.len(), 3, "replicas on distinct datanodes: {block}");
            let racks: BTreeSet<&str> = locations
                .iter()
                .map(|l| l["rack"].as_str().unwrap())
                .collect();
            assert_eq!(racks.len(), 2, "replicas on exactly two racks: {block}");
            // fsck reports the rack the namenode derived; it must be the rack we placed the node on.
            for l in locations {
                let node = cluster.datanode_at(l["address"].as_str().unwrap());
                assert_eq!(cluster.rack(&node), l["rack"].as_str().unwrap());
            }
            blocks.insert(block["name"].as_str().unwrap().to_owned());
        }
    }

    for rack in 1..=2u8 {
        // .200 is no datanode's address: a client host on the rack.
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, rack, 200));
        let rack_path = format!("/dc1/rack{rack}");
        eprintln!("--- a reader bound to {ip} reads every block from {rack_path}");
        let before = reads_by(&cluster, ip);
        assert!(before.is_empty(), "{ip} read before it ran: {before:?}");
        let out = if rack == 1 {
            cluster
                .dfs_command("carol")
                .args(["--bind-address", &ip.to_string(), "cat", "/placed"])
                .output()
                .unwrap()
        } else {
            cluster
                .dfs_command("carol")
                .env("DFS_CONFIG", cluster.client_config_bound_to(ip))
                .args(["cat", "/placed"])
                .output()
                .unwrap()
        };
        assert!(out.status.success(), "{out:?}");
        assert!(out.stdout == bytes, "cat from {ip} returned other bytes");

        let reads = reads_by(&cluster, ip);
        let read_blocks: BTreeSet<String> = reads.keys().map(|(block, _)| block.clone()).collect();
        assert_eq!(read_blocks, blocks, "blocks {ip} read: {reads:?}");
        for (block, node) in reads.keys() {
            assert_eq!(
                cluster.rack(node),
                rack_path,
                "{ip} read {block} from {node} on another rack: {reads:?}"
            );
        }
    }
}

/// `(block, datanode) → reads` served to a client at `ip`.
fn reads_by(cluster: &MiniCluster, ip: IpAddr) -> BTreeMap<(String, String), usize> {
    let mut reads = BTreeMap::new();
    for node in cluster.datanodes() {
        for (block, peer) in cluster.reads_served(&node) {
            if peer == ip {
                *reads.entry((block, node.clone())).or_insert(0) += 1;
            }
        }
    }
    reads
}
