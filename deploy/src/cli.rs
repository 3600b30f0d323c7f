//! The `dfs-cluster` command line: `up`, `status`, `down`, `stop`, `start`, `bench`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::Error;
use crate::binaries::Binaries;
use crate::cluster::Cluster;
use crate::layout::Layout;
use crate::node::Role;
use crate::process::SpawnMode;
use crate::spec::{ClusterSpec, QuorumTimers};

/// Runs a local multi-process dfs cluster, its datanodes on fake racks
/// (127.0.R.N), its processes detached so they outlive this command.
#[derive(Debug, Parser)]
#[command(name = "dfs-cluster", version)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The `dfs-cluster` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Lay out a cluster in DIR (or reuse the one there) and start it; returns
    /// once the leading namenode reports every datanode live.
    Up(UpArgs),
    /// Show every node: name, role, address, rack, pid, running or stopped,
    /// and its HTTP URL.
    Status(StatusArgs),
    /// Stop every node of the cluster (SIGTERM, then SIGKILL); idempotent.
    Down(DirArg),
    /// Stop one node, like `dn4`.
    Stop(NodeArg),
    /// Start one stopped node again, on its old address with its old data.
    Start(NodeArg),
    /// Measure put, get and the write pipeline on a fresh local cluster,
    /// each against a baseline taken in the same run (disk ceiling, cold
    /// `cat`, raw 3-hop TCP relay); `bench failover` and `bench mkdirs`
    /// measure the namenode ensemble. Needs release binaries for real numbers.
    Bench(BenchArgs),
}

/// `bench`: the data path (no subcommand), or the namenode ensemble.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// A benchmark of the namenode ensemble; without one, the data path.
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    #[command(flatten)]
    pub data: DataBenchArgs,
}

/// The ensemble benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Kill -9, freeze or cut off the leading namenode of a fresh ensemble,
    /// trial after trial: time until another leads, until a client's mkdir
    /// succeeds, and until the old leader follows again (p50, p99, max).
    Failover(FailoverArgs),
    /// The mkdir rate of an ensemble against a single namenode in the same
    /// run (`dfs bench mkdirs` against each, alternating).
    Mkdirs(MkdirsArgs),
}

/// What `bench` (the data path) measures and where.
#[derive(Debug, clap::Args)]
pub struct DataBenchArgs {
    /// Bytes of the file put and read: plain bytes or a binary unit (64MiB, 1GiB).
    #[arg(long, env = "DFS_BENCH_SIZE", default_value = "1GiB", value_parser = crate::bench::parse_size)]
    pub size: u64,
    /// Runs of each figure; the report gives the median.
    #[arg(long, env = "DFS_BENCH_RUNS", default_value_t = 5)]
    pub runs: usize,
    /// Datanodes of the cluster (at least 3; every file has 3 replicas).
    #[arg(long, env = "DFS_BENCH_DATANODES", default_value_t = 3)]
    pub datanodes: usize,
    #[command(flatten)]
    pub work: WorkDirArgs,
}

/// Where a benchmark works.
#[derive(Debug, clap::Args)]
pub struct WorkDirArgs {
    /// Working directory, empty or missing: the clusters (and the baselines'
    /// files) go there, so it decides which disk is measured
    /// [default: a new directory under the system temp dir].
    #[arg(long, env = "DFS_BENCH_DIR")]
    pub dir: Option<PathBuf>,
    /// Keep the working directory (cluster data and logs) after a successful run.
    #[arg(long)]
    pub keep: bool,
}

/// What `bench failover` measures.
#[derive(Debug, clap::Args)]
pub struct FailoverArgs {
    /// Leader kills (or freezes).
    #[arg(long, env = "DFS_BENCH_TRIALS", default_value_t = 20)]
    pub trials: usize,
    /// What happens to the leader: `kill` (kill -9), `pause` (SIGSTOP) or
    /// `partition` (cut off from the network; every namenode in a network
    /// namespace of its own, made and removed by the bench; needs root and
    /// `ip netns`, skipped with a message without them).
    #[arg(long, value_enum, env = "DFS_BENCH_FAULT", default_value = "kill")]
    pub fault: crate::bench::failover::Fault,
    /// Namenodes of the ensemble.
    #[arg(long, env = "DFS_BENCH_NAMENODES", default_value_t = 3)]
    pub namenodes: usize,
    #[command(flatten)]
    pub work: WorkDirArgs,
}

