//! Bad input to the WebHDFS servers over raw TCP: unknown ops, bad offsets,
//! `..` in a path, a 1 MB query string, garbage bodies, a client that
//! vanishes mid-upload. Every one gets a `RemoteException` with Hadoop's
//! status code or a closed connection, never a panic: every node is still
//! alive afterwards, no broken upload leaves a file behind, and a broken
//! append leaves only bytes its client sent, once lease recovery closes it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;
mod http_wire;

use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use cluster::{MiniCluster, wait_until};
use http_wire::{addr_of, connect, exchange, get, put};

/// The datanode URL (address, path and query) a namenode redirects a CREATE to.
fn create_location(nn: SocketAddr, path: &str, user: &str) -> (SocketAddr, String) {
    let answer = put(
        nn,
        &format!("/webhdfs/v1{path}?op=CREATE&user.name={user}&overwrite=true"),
    );
    assert_eq!(answer.status, 307, "{answer:?}");
    let location = answer.header("Location").unwrap().to_owned();
    let rest = location.trim_start_matches("http://");
    let (host, target) = rest.split_at(rest.find('/').unwrap());
    (host.parse().unwrap(), target.to_owned())
}

fn assert_alive(cluster: &MiniCluster) {
    for node in cluster.namenodes().into_iter().chain(cluster.datanodes()) {
        assert!(cluster.pid(&node).is_some(), "{node} died");
    }
}

