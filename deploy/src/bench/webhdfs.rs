//! `dfs-cluster bench webhdfs`: a put and a get of one file over WebHDFS
//! with curl, through the namenode's 307 redirect to a datanode, against
//! `dfs put` and `dfs cat` of the same file in the same run.
//!
//! ```text
//! source file (size bytes, written once, cached)
//! cluster: 1 namenode, N datanodes (replication 3), the real binaries
//! per run, alternating: `dfs put -f source /bench/dfs`
//!                       `curl -L -T source  NN/webhdfs/v1/bench/web?op=CREATE&overwrite=true`
//! per run, warm:        `dfs cat /bench/dfs > /dev/null`
//!                       `curl -L -o /dev/null NN/webhdfs/v1/bench/web?op=OPEN`
//! report: median MiB/s of each, WebHDFS / dfs
//! ```
//!
//! Both sides write the same three replicas through the same pipeline; the
//! WebHDFS side adds the redirect, HTTP and the datanode's own client.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::report::{Comparison, fmt_size, mib_per_sec, numbered};
use super::{REPLICATION, disk, in_work_dir, say, timed};
use crate::Error;
use crate::binaries::Binaries;
use crate::cluster::Cluster;
use crate::node::Role;
use crate::process::SpawnMode;
use crate::spec::ClusterSpec;

/// What WebHDFS should reach of our own client's throughput.
const WEBHDFS_TARGET: f64 = 0.8;

/// What to measure and where.
#[derive(Debug, Clone)]
pub struct WebhdfsOptions {
    /// Bytes of the file put and read.
    pub size: u64,
    /// Runs of each figure; the median is reported.
    pub runs: usize,
    /// Datanodes (at least 3).
    pub datanodes: usize,
    /// Working directory (must be empty or missing); a fresh one under the
    /// system temp dir if `None`.
    pub dir: Option<PathBuf>,
    /// Keep the working directory (cluster, logs) afterwards.
    pub keep: bool,
}

/// Runs the comparison and writes progress and the report to `out`.
///
/// # Errors
/// The cluster does not start, or a `dfs` or `curl` command fails; the
/// working directory is then kept for its logs.
pub fn run(
    options: &WebhdfsOptions,
    binaries: Binaries,
    out: &mut impl Write,
) -> Result<(), Error> {
    if options.runs == 0 || options.size == 0 {
        return Err(Error::BadSpec(
            "bench webhdfs needs --runs ≥ 1 and --size > 0",
        ));
    }
    if options.datanodes < REPLICATION as usize {
        return Err(Error::BadSpec("bench webhdfs needs at least 3 datanodes"));
    }
    binaries.check()?;
    in_work_dir(
        options.dir.as_deref(),
        "dfs-bench-webhdfs",
        options.keep,
        out,
        |work, out| measure(options, binaries, work, out),
    )
}

fn measure(
    options: &WebhdfsOptions,
    binaries: Binaries,
    work: &Path,
    out: &mut impl Write,
) -> Result<(), Error> {
    let source = work.join("source.bin");
    say(
        out,
        &format!(
            "writing the {} source file {}",
            fmt_size(options.size),
            source.display()
        ),
    )?;
    disk::write_file(&source, options.size, &disk::write_pattern())
        .map_err(Error::io("writing", &source))?;
    let spec = ClusterSpec {
        racks: ClusterSpec::spread(options.datanodes, 2),
        replication: Some(REPLICATION),
        heartbeat_interval: Duration::from_secs(1),
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::create(&work.join("cluster"), &spec, binaries, SpawnMode::Child)?;
    say(
        out,
        &format!(
            "starting 1 namenode and {} datanodes in {}",
            options.datanodes,
            cluster.layout().dir().display()
        ),
    )?;
    cluster.start_all()?;
    let bench = WebBench::new(&cluster, source)?;
    bench.dfs(&["mkdir", "-p", "/bench"])?;

    let (size, runs) = (options.size, options.runs);
    let (mut put, mut web_put) = (Vec::new(), Vec::new());
    say(
        out,
        "phase put: dfs put, then curl PUT through the redirect, per run",
    )?;
    for run in 1..=runs {
        put.push(mib_per_sec(size, bench.dfs_put()?));
        web_put.push(mib_per_sec(size, bench.curl_put()?));
        say(
            out,
            &format!(
                "  run {run}/{runs}: dfs put {:.0} MiB/s, webhdfs {:.0} MiB/s",
                put[run - 1],
                web_put[run - 1]
            ),
        )?;
    }
    bench.check_length("/bench/web", size)?;
    let (mut get, mut web_get) = (Vec::new(), Vec::new());
    say(
        out,
        "phase get (warm): dfs cat, then curl GET through the redirect, per run",
    )?;
    for run in 1..=runs {
        get.push(mib_per_sec(size, bench.dfs(&["cat", "/bench/dfs"])?));
        web_get.push(mib_per_sec(size, bench.curl_get()?));
        say(
            out,
            &format!(
                "  run {run}/{runs}: dfs cat {:.0} MiB/s, webhdfs {:.0} MiB/s",
                get[run - 1],
                web_get[run - 1]
            ),
        )?;
    }
    let size_text = fmt_size(size);
    let comparisons = [
        Comparison {
            name: format!("webhdfs put {size_text} (curl -L -T, 307 to a datanode)"),
            runs: web_put,
            baseline_name: format!("dfs put {size_text}"),
            baseline_runs: put,
            target: WEBHDFS_TARGET,
        },
        Comparison {
            name: format!("webhdfs get {size_text} (curl -L, 307 to a datanode)"),
            runs: web_get,
            baseline_name: format!("dfs cat {size_text} > /dev/null"),
            baseline_runs: get,
            target: WEBHDFS_TARGET,
        },
    ];
    let mut text = format!(
        "\ndfs-cluster bench webhdfs: {size_text}, median of {runs} run(s), {} datanodes, replication {REPLICATION}, warm cache\n",
        options.datanodes
    );
    text.push_str(&numbered(&comparisons));
    say(out, &text)
}

/// The commands each run times.
struct WebBench<'a> {
    cluster: &'a Cluster,
    source: PathBuf,
    /// `http://IP:PORT/webhdfs/v1` of the namenode.
    webhdfs: String,
    user: String,
}

