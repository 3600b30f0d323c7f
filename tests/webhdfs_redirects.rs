//! Where the namenode's WebHDFS sends data: a CREATE from a datanode's host
//! goes to that datanode (which then holds the first replica, as a
//! writer-local client's would), an OPEN to the replica nearest the caller,
//! and the `Location` carries the request's parameters. Also
//! LISTSTATUS_BATCH with `startAfter`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;
mod http_wire;

use std::net::IpAddr;

use cluster::{MiniCluster, fsck_addresses};
use http_wire::{addr_of, exchange_from, get, put, split_location};

#[test]
fn data_goes_to_the_callers_own_datanode_and_reads_to_the_nearest_replica() {
    let cluster = MiniCluster::builder()
        .rack(2)
        .rack(2)
        .block_size(1024 * 1024)
        .start();
    let nn = addr_of(&cluster.http_url("nn1"));
    let su = cluster.superuser();
    cluster.dfs_ok(&su, &["mkdir", "-p", "/user/alice"]);
    cluster.dfs_ok(&su, &["chown", "alice", "/user/alice"]);
    let writer = "dn3";
    let writer_ip: IpAddr = cluster.addr(writer).ip();
    let writer_http = addr_of(&cluster.http_url(writer));

    eprintln!("--- a CREATE from {writer}'s host is redirected to {writer}, with its parameters");
    let mut location = String::new();
    for _ in 0..3 {
        let raw = format!(
            "PUT /webhdfs/v1/user/alice/f?op=CREATE&user.name=alice&overwrite=true&replication=2&blocksize=1048576&permission=600 HTTP/1.1\r\nHost: {nn}\r\nConnection: close\r\n\r\n"
        );
        let a = exchange_from(writer_ip, nn, raw.as_bytes()).unwrap();
        assert_eq!(a.status, 307, "{a:?}");
        location = a.header("Location").unwrap().to_owned();
        assert_eq!(split_location(&location).0, writer_http, "{location}");
    }
    for part in [
        "op=CREATE",
        "user.name=alice",
        "overwrite=true",
        "replication=2",
        "blocksize=1048576",
        "permission=600",
        "namenoderpcaddress=",
    ] {
        assert!(location.contains(part), "{part} missing from {location}");
    }

    eprintln!("--- the upload there lands its first replica on {writer}");
    let data = cluster::random_bytes(3, 1024 * 1024 + 10);
    let (dn, target) = split_location(&location);
    let mut raw = format!(
        "PUT {target} HTTP/1.1\r\nHost: {dn}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        data.len()
    )
    .into_bytes();
    raw.extend_from_slice(&data);
    let a = exchange_from(writer_ip, dn, &raw).unwrap();
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    let fsck = cluster.fsck("/user/alice/f");
    let blocks = fsck["files"][0]["blocks"].as_array().unwrap().clone();
    assert_eq!(blocks.len(), 2, "{fsck}");
    let writer_transfer = cluster.addr(writer).to_string();
    for block in &blocks {
        let holders = fsck_addresses(block);
        assert_eq!(holders.len(), 2, "{fsck}");
        assert!(
            holders.contains(&writer_transfer),
            "{holders:?} lacks {writer}"
        );
    }

    eprintln!("--- an OPEN from each replica's host is redirected to that replica");
    let holders = fsck_addresses(&blocks[1]);
    for holder in &holders {
        let node = cluster.datanode_at(holder);
        let ip: IpAddr = cluster.addr(&node).ip();
        let raw = format!(
            "GET /webhdfs/v1/user/alice/f?op=OPEN&user.name=alice&offset=1048580&length=5 HTTP/1.1\r\nHost: {nn}\r\nConnection: close\r\n\r\n"
        );
        let a = exchange_from(ip, nn, raw.as_bytes()).unwrap();
        assert_eq!(a.status, 307, "{a:?}");
        let location = a.header("Location").unwrap();
        assert_eq!(
            split_location(location).0,
            addr_of(&cluster.http_url(&node)),
            "OPEN from {node}: {location}"
        );
        assert!(location.contains("offset=1048580") && location.contains("length=5"));
        let (dn, target) = split_location(location);
        let body = get(dn, &target).body;
        assert_eq!(body, data[1_048_580..1_048_585]);
    }

    eprintln!("--- LISTSTATUS_BATCH pages after startAfter");
    for name in ["a", "b", "c"] {
        let a = put(
            nn,
            &format!("/webhdfs/v1/user/alice/dir/{name}?op=MKDIRS&user.name=alice"),
        );
        assert_eq!(a.status, 200);
    }
    let names = |query: &str| -> (Vec<String>, u64) {
        let json = get(
            nn,
            &format!("/webhdfs/v1/user/alice/dir?op=LISTSTATUS_BATCH&user.name=alice{query}"),
        )
        .json();
        let listing = &json["DirectoryListing"];
        let names = listing["partialListing"]["FileStatuses"]["FileStatus"]
            .as_array()
            .unwrap_or_else(|| panic!("{json}"))
            .iter()
            .map(|s| s["pathSuffix"].as_str().unwrap().to_owned())
            .collect();
        (names, listing["remainingEntries"].as_u64().unwrap())
    };
    assert_eq!(names(""), (vec!["a".into(), "b".into(), "c".into()], 0));
    assert_eq!(names("&startAfter=a"), (vec!["b".into(), "c".into()], 0));
    assert_eq!(names("&startAfter=c"), (vec![], 0));
}
