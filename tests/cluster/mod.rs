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

// Each test file uses its own part of the harness.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use dfs_deploy::{Binaries, Cluster, ClusterSpec, SpawnMode};
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

/// Shapes a [`MiniCluster`] before it starts.
#[derive(Debug)]
pub(crate) struct Builder {
    spec: ClusterSpec,
    racks: Vec<usize>,
    startup_timeout: Duration,
}

impl Builder {
    /// Number of namenodes (default 1).
    pub(crate) fn namenodes(mut self, n: usize) -> Self {
        self.spec.namenodes = n;
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

    /// How long each node may take to get ready (default 60 s).
    pub(crate) fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Starts every node and returns once the namenode reports every
    /// datanode live. Panics (printing the logs) when the cluster does not come up.
    pub(crate) fn start(mut self) -> MiniCluster {
        if !self.racks.is_empty() {
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
        // A panic below drops `mini`, which kills what started and prints the logs.
        let mut mini = MiniCluster {
            cluster,
            binaries,
            dir: Some(dir),
        };
        mini.cluster
            .start_all()
            .unwrap_or_else(|e| panic!("starting the cluster: {e}"));
        mini
    }
}

/// A running cluster of real `namenode` and `datanode` processes.
#[derive(Debug)]
pub(crate) struct MiniCluster {
    // Dropped before `dir`, so the nodes die before their files go.
    cluster: Cluster,
    binaries: Binaries,
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
            startup_timeout: Duration::from_secs(60),
        }
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
        self.cluster.kill_all();
        if !thread::panicking() {
            return;
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
