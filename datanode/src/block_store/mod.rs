//! The datanode's block store: replica files, their CRC32C meta files, and
//! the life cycle from replica-being-written (rbw) to finalized.
//!
//! It owns one data dir and knows nothing about the network or the namenode:
//! the write pipeline feeds it packets, the block reader reads finalized
//! replicas from it, and the namenode actors report what it holds. It is
//! synchronous `std::fs` code; callers run it on blocking threads. The
//! [`BlockStore`] is shared (`&self`), a [`RbwWriter`] belongs to one pipeline.
//!
//! ```text
//! data_dir/
//!   current/rbw/blk_<id>                      replica being written (never served)
//!   current/rbw/blk_<id>_<gs>.meta
//!   current/finalized/subdir<a>/subdir<b>/    a = (id >> 16) & 0x1f, b = (id >> 8) & 0x1f
//!       blk_<id>  blk_<id>_<gs>.meta          finalized replica (served)
//!   tmp/                                      scratch, emptied on open
//!   corrupt/                                  replicas the start-up scan moved aside
//!
//!                 create_rbw(b, gs)
//!                        │
//!                        v
//!       ┌──────────── rbw ◄─────┐ write_packet (append, or cut back to a chunk
//!       │              │  │     │ boundary and rewrite), sync
//!       │ delete       │  └─────┘
//!       │              │ finalize: fsync data + meta, rename meta, rename data,
//!       v              v           fsync both dirs, drop an older gs's meta
//!    (gone) ◄──── finalized
//!         delete       │
//!                      v
//!               open_finalized(b, gs) ─> ReplicaReader
//! ```
//!
//! # Meta file
//!
//! A 12-byte header, then one big-endian CRC32C per 512-byte chunk of the
//! block file (the last chunk may be short), as HDFS stores them:
//!
//! ```text
//! offset 0  magic "DFSM"        4 bytes
//!        4  version = 1         u16 BE
//!        6  checksum type = 2   u16 BE (HDFS's id of CRC32C)
//!        8  bytes per checksum  u32 BE = 512
//!       12  crc(chunk 0), crc(chunk 1), ...   u32 BE each
//! ```
//!
//! A replica is valid iff `meta_len == 12 + 4 * ceil(block_len / 512)` and
//! the header is as above; anything else is corrupt and never served.
//!
//! # Crash consistency
//!
//! `finalize` makes both files durable, renames the meta file into
//! `finalized/` and then the block file (as HDFS does), fsyncs both
//! directories, and deletes a replaced generation's meta. Across a crash the
//! meta rename is the commit point: the start-up scan redoes a finalize
//! caught between the two renames (a meta-less block file in `rbw/` whose
//! newest meta is already in `finalized/`, with the right length), and where
//! an older generation's meta survived next to the newest one, the block file
//! is the newest one's and the older meta is deleted. Leftovers in `rbw/` are
//! kept for recovery, cut back to the longest prefix whose checksums verify.
//! Files in `corrupt/` are not counted in `used_bytes`.

mod error;
mod layout;
mod reader;
mod scan;
mod writer;

#[cfg(test)]
mod block_store_test;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dfs_proto::ids::{BlockId, GenStamp};

pub(crate) use error::{Corruption, Error};
pub(crate) use reader::ReplicaReader;
pub(crate) use writer::RbwWriter;

use layout::Layout;
use writer::RbwShared;

/// A finalized (or, in a [`ScanReport`], recovered rbw) replica, as block reports list it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplicaInfo {
    /// The block.
    pub(crate) block: BlockId,
    /// The replica's generation stamp.
    pub(crate) gen_stamp: GenStamp,
    /// Bytes of data.
    pub(crate) length: u64,
}

/// Replicas held by state (see [`BlockStore::replica_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReplicaCounts {
    pub(crate) finalized: u64,
    /// Being written, or left unfinalized by a pipeline that stopped.
    pub(crate) rbw: u64,
}

/// Which life-cycle state a replica's files were found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplicaState {
    /// In `current/rbw/`.
    Rbw,
    /// In `current/finalized/`.
    Finalized,
}

