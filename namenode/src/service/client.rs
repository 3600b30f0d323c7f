//! ClientProtocol: namespace operations and the datanode report.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use dfs_proto::v1;
use dfs_proto::v1::client_protocol_server::ClientProtocol;
use tonic::{Request, Response, Status};

use dfs_proto::block_token::AccessModes;
use dfs_proto::ids::DatanodeId;
use dfs_proto::status::ErrorKind;

use crate::blocks::block_keys::BlockKeys;
use crate::blocks::manager::{BlockManager, Location};
use crate::config::Settings;
use crate::datanodes::Liveness;
use crate::error::Error;
use crate::groups::GroupMapping;
use crate::lease::Leases;
use crate::namespace::{Caller, FileKind, FileStatus, Op};
use crate::namesystem::Namesystem;
use crate::retry_cache::{CallId, MAX_CLIENT_ID};
use crate::txn::{BlockId, BlockRecord, GenStamp, Reopen, Txn};

/// Entries per listing page when the client asks for none.
const LISTING_PAGE: usize = 1000;
/// Most groups a request may claim.
const MAX_GROUPS: usize = 64;

/// Serves ClientProtocol.
#[derive(Debug, Clone)]
pub(crate) struct ClientService {
    /// Signs the block access tokens handed out with locations and pipelines.
    pub(crate) keys: Arc<BlockKeys>,
    pub(crate) namesystem: Namesystem,
    pub(crate) blocks: Arc<Mutex<BlockManager>>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) groups: Arc<GroupMapping>,
    /// Writers' lease clocks; a create over an expired lease starts its recovery.
    pub(crate) leases: Leases,
}

impl ClientService {
    /// The caller's identity, groups resolved by the namenode.
    fn caller(&self, context: Option<v1::CallerContext>) -> Result<Caller, Status> {
        let context = context.ok_or_else(|| invalid("caller", "missing caller context"))?;
        call_of(&context)?;
        if context.groups.len() > MAX_GROUPS {
            return Err(invalid(
                "caller.groups",
                format!("more than {MAX_GROUPS} groups"),
            ));
        }
        let groups = self.groups.groups(&context.user, context.groups);
        Ok(Caller {
            user: context.user,
            groups,
        })
    }

    fn is_superuser(&self, caller: &Caller) -> bool {
        caller.user == self.settings.superuser
            || caller.groups.iter().any(|g| *g == self.settings.supergroup)
    }

    async fn write(&self, caller: Option<v1::CallerContext>, op: Op) -> Result<(), Status> {
        let call = caller.as_ref().map(call_of).transpose()?.flatten();
        let caller = self.caller(caller)?;
        self.namesystem.write(op, caller, call).await?;
        Ok(())
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Status {
    Status::from(Error::InvalidArgument {
        field,
        reason: reason.into(),
    })
}

fn mode(field: &'static str, value: u32) -> Result<u16, Status> {
    u16::try_from(value)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| invalid(field, format!("{value:#o} is not a mode of at most 7777")))
}

fn replication(value: u32, default: u16) -> Result<u16, Status> {
    match value {
        0 => Ok(default),
        v => u16::try_from(v).map_err(|_| invalid("replication", format!("{v} is too large"))),
    }
}

fn to_wire(status: FileStatus) -> v1::FileStatus {
    v1::FileStatus {
        path: status.path,
        file_type: match status.kind {
            FileKind::Directory => v1::FileType::Directory,
            FileKind::File => v1::FileType::File,
        }
        .into(),
        permission: u32::from(status.perm.mode),
        owner: status.perm.owner,
        group: status.perm.group,
        length: status.length,
        modification_time_ms: status.mtime_ms,
        access_time_ms: status.atime_ms,
        replication: u32::from(status.replication),
        block_size: status.block_size,
        children_count: status.children,
    }
}

#[tonic::async_trait]
impl ClientProtocol for ClientService {
    #[tracing::instrument(skip_all, fields(op = "mkdirs", path = %request.get_ref().path))]
    async fn mkdirs(
        &self,
        request: Request<v1::MkdirsRequest>,
    ) -> Result<Response<v1::MkdirsResponse>, Status> {
        let r = request.into_inner();
        let op = Op::Mkdirs {
            path: r.path,
            mode: r.permission.map(|m| mode("permission", m)).transpose()?,
            create_parent: r.create_parent,
        };
        self.write(r.caller, op).await?;
        Ok(Response::new(v1::MkdirsResponse {}))
    }

