//! The namespace: the in-memory inode tree of directories and files.
//!
//! It owns the tree, the permission and existence checks that guard it, and
//! the only code that changes it. A request goes through two steps:
//!
//! ```text
//!   Op + Caller --check(&self)--> Option<Txn> --journal, quorum commit--> apply(&mut self)
//!               (validate, permissions,         (the namespace is       (deterministic:
//!                existence; no change)           not involved)           same log, same tree)
//! ```
//!
//! Files carry their blocks (id, generation stamp, committed length) and,
//! while a client writes them, that client's name as lease holder. New block
//! ids and stamps come from counters kept in the tree, so replay allocates
//! the same ones; `apply` returns the blocks it frees (delete, overwrite,
//! abandon) for the caller to delete from datanodes.
//!
//! It must not touch the journal, the network, the clock or the datanodes:
//! time comes in as an argument and is recorded in the `Txn`, and block
//! locations are soft state kept elsewhere. The permission policy is
//! configuration, not state: it is not part of the checkpoint image.
//!
//! - `path`: validation and normalisation of absolute paths.
//! - `permission`: HDFS's permission checker and mode strings.
//! - `tree`: the inode arena, its walks, its digest and image validation.
//! - `check`: turns an [`Op`] into a [`Txn`](crate::txn::Txn) or an error.
//! - `apply`: replays a [`Txn`](crate::txn::Txn) onto the tree.

mod apply;
mod check;
mod path;
mod permission;
mod tree;

#[cfg(test)]
mod append_test;
#[cfg(test)]
mod blocks_test;
#[cfg(test)]
mod lease_test;
#[cfg(test)]
mod namespace_test;

use serde::{Deserialize, Serialize};

use crate::error::{Access, Error};
use crate::txn::{BlockId, BlockRecord, GenStamp, PermissionStatus};

use self::path::{FsPath, join};
use self::permission::Checker;
use self::tree::{Body, File, Inode, InodeId, Tree};

/// Who is asking: HDFS "simple" identity, sent with every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The user name.
    pub(crate) user: String,
    /// The groups the user belongs to.
    pub(crate) groups: Vec<String>,
}

/// Who is a superuser and which umask applies to new inodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PermissionPolicy {
    /// This user bypasses permission checks (HDFS: the namenode's own user).
    pub(crate) superuser: String,
    /// Members of this group bypass permission checks (`dfs.permissions.superusergroup`).
    pub(crate) supergroup: String,
    /// Bits cleared from a new inode's requested mode (`fs.permissions.umask-mode`).
    pub(crate) umask: u16,
}

