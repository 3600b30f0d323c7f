//! DatanodeProtocol: registration, heartbeats and block reports.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use dfs_proto::cluster_proof::{self, Claim, ClusterSecret, RequestKind};
use dfs_proto::ids::DatanodeId;
use dfs_proto::v1;
use dfs_proto::v1::datanode_protocol_server::DatanodeProtocol;
use dfs_proto::wall_clock;
use tonic::{Request, Response, Status};

use crate::blocks::block_keys::BlockKeys;
use crate::blocks::block_map::{Command, Reported};
use crate::blocks::manager::BlockManager;
use crate::datanodes::Storage;
use crate::error::Error;
use crate::namesystem::Namesystem;
use crate::txn::{BlockId, GenStamp};

/// Most replicas one report may carry (a full report of a big datanode fits).
const MAX_REPORTED: usize = 10_000_000;

/// Serves DatanodeProtocol.
#[derive(Debug, Clone)]
pub(crate) struct DatanodeService {
    pub(crate) blocks: Arc<Mutex<BlockManager>>,
    pub(crate) namesystem: Namesystem,
    /// What every request must prove; `None` only when the operator set
    /// `insecure_no_cluster_secret`.
    pub(crate) secret: Option<ClusterSecret>,
    /// This namenode's block keys, handed to every datanode it hears from.
    pub(crate) keys: Arc<BlockKeys>,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Status {
    Status::from(Error::InvalidArgument {
        field,
        reason: reason.into(),
    })
}

fn datanode_id(id: &str) -> Result<DatanodeId, Status> {
    DatanodeId::parse(id).ok_or_else(|| invalid("datanode_id", "expected 1-128 of [A-Za-z0-9_-]"))
}

/// A reported replica as the block map takes it.
fn reported(b: &v1::ReportedBlock) -> Reported {
    Reported {
        block: BlockId(b.block_id),
        gen_stamp: GenStamp(b.gen_stamp),
        length: b.length,
    }
}

fn storage(report: Option<v1::StorageReport>) -> Storage {
    report.map_or_else(Storage::default, |r| Storage {
        capacity: r.capacity,
        used: r.used,
        remaining: r.remaining,
    })
}

impl DatanodeService {
    /// Checks that a request from `peer` proves the cluster secret for `claim`.
    fn authenticate(
        &self,
        peer: Option<SocketAddr>,
        claim: &Claim<'_>,
        proof: Option<&v1::DatanodeProof>,
    ) -> Result<(), Status> {
        let Some(secret) = &self.secret else {
            return Ok(());
        };
        cluster_proof::verify(secret.key(), claim, proof, wall_clock::now_ms()).map_err(|e| {
            let peer = peer.map_or_else(|| "an unknown address".to_owned(), |p| p.to_string());
            tracing::warn!(%peer, datanode = claim.datanode_id, kind = ?claim.kind, reason = %e, "refused a datanode request");
            Status::from(Error::DatanodeUnauthenticated {
                peer,
                reason: e.to_string(),
            })
        })
    }

    /// Turns queued commands into wire commands; finalizations travel
    /// together, then deletions together.
    fn to_wire(&self, commands: Vec<Command>) -> Vec<v1::DatanodeCommand> {
        let mut deletes = Vec::new();
        let mut finalizes = Vec::new();
        let mut verifies = Vec::new();
        let mut wire = Vec::new();
        let blocks = self.blocks();
        for command in commands {
            match command {
                Command::Delete { block, gen_stamp } => deletes.push(v1::ExtendedBlock {
                    block_id: block.0,
                    gen_stamp: gen_stamp.0,
                    length: 0,
                }),
                Command::FinalizeRbw {
                    block,
                    gen_stamp,
                    length,
                } => finalizes.push(v1::ExtendedBlock {
                    block_id: block.0,
                    gen_stamp: gen_stamp.0,
                    length,
                }),
                Command::Verify { block, gen_stamp } => verifies.push(v1::ExtendedBlock {
                    block_id: block.0,
                    gen_stamp: gen_stamp.0,
                    length: 0,
                }),
                Command::Replicate {
                    block,
                    gen_stamp,
                    length,
                    targets,
                } => {
                    let targets = targets
                        .iter()
                        .filter_map(|id| blocks.location(id))
                        .map(|l| v1::DatanodeLocation {
                            datanode_id: l.id.to_string(),
                            transfer_address: l.transfer_addr.to_string(),
                            rack: l.rack.to_string(),
                        })
                        .collect();
                    wire.push(v1::DatanodeCommand {
                        command: Some(v1::datanode_command::Command::ReplicateBlock(
                            v1::ReplicateBlock {
                                block: Some(v1::ExtendedBlock {
                                    block_id: block.0,
                                    gen_stamp: gen_stamp.0,
                                    length,
                                }),
                                targets,
                            },
                        )),
                    });
                }
            }
        }
        if !finalizes.is_empty() {
            wire.push(v1::DatanodeCommand {
                command: Some(v1::datanode_command::Command::FinalizeRbw(
                    v1::FinalizeRbw { blocks: finalizes },
                )),
            });
        }
        if !verifies.is_empty() {
            wire.push(v1::DatanodeCommand {
                command: Some(v1::datanode_command::Command::VerifyBlocks(
                    v1::VerifyBlocks { blocks: verifies },
                )),
            });
        }
        if !deletes.is_empty() {
            wire.push(v1::DatanodeCommand {
                command: Some(v1::datanode_command::Command::DeleteBlocks(
                    v1::DeleteBlocks { blocks: deletes },
                )),
            });
        }
        wire
    }

