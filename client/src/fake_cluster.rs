//! An in-process fake cluster for the client's component tests: fake
//! namenodes (just the block calls, `mkdirs` and `get_file_info`) and N fake
//! datanodes on `127.0.0.1:0`, sharing one [`FakeState`] that tests inspect
//! and steer (write faults, held acks, corrupt replicas, which namenode leads).
//!
//! The first datanode of a pipeline plays the whole pipeline: it stores each
//! packet on every node of the pipeline and acks with one status per node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use dfs_proto::block_token::AccessModes;
use dfs_proto::checksum::CHUNK_SIZE;
use dfs_proto::status::{ErrorKind, LEADER_HINT_KEY};
use dfs_proto::v1;
use dfs_proto::v1::PipelineStatus;
use dfs_proto::v1::client_protocol_server::{ClientProtocol, ClientProtocolServer};
use dfs_proto::v1::data_transfer_server::{DataTransfer, DataTransferServer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status};

use crate::config::ClientConfig;
use crate::fs::DfsClient;
use crate::input_stream::decode_checksums;
use crate::output_stream::encode_checksums;
use crate::owned_task::OwnedTask;

/// One replica on one fake datanode.
#[derive(Debug, Clone, Default)]
pub(crate) struct Replica {
    pub(crate) gen_stamp: u64,
    pub(crate) data: Vec<u8>,
}

/// A packet as the first datanode received it.
#[derive(Debug, Clone)]
pub(crate) struct SeenPacket {
    pub(crate) block: u64,
    pub(crate) seqno: i64,
    pub(crate) offset: u64,
    pub(crate) len: usize,
    pub(crate) last: bool,
}

/// A fault to inject into a write: the node answers `status` for packet `seqno`.
#[derive(Debug, Clone)]
pub(crate) struct WriteFault {
    pub(crate) datanode: String,
    pub(crate) seqno: i64,
    pub(crate) status: PipelineStatus,
}

#[derive(Debug, Clone)]
pub(crate) struct FakeFile {
    pub(crate) block_size: u64,
    pub(crate) replication: u32,
    /// Blocks in order, each with its pipeline / replica nodes.
    pub(crate) blocks: Vec<(v1::ExtendedBlock, Vec<String>)>,
    pub(crate) completed: bool,
}

/// Everything the fakes know; tests read and steer it.
#[derive(Debug, Default)]
pub(crate) struct FakeState {
    pub(crate) datanodes: Vec<v1::DatanodeLocation>,
    pub(crate) files: HashMap<String, FakeFile>,
    pub(crate) replicas: HashMap<(String, u64), Replica>,
    next_block: u64,
    next_gen_stamp: u64,
    pub(crate) faults: Vec<WriteFault>,
    pub(crate) packets: Vec<SeenPacket>,
    /// Recovery headers seen: (block, new gen stamp, acked length, pipeline).
    pub(crate) recoveries: Vec<(u64, u64, u64, Vec<String>)>,
    /// (datanode, block, offset) of every ReadBlock.
    pub(crate) reads: Vec<(String, u64, u64)>,
    /// (block, datanode) of every bad replica reported.
    pub(crate) bad_reports: Vec<(u64, String)>,
    /// (datanode, block) -> block offset of a byte served flipped.
    pub(crate) corrupt: HashMap<(String, u64), u64>,
    /// Namenode calls in order, by name.
    pub(crate) calls: Vec<String>,
    /// Complete answers `false` this many more times.
    pub(crate) complete_not_yet: u32,
    /// GetBlockLocations returns at most this many blocks.
    pub(crate) blocks_per_reply: Option<usize>,
    /// Namenodes (by address) that are not the leader, each with the hint it
    /// sends with `NotLeader`; every other namenode leads.
    pub(crate) followers: HashMap<String, Option<String>>,
    /// (namenode, call, call id) of every namenode call, in order.
    pub(crate) namenode_calls: Vec<(String, String, u64)>,
    /// One-shot faults: the namenode answers its next call with the fault.
    pub(crate) namenode_faults: Vec<(String, NamenodeFault)>,
    /// Paths `get_file_info` and `mkdirs` know.
    pub(crate) directories: Vec<String>,
    /// The lease soft limit Create answers with (0 = not said).
    pub(crate) lease_soft_limit_ms: u64,
}

