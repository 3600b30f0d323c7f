//! Clients keep working across a leader kill: 3 clients issue mkdirs (no
//! `-p`) and small puts while the leading namenode is killed with SIGKILL.
//! Every acknowledged op is there afterwards, none is applied twice (a
//! retried mkdir or create answers from the retry cache instead of failing
//! with "already exists"), put files read back byte-identical, and once the
//! killed namenode is back every namenode has applied the same transactions
//! to the same namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cluster::{MiniCluster, random_bytes, wait_until};
use dfs_client::{ClientConfig, CreateOptions, DfsClient};

const CLIENTS: usize = 3;
/// Ops per client; every fourth is a put, the rest are mkdirs.
const OPS: usize = 120;
/// Ops acknowledged (all clients together) before the leader is killed.
const KILL_AFTER: usize = CLIENTS * OPS / 4;
const ELECTION: Duration = Duration::from_secs(30);

/// One client operation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Mkdir(String),
    Put(String, u64),
}

impl Op {
    fn path(&self) -> &str {
        match self {
            Op::Mkdir(path) | Op::Put(path, _) => path,
        }
    }
}

/// The content of the put with `seed`: 1 B to 200 KiB, so some files end
/// inside the first 64 KiB packet and some span several.
fn content(seed: u64) -> Vec<u8> {
    let len = 1 + (seed.wrapping_mul(7919) % (200 * 1024)) as usize;
    random_bytes(seed, len)
}

async fn run_op(client: &DfsClient, op: &Op) -> Result<(), dfs_client::Error> {
    match op {
        Op::Mkdir(path) => client.mkdirs(path, false).await,
        Op::Put(path, seed) => {
            let mut out = client.create_file(path, &CreateOptions::default()).await?;
            out.write(&content(*seed)).await?;
            out.close().await
        }
    }
}

#[test]
fn every_acknowledged_op_survives_a_leader_kill_exactly_once() {
    let mut cluster = MiniCluster::builder().namenodes(3).rack(2).rack(2).start();
    let old_leader = cluster.wait_for_leader(ELECTION);
    // Every namenode synced before the first write: one that syncs only
    // after blocks were written does not learn their replicas (a runtime
    // bug pinned down in ha_block_reports.rs), which is not this test's subject.
    cluster.wait_converged(ELECTION);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The lazy channels spawn their connection tasks on the current runtime.
    let _entered = runtime.enter();
    // The default failover timeout (15 s) rides out the election.
    let config = ClientConfig::new(
        cluster
            .namenode_addrs()
            .iter()
            .map(ToString::to_string)
            .collect(),
    );

    eprintln!(
        "--- {CLIENTS} clients issue {OPS} ops each; kill -9 {old_leader} after {KILL_AFTER}"
    );
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let client = DfsClient::connect(&config, None).unwrap();
            let acknowledged = acknowledged.clone();
            runtime.spawn(async move {
                let dir = format!("/load/c{c}");
                client.mkdirs(&dir, true).await.unwrap();
                let mut results = Vec::new();
                for i in 0..OPS {
                    let op = if i % 4 == 3 {
                        Op::Put(format!("{dir}/f{i}"), (c * OPS + i) as u64)
                    } else {
                        Op::Mkdir(format!("{dir}/d{i}"))
                    };
                    let result = run_op(&client, &op).await.map_err(|e| e.to_string());
                    if result.is_ok() {
                        acknowledged.fetch_add(1, Ordering::SeqCst);
                    }
                    results.push((op, result));
                }
                results
            })
        })
        .collect();
    let acked_at_kill = {
        wait_until(
            &format!("{KILL_AFTER} ops acknowledged"),
            Duration::from_secs(120),
            || acknowledged.load(Ordering::SeqCst) >= KILL_AFTER,
        );
        cluster.kill(&old_leader);
        acknowledged.load(Ordering::SeqCst)
    };
    let killed_at = Instant::now();
    let results: Vec<(Op, Result<(), String>)> = runtime
        .block_on(futures::future::join_all(writers))
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    eprintln!(
        "clients done {:.1}s after the kill",
        killed_at.elapsed().as_secs_f64()
    );

    eprintln!("--- every op succeeded, none with 'already exists', some after the kill");
    let acked: BTreeSet<Op> = {
        let failed: Vec<&(Op, Result<(), String>)> =
            results.iter().filter(|(_, r)| r.is_err()).collect();
        let twice: Vec<_> = failed
            .iter()
            .filter(|(_, r)| r.as_ref().unwrap_err().contains("exists"))
            .collect();
        assert!(
            twice.is_empty(),
            "retried ops applied twice (the retry cache should answer them): {twice:#?}"
        );
        assert!(
            failed.is_empty(),
            "ops failed across the failover: {failed:#?}"
        );
        assert_eq!(results.len(), CLIENTS * OPS);
        assert!(
            results.len() > acked_at_kill,
            "the kill came after the last op"
        );
        results.iter().map(|(op, _)| op.clone()).collect()
    };

    eprintln!("--- a new leader has every acknowledged op, once");
    let new_leader = {
        let new_leader = cluster.wait_for_leader(ELECTION);
        assert_ne!(new_leader, old_leader);
        let client = DfsClient::connect(&config, None).unwrap();
        for c in 0..CLIENTS {
            let dir = format!("/load/c{c}");
            let listed: BTreeSet<String> = runtime
                .block_on(client.list(&dir))
                .unwrap()
                .into_iter()
                .map(|s| s.path)
                .collect();
            let expected: BTreeSet<String> = acked
                .iter()
                .map(Op::path)
                .filter(|p| p.starts_with(&format!("{dir}/")))
                .map(str::to_owned)
                .collect();
            assert_eq!(listed, expected, "entries of {dir}");
        }
        new_leader
    };

    eprintln!("--- put files read back byte-identical");
    {
        let client = DfsClient::connect(&config, None).unwrap();
        for op in &acked {
            let Op::Put(path, seed) = op else { continue };
            let want = content(*seed);
            let got = runtime.block_on(async {
                let mut input = client.open(path).await.unwrap();
                let mut got = Vec::new();
                input.read_all_to(&mut got).await.unwrap();
                got
            });
            assert!(
                got == want,
                "{path}: read {} bytes, put {}",
                got.len(),
                want.len()
            );
        }
    }

    eprintln!("--- {old_leader} comes back; every namenode converges on one namespace");
    {
        cluster.start(&old_leader);
        cluster.wait_following(&old_leader, &new_leader, ELECTION);
        let rows = cluster.wait_converged(ELECTION);
        assert_eq!(rows.len(), 3);
        let digests: BTreeSet<String> = rows
            .iter()
            .map(|r| r["namespace_digest"].to_string())
            .collect();
        assert_eq!(digests.len(), 1, "{rows:#?}");
    }
}
