//! The namesystem: the namespace, the journal behind it and the one task
//! that changes them.
//!
//! ```text
//!  RPC handler ──WriteRequest──► quorum peer task (the only writer)
//!       ▲                          leader: check ─► apply ─► propose
//!       │                          (journal + PROPOSAL to followers)
//!       └──── reply once a quorum has it durably (COMMIT) ◄──┘
//! ```
//!
//! [`Namesystem`] is the handle RPC handlers hold: reads under a shared lock,
//! writes handed to the peer task (`quorum::peer`), which owns the
//! [`Replica`]. Only that task mutates the namespace, in zxid order, so a
//! cancelled RPC can never half-apply a change.
//!
//! The leader applies a change as it proposes it, as HDFS does, so the next
//! request is checked against it; it answers the writer only once the change
//! is committed. Followers apply committed changes only. A namespace that
//! ran ahead of what the quorum agreed (a leader that lost its quorum) is
//! rebuilt from the journal after the new leader's TRUNC.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};

use crate::blocks::block_map::Expected;
use crate::blocks::manager::BlockManager;
use crate::error::Error;
use crate::journal::{Journal, Recovered};
use crate::namespace::{Caller, Namespace, Op, PermissionPolicy};
use crate::quorum::RoleStatus;
use crate::retry_cache::{CallId, Logged, RetryCache};
use crate::txn::{BlockId, Txn, Zxid};

/// Requests waiting for the peer task. Bounded: callers wait when it is busy.
pub(crate) const WRITE_QUEUE: usize = 4096;

/// A change asked for by a client, answered once committed.
#[derive(Debug)]
pub(crate) struct WriteRequest {
    pub(crate) op: Op,
    pub(crate) caller: Caller,
    /// The client's call, for the retry cache.
    pub(crate) call: Option<CallId>,
    /// The txn the change became (`None` when it changed nothing).
    pub(crate) reply: oneshot::Sender<Result<Option<Txn>, Error>>,
}

/// Handle for RPC handlers: reads under a shared lock, writes through the peer task.
#[derive(Debug, Clone)]
pub(crate) struct Namesystem {
    namespace: Arc<RwLock<Namespace>>,
    writes: mpsc::Sender<WriteRequest>,
    role: watch::Receiver<RoleStatus>,
}

impl Namesystem {
    /// A handle on `replica`'s namespace whose writes go to `writes`.
    pub(crate) fn new(
        replica: &Replica,
        writes: mpsc::Sender<WriteRequest>,
        role: watch::Receiver<RoleStatus>,
    ) -> Self {
        Namesystem {
            namespace: replica.namespace.clone(),
            writes,
            role,
        }
    }

    /// Runs `f` on the current namespace under a shared lock.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Namespace) -> R) -> R {
        let namespace = self
            .namespace
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        f(&namespace)
    }

    /// Runs `f` with what the namespace says each block should be, for the
    /// block map (reports, re-replication). Holds the namespace's read lock:
    /// `f` may take the block manager's lock (namespace before blocks).
    pub(crate) fn with_expected_blocks<R>(
        &self,
        f: impl FnOnce(&dyn Fn(BlockId) -> Option<Expected>) -> R,
    ) -> R {
        self.read(|ns| {
            f(&|id| {
                ns.block_owner(id).map(|owner| Expected {
                    gen_stamp: owner.record.gen_stamp,
                    length: (!owner.is_last_under_construction).then_some(owner.record.length),
                    replication: owner.replication,
                    block_size: owner.block_size,
                    reopened_from: owner.reopened_from,
                })
            })
        })
    }

    /// Checks `op` for `caller`, applies it and returns once it is committed,
    /// with the txn it became (`None` when it changed nothing). A `call` seen
    /// before answers with the txn it made then, without applying it again,
    /// when it repeats the request it made then.
    ///
    /// # Errors
    /// The check's error, `CallReused` when `call` was applied for another
    /// request, or `NotLeader` when this namenode cannot take writes.
    pub(crate) async fn write(
        &self,
        op: Op,
        caller: Caller,
        call: Option<CallId>,
    ) -> Result<Option<Txn>, Error> {
        // Bound to the request here, so the digest travels with the txn into
        // the log and every namenode's cache.
        let call = call.map(|c| c.bound_to(&op, &caller));
        let (reply, replied) = oneshot::channel();
        let request = WriteRequest {
            op,
            caller,
            call,
            reply,
        };
        let stopped = || Error::JournalFailed {
            reason: "namenode is shutting down".into(),
        };
        self.writes.send(request).await.map_err(|_| stopped())?;
        replied.await.map_err(|_| stopped())?
    }

    /// This namenode's place in the quorum now.
    pub(crate) fn role(&self) -> RoleStatus {
        self.role.borrow().clone()
    }
}

