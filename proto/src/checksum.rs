//! CRC32C (Castagnoli) checksums over fixed 512-byte chunks, as HDFS computes them.

/// Bytes covered by one checksum.
pub const CHUNK_SIZE: usize = 512;

/// Bytes checksummed in one interleaved step: three chunks.
const TRIPLE: usize = 3 * CHUNK_SIZE;

/// Computes one CRC32C per [`CHUNK_SIZE`] chunk of `data` (the last chunk may be short).
pub fn chunk_checksums(data: &[u8]) -> Vec<u32> {
    let mut sums = Vec::with_capacity(data.len().div_ceil(CHUNK_SIZE));
    let (triples, rest) = data.as_chunks::<TRIPLE>();
    for triple in triples {
        sums.extend_from_slice(&crc_triple(triple));
    }
    sums.extend(rest.chunks(CHUNK_SIZE).map(crc32c::crc32c));
    sums
}

/// Bytes of a packet starting at block offset `offset` that belong to its
/// first chunk: up to the next chunk boundary (a packet continuing a partial
/// last chunk, as the first packet of an append does), or a whole chunk.
pub fn first_chunk_len(offset: u64, len: usize) -> usize {
    // The remainder is below CHUNK_SIZE, so it fits a usize.
    let into_chunk = (offset % CHUNK_SIZE as u64) as usize;
    (CHUNK_SIZE - into_chunk).min(len)
}

/// Checksums a packet carries for `len` bytes at block offset `offset`: one
/// per chunk, chunks cut at the block's 512-byte boundaries.
pub fn packet_chunks(offset: u64, len: usize) -> usize {
    let first = first_chunk_len(offset, len);
    match len {
        0 => 0,
        _ => 1 + (len - first).div_ceil(CHUNK_SIZE),
    }
}

/// [`chunk_checksums`] of a packet's `data` at block offset `offset`: its
/// first chunk ends at the block's next chunk boundary.
pub fn chunk_checksums_at(offset: u64, data: &[u8]) -> Vec<u32> {
    let (first, rest) = data.split_at(first_chunk_len(offset, data.len()));
    if first.len() == CHUNK_SIZE || first.is_empty() {
        return chunk_checksums(data);
    }
    let mut sums = Vec::with_capacity(packet_chunks(offset, data.len()));
    sums.push(crc32c::crc32c(first));
    sums.extend(chunk_checksums(rest));
    sums
}

/// [`verify_chunks`] of a packet's `data` at block offset `offset`, chunks
/// cut as [`chunk_checksums_at`] cuts them.
///
/// # Errors
/// The first chunk whose CRC differs, or the first chunk without a checksum.
pub fn verify_chunks_at(offset: u64, data: &[u8], checksums: &[u32]) -> Result<(), ChunkMismatch> {
    let first = first_chunk_len(offset, data.len());
    if first == CHUNK_SIZE || first == 0 {
        return verify_chunks(data, checksums);
    }
    let (head, rest) = data.split_at(first);
    let Some((&head_sum, rest_sums)) = checksums.split_first() else {
        return Err(ChunkMismatch { chunk: 0 });
    };
    if crc32c::crc32c(head) != head_sum {
        return Err(ChunkMismatch { chunk: 0 });
    }
    verify_chunks(rest, rest_sums).map_err(|m| ChunkMismatch { chunk: m.chunk + 1 })
}

/// The CRC32C of each of three consecutive chunks.
///
/// A CRC32C instruction takes 3 cycles but a new one can start every cycle,
/// so three independent chains, interleaved, keep the unit busy: 2.4x the
/// speed of one chunk after another (as Hadoop's native bulk CRC does). A
/// chunk of 512 bytes is too short for a single-buffer CRC to do this itself.
fn crc_triple(triple: &[u8; TRIPLE]) -> [u32; 3] {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU has SSE4.2, as just checked.
        return unsafe { x86::crc_triple(triple) };
    }
    let (a, bc) = triple.split_at(CHUNK_SIZE);
    let (b, c) = bc.split_at(CHUNK_SIZE);
    [crc32c::crc32c(a), crc32c::crc32c(b), crc32c::crc32c(c)]
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::_mm_crc32_u64;

    use super::{CHUNK_SIZE, TRIPLE};

    /// [`super::crc_triple`] with the SSE4.2 CRC32 instruction.
    #[target_feature(enable = "sse4.2")]
    pub(super) fn crc_triple(triple: &[u8; TRIPLE]) -> [u32; 3] {
        const WORDS: usize = CHUNK_SIZE / 8;
        let (words, _) = triple.as_chunks::<8>();
        let (a, bc) = words.split_at(WORDS);
        let (b, c) = bc.split_at(WORDS);
        let mut crc = [u64::from(u32::MAX); 3];
        for ((x, y), z) in a.iter().zip(b).zip(c) {
            crc[0] = _mm_crc32_u64(crc[0], u64::from_le_bytes(*x));
            crc[1] = _mm_crc32_u64(crc[1], u64::from_le_bytes(*y));
            crc[2] = _mm_crc32_u64(crc[2], u64::from_le_bytes(*z));
        }
        // The CRC lives in the low 32 bits; CRC32C ends inverted.
        crc.map(|c| !(c as u32))
    }
}

