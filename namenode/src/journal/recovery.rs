//! Recovery: picks the newest valid snapshot, replays the log after it, and
//! repairs a torn tail. Runs once, in `open`, before the writer starts.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::error::Error;
use crate::txn::Zxid;

use super::segment::{self, FRAME_HEADER_LEN, HeaderError};
use super::{Recovered, snapshot, sync_dir};

/// A segment on disk, as the writer tracks it for truncation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SegmentInfo {
    /// The segment file.
    pub(super) path: PathBuf,
    /// The zxid in its name: its first record's.
    pub(super) first: Zxid,
    /// The zxid logged before this segment, from its header.
    pub(super) prev: Zxid,
    /// The last zxid logged in or before this segment (its header's `prev` when empty).
    pub(super) end: Zxid,
    /// Bytes of header and valid frames: where the next frame goes.
    pub(super) len: u64,
    /// Every frame's zxid and byte offset (of its frame header), ascending.
    pub(super) frames: Vec<(Zxid, u64)>,
}

/// What the writer needs to continue after recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LogState {
    /// Segments kept, ascending.
    pub(super) segments: Vec<SegmentInfo>,
    /// Zxids of the snapshot recovery used and every older one, ascending.
    /// Newer snapshots that failed to verify are left on disk and not listed.
    pub(super) snapshots: Vec<Zxid>,
    /// The last zxid durable on disk (the snapshot's when the log ends before it).
    pub(super) last_zxid: Zxid,
}

/// Journal files found in the directory.
#[derive(Debug, Default)]
struct Listing {
    /// Segments, ascending by first zxid.
    segments: Vec<(Zxid, PathBuf)>,
    /// Snapshots, ascending by zxid.
    snapshots: Vec<(Zxid, PathBuf)>,
}

/// Lists the journal's files, deleting snapshots left half-written by a crash.
/// Returns whether the directory changed.
fn list(dir: &Path) -> Result<(Listing, bool), Error> {
    let mut listing = Listing::default();
    let mut changed = false;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(first) = segment::parse_file_name(name) {
            listing.segments.push((first, entry.path()));
        } else if let Some(zxid) = snapshot::parse_file_name(name) {
            listing.snapshots.push((zxid, entry.path()));
        } else if snapshot::is_tmp_file_name(name) {
            info!(file = %entry.path().display(), "removing unfinished snapshot");
            fs::remove_file(entry.path())?;
            changed = true;
        }
    }
    listing.segments.sort();
    listing.snapshots.sort();
    Ok((listing, changed))
}

/// A `JournalCorrupt` error for `file` at `offset`.
fn corrupt(file: &Path, offset: usize, reason: String) -> Error {
    Error::JournalCorrupt {
        file: file.to_owned(),
        offset: offset as u64,
        reason,
    }
}

/// Cuts a torn tail off the last segment, or deletes the segment when nothing
/// valid is left. Returns whether the segment was deleted.
fn cut_tail(path: &Path, valid_len: usize, has_frames: bool) -> Result<bool, Error> {
    if !has_frames {
        fs::remove_file(path)?;
        return Ok(true);
    }
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(valid_len as u64)?;
    file.sync_all()?;
    Ok(false)
}

