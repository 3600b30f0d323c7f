//! Wires the namenode together: journal recovery, the namesystem's writer
//! task, the datanode registry and the gRPC server.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use dfs_proto::v1::client_protocol_server::ClientProtocolServer;
use dfs_proto::v1::datanode_protocol_server::DatanodeProtocolServer;
use dfs_proto::v1::quorum_protocol_server::QuorumProtocolServer;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::blocks::block_keys::BlockKeys;
use crate::blocks::manager::BlockManager;
use crate::config::NamenodeConfig;
use crate::datanodes::Registry;
use crate::epoch;
use crate::error::Error;
use crate::groups::GroupMapping;
use crate::http::{self, HttpContext};
use crate::journal::{self, JournalOptions};
use crate::lease::{self, Leases};
use crate::metrics::{self, JournalMetrics, NamenodeMetrics};
use crate::namespace::{Caller, PermissionPolicy};
use crate::namesystem::{Namesystem, Replica, WRITE_QUEUE};
use crate::quorum::RoleStatus;
use crate::quorum::peer::{Peer, PeerSetup};
use crate::quorum::transport::{MAX_MESSAGE, QuorumService};
use crate::service::{ClientService, DatanodeService};

/// Quorum events queued for the peer task.
const EVENT_QUEUE: usize = 16 * 1024;
/// How long shutdown waits for in-flight work before giving up.
const DRAIN_DEADLINE: Duration = Duration::from_secs(8);

