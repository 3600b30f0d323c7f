//! One actor per namenode: register, send a full block report, then
//! heartbeat every interval, send an incremental report as soon as a replica
//! is finalized, deleted or found corrupt, and a full report every block
//! report interval; register again when the namenode asks (it restarted) and
//! keep retrying, with backoff, while it is unreachable. Commands in
//! heartbeat replies (delete, replicate, finalize an rbw after lease
//! recovery, verify a replica a reader reported) are carried out unless the reply's epoch is older than the
//! newest this datanode has seen (fencing).
//!
//! ```text
//!   ┌──────────┐ ok  ┌─────────────┐     ┌──────────────────────────────┐ ReRegister ┌──────────┐
//!   │ register ├────►│ full report ├────►│ heartbeat / incremental /    ├───────────►│ register │ ...
//!   └────┬─────┘     └─────────────┘     │ periodic full report         │            └──────────┘
//!        └─ error: back off (≤ 5 s) and retry     └──────────────────────────────┘
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dfs_proto::block_token::AccessModes;
use dfs_proto::cluster_proof::{self, Claim, ClusterSecret, RequestKind};
use dfs_proto::ids::{BlockId, DatanodeId, GenStamp};
use dfs_proto::v1;
use dfs_proto::v1::datanode_protocol_client::DatanodeProtocolClient;
use dfs_proto::wall_clock;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

use crate::block_store::{self, BlockStore, ReplicaInfo};
use crate::data_path::DataPath;
use crate::pipeline::Target;
use crate::reports::{Change, Pending, ReportQueue};
use crate::scanner;
use crate::transfer::{self, CopyOrder};

const MAX_BACKOFF: Duration = Duration::from_secs(5);
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// How long finalizing an rbw waits for a pipeline still writing it to stop.
const PREEMPT_DEADLINE: Duration = Duration::from_secs(10);

/// What an actor needs to speak for this datanode.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) id: DatanodeId,
    pub(crate) transfer_addr: SocketAddr,
    /// Where this datanode serves HTTP (WebHDFS), announced at registration.
    pub(crate) http_addr: Option<SocketAddr>,
    pub(crate) data_dir: PathBuf,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) block_report_interval: Duration,
    /// The cluster secret every request proves; `None` when running without one.
    pub(crate) secret: Option<ClusterSecret>,
}

impl Identity {
    /// The proof of the cluster secret for a request of `kind` (announcing
    /// `transfer_port` when it is a registration).
    fn proof(&self, kind: RequestKind, transfer_port: u32) -> Option<v1::DatanodeProof> {
        let secret = self.secret.as_ref()?;
        let id = self.id.to_string();
        let claim = Claim {
            kind,
            datanode_id: &id,
            transfer_port,
        };
        Some(cluster_proof::prove(
            secret.key(),
            &claim,
            wall_clock::now_ms(),
        ))
    }
}

/// What an actor shares with the data path.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    /// The store, the report hub and the transfer machinery.
    pub(crate) dp: Arc<DataPath>,
    /// This namenode's pending replica changes.
    pub(crate) queue: Arc<ReportQueue>,
    /// Finalized replicas the start-up scan found corrupt (in every full report).
    pub(crate) corrupt_at_start: Arc<[ReplicaInfo]>,
    /// The newest namenode epoch seen by any actor.
    pub(crate) epochs: Arc<EpochFence>,
}

/// The newest namenode epoch seen; commands from older epochs are ignored.
#[derive(Debug, Default)]
pub(crate) struct EpochFence(AtomicU64);

impl EpochFence {
    /// Records `epoch`; true when it is not older than the newest seen.
    pub(crate) fn admit(&self, epoch: u64) -> bool {
        self.0.fetch_max(epoch, Ordering::AcqRel) <= epoch
    }
}

/// Talks to the namenode at `namenode` until `shutdown`; sends `namenode` on
/// `registered` after each successful registration.
///
/// Cancel-safe: every await is an RPC or a sleep that may be dropped.
pub(crate) async fn run(
    namenode: SocketAddr,
    me: Identity,
    link: Link,
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
            attempt = register(&mut client, &me, &link) => attempt,
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
            () = serve_until_reregister(&mut client, &me, &link, namenode) => {}
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
    link: &Link,
) -> Result<String, tonic::Status> {
    let transfer_port = u32::from(me.transfer_addr.port());
    let request = v1::RegisterDatanodeRequest {
        datanode_id: me.id.to_string(),
        transfer_port,
        storage: Some(storage_report(&me.data_dir, &link.dp.store)),
        software_version: env!("CARGO_PKG_VERSION").to_owned(),
        http_port: me.http_addr.map_or(0, |a| u32::from(a.port())),
        proof: me.proof(RequestKind::Register, transfer_port),
    };
    let reply = client.register_datanode(request).await?.into_inner();
    // Keys before "ready": the first client's token already verifies.
    link.dp.access.add_keys(reply.block_keys);
    Ok(reply.rack)
}