impl<'a> WebBench<'a> {
    fn new(cluster: &'a Cluster, source: PathBuf) -> Result<Self, Error> {
        let namenode = cluster
            .nodes()
            .iter()
            .find(|n| n.role == Role::Namenode)
            .and_then(|n| n.http_url())
            .ok_or(Error::BadSpec("the namenode has no http_address"))?;
        Ok(WebBench {
            cluster,
            source,
            webhdfs: format!("{namenode}/webhdfs/v1"),
            user: cluster.superuser(),
        })
    }

    fn dfs_put(&self) -> Result<Duration, Error> {
        let source = self.source.to_string_lossy().into_owned();
        self.dfs(&["put", "-f", &source, "/bench/dfs"])
    }

    fn curl_put(&self) -> Result<Duration, Error> {
        let url = format!(
            "{}/bench/web?op=CREATE&overwrite=true&user.name={}",
            self.webhdfs, self.user
        );
        let source = self.source.to_string_lossy().into_owned();
        curl(&["-T", &source, &url])
    }

    fn curl_get(&self) -> Result<Duration, Error> {
        let url = format!("{}/bench/web?op=OPEN&user.name={}", self.webhdfs, self.user);
        curl(&[&url])
    }

    /// `dfs ARGS` against the cluster, stdout to /dev/null.
    fn dfs(&self, args: &[&str]) -> Result<Duration, Error> {
        timed(
            Command::new(&self.cluster.binaries().dfs)
                .arg("--config")
                .arg(self.cluster.layout().client_config())
                .args(args),
            format!("dfs {}", args.join(" ")),
        )
    }

    /// Fails unless `path` holds `size` bytes: a WebHDFS put that wrote
    /// less would make its rate a lie.
    fn check_length(&self, path: &str, size: u64) -> Result<(), Error> {
        let output = Command::new(&self.cluster.binaries().dfs)
            .arg("--config")
            .arg(self.cluster.layout().client_config())
            .args(["stat", "--json", path])
            .output()
            .map_err(|source| Error::RunCommand {
                command: format!("dfs stat --json {path}"),
                source,
            })?;
        let text = String::from_utf8_lossy(&output.stdout);
        let length = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                let entry = if v.is_array() {
                    v.get(0).cloned()
                } else {
                    Some(v)
                };
                entry?.get("length")?.as_u64()
            });
        if length == Some(size) {
            return Ok(());
        }
        Err(Error::CommandFailed {
            command: format!("dfs stat --json {path}"),
            status: format!("length {length:?}, expected {size}"),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// `curl ARGS`, following the redirect, failing on an HTTP error; timed.
fn curl(args: &[&str]) -> Result<Duration, Error> {
    const FLAGS: [&str; 5] = ["-sS", "-f", "-L", "-o", "/dev/null"];
    timed(
        Command::new("curl").args(FLAGS).args(args),
        format!("curl {} {}", FLAGS.join(" "), args.join(" ")),
    )
}
