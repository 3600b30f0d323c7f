//! The DataTransfer gRPC service: a thin adapter from the wire to
//! [`crate::pipeline`], [`crate::block_reader`] and [`crate::transfer`], and
//! the one place where their types and `dfs.v1` messages are converted.

use std::sync::Arc;

use dfs_proto::block_token::{AccessModes, BlockToken};
use dfs_proto::ids::{BlockId, GenStamp};
use dfs_proto::v1;
use dfs_proto::v1::data_transfer_server::{DataTransfer, DataTransferServer};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::block_access::Access;
use crate::block_reader::{self, ReadPacket, ReadRange};
use crate::block_store;
use crate::data_path::{DataPath, MAX_MESSAGE};
use crate::pipeline::{self, Ack, AckStatus, Packet, Setup, Target, WriteHeader};
use crate::transfer::{self, CopyOrder, TransferError};

/// The DataTransfer service of one datanode.
#[derive(Debug, Clone)]
pub(crate) struct DataTransferService {
    dp: Arc<DataPath>,
}

impl DataTransferService {
    /// The tonic server for `dp`, with message sizes clamped to [`MAX_MESSAGE`].
    pub(crate) fn server(dp: Arc<DataPath>) -> DataTransferServer<DataTransferService> {
        DataTransferServer::new(DataTransferService { dp })
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }
}

#[tonic::async_trait]
impl DataTransfer for DataTransferService {
    type WriteBlockStream = BoxStream<'static, Result<v1::PacketAck, Status>>;
    type ReadBlockStream = BoxStream<'static, Result<v1::ReadPacket, Status>>;

    async fn write_block(
        &self,
        request: Request<Streaming<v1::WriteBlockMessage>>,
    ) -> Result<Response<Self::WriteBlockStream>, Status> {
        let peer = peer_of(&request);
        let mut messages = request.into_inner();
        let first = tokio::time::timeout(self.dp.settings.idle_timeout, messages.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded("no WriteBlock header within the idle timeout")
            })??;
        let header = match first {
            Some(v1::WriteBlockMessage {
                message: Some(v1::write_block_message::Message::Header(h)),
            }) => WriteHeader::try_from(h)?,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message must be the header",
                ));
            }
        };
        self.dp.access.check(
            header.token.as_ref(),
            Access {
                op: "WriteBlock",
                block: header.block,
                gen_stamp: header.gen_stamp,
                needed: AccessModes::WRITE,
                peer: &peer,
            },
        )?;
        let acks = pipeline::write_block(&self.dp, header, pipeline::packets(messages)).await?;
        let acks = ReceiverStream::new(acks).map(|a| a.map(v1::PacketAck::from));
        Ok(Response::new(acks.boxed()))
    }

    async fn read_block(
        &self,
        request: Request<v1::ReadBlockRequest>,
    ) -> Result<Response<Self::ReadBlockStream>, Status> {
        let peer = peer_of(&request);
        let r = request.into_inner();
        let (block, gs) = extended_block(r.block.as_ref())?;
        self.dp.access.check(
            r.token.map(BlockToken::from).as_ref(),
            Access {
                op: "ReadBlock",
                block,
                gen_stamp: gs,
                needed: AccessModes::READ,
                peer: &peer,
            },
        )?;
        // One line per read, like HDFS's clienttrace: which client (by
        // address, so by rack) read which replica. Tests count these.
        tracing::info!(%block, gen_stamp = %gs, offset = r.offset, length = r.length, client = %r.client_name, %peer, "read block");
        let range = ReadRange {
            offset: r.offset,
            length: r.length,
        };
        let packets = block_reader::read_block(&self.dp, block, gs, range).await?;
        let packets = ReceiverStream::new(packets).map(|p| p.map(v1::ReadPacket::from));
        Ok(Response::new(packets.boxed()))
    }

    async fn block_checksum(
        &self,
        request: Request<v1::BlockChecksumRequest>,
    ) -> Result<Response<v1::BlockChecksumResponse>, Status> {
        let peer = peer_of(&request);
        let r = request.into_inner();
        let (block, gs) = extended_block(r.block.as_ref())?;
        self.dp.access.check(
            r.token.map(BlockToken::from).as_ref(),
            Access {
                op: "BlockChecksum",
                block,
                gen_stamp: gs,
                needed: AccessModes::READ,
                peer: &peer,
            },
        )?;
        let (crc32c, length) = block_reader::block_checksum(&self.dp, block, gs).await?;
        Ok(Response::new(v1::BlockChecksumResponse { crc32c, length }))
    }

    async fn transfer_rbw(
        &self,
        request: Request<v1::TransferRbwRequest>,
    ) -> Result<Response<v1::TransferRbwResponse>, Status> {
        let peer = peer_of(&request);
        let r = request.into_inner();
        let (block, gs) = extended_block(r.block.as_ref())?;
        let token = r.token.map(BlockToken::from);
        // COPY to read our replica out; the targets check the same token for WRITE.
        self.dp.access.check(
            token.as_ref(),
            Access {
                op: "TransferRbw",
                block,
                gen_stamp: gs,
                needed: AccessModes::COPY,
                peer: &peer,
            },
        )?;
        if r.targets.is_empty() {
            return Err(Status::invalid_argument(
                "TransferRbw needs at least one target",
            ));
        }
        let targets = r.targets.into_iter().map(Target::from).collect();
        let span = tracing::info_span!("transfer_rbw", %block, gen_stamp = %gs, length = r.length);
        async {
            tracing::info!(client = %r.client_name, "copying an rbw prefix to a replacement");
            // An old pipeline of the block may still hold the replica.
            self.dp
                .writers
                .preempt(block, std::time::Duration::from_secs(10))
                .await;
            let store = Arc::clone(&self.dp.store);
            let length = r.length;
            let reader = tokio::task::spawn_blocking(move || store.open_prefix(block, gs, length))
                .await
                .map_err(|e| Status::internal(format!("open task failed: {e}")))?
                .map_err(|e| match e {
                    block_store::Error::ReplicaNotFound { .. } => Status::from(e),
                    other => Status::failed_precondition(other.to_string()),
                })?;
            let order = CopyOrder {
                block,
                gen_stamp: gs,
                targets,
                keep_rbw: true,
                token,
            };
            transfer::copy_replica(&self.dp, reader, order)
                .await
                .map_err(|e| match e {
                    TransferError::Local(_) => Status::internal(e.to_string()),
                    TransferError::Target { .. } => Status::aborted(e.to_string()),
                })?;
            tracing::info!("rbw prefix copied");
            Ok(Response::new(v1::TransferRbwResponse {}))
        }
        .instrument(span)
        .await
    }
}

