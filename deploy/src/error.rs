//! The launcher's errors: each says what was being done, to which node or
//! path, and (for a node that would not start) the tail of its log.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::node::NodeName;

/// Everything that can go wrong while laying out, starting or stopping a cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system operation on the cluster directory failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, like "writing" or "creating directory".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The directory holds no `cluster.json`.
    #[error("no cluster in {}: {} does not exist (run `dfs-cluster up --dir {}` first)", dir.display(), dir.join(crate::layout::STATE_FILE).display(), dir.display())]
    NoCluster {
        /// The directory that was given.
        dir: PathBuf,
    },
    /// A new cluster was asked for in a directory that is not empty.
    #[error("{} is not empty; a new cluster needs an empty or missing directory", dir.display())]
    DirNotEmpty {
        /// The directory that was given.
        dir: PathBuf,
    },
    /// `up` was asked for a directory whose cluster still runs.
    #[error("{} already holds a running cluster (running: {}); run `dfs-cluster down --dir {}` first", dir.display(), names(running), dir.display())]
    ClusterRunning {
        /// The cluster directory.
        dir: PathBuf,
        /// The nodes that are running.
        running: Vec<NodeName>,
    },
    /// A node name that the cluster does not have.
    #[error("unknown node {name:?}; this cluster has {}", names(known))]
    UnknownNode {
        /// The name that was asked for.
        name: String,
        /// The names the cluster has.
        known: Vec<NodeName>,
    },
    /// A node name that is not `nnN` or `dnN`.
    #[error("invalid node name {0:?}: expected nn<N> or dn<N>, like nn1 or dn4")]
    BadNodeName(String),
    /// A cluster shape that cannot be laid out.
    #[error("invalid cluster spec: {0}")]
    BadSpec(&'static str),
    /// A node binary is missing.
    #[error("{} not found: build the binaries first (`cargo build --bins`)", path.display())]
    MissingBinary {
        /// Where the binary was expected.
        path: PathBuf,
    },
    /// The binary could not be started.
    #[error("starting {node} ({}): {source}", binary.display())]
    Spawn {
        /// The node being started.
        node: NodeName,
        /// Its binary.
        binary: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A command the benchmark runs could not be started.
    #[error("running `{command}`: {source}")]
    RunCommand {
        /// The command line.
        command: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A command the benchmark runs failed.
    #[error("`{command}` failed ({status}):\n{stderr}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// How it exited.
        status: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// `start` was asked for a node that already runs.
    #[error("{node} is already running (pid {pid})")]
    NodeRunning {
        /// The node.
        node: NodeName,
        /// Its process id.
        pid: u32,
    },
    /// A node exited before it printed its `ready` line.
    #[error("{node} exited ({status}) before it was ready; last lines of {}:\n{tail}", log.display())]
    ExitedEarly {
        /// The node.
        node: NodeName,
        /// How it exited.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// A node did not print its `ready` line in time.
    #[error("{node} did not print `ready <addr>` within {timeout:?}; last lines of {}:\n{tail}", log.display())]
    NotReady {
        /// The node.
        node: NodeName,
        /// How long we waited.
        timeout: Duration,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// A process did not exit after SIGKILL.
    #[error("{node} (pid {pid}) did not exit after SIGKILL within {timeout:?}")]
    Unkillable {
        /// The node.
        node: NodeName,
        /// Its process id.
        pid: u32,
        /// How long we waited after SIGKILL.
        timeout: Duration,
    },
    /// Sending a signal failed.
    #[error("sending {signal} to {node} (pid {pid}): {source}")]
    Signal {
        /// The node.
        node: NodeName,
        /// Its process id.
        pid: u32,
        /// The signal's name.
        signal: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A signal was asked for a node that is not running.
    #[error("{node} is not running")]
    NotRunning {
        /// The node.
        node: NodeName,
    },
    /// The namenodes did not report every datanode live in time.
    #[error(
        "the namenodes did not report all {expected} datanodes live within {timeout:?}; last answer: {last}"
    )]
    DatanodesNotLive {
        /// How many datanodes should be live.
        expected: usize,
        /// How long we waited.
        timeout: Duration,
        /// The last report (or the error) we got.
        last: String,
    },
    /// No namenode led a quorum in time.
    #[error("no namenode led a quorum within {timeout:?}; last status: {last}")]
    NoLeader {
        /// How long we waited.
        timeout: Duration,
        /// What the namenodes said last.
        last: String,
    },
    /// A dfs client call the benchmark makes failed.
    #[error("{op}: {reason}")]
    Client {
        /// The operation, like "mkdir after the kill".
        op: &'static str,
        /// The client's error, in words.
        reason: String,
    },
}

fn names(names: &[NodeName]) -> String {
    let names: Vec<&str> = names.iter().map(NodeName::as_str).collect();
    names.join(", ")
}

impl Error {
    /// An [`Error::Io`] with its action and path.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}