/// How a fake namenode fails one call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NamenodeFault {
    /// `Unavailable` with no dfs kind, as when a reply is lost in transport.
    Transport,
    /// A dfs refusal of this kind.
    Refuse(ErrorKind),
}

/// Fake namenodes only (no datanodes), each serving until dropped.
#[derive(Debug)]
pub(crate) struct FakeNamenodes {
    pub(crate) state: Arc<Mutex<FakeState>>,
    /// Their addresses, in start order.
    pub(crate) addresses: Vec<String>,
    _servers: Vec<OwnedTask>,
}

impl FakeNamenodes {
    pub(crate) async fn start(count: usize) -> Self {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let mut addresses = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..count {
            let (address, server) = spawn_namenode(&state).await;
            addresses.push(address);
            servers.push(server);
        }
        FakeNamenodes {
            state,
            addresses,
            _servers: servers,
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    /// A client of `namenodes` (in that order) that fails over for `timeout_ms`.
    pub(crate) fn client(&self, namenodes: &[&str], timeout_ms: u64) -> DfsClient {
        self.client_with_rpc_timeout(namenodes, timeout_ms, 1_000)
    }

    /// [`FakeNamenodes::client`] whose attempts give up after `rpc_timeout_ms`.
    pub(crate) fn client_with_rpc_timeout(
        &self,
        namenodes: &[&str],
        timeout_ms: u64,
        rpc_timeout_ms: u64,
    ) -> DfsClient {
        let config = ClientConfig {
            user: Some("tester".into()),
            failover_timeout_ms: timeout_ms,
            rpc_timeout_ms,
            ..ClientConfig::new(namenodes.iter().map(|n| (*n).to_owned()).collect())
        };
        DfsClient::connect(&config, None).unwrap()
    }

    /// (namenode, call id) of every call named `call`.
    pub(crate) fn calls_of(&self, call: &str) -> Vec<(String, u64)> {
        self.state()
            .namenode_calls
            .iter()
            .filter(|(_, c, _)| c == call)
            .map(|(n, _, id)| (n.clone(), *id))
            .collect()
    }
}

/// An address with nothing listening: connecting to it is refused.
/// A namenode frozen as by SIGSTOP: the kernel completes TCP handshakes
/// into the listen backlog, but nothing ever reads or answers. Frozen while
/// the listener lives.
pub(crate) fn frozen_namenode() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    (listener, address)
}

pub(crate) async fn dead_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

async fn spawn_namenode(state: &Arc<Mutex<FakeState>>) -> (String, OwnedTask) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let service = FakeNamenode {
        address: address.clone(),
        state: state.clone(),
    };
    let server = OwnedTask::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(ClientProtocolServer::new(service))
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
    });
    (address, server)
}

/// The fakes, serving until dropped.
#[derive(Debug)]
pub(crate) struct FakeCluster {
    pub(crate) state: Arc<Mutex<FakeState>>,
    pub(crate) client: DfsClient,
    /// `true` = datanodes hold every ack back.
    pub(crate) hold_acks: watch::Sender<bool>,
    _servers: Vec<OwnedTask>,
}

