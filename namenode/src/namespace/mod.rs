//! TEMPORARY STUB (replaced by the real namespace module before commit).
#![allow(dead_code, unused_variables)]
use crate::error::Error;
use crate::txn::{PermissionStatus, Txn};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) user: String,
    pub(crate) groups: Vec<String>,
}
#[derive(Debug, Clone)]
pub(crate) struct PermissionPolicy {
    pub(crate) superuser: String,
    pub(crate) supergroup: String,
    pub(crate) umask: u16,
}
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Mkdirs {
        path: String,
        mode: Option<u16>,
        create_parent: bool,
    },
    Create {
        path: String,
        mode: Option<u16>,
        overwrite: bool,
        create_parent: bool,
        replication: u16,
        block_size: u64,
    },
    Delete {
        path: String,
        recursive: bool,
    },
    Rename {
        src: String,
        dst: String,
    },
    SetPermission {
        path: String,
        mode: u16,
    },
    SetOwner {
        path: String,
        owner: Option<String>,
        group: Option<String>,
    },
    SetReplication {
        path: String,
        replication: u16,
    },
    SetTimes {
        path: String,
        mtime_ms: Option<u64>,
        atime_ms: Option<u64>,
    },
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Directory,
    File,
}
#[derive(Debug, Clone)]
pub(crate) struct FileStatus {
    pub(crate) path: String,
    pub(crate) kind: FileKind,
    pub(crate) perm: PermissionStatus,
    pub(crate) length: u64,
    pub(crate) mtime_ms: u64,
    pub(crate) atime_ms: u64,
    pub(crate) replication: u16,
    pub(crate) block_size: u64,
    pub(crate) children: u64,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Namespace {}
impl Namespace {
    pub(crate) fn new(policy: PermissionPolicy) -> Self {
        Namespace {}
    }
    pub(crate) fn set_policy(&mut self, policy: PermissionPolicy) {}
    pub(crate) fn check(
        &self,
        op: &Op,
        caller: &Caller,
        now_ms: u64,
    ) -> Result<Option<Txn>, Error> {
        Ok(None)
    }
    pub(crate) fn apply(&mut self, txn: &Txn) -> Result<(), Error> {
        Ok(())
    }
    pub(crate) fn file_info(&self, path: &str, caller: &Caller) -> Result<FileStatus, Error> {
        Err(Error::NotFound { path: path.into() })
    }
    pub(crate) fn list(
        &self,
        path: &str,
        caller: &Caller,
        start_after: &str,
        limit: usize,
    ) -> Result<(Vec<FileStatus>, bool), Error> {
        Ok((vec![], false))
    }
    pub(crate) fn digest(&self) -> u64 {
        0
    }
    pub(crate) fn inode_count(&self) -> u64 {
        1
    }
}
