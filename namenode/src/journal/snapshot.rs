//! Snapshot file format: one namespace image and the zxid it reflects.
//!
//! Written whole to `snapshot.<zxid>.tmp`, fsynced, renamed into place, and the
//! directory fsynced, so a snapshot file either verifies or is from a damaged disk.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::txn::Zxid;

use super::segment::parse_hex_zxid;

/// Magic bytes at the start of every snapshot.
const MAGIC: [u8; 4] = *b"DFSS";
/// Snapshot format version written by this code.
const VERSION: u32 = 1;
/// Bytes before the image: magic, version, zxid, image length, CRC32C.
pub(super) const HEADER_LEN: usize = 28;
/// File name prefix of a snapshot; the rest is its zxid as 16 hex digits.
const FILE_PREFIX: &str = "snapshot.";
/// Suffix of a snapshot still being written.
pub(super) const TMP_SUFFIX: &str = ".tmp";

/// The file name of the snapshot that reflects every txn up to `zxid`.
pub(super) fn file_name(zxid: Zxid) -> String {
    format!("{FILE_PREFIX}{:016x}", zxid.0)
}

/// Parses a file name written by [`file_name`], or `None` for any other name.
pub(super) fn parse_file_name(name: &str) -> Option<Zxid> {
    parse_hex_zxid(name.strip_prefix(FILE_PREFIX)?)
}

/// Whether `name` is a snapshot that was being written when the namenode stopped.
pub(super) fn is_tmp_file_name(name: &str) -> bool {
    name.strip_suffix(TMP_SUFFIX)
        .is_some_and(|base| parse_file_name(base).is_some())
}

/// The CRC32C a snapshot carries: over the zxid and length LE bytes, then the image.
fn crc(zxid: Zxid, image: &[u8]) -> u32 {
    let mut head = [0u8; 16];
    let (z, len) = head.split_at_mut(8);
    z.copy_from_slice(&zxid.0.to_le_bytes());
    len.copy_from_slice(&(image.len() as u64).to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&head), image)
}

/// The header that precedes `image` in a snapshot of `zxid`.
pub(super) fn encode_header(zxid: Zxid, image: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER_LEN);
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&VERSION.to_le_bytes());
    buf.extend_from_slice(&zxid.0.to_le_bytes());
    buf.extend_from_slice(&(image.len() as u64).to_le_bytes());
    buf.extend_from_slice(&crc(zxid, image).to_le_bytes());
    buf
}

/// Writes `dir/snapshot.<zxid>.tmp` and fsyncs it; the caller renames it into
/// place and fsyncs the directory. Returns the tmp path and the final path.
pub(super) fn write_tmp(dir: &Path, zxid: Zxid, image: &[u8]) -> Result<(PathBuf, PathBuf), Error> {
    let path = dir.join(file_name(zxid));
    let tmp = dir.join(format!("{}{TMP_SUFFIX}", file_name(zxid)));
    let mut file = File::create(&tmp)?;
    file.write_all(&encode_header(zxid, image))?;
    file.write_all(image)?;
    file.sync_all()?;
    Ok((tmp, path))
}

/// Reads and verifies a snapshot file, returning its image.
///
/// # Errors
/// `SnapshotCorrupt` when the magic, version, zxid (against the file name),
/// length or CRC32C is wrong; `Io` when the file cannot be read.
pub(super) fn read(path: &Path, zxid: Zxid) -> Result<Vec<u8>, Error> {
    let bytes = std::fs::read(path)?;
    decode(&bytes, zxid)
        .map(<[u8]>::to_vec)
        .map_err(|reason| Error::SnapshotCorrupt {
            file: path.to_owned(),
            reason,
        })
}

/// Verifies snapshot bytes that should reflect `zxid` and returns the image.
fn decode(bytes: &[u8], zxid: Zxid) -> Result<&[u8], String> {
    let field = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .ok_or_else(|| format!("{} bytes is shorter than the header", bytes.len()))
    };
    let magic = field(0..4)?;
    if magic != MAGIC {
        return Err(format!("bad snapshot magic {magic:02x?}"));
    }
    let u32_at = |at: usize| -> Result<u32, String> {
        let raw = field(at..at + 4)?;
        Ok(u32::from_le_bytes(raw.try_into().map_err(|_| "short")?))
    };
    let u64_at = |at: usize| -> Result<u64, String> {
        let raw = field(at..at + 8)?;
        Ok(u64::from_le_bytes(raw.try_into().map_err(|_| "short")?))
    };
    let version = u32_at(4)?;
    if version != VERSION {
        return Err(format!("unsupported snapshot version {version}"));
    }
    let stored_zxid = Zxid(u64_at(8)?);
    if stored_zxid != zxid {
        return Err(format!(
            "header says zxid {stored_zxid} but the file name says {zxid}"
        ));
    }
    let len = u64_at(16)?;
    let stored_crc = u32_at(24)?;
    let image = field(HEADER_LEN..bytes.len())?;
    if image.len() as u64 != len {
        return Err(format!(
            "header says {len} image bytes but the file holds {}",
            image.len()
        ));
    }
    if crc(zxid, image) != stored_crc {
        return Err("image CRC32C mismatch".to_owned());
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole snapshot file's bytes.
    fn encode(zxid: Zxid, image: &[u8]) -> Vec<u8> {
        let mut bytes = encode_header(zxid, image);
        bytes.extend_from_slice(image);
        bytes
    }

    #[test]
    fn snapshot_bytes_round_trip() {
        let bytes = encode(Zxid(42), b"image");
        assert_eq!(bytes.len(), HEADER_LEN + 5);
        assert_eq!(decode(&bytes, Zxid(42)), Ok(&b"image"[..]));
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_refused() {
        let bytes = encode(Zxid(42), b"some namespace image");
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x01;
            assert!(decode(&damaged, Zxid(42)).is_err(), "flip at {at}");
        }
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], Zxid(42)).is_err(), "cut at {cut}");
        }
        let mut longer = bytes;
        longer.push(0);
        assert!(decode(&longer, Zxid(42)).is_err());
    }

    #[test]
    fn a_snapshot_under_another_name_is_refused() {
        let bytes = encode(Zxid(42), b"image");
        assert!(decode(&bytes, Zxid(43)).unwrap_err().contains("file name"));
    }

    #[test]
    fn file_names_are_canonical_hex() {
        assert_eq!(file_name(Zxid(0x2a)), "snapshot.000000000000002a");
        assert_eq!(parse_file_name("snapshot.000000000000002a"), Some(Zxid(42)));
        assert_eq!(parse_file_name("snapshot.000000000000002a.tmp"), None);
        assert!(is_tmp_file_name("snapshot.000000000000002a.tmp"));
        assert!(!is_tmp_file_name("snapshot.2a.tmp"));
    }
}
