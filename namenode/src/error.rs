//! The namenode's error type and its mapping to `tonic::Status`.
//!
//! Messages are HDFS's words, so the CLI prints them after its command name:
//! `mkdir: '/a/b': No such file or directory`.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

use dfs_proto::status::ErrorKind;

use crate::config::ConfigError;
use crate::txn::{BlockId, BlockRecord, Zxid};

/// A file-system access right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read a file or list a directory.
    Read,
    /// Change a file or a directory's entries.
    Write,
    /// Traverse a directory.
    Execute,
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Access::Read => "READ",
            Access::Write => "WRITE",
            Access::Execute => "EXECUTE",
        })
    }
}

/// Everything a namenode operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path (or one of its ancestors) does not exist.
    #[error("'{path}': No such file or directory")]
    NotFound {
        /// The path as the caller gave it, normalised.
        path: String,
    },
    /// The path exists and the operation needs it not to.
    #[error("'{path}': File exists")]
    AlreadyExists {
        /// The existing path.
        path: String,
    },
    /// The caller lacks `access` on `inode`.
    #[error(
        "Permission denied: user={user}, access={access}, inode=\"{inode}\":{owner}:{group}:{mode}"
    )]
    PermissionDenied {
        /// The caller.
        user: String,
        /// The access that was needed.
        access: Access,
        /// The inode's path.
        inode: String,
        /// The inode's owner.
        owner: String,
        /// The inode's group.
        group: String,
        /// The inode's mode as `ls` shows it, e.g. `drwxr-xr-x`.
        mode: String,
    },
    /// Only the owner or a superuser may do this (chmod, chown, set times).
    #[error("Permission denied: user={user} is not the owner of inode=\"{inode}\"")]
    NotOwner {
        /// The caller.
        user: String,
        /// The inode's path.
        inode: String,
    },
    /// Only a superuser may do this (e.g. give a file to another user).
    #[error("Permission denied: user={user} is not a superuser: {what}")]
    NotSuperuser {
        /// The caller.
        user: String,
        /// What was attempted.
        what: String,
    },
    /// A component of the path is a file, not a directory.
    #[error("'{path}': Not a directory")]
    NotADirectory {
        /// The file that stands where a directory is needed.
        path: String,
    },
    /// The path is a directory where a file is needed.
    #[error("'{path}': Is a directory")]
    IsADirectory {
        /// The directory.
        path: String,
    },
    /// A non-recursive delete of a directory that has entries.
    #[error("'{path}': Directory is not empty")]
    DirectoryNotEmpty {
        /// The directory.
        path: String,
    },
    /// The path is malformed (empty, relative, `.`/`..` components, too long).
    #[error("'{path}': Invalid path name: {reason}")]
    InvalidPath {
        /// The path as received (truncated when huge).
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A request field is out of range or malformed.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A client's call id came back with a request other than the one it
    /// was first applied for (a client bug, or a forged retry).
    #[error(
        "call {call} of client {client} was already used for a different request; a retry must repeat its request exactly, a new request needs a new call id"
    )]
    CallReused {
        /// Hex of the client id.
        client: String,
        /// The call id.
        call: u64,
    },
    /// A DatanodeProtocol request that does not prove the cluster secret.
    #[error("datanode request from {peer} refused: {reason}")]
    DatanodeUnauthenticated {
        /// Where it came from.
        peer: String,
        /// Why the proof failed.
        reason: String,
    },
    /// A registration under the id of a live datanode at another address.
    #[error(
        "datanode id {id} belongs to the live datanode at {live_at}; refusing its registration from {from} (a datanode that moved may register once it has been silent for the stale interval)"
    )]
    DatanodeIdInUse {
        /// The id.
        id: String,
        /// Where the live datanode of that id is.
        live_at: std::net::SocketAddr,
        /// Where the refused registration came from.
        from: std::net::SocketAddr,
    },
    /// The log ends before a zxid this journal is known to have made durable
    /// (its `seen_zxid` marker): records were lost.
    #[error(
        "journal {}: the log ends at zxid {last}, but this namenode durably wrote up to zxid {marked} (recorded in its seen_zxid file): txns were lost (a restored backup, a disk that dropped writes, files deleted by hand). Refusing to start without them. To recover, copy the journal directory of another namenode of the ensemble over this one, or start once with accept_shorter_journal = true in this namenode's config to accept the loss (the quorum then brings it up to date)",
        dir.display()
    )]
    JournalBehindMarker {
        /// The journal directory.
        dir: PathBuf,
        /// Where the log ends.
        last: Zxid,
        /// What the marker records.
        marked: Zxid,
    },
    /// Create over a file that another client (or, without overwrite, the
    /// same client) is still writing (HDFS `AlreadyBeingCreatedException`).
    #[error(
        "Failed to {op} {path} for {client}{} because this file lease is currently owned by {holder}{}",
        on(.client_addr), on(.holder_addr)
    )]
    AlreadyBeingCreated {
        /// HDFS's name of the refused operation: `CREATE_FILE` or `APPEND_FILE`.
        op: &'static str,
        /// The file.
        path: String,
        /// The client that asked.
        client: String,
        /// Where it asked from, when known.
        client_addr: Option<IpAddr>,
        /// The client writing the file.
        holder: String,
        /// Where the holder last renewed its lease from, when known.
        holder_addr: Option<IpAddr>,
    },
    /// Create over a file whose writer's lease passed its soft limit: the
    /// namenode has started recovering the file; retry shortly (HDFS
    /// `RecoveryInProgressException`).
    #[error(
        "Failed to {op} {path} for {client}{} because lease recovery is in progress (the lease of {holder} expired). Try again later.",
        on(.client_addr)
    )]
    RecoveryInProgress {
        /// HDFS's name of the refused operation: `CREATE_FILE` or `APPEND_FILE`.
        op: &'static str,
        /// The file.
        path: String,
        /// The client that asked.
        client: String,
        /// Where it asked from, when known.
        client_addr: Option<IpAddr>,
        /// The client whose lease expired.
        holder: String,
    },
    /// A write-path call from a client that does not hold the file's lease
    /// (HDFS `LeaseExpiredException`).
    #[error("No lease on {path}: {}", lease_state(.holder.as_deref(), .client))]
    LeaseMismatch {
        /// The file.
        path: String,
        /// The client writing the file; `None` when it is not open for writing.
        holder: Option<String>,
        /// The client that asked.
        client: String,
    },
    /// The block a client names as the file's last (`previous` of AddBlock,
    /// `last` of Complete) is not the file's last block, or has another
    /// generation stamp.
    #[error(
        "'{path}': the file's last block is {}, not {}",
        block_or_none(.expected.as_ref()),
        block_or_none(.got.as_ref())
    )]
    BlockMismatch {
        /// The file.
        path: String,
        /// The file's last block.
        expected: Option<BlockRecord>,
        /// What the client named.
        got: Option<BlockRecord>,
    },
    /// AbandonBlock or a generation stamp bump of a block that is not the file's last.
    #[error("'{path}': {block} is not the file's last block ({})", block_id_or_none(.last.as_ref()))]
    NotLastBlock {
        /// The file.
        path: String,
        /// What the client named.
        block: BlockId,
        /// The file's last block.
        last: Option<BlockId>,
    },
    /// A journal record failed its checksum or framing before the log's end.
    #[error("journal {file}: corrupt record at offset {offset}: {reason}")]
    JournalCorrupt {
        /// The segment file.
        file: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A snapshot file failed its checksum or could not be decoded.
    #[error("snapshot {file}: {reason}")]
    SnapshotCorrupt {
        /// The snapshot file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The journal could not make a transaction durable; the namenode must stop.
    #[error("journal failed: {reason}")]
    JournalFailed {
        /// The underlying failure.
        reason: String,
    },
    /// This namenode cannot serve the request: it is not the leader, or it
    /// leads without a quorum. The client retries at `leader` if known.
    #[error("{}", not_leader(leader.as_ref()))]
    NotLeader {
        /// The leader's client address, when one is known.
        leader: Option<std::net::SocketAddr>,
    },
    /// A logged transaction does not apply to the recovered namespace.
    #[error("replaying txn {zxid}: {reason}")]
    Replay {
        /// The transaction.
        zxid: Zxid,
        /// Why it does not apply or decode.
        reason: String,
    },
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An I/O error on the namenode's own disk.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Error {
    /// The kind a client acts on, or `None` for the namenode's own failures.
    pub fn kind(&self) -> Option<ErrorKind> {
        Some(match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::PermissionDenied { .. }
            | Error::NotOwner { .. }
            | Error::NotSuperuser { .. } => ErrorKind::PermissionDenied,
            Error::NotADirectory { .. } => ErrorKind::NotADirectory,
            Error::IsADirectory { .. } => ErrorKind::IsADirectory,
            Error::DirectoryNotEmpty { .. } => ErrorKind::DirectoryNotEmpty,
            Error::InvalidPath { .. }
            | Error::InvalidArgument { .. }
            | Error::CallReused { .. } => ErrorKind::InvalidArgument,
            Error::AlreadyBeingCreated { .. } => ErrorKind::LeaseHeld,
            Error::DatanodeIdInUse { .. } => ErrorKind::AlreadyExists,
            Error::RecoveryInProgress { .. } => ErrorKind::RecoveryInProgress,
            // No kind of their own yet: not retriable, the client must start over.
            Error::LeaseMismatch { .. }
            | Error::BlockMismatch { .. }
            | Error::NotLastBlock { .. } => ErrorKind::InvalidArgument,
            Error::JournalFailed { .. } => ErrorKind::Unavailable,
            Error::NotLeader { .. } => ErrorKind::NotLeader,
            Error::DatanodeUnauthenticated { .. }
            | Error::JournalBehindMarker { .. }
            | Error::JournalCorrupt { .. }
            | Error::SnapshotCorrupt { .. }
            | Error::Replay { .. }
            | Error::Config(_)
            | Error::Io(_) => {
                return None;
            }
        })
    }
}

