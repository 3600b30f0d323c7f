//! [`ReplicaReader`]: reads chunks of a finalized replica with their checksums.

use std::fs::File;
use std::io;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;

use dfs_proto::checksum::verify_chunks;
use dfs_proto::ids::{BlockId, GenStamp};

use super::ReplicaInfo;
use super::error::{Corruption, Error};
use super::layout::{self, CHECKSUM_LEN, CHUNK, META_HEADER_LEN};

/// Bytes `verify_all` reads per step: whole chunks, large enough to amortize syscalls.
const VERIFY_SLICE: usize = 1024 * 1024;

/// Reads a finalized replica; its open files stay valid even if the replica is
/// deleted or replaced meanwhile.
#[derive(Debug)]
pub(crate) struct ReplicaReader {
    info: ReplicaInfo,
    data: File,
    meta: File,
    /// A prefix ending inside a chunk of a longer replica: that chunk's stored
    /// checksum covers bytes past the prefix, so it is recomputed on read.
    is_cut_in_chunk: bool,
}

impl ReplicaReader {
    /// Checks the opened files against the replica map's length and the meta header.
    pub(super) fn new(info: ReplicaInfo, data: File, meta: File) -> Result<Self, Error> {
        let corrupt = |reason| Error::CorruptReplica {
            block: info.block,
            reason,
        };
        let data_len = data.metadata()?.len();
        let meta_len = meta.metadata()?.len();
        layout::read_meta_header(&meta, meta_len)?.map_err(corrupt)?;
        layout::check_lengths(data_len, meta_len).map_err(corrupt)?;
        if data_len != info.length {
            return Err(corrupt(Corruption::LengthMismatch {
                block_len: data_len,
                meta_len,
            }));
        }
        Ok(ReplicaReader {
            info,
            data,
            meta,
            is_cut_in_chunk: false,
        })
    }

    /// A reader of the first `info.length` bytes of a replica whose files may
    /// hold more (an rbw replica copied to a replacement datanode).
    pub(super) fn prefix(info: ReplicaInfo, data: File, meta: File) -> Result<Self, Error> {
        let corrupt = |reason| Error::CorruptReplica {
            block: info.block,
            reason,
        };
        let data_len = data.metadata()?.len();
        let meta_len = meta.metadata()?.len();
        layout::read_meta_header(&meta, meta_len)?.map_err(corrupt)?;
        if data_len < info.length || meta_len < layout::meta_len_for(info.length) {
            return Err(corrupt(Corruption::LengthMismatch {
                block_len: data_len,
                meta_len,
            }));
        }
        Ok(ReplicaReader {
            info,
            data,
            meta,
            is_cut_in_chunk: data_len > info.length && !info.length.is_multiple_of(CHUNK),
        })
    }

    /// The replica this reader reads, as the replica map listed it when opened.
    pub(crate) fn info(&self) -> ReplicaInfo {
        self.info
    }

