//! The datanode's Prometheus metrics, served as `/metrics` in the text
//! exposition format, every name with the `dfs_` prefix.
//!
//! State is read when scraped (a collector): replicas by state from the
//! block store, space from the data dir's file system (what heartbeats
//! report), live transfers. Events are counted where they happen, through
//! the [`Events`] every transfer shares (`DataPath::events`): bytes and
//! packets written and read, pipelines and their recoveries, checksum
//! errors, the block scanner's progress, and (by the tower layers of
//! `dfs_proto::request_metrics`) every DataTransfer call and WebHDFS request,
//! whose latency histograms are the per-op latency.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use dfs_proto::exposition::{self, gauge, labelled_gauges};
use dfs_proto::request_metrics::{RpcMetrics, WebHdfsMetrics, WebHdfsMetricsLayer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Registry, Unit};

use crate::block_store::BlockStore;
use crate::namenode_actor::storage_report;

/// Where a checksum error was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct FoundBy {
    /// `pipeline` (a packet the last datanode checked) or `scanner` (a
    /// stored replica the block scanner verified).
    pub(crate) found_by: &'static str,
}

impl FoundBy {
    pub(crate) const PIPELINE: FoundBy = FoundBy {
        found_by: "pipeline",
    };
    pub(crate) const SCANNER: FoundBy = FoundBy {
        found_by: "scanner",
    };
}

/// What the datanode counts as it happens; clones share the counts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Events {
    /// Data bytes of packets written to replicas.
    pub(crate) written_bytes: Counter,
    /// Packets written to replicas.
    pub(crate) written_packets: Counter,
    /// Data bytes of packets sent to readers.
    pub(crate) read_bytes: Counter,
    /// Packets sent to readers.
    pub(crate) read_packets: Counter,
    /// Write pipelines set up on this datanode (recoveries included).
    pub(crate) pipelines: Counter,
    /// Of those, pipeline recoveries (an existing replica continued).
    pub(crate) pipeline_recoveries: Counter,
    /// Chunks or replicas whose CRC32C did not match.
    pub(crate) checksum_errors: Family<FoundBy, Counter>,
    /// Replicas the block scanner verified intact.
    pub(crate) scanned_replicas: Counter,
    /// Bytes of those replicas.
    pub(crate) scanned_bytes: Counter,
    /// DataTransfer calls (the layer on its tonic server).
    pub(crate) rpc: RpcMetrics,
    /// WebHDFS requests (the layer on the HTTP router).
    pub(crate) webhdfs: WebHdfsMetrics,
}

/// What the datanode's metrics are read from.
#[derive(Debug)]
pub(crate) struct Sources {
    pub(crate) store: Arc<BlockStore>,
    /// Live pipelines, reads and copies.
    pub(crate) active: Arc<AtomicU32>,
    pub(crate) data_dir: PathBuf,
    pub(crate) events: Events,
}

/// Every metric of one datanode.
#[derive(Debug)]
pub(crate) struct DatanodeMetrics {
    registry: Registry,
    webhdfs: WebHdfsMetrics,
}

impl DatanodeMetrics {
    /// Registers every metric, reading from `sources`.
    pub(crate) fn new(sources: Sources) -> Self {
        let mut registry = Registry::with_prefix("dfs");
        let events = sources.events;
        events.rpc.register(&mut registry);
        events.webhdfs.register(&mut registry);
        let counters = [
            (
                "datanode_written",
                "Data bytes written to replicas",
                Some(Unit::Bytes),
                &events.written_bytes,
            ),
            (
                "datanode_written_packets",
                "Packets written to replicas",
                None,
                &events.written_packets,
            ),
            (
                "datanode_read",
                "Data bytes sent to readers",
                Some(Unit::Bytes),
                &events.read_bytes,
            ),
            (
                "datanode_read_packets",
                "Packets sent to readers",
                None,
                &events.read_packets,
            ),
            (
                "datanode_pipelines",
                "Write pipelines set up on this datanode, recoveries included",
                None,
                &events.pipelines,
            ),
            (
                "datanode_pipeline_recoveries",
                "Write pipelines that continued an existing replica (pipeline recovery)",
                None,
                &events.pipeline_recoveries,
            ),
            (
                "datanode_scanner_verified_replicas",
                "Replicas the block scanner verified intact",
                None,
                &events.scanned_replicas,
            ),
            (
                "datanode_scanner_verified",
                "Bytes of the replicas the block scanner verified intact",
                Some(Unit::Bytes),
                &events.scanned_bytes,
            ),
        ];
        for (name, help, unit, counter) in counters {
            match unit {
                Some(unit) => registry.register_with_unit(name, help, unit, counter.clone()),
                None => registry.register(name, help, counter.clone()),
            }
        }
        // Both sources from the start: a rate needs the zero before the first error.
        for found_by in [FoundBy::PIPELINE, FoundBy::SCANNER] {
            let _ = events.checksum_errors.get_or_create(&found_by);
        }
        registry.register(
            "datanode_checksum_errors",
            "CRC32C mismatches, by where they were found",
            events.checksum_errors.clone(),
        );
        registry.register_collector(Box::new(StateCollector {
            store: sources.store,
            active: sources.active,
            data_dir: sources.data_dir,
        }));
        DatanodeMetrics {
            registry,
            webhdfs: events.webhdfs,
        }
    }

