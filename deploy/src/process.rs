//! Node processes: spawning, readiness, signals and stopping.
//!
//! A node is started as `BINARY --config CONFIG` with stdin closed and its
//! stdout and stderr appended to its log. It is ready once a line
//! `ready <addr>` appears in the part of the log it wrote. A pid is only ever
//! signalled after `/proc/<pid>/cmdline` shows it still runs our binary with
//! our config, so a recycled pid is never hit.
//!
//! Everything here blocks the calling thread. In [`SpawnMode::Child`] the
//! kernel kills a node when the *thread* that spawned it exits, so spawn from
//! a thread that lives as long as the cluster (never a pooled worker thread).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::Error;
use crate::state::NodeState;

/// How often waits poll the log or `/proc`.
const POLL: Duration = Duration::from_millis(20);
/// How long a node gets after SIGKILL before we give up on it.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// Lines of log quoted in errors.
const TAIL_LINES: usize = 40;

/// How started nodes relate to the process that starts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnMode {
    /// Own process group, outlives the launcher (`dfs-cluster up`).
    Detached,
    /// Killed by the kernel (SIGKILL) when the spawning thread exits (tests).
    Child,
}

/// Starts `binary --config <node.config>`, its output appended to `node.log`.
/// Returns the child and the length of the log before the node wrote to it.
/// With `netns`, the node starts inside that network namespace.
pub(crate) fn spawn(
    node: &NodeState,
    binary: &Path,
    mode: SpawnMode,
    netns: Option<&str>,
) -> Result<(Child, u64), Error> {
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&node.log)
        .map_err(Error::io("opening log", &node.log))?;
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    writeln!(
        log,
        "--- dfs-cluster: starting {} at unix time {since_epoch}: {} --config {}",
        node.name,
        binary.display(),
        node.config.display()
    )
    .map_err(Error::io("writing log", &node.log))?;
    let log_offset = log
        .metadata()
        .map_err(Error::io("reading log", &node.log))?
        .len();
    let stderr = log
        .try_clone()
        .map_err(Error::io("opening log", &node.log))?;

    let mut command = Command::new(binary);
    command
        .arg("--config")
        .arg(&node.config)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr);
    // A node that fails to start returns its error from main; with
    // RUST_BACKTRACE=1 inherited, anyhow would print a backtrace after it
    // that pushes the error itself out of the log tail we quote. Panics
    // still get their backtraces.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        command.env("RUST_LIB_BACKTRACE", "0");
    }
    if let Some(ns) = netns {
        crate::netns::exec_in(&mut command, ns)?;
    }
    match mode {
        SpawnMode::Detached => {
            command.process_group(0);
        }
        SpawnMode::Child => {
            let parent = std::process::id();
            // SAFETY: the closure runs between fork and exec and only calls
            // the async-signal-safe prctl, getppid and _exit.
            unsafe {
                command.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    // The parent may have died before prctl took effect.
                    if u32::try_from(libc::getppid()).ok() != Some(parent) {
                        libc::_exit(1);
                    }
                    Ok(())
                });
            }
        }
    }
    let child = command.spawn().map_err(|source| Error::Spawn {
        node: node.name.clone(),
        binary: binary.to_owned(),
        source,
    })?;
    Ok((child, log_offset))
}

/// Waits until the node prints `ready <addr>` and returns that address.
/// Only what the node wrote after `log_offset` counts.
pub(crate) fn wait_ready(
    node: &NodeState,
    child: &mut Child,
    log_offset: u64,
    timeout: Duration,
) -> Result<SocketAddr, Error> {
    let deadline = Instant::now() + timeout;
    let mut file = File::open(&node.log).map_err(Error::io("opening log", &node.log))?;
    file.seek(SeekFrom::Start(log_offset))
        .map_err(Error::io("reading log", &node.log))?;
    let mut pending = Vec::new();
    loop {
        let mut chunk = Vec::new();
        file.read_to_end(&mut chunk)
            .map_err(Error::io("reading log", &node.log))?;
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            if let Some(addr) = line.strip_prefix("ready ")
                && let Ok(addr) = addr.trim().parse()
            {
                return Ok(addr);
            }
        }
        let exited = child
            .try_wait()
            .map_err(Error::io("waiting for", &node.log))?;
        if let Some(status) = exited {
            return Err(Error::ExitedEarly {
                node: node.name.clone(),
                status: status.to_string(),
                log: node.log.clone(),
                tail: log_tail(&node.log, TAIL_LINES),
            });
        }
        if Instant::now() >= deadline {
            return Err(Error::NotReady {
                node: node.name.clone(),
                timeout,
                log: node.log.clone(),
                tail: log_tail(&node.log, TAIL_LINES),
            });
        }
        thread::sleep(POLL);
    }
}