    #[tracing::instrument(skip_all, fields(op = "create", path = %request.get_ref().path))]
    async fn create(
        &self,
        request: Request<v1::CreateRequest>,
    ) -> Result<Response<v1::CreateResponse>, Status> {
        let client_ip = request.remote_addr().map(|a| a.ip().to_canonical());
        let r = request.into_inner();
        let (caller, client, call) = self.writer(r.caller)?;
        let op = Op::Create {
            path: r.path.clone(),
            mode: r.permission.map(|m| mode("permission", m)).transpose()?,
            overwrite: r.overwrite,
            create_parent: r.create_parent,
            replication: replication(r.replication, self.settings.default_replication)?,
            block_size: match r.block_size {
                0 => self.settings.default_block_size,
                size => size,
            },
            client: client.clone(),
        };
        let term = self.namesystem.role().epoch;
        match self.namesystem.write(op, caller.clone(), call).await {
            Ok(_) => self.leases.renew(&client, client_ip, term),
            Err(refusal) => {
                return Err(self
                    .leases
                    .on_create_refused(refusal, client_ip, term)
                    .into());
            }
        }
        let status = self.namesystem.read(|ns| ns.file_info(&r.path, &caller))?;
        let soft_limit = self.leases.limits().soft;
        Ok(Response::new(v1::CreateResponse {
            status: Some(to_wire(status)),
            lease_soft_limit_ms: u64::try_from(soft_limit.as_millis()).unwrap_or(u64::MAX),
        }))
    }

    #[tracing::instrument(skip_all, fields(op = "append", path = %request.get_ref().path))]
    async fn append(
        &self,
        request: Request<v1::AppendRequest>,
    ) -> Result<Response<v1::AppendResponse>, Status> {
        let client_ip = request.remote_addr().map(|a| a.ip().to_canonical());
        let r = request.into_inner();
        let (caller, client, call) = self.writer(r.caller)?;
        let op = Op::Append {
            path: r.path.clone(),
            client: client.clone(),
            new_block: r.new_block,
        };
        let term = self.namesystem.role().epoch;
        // A retried Append answers with the txn it made then.
        let reopen = match self.namesystem.write(op, caller.clone(), call).await {
            Ok(Some(Txn::Append { reopen, .. })) => {
                self.leases.renew(&client, client_ip, term);
                reopen
            }
            Ok(_) => {
                self.leases.renew(&client, client_ip, term);
                None
            }
            Err(refusal) => {
                return Err(self
                    .leases
                    .on_create_refused(refusal, client_ip, term)
                    .into());
            }
        };
        let status = self.namesystem.read(|ns| ns.file_info(&r.path, &caller))?;
        let (file, _) = self.namesystem.read(|ns| ns.writer_blocks(&r.path))?;
        let last = file.blocks.last().copied();
        let (last_block, previous_block) = match (reopen, last) {
            (Some(reopen), Some((offset, last))) => {
                let located = self.reopened_block(last, offset, reopen, client_ip, &caller.user);
                tracing::info!(block = %last, previous = %reopen.previous, length = last.length, "append reopens the last block");
                (Some(located), None)
            }
            (_, last) => (None, last.map(|(_, b)| extended(b))),
        };
        let soft_limit = self.leases.limits().soft;
        Ok(Response::new(v1::AppendResponse {
            status: Some(to_wire(status)),
            last_block,
            previous_gen_stamp: reopen.map_or(0, |r| r.previous.0),
            lease_soft_limit_ms: u64::try_from(soft_limit.as_millis()).unwrap_or(u64::MAX),
            previous_block,
        }))
    }

