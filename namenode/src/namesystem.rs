//! The namesystem: the namespace, its single writer task and its journal.
//!
//! ```text
//!  RPC handler ──op──► writer task: check ─► zxid ─► apply ─► journal.append
//!       ▲                                                        │ (group commit)
//!       └──────────────── durable (after fsync) ◄────────────────┘
//! ```
//!
//! Only the writer task mutates the namespace, in zxid order; RPC handlers
//! wait for a oneshot, so a cancelled RPC can never half-apply a change.
//! As in HDFS, a change is visible to readers as soon as it is applied and
//! acknowledged to its writer only once it is fsynced. A journal failure is
//! fatal: the namenode stops rather than acknowledge an undurable change.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::blocks::block_map::Expected;
use crate::blocks::manager::BlockManager;
use crate::error::Error;
use crate::journal::{Journal, Recovered};
use crate::namespace::{Caller, Namespace, Op, PermissionPolicy};
use crate::txn::{BlockId, Epoch, Txn, Zxid};

/// Requests waiting for the writer task. Bounded: callers wait when it is busy.
const WRITE_QUEUE: usize = 4096;

/// Resolves once the change is durable.
type Durability = oneshot::Receiver<Result<(), Error>>;

/// A change applied in memory, and the receiver that says when it is durable.
type Applied = Option<(Txn, Durability)>;

#[derive(Debug)]
struct WriteRequest {
    op: Op,
    caller: Caller,
    reply: oneshot::Sender<Result<Applied, Error>>,
}

/// Handle for RPC handlers: reads under a shared lock, writes through the writer task.
#[derive(Debug, Clone)]
pub(crate) struct Namesystem {
    namespace: Arc<RwLock<Namespace>>,
    writes: mpsc::Sender<WriteRequest>,
    /// Cancelled when the journal fails: the whole namenode stops.
    fatal: CancellationToken,
}

/// The task that owns every change to the namespace.
#[derive(Debug)]
pub(crate) struct Writer {
    namespace: Arc<RwLock<Namespace>>,
    journal: Journal,
    requests: mpsc::Receiver<WriteRequest>,
    /// Told which replicas to delete when a txn frees blocks.
    blocks: Arc<Mutex<BlockManager>>,
    next_zxid: Zxid,
    since_checkpoint: u64,
    checkpoint_txns: u64,
}

impl Namesystem {
    /// Rebuilds the namespace from the newest snapshot plus the log after it,
    /// and starts a new `epoch` for the zxids issued from now on.
    pub(crate) fn recover(
        policy: PermissionPolicy,
        recovered: Recovered,
        journal: Journal,
        epoch: Epoch,
        checkpoint_txns: u64,
        blocks: Arc<Mutex<BlockManager>>,
        fatal: CancellationToken,
    ) -> Result<(Namesystem, Writer), Error> {
        let mut namespace = match &recovered.snapshot {
            Some((zxid, image)) => {
                let mut ns: Namespace =
                    postcard::from_bytes(image).map_err(|e| Error::SnapshotCorrupt {
                        file: format!("snapshot at {zxid}").into(),
                        reason: e.to_string(),
                    })?;
                ns.set_policy(policy);
                ns
            }
            None => Namespace::new(policy),
        };
        for (zxid, bytes) in &recovered.txns {
            let replay_error = |reason: String| Error::Replay {
                zxid: *zxid,
                reason,
            };
            let txn = Txn::decode(bytes).map_err(|e| replay_error(e.to_string()))?;
            namespace
                .apply(&txn)
                .map_err(|e| replay_error(e.to_string()))?;
        }
        tracing::info!(
            snapshot = ?recovered.snapshot.as_ref().map(|(z, _)| z.to_string()),
            replayed = recovered.txns.len(),
            inodes = namespace.inode_count(),
            digest = format_args!("{:016x}", namespace.digest()),
            %epoch,
            "namespace recovered"
        );
        let namespace = Arc::new(RwLock::new(namespace));
        let (writes, requests) = mpsc::channel(WRITE_QUEUE);
        let writer = Writer {
            namespace: namespace.clone(),
            journal,
            requests,
            blocks,
            next_zxid: Zxid::new(epoch, 1),
            since_checkpoint: recovered.txns.len() as u64,
            checkpoint_txns,
        };
        Ok((
            Namesystem {
                namespace,
                writes,
                fatal,
            },
            writer,
        ))
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
                })
            })
        })
    }

    /// Checks `op` for `caller`, applies it and returns once it is durable,
    /// with the txn it became (`None` when it changed nothing).
    pub(crate) async fn write(&self, op: Op, caller: Caller) -> Result<Option<Txn>, Error> {
        let (reply, replied) = oneshot::channel();
        let stopped = || Error::JournalFailed {
            reason: "namenode is shutting down".into(),
        };
        self.writes
            .send(WriteRequest { op, caller, reply })
            .await
            .map_err(|_| stopped())?;
        let Some((txn, durability)) = replied.await.map_err(|_| stopped())?? else {
            return Ok(None);
        };
        match durability.await {
            Ok(Ok(())) => Ok(Some(txn)),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "journal failed; stopping the namenode");
                self.fatal.cancel();
                Err(e)
            }
            Err(_) => Err(stopped()),
        }
    }
}

