//! `dfs-cluster bench failover`: how long writes stop when the leading
//! namenode dies (`--fault kill`, kill -9), freezes (`--fault pause`,
//! SIGSTOP: a long GC pause, a stuck disk, a VM stall) or is cut off from
//! the network (`--fault partition`: a failed cable or switch port).
//!
//! ```text
//! cluster: N namenodes (an ensemble, default 3), no datanodes, the real binaries
//!          partition only: every namenode in a network namespace of its own
//!            (10.77.0.N:8020), this bench's clients in another (10.77.0.254),
//!            all on one bridge in a "switch" namespace (see `netns`); made
//!            before the cluster starts, torn down after it stops, even on
//!            error, panic or Ctrl-C; skipped with a message without them
//! per trial: wait for an established leader; one mkdir through a long-lived
//!            client, so that it talks to the leader as an application would
//!            t0; kill -9, SIGSTOP or cut off the leader (its switch port
//!            down: the leader loses its quorum, and the client cannot
//!            reach it either); then, concurrently from t0:
//!              the client's next mkdir, failing over until it succeeds ──► write gap
//!              `dfs mkdir` run as a new process (the binary, default
//!              settings), once ───────────────────────────────────────────► dfs mkdir
//!              GetPeerStatus every 10 ms until another namenode leads a
//!              quorum and answers a client call itself ──────────────────► election
//!            restart, SIGCONT or reconnect the old leader; time until it
//!            follows ───────────────────────────────────────────────────► rejoin
//! report: p50 / p99 / max of each
//! ```
//!
//! The write gap is what a client sees: the election plus the client's
//! failover (a killed leader refuses connections at once; a frozen one
//! costs one attempt's deadline, 1 s, after which the client passes it
//! over) and its first request to the new leader. A cut-off leader costs
//! the same as a frozen one: its frames are dropped without a word, so
//! only deadlines tell.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dfs_client::{ClientConfig, DfsClient};

use super::report::percentile;
use super::{in_work_dir, say};
use crate::Error;
use crate::binaries::Binaries;
use crate::cluster::Cluster;
use crate::ensemble;
use crate::netns::{self, Entered, NetPlan, Network};
use crate::process::SpawnMode;
use crate::spec::ClusterSpec;

/// How often the election is polled during a trial.
const POLL: Duration = Duration::from_millis(10);
/// Bound on an election, a write gap or a rejoin before the trial fails.
const TRIAL_TIMEOUT: Duration = Duration::from_secs(60);
/// The port of every namenode in its own namespace: HDFS's namenode port
/// (each namespace has all its ports to itself).
const NAMESPACED_PORT: u16 = 8020;

/// How the leader is taken away in each trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// kill -9: connections are refused at once.
    Kill,
    /// SIGSTOP: the process keeps its sockets and answers nothing.
    Pause,
    /// The leader's network port down: every frame to or from it is
    /// dropped, from the other namenodes and from clients alike.
    Partition,
}

impl Fault {
    fn verb(self) -> &'static str {
        match self {
            Fault::Kill => "kill -9",
            Fault::Pause => "SIGSTOP",
            Fault::Partition => "network cut",
        }
    }
}

/// What to measure and where.
#[derive(Debug, Clone)]
pub struct FailoverOptions {
    /// Leader kills (or freezes).
    pub trials: usize,
    /// What happens to the leader.
    pub fault: Fault,
    /// Namenodes of the ensemble (at least 3).
    pub namenodes: usize,
    /// Working directory (must be empty or missing); a fresh one under the
    /// system temp dir if `None`.
    pub dir: Option<PathBuf>,
    /// Keep the working directory (cluster, logs) afterwards.
    pub keep: bool,
}

/// One trial's figures.
#[derive(Debug, Clone, Copy)]
struct Trial {
    election: Duration,
    write_gap: Duration,
    dfs_mkdir: Duration,
    rejoin: Duration,
}