    #[tracing::instrument(skip_all, fields(op = "content_summary", path = %request.get_ref().path))]
    async fn get_content_summary(
        &self,
        request: Request<v1::GetContentSummaryRequest>,
    ) -> Result<Response<v1::GetContentSummaryResponse>, Status> {
        let r = request.into_inner();
        let caller = self.caller(r.caller)?;
        let summary = self
            .namesystem
            .read(|ns| ns.content_summary(&r.path, &caller))?;
        Ok(Response::new(v1::GetContentSummaryResponse {
            summary: Some(v1::ContentSummary {
                length: summary.length,
                file_count: summary.file_count,
                directory_count: summary.directory_count,
                space_consumed: summary.space_consumed,
                quota: -1,
                space_quota: -1,
            }),
        }))
    }

    #[tracing::instrument(skip_all, fields(op = "delete", path = %request.get_ref().path))]
    async fn delete(
        &self,
        request: Request<v1::DeleteRequest>,
    ) -> Result<Response<v1::DeleteResponse>, Status> {
        let r = request.into_inner();
        let op = Op::Delete {
            path: r.path,
            recursive: r.recursive,
        };
        self.write(r.caller, op).await?;
        Ok(Response::new(v1::DeleteResponse {}))
    }

    #[tracing::instrument(skip_all, fields(op = "rename", src = %request.get_ref().src, dst = %request.get_ref().dst))]
    async fn rename(
        &self,
        request: Request<v1::RenameRequest>,
    ) -> Result<Response<v1::RenameResponse>, Status> {
        let r = request.into_inner();
        let op = Op::Rename {
            src: r.src,
            dst: r.dst,
        };
        self.write(r.caller, op).await?;
        Ok(Response::new(v1::RenameResponse {}))
    }

    #[tracing::instrument(skip_all, fields(op = "list", path = %request.get_ref().path))]
    async fn get_listing(
        &self,
        request: Request<v1::GetListingRequest>,
    ) -> Result<Response<v1::GetListingResponse>, Status> {
        let r = request.into_inner();
        let caller = self.caller(r.caller)?;
        let limit = match r.limit {
            0 => LISTING_PAGE,
            n => (n as usize).min(LISTING_PAGE),
        };
        let (entries, has_more) = self
            .namesystem
            .read(|ns| ns.list(&r.path, &caller, &r.start_after, limit))?;
        Ok(Response::new(v1::GetListingResponse {
            entries: entries.into_iter().map(to_wire).collect(),
            has_more,
        }))
    }

    #[tracing::instrument(skip_all, fields(op = "stat", path = %request.get_ref().path))]
    async fn get_file_info(
        &self,
        request: Request<v1::GetFileInfoRequest>,
    ) -> Result<Response<v1::GetFileInfoResponse>, Status> {
        let r = request.into_inner();
        let caller = self.caller(r.caller)?;
        let status = self.namesystem.read(|ns| ns.file_info(&r.path, &caller))?;
        Ok(Response::new(v1::GetFileInfoResponse {
            status: Some(to_wire(status)),
        }))
    }

    #[tracing::instrument(skip_all, fields(op = "chmod", path = %request.get_ref().path))]
    async fn set_permission(
        &self,
        request: Request<v1::SetPermissionRequest>,
    ) -> Result<Response<v1::SetPermissionResponse>, Status> {
        let r = request.into_inner();
        let op = Op::SetPermission {
            path: r.path,
            mode: mode("permission", r.permission)?,
        };
        self.write(r.caller, op).await?;
        Ok(Response::new(v1::SetPermissionResponse {}))
    }

    #[tracing::instrument(skip_all, fields(op = "chown", path = %request.get_ref().path))]
    async fn set_owner(
        &self,
        request: Request<v1::SetOwnerRequest>,
    ) -> Result<Response<v1::SetOwnerResponse>, Status> {
        let r = request.into_inner();
        if r.owner.is_none() && r.group.is_none() {
            return Err(invalid("owner", "neither owner nor group given"));
        }
        let op = Op::SetOwner {
            path: r.path,
            owner: r.owner,
            group: r.group,
        };
        self.write(r.caller, op).await?;
        Ok(Response::new(v1::SetOwnerResponse {}))
    }

