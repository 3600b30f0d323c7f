//! The write pipeline at one datanode: receive a packet, forward it
//! downstream, write it to the rbw replica, merge the downstream's ack with
//! this node's status and send it upstream.
//!
//! ```text
//!  upstream ──packets──► receiver ──► downstream[0] (WriteBlock, header = downstream[1..])
//!     ▲                     │ bounded (DISK_QUEUE packets)                │
//!     │                     v                                             │ acks
//!     │                disk task (one blocking thread: write, sync)       │
//!     │                     │ local status, in order                      │
//!     └──────acks───── acker ◄────────────────────────────────────────────┘
//!                      statuses = [mine, ...downstream's]
//! ```
//!
//! Memory is bounded by the channels (a few packets per stage) and the
//! HTTP/2 windows, never by the block size.
//!
//! # What the client can rely on
//!
//! - One [`Ack`] per packet, in seqno order; `statuses[0]` is this node's,
//!   then one per downstream node that answered.
//! - This node's status: `Error` when its disk write (or the finalize) failed;
//!   `ErrorChecksum` at the last node of the pipeline (the only one that
//!   verifies) when a chunk disagrees with its CRC32C, in which case nothing
//!   of that packet is written and nothing is finalized. After either, later
//!   packets are not written and are `Error`.
//! - Downstream failure: when the connection to `downstream[0]` cannot be set
//!   up, breaks, ends early, answers out of order, or does not ack a packet
//!   within the ack timeout, every outstanding and later packet is acked
//!   `[mine, Error]` (`Error` at the index of the node this one could not
//!   hear from). When the downstream acks with an error of its own (say
//!   `[Success, Error]`), that ack is relayed (`[mine, Success, Error]`) and
//!   later packets get the same downstream part, so the failure point stays
//!   the same on the way up.
//! - After the first ack that carries any error, the node stops reading new
//!   packets, acks those already received, and ends the stream (status OK).
//!   If no packet was outstanding when the downstream failed, the next packet
//!   received is written and acked with the error. The client then drops the
//!   failed node and recovers.
//! - A malformed packet (seqno not increasing, offset neither the length so
//!   far nor a chunk boundary before it, a checksum count that is not one per
//!   started 512-byte chunk of the block, a packet after the last one) ends the stream
//!   with `INVALID_ARGUMENT` after the acks of the packets before it.
//! - The packet flagged `last_packet_in_block` is written, fsynced, and (once
//!   the downstream acked it without `ErrorChecksum`) the replica is
//!   finalized before the ack goes up; then every namenode gets an
//!   incremental report. With `keep_rbw` the replica stays rbw instead. A
//!   replica is never finalized unless its last packet arrived whole.
//! - The upstream going away (stream error, or a close before the last
//!   packet) or no message for the idle timeout leaves the replica in rbw/
//!   for recovery, and every namenode gets an incremental report of it with
//!   its length (lease recovery chooses the block's length from those).
//! - Recovery (`Setup::Recover`): an older pipeline of the block still
//!   running here is stopped first; the replica (rbw, or finalized) of the
//!   previous (or already the new) gen stamp is bumped to the new one and
//!   cut back to `acked_length`, then the pipeline continues as usual. A
//!   finalized replica is never cut back nor overwritten: resent packets
//!   within its length are acked without a write, one that starts inside it
//!   and ends past it is refused (`INVALID_ARGUMENT`).
//! - Every WriteBlock first passes the block access token check (WRITE on
//!   the header's block and new gen stamp, `crate::block_access`); the
//!   token travels down the pipeline in each header.
//!
//! Tasks: the receiver and the acker are tokio tasks, the disk task one
//! blocking thread, all in the datanode's `TaskTracker`. The finalize runs
//! on its own blocking thread that nothing aborts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dfs_proto::block_token::BlockToken;
use dfs_proto::checksum::{CHUNK_SIZE, packet_chunks};
use dfs_proto::ids::{BlockId, GenStamp};
use dfs_proto::v1;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::block_store::{self, BlockStore, RbwWriter};
use crate::data_path::{ActiveTransfer, DataPath, WriterGuard};
use crate::metrics::{Events, FoundBy};
use crate::reports::ReportHub;

