//! [`OutputStream`]: writes a file block by block through datanode pipelines.
//!
//! ```text
//!  write(&[u8]) ──► 64 KiB packet buffer ──► Pipeline::send ──► requests (bounded) ──► DN1 ─► DN2 ─► DN3
//!                                              │   unacked: ≤ WINDOW packets               │
//!                                              └─◄ acks (bounded) ◄── ack reader task ◄────┘
//! ```
//!
//! Blocks are allocated lazily (`AddBlock` when the first packet of a block is
//! ready). A packet carries up to [`PACKET_SIZE`] bytes starting at a
//! chunk-aligned offset, one CRC32C per 512-byte chunk, and the block's last
//! packet carries `last_packet_in_block` (an empty one when the block ends on
//! a packet boundary at close). Packets never split a chunk, except the final
//! chunk of a block.
//!
//! At most [`WINDOW`] packets are unacknowledged; they are kept (as `Bytes`)
//! until every datanode acks them, so pipeline recovery can resend them:
//! drop the bad datanode, get a new generation stamp (`UpdateBlockForPipeline`),
//! reopen the pipeline to the survivors with a recovery header
//! (`acked_length` = bytes every survivor acknowledged), resend every
//! unacknowledged packet, then `UpdatePipeline`. With replication ≥ 3 and at
//! most half the replicas left, a replacement from `GetAdditionalDatanode`
//! first gets the acked prefix from a survivor (`TransferRbw`) and joins the
//! pipeline at its end (best effort). This module owns the client
//! half of the pipeline only; the datanode half is `datanode/src/pipeline.rs`.
//!
//! Nothing here runs on its own: the caller's `write`/`close` futures drive
//! the pipeline. The only spawned task is the per-connection ack reader, which
//! is aborted when its connection is dropped.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use dfs_proto::checksum::{CHUNK_SIZE, chunk_checksums_at};
use dfs_proto::ids::GenStamp;
use dfs_proto::v1;
use dfs_proto::v1::PipelineStatus;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

use crate::blocks::{Block, Datanode, LocatedBlock, token_to_wire};
use crate::error::Error;
use crate::fs::{DfsClient, FileStatus};
use crate::lease_renewer::LeaseGuard;
use crate::owned_task::OwnedTask;
use dfs_proto::block_token::BlockToken;

/// Bytes of data per packet (128 chunks).
pub const PACKET_SIZE: usize = 64 * 1024;
/// Most packets in flight (sent, not yet acknowledged by every datanode).
pub const WINDOW: usize = 80;
/// Without an ack for this long while packets are in flight, the first datanode is declared bad.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `close` keeps asking the namenode to complete the file.
const COMPLETE_TIMEOUT: Duration = Duration::from_secs(30);
/// Recoveries one block may go through before the write gives up.
const MAX_RECOVERIES: u32 = 5;
/// New pipelines tried (each excluding the previous first datanode) before giving up on a block.
const MAX_BLOCK_ATTEMPTS: u32 = 3;
/// Messages queued towards the first datanode (HTTP/2 flow control does the rest).
const REQUEST_QUEUE: usize = 4;
/// Longest a survivor may take to copy the acked prefix to a replacement.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);
/// Used if the namenode reports a file without a block size.
const FALLBACK_BLOCK_SIZE: u64 = 128 * 1024 * 1024;

/// Limits of one stream; tests shorten them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    pub(crate) window: usize,
    pub(crate) ack_timeout: Duration,
    pub(crate) complete_timeout: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            window: WINDOW,
            ack_timeout: ACK_TIMEOUT,
            complete_timeout: COMPLETE_TIMEOUT,
        }
    }
}

/// A file being written. Call [`close`](Self::close): until it succeeds the
/// file stays under construction, and a dropped stream leaves it so.
#[derive(Debug)]
pub struct OutputStream {
    ctx: WriteContext,
    block_size: u64,
    /// Data of the packet being filled (starts chunk-aligned in its block).
    buffer: BytesMut,
    /// The block being written, if any.
    pipeline: Option<Pipeline>,
    /// The last finished block, with its final length and generation stamp.
    last_block: Option<Block>,
    written: u64,
    state: State,
    /// Keeps the client's lease renewed until the stream is closed or dropped.
    lease: Option<LeaseGuard>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Failed,
    Closed,
}