impl Writer {
    /// Applies requests until `shutdown` is cancelled or every handle is gone.
    ///
    /// Cancel-safe at each `select!`: a request is either not yet received or
    /// fully applied and handed to the journal.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let request = tokio::select! {
                _ = shutdown.cancelled() => break,
                request = self.requests.recv() => match request {
                    Some(request) => request,
                    None => break,
                },
            };
            let result = self.execute(&request.op, &request.caller);
            // The caller may have gone away; the change stands regardless.
            let _ = request.reply.send(result);
            if self.since_checkpoint >= self.checkpoint_txns {
                self.checkpoint().await;
            }
        }
    }

    fn execute(&mut self, op: &Op, caller: &Caller) -> Result<Applied, Error> {
        let mut namespace = self
            .namespace
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(txn) = namespace.check(op, caller, now_ms())? else {
            return Ok(None);
        };
        let zxid = self.next_zxid;
        let next = zxid.next().ok_or_else(|| Error::JournalFailed {
            reason: "zxid counter of this epoch exhausted; restart the namenode".into(),
        })?;
        let freed = namespace.apply(&txn)?;
        drop(namespace);
        self.next_zxid = next;
        self.since_checkpoint += 1;
        let durability = self.journal.append(zxid, txn.encode());
        if !freed.is_empty() {
            // Lock order everywhere: namespace before blocks (released above).
            let mut blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
            blocks.map.free(freed.iter().map(|b| (b.id, b.gen_stamp)));
        }
        Ok(Some((txn, durability)))
    }

    /// Snapshots the namespace so that the log behind it can be deleted.
    async fn checkpoint(&mut self) {
        let (zxid, image) = {
            let namespace = self
                .namespace
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let zxid = Zxid(self.next_zxid.0 - 1);
            match postcard::to_stdvec(&*namespace) {
                Ok(image) => (zxid, image),
                Err(e) => {
                    tracing::error!(error = %e, "encoding the namespace for a checkpoint failed");
                    return;
                }
            }
        };
        self.since_checkpoint = 0;
        match self.journal.checkpoint(zxid, image).await {
            Ok(()) => tracing::info!(%zxid, "checkpoint written"),
            Err(e) => tracing::error!(%zxid, error = %e, "checkpoint failed"),
        }
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

    /// Opens the journal in `dir` and starts a writer in a new epoch.
    fn start(
        dir: &std::path::Path,
        checkpoint_txns: u64,
    ) -> (Namesystem, CancellationToken, tokio::task::JoinHandle<()>) {
        let (journal, recovered) = journal::open(dir, JournalOptions::default()).unwrap();
        let epoch = Epoch(journal.last_zxid().epoch().0 + 1);
        let (ns, writer) = Namesystem::recover(
            policy(),
            recovered,
            journal,
            epoch,
            checkpoint_txns,
            Arc::new(Mutex::new(BlockManager::new(
                crate::datanodes::Registry::new(
                    std::time::Duration::from_secs(30),
                    std::time::Duration::from_secs(600),
                ),
                Default::default(),
                1,
            ))),
            CancellationToken::new(),
        )
        .unwrap();
        let stop = CancellationToken::new();
        let writer = tokio::spawn(writer.run(stop.clone()));
        (ns, stop, writer)
    }

    #[tokio::test]
    async fn a_restart_rebuilds_the_same_namespace_across_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let digest = {
            // A checkpoint every 7 txns: recovery needs snapshot + log tail.
            let (ns, stop, writer) = start(dir.path(), 7);
            for i in 0..50 {
                let op = Op::Mkdirs {
                    path: format!("/d{}/e{i}", i % 5),
                    mode: None,
                    create_parent: true,
                };
                ns.write(op, hdfs()).await.unwrap();
            }
            let rename = Op::Rename {
                src: "/d1".into(),
                dst: "/moved".into(),
            };
            ns.write(rename, hdfs()).await.unwrap();
            stop.cancel();
            // The writer owns the journal (and its lock): wait until it lets go.
            writer.await.unwrap();
            ns.read(|n| n.digest())
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
        let (ns, _stop, _writer) = start(dir.path(), 7);
        assert_eq!(ns.read(|n| n.digest()), digest);
        let moved = ns.read(|n| n.list("/moved", &hdfs(), "", 100)).unwrap();
        assert_eq!(moved.0.len(), 10);
    }

    #[tokio::test]
    async fn a_refused_op_changes_nothing_and_logs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (ns, _stop, _writer) = start(dir.path(), 1000);
        let before = ns.read(|n| n.digest());
        let op = Op::Mkdirs {
            path: "/a/b".into(),
            mode: None,
            create_parent: false,
        };
        let err = ns.write(op, hdfs()).await.unwrap_err();
        assert_eq!(err.to_string(), "'/a/b': No such file or directory");
        assert_eq!(ns.read(|n| n.digest()), before);
    }
}