/// The requester's address, for the logs.
fn peer_of<T>(request: &Request<T>) -> String {
    request
        .remote_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.to_string())
}

/// The block id and gen stamp of a request's block.
fn extended_block(block: Option<&v1::ExtendedBlock>) -> Result<(BlockId, GenStamp), Status> {
    let b = block.ok_or_else(|| Status::invalid_argument("block is missing"))?;
    Ok((BlockId(b.block_id), GenStamp(b.gen_stamp)))
}

impl TryFrom<v1::WriteBlockHeader> for WriteHeader {
    type Error = Status;

    fn try_from(h: v1::WriteBlockHeader) -> Result<Self, Status> {
        let (block, gen_stamp) = extended_block(h.block.as_ref())?;
        let setup = if h.recovery {
            if h.previous_gen_stamp > gen_stamp.0 {
                return Err(Status::invalid_argument(format!(
                    "recovery from gen stamp {} to the older {gen_stamp}",
                    h.previous_gen_stamp
                )));
            }
            Setup::Recover {
                previous: GenStamp(h.previous_gen_stamp),
                acked_length: h.acked_length,
            }
        } else {
            Setup::Create
        };
        if h.downstream.iter().any(|d| d.transfer_address.is_empty()) {
            return Err(Status::invalid_argument(
                "a downstream datanode has no address",
            ));
        }
        Ok(WriteHeader {
            block,
            gen_stamp,
            downstream: h.downstream.into_iter().map(Target::from).collect(),
            client_name: h.client_name,
            setup,
            keep_rbw: h.keep_rbw,
            token: h.token.map(BlockToken::from),
        })
    }
}

