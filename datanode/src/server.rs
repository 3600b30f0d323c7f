//! Wires the datanode together: identity, the block store, the DataTransfer
//! service on the transfer listener, the block scanner, and one actor per
//! namenode.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::block_access::BlockAccess;
use crate::block_store::{BlockStore, ReplicaInfo, ReplicaState};
use crate::config::DatanodeConfig;
use crate::data_path::{DataPath, TransferSettings, Writers};
use crate::error::Error;
use crate::http::{self, HttpContext};
use crate::identity;
use crate::metrics::{self, DatanodeMetrics, Events};
use crate::namenode_actor::{self, Identity, Link};
use crate::reports::ReportHub;
use crate::scanner::BlockScanner;
use crate::service::DataTransferService;

const DRAIN_DEADLINE: Duration = Duration::from_secs(8);

/// Runs a datanode until `shutdown` is cancelled.
///
/// Prints `ready <addr>` on stdout once it is registered with a namenode.
///
/// # Errors
/// The data dir or the listen address is unusable.
pub async fn run(config: DatanodeConfig, shutdown: CancellationToken) -> Result<(), Error> {
    let secret = config
        .cluster_secret()
        .map_err(|reason| Error::ClusterSecret { reason })?;
    if secret.is_none() {
        tracing::warn!(
            "insecure_no_cluster_secret is set: this datanode proves nothing to the namenodes"
        );
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let id = identity::load_or_create(&config.data_dir)?;
    let data_dir = config.data_dir.clone();
    let (mut store, scan) = tokio::task::spawn_blocking(move || BlockStore::open(&data_dir))
        .await
        .map_err(|e| Error::BlockStore {
            data_dir: config.data_dir.clone(),
            reason: e.to_string(),
        })?
        .map_err(|e| Error::BlockStore {
            data_dir: config.data_dir.clone(),
            reason: e.to_string(),
        })?;
    if config.discard_data {
        tracing::warn!(
            "discard_data is set: replicas written from now on keep no data (benchmark only)"
        );
        store.set_discard_data(true);
    }
    let corrupt_at_start: Arc<[ReplicaInfo]> = scan
        .corrupt
        .iter()
        .filter(|c| c.state == ReplicaState::Finalized)
        .filter_map(|c| {
            c.gen_stamp.map(|gen_stamp| ReplicaInfo {
                block: c.block,
                gen_stamp,
                length: 0,
            })
        })
        .collect();
    let listener = TcpListener::bind(config.listen).await?;
    let transfer_addr = listener.local_addr()?;
    let (reports, queues) = ReportHub::new(config.namenodes.len());
    let tasks = TaskTracker::new();
    let store = Arc::new(store);
    let active = Arc::new(AtomicU32::new(0));
    let events = Events::default();
    let metrics = Arc::new(DatanodeMetrics::new(metrics::Sources {
        store: Arc::clone(&store),
        active: Arc::clone(&active),
        data_dir: config.data_dir.clone(),
        events: events.clone(),
    }));
    let dp = Arc::new(DataPath {
        store,
        reports,
        writers: Arc::new(Writers::default()),
        active,
        settings: TransferSettings::new(transfer_addr.ip(), id.to_string()),
        tasks: tasks.clone(),
        shutdown: shutdown.child_token(),
        access: BlockAccess::new(config.block_access_token_enable),
        events,
    });
    tasks.spawn(serve_transfers(
        listener,
        Arc::clone(&dp),
        shutdown.child_token(),
    ));
    match config.block_scanner() {
        Some(settings) => {
            let scanner = BlockScanner::new(
                Arc::clone(&dp.store),
                dp.reports.clone(),
                settings,
                dp.events.clone(),
                Handle::current(),
                shutdown.child_token(),
            );
            tasks.spawn_blocking(move || scanner.run());
        }
        None => tracing::info!("block scanner disabled (scan_period_ms = 0)"),
    }
    // Bound before registering: the registration announces its port.
    let http_listener = match config.http_address {
        Some(address) => Some(TcpListener::bind(address).await?),
        None => None,
    };
    let http_addr = http_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let me = Identity {
        id: id.clone(),
        transfer_addr,
        http_addr,
        data_dir: config.data_dir.clone(),
        heartbeat_interval: config.heartbeat_interval(),
        block_report_interval: config.block_report_interval(),
        secret,
    };
    let (registered, mut registrations) = mpsc::channel(config.namenodes.len());
    let epochs = Arc::new(namenode_actor::EpochFence::default());
    for (namenode, queue) in config.namenodes.iter().zip(queues) {
        let link = Link {
            dp: Arc::clone(&dp),
            queue,
            corrupt_at_start: Arc::clone(&corrupt_at_start),
            epochs: Arc::clone(&epochs),
        };
        tasks.spawn(namenode_actor::run(
            *namenode,
            me.clone(),
            link,
            registered.clone(),
            shutdown.child_token(),
        ));
    }
    drop(registered);
    if let (Some(listener), Some(http_address)) = (http_listener, http_addr) {
        let context = HttpContext {
            dp: Arc::clone(&dp),
            config: Arc::new(config.clone()),
            id: id.to_string(),
            transfer_addr,
            http_address,
            started: SystemTime::now(),
            metrics,
        };
        tracing::info!(%http_address, "datanode http serving");
        tasks.spawn(http::serve(
            listener,
            http::router(context),
            shutdown.child_token(),
        ));
    }
    tracing::info!(datanode = %id, %transfer_addr, "datanode started");
    tokio::select! {
        _ = shutdown.cancelled() => {}
        Some(namenode) = registrations.recv() => {
            tracing::info!(%namenode, "datanode serving");
            println!("ready {transfer_addr}");
            shutdown.cancelled().await;
        }
    }
    tasks.close();
    if tokio::time::timeout(DRAIN_DEADLINE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("tasks still running after the drain deadline");
    }
    tracing::info!("datanode stopped");
    Ok(())
}

/// Serves DataTransfer on `listener` until `shutdown`; Nagle off on every
/// accepted connection (acks are small and latency-bound).
pub(crate) async fn serve_transfers(
    listener: TcpListener,
    dp: Arc<DataPath>,
    shutdown: CancellationToken,
) {
    let incoming = TcpListenerStream::new(listener).map(|s| {
        s.inspect(|s| {
            if let Err(e) = s.set_nodelay(true) {
                tracing::debug!(error = %e, "set_nodelay failed");
            }
        })
    });
    let served = tonic::transport::Server::builder()
        .max_frame_size(crate::data_path::MAX_FRAME)
        .layer(dp.events.rpc.layer())
        .add_service(DataTransferService::server(dp))
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled())
        .await;
    if let Err(e) = served {
        tracing::error!(error = %Error::Serve(e.to_string()), "data transfer server stopped");
    }
}