impl FakeCluster {
    pub(crate) async fn start(datanodes: usize) -> Self {
        let state = Arc::new(Mutex::new(FakeState {
            next_block: 1,
            next_gen_stamp: 1000,
            ..FakeState::default()
        }));
        let (hold_acks, held) = watch::channel(false);
        let mut servers = Vec::new();
        for i in 0..datanodes {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap().to_string();
            let id = format!("dn{i}");
            state.lock().unwrap().datanodes.push(v1::DatanodeLocation {
                datanode_id: id.clone(),
                transfer_address: address,
                rack: format!("/r{}", i % 2),
            });
            let service = FakeDatanode {
                id,
                state: state.clone(),
                held: held.clone(),
            };
            servers.push(OwnedTask::spawn(async move {
                let _ = tonic::transport::Server::builder()
                    .add_service(DataTransferServer::new(service))
                    .serve_with_incoming(TcpListenerStream::new(listener))
                    .await;
            }));
        }
        let (namenode, server) = spawn_namenode(&state).await;
        servers.push(server);
        let config = ClientConfig {
            user: Some("tester".into()),
            ..ClientConfig::new(vec![namenode])
        };
        let client = DfsClient::connect(&config, None).unwrap();
        FakeCluster {
            state,
            client,
            hold_acks,
            _servers: servers,
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    /// Installs a complete file directly: blocks of `block_size` on `nodes`.
    pub(crate) fn put_file(&self, path: &str, data: &[u8], block_size: usize, nodes: &[&str]) {
        let mut state = self.state();
        let mut blocks = Vec::new();
        for chunk in data.chunks(block_size) {
            let block = v1::ExtendedBlock {
                block_id: state.next_block,
                gen_stamp: 1,
                length: chunk.len() as u64,
            };
            state.next_block += 1;
            for node in nodes {
                state.replicas.insert(
                    ((*node).to_owned(), block.block_id),
                    Replica {
                        gen_stamp: 1,
                        data: chunk.to_vec(),
                    },
                );
            }
            blocks.push((block, nodes.iter().map(|n| (*n).to_owned()).collect()));
        }
        state.files.insert(
            path.to_owned(),
            FakeFile {
                block_size: block_size as u64,
                replication: nodes.len() as u32,
                blocks,
                completed: true,
            },
        );
    }

    /// The file's content as the replicas of its recorded nodes hold it
    /// (every replica must agree).
    pub(crate) fn stored(&self, path: &str) -> Vec<u8> {
        let state = self.state();
        let file = &state.files[path];
        let mut out = Vec::new();
        for (block, nodes) in &file.blocks {
            let mut copies = nodes.iter().map(|n| {
                let replica = &state.replicas[&(n.clone(), block.block_id)];
                assert_eq!(
                    replica.gen_stamp, block.gen_stamp,
                    "{n} has a stale replica"
                );
                replica.data.clone()
            });
            let first = copies.next().unwrap();
            for other in copies {
                assert_eq!(other, first, "replicas of block {} differ", block.block_id);
            }
            assert_eq!(first.len() as u64, block.length);
            out.extend(first);
        }
        out
    }
}

fn location(state: &FakeState, id: &str) -> v1::DatanodeLocation {
    state
        .datanodes
        .iter()
        .find(|d| d.datanode_id == id)
        .cloned()
        .unwrap()
}

#[derive(Debug)]
struct FakeNamenode {
    address: String,
    state: Arc<Mutex<FakeState>>,
}

impl FakeNamenode {
    /// Records the call, then answers `NotLeader` if this namenode follows,
    /// or its pending fault; else hands the state to the call.
    fn state(
        &self,
        call: &str,
        caller: Option<&v1::CallerContext>,
    ) -> Result<MutexGuard<'_, FakeState>, Status> {
        let mut state = self.state.lock().unwrap();
        state.calls.push(call.to_owned());
        let call_id = caller.map_or(0, |c| c.call_id);
        state
            .namenode_calls
            .push((self.address.clone(), call.to_owned(), call_id));
        if let Some(hint) = state.followers.get(&self.address) {
            let mut status = ErrorKind::NotLeader.status("not the leader");
            if let Some(hint) = hint {
                status
                    .metadata_mut()
                    .insert(LEADER_HINT_KEY, hint.parse().unwrap());
            }
            return Err(status);
        }
        if let Some(i) = state
            .namenode_faults
            .iter()
            .position(|(n, _)| *n == self.address)
        {
            let (_, fault) = state.namenode_faults.remove(i);
            return Err(match fault {
                NamenodeFault::Transport => Status::unavailable("connection reset"),
                NamenodeFault::Refuse(kind) => kind.status(format!("refused: {kind}")),
            });
        }
        Ok(state)
    }
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in the fake"))
}

#[tonic::async_trait]
impl ClientProtocol for FakeNamenode {
    async fn mkdirs(
        &self,
        request: Request<v1::MkdirsRequest>,
    ) -> Result<Response<v1::MkdirsResponse>, Status> {
        let r = request.into_inner();
        let mut state = self.state("Mkdirs", r.caller.as_ref())?;
        state.directories.push(r.path);
        Ok(Response::new(v1::MkdirsResponse {}))
    }
    async fn create(
        &self,
        request: Request<v1::CreateRequest>,
    ) -> Result<Response<v1::CreateResponse>, Status> {
        let r = request.into_inner();
        let mut state = self.state("Create", r.caller.as_ref())?;
        let file = FakeFile {
            block_size: if r.block_size == 0 {
                1024 * 1024
            } else {
                r.block_size
            },
            replication: if r.replication == 0 { 3 } else { r.replication },
            blocks: Vec::new(),
            completed: false,
        };
        let status = v1::FileStatus {
            path: r.path.clone(),
            file_type: v1::FileType::File as i32,
            replication: file.replication,
            block_size: file.block_size,
            ..Default::default()
        };
        state.files.insert(r.path, file);
        Ok(Response::new(v1::CreateResponse {
            status: Some(status),
            lease_soft_limit_ms: state.lease_soft_limit_ms,
        }))
    }
    async fn renew_lease(
        &self,
        request: Request<v1::RenewLeaseRequest>,
    ) -> Result<Response<v1::RenewLeaseResponse>, Status> {
        let r = request.into_inner();
        drop(self.state("RenewLease", r.caller.as_ref())?);
        Ok(Response::new(v1::RenewLeaseResponse {}))
    }
    async fn delete(
        &self,
        _: Request<v1::DeleteRequest>,
    ) -> Result<Response<v1::DeleteResponse>, Status> {
        unimplemented()
    }
    async fn append(
        &self,
        _: Request<v1::AppendRequest>,
    ) -> Result<Response<v1::AppendResponse>, Status> {
        unimplemented()
    }
    async fn get_content_summary(
        &self,
        _: Request<v1::GetContentSummaryRequest>,
    ) -> Result<Response<v1::GetContentSummaryResponse>, Status> {
        unimplemented()
    }
    async fn rename(
        &self,
        _: Request<v1::RenameRequest>,
    ) -> Result<Response<v1::RenameResponse>, Status> {
        unimplemented()
    }
    async fn get_listing(
        &self,
        _: Request<v1::GetListingRequest>,
    ) -> Result<Response<v1::GetListingResponse>, Status> {
        unimplemented()
    }
    async fn get_file_info(
        &self,
        request: Request<v1::GetFileInfoRequest>,
    ) -> Result<Response<v1::GetFileInfoResponse>, Status> {
        let r = request.into_inner();
        let state = self.state("GetFileInfo", r.caller.as_ref())?;
        if !state.directories.contains(&r.path) {
            return Err(ErrorKind::NotFound.status(format!("`{}': No such file", r.path)));
        }
        Ok(Response::new(v1::GetFileInfoResponse {
            status: Some(v1::FileStatus {
                path: r.path,
                file_type: v1::FileType::Directory as i32,
                ..Default::default()
            }),
        }))
    }
    async fn set_permission(
        &self,
        _: Request<v1::SetPermissionRequest>,
    ) -> Result<Response<v1::SetPermissionResponse>, Status> {
        unimplemented()
    }
    async fn set_owner(
        &self,
        _: Request<v1::SetOwnerRequest>,
    ) -> Result<Response<v1::SetOwnerResponse>, Status> {
        unimplemented()
    }
    async fn set_replication(
        &self,
        _: Request<v1::SetReplicationRequest>,
    ) -> Result<Response<v1::SetReplicationResponse>, Status> {
        unimplemented()
    }
    async fn set_times(
        &self,
        _: Request<v1::SetTimesRequest>,
    ) -> Result<Response<v1::SetTimesResponse>, Status> {
        unimplemented()
    }
    async fn get_datanode_report(
        &self,
        _: Request<v1::GetDatanodeReportRequest>,
    ) -> Result<Response<v1::GetDatanodeReportResponse>, Status> {
        unimplemented()
    }

