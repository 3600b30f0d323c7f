//! kill -9 of datanodes in the middle of a block being written (the first
//! of the pipeline, a later one, two of three): the writer recovers its
//! pipeline (new generation stamp, survivors, a replacement when one is
//! left), the put succeeds and reads back byte for byte, and a killed node's
//! replica, which missed the recovery, is never handed to a reader.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::IpAddr;
use std::process::{Child, Stdio};
use std::time::Duration;

use cluster::{MiniCluster, random_bytes, wait_until};

const BLOCK: usize = 1024 * 1024;
const FILE: usize = 8 * BLOCK;
/// Bytes fed before the kill: block 0 whole, block 1 about a third written.
const BEFORE_KILL: usize = BLOCK + 320 * 1024;

/// A replica being written (`current/rbw/blk_ID` with `blk_ID_GS.meta`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rbw {
    block: u64,
    gen_stamp: u64,
    length: u64,
}

/// The rbw replicas on `node`'s disk.
fn rbw_replicas(cluster: &MiniCluster, node: &str) -> Vec<Rbw> {
    let dir = cluster.data_dir(node).join("current").join("rbw");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(meta) = name
            .strip_prefix("blk_")
            .and_then(|n| n.strip_suffix(".meta"))
        else {
            continue;
        };
        let Some((block, gs)) = meta.split_once('_') else {
            continue;
        };
        let (Ok(block), Ok(gen_stamp)) = (block.parse(), gs.parse()) else {
            continue;
        };
        let length = std::fs::metadata(entry.path().with_file_name(format!("blk_{block}")))
            .map_or(0, |m| m.len());
        found.push(Rbw {
            block,
            gen_stamp,
            length,
        });
    }
    found
}

/// Datanodes holding an rbw replica of a block not in `old`, by block.
fn fresh_pipelines(
    cluster: &MiniCluster,
    old: &BTreeSet<u64>,
) -> BTreeMap<u64, Vec<(String, Rbw)>> {
    let mut pipelines: BTreeMap<u64, Vec<(String, Rbw)>> = BTreeMap::new();
    for node in cluster.datanodes() {
        for rbw in rbw_replicas(cluster, &node) {
            if !old.contains(&rbw.block) {
                pipelines
                    .entry(rbw.block)
                    .or_default()
                    .push((node.clone(), rbw));
            }
        }
    }
    pipelines
}

/// Writes `bytes` to the child's stdin in 64 KiB pieces; false when the pipe broke.
fn feed(child: &mut Child, bytes: &[u8]) -> bool {
    let stdin = child.stdin.as_mut().unwrap();
    bytes
        .chunks(64 * 1024)
        .all(|piece| stdin.write_all(piece).is_ok())
        && stdin.flush().is_ok()
}

/// `blk_ID_GS` → `(ID, GS)`.
fn parse_name(name: &str) -> (u64, u64) {
    let (id, gs) = name.strip_prefix("blk_").unwrap().split_once('_').unwrap();
    (id.parse().unwrap(), gs.parse().unwrap())
}

