//! The start-up scan: rebuilds the replica map from `finalized/` and `rbw/`,
//! completes finalizes a crash interrupted, and moves corrupt replicas aside.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use dfs_proto::checksum::chunk_checksums;
use dfs_proto::ids::{BlockId, GenStamp};

use super::error::Corruption;
use super::layout::{
    self, CHECKSUM_LEN, CHUNK, FileName, Layout, META_HEADER_LEN, block_file_name, meta_file_name,
};
use super::{CorruptReplica, ReplicaInfo, ReplicaState, ScanReport};

/// Bytes of an rbw replica checked per step while recovering its valid length.
const RECOVER_SLICE: u64 = 1024 * 1024;

/// The files of one block found in one directory.
#[derive(Debug, Default)]
struct Found {
    /// The block file's length.
    block: Option<u64>,
    /// Meta files by generation stamp, with their lengths.
    metas: BTreeMap<GenStamp, u64>,
}

/// What the scan found: valid finalized replicas, recovered rbw replicas, and the report.
#[derive(Debug, Default)]
pub(super) struct Scanned {
    pub(super) finalized: HashMap<BlockId, ReplicaInfo>,
    pub(super) rbw: Vec<ReplicaInfo>,
    pub(super) report: ScanReport,
}

/// Scans a data dir whose directories exist.
pub(super) fn scan(layout: &Layout) -> io::Result<Scanned> {
    let mut out = Scanned::default();
    let mut rbw = list_replica_files(&layout.rbw, &mut out.report.ignored)?;
    let mut finalized = walk_finalized(layout, &mut out.report.ignored)?;
    roll_forward(layout, &mut rbw, &mut finalized, &mut out.report)?;
    for (block, found) in finalized {
        scan_finalized(layout, block, found, &mut out)?;
    }
    for (block, found) in rbw {
        scan_rbw(layout, block, found, &mut out)?;
    }
    Ok(out)
}

/// Lists `blk_*` regular files of one directory; anything else is ignored with a warning.
fn list_replica_files(
    dir: &Path,
    ignored: &mut Vec<PathBuf>,
) -> io::Result<BTreeMap<BlockId, Found>> {
    let mut found: BTreeMap<BlockId, Found> = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let parsed = name.to_str().and_then(layout::parse_file_name);
        let (Some(parsed), true) = (parsed, entry.file_type()?.is_file()) else {
            tracing::warn!(path = %path.display(), "ignoring a file the block store did not write");
            ignored.push(path);
            continue;
        };
        let len = entry.metadata()?.len();
        match parsed {
            FileName::Block(b) => found.entry(b).or_default().block = Some(len),
            FileName::Meta(b, gs) => {
                found.entry(b).or_default().metas.insert(gs, len);
            }
        }
    }
    Ok(found)
}

/// Lists `finalized/subdir<a>/subdir<b>/blk_*`, keeping only files in their block's own subdir.
fn walk_finalized(
    layout: &Layout,
    ignored: &mut Vec<PathBuf>,
) -> io::Result<BTreeMap<BlockId, Found>> {
    let mut all = BTreeMap::new();
    let mut ignore = |path: PathBuf| {
        tracing::warn!(path = %path.display(), "ignoring a file the block store did not write");
        ignored.push(path);
    };
    for top in fs::read_dir(&layout.finalized)? {
        let top = top?;
        let a = top.file_name().to_str().and_then(layout::parse_subdir);
        let (Some(a), true) = (a, top.file_type()?.is_dir()) else {
            ignore(top.path());
            continue;
        };
        for mid in fs::read_dir(top.path())? {
            let mid = mid?;
            let b = mid.file_name().to_str().and_then(layout::parse_subdir);
            let (Some(b), true) = (b, mid.file_type()?.is_dir()) else {
                ignore(mid.path());
                continue;
            };
            let mut stray = Vec::new();
            for (block, found) in list_replica_files(&mid.path(), &mut stray)? {
                if layout::subdirs_of(block) == (a, b) {
                    all.insert(block, found);
                } else {
                    // Reading it from here would need a second lookup path; it is
                    // not something this store writes.
                    if found.block.is_some() {
                        ignore(mid.path().join(block_file_name(block)));
                    }
                    for gs in found.metas.keys() {
                        ignore(mid.path().join(meta_file_name(block, *gs)));
                    }
                }
            }
            for path in stray {
                ignore(path);
            }
        }
    }
    Ok(all)
}

