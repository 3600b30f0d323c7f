//! `check`: validates an [`Op`] against the current tree and the caller's
//! rights (HDFS `FSDirMkdirOp`, `FSDirWriteFileOp`, `FSDirDeleteOp`,
//! `FSDirRenameOp`, `FSDirAttrOp`, and the lease and block checks of
//! `FSNamesystem`'s write path) and returns the [`Txn`] that performs it.
//!
//! Order within an op follows HDFS: path syntax, caller names, EXECUTE on the
//! traversed ancestors, then the op's permission and existence checks.

use crate::error::{Access, Error};
use crate::txn::{BlockId, BlockRecord, NewDir, PermissionStatus, Reopen, Txn};

use super::path::FsPath;
use super::permission::{Checker, validate_mode, validate_principal};
use super::tree::{Body, File, Inode, InodeId};
use super::{Caller, Namespace, Op, not_found};

/// Replica counts accepted for a file.
pub(crate) const REPLICATION_RANGE: std::ops::RangeInclusive<u16> = 1..=512;
/// Smallest block size: 1 MiB.
pub(crate) const MIN_BLOCK_SIZE: u64 = 1 << 20;
/// Largest block size: 1 TiB.
pub(crate) const MAX_BLOCK_SIZE: u64 = 1 << 40;
/// Block sizes are whole checksum chunks.
pub(crate) const BLOCK_SIZE_MULTIPLE: u64 = 512;

/// Mode of a new directory when none is requested (before the umask).
const DEFAULT_DIR_MODE: u16 = 0o777;
/// Mode of a new file when none is requested (before the umask).
const DEFAULT_FILE_MODE: u16 = 0o666;
/// u+wx, added to implicitly created parents so their creator can go on.
pub(crate) const IMPLICIT_PARENT_BITS: u16 = 0o300;

/// Checks a replica count.
///
/// # Errors
/// `InvalidArgument` outside [`REPLICATION_RANGE`].
pub(crate) fn validate_replication(replication: u16) -> Result<(), Error> {
    if REPLICATION_RANGE.contains(&replication) {
        return Ok(());
    }
    Err(Error::InvalidArgument {
        field: "replication",
        reason: format!("{replication} is not within 1..=512"),
    })
}

/// Checks a block size.
///
/// # Errors
/// `InvalidArgument` below 1 MiB, above 1 TiB or not a multiple of 512.
pub(crate) fn validate_block_size(block_size: u64) -> Result<(), Error> {
    if (MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size)
        && block_size.is_multiple_of(BLOCK_SIZE_MULTIPLE)
    {
        return Ok(());
    }
    Err(Error::InvalidArgument {
        field: "block_size",
        reason: format!("{block_size} is not a multiple of 512 between 1 MiB and 1 TiB"),
    })
}