/// A request to change the namespace.
///
/// Serialize only for the retry cache's request digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) enum Op {
    /// Creates a directory (mkdir).
    Mkdirs {
        /// Absolute path of the directory.
        path: String,
        /// Requested mode before the umask; `None` = `0o777`.
        mode: Option<u16>,
        /// Create missing parents, and succeed if the directory exists (`-p`).
        create_parent: bool,
    },
    /// Creates an empty file.
    Create {
        /// Absolute path of the file.
        path: String,
        /// Requested mode before the umask; `None` = `0o666`.
        mode: Option<u16>,
        /// Replace an existing file.
        overwrite: bool,
        /// Create missing parents.
        create_parent: bool,
        /// Target replica count, `1..=512`.
        replication: u16,
        /// Bytes per block: a multiple of 512 from 1 MiB to 1 TiB.
        block_size: u64,
        /// The client that will write the file and holds its lease.
        client: String,
    },
    /// Reopens a complete file for writing at its end (HDFS append).
    Append {
        /// Absolute path of a complete file.
        path: String,
        /// The client that will write the file and holds its lease.
        client: String,
        /// Start a new block even when the last one has room (the file then
        /// holds a short block in the middle).
        new_block: bool,
    },
    /// Commits the last block of a file being written and allocates the next.
    AddBlock {
        /// Absolute path of a file under construction.
        path: String,
        /// The lease holder.
        client: String,
        /// The file's last block with its final length; `None` for the first block.
        previous: Option<BlockRecord>,
    },
    /// Drops the last block of a file being written (its pipeline failed to start).
    AbandonBlock {
        /// Absolute path of a file under construction.
        path: String,
        /// The lease holder.
        client: String,
        /// The file's last block.
        block: BlockId,
    },
    /// Gives the last block of a file being written a new generation stamp
    /// (pipeline recovery), so replicas left behind are recognisably stale.
    BumpGenStamp {
        /// Absolute path of a file under construction.
        path: String,
        /// The lease holder.
        client: String,
        /// The file's last block.
        block: BlockId,
    },
    /// Commits the last block's length and closes the file (releases the lease).
    Complete {
        /// Absolute path of a file under construction.
        path: String,
        /// The lease holder.
        client: String,
        /// The file's last block with its final length; `None` for an empty file.
        last: Option<BlockRecord>,
    },
    /// Deletes a file or a directory.
    Delete {
        /// Absolute path; not `/`.
        path: String,
        /// Also delete a non-empty directory's contents.
        recursive: bool,
    },
    /// Moves `src` to `dst`, which must not exist.
    Rename {
        /// Absolute path of what moves; not `/`.
        src: String,
        /// Its new absolute path, whose parent is an existing directory.
        dst: String,
    },
    /// Changes mode bits (chmod).
    SetPermission {
        /// Absolute path.
        path: String,
        /// New mode, at most `0o7777`.
        mode: u16,
    },
    /// Changes owner and/or group (chown, chgrp).
    SetOwner {
        /// Absolute path.
        path: String,
        /// New owner (superuser only), if changed.
        owner: Option<String>,
        /// New group (the owner must be a member), if changed.
        group: Option<String>,
    },
    /// Changes a file's replica count; ignored for directories.
    SetReplication {
        /// Absolute path.
        path: String,
        /// New replica count, `1..=512`.
        replication: u16,
    },
    /// Changes modification and/or access time.
    SetTimes {
        /// Absolute path.
        path: String,
        /// New mtime in ms since the Unix epoch, if changed.
        mtime_ms: Option<u64>,
        /// New atime in ms since the Unix epoch, if changed.
        atime_ms: Option<u64>,
    },
}

/// Whether an inode is a directory or a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// A directory.
    Directory,
    /// A file.
    File,
}

/// What `stat` and `ls` show about one inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileStatus {
    /// Normalised absolute path.
    pub(crate) path: String,
    /// Directory or file.
    pub(crate) kind: FileKind,
    /// Owner, group and mode.
    pub(crate) perm: PermissionStatus,
    /// Bytes (0 for directories).
    pub(crate) length: u64,
    /// Modification time, ms since the Unix epoch.
    pub(crate) mtime_ms: u64,
    /// Access time, ms since the Unix epoch.
    pub(crate) atime_ms: u64,
    /// Target replica count (0 for directories).
    pub(crate) replication: u16,
    /// Bytes per block (0 for directories).
    pub(crate) block_size: u64,
    /// Number of entries (0 for files).
    pub(crate) children: u64,
}

/// Totals of a file or a directory tree (HDFS `ContentSummary`, without quotas).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ContentSummary {
    /// Bytes in the files.
    pub(crate) length: u64,
    /// Files.
    pub(crate) file_count: u64,
    /// Directories, the top one included when it is one.
    pub(crate) directory_count: u64,
    /// Bytes of every replica: the sum of length × replication.
    pub(crate) space_consumed: u64,
}

/// A file's blocks as a reader or fsck sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileBlocks {
    /// Bytes in the file (the last block of a file under construction counts
    /// its recorded length, 0 until committed).
    pub(crate) length: u64,
    /// Whether a client is still writing the file.
    pub(crate) under_construction: bool,
    /// The client writing the file (its lease holder), while under construction.
    pub(crate) lease_holder: Option<String>,
    /// When the last block is a finalized one an append reopened (its
    /// recorded length is what it held then): its replicas' earlier stamp.
    pub(crate) reopened_from: Option<GenStamp>,
    /// Target replica count.
    pub(crate) replication: u16,
    /// The blocks asked for, in file order, each with the offset of its first
    /// byte in the file.
    pub(crate) blocks: Vec<(u64, BlockRecord)>,
}

