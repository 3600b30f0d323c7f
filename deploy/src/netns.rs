//! Network namespaces for partition benchmarks: one namespace per namenode
//! and one for the measuring client, joined by a bridge that lives in a
//! namespace of its own (the "switch"), so that nothing is added to the
//! machine's own namespace.
//!
//! ```text
//!   RUN-nn1 (eth0 10.77.0.1) ──veth── p1 ┐
//!   RUN-nn2 (eth0 10.77.0.2) ──veth── p2 ├─ br0 in RUN-sw
//!   RUN-nn3 (eth0 10.77.0.3) ──veth── p3 │
//!   RUN-cl  (eth0 10.77.0.254) ─veth─ pc ┘
//!   RUN = dfsp<pid>: parallel runs never share a name, and since every run
//!   has its own switch they may all use the same 10.77.0.0/24.
//! ```
//!
//! A cut downs the node's port on the switch (`pN`): from then on every
//! frame to or from that node is dropped without a word (no RST, no ICMP),
//! as when a cable or a switch port fails, so every side notices only by
//! its own timeouts. The node keeps its address and its route, and the
//! client cannot reach it either. Healing raises the port again.
//!
//! [`Network`] is a guard: dropping it (also on error or panic) kills every
//! process left in its namespaces, then deletes the namespaces, which takes
//! their veths and the bridge with them. SIGINT, SIGTERM and SIGHUP tear
//! down every live [`Network`] the same way before the process exits.
//! [`exec_in`] makes a [`Command`] start inside a namespace (a `setns`
//! between fork and exec, so the child's command line stays its own), and
//! [`Entered`] moves the calling thread into one (threads it spawns follow).

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use crate::Error;

/// The subnet every run uses behind its own switch: 10.77.0.0/24.
const SUBNET: [u8; 3] = [10, 77, 0];
/// The client's host number (its address is 10.77.0.254).
const CLIENT_HOST: u8 = 254;
/// The bridge's name inside the switch namespace.
const BRIDGE: &str = "br0";
/// The interface name inside a node's or the client's namespace.
const NODE_IF: &str = "eth0";
/// How long processes left in a namespace get to die after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// The names and addresses of one run's namespaces: pure, so the commands
/// can be tested without root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPlan {
    run: String,
    nodes: usize,
}

impl NetPlan {
    /// The plan for `nodes` nodes (at most 253), its names unique to `pid`.
    pub fn new(pid: u32, nodes: usize) -> Result<Self, Error> {
        if nodes == 0 || nodes >= usize::from(CLIENT_HOST) {
            return Err(Error::BadSpec(
                "a namespace plan holds 1 to 253 nodes besides the client",
            ));
        }
        Ok(NetPlan {
            run: format!("dfsp{pid}"),
            nodes,
        })
    }

    /// The prefix of every namespace name of this run (`dfsp<pid>`).
    pub fn run(&self) -> &str {
        &self.run
    }

    /// How many nodes (besides the client) the plan holds.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// The switch's namespace, holding the bridge.
    pub fn switch_ns(&self) -> String {
        format!("{}-sw", self.run)
    }

    /// The namespace of node `i` (1-based).
    pub fn node_ns(&self, i: usize) -> String {
        format!("{}-nn{i}", self.run)
    }

    /// The measuring client's namespace.
    pub fn client_ns(&self) -> String {
        format!("{}-cl", self.run)
    }

    /// Node `i`'s address (1-based): 10.77.0.i.
    pub fn node_ip(&self, i: usize) -> IpAddr {
        IpAddr::V4(host(u8::try_from(i).unwrap_or(0)))
    }

    /// The client's address: 10.77.0.254.
    pub fn client_ip(&self) -> IpAddr {
        IpAddr::V4(host(CLIENT_HOST))
    }

    /// The node (1-based) whose address is `ip`.
    pub fn node_of(&self, ip: IpAddr) -> Option<usize> {
        (1..=self.nodes).find(|&i| self.node_ip(i) == ip)
    }

