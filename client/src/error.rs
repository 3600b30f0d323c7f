//! The client's error type: a server's answer mapped back from `tonic::Status`
//! (after `failover` has retried what another namenode could answer).

use std::path::PathBuf;

use dfs_proto::ids::BlockId;
use dfs_proto::status::ErrorKind;

/// Everything a client operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The namenode refused the operation; `message` is in HDFS's words.
    #[error("{message}")]
    Refused {
        /// What kind of refusal, when the server said.
        kind: Option<ErrorKind>,
        /// The server's message.
        message: String,
    },
    /// No namenode that leads could be reached before the failover timeout.
    #[error("cannot reach a leading namenode (tried {}): {reason}", namenodes.join(", "))]
    Unreachable {
        /// Every namenode tried, in the order first tried.
        namenodes: Vec<String>,
        /// Why the last attempt failed.
        reason: String,
    },
    /// One particular namenode could not be reached or did not answer in
    /// time (asked directly, not failing over: `dfs admin ha-status`).
    #[error("namenode {namenode}: {reason}")]
    Namenode {
        /// The namenode's address.
        namenode: String,
        /// Why.
        reason: String,
    },
    /// The client configuration is unusable.
    #[error("config {path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A datanode could not be reached or broke off a transfer.
    #[error("datanode {datanode}: {reason}")]
    Datanode {
        /// The datanode's transfer address.
        datanode: String,
        /// Why.
        reason: String,
    },
    /// A replica's data disagreed with its checksum.
    #[error("checksum mismatch in {block} at offset {offset} from datanode {datanode}")]
    ChecksumMismatch {
        /// The block.
        block: BlockId,
        /// Offset within the block of the first bad chunk.
        offset: u64,
        /// The datanode (transfer address) that served the bad data.
        datanode: String,
    },
    /// Every replica of a block failed to serve it.
    #[error("could not read {block} of '{path}' from any replica: {reasons}")]
    AllReplicasFailed {
        /// The file.
        path: String,
        /// The block.
        block: BlockId,
        /// What went wrong with each replica tried, `; `-separated.
        reasons: String,
    },
    /// A write pipeline could not be kept alive.
    #[error("writing {block} of '{path}' failed: {reason}")]
    PipelineFailed {
        /// The file.
        path: String,
        /// The block.
        block: BlockId,
        /// Why the pipeline could not be recovered.
        reason: String,
    },
    /// The namenode kept answering "not yet" to Complete.
    #[error(
        "could not complete file '{path}': the last block did not reach its minimum replicas within {waited_secs} s"
    )]
    CompleteTimedOut {
        /// The file.
        path: String,
        /// Seconds spent retrying.
        waited_secs: u64,
    },
    /// The stream was used after it failed or was closed.
    #[error("stream of '{path}' is closed")]
    StreamClosed {
        /// The file.
        path: String,
    },
    /// A local file the command reads or writes, in HDFS shell's words
    /// (`'x': No such file or directory`).
    #[error("'{path}': {reason}")]
    Local {
        /// The local path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A command-line argument is malformed.
    #[error("{0}")]
    Usage(String),
    /// Local I/O failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The kind of a server refusal, if any.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Refused { kind, .. } => *kind,
            _ => None,
        }
    }

    /// Maps a status from `namenode` back into an error.
    pub(crate) fn from_status(status: tonic::Status, namenode: &str) -> Self {
        match ErrorKind::of(&status) {
            Some(kind) => Error::Refused {
                kind: Some(kind),
                message: status.message().to_owned(),
            },
            None if matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
            ) =>
            {
                Error::Unreachable {
                    namenodes: vec![namenode.to_owned()],
                    reason: status.message().to_owned(),
                }
            }
            None => Error::Refused {
                kind: None,
                message: status.message().to_owned(),
            },
        }
    }
}