/// Packets queued between the receiver and the disk task.
const DISK_QUEUE: usize = 8;
/// Packets queued towards the downstream connection.
const FORWARD_QUEUE: usize = 8;
/// Local results queued between the disk task and the acker (no data).
const RESULT_QUEUE: usize = 32;
/// Acks queued towards upstream.
const ACK_QUEUE: usize = 32;
/// How long a recovery waits for an old pipeline of the block to let go.
const PREEMPT_DEADLINE: Duration = Duration::from_secs(10);

/// How the replica comes to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Setup {
    /// A new replica.
    Create,
    /// Pipeline recovery: continue the replica of `previous` from `acked_length`.
    Recover {
        /// The gen stamp the replicas had before the recovery.
        previous: GenStamp,
        /// Bytes acknowledged by every survivor; replicas are cut back to it.
        acked_length: u64,
    },
}

/// A datanode further down the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// Its id (logs).
    pub(crate) datanode_id: String,
    /// host:port of its DataTransfer service.
    pub(crate) transfer_address: String,
    /// Its rack (passed on).
    pub(crate) rack: String,
}

/// The first message of a WriteBlock stream.
#[derive(Debug, Clone)]
pub(crate) struct WriteHeader {
    /// The block.
    pub(crate) block: BlockId,
    /// The gen stamp the replica gets.
    pub(crate) gen_stamp: GenStamp,
    /// The nodes after this one, in order.
    pub(crate) downstream: Vec<Target>,
    /// Who writes (logs).
    pub(crate) client_name: String,
    /// New replica or recovery.
    pub(crate) setup: Setup,
    /// Leave the replica rbw after the last packet (a TransferRbw copy).
    pub(crate) keep_rbw: bool,
    /// WRITE access to the block, checked by the service and passed down.
    pub(crate) token: Option<BlockToken>,
}

/// One packet of block data.
#[derive(Debug, Clone)]
pub(crate) struct Packet {
    /// 0, 1, 2, ... within the stream.
    pub(crate) seqno: u64,
    /// Block offset of `data`.
    pub(crate) offset: u64,
    /// The bytes.
    pub(crate) data: Bytes,
    /// One CRC32C per 512-byte chunk of `data`, little-endian u32s (as on the wire).
    pub(crate) checksums: Bytes,
    /// The block's last packet.
    pub(crate) is_last: bool,
}

/// A datanode's verdict on a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckStatus {
    /// Written (and forwarded).
    Success,
    /// Not written, or the node is unreachable.
    Error,
    /// The data disagrees with its checksums.
    ErrorChecksum,
}

/// The acknowledgement of one packet by this node and those after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ack {
    /// The packet's seqno.
    pub(crate) seqno: u64,
    /// This node's status, then each downstream node's.
    pub(crate) statuses: Vec<AckStatus>,
}

/// Why the upstream stream yielded no packet.
#[derive(Debug)]
pub(crate) enum UpstreamError {
    /// A message that is not a well-formed packet (a second header, ...).
    Malformed(String),
    /// The stream itself failed.
    Broken(tonic::Status),
}

/// Packets from upstream, already converted from the wire.
pub(crate) type Upstream = BoxStream<'static, Result<Packet, UpstreamError>>;

/// Acks to upstream; an `Err` ends the stream with that status.
pub(crate) type Acks = mpsc::Receiver<Result<Ack, tonic::Status>>;

/// Starts a pipeline stage for `header`, fed by `upstream`.
///
/// # Errors
/// The replica cannot be set up: it exists (`ALREADY_EXISTS`), the recovery
/// finds none (`NOT_FOUND`, `FAILED_PRECONDITION`), or the disk fails.
pub(crate) async fn write_block(
    dp: &Arc<DataPath>,
    header: WriteHeader,
    upstream: Upstream,
) -> Result<Acks, tonic::Status> {
    let span = tracing::info_span!(
        "write_block",
        block = %header.block,
        gen_stamp = %header.gen_stamp,
        pipeline_pos = header.downstream.len(),
    );
    start(dp, header, upstream).instrument(span).await
}

