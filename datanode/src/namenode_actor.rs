//! One actor per namenode: register, then heartbeat every interval; register
//! again when the namenode asks (it restarted) and keep retrying, with
//! backoff, while it is unreachable.
//!
//! ```text
//!   ┌──────────┐ ok  ┌────────────┐ ReRegister ┌──────────┐
//!   │ register ├────►│ heartbeat  ├───────────►│ register │ ...
//!   └────┬─────┘     └────────────┘            └──────────┘
//!        └─ error: back off (≤ 5 s) and retry
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use dfs_proto::ids::DatanodeId;
use dfs_proto::v1;
use dfs_proto::v1::datanode_protocol_client::DatanodeProtocolClient;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

const MAX_BACKOFF: Duration = Duration::from_secs(5);
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// What an actor needs to speak for this datanode.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) id: DatanodeId,
    pub(crate) transfer_addr: SocketAddr,
    pub(crate) data_dir: PathBuf,
    pub(crate) heartbeat_interval: Duration,
}

/// Talks to the namenode at `namenode` until `shutdown`; sends `namenode` on
/// `registered` after each successful registration.
///
/// Cancel-safe: every await is an RPC or a sleep that may be dropped.
pub(crate) async fn run(
    namenode: SocketAddr,
    me: Identity,
    registered: mpsc::Sender<SocketAddr>,
    shutdown: CancellationToken,
) {
    let mut client = match connect(namenode, me.transfer_addr.ip()) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(%namenode, error = %e, "bad namenode address");
            return;
        }
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return,
            attempt = register(&mut client, &me) => attempt,
        };
        match attempt {
            Ok(rack) => {
                tracing::info!(%namenode, %rack, "registered with namenode");
                backoff = Duration::from_millis(100);
                let _ = registered.try_send(namenode);
            }
            Err(status) => {
                tracing::warn!(%namenode, error = %status.message(), "registration failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            () = heartbeat_until_reregister(&mut client, &me, namenode) => {}
        }
    }
}

fn connect(
    namenode: SocketAddr,
    source: IpAddr,
) -> Result<DatanodeProtocolClient<Channel>, tonic::transport::Error> {
    let endpoint = Endpoint::from_shared(format!("http://{namenode}"))?
        .connect_timeout(RPC_TIMEOUT)
        .timeout(RPC_TIMEOUT)
        .tcp_nodelay(true);
    // Bind the source address so the namenode sees this node's own IP (its rack).
    let endpoint = if source.is_unspecified() {
        endpoint
    } else {
        endpoint.local_address(Some(source))
    };
    Ok(DatanodeProtocolClient::new(endpoint.connect_lazy()))
}

async fn register(
    client: &mut DatanodeProtocolClient<Channel>,
    me: &Identity,
) -> Result<String, tonic::Status> {
    let request = v1::RegisterDatanodeRequest {
        datanode_id: me.id.to_string(),
        transfer_port: u32::from(me.transfer_addr.port()),
        storage: Some(storage_report(me)),
        software_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    Ok(client.register_datanode(request).await?.into_inner().rack)
}

/// Heartbeats until the namenode asks for a new registration.
async fn heartbeat_until_reregister(
    client: &mut DatanodeProtocolClient<Channel>,
    me: &Identity,
    namenode: SocketAddr,
) {
    let mut ticks = tokio::time::interval(me.heartbeat_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticks.tick().await;
        let request = v1::HeartbeatRequest {
            datanode_id: me.id.to_string(),
            storage: Some(storage_report(me)),
            active_transfers: 0,
        };
        match client.heartbeat(request).await {
            Ok(reply) => {
                if failing {
                    tracing::info!(%namenode, "heartbeats reach the namenode again");
                    failing = false;
                }
                let must_register = reply.into_inner().commands.into_iter().any(|c| {
                    matches!(
                        c.command,
                        Some(v1::datanode_command::Command::Reregister(_))
                    )
                });
                if must_register {
                    tracing::info!(%namenode, "namenode asked this datanode to register again");
                    return;
                }
            }
            Err(status) => {
                if !failing {
                    tracing::warn!(%namenode, error = %status.message(), "heartbeat failed");
                    failing = true;
                }
            }
        }
    }
}

/// Capacity and free space of the data dir's file system; `used` counts
/// replicas, of which this datanode holds none until the data path lands.
fn storage_report(me: &Identity) -> v1::StorageReport {
    match nix::sys::statvfs::statvfs(&me.data_dir) {
        Ok(stat) => {
            let frag = stat.fragment_size();
            v1::StorageReport {
                capacity: stat.blocks().saturating_mul(frag),
                used: 0,
                remaining: stat.blocks_available().saturating_mul(frag),
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "statvfs of the data dir failed");
            v1::StorageReport::default()
        }
    }
}
