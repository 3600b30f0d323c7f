//! Metadata transactions: the only way the namespace changes.
//!
//! A [`Txn`] carries every value its effect depends on (times, owners, modes
//! after the umask), so `Namespace::apply` is deterministic: the same log
//! always rebuilds the same tree. Paths are already normalised (`/a/b`).

use serde::{Deserialize, Serialize};

pub use dfs_proto::ids::{BlockId, Epoch, GenStamp, Zxid};

/// Owner, group and mode bits of an inode.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PermissionStatus {
    /// The owning user.
    pub owner: String,
    /// The owning group.
    pub group: String,
    /// Mode bits (`0o7777` at most; sticky bit honoured on directories).
    pub mode: u16,
}

/// A directory created by [`Txn::Mkdirs`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDir {
    /// Normalised absolute path.
    pub path: String,
    /// Its permissions, the umask already applied.
    pub perm: PermissionStatus,
}

/// A block of a file as the namespace records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlockRecord {
    /// Allocated by the namenode, never reused.
    pub id: BlockId,
    /// Bumped by pipeline recovery; replicas with an older stamp are stale.
    pub gen_stamp: GenStamp,
    /// Bytes; 0 until the block is committed (by the next `AddBlock` or `Complete`).
    pub length: u64,
}

impl std::fmt::Display for BlockRecord {
    /// HDFS's block name with its generation stamp: `blk_1073741825_1001`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.id, self.gen_stamp)
    }
}

/// The last block of a file an append reopens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reopen {
    /// The stamp it had, which its finalized replicas carry.
    pub previous: GenStamp,
    /// Its new stamp, from the namespace's counter.
    pub gen_stamp: GenStamp,
}

/// One change to the namespace, as it is journaled and replicated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Txn {
    /// Creates directories, parents first.
    Mkdirs {
        /// In creation order; each one's parent exists when it is applied.
        dirs: Vec<NewDir>,
        /// Milliseconds since the Unix epoch.
        mtime_ms: u64,
    },
    /// Creates an empty file, replacing an existing file when `overwrite` is set.
    Create {
        /// Normalised absolute path.
        path: String,
        /// Permissions, umask applied.
        perm: PermissionStatus,
        /// Whether an existing file at `path` is replaced.
        overwrite: bool,
        /// Target replica count.
        replication: u16,
        /// Bytes per block.
        block_size: u64,
        /// Milliseconds since the Unix epoch.
        mtime_ms: u64,
        /// The client that holds the new file's lease until `Complete`.
        client: String,
    },
    /// Commits the file's last block (`previous`) and appends a new one.
    AddBlock {
        /// Normalised absolute path of a file under construction.
        path: String,
        /// The file's last block with its final length; `None` for the first block.
        previous: Option<BlockRecord>,
        /// The new block: id and generation stamp from the namespace's counters, length 0.
        block: BlockRecord,
    },
    /// Reopens a complete file for `client` (HDFS append): the file is under
    /// construction again, and its last block, when `reopen` names a stamp,
    /// takes that generation stamp and is written on from its length.
    Append {
        /// Normalised absolute path of a complete file.
        path: String,
        /// The client that holds the file's lease until `Complete`.
        client: String,
        /// The last block's generation stamps; `None` when the next write
        /// starts a new block.
        reopen: Option<Reopen>,
    },
    /// Drops the file's last block (its pipeline could not be set up).
    AbandonBlock {
        /// Normalised absolute path of a file under construction.
        path: String,
        /// The file's last block.
        block: BlockId,
    },
    /// Gives the file's last block a new generation stamp (pipeline recovery).
    BumpGenStamp {
        /// Normalised absolute path of a file under construction.
        path: String,
        /// The file's last block.
        block: BlockId,
        /// The new stamp, from the namespace's counter.
        gen_stamp: GenStamp,
    },
    /// Commits the last block's length, releases the lease and sets the mtime.
    Complete {
        /// Normalised absolute path of a file under construction.
        path: String,
        /// The file's last block with its final length; `None` for an empty file.
        last: Option<BlockRecord>,
        /// Milliseconds since the Unix epoch (the file's new mtime).
        mtime_ms: u64,
    },
    /// Removes a file or a directory with everything below it.
    Delete {
        /// Normalised absolute path.
        path: String,
        /// Milliseconds since the Unix epoch (the parent's new mtime).
        mtime_ms: u64,
    },
    /// Moves `src` to `dst`; `dst` does not exist and its parent is a directory.
    Rename {
        /// Normalised absolute source path.
        src: String,
        /// Normalised absolute destination path.
        dst: String,
        /// Milliseconds since the Unix epoch (both parents' new mtime).
        mtime_ms: u64,
    },
    /// Changes mode bits.
    SetPermission {
        /// Normalised absolute path.
        path: String,
        /// New mode bits.
        mode: u16,
    },
    /// Changes owner and/or group.
    SetOwner {
        /// Normalised absolute path.
        path: String,
        /// New owner, if changed.
        owner: Option<String>,
        /// New group, if changed.
        group: Option<String>,
    },
    /// Changes a file's target replica count.
    SetReplication {
        /// Normalised absolute path of a file.
        path: String,
        /// New replica count.
        replication: u16,
    },
    /// Changes modification and/or access time.
    SetTimes {
        /// Normalised absolute path.
        path: String,
        /// New mtime in ms since the Unix epoch, if changed.
        mtime_ms: Option<u64>,
        /// New atime in ms since the Unix epoch, if changed.
        atime_ms: Option<u64>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_record_shows_as_hdfs_names_it() {
        let block = BlockRecord {
            id: BlockId(1_073_741_825),
            gen_stamp: GenStamp(1001),
            length: 5,
        };
        assert_eq!(block.to_string(), "blk_1073741825_1001");
    }
}