/// Reports and heartbeats until the namenode asks for a new registration:
/// a full block report first, then heartbeats on their interval,
/// incremental reports as changes arrive, and full reports on theirs.
///
/// Cancel-safe between RPCs: each select branch is a tick, a notification
/// or a finished RPC; a report cancelled mid-flight is lost only for this
/// namenode's current registration, which the next full report repairs.
async fn serve_until_reregister(
    client: &mut DatanodeProtocolClient<Channel>,
    me: &Identity,
    link: &Link,
    namenode: SocketAddr,
) {
    let mut beats = tokio::time::interval(me.heartbeat_interval);
    beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: the full report right after registering.
    let mut full_reports = tokio::time::interval(me.block_report_interval);
    full_reports.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = full_reports.tick() => {
                if let Err(status) = full_report(client, me, link).await {
                    tracing::warn!(%namenode, error = %status.message(), "full block report failed");
                    // Retried on the next heartbeat interval rather than in 6 h.
                    full_reports.reset_after(me.heartbeat_interval);
                }
            }
            () = link.queue.changed() => {
                incremental_report(client, me, link, namenode).await;
            }
            _ = beats.tick() => {
                let request = v1::HeartbeatRequest {
                    datanode_id: me.id.to_string(),
                    storage: Some(storage_report(&me.data_dir, &link.dp.store)),
                    active_transfers: link.dp.active.load(Ordering::Relaxed),
                    proof: me.proof(RequestKind::Heartbeat, 0),
                };
                match client.heartbeat(request).await {
                    Ok(reply) => {
                        if failing {
                            tracing::info!(%namenode, "heartbeats reach the namenode again");
                            failing = false;
                        }
                        let mut reply = reply.into_inner();
                        link.dp.access.add_keys(std::mem::take(&mut reply.block_keys));
                        // A namenode of an old epoch (a deposed leader, a
                        // follower not yet synced) may still ask us to
                        // register with it, but never to touch a block.
                        let is_current = link.epochs.admit(reply.epoch);
                        let mut must_register = false;
                        for command in reply.commands.into_iter().filter_map(|c| c.command) {
                            if !may_obey(&command, is_current) {
                                tracing::warn!(%namenode, epoch = reply.epoch, "ignoring a block command from an old epoch");
                                continue;
                            }
                            must_register |= obey(command, link, namenode).await;
                        }
                        if must_register {
                            tracing::info!(%namenode, "namenode asked this datanode to register again");
                            return;
                        }
                        // Changes a failed report put back go out with the next good heartbeat.
                        incremental_report(client, me, link, namenode).await;
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
    }
}

/// Sends every finalized replica, abandoned rbw replicas (so the namenode can
/// have them deleted) and pending corrupt ones as a full report.
async fn full_report(
    client: &mut DatanodeProtocolClient<Channel>,
    me: &Identity,
    link: &Link,
) -> Result<(), tonic::Status> {
    // Taken first: the snapshot below covers every change recorded before it.
    let pending = link.queue.take();
    let blocks = link
        .dp
        .store
        .replicas()
        .into_iter()
        .map(|r| reported(r, false))
        .chain(link.dp.store.abandoned_rbw().into_iter().map(rbw_reported))
        .collect::<Vec<_>>();
    let corrupt = link
        .corrupt_at_start
        .iter()
        .chain(pending.corrupt.values())
        .map(|r| reported(*r, false))
        .collect();
    let count = blocks.len();
    let request = v1::BlockReportRequest {
        datanode_id: me.id.to_string(),
        blocks,
        full: true,
        corrupt,
        verified: pending
            .verified
            .values()
            .map(|r| reported(*r, false))
            .collect(),
        proof: me.proof(RequestKind::FullReport, 0),
    };
    match client.block_report(request).await {
        Ok(_) => {
            tracing::debug!(replicas = count, "full block report sent");
            Ok(())
        }
        Err(status) => {
            link.queue.put_back(pending);
            Err(status)
        }
    }
}

/// Sends the pending changes; puts them back when the namenode cannot be reached.
async fn incremental_report(
    client: &mut DatanodeProtocolClient<Channel>,
    me: &Identity,
    link: &Link,
    namenode: SocketAddr,
) {
    let pending = link.queue.take();
    if pending.is_empty() {
        return;
    }
    let request = incremental_request(me, &pending);
    match client.block_report(request).await {
        Ok(_) => tracing::debug!(
            %namenode,
            changes = pending.changes.len(),
            corrupt = pending.corrupt.len(),
            "incremental block report sent"
        ),
        Err(status) => {
            tracing::warn!(%namenode, error = %status.message(), "incremental block report failed");
            link.queue.put_back(pending);
            // Retried after the next successful heartbeat, or with the next change.
        }
    }
}

fn incremental_request(me: &Identity, pending: &Pending) -> v1::BlockReportRequest {
    v1::BlockReportRequest {
        datanode_id: me.id.to_string(),
        blocks: pending
            .changes
            .values()
            .map(|c| match *c {
                Change::Received(info) => reported(info, false),
                Change::RbwLeft(info) => rbw_reported(info),
                Change::Deleted { block, gen_stamp } => reported(
                    ReplicaInfo {
                        block,
                        gen_stamp,
                        length: 0,
                    },
                    true,
                ),
            })
            .collect(),
        full: false,
        corrupt: pending
            .corrupt
            .values()
            .map(|r| reported(*r, false))
            .collect(),
        verified: pending
            .verified
            .values()
            .map(|r| reported(*r, false))
            .collect(),
        proof: me.proof(RequestKind::IncrementalReport, 0),
    }
}

fn reported(r: ReplicaInfo, deleted: bool) -> v1::ReportedBlock {
    v1::ReportedBlock {
        block_id: r.block.0,
        gen_stamp: r.gen_stamp.0,
        length: r.length,
        deleted,
        under_construction: false,
    }
}

/// An rbw replica no pipeline writes any more, as block reports carry it.
fn rbw_reported(r: ReplicaInfo) -> v1::ReportedBlock {
    v1::ReportedBlock {
        under_construction: true,
        ..reported(r, false)
    }
}

/// Carries out one command; returns true when the namenode asks for a new registration.
async fn obey(command: v1::datanode_command::Command, link: &Link, namenode: SocketAddr) -> bool {
    use v1::datanode_command::Command;
    match command {
        Command::Reregister(_) => return true,
        Command::DeleteBlocks(d) => {
            let blocks: Vec<(BlockId, GenStamp)> = d
                .blocks
                .iter()
                .map(|b| (BlockId(b.block_id), GenStamp(b.gen_stamp)))
                .collect();
            delete_blocks(link, blocks, namenode).await;
        }
        Command::ReplicateBlock(r) => {
            let Some(b) = r.block else {
                tracing::warn!(%namenode, "replicate command without a block");
                return false;
            };
            let (block, gen_stamp) = (BlockId(b.block_id), GenStamp(b.gen_stamp));
            // The namenode ordered the copy; the target needs WRITE access,
            // which this datanode signs itself (as HDFS's datanode does).
            let user = format!("datanode {}", link.dp.settings.node_name);
            let order = CopyOrder {
                block,
                gen_stamp,
                targets: r.targets.into_iter().map(Target::from).collect(),
                keep_rbw: false,
                token: link
                    .dp
                    .access
                    .mint(block, gen_stamp, AccessModes::WRITE, &user),
            };
            let dp = Arc::clone(&link.dp);
            link.dp.tasks.spawn(replicate(dp, order));
        }
        Command::VerifyBlocks(v) => {
            let blocks: Vec<(BlockId, GenStamp)> = v
                .blocks
                .iter()
                .map(|b| (BlockId(b.block_id), GenStamp(b.gen_stamp)))
                .collect();
            tracing::info!(%namenode, ?blocks, "verifying replicas a reader reported bad");
            let dp = Arc::clone(&link.dp);
            link.dp.tasks.spawn(verify_reported(dp, blocks));
        }
        Command::FinalizeRbw(f) => {
            for b in f.blocks {
                let dp = Arc::clone(&link.dp);
                let (block, gs) = (BlockId(b.block_id), GenStamp(b.gen_stamp));
                link.dp.tasks.spawn(finalize_rbw(dp, block, gs, b.length));
            }
        }
    }
    false
}

/// Priority scans of replicas a reader reported bad, one after the other
/// on a blocking thread; each verdict goes out in the next incremental report.
async fn verify_reported(dp: Arc<DataPath>, blocks: Vec<(BlockId, GenStamp)>) {
    let (store, reports, events) = (Arc::clone(&dp.store), dp.reports.clone(), dp.events.clone());
    let scanned = tokio::task::spawn_blocking(move || {
        for (block, gs) in blocks {
            scanner::verify_now(&store, &reports, &events, block, gs);
        }
    })
    .await;
    if let Err(e) = scanned {
        tracing::warn!(error = %e, "verify task failed");
    }
}

/// Lease recovery closed the block's file at `length`: stops a pipeline
/// still writing the replica (its writer lost the lease), then cuts the rbw
/// replica back to `length` and finalizes it, and announces it.
async fn finalize_rbw(dp: Arc<DataPath>, block: BlockId, gs: GenStamp, length: u64) {
    if !dp.writers.preempt(block, PREEMPT_DEADLINE).await {
        tracing::warn!(%block, "cannot finalize: its pipeline did not stop in time");
        return;
    }
    let store = Arc::clone(&dp.store);
    match tokio::task::spawn_blocking(move || store.finalize_rbw(block, gs, length)).await {
        Ok(Ok(info)) => {
            tracing::info!(%block, gen_stamp = %gs, length, "rbw replica finalized for lease recovery");
            dp.reports.received(info);
        }
        Ok(Err(e)) => {
            tracing::warn!(%block, gen_stamp = %gs, length, error = %e, "cannot finalize an rbw replica");
        }
        Err(e) => tracing::warn!(%block, error = %e, "finalize task failed"),
    }
}

/// Deletes replicas on a blocking thread and announces each deletion.
async fn delete_blocks(link: &Link, blocks: Vec<(BlockId, GenStamp)>, namenode: SocketAddr) {
    let store = Arc::clone(&link.dp.store);
    let reports = link.dp.reports.clone();
    let deleted = tokio::task::spawn_blocking(move || {
        for (block, gs) in blocks {
            match store.delete(block, Some(gs)) {
                Ok(()) => reports.deleted(block, gs),
                Err(block_store::Error::ReplicaNotFound { .. }) => {
                    // Already gone: the namenode still learns it.
                    reports.deleted(block, gs);
                }
                Err(e) => tracing::warn!(%block, gen_stamp = %gs, error = %e, "delete failed"),
            }
        }
    })
    .await;
    if let Err(e) = deleted {
        tracing::warn!(%namenode, error = %e, "delete task failed");
    }
}

/// Copies a finalized replica to the command's targets and logs the outcome.
async fn replicate(dp: Arc<DataPath>, order: CopyOrder) {
    let (block, gs) = (order.block, order.gen_stamp);
    let store = Arc::clone(&dp.store);
    let opened = tokio::task::spawn_blocking(move || store.open_finalized(block, gs)).await;
    let reader = match opened {
        Ok(Ok(reader)) => reader,
        Ok(Err(e)) => {
            tracing::warn!(%block, gen_stamp = %gs, error = %e, "cannot replicate: replica unreadable");
            return;
        }
        Err(e) => {
            tracing::warn!(%block, error = %e, "open task failed");
            return;
        }
    };
    let targets: Vec<String> = order
        .targets
        .iter()
        .map(|t| t.transfer_address.clone())
        .collect();
    match transfer::copy_replica(&dp, reader, order).await {
        Ok(()) => tracing::info!(%block, gen_stamp = %gs, ?targets, "replica replicated"),
        Err(e) => {
            tracing::warn!(%block, gen_stamp = %gs, ?targets, error = %e, "replication failed")
        }
    }
}

/// Capacity and free space of the data dir's file system; `used` counts
/// replica data and meta files (what heartbeats and `/metrics` report).
pub(crate) fn storage_report(data_dir: &Path, store: &BlockStore) -> v1::StorageReport {
    match nix::sys::statvfs::statvfs(data_dir) {
        Ok(stat) => {
            let frag = stat.fragment_size();
            v1::StorageReport {
                capacity: stat.blocks().saturating_mul(frag),
                used: store.used_bytes(),
                remaining: stat.blocks_available().saturating_mul(frag),
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "statvfs of the data dir failed");
            v1::StorageReport::default()
        }
    }
}

/// Whether a command from a namenode of the newest epoch (`is_current`) or
/// an older one may be carried out: an old epoch may only ask us to register.
fn may_obey(command: &v1::datanode_command::Command, is_current: bool) -> bool {
    is_current || matches!(command, v1::datanode_command::Command::Reregister(_))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use dfs_proto::checksum::chunk_checksums;
    use tokio_util::task::TaskTracker;

    use super::*;
    use crate::block_store::BlockStore;
    use crate::data_path::{TransferSettings, Writers};
    use crate::reports::ReportHub;

    #[test]
    fn commands_from_an_older_epoch_are_fenced_off() {
        let fence = EpochFence::default();
        assert!(fence.admit(3));
        assert!(fence.admit(3));
        assert!(!fence.admit(2));
        assert!(fence.admit(4));
        use v1::datanode_command::Command;
        let delete = Command::DeleteBlocks(v1::DeleteBlocks { blocks: vec![] });
        let reregister = Command::Reregister(v1::ReRegister {});
        assert!(may_obey(&delete, true));
        assert!(!may_obey(&delete, false));
        assert!(may_obey(&reregister, false));
    }

    /// A link to one namenode over `store`.
    fn link(store: BlockStore) -> Link {
        let (reports, mut queues) = ReportHub::new(1);
        Link {
            dp: Arc::new(DataPath {
                store: Arc::new(store),
                reports,
                writers: Arc::new(Writers::default()),
                active: Arc::new(AtomicU32::new(0)),
                settings: TransferSettings::new([127, 0, 0, 1].into(), "dn-test".to_owned()),
                tasks: TaskTracker::new(),
                shutdown: CancellationToken::new(),
                access: crate::block_access::BlockAccess::new(false),
                events: crate::metrics::Events::default(),
            }),
            queue: queues.remove(0),
            corrupt_at_start: Arc::new([]),
            epochs: Arc::default(),
        }
    }

    #[tokio::test]
    async fn delete_blocks_removes_the_replica_and_reports_it_deleted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, _) = BlockStore::open(dir.path()).expect("open");
        let (block, gs) = (BlockId(9), GenStamp(4));
        let mut w = store.create_rbw(block, gs).expect("create");
        w.write_packet(0, &[1; 1000], &chunk_checksums(&[1; 1000]), true)
            .expect("write");
        store.finalize(w).expect("finalize");
        let link = link(store);
        let command = v1::datanode_command::Command::DeleteBlocks(v1::DeleteBlocks {
            blocks: vec![v1::ExtendedBlock {
                block_id: block.0,
                gen_stamp: gs.0,
                length: 1000,
            }],
        });
        let namenode = SocketAddr::from(([127, 0, 0, 1], 1));
        assert!(!obey(command, &link, namenode).await);
        assert!(link.dp.store.replicas().is_empty());
        let pending = link.queue.take();
        assert_eq!(
            pending.changes.get(&block),
            Some(&Change::Deleted {
                block,
                gen_stamp: gs
            })
        );
        let request = incremental_request(
            &Identity {
                id: DatanodeId::parse("dn-test").expect("id"),
                transfer_addr: namenode,
                http_addr: None,
                data_dir: dir.path().to_owned(),
                heartbeat_interval: Duration::from_secs(1),
                block_report_interval: Duration::from_secs(1),
                secret: None,
            },
            &pending,
        );
        assert!(!request.full);
        assert_eq!(request.blocks.len(), 1);
        assert!(request.blocks[0].deleted);
    }

    #[tokio::test]
    async fn finalize_rbw_cuts_the_replica_back_finalizes_it_and_reports_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, _) = BlockStore::open(dir.path()).expect("open");
        let (block, gs) = (BlockId(9), GenStamp(4));
        let data = [7u8; 3000];
        let mut w = store.create_rbw(block, gs).expect("create");
        w.write_packet(0, &data, &chunk_checksums(&data), true)
            .expect("write");
        drop(w);
        let link = link(store);
        let command = v1::datanode_command::Command::FinalizeRbw(v1::FinalizeRbw {
            blocks: vec![v1::ExtendedBlock {
                block_id: block.0,
                gen_stamp: gs.0,
                length: 2000,
            }],
        });
        let namenode = SocketAddr::from(([127, 0, 0, 1], 1));
        assert!(!obey(command, &link, namenode).await);
        link.dp.tasks.close();
        link.dp.tasks.wait().await;
        let finalized = ReplicaInfo {
            block,
            gen_stamp: gs,
            length: 2000,
        };
        assert_eq!(link.dp.store.replicas(), vec![finalized]);
        assert!(link.dp.store.abandoned_rbw().is_empty());
        assert_eq!(
            link.queue.take().changes.get(&block),
            Some(&Change::Received(finalized))
        );
    }
}
