//! The namenode's configuration: a TOML file (serde defaults), then
//! `NamenodeConfig::validate` into typed values.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dfs_proto::topology::TopologyTable;
use serde::Deserialize;

/// The namenode's TOML configuration file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamenodeConfig {
    /// gRPC address for clients and datanodes. Default `127.0.0.1:8020`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Directory of the journal, snapshots and epoch files. Required.
    pub data_dir: PathBuf,
    /// Address/CIDR → rack table (TOML). Default: every node on `/default-rack`.
    #[serde(default)]
    pub topology_file: Option<PathBuf>,
    /// User with every right. Default: the OS user running the namenode.
    #[serde(default)]
    pub superuser: Option<String>,
    /// Members of this group are superusers too. Default `supergroup`.
    #[serde(default = "default_supergroup")]
    pub supergroup: String,
    /// Octal mode bits removed from new files and directories. Default `022`.
    #[serde(default = "default_umask")]
    pub umask: String,
    /// Replicas of a file whose creator asks for none. Default 3.
    #[serde(default = "default_replication")]
    pub default_replication: u16,
    /// Block size in bytes of a file whose creator asks for none. Default 128 MiB.
    #[serde(default = "default_block_size")]
    pub default_block_size: u64,
    /// Milliseconds of heartbeat silence before a datanode is stale. Default 30 000.
    #[serde(default = "default_stale_after_ms")]
    pub stale_after_ms: u64,
    /// Milliseconds of heartbeat silence before a datanode is dead. Default 600 000.
    #[serde(default = "default_dead_after_ms")]
    pub dead_after_ms: u64,
    /// Milliseconds between scans for dead datanodes and under-replicated blocks. Default 3 000.
    #[serde(default = "default_replication_check_interval_ms")]
    pub replication_check_interval_ms: u64,
    /// Transactions between checkpoints (snapshot + log truncation). Default 100 000.
    #[serde(default = "default_checkpoint_txns")]
    pub checkpoint_txns: u64,
    /// User → groups. A listed user's groups come from here; others' from this
    /// host's OS, and only for users the OS does not know, from the request.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8020))
}
fn default_supergroup() -> String {
    "supergroup".to_owned()
}
fn default_umask() -> String {
    "022".to_owned()
}
fn default_replication() -> u16 {
    3
}
fn default_block_size() -> u64 {
    128 * 1024 * 1024
}
fn default_stale_after_ms() -> u64 {
    30_000
}
fn default_dead_after_ms() -> u64 {
    600_000
}
fn default_replication_check_interval_ms() -> u64 {
    3_000
}
fn default_checkpoint_txns() -> u64 {
    100_000
}

/// A configuration that does not make sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's words.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The key.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// A validated configuration with typed values.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) listen: SocketAddr,
    pub(crate) data_dir: PathBuf,
    pub(crate) topology: TopologyTable,
    pub(crate) superuser: String,
    pub(crate) supergroup: String,
    pub(crate) umask: u16,
    pub(crate) default_replication: u16,
    pub(crate) default_block_size: u64,
    pub(crate) stale_after: Duration,
    pub(crate) dead_after: Duration,
    pub(crate) replication_check_interval: Duration,
    pub(crate) checkpoint_txns: u64,
    pub(crate) groups: BTreeMap<String, Vec<String>>,
}

impl NamenodeConfig {
    /// Reads and parses a TOML file.
    ///
    /// # Errors
    /// The file is unreadable or malformed.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Checks every value and loads the topology table.
    pub(crate) fn validate(&self) -> Result<Settings, ConfigError> {
        let umask = u16::from_str_radix(&self.umask, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| ConfigError::Invalid {
                field: "umask",
                reason: format!("{:?} is not an octal mode of at most 777", self.umask),
            })?;
        if !(1..=512).contains(&self.default_replication) {
            return Err(ConfigError::Invalid {
                field: "default_replication",
                reason: "must be between 1 and 512".into(),
            });
        }
        if self.default_block_size < 1024 * 1024 || !self.default_block_size.is_multiple_of(512) {
            return Err(ConfigError::Invalid {
                field: "default_block_size",
                reason: "must be at least 1 MiB and a multiple of 512".into(),
            });
        }
        if self.stale_after_ms == 0 || self.dead_after_ms <= self.stale_after_ms {
            return Err(ConfigError::Invalid {
                field: "dead_after_ms",
                reason: "stale_after_ms must be positive and dead_after_ms larger".into(),
            });
        }
        let topology = match &self.topology_file {
            None => TopologyTable::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
        };
        let superuser = match &self.superuser {
            Some(user) => user.clone(),
            None => os_user_name(),
        };
        Ok(Settings {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            topology,
            superuser,
            supergroup: self.supergroup.clone(),
            umask,
            default_replication: self.default_replication,
            default_block_size: self.default_block_size,
            stale_after: Duration::from_millis(self.stale_after_ms),
            dead_after: Duration::from_millis(self.dead_after_ms),
            replication_check_interval: Duration::from_millis(
                self.replication_check_interval_ms.max(100),
            ),
            checkpoint_txns: self.checkpoint_txns.max(1),
            groups: self.groups.clone(),
        })
    }
}

/// The name of the user running this process.
fn os_user_name() -> String {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_file_gets_hdfs_defaults() {
        let config: NamenodeConfig = toml::from_str("data_dir = \"/tmp/nn\"").unwrap();
        let settings = config.validate().unwrap();
        assert_eq!(settings.umask, 0o022);
        assert_eq!(settings.default_replication, 3);
        assert_eq!(settings.stale_after, Duration::from_secs(30));
        assert_eq!(settings.dead_after, Duration::from_secs(600));
    }

    #[test]
    fn nonsense_values_are_refused() {
        for bad in [
            "data_dir = \"/x\"\numask = \"9\"",
            "data_dir = \"/x\"\ndefault_replication = 0",
            "data_dir = \"/x\"\nstale_after_ms = 10\ndead_after_ms = 5",
            "data_dir = \"/x\"\ndefault_block_size = 1000",
        ] {
            let config: NamenodeConfig = toml::from_str(bad).unwrap();
            assert!(config.validate().is_err(), "{bad}");
        }
        assert!(toml::from_str::<NamenodeConfig>("data_dir = \"/x\"\nbogus = 1").is_err());
    }
}
