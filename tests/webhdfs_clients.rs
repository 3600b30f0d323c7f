//! WebHDFS driven by clients nobody here wrote: HdfsCLI (PyPI `hdfs`),
//! fsspec's `webhdfs` filesystem and pandas through it, at the versions the
//! test set-up pins, against a cluster of 3 namenodes on 2 racks. The
//! Python scripts (`tests/webhdfs_scripts/`) check every answer and exit
//! non-zero at the first wrong one; the bytes they write are read back with
//! `dfs get`, and files `dfs put` wrote are read back through them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;
mod outside_clients;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cluster::{MiniCluster, random_bytes};

const BLOCK: usize = 1024 * 1024;
const USER: &str = "alice";
const OTHER: &str = "mallory";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/webhdfs_scripts")
        .join(name)
}

fn cluster() -> MiniCluster {
    let cluster = MiniCluster::builder()
        .namenodes(3)
        .rack(2)
        .rack(2)
        .block_size(BLOCK as u64)
        .start();
    cluster.wait_for_leader(Duration::from_secs(30));
    let su = cluster.superuser();
    cluster.dfs_ok(&su, &["mkdir", "-p", &format!("/user/{USER}")]);
    cluster.dfs_ok(&su, &["chown", USER, &format!("/user/{USER}")]);
    cluster
}

/// Every namenode's WebHDFS URL, `;`-separated, as HdfsCLI takes them.
fn namenode_urls(cluster: &MiniCluster) -> String {
    cluster
        .namenodes()
        .iter()
        .map(|nn| cluster.http_url(nn))
        .collect::<Vec<_>>()
        .join(";")
}

fn assert_ran(output: &Output, what: &str) {
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("ok"),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn get(cluster: &MiniCluster, path: &str) -> Vec<u8> {
    let out = cluster.dfs(USER, &["get", path, "-"]);
    assert!(
        out.status.success(),
        "dfs get {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn hdfscli_round_trips_every_operation() {
    let Some(python) = outside_clients::python() else {
        return;
    };
    let cluster = cluster();
    let data = cluster.dir().join("local-files");
    std::fs::create_dir_all(&data).unwrap();
    let sizes = [0, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 517];
    for (seed, size) in sizes.iter().enumerate() {
        std::fs::write(
            data.join(size.to_string()),
            random_bytes(seed as u64, *size),
        )
        .unwrap();
    }

    eprintln!("--- HdfsCLI, given every namenode's URL, runs every operation");
    let output = Command::new(&python)
        .arg(script("hdfscli_round_trip.py"))
        .env("URLS", namenode_urls(&cluster))
        .env("DFS_USER", USER)
        .env("OTHER_USER", OTHER)
        .env("SUPERUSER", cluster.superuser())
        .env("DATA", &data)
        .env("BLOCK", BLOCK.to_string())
        .output()
        .unwrap();
    assert_ran(&output, "hdfscli_round_trip.py");

    eprintln!("--- what HdfsCLI wrote reads back byte for byte with dfs get");
    for size in sizes {
        let want = std::fs::read(data.join(size.to_string())).unwrap();
        let got = get(&cluster, &format!("/user/{USER}/w/{size}"));
        assert!(got == want, "{size}: dfs get gave {} bytes", got.len());
    }
    let fsck = cluster.fsck(&format!("/user/{USER}/w/{}", 3 * BLOCK + 517));
    let blocks = fsck["files"][0]["blocks"].as_array().unwrap();
    assert_eq!(
        blocks.len(),
        4,
        "a 3-block-and-a-bit file has 4 blocks: {fsck}"
    );
}

#[test]
fn fsspec_and_pandas_round_trip_and_read_what_dfs_put_wrote() {
    let Some(python) = outside_clients::python() else {
        return;
    };
    let cluster = cluster();
    let leader = cluster.wait_for_leader(Duration::from_secs(30));

    eprintln!("--- dfs put a file that fsspec then reads");
    let put_bytes = random_bytes(42, 2 * BLOCK + 3);
    let local = cluster.dir().join("put-by-dfs");
    std::fs::write(&local, &put_bytes).unwrap();
    cluster.dfs_ok(
        USER,
        &[
            "put",
            local.to_str().unwrap(),
            &format!("/user/{USER}/from-dfs"),
        ],
    );

    eprintln!("--- fsspec and pandas, at the leader's WebHDFS");
    let url = cluster.http_url(&leader);
    let (host, port) = url.trim_start_matches("http://").rsplit_once(':').unwrap();
    let output = Command::new(&python)
        .arg(script("fsspec_round_trip.py"))
        .env("HOST", host)
        .env("PORT", port)
        .env("DFS_USER", USER)
        .env("OTHER_USER", OTHER)
        .env("FROM_DFS", &local)
        .env("BLOCK", BLOCK.to_string())
        .output()
        .unwrap();
    assert_ran(&output, "fsspec_round_trip.py");

    eprintln!("--- what fsspec wrote (CREATE, then an APPEND per buffer) reads back with dfs get");
    let want = random_bytes(7, 3 * BLOCK + 100);
    assert!(get(&cluster, &format!("/user/{USER}/fs/big")) == want);
    let csv = String::from_utf8(get(&cluster, &format!("/user/{USER}/fs/table.csv"))).unwrap();
    assert!(csv.starts_with("n,square\n0,0\n1,1\n"), "{csv:.80}");
}

#[test]
fn hdfscli_rides_through_a_kill_of_the_leader() {
    let Some(python) = outside_clients::python() else {
        return;
    };
    let mut cluster = cluster();
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    let mut child = Command::new(&python)
        .arg(script("hdfscli_failover.py"))
        .env("URLS", namenode_urls(&cluster))
        .env("DFS_USER", USER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    eprintln!("--- HdfsCLI writes and reads through {leader}");
    let first = lines.next().unwrap().unwrap();
    assert_eq!(first, "before", "the script's first phase");

    eprintln!("--- kill -9 the leader; wait for a new one");
    cluster.kill(&leader);
    let new_leader = cluster.wait_for_leader(Duration::from_secs(30));
    assert_ne!(new_leader, leader);
    cluster.wait_datanodes_live();

    eprintln!("--- the same HdfsCLI client carries on at {new_leader}");
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        status.success() && rest.iter().any(|l| l == "ok"),
        "after the failover ({status}): {rest:?}\n{stderr}"
    );
    assert_eq!(
        get(&cluster, &format!("/user/{USER}/after")),
        b"written after the failover"
    );
    assert_eq!(
        get(&cluster, &format!("/user/{USER}/before")),
        b"written before the failover"
    );
}
