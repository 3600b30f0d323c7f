//! `apply`: replays a committed [`Txn`] onto the tree.
//!
//! Deterministic: everything comes from the txn and the tree (no clock, no
//! policy). Each txn is validated completely before the first change, so a
//! txn that does not fit the tree (a corrupt or misordered log) is an error
//! and leaves the tree as it was. Permissions are not checked here: they were
//! checked before the txn was proposed.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::txn::{BlockId, BlockRecord, GenStamp, NewDir, PermissionStatus, Reopen, Txn};

use super::Namespace;
use super::check::{
    block_mismatch, implicit_parent_of_file, is_same_block, last_block_id, validate_block_size,
    validate_client, validate_length, validate_replication,
};
use super::path::FsPath;
use super::permission::{validate_mode, validate_principal};
use super::tree::{Body, File, Inode, InodeId};

impl Namespace {
    /// Applies a committed transaction; returns the blocks it freed (of
    /// deleted, overwritten or abandoned files), whose replicas are now garbage.
    ///
    /// # Errors
    /// When `txn` does not fit the tree; the tree is then unchanged.
    pub(crate) fn apply(&mut self, txn: &Txn) -> Result<Vec<BlockRecord>, Error> {
        match txn {
            Txn::Mkdirs { dirs, mtime_ms } => {
                self.apply_mkdirs(dirs, *mtime_ms)?;
                Ok(Vec::new())
            }
            Txn::Create {
                path,
                perm,
                overwrite,
                replication,
                block_size,
                mtime_ms,
                client,
            } => {
                let path = parse_not_root(path)?;
                validate_perm(perm)?;
                validate_replication(*replication)?;
                validate_block_size(*block_size)?;
                validate_client(client)?;
                let resolved = self.tree.resolve(&path);
                self.require_directories(&path, resolved.ancestors())?;
                if let Some(id) = resolved.target() {
                    if self.inode(id)?.is_dir() {
                        return Err(Error::IsADirectory {
                            path: path.as_str().to_owned(),
                        });
                    }
                    if !overwrite {
                        return Err(Error::AlreadyExists {
                            path: path.as_str().to_owned(),
                        });
                    }
                }
                // Validated; from here on nothing can fail for a well-formed tree.
                let (depth, mut parent) = resolved.deepest_ancestor();
                let parent_perm = implicit_parent_of_file(self.inode(parent)?, &perm.owner);
                let names: Vec<&str> = path.components().collect();
                let (Some(&file_name), Some(missing)) =
                    (names.last(), names.get(depth..names.len() - 1))
                else {
                    return Err(not_fitting("create", &path));
                };
                self.touch(parent, *mtime_ms);
                for name in missing {
                    let dir = Inode::directory(parent_perm.clone(), *mtime_ms);
                    parent = self
                        .tree
                        .insert(parent, name, dir)
                        .ok_or_else(|| not_fitting("create", &path))?;
                }
                let freed = match resolved.target() {
                    Some(_) => self.tree.remove(parent, file_name).unwrap_or_default(),
                    None => Vec::new(),
                };
                let file = Inode {
                    perm: perm.clone(),
                    mtime_ms: *mtime_ms,
                    atime_ms: *mtime_ms,
                    body: Body::File(File::under_construction(*replication, *block_size, client)),
                };
                self.tree
                    .insert(parent, file_name, file)
                    .ok_or_else(|| not_fitting("create", &path))?;
                Ok(freed)
            }
            Txn::Append {
                path,
                client,
                reopen,
            } => {
                self.apply_append(path, client, *reopen)?;
                Ok(Vec::new())
            }
            Txn::AddBlock {
                path,
                previous,
                block,
            } => self.apply_add_block(path, previous.as_ref(), block),
            Txn::AbandonBlock { path, block } => {
                let (path, id, file) = self.under_construction_at(path)?;
                last_block_id(file, &path, *block)?;
                let freed = self
                    .tree
                    .pop_block(id)
                    .ok_or_else(|| not_fitting("abandon block", &path))?;
                Ok(vec![freed])
            }
            Txn::BumpGenStamp {
                path,
                block,
                gen_stamp,
            } => {
                let (path, id, file) = self.under_construction_at(path)?;
                last_block_id(file, &path, *block)?;
                self.require_unallocated(None, Some(*gen_stamp))?;
                let last = self
                    .tree
                    .file_mut(id)
                    .and_then(|f| f.blocks.last_mut())
                    .ok_or_else(|| not_fitting("bump generation stamp", &path))?;
                last.gen_stamp = *gen_stamp;
                self.tree.advance_counters(None, Some(*gen_stamp));
                Ok(Vec::new())
            }
            Txn::Complete {
                path,
                last,
                mtime_ms,
            } => {
                let (path, id, file) = self.under_construction_at(path)?;
                if let Some(last) = last {
                    validate_length(file, last, "last")?;
                }
                if !is_same_block(last.as_ref(), file.blocks.last()) {
                    return Err(block_mismatch(&path, file.blocks.last(), last.as_ref()));
                }
                let file = self
                    .tree
                    .file_mut(id)
                    .ok_or_else(|| not_fitting("complete", &path))?;
                if let (Some(last), Some(block)) = (last, file.blocks.last_mut()) {
                    block.length = last.length;
                }
                self.tree.close_file(id);
                self.touch(id, *mtime_ms);
                Ok(Vec::new())
            }
            Txn::Delete { path, mtime_ms } => {
                let path = parse_not_root(path)?;
                let resolved = self.tree.resolve(&path);
                let (Some(_), Some(parent), Some(name)) = (
                    resolved.target(),
                    resolved.parent(),
                    path.components().last(),
                ) else {
                    return Err(not_found(&path));
                };
                let freed = self.tree.remove(parent, name).unwrap_or_default();
                self.touch(parent, *mtime_ms);
                Ok(freed)
            }
            Txn::Rename { src, dst, mtime_ms } => {
                self.apply_rename(src, dst, *mtime_ms)?;
                Ok(Vec::new())
            }
            Txn::SetPermission { path, mode } => {
                let mode = validate_mode(*mode)?;
                self.existing_mut(path)?.perm.mode = mode;
                Ok(Vec::new())
            }
            Txn::SetOwner { path, owner, group } => {
                if let Some(owner) = owner {
                    validate_principal("owner", owner)?;
                }
                if let Some(group) = group {
                    validate_principal("group", group)?;
                }
                let inode = self.existing_mut(path)?;
                if let Some(owner) = owner {
                    inode.perm.owner.clone_from(owner);
                }
                if let Some(group) = group {
                    inode.perm.group.clone_from(group);
                }
                Ok(Vec::new())
            }
            Txn::SetReplication { path, replication } => {
                validate_replication(*replication)?;
                let inode = self.existing_mut(path)?;
                match &mut inode.body {
                    Body::File(file) => {
                        file.replication = *replication;
                        Ok(Vec::new())
                    }
                    Body::Directory(_) => Err(Error::IsADirectory { path: path.clone() }),
                }
            }
            Txn::SetTimes {
                path,
                mtime_ms,
                atime_ms,
            } => {
                let inode = self.existing_mut(path)?;
                if let Some(t) = mtime_ms {
                    inode.mtime_ms = *t;
                }
                if let Some(t) = atime_ms {
                    inode.atime_ms = *t;
                }
                Ok(Vec::new())
            }
        }
    }

