//! `dfs append` (alias `appendToFile`) against a real cluster: onto a
//! partial last block (its length not a multiple of 512 either), onto a full
//! one, with `--new-block` (a short block in the middle that every reader
//! and fsck handle), from stdin, a second appender refused in HDFS's words,
//! another user without WRITE refused, kill -9 of a pipeline datanode
//! mid-append, and kill -9 of the appending client (lease recovery keeps
//! every acknowledged byte).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use cluster::{MiniCluster, random_bytes, wait_until};
use dfs_client::{AppendOptions, ClientConfig, ContentSummary, DfsClient};

const BLOCK: usize = 1024 * 1024;

fn write_local(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `dfs get PATH -` (which verifies every chunk's checksum) as `user`.
fn get(cluster: &MiniCluster, user: &str, path: &str) -> Vec<u8> {
    let out = cluster.dfs(user, &["get", path, "-"]);
    assert!(
        out.status.success(),
        "get {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Each block's length in fsck, in file order, and the file's fsck status.
fn block_lengths(cluster: &MiniCluster, path: &str) -> (Vec<u64>, String) {
    let fsck = cluster.fsck(path);
    let lengths = fsck["files"][0]["blocks"]
        .as_array()
        .unwrap_or_else(|| panic!("no blocks in {fsck}"))
        .iter()
        .map(|b| b["length"].as_u64().unwrap())
        .collect();
    (lengths, fsck["status"].as_str().unwrap_or("?").to_owned())
}

fn assert_same(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: first difference at byte {at}");
    }
}

#[test]
fn appends_round_trip_onto_partial_and_full_blocks_and_with_new_block() {
    let cluster = MiniCluster::builder()
        .rack(2)
        .rack(2)
        .block_size(BLOCK as u64)
        .start();
    let su = cluster.superuser();
    cluster.dfs_ok(&su, &["mkdir", "/a"]);
    let local = tempfile::tempdir().unwrap();

    eprintln!("--- append to a partial last block whose length is not a multiple of 512");
    let mut want = random_bytes(1, 1000);
    {
        let first = write_local(local.path(), "first", &want);
        cluster.dfs_ok(&su, &["put", &first, "/a/f"]);
        let more = random_bytes(2, 3000);
        let second = write_local(local.path(), "second", &more);
        let third_bytes = random_bytes(3, 77);
        let third = write_local(local.path(), "third", &third_bytes);
        cluster.dfs_ok(&su, &["append", &second, &third, "/a/f"]);
        want.extend_from_slice(&more);
        want.extend_from_slice(&third_bytes);
        assert_same(&get(&cluster, &su, "/a/f"), &want, "after one append");
        let (lengths, status) = block_lengths(&cluster, "/a/f");
        assert_eq!(lengths, vec![want.len() as u64], "the block grew in place");
        assert_eq!(status, "HEALTHY");
        // Nothing appended: the block is reopened and closed as it was.
        let empty = write_local(local.path(), "empty", b"");
        cluster.dfs_ok(&su, &["append", &empty, "/a/f"]);
        assert_same(&get(&cluster, &su, "/a/f"), &want, "after an empty append");
        assert_eq!(
            block_lengths(&cluster, "/a/f"),
            (lengths, "HEALTHY".to_owned())
        );
    }

    eprintln!("--- appendToFile from stdin fills the block, crosses into the next");
    {
        let more = random_bytes(4, BLOCK + 12_345);
        let mut child = cluster
            .dfs_command(&su)
            .args(["appendToFile", "-", "/a/f"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&more).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        want.extend_from_slice(&more);
        assert_same(&get(&cluster, &su, "/a/f"), &want, "after the stdin append");
        let (lengths, _) = block_lengths(&cluster, "/a/f");
        assert_eq!(lengths, vec![BLOCK as u64, (want.len() - BLOCK) as u64]);
    }

    eprintln!("--- --new-block leaves a short block in the middle; readers and fsck take it");
    {
        let more = random_bytes(5, 5000);
        let file = write_local(local.path(), "nb", &more);
        cluster.dfs_ok(&su, &["append", "--new-block", &file, "/a/f"]);
        want.extend_from_slice(&more);
        let (lengths, status) = block_lengths(&cluster, "/a/f");
        let short = (want.len() - BLOCK - 5000) as u64;
        assert_eq!(lengths, vec![BLOCK as u64, short, 5000]);
        assert_eq!(status, "HEALTHY");
        assert_same(
            &get(&cluster, &su, "/a/f"),
            &want,
            "with a short middle block",
        );
        let cat = cluster.dfs(&su, &["cat", "/a/f"]);
        assert_same(&cat.stdout, &want, "cat");
        // Equal bytes, equal checksum, whatever the blocks.
        let copy = write_local(local.path(), "whole", &want);
        cluster.dfs_ok(&su, &["put", &copy, "/a/copy"]);
        let sums = cluster.dfs_ok(&su, &["checksum", "/a/f", "/a/copy"]);
        let sums: Vec<&str> = sums
            .lines()
            .map(|l| l.split_whitespace().nth(2).unwrap_or(""))
            .collect();
        assert_eq!(sums.len(), 2, "{sums:?}");
        assert_eq!(sums[0], sums[1], "checksums of equal bytes differ");
    }

    eprintln!("--- ranged reads on either side of the short block, through the library");
    {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let config = ClientConfig::load(Some(&cluster.client_config())).unwrap();
        let client = DfsClient::connect(&config, Some(su.clone())).unwrap();
        let short_end = want.len() - 5000;
        for start in [
            0,
            BLOCK - 3,
            BLOCK + 1,
            short_end - 1,
            short_end,
            short_end + 7,
        ] {
            let got = runtime.block_on(async {
                let mut input = client.open("/a/f").await.unwrap();
                input.seek(start as u64).await.unwrap();
                let mut buf = vec![0; 600];
                let mut filled = 0;
                while filled < buf.len() {
                    match input.read(&mut buf[filled..]).await.unwrap() {
                        0 => break,
                        n => filled += n,
                    }
                }
                buf.truncate(filled);
                buf
            });
            let end = (start + 600).min(want.len());
            assert_same(&got, &want[start..end], &format!("read at {start}"));
        }

        eprintln!("--- DfsClient::append with new_block, and content_summary");
        let extra = random_bytes(9, 2000);
        runtime.block_on(async {
            let options = AppendOptions { new_block: true };
            let mut out = client.append("/a/f", &options).await.unwrap();
            out.write(&extra).await.unwrap();
            out.close().await.unwrap();
        });
        want.extend_from_slice(&extra);
        let (lengths, _) = block_lengths(&cluster, "/a/f");
        assert_eq!(lengths.last(), Some(&2000), "{lengths:?}");
        assert_same(
            &get(&cluster, &su, "/a/f"),
            &want,
            "after the library append",
        );
        let summary = runtime.block_on(client.content_summary("/a/f")).unwrap();
        let replication = u64::from(runtime.block_on(client.stat("/a/f")).unwrap().replication);
        assert_eq!(
            summary,
            ContentSummary {
                length: want.len() as u64,
                file_count: 1,
                directory_count: 0,
                space_consumed: want.len() as u64 * replication,
                quota: -1,
                space_quota: -1,
            }
        );
    }

    eprintln!("--- append to a full last block starts a new one");
    {
        let full = random_bytes(6, BLOCK);
        let file = write_local(local.path(), "full", &full);
        cluster.dfs_ok(&su, &["put", &file, "/a/full"]);
        let more = random_bytes(7, 700);
        let tail = write_local(local.path(), "tail", &more);
        cluster.dfs_ok(&su, &["append", &tail, "/a/full"]);
        let (lengths, status) = block_lengths(&cluster, "/a/full");
        assert_eq!(lengths, vec![BLOCK as u64, 700]);
        assert_eq!(status, "HEALTHY");
        let mut both = full;
        both.extend_from_slice(&more);
        assert_same(&get(&cluster, &su, "/a/full"), &both, "full + tail");
    }

    eprintln!("--- append to a missing file creates it; to a directory is refused");
    {
        let bytes = random_bytes(8, 10);
        let file = write_local(local.path(), "new", &bytes);
        cluster.dfs_ok(&su, &["append", &file, "/a/new"]);
        assert_same(&get(&cluster, &su, "/a/new"), &bytes, "created by append");
        let out = cluster.dfs(&su, &["append", &file, "/a"]);
        assert!(!out.status.success());
    }

    eprintln!("--- content summary: dfs count");
    {
        let out = cluster.dfs_ok(&su, &["count", "/a"]);
        let fields: Vec<&str> = out.split_whitespace().collect();
        // /a/f, /a/copy (taken before the library's 2000 bytes), /a/full, /a/new.
        let total = (want.len() + (want.len() - 2000) + BLOCK + 700 + 10) as u64;
        assert_eq!(fields[..3], ["1", "4", &total.to_string()][..], "{out}");
    }
}

#[test]
fn a_second_appender_and_a_user_without_write_are_refused() {
    let cluster = MiniCluster::builder()
        .rack(3)
        .block_size(BLOCK as u64)
        .start();
    let su = cluster.superuser();
    cluster.dfs_ok(&su, &["mkdir", "/s"]);
    cluster.dfs_ok(&su, &["chmod", "777", "/s"]);
    let local = tempfile::tempdir().unwrap();
    let bytes = random_bytes(1, 1000);
    let file = write_local(local.path(), "f", &bytes);
    cluster.dfs_ok("alice", &["put", &file, "/s/f"]);
    cluster.dfs_ok("alice", &["chmod", "644", "/s/f"]);

    eprintln!("--- bob has no WRITE on alice's file");
    {
        let out = cluster.dfs("bob", &["append", &file, "/s/f"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Permission denied"), "{err}");
        assert_eq!(get(&cluster, &su, "/s/f").len(), 1000, "nothing appended");
    }

    eprintln!("--- while alice appends from stdin, another appender is refused in HDFS's words");
    {
        let mut first: Child = cluster
            .dfs_command("alice")
            .args(["append", "-", "/s/f"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = first.stdin.as_mut().unwrap();
        stdin.write_all(&random_bytes(2, 100)).unwrap();
        stdin.flush().unwrap();
        wait_until(
            "alice's append holds the lease",
            Duration::from_secs(20),
            || cluster.fsck("/s/f")["files"][0]["under_construction"] == true,
        );
        let out = cluster.dfs("alice", &["append", &file, "/s/f"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        // HDFS: "Failed to APPEND_FILE /x for C on ADDR because this file
        // lease is currently owned by H on ADDR".
        let shape = err
            .split_once("Failed to APPEND_FILE /s/f for ")
            .and_then(|(_, rest)| {
                let (client, holder) =
                    rest.split_once(" because this file lease is currently owned by ")?;
                Some((client.contains(" on 127."), holder.contains(" on 127.")))
            });
        assert_eq!(shape, Some((true, true)), "{err}");
        drop(first.stdin.take());
        let out = first.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(get(&cluster, &su, "/s/f").len(), 1100);
    }

    eprintln!("--- WRITE without READ is enough to append, in place or with a new block");
    {
        cluster.dfs_ok("alice", &["chmod", "622", "/s/f"]);
        let ten = write_local(local.path(), "ten", &[7; 10]);
        cluster.dfs_ok("bob", &["append", &ten, "/s/f"]);
        cluster.dfs_ok("bob", &["append", "--new-block", &ten, "/s/f"]);
        let back = get(&cluster, &su, "/s/f");
        assert_eq!(back.len(), 1120);
        assert!(back.ends_with(&[7; 20]));
        let (lengths, status) = block_lengths(&cluster, "/s/f");
        assert_eq!((lengths, status.as_str()), (vec![1110, 10], "HEALTHY"));
    }
}

/// Bytes in `node`'s rbw replica of block `id`, if it has one.
fn rbw_length(cluster: &MiniCluster, node: &str, id: u64) -> Option<u64> {
    let file = cluster
        .data_dir(node)
        .join("current")
        .join("rbw")
        .join(format!("blk_{id}"));
    std::fs::metadata(file).ok().map(|m| m.len())
}

/// The file's first block id and the datanodes (names) holding it.
fn first_block(cluster: &MiniCluster, path: &str) -> (u64, Vec<String>) {
    let fsck = cluster.fsck(path);
    let block = &fsck["files"][0]["blocks"][0];
    let nodes = cluster::fsck_addresses(block)
        .iter()
        .map(|a| cluster.datanode_at(a))
        .collect();
    (cluster::fsck_block_id(block), nodes)
}

/// Starts `dfs append - PATH` as `user`, feeding it `bytes` without closing stdin.
fn start_append(cluster: &MiniCluster, user: &str, path: &str, bytes: &[u8]) -> Child {
    let mut child = cluster
        .dfs_command(user)
        .args(["append", "-", path])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.as_mut().unwrap();
    stdin.write_all(bytes).unwrap();
    stdin.flush().unwrap();
    child
}

/// Waits until every one of `nodes` holds at least `length` bytes of block
/// `id` in rbw (the reopened block being written).
fn wait_rbw_on(cluster: &MiniCluster, nodes: &[String], id: u64, length: u64) {
    wait_until(
        &format!("the reopened block holds {length} bytes in rbw on {nodes:?}"),
        Duration::from_secs(30),
        || {
            nodes
                .iter()
                .all(|n| rbw_length(cluster, n, id).is_some_and(|l| l >= length))
        },
    );
}

#[test]
fn an_append_survives_kill_9_of_a_pipeline_datanode() {
    let mut cluster = MiniCluster::builder()
        .rack(3)
        .rack(3)
        .block_size(BLOCK as u64)
        .start();
    let su = cluster.superuser();
    let local = tempfile::tempdir().unwrap();
    let mut want = random_bytes(1, 1000);
    let first = write_local(local.path(), "first", &want);
    cluster.dfs_ok(&su, &["put", &first, "/f"]);
    let (block, holders) = first_block(&cluster, "/f");
    assert_eq!(holders.len(), 3, "{holders:?}");
    let more = random_bytes(2, 3 * BLOCK + 4321);
    let before_kill = 512 * 1024;

    eprintln!(
        "--- append from stdin; once the reopened block is in rbw on its 3 nodes, kill -9 one"
    );
    let mut child = start_append(&cluster, &su, "/f", &more[..before_kill]);
    {
        wait_rbw_on(&cluster, &holders, block, 1000 + 256 * 1024);
        let victim = holders[1].clone();
        eprintln!("    killing {victim} of {holders:?}");
        cluster.kill(&victim);
    }

    eprintln!("--- feed the rest; the append recovers its pipeline and completes");
    {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&more[before_kill..]).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        want.extend_from_slice(&more);
        assert_same(
            &get(&cluster, &su, "/f"),
            &want,
            "after the recovered append",
        );
        let (lengths, _) = block_lengths(&cluster, "/f");
        assert_eq!(lengths.first(), Some(&(BLOCK as u64)), "{lengths:?}");
        assert_eq!(lengths.iter().sum::<u64>(), want.len() as u64);
        let log = std::fs::read_to_string(cluster.log("nn1")).unwrap();
        assert!(
            log.contains("pipeline recovery: new generation stamp"),
            "no recovery ran"
        );
    }
}

#[test]
fn a_killed_appender_leaves_every_acknowledged_byte_after_lease_recovery() {
    let cluster = MiniCluster::builder()
        .rack(2)
        .rack(2)
        .block_size(BLOCK as u64)
        .lease_limits(Duration::from_secs(1), Duration::from_secs(6))
        .start();
    let su = cluster.superuser();
    let local = tempfile::tempdir().unwrap();
    let original = random_bytes(1, 1000);
    let first = write_local(local.path(), "first", &original);
    cluster.dfs_ok(&su, &["put", &first, "/f"]);
    let (block, holders) = first_block(&cluster, "/f");
    let fed = random_bytes(2, 400 * 1024);

    eprintln!("--- append from stdin, then kill -9 the appender mid-block");
    let on_every_replica = {
        let mut child = start_append(&cluster, &su, "/f", &fed);
        wait_rbw_on(&cluster, &holders, block, 1000 + 256 * 1024);
        child.kill().unwrap();
        child.wait().unwrap();
        // What every replica holds now: no later write can shrink it.
        holders
            .iter()
            .map(|n| rbw_length(&cluster, n, block).unwrap_or(0))
            .min()
            .unwrap()
    };

    eprintln!("--- past the hard limit, lease recovery closes the file");
    {
        wait_until(
            "the lease monitor closes /f",
            Duration::from_secs(40),
            || cluster.fsck("/f")["files"][0]["under_construction"] == false,
        );
        let mut back = Vec::new();
        wait_until(
            "the recovered block is finalized and readable",
            Duration::from_secs(20),
            || {
                let out = cluster.dfs(&su, &["get", "/f", "-"]);
                back = out.stdout;
                out.status.success()
            },
        );
        let mut want = original.clone();
        want.extend_from_slice(&fed);
        eprintln!(
            "    recovered {} bytes; {on_every_replica} were on every replica",
            back.len()
        );
        assert!(
            back.len() as u64 >= on_every_replica,
            "{} bytes back, {on_every_replica} were on every replica",
            back.len()
        );
        assert_same(&back, &want[..back.len()], "the recovered prefix");
        let fsck = cluster.fsck("/f");
        assert_eq!(fsck["files"][0]["length"], back.len() as u64, "{fsck}");
    }

    eprintln!("--- the file can be appended to again");
    {
        let tail = write_local(local.path(), "tail", b"tail");
        cluster.dfs_ok(&su, &["append", &tail, "/f"]);
        let back = get(&cluster, &su, "/f");
        assert!(back.ends_with(b"tail"));
    }
}

#[test]
fn a_retried_append_is_answered_from_the_retry_cache() {
    use dfs_proto::v1;
    use dfs_proto::v1::client_protocol_client::ClientProtocolClient;

    let cluster = MiniCluster::builder()
        .rack(3)
        .block_size(BLOCK as u64)
        .start();
    let su = cluster.superuser();
    let local = tempfile::tempdir().unwrap();
    let file = write_local(local.path(), "f", &random_bytes(1, 1000));
    cluster.dfs_ok(&su, &["put", &file, "/f"]);
    let context = |client: u8, call: u64| {
        Some(v1::CallerContext {
            user: su.clone(),
            groups: vec![],
            client_id: bytes::Bytes::from(vec![client; 16]),
            call_id: call,
        })
    };
    let append = |caller| v1::AppendRequest {
        caller,
        path: "/f".into(),
        new_block: false,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let addr = cluster.namenode_addr();
        let mut nn = ClientProtocolClient::connect(format!("http://{addr}"))
            .await
            .unwrap();

        eprintln!("--- the first Append reopens the block under a new stamp");
        let first = nn.append(append(context(7, 1))).await.unwrap().into_inner();
        let reopened = first.last_block.clone().unwrap();
        let block = reopened.block.unwrap();
        assert_eq!(block.length, 1000);
        assert!(block.gen_stamp > first.previous_gen_stamp);
        assert_eq!(reopened.locations.len(), 3);
        assert!(reopened.token.is_some(), "a WRITE token for the new stamp");

        eprintln!("--- the same call again: the same answer, no second stamp");
        let again = nn.append(append(context(7, 1))).await.unwrap().into_inner();
        assert_eq!(again.last_block.unwrap().block.unwrap(), block);
        assert_eq!(again.previous_gen_stamp, first.previous_gen_stamp);

        eprintln!("--- a new call of the holder, or another client: refused");
        for caller in [context(7, 2), context(8, 1)] {
            let status = nn.append(append(caller)).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::AlreadyExists, "{status:?}");
            assert_eq!(
                dfs_proto::status::ErrorKind::of(&status),
                Some(dfs_proto::status::ErrorKind::LeaseHeld),
                "HDFS's AlreadyBeingCreatedException, not FileAlreadyExists"
            );
            assert!(
                status.message().contains("Failed to APPEND_FILE /f"),
                "{status:?}"
            );
        }
        let missing = v1::AppendRequest {
            caller: context(9, 1),
            path: "/missing".into(),
            new_block: false,
        };
        let status = nn.append(missing).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    });
}
