//! DatanodeProtocol: registration, heartbeats and block reports.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use dfs_proto::ids::DatanodeId;
use dfs_proto::v1;
use dfs_proto::v1::datanode_protocol_server::DatanodeProtocol;
use tonic::{Request, Response, Status};

use crate::config::Settings;
use crate::datanodes::{HeartbeatOutcome, Registry, Storage};
use crate::error::Error;
use crate::txn::Epoch;

/// Serves DatanodeProtocol.
#[derive(Debug, Clone)]
pub(crate) struct DatanodeService {
    pub(crate) registry: Arc<Mutex<Registry>>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) epoch: Epoch,
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

fn storage(report: Option<v1::StorageReport>) -> Storage {
    report.map_or_else(Storage::default, |r| Storage {
        capacity: r.capacity,
        used: r.used,
        remaining: r.remaining,
    })
}

impl DatanodeService {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
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
        let transfer_addr = SocketAddr::new(peer.ip().to_canonical(), port);
        let rack = self.settings.topology.resolve(transfer_addr.ip());
        tracing::info!(datanode = %id, %transfer_addr, %rack, "datanode registered");
        self.registry().register(
            id,
            transfer_addr,
            rack.clone(),
            storage(r.storage),
            Instant::now(),
        );
        Ok(Response::new(v1::RegisterDatanodeResponse {
            epoch: u64::from(self.epoch.0),
            rack: rack.to_string(),
        }))
    }

    #[tracing::instrument(level = "trace", skip_all, fields(datanode = %request.get_ref().datanode_id))]
    async fn heartbeat(
        &self,
        request: Request<v1::HeartbeatRequest>,
    ) -> Result<Response<v1::HeartbeatResponse>, Status> {
        let r = request.into_inner();
        let id = datanode_id(&r.datanode_id)?;
        let outcome = self
            .registry()
            .heartbeat(&id, storage(r.storage), Instant::now());
        let commands = match outcome {
            HeartbeatOutcome::Accepted => Vec::new(),
            HeartbeatOutcome::MustRegister => vec![v1::DatanodeCommand {
                command: Some(v1::datanode_command::Command::Reregister(v1::ReRegister {})),
            }],
        };
        Ok(Response::new(v1::HeartbeatResponse {
            epoch: u64::from(self.epoch.0),
            commands,
        }))
    }

    #[tracing::instrument(skip_all, fields(datanode = %request.get_ref().datanode_id))]
    async fn block_report(
        &self,
        request: Request<v1::BlockReportRequest>,
    ) -> Result<Response<v1::BlockReportResponse>, Status> {
        let r = request.into_inner();
        let id = datanode_id(&r.datanode_id)?;
        if !self.registry().contains(&id) {
            return Err(Status::failed_precondition(format!(
                "datanode {id} is not registered with this namenode"
            )));
        }
        // Block locations arrive with the data path (issue 3); until then a
        // report only proves the datanode is talking to us.
        tracing::debug!(datanode = %id, blocks = r.blocks.len(), full = r.full, "block report");
        Ok(Response::new(v1::BlockReportResponse {}))
    }
}
