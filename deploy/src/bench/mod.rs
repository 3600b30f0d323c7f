//! `dfs-cluster bench`: the data path's throughput on a local cluster, each
//! figure against a baseline measured in the same run on the same machine
//! (other work on the machine moves both, the ratio less).
//!
//! ```text
//! source file (size bytes, written once, cached)
//! cluster: 1 namenode, N datanodes (replication 3), the real binaries
//! phase put:      per run: disk ceiling (3 writers + fsync, in the cluster's dir)
//!                          then `dfs put -f source /bench/file`
//! phase get:      one untimed round (a VM host's cache stays warm), then
//!                 per run: drop caches, `cat source > /dev/null`
//!                          drop caches, `dfs cat /bench/file > /dev/null`
//! phase tokens, get: per run, every node restarted with
//!                 `block_access_token_enable` off then on (or on then off):
//!                 a warm `dfs cat` after each (one untimed first)
//! phase pipeline: datanodes restarted with `discard_data = true`
//!                 per run: raw 3-hop TCP relay with CRC32C (relay.rs)
//!                          then `dfs put -f source /bench/discarded`
//! phase tokens, put: as phase tokens, get, with `dfs put -f` to /bench/discarded
//!
//! The token phases avoid the disk (page cache, discard_data) and alternate
//! on and off within each run: what is left to differ is the token work.
//! report: median MiB/s of each, the ratio of medians, datanode VmHWM per phase
//! ```
//!
//! The files put with `discard_data` cannot be read back: their replicas
//! keep no data.
//!
//! Two more benchmarks measure the namenode ensemble:
//! [`failover`] (`dfs-cluster bench failover`: the write gap after kill -9
//! of the leader) and [`mkdirs`] (`dfs-cluster bench mkdirs`: the mkdir rate
//! of an ensemble against a single namenode). [`webhdfs`] (`dfs-cluster
//! bench webhdfs`) compares WebHDFS through curl with `dfs put` and `dfs cat`.

mod disk;
pub mod failover;
pub mod mkdirs;
mod relay;
mod report;
pub mod webhdfs;

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Sizes read as `dfs put --block-size` reads them (`64MiB`, `1G`, plain bytes).
pub use dfs_client::cli::parse_size;

use crate::Error;
use crate::binaries::Binaries;
use crate::cluster::Cluster;
use crate::layout::{Layout, set_config_keys};
use crate::node::{NodeName, Role};
use crate::process::SpawnMode;
use crate::spec::ClusterSpec;
use disk::CacheDrop;
use report::{Comparison, fmt_size, mib_per_sec};

/// A token phase's runs: MiB/s and MiB per CPU-second, tokens on and off.
#[derive(Debug, Default)]
struct TokenRuns {
    on: Vec<f64>,
    off: Vec<f64>,
    on_cpu: Vec<f64>,
    off_cpu: Vec<f64>,
}

impl TokenRuns {
    /// Tokens on against tokens off: by wall clock, then by CPU used (the
    /// steadier figure on a shared machine: others' load moves it less).
    fn compare(self, what: &str) -> [Comparison; 2] {
        [
            Comparison {
                name: format!("{what}, block tokens on"),
                runs: self.on,
                baseline_name: "the same, block tokens off".to_owned(),
                baseline_runs: self.off,
                target: TOKENS_TARGET,
            },
            Comparison {
                name: format!("{what}, tokens on: MiB per CPU-second"),
                runs: self.on_cpu,
                baseline_name: "the same, tokens off (all nodes + client)".to_owned(),
                baseline_runs: self.off_cpu,
                target: TOKENS_TARGET,
            },
        ]
    }
}

/// utime + stime (+ cutime + cstime with `children`) of `/proc/PID/stat`, in ticks.
fn proc_stat_ticks(pid: &str, children: bool) -> Result<u64, Error> {
    let path = PathBuf::from(format!("/proc/{pid}/stat"));
    let text = fs::read_to_string(&path).map_err(Error::io("reading", &path))?;
    Ok(stat_ticks(&text, children))
}

/// The CPU ticks in the text of a `/proc/PID/stat`.
fn stat_ticks(stat: &str, children: bool) -> u64 {
    // Fields after the command name (which may hold spaces) in parentheses:
    // state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after
        .split_whitespace()
        .skip(11)
        .take(if children { 4 } else { 2 })
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum()
}

