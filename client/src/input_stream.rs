//! [`InputStream`]: reads a file block by block from the nearest healthy replica.
//!
//! ```text
//!            ┌ fetch block i   (replica 1 ─✗─► replica 2 ...) ─► bounded ─┐
//!  driver ───┤                                                           ├─► in order ─► bounded ─► read()
//!            └ fetch block i+1 (already streaming: read-ahead)  ─► bounded ─┘
//! ```
//!
//! The namenode lists each block's replicas nearest first. A block fetch
//! reads from the first replica, verifies every 512-byte chunk against its
//! CRC32C, and on a mismatch reports the replica (`ReportBadBlocks`) and
//! continues *from the same offset* on the next replica; a replica that
//! cannot be reached or breaks off is skipped without a report. When every
//! replica failed, the read fails naming the block.
//!
//! While block i is consumed, block i+1 is already streaming into its own
//! channel of [`READ_AHEAD_PACKETS`] packets, so memory stays O(window) and
//! not O(file). Locations are fetched again when the file is longer than the
//! range the namenode returned.
//!
//! The driver and fetch tasks are aborted when the stream (or a seek) drops them.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use dfs_proto::checksum::{CHUNK_SIZE, verify_chunks};
use dfs_proto::v1;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::blocks::{BlockLocations, Datanode, LocatedBlock, token_to_wire};
use crate::error::Error;
use crate::fs::DfsClient;
use crate::owned_task::OwnedTask;

/// Verified packets buffered per block being fetched (up to 1 MiB each).
pub const READ_AHEAD_PACKETS: usize = 4;
/// A replica silent for this long is abandoned for the next one.
const PACKET_TIMEOUT: Duration = Duration::from_secs(30);

/// A file opened for reading: `read`, [`next_chunk`](Self::next_chunk),
/// [`read_all_to`](Self::read_all_to), or use it as an [`AsyncRead`].
#[derive(Debug)]
pub struct InputStream {
    client: DfsClient,
    path: String,
    length: u64,
    position: u64,
    /// Verified bytes received but not handed out yet.
    pending: Bytes,
    chunks: mpsc::Receiver<Result<Bytes, Error>>,
    _driver: OwnedTask,
    failed: bool,
}

impl InputStream {
    pub(crate) async fn open(client: DfsClient, path: &str) -> Result<Self, Error> {
        let located = client.block_locations(path, 0, 0).await?;
        Ok(Self::start(client, path.to_owned(), located, 0))
    }

    fn start(client: DfsClient, path: String, located: BlockLocations, position: u64) -> Self {
        let length = located.file_length;
        let (tx, chunks) = mpsc::channel(READ_AHEAD_PACKETS);
        let locator = Locator {
            client: client.clone(),
            path: path.clone(),
            file_length: length,
            cached: located.blocks.into(),
            position,
        };
        let driver = OwnedTask::spawn(drive(locator, tx));
        InputStream {
            client,
            path,
            length,
            position,
            pending: Bytes::new(),
            chunks,
            _driver: driver,
            failed: false,
        }
    }

    /// The file's length when it was opened.
    pub fn len(&self) -> u64 {
        self.length
    }

    /// Whether the file was empty when it was opened.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Offset of the next byte `read` returns.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The file being read.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Moves to `position` (past the end = at the end); read-ahead restarts there.
    ///
    /// # Errors
    /// The namenode's refusal when locating the blocks again.
    pub async fn seek(&mut self, position: u64) -> Result<(), Error> {
        let located = self.client.block_locations(&self.path, position, 0).await?;
        *self = Self::start(
            self.client.clone(),
            self.path.clone(),
            located,
            position.min(self.length),
        );
        Ok(())
    }

    /// The next verified piece of the file (up to a packet), `None` at the end.
    ///
    /// # Errors
    /// Every replica of a block failed ([`Error::AllReplicasFailed`]), or the
    /// blocks could not be located. The stream is unusable afterwards.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        if !self.pending.is_empty() {
            let chunk = std::mem::take(&mut self.pending);
            self.position += chunk.len() as u64;
            return Ok(Some(chunk));
        }
        if self.failed {
            return Err(Error::StreamClosed {
                path: self.path.clone(),
            });
        }
        match self.chunks.recv().await {
            Some(Ok(chunk)) => {
                self.position += chunk.len() as u64;
                Ok(Some(chunk))
            }
            Some(Err(e)) => {
                self.failed = true;
                Err(e)
            }
            None => Ok(None),
        }
    }

    /// Reads up to `buf.len()` bytes; 0 = the end of the file.
    ///
    /// # Errors
    /// As [`next_chunk`](Self::next_chunk).
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pending.is_empty() {
            match self.next_chunk().await? {
                Some(chunk) => {
                    self.position -= chunk.len() as u64;
                    self.pending = chunk;
                }
                None => return Ok(0),
            }
        }
        Ok(self.take_pending(buf))
    }

    fn take_pending(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.advance(n);
        self.position += n as u64;
        n
    }

    /// Copies the rest of the file into `writer`; returns the bytes copied.
    ///
    /// # Errors
    /// As [`next_chunk`](Self::next_chunk), or the writer's error.
    pub async fn read_all_to<W>(&mut self, writer: &mut W) -> Result<u64, Error>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let mut copied = 0;
        while let Some(chunk) = self.next_chunk().await? {
            writer.write_all(&chunk).await?;
            copied += chunk.len() as u64;
        }
        writer.flush().await?;
        Ok(copied)
    }
}