#[test]
fn bad_requests_get_remote_exceptions_and_nodes_stay_up() {
    let cluster = MiniCluster::builder()
        .namenodes(3)
        .rack(2)
        .rack(1)
        .block_size(1024 * 1024)
        .lease_limits(Duration::from_secs(1), Duration::from_secs(2))
        .start();
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    let nn = addr_of(&cluster.http_url(&leader));
    let su = cluster.superuser();
    cluster.dfs_ok(&su, &["mkdir", "-p", "/user/alice"]);
    cluster.dfs_ok(&su, &["chown", "alice", "/user/alice"]);
    let local = cluster.dir().join("small");
    std::fs::write(&local, b"0123456789").unwrap();
    cluster.dfs_ok(
        "alice",
        &["put", local.to_str().unwrap(), "/user/alice/small"],
    );

    eprintln!("--- an unknown op, or one of another method, is an IllegalArgumentException");
    {
        let a = get(nn, "/webhdfs/v1/user/alice?op=FROBNICATE&user.name=alice");
        assert_eq!(
            (a.status, a.exception().as_str()),
            (400, "IllegalArgumentException")
        );
        let message = a.json()["RemoteException"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            message.starts_with("Invalid value for webhdfs parameter \"op\""),
            "{message}"
        );
        let a = get(nn, "/webhdfs/v1/user/alice?op=MKDIRS");
        assert_eq!(a.status, 400);
        let a = get(nn, "/webhdfs/v1/user/alice");
        assert_eq!(a.status, 400, "no op at all");
    }

    eprintln!("--- bad offsets and lengths are refused");
    for query in [
        "offset=-1",
        "offset=abc",
        "offset=11",
        "length=-5",
        "offset=99999999999999999999999",
    ] {
        let a = get(
            nn,
            &format!("/webhdfs/v1/user/alice/small?op=OPEN&user.name=alice&{query}"),
        );
        assert_eq!(
            (a.status, a.exception().as_str()),
            (400, "IllegalArgumentException"),
            "{query}"
        );
    }

    eprintln!("--- `..` and `.` in a path, plain or escaped, are refused");
    for path in [
        "/webhdfs/v1/user/alice/../../etc?op=GETFILESTATUS",
        "/webhdfs/v1/user/%2E%2E/alice?op=GETFILESTATUS",
        "/webhdfs/v1/./user?op=LISTSTATUS",
        "/webhdfs/v1/user/a%00b?op=GETFILESTATUS",
    ] {
        let a = get(nn, path);
        assert_eq!(
            (a.status, a.exception().as_str()),
            (400, "IllegalArgumentException"),
            "{path}"
        );
    }

    eprintln!("--- a 1 MB query string is refused or the connection closed");
    {
        let target = format!(
            "/webhdfs/v1/user/alice?op=LISTSTATUS&junk={}",
            "x".repeat(1 << 20)
        );
        let raw = format!("GET {target} HTTP/1.1\r\nHost: {nn}\r\nConnection: close\r\n\r\n");
        if let Some(a) = exchange(nn, raw.as_bytes()) {
            assert!((400..500).contains(&a.status), "{}", a.status);
        }
        let target = format!(
            "/webhdfs/v1/user/alice?op=LISTSTATUS&junk={}",
            "x".repeat(100 * 1024)
        );
        let a = get(nn, &target);
        assert!((400..500).contains(&a.status), "{}", a.status);
    }

    eprintln!("--- what real clients send is taken calmly");
    {
        let raw = format!(
            "GET /webhdfs/v1/user/alice/small?op=getfilestatus&user.name=alice&user.name=bob&unknown=1 HTTP/1.1\r\nHost: {nn}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
        );
        let a = exchange(nn, raw.as_bytes()).unwrap();
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.json()["FileStatus"]["length"], 10);
        let a = put(
            nn,
            "/webhdfs/v1/user/alice/d?op=MKDIRS&user.name=alice&permission=0755",
        );
        assert_eq!(a.json()["boolean"], true);
        let a = get(
            nn,
            "/webhdfs/v1/user/alice/small?op=OPEN&user.name=alice&noredirect=True",
        );
        assert!(a.json()["Location"].as_str().unwrap().contains("op=OPEN"));
        let raw = b"DELETE /webhdfs/v1/user/alice/nothing?op=DELETE&user.name=alice&recursive=TRUE HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let a = exchange(nn, raw).unwrap();
        assert_eq!(a.json()["boolean"], false);
        let a = get(
            nn,
            "/webhdfs/v1/user/alice/nothing?op=GETFILESTATUS&user.name=alice",
        );
        assert_eq!(
            (a.status, a.exception().as_str()),
            (404, "FileNotFoundException")
        );
        let message = a.json()["RemoteException"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(message, "File /user/alice/nothing does not exist.");
        // LISTSTATUS of a file: the file itself, with an empty pathSuffix.
        let a = get(
            nn,
            "/webhdfs/v1/user/alice/small?op=LISTSTATUS&user.name=alice",
        );
        let entries = a.json()["FileStatuses"]["FileStatus"].clone();
        assert_eq!(entries.as_array().unwrap().len(), 1, "{entries}");
        assert_eq!(entries[0]["pathSuffix"], "");
        assert_eq!(entries[0]["type"], "FILE");
        let a = get(nn, "/webhdfs/v1/?op=GETHOMEDIRECTORY&user.name=alice");
        assert_eq!(a.json()["Path"], "/user/alice");
        let a = get(nn, "/webhdfs/v1/user?op=GETCONTENTSUMMARY&user.name=alice");
        let summary = a.json()["ContentSummary"].clone();
        assert_eq!(
            (summary["fileCount"].as_u64(), summary["length"].as_u64()),
            (Some(1), Some(10)),
            "{summary}"
        );
        assert_eq!(summary["quota"], -1);
    }

    eprintln!("--- a follower answers StandbyException");
    {
        let follower = cluster
            .namenodes()
            .into_iter()
            .find(|n| *n != leader)
            .unwrap();
        let a = get(
            addr_of(&cluster.http_url(&follower)),
            "/webhdfs/v1/?op=LISTSTATUS&user.name=alice",
        );
        assert_eq!(
            (a.status, a.exception().as_str()),
            (403, "StandbyException")
        );
    }

    eprintln!("--- the datanode refuses a namenode that is not its own, and bad ops and offsets");
    {
        let (dn, target) = create_location(nn, "/user/alice/elsewhere", "alice");
        let evil = target.replace("namenoderpcaddress=", "namenoderpcaddress=10.9.9.9%3A1&x=");
        let a = put(dn, &evil);
        assert_eq!(
            (a.status, a.exception().as_str()),
            (400, "IllegalArgumentException")
        );
        let a = get(
            dn,
            "/webhdfs/v1/user/alice/small?op=LISTSTATUS&user.name=alice",
        );
        assert_eq!(a.status, 400);
        let a = get(
            dn,
            "/webhdfs/v1/user/alice/small?op=OPEN&user.name=alice&offset=x",
        );
        assert_eq!(a.status, 400);
        let a = get(
            dn,
            "/webhdfs/v1/user/alice/small?op=OPEN&user.name=alice&offset=3&length=4",
        );
        assert_eq!((a.status, a.body.as_slice()), (200, b"3456".as_slice()));
        let a = get(dn, "/webhdfs/v1/user/alice/../x?op=OPEN");
        assert_eq!(a.status, 400);
    }

    eprintln!("--- garbage: a request that is not HTTP, a malformed chunked body");
    {
        let _ = exchange(nn, b"\x00\x01\x02garbage\r\n\r\n");
        let (dn, target) = create_location(nn, "/user/alice/garbled", "alice");
        let raw = format!(
            "PUT {target} HTTP/1.1\r\nHost: {dn}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\nZZZ-not-a-size\r\n"
        );
        if let Some(a) = exchange(dn, raw.as_bytes()) {
            assert!(a.status >= 400, "{a:?}");
        }
        let (dn, target) = create_location(nn, "/user/alice/chunked", "alice");
        let raw = format!(
            "PUT {target} HTTP/1.1\r\nHost: {dn}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        );
        let a = exchange(dn, raw.as_bytes()).unwrap();
        assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
        assert!(a.header("Location").unwrap().starts_with("hdfs://"));
    }

    eprintln!("--- a client that vanishes mid-upload leaves no file behind");
    {
        let (dn, target) = create_location(nn, "/user/alice/vanished", "alice");
        let mut stream = connect(dn);
        let head = format!(
            "PUT {target} HTTP/1.1\r\nHost: {dn}\r\nContent-Length: {}\r\n\r\n",
            10 << 20
        );
        stream.write_all(head.as_bytes()).unwrap();
        let chunk = vec![7u8; 64 * 1024];
        for _ in 0..48 {
            stream.write_all(&chunk).unwrap();
        }
        // 3 MiB of 10 sent: the file exists, under construction, with
        // blocks written; then its client is gone.
        wait_until("the upload is under way", Duration::from_secs(20), || {
            get(
                nn,
                "/webhdfs/v1/user/alice/vanished?op=GETFILESTATUS&user.name=alice",
            )
            .status
                == 200
        });
        stream.shutdown(Shutdown::Both).unwrap();
        drop(stream);
        wait_until(
            "the broken upload's file is deleted",
            Duration::from_secs(20),
            || {
                get(
                    nn,
                    "/webhdfs/v1/user/alice/vanished?op=GETFILESTATUS&user.name=alice",
                )
                .status
                    == 404
            },
        );
        let listing = get(nn, "/webhdfs/v1/user/alice?op=LISTSTATUS&user.name=alice").json();
        let names: Vec<&str> = listing["FileStatuses"]["FileStatus"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["pathSuffix"].as_str().unwrap())
            .collect();
        assert!(
            !names.contains(&"vanished") && !names.contains(&"garbled"),
            "{names:?}"
        );
        assert!(names.contains(&"chunked"), "{names:?}");
    }

    eprintln!("--- an append whose client vanishes is left to lease recovery: acked bytes only");
    {
        let a = exchange(
            nn,
            format!("POST /webhdfs/v1/user/alice/small?op=APPEND&user.name=alice HTTP/1.1\r\nHost: {nn}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        assert_eq!(a.status, 307, "{a:?}");
        let (dn, target) = http_wire::split_location(a.header("Location").unwrap());
        let mut stream = connect(dn);
        let head = format!(
            "POST {target} HTTP/1.1\r\nHost: {dn}\r\nContent-Length: {}\r\n\r\n",
            10 << 20
        );
        stream.write_all(head.as_bytes()).unwrap();
        let chunk = vec![7u8; 64 * 1024];
        for _ in 0..48 {
            stream.write_all(&chunk).unwrap();
        }
        wait_until(
            "the append holds the lease",
            Duration::from_secs(20),
            || cluster.fsck("/user/alice/small")["files"][0]["under_construction"] == true,
        );
        stream.shutdown(Shutdown::Both).unwrap();
        drop(stream);
        wait_until(
            "lease recovery closes the file",
            Duration::from_secs(30),
            || cluster.fsck("/user/alice/small")["files"][0]["under_construction"] == false,
        );
        let out = cluster.dfs("alice", &["get", "/user/alice/small", "-"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = out.stdout;
        assert!(
            bytes.len() >= 10 && bytes.len() <= 10 + (3 << 20),
            "{}",
            bytes.len()
        );
        assert_eq!(&bytes[..10], b"0123456789", "the original bytes");
        assert!(
            bytes[10..].iter().all(|b| *b == 7),
            "only bytes the client sent"
        );
    }

    eprintln!("--- every node is alive and the cluster still works");
    assert_alive(&cluster);
    let out = cluster.dfs_ok("alice", &["cat", "/user/alice/chunked"]);
    assert_eq!(out, "hello world");
}