/// Runs a namenode until `shutdown` is cancelled or its journal fails.
///
/// Prints `ready <addr>` on stdout once it accepts connections.
///
/// # Errors
/// Bad configuration, an unrecoverable journal, or a journal failure while running.
pub async fn run(config: NamenodeConfig, shutdown: CancellationToken) -> Result<(), Error> {
    let settings = Arc::new(config.validate()?);
    let secret = settings.datanode_secret()?.cloned();
    if secret.is_none() {
        tracing::warn!(
            "insecure_no_cluster_secret is set: datanode requests prove nothing, and any process that reaches this namenode can register as a datanode"
        );
    }
    std::fs::create_dir_all(&settings.data_dir)?;
    let journal_metrics = JournalMetrics::default();
    let (journal, recovered) = journal::open(
        &settings.data_dir.join("journal"),
        JournalOptions {
            accept_shorter_log: settings.accept_shorter_journal,
            metrics: journal_metrics.clone(),
            ..JournalOptions::default()
        },
    )?;
    epoch::at_least(&settings.data_dir, journal.last_zxid().epoch())?;
    let policy = PermissionPolicy {
        superuser: settings.superuser.clone(),
        supergroup: settings.supergroup.clone(),
        umask: settings.umask,
    };
    // A journal failure cancels `fatal`, which stops everything below.
    let fatal = shutdown.child_token();
    let blocks = Arc::new(Mutex::new(BlockManager::new(
        Registry::new(settings.stale_after, settings.dead_after),
        settings.topology.clone(),
        rand::random(),
    )));
    let replica = Replica::recover(
        policy,
        recovered,
        journal,
        settings.checkpoint_txns,
        blocks.clone(),
    )?;
    let (_, current) = epoch::read_epochs(&settings.data_dir)?;
    let (role_tx, role) = watch::channel(RoleStatus::looking(current));
    let (writes_tx, writes) = mpsc::channel(WRITE_QUEUE);
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let namesystem = Namesystem::new(&replica, writes_tx, role.clone());
    let peer = Peer::new(PeerSetup {
        settings: settings.quorum.clone(),
        data_dir: settings.data_dir.clone(),
        replica,
        role: role_tx,
        events_tx: events_tx.clone(),
        events,
        writes,
        fatal: fatal.clone(),
    })?;
    let tasks = TaskTracker::new();
    tasks.spawn(peer.run(fatal.child_token()));

    tasks.spawn(monitor_replication(
        namesystem.clone(),
        blocks.clone(),
        settings.replication_check_interval,
        fatal.child_token(),
    ));
    let (leases, lease_inputs) = Leases::new(settings.lease_limits);
    let recoverer = Caller {
        user: settings.superuser.clone(),
        groups: vec![settings.supergroup.clone()],
    };
    let lease_monitor =
        lease::Monitor::new(lease_inputs, namesystem.clone(), blocks.clone(), recoverer);
    tasks.spawn(lease_monitor.run(fatal.child_token()));
    // Every namenode keeps keys, leading or not: datanodes then hold a new
    // leader's keys before it signs its first token.
    let keys = Arc::new(BlockKeys::new(settings.quorum.me, settings.tokens));
    let client = ClientService {
        keys: keys.clone(),
        namesystem: namesystem.clone(),
        blocks: blocks.clone(),
        settings: settings.clone(),
        groups: Arc::new(GroupMapping::new(settings.groups.clone())),
        leases,
    };
    let quorum = QuorumService {
        events: events_tx,
        next_conn: Arc::default(),
    };
    let metrics = Arc::new(NamenodeMetrics::new(metrics::Sources {
        namesystem: namesystem.clone(),
        blocks: blocks.clone(),
        role: role.clone(),
        quorum: quorum.clone(),
        journal: journal_metrics,
    }));
    if let Some(http_address) = settings.http_address {
        let listener = TcpListener::bind(http_address).await?;
        let http_address = listener.local_addr()?;
        let context = HttpContext {
            client: client.clone(),
            namesystem: namesystem.clone(),
            blocks: blocks.clone(),
            role: role.clone(),
            settings: settings.clone(),
            http_address,
            started: SystemTime::now(),
            metrics: metrics.clone(),
        };
        tracing::info!(%http_address, "namenode http serving");
        tasks.spawn(http::serve(
            listener,
            http::router(context),
            fatal.child_token(),
        ));
    }
    let datanode = DatanodeService {
        blocks,
        namesystem,
        secret,
        keys,
    };
    let listener = TcpListener::bind(settings.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, sid = %settings.quorum.me, superuser = %settings.superuser, "namenode serving");
    println!("ready {addr}");

    let served = tonic::transport::Server::builder()
        .layer(metrics.rpc_layer())
        .add_service(ClientProtocolServer::with_interceptor(
            client,
            only_the_leader(role),
        ))
        .add_service(DatanodeProtocolServer::new(datanode))
        .add_service(
            QuorumProtocolServer::new(quorum)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .serve_with_incoming_shutdown(without_nagle(listener), fatal.cancelled())
        .await;
    fatal.cancel();
    tasks.close();
    if tokio::time::timeout(DRAIN_DEADLINE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("tasks still running after the drain deadline");
    }
    served.map_err(|e| Error::Io(std::io::Error::other(e)))?;
    if !shutdown.is_cancelled() {
        return Err(Error::JournalFailed {
            reason: "stopped after a journal failure (see the log above)".into(),
        });
    }
    tracing::info!("namenode stopped");
    Ok(())
}

/// The accepted connections, with Nagle's algorithm off: a proposal, an ACK
/// or a commit is a small message that must leave at once, not wait for
/// the peer's delayed ACK (40 ms a round otherwise).
fn without_nagle(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    TcpListenerStream::new(listener).map(|accepted| {
        accepted.inspect(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "set_nodelay failed");
            }
        })
    })
}

/// Lets client RPCs through only while this namenode leads with a quorum
/// and its lease holds; others get `NotLeader`, with the leader's address
/// when it is known.
fn only_the_leader(
    role: watch::Receiver<RoleStatus>,
) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    move |request| {
        let role = role.borrow();
        if role.serves(Instant::now()) {
            return Ok(request);
        }
        Err(Error::NotLeader {
            leader: role.leader,
        }
        .into())
    }
}

/// Every `interval` while leading: forget dead datanodes' replicas and schedule copies of
/// under-replicated blocks. Cancel-safe: each pass runs under the locks
/// without awaiting.
async fn monitor_replication(
    namesystem: Namesystem,
    blocks: Arc<Mutex<BlockManager>>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        // Only the leader sends datanodes commands.
        if !namesystem.role().serves(Instant::now()) {
            continue;
        }
        namesystem.with_expected_blocks(|expected| {
            let mut blocks = blocks.lock().unwrap_or_else(PoisonError::into_inner);
            blocks.check_replication(Instant::now(), expected);
        });
    }
}