/// The file a block belongs to, for block reports and the replication monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockOwner {
    /// The block as the namespace records it.
    pub(crate) record: BlockRecord,
    /// The file's target replica count.
    pub(crate) replication: u16,
    /// The file's block size in bytes.
    pub(crate) block_size: u64,
    /// Whether this is the last block of a file under construction (its
    /// replicas may still be being written, and its length is not final).
    pub(crate) is_last_under_construction: bool,
    /// For the last block of a file being appended to, reopened from a
    /// finalized block: the stamp its finalized replicas still carry.
    pub(crate) reopened_from: Option<GenStamp>,
    /// The file's absolute path now.
    pub(crate) path: String,
}

/// A file under construction, for the lease monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenFile {
    /// The file's absolute path now.
    pub(crate) path: String,
    /// The client writing it.
    pub(crate) holder: String,
}

/// What [`Namespace::census`] counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Census {
    pub(crate) files: u64,
    /// The root included.
    pub(crate) directories: u64,
    pub(crate) blocks: u64,
    pub(crate) files_under_construction: u64,
}

/// The inode tree plus the policy its checks use; serialises as the
/// checkpoint image (the tree only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Namespace {
    tree: Tree,
    /// Configuration, not state: set again after loading an image.
    #[serde(skip)]
    policy: PermissionPolicy,
}

impl Namespace {
    /// An empty namespace: root `/` owned by `policy.superuser:policy.supergroup`,
    /// mode `0o755`, mtime 0.
    pub(crate) fn new(policy: PermissionPolicy) -> Self {
        let root = Inode::directory(
            PermissionStatus {
                owner: policy.superuser.clone(),
                group: policy.supergroup.clone(),
                mode: 0o755,
            },
            0,
        );
        Namespace {
            tree: Tree::new(root),
            policy,
        }
    }

    /// Replaces the policy, e.g. after loading an image (which has none:
    /// until this is called nobody is a superuser and the umask is 0).
    pub(crate) fn set_policy(&mut self, policy: PermissionPolicy) {
        self.policy = policy;
    }

    /// The status of the file or directory at `path`; needs EXECUTE on its ancestors.
    ///
    /// # Errors
    /// `InvalidPath`, `InvalidArgument` (caller), `PermissionDenied`,
    /// `NotADirectory` (a file in the path), `NotFound`.
    pub(crate) fn file_info(&self, path: &str, caller: &Caller) -> Result<FileStatus, Error> {
        let path = FsPath::parse(path)?;
        let checker = Checker::new(caller, &self.policy)?;
        let (_, inode) = self.resolve_existing(&checker, &path)?;
        Ok(status(path.as_str().to_owned(), inode))
    }

    /// A page of a directory's entries in name order: those named after
    /// `start_after` (`""` = from the start), at most `limit`, and whether more
    /// follow. For a file, just that file. A directory needs READ and EXECUTE.
    ///
    /// # Errors
    /// As [`Namespace::file_info`], and `InvalidArgument` for a zero `limit`.
    pub(crate) fn list(
        &self,
        path: &str,
        caller: &Caller,
        start_after: &str,
        limit: usize,
    ) -> Result<(Vec<FileStatus>, bool), Error> {
        let path = FsPath::parse(path)?;
        let checker = Checker::new(caller, &self.policy)?;
        if limit == 0 {
            return Err(Error::InvalidArgument {
                field: "limit",
                reason: "must be at least 1".to_owned(),
            });
        }
        let (_, inode) = self.resolve_existing(&checker, &path)?;
        let Some(dir) = inode.dir() else {
            return Ok((vec![status(path.as_str().to_owned(), inode)], false));
        };
        for access in [Access::Read, Access::Execute] {
            checker.check(&inode.perm, true, path.as_str(), access)?;
        }
        let after = (
            std::ops::Bound::Excluded(start_after),
            std::ops::Bound::Unbounded,
        );
        let mut entries = dir.children.range::<str, _>(after);
        let mut page = Vec::new();
        for (name, &id) in entries.by_ref().take(limit) {
            if let Some(child) = self.tree.get(id) {
                page.push(status(join(path.as_str(), name), child));
            }
        }
        let has_more = entries.next().is_some();
        Ok((page, has_more))
    }

