//! `MiniCluster`: a real multi-process dfs cluster for integration tests.
//!
//! Every test gets its own temp dir, free ports and fake racks (datanode n of
//! rack r on 127.0.r.n), started through `dfs_deploy` from the binaries cargo
//! built for this package. Nodes are child processes that the kernel kills
//! when the test thread exits; `Drop` kills them anyway (also on panic) and,
//! when the test failed, prints the tail of every node's log. No fixed ports
//! and no global state, so tests run in parallel.
//!
//! ```ignore
//! let cluster = MiniCluster::builder().rack(3).rack(3).start();
//! let out = cluster.dfs("alice", &["ls", "/"]);
//! cluster.kill("dn4");
//! wait_until("dn4 is dead", Duration::from_secs(20), || cluster.datanode_state("dn4") == "dead");
//! ```
//!
//! With `.namenodes(n)` (n > 1) the namenodes form an ensemble, `nnN` with
//! server id N; `ha_status`, `leader` and `wait_for_leader` read what
//! `dfs admin ha-status --json` says of it. `.lay_out()` instead of
//! `.start()` starts nothing, for tests that start nodes one by one.
//! `.datanode_config(key, value)` sets a key in every datanode's config file
//! (`scan_period_ms`, say) over what the layout wrote.

// Each test file uses its own part of the harness.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use dfs_client::ClientConfig;
use dfs_deploy::{Binaries, Cluster, ClusterSpec, QuorumTimers, Role, SpawnMode};
use serde_json::Value;
use tempfile::TempDir;

/// Lines of each node's log printed when a test fails.
const TAIL_LINES: usize = 40;

/// Polls `condition` every 50 ms until it holds; panics naming `what` after `timeout`.
pub(crate) fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if condition() {
            return;
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// `len` bytes of seeded pseudo-random content (splitmix64): the same seed
/// gives the same bytes, so a failing test can be replayed.
pub(crate) fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Flips every bit of the byte at `offset` of `file` (a replica on disk).
pub(crate) fn flip_byte(file: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, offset).unwrap();
    byte[0] ^= 0xff;
    f.write_all_at(&byte, offset).unwrap();
    f.sync_all().unwrap();
}

/// The block id of a block of `dfs fsck --json` (named `blk_ID_GS`).
pub(crate) fn fsck_block_id(block: &Value) -> u64 {
    let name = block["name"].as_str().unwrap();
    let (id, _) = name.strip_prefix("blk_").unwrap().split_once('_').unwrap();
    id.parse().unwrap()
}