/// Replicas of every file the benchmark writes.
const REPLICATION: u32 = 3;
/// Hops of the raw relay: one per replica.
const RELAY_HOPS: usize = 3;
/// Targets from the issue, as ratios to the baselines.
const PUT_TARGET: f64 = 0.60;
const GET_TARGET: f64 = 0.70;
const PIPELINE_TARGET: f64 = 0.45;
/// What block access tokens may cost a put or a get (issue 9: at most 3 %).
const TOKENS_TARGET: f64 = 0.97;

/// What to measure and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bytes of the file put and read (and of each baseline).
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

/// Runs the benchmark and writes progress and the report to `out`.
///
/// # Errors
/// The cluster does not start, a command fails, or a baseline's I/O fails;
/// the working directory is then kept for its logs.
pub fn run(options: &Options, binaries: Binaries, out: &mut impl Write) -> Result<(), Error> {
    if options.runs == 0 || options.size == 0 {
        return Err(Error::BadSpec("bench needs --runs ≥ 1 and --size > 0"));
    }
    if options.datanodes < REPLICATION as usize {
        return Err(Error::BadSpec("bench needs at least 3 datanodes"));
    }
    binaries.check()?;
    in_work_dir(
        options.dir.as_deref(),
        "dfs-bench",
        options.keep,
        out,
        |work, out| Bench::set_up(options, binaries, work, out).and_then(|mut b| b.run(out)),
    )
}

/// Runs `body` in a working directory: `dir`, which must be empty or
/// missing, or a new `PREFIX-PID` under the system temp dir. The directory
/// is removed afterwards unless `keep`, and kept (and named) on failure.
fn in_work_dir<W: Write>(
    dir: Option<&Path>,
    prefix: &str,
    keep: bool,
    out: &mut W,
    body: impl FnOnce(&Path, &mut W) -> Result<(), Error>,
) -> Result<(), Error> {
    let dir = dir.map_or_else(
        || std::env::temp_dir().join(format!("{prefix}-{}", std::process::id())),
        Path::to_owned,
    );
    let layout = Layout::new(&dir)?;
    if !layout.is_empty()? {
        return Err(Error::DirNotEmpty {
            dir: layout.dir().to_owned(),
        });
    }
    let work = layout.dir().to_owned();
    fs::create_dir_all(&work).map_err(Error::io("creating directory", &work))?;
    let result = body(&work, out);
    match &result {
        Ok(()) if !keep => {
            fs::remove_dir_all(&work).map_err(Error::io("removing", &work))?;
        }
        _ => say(out, &format!("working directory kept: {}", work.display()))?,
    }
    result
}

struct Bench {
    options: Options,
    cluster: Cluster,
    work: PathBuf,
    source: PathBuf,
    cache: CacheDrop,
    write_pattern: Vec<u8>,
}

/// Peak RSS (VmHWM, KiB) of each datanode during one phase.
type Peaks = Vec<(NodeName, Option<u64>)>;

impl Bench {
    fn set_up(
        options: &Options,
        binaries: Binaries,
        work: &Path,
        out: &mut impl Write,
    ) -> Result<Bench, Error> {
        let write_pattern = disk::write_pattern();
        let source = work.join("source.bin");
        say(
            out,
            &format!(
                "writing the {} source file {}",
                fmt_size(options.size),
                source.display()
            ),
        )?;
        disk::write_file(&source, options.size, &write_pattern)
            .map_err(Error::io("writing", &source))?;
        let spec = ClusterSpec {
            racks: ClusterSpec::spread(options.datanodes, 2),
            replication: Some(REPLICATION),
            heartbeat_interval: Duration::from_secs(1),
            stale_after: Duration::from_secs(30),
            ..ClusterSpec::default()
        };
        let mut cluster =
            Cluster::create(&work.join("cluster"), &spec, binaries, SpawnMode::Child)?;
        say(
            out,
            &format!(
                "starting 1 namenode and {} datanodes in {}",
                options.datanodes,
                cluster.layout().dir().display()
            ),
        )?;
        cluster.start_all()?;
        let cache = CacheDrop::detect();
        Ok(Bench {
            options: options.clone(),
            cluster,
            work: work.to_owned(),
            source,
            cache,
            write_pattern,
        })
    }

