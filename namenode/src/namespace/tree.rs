//! The inode arena: every inode by id, directories holding `name -> id`.
//!
//! A flat map instead of nested boxes keeps every walk iterative: a hostile
//! client can build a tree thousands of levels deep (rename a deep directory
//! under another), and serialising, cloning, dropping or hashing it must not
//! recurse. Ids are handed out in order and never reused, so the same log
//! gives the same ids. Block ids and generation stamps come from counters
//! kept here too, so that replaying a log allocates the same ones.
//!
//! Three indexes are derived from the arena, never serialised, rebuilt on
//! load and kept up to date by every change: block id -> file, inode ->
//! (parent, name) to turn a block's file back into a path, and the files
//! under construction (the lease monitor's worklist).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::txn::{BlockId, BlockRecord, GenStamp, PermissionStatus, Reopen};

use super::path::{FsPath, is_valid_name, join};
use super::permission::MAX_MODE;

/// An inode's id, unique for the namespace's whole life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct InodeId(pub(crate) u64);

impl InodeId {
    /// The root directory.
    pub(crate) const ROOT: InodeId = InodeId(1);
}

impl fmt::Display for InodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A file or a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Inode {
    /// Owner, group and mode.
    pub(crate) perm: PermissionStatus,
    /// Milliseconds since the Unix epoch.
    pub(crate) mtime_ms: u64,
    /// Milliseconds since the Unix epoch (0 for directories, as in HDFS).
    pub(crate) atime_ms: u64,
    /// Directory entries or file metadata.
    pub(crate) body: Body,
}

/// What kind of inode, with the kind's own state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Body {
    /// A directory and its entries.
    Directory(Directory),
    /// A file.
    File(File),
}

/// A directory's entries, in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Directory {
    /// Entry name -> inode.
    pub(crate) children: BTreeMap<String, InodeId>,
}

/// A file's metadata, blocks and lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct File {
    /// Target replica count.
    pub(crate) replication: u16,
    /// Bytes per block.
    pub(crate) block_size: u64,
    /// In file order. Change the list only through [`Tree`], which indexes it.
    pub(crate) blocks: Vec<BlockRecord>,
    /// The client writing the file while it is under construction (HDFS's
    /// lease holder); `None` once it is complete. Release it only through
    /// [`Tree::close_file`], which indexes it.
    pub(crate) lease_holder: Option<String>,
    /// When the last block is a finalized block that an append reopened
    /// (its length is the bytes it held then, not 0): the stamp its
    /// finalized replicas carried. Lease recovery must not drop the block,
    /// and those replicas are not stale until it is closed. Cleared when
    /// another block follows or the file closes.
    #[serde(default)]
    pub(crate) reopened_from: Option<GenStamp>,
}

impl File {
    /// A new, empty file under construction by `client`.
    pub(crate) fn under_construction(replication: u16, block_size: u64, client: &str) -> Self {
        File {
            replication,
            block_size,
            blocks: Vec::new(),
            lease_holder: Some(client.to_owned()),
            reopened_from: None,
        }
    }

    /// Bytes in the file: the sum of its blocks' recorded lengths (the last
    /// block of a file under construction is 0 until committed).
    pub(crate) fn length(&self) -> u64 {
        self.blocks.iter().map(|b| b.length).sum()
    }

    /// Whether a client is still writing the file.
    pub(crate) fn is_under_construction(&self) -> bool {
        self.lease_holder.is_some()
    }
}

impl Inode {
    /// A new, empty directory.
    pub(crate) fn directory(perm: PermissionStatus, mtime_ms: u64) -> Self {
        Inode {
            perm,
            mtime_ms,
            atime_ms: 0,
            body: Body::Directory(Directory::default()),
        }
    }

    /// Whether this is a directory.
    pub(crate) fn is_dir(&self) -> bool {
        matches!(self.body, Body::Directory(_))
    }

