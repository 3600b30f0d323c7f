//! Where replica files live, what they are called, and the meta file header.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use dfs_proto::checksum::CHUNK_SIZE;
use dfs_proto::ids::{BlockId, GenStamp};

use super::error::Corruption;

/// Bytes of data covered by one checksum, as a file offset.
pub(crate) const CHUNK: u64 = CHUNK_SIZE as u64;
/// Bytes of one stored checksum.
pub(crate) const CHECKSUM_LEN: u64 = 4;
/// First bytes of every meta file.
pub(crate) const META_MAGIC: [u8; 4] = *b"DFSM";
/// The meta format this build writes and reads.
pub(crate) const META_VERSION: u16 = 1;
/// HDFS's `DataChecksum.Type` id of CRC32C.
pub(crate) const CHECKSUM_TYPE_CRC32C: u16 = 2;
/// Length of the meta header: magic, version, checksum type, bytes per checksum.
pub(crate) const META_HEADER_LEN: u64 = 12;

/// The meta header this build writes.
pub(crate) fn meta_header() -> [u8; META_HEADER_LEN as usize] {
    let mut h = [0u8; META_HEADER_LEN as usize];
    let (magic, rest) = h.split_at_mut(4);
    magic.copy_from_slice(&META_MAGIC);
    let (version, rest) = rest.split_at_mut(2);
    version.copy_from_slice(&META_VERSION.to_be_bytes());
    let (kind, bpc) = rest.split_at_mut(2);
    kind.copy_from_slice(&CHECKSUM_TYPE_CRC32C.to_be_bytes());
    bpc.copy_from_slice(&(CHUNK as u32).to_be_bytes());
    h
}

/// Reads and checks the header of an open meta file of `meta_len` bytes.
///
/// # Errors
/// `Ok(Err(_))` for a header this build does not accept; `Err` for an I/O error.
pub(crate) fn read_meta_header(meta: &File, meta_len: u64) -> io::Result<Result<(), Corruption>> {
    if meta_len < META_HEADER_LEN {
        return Ok(Err(Corruption::TruncatedHeader { meta_len }));
    }
    let mut h = [0u8; META_HEADER_LEN as usize];
    match meta.read_exact_at(&mut h, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Ok(Err(Corruption::TruncatedHeader { meta_len }));
        }
        Err(e) => return Err(e),
    }
    Ok(check_meta_header(h))
}

fn check_meta_header(h: [u8; META_HEADER_LEN as usize]) -> Result<(), Corruption> {
    let [m0, m1, m2, m3, v0, v1, k0, k1, b0, b1, b2, b3] = h;
    let magic = [m0, m1, m2, m3];
    if magic != META_MAGIC {
        return Err(Corruption::BadMagic { found: magic });
    }
    let version = u16::from_be_bytes([v0, v1]);
    if version != META_VERSION {
        return Err(Corruption::UnsupportedVersion { found: version });
    }
    let kind = u16::from_be_bytes([k0, k1]);
    let bytes_per_checksum = u32::from_be_bytes([b0, b1, b2, b3]);
    if kind != CHECKSUM_TYPE_CRC32C || u64::from(bytes_per_checksum) != CHUNK {
        return Err(Corruption::UnsupportedChecksum {
            kind,
            bytes_per_checksum,
        });
    }
    Ok(())
}

/// Chunks (and so checksums) covering `len` bytes of data.
pub(crate) fn chunks_for(len: u64) -> u64 {
    len.div_ceil(CHUNK)
}

/// The meta file length that matches a block file of `len` bytes.
pub(crate) fn meta_len_for(len: u64) -> u64 {
    META_HEADER_LEN + CHECKSUM_LEN * chunks_for(len)
}

/// Checks that a block file and its meta file have matching lengths.
pub(crate) fn check_lengths(block_len: u64, meta_len: u64) -> Result<(), Corruption> {
    if meta_len == meta_len_for(block_len) {
        Ok(())
    } else {
        Err(Corruption::LengthMismatch {
            block_len,
            meta_len,
        })
    }
}

/// A replica file name, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileName {
    /// `blk_<id>`: the data.
    Block(BlockId),
    /// `blk_<id>_<genstamp>.meta`: the checksums.
    Meta(BlockId, GenStamp),
}

/// `blk_<id>`.
pub(crate) fn block_file_name(block: BlockId) -> String {
    format!("blk_{}", block.0)
}

/// `blk_<id>_<genstamp>.meta`.
pub(crate) fn meta_file_name(block: BlockId, gs: GenStamp) -> String {
    format!("blk_{}_{}.meta", block.0, gs.0)
}

/// Parses a file name this store wrote; anything else (including non-canonical
/// numbers such as `blk_007`, which would alias `blk_7`) is `None`.
pub(crate) fn parse_file_name(name: &str) -> Option<FileName> {
    let rest = name.strip_prefix("blk_")?;
    let parsed = match rest.strip_suffix(".meta") {
        Some(ids) => {
            let (id, gs) = ids.split_once('_')?;
            FileName::Meta(BlockId(id.parse().ok()?), GenStamp(gs.parse().ok()?))
        }
        None => FileName::Block(BlockId(rest.parse().ok()?)),
    };
    let canonical = match parsed {
        FileName::Block(b) => block_file_name(b),
        FileName::Meta(b, gs) => meta_file_name(b, gs),
    };
    (canonical == name).then_some(parsed)
}