    fn apply_mkdirs(&mut self, dirs: &[NewDir], mtime_ms: u64) -> Result<(), Error> {
        // Plan: each directory is new, and its parent is an existing
        // directory or one created earlier in this txn.
        let mut plan = Vec::with_capacity(dirs.len());
        let mut planned: BTreeMap<String, usize> = BTreeMap::new();
        for dir in dirs {
            let path = parse_not_root(&dir.path)?;
            validate_perm(&dir.perm)?;
            let parent_path = path.prefix(path.depth() - 1).to_owned();
            let name = path.components().last().unwrap_or_default().to_owned();
            let parent = match planned.get(parent_path.as_str()) {
                Some(&index) => Parent::Planned(index),
                None => {
                    let resolved = self.tree.resolve(&path);
                    self.require_directories(&path, resolved.ancestors())?;
                    if resolved.target().is_some() {
                        return Err(Error::AlreadyExists {
                            path: dir.path.clone(),
                        });
                    }
                    Parent::Existing(resolved.parent().ok_or_else(|| not_found(&path))?)
                }
            };
            if planned
                .insert(path.as_str().to_owned(), plan.len())
                .is_some()
            {
                return Err(Error::AlreadyExists {
                    path: dir.path.clone(),
                });
            }
            plan.push((parent, name, &dir.perm));
        }
        if plan.is_empty() {
            return Err(Error::InvalidArgument {
                field: "txn",
                reason: "mkdirs without directories".to_owned(),
            });
        }
        // Commit.
        let mut created: Vec<InodeId> = Vec::with_capacity(plan.len());
        for (parent, name, perm) in plan {
            let parent = match parent {
                Parent::Existing(id) => {
                    self.touch(id, mtime_ms);
                    id
                }
                Parent::Planned(index) => created
                    .get(index)
                    .copied()
                    .ok_or_else(|| not_fitting_str("mkdirs", &name))?,
            };
            let id = self
                .tree
                .insert(parent, &name, Inode::directory(perm.clone(), mtime_ms))
                .ok_or_else(|| not_fitting_str("mkdirs", &name))?;
            created.push(id);
        }
        Ok(())
    }

