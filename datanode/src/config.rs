//! The datanode's configuration file (TOML, serde defaults).

use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dfs_proto::cluster_proof::ClusterSecret;
use serde::Deserialize;

use crate::error::Error;
use crate::scanner::ScanSettings;

/// The datanode's TOML configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatanodeConfig {
    /// Every namenode's gRPC address. Required, at least one.
    pub namenodes: Vec<SocketAddr>,
    /// Data-transfer address. Its IP is also the source address of every
    /// outgoing connection, which is how the namenode finds this node's rack.
    /// Default `127.0.0.1:9866`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// HTTP address of WebHDFS, `/metrics` and the status page (HDFS's
    /// `dfs.datanode.http.address`). Default: none, no HTTP server.
    #[serde(default)]
    pub http_address: Option<SocketAddr>,
    /// Directory of the replicas and the datanode id. Required.
    pub data_dir: PathBuf,
    /// Milliseconds between heartbeats. Default 3 000.
    #[serde(default = "default_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    /// Milliseconds between full block reports (one is also sent at every
    /// registration). Default 21 600 000 (6 h).
    #[serde(default = "default_block_report_interval_ms")]
    pub block_report_interval_ms: u64,
    /// Benchmark only (`dfs-cluster bench`): accept, checksum, forward, ack
    /// and finalize replicas as usual but write none of their data or
    /// checksums to disk, so a put measures the pipeline without the disk.
    /// Replicas written this way cannot be read back (the start-up scan
    /// calls them corrupt). Default false.
    #[serde(default)]
    pub discard_data: bool,
    /// Milliseconds between two verifications of the same finalized replica
    /// by the block scanner, which reads every replica and checks it
    /// against its stored checksums (HDFS's `dfs.datanode.scan.period.hours`).
    /// 0 disables the scanner. Default 1 814 400 000 (504 h = 3 weeks).
    #[serde(default = "default_scan_period_ms")]
    pub scan_period_ms: u64,
    /// Bytes per second the block scanner may read, so that it never starves
    /// reads and writes (HDFS's `dfs.block.scanner.volume.bytes.per.second`).
    /// Must be positive. Default 1 048 576 (1 MiB/s).
    #[serde(default = "default_scan_bytes_per_second")]
    pub scan_bytes_per_second: u64,
    /// Threads of the datanode's async runtime. Default: one per CPU core.
    /// A machine that runs several datanodes (a local cluster) is faster
    /// with fewer: every packet crosses tasks, and a wake-up on another
    /// thread costs more than the work itself when the cores are shared.
    #[serde(default)]
    pub worker_threads: Option<usize>,
    /// The secret this cluster's namenodes and datanodes share, at least 16
    /// bytes (`dfs-cluster up` writes one): every registration, heartbeat
    /// and block report proves it. Required unless `insecure_no_cluster_secret`.
    #[serde(default)]
    pub cluster_secret: Option<String>,
    /// Runs without a cluster secret (only against namenodes that set the
    /// same). Default false: without `cluster_secret` the datanode refuses to start.
    #[serde(default)]
    pub insecure_no_cluster_secret: bool,
    /// Refuse every data transfer (read, write, copy) without a valid block
    /// access token from a namenode (HDFS's `dfs.block.access.token.enable`).
    /// Turn it off only together with the namenodes'. Default true.
    #[serde(default = "default_true")]
    pub block_access_token_enable: bool,
}

fn default_true() -> bool {
    true
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9866))
}
fn default_heartbeat_interval_ms() -> u64 {
    3_000
}
fn default_block_report_interval_ms() -> u64 {
    6 * 60 * 60 * 1000
}
fn default_scan_period_ms() -> u64 {
    504 * 60 * 60 * 1000
}
fn default_scan_bytes_per_second() -> u64 {
    1024 * 1024
}