impl Namespace {
    /// Validates `op` for `caller` against the current tree and returns the
    /// transaction to journal, or `Ok(None)` when it would change nothing
    /// (`mkdirs -p` of an existing directory, chmod to the current mode,
    /// rename onto itself, set replication of a directory, a retried AddBlock
    /// whose block exists already, a retried Complete of a closed file).
    ///
    /// # Errors
    /// The first rule `op` breaks; the tree is never changed.
    pub(crate) fn check(
        &self,
        op: &Op,
        caller: &Caller,
        now_ms: u64,
    ) -> Result<Option<Txn>, Error> {
        match op {
            Op::Mkdirs {
                path,
                mode,
                create_parent,
            } => self.check_mkdirs(path, *mode, *create_parent, caller, now_ms),
            Op::Create {
                path,
                mode,
                overwrite,
                create_parent,
                replication,
                block_size,
                client,
            } => {
                let path = FsPath::parse(path)?;
                if path.is_root() {
                    return Err(root_refused(&path, "cannot create a file at the root"));
                }
                validate_replication(*replication)?;
                validate_block_size(*block_size)?;
                validate_client(client)?;
                let mode = validate_mode(mode.unwrap_or(DEFAULT_FILE_MODE))?;
                let checker = Checker::new(caller, &self.policy)?;
                let resolved = self.traverse(&checker, &path)?;
                let existing = match resolved.target() {
                    Some(id) => Some(self.inode(id)?),
                    None => None,
                };
                if let Some(file) = existing {
                    if file.is_dir() {
                        return Err(Error::IsADirectory {
                            path: path.as_str().to_owned(),
                        });
                    }
                    if *overwrite {
                        checker.check(&file.perm, false, path.as_str(), Access::Write)?;
                    }
                }
                let (depth, ancestor) = resolved.deepest_ancestor();
                let ancestor = self.inode(ancestor)?;
                checker.check(&ancestor.perm, true, path.prefix(depth), Access::Write)?;
                if !*create_parent && resolved.parent().is_none() {
                    return Err(not_found(&path));
                }
                let holder = existing
                    .and_then(Inode::file)
                    .and_then(|f| f.lease_holder.as_ref());
                // HDFS `recoverLeaseInternal`: only the writer may replace a
                // file being written, and only by overwriting it.
                if let Some(holder) = holder.filter(|h| *h != client || !*overwrite) {
                    return Err(Error::AlreadyBeingCreated {
                        op: "CREATE_FILE",
                        path: path.as_str().to_owned(),
                        client: client.clone(),
                        client_addr: None,
                        holder: holder.clone(),
                        holder_addr: None,
                    });
                }
                if existing.is_some() && !*overwrite {
                    return Err(Error::AlreadyExists {
                        path: path.as_str().to_owned(),
                    });
                }
                Ok(Some(Txn::Create {
                    path: path.as_str().to_owned(),
                    perm: PermissionStatus {
                        owner: caller.user.clone(),
                        group: ancestor.perm.group.clone(),
                        mode: mode & !self.policy.umask,
                    },
                    overwrite: *overwrite,
                    replication: *replication,
                    block_size: *block_size,
                    mtime_ms: now_ms,
                    client: client.clone(),
                }))
            }
            Op::Append {
                path,
                client,
                new_block,
            } => self.check_append(path, client, *new_block, caller),
            Op::AddBlock {
                path,
                client,
                previous,
            } => self.check_add_block(path, client, previous.as_ref(), caller),
            Op::AbandonBlock {
                path,
                client,
                block,
            } => {
                let (path, file) = self.file_being_written(path, client, caller)?;
                let last = last_block_id(file, &path, *block)?;
                Ok(Some(Txn::AbandonBlock {
                    path: path.as_str().to_owned(),
                    block: last,
                }))
            }
            Op::BumpGenStamp {
                path,
                client,
                block,
            } => {
                let (path, file) = self.file_being_written(path, client, caller)?;
                let last = last_block_id(file, &path, *block)?;
                Ok(Some(Txn::BumpGenStamp {
                    path: path.as_str().to_owned(),
                    block: last,
                    gen_stamp: self.tree.next_gen_stamp(),
                }))
            }
            Op::Complete { path, client, last } => {
                self.check_complete(path, client, last.as_ref(), caller, now_ms)
            }
            Op::Delete { path, recursive } => self.check_delete(path, *recursive, caller, now_ms),
            Op::Rename { src, dst } => self.check_rename(src, dst, caller, now_ms),
            Op::SetPermission { path, mode } => {
                let path = FsPath::parse(path)?;
                let mode = validate_mode(*mode)?;
                let checker = Checker::new(caller, &self.policy)?;
                let (_, inode) = self.resolve_existing(&checker, &path)?;
                checker.check_owner(&inode.perm, path.as_str())?;
                Ok((inode.perm.mode != mode).then(|| Txn::SetPermission {
                    path: path.as_str().to_owned(),
                    mode,
                }))
            }
            Op::SetOwner { path, owner, group } => {
                self.check_set_owner(path, owner.as_deref(), group.as_deref(), caller)
            }
            Op::SetReplication { path, replication } => {
                let path = FsPath::parse(path)?;
                validate_replication(*replication)?;
                let checker = Checker::new(caller, &self.policy)?;
                let (_, inode) = self.resolve_existing(&checker, &path)?;
                checker.check(&inode.perm, inode.is_dir(), path.as_str(), Access::Write)?;
                match &inode.body {
                    Body::File(file) if file.replication != *replication => {
                        Ok(Some(Txn::SetReplication {
                            path: path.as_str().to_owned(),
                            replication: *replication,
                        }))
                    }
                    // HDFS ignores directories; an unchanged count changes nothing.
                    Body::File(_) | Body::Directory(_) => Ok(None),
                }
            }
            Op::SetTimes {
                path,
                mtime_ms,
                atime_ms,
            } => {
                let path = FsPath::parse(path)?;
                let checker = Checker::new(caller, &self.policy)?;
                let (_, inode) = self.resolve_existing(&checker, &path)?;
                checker.check_owner(&inode.perm, path.as_str())?;
                let mtime_ms = mtime_ms.filter(|&t| t != inode.mtime_ms);
                let atime_ms = atime_ms.filter(|&t| t != inode.atime_ms);
                if mtime_ms.is_none() && atime_ms.is_none() {
                    return Ok(None);
                }
                Ok(Some(Txn::SetTimes {
                    path: path.as_str().to_owned(),
                    mtime_ms,
                    atime_ms,
                }))
            }
        }
    }