/// Runs the failover benchmark and writes progress and the report to `out`.
///
/// # Errors
/// The cluster does not start, no leader is elected, or no write succeeds
/// within a minute of a kill; the working directory is then kept for its logs.
pub fn run(
    options: &FailoverOptions,
    binaries: Binaries,
    out: &mut impl Write,
) -> Result<(), Error> {
    if options.trials == 0 {
        return Err(Error::BadSpec("bench failover needs --trials ≥ 1"));
    }
    if options.namenodes < 3 {
        return Err(Error::BadSpec(
            "bench failover needs at least 3 namenodes (a quorum must survive the kill)",
        ));
    }
    binaries.check()?;
    if options.fault == Fault::Partition {
        if let Err(why) = netns::available() {
            return say(
                out,
                &format!(
                    "skipping bench failover --fault partition: network namespaces are \
                     unavailable here ({why}); it needs root and `ip netns`"
                ),
            );
        }
        // Refuse an impossible plan before anything is made.
        NetPlan::new(std::process::id(), options.namenodes)?;
    }
    in_work_dir(
        options.dir.as_deref(),
        "dfs-bench-failover",
        options.keep,
        out,
        |work, out| measure(options, binaries, work, out),
    )
}

fn measure(
    options: &FailoverOptions,
    binaries: Binaries,
    work: &Path,
    out: &mut impl Write,
) -> Result<(), Error> {
    // Declared first, dropped last: the network outlives the cluster (whose
    // drop kills the nodes), and this thread is back home before the
    // namespaces go.
    let network = match options.fault {
        Fault::Partition => Some(Network::create(NetPlan::new(
            std::process::id(),
            options.namenodes,
        )?)?),
        Fault::Kill | Fault::Pause => None,
    };
    let plan = network.as_ref().map(Network::plan);
    // Everything this thread (and the runtime's threads it spawns) connects
    // to from here on is reached from the client's namespace.
    let _entered = plan.map(|p| Entered::enter(&p.client_ns())).transpose()?;
    let spec = ClusterSpec {
        namenodes: options.namenodes,
        racks: Vec::new(),
        namenode_addrs: plan.map(|p| {
            (1..=p.nodes())
                .map(|i| SocketAddr::new(p.node_ip(i), NAMESPACED_PORT))
                .collect()
        }),
        ..ClusterSpec::default()
    };
    let quorum = options.namenodes / 2 + 1;
    let mut cluster = Cluster::create(&work.join("cluster"), &spec, binaries, SpawnMode::Child)?;
    if let Some(plan) = plan {
        for i in 1..=plan.nodes() {
            cluster.set_netns(&format!("nn{i}"), &plan.node_ns(i))?;
        }
        say(
            out,
            &format!(
                "network namespaces {}: namenodes on 10.77.0.1-{}, clients on {}",
                plan.namespaces().join(", "),
                plan.nodes(),
                plan.client_ip()
            ),
        )?;
    }
    say(
        out,
        &format!(
            "starting {} namenodes (no datanodes) in {}",
            options.namenodes,
            cluster.layout().dir().display()
        ),
    )?;
    cluster.start_all()?;
    let namenodes = cluster.namenode_addrs();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(Error::io("starting", "a tokio runtime"))?;
    let config = ClientConfig::new(namenodes.iter().map(SocketAddr::to_string).collect());
    let user = cluster.superuser();
    let client = {
        // The client's lazy channels spawn their tasks on the current runtime.
        let _entered = runtime.enter();
        DfsClient::connect(&config, Some(user.clone())).map_err(client_error("connecting"))?
    };
    runtime
        .block_on(client.mkdirs("/bench-failover", true))
        .map_err(client_error("mkdir /bench-failover"))?;

    let mut trials = Vec::new();
    for trial in 1..=options.trials {
        let leader = runtime
            .block_on(ensemble::wait_for_leader(
                &namenodes,
                quorum,
                None,
                &user,
                TRIAL_TIMEOUT,
                POLL,
            ))
            .map_err(no_leader)?;
        let leader_node = node_at(&cluster, &leader)?;
        // One write first, so the client's active namenode is the leader.
        runtime
            .block_on(client.mkdirs(&format!("/bench-failover/warm{trial}"), false))
            .map_err(client_error("mkdir before the kill"))?;

        // The leader's place in the network plan, for a partition.
        let cut = match (&network, options.fault) {
            (Some(network), Fault::Partition) => {
                let ip = cluster.node(&leader_node)?.address.ip();
                let i = network.plan().node_of(ip).ok_or(Error::BadSpec(
                    "every namenode has an address of the network plan",
                ))?;
                Some((network, i))
            }
            _ => None,
        };

        let t0 = Instant::now();
        match (options.fault, cut) {
            (Fault::Partition, Some((network, i))) => network.cut(i)?,
            (Fault::Kill, _) => cluster.kill_node(&leader_node)?,
            (Fault::Pause | Fault::Partition, _) => cluster.pause_node(&leader_node)?,
        }
        let dfs_mkdir = spawn_dfs_mkdir(
            &cluster,
            &user,
            &format!("/bench-failover/cli{trial}"),
            plan.map(NetPlan::client_ns).as_deref(),
            t0,
        )?;
        let path = format!("/bench-failover/t{trial}");
        // A frozen or cut-off leader answers no poll: asking it would cost
        // each poll its whole timeout (0.5 s) and round the election up to
        // that. The others still hold a quorum.
        let polled: Vec<SocketAddr> = match options.fault {
            Fault::Kill => namenodes.clone(),
            Fault::Pause | Fault::Partition => namenodes
                .iter()
                .copied()
                .filter(|a| a.to_string() != leader)
                .collect(),
        };
        let (write_gap, election) = runtime.block_on(async {
            tokio::join!(first_write(&client, &path, t0), async {
                ensemble::wait_for_leader(
                    &polled,
                    quorum,
                    Some(&leader),
                    &user,
                    TRIAL_TIMEOUT,
                    POLL,
                )
                .await
                .map(|new_leader| (new_leader, t0.elapsed()))
                .map_err(no_leader)
            })
        });
        let write_gap = write_gap?;
        let (new_leader, election) = election?;
        let dfs_mkdir = dfs_mkdir.join().map_err(|_| {
            client_error("dfs mkdir")(dfs_client::Error::Usage("panicked".into()))
        })??;

        let restarted = Instant::now();
        let address = match (options.fault, cut) {
            (Fault::Kill, _) => cluster.start_node(&leader_node)?,
            (Fault::Partition, Some((network, i))) => {
                network.heal(i)?;
                cluster.node(&leader_node)?.address
            }
            (Fault::Pause | Fault::Partition, _) => {
                cluster.resume_node(&leader_node)?;
                cluster.node(&leader_node)?.address
            }
        };
        let follows = runtime.block_on(ensemble::wait_following(
            &namenodes,
            address,
            quorum,
            TRIAL_TIMEOUT,
            POLL,
        ));
        if !follows {
            return Err(Error::NoLeader {
                timeout: TRIAL_TIMEOUT,
                last: format!("{leader_node} did not follow again after its restart"),
            });
        }
        let rejoin = restarted.elapsed();
        say(
            out,
            &format!(
                "  trial {trial}/{}: {} {leader_node}; {} leads after {}; first mkdir after {}; \
                 dfs mkdir after {}; {leader_node} follows {} after it is back",
                options.trials,
                options.fault.verb(),
                node_at(&cluster, &new_leader)?,
                secs(election),
                secs(write_gap),
                secs(dfs_mkdir),
                secs(rejoin),
            ),
        )?;
        trials.push(Trial {
            election,
            write_gap,
            dfs_mkdir,
            rejoin,
        });
    }
    say(out, &render(options.namenodes, options.fault, &trials))
}