    /// The layer for the HTTP router: WebHDFS requests by op and status.
    pub(crate) fn webhdfs_layer(&self) -> WebHdfsMetricsLayer {
        self.webhdfs.layer()
    }

    /// The exposition text of a scrape.
    ///
    /// # Errors
    /// Only if encoding fails (a formatter error).
    pub(crate) fn render(&self) -> Result<String, fmt::Error> {
        exposition::render(&self.registry)
    }
}

/// Replicas, space and transfers, read at each scrape.
#[derive(Debug)]
struct StateCollector {
    store: Arc<BlockStore>,
    active: Arc<AtomicU32>,
    data_dir: PathBuf,
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let counts = self.store.replica_counts();
        let e = &mut encoder;
        labelled_gauges(
            e,
            "datanode_replicas",
            "Replicas held, by state (rbw: being written or left by a pipeline).",
            "state",
            &[("finalized", counts.finalized), ("rbw", counts.rbw)],
        )?;
        let space = storage_report(&self.data_dir, &self.store);
        let bytes = Some(&Unit::Bytes);
        gauge(
            e,
            "datanode_capacity",
            "Capacity of the data dir's file system.",
            bytes,
            space.capacity,
        )?;
        gauge(
            e,
            "datanode_used",
            "Bytes of replica data and meta files.",
            bytes,
            space.used,
        )?;
        gauge(
            e,
            "datanode_remaining",
            "Free space on the data dir's file system.",
            bytes,
            space.remaining,
        )?;
        gauge(
            e,
            "datanode_active_transfers",
            "Pipelines, reads and copies in progress.",
            None,
            u64::from(self.active.load(Ordering::Relaxed)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_state_encode_with_prometheus_names() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = BlockStore::open(dir.path()).unwrap();
        let events = Events::default();
        let metrics = DatanodeMetrics::new(Sources {
            store: Arc::new(store),
            active: Arc::new(AtomicU32::new(2)),
            data_dir: dir.path().to_owned(),
            events: events.clone(),
        });
        events.written_bytes.inc_by(65_536);
        events.written_packets.inc();
        events
            .checksum_errors
            .get_or_create(&FoundBy::SCANNER)
            .inc();
        let text = metrics.render().unwrap();
        for line in [
            "# TYPE dfs_datanode_written_bytes_total counter",
            "dfs_datanode_written_bytes_total 65536",
            "dfs_datanode_written_packets_total 1",
            "dfs_datanode_read_bytes_total 0",
            "dfs_datanode_pipeline_recoveries_total 0",
            r#"dfs_datanode_checksum_errors_total{found_by="pipeline"} 0"#,
            "# HELP dfs_datanode_replicas Replicas held, by state (rbw: being written or left by a pipeline).\n",
            "# HELP dfs_datanode_written_bytes_total Data bytes written to replicas.\n",
            r#"dfs_datanode_checksum_errors_total{found_by="scanner"} 1"#,
            r#"dfs_datanode_replicas{state="finalized"} 0"#,
            "dfs_datanode_used_bytes 0",
            "dfs_datanode_active_transfers 2",
            "# TYPE dfs_datanode_capacity_bytes gauge",
        ] {
            assert!(text.contains(line), "no {line:?} in:\n{text}");
        }
    }
}