    /// HDFS `FSDirAppendOp.appendFile`: WRITE on the file, no other writer,
    /// then whether the last block is reopened (it has room and no new block
    /// was asked for) under a new generation stamp.
    fn check_append(
        &self,
        path: &str,
        client: &str,
        new_block: bool,
        caller: &Caller,
    ) -> Result<Option<Txn>, Error> {
        let path = FsPath::parse(path)?;
        validate_client(client)?;
        let checker = Checker::new(caller, &self.policy)?;
        let (_, inode) = self.resolve_existing(&checker, &path)?;
        let Some(file) = inode.file() else {
            return Err(Error::IsADirectory {
                path: path.as_str().to_owned(),
            });
        };
        checker.check(&inode.perm, false, path.as_str(), Access::Write)?;
        if let Some(holder) = &file.lease_holder {
            return Err(Error::AlreadyBeingCreated {
                op: "APPEND_FILE",
                path: path.as_str().to_owned(),
                client: client.to_owned(),
                client_addr: None,
                holder: holder.clone(),
                holder_addr: None,
            });
        }
        let reopen = file
            .blocks
            .last()
            .filter(|b| b.length < file.block_size && !new_block)
            .map(|b| Reopen {
                previous: b.gen_stamp,
                gen_stamp: self.tree.next_gen_stamp(),
            });
        Ok(Some(Txn::Append {
            path: path.as_str().to_owned(),
            client: client.to_owned(),
            reopen,
        }))
    }

    /// HDFS `analyzeFileState`: the lease, then `previous` against the
    /// file's last block.
    fn check_add_block(
        &self,
        path: &str,
        client: &str,
        previous: Option<&BlockRecord>,
        caller: &Caller,
    ) -> Result<Option<Txn>, Error> {
        let (path, file) = self.file_being_written(path, client, caller)?;
        if let Some(previous) = previous {
            validate_length(file, previous, "previous")?;
        }
        let last = file.blocks.last();
        if !is_same_block(previous, last) {
            // A retry whose answer was lost names the block before the last,
            // and the last is still empty: it is the answer again.
            let penultimate = file.blocks.len().checked_sub(2);
            let penultimate = penultimate.and_then(|i| file.blocks.get(i));
            if last.is_some_and(|b| b.length == 0) && is_same_block(previous, penultimate) {
                return Ok(None);
            }
            return Err(block_mismatch(&path, last, previous));
        }
        Ok(Some(Txn::AddBlock {
            path: path.as_str().to_owned(),
            previous: previous.copied(),
            block: BlockRecord {
                id: self.tree.next_block_id(),
                gen_stamp: self.tree.next_gen_stamp(),
                length: 0,
            },
        }))
    }

