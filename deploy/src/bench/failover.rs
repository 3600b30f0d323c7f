//! `dfs-cluster bench failover`: how long writes stop when the leading
//! namenode dies.
//!
//! ```text
//! cluster: N namenodes (an ensemble, default 3), no datanodes, the real binaries
//! per trial: wait for an established leader; one mkdir through a long-lived
//!            client, so that it talks to the leader as an application would
//!            t0; kill -9 the leader; then, concurrently from t0:
//!              the client's next mkdir, failing over until it succeeds ──► write gap
//!              GetPeerStatus every 10 ms until another namenode leads ────► election
//!            restart the killed namenode; time until it follows again ──► rejoin
//! report: p50 / p99 / max of each
//! ```
//!
//! The write gap is what a client sees: the election plus the client's
//! failover backoff (50 ms doubling to 1 s, jittered) and its first request
//! to the new leader.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dfs_client::{ClientConfig, DfsClient};

use super::report::percentile;
use super::{in_work_dir, say};
use crate::Error;
use crate::binaries::Binaries;
use crate::cluster::Cluster;
use crate::ensemble;
use crate::process::SpawnMode;
use crate::spec::ClusterSpec;

/// How often the election is polled during a trial.
const POLL: Duration = Duration::from_millis(10);
/// Bound on an election, a write gap or a rejoin before the trial fails.
const TRIAL_TIMEOUT: Duration = Duration::from_secs(60);

/// What to measure and where.
#[derive(Debug, Clone)]
pub struct FailoverOptions {
    /// Leader kills.
    pub trials: usize,
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
    let spec = ClusterSpec {
        namenodes: options.namenodes,
        racks: Vec::new(),
        ..ClusterSpec::default()
    };
    let quorum = options.namenodes / 2 + 1;
    let mut cluster = Cluster::create(&work.join("cluster"), &spec, binaries, SpawnMode::Child)?;
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
    let client = {
        // The client's lazy channels spawn their tasks on the current runtime.
        let _entered = runtime.enter();
        DfsClient::connect(&config, Some(cluster.superuser()))
            .map_err(client_error("connecting"))?
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
                TRIAL_TIMEOUT,
                POLL,
            ))
            .map_err(no_leader)?;
        let leader_node = node_at(&cluster, &leader)?;
        // One write first, so the client's active namenode is the leader.
        runtime
            .block_on(client.mkdirs(&format!("/bench-failover/warm{trial}"), false))
            .map_err(client_error("mkdir before the kill"))?;

        let t0 = Instant::now();
        cluster.kill_node(&leader_node)?;
        let path = format!("/bench-failover/t{trial}");
        let (write_gap, election) = runtime.block_on(async {
            tokio::join!(
                first_write(&client, &path, t0),
                new_leader(&namenodes, quorum, &leader, t0),
            )
        });
        let write_gap = write_gap?;
        let (new_leader, election) = election?;

        let restarted = Instant::now();
        let address = cluster.start_node(&leader_node)?;
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
                "  trial {trial}/{}: killed {leader_node}; {} leads after {}; first mkdir after {}; \
                 {leader_node} follows {} after its restart",
                options.trials,
                node_at(&cluster, &new_leader)?,
                secs(election),
                secs(write_gap),
                secs(rejoin),
            ),
        )?;
        trials.push(Trial {
            election,
            write_gap,
            rejoin,
        });
    }
    say(out, &render(options.namenodes, &trials))
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

/// Polls until a namenode other than `old` leads a quorum; returns its
/// address and the time since `t0`.
async fn new_leader(
    namenodes: &[SocketAddr],
    quorum: usize,
    old: &str,
    t0: Instant,
) -> Result<(String, Duration), Error> {
    loop {
        let reports = ensemble::ask(namenodes).await;
        if let Some(leader) = ensemble::established_leader(&reports, quorum)
            && leader.address != old
        {
            return Ok((leader.address.clone(), t0.elapsed()));
        }
        if t0.elapsed() >= TRIAL_TIMEOUT {
            return Err(no_leader(reports));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The report: p50, p99 and max of each figure over the trials.
fn render(namenodes: usize, trials: &[Trial]) -> String {
    let mut text = format!(
        "\ndfs-cluster bench failover: {namenodes} namenodes, {} trial(s), kill -9 of the leader each\n\
         {:<44} {:>9} {:>9} {:>9}\n",
        trials.len(),
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
            "new leader elected (after the kill)",
            figure(|t| t.election),
        ),
        (
            "first mkdir succeeds (after the kill)",
            figure(|t| t.write_gap),
        ),
        (
            "killed namenode follows (after its restart)",
            figure(|t| t.rejoin),
        ),
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
            rejoin: Duration::from_millis(50),
        };
        let text = render(3, &[trial(300), trial(100), trial(200)]);
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
        assert_eq!(line("killed namenode"), ["0.050", "0.050", "0.050"]);
    }
}