async fn start(
    dp: &Arc<DataPath>,
    header: WriteHeader,
    upstream: Upstream,
) -> Result<Acks, tonic::Status> {
    tracing::debug!(client = %header.client_name, downstream = header.downstream.len(), setup = ?header.setup, "write block");
    let block = header.block;
    if matches!(header.setup, Setup::Recover { .. })
        && !dp.writers.preempt(block, PREEMPT_DEADLINE).await
    {
        return Err(tonic::Status::unavailable(format!(
            "an older pipeline of {block} did not stop in time"
        )));
    }
    let store = Arc::clone(&dp.store);
    let (gs, setup) = (header.gen_stamp, header.setup);
    let writer = tokio::task::spawn_blocking(move || match setup {
        Setup::Create => store.create_rbw(block, gs),
        Setup::Recover {
            previous,
            acked_length,
        } => store.recover_rbw(block, previous, gs, acked_length),
    })
    .await
    .map_err(|e| tonic::Status::internal(format!("replica set-up task failed: {e}")))?
    .map_err(tonic::Status::from)?;
    if let Setup::Recover { acked_length, .. } = setup
        && writer.finalized_floor() > acked_length
    {
        tracing::warn!(client = %header.client_name, acked_length, finalized = writer.finalized_floor(),
            "recovery below a finalized replica's length: its bytes are kept, not cut back");
    }
    dp.events.pipelines.inc();
    if matches!(setup, Setup::Recover { .. }) {
        dp.events.pipeline_recoveries.inc();
    }
    let cancel = dp.shutdown.child_token();
    let replica = OpenReplica {
        writer,
        _guard: dp.writers.register(block, cancel.clone()),
    };
    let transfer = dp.start_transfer();
    let downstream_failed = CancellationToken::new();
    let (forward, acks, failure) = match header.downstream.split_first() {
        None => (None, None, None),
        Some((next, rest)) => {
            let next_header = WriteHeader {
                downstream: rest.to_vec(),
                ..header.clone()
            };
            match connect_downstream(dp, next, next_header).await {
                Ok((tx, acks)) => (Some(tx), Some(acks), None),
                Err(status) => {
                    tracing::warn!(peer = %next.transfer_address, error = %status.message(), "downstream set-up failed");
                    downstream_failed.cancel();
                    (None, None, Some(vec![AckStatus::Error]))
                }
            }
        }
    };
    let initial_len = match setup {
        Setup::Create => 0,
        Setup::Recover { acked_length, .. } => acked_length,
    };
    let (disk_tx, disk_rx) = mpsc::channel(DISK_QUEUE);
    let (local_tx, local_rx) = mpsc::channel(RESULT_QUEUE);
    let (ack_tx, ack_rx) = mpsc::channel(ACK_QUEUE);
    let stop = cancel.child_token();
    let receiver = Receiver {
        upstream,
        forward,
        disk: disk_tx,
        stop: stop.clone(),
        downstream_failed: downstream_failed.clone(),
        idle_timeout: dp.settings.idle_timeout,
        len: initial_len,
        last_seqno: None,
    };
    let disk = DiskTask {
        replica: Some(replica),
        verify: header.downstream.is_empty(),
        rx: disk_rx,
        tx: local_tx,
        broken: false,
        store: Arc::clone(&dp.store),
        reports: dp.reports.clone(),
        events: dp.events.clone(),
    };
    let acker = Acker {
        local: local_rx,
        acks,
        failure,
        upstream: ack_tx,
        cancel,
        stop,
        downstream_failed,
        ack_timeout: dp.settings.ack_timeout,
        keep_rbw: header.keep_rbw,
        store: Arc::clone(&dp.store),
        reports: dp.reports.clone(),
        _transfer: transfer,
    };
    let span = tracing::Span::current();
    dp.tasks.spawn(receiver.run().instrument(span.clone()));
    let disk_span = span.clone();
    dp.tasks.spawn_blocking(move || {
        let _entered = disk_span.enter();
        disk.run();
    });
    dp.tasks.spawn(acker.run().instrument(span));
    Ok(ack_rx)
}