impl From<WriteHeader> for v1::WriteBlockMessage {
    fn from(h: WriteHeader) -> Self {
        let (recovery, previous_gen_stamp, acked_length) = match h.setup {
            Setup::Create => (false, 0, 0),
            Setup::Recover {
                previous,
                acked_length,
            } => (true, previous.0, acked_length),
        };
        let header = v1::WriteBlockHeader {
            block: Some(v1::ExtendedBlock {
                block_id: h.block.0,
                gen_stamp: h.gen_stamp.0,
                length: 0,
            }),
            downstream: h
                .downstream
                .into_iter()
                .map(v1::DatanodeLocation::from)
                .collect(),
            client_name: h.client_name,
            recovery,
            previous_gen_stamp,
            acked_length,
            keep_rbw: h.keep_rbw,
            token: h.token.as_ref().map(v1::BlockToken::from),
        };
        v1::WriteBlockMessage {
            message: Some(v1::write_block_message::Message::Header(header)),
        }
    }
}

impl From<v1::DatanodeLocation> for Target {
    fn from(d: v1::DatanodeLocation) -> Self {
        Target {
            datanode_id: d.datanode_id,
            transfer_address: d.transfer_address,
            rack: d.rack,
        }
    }
}

impl From<Target> for v1::DatanodeLocation {
    fn from(t: Target) -> Self {
        v1::DatanodeLocation {
            datanode_id: t.datanode_id,
            transfer_address: t.transfer_address,
            rack: t.rack,
        }
    }
}

impl TryFrom<v1::Packet> for Packet {
    type Error = String;

    fn try_from(p: v1::Packet) -> Result<Self, String> {
        let seqno = u64::try_from(p.seqno).map_err(|_| format!("negative seqno {}", p.seqno))?;
        Ok(Packet {
            seqno,
            offset: p.offset_in_block,
            data: p.data,
            checksums: p.checksums,
            is_last: p.last_packet_in_block,
        })
    }
}

impl From<Packet> for v1::WriteBlockMessage {
    fn from(p: Packet) -> Self {
        let packet = v1::Packet {
            // Seqnos came in as non-negative i64s.
            seqno: i64::try_from(p.seqno).unwrap_or(i64::MAX),
            offset_in_block: p.offset,
            data: p.data,
            checksums: p.checksums,
            last_packet_in_block: p.is_last,
        };
        v1::WriteBlockMessage {
            message: Some(v1::write_block_message::Message::Packet(packet)),
        }
    }
}

impl From<AckStatus> for v1::PipelineStatus {
    fn from(s: AckStatus) -> Self {
        match s {
            AckStatus::Success => v1::PipelineStatus::Success,
            AckStatus::Error => v1::PipelineStatus::Error,
            AckStatus::ErrorChecksum => v1::PipelineStatus::ErrorChecksum,
        }
    }
}

impl From<Ack> for v1::PacketAck {
    fn from(a: Ack) -> Self {
        v1::PacketAck {
            seqno: i64::try_from(a.seqno).unwrap_or(i64::MAX),
            statuses: a
                .statuses
                .into_iter()
                .map(|s| i32::from(v1::PipelineStatus::from(s)))
                .collect(),
        }
    }
}

impl From<ReadPacket> for v1::ReadPacket {
    fn from(p: ReadPacket) -> Self {
        v1::ReadPacket {
            offset_in_block: p.offset,
            data: p.data,
            checksums: p.checksums,
        }
    }
}

/// The block store's errors as gRPC statuses.
impl From<block_store::Error> for Status {
    fn from(e: block_store::Error) -> Self {
        use block_store::Error as E;
        let message = e.to_string();
        match e {
            E::ReplicaNotFound { .. } | E::GenStampMismatch { .. } => Status::not_found(message),
            E::ReplicaExists { .. } => Status::already_exists(message),
            E::StaleGenStamp { .. } => Status::failed_precondition(message),
            E::CorruptReplica { .. } | E::ChecksumMismatch { .. } => Status::data_loss(message),
            E::InvalidPacket { .. } => Status::invalid_argument(message),
            E::OutOfRange { .. } => Status::out_of_range(message),
            E::NoSpace => Status::resource_exhausted(message),
            E::Io(_) => Status::internal(message),
        }
    }
}
