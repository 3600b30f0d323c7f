//! Serves finalized replicas: ranges of a block in 1 MiB chunk-aligned
//! packets with their stored checksums (the client verifies them), and the
//! whole-block CRC32C composed from the chunk checksums.
//!
//! ```text
//!   blocking thread: read_chunks(1 MiB) ──► one packet
//!        │ bounded channel (READ_QUEUE packets)
//!        v
//!   gRPC response stream
//! ```
//!
//! Only a finalized replica with the exact generation stamp is served; a
//! replica whose files disagree is refused with `DATA_LOSS` and reported to
//! every namenode as corrupt.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use dfs_proto::checksum::CHUNK_SIZE;
use dfs_proto::ids::{BlockId, GenStamp};
use tokio::sync::mpsc;

use crate::block_store::{self, ReplicaReader};
use crate::data_path::{ActiveTransfer, DataPath};

/// Bytes of data per read packet. Larger than a write packet (64 KiB): a
/// read has no per-packet ack to pace, and every message costs the same
/// hand-offs through tonic whatever its size (`dfs cat` of 1 GiB on 2
/// cores: 0.75 s with 64 KiB packets, 0.55 s with 256 KiB, 0.5-0.6 s with
/// 1 MiB).
const PACKET_SIZE: usize = 1024 * 1024;
/// Bytes read from disk per step: whole packets.
const READ_SLICE: usize = PACKET_SIZE;
/// Packets queued towards the client.
const READ_QUEUE: usize = 4;

/// One packet of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadPacket {
    /// Chunk-aligned block offset of `data`.
    pub(crate) offset: u64,
    /// The bytes.
    pub(crate) data: Bytes,
    /// One CRC32C per 512-byte chunk, little-endian u32s.
    pub(crate) checksums: Bytes,
}

/// Read packets; an `Err` ends the stream with that status.
pub(crate) type ReadPackets = mpsc::Receiver<Result<ReadPacket, tonic::Status>>;

/// A range of a replica: `length == 0` means to the end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadRange {
    /// First byte wanted.
    pub(crate) offset: u64,
    /// Bytes wanted; 0 = to the end of the block.
    pub(crate) length: u64,
}

/// Opens the replica and streams `range` of it.
///
/// # Errors
/// `NOT_FOUND` (no finalized replica of that gen stamp), `DATA_LOSS`
/// (corrupt; reported), `OUT_OF_RANGE` (offset past the end).
pub(crate) async fn read_block(
    dp: &Arc<DataPath>,
    block: BlockId,
    gs: GenStamp,
    range: ReadRange,
) -> Result<ReadPackets, tonic::Status> {
    let reader = open(dp, block, gs).await?;
    if range.offset > reader.len() {
        return Err(tonic::Status::out_of_range(format!(
            "offset {} past the end of {block} ({} bytes)",
            range.offset,
            reader.len()
        )));
    }
    let end = if range.length == 0 {
        reader.len()
    } else {
        range.offset.saturating_add(range.length).min(reader.len())
    };
    let (tx, rx) = mpsc::channel(READ_QUEUE);
    let transfer = dp.start_transfer();
    let dp2 = Arc::clone(dp);
    let span = tracing::debug_span!("read_block", %block, gen_stamp = %gs);
    dp.tasks.spawn_blocking(move || {
        let _entered = span.enter();
        stream_range(&dp2, reader, range.offset, end, &tx, transfer);
    });
    Ok(rx)
}

/// Opens a finalized replica on a blocking thread; reports a corrupt one.
async fn open(
    dp: &Arc<DataPath>,
    block: BlockId,
    gs: GenStamp,
) -> Result<ReplicaReader, tonic::Status> {
    let store = Arc::clone(&dp.store);
    let opened = tokio::task::spawn_blocking(move || store.open_finalized(block, gs))
        .await
        .map_err(|e| tonic::Status::internal(format!("open task failed: {e}")))?;
    opened.map_err(|e| refuse(dp, block, gs, e))
}

/// Maps a read error to a status, reporting corrupt replicas.
fn refuse(dp: &DataPath, block: BlockId, gs: GenStamp, e: block_store::Error) -> tonic::Status {
    if let block_store::Error::CorruptReplica { .. } = e {
        tracing::warn!(%block, gen_stamp = %gs, error = %e, "corrupt replica refused");
        dp.reports.corrupt(block_store::ReplicaInfo {
            block,
            gen_stamp: gs,
            length: 0,
        });
    }
    tonic::Status::from(e)
}