/// What the pipeline needs besides its own state.
#[derive(Debug)]
struct WriteContext {
    client: DfsClient,
    path: String,
    replication: u16,
    tuning: Tuning,
    /// Datanode ids that failed this writer: never chosen again.
    excluded: Vec<String>,
}

impl OutputStream {
    pub(crate) fn new(client: DfsClient, status: FileStatus, lease: LeaseGuard) -> Self {
        let block_size = if status.block_size == 0 {
            FALLBACK_BLOCK_SIZE
        } else {
            status.block_size
        };
        OutputStream {
            ctx: WriteContext {
                client,
                path: status.path,
                replication: status.replication,
                tuning: Tuning::default(),
                excluded: Vec::new(),
            },
            block_size,
            buffer: BytesMut::with_capacity(PACKET_SIZE),
            pipeline: None,
            last_block: None,
            written: 0,
            state: State::Open,
            lease: Some(lease),
        }
    }

    /// A stream that appends to a file the namenode reopened for this
    /// client. With `reopened` (the last block under its new stamp, and the
    /// stamp its replicas still carry) the pipeline is set up at once and
    /// writing goes on inside that block; otherwise the next write starts a
    /// new block after `last` (the file's last block, if any).
    ///
    /// # Errors
    /// No pipeline to the reopened block's replicas could be set up.
    pub(crate) async fn append(
        client: DfsClient,
        status: FileStatus,
        lease: LeaseGuard,
        reopened: Option<(LocatedBlock, GenStamp)>,
        last: Option<Block>,
    ) -> Result<Self, Error> {
        let mut stream = OutputStream::new(client, status, lease);
        match reopened {
            Some((located, previous)) => {
                let pipeline = Pipeline::reopen(&mut stream.ctx, located, previous).await?;
                stream.pipeline = Some(pipeline);
            }
            None => stream.last_block = last,
        }
        Ok(stream)
    }

    #[cfg(test)]
    pub(crate) fn set_tuning(&mut self, tuning: Tuning) {
        self.ctx.tuning = tuning;
    }

    /// The file being written.
    pub fn path(&self) -> &str {
        &self.ctx.path
    }