fn not_leader(leader: Option<&std::net::SocketAddr>) -> String {
    match leader {
        Some(leader) => format!("this namenode is not the leader; the leader is {leader}"),
        None => {
            "no leader: an election is under way or no quorum of namenodes is reachable".to_owned()
        }
    }
}

/// HDFS's " on ADDRESS" after a client name, when the address is known.
fn on(addr: &Option<IpAddr>) -> String {
    addr.map(|a| format!(" on {a}")).unwrap_or_default()
}

fn lease_state(holder: Option<&str>, client: &str) -> String {
    match holder {
        None => "File is not open for writing.".to_owned(),
        Some(holder) => format!("lease held by {holder}, not by {client}."),
    }
}

fn block_or_none(block: Option<&BlockRecord>) -> String {
    block.map_or_else(|| "none".to_owned(), BlockRecord::to_string)
}

fn block_id_or_none(block: Option<&BlockId>) -> String {
    block.map_or_else(|| "none".to_owned(), BlockId::to_string)
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        if let Error::DatanodeUnauthenticated { .. } = &e {
            return tonic::Status::unauthenticated(e.to_string());
        }
        let mut status = match e.kind() {
            Some(kind) => kind.status(e.to_string()),
            None => tonic::Status::internal(format!("namenode: {e}")),
        };
        if let Error::NotLeader {
            leader: Some(leader),
        } = &e
            && let Ok(hint) = leader.to_string().parse()
        {
            status
                .metadata_mut()
                .insert(dfs_proto::status::LEADER_HINT_KEY, hint);
        }
        status
    }
}
