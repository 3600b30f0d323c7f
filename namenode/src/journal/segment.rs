//! Log segment format: the header, CRC frames, and the scan that recovery runs.
//!
//! Pure byte handling: nothing here touches a file, so every torn and corrupt
//! shape is testable on a `Vec<u8>`. See the parent module for the layout.

use crate::txn::Zxid;

/// Magic bytes at the start of every segment.
pub(super) const MAGIC: [u8; 4] = *b"DFSJ";
/// Segment format version written by this code.
pub(super) const VERSION: u32 = 1;
/// Bytes in a segment header: magic, version, zxid before the segment.
pub(super) const HEADER_LEN: usize = 16;
/// Bytes in a frame header: payload length, CRC32C, zxid.
pub(super) const FRAME_HEADER_LEN: usize = 16;
/// Largest payload a frame may carry (64 MiB); longer lengths are garbage.
pub(super) const MAX_PAYLOAD: usize = 64 << 20;
/// File name prefix of a segment; the rest is its first zxid as 16 hex digits.
pub(super) const FILE_PREFIX: &str = "log.";

/// The file name of the segment whose first record is `first`.
pub(super) fn file_name(first: Zxid) -> String {
    format!("{FILE_PREFIX}{:016x}", first.0)
}

/// Parses a file name written by [`file_name`], or `None` for any other name.
pub(super) fn parse_file_name(name: &str) -> Option<Zxid> {
    parse_hex_zxid(name.strip_prefix(FILE_PREFIX)?)
}

/// Parses exactly 16 lowercase hex digits.
pub(super) fn parse_hex_zxid(hex: &str) -> Option<Zxid> {
    let is_canonical = hex.len() == 16
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !is_canonical {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(Zxid)
}

/// Appends a segment header; `prev` is the last zxid logged before this segment (0 if none).
pub(super) fn encode_header(buf: &mut Vec<u8>, prev: Zxid) {
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&VERSION.to_le_bytes());
    buf.extend_from_slice(&prev.0.to_le_bytes());
}

/// The CRC32C a frame carries: over the zxid's LE bytes, then the payload.
fn frame_crc(zxid: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&zxid.to_le_bytes()), payload)
}

/// Appends one frame. The caller has checked `payload.len() <= MAX_PAYLOAD`.
pub(super) fn encode_frame(buf: &mut Vec<u8>, zxid: Zxid, payload: &[u8]) {
    // MAX_PAYLOAD < u32::MAX, so the length always fits.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&frame_crc(zxid.0, payload).to_le_bytes());
    buf.extend_from_slice(&zxid.0.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Reads a little-endian u32 at `at`, or `None` past the end.
fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(raw.try_into().ok()?))
}

/// Reads a little-endian u64 at `at`, or `None` past the end.
fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let raw = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(raw.try_into().ok()?))
}

/// A segment header that could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes: a segment torn while being created.
    Short,
    /// A full-length header that is wrong: offset of the bad field and why.
    Bad {
        /// Byte offset of the bad field.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// Checks a segment header and returns the zxid logged before the segment.
pub(super) fn decode_header(bytes: &[u8]) -> Result<Zxid, HeaderError> {
    let (Some(magic), Some(version), Some(prev)) =
        (bytes.get(..4), read_u32(bytes, 4), read_u64(bytes, 8))
    else {
        return Err(HeaderError::Short);
    };
    if magic != MAGIC {
        return Err(HeaderError::Bad {
            offset: 0,
            reason: format!("bad segment magic {magic:02x?}"),
        });
    }
    if version != VERSION {
        return Err(HeaderError::Bad {
            offset: 4,
            reason: format!("unsupported segment version {version}"),
        });
    }
    Ok(Zxid(prev))
}

/// Why the bytes at an offset are not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FrameError {
    /// The frame runs past the end of the bytes.
    Incomplete,
    /// The length field exceeds [`MAX_PAYLOAD`].
    BadLength(u32),
    /// The CRC32C does not match.
    BadCrc,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Incomplete => f.write_str("incomplete frame"),
            FrameError::BadLength(len) => write!(f, "frame length {len} exceeds {MAX_PAYLOAD}"),
            FrameError::BadCrc => f.write_str("frame CRC32C mismatch"),
        }
    }
}

/// One frame read back: its zxid, payload range within the segment, and total length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Frame {
    /// The record's zxid.
    pub(super) zxid: Zxid,
    /// Offset of the payload's first byte.
    pub(super) payload_start: usize,
    /// Payload length in bytes.
    pub(super) payload_len: usize,
}

impl Frame {
    /// Offset just past this frame.
    pub(super) fn end(&self) -> usize {
        self.payload_start + self.payload_len
    }

    /// The payload bytes, given the segment they were decoded from.
    pub(super) fn payload<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        bytes.get(self.payload_start..self.end()).unwrap_or(&[])
    }
}

/// Decodes the frame at `at`, verifying its length bound and CRC.
pub(super) fn decode_frame(bytes: &[u8], at: usize) -> Result<Frame, FrameError> {
    let (Some(len), Some(crc), Some(zxid)) = (
        read_u32(bytes, at),
        read_u32(bytes, at + 4),
        read_u64(bytes, at + 8),
    ) else {
        return Err(FrameError::Incomplete);
    };
    let payload_len = len as usize;
    if payload_len > MAX_PAYLOAD {
        return Err(FrameError::BadLength(len));
    }
    let payload_start = at + FRAME_HEADER_LEN;
    let payload = bytes
        .get(payload_start..payload_start + payload_len)
        .ok_or(FrameError::Incomplete)?;
    if frame_crc(zxid, payload) != crc {
        return Err(FrameError::BadCrc);
    }
    Ok(Frame {
        zxid: Zxid(zxid),
        payload_start,
        payload_len,
    })
}