/// A replica the start-up scan found unusable and moved to `corrupt/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CorruptReplica {
    /// The block.
    pub(crate) block: BlockId,
    /// The generation stamp of its meta file, if it had one.
    pub(crate) gen_stamp: Option<GenStamp>,
    /// Where it was found.
    pub(crate) state: ReplicaState,
    /// What is wrong with it.
    pub(crate) reason: Corruption,
}

/// What [`BlockStore::open`] found besides the valid finalized replicas.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ScanReport {
    /// Unusable replicas, moved to `corrupt/`; finalized ones should be reported to the namenode.
    pub(crate) corrupt: Vec<CorruptReplica>,
    /// Replicas left in `rbw/`, with their verified lengths, kept for recovery.
    pub(crate) rbw: Vec<ReplicaInfo>,
    /// Finalizes a crash interrupted, completed by the scan.
    pub(crate) rolled_forward: Vec<BlockId>,
    /// Files and directories the store did not write, left alone.
    pub(crate) ignored: Vec<PathBuf>,
}

/// One data dir's replicas.
#[derive(Debug)]
pub(crate) struct BlockStore {
    layout: Layout,
    state: Mutex<State>,
    /// New writers keep no data or checksums (benchmark only, see
    /// `DatanodeConfig::discard_data`).
    discard_data: bool,
}

/// The in-memory replica map.
#[derive(Debug, Default)]
struct State {
    finalized: HashMap<BlockId, ReplicaInfo>,
    /// Data plus meta bytes of the finalized replicas.
    finalized_bytes: u64,
    rbw: HashMap<BlockId, Rbw>,
}

/// A replica in `rbw/`: being written by an [`RbwWriter`], or left over.
#[derive(Debug)]
struct Rbw {
    /// Current generation stamp (a bump renames the meta file under a live writer).
    gen_stamp: GenStamp,
    /// Shared with the writer, if one is alive; also tells writers apart.
    shared: Arc<RbwShared>,
    /// Length of the finalized replica a recovery moved back here (0 for a
    /// replica never finalized): later recoveries keep it too.
    floor: u64,
}

impl Rbw {
    fn info(&self, block: BlockId) -> ReplicaInfo {
        ReplicaInfo {
            block,
            gen_stamp: self.gen_stamp,
            length: self.shared.len.load(Ordering::Relaxed),
        }
    }

    fn has_writer(&self) -> bool {
        Arc::strong_count(&self.shared) > 1
    }

    fn is_written_by(&self, writer: &RbwWriter) -> bool {
        Arc::ptr_eq(&self.shared, writer.shared())
    }
}

fn on_disk_bytes(length: u64) -> u64 {
    length + layout::meta_len_for(length)
}

impl BlockStore {
    /// Opens the store in `data_dir`: creates its directories, empties `tmp/`
    /// and scans the replicas already there.
    ///
    /// # Errors
    /// An I/O error on the data dir itself; a corrupt replica is reported in
    /// the [`ScanReport`], not an error.
    pub(crate) fn open(data_dir: &Path) -> Result<(BlockStore, ScanReport), Error> {
        let layout = Layout::new(data_dir);
        for dir in [&layout.rbw, &layout.finalized, &layout.tmp, &layout.corrupt] {
            fs::create_dir_all(dir)?;
        }
        empty_dir(&layout.tmp)?;
        let scanned = scan::scan(&layout)?;
        let mut state = State::default();
        for info in scanned.finalized.into_values() {
            state.finalized_bytes += on_disk_bytes(info.length);
            state.finalized.insert(info.block, info);
        }
        for info in scanned.rbw {
            let shared = Arc::new(RbwShared::default());
            shared.set_len(info.length);
            state.rbw.insert(
                info.block,
                Rbw {
                    gen_stamp: info.gen_stamp,
                    shared,
                    floor: 0,
                },
            );
        }
        let report = scanned.report;
        tracing::info!(
            data_dir = %data_dir.display(),
            finalized = state.finalized.len(),
            rbw = report.rbw.len(),
            corrupt = report.corrupt.len(),
            ignored = report.ignored.len(),
            "block store opened"
        );
        let store = BlockStore {
            layout,
            state: Mutex::new(state),
            discard_data: false,
        };
        Ok((store, report))
    }

