//! A datanode that stops heartbeating turns stale, then dead, and is live
//! again once it restarts; racks come from the datanodes' addresses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cluster::{MiniCluster, wait_until};

const HEARTBEAT: Duration = Duration::from_millis(300);
const STALE_AFTER: Duration = Duration::from_secs(2);
const DEAD_AFTER: Duration = Duration::from_secs(5);
/// Slack for a loaded machine: polling, process start-up, scheduling.
const SLACK: Duration = Duration::from_secs(10);

#[test]
fn stopped_datanode_turns_stale_then_dead_and_live_again_after_restart() {
    let mut cluster = MiniCluster::builder()
        .rack(2)
        .rack(2)
        .heartbeat(HEARTBEAT)
        .stale_after(STALE_AFTER)
        .dead_after(DEAD_AFTER)
        .start();

    eprintln!("--- every datanode is live, on the rack of its address");
    {
        let report = cluster.datanode_report();
        assert_eq!(report.len(), 4, "report: {report:?}");
        for dn in cluster.datanodes() {
            let row = &report[&cluster.addr(&dn).to_string()];
            assert_eq!(row["state"], "live", "{dn}: {row}");
            assert_eq!(row["rack"], cluster.rack(&dn).as_str(), "{dn}: {row}");
        }
        let racks: BTreeSet<&str> = report
            .values()
            .map(|dn| dn["rack"].as_str().unwrap())
            .collect();
        assert_eq!(racks, BTreeSet::from(["/dc1/rack1", "/dc1/rack2"]));
        assert_eq!(cluster.rack("dn3"), "/dc1/rack2");
    }

    eprintln!("--- stop dn3: right after, it is still live");
    let stopped_at = {
        cluster.stop("dn3");
        let stopped_at = Instant::now();
        let state = cluster.datanode_state("dn3");
        // Its last heartbeat is at most one interval old, so it cannot be stale yet
        // unless the check itself took that long.
        if stopped_at.elapsed() < STALE_AFTER - HEARTBEAT {
            assert_eq!(state, "live");
        }
        stopped_at
    };

    eprintln!("--- dn3 turns stale, not before stale_after has passed");
    {
        wait_until("dn3 is no longer live", STALE_AFTER + SLACK, || {
            cluster.datanode_state("dn3") != "live"
        });
        let elapsed = stopped_at.elapsed();
        assert_eq!(cluster.datanode_state("dn3"), "stale", "after {elapsed:?}");
        assert!(
            elapsed >= STALE_AFTER - HEARTBEAT,
            "stale after only {elapsed:?} of silence"
        );
        for dn in ["dn1", "dn2", "dn4"] {
            assert_eq!(cluster.datanode_state(dn), "live", "{dn}");
        }
    }

    eprintln!("--- dn3 turns dead, not before dead_after has passed");
    {
        wait_until("dn3 is no longer stale", DEAD_AFTER + SLACK, || {
            cluster.datanode_state("dn3") != "stale"
        });
        let elapsed = stopped_at.elapsed();
        assert_eq!(cluster.datanode_state("dn3"), "dead", "after {elapsed:?}");
        assert!(
            elapsed >= DEAD_AFTER - HEARTBEAT,
            "dead after only {elapsed:?} of silence"
        );
    }

    eprintln!("--- restart dn3: live again, same address and rack, no duplicate entry");
    {
        cluster.start("dn3");
        wait_until("dn3 is live again", SLACK, || {
            cluster.datanode_state("dn3") == "live"
        });
        let report = cluster.datanode_report();
        assert_eq!(report.len(), 4, "report: {report:?}");
        assert_eq!(
            report[&cluster.addr("dn3").to_string()]["rack"],
            "/dc1/rack2"
        );
        assert!(
            report.values().all(|dn| dn["state"] == "live"),
            "report: {report:?}"
        );
    }
}