    /// This namenode's unexpired block keys, as datanodes receive them.
    fn block_keys(&self) -> Vec<v1::BlockKey> {
        self.keys
            .exported()
            .iter()
            .map(v1::BlockKey::from)
            .collect()
    }

    fn blocks(&self) -> std::sync::MutexGuard<'_, BlockManager> {
        self.blocks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[tonic::async_trait]
impl DatanodeProtocol for DatanodeService {
    #[tracing::instrument(skip_all, fields(datanode = %request.get_ref().datanode_id))]
    async fn register_datanode(
        &self,
        request: Request<v1::RegisterDatanodeRequest>,
    ) -> Result<Response<v1::RegisterDatanodeResponse>, Status> {
        // The host is where the connection comes from: a datanode never declares its rack.
        let peer = request
            .remote_addr()
            .ok_or_else(|| invalid("peer", "connection has no remote address"))?;
        let r = request.into_inner();
        let id = datanode_id(&r.datanode_id)?;
        let port = u16::try_from(r.transfer_port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                invalid(
                    "transfer_port",
                    format!("{} is not a port", r.transfer_port),
                )
            })?;
        let claim = Claim {
            kind: RequestKind::Register,
            datanode_id: &r.datanode_id,
            transfer_port: r.transfer_port,
        };
        self.authenticate(Some(peer), &claim, r.proof.as_ref())?;
        let transfer_addr = SocketAddr::new(peer.ip().to_canonical(), port);
        let now = Instant::now();
        let rack = {
            let mut blocks = self.blocks();
            if let Err(in_use) = blocks.datanodes.may_register(&id, transfer_addr, now) {
                tracing::warn!(datanode = %id, live_at = %in_use.live_at, from = %transfer_addr, "refused a registration under a live datanode's id");
                return Err(Status::from(Error::DatanodeIdInUse {
                    id: id.to_string(),
                    live_at: in_use.live_at,
                    from: transfer_addr,
                }));
            }
            let rack = blocks.register(id.clone(), transfer_addr, storage(r.storage), now);
            let http_addr = u16::try_from(r.http_port)
                .ok()
                .filter(|p| *p != 0)
                .map(|p| SocketAddr::new(transfer_addr.ip(), p));
            blocks.datanodes.set_http_addr(&id, http_addr);
            rack
        };
        tracing::info!(datanode = %id, %transfer_addr, %rack, "datanode registered");
        Ok(Response::new(v1::RegisterDatanodeResponse {
            epoch: u64::from(self.namesystem.role().epoch.0),
            rack: rack.to_string(),
            block_keys: self.block_keys(),
        }))
    }