    /// HDFS `completeFileInternal`.
    fn check_complete(
        &self,
        path: &str,
        client: &str,
        last: Option<&BlockRecord>,
        caller: &Caller,
        now_ms: u64,
    ) -> Result<Option<Txn>, Error> {
        let (path, file) = self.existing_file(path, client, caller)?;
        let actual = file.blocks.last();
        // A retry whose answer was lost: the file is closed and the block
        // matches. As in HDFS the lease holder is gone by then, so the block
        // (id and stamp) is what identifies the retry.
        if !file.is_under_construction() && is_same_block(last, actual) {
            return Ok(None);
        }
        check_lease(file, &path, client)?;
        if let Some(last) = last {
            validate_length(file, last, "last")?;
        }
        if !is_same_block(last, actual) {
            return Err(block_mismatch(&path, actual, last));
        }
        Ok(Some(Txn::Complete {
            path: path.as_str().to_owned(),
            last: last.copied(),
            mtime_ms: now_ms,
        }))
    }

    /// The file at `path` (EXECUTE on its ancestors), which `client` must be
    /// writing (HDFS `checkLease`).
    fn file_being_written(
        &self,
        path: &str,
        client: &str,
        caller: &Caller,
    ) -> Result<(FsPath, &File), Error> {
        let (path, file) = self.existing_file(path, client, caller)?;
        check_lease(file, &path, client)?;
        Ok((path, file))
    }

    /// The file at `path`, EXECUTE checked on its ancestors; `client` must be
    /// a valid client name.
    fn existing_file(
        &self,
        path: &str,
        client: &str,
        caller: &Caller,
    ) -> Result<(FsPath, &File), Error> {
        let path = FsPath::parse(path)?;
        validate_client(client)?;
        let checker = Checker::new(caller, &self.policy)?;
        let (_, inode) = self.resolve_existing(&checker, &path)?;
        let Some(file) = inode.file() else {
            return Err(Error::IsADirectory {
                path: path.as_str().to_owned(),
            });
        };
        Ok((path, file))
    }

    fn check_mkdirs(
        &self,
        path: &str,
        mode: Option<u16>,
        create_parent: bool,
        caller: &Caller,
        now_ms: u64,
    ) -> Result<Option<Txn>, Error> {
        let path = FsPath::parse(path)?;
        let mode = validate_mode(mode.unwrap_or(DEFAULT_DIR_MODE))?;
        let checker = Checker::new(caller, &self.policy)?;
        let resolved = self.traverse(&checker, &path)?;
        if let Some(id) = resolved.target() {
            return if self.inode(id)?.is_dir() && create_parent {
                Ok(None)
            } else {
                Err(Error::AlreadyExists {
                    path: path.as_str().to_owned(),
                })
            };
        }
        let (depth, ancestor) = resolved.deepest_ancestor();
        let ancestor = self.inode(ancestor)?;
        checker.check(&ancestor.perm, true, path.prefix(depth), Access::Write)?;
        if !create_parent && resolved.parent().is_none() {
            return Err(not_found(&path));
        }
        let umask = self.policy.umask;
        let dirs = (depth + 1..=path.depth())
            .map(|d| NewDir {
                path: path.prefix(d).to_owned(),
                perm: PermissionStatus {
                    owner: caller.user.clone(),
                    group: ancestor.perm.group.clone(),
                    mode: if d == path.depth() {
                        mode & !umask
                    } else {
                        (DEFAULT_DIR_MODE & !umask) | IMPLICIT_PARENT_BITS
                    },
                },
            })
            .collect();
        Ok(Some(Txn::Mkdirs {
            dirs,
            mtime_ms: now_ms,
        }))
    }

    fn check_delete(
        &self,
        path: &str,
        recursive: bool,
        caller: &Caller,
        now_ms: u64,
    ) -> Result<Option<Txn>, Error> {
        let path = FsPath::parse(path)?;
        if path.is_root() {
            return Err(root_refused(&path, "the root directory cannot be deleted"));
        }
        let checker = Checker::new(caller, &self.policy)?;
        let resolved = self.traverse(&checker, &path)?;
        let (Some(id), Some(parent)) = (resolved.target(), resolved.parent()) else {
            return Err(not_found(&path));
        };
        let (inode, parent) = (self.inode(id)?, self.inode(parent)?);
        if !recursive && inode.dir().is_some_and(|d| !d.children.is_empty()) {
            return Err(Error::DirectoryNotEmpty {
                path: path.as_str().to_owned(),
            });
        }
        let parent_path = path.prefix(path.depth() - 1);
        checker.check_sticky(&parent.perm, &inode.perm, path.as_str())?;
        checker.check(&parent.perm, true, parent_path, Access::Write)?;
        self.check_sub_access(&checker, id, &path)?;
        Ok(Some(Txn::Delete {
            path: path.as_str().to_owned(),
            mtime_ms: now_ms,
        }))
    }