/// The namespace as this namenode holds it, with its journal: owned by the
/// quorum peer task.
#[derive(Debug)]
pub(crate) struct Replica {
    namespace: Arc<RwLock<Namespace>>,
    pub(crate) journal: Journal,
    /// Told which replicas to delete when a txn frees blocks.
    blocks: Arc<Mutex<BlockManager>>,
    policy: PermissionPolicy,
    retry: RetryCache,
    /// The last zxid applied to the namespace.
    applied: Zxid,
    since_checkpoint: u64,
    checkpoint_txns: u64,
}

impl Replica {
    /// Rebuilds the namespace from the newest snapshot plus the log after it.
    ///
    /// # Errors
    /// A snapshot or txn that does not decode or apply.
    pub(crate) fn recover(
        policy: PermissionPolicy,
        recovered: Recovered,
        journal: Journal,
        checkpoint_txns: u64,
        blocks: Arc<Mutex<BlockManager>>,
    ) -> Result<Replica, Error> {
        let mut replica = Replica {
            namespace: Arc::new(RwLock::new(Namespace::new(policy.clone()))),
            journal,
            blocks,
            policy,
            retry: RetryCache::default(),
            applied: Zxid::ZERO,
            since_checkpoint: 0,
            checkpoint_txns,
        };
        replica.rebuild(recovered)?;
        Ok(replica)
    }

    /// Replaces the namespace with `recovered` replayed.
    fn rebuild(&mut self, recovered: Recovered) -> Result<(), Error> {
        let base = recovered.snapshot.as_ref().map_or(Zxid::ZERO, |s| s.0);
        let namespace = match &recovered.snapshot {
            Some((zxid, image)) => self.decode_image(*zxid, image)?,
            None => Namespace::new(self.policy.clone()),
        };
        self.set_namespace(namespace, base);
        for (zxid, bytes) in &recovered.txns {
            let logged = Logged::decode(*zxid, bytes)?;
            self.apply(*zxid, &logged).map_err(|e| Error::Replay {
                zxid: *zxid,
                reason: e.to_string(),
            })?;
        }
        self.since_checkpoint = recovered.txns.len() as u64;
        tracing::info!(
            snapshot = ?recovered.snapshot.as_ref().map(|(z, _)| z.to_string()),
            replayed = recovered.txns.len(),
            applied = %self.applied(),
            inodes = self.read(Namespace::inode_count),
            digest = format_args!("{:016x}", self.read(Namespace::digest)),
            "namespace loaded"
        );
        Ok(())
    }

    fn decode_image(&self, zxid: Zxid, image: &[u8]) -> Result<Namespace, Error> {
        let mut namespace: Namespace =
            postcard::from_bytes(image).map_err(|e| Error::SnapshotCorrupt {
                file: format!("snapshot at {zxid}").into(),
                reason: e.to_string(),
            })?;
        namespace.set_policy(self.policy.clone());
        Ok(namespace)
    }

    fn set_namespace(&mut self, namespace: Namespace, applied: Zxid) {
        *self
            .namespace
            .write()
            .unwrap_or_else(PoisonError::into_inner) = namespace;
        self.retry.clear();
        self.applied = applied;
    }

    fn read<R>(&self, f: impl FnOnce(&Namespace) -> R) -> R {
        f(&self
            .namespace
            .read()
            .unwrap_or_else(PoisonError::into_inner))
    }

    /// The last zxid applied to the namespace.
    pub(crate) fn applied(&self) -> Zxid {
        self.applied
    }

    /// The txn `call` made before and its zxid, if it was applied.
    ///
    /// # Errors
    /// `CallReused` when the call was applied for a different request.
    pub(crate) fn retried(&self, call: &CallId) -> Result<Option<&(Zxid, Txn)>, Error> {
        self.retry.get(call)
    }

