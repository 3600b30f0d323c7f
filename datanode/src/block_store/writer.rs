//! [`RbwWriter`]: appends packets to a replica being written.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dfs_proto::checksum::{first_chunk_len, packet_chunks, verify_chunks_at};
use dfs_proto::ids::{BlockId, GenStamp};

use super::error::{Error, PacketFault};
use super::layout::{self, CHECKSUM_LEN, CHUNK, Layout, META_HEADER_LEN};

/// User-space buffer of the data file, for small packets (hflush, a block's tail).
const DATA_BUFFER: usize = 256 * 1024;
/// User-space buffer of the meta file: 512 bytes of checksums per 64 KiB packet.
const META_BUFFER: usize = 256 * 1024;
/// Writes at least this long skip the data buffer and go to the file in one
/// `pwrite`: copying a 64 KiB packet into a buffer at the same page offset as
/// its source measured 17x slower than an unaliased copy here, and no copy at
/// all beats both.
const DIRECT_WRITE_MIN: usize = 32 * 1024;
/// Bytes of data written between two requests to start their write-back.
/// Without them the kernel holds a whole block dirty until the finalize's
/// fsync, and the pipeline stalls at every block end while three replicas
/// flush at once (HDFS's `dfs.datanode.sync.behind.writes`).
const WRITE_BEHIND: u64 = 8 * 1024 * 1024;

/// What the block store and a writer share about one replica being written.
#[derive(Debug, Default)]
pub(crate) struct RbwShared {
    /// Bytes of the replica's data and meta files on disk (for `used_bytes`).
    pub(crate) bytes: AtomicU64,
    /// Bytes of data written (what block reports give as its length).
    pub(crate) len: AtomicU64,
}

impl RbwShared {
    /// Records a replica of `len` bytes of data.
    pub(crate) fn set_len(&self, len: u64) {
        self.len.store(len, Ordering::Relaxed);
        self.bytes
            .store(len + layout::meta_len_for(len), Ordering::Relaxed);
    }
}

/// Appends packets to a replica being written; owns its two files.
///
/// Dropping it without [`super::BlockStore::finalize`] leaves the replica in
/// `rbw/` (flushed on a best-effort basis) for recovery.
#[derive(Debug)]
pub(crate) struct RbwWriter {
    block: BlockId,
    data: AppendFile,
    meta: AppendFile,
    /// Bytes of data acknowledged by `write_packet`; a multiple of `CHUNK`
    /// except after a packet that ended in a partial chunk.
    len: u64,
    /// A write failed part-way: the files may hold more than `len` describes
    /// and must be cut back before anything else touches them.
    is_torn: bool,
    shared: Arc<RbwShared>,
    /// Keep the length but write no data or checksums (benchmark only).
    discard: bool,
    /// The length of the finalized replica a recovery reopened (0
    /// otherwise): bytes below it are never cut back or overwritten.
    floor: u64,
}