    /// The replica's length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.info.length
    }

    /// The replica's block.
    pub(crate) fn block(&self) -> BlockId {
        self.info.block
    }

    /// The replica's generation stamp.
    pub(crate) fn gen_stamp(&self) -> GenStamp {
        self.info.gen_stamp
    }

    /// Reads `[offset, offset + len)`, clipped to the replica and widened to
    /// whole chunks, with one checksum per chunk: returns the chunk-aligned
    /// start offset, the data and the checksums. The caller verifies them.
    ///
    /// An empty range (`len == 0` or `offset == len()`) gives no data and no
    /// checksums.
    ///
    /// # Errors
    /// `OutOfRange` when `offset > len()`; `CorruptReplica` when a file turns
    /// out shorter than the replica map says.
    pub(crate) fn read_chunks(
        &mut self,
        offset: u64,
        len: usize,
    ) -> Result<(u64, Vec<u8>, Vec<u32>), Error> {
        let length = self.info.length;
        if offset > length {
            return Err(Error::OutOfRange {
                block: self.info.block,
                offset,
                length,
            });
        }
        let start = offset - offset % CHUNK;
        let end = offset.saturating_add(len as u64).min(length);
        if end <= offset {
            return Ok((start, Vec::new(), Vec::new()));
        }
        let end = end.div_ceil(CHUNK).saturating_mul(CHUNK).min(length);
        let too_long = || Error::OutOfRange {
            block: self.info.block,
            offset,
            length,
        };
        let n = usize::try_from(end - start).map_err(|_| too_long())?;
        let chunks = layout::chunks_for(end - start);
        let sums_len = usize::try_from(chunks * CHECKSUM_LEN).map_err(|_| too_long())?;
        let mut data = vec![0u8; n];
        let mut raw = vec![0u8; sums_len];
        let sums_at = META_HEADER_LEN + (start / CHUNK) * CHECKSUM_LEN;
        self.read_exact_at(&mut data, start, false)?;
        self.read_exact_at(&mut raw, sums_at, true)?;
        let (whole, _) = raw.as_chunks::<4>();
        let mut sums: Vec<u32> = whole.iter().map(|b| u32::from_be_bytes(*b)).collect();
        if self.is_cut_in_chunk
            && end == length
            && let (Some(last), Some(tail)) = (sums.last_mut(), data.chunks(CHUNK as usize).last())
        {
            *last = crc32c::crc32c(tail);
        }
        Ok((start, data, sums))
    }

    /// Every chunk checksum of the replica, in order, read from the meta file
    /// only (for the whole-block checksum).
    ///
    /// # Errors
    /// `CorruptReplica` when the meta file is shorter than the replica needs.
    pub(crate) fn read_all_checksums(&self) -> Result<Vec<u32>, Error> {
        let chunks = layout::chunks_for(self.info.length);
        let too_long = || Error::OutOfRange {
            block: self.info.block,
            offset: 0,
            length: self.info.length,
        };
        let n = usize::try_from(chunks * CHECKSUM_LEN).map_err(|_| too_long())?;
        let mut raw = vec![0u8; n];
        self.read_exact_at(&mut raw, META_HEADER_LEN, true)?;
        let (whole, _) = raw.as_chunks::<4>();
        let mut sums: Vec<u32> = whole.iter().map(|b| u32::from_be_bytes(*b)).collect();
        if self.is_cut_in_chunk {
            let tail = self.info.length % CHUNK;
            let mut chunk = vec![0u8; tail as usize];
            self.read_exact_at(&mut chunk, self.info.length - tail, false)?;
            if let Some(last) = sums.last_mut() {
                *last = crc32c::crc32c(&chunk);
            }
        }
        Ok(sums)
    }

    fn read_exact_at(&self, buf: &mut [u8], at: u64, is_meta: bool) -> Result<(), Error> {
        let file = if is_meta { &self.meta } else { &self.data };
        match file.read_exact_at(buf, at) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                let data_len = self.data.metadata()?.len();
                let meta_len = self.meta.metadata()?.len();
                Err(Error::CorruptReplica {
                    block: self.info.block,
                    reason: Corruption::LengthMismatch {
                        block_len: data_len,
                        meta_len,
                    },
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the whole replica in 1 MiB slices and checks every chunk against
    /// its checksum (for the block scanner). After each slice, `pace` gets
    /// the bytes it held and may stop the read (`Break`, returned as
    /// `Ok(Break(()))`): the scanner throttles itself and sees shutdown there.
    ///
    /// # Errors
    /// `ChecksumMismatch` at the first bad chunk's offset; `CorruptReplica`
    /// when a file turns out shorter than the replica map says.
    pub(crate) fn verify_all(
        &mut self,
        mut pace: impl FnMut(u64) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, Error> {
        let mut offset = 0;
        while offset < self.info.length {
            let (start, data, sums) = self.read_chunks(offset, VERIFY_SLICE)?;
            if let Err(m) = verify_chunks(&data, &sums) {
                return Err(Error::ChecksumMismatch {
                    block: self.info.block,
                    offset: start + m.chunk as u64 * CHUNK,
                });
            }
            if data.is_empty() {
                break;
            }
            offset = start + data.len() as u64;
            if pace(data.len() as u64).is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }
}