    /// What `op` would change for `caller`, against the namespace as applied.
    ///
    /// # Errors
    /// The permission or existence check's error.
    pub(crate) fn check(&self, op: &Op, caller: &Caller) -> Result<Option<Txn>, Error> {
        self.read(|ns| ns.check(op, caller, now_ms()))
    }

    /// Applies `logged` as `zxid` (the next txn after [`Replica::applied`]).
    ///
    /// # Errors
    /// The txn does not apply: the namespace and the log disagree.
    pub(crate) fn apply(&mut self, zxid: Zxid, logged: &Logged) -> Result<(), Error> {
        let freed = self
            .namespace
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(&logged.txn)?;
        self.applied = zxid;
        self.since_checkpoint += 1;
        if let Some(call) = &logged.call {
            self.retry.insert(call.clone(), zxid, logged.txn.clone());
        }
        if !freed.is_empty() {
            // Lock order everywhere: namespace before blocks (released above).
            let mut blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
            blocks.map.free(freed.iter().map(|b| (b.id, b.gen_stamp)));
        }
        Ok(())
    }

    /// Brings the namespace to exactly what the journal holds: applies the
    /// records after [`Replica::applied`], or rebuilds it when the journal
    /// no longer holds what was applied.
    ///
    /// # Errors
    /// The journal fails or its records do not apply.
    pub(crate) async fn catch_up(&mut self) -> Result<(), Error> {
        self.journal.barrier().await?;
        let last = self.journal.last_zxid();
        let applied = self.applied();
        if applied == last {
            return Ok(());
        }
        if applied < last
            && let Ok(records) = self.journal.read_after(applied, usize::MAX).await
            && records.first().is_some_and(|(z, _)| self.follows(*z))
        {
            for (zxid, bytes) in &records {
                let logged = Logged::decode(*zxid, bytes)?;
                self.apply(*zxid, &logged)?;
            }
            return Ok(());
        }
        tracing::info!(%applied, journal = %last, "rebuilding the namespace from the journal");
        let recovered = self.journal.load().await?;
        self.rebuild(recovered)
    }

    /// Whether `zxid` may be the txn right after the applied one.
    fn follows(&self, zxid: Zxid) -> bool {
        let applied = self.applied();
        zxid > applied && (zxid.epoch() > applied.epoch() || applied.next() == Some(zxid))
    }

    /// The namespace image, for a checkpoint or a SNAP.
    ///
    /// # Errors
    /// The namespace does not encode (a bug).
    pub(crate) fn image(&self) -> Result<Vec<u8>, Error> {
        self.read(postcard::to_stdvec)
            .map_err(|e| Error::JournalFailed {
                reason: format!("encoding the namespace: {e}"),
            })
    }

    /// Replaces everything with the leader's snapshot at `zxid` (a SNAP).
    ///
    /// # Errors
    /// The image does not decode, or the journal fails.
    pub(crate) async fn install(&mut self, zxid: Zxid, image: Vec<u8>) -> Result<(), Error> {
        let namespace = self.decode_image(zxid, &image)?;
        self.journal.install_snapshot(zxid, image).await?;
        self.set_namespace(namespace, zxid);
        self.since_checkpoint = 0;
        Ok(())
    }

    /// Whether enough txns were applied since the last checkpoint.
    pub(crate) fn checkpoint_due(&self) -> bool {
        self.since_checkpoint >= self.checkpoint_txns
    }