    fn run(&mut self, out: &mut impl Write) -> Result<(), Error> {
        let (size, runs) = (self.options.size, self.options.runs);
        self.dfs(&["mkdir", "-p", "/bench"])?;
        let client_source = self.source.clone().into_os_string();

        say(out, "phase put: disk ceiling, then put, per run")?;
        self.reset_peaks();
        let (mut ceiling, mut put) = (Vec::new(), Vec::new());
        for run in 1..=runs {
            let elapsed = disk::write_ceiling(&self.work, size, &self.write_pattern)
                .map_err(Error::io("measuring the disk ceiling in", &self.work))?;
            ceiling.push(mib_per_sec(size, elapsed));
            let elapsed = self.put(&client_source, "/bench/file")?;
            put.push(mib_per_sec(size, elapsed));
            self.progress(out, run, &[("disk ceiling", &ceiling), ("put", &put)])?;
        }
        let put_peaks = self.peaks();

        say(
            out,
            "phase get: cold cat of the source, then cold dfs cat, per run",
        )?;
        // drop_caches empties this kernel's cache only: under a VM the host
        // may still cache the disk. One untimed round puts every timed run
        // in the same state (whatever the host keeps of these files).
        self.drop_caches()?;
        disk::time_cat(&self.source).map_err(Error::io("reading", &self.source))?;
        self.drop_caches()?;
        self.dfs(&["cat", "/bench/file"])?;
        self.reset_peaks();
        let (mut cat, mut get) = (Vec::new(), Vec::new());
        for run in 1..=runs {
            self.drop_caches()?;
            let elapsed =
                disk::time_cat(&self.source).map_err(Error::io("reading", &self.source))?;
            cat.push(mib_per_sec(size, elapsed));
            self.drop_caches()?;
            let elapsed = self.dfs(&["cat", "/bench/file"])?;
            get.push(mib_per_sec(size, elapsed));
            self.progress(out, run, &[("local cat", &cat), ("get", &get)])?;
        }
        let get_peaks = self.peaks();

        say(
            out,
            "phase tokens, get: warm dfs cat with block tokens on and off, alternating, per run",
        )?;
        let get_tokens = self
            .with_and_without_tokens(out, "warm get", |bench| bench.dfs(&["cat", "/bench/file"]))?
            .compare(&format!("get {}, warm", fmt_size(size)));

        say(
            out,
            "phase pipeline: datanodes restarted with discard_data = true; relay, then put, per run",
        )?;
        self.restart_datanodes_discarding()?;
        // The get phase dropped the source from the cache; the put phase had it cached.
        disk::time_cat(&self.source).map_err(Error::io("reading", &self.source))?;
        self.reset_peaks();
        let (mut raw, mut pipeline) = (Vec::new(), Vec::new());
        for run in 1..=runs {
            let relayed = relay::relay(size, RELAY_HOPS).map_err(|e| Error::Io {
                action: "relaying over loopback TCP",
                path: PathBuf::from("127.0.0.1"),
                source: e,
            })?;
            raw.push(mib_per_sec(size, relayed.elapsed));
            let elapsed = self.put(&client_source, "/bench/discarded")?;
            pipeline.push(mib_per_sec(size, elapsed));
            self.progress(
                out,
                run,
                &[("raw relay", &raw), ("put, no disk", &pipeline)],
            )?;
        }
        let pipeline_peaks = self.peaks();

        say(
            out,
            "phase tokens, put: put with discard_data, block tokens on and off, alternating, per run",
        )?;
        let put_tokens = self
            .with_and_without_tokens(out, "put, no disk", |bench| {
                bench.put(&client_source, "/bench/discarded")
            })?
            .compare(&format!("put {}, discard_data", fmt_size(size)));

        let size_text = fmt_size(size);
        let comparisons = [
            Comparison {
                name: format!("put {size_text}, 3 replicas"),
                runs: put,
                baseline_name: format!("disk ceiling: 3 writers × {size_text} + fsync, agg/3"),
                baseline_runs: ceiling,
                target: PUT_TARGET,
            },
            Comparison {
                name: format!("get {size_text} (dfs cat > /dev/null), cold"),
                runs: get,
                baseline_name: format!("cat {size_text} local file > /dev/null, cold"),
                baseline_runs: cat,
                target: GET_TARGET,
            },
            Comparison {
                name: format!("put {size_text}, 3 replicas, discard_data"),
                runs: pipeline,
                baseline_name: "raw 3-hop TCP relay, CRC32C at each hop".to_owned(),
                baseline_runs: raw,
                target: PIPELINE_TARGET,
            },
        ];
        let comparisons: Vec<Comparison> = comparisons
            .into_iter()
            .chain(put_tokens)
            .chain(get_tokens)
            .collect();
        let mut text = format!(
            "\ndfs-cluster bench: {size_text}, median of {runs} run(s), {} datanodes, \
             replication {REPLICATION}, block size {}\n{}\n\n",
            self.options.datanodes,
            fmt_size(ClusterSpec::default().block_size),
            self.cache.describe()
        );
        text.push_str(&report::numbered(&comparisons));
        text.push_str("datanode peak RSS (VmHWM, reset at the start of each phase):\n");
        for (phase, peaks) in [
            ("put", &put_peaks),
            ("get", &get_peaks),
            ("put, discard_data", &pipeline_peaks),
        ] {
            let list: Vec<String> = peaks
                .iter()
                .map(|(name, kib)| match kib {
                    Some(k) => format!("{name} {:.1} MiB", *k as f64 / 1024.0),
                    None => format!("{name} ?"),
                })
                .collect();
            text.push_str(&format!("  {phase:<18} {}\n", list.join(", ")));
        }
        say(out, &text)
    }

