//! Every namenode and datanode serves `/metrics` in the Prometheus text
//! format, fetched with `curl` and read by Prometheus's own Python parser
//! (`prometheus_client`, pinned in the outside clients' venv), and the
//! numbers follow the cluster: a put moves files, blocks and written
//! bytes, a read moves read bytes, and after a kill -9 of the leader a
//! survivor reports leading.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;
mod outside_clients;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cluster::{MiniCluster, random_bytes, wait_until};

const ELECTION: Duration = Duration::from_secs(30);
const BLOCK_SIZE: u64 = 1024 * 1024;
/// Three blocks, the last one short.
const FILE_SIZE: usize = 2 * 1024 * 1024 + 12_345;

/// Every sample of one scrape: `name{k="v",...}` (labels sorted) → value.
type Samples = BTreeMap<String, f64>;

/// `GET url` with the curl binary, as an operator or a scraper would.
fn curl(url: &str) -> String {
    let out = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--fail",
            "--max-time",
            "10",
            url,
        ])
        .output()
        .expect("running curl");
    assert!(
        out.status.success(),
        "curl {url} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("metrics are UTF-8")
}

/// Reads every scrape with `prometheus_client.parser`, which raises on
/// anything the text format does not allow; returns their samples.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for node, text in json.load(sys.stdin).items():
    samples = {}
    for family in text_string_to_metric_families(text):
        if not family.documentation or family.type == "unknown":
            raise ValueError(f"{node}: {family.name} has no HELP or TYPE")
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}"] = s.value
    out[node] = samples
json.dump(out, sys.stdout)
"#;