/// Opens WriteBlock to `next` and sends it `header`.
async fn connect_downstream(
    dp: &DataPath,
    next: &Target,
    header: WriteHeader,
) -> Result<
    (
        mpsc::Sender<v1::WriteBlockMessage>,
        tonic::Streaming<v1::PacketAck>,
    ),
    tonic::Status,
> {
    let set_up = async {
        let mut client = dp.connect(&next.transfer_address).await?;
        let (tx, rx) = mpsc::channel(FORWARD_QUEUE);
        tx.send(v1::WriteBlockMessage::from(header))
            .await
            .map_err(|_| tonic::Status::internal("forward queue closed"))?;
        let acks = client
            .write_block(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok((tx, acks))
    };
    tokio::time::timeout(dp.settings.connect_timeout, set_up)
        .await
        .map_err(|_| tonic::Status::deadline_exceeded("downstream set-up timed out"))?
}

/// The replica writer and the slot that says this pipeline holds it.
#[derive(Debug)]
struct OpenReplica {
    writer: RbwWriter,
    // Dropped after `writer` (field order), which is what `Writers::preempt` waits for.
    _guard: WriterGuard,
}

enum ToDisk {
    Write { packet: Packet, forwarded: bool },
    Reject(tonic::Status),
}

enum FromDisk {
    Written {
        seqno: u64,
        status: AckStatus,
        forwarded: bool,
        /// For the last packet, written and synced: the replica to finalize.
        finished: Option<OpenReplica>,
        is_last: bool,
    },
    Reject(tonic::Status),
}

/// Reads packets from upstream, checks them, forwards them, queues them for the disk.
struct Receiver {
    upstream: Upstream,
    forward: Option<mpsc::Sender<v1::WriteBlockMessage>>,
    disk: mpsc::Sender<ToDisk>,
    stop: CancellationToken,
    downstream_failed: CancellationToken,
    idle_timeout: Duration,
    /// Bytes of the block received so far (the replica's length after them).
    len: u64,
    last_seqno: Option<u64>,
}

impl Receiver {
    /// Runs until the last packet, the upstream's end, an error or `stop`.
    /// Every await is cancel-safe (stream reads and channel sends).
    async fn run(mut self) {
        loop {
            let next = tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                next = tokio::time::timeout(self.idle_timeout, self.upstream.next()) => next,
            };
            let packet = match next {
                Err(_) => {
                    tracing::warn!("no packet from upstream within the idle timeout");
                    break;
                }
                Ok(None) => {
                    tracing::debug!("upstream closed before the last packet");
                    break;
                }
                Ok(Some(Err(UpstreamError::Broken(status)))) => {
                    tracing::debug!(error = %status.message(), "upstream broke");
                    break;
                }
                Ok(Some(Err(UpstreamError::Malformed(reason)))) => {
                    self.reject(reason).await;
                    break;
                }
                Ok(Some(Ok(packet))) => packet,
            };
            if let Err(reason) = self.check(&packet) {
                self.reject(reason).await;
                break;
            }
            tracing::trace!(
                seqno = packet.seqno,
                offset = packet.offset,
                len = packet.data.len(),
                "packet"
            );
            let is_last = packet.is_last;
            let forwarded = self.forward(&packet).await;
            let queued = tokio::select! {
                () = self.stop.cancelled() => false,
                sent = self.disk.send(ToDisk::Write { packet, forwarded }) => sent.is_ok(),
            };
            if !queued || is_last {
                break;
            }
        }
    }

    /// Checks a packet against the stream so far; on success advances it.
    fn check(&mut self, p: &Packet) -> Result<(), String> {
        if self.last_seqno.is_some_and(|last| p.seqno <= last) {
            return Err(format!("seqno {} after {:?}", p.seqno, self.last_seqno));
        }
        let chunks = packet_chunks(p.offset, p.data.len());
        if p.checksums.len() != 4 * chunks {
            return Err(format!(
                "{} bytes of checksums for {} chunks (4 bytes each)",
                p.checksums.len(),
                chunks
            ));
        }
        let is_boundary = p.offset.is_multiple_of(CHUNK_SIZE as u64);
        // Inside a chunk only where the replica ends: the first packet of an
        // append to a block whose length is not a multiple of 512.
        let fits = p.offset <= self.len && (is_boundary || p.offset == self.len);
        if !fits {
            return Err(format!(
                "offset {} is neither the length {} nor a chunk boundary before it",
                p.offset, self.len
            ));
        }
        self.len = p
            .offset
            .checked_add(p.data.len() as u64)
            .ok_or("packet ends past the largest offset")?;
        self.last_seqno = Some(p.seqno);
        Ok(())
    }

    /// Sends a packet downstream; false when there is no working downstream.
    async fn forward(&mut self, packet: &Packet) -> bool {
        let Some(tx) = &self.forward else {
            return false;
        };
        let sent = tokio::select! {
            () = self.downstream_failed.cancelled() => false,
            () = self.stop.cancelled() => false,
            sent = tx.send(v1::WriteBlockMessage::from(packet.clone())) => sent.is_ok(),
        };
        if !sent {
            self.forward = None;
        }
        sent
    }

    async fn reject(&mut self, reason: String) {
        tracing::warn!(%reason, "malformed packet");
        let status = tonic::Status::invalid_argument(format!("malformed packet: {reason}"));
        let _ = self.disk.send(ToDisk::Reject(status)).await;
    }
}