impl RbwWriter {
    /// Creates (truncating) `rbw/blk_<id>` and `rbw/blk_<id>_<gs>.meta`.
    pub(super) fn create(
        layout: &Layout,
        block: BlockId,
        gs: GenStamp,
        shared: Arc<RbwShared>,
        discard: bool,
    ) -> Result<RbwWriter, Error> {
        // Readable too: a cut back inside a chunk rereads its bytes.
        let open = |path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
        };
        let data = open(layout.rbw_block(block))?;
        let meta = open(layout.rbw_meta(block, gs))?;
        // Unbuffered, so no cut back can drop it.
        meta.write_all_at(&layout::meta_header(), 0)?;
        layout::fsync_dir(&layout.rbw)?;
        shared.set_len(0);
        Ok(RbwWriter {
            block,
            data: AppendFile::new(data, 0, DATA_BUFFER),
            meta: AppendFile::new(meta, META_HEADER_LEN, META_BUFFER),
            len: 0,
            is_torn: false,
            shared,
            discard,
            floor: 0,
        })
    }

    /// Reopens an existing replica being written (pipeline recovery): cuts
    /// both files back to `length` bytes of data and, when `length` ends in a
    /// partial chunk, recomputes that chunk's checksum from the data kept.
    ///
    /// # Errors
    /// `CorruptReplica` when the files hold less than `length` bytes of data
    /// or of checksums, or the meta header is bad; I/O errors.
    pub(super) fn reopen(
        layout: &Layout,
        block: BlockId,
        gs: GenStamp,
        shared: Arc<RbwShared>,
        length: u64,
        discard: bool,
    ) -> Result<RbwWriter, Error> {
        let open = |path| OpenOptions::new().read(true).write(true).open(path);
        let data = open(layout.rbw_block(block))?;
        let meta = open(layout.rbw_meta(block, gs))?;
        let data_len = data.metadata()?.len();
        let meta_len = meta.metadata()?.len();
        let corrupt = |reason| Error::CorruptReplica { block, reason };
        layout::read_meta_header(&meta, meta_len)?.map_err(corrupt)?;
        let meta_target = layout::meta_len_for(length);
        if data_len < length || meta_len < meta_target {
            return Err(corrupt(super::error::Corruption::LengthMismatch {
                block_len: data_len,
                meta_len,
            }));
        }
        data.set_len(length)?;
        meta.set_len(meta_target)?;
        let tail = length % CHUNK;
        if tail != 0 {
            // The stored checksum covered the chunk as it was before the cut.
            let mut chunk = vec![0u8; tail as usize];
            data.read_exact_at(&mut chunk, length - tail)?;
            let sum = crc32c::crc32c(&chunk);
            meta.write_all_at(&sum.to_be_bytes(), meta_target - CHECKSUM_LEN)?;
        }
        shared.set_len(length);
        Ok(RbwWriter {
            block,
            data: AppendFile::new(data, length, DATA_BUFFER),
            meta: AppendFile::new(meta, meta_target, META_BUFFER),
            len: length,
            is_torn: false,
            shared,
            discard,
            floor: 0,
        })
    }

    /// Protects the first `floor` bytes (a reopened finalized replica's):
    /// packets that end within them are already on disk and are accepted
    /// without a write; a packet that starts below and ends past them is refused.
    pub(super) fn keep_finalized(&mut self, floor: u64) {
        self.floor = floor;
    }

    /// The bytes a recovery may not cut back or overwrite (0 for a replica
    /// that was never finalized).
    pub(crate) fn finalized_floor(&self) -> u64 {
        self.floor
    }

    /// The block this writer writes.
    pub(crate) fn block(&self) -> BlockId {
        self.block
    }

    /// Writes one packet: `data` at block offset `offset`, with one CRC32C per
    /// 512-byte chunk of it.
    ///
    /// `offset` must be the current length, or a chunk boundary at or before it
    /// (a resend after pipeline recovery, or the rewrite of a partial last chunk
    /// after an hflush): the replica is cut back to `offset` first. With
    /// `verify`, every chunk is checked before anything is written. Below the
    /// finalized floor nothing is cut back or written (see `keep_finalized`).
    ///
    /// # Errors
    /// `InvalidPacket` for a misplaced packet or a wrong checksum count,
    /// `ChecksumMismatch` when `verify` finds a bad chunk; in both cases nothing
    /// is written. `NoSpace`/`Io` leave the length unchanged and the next call
    /// cuts the files back to it.
    pub(crate) fn write_packet(
        &mut self,
        offset: u64,
        data: &[u8],
        checksums: &[u32],
        verify: bool,
    ) -> Result<(), Error> {
        let invalid = |reason| Error::InvalidPacket {
            block: self.block,
            offset,
            reason,
        };
        let chunks = packet_chunks(offset, data.len());
        if checksums.len() != chunks {
            return Err(invalid(PacketFault::ChecksumCount {
                expected: chunks,
                found: checksums.len(),
            }));
        }
        let is_boundary = offset.is_multiple_of(CHUNK);
        // A partial last chunk is extended by rewriting it whole, or (an
        // append, which lacks its bytes) by a packet that starts where it ends.
        let fits = offset <= self.len && (is_boundary || offset == self.len);
        if !fits {
            return Err(invalid(PacketFault::NotSequential { length: self.len }));
        }
        let end = u64::try_from(data.len())
            .ok()
            .and_then(|n| offset.checked_add(n))
            .ok_or_else(|| invalid(PacketFault::TooLong))?;
        if verify && let Err(m) = verify_chunks_at(offset, data, checksums) {
            let chunk_start = offset - offset % CHUNK;
            return Err(Error::ChecksumMismatch {
                block: self.block,
                offset: (chunk_start + m.chunk as u64 * CHUNK).max(offset),
            });
        }
        if data.is_empty() {
            return Ok(());
        }
        if offset < self.floor {
            if end <= self.floor {
                // A resend of bytes the finalized replica already holds.
                return Ok(());
            }
            return Err(invalid(PacketFault::BelowFinalized { floor: self.floor }));
        }
        if self.is_torn || offset < self.len {
            self.cut_back(offset)?;
        }
        let result = if is_boundary {
            self.append(data, checksums)
        } else {
            self.append_within_chunk(data, checksums)
        };
        if result.is_err() {
            self.is_torn = true;
            return result;
        }
        self.len = end;
        self.account();
        Ok(())
    }

    fn append(&mut self, data: &[u8], checksums: &[u32]) -> Result<(), Error> {
        if self.discard {
            return Ok(());
        }
        self.data.append(data)?;
        for sum in checksums {
            self.meta.append(&sum.to_be_bytes())?;
        }
        self.data.write_behind();
        Ok(())
    }

    /// Appends a packet that starts inside the replica's partial last chunk
    /// (at `self.len`): the packet's first checksum covers only its own bytes
    /// of that chunk, so the stored one is extended over them (HDFS's
    /// BlockReceiver does the same), then the rest is appended as usual.
    /// The stored checksum, not the old bytes, is extended, so a corrupt
    /// tail stays detectably corrupt.
    fn append_within_chunk(&mut self, data: &[u8], checksums: &[u32]) -> Result<(), Error> {
        if self.discard {
            return Ok(());
        }
        let (Some(_head_sum), Some(rest_sums)) = (checksums.first(), checksums.get(1..)) else {
            return Ok(());
        };
        let head_len = first_chunk_len(self.len, data.len());
        let (head, _) = data.split_at(head_len);
        let slot = layout::meta_len_for(self.len) - CHECKSUM_LEN;
        let mut stored = [0u8; CHECKSUM_LEN as usize];
        self.meta.read_exact_at(&mut stored, slot)?;
        let combined = crc32c::crc32c_append(u32::from_be_bytes(stored), head);
        // The head's own checksum (verified by the last node of the
        // pipeline) gives way to the combined one.
        self.meta.truncate(slot)?;
        self.meta.append(&combined.to_be_bytes())?;
        for sum in rest_sums {
            self.meta.append(&sum.to_be_bytes())?;
        }
        self.data.append(data)?;
        self.data.write_behind();
        Ok(())
    }

    /// Truncates both files to `len` bytes of data, dropping anything buffered.
    fn cut_back(&mut self, len: u64) -> Result<(), Error> {
        if self.discard {
            self.len = len;
            self.account();
            return Ok(());
        }
        self.is_torn = true;
        self.data.truncate(len)?;
        self.meta.truncate(layout::meta_len_for(len))?;
        let tail = len % CHUNK;
        if tail != 0 {
            // A torn write inside the last chunk may have replaced its
            // checksum: recompute it from the bytes kept.
            let mut chunk = vec![0u8; tail as usize];
            self.data.read_exact_at(&mut chunk, len - tail)?;
            let slot = layout::meta_len_for(len) - CHECKSUM_LEN;
            self.meta.truncate(slot)?;
            self.meta.append(&crc32c::crc32c(&chunk).to_be_bytes())?;
        }
        self.len = len;
        self.is_torn = false;
        self.account();
        Ok(())
    }

    fn account(&self) {
        self.shared.set_len(self.len);
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Makes everything written so far durable (hsync): flushes both files and
    /// `fdatasync`s them.
    pub(crate) fn sync(&mut self) -> Result<(), Error> {
        if self.discard {
            return Ok(());
        }
        if self.is_torn {
            self.cut_back(self.len)?;
        }
        self.data.flush()?;
        self.meta.flush()?;
        self.data.file.sync_data()?;
        self.meta.file.sync_data()?;
        Ok(())
    }

    pub(super) fn shared(&self) -> &Arc<RbwShared> {
        &self.shared
    }
}

