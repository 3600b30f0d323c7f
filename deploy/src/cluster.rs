//! A cluster on disk and the processes running it.
//!
//! ```text
//! create(dir, spec) ─ lay out configs + cluster.json ─┐
//! open(dir) ───────── read cluster.json ──────────────┴─> Cluster
//!   start_all: spawn namenodes, wait `ready`; spawn datanodes, wait `ready`;
//!              wait until a namenode reports every datanode live
//!   start_node / stop_node / kill_node / pause_node / resume_node
//!   stop_all: datanodes, then namenodes (SIGTERM, then SIGKILL)
//! ```
//!
//! Every pid change is written to `cluster.json` at once, so a later launcher
//! finds what an earlier one started. The ports (RPC and HTTP) of the nodes
//! it laid out or stopped are held (not listening) until they start. In [`SpawnMode::Child`] dropping the
//! `Cluster` kills every node it started.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::Error;
use crate::binaries::Binaries;
use crate::layout::{self, Layout};
use crate::liveness;
use crate::node::{NodeName, Role};
use crate::ports::NodeReservation;
use crate::process::{self, SpawnMode};
use crate::spec::ClusterSpec;
use crate::state::{ClusterState, NodeState};

/// How long a node gets to exit after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A cluster directory and the node processes this launcher knows of.
#[derive(Debug)]
pub struct Cluster {
    layout: Layout,
    state: ClusterState,
    binaries: Binaries,
    mode: SpawnMode,
    startup_timeout: Duration,
    /// Nodes spawned by this `Cluster` value, to reap them (and, in child
    /// mode, to kill them on drop).
    children: BTreeMap<NodeName, Child>,
    /// The ports (RPC and HTTP) of nodes not running, held so that nobody
    /// else takes them before the node starts (see `ports`).
    reservations: BTreeMap<NodeName, NodeReservation>,
    /// The network namespace each node starts in (see `netns`); the others
    /// start in ours.
    netns: BTreeMap<NodeName, String>,
}

impl Cluster {
    /// Lays out a new cluster of shape `spec` in `dir`, which must be empty
    /// or missing. Starts nothing.
    pub fn create(
        dir: &Path,
        spec: &ClusterSpec,
        binaries: Binaries,
        mode: SpawnMode,
    ) -> Result<Self, Error> {
        binaries.check()?;
        let layout = Layout::new(dir)?;
        if !layout.is_empty()? {
            return Err(Error::DirNotEmpty {
                dir: layout.dir().to_owned(),
            });
        }
        let (state, reservations) = layout::lay_out(&layout, spec)?;
        let mut cluster = Self::new(layout, state, binaries, mode);
        cluster.reservations = reservations;
        Ok(cluster)
    }

    /// Opens the cluster recorded in `dir/cluster.json`.
    pub fn open(dir: &Path, binaries: Binaries, mode: SpawnMode) -> Result<Self, Error> {
        let layout = Layout::new(dir)?;
        let state_file = layout.state_file();
        if !state_file.exists() {
            return Err(Error::NoCluster {
                dir: layout.dir().to_owned(),
            });
        }
        let state = ClusterState::load(&state_file)?;
        Ok(Self::new(layout, state, binaries, mode))
    }

    fn new(layout: Layout, state: ClusterState, binaries: Binaries, mode: SpawnMode) -> Self {
        Cluster {
            layout,
            state,
            binaries,
            mode,
            startup_timeout: Duration::from_secs(60),
            children: BTreeMap::new(),
            reservations: BTreeMap::new(),
            netns: BTreeMap::new(),
        }
    }

    /// Sets how long a node may take to print `ready`, and the datanodes to
    /// be reported live (default 60 s).
    pub fn set_startup_timeout(&mut self, timeout: Duration) {
        self.startup_timeout = timeout;
    }

    /// Starts node `name` inside the network namespace `ns` from now on.
    pub fn set_netns(&mut self, name: &str, ns: &str) -> Result<(), Error> {
        let name = self.node(name)?.name.clone();
        self.netns.insert(name, ns.to_owned());
        Ok(())
    }

    /// The cluster's paths.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The binaries the nodes run.
    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// Every node, namenodes first.
    pub fn nodes(&self) -> &[NodeState] {
        &self.state.nodes
    }

    /// The node called `name` (`nn1`, `dn4`).
    pub fn node(&self, name: &str) -> Result<&NodeState, Error> {
        self.state
            .nodes
            .iter()
            .find(|n| n.name.as_str() == name)
            .ok_or_else(|| Error::UnknownNode {
                name: name.to_owned(),
                known: self.state.nodes.iter().map(|n| n.name.clone()).collect(),
            })
    }