/// Writes packets to the replica, one blocking thread per pipeline.
struct DiskTask {
    replica: Option<OpenReplica>,
    /// Only the last node of the pipeline checks every chunk's CRC32C.
    verify: bool,
    rx: mpsc::Receiver<ToDisk>,
    tx: mpsc::Sender<FromDisk>,
    /// A write failed: nothing more is written.
    broken: bool,
    /// Where a replica left behind is looked up.
    store: Arc<BlockStore>,
    /// Where a replica left behind is announced.
    reports: ReportHub,
    /// Packets, bytes and checksum errors.
    events: Events,
}

impl DiskTask {
    fn run(mut self) {
        let mut sums = Vec::with_capacity(128);
        while let Some(item) = self.rx.blocking_recv() {
            let out = match item {
                ToDisk::Reject(status) => FromDisk::Reject(status),
                ToDisk::Write { packet, forwarded } => {
                    let (status, finished) = self.write(&packet, &mut sums);
                    match status {
                        Ok(status) => FromDisk::Written {
                            seqno: packet.seqno,
                            status,
                            forwarded,
                            finished,
                            is_last: packet.is_last,
                        },
                        Err(reject) => FromDisk::Reject(reject),
                    }
                }
            };
            // The acker may be gone (upstream closed): keep draining so
            // every received packet still reaches the disk.
            let _ = self.tx.blocking_send(out);
        }
        // Stopped before the last packet: the replica stays rbw.
        if let Some(replica) = self.replica.take() {
            let block = replica.writer.block();
            // Flushes the replica and frees the writer's slot.
            drop(replica);
            if let Some(info) = self.store.abandoned_rbw_of(block) {
                tracing::debug!(length = info.length, "pipeline stopped; rbw replica left");
                self.reports.rbw_left(info);
            }
        }
    }