impl AsyncRead for InputStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pending.is_empty() && !this.failed {
            match this.chunks.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => this.pending = chunk,
                Poll::Ready(Some(Err(e))) => {
                    this.failed = true;
                    return Poll::Ready(Err(io::Error::other(e)));
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
            }
        }
        if this.pending.is_empty() && this.failed {
            return Poll::Ready(Err(io::Error::other(Error::StreamClosed {
                path: this.path.clone(),
            })));
        }
        let n = buf.remaining().min(this.pending.len());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        this.position += n as u64;
        Poll::Ready(Ok(()))
    }
}

/// Hands out the file's blocks from `position` on, asking the namenode for
/// more locations when the cached ones run out.
#[derive(Debug)]
struct Locator {
    client: DfsClient,
    path: String,
    file_length: u64,
    cached: VecDeque<LocatedBlock>,
    /// File offset of the next byte to locate.
    position: u64,
}

impl Locator {
    /// The block holding `position` and the offset within it to start at.
    async fn next(&mut self) -> Result<Option<(LocatedBlock, u64)>, Error> {
        let mut fetched = false;
        while self.position < self.file_length {
            while self
                .cached
                .front()
                .is_some_and(|b| b.end() <= self.position)
            {
                self.cached.pop_front();
            }
            if let Some(block) = self.cached.pop_front() {
                if block.offset <= self.position {
                    let start = self.position - block.offset;
                    self.position = block.end();
                    return Ok(Some((block, start)));
                }
                self.cached.push_front(block);
            }
            if fetched {
                break;
            }
            let more = self
                .client
                .block_locations(&self.path, self.position, 0)
                .await?;
            self.cached = more.blocks.into();
            fetched = true;
        }
        if self.position < self.file_length {
            return Err(Error::Refused {
                kind: None,
                message: format!(
                    "'{}': the namenode located no block at offset {} of {}",
                    self.path, self.position, self.file_length
                ),
            });
        }
        Ok(None)
    }
}

/// Streams the blocks in order into `out`, keeping the next block's fetch
/// running while the current one drains. Not cancel-safe by design: it is
/// aborted as a whole when its stream goes away.
async fn drive(mut locator: Locator, out: mpsc::Sender<Result<Bytes, Error>>) {
    let client = locator.client.clone();
    let path = locator.path.clone();
    let spawn = |next: Result<Option<(LocatedBlock, u64)>, Error>| match next {
        Ok(Some((block, start))) => Some(BlockFetch::spawn(&client, &path, block, start)),
        Ok(None) => None,
        Err(e) => Some(BlockFetch::failed(e)),
    };
    let mut current = spawn(locator.next().await);
    let mut next = match current {
        Some(_) => spawn(locator.next().await),
        None => None,
    };
    while let Some(mut fetch) = current {
        while let Some(item) = fetch.packets.recv().await {
            let failed = item.is_err();
            if out.send(item).await.is_err() || failed {
                return;
            }
        }
        current = next.take();
        if current.is_some() {
            next = spawn(locator.next().await);
        }
    }
}

/// One block being fetched, possibly ahead of being read.
#[derive(Debug)]
struct BlockFetch {
    packets: mpsc::Receiver<Result<Bytes, Error>>,
    _task: Option<OwnedTask>,
}

impl BlockFetch {
    fn spawn(client: &DfsClient, path: &str, block: LocatedBlock, start: u64) -> Self {
        let (tx, packets) = mpsc::channel(READ_AHEAD_PACKETS);
        let task = OwnedTask::spawn(fetch_block(
            client.clone(),
            path.to_owned(),
            block,
            start,
            tx,
        ));
        BlockFetch {
            packets,
            _task: Some(task),
        }
    }

    /// A fetch that yields only `error`.
    fn failed(error: Error) -> Self {
        let (tx, packets) = mpsc::channel(1);
        // The channel has room for this one message and the receiver is alive.
        let _ = tx.try_send(Err(error));
        BlockFetch {
            packets,
            _task: None,
        }
    }
}

/// Why one replica stopped serving.
#[derive(Debug)]
enum ReplicaError {
    /// Data and checksum disagreed at this block offset.
    Corrupt(Error),
    /// Unreachable, refused, broke off, or sent something malformed.
    Failed(String),
    /// Nobody reads any more.
    ReceiverGone,
}