impl Drop for RbwWriter {
    fn drop(&mut self) {
        if self.is_torn {
            return;
        }
        // Best effort, like `BufWriter`: the replica stays in rbw/ for recovery,
        // which re-derives its valid length from the checksums anyway.
        if let Err(e) = self.data.flush().and_then(|()| self.meta.flush()) {
            tracing::warn!(block = %self.block, error = %e, "flushing an abandoned rbw replica failed");
        }
    }
}

/// A file written at the end through a user-space buffer with positional
/// writes, so it can be cut back without seeking and without flushing what is
/// about to be discarded.
struct AppendFile {
    file: File,
    buf: Vec<u8>,
    /// File offset where `buf` starts: everything before it is in the file.
    flushed: u64,
    /// Write-back has been started for the file up to here.
    written_behind: u64,
}

impl fmt::Debug for AppendFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppendFile")
            .field("flushed", &self.flushed)
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl AppendFile {
    fn new(file: File, end: u64, capacity: usize) -> Self {
        AppendFile {
            file,
            buf: Vec::with_capacity(capacity),
            flushed: end,
            written_behind: end,
        }
    }

    /// Asks the kernel to start writing back what reached the file since the
    /// last request, once that is [`WRITE_BEHIND`] bytes; does not wait for
    /// it. Only a hint: a failure is logged, and the fsync catches up.
    fn write_behind(&mut self) {
        let (from, to) = (self.written_behind, self.flushed);
        if to.saturating_sub(from) < WRITE_BEHIND {
            return;
        }
        self.written_behind = to;
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let (Ok(offset), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else {
                return;
            };
            // SAFETY: a syscall on a descriptor this `File` owns and keeps
            // open for the call; no memory of ours is passed.
            let started = unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    offset,
                    len,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
            if started != 0 {
                tracing::debug!(error = %io::Error::last_os_error(), "sync_file_range failed");
            }
        }
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.buf.len() + bytes.len() > self.buf.capacity() {
            self.flush()?;
        }
        if bytes.len() >= DIRECT_WRITE_MIN || bytes.len() > self.buf.capacity() {
            self.flush()?;
            self.file.write_all_at(bytes, self.flushed)?;
            self.flushed += bytes.len() as u64;
        } else {
            self.buf.extend_from_slice(bytes);
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all_at(&self.buf, self.flushed)?;
            self.flushed += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Cuts the file back to `len` bytes, keeping what is buffered below it
    /// and dropping whatever a failed write left past the flushed part.
    /// Reads `buf.len()` bytes at file offset `pos`, flushing first so
    /// buffered bytes are read too.
    fn read_exact_at(&mut self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.flush()?;
        self.file.read_exact_at(buf, pos)
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        match len.checked_sub(self.flushed) {
            Some(keep) => {
                let keep = usize::try_from(keep)
                    .ok()
                    .filter(|&k| k <= self.buf.len())
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidInput, "truncate past the end")
                    })?;
                self.buf.truncate(keep);
                self.file.set_len(self.flushed)?;
            }
            None => {
                self.buf.clear();
                self.file.set_len(len)?;
                self.flushed = len;
            }
        }
        self.written_behind = self.written_behind.min(self.flushed);
        Ok(())
    }
}

// Checksums go to the meta file as `u32::to_be_bytes`.
const _: () = assert!(CHECKSUM_LEN == 4);
