//! `dfs put`/`get` refuse what they must, with HDFS-shell messages, and a
//! refused put leaves nothing behind (no `._COPYING_` file either).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::io::Write;
use std::process::{Output, Stdio};
use std::time::Duration;

use cluster::{MiniCluster, random_bytes, wait_until};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

#[track_caller]
fn assert_fails_with(out: &Output, message: &str) {
    assert!(
        !out.status.success(),
        "expected failure, got success: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(stderr(out), message);
}

/// The names in `dir`, from `dfs ls --json`.
fn names(cluster: &MiniCluster, dir: &str) -> Vec<String> {
    let text = cluster.dfs_ok(&cluster.superuser(), &["ls", "--json", dir]);
    let listing: serde_json::Value = serde_json::from_str(&text).unwrap();
    listing
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn put_and_get_refuse_cleanly() {
    let mut cluster = MiniCluster::builder()
        .rack(2)
        .rack(1)
        .block_size(1024 * 1024)
        .start();
    let su = cluster.superuser();
    let local = cluster.dir().join("local");
    std::fs::create_dir(&local).unwrap();
    let original = random_bytes(1, 1024 * 1024 + 3);
    let other = random_bytes(2, 5000);
    let original_path = local.join("original");
    let other_path = local.join("other");
    std::fs::write(&original_path, &original).unwrap();
    std::fs::write(&other_path, &other).unwrap();
    let original_path = original_path.to_str().unwrap();
    let other_path = other_path.to_str().unwrap();
    cluster.dfs_ok(&su, &["mkdir", "/data"]);
    cluster.dfs_ok(&su, &["chown", "alice", "/data"]);
    cluster.dfs_ok("alice", &["put", original_path, "/data/f"]);

    eprintln!("--- bob may not write in alice's /data: refused, nothing left behind");
    {
        assert_fails_with(
            &cluster.dfs("bob", &["put", other_path, "/data/g"]),
            "put: Permission denied: user=bob, access=WRITE, inode=\"/data\":alice:supergroup:drwxr-xr-x",
        );
        assert_fails_with(
            &cluster.dfs("bob", &["put", "-", "/data/h"]),
            "put: Permission denied: user=bob, access=WRITE, inode=\"/data\":alice:supergroup:drwxr-xr-x",
        );
        assert_eq!(names(&cluster, "/data"), ["/data/f"]);
        let fsck = cluster.fsck("/");
        assert_eq!(fsck["summary"]["total_files"], 1, "{fsck}");
        assert_eq!(fsck["summary"]["total_blocks"], 2, "{fsck}");
    }

    eprintln!("--- put onto an existing file needs -f; without it the original stays");
    {
        assert_fails_with(
            &cluster.dfs("alice", &["put", other_path, "/data/f"]),
            "put: '/data/f': File exists",
        );
        assert_eq!(names(&cluster, "/data"), ["/data/f"]);
        let back = cluster.dfs("alice", &["cat", "/data/f"]);
        assert!(back.stdout == original, "the original changed");

        cluster.dfs_ok("alice", &["put", "-f", other_path, "/data/f"]);
        let back = cluster.dfs("alice", &["cat", "/data/f"]);
        assert!(back.stdout == other, "put -f did not replace the file");
        assert_eq!(names(&cluster, "/data"), ["/data/f"]);
        let fsck = cluster.fsck("/data");
        assert_eq!(
            fsck["summary"]["total_blocks"], 1,
            "old blocks linger: {fsck}"
        );
    }

    eprintln!("--- a missing local source, a missing parent, a directory onto a file");
    {
        let missing = local.join("nope");
        let missing = missing.to_str().unwrap();
        assert_fails_with(
            &cluster.dfs("alice", &["put", missing, "/data/g"]),
            &format!("put: '{missing}': No such file or directory"),
        );
        let out = cluster.dfs("alice", &["put", other_path, "/data/no/such/g"]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).starts_with("put: ") && stderr(&out).contains("/data/no"),
            "{}",
            stderr(&out)
        );
        let out = cluster.dfs("alice", &["put", local.to_str().unwrap(), "/data/f"]);
        assert_fails_with(&out, "put: '/data/f': Is not a directory");
        assert_eq!(names(&cluster, "/data"), ["/data/f"]);
    }

    eprintln!("--- get of a missing path, of a directory onto a file, onto an existing local file");
    {
        let target = local.join("got");
        let target_str = target.to_str().unwrap();
        assert_fails_with(
            &cluster.dfs("alice", &["get", "/data/missing", target_str]),
            "get: '/data/missing': No such file or directory",
        );
        assert!(!target.exists(), "a failed get left {target_str}");
        let out = cluster.dfs("alice", &["get", "/data", other_path]);
        assert_fails_with(&out, &format!("get: '{other_path}': Is not a directory"));
        let out = cluster.dfs("alice", &["get", "/data", "-"]);
        assert_fails_with(&out, "get: '/data': Is a directory");
        assert_fails_with(
            &cluster.dfs("alice", &["get", "/data/f", other_path]),
            &format!("get: '{other_path}': File exists"),
        );
        assert_fails_with(
            &cluster.dfs("alice", &["cat", "/data/missing"]),
            "cat: '/data/missing': No such file or directory",
        );
        let leftovers: Vec<_> = std::fs::read_dir(&local)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("_COPYING_"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    eprintln!("--- bob may not read a file alice closed");
    {
        cluster.dfs_ok("alice", &["chmod", "600", "/data/f"]);
        let target = local.join("bob");
        assert_fails_with(
            &cluster.dfs("bob", &["get", "/data/f", target.to_str().unwrap()]),
            "get: Permission denied: user=bob, access=READ, inode=\"/data/f\":alice:supergroup:-rw-------",
        );
        assert!(!target.exists());
    }

    eprintln!("--- every datanode dies mid-upload: the put fails and removes its ._COPYING_ file");
    {
        let mut put = cluster
            .dfs_command("alice")
            .args(["put", "-", "/data/doomed"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let bytes = random_bytes(3, 3 * 1024 * 1024);
        let stdin = put.stdin.as_mut().unwrap();
        stdin.write_all(&bytes[..1024 * 1024 + 200_000]).unwrap();
        stdin.flush().unwrap();
        wait_until(
            "/data/doomed._COPYING_ exists",
            Duration::from_secs(10),
            || names(&cluster, "/data").contains(&"/data/doomed._COPYING_".to_owned()),
        );
        for node in cluster.datanodes() {
            cluster.kill(&node);
        }
        // The pipe breaks if the put already gave up: that is fine too.
        let _ = stdin.write_all(&bytes[1024 * 1024 + 200_000..]);
        drop(put.stdin.take());
        let out = put.wait_with_output().unwrap();
        assert!(
            !out.status.success(),
            "a put with no datanode left succeeded"
        );
        let error = stderr(&out);
        eprintln!("    {error}");
        assert!(
            error
                .lines()
                .last()
                .unwrap_or_default()
                .starts_with("put: "),
            "{error}"
        );
        assert_eq!(names(&cluster, "/data"), ["/data/f"]);
    }
}