/// What `bench mkdirs` measures.
#[derive(Debug, clap::Args)]
pub struct MkdirsArgs {
    /// Concurrent clients of each run, each with its own connection.
    #[arg(long, env = "DFS_BENCH_CLIENTS", default_value_t = 16)]
    pub clients: usize,
    /// Mkdirs per run, across all clients.
    #[arg(long, env = "DFS_BENCH_COUNT", default_value_t = 20_000)]
    pub count: usize,
    /// Runs against each cluster; the report gives the median.
    #[arg(long, env = "DFS_BENCH_RUNS", default_value_t = 3)]
    pub runs: usize,
    /// Namenodes of the ensemble.
    #[arg(long, env = "DFS_BENCH_NAMENODES", default_value_t = 3)]
    pub namenodes: usize,
    #[command(flatten)]
    pub work: WorkDirArgs,
}

/// The cluster directory.
#[derive(Debug, clap::Args)]
pub struct DirArg {
    /// The cluster directory (state, configs, data and logs).
    #[arg(long, env = "DFS_CLUSTER_DIR")]
    pub dir: PathBuf,
}

/// What `status` shows, and how.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// A JSON array, one object per node: `name`, `kind` (namenode or
    /// datanode), `pid` (null when down), `rpc_address`, `http_url`, and
    /// `rack` for datanodes.
    #[arg(long)]
    pub json: bool,
}

/// A node of the cluster.
#[derive(Debug, clap::Args)]
pub struct NodeArg {
    #[command(flatten)]
    pub dir: DirArg,
    /// The node, like nn1 or dn4.
    pub node: String,
}

/// The shape and timers of a new cluster.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Number of namenodes; more than one form a ZooKeeper-style ensemble
    /// (namenode nnN has server id N) that elects one leader.
    #[arg(long, env = "DFS_CLUSTER_NAMENODES", default_value_t = 3)]
    pub namenodes: usize,
    /// How many of the namenodes are observers (the last ones): they follow
    /// the leader but do not vote.
    #[arg(long, env = "DFS_CLUSTER_OBSERVERS", default_value_t = 0)]
    pub observers: usize,
    /// Number of datanodes, spread over the racks as evenly as possible.
    #[arg(long, env = "DFS_CLUSTER_DATANODES", default_value_t = 6)]
    pub datanodes: usize,
    /// Number of racks (/dc1/rack1, /dc1/rack2, …).
    #[arg(long, env = "DFS_CLUSTER_RACKS", default_value_t = 2)]
    pub racks: usize,
    /// Datanode heartbeat interval, in milliseconds.
    #[arg(long, env = "DFS_CLUSTER_HEARTBEAT_MS", default_value_t = 3_000)]
    pub heartbeat_ms: u64,
    /// Silence after which a datanode is stale, in milliseconds.
    #[arg(long, env = "DFS_CLUSTER_STALE_MS", default_value_t = 30_000)]
    pub stale_ms: u64,
    /// Silence after which a datanode is dead, in milliseconds.
    #[arg(long, env = "DFS_CLUSTER_DEAD_MS", default_value_t = 600_000)]
    pub dead_ms: u64,
    /// Default replication [default: 3, or fewer when there are fewer datanodes].
    #[arg(long, env = "DFS_CLUSTER_REPLICATION")]
    pub replication: Option<u32>,
    /// Default block size, in bytes.
    #[arg(long, env = "DFS_CLUSTER_BLOCK_SIZE", default_value_t = 128 * 1024 * 1024)]
    pub block_size: u64,
    /// How long an election waits for a better vote once a quorum agrees, in
    /// milliseconds [default: the namenode's, 200].
    #[arg(long, env = "DFS_CLUSTER_ELECTION_FINALIZE_MS")]
    pub election_finalize_ms: Option<u64>,
    /// Between the leader's pings to its followers, in milliseconds
    /// [default: the namenode's, 200].
    #[arg(long, env = "DFS_CLUSTER_PING_INTERVAL_MS")]
    pub ping_interval_ms: Option<u64>,
    /// Silence after which leader and follower give up on each other, in
    /// milliseconds [default: the namenode's, 1000].
    #[arg(long, env = "DFS_CLUSTER_SYNC_TIMEOUT_MS")]
    pub sync_timeout_ms: Option<u64>,
    /// How long a new leader waits for a quorum to join it, in milliseconds
    /// [default: the namenode's, 5000].
    #[arg(long, env = "DFS_CLUSTER_INIT_TIMEOUT_MS")]
    pub init_timeout_ms: Option<u64>,
    /// Superuser name [default: the OS user running the cluster].
    #[arg(long, env = "DFS_CLUSTER_SUPERUSER")]
    pub superuser: Option<String>,
    /// How long each node may take to start, in seconds.
    #[arg(long, env = "DFS_CLUSTER_TIMEOUT_SECS", default_value_t = 60)]
    pub timeout_secs: u64,
}

