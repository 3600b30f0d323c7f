//! Dropping a `MiniCluster` (also during a panic) leaves no node behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use cluster::MiniCluster;

/// Whether the process runs (a zombie has exited; it only awaits its parent).
fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn dropping_the_cluster_kills_every_node_and_removes_its_dir() {
    let cluster = MiniCluster::builder().rack(1).rack(1).start();
    let pids = cluster.pids();
    let dir = cluster.dir().to_owned();

    eprintln!("--- every node runs");
    {
        assert_eq!(pids.len(), 3, "nn1, dn1, dn2");
        assert!(pids.iter().all(|&pid| is_alive(pid)), "{pids:?}");
    }

    eprintln!("--- drop: every node is gone, and so is the directory");
    {
        drop(cluster);
        let alive: Vec<u32> = pids.iter().copied().filter(|&pid| is_alive(pid)).collect();
        assert!(alive.is_empty(), "still running: {alive:?}");
        assert!(!dir.exists(), "{} still exists", dir.display());
    }
}

#[test]
fn a_panicking_test_still_kills_every_node_even_a_paused_one() {
    let pids = Arc::new(Mutex::new(Vec::new()));

    eprintln!("--- start a cluster, pause a datanode, panic");
    {
        let seen = Arc::clone(&pids);
        let result = panic::catch_unwind(AssertUnwindSafe(move || {
            let cluster = MiniCluster::builder().rack(2).start();
            *seen.lock().unwrap() = cluster.pids();
            cluster.pause("dn2");
            panic!("deliberate panic with a running cluster");
        }));
        assert!(result.is_err());
    }

    eprintln!("--- every node is gone");
    {
        let pids = pids.lock().unwrap();
        assert_eq!(pids.len(), 3, "nn1, dn1, dn2");
        let alive: Vec<u32> = pids.iter().copied().filter(|&pid| is_alive(pid)).collect();
        assert!(alive.is_empty(), "still running: {alive:?}");
    }
}
