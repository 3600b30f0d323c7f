//! `dfs-cluster bench mkdirs`: what replication costs the metadata path, as
//! the mkdir rate of an ensemble against a single namenode in the same run.
//!
//! ```text
//! clusters: 1 namenode, and N namenodes (an ensemble, default 3); no datanodes
//! per run, alternating: `dfs bench mkdirs --json` against the single namenode,
//!                       then against the ensemble (its leader, via failover)
//!   (each also measures the local fsync rate in the cluster's directory)
//! report: median mkdirs/s of each, ensemble / single, and mkdirs per fsync
//! ```
//!
//! A single namenode acknowledges a mkdir after one local fsync; the
//! ensemble's leader only once a quorum has fsynced it, all on this one disk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::report::median;
use super::{in_work_dir, say};
use crate::Error;
use crate::binaries::Binaries;
use crate::cluster::Cluster;
use crate::node::{NodeName, Role};
use crate::process::SpawnMode;
use crate::spec::ClusterSpec;

/// What to measure and where.
#[derive(Debug, Clone)]
pub struct MkdirsOptions {
    /// Concurrent clients of each `dfs bench mkdirs` run.
    pub clients: usize,
    /// Mkdirs per run, across all clients.
    pub count: usize,
    /// Runs against each cluster; the report gives the median.
    pub runs: usize,
    /// Namenodes of the ensemble (at least 2).
    pub namenodes: usize,
    /// Working directory (must be empty or missing); a fresh one under the
    /// system temp dir if `None`.
    pub dir: Option<PathBuf>,
    /// Keep the working directory (clusters, logs) afterwards.
    pub keep: bool,
}

/// One `dfs bench mkdirs` run's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Run {
    mkdirs_per_sec: f64,
    fsyncs_per_sec: f64,
}

/// Runs the comparison and writes progress and the report to `out`.
///
/// # Errors
/// A cluster does not start or a `dfs bench mkdirs` run fails; the working
/// directory is then kept for its logs.
pub fn run(options: &MkdirsOptions, binaries: Binaries, out: &mut impl Write) -> Result<(), Error> {
    if options.runs == 0 || options.clients == 0 || options.count == 0 {
        return Err(Error::BadSpec(
            "bench mkdirs needs --runs, --clients and --count ≥ 1",
        ));
    }
    if options.namenodes < 2 {
        return Err(Error::BadSpec(
            "bench mkdirs compares an ensemble of at least 2 namenodes with 1",
        ));
    }
    binaries.check()?;
    in_work_dir(
        options.dir.as_deref(),
        "dfs-bench-mkdirs",
        options.keep,
        out,
        |work, out| measure(options, &binaries, work, out),
    )
}

fn measure(
    options: &MkdirsOptions,
    binaries: &Binaries,
    work: &Path,
    out: &mut impl Write,
) -> Result<(), Error> {
    let start = |name: &str, namenodes: usize| -> Result<Cluster, Error> {
        let spec = ClusterSpec {
            namenodes,
            racks: Vec::new(),
            ..ClusterSpec::default()
        };
        let mut cluster =
            Cluster::create(&work.join(name), &spec, binaries.clone(), SpawnMode::Child)?;
        cluster.start_all()?;
        Ok(cluster)
    };
    say(
        out,
        &format!(
            "starting 1 namenode and an ensemble of {} (no datanodes) in {}",
            options.namenodes,
            work.display()
        ),
    )?;
    let single = start("single", 1)?;
    let ensemble = start("ensemble", options.namenodes)?;

    let (mut single_runs, mut ensemble_runs) = (Vec::new(), Vec::new());
    for run in 1..=options.runs {
        let one = bench_mkdirs(&single, options)?;
        let many = bench_mkdirs(&ensemble, options)?;
        say(
            out,
            &format!(
                "  run {run}/{}: 1 namenode {:.0} mkdirs/s, {} namenodes {:.0} mkdirs/s",
                options.runs, one.mkdirs_per_sec, options.namenodes, many.mkdirs_per_sec
            ),
        )?;
        single_runs.push(one);
        ensemble_runs.push(many);
    }
    say(out, &render(options, &single_runs, &ensemble_runs))
}