impl UpArgs {
    fn spec(&self) -> ClusterSpec {
        let ms = |v: Option<u64>| v.map(Duration::from_millis);
        ClusterSpec {
            namenodes: self.namenodes,
            observers: self.observers,
            quorum_timers: QuorumTimers {
                election_finalize: ms(self.election_finalize_ms),
                ping_interval: ms(self.ping_interval_ms),
                sync_timeout: ms(self.sync_timeout_ms),
                init_timeout: ms(self.init_timeout_ms),
            },
            racks: ClusterSpec::spread(self.datanodes, self.racks),
            heartbeat_interval: Duration::from_millis(self.heartbeat_ms),
            stale_after: Duration::from_millis(self.stale_ms),
            dead_after: Duration::from_millis(self.dead_ms),
            replication: self.replication,
            block_size: self.block_size,
            superuser: self.superuser.clone(),
            ..ClusterSpec::default()
        }
    }
}

/// Runs one `dfs-cluster` command, writing what it did to `out`.
pub fn run(args: Args, out: &mut impl Write) -> Result<(), Error> {
    let binaries = Binaries::next_to_current_exe()?;
    match args.command {
        Command::Up(up) => run_up(&up, binaries, out),
        Command::Status(StatusArgs {
            dir: DirArg { dir },
            json,
        }) => {
            let cluster = Cluster::open(&dir, binaries, SpawnMode::Detached)?;
            if json {
                print_status_json(&cluster, out)
            } else {
                print_status(&cluster, out)
            }
        }
        Command::Down(DirArg { dir }) => {
            let mut cluster = Cluster::open(&dir, binaries, SpawnMode::Detached)?;
            let running = cluster.running_nodes();
            cluster.stop_all()?;
            if running.is_empty() {
                say(
                    out,
                    format_args!(
                        "nothing was running in {}",
                        cluster.layout().dir().display()
                    ),
                )
            } else {
                let names: Vec<&str> = running.iter().map(|n| n.as_str()).collect();
                say(out, format_args!("stopped {}", names.join(", ")))
            }
        }
        Command::Stop(NodeArg { dir, node }) => {
            let mut cluster = Cluster::open(&dir.dir, binaries, SpawnMode::Detached)?;
            let was_running = cluster.running_pid(&node)?.is_some();
            cluster.stop_node(&node)?;
            if was_running {
                say(out, format_args!("stopped {node}"))
            } else {
                say(out, format_args!("{node} was not running"))
            }
        }
        Command::Bench(BenchArgs { command, data }) => match command {
            None => {
                let options = crate::bench::Options {
                    size: data.size,
                    runs: data.runs,
                    datanodes: data.datanodes,
                    dir: data.work.dir,
                    keep: data.work.keep,
                };
                crate::bench::run(&options, binaries, out)
            }
            Some(BenchCommand::Failover(f)) => {
                let options = crate::bench::failover::FailoverOptions {
                    trials: f.trials,
                    fault: f.fault,
                    namenodes: f.namenodes,
                    dir: f.work.dir,
                    keep: f.work.keep,
                };
                crate::bench::failover::run(&options, binaries, out)
            }
            Some(BenchCommand::Mkdirs(m)) => {
                let options = crate::bench::mkdirs::MkdirsOptions {
                    clients: m.clients,
                    count: m.count,
                    runs: m.runs,
                    namenodes: m.namenodes,
                    dir: m.work.dir,
                    keep: m.work.keep,
                };
                crate::bench::mkdirs::run(&options, binaries, out)
            }
        },
        Command::Start(NodeArg { dir, node }) => {
            let mut cluster = Cluster::open(&dir.dir, binaries, SpawnMode::Detached)?;
            cluster.binaries().check()?;
            let addr = cluster.start_node(&node)?;
            let pid = cluster.running_pid(&node)?.unwrap_or_default();
            say(out, format_args!("started {node} (pid {pid}) on {addr}"))
        }
    }
}

