//! `ReportBadBlocks` is checked before it is believed: a user who cannot
//! read the file is refused; a reader's report only makes the namenode
//! suspect the replica, and the datanode's own priority scan decides (an
//! intact replica stays, a flipped one is confirmed, replaced and deleted);
//! and a block whose every replica is known corrupt is still handed to
//! readers, who verify every chunk and may still get the right bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::time::Duration;

use cluster::{MiniCluster, flip_byte, fsck_addresses, fsck_block_id, random_bytes, wait_until};
use dfs_proto::v1;
use dfs_proto::v1::client_protocol_client::ClientProtocolClient;
use serde_json::Value;

const BLOCK: usize = 1024 * 1024;
/// A user with no groups: "other" to every file the superuser writes.
const EVE: &str = "eve";

/// Two racks of three datanodes, 1 MiB blocks, and `/f` (2.5 blocks,
/// written by the superuser with `mode`) with its bytes.
fn cluster_with_file(mode: &str) -> (MiniCluster, Vec<u8>) {
    let cluster = MiniCluster::builder()
        .rack(3)
        .rack(3)
        .block_size(BLOCK as u64)
        .start();
    let su = cluster.superuser();
    let bytes = random_bytes(90, 2 * BLOCK + BLOCK / 2);
    cluster.put_bytes(&su, &bytes, "/f");
    cluster.dfs_ok(&su, &["chmod", mode, "/f"]);
    (cluster, bytes)
}

/// Block `i` of `/f` as fsck lists it.
fn fsck_block(cluster: &MiniCluster, i: usize) -> Value {
    cluster.fsck("/f")["files"][0]["blocks"][i].clone()
}

/// The datanode ids of a block of `dfs fsck --json --locations`.
fn fsck_ids(block: &Value) -> Vec<String> {
    block["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Sends `ReportBadBlocks` as `user`, naming each of `datanodes`' replicas
/// of `block` (an fsck block), straight over gRPC as any client could.
fn report_bad(
    cluster: &MiniCluster,
    user: &str,
    block: &Value,
    datanodes: &[String],
) -> Result<(), tonic::Status> {
    let name = block["name"].as_str().unwrap();
    let (_, gen_stamp) = name.strip_prefix("blk_").unwrap().split_once('_').unwrap();
    let extended = v1::ExtendedBlock {
        block_id: fsck_block_id(block),
        gen_stamp: gen_stamp.parse().unwrap(),
        length: block["length"].as_u64().unwrap(),
    };
    let request = v1::ReportBadBlocksRequest {
        caller: Some(v1::CallerContext {
            user: user.to_owned(),
            ..Default::default()
        }),
        replicas: datanodes
            .iter()
            .map(|id| v1::BadReplica {
                block: Some(extended),
                datanode_id: id.clone(),
            })
            .collect(),
    };
    let url = format!("http://{}", cluster.namenode_addr());
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let mut client = ClientProtocolClient::connect(url).await.unwrap();
            client.report_bad_blocks(request).await.map(|_| ())
        })
}