    /// Addresses of every namenode.
    pub fn namenode_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(Role::Namenode)
    }

    /// Addresses of every datanode.
    pub fn datanode_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(Role::Datanode)
    }

    fn addrs(&self, role: Role) -> Vec<SocketAddr> {
        self.state
            .nodes
            .iter()
            .filter(|n| n.role == role)
            .map(|n| n.address)
            .collect()
    }

    /// The node's pid if it is running (a recorded pid whose process has
    /// exited or been recycled does not count).
    pub fn running_pid(&self, name: &str) -> Result<Option<u32>, Error> {
        let node = self.node(name)?;
        Ok(self.pid_if_running(node))
    }

    fn pid_if_running(&self, node: &NodeState) -> Option<u32> {
        node.pid
            .filter(|&pid| process::is_running(node, pid, self.binaries.for_role(node.role)))
    }

    /// The nodes that are running.
    pub fn running_nodes(&self) -> Vec<NodeName> {
        self.state
            .nodes
            .iter()
            .filter(|n| self.pid_if_running(n).is_some())
            .map(|n| n.name.clone())
            .collect()
    }

    /// Starts every node that is not running: namenodes, then datanodes, then
    /// waits until a namenode reports every datanode live. On failure, stops
    /// the nodes it started and returns the first error.
    pub fn start_all(&mut self) -> Result<(), Error> {
        self.binaries.check()?;
        let mut started = Vec::new();
        let result = self.start_all_inner(&mut started);
        if result.is_err() {
            for name in started.iter().rev() {
                if let Err(e) = self.stop_node(name.as_str()) {
                    tracing::warn!(node = %name, error = %e, "could not stop node after failed start");
                }
            }
        }
        result
    }

    fn start_all_inner(&mut self, started: &mut Vec<NodeName>) -> Result<(), Error> {
        for role in [Role::Namenode, Role::Datanode] {
            let names: Vec<NodeName> = self
                .state
                .nodes
                .iter()
                .filter(|n| n.role == role && self.pid_if_running(n).is_none())
                .map(|n| n.name.clone())
                .collect();
            // Spawn the whole tier first, so the nodes boot in parallel.
            let mut spawned = Vec::new();
            for name in names {
                let log_offset = self.spawn(&name)?;
                started.push(name.clone());
                spawned.push((name, log_offset));
            }
            for (name, log_offset) in spawned {
                self.wait_ready(&name, log_offset)?;
            }
        }
        self.wait_datanodes_live()
    }

    /// Starts the stopped node `name` with its recorded config and address,
    /// and waits for its `ready` line.
    pub fn start_node(&mut self, name: &str) -> Result<SocketAddr, Error> {
        let name = self.node(name)?.name.clone();
        let log_offset = self.spawn(&name)?;
        let result = self.wait_ready(&name, log_offset);
        if result.is_err()
            && let Err(e) = self.kill_node(name.as_str())
        {
            tracing::warn!(node = %name, error = %e, "could not kill node that failed to start");
        }
        result
    }

    /// Spawns the node, records its pid and keeps its child handle; returns
    /// where its output starts in the log.
    fn spawn(&mut self, name: &NodeName) -> Result<u64, Error> {
        let node = self.node(name.as_str())?.clone();
        if let Some(pid) = self.pid_if_running(&node) {
            return Err(Error::NodeRunning {
                node: node.name,
                pid,
            });
        }
        // The node binds its ports itself.
        self.reservations.remove(name);
        let (child, log_offset) = process::spawn(
            &node,
            self.binaries.for_role(node.role),
            self.mode,
            self.netns.get(name).map(String::as_str),
        )?;
        let pid = child.id();
        self.children.insert(name.clone(), child);
        self.set_pid(name, Some(pid))?;
        tracing::info!(node = %name, pid, "node spawned");
        Ok(log_offset)
    }

    fn wait_ready(&mut self, name: &NodeName, log_offset: u64) -> Result<SocketAddr, Error> {
        let node = self.node(name.as_str())?.clone();
        let child = self
            .children
            .get_mut(name)
            .ok_or_else(|| Error::NotRunning { node: name.clone() })?;
        let addr = process::wait_ready(&node, child, log_offset, self.startup_timeout)?;
        tracing::info!(node = %name, %addr, "node ready");
        Ok(addr)
    }

    /// Stops the node with SIGTERM (SIGKILL after a grace period). Stopping
    /// a stopped node does nothing.
    pub fn stop_node(&mut self, name: &str) -> Result<(), Error> {
        self.end_node(name, false)
    }

    /// Kills the node with SIGKILL and waits for it to be gone.
    pub fn kill_node(&mut self, name: &str) -> Result<(), Error> {
        self.end_node(name, true)
    }

    fn end_node(&mut self, name: &str, kill: bool) -> Result<(), Error> {
        let node = self.node(name)?.clone();
        let binary = self.binaries.for_role(node.role).to_owned();
        let mut child = self.children.remove(&node.name);
        if let Some(pid) = node.pid {
            if kill {
                process::kill(&node, pid, &binary, child.as_mut())?;
            } else {
                process::stop(&node, pid, &binary, child.as_mut(), STOP_GRACE)?;
            }
            tracing::info!(node = %node.name, pid, kill, "node stopped");
        }
        // Best effort: connections the node closed keep its ports in
        // TIME_WAIT for a while, and then only the node itself can bind them.
        let held = NodeReservation::hold_what_can_be(
            std::iter::once(node.address).chain(node.http_address),
        );
        self.reservations.insert(node.name.clone(), held);
        self.set_pid(&node.name, None)
    }

    /// Freezes the node with SIGSTOP.
    pub fn pause_node(&self, name: &str) -> Result<(), Error> {
        self.signal_node(name, Signal::SIGSTOP)
    }

    /// Thaws a paused node with SIGCONT.
    pub fn resume_node(&self, name: &str) -> Result<(), Error> {
        self.signal_node(name, Signal::SIGCONT)
    }

    fn signal_node(&self, name: &str, signal: Signal) -> Result<(), Error> {
        let node = self.node(name)?;
        let pid = self.pid_if_running(node).ok_or_else(|| Error::NotRunning {
            node: node.name.clone(),
        })?;
        process::send_signal(node, pid, signal)
    }

    /// Stops every node, datanodes first. Keeps going past failures and
    /// returns the first. Stopping a stopped cluster does nothing.
    pub fn stop_all(&mut self) -> Result<(), Error> {
        let mut first_error = None;
        for name in self.names_for_shutdown() {
            if let Err(e) = self.stop_node(name.as_str()) {
                tracing::warn!(node = %name, error = %e, "could not stop node");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Kills every node with SIGKILL, best effort (failures are logged).
    pub fn kill_all(&mut self) {
        for name in self.names_for_shutdown() {
            if let Err(e) = self.kill_node(name.as_str()) {
                tracing::warn!(node = %name, error = %e, "could not kill node");
            }
        }
    }

    fn names_for_shutdown(&self) -> Vec<NodeName> {
        // Namenodes come first in the state, so reversed is datanodes first.
        self.state
            .nodes
            .iter()
            .rev()
            .map(|n| n.name.clone())
            .collect()
    }

    /// Waits until a namenode reports every datanode live.
    pub fn wait_datanodes_live(&self) -> Result<(), Error> {
        liveness::wait_datanodes_live(
            &self.namenode_addrs(),
            &self.datanode_addrs(),
            &self.superuser(),
            self.startup_timeout,
        )
    }

    /// The name the namenodes treat as superuser: the configured one, or the
    /// OS user that runs them (and this launcher).
    pub fn superuser(&self) -> String {
        if let Some(user) = &self.state.superuser {
            return user.clone();
        }
        nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map_or_else(|| "dfs-cluster".to_owned(), |u| u.name)
    }

    fn set_pid(&mut self, name: &NodeName, pid: Option<u32>) -> Result<(), Error> {
        if let Some(node) = self.state.nodes.iter_mut().find(|n| &n.name == name) {
            node.pid = pid;
        }
        self.state.save(&self.layout.state_file())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.mode == SpawnMode::Child {
            self.kill_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_binaries(dir: &Path) -> Binaries {
        let bin = |name: &str| {
            let path = dir.join(name);
            std::fs::write(&path, "").unwrap();
            path
        };
        Binaries {
            namenode: bin("namenode"),
            datanode: bin("datanode"),
            dfs: bin("dfs"),
        }
    }

    #[test]
    fn a_new_cluster_needs_an_empty_dir_and_reopens_from_its_state() {
        let bins = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let binaries = fake_binaries(bins.path());
        let spec = ClusterSpec::default();
        let created =
            Cluster::create(dir.path(), &spec, binaries.clone(), SpawnMode::Child).unwrap();
        assert!(matches!(
            Cluster::create(dir.path(), &spec, binaries.clone(), SpawnMode::Child),
            Err(Error::DirNotEmpty { .. })
        ));
        let opened = Cluster::open(dir.path(), binaries, SpawnMode::Child).unwrap();
        assert_eq!(opened.nodes(), created.nodes());
        assert_eq!(opened.nodes().len(), 7);
        assert!(opened.running_nodes().is_empty());
        assert!(matches!(opened.node("dn9"), Err(Error::UnknownNode { .. })));
    }

    #[test]
    fn opening_a_dir_without_state_says_there_is_no_cluster() {
        let bins = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err =
            Cluster::open(dir.path(), fake_binaries(bins.path()), SpawnMode::Child).unwrap_err();
        assert!(matches!(err, Error::NoCluster { .. }), "{err}");
    }

    /// A stand-in node: prints `ready <listen>` from its config, then idles
    /// until SIGTERM.
    const FAKE_NODE: &str = r#"#!/bin/sh
addr=$(sed -n 's/^listen = "\(.*\)"$/\1/p' "$2")
echo "starting on $addr" >&2
echo "ready $addr"
trap 'echo bye >&2; exit 0' TERM
while :; do sleep 0.05; done
"#;

    fn script_binaries(dir: &Path, script: &str) -> Binaries {
        use std::os::unix::fs::PermissionsExt;
        let bin = |name: &str| {
            let path = dir.join(name);
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        Binaries {
            namenode: bin("namenode"),
            datanode: bin("datanode"),
            dfs: bin("dfs"),
        }
    }

    fn pid_exists(pid: u32) -> bool {
        // A zombie still has a /proc entry; it has exited all the same.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| !stat.contains(") Z "))
            .unwrap_or(false)
    }

    #[test]
    fn nodes_start_stop_pause_and_die_with_their_cluster() {
        let bins = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let binaries = script_binaries(bins.path(), FAKE_NODE);
        let spec = ClusterSpec {
            racks: vec![1],
            ..ClusterSpec::default()
        };
        let mut cluster =
            Cluster::create(dir.path(), &spec, binaries.clone(), SpawnMode::Child).unwrap();
        cluster.set_startup_timeout(Duration::from_secs(10));

        let addr = cluster.start_node("nn1").unwrap();
        assert_eq!(addr, cluster.node("nn1").unwrap().address);
        let pid = cluster.running_pid("nn1").unwrap().unwrap();
        assert!(matches!(
            cluster.start_node("nn1"),
            Err(Error::NodeRunning { .. })
        ));
        // A second launcher sees the same pid through cluster.json.
        let other = Cluster::open(dir.path(), binaries.clone(), SpawnMode::Detached).unwrap();
        assert_eq!(other.running_pid("nn1").unwrap(), Some(pid));

        cluster.pause_node("nn1").unwrap();
        cluster.resume_node("nn1").unwrap();
        cluster.stop_node("nn1").unwrap();
        assert!(!pid_exists(pid));
        assert_eq!(cluster.running_pid("nn1").unwrap(), None);
        assert!(
            std::fs::read_to_string(&cluster.node("nn1").unwrap().log)
                .unwrap()
                .contains("bye")
        );
        cluster.stop_node("nn1").unwrap();

        // Restarting reuses the address; `ready` from the first run does not count.
        assert_eq!(cluster.start_node("nn1").unwrap(), addr);
        cluster.start_node("dn1").unwrap();
        let pids: Vec<u32> = ["nn1", "dn1"]
            .iter()
            .map(|n| cluster.running_pid(n).unwrap().unwrap())
            .collect();
        cluster.kill_node("dn1").unwrap();
        assert!(!pid_exists(pids[1]));
        drop(cluster);
        assert!(!pid_exists(pids[0]));
    }

    #[test]
    fn a_node_that_exits_early_reports_its_log_tail() {
        let bins = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let binaries = script_binaries(
            bins.path(),
            "#!/bin/sh\necho 'cannot bind: address in use' >&2\nexit 3\n",
        );
        let spec = ClusterSpec {
            racks: vec![],
            ..ClusterSpec::default()
        };
        let mut cluster = Cluster::create(dir.path(), &spec, binaries, SpawnMode::Child).unwrap();
        let err = cluster.start_all().unwrap_err();
        assert!(matches!(err, Error::ExitedEarly { .. }), "{err}");
        assert!(
            err.to_string().contains("cannot bind: address in use"),
            "{err}"
        );
        assert!(cluster.running_nodes().is_empty());
    }

    #[test]
    fn a_node_that_never_gets_ready_times_out_and_is_killed() {
        let bins = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let binaries = script_binaries(
            bins.path(),
            "#!/bin/sh\necho 'waiting for godot' >&2\nwhile :; do sleep 0.05; done\n",
        );
        let spec = ClusterSpec {
            racks: vec![],
            ..ClusterSpec::default()
        };
        let mut cluster = Cluster::create(dir.path(), &spec, binaries, SpawnMode::Child).unwrap();
        cluster.set_startup_timeout(Duration::from_millis(300));
        let err = cluster.start_node("nn1").unwrap_err();
        assert!(matches!(err, Error::NotReady { .. }), "{err}");
        assert!(err.to_string().contains("waiting for godot"), "{err}");
        assert!(cluster.running_nodes().is_empty());
    }
}
