//! `dfs-cluster up / status / stop / start / down` drive a detached cluster
//! that a plain `dfs` client can use, and `down` leaves no process behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DFS_CLUSTER: &str = env!("CARGO_BIN_EXE_dfs-cluster");
const DFS: &str = env!("CARGO_BIN_EXE_dfs");

fn dfs_cluster(args: &[&str], dir: &Path) -> Output {
    let mut command = Command::new(DFS_CLUSTER);
    command.arg(args[0]).arg("--dir").arg(dir).args(&args[1..]);
    command.env_remove("DFS_CLUSTER_DIR");
    command.output().unwrap()
}

fn succeed(args: &[&str], dir: &Path) -> String {
    let out = dfs_cluster(args, dir);
    assert!(
        out.status.success(),
        "dfs-cluster {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Node name → pid as recorded in `cluster.json` (absent when stopped).
fn recorded_pids(dir: &Path) -> BTreeMap<String, Option<u32>> {
    let text = std::fs::read_to_string(dir.join("cluster.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&text).unwrap();
    state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let pid = n["pid"].as_u64().map(|p| u32::try_from(p).unwrap());
            (n["name"].as_str().unwrap().to_owned(), pid)
        })
        .collect()
}

/// Whether the process runs. Detached nodes outlive `dfs-cluster` and are
/// re-parented; a zombie awaiting its new parent has exited all the same.
fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

/// The status line of `GET /` at `addr`: any answer proves a server listens.
fn http_status_line(addr: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Runs `dfs-cluster down` when the test ends, even by panic: `up` detaches
/// its nodes, so nothing else would stop them.
struct DownOnDrop(PathBuf);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        if self.0.join("cluster.json").exists() {
            let out = dfs_cluster(&["down"], &self.0);
            if std::thread::panicking() {
                eprintln!("cleanup `down`: {}", String::from_utf8_lossy(&out.stderr));
                for log in std::fs::read_dir(self.0.join("logs"))
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let text = std::fs::read_to_string(log.path()).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    eprintln!(
                        "===== {} =====\n{}",
                        log.path().display(),
                        lines[lines.len().saturating_sub(40)..].join("\n")
                    );
                }
            }
        }
    }
}

