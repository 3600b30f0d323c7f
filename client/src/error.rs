//! The client's error type: a server's answer mapped back from `tonic::Status`.

use std::path::PathBuf;

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
    /// No namenode could be reached.
    #[error("cannot reach namenode {namenode}: {reason}")]
    Unreachable {
        /// The address tried last.
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
                    namenode: namenode.to_owned(),
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