impl DatanodeConfig {
    /// Reads, parses and checks a TOML file.
    ///
    /// # Errors
    /// The file is unreadable, malformed or out of range.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let config_error = |reason: String| Error::Config {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| config_error(e.to_string()))?;
        let config: DatanodeConfig =
            toml::from_str(&text).map_err(|e| config_error(e.to_string()))?;
        config.check().map_err(config_error)?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if self.namenodes.is_empty() {
            return Err("namenodes: at least one namenode address is needed".into());
        }
        if self.heartbeat_interval_ms == 0 {
            return Err("heartbeat_interval_ms must be positive".into());
        }
        if self.block_report_interval_ms == 0 {
            return Err("block_report_interval_ms must be positive".into());
        }
        if self.scan_bytes_per_second == 0 {
            return Err("scan_bytes_per_second must be positive".into());
        }
        if self.worker_threads == Some(0) {
            return Err("worker_threads must be at least 1".into());
        }
        Ok(())
    }

    /// The secret to prove to the namenodes; `None` when the operator chose
    /// to run without one. Checked when the datanode starts.
    ///
    /// # Errors
    /// A secret too short, or none without `insecure_no_cluster_secret`.
    pub(crate) fn cluster_secret(&self) -> Result<Option<ClusterSecret>, String> {
        match (&self.cluster_secret, self.insecure_no_cluster_secret) {
            (Some(text), _) => ClusterSecret::new(text).map(Some),
            (None, true) => Ok(None),
            (None, false) => Err(
                "cluster_secret is not set: the namenodes only accept datanodes \
                 that prove the cluster's secret (`dfs-cluster up` writes one into every \
                 node's config); set insecure_no_cluster_secret = true to run without one"
                    .into(),
            ),
        }
    }

    /// Time between heartbeats.
    pub(crate) fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    /// Time between full block reports.
    pub(crate) fn block_report_interval(&self) -> Duration {
        Duration::from_millis(self.block_report_interval_ms)
    }

    /// The block scanner's period and rate; `None` when it is disabled.
    pub(crate) fn block_scanner(&self) -> Option<ScanSettings> {
        let period = Duration::from_millis(self.scan_period_ms);
        if period.is_zero() {
            return None;
        }
        // check() refuses 0; a config built without it gets no scanner rather than a stuck one.
        let bytes_per_second = NonZeroU64::new(self.scan_bytes_per_second)?;
        Some(ScanSettings {
            period,
            bytes_per_second,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_checks() {
        let ok: DatanodeConfig =
            toml::from_str("namenodes = [\"127.0.0.1:8020\"]\ndata_dir = \"/d\"").unwrap();
        assert_eq!(ok.heartbeat_interval(), Duration::from_secs(3));
        assert_eq!(ok.block_report_interval(), Duration::from_secs(6 * 3600));
        assert!(ok.check().is_ok());
        assert_eq!(ok.worker_threads, None);
        let scanner = ok.block_scanner().expect("the scanner is on by default");
        assert_eq!(scanner.period, Duration::from_secs(504 * 3600));
        assert_eq!(scanner.bytes_per_second.get(), 1024 * 1024);
        let none: DatanodeConfig = toml::from_str("namenodes = []\ndata_dir = \"/d\"").unwrap();
        assert!(none.check().is_err());
        let idle: DatanodeConfig = toml::from_str(
            "namenodes = [\"127.0.0.1:8020\"]\ndata_dir = \"/d\"\nworker_threads = 0",
        )
        .unwrap();
        assert!(idle.check().is_err());
    }

    #[test]
    fn a_cluster_secret_is_required_unless_explicitly_waived() {
        let config = |extra: &str| -> DatanodeConfig {
            toml::from_str(&format!(
                "namenodes = [\"127.0.0.1:8020\"]\ndata_dir = \"/d\"\n{extra}"
            ))
            .unwrap()
        };
        let err = config("").cluster_secret().unwrap_err();
        assert!(err.contains("insecure_no_cluster_secret"), "{err}");
        assert_eq!(
            config("insecure_no_cluster_secret = true").cluster_secret(),
            Ok(None)
        );
        let set = config("cluster_secret = \"0123456789abcdef\"").cluster_secret();
        assert_eq!(
            set.unwrap().as_ref().map(ClusterSecret::key),
            Some(&b"0123456789abcdef"[..])
        );
        assert!(
            config("cluster_secret = \"short\"")
                .cluster_secret()
                .is_err()
        );
    }

    #[test]
    fn a_zero_scan_period_disables_the_scanner_and_a_zero_rate_is_refused() {
        let config = |extra: &str| -> DatanodeConfig {
            toml::from_str(&format!(
                "namenodes = [\"127.0.0.1:8020\"]\ndata_dir = \"/d\"\n{extra}"
            ))
            .unwrap()
        };
        let off = config("scan_period_ms = 0");
        assert!(off.check().is_ok());
        assert_eq!(off.block_scanner(), None);
        let fast = config("scan_period_ms = 1500\nscan_bytes_per_second = 65536");
        assert_eq!(
            fast.block_scanner(),
            Some(ScanSettings {
                period: Duration::from_millis(1500),
                bytes_per_second: NonZeroU64::new(65536).unwrap(),
            })
        );
        assert!(config("scan_bytes_per_second = 0").check().is_err());
    }
}