    /// The blocks of the file at `path` that overlap `[offset, offset +
    /// length)` (`length` 0 = to the end of the file), HDFS
    /// `getBlockLocations`. The last block of a file under construction
    /// overlaps everything from its start on, since its length is not known
    /// yet. An offset at or past the end of a complete file gives no blocks.
    /// Needs READ on the
    /// file and EXECUTE on its ancestors.
    ///
    /// # Errors
    /// As [`Namespace::file_info`], `IsADirectory` for a directory, and
    /// `PermissionDenied` without READ.
    /// Totals of the file or directory tree at `path` (HDFS
    /// `getContentSummary`): EXECUTE on the ancestors, READ and EXECUTE on
    /// every directory counted.
    ///
    /// # Errors
    /// As [`Namespace::file_info`], and `PermissionDenied` for the first
    /// directory that cannot be read.
    pub(crate) fn content_summary(
        &self,
        path: &str,
        caller: &Caller,
    ) -> Result<ContentSummary, Error> {
        let path = FsPath::parse(path)?;
        let checker = Checker::new(caller, &self.policy)?;
        let (top, _) = self.resolve_existing(&checker, &path)?;
        let mut summary = ContentSummary::default();
        let mut pending = vec![(top, path.as_str().to_owned())];
        while let Some((id, inode_path)) = pending.pop() {
            let inode = self.inode(id)?;
            match &inode.body {
                Body::File(file) => {
                    let length = file.length();
                    summary.file_count += 1;
                    summary.length = summary.length.saturating_add(length);
                    summary.space_consumed = summary
                        .space_consumed
                        .saturating_add(length.saturating_mul(u64::from(file.replication)));
                }
                Body::Directory(dir) => {
                    for access in [Access::Read, Access::Execute] {
                        checker.check(&inode.perm, true, &inode_path, access)?;
                    }
                    summary.directory_count += 1;
                    for (name, &child) in dir.children.iter() {
                        pending.push((child, join(&inode_path, name)));
                    }
                }
            }
        }
        Ok(summary)
    }

    /// A stable digest of the whole tree (names, kinds, permissions, times,
    /// sizes, blocks, lease holders, block id and stamp counters) so replicas
    /// can compare namespaces. Inode ids are not included.
    pub(crate) fn digest(&self) -> u64 {
        self.tree.digest()
    }

    /// Number of inodes, the root included.
    pub(crate) fn inode_count(&self) -> u64 {
        self.tree.len()
    }

    /// Counts files, directories, blocks and files under construction, and
    /// calls `complete_block` with each block whose length is final (all
    /// but the last block of a file under construction), its generation
    /// stamp and its file's replication. One pass over every inode, for
    /// metrics scrapes and status pages.
    pub(crate) fn census(&self, mut complete_block: impl FnMut(&BlockRecord, u16)) -> Census {
        let mut census = Census::default();
        for inode in self.tree.inodes() {
            match &inode.body {
                Body::Directory(_) => census.directories += 1,
                Body::File(file) => {
                    census.files += 1;
                    census.blocks += file.blocks.len() as u64;
                    let complete = if file.is_under_construction() {
                        census.files_under_construction += 1;
                        file.blocks.len().saturating_sub(1)
                    } else {
                        file.blocks.len()
                    };
                    for block in file.blocks.iter().take(complete) {
                        complete_block(block, file.replication);
                    }
                }
            }
        }
        census
    }