#[test]
fn a_put_survives_kill_9_of_a_pipeline_datanode() {
    let mut cluster = MiniCluster::builder()
        .rack(3)
        .rack(3)
        .block_size(BLOCK as u64)
        .start();
    let su = cluster.superuser();
    cluster.dfs_ok(&su, &["mkdir", "/rec"]);
    // Blocks of earlier iterations (their stale rbw copies may linger).
    let mut seen_blocks = BTreeSet::new();

    // The writer runs on a datanode's address, so that datanode is first in
    // every pipeline (placement puts replica 1 on the writer's node).
    let plans = [
        ("dn1", Kill::Writer),
        ("dn4", Kill::Other(0)),
        ("dn2", Kill::Other(1)),
        ("dn5", Kill::BothOthers),
    ];
    for (i, (writer, kill)) in plans.into_iter().enumerate() {
        let path = format!("/rec/f{i}");
        let bytes = random_bytes(100 + i as u64, FILE);
        eprintln!(
            "--- iteration {i}: feed {BEFORE_KILL} bytes of {FILE} to `dfs put - {path}` on {writer}"
        );
        let config = cluster.client_config_bound_to(cluster.addr(writer).ip());
        let mut put = cluster
            .dfs_command(&su)
            .env("DFS_CONFIG", &config)
            .args(["put", "-", &path])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert!(feed(&mut put, &bytes[..BEFORE_KILL]), "put died early");

        eprintln!("--- iteration {i}: find block 1's pipeline on disk; kill -9 {kill:?}");
        let mut pipeline = Vec::new();
        wait_until(
            "one new block in rbw on 3 datanodes, 256 KiB each",
            Duration::from_secs(30),
            || {
                let fresh = fresh_pipelines(&cluster, &seen_blocks);
                // Block 0 finalizes (leaves rbw) once its last packet is acked.
                if fresh.len() != 1 {
                    return false;
                }
                pipeline = fresh.into_values().next().unwrap();
                pipeline.len() == 3 && pipeline.iter().all(|(_, r)| r.length >= 256 * 1024)
            },
        );
        let old = pipeline[0].1.clone();
        let members: Vec<String> = pipeline.iter().map(|(n, _)| n.clone()).collect();
        assert!(
            members.iter().any(|n| n == writer),
            "{writer} is not in {pipeline:?}"
        );
        let others: Vec<String> = members.iter().filter(|n| *n != writer).cloned().collect();
        let victims: Vec<String> = match kill {
            Kill::Writer => vec![writer.to_owned()],
            Kill::Other(k) => vec![others[k].clone()],
            Kill::BothOthers => others.clone(),
        };
        eprintln!("    pipeline {pipeline:?}; killing {victims:?}");
        for victim in &victims {
            cluster.kill(victim);
        }
        seen_blocks.insert(old.block);

        eprintln!("--- iteration {i}: feed the rest; the put succeeds");
        {
            let fed = feed(&mut put, &bytes[BEFORE_KILL..]);
            drop(put.stdin.take());
            let out = put.wait_with_output().unwrap();
            assert!(
                out.status.success() && fed,
                "put after killing {victims:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        eprintln!(
            "--- iteration {i}: the file reads back; the recovered block has a new gen stamp"
        );
        {
            let back = cluster.dfs(&su, &["cat", &path]);
            assert!(back.status.success(), "{back:?}");
            assert!(
                back.stdout == bytes,
                "iteration {i}: {path} reads back other bytes"
            );
            let fsck = cluster.fsck(&path);
            let blocks = fsck["files"][0]["blocks"].as_array().unwrap();
            // A recovered pipeline that lost its only node on one rack leaves
            // the block short of a replica and on one rack until the
            // replication monitor copies it: fsck says MIS_REPLICATED then.
            let short_on_one_rack = blocks
                .iter()
                .all(|b| b["mis_replicated"] == false || b["under_replicated"] == true);
            assert!(
                fsck["status"] == "HEALTHY"
                    || (fsck["status"] == "MIS_REPLICATED" && short_on_one_rack),
                "{fsck}"
            );
            assert_eq!(blocks.len(), FILE / BLOCK, "{fsck}");
            for block in blocks {
                let (id, _) = parse_name(block["name"].as_str().unwrap());
                seen_blocks.insert(id);
            }
            let recovered = blocks
                .iter()
                .find(|b| parse_name(b["name"].as_str().unwrap()).0 == old.block)
                .unwrap_or_else(|| panic!("block {} is not in the file: {fsck}", old.block));
            let (_, gs) = parse_name(recovered["name"].as_str().unwrap());
            assert!(
                gs > old.gen_stamp,
                "block {} kept gen stamp {gs} through a recovery: {recovered}",
                old.block
            );
            let holders: Vec<&str> = recovered["locations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["address"].as_str().unwrap())
                .collect();
            for victim in &victims {
                let victim_addr = cluster.addr(victim).to_string();
                assert!(!holders.contains(&victim_addr.as_str()), "{recovered}");
            }
            assert!(holders.len() >= 2, "{recovered}");
            if let Kill::BothOthers = kill {
                // One survivor of three: it copied its prefix to a replacement.
                let log = std::fs::read_to_string(cluster.log(writer)).unwrap();
                let copied = format!("transfer_rbw{{block=blk_{}", old.block);
                assert!(
                    log.lines()
                        .any(|l| l.contains(&copied) && l.contains("rbw prefix copied")),
                    "{writer} copied no rbw prefix of block {} to a replacement",
                    old.block
                );
            }
        }

        for victim in &victims {
            eprintln!("--- iteration {i}: restart {victim}; its stale replica is never served");
            cluster.start(victim);
            let stale: Vec<Rbw> = rbw_replicas(&cluster, victim)
                .into_iter()
                .filter(|r| r.block == old.block)
                .collect();
            assert!(
                stale.iter().all(|r| r.gen_stamp == old.gen_stamp),
                "{victim} holds {stale:?}"
            );
            // A reader on the victim's own address prefers the victim if listed.
            let ip: IpAddr = cluster.addr(victim).ip();
            let config = cluster.client_config_bound_to(ip);
            let reads_before = served(&cluster, victim, old.block);
            // Its block report reaches the namenode at registration.
            for round in 0..3 {
                std::thread::sleep(Duration::from_millis(300));
                let out = cluster
                    .dfs_command(&su)
                    .env("DFS_CONFIG", &config)
                    .args(["cat", &path])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{out:?}");
                assert!(out.stdout == bytes, "round {round}: other bytes");
                let fsck = cluster.fsck(&path);
                let block = fsck["files"][0]["blocks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|b| parse_name(b["name"].as_str().unwrap()).0 == old.block)
                    .unwrap()
                    .clone();
                let listed = block["locations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|l| l["address"] == cluster.addr(victim).to_string());
                // Only a fresh copy (re-replication) may make the victim a holder again.
                let fresh_copy = cluster.finalized_replica(victim, old.block).is_some();
                assert!(
                    !listed || fresh_copy,
                    "round {round}: the namenode lists {victim}'s stale replica: {block}"
                );
                let reads = served(&cluster, victim, old.block);
                assert!(
                    reads == reads_before || fresh_copy,
                    "{victim} served block {} without a fresh copy",
                    old.block
                );
            }
            // The full report names the abandoned rbw copy; the block is
            // complete, so the namenode has it deleted with a heartbeat.
            wait_until(
                "the stale rbw replica is deleted",
                Duration::from_secs(15),
                || {
                    rbw_replicas(&cluster, victim)
                        .iter()
                        .all(|r| r.block != old.block)
                },
            );
        }
    }
}

/// Which members of block 1's pipeline die.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// The first datanode, on the writer's own address.
    Writer,
    /// The k-th (by name) of the two others.
    Other(usize),
    /// Both others: one survivor, so a replacement joins.
    BothOthers,
}

/// Reads of block `id` that `node` served.
fn served(cluster: &MiniCluster, node: &str, id: u64) -> usize {
    let prefix = format!("blk_{id}_");
    cluster
        .reads_served(node)
        .iter()
        .filter(|(block, _)| block.starts_with(&prefix))
        .count()
}