/// Reads `[offset, end)` in slices and sends it as packets; stops when the
/// receiver is gone (the client cancelled).
fn stream_range(
    dp: &DataPath,
    mut reader: ReplicaReader,
    offset: u64,
    end: u64,
    tx: &mpsc::Sender<Result<ReadPacket, tonic::Status>>,
    _transfer: ActiveTransfer,
) {
    let mut at = offset;
    loop {
        let want = usize::try_from(end.saturating_sub(at))
            .unwrap_or(usize::MAX)
            .min(READ_SLICE);
        if want == 0 && at > offset {
            return;
        }
        let (start, data, sums) = match reader.read_chunks(at, want) {
            Ok(read) => read,
            Err(e) => {
                let status = refuse(dp, reader.block(), reader.gen_stamp(), e);
                let _ = tx.blocking_send(Err(status));
                return;
            }
        };
        if data.is_empty() {
            // An empty range (or an empty block) still gets one empty packet,
            // so the client sees where it is.
            if at == offset {
                let _ = tx.blocking_send(Ok(ReadPacket {
                    offset: start,
                    data: Bytes::new(),
                    checksums: Bytes::new(),
                }));
            }
            return;
        }
        let data = Bytes::from(data);
        let mut raw = Vec::with_capacity(sums.len() * 4);
        for s in &sums {
            raw.extend_from_slice(&s.to_le_bytes());
        }
        let raw = Bytes::from(raw);
        let mut sent = 0;
        while sent < data.len() {
            let n = (data.len() - sent).min(PACKET_SIZE);
            let chunks_before = sent / CHUNK_SIZE;
            let chunks = n.div_ceil(CHUNK_SIZE);
            let packet = ReadPacket {
                offset: start + sent as u64,
                data: data.slice(sent..sent + n),
                checksums: raw.slice(chunks_before * 4..(chunks_before + chunks) * 4),
            };
            if tx.blocking_send(Ok(packet)).is_err() {
                return;
            }
            dp.events.read_packets.inc();
            dp.events.read_bytes.inc_by(n as u64);
            sent += n;
        }
        at = start + data.len() as u64;
        if at >= end {
            return;
        }
    }
}

/// The CRC32C of a finalized replica's content and its length, composed
/// from the stored chunk checksums without reading the data.
///
/// # Errors
/// As [`read_block`].
pub(crate) async fn block_checksum(
    dp: &Arc<DataPath>,
    block: BlockId,
    gs: GenStamp,
) -> Result<(u32, u64), tonic::Status> {
    let reader = open(dp, block, gs).await?;
    let length = reader.len();
    let sums = tokio::task::spawn_blocking(move || reader.read_all_checksums())
        .await
        .map_err(|e| tonic::Status::internal(format!("checksum task failed: {e}")))?
        .map_err(|e| refuse(dp, block, gs, e))?;
    Ok((compose(&sums, length), length))
}

/// Composes chunk CRCs into the CRC of the whole content of `length` bytes:
/// every chunk is 512 bytes except perhaps the last.
pub(crate) fn compose(sums: &[u32], length: u64) -> u32 {
    let shift = chunk_shift();
    let tail = (length % CHUNK_SIZE as u64) as usize;
    let mut crc = 0;
    for (i, &sum) in sums.iter().enumerate() {
        crc = if i + 1 == sums.len() && tail != 0 {
            crc32c::crc32c_combine(crc, sum, tail)
        } else {
            shift.apply(crc) ^ sum
        };
    }
    crc
}

/// "Append 512 zero bytes" as a CRC operator: `crc32c_combine(a, b, 512)`
/// is `shift(a) ^ b`, and `shift` is linear over GF(2), so four byte tables
/// built from its value on the 32 unit vectors apply it in four lookups
/// (a plain `crc32c_combine` per chunk costs a few µs: ~1 s for 128 MiB).
struct ChunkShift {
    tables: [[u32; 256]; 4],
}

impl ChunkShift {
    fn apply(&self, crc: u32) -> u32 {
        let [b0, b1, b2, b3] = crc.to_le_bytes();
        self.tables[0][usize::from(b0)]
            ^ self.tables[1][usize::from(b1)]
            ^ self.tables[2][usize::from(b2)]
            ^ self.tables[3][usize::from(b3)]
    }
}

fn chunk_shift() -> &'static ChunkShift {
    static SHIFT: OnceLock<ChunkShift> = OnceLock::new();
    SHIFT.get_or_init(|| {
        let unit: Vec<u32> = (0..32)
            .map(|bit| crc32c::crc32c_combine(1 << bit, 0, CHUNK_SIZE))
            .collect();
        let mut tables = [[0u32; 256]; 4];
        for (byte, table) in tables.iter_mut().enumerate() {
            for (value, entry) in table.iter_mut().enumerate() {
                *entry = (0..8)
                    .filter(|bit| value & (1 << bit) != 0)
                    .map(|bit| unit.get(byte * 8 + bit).copied().unwrap_or(0))
                    .fold(0, |a, b| a ^ b);
            }
        }
        ChunkShift { tables }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::checksum::chunk_checksums;

    #[test]
    fn composed_checksum_equals_the_crc_of_the_whole_content() {
        for len in [0usize, 1, 511, 512, 513, 1024, 4000, 65_536, 200_001] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 300) as u8).collect();
            assert_eq!(
                compose(&chunk_checksums(&data), len as u64),
                crc32c::crc32c(&data),
                "length {len}"
            );
        }
    }
}
