//! Error kinds that travel in `tonic::Status` metadata, so a client can act on
//! an error without parsing its human-readable message.

use std::fmt;
use std::str::FromStr;

/// Metadata key holding an [`ErrorKind`].
pub const ERROR_KIND_KEY: &str = "dfs-error-kind";
/// Metadata key holding the current leader's client address, sent with `NotLeader`.
pub const LEADER_HINT_KEY: &str = "dfs-leader-hint";

/// What went wrong, in terms a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The path does not exist.
    NotFound,
    /// The path exists and the operation needed it not to.
    AlreadyExists,
    /// The caller lacks a permission.
    PermissionDenied,
    /// A path component is a file where a directory is needed.
    NotADirectory,
    /// The path is a directory where a file is needed.
    IsADirectory,
    /// A non-recursive delete of a non-empty directory.
    DirectoryNotEmpty,
    /// The request is malformed (bad path, bad field value).
    InvalidArgument,
    /// This namenode cannot serve writes now; retry at the leader.
    NotLeader,
    /// The node is out of space or otherwise cannot take the request now.
    Unavailable,
    /// The file's previous writer lost its lease and the namenode is
    /// recovering it (HDFS `RecoveryInProgressException`): retry shortly.
    RecoveryInProgress,
    /// Another client holds the file's lease: it is being written (HDFS
    /// `AlreadyBeingCreatedException`).
    LeaseHeld,
}

impl ErrorKind {
    /// The kind's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not-found",
            ErrorKind::AlreadyExists => "already-exists",
            ErrorKind::PermissionDenied => "permission-denied",
            ErrorKind::NotADirectory => "not-a-directory",
            ErrorKind::IsADirectory => "is-a-directory",
            ErrorKind::DirectoryNotEmpty => "directory-not-empty",
            ErrorKind::InvalidArgument => "invalid-argument",
            ErrorKind::NotLeader => "not-leader",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::RecoveryInProgress => "recovery-in-progress",
            ErrorKind::LeaseHeld => "lease-held",
        }
    }

    /// The gRPC code that carries this kind.
    pub fn code(self) -> tonic::Code {
        match self {
            ErrorKind::NotFound => tonic::Code::NotFound,
            ErrorKind::AlreadyExists | ErrorKind::LeaseHeld => tonic::Code::AlreadyExists,
            ErrorKind::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorKind::NotADirectory | ErrorKind::IsADirectory | ErrorKind::DirectoryNotEmpty => {
                tonic::Code::FailedPrecondition
            }
            ErrorKind::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorKind::NotLeader | ErrorKind::Unavailable | ErrorKind::RecoveryInProgress => {
                tonic::Code::Unavailable
            }
        }
    }

    /// A status of this kind with a human-readable message.
    pub fn status(self, message: impl Into<String>) -> tonic::Status {
        let mut status = tonic::Status::new(self.code(), message);
        status.metadata_mut().insert(
            ERROR_KIND_KEY,
            tonic::metadata::MetadataValue::from_static(self.as_str()),
        );
        status
    }

    /// The kind a status carries, if a dfs server set one.
    pub fn of(status: &tonic::Status) -> Option<ErrorKind> {
        status
            .metadata()
            .get(ERROR_KIND_KEY)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse().ok())
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown error kind name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error kind {0:?}")]
pub struct UnknownErrorKind(String);

impl FromStr for ErrorKind {
    type Err = UnknownErrorKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const ALL: [ErrorKind; 11] = [
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::PermissionDenied,
            ErrorKind::NotADirectory,
            ErrorKind::IsADirectory,
            ErrorKind::DirectoryNotEmpty,
            ErrorKind::InvalidArgument,
            ErrorKind::NotLeader,
            ErrorKind::Unavailable,
            ErrorKind::RecoveryInProgress,
            ErrorKind::LeaseHeld,
        ];
        ALL.into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownErrorKind(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_survives_a_status_round_trip() {
        let status = ErrorKind::DirectoryNotEmpty.status("`/a': Directory is not empty");
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert_eq!(ErrorKind::of(&status), Some(ErrorKind::DirectoryNotEmpty));
        assert_eq!(ErrorKind::of(&tonic::Status::internal("x")), None);
    }
}
