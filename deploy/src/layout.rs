//! Where a cluster lives on disk, and the config files written there.
//!
//! ```text
//! D/cluster.json          state: every node's name, role, addresses, config, pid
//! D/topology.toml         127.0.r.0/24 -> /dc1/rack{r}
//! D/dfs.toml              client config naming every namenode
//! D/nn1/namenode.toml     D/nn1/data/
//! D/dn1/datanode.toml     D/dn1/data/
//! D/logs/nn1.log          stdout + stderr of nn1, appended across restarts
//! ```
//!
//! Namenodes listen on 127.0.0.1 with a free port each (see `ports`: below
//! the kernel's ephemeral range), and every node, namenode or datanode, has
//! a second free port on its own ip for its HTTP server (`http_address`:
//! WebHDFS, `/metrics`, status pages); with more than one namenode,
//! every `namenode.toml` names its `server_id` (N for `nnN`) and lists the
//! whole ensemble as `[[ensemble]]` tables. Datanode n of rack r
//! listens on 127.0.r.n, so the namenode's topology table puts it on
//! `/dc1/rack{r}` from the source address of its connections alone.
//! Every node's config carries the cluster secret, 32 random bytes drawn
//! afresh for each cluster, which datanodes prove to the namenodes.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use dfs_client::ClientConfig;
use dfs_proto::topology::{Cidr, RackPath, TopologyTable};
use serde::Serialize;

use crate::Error;
use crate::node::{NodeName, Role};
use crate::ports::{self, NodeReservation};
use crate::spec::ClusterSpec;
use crate::state::{ClusterState, NodeState};

/// Runtime threads of each datanode: a local cluster runs several on one
/// machine, where one thread each beats cross-thread wake-ups per packet
/// (`dfs cat` of 1 GiB: 0.75 s with the default, 0.56 s with one).
const DATANODE_WORKER_THREADS: usize = 1;

/// Name of the state file inside the cluster directory.
pub(crate) const STATE_FILE: &str = "cluster.json";

