//! Hadoop's WebHDFS error body, `{"RemoteException": {"exception",
//! "javaClassName", "message"}}`, with the status code Hadoop sends for each
//! exception class. Both HTTP faces map every failure through
//! [`RemoteException::from_kind`], so a refusal reads the same whether the
//! namenode or a datanode (acting as a client) met it.

use crate::status::ErrorKind;

/// One Hadoop exception as WebHDFS sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteException {
    /// The HTTP status code.
    pub status: u16,
    /// The class's simple name (`FileNotFoundException`): what clients match on.
    pub exception: &'static str,
    /// The fully qualified class name.
    pub java_class_name: &'static str,
    /// Hadoop's wording where clients search it ("does not exist").
    pub message: String,
}

impl RemoteException {
    fn new(
        status: u16,
        exception: &'static str,
        java_class_name: &'static str,
        message: impl Into<String>,
    ) -> Self {
        RemoteException {
            status,
            exception,
            java_class_name,
            message: message.into(),
        }
    }

    /// A malformed request: bad parameter, bad path (400).
    pub fn illegal_argument(message: impl Into<String>) -> Self {
        Self::new(
            400,
            "IllegalArgumentException",
            "java.lang.IllegalArgumentException",
            message,
        )
    }

    /// An identity that cannot be accepted (401).
    pub fn security(message: impl Into<String>) -> Self {
        Self::new(
            401,
            "SecurityException",
            "java.lang.SecurityException",
            message,
        )
    }

    /// A permission check failed (403).
    pub fn access_control(message: impl Into<String>) -> Self {
        Self::new(
            403,
            "AccessControlException",
            "org.apache.hadoop.security.AccessControlException",
            message,
        )
    }

    /// The path does not exist (404).
    pub fn file_not_found(message: impl Into<String>) -> Self {
        Self::new(
            404,
            "FileNotFoundException",
            "java.io.FileNotFoundException",
            message,
        )
    }

    /// The path exists and must not (403).
    pub fn file_already_exists(message: impl Into<String>) -> Self {
        Self::new(
            403,
            "FileAlreadyExistsException",
            "org.apache.hadoop.fs.FileAlreadyExistsException",
            message,
        )
    }

    /// This namenode does not serve now: HdfsCLI then tries its next URL (403).
    pub fn standby() -> Self {
        Self::new(
            403,
            "StandbyException",
            "org.apache.hadoop.ipc.StandbyException",
            "Operation category READ is not supported in state standby",
        )
    }

    /// Any other I/O failure (403, as Hadoop sends IOExceptions).
    pub fn io(message: impl Into<String>) -> Self {
        Self::new(403, "IOException", "java.io.IOException", message)
    }