/// Completes finalizes a crash interrupted between their two renames.
///
/// `finalize` renames the meta file into `finalized/` first and the block
/// file second. A crash in between leaves a meta-less block file in `rbw/`
/// and, in `finalized/`, a newest meta file that has no block file or sits
/// next to the old generation's pair. The block file in `rbw/` was fsynced
/// before the renames, so the finalize is redone.
fn roll_forward(
    layout: &Layout,
    rbw: &mut BTreeMap<BlockId, Found>,
    finalized: &mut BTreeMap<BlockId, Found>,
    report: &mut ScanReport,
) -> io::Result<()> {
    for (&block, r) in rbw.iter_mut() {
        let (Some(len), true) = (r.block, r.metas.is_empty()) else {
            continue;
        };
        let Some(f) = finalized.get_mut(&block) else {
            continue;
        };
        let Some((&gs, &meta_len)) = f.metas.last_key_value() else {
            continue;
        };
        let is_interrupted = f.block.is_none() || f.metas.len() >= 2;
        if !is_interrupted || layout::check_lengths(len, meta_len).is_err() {
            continue;
        }
        fs::rename(layout.rbw_block(block), layout.finalized_block(block))?;
        layout::fsync_dir(&layout.finalized_dir(block))?;
        tracing::info!(%block, gen_stamp = %gs, "completed a finalize interrupted by a crash");
        f.block = Some(len);
        r.block = None;
        report.rolled_forward.push(block);
    }
    Ok(())
}

fn scan_finalized(
    layout: &Layout,
    block: BlockId,
    mut found: Found,
    out: &mut Scanned,
) -> io::Result<()> {
    let newest = found.metas.pop_last();
    // Older metas next to a newer one are left by a finalize that replaced an
    // older replica and crashed before deleting its meta: the block file is
    // the newest one's (it was renamed after the newest meta).
    for &gs in found.metas.keys() {
        tracing::warn!(%block, gen_stamp = %gs, "removing a stale meta file");
        layout::remove_if_present(&layout.finalized_meta(block, gs))?;
    }
    let corrupt = |gen_stamp, reason| CorruptReplica {
        block,
        gen_stamp,
        state: ReplicaState::Finalized,
        reason,
    };
    let verdict = match (found.block, newest) {
        (Some(len), Some((gs, meta_len))) => {
            let meta = File::open(layout.finalized_meta(block, gs))?;
            match layout::read_meta_header(&meta, meta_len)?
                .and_then(|()| layout::check_lengths(len, meta_len))
            {
                Ok(()) => Ok(ReplicaInfo {
                    block,
                    gen_stamp: gs,
                    length: len,
                }),
                Err(reason) => Err(corrupt(Some(gs), reason)),
            }
        }
        (Some(_), None) => Err(corrupt(None, Corruption::MissingMeta)),
        (None, Some((gs, _))) => Err(corrupt(Some(gs), Corruption::MissingBlock)),
        (None, None) => return Ok(()),
    };
    match verdict {
        Ok(info) => {
            out.finalized.insert(block, info);
        }
        Err(c) => {
            let dir = layout.finalized_dir(block);
            move_aside(layout, &dir, &c);
            out.report.corrupt.push(c);
        }
    }
    Ok(())
}

