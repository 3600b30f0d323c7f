//! ClientProtocol: namespace operations and the datanode report.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use dfs_proto::v1;
use dfs_proto::v1::client_protocol_server::ClientProtocol;
use tonic::{Request, Response, Status};

use crate::blocks::manager::BlockManager;
use crate::config::Settings;
use crate::datanodes::Liveness;
use crate::error::Error;
use crate::groups::GroupMapping;
use crate::namespace::{Caller, FileKind, FileStatus, Op};
use crate::namesystem::Namesystem;

/// Entries per listing page when the client asks for none.
const LISTING_PAGE: usize = 1000;
/// Most groups a request may claim.
const MAX_GROUPS: usize = 64;

/// Serves ClientProtocol.
#[derive(Debug, Clone)]
pub(crate) struct ClientService {
    pub(crate) namesystem: Namesystem,
    pub(crate) blocks: Arc<Mutex<BlockManager>>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) groups: Arc<GroupMapping>,
}

impl ClientService {
    /// The caller's identity, groups resolved by the namenode.
    fn caller(&self, context: Option<v1::CallerContext>) -> Result<Caller, Status> {
        let context = context.ok_or_else(|| invalid("caller", "missing caller context"))?;
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
        let caller = self.caller(caller)?;
        self.namesystem
            .write(op, caller)
            .await
            .map_err(Status::from)
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
        let r = request.into_inner();
        // The lease holder: the client process, as hex of its random id.
        let client = r.caller.as_ref().map_or_else(String::new, |c| {
            c.client_id.iter().map(|b| format!("{b:02x}")).collect()
        });
        let caller = self.caller(r.caller)?;
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
            client,
        };
        self.namesystem.write(op, caller.clone()).await?;
        let status = self.namesystem.read(|ns| ns.file_info(&r.path, &caller))?;
        Ok(Response::new(v1::CreateResponse {
            status: Some(to_wire(status)),
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
            })
            .collect();
        Ok(Response::new(v1::GetDatanodeReportResponse { datanodes }))
    }

    async fn add_block(
        &self,
        _request: Request<v1::AddBlockRequest>,
    ) -> Result<Response<v1::AddBlockResponse>, Status> {
        Err(Status::unimplemented(
            "the data path is being built (issue 3)",
        ))
    }

    async fn abandon_block(
        &self,
        _request: Request<v1::AbandonBlockRequest>,
    ) -> Result<Response<v1::AbandonBlockResponse>, Status> {
        Err(Status::unimplemented(
            "the data path is being built (issue 3)",
        ))
    }

    async fn complete(
        &self,
        _request: Request<v1::CompleteRequest>,
    ) -> Result<Response<v1::CompleteResponse>, Status> {
        Err(Status::unimplemented(
            "the data path is being built (issue 3)",
        ))
    }

    async fn update_block_for_pipeline(
        &self,
        _request: Request<v1::UpdateBlockForPipelineRequest>,
    ) -> Result<Response<v1::UpdateBlockForPipelineResponse>, Status> {
        Err(Status::unimplemented(
            "the data path is being built (issue 3)",
        ))
    }

    async fn get_additional_datanode(
        &self,
        _request: Request<v1::GetAdditionalDatanodeRequest>,
    ) -> Result<Response<v1::GetAdditionalDatanodeResponse>, Status> {
        Err(Status::unimplemented(
            "the data path is being built (issue 3)",
        ))
    }

    async fn update_pipeline(
        &self,
        _request: Request<v1::UpdatePipelineRequest>,
    ) -> Result<Response<v1::UpdatePipelineResponse>, Status> {
        Err(Status::unimplemented(
            "the data path is being built (issue 3)",
        ))
    }

    async fn get_block_locations(
        &self,
        _request: Request<v1::GetBlockLocationsRequest>,
    ) -> Result<Response<v1::GetBlockLocationsResponse>, Status> {
        Err(Status::unimplemented(
            "the data path is being built (issue 3)",
        ))
    }

    async fn report_bad_blocks(
        &self,
        _request: Request<v1::ReportBadBlocksRequest>,
    ) -> Result<Response<v1::ReportBadBlocksResponse>, Status> {
        Err(Status::unimplemented(
            "the data path is being built (issue 3)",
        ))
    }
}
