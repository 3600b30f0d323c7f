//! The namenode's configuration: a TOML file (serde defaults), then
//! `NamenodeConfig::validate` into typed values.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dfs_proto::cluster_proof::ClusterSecret;
use dfs_proto::ids::ServerId;
use dfs_proto::topology::TopologyTable;
use serde::Deserialize;

use crate::blocks::block_keys::TokenSettings;
use crate::lease::LeaseLimits;

/// The namenode's TOML configuration file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamenodeConfig {
    /// gRPC address for clients and datanodes. Default `127.0.0.1:8020`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// HTTP address of WebHDFS, `/metrics` and the status pages (HDFS's
    /// `dfs.namenode.http-address`). Default: none, no HTTP server.
    #[serde(default)]
    pub http_address: Option<SocketAddr>,
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
    /// Milliseconds a writer may go without renewing its lease before
    /// another client's create may take its file over (HDFS's soft limit).
    /// Default 60 000.
    #[serde(default = "default_lease_soft_limit_ms")]
    pub lease_soft_limit_ms: u64,
    /// Milliseconds a writer may go without renewing its lease before the
    /// namenode closes its files by itself (HDFS's hard limit); at least the
    /// soft limit. Default 3 600 000.
    #[serde(default = "default_lease_hard_limit_ms")]
    pub lease_hard_limit_ms: u64,
    /// Transactions between checkpoints (snapshot + log truncation). Default 100 000.
    #[serde(default = "default_checkpoint_txns")]
    pub checkpoint_txns: u64,
    /// User → groups. A listed user's groups come from here; others' from this
    /// host's OS, and only for users the OS does not know, from the request.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    /// This namenode's server id (sid) in the ensemble. Default 1.
    #[serde(default = "default_server_id")]
    pub server_id: u64,
    /// Every namenode of the ensemble, this one included, as `[[ensemble]]`
    /// tables. Empty (the default): a single namenode at `listen`.
    #[serde(default)]
    pub ensemble: Vec<EnsembleMember>,
    /// Milliseconds an election waits for a better vote once a quorum agrees. Default 200.
    #[serde(default = "default_election_finalize_ms")]
    pub election_finalize_ms: u64,
    /// Milliseconds between the leader's pings to its learners. Default 200.
    #[serde(default = "default_ping_interval_ms")]
    pub ping_interval_ms: u64,
    /// Milliseconds of silence after which the leader drops a learner, or a
    /// learner gives up on its leader and elects again; the leader serves
    /// only within half of it since its quorum was last heard. Default 1 000
    /// (five pings: a frozen leader is replaced in about 1.5 s).
    #[serde(default = "default_sync_timeout_ms")]
    pub sync_timeout_ms: u64,
    /// Milliseconds a new leader waits for a quorum to join it. Default 5 000.
    #[serde(default = "default_init_timeout_ms")]
    pub init_timeout_ms: u64,
    /// The secret this cluster's namenodes and datanodes share, at least 16
    /// bytes (`dfs-cluster up` writes a fresh random one into every node's
    /// config). Every registration, heartbeat and block report of a datanode
    /// must prove it. Required unless `insecure_no_cluster_secret` is set.
    #[serde(default)]
    pub cluster_secret: Option<String>,
    /// Runs without a cluster secret, accepting datanode requests that prove
    /// nothing: then any process that reaches this namenode can pose as a
    /// datanode. Default false: without `cluster_secret` the namenode
    /// refuses to start.
    #[serde(default)]
    pub insecure_no_cluster_secret: bool,
    /// Starts even when the journal's log ends before the last zxid this
    /// namenode is known to have written (its `seen_zxid` marker), accepting
    /// that those txns are gone from it: for one start after an operator
    /// chose to (see README). Default false: such a namenode refuses to start.
    #[serde(default)]
    pub accept_shorter_journal: bool,
    /// Issue block access tokens with every block location and pipeline
    /// (HDFS's `dfs.block.access.token.enable`); datanodes with
    /// `block_access_token_enable` refuse transfers without one. Default true.
    #[serde(default = "default_true")]
    pub block_access_token_enable: bool,
    /// Milliseconds a block key signs tokens before the next one takes over
    /// (HDFS's `dfs.block.access.key.update.interval`). Default 36 000 000 (10 h).
    #[serde(default = "default_block_access_key_update_interval_ms")]
    pub block_access_key_update_interval_ms: u64,
    /// Milliseconds a block access token stays valid (HDFS's
    /// `dfs.block.access.token.lifetime`). Default 36 000 000 (10 h).
    #[serde(default = "default_block_access_token_lifetime_ms")]
    pub block_access_token_lifetime_ms: u64,
}

fn default_true() -> bool {
    true
}
fn default_block_access_key_update_interval_ms() -> u64 {
    10 * 60 * 60 * 1000
}
fn default_block_access_token_lifetime_ms() -> u64 {
    10 * 60 * 60 * 1000
}