fn parse(python: &Path, scrapes: &BTreeMap<String, String>) -> BTreeMap<String, Samples> {
    let mut child = Command::new(python)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(scrapes).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused a scrape: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Scrapes `nodes` and parses what they said.
fn scrape(cluster: &MiniCluster, python: &Path, nodes: &[String]) -> BTreeMap<String, Samples> {
    let scrapes = nodes
        .iter()
        .map(|n| (n.clone(), curl(&format!("{}/metrics", cluster.http_url(n)))))
        .collect();
    parse(python, &scrapes)
}

/// The value of `sample` (`name{labels}`), which must be there.
fn value(samples: &Samples, sample: &str) -> f64 {
    *samples
        .get(sample)
        .unwrap_or_else(|| panic!("no {sample} among {:#?}", samples.keys()))
}

/// The sum of `sample` over the scrapes of `nodes`.
fn total(scrapes: &BTreeMap<String, Samples>, nodes: &[String], sample: &str) -> f64 {
    nodes.iter().map(|n| value(&scrapes[n], sample)).sum()
}

/// The quorum state a namenode's scrape reports (the one gauge at 1).
fn quorum_state(samples: &Samples) -> String {
    ["looking", "following", "leading", "observing"]
        .into_iter()
        .find(|s| samples.get(&format!("dfs_namenode_quorum_state{{state=\"{s}\"}}")) == Some(&1.0))
        .unwrap_or("none")
        .to_owned()
}

/// Whether some sample of `name` with all of `labels` has a value ≥ 1.
fn counted(samples: &Samples, name: &str, labels: &[&str]) -> bool {
    samples.iter().any(|(key, &v)| {
        key.starts_with(&format!("{name}{{")) && labels.iter().all(|l| key.contains(l)) && v >= 1.0
    })
}

#[test]
fn metrics_parse_and_follow_puts_reads_and_a_leader_kill() {
    let Some(python) = outside_clients::python() else {
        return;
    };
    let mut cluster = MiniCluster::builder()
        .namenodes(3)
        .rack(2)
        .rack(1)
        .block_size(BLOCK_SIZE)
        .start();
    let su = cluster.superuser();
    let namenodes = cluster.namenodes();
    let datanodes = cluster.datanodes();
    let all: Vec<String> = namenodes.iter().chain(&datanodes).cloned().collect();
    let leader = cluster.wait_for_leader(ELECTION);

    eprintln!("--- every node's /metrics parses and has its families");
    let before = {
        let scrapes = scrape(&cluster, &python, &all);
        for nn in &namenodes {
            let s = &scrapes[nn];
            for sample in [
                "dfs_namenode_files{}",
                "dfs_namenode_directories{}",
                "dfs_namenode_blocks{}",
                "dfs_namenode_files_under_construction{}",
                "dfs_namenode_under_replicated_blocks{}",
                "dfs_namenode_corrupt_blocks{}",
                "dfs_namenode_missing_blocks{}",
                "dfs_namenode_pending_deletion_blocks{}",
                "dfs_namenode_datanodes{state=\"stale\"}",
                "dfs_namenode_capacity_bytes{}",
                "dfs_namenode_used_bytes{}",
                "dfs_namenode_remaining_bytes{}",
                "dfs_namenode_epoch{}",
                "dfs_namenode_last_zxid{}",
                "dfs_namenode_applied_zxid{}",
                "dfs_namenode_serving{}",
                "dfs_namenode_journal_fsync_duration_seconds_count{}",
                "dfs_namenode_journal_txns_per_fsync_count{}",
            ] {
                value(s, sample);
            }
            // GetPeerStatus from the harness's own leader search.
            assert!(
                counted(
                    s,
                    "dfs_rpc_calls_total",
                    &["service=\"QuorumProtocol\"", "method=\"GetPeerStatus\""]
                ),
                "{nn}: {:#?}",
                s.keys()
            );
        }
        let l = &scrapes[&leader];
        assert_eq!(quorum_state(l), "leading");
        assert_eq!(value(l, "dfs_namenode_serving{}"), 1.0);
        assert_eq!(value(l, "dfs_namenode_datanodes{state=\"live\"}"), 3.0);
        assert!(value(l, "dfs_namenode_capacity_bytes{}") > 0.0);
        for dn in &datanodes {
            let s = &scrapes[dn];
            for sample in [
                "dfs_datanode_written_bytes_total{}",
                "dfs_datanode_written_packets_total{}",
                "dfs_datanode_read_bytes_total{}",
                "dfs_datanode_read_packets_total{}",
                "dfs_datanode_pipelines_total{}",
                "dfs_datanode_pipeline_recoveries_total{}",
                "dfs_datanode_scanner_verified_replicas_total{}",
                "dfs_datanode_scanner_verified_bytes_total{}",
                "dfs_datanode_replicas{state=\"finalized\"}",
                "dfs_datanode_replicas{state=\"rbw\"}",
                "dfs_datanode_capacity_bytes{}",
                "dfs_datanode_used_bytes{}",
                "dfs_datanode_remaining_bytes{}",
                "dfs_datanode_active_transfers{}",
            ] {
                value(s, sample);
            }
        }
        scrapes
    };

    eprintln!("--- a put of 3 blocks moves files, blocks, replicas and written bytes");
    let source = cluster.dir().join("three-blocks");
    let content = random_bytes(10, FILE_SIZE);
    std::fs::write(&source, &content).unwrap();
    cluster.dfs_ok(&su, &["put", source.to_str().unwrap(), "/three-blocks"]);
    {
        let scrapes = scrape(&cluster, &python, &all);
        let (was, now) = (&before[&leader], &scrapes[&leader]);
        let moved = |sample: &str| value(now, sample) - value(was, sample);
        assert_eq!(moved("dfs_namenode_files{}"), 1.0);
        assert_eq!(moved("dfs_namenode_blocks{}"), 3.0);
        assert_eq!(value(now, "dfs_namenode_files_under_construction{}"), 0.0);
        assert_eq!(value(now, "dfs_namenode_missing_blocks{}"), 0.0);
        assert!(moved("dfs_namenode_last_zxid{}") >= 1.0);
        assert!(moved("dfs_namenode_journal_fsync_duration_seconds_count{}") >= 1.0);
        assert!(moved("dfs_namenode_journal_txns_per_fsync_sum{}") >= 3.0);
        assert!(
            counted(
                now,
                "dfs_rpc_calls_total",
                &["service=\"ClientProtocol\"", "method=\"Create\""]
            ),
            "{:#?}",
            now.keys()
        );
        assert!(
            value(
                now,
                "dfs_rpc_duration_seconds_count{method=\"AddBlock\",service=\"ClientProtocol\"}"
            ) >= 3.0
        );
        // Every datanode holds a replica of every block (replication 3).
        let written = total(&scrapes, &datanodes, "dfs_datanode_written_bytes_total{}")
            - total(&before, &datanodes, "dfs_datanode_written_bytes_total{}");
        assert_eq!(written, 3.0 * FILE_SIZE as f64);
        for dn in &datanodes {
            let (was, now) = (&before[dn], &scrapes[dn]);
            let moved = |sample: &str| value(now, sample) - value(was, sample);
            assert_eq!(moved("dfs_datanode_pipelines_total{}"), 3.0, "{dn}");
            assert_eq!(
                moved("dfs_datanode_replicas{state=\"finalized\"}"),
                3.0,
                "{dn}"
            );
            assert!(moved("dfs_datanode_written_packets_total{}") >= 3.0, "{dn}");
            assert!(
                counted(
                    now,
                    "dfs_rpc_calls_total",
                    &["service=\"DataTransfer\"", "method=\"WriteBlock\""]
                ),
                "{dn}"
            );
        }
    }

    eprintln!("--- a read moves read bytes; WebHDFS requests are counted by op");
    {
        let read = cluster.dfs(&su, &["cat", "/three-blocks"]);
        assert!(read.status.success());
        assert_eq!(read.stdout, content);
        let nn_url = cluster.http_url(&leader);
        // Whatever the WebHDFS routes answer, the layer counts the request.
        for query in ["op=liststatus", "op=No_Such_Op"] {
            let _ = Command::new("curl")
                .args(["--silent", "--max-time", "10"])
                .arg(format!("{nn_url}/webhdfs/v1/?{query}"))
                .output()
                .unwrap();
        }
        let scrapes = scrape(&cluster, &python, &all);
        let read_bytes = total(&scrapes, &datanodes, "dfs_datanode_read_bytes_total{}")
            - total(&before, &datanodes, "dfs_datanode_read_bytes_total{}");
        assert_eq!(read_bytes, FILE_SIZE as f64);
        let l = &scrapes[&leader];
        assert!(
            counted(l, "dfs_webhdfs_requests_total", &["op=\"LISTSTATUS\""]),
            "{:#?}",
            l.keys()
        );
        assert!(counted(l, "dfs_webhdfs_requests_total", &["op=\"OTHER\""]));
        assert!(counted(
            l,
            "dfs_webhdfs_duration_seconds_count",
            &["op=\"LISTSTATUS\""]
        ));
        assert!(
            !l.keys()
                .any(|k| k.contains("No_Such_Op") || k.contains("NO_SUCH_OP")),
            "unknown ops stay out of the labels"
        );
    }

    eprintln!("--- kill -9 the leader: a survivor reports leading, in a newer epoch");
    {
        let old_epoch = value(&before[&leader], "dfs_namenode_epoch{}");
        cluster.kill(&leader);
        let survivors: Vec<String> = namenodes
            .iter()
            .filter(|n| **n != leader)
            .cloned()
            .collect();
        wait_until("a survivor's metrics say it leads", ELECTION, || {
            let states = survivors
                .iter()
                .map(|n| {
                    let text = curl(&format!("{}/metrics", cluster.http_url(n)));
                    let leading = text.contains("dfs_namenode_quorum_state{state=\"leading\"} 1");
                    let following =
                        text.contains("dfs_namenode_quorum_state{state=\"following\"} 1");
                    (n.clone(), (leading, following))
                })
                .collect::<BTreeMap<_, _>>();
            let leaders = states.values().filter(|(l, _)| *l).count();
            let followers = states.values().filter(|(_, f)| *f).count();
            leaders == 1 && followers == 1
        });
        let scrapes = scrape(&cluster, &python, &survivors);
        let new_leader = survivors
            .iter()
            .find(|n| quorum_state(&scrapes[*n]) == "leading")
            .unwrap();
        assert!(value(&scrapes[new_leader], "dfs_namenode_epoch{}") > old_epoch);
        let follower = survivors.iter().find(|n| *n != new_leader).unwrap();
        assert_eq!(quorum_state(&scrapes[follower]), "following");
        assert_eq!(value(&scrapes[follower], "dfs_namenode_serving{}"), 0.0);
        // The namespace survived with it.
        wait_until("the new leader counts the file", ELECTION, || {
            let s = scrape(&cluster, &python, std::slice::from_ref(new_leader));
            value(&s[new_leader], "dfs_namenode_files{}")
                == value(&before[&leader], "dfs_namenode_files{}") + 1.0
        });
    }
}