    /// Snapshots the namespace at [`Replica::applied`] so that the log behind
    /// it can be deleted: the image is taken now, the returned future has
    /// the journal write it (in order with the appends). Call only when the
    /// namespace holds committed txns only, so that no snapshot ever holds a
    /// txn a TRUNC would remove.
    pub(crate) fn checkpoint(&mut self) -> impl Future<Output = ()> + Send + 'static {
        let zxid = self.applied();
        self.since_checkpoint = 0;
        let image = self.image();
        let journal = self.journal.clone();
        async move {
            let written = match image {
                Ok(image) => journal.checkpoint(zxid, image).await,
                Err(e) => Err(e),
            };
            match written {
                Ok(()) => tracing::info!(%zxid, "checkpoint written"),
                Err(e) => tracing::error!(%zxid, error = %e, "checkpoint failed"),
            }
        }
    }

    /// The namespace now matches the quorum's: have every datanode report
    /// its replicas again against it.
    pub(crate) fn request_full_reports(&self) {
        self.blocks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .request_full_reports();
    }

    /// A digest of the namespace, equal on replicas that applied the same txns.
    pub(crate) fn digest(&self) -> u64 {
        self.read(Namespace::digest)
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{self, JournalOptions};

    fn policy() -> PermissionPolicy {
        PermissionPolicy {
            superuser: "hdfs".into(),
            supergroup: "supergroup".into(),
            umask: 0o022,
        }
    }

    fn hdfs() -> Caller {
        Caller {
            user: "hdfs".into(),
            groups: vec![],
        }
    }

    fn blocks() -> Arc<Mutex<BlockManager>> {
        Arc::new(Mutex::new(BlockManager::new(
            crate::datanodes::Registry::new(
                std::time::Duration::from_secs(30),
                std::time::Duration::from_secs(600),
            ),
            Default::default(),
            1,
        )))
    }

    fn open(dir: &std::path::Path, checkpoint_txns: u64) -> Replica {
        let (journal, recovered) = journal::open(dir, JournalOptions::default()).unwrap();
        Replica::recover(policy(), recovered, journal, checkpoint_txns, blocks()).unwrap()
    }

    /// Checks, applies and journals `op` as the next txn of epoch 1.
    async fn write(replica: &mut Replica, op: Op) {
        let txn = replica.check(&op, &hdfs()).unwrap().unwrap();
        let zxid = Zxid(replica.applied().0.max(1 << 32) + 1);
        let logged = Logged { call: None, txn };
        replica.apply(zxid, &logged).unwrap();
        replica
            .journal
            .append(zxid, logged.encode())
            .await
            .unwrap()
            .unwrap();
        if replica.checkpoint_due() {
            replica.checkpoint().await;
        }
    }

    fn mkdirs(path: String) -> Op {
        Op::Mkdirs {
            path,
            mode: None,
            create_parent: true,
        }
    }

    #[tokio::test]
    async fn a_restart_rebuilds_the_same_namespace_across_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let digest = {
            // A checkpoint every 7 txns: recovery needs snapshot + log tail.
            let mut replica = open(dir.path(), 7);
            for i in 0..50 {
                write(&mut replica, mkdirs(format!("/d{}/e{i}", i % 5))).await;
            }
            let rename = Op::Rename {
                src: "/d1".into(),
                dst: "/moved".into(),
            };
            write(&mut replica, rename).await;
            replica.digest()
        };
        let snapshots = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("snapshot.")
            })
            .count();
        assert!(snapshots >= 1, "no checkpoint was written");
        let replica = open(dir.path(), 7);
        assert_eq!(replica.digest(), digest);
        let moved = replica
            .read(|n| n.list("/moved", &hdfs(), "", 100))
            .unwrap();
        assert_eq!(moved.0.len(), 10);
    }

    #[tokio::test]
    async fn a_truncated_journal_rebuilds_the_namespace_it_ran_ahead_of() {
        let dir = tempfile::tempdir().unwrap();
        let mut replica = open(dir.path(), 1000);
        write(&mut replica, mkdirs("/kept".into())).await;
        let kept = replica.applied();
        let digest = replica.digest();
        write(&mut replica, mkdirs("/dropped".into())).await;
        replica.journal.truncate_after(kept).await.unwrap();
        replica.catch_up().await.unwrap();
        assert_eq!(replica.applied(), kept);
        assert_eq!(replica.digest(), digest);
        assert!(replica.read(|n| n.file_info("/dropped", &hdfs())).is_err());
    }

    #[tokio::test]
    async fn catch_up_applies_what_the_journal_holds_beyond_the_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let mut replica = open(dir.path(), 1000);
        write(&mut replica, mkdirs("/a".into())).await;
        // Journaled but not applied, as a follower's uncommitted proposal.
        let txn = replica
            .check(&mkdirs("/b".into()), &hdfs())
            .unwrap()
            .unwrap();
        let zxid = replica.applied().next().unwrap();
        let logged = Logged { call: None, txn };
        replica
            .journal
            .append(zxid, logged.encode())
            .await
            .unwrap()
            .unwrap();
        replica.catch_up().await.unwrap();
        assert_eq!(replica.applied(), zxid);
        assert!(replica.read(|n| n.file_info("/b", &hdfs())).is_ok());
    }
}