/// Whether any valid frame starts after `at`: the test that tells a torn tail
/// (garbage to the end) from a corrupt record with good records behind it.
///
/// Probes every byte offset, since a damaged length field loses the framing.
/// Most offsets fail the length bound or the bounds check without hashing.
pub(super) fn has_valid_frame_after(bytes: &[u8], at: usize) -> bool {
    (at + 1..bytes.len().saturating_sub(FRAME_HEADER_LEN - 1))
        .any(|p| decode_frame(bytes, p).is_ok())
}

/// The frames of one segment as far as they are valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Scan {
    /// The zxid logged before this segment, from its header.
    pub(super) prev: Zxid,
    /// Every valid frame, in file order.
    pub(super) frames: Vec<Frame>,
    /// Where the valid frames end and why, when garbage follows them.
    pub(super) bad: Option<(usize, FrameError)>,
}

/// Walks the frames after a decoded header, stopping at the first bad one.
///
/// Zxid order is not checked here: recovery does that across segments.
pub(super) fn scan(bytes: &[u8], prev: Zxid) -> Scan {
    let mut frames = Vec::new();
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        match decode_frame(bytes, at) {
            Ok(frame) => {
                at = frame.end();
                frames.push(frame);
            }
            Err(e) => {
                return Scan {
                    prev,
                    frames,
                    bad: Some((at, e)),
                };
            }
        }
    }
    Scan {
        prev,
        frames,
        bad: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment holding `records` after a header naming `prev`.
    fn segment(prev: u64, records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_header(&mut buf, Zxid(prev));
        for (zxid, payload) in records {
            encode_frame(&mut buf, Zxid(*zxid), payload);
        }
        buf
    }

    #[test]
    fn frames_round_trip_with_their_payloads() {
        let bytes = segment(7, &[(8, b"alpha"), (9, b""), (12, &[0xff; 300])]);
        let prev = decode_header(&bytes).unwrap();
        assert_eq!(prev, Zxid(7));
        let scan = scan(&bytes, prev);
        assert_eq!(scan.bad, None);
        let got: Vec<(u64, Vec<u8>)> = scan
            .frames
            .iter()
            .map(|f| (f.zxid.0, f.payload(&bytes).to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![(8, b"alpha".to_vec()), (9, vec![]), (12, vec![0xff; 300])]
        );
    }

    #[test]
    fn frame_layout_is_len_crc_zxid_payload() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, Zxid(0x0102), b"xy");
        assert_eq!(&buf[0..4], &2u32.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&0x0102u64.to_le_bytes()), b"xy");
        assert_eq!(&buf[4..8], &crc.to_le_bytes());
        assert_eq!(&buf[8..16], &0x0102u64.to_le_bytes());
        assert_eq!(&buf[16..], b"xy");
    }

    #[test]
    fn short_and_bad_headers_are_told_apart() {
        let good = segment(0, &[]);
        for cut in 0..HEADER_LEN {
            assert_eq!(decode_header(&good[..cut]), Err(HeaderError::Short));
        }
        let mut bad_magic = good.clone();
        bad_magic[1] ^= 1;
        assert!(matches!(
            decode_header(&bad_magic),
            Err(HeaderError::Bad { offset: 0, .. })
        ));
        let mut bad_version = good;
        bad_version[4] = 9;
        assert!(matches!(
            decode_header(&bad_version),
            Err(HeaderError::Bad { offset: 4, .. })
        ));
    }

    #[test]
    fn every_cut_of_the_last_frame_is_incomplete_with_nothing_after() {
        let bytes = segment(0, &[(1, b"one"), (2, b"two-two")]);
        let last_start = HEADER_LEN + FRAME_HEADER_LEN + 3;
        for cut in last_start + 1..bytes.len() {
            let scan = scan(&bytes[..cut], Zxid(0));
            assert_eq!(scan.frames.len(), 1, "cut {cut}");
            assert_eq!(scan.bad, Some((last_start, FrameError::Incomplete)));
            assert!(!has_valid_frame_after(&bytes[..cut], last_start));
        }
    }

    #[test]
    fn a_flipped_byte_is_found_at_its_frame_and_good_frames_follow_it() {
        let bytes = segment(0, &[(1, b"one"), (2, b"two"), (3, b"three")]);
        let second = HEADER_LEN + FRAME_HEADER_LEN + 3;
        let third = second + FRAME_HEADER_LEN + 3;
        for at in second..third {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            let scan = scan(&damaged, Zxid(0));
            let (bad_at, _) = scan.bad.unwrap();
            assert_eq!(bad_at, second, "flip at {at}");
            assert!(has_valid_frame_after(&damaged, bad_at), "flip at {at}");
        }
    }

    #[test]
    fn garbage_lengths_are_rejected_before_reading() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&u32::MAX.to_le_bytes());
        buf.extend_from_slice(&[0; 12]);
        assert_eq!(decode_frame(&buf, 0), Err(FrameError::BadLength(u32::MAX)));
    }

    #[test]
    fn file_names_are_canonical_hex() {
        assert_eq!(file_name(Zxid(0x1_0000_0001)), "log.0000000100000001");
        assert_eq!(
            parse_file_name("log.0000000100000001"),
            Some(Zxid(0x1_0000_0001))
        );
        assert_eq!(parse_file_name("log.0000000100000001.tmp"), None);
        assert_eq!(parse_file_name("log.000000010000000A"), None);
        assert_eq!(parse_file_name("log.+00000010000000"), None);
        assert_eq!(parse_file_name("snapshot.0000000100000001"), None);
    }
}