    #[tracing::instrument(skip_all, fields(op = "setrep", path = %request.get_ref().path))]
    async fn set_replication(
        &self,
        request: Request<v1::SetReplicationRequest>,
    ) -> Result<Response<v1::SetReplicationResponse>, Status> {
        let r = request.into_inner();
        if r.replication == 0 {
            return Err(invalid("replication", "must be at least 1"));
        }
        let op = Op::SetReplication {
            path: r.path,
            replication: replication(r.replication, 0)?,
        };
        self.write(r.caller, op).await?;
        Ok(Response::new(v1::SetReplicationResponse {}))
    }

    #[tracing::instrument(skip_all, fields(op = "touch", path = %request.get_ref().path))]
    async fn set_times(
        &self,
        request: Request<v1::SetTimesRequest>,
    ) -> Result<Response<v1::SetTimesResponse>, Status> {
        let r = request.into_inner();
        let op = Op::SetTimes {
            path: r.path,
            mtime_ms: r.modification_time_ms,
            atime_ms: r.access_time_ms,
        };
        self.write(r.caller, op).await?;
        Ok(Response::new(v1::SetTimesResponse {}))
    }

    #[tracing::instrument(skip_all, fields(op = "report"))]
    async fn get_datanode_report(
        &self,
        request: Request<v1::GetDatanodeReportRequest>,
    ) -> Result<Response<v1::GetDatanodeReportResponse>, Status> {
        let caller = self.caller(request.into_inner().caller)?;
        if !self.is_superuser(&caller) {
            return Err(Error::NotSuperuser {
                user: caller.user,
                what: "datanode report".into(),
            }
            .into());
        }
        let now = Instant::now();
        let blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        let registry = &blocks.datanodes;
        let datanodes = registry
            .all()
            .into_iter()
            .map(|node| v1::DatanodeInfo {
                datanode_id: node.id.to_string(),
                transfer_address: node.transfer_addr.to_string(),
                rack: node.rack.to_string(),
                state: match registry.liveness(node, now) {
                    Liveness::Live => v1::DatanodeState::Live,
                    Liveness::Stale => v1::DatanodeState::Stale,
                    Liveness::Dead => v1::DatanodeState::Dead,
                }
                .into(),
                storage: Some(v1::StorageReport {
                    capacity: node.storage.capacity,
                    used: node.storage.used,
                    remaining: node.storage.remaining,
                }),
                last_contact_ms_ago: now.saturating_duration_since(node.last_contact).as_millis()
                    as u64,
                http_address: node.http_addr.map(|a| a.to_string()).unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(v1::GetDatanodeReportResponse { datanodes }))
    }

    #[tracing::instrument(skip_all, fields(op = "add_block", path = %request.get_ref().path))]
    async fn add_block(
        &self,
        request: Request<v1::AddBlockRequest>,
    ) -> Result<Response<v1::AddBlockResponse>, Status> {
        let writer_ip = request.remote_addr().map(|a| a.ip().to_canonical());
        let r = request.into_inner();
        let (caller, client, call) = self.writer(r.caller)?;
        let user = caller.user.clone();
        let excluded = datanode_ids("excluded_datanodes", &r.excluded_datanodes)?;
        let op = Op::AddBlock {
            path: r.path.clone(),
            client: client.clone(),
            previous: r.previous.map(block_record),
        };
        // A writer asking for blocks is alive, renewer or not.
        self.leases
            .renew(&client, writer_ip, self.namesystem.role().epoch);
        // A retried AddBlock changes nothing and answers with the block it made.
        let block = match self.namesystem.write(op, caller.clone(), call).await? {
            Some(Txn::AddBlock { block, .. }) => block,
            _ => self.last_block(&r.path)?.0,
        };
        let (_, block_size) = self.namesystem.read(|ns| ns.writer_blocks(&r.path))?;
        let replication = self.replication_of(block.id);
        let chosen = self.blocks().choose_targets(
            block.id,
            writer_ip,
            usize::from(replication),
            &[],
            &excluded,
            block_size,
            Instant::now(),
        );
        let targets = match chosen {
            Ok(targets) if !targets.is_empty() => targets,
            outcome => {
                // Nowhere to write: give the block back so the file stays consistent.
                let abandon = Op::AbandonBlock {
                    path: r.path.clone(),
                    client,
                    block: block.id,
                };
                // Not the client's call: the retry cache must not answer it with the AddBlock.
                self.namesystem.write(abandon, caller, None).await?;
                let reason = match outcome {
                    Err(e) => e.to_string(),
                    Ok(_) => "no datanode is available".to_owned(),
                };
                return Err(ErrorKind::Unavailable
                    .status(format!("could not place {block} of '{}': {reason}", r.path)));
            }
        };
        tracing::debug!(%block, pipeline = ?targets.iter().map(|t| t.id.to_string()).collect::<Vec<_>>(), "block allocated");
        let offset = self.last_block(&r.path)?.1;
        Ok(Response::new(v1::AddBlockResponse {
            block: Some(v1::LocatedBlock {
                block: Some(extended(block)),
                offset,
                locations: targets.iter().map(location).collect(),
                corrupt_locations: Vec::new(),
                token: self.token(block, AccessModes::WRITE, &user),
            }),
        }))
    }

    #[tracing::instrument(skip_all, fields(op = "abandon_block", path = %request.get_ref().path))]
    async fn abandon_block(
        &self,
        request: Request<v1::AbandonBlockRequest>,
    ) -> Result<Response<v1::AbandonBlockResponse>, Status> {
        let r = request.into_inner();
        let (caller, client, call) = self.writer(r.caller)?;
        let block = required_block("block", r.block)?;
        let op = Op::AbandonBlock {
            path: r.path,
            client,
            block: block.id,
        };
        self.namesystem.write(op, caller, call).await?;
        Ok(Response::new(v1::AbandonBlockResponse {}))
    }

    #[tracing::instrument(skip_all, fields(op = "complete", path = %request.get_ref().path))]
    async fn complete(
        &self,
        request: Request<v1::CompleteRequest>,
    ) -> Result<Response<v1::CompleteResponse>, Status> {
        let r = request.into_inner();
        let (caller, client, call) = self.writer(r.caller)?;
        let last = r.last.map(block_record);
        // Every block needs a finalized replica before the file is complete
        // (HDFS's minimum replication of 1); until then the client retries.
        let (file, _) = self.namesystem.read(|ns| ns.writer_blocks(&r.path))?;
        let mut blocks: Vec<BlockRecord> = file.blocks.iter().map(|(_, b)| *b).collect();
        if let (Some(last), Some(recorded)) = (last, blocks.last_mut())
            && recorded.id == last.id
        {
            *recorded = last;
        }
        let replicated = {
            let manager = self.blocks();
            blocks
                .iter()
                .all(|b| manager.map.healthy_count(b.id, b.gen_stamp) >= 1)
        };
        if !replicated {
            return Ok(Response::new(v1::CompleteResponse { completed: false }));
        }
        let op = Op::Complete {
            path: r.path,
            client,
            last,
        };
        self.namesystem.write(op, caller, call).await?;
        Ok(Response::new(v1::CompleteResponse { completed: true }))
    }

    #[tracing::instrument(skip_all, fields(op = "bump_gen_stamp", path = %request.get_ref().path))]
    async fn update_block_for_pipeline(
        &self,
        request: Request<v1::UpdateBlockForPipelineRequest>,
    ) -> Result<Response<v1::UpdateBlockForPipelineResponse>, Status> {
        let r = request.into_inner();
        let (caller, client, call) = self.writer(r.caller)?;
        let user = caller.user.clone();
        let block = required_block("block", r.block)?;
        let op = Op::BumpGenStamp {
            path: r.path.clone(),
            client,
            block: block.id,
        };
        let gen_stamp = match self.namesystem.write(op, caller, call).await? {
            Some(Txn::BumpGenStamp { gen_stamp, .. }) => gen_stamp,
            _ => self.last_block(&r.path)?.0.gen_stamp,
        };
        tracing::info!(block = %block.id, old = %block.gen_stamp, new = %gen_stamp, "pipeline recovery: new generation stamp");
        let bumped = BlockRecord { gen_stamp, ..block };
        // The namespace checked that the caller holds the lease of the file
        // whose last block this is: it may write the block under the new
        // stamp and copy it to a replacement datanode.
        let modes = AccessModes::WRITE.with(AccessModes::COPY);
        Ok(Response::new(v1::UpdateBlockForPipelineResponse {
            block: Some(extended(bumped)),
            token: self.token(bumped, modes, &user),
        }))
    }

    #[tracing::instrument(skip_all, fields(op = "additional_datanode", path = %request.get_ref().path))]
    async fn get_additional_datanode(
        &self,
        request: Request<v1::GetAdditionalDatanodeRequest>,
    ) -> Result<Response<v1::GetAdditionalDatanodeResponse>, Status> {
        let writer_ip = request.remote_addr().map(|a| a.ip().to_canonical());
        let r = request.into_inner();
        let (_caller, _client, _call) = self.writer(r.caller)?;
        let existing = datanode_ids("existing", &r.existing)?;
        let excluded = datanode_ids("excluded", &r.excluded)?;
        let count = usize::try_from(r.count)
            .ok()
            .filter(|c| (1..=16).contains(c))
            .ok_or_else(|| invalid("count", "must be between 1 and 16"))?;
        let block = required_block("block", r.block)?;
        let (_, block_size) = self.namesystem.read(|ns| ns.writer_blocks(&r.path))?;
        let targets = self
            .blocks()
            .choose_targets(
                block.id,
                writer_ip,
                count,
                &existing,
                &excluded,
                block_size,
                Instant::now(),
            )
            .map_err(|e| ErrorKind::Unavailable.status(e.to_string()))?;
        Ok(Response::new(v1::GetAdditionalDatanodeResponse {
            datanodes: targets.iter().map(location).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(op = "update_pipeline", path = %request.get_ref().path))]
    async fn update_pipeline(
        &self,
        request: Request<v1::UpdatePipelineRequest>,
    ) -> Result<Response<v1::UpdatePipelineResponse>, Status> {
        let r = request.into_inner();
        let (_caller, _client, _call) = self.writer(r.caller)?;
        let new = required_block("new_block", r.new_block)?;
        // The new generation stamp was journaled by UpdateBlockForPipeline;
        // the pipeline's members report their replicas when they finalize.
        let (last, _) = self.last_block(&r.path)?;
        if last.id != new.id || last.gen_stamp != new.gen_stamp {
            return Err(Status::from(Error::BlockMismatch {
                path: r.path,
                expected: Some(last),
                got: Some(new),
            }));
        }
        tracing::info!(block = %new, pipeline = ?r.datanodes, "pipeline updated");
        Ok(Response::new(v1::UpdatePipelineResponse {}))
    }

    #[tracing::instrument(skip_all, fields(op = "renew_lease"))]
    async fn renew_lease(
        &self,
        request: Request<v1::RenewLeaseRequest>,
    ) -> Result<Response<v1::RenewLeaseResponse>, Status> {
        let from = request.remote_addr().map(|a| a.ip().to_canonical());
        let (_caller, client, _call) = self.writer(request.into_inner().caller)?;
        self.leases
            .renew(&client, from, self.namesystem.role().epoch);
        Ok(Response::new(v1::RenewLeaseResponse {}))
    }

    #[tracing::instrument(skip_all, fields(op = "open", path = %request.get_ref().path))]
    async fn get_block_locations(
        &self,
        request: Request<v1::GetBlockLocationsRequest>,
    ) -> Result<Response<v1::GetBlockLocationsResponse>, Status> {
        let client_ip = request.remote_addr().map(|a| a.ip().to_canonical());
        let r = request.into_inner();
        let caller = self.caller(r.caller)?;
        let file = self
            .namesystem
            .read(|ns| ns.block_locations(&r.path, &caller, r.offset, r.length))?;
        let now = Instant::now();
        let mut manager = self.blocks();
        let blocks = file
            .blocks
            .iter()
            .map(|(offset, record)| {
                let (healthy, corrupt) = manager.map.holders(record.id);
                let current: Vec<DatanodeId> = healthy
                    .into_iter()
                    .filter(|id| {
                        manager
                            .map
                            .replica(record.id, id)
                            .is_some_and(|rep| rep.gen_stamp == record.gen_stamp)
                    })
                    .collect();
                let mut locations = manager.sort_for_reader(&current, client_ip, now);
                if locations.is_empty() {
                    // No replica is known good: hand out the corrupt ones,
                    // last, as HDFS does; the reader verifies every chunk and
                    // may find the good bytes (a replica corrupt in one place
                    // only, a verdict that was wrong).
                    locations = manager.sort_for_reader(&corrupt, client_ip, now);
                }
                v1::LocatedBlock {
                    block: Some(extended(*record)),
                    offset: *offset,
                    locations: locations.iter().map(location).collect(),
                    corrupt_locations: corrupt
                        .iter()
                        .filter_map(|id| manager.location(id))
                        .map(|l| location(&l))
                        .collect(),
                    token: self.token(*record, AccessModes::READ, &caller.user),
                }
            })
            .collect();
        Ok(Response::new(v1::GetBlockLocationsResponse {
            file_length: file.length,
            blocks,
            under_construction: file.under_construction,
        }))
    }

    #[tracing::instrument(skip_all, fields(op = "report_bad_blocks"))]
    async fn report_bad_blocks(
        &self,
        request: Request<v1::ReportBadBlocksRequest>,
    ) -> Result<Response<v1::ReportBadBlocksResponse>, Status> {
        let r = request.into_inner();
        let caller = self.caller(r.caller)?;
        if r.replicas.len() > 1024 {
            return Err(invalid("replicas", "more than 1024 in one report"));
        }
        let mut reported = Vec::with_capacity(r.replicas.len());
        for bad in r.replicas {
            let datanode = datanode_ids("datanode_id", std::slice::from_ref(&bad.datanode_id))?;
            let block = required_block("block", bad.block)?;
            reported.extend(datanode.into_iter().map(|id| (id, block)));
        }
        // Only a reader of the file may speak of its replicas: the same
        // check as every read path. Blocks the namespace does not know are
        // dropped (deleted meanwhile).
        let readable = self.namesystem.read(|ns| {
            reported
                .into_iter()
                .filter_map(
                    |(id, block)| match ns.readable_block_owner(block.id, &caller) {
                        Ok(Some(_)) => Some(Ok((id, block))),
                        Ok(None) => None,
                        Err(e) => Some(Err(e)),
                    },
                )
                .collect::<Result<Vec<_>, Error>>()
        });
        let readable = readable.inspect_err(|e| {
            tracing::warn!(reporter = %caller.user, error = %e, "bad-replica report refused");
        })?;
        let now = Instant::now();
        let mut manager = self.blocks();
        for (id, block) in readable {
            // Suspect only: the datanode verifies the replica before anyone
            // calls it corrupt (block_map, "Who may call a replica corrupt").
            let outcome = manager
                .map
                .mark_suspect(&id, block.id, block.gen_stamp, now);
            tracing::warn!(%block, datanode = %id, reporter = %caller.user, ?outcome, "replica reported corrupt; asking its datanode to verify it");
        }
        Ok(Response::new(v1::ReportBadBlocksResponse {}))
    }
}

impl ClientService {
    /// A token granting `modes` on `block` to `user` (none with tokens off).
    fn token(&self, block: BlockRecord, modes: AccessModes, user: &str) -> Option<v1::BlockToken> {
        self.keys
            .issue(block.id, block.gen_stamp, modes, user)
            .as_ref()
            .map(v1::BlockToken::from)
    }

    fn blocks(&self) -> std::sync::MutexGuard<'_, BlockManager> {
        self.blocks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The reopened last block of an append: its replicas of the stamp they
    /// still carry, sorted as for a read, and WRITE access under the new stamp.
    fn reopened_block(
        &self,
        last: BlockRecord,
        offset: u64,
        reopen: Reopen,
        client_ip: Option<std::net::IpAddr>,
        user: &str,
    ) -> v1::LocatedBlock {
        let mut manager = self.blocks();
        let (healthy, _) = manager.map.holders(last.id);
        let current: Vec<DatanodeId> = healthy
            .into_iter()
            .filter(|id| {
                manager
                    .map
                    .replica(last.id, id)
                    .is_some_and(|rep| rep.gen_stamp == reopen.previous)
            })
            .collect();
        let locations = manager.sort_for_reader(&current, client_ip, Instant::now());
        drop(manager);
        v1::LocatedBlock {
            block: Some(extended(last)),
            offset,
            locations: locations.iter().map(location).collect(),
            corrupt_locations: Vec::new(),
            token: self.token(last, AccessModes::WRITE, user),
        }
    }

    /// The caller, its client name (the lease holder: hex of its client id)
    /// and its call, for the retry cache.
    fn writer(
        &self,
        context: Option<v1::CallerContext>,
    ) -> Result<(Caller, String, Option<CallId>), Status> {
        let call = context.as_ref().map(call_of).transpose()?.flatten();
        let Some(client) = call.as_ref().map(|c| client_name(&c.client)) else {
            return Err(invalid(
                "caller.client_id",
                format!("1 to {MAX_CLIENT_ID} bytes needed"),
            ));
        };
        Ok((self.caller(context)?, client, call))
    }

    /// The file's last block and its offset.
    fn last_block(&self, path: &str) -> Result<(BlockRecord, u64), Status> {
        let (file, _) = self.namesystem.read(|ns| ns.writer_blocks(path))?;
        file.blocks
            .last()
            .map(|(offset, block)| (*block, *offset))
            .ok_or_else(|| {
                Status::from(Error::BlockMismatch {
                    path: path.to_owned(),
                    expected: None,
                    got: None,
                })
            })
    }

    /// The target replica count of the file holding `block`.
    fn replication_of(&self, block: BlockId) -> u16 {
        self.namesystem
            .read(|ns| ns.block_owner(block))
            .map_or(self.settings.default_replication, |o| o.replication)
    }
}

/// The call a request is, for the retry cache; `None` without a client id.
/// Every RPC that takes a caller context checks it here, so the bounds are
/// the same everywhere.
///
/// # Errors
/// `InvalidArgument` for a client id over [`MAX_CLIENT_ID`] bytes, or a call
/// id without a client id.
fn call_of(context: &v1::CallerContext) -> Result<Option<CallId>, Status> {
    match context.client_id.len() {
        0 if context.call_id != 0 => Err(invalid(
            "caller.call_id",
            "a call id needs a client id to go with it",
        )),
        0 => Ok(None),
        n if n > MAX_CLIENT_ID => Err(invalid(
            "caller.client_id",
            format!("{n} bytes; at most {MAX_CLIENT_ID}"),
        )),
        _ => Ok(Some(CallId::new(
            context.client_id.to_vec(),
            context.call_id,
        ))),
    }
}

/// Hex of a client id: the lease holder's name.
fn client_name(client_id: &[u8]) -> String {
    client_id.iter().map(|b| format!("{b:02x}")).collect()
}

fn datanode_ids(field: &'static str, ids: &[String]) -> Result<Vec<DatanodeId>, Status> {
    if ids.len() > 64 {
        return Err(invalid(field, "more than 64 datanodes"));
    }
    ids.iter()
        .map(|id| {
            DatanodeId::parse(id)
                .ok_or_else(|| invalid(field, format!("bad datanode id {id:.40?}")))
        })
        .collect()
}

/// A block field the request must carry.
fn required_block(
    field: &'static str,
    block: Option<v1::ExtendedBlock>,
) -> Result<BlockRecord, Status> {
    block
        .map(block_record)
        .ok_or_else(|| invalid(field, "missing"))
}

fn block_record(b: v1::ExtendedBlock) -> BlockRecord {
    BlockRecord {
        id: BlockId(b.block_id),
        gen_stamp: GenStamp(b.gen_stamp),
        length: b.length,
    }
}

fn extended(b: BlockRecord) -> v1::ExtendedBlock {
    v1::ExtendedBlock {
        block_id: b.id.0,
        gen_stamp: b.gen_stamp.0,
        length: b.length,
    }
}

fn location(l: &Location) -> v1::DatanodeLocation {
    v1::DatanodeLocation {
        datanode_id: l.id.to_string(),
        transfer_address: l.transfer_addr.to_string(),
        rack: l.rack.to_string(),
    }
}