    /// Makes every writer opened from now on skip its data and checksum
    /// writes while keeping its length, so replicas finalize with the length
    /// they were sent but hold nothing (benchmark only: they read back as corrupt).
    pub(crate) fn set_discard_data(&mut self, discard: bool) {
        self.discard_data = discard;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Critical sections keep the map consistent at every await-free step,
        // so a panic elsewhere cannot leave it half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a replica being written.
    ///
    /// A leftover rbw replica of the block with an older generation stamp and
    /// no live writer is discarded.
    ///
    /// # Errors
    /// `ReplicaExists` when a finalized replica has a generation stamp ≥ `gs`,
    /// or an rbw replica has a live writer or a generation stamp ≥ `gs`.
    pub(crate) fn create_rbw(&self, block: BlockId, gs: GenStamp) -> Result<RbwWriter, Error> {
        let shared = Arc::new(RbwShared::default());
        let discarded = {
            let mut state = self.lock();
            if let Some(f) = state.finalized.get(&block)
                && f.gen_stamp >= gs
            {
                return Err(Error::ReplicaExists {
                    block,
                    gen_stamp: f.gen_stamp,
                });
            }
            let discarded = match state.rbw.get(&block) {
                Some(r) if r.has_writer() || r.gen_stamp >= gs => {
                    return Err(Error::ReplicaExists {
                        block,
                        gen_stamp: r.gen_stamp,
                    });
                }
                Some(r) => Some(r.gen_stamp),
                None => None,
            };
            // Reserved now; the files are created outside the lock.
            state.rbw.insert(
                block,
                Rbw {
                    gen_stamp: gs,
                    shared: Arc::clone(&shared),
                    floor: 0,
                },
            );
            discarded
        };
        let created = discarded
            .map_or(Ok(()), |old| {
                tracing::warn!(%block, gen_stamp = %old, "discarding an older rbw replica");
                layout::remove_if_present(&self.layout.rbw_meta(block, old))
            })
            .map_err(Error::from)
            .and_then(|()| {
                RbwWriter::create(
                    &self.layout,
                    block,
                    gs,
                    Arc::clone(&shared),
                    self.discard_data,
                )
            });
        if created.is_err() {
            let mut state = self.lock();
            if state
                .rbw
                .get(&block)
                .is_some_and(|r| Arc::ptr_eq(&r.shared, &shared))
            {
                state.rbw.remove(&block);
            }
        }
        created
    }

    /// Makes a replica being written durable and visible: fsyncs its files,
    /// renames them into `finalized/` and replaces an older generation's replica.
    ///
    /// # Errors
    /// `ReplicaNotFound` when the replica was deleted meanwhile; `ReplicaExists`
    /// when a finalized replica at least as new appeared; I/O errors, after
    /// which the replica stays in `rbw/` (or is completed by the next start-up scan).
    pub(crate) fn finalize(&self, mut writer: RbwWriter) -> Result<ReplicaInfo, Error> {
        writer.sync()?;
        let block = writer.block();
        let length = writer.len();
        let mut state = self.lock();
        let gs = match state.rbw.get(&block) {
            Some(r) if r.is_written_by(&writer) => r.gen_stamp,
            _ => return Err(Error::ReplicaNotFound { block }),
        };
        let old = state.finalized.get(&block).copied();
        if let Some(old) = old
            && old.gen_stamp >= gs
        {
            return Err(Error::ReplicaExists {
                block,
                gen_stamp: old.gen_stamp,
            });
        }
        self.ensure_finalized_dir(block)?;
        let meta_to = self.layout.finalized_meta(block, gs);
        fs::rename(self.layout.rbw_meta(block, gs), &meta_to)?;
        if let Err(e) = fs::rename(
            self.layout.rbw_block(block),
            self.layout.finalized_block(block),
        ) {
            if let Err(back) = fs::rename(&meta_to, self.layout.rbw_meta(block, gs)) {
                tracing::error!(%block, error = %back, "could not move a meta file back to rbw");
            }
            return Err(e.into());
        }
        // The map follows the disk from here on, even if what follows fails.
        state.rbw.remove(&block);
        if let Some(old) = old {
            state.finalized_bytes = state
                .finalized_bytes
                .saturating_sub(on_disk_bytes(old.length));
        }
        let info = ReplicaInfo {
            block,
            gen_stamp: gs,
            length,
        };
        state.finalized.insert(block, info);
        state.finalized_bytes += on_disk_bytes(length);
        layout::fsync_dir(&self.layout.finalized_dir(block))?;
        layout::fsync_dir(&self.layout.rbw)?;
        if let Some(old) = old {
            // Not fsynced: a surviving older meta is removed by the next scan.
            layout::remove_if_present(&self.layout.finalized_meta(block, old.gen_stamp))?;
        }
        drop(state);
        tracing::debug!(%block, gen_stamp = %gs, length, "replica finalized");
        Ok(info)
    }

    /// Creates a block's `finalized/subdir<a>/subdir<b>` if needed, durably.
    fn ensure_finalized_dir(&self, block: BlockId) -> io::Result<()> {
        let dir = self.layout.finalized_dir(block);
        if dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(&dir)?;
        let mut parent = dir.parent();
        while let Some(p) = parent {
            layout::fsync_dir(p)?;
            if p == self.layout.finalized {
                break;
            }
            parent = p.parent();
        }
        Ok(())
    }

    /// Reopens a block's replica for pipeline recovery under generation `new`,
    /// cut back to `length` bytes: an rbw replica without a live writer, or a
    /// finalized one (moved back to `rbw/`), of generation `previous` or
    /// already `new` (a replacement that received its prefix under `new`).
    ///
    /// A finalized replica is never shortened: it reopens at its full length
    /// whatever `length` says, and keeps that floor through later recoveries
    /// (see [`RbwWriter::finalized_floor`]). Only the namenode's
    /// `finalize_rbw` (lease recovery) sets a replica's length below it.
    ///
    /// # Errors
    /// `StaleGenStamp` when `new < previous`; `ReplicaExists` when a writer is
    /// still alive; `ReplicaNotFound` or `GenStampMismatch` when there is no
    /// replica of either generation; `CorruptReplica` when it holds fewer than
    /// `length` bytes (it stays in `rbw/` under `new`).
    pub(crate) fn recover_rbw(
        &self,
        block: BlockId,
        previous: GenStamp,
        new: GenStamp,
        length: u64,
    ) -> Result<RbwWriter, Error> {
        if new < previous {
            return Err(Error::StaleGenStamp {
                block,
                current: previous,
                requested: new,
            });
        }
        let accepts = |g: GenStamp| g == previous || g == new;
        let shared = Arc::new(RbwShared::default());
        let mut finalized_len = None;
        {
            let mut state = self.lock();
            let finalized = state.finalized.get(&block).copied();
            if let Some(r) = state.rbw.get_mut(&block) {
                if r.has_writer() {
                    return Err(Error::ReplicaExists {
                        block,
                        gen_stamp: r.gen_stamp,
                    });
                }
                if !accepts(r.gen_stamp) {
                    return Err(Error::GenStampMismatch {
                        block,
                        expected: previous,
                        found: r.gen_stamp,
                    });
                }
                if r.gen_stamp != new {
                    fs::rename(
                        self.layout.rbw_meta(block, r.gen_stamp),
                        self.layout.rbw_meta(block, new),
                    )?;
                    layout::fsync_dir(&self.layout.rbw)?;
                }
                r.gen_stamp = new;
                r.shared = Arc::clone(&shared);
                if r.floor > 0 {
                    finalized_len = Some(r.floor);
                }
            } else if let Some(f) = finalized {
                if !accepts(f.gen_stamp) {
                    return Err(Error::GenStampMismatch {
                        block,
                        expected: previous,
                        found: f.gen_stamp,
                    });
                }
                // Block file first: a crash in between leaves a meta-less block
                // file in rbw/ next to its finalized meta, which the start-up
                // scan finalizes again; the reverse order would leave orphans.
                fs::rename(
                    self.layout.finalized_block(block),
                    self.layout.rbw_block(block),
                )?;
                fs::rename(
                    self.layout.finalized_meta(block, f.gen_stamp),
                    self.layout.rbw_meta(block, new),
                )?;
                layout::fsync_dir(&self.layout.rbw)?;
                layout::fsync_dir(&self.layout.finalized_dir(block))?;
                state.finalized.remove(&block);
                state.finalized_bytes = state
                    .finalized_bytes
                    .saturating_sub(on_disk_bytes(f.length));
                shared.set_len(f.length);
                finalized_len = Some(f.length);
                state.rbw.insert(
                    block,
                    Rbw {
                        gen_stamp: new,
                        shared: Arc::clone(&shared),
                        floor: f.length,
                    },
                );
            } else {
                return Err(Error::ReplicaNotFound { block });
            }
        }
        // A finalized replica is never shortened by a pipeline: it reopens
        // at its full length, and resent packets below it are not rewritten.
        let (length, floor) = match finalized_len {
            Some(f) => (length.max(f), f),
            None => (length, 0),
        };
        tracing::debug!(%block, gen_stamp = %new, length, floor, "replica reopened for recovery");
        let mut writer =
            RbwWriter::reopen(&self.layout, block, new, shared, length, self.discard_data)?;
        writer.keep_finalized(floor);
        Ok(writer)
    }

    /// Opens the first `length` bytes of a block's replica, rbw (without a
    /// live writer) or finalized, of generation at most `gs`: the source of a
    /// copy to a replacement datanode in pipeline recovery.
    ///
    /// # Errors
    /// `ReplicaNotFound`; `ReplicaExists` while a writer is alive;
    /// `GenStampMismatch` when the replica is newer than `gs`;
    /// `CorruptReplica` when it holds fewer than `length` bytes.
    pub(crate) fn open_prefix(
        &self,
        block: BlockId,
        gs: GenStamp,
        length: u64,
    ) -> Result<ReplicaReader, Error> {
        let (found, data, meta) = {
            let state = self.lock();
            if let Some(r) = state.rbw.get(&block) {
                if r.has_writer() {
                    return Err(Error::ReplicaExists {
                        block,
                        gen_stamp: r.gen_stamp,
                    });
                }
                let data = fs::File::open(self.layout.rbw_block(block));
                let meta = fs::File::open(self.layout.rbw_meta(block, r.gen_stamp));
                (r.gen_stamp, data, meta)
            } else if let Some(f) = state.finalized.get(&block) {
                let data = fs::File::open(self.layout.finalized_block(block));
                let meta = fs::File::open(self.layout.finalized_meta(block, f.gen_stamp));
                (f.gen_stamp, data, meta)
            } else {
                return Err(Error::ReplicaNotFound { block });
            }
        };
        if found > gs {
            return Err(Error::GenStampMismatch {
                block,
                expected: gs,
                found,
            });
        }
        let info = ReplicaInfo {
            block,
            gen_stamp: found,
            length,
        };
        ReplicaReader::prefix(info, data?, meta?)
    }

    /// Opens a finalized replica for reading; replicas being written are never served.
    ///
    /// # Errors
    /// `ReplicaNotFound` when there is no finalized replica; `GenStampMismatch`
    /// when its generation stamp is not `gs`; `CorruptReplica` when its files
    /// disagree with each other or with the replica map.
    pub(crate) fn open_finalized(
        &self,
        block: BlockId,
        gs: GenStamp,
    ) -> Result<ReplicaReader, Error> {
        let (info, data, meta) = {
            let state = self.lock();
            let info = *state
                .finalized
                .get(&block)
                .ok_or(Error::ReplicaNotFound { block })?;
            if info.gen_stamp != gs {
                return Err(Error::GenStampMismatch {
                    block,
                    expected: gs,
                    found: info.gen_stamp,
                });
            }
            // Opened under the lock so a concurrent replace or delete cannot
            // pair one generation's data with another's meta.
            let data = fs::File::open(self.layout.finalized_block(block))?;
            let meta = fs::File::open(self.layout.finalized_meta(block, gs))?;
            (info, data, meta)
        };
        ReplicaReader::new(info, data, meta)
    }

    /// Deletes a block's replicas (finalized and rbw) of generation `gs`, or of any generation.
    ///
    /// A live writer of a deleted rbw replica keeps writing to unlinked files;
    /// its `finalize` fails with `ReplicaNotFound`.
    ///
    /// # Errors
    /// `ReplicaNotFound` when the block has no replica; `GenStampMismatch` when
    /// it has one of another generation only.
    pub(crate) fn delete(&self, block: BlockId, gs: Option<GenStamp>) -> Result<(), Error> {
        let mut state = self.lock();
        let matches = |found: GenStamp| gs.is_none_or(|gs| gs == found);
        let finalized = state.finalized.get(&block).map(|f| f.gen_stamp);
        let rbw = state.rbw.get(&block).map(|r| r.gen_stamp);
        let delete_finalized = finalized.filter(|&g| matches(g));
        let delete_rbw = rbw.filter(|&g| matches(g));
        if delete_finalized.is_none() && delete_rbw.is_none() {
            return Err(match (finalized.or(rbw), gs) {
                (Some(found), Some(expected)) => Error::GenStampMismatch {
                    block,
                    expected,
                    found,
                },
                _ => Error::ReplicaNotFound { block },
            });
        }
        if let Some(g) = delete_finalized {
            // Block file first: a crash in between leaves an orphan meta, which
            // the scan moves aside, never a servable replica.
            layout::remove_if_present(&self.layout.finalized_block(block))?;
            layout::remove_if_present(&self.layout.finalized_meta(block, g))?;
            if let Some(info) = state.finalized.remove(&block) {
                state.finalized_bytes = state
                    .finalized_bytes
                    .saturating_sub(on_disk_bytes(info.length));
            }
        }
        if let Some(g) = delete_rbw {
            state.rbw.remove(&block);
            layout::remove_if_present(&self.layout.rbw_block(block))?;
            layout::remove_if_present(&self.layout.rbw_meta(block, g))?;
        }
        tracing::debug!(%block, "replica deleted");
        Ok(())
    }

    /// The finalized replicas, for block reports.
    pub(crate) fn replicas(&self) -> Vec<ReplicaInfo> {
        self.lock().finalized.values().copied().collect()
    }

    /// The finalized replica of `block`, if it has one.
    pub(crate) fn finalized(&self, block: BlockId) -> Option<ReplicaInfo> {
        self.lock().finalized.get(&block).copied()
    }

    /// Unfinalized replicas no writer holds (left by interrupted
    /// pipelines), with the bytes each holds.
    pub(crate) fn abandoned_rbw(&self) -> Vec<ReplicaInfo> {
        self.lock()
            .rbw
            .iter()
            .filter(|(_, rbw)| !rbw.has_writer())
            .map(|(block, rbw)| rbw.info(*block))
            .collect()
    }

    /// The unfinalized replica of `block`, if it has one and no writer holds it.
    pub(crate) fn abandoned_rbw_of(&self, block: BlockId) -> Option<ReplicaInfo> {
        self.lock()
            .rbw
            .get(&block)
            .filter(|rbw| !rbw.has_writer())
            .map(|rbw| rbw.info(block))
    }

    /// Lease recovery's end of a replica being written: cuts the rbw
    /// replica of generation `gs` back to `length` bytes (recomputing the
    /// checksum of a partial last chunk) and finalizes it. A finalized
    /// replica of that generation and length is already what is asked; one
    /// of an older generation and that length (a block an append reopened
    /// but never wrote) is moved to `gs` as it is.
    ///
    /// # Errors
    /// As [`BlockStore::recover_rbw`] (no such replica, a live writer, fewer
    /// than `length` bytes) and [`BlockStore::finalize`].
    pub(crate) fn finalize_rbw(
        &self,
        block: BlockId,
        gs: GenStamp,
        length: u64,
    ) -> Result<ReplicaInfo, Error> {
        let done = ReplicaInfo {
            block,
            gen_stamp: gs,
            length,
        };
        let previous = match self.lock().finalized.get(&block) {
            Some(f) if *f == done => return Ok(done),
            Some(f) if f.gen_stamp < gs && f.length == length => f.gen_stamp,
            _ => gs,
        };
        let writer = self.recover_rbw(block, previous, gs, length)?;
        self.finalize(writer)
    }

    /// How many replicas the store holds in each state.
    pub(crate) fn replica_counts(&self) -> ReplicaCounts {
        let state = self.lock();
        ReplicaCounts {
            finalized: state.finalized.len() as u64,
            rbw: state.rbw.len() as u64,
        }
    }

    /// Bytes of data and meta files held, finalized and rbw.
    pub(crate) fn used_bytes(&self) -> u64 {
        let state = self.lock();
        let rbw: u64 = state
            .rbw
            .values()
            .map(|r| r.shared.bytes.load(Ordering::Relaxed))
            .sum();
        state.finalized_bytes + rbw
    }
}

/// Removes everything inside `dir`.
fn empty_dir(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}