    /// The directory's entries, or `None` for a file.
    pub(crate) fn dir(&self) -> Option<&Directory> {
        match &self.body {
            Body::Directory(d) => Some(d),
            Body::File(_) => None,
        }
    }

    /// The file's metadata, or `None` for a directory.
    pub(crate) fn file(&self) -> Option<&File> {
        match &self.body {
            Body::File(f) => Some(f),
            Body::Directory(_) => None,
        }
    }

    /// The entry `name` of this directory.
    pub(crate) fn child(&self, name: &str) -> Option<InodeId> {
        self.dir().and_then(|d| d.children.get(name).copied())
    }
}

/// How far a path resolves in the tree (HDFS `INodesInPath`).
#[derive(Debug)]
pub(crate) struct Resolved {
    /// Root first, then one id per existing component. Resolution stops at the
    /// first missing component, or at a file that has components after it.
    ids: Vec<InodeId>,
    /// Components in the path.
    depth: usize,
}

impl Resolved {
    /// The path's own inode, when every component exists.
    pub(crate) fn target(&self) -> Option<InodeId> {
        if self.ids.len() == self.depth + 1 {
            self.ids.last().copied()
        } else {
            None
        }
    }

    /// The existing ancestors (root first), not including the target itself.
    pub(crate) fn ancestors(&self) -> &[InodeId] {
        let n = self.ids.len().min(self.depth);
        self.ids.get(..n).unwrap_or_default()
    }

    /// The deepest existing ancestor and its depth (`/` is at depth 0).
    pub(crate) fn deepest_ancestor(&self) -> (usize, InodeId) {
        let ancestors = self.ancestors();
        match ancestors.last() {
            Some(&id) => (ancestors.len() - 1, id),
            None => (0, InodeId::ROOT),
        }
    }

    /// The parent directory of the target, when it exists.
    pub(crate) fn parent(&self) -> Option<InodeId> {
        if self.depth > 0 && self.ids.len() >= self.depth {
            self.ids.get(self.depth - 1).copied()
        } else {
            None
        }
    }
}

/// First block id handed out: HDFS keeps the ids below for legacy random ids.
pub(crate) const FIRST_BLOCK_ID: BlockId = BlockId(1 << 30);
/// First generation stamp handed out: HDFS reserves the stamps up to 1000.
pub(crate) const FIRST_GEN_STAMP: GenStamp = GenStamp(1001);

/// The inode arena.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "TreeImage")]
pub(crate) struct Tree {
    inodes: BTreeMap<InodeId, Inode>,
    /// The next id to hand out; above every id in `inodes`.
    next_id: InodeId,
    /// The next block id to hand out; above every block id ever used.
    next_block_id: BlockId,
    /// The next generation stamp to hand out; above every stamp ever used.
    next_gen_stamp: GenStamp,
    /// Derived: block id -> the file that holds it.
    #[serde(skip)]
    blocks: HashMap<BlockId, InodeId>,
    /// Derived: inode -> (parent directory, entry name), for every linked
    /// inode but the root.
    #[serde(skip)]
    parents: HashMap<InodeId, (InodeId, String)>,
    /// Derived: the files under construction (with a lease holder).
    #[serde(skip)]
    open_files: BTreeSet<InodeId>,
}

impl Tree {
    /// A tree holding only the root directory.
    pub(crate) fn new(root: Inode) -> Self {
        Tree {
            inodes: BTreeMap::from([(InodeId::ROOT, root)]),
            next_id: InodeId(InodeId::ROOT.0 + 1),
            next_block_id: FIRST_BLOCK_ID,
            next_gen_stamp: FIRST_GEN_STAMP,
            blocks: HashMap::new(),
            parents: HashMap::new(),
            open_files: BTreeSet::new(),
        }
    }

    /// Number of inodes, the root included.
    pub(crate) fn len(&self) -> u64 {
        self.inodes.len() as u64
    }

