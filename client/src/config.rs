//! The client configuration: `--config FILE`, else `$DFS_CONFIG`, else `./dfs.toml`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// What a client needs to reach the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Every namenode's gRPC address, `host:port`.
    pub namenodes: Vec<String>,
    /// Local address to bind outgoing connections to: it tells the namenode
    /// where (on which rack) this client is. Default: the kernel's choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_address: Option<IpAddr>,
    /// User to act as. Default: `--user`, `$DFS_USER`, else the OS user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Milliseconds a call keeps failing over between namenodes (not
    /// leading, unreachable) before it gives up; 0 = one attempt only.
    /// Default: 15000.
    #[serde(default = "default_failover_timeout_ms")]
    pub failover_timeout_ms: u64,
    /// Milliseconds one namenode call may go unanswered before the client
    /// tries the next namenode (with the same call id, so a write is still
    /// applied once). Namenode calls are metadata only, answered in
    /// milliseconds; what does not answer in a second is frozen or cut off.
    /// Default: 1000.
    #[serde(default = "default_rpc_timeout_ms")]
    pub rpc_timeout_ms: u64,
}

fn default_failover_timeout_ms() -> u64 {
    15_000
}

fn default_rpc_timeout_ms() -> u64 {
    1_000
}

impl ClientConfig {
    /// A config for `namenodes` with every other field at its default.
    pub fn new(namenodes: Vec<String>) -> Self {
        ClientConfig {
            namenodes,
            bind_address: None,
            user: None,
            failover_timeout_ms: default_failover_timeout_ms(),
            rpc_timeout_ms: default_rpc_timeout_ms(),
        }
    }

    /// How long a call keeps failing over before it gives up.
    pub fn failover_timeout(&self) -> Duration {
        Duration::from_millis(self.failover_timeout_ms)
    }

    /// How long one attempt at one namenode may take.
    pub fn rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.rpc_timeout_ms)
    }

    /// Loads `explicit` if given, else `./dfs.toml`. (`$DFS_CONFIG` reaches
    /// `explicit` through the CLI's env binding.)
    ///
    /// # Errors
    /// The file is missing, unreadable or malformed.
    pub fn load(explicit: Option<&Path>) -> Result<Self, Error> {
        let path: PathBuf = explicit.map_or_else(|| PathBuf::from("dfs.toml"), Path::to_owned);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Config {
            path: path.clone(),
            reason: if explicit.is_none() && e.kind() == std::io::ErrorKind::NotFound {
                "not found (give --config FILE or set DFS_CONFIG)".to_owned()
            } else {
                e.to_string()
            },
        })?;
        let config: ClientConfig = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if config.namenodes.is_empty() {
            return Err(Error::Config {
                path,
                reason: "namenodes: at least one namenode address is needed".into(),
            });
        }
        Ok(config)
    }
}