/// Runs `dfs mkdir path` (the binary, the cluster's client config, default
/// settings; inside the network namespace `netns` if given) on a thread; it
/// yields the time from `t0` until the command succeeded.
fn spawn_dfs_mkdir(
    cluster: &Cluster,
    user: &str,
    path: &str,
    netns: Option<&str>,
    t0: Instant,
) -> Result<std::thread::JoinHandle<Result<Duration, Error>>, Error> {
    let mut command = Command::new(&cluster.binaries().dfs);
    command
        .env("DFS_CONFIG", cluster.layout().client_config())
        .env("DFS_USER", user)
        .env_remove("RUST_LOG")
        .args(["mkdir", path])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(ns) = netns {
        netns::exec_in(&mut command, ns)?;
    }
    Ok(std::thread::spawn(move || {
        let out = command
            .output()
            .map_err(Error::io("running", "dfs mkdir"))?;
        if !out.status.success() {
            return Err(client_error("dfs mkdir after the fault")(
                dfs_client::Error::Usage(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
            ));
        }
        Ok(t0.elapsed())
    }))
}

/// Retries `mkdir path` (each call failing over on its own) until it
/// succeeds; returns the time since `t0`.
async fn first_write(client: &DfsClient, path: &str, t0: Instant) -> Result<Duration, Error> {
    loop {
        match client.mkdirs(path, false).await {
            Ok(()) => return Ok(t0.elapsed()),
            Err(e) if t0.elapsed() >= TRIAL_TIMEOUT => {
                return Err(client_error("mkdir after the kill")(e));
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// The report: p50, p99 and max of each figure over the trials.
fn render(namenodes: usize, fault: Fault, trials: &[Trial]) -> String {
    let mut text = format!(
        "\ndfs-cluster bench failover: {namenodes} namenodes, {} trial(s), {} of the leader each\n\
         {:<44} {:>9} {:>9} {:>9}\n",
        trials.len(),
        fault.verb(),
        "",
        "p50",
        "p99",
        "max"
    );
    let figure = |f: fn(&Trial) -> Duration| -> Vec<f64> {
        trials.iter().map(|t| f(t).as_secs_f64()).collect()
    };
    let rows = [
        (
            "new leader elected (after the fault)",
            figure(|t| t.election),
        ),
        (
            "first mkdir succeeds (after the fault)",
            figure(|t| t.write_gap),
        ),
        (
            "`dfs mkdir` succeeds (new process, after)",
            figure(|t| t.dfs_mkdir),
        ),
        ("old leader follows (once it is back)", figure(|t| t.rejoin)),
    ];
    for (name, values) in rows {
        let cell =
            |p: f64| percentile(&values, p).map_or_else(|| "-".to_owned(), |v| format!("{v:.3} s"));
        text.push_str(&format!(
            "{name:<44} {:>9} {:>9} {:>9}\n",
            cell(0.5),
            cell(0.99),
            cell(1.0)
        ));
    }
    text
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// The name of the namenode listening on `address`.
fn node_at(cluster: &Cluster, address: &str) -> Result<String, Error> {
    cluster
        .nodes()
        .iter()
        .find(|n| n.address.to_string() == address)
        .map(|n| n.name.to_string())
        .ok_or_else(|| Error::UnknownNode {
            name: address.to_owned(),
            known: cluster.nodes().iter().map(|n| n.name.clone()).collect(),
        })
}

fn no_leader(reports: Vec<dfs_client::PeerReport>) -> Error {
    Error::NoLeader {
        timeout: TRIAL_TIMEOUT,
        last: ensemble::describe(&reports),
    }
}

fn client_error(op: &'static str) -> impl FnOnce(dfs_client::Error) -> Error {
    move |e| Error::Client {
        op,
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_gives_p50_p99_and_max_of_each_figure() {
        let trial = |ms: u64| Trial {
            election: Duration::from_millis(ms),
            write_gap: Duration::from_millis(ms + 100),
            dfs_mkdir: Duration::from_millis(ms + 200),
            rejoin: Duration::from_millis(50),
        };
        let text = render(3, Fault::Pause, &[trial(300), trial(100), trial(200)]);
        assert!(text.contains("SIGSTOP of the leader"), "{text}");
        assert!(text.contains("3 namenodes, 3 trial(s)"), "{text}");
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} in {text}"))
                .split_whitespace()
                .rev()
                .skip(1)
                .step_by(2)
                .take(3)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        // Read from the right, skipping the units: max, p99, p50.
        assert_eq!(line("new leader"), ["0.300", "0.300", "0.200"]);
        assert_eq!(line("first mkdir"), ["0.400", "0.400", "0.300"]);
        assert_eq!(line("`dfs mkdir`"), ["0.500", "0.500", "0.400"]);
        assert_eq!(line("old leader"), ["0.050", "0.050", "0.050"]);
    }
}