    /// A server-side failure that is nobody's input (500).
    pub fn runtime(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "RuntimeException",
            "java.lang.RuntimeException",
            message,
        )
    }

    /// The exception for a refusal of `kind` (or, without one, of gRPC
    /// `code`) with the server's `message`, met on `path`.
    pub fn from_kind(
        kind: Option<ErrorKind>,
        code: tonic::Code,
        message: &str,
        path: &str,
    ) -> Self {
        match kind {
            Some(ErrorKind::NotFound) => {
                Self::file_not_found(format!("File {path} does not exist."))
            }
            Some(ErrorKind::AlreadyExists) => Self::file_already_exists(message),
            Some(ErrorKind::LeaseHeld) => Self::new(
                403,
                "AlreadyBeingCreatedException",
                "org.apache.hadoop.hdfs.protocol.AlreadyBeingCreatedException",
                message,
            ),
            Some(ErrorKind::PermissionDenied) => Self::access_control(message),
            Some(ErrorKind::NotADirectory) => Self::new(
                403,
                "ParentNotDirectoryException",
                "org.apache.hadoop.fs.ParentNotDirectoryException",
                message,
            ),
            // HDFS's open of a directory: "Path is not a file".
            Some(ErrorKind::IsADirectory) => {
                Self::file_not_found(format!("Path is not a file: {path}"))
            }
            Some(ErrorKind::DirectoryNotEmpty) => Self::new(
                403,
                "PathIsNotEmptyDirectoryException",
                "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException",
                format!("`{path} is non empty': Directory is not empty"),
            ),
            Some(ErrorKind::InvalidArgument) => Self::illegal_argument(message),
            Some(ErrorKind::NotLeader) => Self::standby(),
            Some(ErrorKind::RecoveryInProgress) => Self::new(
                403,
                "RecoveryInProgressException",
                "org.apache.hadoop.hdfs.protocol.RecoveryInProgressException",
                message,
            ),
            Some(ErrorKind::Unavailable) => Self::io(message),
            None => match code {
                tonic::Code::Unauthenticated => Self::security(message),
                tonic::Code::PermissionDenied => Self::access_control(message),
                tonic::Code::NotFound => {
                    Self::file_not_found(format!("File {path} does not exist."))
                }
                tonic::Code::InvalidArgument | tonic::Code::OutOfRange => {
                    Self::illegal_argument(message)
                }
                tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled
                | tonic::Code::Aborted
                | tonic::Code::ResourceExhausted => Self::io(message),
                _ => Self::runtime(message),
            },
        }
    }

    /// [`RemoteException::from_kind`] of a gRPC status.
    pub fn from_status(status: &tonic::Status, path: &str) -> Self {
        Self::from_kind(ErrorKind::of(status), status.code(), status.message(), path)
    }

    /// The JSON body.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "RemoteException": {
                "exception": self.exception,
                "javaClassName": self.java_class_name,
                "message": self.message,
            }
        })
        .to_string()
    }
}

impl std::fmt::Display for RemoteException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.exception, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_path_reads_as_hadoop_words_it() {
        let status = ErrorKind::NotFound.status("'/x': No such file or directory");
        let e = RemoteException::from_status(&status, "/x");
        assert_eq!(e.status, 404);
        assert_eq!(e.exception, "FileNotFoundException");
        assert_eq!(e.message, "File /x does not exist.");
        let json: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(
            json["RemoteException"]["javaClassName"],
            "java.io.FileNotFoundException"
        );
        assert_eq!(
            json["RemoteException"]["message"],
            "File /x does not exist."
        );
    }

    #[test]
    fn every_kind_gets_hadoops_status_code() {
        let cases = [
            (ErrorKind::AlreadyExists, 403, "FileAlreadyExistsException"),
            (ErrorKind::LeaseHeld, 403, "AlreadyBeingCreatedException"),
            (ErrorKind::PermissionDenied, 403, "AccessControlException"),
            (ErrorKind::InvalidArgument, 400, "IllegalArgumentException"),
            (ErrorKind::NotLeader, 403, "StandbyException"),
            (ErrorKind::IsADirectory, 404, "FileNotFoundException"),
            (ErrorKind::Unavailable, 403, "IOException"),
            (
                ErrorKind::DirectoryNotEmpty,
                403,
                "PathIsNotEmptyDirectoryException",
            ),
        ];
        for (kind, status, exception) in cases {
            let e = RemoteException::from_status(&kind.status("m"), "/p");
            assert_eq!((e.status, e.exception), (status, exception), "{kind}");
        }
        let internal = RemoteException::from_status(&tonic::Status::internal("boom"), "/p");
        assert_eq!(
            (internal.status, internal.exception),
            (500, "RuntimeException")
        );
        let unauthenticated =
            RemoteException::from_status(&tonic::Status::unauthenticated("who"), "/p");
        assert_eq!(unauthenticated.status, 401);
    }

    #[test]
    fn the_message_is_json_escaped() {
        let e = RemoteException::illegal_argument("a \"quoted\"\nline");
        let json: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(json["RemoteException"]["message"], "a \"quoted\"\nline");
    }
}