    fn write(
        &mut self,
        packet: &Packet,
        sums: &mut Vec<u32>,
    ) -> (Result<AckStatus, tonic::Status>, Option<OpenReplica>) {
        let Some(replica) = self.replica.as_mut().filter(|_| !self.broken) else {
            return (Ok(AckStatus::Error), None);
        };
        sums.clear();
        let (whole, _) = packet.checksums.as_chunks::<4>();
        sums.extend(whole.iter().map(|b| u32::from_le_bytes(*b)));
        let written = replica
            .writer
            .write_packet(packet.offset, &packet.data, sums, self.verify)
            .and_then(|()| {
                if packet.is_last {
                    replica.writer.sync()
                } else {
                    Ok(())
                }
            });
        if written.is_ok() {
            self.events.written_packets.inc();
            self.events.written_bytes.inc_by(packet.data.len() as u64);
        }
        match written {
            Ok(()) if packet.is_last => (Ok(AckStatus::Success), self.replica.take()),
            Ok(()) => (Ok(AckStatus::Success), None),
            Err(block_store::Error::ChecksumMismatch { offset, .. }) => {
                self.events
                    .checksum_errors
                    .get_or_create(&FoundBy::PIPELINE)
                    .inc();
                tracing::warn!(offset, "packet failed its checksum");
                self.broken = true;
                (Ok(AckStatus::ErrorChecksum), None)
            }
            Err(e @ block_store::Error::InvalidPacket { .. }) => {
                self.broken = true;
                (Err(tonic::Status::invalid_argument(e.to_string())), None)
            }
            Err(e) => {
                tracing::warn!(error = %e, "writing a packet failed");
                self.broken = true;
                (Ok(AckStatus::Error), None)
            }
        }
    }
}

/// Merges local results with downstream acks, in order, and sends them upstream.
struct Acker {
    local: mpsc::Receiver<FromDisk>,
    acks: Option<tonic::Streaming<v1::PacketAck>>,
    /// Once set, the downstream part of every later ack.
    failure: Option<Vec<AckStatus>>,
    upstream: mpsc::Sender<Result<Ack, tonic::Status>>,
    /// Preemption by a recovery, or shutdown: stop at once, ack nothing more.
    cancel: CancellationToken,
    stop: CancellationToken,
    downstream_failed: CancellationToken,
    ack_timeout: Duration,
    keep_rbw: bool,
    store: Arc<BlockStore>,
    reports: ReportHub,
    _transfer: ActiveTransfer,
}