/// Where a chunk's data and its checksum disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("checksum mismatch in chunk {chunk}")]
pub struct ChunkMismatch {
    /// Index of the first bad chunk within the checked range.
    pub chunk: usize,
}

/// Checks `data` against one checksum per chunk.
///
/// # Errors
/// The first chunk whose CRC differs, or the first chunk without a checksum.
pub fn verify_chunks(data: &[u8], checksums: &[u32]) -> Result<(), ChunkMismatch> {
    let chunks = data.len().div_ceil(CHUNK_SIZE);
    if chunks != checksums.len() {
        return Err(ChunkMismatch {
            chunk: chunks.min(checksums.len()),
        });
    }
    match chunk_checksums(data)
        .iter()
        .zip(checksums)
        .position(|(actual, expected)| actual != expected)
    {
        Some(chunk) => Err(ChunkMismatch { chunk }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_checksum_per_started_chunk() {
        assert!(chunk_checksums(&[]).is_empty());
        assert_eq!(chunk_checksums(&[0; 511]).len(), 1);
        assert_eq!(chunk_checksums(&[0; 512]).len(), 1);
        assert_eq!(chunk_checksums(&[0; 513]).len(), 2);
    }

    #[test]
    fn a_packet_inside_a_chunk_ends_its_first_chunk_at_the_boundary() {
        assert_eq!(packet_chunks(1000, 0), 0);
        assert_eq!(packet_chunks(1000, 24), 1);
        assert_eq!(packet_chunks(1000, 25), 2);
        assert_eq!(packet_chunks(1024, 513), 2);
        let data: Vec<u8> = (0..2000).map(|i| (i % 251) as u8).collect();
        let sums = chunk_checksums_at(1000, &data);
        assert_eq!(sums.len(), packet_chunks(1000, data.len()));
        assert_eq!(sums[0], crc32c::crc32c(&data[..24]));
        assert_eq!(sums[1], crc32c::crc32c(&data[24..536]));
        assert_eq!(verify_chunks_at(1000, &data, &sums), Ok(()));
        let mut bad = data.clone();
        bad[30] ^= 1;
        assert_eq!(
            verify_chunks_at(1000, &bad, &sums),
            Err(ChunkMismatch { chunk: 1 })
        );
        // At a boundary it is the plain split.
        assert_eq!(chunk_checksums_at(1024, &data), chunk_checksums(&data));
    }

    #[test]
    fn castagnoli_check_value() {
        // The standard check value of CRC-32C over "123456789".
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    proptest::proptest! {
        #[test]
        fn interleaved_checksums_equal_one_chunk_at_a_time(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..6000),
        ) {
            let one_by_one: Vec<u32> = data.chunks(CHUNK_SIZE).map(crc32c::crc32c).collect();
            proptest::prop_assert_eq!(chunk_checksums(&data), one_by_one);
        }
    }

    #[test]
    fn every_chunk_of_a_triple_is_checked() {
        let data: Vec<u8> = (0..4 * TRIPLE + 100)
            .map(|i| (i * 13 + i / 511) as u8)
            .collect();
        let sums = chunk_checksums(&data);
        for chunk in 0..sums.len() {
            let mut bad = data.clone();
            bad[chunk * CHUNK_SIZE + 17 % (data.len() - chunk * CHUNK_SIZE)] ^= 0x40;
            assert_eq!(verify_chunks(&bad, &sums), Err(ChunkMismatch { chunk }));
        }
    }

    #[test]
    fn a_flipped_byte_names_its_chunk() {
        let mut data = vec![7u8; 2000];
        let sums = chunk_checksums(&data);
        assert_eq!(verify_chunks(&data, &sums), Ok(()));
        data[1500] ^= 1;
        assert_eq!(verify_chunks(&data, &sums), Err(ChunkMismatch { chunk: 2 }));
        assert!(verify_chunks(&data, &sums[..3]).is_err());
    }
}