    /// Every inode, linked ones only (the tree holds no others), in id order.
    pub(crate) fn inodes(&self) -> impl Iterator<Item = &Inode> + '_ {
        self.inodes.values()
    }

    /// The inode with this id.
    pub(crate) fn get(&self, id: InodeId) -> Option<&Inode> {
        self.inodes.get(&id)
    }

    /// The inode with this id, mutably. Callers must not change a
    /// directory's entries, a file's block ids or its lease holder through
    /// it (the indexes would go stale): use [`Tree::insert`],
    /// [`Tree::remove`], [`Tree::push_block`], [`Tree::pop_block`] and
    /// [`Tree::close_file`].
    pub(crate) fn get_mut(&mut self, id: InodeId) -> Option<&mut Inode> {
        self.inodes.get_mut(&id)
    }

    /// The file with this id, mutably; the same rules as [`Tree::get_mut`].
    pub(crate) fn file_mut(&mut self, id: InodeId) -> Option<&mut File> {
        match self.inodes.get_mut(&id).map(|i| &mut i.body) {
            Some(Body::File(file)) => Some(file),
            _ => None,
        }
    }

    /// The block id the next new block gets.
    pub(crate) fn next_block_id(&self) -> BlockId {
        self.next_block_id
    }

    /// The generation stamp the next new block or bump gets.
    pub(crate) fn next_gen_stamp(&self) -> GenStamp {
        self.next_gen_stamp
    }

    /// Moves the counters past a block id and a stamp a txn used.
    pub(crate) fn advance_counters(&mut self, id: Option<BlockId>, gen_stamp: Option<GenStamp>) {
        if let Some(id) = id {
            self.next_block_id = self.next_block_id.max(BlockId(id.0.saturating_add(1)));
        }
        if let Some(gs) = gen_stamp {
            self.next_gen_stamp = self.next_gen_stamp.max(GenStamp(gs.0.saturating_add(1)));
        }
    }

    /// The file that holds block `id`.
    pub(crate) fn block_file(&self, id: BlockId) -> Option<InodeId> {
        self.blocks.get(&id).copied()
    }

    /// Every block id in the tree, in no particular order.
    #[cfg(test)]
    pub(crate) fn block_ids(&self) -> impl Iterator<Item = BlockId> + '_ {
        self.blocks.keys().copied()
    }

    /// Appends `block` to file `file`; `false` (and no change) when `file`
    /// is not a file or the block id is already in use.
    pub(crate) fn push_block(&mut self, file: InodeId, block: BlockRecord) -> bool {
        if self.blocks.contains_key(&block.id) {
            return false;
        }
        let Some(f) = self.file_mut(file) else {
            return false;
        };
        f.blocks.push(block);
        f.reopened_from = None;
        self.blocks.insert(block.id, file);
        true
    }

    /// Removes and returns file `file`'s last block.
    pub(crate) fn pop_block(&mut self, file: InodeId) -> Option<BlockRecord> {
        let f = self.file_mut(file)?;
        let block = f.blocks.pop()?;
        f.reopened_from = None;
        self.blocks.remove(&block.id);
        Some(block)
    }

    /// Releases file `file`'s lease: it is complete from now on.
    pub(crate) fn close_file(&mut self, file: InodeId) {
        if let Some(f) = self.file_mut(file) {
            f.lease_holder = None;
            f.reopened_from = None;
        }
        self.open_files.remove(&file);
    }

    /// Puts complete file `file` under construction again for `client`
    /// (append); with `reopen`, its last block moves to the new generation
    /// stamp and is marked reopened. `false` (and no change) when `file` is
    /// not a file, or `reopen` is given and it has no block.
    pub(crate) fn reopen_file(
        &mut self,
        file: InodeId,
        client: &str,
        reopen: Option<Reopen>,
    ) -> bool {
        let Some(f) = self.file_mut(file) else {
            return false;
        };
        if let Some(reopen) = reopen {
            let Some(last) = f.blocks.last_mut() else {
                return false;
            };
            last.gen_stamp = reopen.gen_stamp;
            f.reopened_from = Some(reopen.previous);
        }
        f.lease_holder = Some(client.to_owned());
        self.open_files.insert(file);
        true
    }

    /// The files under construction, by id.
    pub(crate) fn open_files(&self) -> impl Iterator<Item = InodeId> + '_ {
        self.open_files.iter().copied()
    }

    /// The absolute path of a linked inode, from the parent index.
    pub(crate) fn path_of(&self, id: InodeId) -> Option<String> {
        let mut names = Vec::new();
        let mut current = id;
        while current != InodeId::ROOT {
            // A path cannot have more components than the tree has inodes.
            if names.len() > self.inodes.len() {
                return None;
            }
            let (parent, name) = self.parents.get(&current)?;
            names.push(name.as_str());
            current = *parent;
        }
        if names.is_empty() {
            return Some("/".to_owned());
        }
        Some(names.iter().rev().fold(String::new(), |mut p, n| {
            p.push('/');
            p.push_str(n);
            p
        }))
    }

    /// Follows `path` from the root as far as it exists.
    pub(crate) fn resolve(&self, path: &FsPath) -> Resolved {
        let mut ids = vec![InodeId::ROOT];
        let mut current = self.get(InodeId::ROOT);
        for name in path.components() {
            match current.and_then(|inode| inode.child(name)) {
                Some(id) => {
                    ids.push(id);
                    current = self.get(id);
                }
                None => break,
            }
        }
        Resolved {
            ids,
            depth: path.depth(),
        }
    }

    /// Adds `inode` as entry `name` of directory `parent`; returns its id, or
    /// `None` (and changes nothing) when `parent` is not a directory, already
    /// has `name`, or `inode` holds a block id already in use.
    pub(crate) fn insert(&mut self, parent: InodeId, name: &str, inode: Inode) -> Option<InodeId> {
        let id = self.next_id;
        let blocks: Vec<BlockId> = inode.file().into_iter().flat_map(block_ids).collect();
        let is_open = inode.file().is_some_and(File::is_under_construction);
        if blocks.iter().any(|b| self.blocks.contains_key(b)) {
            return None;
        }
        let Some(Body::Directory(dir)) = self.inodes.get_mut(&parent).map(|p| &mut p.body) else {
            return None;
        };
        if dir.children.contains_key(name) {
            return None;
        }
        dir.children.insert(name.to_owned(), id);
        self.inodes.insert(id, inode);
        self.parents.insert(id, (parent, name.to_owned()));
        self.blocks.extend(blocks.into_iter().map(|b| (b, id)));
        if is_open {
            self.open_files.insert(id);
        }
        self.next_id = InodeId(id.0 + 1);
        Some(id)
    }

    /// Removes entry `name` of directory `parent` and everything below it;
    /// returns the blocks of the files removed, in tree order.
    pub(crate) fn remove(&mut self, parent: InodeId, name: &str) -> Option<Vec<BlockRecord>> {
        let id = self.detach(parent, name)?;
        let mut freed = Vec::new();
        let mut pending = vec![id];
        while let Some(id) = pending.pop() {
            self.parents.remove(&id);
            self.open_files.remove(&id);
            match self.inodes.remove(&id).map(|i| i.body) {
                Some(Body::Directory(dir)) => {
                    pending.extend(dir.children.into_values().rev());
                }
                Some(Body::File(file)) => {
                    for block in &file.blocks {
                        self.blocks.remove(&block.id);
                    }
                    freed.extend(file.blocks);
                }
                None => {}
            }
        }
        Some(freed)
    }

    /// Unlinks entry `name` from directory `parent` without freeing it.
    pub(crate) fn detach(&mut self, parent: InodeId, name: &str) -> Option<InodeId> {
        let id = match self.inodes.get_mut(&parent).map(|p| &mut p.body) {
            Some(Body::Directory(dir)) => dir.children.remove(name),
            _ => None,
        }?;
        self.parents.remove(&id);
        Some(id)
    }

    /// Links the existing inode `id` as entry `name` of directory `parent`;
    /// `false` (and no change) when that is impossible.
    pub(crate) fn attach(&mut self, parent: InodeId, name: &str, id: InodeId) -> bool {
        match self.inodes.get_mut(&parent).map(|p| &mut p.body) {
            Some(Body::Directory(dir)) if !dir.children.contains_key(name) => {
                dir.children.insert(name.to_owned(), id);
                self.parents.insert(id, (parent, name.to_owned()));
                true
            }
            _ => false,
        }
    }

    /// Calls `f` on every directory at or below `top`, depth first in name
    /// order, stopping at the first error. `f` also gets a function that
    /// builds the directory's path, so paths cost nothing unless asked for.
    pub(crate) fn try_for_each_directory<E>(
        &self,
        top: InodeId,
        top_path: &str,
        mut f: impl FnMut(&Inode, &dyn Fn() -> String) -> Result<(), E>,
    ) -> Result<(), E> {
        // (inode, depth below top, name); `names` holds the current path below top.
        let mut pending: Vec<(InodeId, usize, &str)> = vec![(top, 0, "")];
        let mut names: Vec<&str> = Vec::new();
        while let Some((id, depth, name)) = pending.pop() {
            let Some(inode) = self.get(id) else { continue };
            let Some(dir) = inode.dir() else { continue };
            names.truncate(depth.saturating_sub(1));
            if depth > 0 {
                names.push(name);
            }
            let path = || names.iter().fold(top_path.to_owned(), |p, n| join(&p, n));
            f(inode, &path)?;
            for (name, &child) in dir.children.iter().rev() {
                pending.push((child, depth + 1, name));
            }
        }
        Ok(())
    }

    /// A stable FNV-1a digest of names, kinds, permissions, times, sizes,
    /// blocks and lease holders, walking the tree depth first in name order,
    /// then the block id and stamp counters. Inode ids and the derived
    /// indexes are not included.
    pub(crate) fn digest(&self) -> u64 {
        enum Step<'t> {
            Enter(&'t str, InodeId),
            Leave,
        }
        let mut h = Fnv::new();
        let mut pending = vec![Step::Enter("", InodeId::ROOT)];
        while let Some(step) = pending.pop() {
            let (name, id) = match step {
                Step::Enter(name, id) => (name, id),
                Step::Leave => {
                    h.u8(b')');
                    continue;
                }
            };
            h.u8(b'(');
            h.str(name);
            let Some(inode) = self.get(id) else {
                h.u8(b'?');
                continue;
            };
            h.str(&inode.perm.owner);
            h.str(&inode.perm.group);
            h.u64(inode.perm.mode.into());
            h.u64(inode.mtime_ms);
            h.u64(inode.atime_ms);
            match &inode.body {
                Body::File(file) => {
                    h.u8(b'f');
                    h.u64(file.replication.into());
                    h.u64(file.block_size);
                    h.u64(file.length());
                    match &file.lease_holder {
                        Some(holder) => {
                            h.u8(b'L');
                            h.str(holder);
                        }
                        None => h.u8(b'-'),
                    }
                    if let Some(previous) = file.reopened_from {
                        h.u8(b'R');
                        h.u64(previous.0);
                    }
                    h.u64(file.blocks.len() as u64);
                    for block in &file.blocks {
                        h.u64(block.id.0);
                        h.u64(block.gen_stamp.0);
                        h.u64(block.length);
                    }
                    h.u8(b')');
                }
                Body::Directory(dir) => {
                    h.u8(b'd');
                    pending.push(Step::Leave);
                    for (name, &child) in dir.children.iter().rev() {
                        pending.push(Step::Enter(name, child));
                    }
                }
            }
        }
        h.u64(self.next_block_id.0);
        h.u64(self.next_gen_stamp.0);
        h.finish()
    }
}