    /// Resolves `path`, checking EXECUTE on every existing ancestor and that
    /// none of them is a file.
    fn traverse(&self, checker: &Checker<'_>, path: &FsPath) -> Result<tree::Resolved, Error> {
        let resolved = self.tree.resolve(path);
        for (depth, &id) in resolved.ancestors().iter().enumerate() {
            let inode = self.inode(id)?;
            let prefix = path.prefix(depth);
            if !inode.is_dir() {
                return Err(Error::NotADirectory {
                    path: prefix.to_owned(),
                });
            }
            checker.check(&inode.perm, true, prefix, Access::Execute)?;
        }
        Ok(resolved)
    }

    /// [`Namespace::traverse`], then the path's own inode or `NotFound`.
    fn resolve_existing(
        &self,
        checker: &Checker<'_>,
        path: &FsPath,
    ) -> Result<(InodeId, &Inode), Error> {
        let resolved = self.traverse(checker, path)?;
        let id = resolved.target().ok_or_else(|| not_found(path))?;
        Ok((id, self.inode(id)?))
    }

    /// The inode `id`, which a resolution just returned.
    fn inode(&self, id: InodeId) -> Result<&Inode, Error> {
        // The tree links only ids it holds; this error would mean a broken image.
        self.tree.get(id).ok_or_else(|| Error::InvalidArgument {
            field: "inode",
            reason: format!("inode {id} is linked but missing"),
        })
    }
}

/// Block queries: for readers, block reports, the replication monitor and fsck.
impl Namespace {
    /// A file's blocks and block size for its writer's block RPCs, which the
    /// lease (checked with each txn) authorises rather than mode bits.
    ///
    /// # Errors
    /// `NotFound` or `IsADirectory`.
    pub(crate) fn writer_blocks(&self, path: &str) -> Result<(FileBlocks, u64), Error> {
        let path = FsPath::parse(path)?;
        let missing = || Error::NotFound {
            path: path.as_str().to_owned(),
        };
        let id = self.tree.resolve(&path).target().ok_or_else(missing)?;
        let file = self.inode(id)?.file().ok_or_else(|| Error::IsADirectory {
            path: path.as_str().to_owned(),
        })?;
        Ok((file_blocks(file, 0, u64::MAX), file.block_size))
    }

    pub(crate) fn block_locations(
        &self,
        path: &str,
        caller: &Caller,
        offset: u64,
        length: u64,
    ) -> Result<FileBlocks, Error> {
        let path = FsPath::parse(path)?;
        let checker = Checker::new(caller, &self.policy)?;
        let (_, inode) = self.resolve_existing(&checker, &path)?;
        let Some(file) = inode.file() else {
            return Err(Error::IsADirectory {
                path: path.as_str().to_owned(),
            });
        };
        checker.check(&inode.perm, false, path.as_str(), Access::Read)?;
        let end = match length {
            0 => u64::MAX,
            n => offset.saturating_add(n),
        };
        Ok(file_blocks(file, offset, end))
    }

    /// The file that holds block `id` (via an index, not a walk), or `None`
    /// for a block the namespace does not know (deleted, abandoned, or never
    /// allocated): its replicas are to be deleted.
    pub(crate) fn block_owner(&self, id: BlockId) -> Option<BlockOwner> {
        let inode_id = self.tree.block_file(id)?;
        let file = self.tree.get(inode_id)?.file()?;
        let index = file.blocks.iter().position(|b| b.id == id)?;
        let record = *file.blocks.get(index)?;
        Some(BlockOwner {
            record,
            replication: file.replication,
            block_size: file.block_size,
            is_last_under_construction: file.is_under_construction()
                && index + 1 == file.blocks.len(),
            reopened_from: file
                .reopened_from
                .filter(|_| index + 1 == file.blocks.len()),
            path: self.tree.path_of(inode_id)?,
        })
    }

    /// The file holding block `id`, if `caller` may read it (the check
    /// every read path makes: traverse, then READ on the file); `Ok(None)`
    /// for a block the namespace does not know. Bad-replica reports need it.
    ///
    /// # Errors
    /// `PermissionDenied` (or what resolving the path gives).
    pub(crate) fn readable_block_owner(
        &self,
        id: BlockId,
        caller: &Caller,
    ) -> Result<Option<BlockOwner>, Error> {
        let Some(owner) = self.block_owner(id) else {
            return Ok(None);
        };
        self.block_locations(&owner.path, caller, 0, 1)?;
        Ok(Some(owner))
    }