/// The last `lines` lines of the file at `path` (or why it could not be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Whether `pid` runs `binary --config <node.config>`: a zombie, a recycled
/// pid or a vanished process all count as not running.
pub(crate) fn is_running(node: &NodeState, pid: u32, binary: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    // A zombie's cmdline is empty, so it fails both checks. A script's
    // cmdline starts with its interpreter, so the binary may be argument 1.
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let names_binary = args
        .iter()
        .take(2)
        .any(|arg| Path::new(std::ffi::OsStr::from_bytes(arg)).file_name() == binary.file_name());
    let config = node.config.as_os_str().as_bytes();
    let names_config = args.contains(&config);
    names_binary && names_config
}

/// Sends `signal` to the node's process. A process that is already gone is
/// not an error.
pub(crate) fn send_signal(node: &NodeState, pid: u32, sig: Signal) -> Result<(), Error> {
    let raw = i32::try_from(pid).map_err(|_| Error::Signal {
        node: node.name.clone(),
        pid,
        signal: sig.as_str(),
        source: io::Error::from(Errno::ESRCH),
    })?;
    match signal::kill(Pid::from_raw(raw), sig) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(Error::Signal {
            node: node.name.clone(),
            pid,
            signal: sig.as_str(),
            source: e.into(),
        }),
    }
}

/// Stops the node: SIGTERM, up to `grace` for it to exit, then SIGKILL. Does
/// nothing to a pid that no longer runs our binary. Reaps `child` if given.
pub(crate) fn stop(
    node: &NodeState,
    pid: u32,
    binary: &Path,
    mut child: Option<&mut Child>,
    grace: Duration,
) -> Result<(), Error> {
    if is_running(node, pid, binary) {
        send_signal(node, pid, Signal::SIGTERM)?;
        if !wait_gone(node, pid, binary, child.as_deref_mut(), grace) {
            tracing::warn!(node = %node.name, pid, ?grace, "node ignored SIGTERM; sending SIGKILL");
            send_signal(node, pid, Signal::SIGKILL)?;
            if !wait_gone(node, pid, binary, child.as_deref_mut(), KILL_WAIT) {
                return Err(Error::Unkillable {
                    node: node.name.clone(),
                    pid,
                    timeout: KILL_WAIT,
                });
            }
        }
    }
    if let Some(child) = child {
        // The process is gone or is not ours any more; collect its exit status.
        let _ = child.wait();
    }
    Ok(())
}

/// Kills the node with SIGKILL and waits for it to be gone.
pub(crate) fn kill(
    node: &NodeState,
    pid: u32,
    binary: &Path,
    mut child: Option<&mut Child>,
) -> Result<(), Error> {
    if is_running(node, pid, binary) {
        send_signal(node, pid, Signal::SIGKILL)?;
        if !wait_gone(node, pid, binary, child.as_deref_mut(), KILL_WAIT) {
            return Err(Error::Unkillable {
                node: node.name.clone(),
                pid,
                timeout: KILL_WAIT,
            });
        }
    }
    if let Some(child) = child {
        let _ = child.wait();
    }
    Ok(())
}

/// Polls until the process has exited (our child) or no longer runs our
/// binary (someone else's), for at most `timeout`.
fn wait_gone(
    node: &NodeState,
    pid: u32,
    binary: &Path,
    mut child: Option<&mut Child>,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let gone = match child.as_deref_mut() {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => !is_running(node, pid, binary),
        };
        if gone {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}
