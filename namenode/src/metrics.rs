//! The namenode's Prometheus metrics, served as `/metrics` in the text
//! exposition format, every name with the `dfs_` prefix.
//!
//! Most are read from the namenode's state when scraped (collectors), so
//! they cannot drift from it: the namespace census, block health, datanode
//! liveness and space, the quorum role and zxids. Only events are counted
//! as they happen: journal fsyncs (in the journal writer) and requests (by
//! the tower layers of `dfs_proto::request_metrics` on the gRPC and HTTP
//! servers).
//!
//! ```text
//!   GET /metrics ─► render: ask the quorum peer for its zxids (bounded wait)
//!                   ─► encode: collectors lock namespace, then blocks (the
//!                      crate's lock order), count, release
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dfs_proto::exposition::{self, gauge, labelled_gauges};
use dfs_proto::request_metrics::{
    RpcMetrics, RpcMetricsLayer, WebHdfsMetrics, WebHdfsMetricsLayer, latency_histogram,
};
use dfs_proto::v1;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::watch;

use crate::blocks::block_map::BlockHealth;
use crate::blocks::manager::BlockManager;
use crate::datanodes::{Liveness, Storage};
use crate::namesystem::Namesystem;
use crate::quorum::RoleStatus;
use crate::quorum::election::PeerState;
use crate::quorum::transport::QuorumService;

/// How long a scrape waits for the quorum peer's zxids before it answers
/// with the last ones it had.
const PEER_STATUS_WAIT: Duration = Duration::from_secs(1);

/// Histograms the journal writer observes at each group commit.
#[derive(Debug, Clone)]
pub(crate) struct JournalMetrics {
    /// Seconds of each log segment `fsync` (`sync_data`).
    pub(crate) fsync: Histogram,
    /// Txns made durable by each of those fsyncs.
    pub(crate) txns_per_fsync: Histogram,
}

impl Default for JournalMetrics {
    fn default() -> Self {
        JournalMetrics {
            fsync: latency_histogram(),
            // 1 to 2048: the writer batches at most 1024 by default.
            txns_per_fsync: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
        }
    }
}

/// What the namenode's metrics are read from.
#[derive(Debug)]
pub(crate) struct Sources {
    pub(crate) namesystem: Namesystem,
    pub(crate) blocks: Arc<Mutex<BlockManager>>,
    pub(crate) role: watch::Receiver<RoleStatus>,
    pub(crate) quorum: QuorumService,
    pub(crate) journal: JournalMetrics,
}

/// Every metric of one namenode.
#[derive(Debug)]
pub(crate) struct NamenodeMetrics {
    registry: Registry,
    rpc: RpcMetrics,
    webhdfs: WebHdfsMetrics,
    quorum: QuorumService,
    /// The peer's last answer, read by the quorum collector.
    peer: Arc<Mutex<Option<v1::PeerStatus>>>,
}

impl NamenodeMetrics {
    /// Registers every metric, reading from `sources`.
    pub(crate) fn new(sources: Sources) -> Self {
        let mut registry = Registry::with_prefix("dfs");
        let rpc = RpcMetrics::default();
        rpc.register(&mut registry);
        let webhdfs = WebHdfsMetrics::default();
        webhdfs.register(&mut registry);
        registry.register_with_unit(
            "namenode_journal_fsync_duration",
            "Time of each journal segment fsync (one per group commit)",
            Unit::Seconds,
            sources.journal.fsync,
        );
        registry.register(
            "namenode_journal_txns_per_fsync",
            "Transactions made durable by each journal fsync",
            sources.journal.txns_per_fsync,
        );
        let peer = Arc::new(Mutex::new(None));
        registry.register_collector(Box::new(StateCollector {
            namesystem: sources.namesystem,
            blocks: sources.blocks,
        }));
        registry.register_collector(Box::new(QuorumCollector {
            role: sources.role,
            peer: Arc::clone(&peer),
        }));
        NamenodeMetrics {
            registry,
            rpc,
            webhdfs,
            quorum: sources.quorum,
            peer,
        }
    }

