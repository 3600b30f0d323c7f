//! The datanode's error type.

use std::io;
use std::path::PathBuf;

/// Everything that stops a datanode.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file is unreadable, malformed or out of range.
    #[error("config {path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No usable cluster secret (see `DatanodeConfig::cluster_secret`).
    #[error("{reason}")]
    ClusterSecret {
        /// What is wrong.
        reason: String,
    },
    /// The persisted datanode id is unreadable.
    #[error("datanode id file {path} is corrupt: {content:?}")]
    CorruptIdentity {
        /// The file.
        path: PathBuf,
        /// What it holds (truncated).
        content: String,
    },
    /// The block store in the data dir cannot be opened.
    #[error("block store in {data_dir}: {reason}")]
    BlockStore {
        /// The data dir.
        data_dir: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The DataTransfer server failed.
    #[error("data transfer server: {0}")]
    Serve(String),
    /// An I/O error on the datanode's own disk or sockets.
    #[error(transparent)]
    Io(#[from] io::Error),
}