    /// Every namespace of the run, the switch last (it is torn down last).
    pub fn namespaces(&self) -> Vec<String> {
        let mut all: Vec<String> = (1..=self.nodes).map(|i| self.node_ns(i)).collect();
        all.push(self.client_ns());
        all.push(self.switch_ns());
        all
    }

    /// The `ip` command lines (without `ip`) that build the network, in order.
    pub fn setup_commands(&self) -> Vec<Vec<String>> {
        let sw = self.switch_ns();
        let mut commands = Vec::new();
        for ns in self.namespaces().iter().rev() {
            commands.push(args(&["netns", "add", ns]));
        }
        commands.push(args(&["-n", &sw, "link", "add", BRIDGE, "type", "bridge"]));
        commands.push(args(&["-n", &sw, "link", "set", BRIDGE, "up"]));
        let ends = (1..=self.nodes)
            .map(|i| (self.node_ns(i), port(i), self.node_ip(i)))
            .chain([(self.client_ns(), "pc".to_owned(), self.client_ip())]);
        for (ns, port, ip) in ends {
            let address = format!("{ip}/24");
            commands.push(args(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", NODE_IF, "netns",
                &ns,
            ]));
            commands.push(args(&["-n", &sw, "link", "set", &port, "master", BRIDGE]));
            commands.push(args(&["-n", &sw, "link", "set", &port, "up"]));
            commands.push(args(&["-n", &ns, "addr", "add", &address, "dev", NODE_IF]));
            commands.push(args(&["-n", &ns, "link", "set", NODE_IF, "up"]));
            commands.push(args(&["-n", &ns, "link", "set", "lo", "up"]));
        }
        commands
    }

    /// The `ip` command line that cuts node `i` off: its switch port down.
    pub fn cut_command(&self, i: usize) -> Vec<String> {
        args(&["-n", &self.switch_ns(), "link", "set", &port(i), "down"])
    }

    /// The `ip` command line that heals node `i`: its switch port up.
    pub fn heal_command(&self, i: usize) -> Vec<String> {
        args(&["-n", &self.switch_ns(), "link", "set", &port(i), "up"])
    }
}

fn host(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], n)
}

/// Node `i`'s port on the switch.
fn port(i: usize) -> String {
    format!("p{i}")
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// The file naming a namespace, for `setns`.
pub fn ns_path(ns: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(ns)
}

/// Whether this process can make network namespaces: root, and an
/// `ip netns add` that succeeds (it is deleted at once). The error says why not.
pub fn available() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("not running as root".to_owned());
    }
    let probe = format!("dfsp{}-probe", std::process::id());
    ip(&args(&["netns", "add", &probe])).map_err(|e| e.to_string())?;
    ip(&args(&["netns", "del", &probe])).map_err(|e| e.to_string())
}