    async fn add_block(
        &self,
        request: Request<v1::AddBlockRequest>,
    ) -> Result<Response<v1::AddBlockResponse>, Status> {
        let r = request.into_inner();
        let mut state = self.state("AddBlock", r.caller.as_ref())?;
        let block = v1::ExtendedBlock {
            block_id: state.next_block,
            gen_stamp: state.next_gen_stamp,
            length: 0,
        };
        state.next_block += 1;
        state.next_gen_stamp += 1;
        let file = state
            .files
            .get(&r.path)
            .cloned()
            .ok_or_else(|| Status::not_found("no such file"))?;
        if let (Some(previous), Some((last, _))) = (&r.previous, file.blocks.last()) {
            assert_eq!(
                previous.block_id, last.block_id,
                "previous is the last block"
            );
        }
        let nodes: Vec<v1::DatanodeLocation> = state
            .datanodes
            .iter()
            .filter(|d| !r.excluded_datanodes.contains(&d.datanode_id))
            .take(file.replication as usize)
            .cloned()
            .collect();
        let ids = nodes.iter().map(|d| d.datanode_id.clone()).collect();
        let file = state.files.get_mut(&r.path).unwrap();
        if let (Some(previous), Some((last, _))) = (r.previous, file.blocks.last_mut()) {
            *last = previous;
        }
        file.blocks.push((block, ids));
        Ok(Response::new(v1::AddBlockResponse {
            block: Some(v1::LocatedBlock {
                block: Some(block),
                offset: 0,
                locations: nodes,
                corrupt_locations: Vec::new(),
                token: fake_token(&block, AccessModes::WRITE),
            }),
        }))
    }
    async fn abandon_block(
        &self,
        request: Request<v1::AbandonBlockRequest>,
    ) -> Result<Response<v1::AbandonBlockResponse>, Status> {
        let r = request.into_inner();
        let mut state = self.state("AbandonBlock", r.caller.as_ref())?;
        let file = state.files.get_mut(&r.path).unwrap();
        let id = r.block.unwrap().block_id;
        file.blocks.retain(|(b, _)| b.block_id != id);
        Ok(Response::new(v1::AbandonBlockResponse {}))
    }
    async fn complete(
        &self,
        request: Request<v1::CompleteRequest>,
    ) -> Result<Response<v1::CompleteResponse>, Status> {
        let r = request.into_inner();
        let mut state = self.state("Complete", r.caller.as_ref())?;
        if state.complete_not_yet > 0 {
            state.complete_not_yet -= 1;
            return Ok(Response::new(v1::CompleteResponse { completed: false }));
        }
        let file = state.files.get_mut(&r.path).unwrap();
        if let (Some(last), Some((block, _))) = (r.last, file.blocks.last_mut()) {
            assert_eq!(last.block_id, block.block_id, "last is the last block");
            *block = last;
        }
        file.completed = true;
        Ok(Response::new(v1::CompleteResponse { completed: true }))
    }
    async fn update_block_for_pipeline(
        &self,
        request: Request<v1::UpdateBlockForPipelineRequest>,
    ) -> Result<Response<v1::UpdateBlockForPipelineResponse>, Status> {
        let r = request.into_inner();
        let mut state = self.state("UpdateBlockForPipeline", r.caller.as_ref())?;
        let mut block = r.block.unwrap();
        block.gen_stamp = state.next_gen_stamp;
        state.next_gen_stamp += 1;
        Ok(Response::new(v1::UpdateBlockForPipelineResponse {
            token: fake_token(&block, AccessModes::WRITE.with(AccessModes::COPY)),
            block: Some(block),
        }))
    }
    async fn get_additional_datanode(
        &self,
        request: Request<v1::GetAdditionalDatanodeRequest>,
    ) -> Result<Response<v1::GetAdditionalDatanodeResponse>, Status> {
        let r = request.into_inner();
        let state = self.state("GetAdditionalDatanode", r.caller.as_ref())?;
        let datanodes = state
            .datanodes
            .iter()
            .filter(|d| {
                !r.existing.contains(&d.datanode_id) && !r.excluded.contains(&d.datanode_id)
            })
            .take(r.count as usize)
            .cloned()
            .collect();
        Ok(Response::new(v1::GetAdditionalDatanodeResponse {
            datanodes,
        }))
    }
    async fn update_pipeline(
        &self,
        request: Request<v1::UpdatePipelineRequest>,
    ) -> Result<Response<v1::UpdatePipelineResponse>, Status> {
        let r = request.into_inner();
        let mut state = self.state("UpdatePipeline", r.caller.as_ref())?;
        let old = r.old_block.unwrap();
        let new = r.new_block.unwrap();
        for file in state.files.values_mut() {
            for (block, nodes) in &mut file.blocks {
                if block.block_id == old.block_id {
                    block.gen_stamp = new.gen_stamp;
                    nodes.clone_from(&r.datanodes);
                }
            }
        }
        Ok(Response::new(v1::UpdatePipelineResponse {}))
    }
    async fn get_block_locations(
        &self,
        request: Request<v1::GetBlockLocationsRequest>,
    ) -> Result<Response<v1::GetBlockLocationsResponse>, Status> {
        let r = request.into_inner();
        let state = self.state("GetBlockLocations", r.caller.as_ref())?;
        let file = state
            .files
            .get(&r.path)
            .ok_or_else(|| Status::not_found("no such file"))?;
        let mut offset = 0;
        let mut blocks = Vec::new();
        for (block, nodes) in &file.blocks {
            let end = offset + block.length;
            if end > r.offset {
                blocks.push(v1::LocatedBlock {
                    block: Some(*block),
                    offset,
                    locations: nodes.iter().map(|n| location(&state, n)).collect(),
                    corrupt_locations: Vec::new(),
                    token: fake_token(block, AccessModes::READ),
                });
            }
            offset = end;
        }
        if let Some(limit) = state.blocks_per_reply {
            blocks.truncate(limit);
        }
        Ok(Response::new(v1::GetBlockLocationsResponse {
            file_length: offset,
            blocks,
            under_construction: !file.completed,
        }))
    }
    async fn report_bad_blocks(
        &self,
        request: Request<v1::ReportBadBlocksRequest>,
    ) -> Result<Response<v1::ReportBadBlocksResponse>, Status> {
        let r = request.into_inner();
        let mut state = self.state("ReportBadBlocks", r.caller.as_ref())?;
        for bad in r.replicas {
            state
                .bad_reports
                .push((bad.block.unwrap().block_id, bad.datanode_id));
        }
        Ok(Response::new(v1::ReportBadBlocksResponse {}))
    }
}

#[derive(Debug)]
struct FakeDatanode {
    id: String,
    state: Arc<Mutex<FakeState>>,
    held: watch::Receiver<bool>,
}

type AckStream = ReceiverStream<Result<v1::PacketAck, Status>>;
type ReadStream = ReceiverStream<Result<v1::ReadPacket, Status>>;

#[tonic::async_trait]
impl DataTransfer for FakeDatanode {
    type WriteBlockStream = AckStream;
    type ReadBlockStream = ReadStream;