fn block_ids(file: &File) -> impl Iterator<Item = BlockId> + '_ {
    file.blocks.iter().map(|b| b.id)
}

/// A tree as decoded from a checkpoint, before it is trusted.
#[derive(Deserialize)]
struct TreeImage {
    inodes: BTreeMap<InodeId, Inode>,
    next_id: InodeId,
    next_block_id: BlockId,
    next_gen_stamp: GenStamp,
}

impl TryFrom<TreeImage> for Tree {
    type Error = String;

    /// Accepts only a proper tree: a root directory from which every inode is
    /// reachable exactly once through validly named entries, modes within
    /// `0o7777`, `next_id` above every id, and every block in exactly one
    /// file, within its block size and below both counters. A corrupt image
    /// must not turn into a cycle that hangs a walk. Builds the indexes.
    fn try_from(image: TreeImage) -> Result<Self, String> {
        let TreeImage {
            inodes,
            next_id,
            next_block_id,
            next_gen_stamp,
        } = image;
        match inodes.get(&InodeId::ROOT) {
            Some(root) if root.is_dir() => {}
            _ => return Err("no root directory".to_owned()),
        }
        if let Some((&max, _)) = inodes.last_key_value()
            && max >= next_id
        {
            return Err(format!("inode id {max} is not below next id {next_id}"));
        }
        let mut blocks = HashMap::new();
        let mut parents = HashMap::new();
        let mut open_files = BTreeSet::new();
        let mut pending = vec![InodeId::ROOT];
        while let Some(id) = pending.pop() {
            let inode = inodes
                .get(&id)
                .ok_or_else(|| format!("entry points at missing inode {id}"))?;
            if inode.perm.mode > MAX_MODE {
                return Err(format!("inode {id} has mode {:#o}", inode.perm.mode));
            }
            if let Some(file) = inode.file() {
                validate_file_image(id, file, next_block_id, next_gen_stamp)?;
                if file.is_under_construction() {
                    open_files.insert(id);
                }
                for block in &file.blocks {
                    if blocks.insert(block.id, id).is_some() {
                        return Err(format!("{} is in more than one place", block.id));
                    }
                }
            }
            for (name, &child) in inode.dir().map(|d| &d.children).into_iter().flatten() {
                if !is_valid_name(name) {
                    return Err(format!("inode {id} has an entry with an invalid name"));
                }
                if child == InodeId::ROOT || parents.insert(child, (id, name.clone())).is_some() {
                    return Err(format!("inode {child} is linked more than once"));
                }
                pending.push(child);
            }
        }
        if parents.len() + 1 != inodes.len() {
            return Err(format!(
                "{} inodes are unreachable from the root",
                inodes.len().saturating_sub(parents.len() + 1)
            ));
        }
        Ok(Tree {
            inodes,
            next_id,
            next_block_id,
            next_gen_stamp,
            blocks,
            parents,
            open_files,
        })
    }
}

