//! Rendering the status pages from plain views: what a reader looks for is
//! on the page, names are escaped, links are encoded.

use super::file_browser::{
    BlockView, EntryView, FileView, ListingView, ReplicaView, render_file, render_listing,
};
use super::gather::{FileShape, tally};
use super::layout::{ErrorView, encode, error_page};
use super::overview::{
    DatanodeView, HealthView, JournalView, Leader, MemberStatus, MemberView, NodeView,
    OverviewView, RackView, Space, render,
};

fn datanode(address: &str, state: &'static str) -> DatanodeView {
    DatanodeView {
        id: format!("dn-{address}"),
        address: address.into(),
        url: None,
        state,
        last_contact_secs: 2,
        space: Space {
            capacity: 10 << 30,
            used: 1 << 20,
            remaining: 9 << 30,
        },
        blocks: 7,
    }
}

fn member(sid: u64, state: &str, is_me: bool) -> MemberView {
    MemberView {
        sid,
        rpc_address: format!("127.0.1.{sid}:8020"),
        url: Some(format!("http://127.0.1.{sid}:9870/")),
        is_me,
        status: Ok(MemberStatus {
            state: state.into(),
            observer: false,
            epoch: 4,
            last_zxid: "0x400000009".into(),
            applied_zxid: "0x400000009".into(),
            leader_sid: 1,
        }),
    }
}

fn follower_overview() -> OverviewView {
    OverviewView {
        node: NodeView {
            sid: 2,
            rpc_address: "127.0.1.2:8020".into(),
            http_address: "127.0.1.2:9870".into(),
            role: "FOLLOWING".into(),
            serving: false,
            epoch: 4,
            last_zxid: "0x400000009".into(),
            applied_zxid: "0x400000008".into(),
            started: "2026-12-08 02:00 UTC".into(),
            version: "0.1.0".into(),
        },
        leader: Leader::Other {
            sid: 1,
            rpc_address: "127.0.1.1:8020".into(),
            url: Some("http://127.0.1.1:9870/".into()),
        },
        ensemble: vec![
            member(1, "LEADING", false),
            member(2, "FOLLOWING", true),
            MemberView {
                status: Err("unreachable: connection refused".into()),
                ..member(3, "", false)
            },
        ],
        files: 3,
        directories: 2,
        blocks: 5,
        capacity: Space {
            capacity: 20 << 30,
            used: 2 << 20,
            remaining: 18 << 30,
        },
        racks: vec![
            RackView {
                rack: "/r1".into(),
                datanodes: vec![datanode("127.0.0.11:9866", "live")],
            },
            RackView {
                rack: "/r2".into(),
                datanodes: vec![datanode("127.0.0.21:9866", "dead")],
            },
        ],
        health: HealthView {
            under_replicated: 1,
            corrupt: 2,
            missing: 1,
            corrupt_files: vec!["/data/<lost>.csv".into()],
        },
        journal: JournalView {
            last_zxid: "0x400000009".into(),
            checkpoint: Some(("0x400000005".into(), "2026-12-08 02:10 UTC".into())),
        },
    }
}