/// `dfs bench mkdirs --json` against `cluster`, its fsync baseline taken in
/// the first namenode's data directory.
fn bench_mkdirs(cluster: &Cluster, options: &MkdirsOptions) -> Result<Run, Error> {
    let baseline_dir = cluster
        .layout()
        .node_data(&NodeName::new(Role::Namenode, 1));
    let args = [
        "bench".to_owned(),
        "mkdirs".to_owned(),
        "--clients".to_owned(),
        options.clients.to_string(),
        "--count".to_owned(),
        options.count.to_string(),
        "--json".to_owned(),
    ];
    let command = format!(
        "dfs {} --baseline-dir {}",
        args.join(" "),
        baseline_dir.display()
    );
    let output = Command::new(&cluster.binaries().dfs)
        .arg("--config")
        .arg(cluster.layout().client_config())
        .arg("--user")
        .arg(cluster.superuser())
        .args(&args)
        .arg("--baseline-dir")
        .arg(&baseline_dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::RunCommand {
            command: command.clone(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let failed = |why: String| Error::CommandFailed {
        command: command.clone(),
        status: output.status.to_string(),
        stderr: format!("{why}\n{}", String::from_utf8_lossy(&output.stderr)),
    };
    if !output.status.success() {
        return Err(failed(String::new()));
    }
    parse_run(&stdout).ok_or_else(|| failed(format!("unexpected output: {stdout}")))
}

/// Reads `mkdirs_per_sec` and `fsyncs_per_sec` from `dfs bench mkdirs --json`.
fn parse_run(json: &str) -> Option<Run> {
    let doc: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
    Some(Run {
        mkdirs_per_sec: doc["mkdirs_per_sec"].as_f64()?,
        fsyncs_per_sec: doc["fsyncs_per_sec"].as_f64()?,
    })
}

fn render(options: &MkdirsOptions, single: &[Run], ensemble: &[Run]) -> String {
    let rates = |runs: &[Run]| runs.iter().map(|r| r.mkdirs_per_sec).collect::<Vec<_>>();
    let fsyncs: Vec<f64> = single
        .iter()
        .chain(ensemble)
        .map(|r| r.fsyncs_per_sec)
        .collect();
    let (one, many, fsync) = (
        median(&rates(single)),
        median(&rates(ensemble)),
        median(&fsyncs),
    );
    let rate = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}/s"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".to_owned(),
    };
    let runs = |runs: &[Run]| {
        runs.iter()
            .map(|r| format!("{:.0}", r.mkdirs_per_sec))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "\ndfs-cluster bench mkdirs: {} clients, {} mkdirs per run, median of {} run(s)\n\
         {:<34} {:>10}   per fsync {:>5}   runs: {}\n\
         {:<34} {:>10}   per fsync {:>5}   runs: {}\n\
         {:<34} {:>10}\n\
         {:<34} {:>10}\n",
        options.clients,
        options.count,
        single.len(),
        "1 namenode",
        rate(one),
        ratio(one, fsync),
        runs(single),
        format!("{} namenodes (quorum writes)", options.namenodes),
        rate(many),
        ratio(many, fsync),
        runs(ensemble),
        "local fsync baseline",
        rate(fsync),
        "ensemble / single",
        ratio(many, one),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dfs_bench_mkdirs_json_is_read() {
        let json = r#"{"clients":16,"mkdirs":20000,"mkdirs_per_sec":1500.5,"fsyncs_per_sec":700.0,"mkdirs_per_fsync":2.1}"#;
        assert_eq!(
            parse_run(json),
            Some(Run {
                mkdirs_per_sec: 1500.5,
                fsyncs_per_sec: 700.0
            })
        );
        assert_eq!(parse_run("mkdirs: 16 clients"), None);
    }

    #[test]
    fn the_report_gives_medians_and_the_ensemble_to_single_ratio() {
        let options = MkdirsOptions {
            clients: 16,
            count: 1000,
            runs: 3,
            namenodes: 3,
            dir: None,
            keep: false,
        };
        let run = |mkdirs_per_sec| Run {
            mkdirs_per_sec,
            fsyncs_per_sec: 1000.0,
        };
        let text = render(
            &options,
            &[run(2000.0), run(1800.0), run(2200.0)],
            &[run(1000.0), run(900.0), run(1100.0)],
        );
        assert!(text.contains("median of 3 run(s)"), "{text}");
        let line = |start: &str| {
            text.lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no {start} in {text}"))
                .to_owned()
        };
        assert!(line("1 namenode").contains("2000/s"), "{text}");
        assert!(line("1 namenode").contains("per fsync  2.00"), "{text}");
        assert!(line("3 namenodes").contains("1000/s"), "{text}");
        assert!(line("ensemble / single").ends_with("0.50"), "{text}");
    }
}