/// The paths of one cluster directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// The layout of `dir`, made absolute so that the configs written there
    /// do not depend on the working directory of the nodes.
    pub fn new(dir: &Path) -> Result<Self, Error> {
        let dir = std::path::absolute(dir).map_err(Error::io("resolving", dir))?;
        Ok(Layout { dir })
    }

    /// The cluster directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `D/cluster.json`.
    pub fn state_file(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// `D/topology.toml`.
    pub fn topology_file(&self) -> PathBuf {
        self.dir.join("topology.toml")
    }

    /// `D/dfs.toml`, the client config.
    pub fn client_config(&self) -> PathBuf {
        self.dir.join("dfs.toml")
    }

    /// `D/logs/`.
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// `D/logs/NODE.log`.
    pub fn log_file(&self, node: &NodeName) -> PathBuf {
        self.logs_dir().join(format!("{node}.log"))
    }

    /// `D/NODE/`.
    pub fn node_dir(&self, node: &NodeName) -> PathBuf {
        self.dir.join(node.as_str())
    }

    /// `D/NODE/namenode.toml` or `D/NODE/datanode.toml`.
    pub fn node_config(&self, node: &NodeName) -> PathBuf {
        self.node_dir(node).join(format!("{}.toml", node.role()))
    }

    /// `D/NODE/data/`.
    pub fn node_data(&self, node: &NodeName) -> PathBuf {
        self.node_dir(node).join("data")
    }

    /// Whether the directory is missing or empty (a place `up` may fill).
    pub(crate) fn is_empty(&self) -> Result<bool, Error> {
        match fs::read_dir(&self.dir) {
            Ok(mut entries) => Ok(entries.next().is_none()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(Error::io("reading", &self.dir)(e)),
        }
    }
}

/// The rack path of rack `r` (1-based).
pub(crate) fn rack_path(r: u8) -> Result<RackPath, Error> {
    format!("/dc1/rack{r}")
        .parse()
        .map_err(|_| Error::BadSpec("rack numbers make valid rack paths"))
}

/// Lays `spec` out in `layout`: directories, free ports, every config file
/// and the state file. Starts nothing; returns each node's port reserved
/// (see `ports`) until it starts.
pub(crate) fn lay_out(
    layout: &Layout,
    spec: &ClusterSpec,
) -> Result<(ClusterState, BTreeMap<NodeName, NodeReservation>), Error> {
    spec.validate()?;
    mkdir(layout.dir())?;
    mkdir(&layout.logs_dir())?;

    // Fixed addresses live in namespaces of their own: nothing to reserve
    // there, and the HTTP server takes a fixed port beside the RPC one.
    let (namenode_addrs, namenode_http, namenode_ports) = match &spec.namenode_addrs {
        Some(addrs) => (
            addrs.clone(),
            addrs.iter().map(|&a| namespaced_http_addr(a)).collect(),
            Vec::new(),
        ),
        None => {
            let ports =
                ports::free_node_addrs(&vec![IpAddr::V4(Ipv4Addr::LOCALHOST); spec.namenodes])?;
            (
                ports.iter().map(|(rpc, _)| rpc.addr()).collect(),
                ports
                    .iter()
                    .map(|(_, http)| http.addr())
                    .collect::<Vec<_>>(),
                ports,
            )
        }
    };
    let mut datanode_ips = Vec::new();
    for (r, &count) in spec.racks.iter().enumerate() {
        // validate() caps racks and datanodes per rack at 254, so both fit an octet.
        let r = u8::try_from(r + 1).map_err(|_| Error::BadSpec("at most 254 racks"))?;
        for n in 1..=count {
            let n =
                u8::try_from(n).map_err(|_| Error::BadSpec("at most 254 datanodes per rack"))?;
            datanode_ips.push((IpAddr::V4(Ipv4Addr::new(127, 0, r, n)), rack_path(r)?));
        }
    }
    let datanode_ports =
        ports::free_node_addrs(&datanode_ips.iter().map(|(ip, _)| *ip).collect::<Vec<_>>())?;

    // One fresh secret per cluster, in every node's config and nowhere else.
    let secret = cluster_secret()?;
    write_topology(layout, spec)?;
    write_client_config(&layout.client_config(), &namenode_addrs, None, None)?;

    // Every namenode lists the whole ensemble, itself included; a lone
    // namenode gets none (it is an ensemble of one).
    let ensemble: Vec<EnsembleMemberToml> = if spec.is_ensemble() {
        namenode_addrs
            .iter()
            .enumerate()
            .map(|(i, &address)| EnsembleMemberToml {
                sid: server_id(i + 1),
                address,
                observer: spec.is_observer(i + 1),
            })
            .collect()
    } else {
        Vec::new()
    };
    let timers = spec.quorum_timers;
    let mut nodes = Vec::new();
    for (i, (&address, &http_address)) in namenode_addrs.iter().zip(&namenode_http).enumerate() {
        let name = NodeName::new(Role::Namenode, i + 1);
        mkdir(&layout.node_data(&name))?;
        let config = layout.node_config(&name);
        write_toml(
            &config,
            &NamenodeToml {
                listen: address,
                http_address,
                data_dir: &layout.node_data(&name),
                topology_file: &layout.topology_file(),
                superuser: spec.superuser.as_deref(),
                supergroup: &spec.supergroup,
                umask: "022",
                default_replication: spec.effective_replication(),
                default_block_size: spec.block_size,
                stale_after_ms: millis(spec.stale_after),
                dead_after_ms: millis(spec.dead_after),
                groups: &spec.groups,
                server_id: spec.is_ensemble().then(|| server_id(i + 1)),
                election_finalize_ms: timers.election_finalize.map(millis),
                ping_interval_ms: timers.ping_interval.map(millis),
                sync_timeout_ms: timers.sync_timeout.map(millis),
                init_timeout_ms: timers.init_timeout.map(millis),
                lease_soft_limit_ms: spec.lease_limits.map(|(soft, _)| millis(soft)),
                lease_hard_limit_ms: spec.lease_limits.map(|(_, hard)| millis(hard)),
                cluster_secret: &secret,
                ensemble: &ensemble,
            },
        )?;
        nodes.push(NodeState {
            log: layout.log_file(&name),
            name,
            role: Role::Namenode,
            address,
            http_address: Some(http_address),
            rack: None,
            config,
            pid: None,
        });
    }
    let namenodes: Vec<String> = namenode_addrs.iter().map(SocketAddr::to_string).collect();
    for (i, ((rpc, http), (_, rack))) in datanode_ports.iter().zip(datanode_ips).enumerate() {
        let (address, http_address) = (rpc.addr(), http.addr());
        let name = NodeName::new(Role::Datanode, i + 1);
        mkdir(&layout.node_data(&name))?;
        let config = layout.node_config(&name);
        write_toml(
            &config,
            &DatanodeToml {
                namenodes: &namenodes,
                listen: address,
                http_address,
                data_dir: &layout.node_data(&name),
                heartbeat_interval_ms: millis(spec.heartbeat_interval),
                worker_threads: DATANODE_WORKER_THREADS,
                cluster_secret: &secret,
            },
        )?;
        nodes.push(NodeState {
            log: layout.log_file(&name),
            name,
            role: Role::Datanode,
            address,
            http_address: Some(http_address),
            rack: Some(rack),
            config,
            pid: None,
        });
    }
    let state = ClusterState {
        superuser: spec.superuser.clone(),
        nodes,
    };
    state.save(&layout.state_file())?;
    let names = |role| {
        state
            .nodes
            .iter()
            .filter(move |n| n.role == role)
            .map(|n| n.name.clone())
    };
    let held = |(rpc, http)| NodeReservation::from(vec![rpc, http]);
    let reservations = names(Role::Namenode)
        .zip(namenode_ports.into_iter().map(held))
        .chain(names(Role::Datanode).zip(datanode_ports.into_iter().map(held)))
        .collect();
    Ok((state, reservations))
}

/// Writes a client config naming `namenodes`, optionally binding the client
/// to `bind_address` (which puts it on that address's rack) and naming its user.
pub fn write_client_config(
    path: &Path,
    namenodes: &[SocketAddr],
    bind_address: Option<IpAddr>,
    user: Option<&str>,
) -> Result<(), Error> {
    let config = ClientConfig {
        bind_address,
        user: user.map(str::to_owned),
        ..ClientConfig::new(namenodes.iter().map(SocketAddr::to_string).collect())
    };
    save_client_config(path, &config)
}

/// Writes `config` as a client config file (`dfs --config PATH`).
pub fn save_client_config(path: &Path, config: &ClientConfig) -> Result<(), Error> {
    write_toml(path, config)
}

fn write_topology(layout: &Layout, spec: &ClusterSpec) -> Result<(), Error> {
    let mut entries = Vec::new();
    for r in 1..=spec.racks.len() {
        let r = u8::try_from(r).map_err(|_| Error::BadSpec("at most 254 racks"))?;
        let cidr: Cidr = format!("127.0.{r}.0/24")
            .parse()
            .map_err(|_| Error::BadSpec("rack numbers make valid CIDRs"))?;
        entries.push((cidr, rack_path(r)?));
    }
    let table = TopologyTable::new(RackPath::default_rack(), entries);
    write_toml(&layout.topology_file(), &table)
}

/// Sets `keys` in the TOML config at `path`, keeping its other keys (a
/// node reads the change when it next starts).
///
/// # Errors
/// The file cannot be read, parsed or written.
pub fn set_config_keys(path: &Path, keys: &toml::Table) -> Result<(), Error> {
    let text = fs::read_to_string(path).map_err(Error::io("reading", path))?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| Error::Io {
        action: "parsing",
        path: path.to_owned(),
        source: io::Error::other(e),
    })?;
    table.extend(keys.clone());
    fs::write(path, table.to_string()).map_err(Error::io("writing", path))
}