    /// `dfs put -f SOURCE TARGET`, timed.
    fn put(&self, source: &OsStr, target: &str) -> Result<Duration, Error> {
        self.dfs_os(&[
            OsStr::new("put"),
            OsStr::new("-f"),
            source,
            OsStr::new(target),
        ])
    }

    fn dfs(&self, args: &[&str]) -> Result<Duration, Error> {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        self.dfs_os(&args)
    }

    /// Runs `dfs ARGS` against the cluster, stdout to /dev/null; timed from
    /// spawn to exit.
    fn dfs_os(&self, args: &[&OsStr]) -> Result<Duration, Error> {
        let text = format!(
            "dfs {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        timed(
            Command::new(&self.cluster.binaries().dfs)
                .arg("--config")
                .arg(self.cluster.layout().client_config())
                .args(args),
            text,
        )
    }

    fn drop_caches(&self) -> Result<(), Error> {
        let mut files = vec![self.source.clone()];
        if self.cache == CacheDrop::Fadvise {
            for node in self.datanodes() {
                let data = self.cluster.layout().node_data(&node);
                files.extend(disk::files_below(&data).map_err(Error::io("listing", &data))?);
            }
        }
        self.cache
            .drop_pages(&files)
            .map_err(Error::io("dropping cached pages of", &self.work))
    }

    fn datanodes(&self) -> Vec<NodeName> {
        self.cluster
            .nodes()
            .iter()
            .filter(|n| n.role == Role::Datanode)
            .map(|n| n.name.clone())
            .collect()
    }

    /// Runs `measure` with block tokens on and off, `runs` times each,
    /// alternating which goes first so that drift on the machine falls on
    /// both; one untimed round after each switch. Each timed round gives
    /// MiB/s and MiB per CPU-second of the cluster and the client; tokens
    /// are on again afterwards.
    fn with_and_without_tokens(
        &mut self,
        out: &mut impl Write,
        what: &str,
        mut measure: impl FnMut(&mut Self) -> Result<Duration, Error>,
    ) -> Result<TokenRuns, Error> {
        let size = self.options.size;
        let mut runs = TokenRuns::default();
        for run in 1..=self.options.runs {
            let order = if run % 2 == 1 {
                [false, true]
            } else {
                [true, false]
            };
            for enabled in order {
                self.set_block_tokens(enabled)?;
                measure(self)?;
                let cpu_before = self.cpu_seconds()?;
                let rate = mib_per_sec(size, measure(self)?);
                let cpu = self.cpu_seconds()? - cpu_before;
                let per_cpu = mib_per_sec(size, Duration::from_secs_f64(cpu.max(0.01)));
                let (wall, cpus) = if enabled {
                    (&mut runs.on, &mut runs.on_cpu)
                } else {
                    (&mut runs.off, &mut runs.off_cpu)
                };
                wall.push(rate);
                cpus.push(per_cpu);
            }
            self.progress(
                out,
                run,
                &[
                    (&format!("{what}, tokens on"), &runs.on),
                    (&format!("{what}, tokens off"), &runs.off),
                    ("MiB per CPU-second on", &runs.on_cpu),
                    ("off", &runs.off_cpu),
                ],
            )?;
        }
        self.set_block_tokens(true)?;
        Ok(runs)
    }