    /// HDFS `checkSubAccess(ALL, ignoreEmptyDir)`: READ, WRITE and EXECUTE on
    /// every non-empty directory at or below `top`, so a recursive delete
    /// cannot remove entries the caller could not remove one by one.
    fn check_sub_access(
        &self,
        checker: &Checker<'_>,
        top: InodeId,
        path: &FsPath,
    ) -> Result<(), Error> {
        if checker.is_superuser() {
            return Ok(());
        }
        self.tree
            .try_for_each_directory(top, path.as_str(), |dir, dir_path| {
                if dir.dir().is_some_and(|d| d.children.is_empty()) {
                    return Ok(());
                }
                for access in [Access::Read, Access::Write, Access::Execute] {
                    // Paths are built only for the error.
                    if checker.check(&dir.perm, true, "", access).is_err() {
                        return checker.check(&dir.perm, true, &dir_path(), access);
                    }
                }
                Ok(())
            })
    }

    fn check_rename(
        &self,
        src: &str,
        dst: &str,
        caller: &Caller,
        now_ms: u64,
    ) -> Result<Option<Txn>, Error> {
        let src = FsPath::parse(src)?;
        let dst = FsPath::parse(dst)?;
        if src.is_root() {
            return Err(root_refused(&src, "the root directory cannot be renamed"));
        }
        if dst.is_root() {
            return Err(root_refused(&dst, "cannot rename onto the root directory"));
        }
        let checker = Checker::new(caller, &self.policy)?;
        let src_resolved = self.traverse(&checker, &src)?;
        let (Some(src_id), Some(src_parent)) = (src_resolved.target(), src_resolved.parent())
        else {
            return Err(not_found(&src));
        };
        if src == dst {
            return Ok(None);
        }
        if dst.is_strictly_below(&src) {
            return Err(Error::InvalidArgument {
                field: "dst",
                reason: format!(
                    "cannot move '{}' into itself or its own subdirectory '{}'",
                    src.as_str(),
                    dst.as_str()
                ),
            });
        }
        let dst_resolved = self.traverse(&checker, &dst)?;
        let (src_inode, src_parent) = (self.inode(src_id)?, self.inode(src_parent)?);
        checker.check_sticky(&src_parent.perm, &src_inode.perm, src.as_str())?;
        checker.check(
            &src_parent.perm,
            true,
            src.prefix(src.depth() - 1),
            Access::Write,
        )?;
        let (depth, dst_ancestor) = dst_resolved.deepest_ancestor();
        checker.check(
            &self.inode(dst_ancestor)?.perm,
            true,
            dst.prefix(depth),
            Access::Write,
        )?;
        if dst_resolved.target().is_some() {
            return Err(Error::AlreadyExists {
                path: dst.as_str().to_owned(),
            });
        }
        if dst_resolved.parent().is_none() {
            return Err(not_found(&dst));
        }
        Ok(Some(Txn::Rename {
            src: src.as_str().to_owned(),
            dst: dst.as_str().to_owned(),
            mtime_ms: now_ms,
        }))
    }