impl Acker {
    /// Runs until the last packet's ack, the disk task's end, or the upstream's.
    /// Cancel-safe at every await, and the finalize it awaits runs on its own thread.
    async fn run(mut self) {
        loop {
            let item = tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                item = self.local.recv() => match item {
                    Some(item) => item,
                    None => break,
                },
            };
            match item {
                FromDisk::Reject(status) => {
                    let _ = self.upstream.send(Err(status)).await;
                    break;
                }
                FromDisk::Written {
                    seqno,
                    status,
                    forwarded,
                    finished,
                    is_last,
                } => {
                    let downstream = self.downstream_statuses(seqno, forwarded).await;
                    let mut statuses = vec![status];
                    if let Some(replica) = finished {
                        statuses[0] = self.finish(replica, &downstream).await;
                    }
                    statuses.extend(downstream);
                    let has_error = statuses.iter().any(|s| *s != AckStatus::Success);
                    tracing::trace!(seqno, ?statuses, "ack");
                    if self
                        .upstream
                        .send(Ok(Ack { seqno, statuses }))
                        .await
                        .is_err()
                    {
                        tracing::debug!("upstream stopped reading acks");
                        break;
                    }
                    if has_error {
                        self.stop.cancel();
                    }
                    if is_last {
                        break;
                    }
                }
            }
        }
        self.stop.cancel();
    }

    /// The downstream part of a packet's ack: its ack's statuses, or the
    /// failure that ended the downstream.
    async fn downstream_statuses(&mut self, seqno: u64, forwarded: bool) -> Vec<AckStatus> {
        if let Some(failure) = &self.failure {
            return failure.clone();
        }
        let Some(acks) = self.acks.as_mut() else {
            return Vec::new();
        };
        let outcome = if forwarded {
            let next = tokio::select! {
                () = self.cancel.cancelled() => Ok(Err(tonic::Status::cancelled("pipeline stopped"))),
                next = tokio::time::timeout(self.ack_timeout, acks.message()) => next,
            };
            match next {
                Err(_) => Err("no ack within the ack timeout".to_owned()),
                Ok(Err(status)) => Err(format!("downstream failed: {}", status.message())),
                Ok(Ok(None)) => Err("downstream ended its acks early".to_owned()),
                Ok(Ok(Some(ack))) => parse_ack(&ack, seqno),
            }
        } else {
            Err("packet could not be forwarded".to_owned())
        };
        let statuses = match outcome {
            Ok(statuses) if statuses.iter().all(|s| *s == AckStatus::Success) => {
                return statuses;
            }
            Ok(statuses) => {
                tracing::warn!(seqno, ?statuses, "downstream reported an error");
                statuses
            }
            Err(reason) => {
                tracing::warn!(seqno, %reason, "downstream lost");
                vec![AckStatus::Error]
            }
        };
        self.failure = Some(statuses.clone());
        self.acks = None;
        self.downstream_failed.cancel();
        statuses
    }

    /// Finalizes (or, for a copy, keeps) the replica whose last packet is on
    /// disk; returns this node's status for the last packet.
    async fn finish(&self, replica: OpenReplica, downstream: &[AckStatus]) -> AckStatus {
        if self.keep_rbw {
            tracing::debug!("copy complete; replica stays rbw");
            return AckStatus::Success;
        }
        if downstream.contains(&AckStatus::ErrorChecksum) {
            // The same bytes failed their checksum further down: not ours to keep.
            tracing::warn!("not finalizing: a downstream node found a checksum error");
            return AckStatus::Success;
        }
        let store = Arc::clone(&self.store);
        let finalized = tokio::task::spawn_blocking(move || {
            let OpenReplica { writer, _guard } = replica;
            store.finalize(writer)
        })
        .await;
        match finalized {
            Ok(Ok(info)) => {
                tracing::debug!(length = info.length, "replica finalized");
                self.reports.received(info);
                AckStatus::Success
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "finalize failed");
                AckStatus::Error
            }
            Err(e) => {
                tracing::warn!(error = %e, "finalize task failed");
                AckStatus::Error
            }
        }
    }
}

/// Checks a downstream ack: the expected seqno, at least one known status.
fn parse_ack(ack: &v1::PacketAck, seqno: u64) -> Result<Vec<AckStatus>, String> {
    if u64::try_from(ack.seqno).ok() != Some(seqno) {
        return Err(format!(
            "ack for seqno {} while expecting {seqno}",
            ack.seqno
        ));
    }
    if ack.statuses.is_empty() {
        return Err("ack without statuses".to_owned());
    }
    ack.statuses
        .iter()
        .map(|&s| match v1::PipelineStatus::try_from(s) {
            Ok(v1::PipelineStatus::Success) => Ok(AckStatus::Success),
            Ok(v1::PipelineStatus::Error) => Ok(AckStatus::Error),
            Ok(v1::PipelineStatus::ErrorChecksum) => Ok(AckStatus::ErrorChecksum),
            _ => Err(format!("unknown status {s} in an ack")),
        })
        .collect()
}

/// Converts a WriteBlock request stream after its header into packets.
pub(crate) fn packets<S>(messages: S) -> Upstream
where
    S: Stream<Item = Result<v1::WriteBlockMessage, tonic::Status>> + Send + 'static,
{
    messages
        .map(|m| match m {
            Err(status) => Err(UpstreamError::Broken(status)),
            Ok(v1::WriteBlockMessage {
                message: Some(v1::write_block_message::Message::Packet(p)),
            }) => Packet::try_from(p).map_err(UpstreamError::Malformed),
            Ok(_) => Err(UpstreamError::Malformed(
                "expected a packet (a second header, or an empty message)".to_owned(),
            )),
        })
        .boxed()
}
