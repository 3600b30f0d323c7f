//! Every mkdir acknowledged before a kill -9 of the namenode survives its restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cluster::{MiniCluster, wait_until};
use dfs_client::{ClientConfig, DfsClient};

const WRITERS: usize = 4;
const MKDIRS: usize = 1000;

#[test]
fn acknowledged_mkdirs_survive_kill_9() {
    let mut cluster = MiniCluster::builder().namenodes(1).rack(1).start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The lazy channel spawns its connection task on the current runtime.
    let _entered = runtime.enter();
    // One attempt per call: a mkdir during the kill fails at once instead of
    // waiting out the failover timeout for the only namenode to come back.
    let config = ClientConfig {
        failover_timeout_ms: 0,
        ..ClientConfig::new(vec![cluster.namenode_addr().to_string()])
    };
    let client = Arc::new(DfsClient::connect(&config, None).unwrap());
    runtime.block_on(client.mkdirs("/load", false)).unwrap();

    eprintln!("--- {WRITERS} clients issue {MKDIRS} mkdirs; kill -9 the namenode midway");
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let client = client.clone();
            let acknowledged = acknowledged.clone();
            runtime.spawn(async move {
                let mut ok = Vec::new();
                for i in (w..MKDIRS).step_by(WRITERS) {
                    let path = format!("/load/d{i}");
                    if client.mkdirs(&path, false).await.is_ok() {
                        ok.push(path);
                        acknowledged.fetch_add(1, Ordering::SeqCst);
                    }
                }
                ok
            })
        })
        .collect();
    wait_until("300 mkdirs acknowledged", Duration::from_secs(60), || {
        acknowledged.load(Ordering::SeqCst) >= 300
    });
    cluster.kill("nn1");
    let succeeded: Vec<String> = runtime
        .block_on(futures::future::join_all(writers))
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    assert!(
        succeeded.len() >= 300,
        "only {} mkdirs succeeded",
        succeeded.len()
    );
    assert!(succeeded.len() < MKDIRS, "the kill came after every mkdir");

    eprintln!("--- restart: every acknowledged mkdir is there");
    {
        cluster.start("nn1");
        // A client that waits for the restarted namenode to lead again.
        let config = ClientConfig::new(vec![cluster.namenode_addr().to_string()]);
        let patient = DfsClient::connect(&config, None).unwrap();
        let listed = runtime.block_on(patient.list("/load")).unwrap();
        let present: std::collections::HashSet<String> =
            listed.into_iter().map(|s| s.path).collect();
        let lost: Vec<&String> = succeeded.iter().filter(|p| !present.contains(*p)).collect();
        assert!(
            lost.is_empty(),
            "{} acknowledged mkdirs lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
        assert!(present.len() >= succeeded.len());
    }

    eprintln!("--- and the namenode takes new writes after recovery");
    runtime
        .block_on(client.mkdirs("/load/after-restart", false))
        .unwrap();
}