/// One namenode of the ensemble.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleMember {
    /// Its server id: unique, above 0.
    pub sid: u64,
    /// Its gRPC address (clients, datanodes and the quorum all use it).
    pub address: SocketAddr,
    /// Whether it only listens (never votes, never counts toward a quorum).
    #[serde(default)]
    pub observer: bool,
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
fn default_lease_soft_limit_ms() -> u64 {
    60_000
}
fn default_lease_hard_limit_ms() -> u64 {
    3_600_000
}
fn default_checkpoint_txns() -> u64 {
    100_000
}
fn default_server_id() -> u64 {
    1
}
fn default_election_finalize_ms() -> u64 {
    200
}
fn default_ping_interval_ms() -> u64 {
    200
}
fn default_sync_timeout_ms() -> u64 {
    1_000
}
fn default_init_timeout_ms() -> u64 {
    5_000
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
    pub(crate) http_address: Option<SocketAddr>,
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
    pub(crate) lease_limits: LeaseLimits,
    pub(crate) checkpoint_txns: u64,
    pub(crate) groups: BTreeMap<String, Vec<String>>,
    pub(crate) quorum: QuorumSettings,
    pub(crate) tokens: TokenSettings,
    /// What datanode requests must prove.
    pub(crate) cluster_secret: Option<ClusterSecret>,
    pub(crate) insecure_no_cluster_secret: bool,
    pub(crate) accept_shorter_journal: bool,
}

impl Settings {
    /// The secret datanode requests must prove, `None` when the operator
    /// chose to run without one. Checked when the namenode starts (not in
    /// `validate`, so that a config's other values can be checked alone).
    ///
    /// # Errors
    /// No secret, and no explicit `insecure_no_cluster_secret`.
    pub(crate) fn datanode_secret(&self) -> Result<Option<&ClusterSecret>, ConfigError> {
        match (&self.cluster_secret, self.insecure_no_cluster_secret) {
            (Some(secret), _) => Ok(Some(secret)),
            (None, true) => Ok(None),
            (None, false) => Err(ConfigError::Invalid {
                field: "cluster_secret",
                reason: "not set: datanodes must prove a secret shared with the namenodes \
                         (`dfs-cluster up` writes one into every node's config); set \
                         insecure_no_cluster_secret = true to run without one, letting any \
                         process that reaches the namenode register as a datanode"
                    .into(),
            }),
        }
    }
}

/// The ensemble and its timeouts, validated.
#[derive(Debug, Clone)]
pub(crate) struct QuorumSettings {
    /// Our server id.
    pub(crate) me: ServerId,
    /// Every member's address, us included.
    pub(crate) members: BTreeMap<ServerId, SocketAddr>,
    /// Members that vote.
    pub(crate) voters: BTreeSet<ServerId>,
    /// Members that only listen.
    pub(crate) observers: BTreeSet<ServerId>,
    pub(crate) finalize_wait: Duration,
    pub(crate) ping_interval: Duration,
    pub(crate) sync_timeout: Duration,
    pub(crate) init_timeout: Duration,
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
        if self.lease_soft_limit_ms == 0 || self.lease_hard_limit_ms < self.lease_soft_limit_ms {
            return Err(ConfigError::Invalid {
                field: "lease_hard_limit_ms",
                reason:
                    "lease_soft_limit_ms must be positive and lease_hard_limit_ms at least as large"
                        .into(),
            });
        }
        if self.block_access_key_update_interval_ms == 0 || self.block_access_token_lifetime_ms == 0
        {
            return Err(ConfigError::Invalid {
                field: "block_access_token_lifetime_ms",
                reason: "block_access_key_update_interval_ms and block_access_token_lifetime_ms must be positive".into(),
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
        let cluster_secret = self
            .cluster_secret
            .as_deref()
            .map(ClusterSecret::new)
            .transpose()
            .map_err(|reason| ConfigError::Invalid {
                field: "cluster_secret",
                reason,
            })?;
        let superuser = match &self.superuser {
            Some(user) => user.clone(),
            None => os_user_name(),
        };
        Ok(Settings {
            listen: self.listen,
            http_address: self.http_address,
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
            lease_limits: LeaseLimits {
                soft: Duration::from_millis(self.lease_soft_limit_ms),
                hard: Duration::from_millis(self.lease_hard_limit_ms),
            },
            checkpoint_txns: self.checkpoint_txns.max(1),
            groups: self.groups.clone(),
            quorum: self.quorum()?,
            cluster_secret,
            insecure_no_cluster_secret: self.insecure_no_cluster_secret,
            accept_shorter_journal: self.accept_shorter_journal,
            tokens: TokenSettings {
                enabled: self.block_access_token_enable,
                key_update_interval: Duration::from_millis(
                    self.block_access_key_update_interval_ms,
                ),
                token_lifetime: Duration::from_millis(self.block_access_token_lifetime_ms),
            },
        })
    }

    /// The ensemble: the configured one, or this namenode alone.
    fn quorum(&self) -> Result<QuorumSettings, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            field: "ensemble",
            reason,
        };
        if self.server_id == 0 {
            return Err(ConfigError::Invalid {
                field: "server_id",
                reason: "must be above 0".into(),
            });
        }
        let me = ServerId(self.server_id);
        let members = if self.ensemble.is_empty() {
            vec![EnsembleMember {
                sid: self.server_id,
                address: self.listen,
                observer: false,
            }]
        } else {
            self.ensemble.clone()
        };
        let mut quorum = QuorumSettings {
            me,
            members: BTreeMap::new(),
            voters: BTreeSet::new(),
            observers: BTreeSet::new(),
            finalize_wait: Duration::from_millis(self.election_finalize_ms),
            ping_interval: Duration::from_millis(self.ping_interval_ms.max(10)),
            sync_timeout: Duration::from_millis(self.sync_timeout_ms.max(100)),
            init_timeout: Duration::from_millis(self.init_timeout_ms.max(100)),
        };
        for member in members {
            let sid = ServerId(member.sid);
            if member.sid == 0 {
                return Err(invalid("a member has sid 0; sids start at 1".into()));
            }
            if quorum.members.insert(sid, member.address).is_some() {
                return Err(invalid(format!("sid {sid} is listed twice")));
            }
            if member.observer {
                quorum.observers.insert(sid);
            } else {
                quorum.voters.insert(sid);
            }
        }
        if !quorum.members.contains_key(&me) {
            return Err(invalid(format!("server_id {me} is not one of its members")));
        }
        if quorum.voters.is_empty() {
            return Err(invalid("every member is an observer".into()));
        }
        Ok(quorum)
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
        assert_eq!(settings.lease_limits.soft, Duration::from_secs(60));
        assert_eq!(settings.lease_limits.hard, Duration::from_secs(3600));
    }