    /// Every file under construction with its lease holder (the lease
    /// monitor's worklist; an index, not a walk).
    pub(crate) fn open_files(&self) -> Vec<OpenFile> {
        self.tree
            .open_files()
            .filter_map(|id| {
                let holder = self.tree.get(id)?.file()?.lease_holder.clone()?;
                let path = self.tree.path_of(id)?;
                Some(OpenFile { path, holder })
            })
            .collect()
    }

    /// Every block id in the namespace, in no particular order (tests check
    /// the block index against it).
    #[cfg(test)]
    pub(crate) fn block_ids(&self) -> impl Iterator<Item = BlockId> + '_ {
        self.tree.block_ids()
    }

    /// Every file at or below `path` with all its blocks, in path order (tests
    /// check the block index against it; fsck walks through the client today).
    /// Needs EXECUTE on the ancestors and READ and EXECUTE on every directory
    /// walked, as a recursive listing does; a file's blocks need no READ (its
    /// length does not either).
    ///
    /// # Errors
    /// As [`Namespace::file_info`], and `PermissionDenied` for the first
    /// directory below `path` that cannot be listed.
    #[cfg(test)]
    pub(crate) fn walk_files(
        &self,
        path: &str,
        caller: &Caller,
    ) -> Result<Vec<(String, FileBlocks)>, Error> {
        let path = FsPath::parse(path)?;
        let checker = Checker::new(caller, &self.policy)?;
        let (top, _) = self.resolve_existing(&checker, &path)?;
        let mut files = Vec::new();
        let mut pending = vec![(top, path.as_str().to_owned())];
        while let Some((id, inode_path)) = pending.pop() {
            let inode = self.inode(id)?;
            match &inode.body {
                Body::File(file) => files.push((inode_path, file_blocks(file, 0, u64::MAX))),
                Body::Directory(dir) => {
                    for access in [Access::Read, Access::Execute] {
                        checker.check(&inode.perm, true, &inode_path, access)?;
                    }
                    for (name, &child) in dir.children.iter().rev() {
                        pending.push((child, join(&inode_path, name)));
                    }
                }
            }
        }
        Ok(files)
    }
}

/// `file`'s blocks overlapping `[offset, end)`; an empty block counts as
/// overlapping when its offset is within the range.
fn file_blocks(file: &File, offset: u64, end: u64) -> FileBlocks {
    let under_construction = file.is_under_construction();
    let count = file.blocks.len();
    let mut start = 0u64;
    let mut blocks = Vec::new();
    for (index, block) in file.blocks.iter().enumerate() {
        let block_end = if under_construction && index + 1 == count {
            u64::MAX
        } else {
            start.saturating_add(block.length)
        };
        // An empty block overlaps a range it stands in.
        let overlaps = block_end > offset || (block_end == start && start >= offset);
        if start < end && overlaps {
            blocks.push((start, *block));
        }
        start = start.saturating_add(block.length);
    }
    FileBlocks {
        length: file.length(),
        under_construction,
        lease_holder: file.lease_holder.clone(),
        reopened_from: file.reopened_from,
        replication: file.replication,
        blocks,
    }
}

fn not_found(path: &FsPath) -> Error {
    Error::NotFound {
        path: path.as_str().to_owned(),
    }
}

fn status(path: String, inode: &Inode) -> FileStatus {
    let (kind, length, replication, block_size, children) = match &inode.body {
        Body::Directory(dir) => (FileKind::Directory, 0, 0, 0, dir.children.len() as u64),
        Body::File(file) => (
            FileKind::File,
            file.length(),
            file.replication,
            file.block_size,
            0,
        ),
    };
    FileStatus {
        path,
        kind,
        perm: inode.perm.clone(),
        length,
        mtime_ms: inode.mtime_ms,
        atime_ms: inode.atime_ms,
        replication,
        block_size,
        children,
    }
}
