//! What every transfer on this datanode shares: the block store, the report
//! hub, the registry of live writers, the count of live transfers, timeouts,
//! the block access gate, the recent pipelines, and how to open a connection
//! to another datanode.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dfs_proto::ids::BlockId;
use dfs_proto::v1::data_transfer_client::DataTransferClient;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::{Channel, Endpoint};

use crate::block_access::BlockAccess;
use crate::block_store::BlockStore;
use crate::metrics::Events;
use crate::recent_pipelines::RecentPipelines;
use crate::reports::ReportHub;

/// Largest gRPC message on the data path: a packet is 64 KiB of data plus
/// 512 B of checksums, and a read packet 1 MiB of data plus its checksums.
pub(crate) const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// Largest HTTP/2 DATA frame this node accepts (and asks peers for) on the
/// data path: a whole 64 KiB packet in one frame instead of five 16 KiB ones.
pub(crate) const MAX_FRAME: u32 = 256 * 1024;

/// Timeouts and addresses of the data path.
#[derive(Debug, Clone)]
pub(crate) struct TransferSettings {
    /// Source IP of every outgoing connection (this node's listen IP), so
    /// that peers see this node's rack; unspecified = let the kernel pick.
    pub(crate) local_ip: IpAddr,
    /// How long a datanode waits for its downstream's ack of a packet.
    pub(crate) ack_timeout: Duration,
    /// How long a pipeline waits for the next message from upstream.
    pub(crate) idle_timeout: Duration,
    /// TCP connect (and WriteBlock set-up) timeout towards another datanode.
    pub(crate) connect_timeout: Duration,
    /// This datanode's id, as it names itself when it acts as a client.
    pub(crate) node_name: String,
}

impl TransferSettings {
    /// Production defaults with the given source IP and name.
    pub(crate) fn new(local_ip: IpAddr, node_name: String) -> Self {
        TransferSettings {
            local_ip,
            ack_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            node_name,
        }
    }
}

/// What every transfer shares; one per datanode.
#[derive(Debug)]
pub(crate) struct DataPath {
    /// The replicas.
    pub(crate) store: Arc<BlockStore>,
    /// Where finalized, deleted and corrupt replicas are announced.
    pub(crate) reports: ReportHub,
    /// The pipeline currently writing each block.
    pub(crate) writers: Arc<Writers>,
    /// Live pipelines, reads and copies (the heartbeat's `active_transfers`).
    pub(crate) active: Arc<AtomicU32>,
    /// Timeouts and addresses.
    pub(crate) settings: TransferSettings,
    /// Owns every task a transfer spawns.
    pub(crate) tasks: TaskTracker,
    /// Cancelled at shutdown; every transfer's token is a child of it.
    pub(crate) shutdown: CancellationToken,
    /// Block keys and the token check every transfer passes first.
    pub(crate) access: BlockAccess,
    /// The last pipelines this node took part in (status page).
    pub(crate) pipelines: RecentPipelines,
    /// What transfers count as they happen (bytes, packets, pipelines).
    pub(crate) events: Events,
}

impl DataPath {
    /// Counts a transfer as live until the returned guard is dropped.
    pub(crate) fn start_transfer(&self) -> ActiveTransfer {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveTransfer(Arc::clone(&self.active))
    }

    /// A DataTransfer client of the datanode at `address` (host:port), bound
    /// to this node's IP, with Nagle off.
    ///
    /// # Errors
    /// The address is malformed, or the connection fails or times out.
    pub(crate) async fn connect(
        &self,
        address: &str,
    ) -> Result<DataTransferClient<Channel>, tonic::Status> {
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| {
                tonic::Status::invalid_argument(format!("bad datanode address {address:?}: {e}"))
            })?
            .connect_timeout(self.settings.connect_timeout)
            .tcp_nodelay(true)
            .max_frame_size(MAX_FRAME);
        let endpoint = if self.settings.local_ip.is_unspecified() {
            endpoint
        } else {
            endpoint.local_address(Some(self.settings.local_ip))
        };
        let channel = endpoint.connect().await.map_err(|e| {
            tonic::Status::unavailable(format!("connecting to datanode {address}: {e}"))
        })?;
        Ok(DataTransferClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE))
    }
}

/// Decrements the live-transfer count when dropped.
#[derive(Debug)]
pub(crate) struct ActiveTransfer(Arc<AtomicU32>);

impl Drop for ActiveTransfer {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The pipeline writing each block, so that recovery can stop an old one
/// that still holds the replica.
#[derive(Debug, Default)]
pub(crate) struct Writers {
    slots: Mutex<HashMap<BlockId, Slot>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Slot {
    id: u64,
    cancel: CancellationToken,
    done: CancellationToken,
}

impl Writers {
    fn lock(&self) -> MutexGuard<'_, HashMap<BlockId, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that a pipeline writes `block`; `cancel` stops it. The slot is
    /// freed when the guard is dropped, which must happen after the
    /// pipeline's replica writer is dropped.
    pub(crate) fn register(
        self: &Arc<Self>,
        block: BlockId,
        cancel: CancellationToken,
    ) -> WriterGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let done = CancellationToken::new();
        self.lock().insert(
            block,
            Slot {
                id,
                cancel,
                done: done.clone(),
            },
        );
        WriterGuard {
            writers: Arc::clone(self),
            block,
            id,
            done,
        }
    }

    /// Stops the pipeline writing `block`, if any, and waits (at most
    /// `deadline`) until it has let go of the replica. Returns whether none is left.
    ///
    /// Cancel-safe: dropping it only stops the waiting.
    pub(crate) async fn preempt(&self, block: BlockId, deadline: Duration) -> bool {
        let done = match self.lock().get(&block) {
            Some(slot) => {
                slot.cancel.cancel();
                slot.done.clone()
            }
            None => return true,
        };
        tracing::info!(%block, "stopping the old pipeline of the block");
        tokio::time::timeout(deadline, done.cancelled())
            .await
            .is_ok()
    }
}

/// Frees a block's writer slot when dropped.
#[derive(Debug)]
pub(crate) struct WriterGuard {
    writers: Arc<Writers>,
    block: BlockId,
    id: u64,
    done: CancellationToken,
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        let mut slots = self.writers.lock();
        if slots.get(&self.block).is_some_and(|s| s.id == self.id) {
            slots.remove(&self.block);
        }
        drop(slots);
        self.done.cancel();
    }
}