/// A fresh cluster secret: 32 random bytes from the kernel, as 64 hex digits.
fn cluster_secret() -> Result<String, Error> {
    use std::io::Read;
    let source = Path::new("/dev/urandom");
    let mut bytes = [0u8; 32];
    fs::File::open(source)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(Error::io("reading", source))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn mkdir(path: &Path) -> Result<(), Error> {
    fs::create_dir_all(path).map_err(Error::io("creating directory", path))
}

fn write_toml(path: &Path, value: &impl Serialize) -> Result<(), Error> {
    let text = toml::to_string(value).map_err(|e| Error::Io {
        action: "encoding",
        path: path.to_owned(),
        source: io::Error::other(e),
    })?;
    fs::write(path, text).map_err(Error::io("writing", path))
}

/// The HTTP address of a namenode at the fixed address `rpc`, alone in its
/// network namespace: Hadoop's namenode HTTP port, or the next one when the
/// RPC server has it.
fn namespaced_http_addr(rpc: SocketAddr) -> SocketAddr {
    const HADOOP_NAMENODE_HTTP: u16 = 9870;
    let port = if rpc.port() == HADOOP_NAMENODE_HTTP {
        HADOOP_NAMENODE_HTTP + 1
    } else {
        HADOOP_NAMENODE_HTTP
    };
    SocketAddr::new(rpc.ip(), port)
}

/// The server id of the `index`-th (1-based) namenode: `nnN` is sid N.
fn server_id(index: usize) -> u64 {
    u64::try_from(index).unwrap_or(u64::MAX)
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The namenode's TOML config (`NamenodeConfig` in `dfs_namenode`).
#[derive(Debug, Serialize)]
struct NamenodeToml<'a> {
    listen: SocketAddr,
    http_address: SocketAddr,
    data_dir: &'a Path,
    topology_file: &'a Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    superuser: Option<&'a str>,
    supergroup: &'a str,
    umask: &'a str,
    default_replication: u32,
    default_block_size: u64,
    stale_after_ms: u64,
    dead_after_ms: u64,
    groups: &'a BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    election_finalize_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ping_interval_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sync_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    init_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_soft_limit_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_hard_limit_ms: Option<u64>,
    cluster_secret: &'a str,
    // Last: TOML puts tables after plain keys.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    ensemble: &'a [EnsembleMemberToml],
}

/// One `[[ensemble]]` table of the namenode's config (`EnsembleMember`).
#[derive(Debug, Serialize)]
struct EnsembleMemberToml {
    sid: u64,
    address: SocketAddr,
    observer: bool,
}

/// The datanode's TOML config (`DatanodeConfig` in `dfs_datanode`).
#[derive(Debug, Serialize)]
struct DatanodeToml<'a> {
    namenodes: &'a [String],
    listen: SocketAddr,
    http_address: SocketAddr,
    data_dir: &'a Path,
    heartbeat_interval_ms: u64,
    worker_threads: usize,
    cluster_secret: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datanodes_fill_racks_in_order_on_their_rack_subnet() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path()).unwrap();
        let spec = ClusterSpec {
            racks: vec![2, 1],
            ..ClusterSpec::default()
        };
        let (state, _ports) = lay_out(&layout, &spec).unwrap();
        let summary: Vec<(String, String, Option<String>)> = state
            .nodes
            .iter()
            .map(|n| {
                (
                    n.name.to_string(),
                    n.address.ip().to_string(),
                    n.rack.as_ref().map(|r| r.to_string()),
                )
            })
            .collect();
        let expect = |n: &str, ip: &str, rack: Option<&str>| {
            (n.to_owned(), ip.to_owned(), rack.map(str::to_owned))
        };
        assert_eq!(
            summary,
            vec![
                expect("nn1", "127.0.0.1", None),
                expect("dn1", "127.0.1.1", Some("/dc1/rack1")),
                expect("dn2", "127.0.1.2", Some("/dc1/rack1")),
                expect("dn3", "127.0.2.1", Some("/dc1/rack2")),
            ]
        );
        assert!(state.nodes.iter().all(|n| n.address.port() != 0));
    }

    #[test]
    fn every_node_gets_an_http_address_on_its_own_ip_in_state_and_config() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path()).unwrap();
        let spec = ClusterSpec {
            namenodes: 3,
            racks: vec![2, 1],
            ..ClusterSpec::default()
        };
        let (state, reservations) = lay_out(&layout, &spec).unwrap();
        let mut ports = std::collections::BTreeSet::new();
        for node in &state.nodes {
            let http = node.http_address.unwrap();
            assert_eq!(http.ip(), node.address.ip(), "{}", node.name);
            assert_ne!(http.port(), 0, "{}", node.name);
            assert!(ports.insert(node.address), "{} rpc reused", node.name);
            assert!(ports.insert(http), "{} http reused", node.name);
            assert_eq!(node.http_url(), Some(format!("http://{http}")));
            let config: toml::Table =
                toml::from_str(&fs::read_to_string(&node.config).unwrap()).unwrap();
            assert_eq!(
                config["http_address"].as_str(),
                Some(http.to_string().as_str()),
                "{}",
                node.name
            );
            // Both ports are held until the node starts.
            assert_eq!(
                reservations[&node.name].addrs(),
                vec![node.address, http],
                "{}",
                node.name
            );
        }
        // The nodes' own readers accept the key.
        let nn = dfs_namenode::NamenodeConfig::load(&state.nodes[0].config).unwrap();
        assert_eq!(nn.http_address, state.nodes[0].http_address);
        let dn = dfs_datanode::DatanodeConfig::load(&state.nodes[3].config).unwrap();
        assert_eq!(dn.http_address, state.nodes[3].http_address);
    }

    #[test]
    fn namenodes_at_fixed_addresses_serve_http_beside_them() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path()).unwrap();
        let spec = ClusterSpec {
            namenodes: 2,
            racks: vec![],
            namenode_addrs: Some(vec![
                "10.9.0.1:8020".parse().unwrap(),
                "10.9.0.2:9870".parse().unwrap(),
            ]),
            ..ClusterSpec::default()
        };
        let (state, _ports) = lay_out(&layout, &spec).unwrap();
        let http: Vec<Option<SocketAddr>> = state.nodes.iter().map(|n| n.http_address).collect();
        assert_eq!(
            http,
            vec![
                Some("10.9.0.1:9870".parse().unwrap()),
                Some("10.9.0.2:9871".parse().unwrap())
            ]
        );
    }

    #[test]
    fn configs_are_written_in_the_shapes_the_nodes_read() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path()).unwrap();
        let mut spec = ClusterSpec {
            racks: vec![1, 1],
            ..ClusterSpec::default()
        };
        spec.groups.insert("alice".into(), vec!["staff".into()]);
        let (state, _ports) = lay_out(&layout, &spec).unwrap();
        let nn = &state.nodes[0];

        let topology: TopologyTable =
            toml::from_str(&fs::read_to_string(layout.topology_file()).unwrap()).unwrap();
        assert_eq!(
            topology.resolve("127.0.2.1".parse().unwrap()).as_str(),
            "/dc1/rack2"
        );
        assert_eq!(
            topology.resolve("127.0.0.1".parse().unwrap()).as_str(),
            "/default-rack"
        );

        let namenode: toml::Table =
            toml::from_str(&fs::read_to_string(&nn.config).unwrap()).unwrap();
        assert_eq!(
            namenode["listen"].as_str(),
            Some(nn.address.to_string().as_str())
        );
        assert_eq!(namenode["default_replication"].as_integer(), Some(2));
        assert_eq!(namenode["stale_after_ms"].as_integer(), Some(30_000));
        assert_eq!(namenode["groups"]["alice"][0].as_str(), Some("staff"));
        assert!(Path::new(namenode["data_dir"].as_str().unwrap()).is_absolute());

        let datanode: toml::Table =
            toml::from_str(&fs::read_to_string(&state.nodes[1].config).unwrap()).unwrap();
        assert_eq!(
            datanode["namenodes"][0].as_str(),
            Some(nn.address.to_string().as_str())
        );
        assert_eq!(datanode["heartbeat_interval_ms"].as_integer(), Some(3000));
        // One secret per cluster, the same in every node's config.
        let secret = namenode["cluster_secret"].as_str().unwrap();
        assert_eq!(secret.len(), 64);
        assert_eq!(datanode["cluster_secret"].as_str(), Some(secret));
        let (other, _ports) = lay_out(
            &Layout::new(&dir.path().join("other")).unwrap(),
            &ClusterSpec::default(),
        )
        .unwrap();
        let other: toml::Table =
            toml::from_str(&fs::read_to_string(&other.nodes[0].config).unwrap()).unwrap();
        assert_ne!(other["cluster_secret"].as_str(), Some(secret));

        let client: toml::Table =
            toml::from_str(&fs::read_to_string(layout.client_config()).unwrap()).unwrap();
        assert_eq!(
            client["namenodes"][0].as_str(),
            Some(nn.address.to_string().as_str())
        );
        assert!(client.get("bind_address").is_none());
    }

    #[test]
    fn a_lone_namenode_names_no_ensemble() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path()).unwrap();
        let (state, _ports) = lay_out(&layout, &ClusterSpec::default()).unwrap();
        let config = dfs_namenode::NamenodeConfig::load(&state.nodes[0].config).unwrap();
        assert!(config.ensemble.is_empty());
        assert_eq!(config.server_id, 1);
    }

    #[test]
    fn every_namenode_of_an_ensemble_lists_all_members_and_its_own_sid() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path()).unwrap();
        let spec = ClusterSpec {
            namenodes: 5,
            observers: 1,
            racks: vec![1],
            quorum_timers: crate::spec::QuorumTimers {
                election_finalize: Some(std::time::Duration::from_millis(50)),
                sync_timeout: Some(std::time::Duration::from_millis(1500)),
                ..Default::default()
            },
            ..ClusterSpec::default()
        };
        let (state, _ports) = lay_out(&layout, &spec).unwrap();
        let namenodes: Vec<&NodeState> = state
            .nodes
            .iter()
            .filter(|n| n.role == Role::Namenode)
            .collect();
        assert_eq!(namenodes.len(), 5);
        let expected: Vec<dfs_namenode::config::EnsembleMember> = namenodes
            .iter()
            .enumerate()
            .map(|(i, n)| dfs_namenode::config::EnsembleMember {
                sid: i as u64 + 1,
                address: n.address,
                observer: i == 4,
            })
            .collect();
        for (i, node) in namenodes.iter().enumerate() {
            // The namenode's own reader refuses unknown keys, so this checks the shape too.
            let config = dfs_namenode::NamenodeConfig::load(&node.config).unwrap();
            assert_eq!(config.server_id, i as u64 + 1, "{}", node.name);
            assert_eq!(config.listen, node.address);
            assert_eq!(config.ensemble, expected, "{}", node.name);
            assert_eq!(config.election_finalize_ms, 50);
            assert_eq!(config.sync_timeout_ms, 1500);
            // Unset timers keep the namenode's defaults.
            assert_eq!(config.ping_interval_ms, 200);
            assert_eq!(config.init_timeout_ms, 5000);
        }
        // Datanodes and clients know every namenode.
        let all: Vec<String> = namenodes.iter().map(|n| n.address.to_string()).collect();
        let datanode: toml::Table =
            toml::from_str(&fs::read_to_string(&state.nodes[5].config).unwrap()).unwrap();
        let listed: Vec<&str> = datanode["namenodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(listed, all);
        let client: toml::Table =
            toml::from_str(&fs::read_to_string(layout.client_config()).unwrap()).unwrap();
        assert_eq!(client["namenodes"].as_array().unwrap().len(), 5);
    }
}