#[test]
fn a_followers_overview_names_and_links_the_leader() {
    let html = render(&follower_overview()).into_string();
    assert!(
        html.contains("The leader is namenode 1 at 127.0.1.1:8020"),
        "{html}"
    );
    assert!(html.contains(r#"<a href="http://127.0.1.1:9870/">Go to the leader's page</a>"#));
    assert!(html.contains("FOLLOWING"));
    assert!(html.contains("no answer: unreachable: connection refused"));
}

#[test]
fn the_overview_groups_datanodes_by_rack_with_their_state() {
    let html = render(&follower_overview()).into_string();
    let r1 = html.find("Rack /r1").unwrap();
    let r2 = html.find("Rack /r2").unwrap();
    let live = html.find("127.0.0.11:9866").unwrap();
    let dead = html.find("127.0.0.21:9866").unwrap();
    assert!(r1 < live && live < r2 && r2 < dead, "{html}");
    assert!(html.contains("<td>dead</td>"));
    assert!(html.contains("10.0 GiB"));
}

#[test]
fn missing_blocks_raise_a_banner_naming_the_files_escaped() {
    let html = render(&follower_overview()).into_string();
    assert!(html.contains("There are 1 missing blocks"));
    assert!(html.contains("/data/&lt;lost&gt;.csv"), "{html}");
    assert!(html.contains(r#"href="/explorer?path=/data/%3Clost%3E.csv""#));
    let healthy = OverviewView {
        health: HealthView::default(),
        ..follower_overview()
    };
    assert!(!render(&healthy).into_string().contains("missing blocks."));
}

#[test]
fn the_leaders_overview_says_so() {
    let view = OverviewView {
        leader: Leader::Me,
        node: NodeView {
            role: "LEADING".into(),
            serving: true,
            ..follower_overview().node
        },
        ..follower_overview()
    };
    let html = render(&view).into_string();
    assert!(html.contains("This namenode is the leader."));
    assert!(!html.contains("Go to the leader's page"));
}

fn entry(path: &str, is_dir: bool) -> EntryView {
    EntryView {
        path: path.into(),
        name: path.rsplit('/').next().unwrap().into(),
        is_dir,
        permission: if is_dir { "drwxr-xr-x" } else { "-rw-r--r--" }.into(),
        owner: "alice".into(),
        group: "staff".into(),
        length: if is_dir { 0 } else { 1536 },
        mtime_ms: 1_765_159_200_000,
        replication: if is_dir { 0 } else { 3 },
        block_size: if is_dir { 0 } else { 128 << 20 },
    }
}

#[test]
fn a_listing_shows_hdfs_columns_and_links_into_entries() {
    let view = ListingView {
        path: "/data".into(),
        user: "alice".into(),
        entries: vec![entry("/data/logs", true), entry("/data/a b&<c>.txt", false)],
        start_after: String::new(),
        truncated: false,
    };
    let html = render_listing(&view).into_string();
    for column in [
        "Permission",
        "Owner",
        "Group",
        "Size",
        "Last modified",
        "Replication",
        "Block size",
        "Name",
    ] {
        assert!(html.contains(&format!("<th>{column}</th>")), "{column}");
    }
    assert!(
        html.contains(r#"href="/explorer?path=/data/logs&amp;user.name=alice">logs/</a>"#),
        "{html}"
    );
    assert!(html.contains("a b&amp;&lt;c&gt;.txt"));
    assert!(
        html.contains(r#"href="/explorer?path=/data/a%20b%26%3Cc%3E.txt&amp;user.name=alice""#)
    );
    assert!(html.contains("drwxr-xr-x") && html.contains("1.5 KiB") && html.contains("128.0 MiB"));
    assert!(html.contains("2025-12-08 02:00 UTC"));
    assert!(!html.contains("Next page") && !html.contains("First page"));
    let more = render_listing(&ListingView {
        truncated: true,
        start_after: "a".into(),
        ..view
    })
    .into_string();
    assert!(
        more.contains(r#"href="/explorer?path=/data&amp;user.name=alice&amp;start_after=a%20b%26%3Cc%3E.txt">Next page</a>"#),
        "{more}"
    );
    assert!(more.contains("First page"));
}

#[test]
fn a_file_page_lists_blocks_replicas_racks_and_a_download_link() {
    let view = FileView {
        user: "dr.who".into(),
        file: entry("/data/f", false),
        under_construction: false,
        blocks: vec![
            BlockView {
                id: 1_073_741_825,
                gen_stamp: 1001,
                offset: 0,
                length: 1024,
                replicas: vec![
                    ReplicaView {
                        datanode_id: "dn-a".into(),
                        address: "127.0.0.11:9866".into(),
                        rack: "/r1".into(),
                        corrupt: false,
                    },
                    ReplicaView {
                        datanode_id: "dn-b".into(),
                        address: "127.0.0.21:9866".into(),
                        rack: "/r2".into(),
                        corrupt: true,
                    },
                ],
            },
            BlockView {
                id: 1_073_741_826,
                gen_stamp: 1002,
                offset: 1024,
                length: 512,
                replicas: vec![],
            },
        ],
    };
    let html = render_file(&view).into_string();
    assert!(html.contains("blk_1073741825_1001") && html.contains("blk_1073741826_1002"));
    assert!(html.contains("<td>127.0.0.11:9866</td>") && html.contains("<td>/r1</td>"));
    assert!(html.contains("<td>/r2</td>") && html.contains("<td>corrupt</td>"));
    assert!(html.contains("No datanode reports a replica of this block."));
    assert!(
        html.contains(r#"href="/webhdfs/v1/data/f?op=OPEN&amp;user.name=dr.who""#),
        "{html}"
    );
}

#[test]
fn an_error_page_shows_the_message_and_the_way_out() {
    let view = ErrorView {
        status: 404,
        title: "Not found".into(),
        message: "File /<x> does not exist.".into(),
        link: Some(("http://leader/".into(), "Browse at the leader".into())),
    };
    let html = error_page(&view).into_string();
    assert!(html.contains("<title>404 Not found</title>"));
    assert!(html.contains("File /&lt;x&gt; does not exist."));
    assert!(html.contains(r#"<a href="http://leader/">Browse at the leader</a>"#));
}

#[test]
fn link_targets_are_percent_encoded_but_keep_slashes() {
    assert_eq!(encode("/a b/ü?&#"), "/a%20b/%C3%BC%3F%26%23");
    assert_eq!(encode("dr.who"), "dr.who");
}

fn block(id: u64) -> crate::txn::BlockRecord {
    crate::txn::BlockRecord {
        id: crate::txn::BlockId(id),
        gen_stamp: crate::txn::GenStamp(1001),
        length: 10,
    }
}

#[test]
fn block_health_counts_missing_under_replicated_and_corrupt_and_names_files() {
    let complete = [block(1), block(2), block(3)];
    let open = [block(4), block(5)];
    let lost = [block(6)];
    let files = [
        (
            FileShape {
                replication: 3,
                under_construction: false,
                blocks: &complete,
            },
            "/complete",
        ),
        (
            FileShape {
                replication: 3,
                under_construction: true,
                blocks: &open,
            },
            "/open",
        ),
        (
            FileShape {
                replication: 1,
                under_construction: false,
                blocks: &lost,
            },
            "/lost",
        ),
    ];
    // (healthy, corrupt) replicas per block id.
    let replicas = |b: &crate::txn::BlockRecord| match b.id.0 {
        1 => (3, 0),
        2 => (2, 1),
        3 => (0, 0),
        4 => (3, 0),
        5 => (0, 1), // being written: not counted at all
        6 => (0, 1),
        _ => unreachable!(),
    };
    let asked = std::cell::Cell::new(0);
    let health = tally(
        files.iter().map(|(shape, path)| {
            (*shape, || {
                asked.set(asked.get() + 1);
                Some(path.to_string())
            })
        }),
        replicas,
    );
    assert_eq!(
        (health.missing, health.under_replicated, health.corrupt),
        (2, 1, 2)
    );
    assert_eq!(
        health.corrupt_files,
        vec!["/complete".to_owned(), "/lost".to_owned()]
    );
    assert_eq!(asked.get(), 2, "paths are built only for the files named");
}