    /// Bytes accepted so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Appends all of `data`; returns once it is buffered or handed to the
    /// pipeline (waiting while the ack window is full).
    ///
    /// Not cancel-safe: a `write` dropped before it returns leaves the
    /// stream failed (later calls return [`Error::StreamClosed`]).
    ///
    /// # Errors
    /// The pipeline could not be kept alive, or the namenode refused a block
    /// call. The stream is unusable afterwards.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), Error> {
        self.ensure_open()?;
        // Failed until this call completes, so a cancelled call poisons the stream.
        self.state = State::Failed;
        while !data.is_empty() {
            let limit = self.packet_limit();
            let take = (limit - self.buffer.len()).min(data.len());
            let (head, rest) = data.split_at(take);
            self.buffer.extend_from_slice(head);
            data = rest;
            self.written += take as u64;
            if self.buffer.len() == limit {
                let result = self.send_packet(false).await;
                self.poison_on_error(result)?;
            }
        }
        self.state = State::Open;
        Ok(())
    }

    /// Sends what is buffered as the last packet, waits for every ack, then
    /// asks the namenode to complete the file (retrying while it answers
    /// "not yet", for at most about 30 s).
    ///
    /// Not cancel-safe, like [`write`](Self::write).
    ///
    /// # Errors
    /// As [`write`](Self::write), or [`Error::CompleteTimedOut`].
    pub async fn close(&mut self) -> Result<(), Error> {
        self.ensure_open()?;
        self.state = State::Failed;
        if self.pipeline.is_some() || !self.buffer.is_empty() {
            let result = self.send_packet(true).await;
            self.poison_on_error(result)?;
        }
        let result = self.complete().await;
        self.poison_on_error(result)?;
        self.state = State::Closed;
        self.lease = None;
        Ok(())
    }

    fn ensure_open(&self) -> Result<(), Error> {
        match self.state {
            State::Open => Ok(()),
            State::Failed | State::Closed => Err(Error::StreamClosed {
                path: self.ctx.path.clone(),
            }),
        }
    }

    fn poison_on_error<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        if result.is_err() {
            self.state = State::Failed;
            self.pipeline = None;
        }
        result
    }

    /// Size the packet being filled will have when full: a whole packet,
    /// what is left of the block, or (an append to a block that ends inside a
    /// chunk) what is left of that chunk, so later packets start on chunk
    /// boundaries.
    fn packet_limit(&self) -> usize {
        let sent = self.pipeline.as_ref().map_or(0, |p| p.sent_bytes);
        let left_in_block = self.block_size.saturating_sub(sent);
        let limit =
            usize::try_from(left_in_block).map_or(PACKET_SIZE, |left| left.min(PACKET_SIZE));
        // Below CHUNK_SIZE, so it fits a usize.
        match (sent % CHUNK_SIZE as u64) as usize {
            0 => limit,
            into_chunk => limit.min(CHUNK_SIZE - into_chunk),
        }
    }

    /// Sends the buffer as one packet (opening a block first if none is
    /// open); on the block's last packet, waits for its acks and closes it.
    async fn send_packet(&mut self, closing: bool) -> Result<(), Error> {
        let data = self.buffer.split().freeze();
        self.buffer.reserve(PACKET_SIZE);
        let pipeline = match &mut self.pipeline {
            Some(pipeline) => pipeline,
            None => self
                .pipeline
                .insert(Pipeline::start(&mut self.ctx, self.last_block).await?),
        };
        let end = pipeline.sent_bytes + data.len() as u64;
        let last = closing || end >= self.block_size;
        pipeline.send(&mut self.ctx, data, last).await?;
        if last {
            pipeline.drain(&mut self.ctx).await?;
            self.last_block = Some(Block {
                length: pipeline.acked_bytes,
                ..pipeline.block
            });
            debug!(block = %pipeline.block.id, gen_stamp = %pipeline.block.gen_stamp,
                length = pipeline.acked_bytes, "block written");
            self.pipeline = None;
        }
        Ok(())
    }

    async fn complete(&mut self) -> Result<(), Error> {
        let started = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            if self
                .ctx
                .client
                .complete(&self.ctx.path, self.last_block)
                .await?
            {
                return Ok(());
            }
            if started.elapsed() + backoff > self.ctx.tuning.complete_timeout {
                return Err(Error::CompleteTimedOut {
                    path: self.ctx.path.clone(),
                    waited_secs: started.elapsed().as_secs(),
                });
            }
            debug!(path = %self.ctx.path, "last block not yet minimally replicated");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}

/// One packet as sent, kept until every datanode acks it.
#[derive(Debug, Clone)]
struct Packet {
    seqno: i64,
    offset: u64,
    data: Bytes,
    checksums: Bytes,
    last: bool,
}

impl Packet {
    fn to_wire(&self) -> v1::WriteBlockMessage {
        v1::WriteBlockMessage {
            message: Some(v1::write_block_message::Message::Packet(v1::Packet {
                seqno: self.seqno,
                offset_in_block: self.offset,
                data: self.data.clone(),
                checksums: self.checksums.clone(),
                last_packet_in_block: self.last,
            })),
        }
    }

    fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }
}

/// Little-endian CRC32C per 512-byte chunk, as `Packet.checksums` carries them.
#[cfg(test)]
pub(crate) fn encode_checksums(data: &[u8]) -> Bytes {
    encode_checksums_at(0, data)
}

/// [`encode_checksums`] of a packet at block offset `offset`: chunks cut at
/// the block's 512-byte boundaries (an append's first packet may start
/// inside one).
fn encode_checksums_at(offset: u64, data: &[u8]) -> Bytes {
    let sums = chunk_checksums_at(offset, data);
    let mut out = BytesMut::with_capacity(sums.len() * 4);
    for sum in sums {
        out.put_u32_le(sum);
    }
    out.freeze()
}

