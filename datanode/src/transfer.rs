//! This datanode as a writer: pushes a replica it holds through a WriteBlock
//! pipeline to other datanodes, for re-replication (a finalized replica,
//! finalized on the targets) and for pipeline recovery with a replacement
//! node (an rbw prefix, left rbw on the targets).
//!
//! ```text
//!   blocking thread: read_chunks ──► packets ──► WriteBlock(targets[0], header.downstream = targets[1..])
//!                                                   │ acks: every packet, every target SUCCESS
//!                                                   v
//!                                                 done / TransferError naming the failed target
//! ```
//!
//! At most `WINDOW` packets are unacknowledged, and the reader is a bounded
//! channel away, so a copy holds a few MiB whatever the block size.

use std::sync::Arc;

use bytes::Bytes;
use dfs_proto::block_token::BlockToken;
use dfs_proto::ids::{BlockId, GenStamp};
use dfs_proto::v1;
use tokio::sync::mpsc;

use crate::block_store::ReplicaReader;
use crate::data_path::DataPath;
use crate::pipeline::{Packet, Setup, Target, WriteHeader};

/// Packets sent but not yet acknowledged.
const WINDOW: usize = 16;
/// Bytes of data per packet, as a client writes them.
const PACKET_SIZE: usize = 64 * 1024;

/// What to copy where.
#[derive(Debug, Clone)]
pub(crate) struct CopyOrder {
    /// The block.
    pub(crate) block: BlockId,
    /// The gen stamp the targets' replicas get.
    pub(crate) gen_stamp: GenStamp,
    /// Where to, in pipeline order.
    pub(crate) targets: Vec<Target>,
    /// Leave the copies rbw (pipeline recovery) instead of finalizing them.
    pub(crate) keep_rbw: bool,
    /// WRITE access to the block on the targets: the client's (TransferRbw)
    /// or one this datanode signed (re-replication).
    pub(crate) token: Option<BlockToken>,
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransferError {
    /// Reading the local replica failed.
    #[error("reading the local replica: {0}")]
    Local(String),
    /// A target failed or refused; `target` is its index in the order.
    #[error("target {target} ({address}) failed: {reason}")]
    Target {
        /// Index of the failed target.
        target: usize,
        /// Its address.
        address: String,
        /// What happened.
        reason: String,
    },
}

/// Copies `reader`'s whole replica (its `len()` bytes) to `order.targets`.
///
/// # Errors
/// The local read failed, or a target did not acknowledge every packet.
pub(crate) async fn copy_replica(
    dp: &Arc<DataPath>,
    reader: ReplicaReader,
    order: CopyOrder,
) -> Result<(), TransferError> {
    let _transfer = dp.start_transfer();
    let Some((first, rest)) = order.targets.split_first() else {
        return Ok(());
    };
    let fail = |target: usize, reason: String| TransferError::Target {
        target,
        address: order
            .targets
            .get(target)
            .map(|t| t.transfer_address.clone())
            .unwrap_or_default(),
        reason,
    };
    let header = WriteHeader {
        block: order.block,
        gen_stamp: order.gen_stamp,
        downstream: rest.to_vec(),
        client_name: format!("datanode {}", dp.settings.node_name),
        setup: Setup::Create,
        keep_rbw: order.keep_rbw,
        token: order.token.clone(),
    };
    let mut client = dp
        .connect(&first.transfer_address)
        .await
        .map_err(|s| fail(0, s.message().to_owned()))?;
    let (packets_tx, mut packets_rx) = mpsc::channel(WINDOW / 2);
    let reading = dp
        .tasks
        .spawn_blocking(move || read_packets(reader, &packets_tx));
    let (tx, rx) = mpsc::channel(WINDOW);
    let _ = tx.send(v1::WriteBlockMessage::from(header)).await;
    let mut acks = client
        .write_block(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| fail(0, s.message().to_owned()))?
        .into_inner();
    let mut outstanding = std::collections::VecDeque::new();
    let mut sent_last = false;
    let expected = order.targets.len();
    loop {
        let can_send = !sent_last && outstanding.len() < WINDOW;
        tokio::select! {
            packet = packets_rx.recv(), if can_send => match packet {
                Some(Ok(packet)) => {
                    let packet: Packet = packet;
                    sent_last = packet.is_last;
                    outstanding.push_back(packet.seqno);
                    if tx.send(v1::WriteBlockMessage::from(packet)).await.is_err() {
                        return Err(fail(0, "the stream closed".to_owned()));
                    }
                }
                Some(Err(reason)) => return Err(TransferError::Local(reason)),
                None => return Err(TransferError::Local("the reader stopped early".to_owned())),
            },
            ack = tokio::time::timeout(dp.settings.ack_timeout, acks.message()), if !outstanding.is_empty() => {
                let ack = match ack {
                    Err(_) => return Err(fail(0, "no ack within the ack timeout".to_owned())),
                    Ok(Err(status)) => return Err(fail(0, status.message().to_owned())),
                    Ok(Ok(None)) => return Err(fail(0, "acks ended early".to_owned())),
                    Ok(Ok(Some(ack))) => ack,
                };
                let want = outstanding.pop_front();
                if u64::try_from(ack.seqno).ok() != want {
                    return Err(fail(0, format!("ack for seqno {} while expecting {want:?}", ack.seqno)));
                }
                let ok = i32::from(v1::PipelineStatus::Success);
                if let Some(bad) = ack.statuses.iter().position(|&s| s != ok) {
                    return Err(fail(bad, format!("status {:?}", ack.statuses)));
                }
                if ack.statuses.len() != expected {
                    return Err(fail(ack.statuses.len(), "missing from the ack".to_owned()));
                }
                if sent_last && outstanding.is_empty() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = reading.await;
    Ok(())
}

/// Reads the replica in slices and cuts it into packets; the last one is flagged.
fn read_packets(mut reader: ReplicaReader, tx: &mpsc::Sender<Result<Packet, String>>) {
    let length = reader.len();
    let mut at = 0u64;
    let mut seqno = 0u64;
    loop {
        let (start, data, sums) = match reader.read_chunks(at, 16 * PACKET_SIZE) {
            Ok(read) => read,
            Err(e) => {
                let _ = tx.blocking_send(Err(e.to_string()));
                return;
            }
        };
        if data.is_empty() && start < length {
            let _ = tx.blocking_send(Err(format!("no data at offset {start} of {length}")));
            return;
        }
        let data = Bytes::from(data);
        let mut raw = Vec::with_capacity(sums.len() * 4);
        for s in &sums {
            raw.extend_from_slice(&s.to_le_bytes());
        }
        let raw = Bytes::from(raw);
        let mut sent = 0;
        loop {
            let n = (data.len() - sent).min(PACKET_SIZE);
            let end = start + (sent + n) as u64;
            let first_chunk = sent / 512;
            let chunks = n.div_ceil(512);
            let packet = Packet {
                seqno,
                offset: start + sent as u64,
                data: data.slice(sent..sent + n),
                checksums: raw.slice(first_chunk * 4..(first_chunk + chunks) * 4),
                is_last: end >= length,
            };
            let is_last = packet.is_last;
            if tx.blocking_send(Ok(packet)).is_err() || is_last {
                return;
            }
            seqno += 1;
            sent += n;
            if sent >= data.len() {
                break;
            }
        }
        at = start + data.len() as u64;
    }
}