    #[test]
    fn nonsense_values_are_refused() {
        for bad in [
            "data_dir = \"/x\"\numask = \"9\"",
            "data_dir = \"/x\"\ndefault_replication = 0",
            "data_dir = \"/x\"\nstale_after_ms = 10\ndead_after_ms = 5",
            "data_dir = \"/x\"\ndefault_block_size = 1000",
            "data_dir = \"/x\"\nlease_soft_limit_ms = 0",
            "data_dir = \"/x\"\nlease_soft_limit_ms = 2000\nlease_hard_limit_ms = 1000",
        ] {
            let config: NamenodeConfig = toml::from_str(bad).unwrap();
            assert!(config.validate().is_err(), "{bad}");
        }
        assert!(toml::from_str::<NamenodeConfig>("data_dir = \"/x\"\nbogus = 1").is_err());
    }

    #[test]
    fn a_cluster_secret_is_required_unless_explicitly_waived() {
        let config = |extra: &str| -> NamenodeConfig {
            toml::from_str(&format!("data_dir = \"/x\"\n{extra}")).unwrap()
        };
        let missing = config("").validate().unwrap();
        let err = missing.datanode_secret().unwrap_err().to_string();
        assert!(err.contains("insecure_no_cluster_secret"), "{err}");
        let waived = config("insecure_no_cluster_secret = true")
            .validate()
            .unwrap();
        assert!(waived.datanode_secret().unwrap().is_none());
        let set = config("cluster_secret = \"0123456789abcdef0123\"")
            .validate()
            .unwrap();
        assert_eq!(
            set.datanode_secret().unwrap().map(ClusterSecret::key),
            Some(&b"0123456789abcdef0123"[..])
        );
        assert!(config("cluster_secret = \"short\"").validate().is_err());
    }

    #[test]
    fn without_an_ensemble_the_namenode_is_alone() {
        let config: NamenodeConfig = toml::from_str("data_dir = \"/x\"").unwrap();
        let quorum = config.validate().unwrap().quorum;
        assert_eq!(quorum.me, ServerId(1));
        assert_eq!(quorum.voters, BTreeSet::from([ServerId(1)]));
        assert_eq!(quorum.members[&ServerId(1)], config.listen);
    }

    #[test]
    fn an_ensemble_lists_voters_and_observers() {
        let text = r#"
            data_dir = "/x"
            server_id = 2
            [[ensemble]]
            sid = 1
            address = "127.0.0.1:9001"
            [[ensemble]]
            sid = 2
            address = "127.0.0.1:9002"
            [[ensemble]]
            sid = 3
            address = "127.0.0.1:9003"
            observer = true
        "#;
        let config: NamenodeConfig = toml::from_str(text).unwrap();
        let quorum = config.validate().unwrap().quorum;
        assert_eq!(quorum.voters, BTreeSet::from([ServerId(1), ServerId(2)]));
        assert_eq!(quorum.observers, BTreeSet::from([ServerId(3)]));
        for bad in [
            // We are not a member.
            "data_dir = \"/x\"\nserver_id = 9\n[[ensemble]]\nsid = 1\naddress = \"127.0.0.1:1\"",
            // A sid twice.
            "data_dir = \"/x\"\n[[ensemble]]\nsid = 1\naddress = \"127.0.0.1:1\"\n[[ensemble]]\nsid = 1\naddress = \"127.0.0.1:2\"",
            // Nobody votes.
            "data_dir = \"/x\"\n[[ensemble]]\nsid = 1\naddress = \"127.0.0.1:1\"\nobserver = true",
        ] {
            let config: NamenodeConfig = toml::from_str(bad).unwrap();
            assert!(config.validate().is_err(), "{bad}");
        }
    }
}