/// Which datanode failed, and how.
#[derive(Debug)]
struct Fault {
    /// Index in the pipeline of the node to drop.
    index: usize,
    reason: String,
}

/// The block being written: its pipeline, and the packets not yet acknowledged.
#[derive(Debug)]
struct Pipeline {
    block: Block,
    nodes: Vec<Datanode>,
    connection: Option<Connection>,
    next_seqno: i64,
    /// Offset in the block of the next packet.
    sent_bytes: u64,
    /// Bytes every datanode of the pipeline has acknowledged.
    acked_bytes: u64,
    /// The generation stamp the survivors' replicas were last written under
    /// (a recovery header's `previous_gen_stamp`). A recovery attempt that
    /// fails part-way may have bumped some replicas already; those nodes
    /// then fail the next attempt's set-up and are dropped in turn.
    replica_gen_stamp: GenStamp,
    unacked: VecDeque<Packet>,
    recoveries: u32,
    /// WRITE access to `block` under its current gen stamp (and COPY after
    /// a recovery), from the namenode.
    token: Option<BlockToken>,
}

impl Pipeline {
    /// Allocates a block and opens its pipeline; a first datanode that
    /// cannot be reached is excluded and the block abandoned for another.
    async fn start(ctx: &mut WriteContext, previous: Option<Block>) -> Result<Self, Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let located = ctx
                .client
                .add_block(&ctx.path, previous, &ctx.excluded)
                .await?;
            let block = located.block;
            let Some(first) = located.locations.first().cloned() else {
                return Err(Error::PipelineFailed {
                    path: ctx.path.clone(),
                    block: block.id,
                    reason: "the namenode chose no datanodes".into(),
                });
            };
            let token = located.token.clone();
            let error = match Connection::open(ctx, block, token.as_ref(), &located.locations, None)
                .await
            {
                Ok(connection) => {
                    debug!(block = %block.id, gen_stamp = %block.gen_stamp,
                        nodes = located.locations.len(), "pipeline open");
                    return Ok(Pipeline {
                        block,
                        nodes: located.locations,
                        connection: Some(connection),
                        next_seqno: 0,
                        sent_bytes: 0,
                        acked_bytes: 0,
                        replica_gen_stamp: block.gen_stamp,
                        unacked: VecDeque::new(),
                        recoveries: 0,
                        token,
                    });
                }
                Err(e) => e,
            };
            warn!(block = %block.id, datanode = %first.address, error = %error,
                "cannot open pipeline; abandoning the block");
            ctx.client.forget_datanode(&first.address);
            ctx.excluded.push(first.id.clone());
            if let Err(e) = ctx.client.abandon_block(&ctx.path, block).await {
                debug!(block = %block.id, error = %e, "abandon block failed");
            }
            if attempt >= MAX_BLOCK_ATTEMPTS {
                return Err(Error::PipelineFailed {
                    path: ctx.path.clone(),
                    block: block.id,
                    reason: format!("no pipeline after {attempt} attempts: {error}"),
                });
            }
        }
    }

    /// Opens a pipeline to the replicas of a finalized block an append
    /// reopened: a recovery header moves each from `previous` to the new
    /// stamp at its full length, and writing goes on from there. A set-up
    /// that fails is a pipeline recovery like any other (drop the node,
    /// new stamp, the survivors).
    async fn reopen(
        ctx: &mut WriteContext,
        located: LocatedBlock,
        previous: GenStamp,
    ) -> Result<Self, Error> {
        let block = located.block;
        let mut pipeline = Pipeline {
            block,
            nodes: located.locations,
            connection: None,
            next_seqno: 0,
            sent_bytes: block.length,
            acked_bytes: block.length,
            replica_gen_stamp: previous,
            unacked: VecDeque::new(),
            recoveries: 0,
            token: located.token,
        };
        let recovery = Recovery {
            previous_gen_stamp: previous.0,
            acked_length: block.length,
        };
        let opened = Connection::open(
            ctx,
            block,
            pipeline.token.as_ref(),
            &pipeline.nodes,
            Some(recovery),
        )
        .await;
        match opened {
            Ok(connection) => {
                debug!(block = %block.id, gen_stamp = %block.gen_stamp, length = block.length,
                    nodes = pipeline.nodes.len(), "pipeline reopened for append");
                pipeline.connection = Some(connection);
                pipeline.replica_gen_stamp = block.gen_stamp;
            }
            Err(e) => {
                let reason = match e {
                    Error::Datanode { reason, .. } => reason,
                    other => other.to_string(),
                };
                pipeline.recover(ctx, Fault { index: 0, reason }).await?;
            }
        }
        Ok(pipeline)
    }

    /// Queues one packet, first waiting for room in the ack window.
    async fn send(&mut self, ctx: &mut WriteContext, data: Bytes, last: bool) -> Result<(), Error> {
        let window = ctx.tuning.window.max(1);
        self.process_ready_acks(ctx).await?;
        while self.unacked.len() >= window {
            self.await_ack(ctx).await?;
        }
        let packet = Packet {
            seqno: self.next_seqno,
            offset: self.sent_bytes,
            checksums: encode_checksums_at(self.sent_bytes, &data),
            data,
            last,
        };
        self.next_seqno += 1;
        self.sent_bytes = packet.end();
        let message = packet.to_wire();
        self.unacked.push_back(packet);
        if let Err(fault) = self.push(ctx, message).await {
            let fault = self.explain(ctx, fault).await;
            self.recover(ctx, fault).await?;
        }
        Ok(())
    }

    /// After the request stream broke: the acks still in flight may name the
    /// datanode that failed (a node whose downstream broke acks ERROR at that
    /// index, then ends the stream). Prefer that to blaming the first node.
    async fn explain(&mut self, ctx: &WriteContext, broken: Fault) -> Fault {
        let Some(connection) = self.connection.as_mut() else {
            return broken;
        };
        let mut events = Vec::new();
        while let Ok(Some(event)) =
            tokio::time::timeout(ctx.tuning.ack_timeout, connection.acks.recv()).await
        {
            let done = !matches!(event, AckEvent::Ack { .. });
            events.push(event);
            if done {
                break;
            }
        }
        for event in events {
            if matches!(event, AckEvent::Ack { .. })
                && let Err(fault) = self.apply(event)
            {
                return fault;
            }
        }
        broken
    }

    /// Waits until every packet sent is acknowledged, then closes the stream.
    async fn drain(&mut self, ctx: &mut WriteContext) -> Result<(), Error> {
        while !self.unacked.is_empty() {
            self.await_ack(ctx).await?;
        }
        self.connection = None;
        Ok(())
    }

    async fn push(
        &mut self,
        ctx: &WriteContext,
        message: v1::WriteBlockMessage,
    ) -> Result<(), Fault> {
        let Some(connection) = &self.connection else {
            return Err(Fault {
                index: 0,
                reason: "no connection".into(),
            });
        };
        match tokio::time::timeout(ctx.tuning.ack_timeout, connection.requests.send(message)).await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Fault {
                index: 0,
                reason: "stream to the first datanode closed".into(),
            }),
            Err(_) => Err(Fault {
                index: 0,
                reason: format!(
                    "first datanode took no packet for {} s",
                    ctx.tuning.ack_timeout.as_secs()
                ),
            }),
        }
    }

    /// Handles acks already received, without waiting.
    async fn process_ready_acks(&mut self, ctx: &mut WriteContext) -> Result<(), Error> {
        loop {
            let event = match self.connection.as_mut().map(|c| c.acks.try_recv()) {
                Some(Ok(event)) => event,
                _ => return Ok(()),
            };
            if let Err(fault) = self.apply(event) {
                self.recover(ctx, fault).await?;
            }
        }
    }

    /// Waits for the next ack (or failure) and handles it.
    async fn await_ack(&mut self, ctx: &mut WriteContext) -> Result<(), Error> {
        let timeout = ctx.tuning.ack_timeout;
        let event = match self.connection.as_mut() {
            Some(connection) => match tokio::time::timeout(timeout, connection.acks.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => AckEvent::Failed("ack reader stopped".into()),
                Err(_) => AckEvent::Failed(format!("no ack for {} s", timeout.as_secs())),
            },
            None => AckEvent::Failed("no connection".into()),
        };
        if let Err(fault) = self.apply(event) {
            self.recover(ctx, fault).await?;
        }
        Ok(())
    }

    /// Applies one ack event: a full success retires the oldest packet;
    /// anything else names the datanode to drop.
    fn apply(&mut self, event: AckEvent) -> Result<(), Fault> {
        let (seqno, statuses) = match event {
            AckEvent::Ack { seqno, statuses } => (seqno, statuses),
            AckEvent::Ended if self.unacked.is_empty() => return Ok(()),
            AckEvent::Ended => {
                return Err(Fault {
                    index: 0,
                    reason: "first datanode ended the stream with packets unacknowledged".into(),
                });
            }
            AckEvent::Failed(reason) => return Err(Fault { index: 0, reason }),
        };
        if let Some(fault) = fault_in(&statuses, self.nodes.len()) {
            return Err(fault);
        }
        match self.unacked.front() {
            Some(front) if front.seqno == seqno => {
                self.acked_bytes = front.end();
                self.unacked.pop_front();
                Ok(())
            }
            front => Err(Fault {
                index: 0,
                reason: format!(
                    "ack for seqno {seqno}, expected {:?}",
                    front.map(|p| p.seqno)
                ),
            }),
        }
    }

    /// Pipeline recovery: drop the faulty datanode, bump the generation
    /// stamp, reopen to the survivors and resend every unacked packet. Loops
    /// while the recovery itself fails, up to [`MAX_RECOVERIES`] per block.
    async fn recover(&mut self, ctx: &mut WriteContext, first_fault: Fault) -> Result<(), Error> {
        let mut fault = first_fault;
        loop {
            self.connection = None;
            self.recoveries += 1;
            let index = fault.index.min(self.nodes.len().saturating_sub(1));
            let bad = if self.nodes.is_empty() {
                None
            } else {
                Some(self.nodes.remove(index))
            };
            let bad_name = bad.as_ref().map_or("-".to_owned(), |d| d.address.clone());
            warn!(block = %self.block.id, datanode = %bad_name, reason = %fault.reason,
                acked = self.acked_bytes, unacked = self.unacked.len(), "pipeline recovery");
            if let Some(bad) = bad {
                ctx.client.forget_datanode(&bad.address);
                ctx.excluded.push(bad.id);
            }
            if self.nodes.is_empty() || self.recoveries > MAX_RECOVERIES {
                let why = if self.nodes.is_empty() {
                    "no datanode of the pipeline is left"
                } else {
                    "too many pipeline recoveries"
                };
                return Err(Error::PipelineFailed {
                    path: ctx.path.clone(),
                    block: self.block.id,
                    reason: format!("{why} (last: datanode {bad_name}: {})", fault.reason),
                });
            }
            let old = self.block;
            let (new, token) = ctx.client.update_block_for_pipeline(&ctx.path, old).await?;
            self.block = Block {
                length: self.acked_bytes,
                ..new
            };
            self.token = token;
            self.add_replacements(ctx).await;
            let recovery = Recovery {
                previous_gen_stamp: self.replica_gen_stamp.0,
                acked_length: self.acked_bytes,
            };
            let opened = Connection::open(
                ctx,
                self.block,
                self.token.as_ref(),
                &self.nodes,
                Some(recovery),
            )
            .await;
            match opened {
                Ok(connection) => {
                    self.connection = Some(connection);
                    self.replica_gen_stamp = self.block.gen_stamp;
                }
                Err(e) => {
                    // The datanode is named when the fault is reported.
                    let reason = match e {
                        Error::Datanode { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    fault = Fault { index: 0, reason };
                    continue;
                }
            }
            ctx.client
                .update_pipeline(
                    &ctx.path,
                    Block {
                        length: self.acked_bytes,
                        ..old
                    },
                    self.block,
                    &self.nodes,
                )
                .await?;
            match self.resend(ctx).await {
                Ok(()) => return Ok(()),
                Err(f) => fault = self.explain(ctx, f).await,
            }
        }
    }

    async fn resend(&mut self, ctx: &WriteContext) -> Result<(), Fault> {
        let messages: Vec<_> = self.unacked.iter().map(Packet::to_wire).collect();
        debug!(block = %self.block.id, packets = messages.len(), from = self.acked_bytes,
            "resending unacknowledged packets");
        for message in messages {
            self.push(ctx, message).await?;
        }
        Ok(())
    }

    /// HDFS's default `ReplaceDatanodeOnFailure` policy: with replication ≥ 3,
    /// replace lost datanodes once at most half the wanted replicas remain.
    /// Best effort: a write continues on the survivors when no replacement
    /// can be had.
    async fn add_replacements(&mut self, ctx: &mut WriteContext) {
        let wanted = usize::from(ctx.replication);
        if !(wanted >= 3 && self.nodes.len() <= wanted / 2) {
            return;
        }
        let extra = match ctx
            .client
            .additional_datanodes(&ctx.path, self.block, &self.nodes, &ctx.excluded, 1)
            .await
        {
            Ok(extra) => extra,
            Err(e) => {
                debug!(block = %self.block.id, error = %e, "no replacement datanode");
                return;
            }
        };
        for node in extra {
            let source = Source {
                block: self.block,
                token: self.token.as_ref(),
                survivors: &self.nodes,
            };
            if copy_acked_prefix(ctx, source, &node, self.acked_bytes).await {
                self.nodes.push(node);
            }
        }
    }
}

/// Copies the acknowledged prefix of the block from a survivor to a
/// replacement datanode (`TransferRbw`), so it can join the pipeline;
/// `false` = no survivor could. A failed target is excluded from now on.
async fn copy_acked_prefix(
    ctx: &mut WriteContext,
    from: Source<'_>,
    target: &Datanode,
    acked_bytes: u64,
) -> bool {
    let block = from.block;
    for source in from.survivors {
        let request = v1::TransferRbwRequest {
            block: Some(block.to_wire()),
            length: acked_bytes,
            targets: vec![target.to_wire()],
            client_name: ctx.client.client_name(),
            token: token_to_wire(from.token),
        };
        let mut rpc = match ctx.client.datanode(&source.address) {
            Ok(rpc) => rpc,
            Err(e) => {
                debug!(block = %block.id, error = %e, "transfer source unusable");
                continue;
            }
        };
        match tokio::time::timeout(TRANSFER_TIMEOUT, rpc.transfer_rbw(request)).await {
            Ok(Ok(_)) => {
                debug!(block = %block.id, source = %source.address, target = %target.address,
                    acked_bytes, "replacement datanode filled");
                return true;
            }
            Ok(Err(status)) if status.code() == tonic::Code::Aborted => {
                warn!(block = %block.id, target = %target.address, reason = %status.message(),
                    "replacement datanode failed");
                ctx.excluded.push(target.id.clone());
                return false;
            }
            Ok(Err(status)) => {
                warn!(block = %block.id, source = %source.address, reason = %status.message(),
                    "transfer to the replacement failed; trying another survivor");
            }
            Err(_) => {
                warn!(block = %block.id, source = %source.address,
                    "transfer to the replacement timed out; trying another survivor");
            }
        }
    }
    false
}

/// Where a replacement's copy comes from: the block, the token that grants
/// COPY on it, and the survivors that hold it.
#[derive(Debug, Clone, Copy)]
struct Source<'a> {
    block: Block,
    token: Option<&'a BlockToken>,
    survivors: &'a [Datanode],
}