/// `dfs get /f` as `user`: the bytes, or the error it printed.
fn get(cluster: &MiniCluster, user: &str, name: &str) -> Result<Vec<u8>, String> {
    let target = cluster.dir().join(name);
    let out = cluster.dfs(user, &["get", "/f", target.to_str().unwrap()]);
    if out.status.success() {
        Ok(std::fs::read(&target).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Whether `node`'s log says a priority scan found its replica of `id` intact.
fn verified_intact(cluster: &MiniCluster, node: &str, id: u64) -> bool {
    let log = std::fs::read_to_string(cluster.log(node)).unwrap_or_default();
    let block = format!("block=blk_{id} ");
    log.lines()
        .any(|l| l.contains("replica a reader reported is intact") && l.contains(&block))
}

#[test]
fn a_report_from_a_user_who_cannot_read_the_file_is_refused() {
    let (cluster, bytes) = cluster_with_file("600");
    let su = cluster.superuser();
    let block = fsck_block(&cluster, 0);
    let id = fsck_block_id(&block);
    let holders = fsck_ids(&block);
    assert_eq!(holders.len(), 3, "{block}");

    eprintln!("--- {EVE}, who may not read /f, reports all three replicas of blk_{id}");
    {
        let refused = report_bad(&cluster, EVE, &block, &holders)
            .expect_err("a report from a user who cannot read the file was accepted");
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
        assert!(
            get(&cluster, EVE, "eve-copy").is_err(),
            "{EVE} cannot read /f either"
        );
    }

    eprintln!("--- a few heartbeats later nothing changed: three live replicas, intact, readable");
    {
        std::thread::sleep(Duration::from_secs(2));
        let block = fsck_block(&cluster, 0);
        assert_eq!(block["live_replicas"], 3, "{block}");
        assert_eq!(block["corrupt_replicas"], 0, "{block}");
        for address in fsck_addresses(&block) {
            let node = cluster.datanode_at(&address);
            let replica = cluster.finalized_replica(&node, id).unwrap();
            assert!(
                std::fs::read(replica).unwrap() == bytes[..BLOCK],
                "{node}'s replica changed"
            );
        }
        let back = get(&cluster, &su, "back").unwrap_or_else(|e| panic!("get failed: {e}"));
        assert!(back == bytes, "get returned other bytes");
    }
}

#[test]
fn a_readers_report_is_checked_by_the_datanode_before_it_is_believed() {
    let (cluster, bytes) = cluster_with_file("644");
    let su = cluster.superuser();

    eprintln!("--- {EVE}, a reader, reports every healthy replica of block 0");
    {
        let block = fsck_block(&cluster, 0);
        let id = fsck_block_id(&block);
        report_bad(&cluster, EVE, &block, &fsck_ids(&block)).unwrap();
        let holders: Vec<String> = fsck_addresses(&block)
            .iter()
            .map(|a| cluster.datanode_at(a))
            .collect();
        wait_until(
            "every holder's priority scan found its replica intact",
            Duration::from_secs(20),
            || holders.iter().all(|n| verified_intact(&cluster, n, id)),
        );
        // The datanodes' verdicts reach the namenode with their next report.
        std::thread::sleep(Duration::from_secs(1));
        let block = fsck_block(&cluster, 0);
        assert_eq!(block["live_replicas"], 3, "{block}");
        assert_eq!(block["corrupt_replicas"], 0, "{block}");
        let back = get(&cluster, EVE, "back").unwrap_or_else(|e| panic!("get failed: {e}"));
        assert!(back == bytes, "get returned other bytes");
    }

    eprintln!("--- a truly corrupt replica of block 1 is confirmed, replaced and deleted");
    {
        let block = fsck_block(&cluster, 1);
        let id = fsck_block_id(&block);
        let victim_addr = fsck_addresses(&block)[0].clone();
        let victim = cluster.datanode_at(&victim_addr);
        let victim_id = fsck_ids(&block)[0].clone();
        flip_byte(&cluster.finalized_replica(&victim, id).unwrap(), 5000);
        report_bad(&cluster, EVE, &block, &[victim_id]).unwrap();
        wait_until(
            "the namenode no longer lists the victim's replica as healthy",
            Duration::from_secs(20),
            || !fsck_addresses(&fsck_block(&cluster, 1)).contains(&victim_addr),
        );
        let log = std::fs::read_to_string(cluster.log(&victim)).unwrap();
        assert!(
            log.lines().any(|l| l.contains("checksum mismatch")
                && l.contains(&format!("block=blk_{id} "))),
            "{victim} never confirmed its replica corrupt"
        );
        wait_until(
            "block 1 has 3 healthy replicas and no corrupt one",
            Duration::from_secs(30),
            || {
                let block = fsck_block(&cluster, 1);
                block["live_replicas"] == 3 && block["corrupt_replicas"] == 0
            },
        );
        wait_until(
            "the corrupt replica file is gone",
            Duration::from_secs(15),
            || {
                cluster
                    .finalized_replica(&victim, id)
                    .is_none_or(|path| std::fs::read(path).unwrap()[..] == bytes[BLOCK..2 * BLOCK])
            },
        );
        let back = get(&cluster, &su, "back2").unwrap_or_else(|e| panic!("get failed: {e}"));
        assert!(back == bytes, "get returned other bytes");
    }
}

#[test]
fn a_block_whose_every_replica_is_known_corrupt_is_still_read_and_verified() {
    let (cluster, bytes) = cluster_with_file("644");
    let su = cluster.superuser();
    let block = fsck_block(&cluster, 0);
    let id = fsck_block_id(&block);
    // Two replicas share a rack (a, b); c is alone on the other.
    let located: Vec<(String, String)> = block["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let node = cluster.datanode_at(l["address"].as_str().unwrap());
            (node, l["rack"].as_str().unwrap().to_owned())
        })
        .collect();
    let lone = located
        .iter()
        .position(|(_, rack)| located.iter().filter(|(_, r)| r == rack).count() == 1)
        .unwrap_or_else(|| panic!("blk_{id} is not on two racks: {located:?}"));
    let c = located[lone].0.clone();
    let mut pair: Vec<String> = located
        .iter()
        .filter(|(n, _)| *n != c)
        .map(|(n, _)| n.clone())
        .collect();
    let (a, b) = (pair.remove(0), pair.remove(0));
    let replica = |node: &str| cluster.finalized_replica(node, id).unwrap();

    eprintln!("--- every replica of blk_{id} gets a flipped byte; a reader reports them");
    {
        for node in [&a, &b, &c] {
            flip_byte(&replica(node), 4096 + 17);
        }
        report_bad(&cluster, EVE, &block, &fsck_ids(&block)).unwrap();
        wait_until(
            "every datanode confirmed its replica corrupt",
            Duration::from_secs(20),
            || {
                let block = fsck_block(&cluster, 0);
                block["corrupt_replicas"] == 3 && block["live_replicas"] == 0
            },
        );
        assert_eq!(cluster.fsck("/f")["status"], "CORRUPT");
    }

    eprintln!("--- {c}'s replica is mended on disk; the namenode still calls it corrupt");
    {
        flip_byte(&replica(&c), 4096 + 17);
        assert!(std::fs::read(replica(&c)).unwrap() == bytes[..BLOCK]);
        assert_eq!(fsck_block(&cluster, 0)["corrupt_replicas"], 3);
    }

    eprintln!("--- a reader on {a} gets them anyway ({a}, {b}, then {c}) and finds the good bytes");
    {
        let config = cluster.client_config_bound_to(cluster.addr(&a).ip());
        let target = cluster.dir().join("back");
        let out = cluster
            .dfs_command(&su)
            .env("DFS_CONFIG", &config)
            .args(["get", "/f", target.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "get of a block known corrupt everywhere failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            std::fs::read(&target).unwrap() == bytes,
            "get returned other bytes"
        );
        for node in [&a, &b, &c] {
            let tried = cluster
                .reads_served(node)
                .iter()
                .any(|(blk, _)| blk.starts_with(&format!("blk_{id}_")));
            assert!(tried, "the reader never tried {node}'s replica");
        }
    }
}