fn scan_rbw(
    layout: &Layout,
    block: BlockId,
    mut found: Found,
    out: &mut Scanned,
) -> io::Result<()> {
    let newest = found.metas.pop_last();
    for &gs in found.metas.keys() {
        tracing::warn!(%block, gen_stamp = %gs, "removing a stale rbw meta file");
        layout::remove_if_present(&layout.rbw_meta(block, gs))?;
    }
    let corrupt = |gen_stamp, reason| CorruptReplica {
        block,
        gen_stamp,
        state: ReplicaState::Rbw,
        reason,
    };
    let verdict = match (found.block, newest) {
        (Some(len), Some((gs, meta_len))) => match recover_rbw(layout, block, gs, len, meta_len)? {
            Ok(length) => Ok(ReplicaInfo {
                block,
                gen_stamp: gs,
                length,
            }),
            Err(reason) => Err(corrupt(Some(gs), reason)),
        },
        (Some(_), None) => Err(corrupt(None, Corruption::MissingMeta)),
        (None, Some((gs, _))) => Err(corrupt(Some(gs), Corruption::MissingBlock)),
        (None, None) => return Ok(()),
    };
    match verdict {
        Ok(info) => {
            tracing::info!(%block, gen_stamp = %info.gen_stamp, length = info.length, "kept an rbw replica for recovery");
            out.rbw.push(info);
            out.report.rbw.push(info);
        }
        Err(c) => {
            move_aside(layout, &layout.rbw, &c);
            out.report.corrupt.push(c);
        }
    }
    Ok(())
}

/// Finds an rbw replica's valid length (the longest prefix, ending at a chunk
/// boundary or at the end of the data, whose chunks match their checksums) and
/// truncates both files to it.
fn recover_rbw(
    layout: &Layout,
    block: BlockId,
    gs: GenStamp,
    data_len: u64,
    meta_len: u64,
) -> io::Result<Result<u64, Corruption>> {
    let rw = |path| OpenOptions::new().read(true).write(true).open(path);
    let data = rw(layout.rbw_block(block))?;
    let meta = rw(layout.rbw_meta(block, gs))?;
    if let Err(reason) = layout::read_meta_header(&meta, meta_len)? {
        return Ok(Err(reason));
    }
    let stored = (meta_len - META_HEADER_LEN) / CHECKSUM_LEN;
    let limit = data_len.min(stored.saturating_mul(CHUNK));
    let mut valid = 0;
    while valid < limit {
        let step = RECOVER_SLICE.min(limit - valid);
        let mut bytes = vec![0u8; usize::try_from(step).unwrap_or(0)];
        let mut raw =
            vec![0u8; usize::try_from(layout::chunks_for(step) * CHECKSUM_LEN).unwrap_or(0)];
        data.read_exact_at(&mut bytes, valid)?;
        meta.read_exact_at(&mut raw, META_HEADER_LEN + valid / CHUNK * CHECKSUM_LEN)?;
        let (stored, _) = raw.as_chunks::<4>();
        let good = chunk_checksums(&bytes)
            .iter()
            .zip(stored)
            .take_while(|(sum, s)| **sum == u32::from_be_bytes(**s))
            .count();
        let good_bytes = (good as u64 * CHUNK).min(step);
        valid += good_bytes;
        if good_bytes < step {
            break;
        }
    }
    if valid != data_len || meta_len != layout::meta_len_for(valid) {
        tracing::warn!(%block, gen_stamp = %gs, data_len, valid, "truncating an rbw replica to its verified prefix");
        data.set_len(valid)?;
        meta.set_len(layout::meta_len_for(valid))?;
        data.sync_all()?;
        meta.sync_all()?;
    }
    Ok(Ok(valid))
}

/// Moves a corrupt replica's files from `dir` into `corrupt/`; failing that, leaves them.
fn move_aside(layout: &Layout, dir: &Path, c: &CorruptReplica) {
    tracing::warn!(block = %c.block, state = ?c.state, reason = %c.reason, "moving a corrupt replica aside");
    let mut names = vec![block_file_name(c.block)];
    names.extend(c.gen_stamp.map(|gs| meta_file_name(c.block, gs)));
    for name in names {
        let from = dir.join(&name);
        if !from.exists() {
            continue;
        }
        if let Err(e) = fs::rename(&from, layout.corrupt.join(&name)) {
            tracing::warn!(path = %from.display(), error = %e, "could not move a corrupt file aside");
        }
    }
}