/// What a recovery header tells the survivors.
#[derive(Debug, Clone, Copy)]
struct Recovery {
    previous_gen_stamp: u64,
    acked_length: u64,
}

/// One ack reader's report.
#[derive(Debug)]
enum AckEvent {
    Ack {
        seqno: i64,
        statuses: Vec<PipelineStatus>,
    },
    /// The datanode ended the ack stream.
    Ended,
    /// The stream broke.
    Failed(String),
}

/// The node to drop for an ack's statuses, if any is not SUCCESS.
///
/// ERROR_CHECKSUM is reported by the last datanode, which verifies every
/// chunk; HDFS then hunts for the node that corrupted the data in transit.
/// We keep it simple and drop the node that reported it (the last one) and
/// resend: a node that really corrupts data will be caught again downstream.
fn fault_in(statuses: &[PipelineStatus], nodes: usize) -> Option<Fault> {
    for (index, status) in statuses.iter().enumerate() {
        match status {
            PipelineStatus::Success => {}
            PipelineStatus::ErrorChecksum => {
                return Some(Fault {
                    index,
                    reason: "checksum error reported by the pipeline".into(),
                });
            }
            PipelineStatus::Error | PipelineStatus::Unspecified => {
                return Some(Fault {
                    index,
                    reason: "datanode reported an error".into(),
                });
            }
        }
    }
    (statuses.len() < nodes).then(|| Fault {
        index: statuses.len(),
        reason: format!(
            "ack carries {} statuses for {nodes} datanodes",
            statuses.len()
        ),
    })
}

