//! The status pages in a real browser: headless Chromium (Debian's
//! `chromium`) loads the namenode overview, the file browser and a datanode
//! page of a 3-namenode cluster with datanodes on two racks, and the test
//! checks what a person looks for there. Status codes of the error pages are
//! checked with a plain HTTP request, which a browser does not show.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;
mod outside_clients;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster::{MiniCluster, flip_byte, fsck_addresses, fsck_block_id, random_bytes, wait_until};

/// Longest a page load may take before Chromium is killed.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// The DOM of `url` after Chromium loaded it, from a fresh profile.
fn dump_dom(chromium: &Path, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{} did not start: {e}", chromium.display()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut dom = String::new();
        stdout.read_to_string(&mut dom).map(|_| dom)
    });
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium exited {status} loading {url}");
            break;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not load {url} within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let dom = reader.join().unwrap().unwrap();
    assert!(
        dom.contains("</html>"),
        "chromium printed no page for {url}: {dom}"
    );
    dom
}

/// Status code and body of a GET of `url` (`http://host:port/path`).
fn http_get(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line from {url}: {response}"));
    (status, response)
}

#[test]
fn a_browser_shows_datanodes_by_rack_the_leader_and_a_files_blocks() {
    let Some(chromium) = outside_clients::chromium() else {
        return;
    };
    let cluster = MiniCluster::builder()
        .namenodes(3)
        .rack(2)
        .rack(2)
        .block_size(1 << 20)
        .datanode_config("scan_period_ms", 1_000)
        .datanode_config("scan_bytes_per_second", 64 << 20)
        .start();
    let su = cluster.superuser();
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    cluster.wait_datanodes_live();
    let report = cluster.datanode_report();

    eprintln!("--- put a file of three blocks with dfs put");
    let source = cluster.dir().join("source");
    std::fs::write(&source, random_bytes(7, (5 << 20) / 2)).unwrap();
    cluster.dfs_ok(&su, &["mkdir", "-p", "/data"]);
    cluster.dfs_ok(&su, &["put", source.to_str().unwrap(), "/data/report.bin"]);
    let fsck = cluster.fsck("/data/report.bin");
    let blocks = fsck["files"][0]["blocks"].as_array().unwrap().clone();
    assert_eq!(blocks.len(), 3, "{fsck}");

    eprintln!("--- the leader's overview lists every datanode and both racks, and says it leads");
    {
        let leader_url = cluster.http_url(&leader);
        let dom = dump_dom(&chromium, &format!("{leader_url}/"));
        assert!(dom.contains("This namenode is the leader."), "{dom}");
        for node in cluster.datanodes() {
            let address = cluster.addr(&node).to_string();
            let link = format!("<a href=\"{}/\">{address}</a>", cluster.http_url(&node));
            assert!(dom.contains(&link), "no {link} on the overview: {dom}");
            assert!(
                dom.contains(&address),
                "{address} is not on the overview: {dom}"
            );
            let rack = cluster.rack(&node);
            assert!(
                dom.contains(&format!("Rack {rack}")),
                "rack {rack} is not on the overview"
            );
        }
        assert!(
            dom.contains("LEADING") && dom.contains("FOLLOWING"),
            "{dom}"
        );
    }

    eprintln!("--- a follower's overview names the leader and links to its page");
    {
        let follower = cluster
            .namenodes()
            .into_iter()
            .find(|n| *n != leader)
            .unwrap();
        let dom = dump_dom(&chromium, &format!("{}/", cluster.http_url(&follower)));
        let sid = cluster.sid(&leader);
        assert!(
            dom.contains(&format!("The leader is namenode {sid} at")),
            "{dom}"
        );
        let link = format!(
            "<a href=\"{}/\">Go to the leader's page</a>",
            cluster.http_url(&leader)
        );
        assert!(
            dom.contains(&link),
            "no {link} on the follower's page: {dom}"
        );
        let (status, body) = http_get(&format!(
            "{}/explorer?path=/data",
            cluster.http_url(&follower)
        ));
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("Browse at the leader"), "{body}");
    }

    eprintln!(
        "--- the file browser lists the file, and its page shows every block's replicas and racks"
    );
    {
        let base = cluster.http_url(&leader);
        let dom = dump_dom(&chromium, &format!("{base}/explorer?path=/data"));
        assert!(dom.contains("report.bin"), "{dom}");
        assert!(
            dom.contains("href=\"/explorer?path=/data/report.bin&amp;user.name=dr.who\""),
            "{dom}"
        );
        let dom = dump_dom(&chromium, &format!("{base}/explorer?path=/data/report.bin"));
        assert!(
            dom.contains("href=\"/webhdfs/v1/data/report.bin?op=OPEN&amp;user.name=dr.who\""),
            "{dom}"
        );
        for block in &blocks {
            let id = fsck_block_id(block);
            let at = dom
                .find(&format!("<h3>blk_{id}_"))
                .unwrap_or_else(|| panic!("block {id} is not on the file's page: {dom}"));
            // This block's section runs to the next block's heading.
            let section = &dom[at..];
            let section = &section[..section[4..]
                .find("<h3>")
                .map_or(section.len(), |end| end + 4)];
            for location in block["locations"].as_array().unwrap() {
                let address = location["address"].as_str().unwrap();
                let rack = location["rack"].as_str().unwrap();
                assert!(
                    section.contains(&format!("<td>{address}</td>")),
                    "{address} not listed for block {id}: {section}"
                );
                assert!(
                    section.contains(&format!("<td>{rack}</td>")),
                    "{rack} not listed for block {id}: {section}"
                );
            }
        }
    }

    eprintln!(
        "--- errors are pages with their status: a missing path, a directory others may not read"
    );
    {
        let base = cluster.http_url(&leader);
        let (status, body) = http_get(&format!("{base}/explorer?path=/nowhere"));
        assert_eq!(status, 404, "{body}");
        assert!(body.contains("/nowhere"), "{body}");
        let (status, body) = http_get(&format!("{base}/explorer?path=/data/../etc"));
        assert_eq!(status, 400, "{body}");
        cluster.dfs_ok(&su, &["mkdir", "/private"]);
        cluster.dfs_ok(&su, &["chmod", "700", "/private"]);
        let (status, body) = http_get(&format!("{base}/explorer?path=/private&user.name=mallory"));
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("user=mallory"), "{body}");
        let (status, _) = http_get(&format!("{base}/explorer?path=/private&user.name={su}"));
        assert_eq!(status, 200);
    }

    eprintln!("--- a datanode's page shows its id and rack and that it obeys the leader");
    {
        let node = cluster.datanodes().into_iter().next().unwrap();
        let address = cluster.addr(&node).to_string();
        let id = report[&address]["id"].as_str().unwrap().to_owned();
        let dom = dump_dom(&chromium, &format!("{}/", cluster.http_url(&node)));
        assert!(
            dom.contains(&format!("<td>{id}</td>")),
            "id {id} is not on the page: {dom}"
        );
        assert!(
            dom.contains(&format!("<td>{}</td>", cluster.rack(&node))),
            "{dom}"
        );
        let leader_rpc = cluster.addr(&leader).to_string();
        let row = &dom[dom.find(&format!("<td>{leader_rpc}</td>")).unwrap()..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(
            row.contains("yes (active)"),
            "the leader's row does not say obeyed: {row}"
        );
    }

    eprintln!("--- a file whose only replica rots is named, escaped, in the overview's banner");
    {
        let name = "/data/<i>fragile & 1.bin";
        let small = cluster.dir().join("small");
        std::fs::write(&small, random_bytes(8, 100_000)).unwrap();
        cluster.dfs_ok(
            &su,
            &["put", "--replication", "1", small.to_str().unwrap(), name],
        );
        let block = cluster.fsck(name)["files"][0]["blocks"][0].clone();
        let id = fsck_block_id(&block);
        let holder = cluster.datanode_at(&fsck_addresses(&block)[0]);
        flip_byte(&cluster.finalized_replica(&holder, id).unwrap(), 5_000);
        let overview = format!("{}/", cluster.http_url(&leader));
        wait_until(
            "the overview counts a missing block",
            Duration::from_secs(30),
            || http_get(&overview).1.contains("There are 1 missing blocks"),
        );
        let dom = dump_dom(&chromium, &overview);
        let banner = &dom[dom.find("There are 1 missing blocks").unwrap()..];
        let banner = &banner[..banner.find("</div>").unwrap()];
        let link = "<a href=\"/explorer?path=/data/%3Ci%3Efragile%20%26%201.bin\">/data/&lt;i&gt;fragile &amp; 1.bin</a>";
        assert!(banner.contains(link), "no {link} in the banner: {banner}");
        assert!(
            !dom.contains("<i>fragile"),
            "a file name became markup: {dom}"
        );
        let page = dump_dom(
            &chromium,
            &format!(
                "{}/explorer?path=/data/%3Ci%3Efragile%20%26%201.bin",
                cluster.http_url(&leader)
            ),
        );
        assert!(page.contains("<td>corrupt</td>"), "{page}");
    }
}