    fn apply_rename(&mut self, src: &str, dst: &str, mtime_ms: u64) -> Result<(), Error> {
        let src = parse_not_root(src)?;
        let dst = parse_not_root(dst)?;
        if src == dst || dst.is_strictly_below(&src) {
            return Err(Error::InvalidArgument {
                field: "dst",
                reason: format!("'{}' cannot move to '{}'", src.as_str(), dst.as_str()),
            });
        }
        let src_resolved = self.tree.resolve(&src);
        let (Some(_), Some(src_parent), Some(src_name)) = (
            src_resolved.target(),
            src_resolved.parent(),
            src.components().last(),
        ) else {
            return Err(not_found(&src));
        };
        let dst_resolved = self.tree.resolve(&dst);
        self.require_directories(&dst, dst_resolved.ancestors())?;
        if dst_resolved.target().is_some() {
            return Err(Error::AlreadyExists {
                path: dst.as_str().to_owned(),
            });
        }
        let (Some(dst_parent), Some(dst_name)) = (dst_resolved.parent(), dst.components().last())
        else {
            return Err(not_found(&dst));
        };
        let id = self
            .tree
            .detach(src_parent, src_name)
            .ok_or_else(|| not_found(&src))?;
        if !self.tree.attach(dst_parent, dst_name, id) {
            // Unreachable after the checks above; restore rather than lose the subtree.
            self.tree.attach(src_parent, src_name, id);
            return Err(not_fitting("rename", &dst));
        }
        self.touch(src_parent, mtime_ms);
        self.touch(dst_parent, mtime_ms);
        Ok(())
    }

    fn apply_add_block(
        &mut self,
        path: &str,
        previous: Option<&BlockRecord>,
        block: &BlockRecord,
    ) -> Result<Vec<BlockRecord>, Error> {
        let (path, id, file) = self.under_construction_at(path)?;
        if let Some(previous) = previous {
            validate_length(file, previous, "previous")?;
        }
        if !is_same_block(previous, file.blocks.last()) {
            return Err(block_mismatch(&path, file.blocks.last(), previous));
        }
        if block.length != 0 {
            return Err(Error::InvalidArgument {
                field: "block",
                reason: format!("new {block} has {} bytes, not 0", block.length),
            });
        }
        self.require_unallocated(Some(block.id), Some(block.gen_stamp))?;
        // Validated; the new id is above every id in use, so it fits.
        if !self.tree.push_block(id, *block) {
            return Err(not_fitting("add block", &path));
        }
        if let Some(previous) = previous {
            let committed = self.tree.file_mut(id).and_then(|f| {
                let n = f.blocks.len();
                f.blocks.get_mut(n.checked_sub(2)?)
            });
            if let Some(committed) = committed {
                committed.length = previous.length;
            }
        }
        self.tree
            .advance_counters(Some(block.id), Some(block.gen_stamp));
        Ok(Vec::new())
    }