/// Reads `[start, length)` of one block, failing over across its replicas.
async fn fetch_block(
    client: DfsClient,
    path: String,
    located: LocatedBlock,
    start: u64,
    tx: mpsc::Sender<Result<Bytes, Error>>,
) {
    let mut position = start;
    let end = located.block.length;
    if position >= end {
        return;
    }
    let mut reasons = Vec::new();
    for replica in &located.locations {
        let result = read_replica(&client, &located, replica, &mut position, end, &tx).await;
        match result {
            Ok(()) | Err(ReplicaError::ReceiverGone) => return,
            Err(ReplicaError::Corrupt(error)) => {
                warn!(block = %located.block.id, datanode = %replica.address,
                    error = %error, "replica failed its checksum; trying the next one");
                if let Err(e) = client.report_bad_replica(located.block, replica).await {
                    debug!(block = %located.block.id, error = %e, "report bad block failed");
                }
                reasons.push(error.to_string());
            }
            Err(ReplicaError::Failed(reason)) => {
                warn!(block = %located.block.id, datanode = %replica.address,
                    reason = %reason, "replica read failed; trying the next one");
                client.forget_datanode(&replica.address);
                reasons.push(format!("datanode {}: {reason}", replica.address));
            }
        }
    }
    if reasons.is_empty() {
        reasons.push("no live replica".into());
    }
    let error = Error::AllReplicasFailed {
        path,
        block: located.block.id,
        reasons: reasons.join("; "),
    };
    let _ = tx.send(Err(error)).await;
}

/// Streams from one replica, sending verified bytes and advancing
/// `position` past them, until `end` or the replica's first failure.
async fn read_replica(
    client: &DfsClient,
    located: &LocatedBlock,
    replica: &Datanode,
    position: &mut u64,
    end: u64,
    tx: &mpsc::Sender<Result<Bytes, Error>>,
) -> Result<(), ReplicaError> {
    let failed = |reason: String| ReplicaError::Failed(reason);
    let mut rpc = client
        .datanode(&replica.address)
        .map_err(|e| failed(e.to_string()))?;
    let request = v1::ReadBlockRequest {
        block: Some(located.block.to_wire()),
        offset: *position,
        length: end - *position,
        client_name: client.client_name(),
        token: token_to_wire(located.token.as_ref()),
    };
    let mut stream = tokio::time::timeout(PACKET_TIMEOUT, rpc.read_block(request))
        .await
        .map_err(|_| failed("no answer to ReadBlock".into()))?
        .map_err(|s| failed(s.message().to_owned()))?
        .into_inner();
    while *position < end {
        let packet = tokio::time::timeout(PACKET_TIMEOUT, stream.message())
            .await
            .map_err(|_| failed(format!("silent for {} s", PACKET_TIMEOUT.as_secs())))?
            .map_err(|s| failed(s.message().to_owned()))?
            .ok_or_else(|| failed(format!("stream ended at offset {position} of {end}")))?;
        let offset = packet.offset_in_block;
        let packet_end = offset + packet.data.len() as u64;
        if !offset.is_multiple_of(CHUNK_SIZE as u64)
            || offset > *position
            || packet_end <= *position
        {
            return Err(failed(format!(
                "packet [{offset}, {packet_end}) does not continue at offset {position}"
            )));
        }
        let checksums = decode_checksums(&packet.checksums)
            .ok_or_else(|| failed("checksums are not whole u32s".into()))?;
        let (good, corrupt) = match verify_chunks(&packet.data, &checksums) {
            Ok(()) => (packet.data, None),
            Err(mismatch) => {
                let good = mismatch.chunk * CHUNK_SIZE;
                let bad_offset = offset + good as u64;
                let error = Error::ChecksumMismatch {
                    block: located.block.id,
                    offset: bad_offset,
                    datanode: replica.address.clone(),
                };
                (
                    packet.data.slice(..good.min(packet.data.len())),
                    Some(error),
                )
            }
        };
        // Hand out the verified bytes at and after `position`, within the block.
        let skip = usize::try_from(*position - offset).unwrap_or(usize::MAX);
        if skip < good.len() {
            let take = usize::try_from(end - *position).unwrap_or(usize::MAX);
            let piece = good.slice(skip..good.len().min(skip.saturating_add(take)));
            *position += piece.len() as u64;
            tx.send(Ok(piece))
                .await
                .map_err(|_| ReplicaError::ReceiverGone)?;
        }
        if let Some(error) = corrupt {
            return Err(ReplicaError::Corrupt(error));
        }
    }
    Ok(())
}

/// Little-endian u32s; `None` when the length is not a multiple of 4.
pub(crate) fn decode_checksums(bytes: &[u8]) -> Option<Vec<u32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

#[cfg(test)]
#[path = "input_stream_test.rs"]
mod tests;