/// The datanode addresses of a block of `dfs fsck --json --locations`.
pub(crate) fn fsck_addresses(block: &Value) -> Vec<String> {
    block["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["address"].as_str().unwrap().to_owned())
        .collect()
}

/// The namenode that leads in `rows` (from `dfs admin ha-status --json`,
/// with `node` added): it reports LEADING, has established its epoch
/// (current epoch = accepted epoch; a leader still in discovery or sync
/// reports LEADING too), and at least `quorum` voters, itself included, are
/// synced with it (FOLLOWING it in that epoch).
pub(crate) fn leader_of(rows: &[Value], quorum: usize) -> Option<String> {
    rows.iter()
        .filter(|r| r["state"] == "LEADING" && r["current_epoch"] == r["accepted_epoch"])
        .find(|leader| {
            let backers = rows
                .iter()
                .filter(|r| r["observer"] == false && r["leader_sid"] == leader["sid"])
                .filter(|r| r["current_epoch"] == leader["current_epoch"])
                .filter(|r| r["state"] == "FOLLOWING" || r["sid"] == leader["sid"])
                .count();
            backers >= quorum
        })
        .and_then(|leader| leader["node"].as_str().map(str::to_owned))
}

/// Sets `keys` in the TOML file at `path`, keeping its other keys.
fn set_keys(path: &Path, keys: &toml::Table) {
    dfs_deploy::layout::set_config_keys(path, keys).unwrap_or_else(|e| panic!("{e}"));
}

/// Shapes a [`MiniCluster`] before it starts.
#[derive(Debug)]
pub(crate) struct Builder {
    spec: ClusterSpec,
    racks: Vec<usize>,
    without_datanodes: bool,
    startup_timeout: Duration,
    /// Keys set in every datanode's config over what the layout wrote.
    datanode_settings: toml::Table,
}

impl Builder {
    /// Number of namenodes (default 1).
    pub(crate) fn namenodes(mut self, n: usize) -> Self {
        self.spec.namenodes = n;
        self
    }

    /// How many of the namenodes are observers, the last ones (default 0).
    pub(crate) fn observers(mut self, n: usize) -> Self {
        self.spec.observers = n;
        self
    }

    /// The ensemble's timers (default: the namenode's).
    pub(crate) fn quorum_timers(mut self, timers: QuorumTimers) -> Self {
        self.spec.quorum_timers = timers;
        self
    }

    /// No datanodes at all: enough for metadata-only tests (elections, mkdir).
    pub(crate) fn without_datanodes(mut self) -> Self {
        self.without_datanodes = true;
        self
    }

    /// Adds a rack of `datanodes` datanodes (default: two racks of three).
    pub(crate) fn rack(mut self, datanodes: usize) -> Self {
        self.racks.push(datanodes);
        self
    }

    /// Datanode heartbeat interval (default 500 ms).
    pub(crate) fn heartbeat(mut self, interval: Duration) -> Self {
        self.spec.heartbeat_interval = interval;
        self
    }

    /// Silence before a datanode is stale (default 30 s).
    pub(crate) fn stale_after(mut self, after: Duration) -> Self {
        self.spec.stale_after = after;
        self
    }

    /// Silence before a datanode is dead (default 600 s).
    pub(crate) fn dead_after(mut self, after: Duration) -> Self {
        self.spec.dead_after = after;
        self
    }

    /// Default replication (default 3, or fewer when there are fewer datanodes).
    pub(crate) fn replication(mut self, n: u32) -> Self {
        self.spec.replication = Some(n);
        self
    }

    /// Default block size in bytes (default 128 MiB).
    pub(crate) fn block_size(mut self, bytes: u64) -> Self {
        self.spec.block_size = bytes;
        self
    }

    /// The superuser's name (default: the OS user running the test).
    pub(crate) fn superuser(mut self, user: &str) -> Self {
        self.spec.superuser = Some(user.to_owned());
        self
    }

    /// Puts `user` in `groups` on the namenode.
    pub(crate) fn group(mut self, user: &str, groups: &[&str]) -> Self {
        self.spec.groups.insert(
            user.to_owned(),
            groups.iter().map(|g| (*g).to_owned()).collect(),
        );
        self
    }

    /// The namenode's lease soft and hard limits (default 60 s and 1 h).
    pub(crate) fn lease_limits(mut self, soft: Duration, hard: Duration) -> Self {
        self.spec.lease_limits = Some((soft, hard));
        self
    }

    /// Sets `key = value` in every datanode's config file, over what the
    /// layout wrote: any `DatanodeConfig` key (the datanode refuses unknown ones).
    pub(crate) fn datanode_config(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.datanode_settings.insert(key.to_owned(), value.into());
        self
    }

    /// How long each node may take to get ready (default 60 s).
    pub(crate) fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Starts every node and returns once the (leading) namenode reports
    /// every datanode live. Panics (printing the logs) when the cluster does not come up.
    pub(crate) fn start(self) -> MiniCluster {
        let mut mini = self.lay_out();
        mini.start_all();
        mini
    }

    /// Lays the cluster out (configs, ports, directories) and starts no
    /// node: start them with [`MiniCluster::start`] or [`MiniCluster::start_all`].
    pub(crate) fn lay_out(mut self) -> MiniCluster {
        if self.without_datanodes {
            self.spec.racks = Vec::new();
        } else if !self.racks.is_empty() {
            self.spec.racks = self.racks;
        }
        let binaries = MiniCluster::binaries();
        let dir = tempfile::Builder::new()
            .prefix("dfs-minicluster-")
            .tempdir()
            .expect("creating the cluster's temp dir");
        let mut cluster =
            Cluster::create(dir.path(), &self.spec, binaries.clone(), SpawnMode::Child)
                .unwrap_or_else(|e| panic!("laying out the cluster: {e}"));
        cluster.set_startup_timeout(self.startup_timeout);
        if !self.datanode_settings.is_empty() {
            let datanodes = cluster.nodes().iter().filter(|n| n.role == Role::Datanode);
            for node in datanodes {
                set_keys(&node.config, &self.datanode_settings);
            }
        }
        MiniCluster {
            cluster,
            binaries,
            spec: self.spec,
            dir: Some(dir),
        }
    }
}

/// A running cluster of real `namenode` and `datanode` processes.
#[derive(Debug)]
pub(crate) struct MiniCluster {
    // Dropped before `dir`, so the nodes die before their files go.
    cluster: Cluster,
    binaries: Binaries,
    spec: ClusterSpec,
    dir: Option<TempDir>,
}

impl MiniCluster {
    /// A builder with one namenode, two racks of three datanodes, 500 ms heartbeats.
    pub(crate) fn builder() -> Builder {
        Builder {
            spec: ClusterSpec {
                heartbeat_interval: Duration::from_millis(500),
                ..ClusterSpec::default()
            },
            racks: Vec::new(),
            without_datanodes: false,
            startup_timeout: Duration::from_secs(60),
            datanode_settings: toml::Table::new(),
        }
    }

    /// Starts every node that is not running (namenodes, then datanodes) and
    /// waits until the leading namenode reports every datanode live, which
    /// with an ensemble means until a quorum has elected a leader.
    pub(crate) fn start_all(&mut self) {
        // A panic here drops `self`, which kills what started and prints the logs.
        self.cluster
            .start_all()
            .unwrap_or_else(|e| panic!("starting the cluster: {e}"));
    }

    fn binaries() -> Binaries {
        Binaries {
            namenode: PathBuf::from(env!("CARGO_BIN_EXE_namenode")),
            datanode: PathBuf::from(env!("CARGO_BIN_EXE_datanode")),
            dfs: PathBuf::from(env!("CARGO_BIN_EXE_dfs")),
        }
    }

    /// The cluster directory (configs, data, logs, `cluster.json`).
    pub(crate) fn dir(&self) -> &Path {
        self.cluster.layout().dir()
    }

    /// The client config naming every namenode.
    pub(crate) fn client_config(&self) -> PathBuf {
        self.cluster.layout().client_config()
    }

    /// Writes (once) and returns a client config whose connections come from
    /// `ip`: a client bound to 127.0.r.x is a client on rack r.
    pub(crate) fn client_config_bound_to(&self, ip: IpAddr) -> PathBuf {
        let path = self.dir().join(format!("dfs-{ip}.toml"));
        dfs_deploy::layout::write_client_config(
            &path,
            &self.cluster.namenode_addrs(),
            Some(ip),
            None,
        )
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// The first namenode's address.
    pub(crate) fn namenode_addr(&self) -> SocketAddr {
        self.cluster.namenode_addrs()[0]
    }

    /// Every namenode's address.
    pub(crate) fn namenode_addrs(&self) -> Vec<SocketAddr> {
        self.cluster.namenode_addrs()
    }

    /// The names of the datanodes, `dn1`, `dn2`, …
    pub(crate) fn datanodes(&self) -> Vec<String> {
        self.cluster
            .nodes()
            .iter()
            .filter(|n| n.role == dfs_deploy::Role::Datanode)
            .map(|n| n.name.to_string())
            .collect()
    }

    /// The data-transfer address of `node`.
    pub(crate) fn addr(&self, node: &str) -> SocketAddr {
        self.node(node).address
    }

    /// The base URL of `node`'s HTTP server (WebHDFS, `/metrics`, status
    /// pages), like `http://127.0.0.1:12345`: no trailing slash.
    pub(crate) fn http_url(&self, node: &str) -> String {
        self.node(node)
            .http_url()
            .unwrap_or_else(|| panic!("{node} has no http_address"))
    }

    /// The rack `node` was placed on (datanodes only).
    pub(crate) fn rack(&self, node: &str) -> String {
        self.node(node)
            .rack
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| panic!("{node} has no rack"))
    }

    /// The data directory of `node`.
    pub(crate) fn data_dir(&self, node: &str) -> PathBuf {
        self.cluster.layout().node_data(&self.node(node).name)
    }

    /// The log file of `node`.
    pub(crate) fn log(&self, node: &str) -> PathBuf {
        self.node(node).log.clone()
    }

    /// The pid of `node`, if it runs.
    pub(crate) fn pid(&self, node: &str) -> Option<u32> {
        self.cluster
            .running_pid(node)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The pids of every running node.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.cluster
            .nodes()
            .iter()
            .filter_map(|n| self.pid(n.name.as_str()))
            .collect()
    }

    /// The cluster secret the layout wrote into every node's config.
    pub(crate) fn cluster_secret(&self) -> String {
        let config = &self.node("nn1").config;
        let text = std::fs::read_to_string(config)
            .unwrap_or_else(|e| panic!("reading {}: {e}", config.display()));
        let table: toml::Table = text
            .parse()
            .unwrap_or_else(|e| panic!("parsing {}: {e}", config.display()));
        table["cluster_secret"]
            .as_str()
            .unwrap_or_else(|| panic!("{} has no cluster_secret", config.display()))
            .to_owned()
    }

    /// The user the namenode treats as superuser.
    pub(crate) fn superuser(&self) -> String {
        self.cluster.superuser()
    }

    fn node(&self, node: &str) -> &dfs_deploy::NodeState {
        self.cluster.node(node).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A `dfs` command with the cluster's client config and `user`; add
    /// arguments, env (or another `DFS_CONFIG`) before running it.
    pub(crate) fn dfs_command(&self, user: &str) -> Command {
        let mut command = Command::new(&self.binaries.dfs);
        command
            .env("DFS_CONFIG", self.client_config())
            .env("DFS_USER", user);
        command
    }

    /// Runs `dfs ARGS` as `user` and returns its output, successful or not.
    pub(crate) fn dfs(&self, user: &str, args: &[&str]) -> Output {
        self.dfs_command(user)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running dfs {args:?}: {e}"))
    }

    /// Writes `bytes` to a local file and `dfs put`s it to `dest` as `user`.
    pub(crate) fn put_bytes(&self, user: &str, bytes: &[u8], dest: &str) {
        let source = self.dir().join(format!("put{}", dest.replace('/', "_")));
        std::fs::write(&source, bytes).unwrap();
        let source = source.to_str().unwrap();
        self.dfs_ok(user, &["put", source, dest]);
    }

    /// Runs `dfs ARGS` as `user`, panics with its stderr unless it succeeds,
    /// and returns its stdout.
    pub(crate) fn dfs_ok(&self, user: &str, args: &[&str]) -> String {
        let out = self.dfs(user, args);
        assert!(
            out.status.success(),
            "dfs {args:?} as {user} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `dfs admin report --json` as the superuser: each datanode's address → row.
    pub(crate) fn datanode_report(&self) -> BTreeMap<String, serde_json::Value> {
        let text = self.dfs_ok(&self.superuser(), &["admin", "report", "--json"]);
        let report: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("admin report is not JSON ({e}): {text}"));
        report["datanodes"]
            .as_array()
            .unwrap_or_else(|| panic!("admin report has no datanodes array: {text}"))
            .iter()
            .map(|dn| {
                (
                    dn["address"].as_str().unwrap_or_default().to_owned(),
                    dn.clone(),
                )
            })
            .collect()
    }

    /// What the namenode's report says of `node`: `live`, `stale`, `dead`,
    /// or `absent` when it does not list it.
    pub(crate) fn datanode_state(&self, node: &str) -> String {
        let addr = self.addr(node).to_string();
        self.datanode_report()
            .get(&addr)
            .map_or("absent", |dn| dn["state"].as_str().unwrap_or("?"))
            .to_owned()
    }

    /// Waits until the namenode reports every datanode live.
    pub(crate) fn wait_datanodes_live(&self) {
        self.cluster
            .wait_datanodes_live()
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `dfs fsck PATH --files --blocks --locations --racks --json` as the
    /// superuser, parsed (fsck exits 1 on a corrupt path, so any exit status
    /// with a JSON report on stdout is accepted).
    pub(crate) fn fsck(&self, path: &str) -> serde_json::Value {
        let args = [
            "fsck",
            path,
            "--files",
            "--blocks",
            "--locations",
            "--racks",
            "--json",
        ];
        let out = self.dfs(&self.superuser(), &args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "fsck {path} printed no JSON ({e}; {}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// The blocks `node` served reads of, one `(blk_ID_GS, client address)`
    /// per ReadBlock, from the `read block` lines in its log (the datanode
    /// logs one at info level per request).
    pub(crate) fn reads_served(&self, node: &str) -> Vec<(String, IpAddr)> {
        let log = std::fs::read_to_string(self.log(node)).unwrap_or_default();
        log.lines()
            .filter(|line| line.contains("read block"))
            .filter_map(|line| {
                let field = |name: &str| {
                    line.split_whitespace()
                        .find_map(|w| w.strip_prefix(name))
                        .map(str::to_owned)
                };
                let block = format!("{}_{}", field("block=")?, field("gen_stamp=")?);
                let peer: SocketAddr = field("peer=")?.parse().ok()?;
                Some((block, peer.ip()))
            })
            .collect()
    }

    /// The block file of `node`'s finalized replica of block `id`, if it has one.
    pub(crate) fn finalized_replica(&self, node: &str, id: u64) -> Option<PathBuf> {
        let name = format!("blk_{id}");
        let mut dirs = vec![self.data_dir(node).join("current").join("finalized")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if entry.file_name().to_string_lossy() == name {
                    return Some(path);
                }
            }
        }
        None
    }

    /// The datanode listening on `address` (`ip:port`, as fsck prints it).
    pub(crate) fn datanode_at(&self, address: &str) -> String {
        self.datanodes()
            .into_iter()
            .find(|n| self.addr(n).to_string() == address)
            .unwrap_or_else(|| panic!("no datanode listens on {address}"))
    }

    /// The names of the namenodes, `nn1`, `nn2`, … (`nnN` has server id N).
    pub(crate) fn namenodes(&self) -> Vec<String> {
        self.cluster
            .nodes()
            .iter()
            .filter(|n| n.role == Role::Namenode)
            .map(|n| n.name.to_string())
            .collect()
    }

    /// The server id of namenode `node` (`nn3` → 3).
    pub(crate) fn sid(&self, node: &str) -> u64 {
        let name = &self.node(node).name;
        assert_eq!(name.role(), Role::Namenode, "{node} is not a namenode");
        name.as_str()[2..]
            .parse()
            .unwrap_or_else(|e| panic!("{node} has no server id: {e}"))
    }

    /// The namenode whose server id is `sid`.
    pub(crate) fn namenode_with_sid(&self, sid: u64) -> String {
        self.namenodes()
            .into_iter()
            .find(|n| self.sid(n) == sid)
            .unwrap_or_else(|| panic!("no namenode has sid {sid}"))
    }

    /// Number of voting namenodes (those that are not observers).
    pub(crate) fn voters(&self) -> usize {
        self.spec.namenodes - self.spec.observers
    }

    /// A strict majority of the voters.
    pub(crate) fn quorum(&self) -> usize {
        self.voters() / 2 + 1
    }

    /// Writes (once) and returns a client config that gives up failing over
    /// after `timeout` (default 15 s), for commands expected to find no leader.
    pub(crate) fn client_config_with_failover_timeout(&self, timeout: Duration) -> PathBuf {
        let path = self
            .dir()
            .join(format!("dfs-failover-{}ms.toml", timeout.as_millis()));
        let config = ClientConfig {
            failover_timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            ..ClientConfig::new(
                self.namenode_addrs()
                    .iter()
                    .map(SocketAddr::to_string)
                    .collect(),
            )
        };
        dfs_deploy::layout::save_client_config(&path, &config)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// `dfs admin ha-status --json`: one object per namenode (see `dfs admin
    /// ha-status --help` for the fields), each with `node` added (`nn2`).
    pub(crate) fn ha_status(&self) -> Vec<Value> {
        // It exits 1 when no namenode answers, and prints the JSON all the same.
        let out = self.dfs(&self.superuser(), &["admin", "ha-status", "--json"]);
        let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "ha-status printed no JSON array ({e}; {}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        rows.into_iter()
            .map(|mut row| {
                let address = row["address"].as_str().unwrap_or_default().to_owned();
                let node = self
                    .namenodes()
                    .into_iter()
                    .find(|n| self.addr(n).to_string() == address)
                    .unwrap_or_else(|| panic!("ha-status names an unknown namenode {address}"));
                row["node"] = Value::from(node);
                row
            })
            .collect()
    }

    /// What `node` says of itself in `dfs admin ha-status --json`.
    pub(crate) fn ha_status_of(&self, node: &str) -> Value {
        self.ha_status()
            .into_iter()
            .find(|row| row["node"] == node)
            .unwrap_or_else(|| panic!("ha-status does not list {node}"))
    }

    /// The namenode that leads: it reports LEADING in an established epoch
    /// with a quorum of voters synced with it ([`leader_of`]), and serves
    /// client calls.
    pub(crate) fn leader(&self) -> Option<String> {
        leader_of(&self.ha_status(), self.quorum()).filter(|node| self.serves_clients(node))
    }

    /// Whether namenode `node` itself answers a client call (`dfs ls /`
    /// against it alone, no failover): only a leader that has finished
    /// discovery and sync does. Its status cannot tell: right after an
    /// election it reports LEADING, its followers FOLLOWING, all still in
    /// the old epoch.
    pub(crate) fn serves_clients(&self, node: &str) -> bool {
        self.dfs_command(&self.superuser())
            .env("DFS_CONFIG", self.client_config_of(node))
            .args(["ls", "/"])
            .output()
            .is_ok_and(|out| out.status.success())
    }

    /// Writes and returns a client config that asks namenode `node` alone,
    /// once (no failover).
    pub(crate) fn client_config_of(&self, node: &str) -> PathBuf {
        let path = self.dir().join(format!("dfs-{node}-only.toml"));
        let config = ClientConfig {
            failover_timeout_ms: 0,
            ..ClientConfig::new(vec![self.addr(node).to_string()])
        };
        dfs_deploy::layout::save_client_config(&path, &config)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// Waits until a namenode leads a quorum; returns its name.
    pub(crate) fn wait_for_leader(&self, timeout: Duration) -> String {
        let mut leader = None;
        wait_until("a namenode leads a quorum", timeout, || {
            leader = self.leader();
            leader.is_some()
        });
        leader.unwrap_or_default()
    }

    /// Waits until `node` follows (or, as an observer, observes) `leader`,
    /// synced in the leader's established epoch, and has applied every
    /// transaction the leader has; returns its status row.
    pub(crate) fn wait_following(&self, node: &str, leader: &str, timeout: Duration) -> Value {
        let leader_sid = self.sid(leader);
        let mut row = Value::Null;
        wait_until(
            &format!("{node} follows {leader} and has caught up"),
            timeout,
            || {
                let rows = self.ha_status();
                let find = |n: &str| rows.iter().find(|r| r["node"] == n).cloned();
                let (Some(me), Some(lead)) = (find(node), find(leader)) else {
                    return false;
                };
                row = me.clone();
                matches!(me["state"].as_str(), Some("FOLLOWING" | "OBSERVING"))
                    && me["leader_sid"] == leader_sid
                    && lead["state"] == "LEADING"
                    && lead["current_epoch"] == lead["accepted_epoch"]
                    && me["current_epoch"] == lead["current_epoch"]
                    && me["applied_zxid"] == lead["applied_zxid"]
                    && me["last_zxid"] == lead["last_zxid"]
                    && me["namespace_digest"] == lead["namespace_digest"]
            },
        );
        row
    }

    /// Waits until every running namenode has applied the same transactions
    /// to the same namespace (equal `current_epoch`, `applied_zxid`,
    /// `last_zxid` and `namespace_digest`) under one leader that serves;
    /// returns their status rows.
    pub(crate) fn wait_converged(&self, timeout: Duration) -> Vec<Value> {
        let running: Vec<String> = self
            .namenodes()
            .into_iter()
            .filter(|n| self.pid(n).is_some())
            .collect();
        let start = Instant::now();
        loop {
            let rows: Vec<Value> = self
                .ha_status()
                .into_iter()
                .filter(|r| running.iter().any(|n| r["node"] == n.as_str()))
                .collect();
            let same = |field: &str| rows.iter().all(|r| r[field] == rows[0][field]);
            let converged = rows.len() == running.len()
                && rows.iter().all(|r| r["error"].is_null())
                && same("current_epoch")
                && same("applied_zxid")
                && same("last_zxid")
                && same("namespace_digest")
                && same("leader_sid")
                && !rows[0]["leader_sid"].is_null()
                && leader_of(&rows, self.quorum()).is_some_and(|l| self.serves_clients(&l));
            if converged {
                return rows;
            }
            if start.elapsed() >= timeout {
                panic!(
                    "timed out after {timeout:?} waiting until the namenodes converge; last: {}",
                    serde_json::to_string_pretty(&rows).unwrap_or_default()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: the node dies at once, without any shutdown work.
    pub(crate) fn kill(&mut self, node: &str) {
        self.cluster
            .kill_node(node)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// SIGTERM (then SIGKILL after 10 s): a clean shutdown.
    pub(crate) fn stop(&mut self, node: &str) {
        self.cluster
            .stop_node(node)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts a stopped node on its old address with its old data, and waits
    /// until it prints `ready`.
    pub(crate) fn start(&mut self, node: &str) {
        self.cluster
            .start_node(node)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts a stopped node like [`MiniCluster::start`], returning the
    /// launcher's error (with the tail of the node's log) when it exits
    /// before it is ready instead of panicking.
    pub(crate) fn try_start(&mut self, node: &str) -> Result<(), String> {
        self.cluster
            .start_node(node)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Sets `key = value` in namenode `node`'s config file (takes effect at
    /// its next start).
    pub(crate) fn set_namenode_config(&self, node: &str, key: &str, value: impl Into<toml::Value>) {
        let mut keys = toml::Table::new();
        keys.insert(key.to_owned(), value.into());
        set_keys(&self.node(node).config, &keys);
    }

    /// SIGSTOP: the node freezes (it keeps its sockets but answers nothing).
    pub(crate) fn pause(&self, node: &str) {
        self.cluster
            .pause_node(node)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// SIGCONT: a paused node carries on.
    pub(crate) fn resume(&self, node: &str) {
        self.cluster
            .resume_node(node)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for MiniCluster {
    fn drop(&mut self) {
        // What the ensemble looked like when the test failed, before the kill.
        let ensemble_report = (thread::panicking() && self.spec.is_ensemble())
            .then(|| self.dfs(&self.superuser(), &["admin", "ha-status"]));
        self.cluster.kill_all();
        if !thread::panicking() {
            return;
        }
        if let Some(out) = ensemble_report {
            eprintln!(
                "===== dfs admin ha-status when the test failed =====\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for node in self.cluster.nodes().iter().filter(|n| n.log.exists()) {
            eprintln!(
                "===== last {TAIL_LINES} lines of {} ({}) =====\n{}",
                node.name,
                node.log.display(),
                dfs_deploy::log_tail(&node.log, TAIL_LINES)
            );
        }
        if std::env::var_os("DFS_KEEP_TEST_DIRS").is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("keeping {}", dir.keep().display());
        }
    }
}
