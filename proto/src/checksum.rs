//! CRC32C (Castagnoli) checksums over fixed 512-byte chunks, as HDFS computes them.

/// Bytes covered by one checksum.
pub const CHUNK_SIZE: usize = 512;

/// Computes one CRC32C per [`CHUNK_SIZE`] chunk of `data` (the last chunk may be short).
pub fn chunk_checksums(data: &[u8]) -> Vec<u32> {
    data.chunks(CHUNK_SIZE).map(crc32c::crc32c).collect()
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
    let chunks = data.chunks(CHUNK_SIZE);
    if chunks.len() != checksums.len() {
        return Err(ChunkMismatch {
            chunk: chunks.len().min(checksums.len()),
        });
    }
    for (chunk, (bytes, &expected)) in chunks.zip(checksums).enumerate() {
        if crc32c::crc32c(bytes) != expected {
            return Err(ChunkMismatch { chunk });
        }
    }
    Ok(())
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
    fn castagnoli_check_value() {
        // The standard check value of CRC-32C over "123456789".
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
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