    /// The layer for the tonic server: per-method calls, errors, latency.
    pub(crate) fn rpc_layer(&self) -> RpcMetricsLayer {
        self.rpc.layer()
    }

    /// The layer for the HTTP router: WebHDFS requests by op and status.
    pub(crate) fn webhdfs_layer(&self) -> WebHdfsMetricsLayer {
        self.webhdfs.layer()
    }

    /// The exposition text of a scrape.
    ///
    /// # Errors
    /// Only if encoding fails (a formatter error).
    pub(crate) async fn render(&self) -> Result<String, fmt::Error> {
        match tokio::time::timeout(PEER_STATUS_WAIT, self.quorum.peer_status()).await {
            Ok(Ok(status)) => *lock(&self.peer) = Some(status),
            Ok(Err(e)) => tracing::debug!(error = %e.message(), "no peer status for metrics"),
            Err(_) => tracing::debug!("peer status for metrics timed out"),
        }
        self.encode()
    }

    /// The exposition text, with whatever peer status is at hand.
    fn encode(&self) -> Result<String, fmt::Error> {
        exposition::render(&self.registry)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The namespace, its blocks and the datanodes, read at each scrape.
#[derive(Debug)]
struct StateCollector {
    namesystem: Namesystem,
    blocks: Arc<Mutex<BlockManager>>,
}

/// What [`StateCollector`] reads under the locks, so that it encodes
/// without holding them.
#[derive(Debug, Default)]
struct StateSnapshot {
    census: crate::namespace::Census,
    health: BlockHealth,
    pending_deletions: u64,
    live: u64,
    stale: u64,
    dead: u64,
    /// Summed over live datanodes, as HDFS does.
    space: Storage,
}

impl StateCollector {
    fn snapshot(&self) -> StateSnapshot {
        let now = Instant::now();
        // Namespace before blocks: the crate's lock order.
        self.namesystem.read(|ns| {
            let blocks = lock(&self.blocks);
            let mut health = BlockHealth::default();
            let census = ns.census(|block, replication| {
                blocks
                    .map
                    .judge(&mut health, block.id, block.gen_stamp, replication);
            });
            let mut snapshot = StateSnapshot {
                census,
                health,
                pending_deletions: blocks.map.pending_deletions(),
                ..StateSnapshot::default()
            };
            for node in blocks.datanodes.all() {
                match blocks.datanodes.liveness(node, now) {
                    Liveness::Live => {
                        snapshot.live += 1;
                        snapshot.space.capacity += node.storage.capacity;
                        snapshot.space.used += node.storage.used;
                        snapshot.space.remaining += node.storage.remaining;
                    }
                    Liveness::Stale => snapshot.stale += 1,
                    Liveness::Dead => snapshot.dead += 1,
                }
            }
            snapshot
        })
    }
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let s = self.snapshot();
        let e = &mut encoder;
        let c = &s.census;
        gauge(e, "namenode_files", "Files in the namespace", None, c.files)?;
        gauge(
            e,
            "namenode_directories",
            "Directories in the namespace, the root included.",
            None,
            c.directories,
        )?;
        gauge(e, "namenode_blocks", "Blocks of all files", None, c.blocks)?;
        gauge(
            e,
            "namenode_files_under_construction",
            "Files open for writing (holding a lease).",
            None,
            c.files_under_construction,
        )?;
        let h = &s.health;
        gauge(
            e,
            "namenode_under_replicated_blocks",
            "Complete blocks with fewer healthy replicas than their file's replication, but some.",
            None,
            h.under_replicated,
        )?;
        gauge(
            e,
            "namenode_corrupt_blocks",
            "Complete blocks with at least one replica known corrupt.",
            None,
            h.corrupt,
        )?;
        gauge(
            e,
            "namenode_missing_blocks",
            "Complete blocks without a single healthy replica.",
            None,
            h.missing,
        )?;
        gauge(
            e,
            "namenode_pending_deletion_blocks",
            "Replica deletions queued for datanodes' next heartbeats.",
            None,
            s.pending_deletions,
        )?;
        labelled_gauges(
            e,
            "namenode_datanodes",
            "Registered datanodes by liveness.",
            "state",
            &[("live", s.live), ("stale", s.stale), ("dead", s.dead)],
        )?;
        let bytes = Some(&Unit::Bytes);
        gauge(
            e,
            "namenode_capacity",
            "Capacity of the live datanodes' volumes.",
            bytes,
            s.space.capacity,
        )?;
        gauge(
            e,
            "namenode_used",
            "Bytes of replicas on the live datanodes.",
            bytes,
            s.space.used,
        )?;
        gauge(
            e,
            "namenode_remaining",
            "Free space on the live datanodes' volumes.",
            bytes,
            s.space.remaining,
        )
    }
}

/// This namenode's place in the quorum, read at each scrape.
#[derive(Debug)]
struct QuorumCollector {
    role: watch::Receiver<RoleStatus>,
    peer: Arc<Mutex<Option<v1::PeerStatus>>>,
}

/// Every quorum state, as labelled.
const STATES: [(PeerState, &str); 4] = [
    (PeerState::Looking, "looking"),
    (PeerState::Following, "following"),
    (PeerState::Leading, "leading"),
    (PeerState::Observing, "observing"),
];

impl Collector for QuorumCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let role = self.role.borrow().clone();
        let e = &mut encoder;
        let states: Vec<(&str, u64)> = STATES
            .iter()
            .map(|&(state, label)| (label, u64::from(role.state == state)))
            .collect();
        labelled_gauges(
            e,
            "namenode_quorum_state",
            "1 for this namenode's quorum state, 0 for the others.",
            "state",
            &states,
        )?;
        gauge(
            e,
            "namenode_serving",
            "1 while this namenode leads with a quorum and serves clients.",
            None,
            u64::from(role.serves(Instant::now())),
        )?;
        gauge(
            e,
            "namenode_epoch",
            "This namenode's current epoch.",
            None,
            u64::from(role.epoch.0),
        )?;
        if let Some(peer) = lock(&self.peer).as_ref() {
            gauge(
                e,
                "namenode_last_zxid",
                "The last zxid in this namenode's journal (epoch << 32 | counter).",
                None,
                peer.last_zxid,
            )?;
            gauge(
                e,
                "namenode_applied_zxid",
                "The last zxid applied to this namenode's namespace.",
                None,
                peer.applied_zxid,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_histograms_and_quorum_gauges_encode_with_prometheus_names() {
        let journal = JournalMetrics::default();
        journal.fsync.observe(0.002);
        journal.txns_per_fsync.observe(7.0);
        let mut registry = Registry::with_prefix("dfs");
        registry.register_with_unit(
            "namenode_journal_fsync_duration",
            "fsync",
            Unit::Seconds,
            journal.fsync.clone(),
        );
        registry.register(
            "namenode_journal_txns_per_fsync",
            "txns",
            journal.txns_per_fsync.clone(),
        );
        let (_tx, role) = watch::channel(RoleStatus {
            state: PeerState::Leading,
            serving: true,
            lease_until: None,
            epoch: dfs_proto::ids::Epoch(4),
            leader: None,
        });
        let peer = Arc::new(Mutex::new(Some(v1::PeerStatus {
            last_zxid: (4 << 32) | 9,
            applied_zxid: (4 << 32) | 8,
            ..v1::PeerStatus::default()
        })));
        registry.register_collector(Box::new(QuorumCollector { role, peer }));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        for line in [
            "# TYPE dfs_namenode_journal_fsync_duration_seconds histogram",
            "dfs_namenode_journal_fsync_duration_seconds_count 1",
            "dfs_namenode_journal_txns_per_fsync_sum 7",
            r#"dfs_namenode_quorum_state{state="leading"} 1"#,
            r#"dfs_namenode_quorum_state{state="following"} 0"#,
            "dfs_namenode_serving 1",
            "dfs_namenode_epoch 4",
            &format!("dfs_namenode_last_zxid {}", (4u64 << 32) | 9),
            &format!("dfs_namenode_applied_zxid {}", (4u64 << 32) | 8),
        ] {
            assert!(text.contains(line), "no {line:?} in:\n{text}");
        }
    }
}