/// Recovers the journal in `dir`: the newest snapshot that verifies plus every
/// logged txn after it, and the state the writer continues from.
///
/// # Errors
/// `JournalCorrupt` for a damaged record that is not a torn tail, a bad
/// segment header, zxids out of order, or a gap in the log (a missing segment,
/// or a log that starts after the newest valid snapshot); `Io` when a file
/// cannot be read or repaired.
pub(super) fn recover(dir: &Path) -> Result<(Recovered, LogState), Error> {
    let (listing, mut dir_changed) = list(dir)?;

    let mut base = None;
    for (zxid, path) in listing.snapshots.iter().rev() {
        match snapshot::read(path, *zxid) {
            Ok(image) => {
                base = Some((*zxid, image));
                break;
            }
            Err(e) => warn!(file = %path.display(), error = %e, "skipping invalid snapshot"),
        }
    }
    let base_zxid = base.as_ref().map_or(Zxid::ZERO, |(zxid, _)| *zxid);
    let snapshots = listing
        .snapshots
        .iter()
        .map(|(zxid, _)| *zxid)
        .filter(|zxid| base.is_some() && *zxid <= base_zxid)
        .collect();

    let mut txns = Vec::new();
    let mut segments = Vec::new();
    // The last zxid seen in the log so far; `None` before the first segment.
    let mut last: Option<Zxid> = None;
    let count = listing.segments.len();
    for (i, (first, path)) in listing.segments.into_iter().enumerate() {
        let is_last = i + 1 == count;
        let bytes = fs::read(&path)?;
        let prev = match segment::decode_header(&bytes) {
            Ok(prev) => prev,
            Err(HeaderError::Short) if is_last => {
                warn!(file = %path.display(), len = bytes.len(), "removing segment torn in its header");
                fs::remove_file(&path)?;
                dir_changed = true;
                continue;
            }
            Err(HeaderError::Short) => {
                return Err(corrupt(
                    &path,
                    0,
                    format!("{} bytes is shorter than a segment header", bytes.len()),
                ));
            }
            Err(HeaderError::Bad { offset, reason }) => {
                return Err(Error::JournalCorrupt {
                    file: path,
                    offset,
                    reason,
                });
            }
        };
        match last {
            None if prev > base_zxid => {
                return Err(corrupt(
                    &path,
                    8,
                    format!(
                        "the log resumes after zxid {prev} but the newest valid snapshot is at \
                         {base_zxid}: the txns between them were truncated"
                    ),
                ));
            }
            Some(last) if prev != last => {
                return Err(corrupt(
                    &path,
                    8,
                    format!(
                        "segment follows zxid {prev} but the log before it ends at {last}: \
                         a segment is missing"
                    ),
                ));
            }
            _ => {}
        }
        let mut end = prev;
        let mut frames = Vec::new();

        let scan = segment::scan(&bytes, prev);
        for (n, frame) in scan.frames.iter().enumerate() {
            let offset = frame.payload_start - FRAME_HEADER_LEN;
            if n == 0 && frame.zxid != first {
                return Err(corrupt(
                    &path,
                    offset,
                    format!(
                        "first record has zxid {} but the segment is named for {first}",
                        frame.zxid
                    ),
                ));
            }
            if frame.zxid <= end {
                return Err(corrupt(
                    &path,
                    offset,
                    format!("zxid {} does not follow {end}", frame.zxid),
                ));
            }
            end = frame.zxid;
            frames.push((frame.zxid, offset as u64));
            if frame.zxid > base_zxid {
                txns.push((frame.zxid, frame.payload(&bytes).to_vec()));
            }
        }

        let has_frames = !scan.frames.is_empty();
        let len = scan.bad.map_or(bytes.len(), |(offset, _)| offset) as u64;
        let deleted = match scan.bad {
            Some((offset, e)) if is_last && !segment::has_valid_frame_after(&bytes, offset) => {
                warn!(
                    file = %path.display(),
                    offset,
                    reason = %e,
                    "truncating torn journal tail"
                );
                cut_tail(&path, offset, has_frames)?
            }
            Some((offset, e)) => {
                let reason = if is_last {
                    format!("{e}, with valid records after it")
                } else {
                    format!("{e}, in a segment that is not the last")
                };
                return Err(corrupt(&path, offset, reason));
            }
            // An empty last segment was created by a batch that never became
            // durable; its name may be reused by the next append.
            None if is_last && !has_frames => cut_tail(&path, 0, false)?,
            None => false,
        };
        dir_changed |= deleted;
        last = Some(end);
        if !deleted {
            segments.push(SegmentInfo {
                path,
                first,
                prev,
                end,
                len,
                frames,
            });
        }
    }
    if dir_changed {
        sync_dir(dir)?;
    }

    let last_zxid = last.map_or(base_zxid, |last| last.max(base_zxid));
    Ok((
        Recovered {
            snapshot: base,
            txns,
        },
        LogState {
            segments,
            snapshots,
            last_zxid,
        },
    ))
}