    fn apply_append(
        &mut self,
        path: &str,
        client: &str,
        reopen: Option<Reopen>,
    ) -> Result<(), Error> {
        let path = FsPath::parse(path)?;
        validate_client(client)?;
        let id = self
            .tree
            .resolve(&path)
            .target()
            .ok_or_else(|| not_found(&path))?;
        let Some(file) = self.inode(id)?.file() else {
            return Err(Error::IsADirectory {
                path: path.as_str().to_owned(),
            });
        };
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
        if let Some(reopen) = reopen {
            let fits = file
                .blocks
                .last()
                .is_some_and(|b| b.length < file.block_size && b.gen_stamp == reopen.previous);
            if !fits {
                return Err(not_fitting("append", &path));
            }
            self.require_unallocated(None, Some(reopen.gen_stamp))?;
        }
        // Validated; from here on nothing can fail for a well-formed tree.
        if !self.tree.reopen_file(id, client, reopen) {
            return Err(not_fitting("append", &path));
        }
        if let Some(reopen) = reopen {
            self.tree.advance_counters(None, Some(reopen.gen_stamp));
        }
        Ok(())
    }

    /// The file under construction at `path`: its normalised path, id and metadata.
    fn under_construction_at(&self, path: &str) -> Result<(FsPath, InodeId, &File), Error> {
        let path = FsPath::parse(path)?;
        let id = self
            .tree
            .resolve(&path)
            .target()
            .ok_or_else(|| not_found(&path))?;
        let Some(file) = self.inode(id)?.file() else {
            return Err(Error::IsADirectory {
                path: path.as_str().to_owned(),
            });
        };
        if !file.is_under_construction() {
            return Err(Error::LeaseMismatch {
                path: path.as_str().to_owned(),
                holder: None,
                client: String::new(),
            });
        }
        Ok((path, id, file))
    }

    /// Errors unless a txn's new block id and stamp come from the counters
    /// (at or above them), so ids are never reused and replay allocates the
    /// same ones.
    fn require_unallocated(
        &self,
        id: Option<BlockId>,
        gen_stamp: Option<GenStamp>,
    ) -> Result<(), Error> {
        if let Some(id) = id.filter(|&id| id < self.tree.next_block_id()) {
            return Err(Error::InvalidArgument {
                field: "block",
                reason: format!(
                    "{id} was handed out before (next is {})",
                    self.tree.next_block_id()
                ),
            });
        }
        if let Some(gs) = gen_stamp.filter(|&gs| gs < self.tree.next_gen_stamp()) {
            return Err(Error::InvalidArgument {
                field: "gen_stamp",
                reason: format!(
                    "{gs} was handed out before (next is {})",
                    self.tree.next_gen_stamp()
                ),
            });
        }
        Ok(())
    }

    /// Errors unless every inode in `ids` (ancestors of `path`) is a directory.
    fn require_directories(&self, path: &FsPath, ids: &[InodeId]) -> Result<(), Error> {
        for (depth, &id) in ids.iter().enumerate() {
            if !self.inode(id)?.is_dir() {
                return Err(Error::NotADirectory {
                    path: path.prefix(depth).to_owned(),
                });
            }
        }
        Ok(())
    }

    /// The existing inode at `path`, mutably.
    fn existing_mut(&mut self, path: &str) -> Result<&mut Inode, Error> {
        let path = FsPath::parse(path)?;
        let id = self.tree.resolve(&path).target();
        id.and_then(|id| self.tree.get_mut(id))
            .ok_or_else(|| not_found(&path))
    }

    /// Sets a directory's mtime after an entry was added or removed.
    fn touch(&mut self, id: InodeId, mtime_ms: u64) {
        if let Some(inode) = self.tree.get_mut(id) {
            inode.mtime_ms = mtime_ms;
        }
    }
}

/// Where a planned directory's parent comes from.
enum Parent {
    Existing(InodeId),
    /// Index into the txn's directories.
    Planned(usize),
}

fn parse_not_root(path: &str) -> Result<FsPath, Error> {
    let path = FsPath::parse(path)?;
    if path.is_root() {
        return Err(Error::InvalidPath {
            path: path.as_str().to_owned(),
            reason: "the root directory cannot be created, replaced, deleted or moved",
        });
    }
    Ok(path)
}

fn validate_perm(perm: &PermissionStatus) -> Result<(), Error> {
    validate_principal("owner", &perm.owner)?;
    validate_principal("group", &perm.group)?;
    validate_mode(perm.mode)?;
    Ok(())
}

fn not_found(path: &FsPath) -> Error {
    super::not_found(path)
}

fn not_fitting(what: &str, path: &FsPath) -> Error {
    not_fitting_str(what, path.as_str())
}

fn not_fitting_str(what: &str, path: &str) -> Error {
    Error::InvalidArgument {
        field: "txn",
        reason: format!("{what} of '{path}' does not fit the tree"),
    }
}