    fn check_set_owner(
        &self,
        path: &str,
        owner: Option<&str>,
        group: Option<&str>,
        caller: &Caller,
    ) -> Result<Option<Txn>, Error> {
        let path = FsPath::parse(path)?;
        if owner.is_none() && group.is_none() {
            return Err(Error::InvalidArgument {
                field: "owner",
                reason: "neither an owner nor a group was given".to_owned(),
            });
        }
        if let Some(owner) = owner {
            validate_principal("owner", owner)?;
        }
        if let Some(group) = group {
            validate_principal("group", group)?;
        }
        let checker = Checker::new(caller, &self.policy)?;
        let (_, inode) = self.resolve_existing(&checker, &path)?;
        checker.check_owner(&inode.perm, path.as_str())?;
        let owner = owner.filter(|&o| o != inode.perm.owner);
        let group = group.filter(|&g| g != inode.perm.group);
        if !checker.is_superuser() {
            if let Some(owner) = owner {
                return Err(not_superuser(
                    &checker,
                    format!(
                        "cannot change the owner of '{}' to '{owner}'",
                        path.as_str()
                    ),
                ));
            }
            if let Some(group) = group.filter(|g| !checker.is_member_of(g)) {
                return Err(not_superuser(
                    &checker,
                    format!(
                        "cannot change the group of '{}' to '{group}', a group the user is not in",
                        path.as_str()
                    ),
                ));
            }
        }
        if owner.is_none() && group.is_none() {
            return Ok(None);
        }
        Ok(Some(Txn::SetOwner {
            path: path.as_str().to_owned(),
            owner: owner.map(str::to_owned),
            group: group.map(str::to_owned),
        }))
    }
}

/// Checks a client name (the lease holder): 1 to 256 characters without
/// `/`, `:`, whitespace or control characters, like a user name.
///
/// # Errors
/// `InvalidArgument` naming the field `client`.
pub(crate) fn validate_client(client: &str) -> Result<(), Error> {
    validate_principal("client", client)
}

/// Checks that a block a client reports is not longer than the file's blocks.
///
/// # Errors
/// `InvalidArgument` naming `field`.
pub(crate) fn validate_length(
    file: &File,
    block: &BlockRecord,
    field: &'static str,
) -> Result<(), Error> {
    if block.length <= file.block_size {
        return Ok(());
    }
    Err(Error::InvalidArgument {
        field,
        reason: format!(
            "{block} has {} bytes, more than the file's block size {}",
            block.length, file.block_size
        ),
    })
}

/// Whether two blocks are the same block in the same generation (HDFS
/// `Block.matchingIdAndGenStamp`); lengths are not compared.
pub(crate) fn is_same_block(a: Option<&BlockRecord>, b: Option<&BlockRecord>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.id == b.id && a.gen_stamp == b.gen_stamp,
        (None, None) => true,
        _ => false,
    }
}

fn check_lease(file: &File, path: &FsPath, client: &str) -> Result<(), Error> {
    match &file.lease_holder {
        Some(holder) if holder == client => Ok(()),
        holder => Err(Error::LeaseMismatch {
            path: path.as_str().to_owned(),
            holder: holder.clone(),
            client: client.to_owned(),
        }),
    }
}

pub(crate) fn block_mismatch(
    path: &FsPath,
    expected: Option<&BlockRecord>,
    got: Option<&BlockRecord>,
) -> Error {
    Error::BlockMismatch {
        path: path.as_str().to_owned(),
        expected: expected.copied(),
        got: got.copied(),
    }
}

/// `block` when it is the file's last block.
///
/// # Errors
/// `NotLastBlock` otherwise.
pub(crate) fn last_block_id(file: &File, path: &FsPath, block: BlockId) -> Result<BlockId, Error> {
    let last = file.blocks.last().map(|b| b.id);
    if last == Some(block) {
        return Ok(block);
    }
    Err(Error::NotLastBlock {
        path: path.as_str().to_owned(),
        block,
        last,
    })
}

fn root_refused(path: &FsPath, reason: &'static str) -> Error {
    Error::InvalidPath {
        path: path.as_str().to_owned(),
        reason,
    }
}

fn not_superuser(checker: &Checker<'_>, what: String) -> Error {
    Error::NotSuperuser {
        user: checker.user().to_owned(),
        what,
    }
}

/// Permissions of a parent that `Txn::Create` creates implicitly: the file's
/// owner, and the deepest existing ancestor's group and permission bits plus
/// u+wx (HDFS `createAncestorDirectories` with `addImplicitUwx`). Derived
/// from the tree, not the umask, so that `apply` stays deterministic.
pub(crate) fn implicit_parent_of_file(ancestor: &Inode, owner: &str) -> PermissionStatus {
    PermissionStatus {
        owner: owner.to_owned(),
        group: ancestor.perm.group.clone(),
        mode: (ancestor.perm.mode & 0o777) | IMPLICIT_PARENT_BITS,
    }
}