/// Subdirectory indices of a finalized block: `(id >> 16) & 0x1f`, `(id >> 8) & 0x1f`.
pub(crate) fn subdirs_of(block: BlockId) -> (u64, u64) {
    ((block.0 >> 16) & 0x1f, (block.0 >> 8) & 0x1f)
}

/// Parses `subdir<n>` with `n < 32`, canonical digits only.
pub(crate) fn parse_subdir(name: &str) -> Option<u64> {
    let n: u64 = name.strip_prefix("subdir")?.parse().ok()?;
    (n < 32 && format!("subdir{n}") == name).then_some(n)
}

/// The directories of one data dir.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// `current/rbw`: replicas being written.
    pub(crate) rbw: PathBuf,
    /// `current/finalized`: replicas readers may see.
    pub(crate) finalized: PathBuf,
    /// `tmp`: scratch, emptied on open.
    pub(crate) tmp: PathBuf,
    /// `corrupt`: replicas the start-up scan moved aside, kept for an operator.
    pub(crate) corrupt: PathBuf,
}

impl Layout {
    /// The layout under `data_dir`.
    pub(crate) fn new(data_dir: &Path) -> Self {
        let current = data_dir.join("current");
        Layout {
            rbw: current.join("rbw"),
            finalized: current.join("finalized"),
            tmp: data_dir.join("tmp"),
            corrupt: data_dir.join("corrupt"),
        }
    }

    /// `finalized/subdir<a>/subdir<b>` of a block.
    pub(crate) fn finalized_dir(&self, block: BlockId) -> PathBuf {
        let (a, b) = subdirs_of(block);
        self.finalized
            .join(format!("subdir{a}"))
            .join(format!("subdir{b}"))
    }

    /// The block file of a finalized replica.
    pub(crate) fn finalized_block(&self, block: BlockId) -> PathBuf {
        self.finalized_dir(block).join(block_file_name(block))
    }

    /// The meta file of a finalized replica.
    pub(crate) fn finalized_meta(&self, block: BlockId, gs: GenStamp) -> PathBuf {
        self.finalized_dir(block).join(meta_file_name(block, gs))
    }

    /// The block file of a replica being written.
    pub(crate) fn rbw_block(&self, block: BlockId) -> PathBuf {
        self.rbw.join(block_file_name(block))
    }

    /// The meta file of a replica being written.
    pub(crate) fn rbw_meta(&self, block: BlockId, gs: GenStamp) -> PathBuf {
        self.rbw.join(meta_file_name(block, gs))
    }
}

/// Makes a directory's entries (creations, renames) durable.
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes a file; one that is already gone is not an error.
pub(crate) fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_reject_lookalikes() {
        assert_eq!(
            parse_file_name("blk_42"),
            Some(FileName::Block(BlockId(42)))
        );
        assert_eq!(
            parse_file_name("blk_42_7.meta"),
            Some(FileName::Meta(BlockId(42), GenStamp(7)))
        );
        for bad in [
            "blk_",
            "blk_007",
            "blk_-1",
            "blk_1_.meta",
            "blk_1_2_3.meta",
            "blk_1.meta",
            "blk_x",
            "blk_1_2.meta.tmp",
            "BLK_1",
            "blk_+1",
            "blk_99999999999999999999",
            ".blk_1",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn finalized_dirs_spread_by_id_bits() {
        let layout = Layout::new(Path::new("/d"));
        assert_eq!(
            layout.finalized_block(BlockId(0x01_0203)),
            Path::new("/d/current/finalized/subdir1/subdir2/blk_66051")
        );
        assert_eq!(subdirs_of(BlockId(u64::MAX)), (31, 31));
        assert_eq!(parse_subdir("subdir31"), Some(31));
        assert_eq!(parse_subdir("subdir32"), None);
        assert_eq!(parse_subdir("subdir01"), None);
    }

    #[test]
    fn header_checks_every_field() {
        let good = meta_header();
        assert_eq!(check_meta_header(good), Ok(()));
        let mut bad = good;
        bad[0] = b'X';
        assert!(matches!(
            check_meta_header(bad),
            Err(Corruption::BadMagic { .. })
        ));
        let mut bad = good;
        bad[5] = 9;
        assert_eq!(
            check_meta_header(bad),
            Err(Corruption::UnsupportedVersion { found: 9 })
        );
        let mut bad = good;
        bad[7] = 1;
        assert!(matches!(
            check_meta_header(bad),
            Err(Corruption::UnsupportedChecksum { kind: 1, .. })
        ));
        let mut bad = good;
        bad[10] = 4;
        assert!(matches!(
            check_meta_header(bad),
            Err(Corruption::UnsupportedChecksum {
                bytes_per_checksum: 1024,
                ..
            })
        ));
    }

    #[test]
    fn meta_length_is_header_plus_one_checksum_per_started_chunk() {
        assert_eq!(meta_len_for(0), 12);
        assert_eq!(meta_len_for(1), 16);
        assert_eq!(meta_len_for(512), 16);
        assert_eq!(meta_len_for(513), 20);
        assert!(check_lengths(513, 16).is_err());
    }
}