    /// CPU seconds (user + system) used so far by every running node and by
    /// the `dfs` commands this process has waited for (`/proc/*/stat`, in
    /// Linux's fixed 100 ticks per second).
    fn cpu_seconds(&self) -> Result<f64, Error> {
        let mut ticks = proc_stat_ticks("self", true)?;
        for node in self.cluster.nodes() {
            if let Some(pid) = self.cluster.running_pid(node.name.as_str())? {
                ticks += proc_stat_ticks(&pid.to_string(), false)?;
            }
        }
        Ok(ticks as f64 / 100.0)
    }

    /// Restarts every node with `block_access_token_enable = enabled` in its
    /// config (namenodes and datanodes must agree) and the datanodes'
    /// scanners off, and waits until the namenode sees every datanode live.
    fn set_block_tokens(&mut self, enabled: bool) -> Result<(), Error> {
        self.cluster.stop_all()?;
        let names: Vec<NodeName> = self
            .cluster
            .nodes()
            .iter()
            .map(|n| n.name.clone())
            .collect();
        for name in names {
            let node = self.cluster.node(name.as_str())?;
            let mut keys = toml::Table::new();
            keys.insert(
                "block_access_token_enable".to_owned(),
                toml::Value::Boolean(enabled),
            );
            if node.role == Role::Datanode {
                // A restarted datanode's scanner would re-read its replicas
                // during the timed rounds: CPU that is not the token work.
                keys.insert("scan_period_ms".to_owned(), toml::Value::Integer(0));
            }
            set_config_keys(&node.config, &keys)?;
        }
        self.cluster.start_all()
    }

    /// Stops every datanode, adds `discard_data = true` to its config and
    /// starts it again; waits until the namenode sees them all live. Their
    /// block scanners are turned off: a replica without data fails its check,
    /// and re-replicating it would load the machine being measured.
    fn restart_datanodes_discarding(&mut self) -> Result<(), Error> {
        for name in self.datanodes() {
            self.cluster.stop_node(name.as_str())?;
            let mut keys = toml::Table::new();
            keys.insert("discard_data".to_owned(), toml::Value::Boolean(true));
            keys.insert("scan_period_ms".to_owned(), toml::Value::Integer(0));
            set_config_keys(&self.cluster.node(name.as_str())?.config, &keys)?;
            self.cluster.start_node(name.as_str())?;
        }
        self.cluster.wait_datanodes_live()
    }

    /// Resets every datanode's VmHWM (`/proc/PID/clear_refs` = 5).
    fn reset_peaks(&self) {
        for name in self.datanodes() {
            if let Ok(Some(pid)) = self.cluster.running_pid(name.as_str()) {
                let _ = fs::write(format!("/proc/{pid}/clear_refs"), "5");
            }
        }
    }

    fn peaks(&self) -> Peaks {
        self.datanodes()
            .into_iter()
            .map(|name| {
                let kib = self
                    .cluster
                    .running_pid(name.as_str())
                    .ok()
                    .flatten()
                    .and_then(peak_rss_kib);
                (name, kib)
            })
            .collect()
    }

    fn progress(
        &self,
        out: &mut impl Write,
        run: usize,
        series: &[(&str, &[f64])],
    ) -> Result<(), Error> {
        let figures: Vec<String> = series
            .iter()
            .map(|(name, values)| {
                let last = values.last().copied().unwrap_or_default();
                format!("{name} {last:.1} MiB/s")
            })
            .collect();
        say(
            out,
            &format!("  run {run}/{}: {}", self.options.runs, figures.join(", ")),
        )
    }
}

/// VmHWM of a process, in KiB.
/// Runs `command` (`text` in errors), stdout to /dev/null; timed from
/// spawn to exit.
fn timed(command: &mut Command, text: String) -> Result<Duration, Error> {
    let started = Instant::now();
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| Error::RunCommand {
            command: text.clone(),
            source,
        })?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        return Err(Error::CommandFailed {
            command: text,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(elapsed)
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn say(out: &mut impl Write, text: &str) -> Result<(), Error> {
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(Error::io("writing", "stdout"))
}

#[cfg(test)]
mod tests {
    use super::stat_ticks;

    #[test]
    fn cpu_ticks_are_read_past_a_command_name_with_spaces() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime cutime cstime ...
        let stat = "42 (dfs (x) y) S 1 42 42 0 -1 4194560 10 0 0 0 7 3 20 5 20 0 1";
        assert_eq!(stat_ticks(stat, false), 10);
        assert_eq!(stat_ticks(stat, true), 35);
        assert_eq!(stat_ticks("garbage", true), 0);
    }
}