fn validate_file_image(
    id: InodeId,
    file: &File,
    next_block_id: BlockId,
    next_gen_stamp: GenStamp,
) -> Result<(), String> {
    if file.lease_holder.as_deref() == Some("") {
        return Err(format!("inode {id} has an empty lease holder"));
    }
    if file.reopened_from.is_some() && (file.lease_holder.is_none() || file.blocks.is_empty()) {
        return Err(format!(
            "inode {id} has a reopened last block but is not being appended to"
        ));
    }
    for block in &file.blocks {
        if block.id >= next_block_id || block.gen_stamp >= next_gen_stamp {
            return Err(format!(
                "inode {id} has {block}, not below the counters {next_block_id}_{next_gen_stamp}"
            ));
        }
        if block.length > file.block_size {
            return Err(format!(
                "inode {id} has {block} of {} bytes, above its block size",
                block.length
            ));
        }
    }
    Ok(())
}

/// 64-bit FNV-1a: tiny, stable across platforms and releases.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn u8(&mut self, b: u8) {
        self.bytes(&[b]);
    }

    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    /// Length-prefixed, so adjacent strings cannot run together.
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.bytes(s.as_bytes());
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm() -> PermissionStatus {
        PermissionStatus {
            owner: "o".into(),
            group: "g".into(),
            mode: 0o755,
        }
    }

    fn tree_with_a_b() -> Tree {
        let mut tree = Tree::new(Inode::directory(perm(), 0));
        let a = tree
            .insert(InodeId::ROOT, "a", Inode::directory(perm(), 1))
            .unwrap();
        tree.insert(a, "b", Inode::directory(perm(), 2)).unwrap();
        tree
    }

    #[test]
    fn fnv_matches_the_reference_vectors() {
        let mut h = Fnv::new();
        h.bytes(b"");
        assert_eq!(h.finish(), 0xcbf2_9ce4_8422_2325);
        let mut h = Fnv::new();
        h.bytes(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
        let mut h = Fnv::new();
        h.bytes(b"foobar");
        assert_eq!(h.finish(), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn images_with_cycles_or_orphans_are_refused() {
        let good = tree_with_a_b();
        let image = |inodes: &BTreeMap<InodeId, Inode>, next_id| TreeImage {
            inodes: inodes.clone(),
            next_id,
            next_block_id: FIRST_BLOCK_ID,
            next_gen_stamp: FIRST_GEN_STAMP,
        };
        assert!(Tree::try_from(image(&good.inodes, good.next_id)).is_ok());

        let mut cycle = good.inodes.clone();
        let b = InodeId(3);
        if let Some(Body::Directory(dir)) = cycle.get_mut(&b).map(|i| &mut i.body) {
            dir.children.insert("up".into(), InodeId::ROOT);
        }
        let err = Tree::try_from(image(&cycle, good.next_id)).unwrap_err();
        assert!(err.contains("linked more than once"), "{err}");

        let mut orphan = good.inodes.clone();
        orphan.insert(InodeId(9), Inode::directory(perm(), 0));
        let err = Tree::try_from(image(&orphan, InodeId(10))).unwrap_err();
        assert!(err.contains("unreachable"), "{err}");

        let err = Tree::try_from(image(&good.inodes, InodeId(3))).unwrap_err();
        assert!(err.contains("not below next id"), "{err}");

        let mut dangling = good.inodes.clone();
        dangling.remove(&b);
        let err = Tree::try_from(image(&dangling, good.next_id)).unwrap_err();
        assert!(err.contains("missing inode"), "{err}");
    }

    #[test]
    fn removing_a_directory_frees_its_whole_subtree() {
        let mut tree = tree_with_a_b();
        assert_eq!(tree.len(), 3);
        assert_eq!(tree.remove(InodeId::ROOT, "a"), Some(vec![]));
        assert_eq!(tree.len(), 1);
        assert_eq!(tree.remove(InodeId::ROOT, "a"), None);
    }

    #[test]
    fn a_very_deep_tree_is_walked_without_recursion() {
        let mut tree = Tree::new(Inode::directory(perm(), 0));
        let mut parent = InodeId::ROOT;
        for _ in 0..100_000 {
            parent = tree
                .insert(parent, "d", Inode::directory(perm(), 0))
                .unwrap();
        }
        let copy = tree.clone();
        assert_eq!(copy.digest(), tree.digest());
        let bytes = postcard::to_stdvec(&tree).unwrap();
        let back: Tree = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.digest(), tree.digest());
        let mut dirs = 0;
        let mut deepest = String::new();
        tree.try_for_each_directory(InodeId::ROOT, "/", |_, path| {
            dirs += 1;
            if dirs == 4 {
                deepest = path();
            }
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(dirs, 100_001);
        assert_eq!(deepest, "/d/d/d");
        tree.remove(InodeId::ROOT, "d");
        assert_eq!(tree.len(), 1);
    }
}