fn run_up(up: &UpArgs, binaries: Binaries, out: &mut impl Write) -> Result<(), Error> {
    let layout = Layout::new(&up.dir.dir)?;
    let mut cluster = if layout.state_file().exists() {
        let cluster = Cluster::open(layout.dir(), binaries, SpawnMode::Detached)?;
        let running = cluster.running_nodes();
        if !running.is_empty() {
            return Err(Error::ClusterRunning {
                dir: layout.dir().to_owned(),
                running,
            });
        }
        say(
            out,
            format_args!(
                "restarting the stopped cluster in {} with its recorded shape and data",
                layout.dir().display()
            ),
        )?;
        cluster
    } else {
        Cluster::create(layout.dir(), &up.spec(), binaries, SpawnMode::Detached)?
    };
    cluster.set_startup_timeout(Duration::from_secs(up.timeout_secs));
    cluster.start_all()?;

    let dir = layout.dir().display();
    let namenodes: Vec<String> = cluster
        .namenode_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    let racks = cluster
        .nodes()
        .iter()
        .filter_map(|n| n.rack.as_ref())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let urls: String = cluster
        .nodes()
        .iter()
        .filter_map(|n| Some(format!("\n  {:<5} {}/", n.name, n.http_url()?)))
        .collect();
    let text = format!(
        "cluster up in {dir}: {} {} and {} datanodes on {racks} racks; logs in {}\n\
         \n\
         http (WebHDFS, /metrics, status pages):{urls}\n\
         \n\
         next:\n  \
           export DFS_CONFIG={}\n  \
           dfs mkdir -p /user/$USER && dfs ls /\n  \
           dfs admin report\n  \
           dfs admin ha-status\n  \
           dfs-cluster status --dir {dir}\n  \
           dfs-cluster stop --dir {dir} dn1   # and `start` to bring it back\n  \
           dfs-cluster down --dir {dir}",
        if namenodes.len() == 1 {
            "namenode"
        } else {
            "namenodes"
        },
        namenodes.join(", "),
        cluster.datanode_addrs().len(),
        layout.logs_dir().display(),
        layout.client_config().display(),
    );
    say(out, format_args!("{text}"))
}

fn print_status(cluster: &Cluster, out: &mut impl Write) -> Result<(), Error> {
    say(
        out,
        format_args!(
            "{:<6} {:<9} {:<22} {:<14} {:<8} STATE",
            "NODE", "ROLE", "ADDRESS", "RACK", "PID"
        ),
    )?;
    for node in cluster.nodes() {
        let rack = node.rack.as_ref().map_or("-", |r| r.as_str());
        let running = cluster.running_pid(node.name.as_str())?;
        let (pid, state) = match (running, node.pid) {
            (Some(pid), _) => (pid.to_string(), "running"),
            (None, Some(_)) => ("-".to_owned(), "stopped (exited on its own)"),
            (None, None) => ("-".to_owned(), "stopped"),
        };
        let role = node.role.as_str();
        say(
            out,
            format_args!(
                "{:<6} {role:<9} {:<22} {rack:<14} {pid:<8} {state}",
                node.name,
                node.address.to_string()
            ),
        )?;
    }
    Ok(())
}

/// One node as `status --json` shows it.
#[derive(Debug, serde::Serialize)]
struct NodeStatus<'a> {
    name: &'a str,
    kind: Role,
    pid: Option<u32>,
    rpc_address: SocketAddr,
    http_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rack: Option<&'a str>,
}

fn print_status_json(cluster: &Cluster, out: &mut impl Write) -> Result<(), Error> {
    let mut nodes = Vec::new();
    for node in cluster.nodes() {
        nodes.push(NodeStatus {
            name: node.name.as_str(),
            kind: node.role,
            pid: cluster.running_pid(node.name.as_str())?,
            rpc_address: node.address,
            http_url: node.http_url(),
            rack: node.rack.as_ref().map(|r| r.as_str()),
        });
    }
    let text = serde_json::to_string_pretty(&nodes).map_err(|e| Error::Io {
        action: "encoding",
        path: "stdout".into(),
        source: e.into(),
    })?;
    say(out, format_args!("{text}"))
}

fn say(out: &mut impl Write, text: std::fmt::Arguments<'_>) -> Result<(), Error> {
    writeln!(out, "{text}").map_err(Error::io("writing", "stdout"))
}