    #[tracing::instrument(level = "trace", skip_all, fields(datanode = %request.get_ref().datanode_id))]
    async fn heartbeat(
        &self,
        request: Request<v1::HeartbeatRequest>,
    ) -> Result<Response<v1::HeartbeatResponse>, Status> {
        let peer = request.remote_addr();
        let r = request.into_inner();
        let id = datanode_id(&r.datanode_id)?;
        let claim = Claim {
            kind: RequestKind::Heartbeat,
            datanode_id: &r.datanode_id,
            transfer_port: 0,
        };
        self.authenticate(peer, &claim, r.proof.as_ref())?;
        let queued =
            self.blocks()
                .heartbeat(&id, storage(r.storage), r.active_transfers, Instant::now());
        // Every namenode tracks the datanodes; only the leader commands them.
        let role = self.namesystem.role();
        let commands = match queued {
            Some(_) if !role.serves(Instant::now()) => Vec::new(),
            Some(commands) => self.to_wire(commands),
            None => vec![v1::DatanodeCommand {
                command: Some(v1::datanode_command::Command::Reregister(v1::ReRegister {})),
            }],
        };
        Ok(Response::new(v1::HeartbeatResponse {
            epoch: u64::from(role.epoch.0),
            commands,
            block_keys: self.block_keys(),
        }))
    }

    #[tracing::instrument(skip_all, fields(datanode = %request.get_ref().datanode_id))]
    async fn block_report(
        &self,
        request: Request<v1::BlockReportRequest>,
    ) -> Result<Response<v1::BlockReportResponse>, Status> {
        let peer = request.remote_addr();
        let r = request.into_inner();
        let id = datanode_id(&r.datanode_id)?;
        let claim = Claim {
            kind: RequestKind::report(r.full),
            datanode_id: &r.datanode_id,
            transfer_port: 0,
        };
        self.authenticate(peer, &claim, r.proof.as_ref())?;
        if !self.blocks().datanodes.contains(&id) {
            return Err(Status::failed_precondition(format!(
                "datanode {id} is not registered with this namenode"
            )));
        }
        for (field, list) in [
            ("blocks", &r.blocks),
            ("corrupt", &r.corrupt),
            ("verified", &r.verified),
        ] {
            if list.len() > MAX_REPORTED {
                return Err(invalid(field, format!("more than {MAX_REPORTED} replicas")));
            }
        }
        let (rbw, finalized): (Vec<&v1::ReportedBlock>, Vec<&v1::ReportedBlock>) =
            r.blocks.iter().partition(|b| b.under_construction);
        let (deleted, received): (Vec<&v1::ReportedBlock>, Vec<&v1::ReportedBlock>) =
            finalized.into_iter().partition(|b| b.deleted);
        let received: Vec<Reported> = received.into_iter().map(reported).collect();
        let corrupt: Vec<Reported> = r.corrupt.iter().map(reported).collect();
        let verified: Vec<Reported> = r.verified.iter().map(reported).collect();
        let mut marked = Vec::with_capacity(corrupt.len());
        self.namesystem.with_expected_blocks(|expected| {
            let mut blocks = self.blocks();
            if r.full {
                blocks.map.full_report(&id, &received, expected);
            } else {
                for replica in &received {
                    blocks.map.received(&id, *replica, expected);
                }
            }
            for replica in &received {
                blocks.arrived(&id, replica.block);
            }
            for gone in &deleted {
                blocks.map.deleted(&id, BlockId(gone.block_id));
            }
            for replica in &rbw {
                let replica = reported(replica);
                blocks.arrived(&id, replica.block);
                blocks.map.rbw_reported(&id, replica, r.full, expected);
            }
            for intact in &verified {
                if blocks.map.verified(&id, *intact) {
                    tracing::info!(datanode = %id, block = %intact.block, gen_stamp = %intact.gen_stamp, "reported replica verified intact; no longer suspect");
                }
            }
            // After the replicas: a full report lists a corrupt replica among them.
            for bad in &corrupt {
                marked.push(blocks.map.mark_found_corrupt(&id, *bad));
            }
            // Judged against a namespace that may lag the quorum's: only the
            // leader acts on what a report shows (a follower that was behind
            // asks for the reports again once it caught up).
            if !self.namesystem.role().serves(Instant::now()) {
                blocks.drop_judgement_while_behind(&id);
            }
        });
        for (bad, marked) in corrupt.iter().zip(marked) {
            // Not marked: not a replica this namenode holds healthy there (moved
            // aside at the datanode's start-up, or already replaced).
            tracing::warn!(datanode = %id, block = %bad.block, gen_stamp = %bad.gen_stamp, marked, "datanode found a corrupt replica");
        }
        tracing::debug!(datanode = %id, replicas = received.len(), deleted = deleted.len(), full = r.full, "block report");
        Ok(Response::new(v1::BlockReportResponse {}))
    }
}
