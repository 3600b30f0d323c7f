//! The block store's error type and the typed reasons inside it.

use std::io;

use dfs_proto::ids::{BlockId, GenStamp};

/// Everything a block store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// No replica of the block in the state the operation needs.
    #[error("replica {block} not found")]
    ReplicaNotFound {
        /// The block asked for.
        block: BlockId,
    },
    /// A replica of the block already exists with a generation stamp at least as new.
    #[error("replica {block} already exists with gen stamp {gen_stamp}")]
    ReplicaExists {
        /// The block.
        block: BlockId,
        /// The existing replica's generation stamp.
        gen_stamp: GenStamp,
    },
    /// The replica exists with another generation stamp than the one asked for.
    #[error("replica {block} has gen stamp {found}, expected {expected}")]
    GenStampMismatch {
        /// The block.
        block: BlockId,
        /// The generation stamp the caller asked for.
        expected: GenStamp,
        /// The generation stamp the replica has.
        found: GenStamp,
    },
    /// A generation stamp bump that does not move forward.
    #[error("replica {block}: new gen stamp {requested} is not newer than {current}")]
    StaleGenStamp {
        /// The block.
        block: BlockId,
        /// The replica's generation stamp.
        current: GenStamp,
        /// The proposed new one.
        requested: GenStamp,
    },
    /// The replica's files on disk are inconsistent; it must not be served.
    #[error("replica {block} is corrupt: {reason}")]
    CorruptReplica {
        /// The block.
        block: BlockId,
        /// What is wrong with its files.
        reason: Corruption,
    },
    /// A chunk's data disagrees with its CRC32C.
    #[error("checksum mismatch in {block} at offset {offset}")]
    ChecksumMismatch {
        /// The block.
        block: BlockId,
        /// Block offset of the first bad chunk.
        offset: u64,
    },
    /// A packet that does not fit the replica being written.
    #[error("packet for {block} at offset {offset} rejected: {reason}")]
    InvalidPacket {
        /// The block.
        block: BlockId,
        /// The packet's block offset.
        offset: u64,
        /// Why it does not fit.
        reason: PacketFault,
    },
    /// A read that starts past the end of the replica.
    #[error("read of {block} at offset {offset} is past its length {length}")]
    OutOfRange {
        /// The block.
        block: BlockId,
        /// The requested offset.
        offset: u64,
        /// The replica's length.
        length: u64,
    },
    /// The volume is full.
    #[error("no space left on the data volume")]
    NoSpace,
    /// Any other I/O error on the data volume.
    #[error(transparent)]
    Io(io::Error),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Error::NoSpace,
            _ => Error::Io(e),
        }
    }
}

/// Why a replica's files cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Corruption {
    /// A block file without a meta file.
    #[error("meta file missing")]
    MissingMeta,
    /// A meta file without a block file.
    #[error("block file missing")]
    MissingBlock,
    /// The meta file is shorter than its header.
    #[error("meta header truncated ({meta_len} bytes)")]
    TruncatedHeader {
        /// The meta file's length.
        meta_len: u64,
    },
    /// The meta file does not start with the dfs magic.
    #[error("bad meta magic {found:02x?}")]
    BadMagic {
        /// The first four bytes found.
        found: [u8; 4],
    },
    /// A meta format version this build cannot read.
    #[error("unsupported meta version {found}")]
    UnsupportedVersion {
        /// The version found.
        found: u16,
    },
    /// A checksum type or chunk size other than CRC32C over 512 bytes.
    #[error("unsupported checksum type {kind} over {bytes_per_checksum} bytes")]
    UnsupportedChecksum {
        /// The checksum type id found.
        kind: u16,
        /// The chunk size found.
        bytes_per_checksum: u32,
    },
    /// The meta file does not hold exactly one checksum per chunk of the block file.
    #[error("block length {block_len} disagrees with meta length {meta_len}")]
    LengthMismatch {
        /// The block file's length.
        block_len: u64,
        /// The meta file's length.
        meta_len: u64,
    },
}

/// Why a packet does not fit the replica being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PacketFault {
    /// Not one checksum per started 512-byte chunk of the data.
    #[error("{found} checksums for {expected} chunks")]
    ChecksumCount {
        /// Chunks in the packet's data.
        expected: usize,
        /// Checksums sent.
        found: usize,
    },
    /// Neither the current length nor a chunk boundary at or before it.
    #[error("offset is neither the length {length} nor a chunk boundary before it")]
    NotSequential {
        /// The replica's length when the packet arrived.
        length: u64,
    },
    /// The packet would end past `u64::MAX`.
    #[error("packet ends past the largest block offset")]
    TooLong,
    /// The packet starts inside the finalized bytes of a reopened replica
    /// and ends past them: it would overwrite finalized data.
    #[error("packet would overwrite the first {floor} bytes, which are finalized")]
    BelowFinalized {
        /// The finalized length.
        floor: u64,
    },
}