/// A WriteBlock stream to the first datanode of a pipeline.
#[derive(Debug)]
struct Connection {
    requests: mpsc::Sender<v1::WriteBlockMessage>,
    acks: mpsc::Receiver<AckEvent>,
    _reader: OwnedTask,
}

impl Connection {
    async fn open(
        ctx: &WriteContext,
        block: Block,
        token: Option<&BlockToken>,
        nodes: &[Datanode],
        recovery: Option<Recovery>,
    ) -> Result<Self, Error> {
        let Some((first, downstream)) = nodes.split_first() else {
            return Err(Error::PipelineFailed {
                path: ctx.path.clone(),
                block: block.id,
                reason: "empty pipeline".into(),
            });
        };
        let header = v1::WriteBlockHeader {
            block: Some(block.to_wire()),
            downstream: downstream.iter().map(Datanode::to_wire).collect(),
            client_name: ctx.client.client_name(),
            recovery: recovery.is_some(),
            previous_gen_stamp: recovery.map_or(0, |r| r.previous_gen_stamp),
            acked_length: recovery.map_or(0, |r| r.acked_length),
            keep_rbw: false,
            token: token_to_wire(token),
        };
        let (requests, queue) = mpsc::channel(REQUEST_QUEUE);
        requests
            .send(v1::WriteBlockMessage {
                message: Some(v1::write_block_message::Message::Header(header)),
            })
            .await
            .map_err(|_| Error::Datanode {
                datanode: first.address.clone(),
                reason: "request queue closed".into(),
            })?;
        let datanode_error = |reason: String| Error::Datanode {
            datanode: first.address.clone(),
            reason,
        };
        let mut rpc = ctx.client.datanode(&first.address)?;
        let response = tokio::time::timeout(
            ctx.tuning.ack_timeout,
            rpc.write_block(ReceiverStream::new(queue)),
        )
        .await
        .map_err(|_| datanode_error("no answer to WriteBlock".into()))?
        .map_err(|s| datanode_error(s.message().to_owned()))?;
        let mut stream = response.into_inner();
        // At most `WINDOW` acks (plus the closing event) are ever due, so the
        // reader never waits long on this channel.
        let (ack_tx, acks) = mpsc::channel(WINDOW.max(ctx.tuning.window) + 2);
        let reader = OwnedTask::spawn(async move {
            loop {
                let event = match stream.message().await {
                    Ok(Some(ack)) => AckEvent::Ack {
                        seqno: ack.seqno,
                        statuses: ack.statuses().collect(),
                    },
                    Ok(None) => AckEvent::Ended,
                    Err(status) => AckEvent::Failed(status.message().to_owned()),
                };
                let done = !matches!(event, AckEvent::Ack { .. });
                if ack_tx.send(event).await.is_err() || done {
                    return;
                }
            }
        });
        Ok(Connection {
            requests,
            acks,
            _reader: reader,
        })
    }
}

#[cfg(test)]
#[path = "output_stream_test.rs"]
mod tests;