    async fn write_block(
        &self,
        request: Request<tonic::Streaming<v1::WriteBlockMessage>>,
    ) -> Result<Response<AckStream>, Status> {
        let mut inbound = request.into_inner();
        let Some(v1::WriteBlockMessage {
            message: Some(v1::write_block_message::Message::Header(header)),
        }) = inbound.message().await?
        else {
            return Err(Status::invalid_argument("header first"));
        };
        let block = header.block.unwrap();
        check_fake_token(header.token.as_ref(), &block, AccessModes::WRITE)?;
        let mut pipeline = vec![self.id.clone()];
        pipeline.extend(header.downstream.iter().map(|d| d.datanode_id.clone()));
        {
            let mut state = self.state.lock().unwrap();
            for node in &pipeline {
                let replica = state
                    .replicas
                    .entry((node.clone(), block.block_id))
                    .or_default();
                if header.recovery {
                    assert!(replica.data.len() as u64 >= header.acked_length);
                    replica.data.truncate(header.acked_length as usize);
                } else {
                    replica.data.clear();
                }
                replica.gen_stamp = block.gen_stamp;
            }
            if header.recovery {
                state.recoveries.push((
                    block.block_id,
                    block.gen_stamp,
                    header.acked_length,
                    pipeline.clone(),
                ));
            }
        }
        let (acks, rx) = mpsc::channel(1024);
        let state = self.state.clone();
        let mut held = self.held.clone();
        tokio::spawn(async move {
            let mut pending = Vec::new();
            let mut open = true;
            while open || !pending.is_empty() {
                tokio::select! {
                    message = inbound.message(), if open => {
                        let Ok(Some(v1::WriteBlockMessage {
                            message: Some(v1::write_block_message::Message::Packet(packet)),
                        })) = message else {
                            open = false;
                            continue;
                        };
                        let (ack, fatal) = receive(&state, &pipeline, block.block_id, packet);
                        pending.push(ack);
                        if fatal {
                            open = false;
                        }
                    }
                    changed = held.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                }
                if !*held.borrow() {
                    for ack in pending.drain(..) {
                        if acks.send(Ok(ack)).await.is_err() {
                            return;
                        }
                    }
                } else if !open {
                    let _ = held.wait_for(|held| !*held).await;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn read_block(
        &self,
        request: Request<v1::ReadBlockRequest>,
    ) -> Result<Response<ReadStream>, Status> {
        let r = request.into_inner();
        let block = r.block.unwrap();
        check_fake_token(r.token.as_ref(), &block, AccessModes::READ)?;
        let (replica, corrupt) = {
            let mut state = self.state.lock().unwrap();
            state
                .reads
                .push((self.id.clone(), block.block_id, r.offset));
            let key = (self.id.clone(), block.block_id);
            let replica = state
                .replicas
                .get(&key)
                .filter(|rep| rep.gen_stamp == block.gen_stamp)
                .cloned()
                .ok_or_else(|| Status::not_found("no such replica"))?;
            (replica, state.corrupt.get(&key).copied())
        };
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let end = (r.offset + r.length).min(replica.data.len() as u64) as usize;
            let mut offset = r.offset as usize / CHUNK_SIZE * CHUNK_SIZE;
            while offset < end {
                let stop = (offset + 64 * 1024).min(end.div_ceil(CHUNK_SIZE) * CHUNK_SIZE);
                let stop = stop.min(replica.data.len());
                let mut data = replica.data[offset..stop].to_vec();
                let checksums = encode_checksums(&data);
                if let Some(bad) = corrupt.map(|c| c as usize)
                    && (offset..stop).contains(&bad)
                {
                    data[bad - offset] ^= 0xff;
                }
                let packet = v1::ReadPacket {
                    offset_in_block: offset as u64,
                    data: Bytes::from(data),
                    checksums,
                };
                if tx.send(Ok(packet)).await.is_err() {
                    return;
                }
                offset = stop;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn transfer_rbw(
        &self,
        request: Request<v1::TransferRbwRequest>,
    ) -> Result<Response<v1::TransferRbwResponse>, Status> {
        let r = request.into_inner();
        let block = r.block.unwrap();
        check_fake_token(r.token.as_ref(), &block, AccessModes::COPY)?;
        let mut state = self.state.lock().unwrap();
        state.calls.push(format!("TransferRbw from {}", self.id));
        let source = state
            .replicas
            .get(&(self.id.clone(), block.block_id))
            .cloned()
            .ok_or_else(|| Status::not_found("no such replica"))?;
        for target in r.targets {
            state.replicas.insert(
                (target.datanode_id, block.block_id),
                Replica {
                    gen_stamp: block.gen_stamp,
                    data: source.data[..r.length as usize].to_vec(),
                },
            );
        }
        Ok(Response::new(v1::TransferRbwResponse {}))
    }

    async fn block_checksum(
        &self,
        request: Request<v1::BlockChecksumRequest>,
    ) -> Result<Response<v1::BlockChecksumResponse>, Status> {
        let r = request.into_inner();
        let block = r.block.unwrap();
        check_fake_token(r.token.as_ref(), &block, AccessModes::READ)?;
        let state = self.state.lock().unwrap();
        let replica = state
            .replicas
            .get(&(self.id.clone(), block.block_id))
            .ok_or_else(|| Status::not_found("no such replica"))?;
        Ok(Response::new(v1::BlockChecksumResponse {
            crc32c: crc32c::crc32c(&replica.data),
            length: replica.data.len() as u64,
        }))
    }
}

/// The fakes' block token: the grant without a tag (the fake datanodes
/// check what it grants, not who signed it).
fn fake_token(block: &v1::ExtendedBlock, modes: AccessModes) -> Option<v1::BlockToken> {
    Some(v1::BlockToken {
        block_id: block.block_id,
        gen_stamp: block.gen_stamp,
        modes: modes.bits(),
        user: "fake".to_owned(),
        ..Default::default()
    })
}

/// Refuses a request whose token is missing or grants something else, so
/// the client's component tests see that it carries the right token.
fn check_fake_token(
    token: Option<&v1::BlockToken>,
    block: &v1::ExtendedBlock,
    needed: AccessModes,
) -> Result<(), Status> {
    let token = token.ok_or_else(|| Status::permission_denied("no block access token"))?;
    let granted = AccessModes::from_bits(token.modes);
    if token.block_id != block.block_id
        || token.gen_stamp != block.gen_stamp
        || !granted.allows(needed)
    {
        return Err(Status::permission_denied(format!(
            "token for {}_{} ({granted}), not {}_{} ({needed})",
            token.block_id, token.gen_stamp, block.block_id, block.gen_stamp
        )));
    }
    Ok(())
}

/// Stores one packet on every node of the pipeline; returns its ack and
/// whether the stream ends after it (an injected fault).
fn receive(
    state: &Mutex<FakeState>,
    pipeline: &[String],
    block: u64,
    packet: v1::Packet,
) -> (v1::PacketAck, bool) {
    let mut state = state.lock().unwrap();
    state.packets.push(SeenPacket {
        block,
        seqno: packet.seqno,
        offset: packet.offset_in_block,
        len: packet.data.len(),
        last: packet.last_packet_in_block,
    });
    let mut statuses = vec![PipelineStatus::Success as i32; pipeline.len()];
    let fault = state
        .faults
        .iter()
        .position(|f| f.seqno == packet.seqno && pipeline.contains(&f.datanode));
    if let Some(i) = fault {
        let fault = state.faults.remove(i);
        let index = pipeline.iter().position(|n| *n == fault.datanode).unwrap();
        statuses[index] = fault.status as i32;
        return (
            v1::PacketAck {
                seqno: packet.seqno,
                statuses,
            },
            true,
        );
    }
    let sums = decode_checksums(&packet.checksums).unwrap();
    assert_eq!(
        dfs_proto::checksum::verify_chunks(&packet.data, &sums),
        Ok(()),
        "client sent bad checksums"
    );
    for node in pipeline {
        let replica = state.replicas.get_mut(&(node.clone(), block)).unwrap();
        assert_eq!(
            replica.data.len() as u64,
            packet.offset_in_block,
            "packet {} does not continue the replica on {node}",
            packet.seqno
        );
        replica.data.extend_from_slice(&packet.data);
    }
    (
        v1::PacketAck {
            seqno: packet.seqno,
            statuses,
        },
        false,
    )
}