#[test]
fn up_status_stop_start_down_and_nothing_is_left_running() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let _down = DownOnDrop(dir.clone());
    let mut every_pid = Vec::new();

    eprintln!("--- up: 3 namenodes (the default) and 3 datanodes on 2 racks, detached");
    {
        let out = succeed(
            &[
                "up",
                "--datanodes",
                "3",
                "--racks",
                "2",
                "--heartbeat-ms",
                "300",
                "--stale-ms",
                "3000",
                "--dead-ms",
                "10000",
            ],
            &dir,
        );
        let client_config = dir.join("dfs.toml");
        assert!(
            out.contains(&format!("export DFS_CONFIG={}", client_config.display())),
            "{out}"
        );
        assert!(out.contains("dfs-cluster down --dir"), "{out}");
        for node in ["nn1", "nn2", "nn3", "dn1", "dn2", "dn3"] {
            assert!(
                out.lines().any(|l| l.trim_start().starts_with(node)
                    && l.contains("http://")
                    && l.ends_with('/')),
                "no URL for {node} in:\n{out}"
            );
        }
        let pids = recorded_pids(&dir);
        assert_eq!(
            pids.keys().collect::<Vec<_>>(),
            ["dn1", "dn2", "dn3", "nn1", "nn2", "nn3"]
        );
        for (node, pid) in &pids {
            let pid = pid.unwrap_or_else(|| panic!("{node} has no pid"));
            assert!(is_alive(pid), "{node} (pid {pid}) is not running after up");
            every_pid.push(pid);
        }
    }

    eprintln!("--- up again is refused while the cluster runs");
    {
        let out = dfs_cluster(&["up"], &dir);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("already holds a running cluster"),
            "{stderr}"
        );
    }

    eprintln!("--- status lists every node running on its rack");
    {
        let out = succeed(&["status"], &dir);
        let row = |node: &str| {
            out.lines()
                .find(|l| l.split_whitespace().next() == Some(node))
                .unwrap_or_else(|| panic!("no {node} in status:\n{out}"))
                .to_owned()
        };
        assert!(
            row("nn1").contains("namenode") && row("nn1").ends_with("running"),
            "{out}"
        );
        assert!(
            row("dn1").contains("/dc1/rack1") && row("dn1").contains("127.0.1.1:"),
            "{out}"
        );
        assert!(
            row("dn2").contains("/dc1/rack1") && row("dn2").contains("127.0.1.2:"),
            "{out}"
        );
        assert!(
            row("dn3").contains("/dc1/rack2") && row("dn3").contains("127.0.2.1:"),
            "{out}"
        );
        assert!(out.lines().skip(1).all(|l| l.ends_with("running")), "{out}");
    }

    eprintln!("--- status --json lists every node with its pid and a URL that answers HTTP");
    {
        let out = succeed(&["status", "--json"], &dir);
        let nodes: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        let names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["nn1", "nn2", "nn3", "dn1", "dn2", "dn3"]);
        let pids = recorded_pids(&dir);
        for node in &nodes {
            let name = node["name"].as_str().unwrap();
            let kind = if name.starts_with("nn") {
                "namenode"
            } else {
                "datanode"
            };
            assert_eq!(node["kind"], kind, "{node}");
            assert_eq!(node["pid"].as_u64(), pids[name].map(u64::from), "{node}");
            let rpc: std::net::SocketAddr = node["rpc_address"].as_str().unwrap().parse().unwrap();
            let url = node["http_url"].as_str().unwrap();
            let http: std::net::SocketAddr = url.strip_prefix("http://").unwrap().parse().unwrap();
            assert_eq!(http.ip(), rpc.ip(), "{node}");
            assert_ne!(http.port(), rpc.port(), "{node}");
            assert_eq!(node.get("rack").is_some(), kind == "datanode", "{node}");
            assert!(
                http_status_line(http).starts_with("HTTP/1.1 "),
                "{name} at {url}"
            );
        }
        assert_eq!(nodes[3]["rack"], "/dc1/rack1");
        assert_eq!(nodes[5]["rack"], "/dc1/rack2");
    }

    eprintln!("--- a plain dfs client uses the cluster through dfs.toml");
    {
        let dfs = |args: &[&str]| {
            let out = Command::new(DFS)
                .arg("--config")
                .arg(dir.join("dfs.toml"))
                .args(args)
                .env_remove("DFS_CONFIG")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "dfs {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        dfs(&["mkdir", "-p", "/smoke"]);
        let listing = dfs(&["ls", "/"]);
        assert!(listing.contains("smoke"), "{listing}");
    }

    eprintln!("--- stop dn1, then start it again on the same address");
    {
        let old_pid = recorded_pids(&dir)["dn1"].unwrap();
        let out = succeed(&["stop", "dn1"], &dir);
        assert!(out.contains("stopped dn1"), "{out}");
        assert!(!is_alive(old_pid));
        assert_eq!(recorded_pids(&dir)["dn1"], None);
        let status = succeed(&["status"], &dir);
        assert!(
            status
                .lines()
                .any(|l| l.starts_with("dn1") && l.ends_with("stopped")),
            "{status}"
        );
        let json: Vec<serde_json::Value> =
            serde_json::from_str(&succeed(&["status", "--json"], &dir)).unwrap();
        let dn1 = json.iter().find(|n| n["name"] == "dn1").unwrap();
        assert!(dn1["pid"].is_null(), "{dn1}");
        assert!(dn1["http_url"].is_string(), "{dn1}");

        let out = succeed(&["start", "dn1"], &dir);
        assert!(
            out.contains("started dn1") && out.contains("127.0.1.1:"),
            "{out}"
        );
        let new_pid = recorded_pids(&dir)["dn1"].unwrap();
        assert_ne!(new_pid, old_pid);
        assert!(is_alive(new_pid));
        every_pid.push(new_pid);
    }

    eprintln!("--- unknown nodes and missing clusters are clear errors");
    {
        let out = dfs_cluster(&["stop", "dn9"], &dir);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("unknown node \"dn9\""));
        let out = dfs_cluster(&["status"], &tmp.path().join("nowhere"));
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("no cluster in"));
    }

    eprintln!("--- down stops everything; down again is harmless");
    {
        let out = succeed(&["down"], &dir);
        assert!(out.contains("stopped"), "{out}");
        let alive: Vec<u32> = every_pid
            .iter()
            .copied()
            .filter(|&pid| is_alive(pid))
            .collect();
        assert!(alive.is_empty(), "still running after down: {alive:?}");
        assert!(recorded_pids(&dir).values().all(Option::is_none));
        let out = succeed(&["down"], &dir);
        assert!(out.contains("nothing was running"), "{out}");
    }
}
