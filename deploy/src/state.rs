//! The persisted state file `D/cluster.json`: every node's name, role,
//! address, config and (while it runs) pid, so that a later `dfs-cluster`
//! invocation can find, stop and restart what an earlier one started.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use dfs_proto::topology::RackPath;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::node::{NodeName, Role};

/// One node of the cluster as recorded in `cluster.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// `nn1`, `dn4`, …
    pub name: NodeName,
    /// What it runs.
    pub role: Role,
    /// The address it listens on; kept across restarts.
    pub address: SocketAddr,
    /// The address of its HTTP server (WebHDFS, `/metrics`, status pages),
    /// on the same ip; kept across restarts. `None` in the state files of
    /// clusters laid out before nodes had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_address: Option<SocketAddr>,
    /// The rack its address maps to (datanodes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<RackPath>,
    /// Its TOML config file.
    pub config: PathBuf,
    /// Its log file (stdout and stderr, appended across restarts).
    pub log: PathBuf,
    /// Its process id while it was last known to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl NodeState {
    /// The base URL of its HTTP server, `http://IP:PORT` (no trailing
    /// slash), if it has one.
    pub fn http_url(&self) -> Option<String> {
        self.http_address.map(|a| format!("http://{a}"))
    }
}

/// The whole of `cluster.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The superuser named in the namenode config, if not the OS user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superuser: Option<String>,
    /// Namenodes first, then datanodes, each in index order.
    pub nodes: Vec<NodeState>,
}

impl ClusterState {
    /// Reads the state file at `path`.
    pub(crate) fn load(path: &Path) -> Result<Self, Error> {
        let text = fs::read_to_string(path).map_err(Error::io("reading", path))?;
        serde_json::from_str(&text).map_err(|e| Error::Io {
            action: "parsing",
            path: path.to_owned(),
            source: e.into(),
        })
    }

    /// Writes the state file at `path` atomically (temp file + rename), so
    /// that a crash mid-write never leaves a torn file behind.
    pub(crate) fn save(&self, path: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Io {
            action: "encoding",
            path: path.to_owned(),
            source: e.into(),
        })?;
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, text + "\n").map_err(Error::io("writing", &tmp))?;
        fs::rename(&tmp, path).map_err(Error::io("renaming into place", path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.json");
        let state = ClusterState {
            superuser: None,
            nodes: vec![
                NodeState {
                    name: "nn1".parse().unwrap(),
                    role: Role::Namenode,
                    address: "127.0.0.1:8020".parse().unwrap(),
                    http_address: Some("127.0.0.1:9870".parse().unwrap()),
                    rack: None,
                    config: "/d/nn1/namenode.toml".into(),
                    log: "/d/logs/nn1.log".into(),
                    pid: Some(42),
                },
                NodeState {
                    name: "dn1".parse().unwrap(),
                    role: Role::Datanode,
                    address: "127.0.1.1:9866".parse().unwrap(),
                    http_address: Some("127.0.1.1:9864".parse().unwrap()),
                    rack: Some("/dc1/rack1".parse().unwrap()),
                    config: "/d/dn1/datanode.toml".into(),
                    log: "/d/logs/dn1.log".into(),
                    pid: None,
                },
            ],
        };
        state.save(&path).unwrap();
        assert_eq!(ClusterState::load(&path).unwrap(), state);
    }

    #[test]
    fn a_state_file_from_before_http_addresses_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.json");
        fs::write(
            &path,
            r#"{"nodes": [{"name": "nn1", "role": "namenode", "address": "127.0.0.1:8020",
                "config": "/d/nn1/namenode.toml", "log": "/d/logs/nn1.log", "pid": 7}]}"#,
        )
        .unwrap();
        let state = ClusterState::load(&path).unwrap();
        assert_eq!(state.nodes[0].http_address, None);
        assert_eq!(state.nodes[0].pid, Some(7));
    }
}