/// Runs `ip ARGS`; its stderr goes into the error.
fn ip(words: &[String]) -> Result<(), Error> {
    let command = format!("ip {}", words.join(" "));
    let out = Command::new("ip")
        .args(words)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::RunCommand {
            command: command.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::CommandFailed {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// One run's namespaces, bridge and veths; torn down on drop.
#[derive(Debug)]
pub struct Network {
    plan: NetPlan,
}

impl Network {
    /// Builds the network of `plan`. On failure, whatever was made is torn
    /// down again.
    pub fn create(plan: NetPlan) -> Result<Self, Error> {
        watch_signals();
        register(&plan, true);
        // From here on, dropping the guard tears down whatever exists.
        let network = Network { plan };
        for command in network.plan.setup_commands() {
            ip(&command)?;
        }
        Ok(network)
    }

    /// The plan the network was built from.
    pub fn plan(&self) -> &NetPlan {
        &self.plan
    }

    /// Cuts node `i` off from everyone (see the module docs).
    pub fn cut(&self, i: usize) -> Result<(), Error> {
        ip(&self.plan.cut_command(i))
    }

    /// Connects node `i` again.
    pub fn heal(&self, i: usize) -> Result<(), Error> {
        ip(&self.plan.heal_command(i))
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        teardown(&self.plan.namespaces());
        register(&self.plan, false);
    }
}

/// Kills what runs in each namespace, then deletes them in order, best
/// effort: a namespace that is already gone is not an error.
fn teardown(namespaces: &[String]) {
    for ns in namespaces {
        kill_all_in(ns);
    }
    for ns in namespaces {
        if ns_path(ns).exists()
            && let Err(e) = ip(&args(&["netns", "del", ns]))
        {
            tracing::warn!(%ns, error = %e, "could not delete network namespace");
        }
    }
}

/// SIGKILLs every process whose network namespace is `ns` (never this
/// one) and waits until they are gone.
fn kill_all_in(ns: &str) {
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        let pids = pids_in(ns);
        if pids.is_empty() || Instant::now() >= deadline {
            if !pids.is_empty() {
                tracing::warn!(%ns, ?pids, "processes survived SIGKILL");
            }
            return;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// `ip netns pids NS`, without this process and without zombies (which
/// are dead already and are reaped by their parents).
fn pids_in(ns: &str) -> Vec<i32> {
    if !ns_path(ns).exists() {
        return Vec::new();
    }
    let Ok(out) = Command::new("ip")
        .args(["netns", "pids", ns])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    let me = i32::try_from(std::process::id()).unwrap_or(-1);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|&p| p != me && !is_zombie(p))
        .collect()
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

/// Makes `command` start inside the namespace `ns` (a `setns` between fork
/// and exec). The namespace file is opened now, so a missing namespace
/// fails here with its path.
pub fn exec_in(command: &mut Command, ns: &str) -> Result<(), Error> {
    let path = ns_path(ns);
    let file: OwnedFd = File::open(&path)
        .map_err(Error::io("opening network namespace", &path))?
        .into();
    // SAFETY: the closure runs between fork and exec and only calls the
    // async-signal-safe setns on a descriptor opened before the fork (it
    // is close-on-exec, so the node does not inherit it).
    unsafe {
        command.pre_exec(move || {
            if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// The calling thread moved into a namespace; dropping it moves the thread
/// back. Threads spawned meanwhile (a tokio runtime's workers) stay in the
/// namespace they were born in.
#[derive(Debug)]
pub struct Entered {
    home: OwnedFd,
}

impl Entered {
    /// Moves the calling thread into the namespace `ns`.
    pub fn enter(ns: &str) -> Result<Self, Error> {
        let home_path = PathBuf::from("/proc/thread-self/ns/net");
        let home: OwnedFd = File::open(&home_path)
            .map_err(Error::io("opening network namespace", &home_path))?
            .into();
        let path = ns_path(ns);
        let target = File::open(&path).map_err(Error::io("opening network namespace", &path))?;
        setns(&target, &path)?;
        Ok(Entered { home })
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        // SAFETY: setns on a descriptor we own; it changes only this thread.
        if unsafe { libc::setns(self.home.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            tracing::warn!(error = %io::Error::last_os_error(), "could not leave network namespace");
        }
    }
}

fn setns(file: &impl AsRawFd, path: &std::path::Path) -> Result<(), Error> {
    // SAFETY: setns on a descriptor that lives across the call; it changes
    // only the calling thread's namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(Error::io("entering network namespace", path)(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// The namespaces of every live [`Network`] of this process, for the signal
/// watcher.
static LIVE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
/// The signal that asked us to stop, or 0.
static SIGNALLED: AtomicI32 = AtomicI32::new(0);

fn register(plan: &NetPlan, live: bool) {
    let mut set = LIVE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for ns in plan.namespaces() {
        if live {
            set.insert(ns);
        } else {
            set.remove(&ns);
        }
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    // Only an atomic store: the watcher thread does the work.
    SIGNALLED.store(sig, Ordering::SeqCst);
}

/// Once per process: SIGINT, SIGTERM and SIGHUP no longer kill it at once;
/// a thread tears down every live network and then exits with 128 + signal.
fn watch_signals() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: the handler only stores into an atomic.
            unsafe {
                libc::signal(
                    sig,
                    on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
                );
            }
        }
        let spawned = thread::Builder::new()
            .name("netns-signals".to_owned())
            .spawn(|| {
                loop {
                    let sig = SIGNALLED.load(Ordering::SeqCst);
                    if sig != 0 {
                        let namespaces: Vec<String> = {
                            let set = LIVE
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            // Switches last: node namespaces sort before them.
                            let (switches, others): (Vec<String>, Vec<String>) =
                                set.iter().cloned().partition(|ns| ns.ends_with("-sw"));
                            others.into_iter().chain(switches).collect()
                        };
                        eprintln!(
                            "signal {sig}: tearing down network namespaces {}",
                            namespaces.join(", ")
                        );
                        teardown(&namespaces);
                        std::process::exit(128 + sig);
                    }
                    thread::sleep(Duration::from_millis(50));
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no signal watcher: Ctrl-C would leave namespaces behind");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(words: &[String]) -> String {
        words.join(" ")
    }

    #[test]
    fn names_are_unique_to_the_run_and_the_switch_comes_last() {
        let plan = NetPlan::new(4242, 3).unwrap();
        assert_eq!(
            plan.namespaces(),
            [
                "dfsp4242-nn1",
                "dfsp4242-nn2",
                "dfsp4242-nn3",
                "dfsp4242-cl",
                "dfsp4242-sw"
            ]
        );
        assert_ne!(
            NetPlan::new(4243, 3).unwrap().namespaces(),
            plan.namespaces()
        );
    }

    #[test]
    fn every_node_has_its_own_address_and_the_client_254() {
        let plan = NetPlan::new(1, 3).unwrap();
        assert_eq!(plan.node_ip(2).to_string(), "10.77.0.2");
        assert_eq!(plan.client_ip().to_string(), "10.77.0.254");
        assert_eq!(plan.node_of("10.77.0.3".parse().unwrap()), Some(3));
        assert_eq!(plan.node_of(plan.client_ip()), None);
        assert_eq!(plan.node_of("127.0.0.1".parse().unwrap()), None);
        assert!(NetPlan::new(1, 0).is_err());
        assert!(NetPlan::new(1, 254).is_err());
    }

    #[test]
    fn setup_makes_namespaces_then_the_bridge_then_one_veth_per_end() {
        let plan = NetPlan::new(7, 2).unwrap();
        let lines: Vec<String> = plan.setup_commands().iter().map(|c| line(c)).collect();
        assert_eq!(lines[0], "netns add dfsp7-sw");
        assert_eq!(lines[3], "netns add dfsp7-nn1");
        assert_eq!(lines[4], "-n dfsp7-sw link add br0 type bridge");
        assert!(lines.contains(
            &"-n dfsp7-sw link add p2 type veth peer name eth0 netns dfsp7-nn2".to_owned()
        ));
        assert!(lines.contains(&"-n dfsp7-sw link set p2 master br0".to_owned()));
        assert!(lines.contains(&"-n dfsp7-nn2 addr add 10.77.0.2/24 dev eth0".to_owned()));
        assert!(lines.contains(
            &"-n dfsp7-sw link add pc type veth peer name eth0 netns dfsp7-cl".to_owned()
        ));
        assert!(lines.contains(&"-n dfsp7-cl addr add 10.77.0.254/24 dev eth0".to_owned()));
        // Nothing is made outside the run's namespaces.
        for l in &lines[4..] {
            assert!(l.starts_with("-n dfsp7-"), "{l}");
        }
    }

    #[test]
    fn a_cut_downs_the_nodes_switch_port_and_a_heal_raises_it() {
        let plan = NetPlan::new(7, 3).unwrap();
        assert_eq!(line(&plan.cut_command(2)), "-n dfsp7-sw link set p2 down");
        assert_eq!(line(&plan.heal_command(2)), "-n dfsp7-sw link set p2 up");
    }

    #[test]
    fn a_command_in_a_missing_namespace_fails_with_its_path() {
        let mut command = Command::new("true");
        let err = exec_in(&mut command, "dfsp-no-such-namespace").unwrap_err();
        assert!(
            err.to_string()
                .contains("/run/netns/dfsp-no-such-namespace"),
            "{err}"
        );
    }
}
