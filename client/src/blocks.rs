//! Blocks and replica locations as the client reasons about them, and their
//! conversions from and to the wire (`dfs.v1` messages stay in this file).

use dfs_proto::block_token::BlockToken;
use dfs_proto::ids::{BlockId, GenStamp};
use dfs_proto::v1;
use serde::Serialize;

/// A block under one generation stamp, with its length when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// The namenode's id for it.
    pub id: BlockId,
    /// Bumped by every pipeline recovery.
    pub gen_stamp: GenStamp,
    /// Bytes (0 while unknown).
    pub length: u64,
}

impl Block {
    /// `blk_ID_GENSTAMP`, as HDFS names a block in fsck output.
    pub fn name(&self) -> String {
        format!("{}_{}", self.id, self.gen_stamp)
    }

    pub(crate) fn from_wire(b: &v1::ExtendedBlock) -> Self {
        Block {
            id: BlockId(b.block_id),
            gen_stamp: GenStamp(b.gen_stamp),
            length: b.length,
        }
    }

    pub(crate) fn to_wire(self) -> v1::ExtendedBlock {
        v1::ExtendedBlock {
            block_id: self.id.0,
            gen_stamp: self.gen_stamp.0,
            length: self.length,
        }
    }
}

/// A datanode as a client reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Datanode {
    /// Its persistent id.
    pub id: String,
    /// `host:port` of its DataTransfer service.
    pub address: String,
    /// Its rack, e.g. `/r1`.
    pub rack: String,
}

impl Datanode {
    pub(crate) fn from_wire(d: v1::DatanodeLocation) -> Self {
        Datanode {
            id: d.datanode_id,
            address: d.transfer_address,
            rack: d.rack,
        }
    }

    pub(crate) fn to_wire(&self) -> v1::DatanodeLocation {
        v1::DatanodeLocation {
            datanode_id: self.id.clone(),
            transfer_address: self.address.clone(),
            rack: self.rack.clone(),
        }
    }
}

/// A block of a file and where its replicas are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedBlock {
    /// The block.
    pub block: Block,
    /// Offset of its first byte in the file.
    pub offset: u64,
    /// Replicas to read, nearest first: the healthy ones, or, when none is
    /// known healthy, the corrupt ones (verified chunk by chunk like any
    /// other). For a block being written: the pipeline.
    pub locations: Vec<Datanode>,
    /// Replicas the namenode knows to be corrupt.
    pub corrupt: Vec<Datanode>,
    /// The namenode's grant to read (or, for a pipeline, write) the block;
    /// `None` when the namenode runs without block tokens.
    pub token: Option<BlockToken>,
}

impl LocatedBlock {
    /// `None` when the namenode left out the block itself.
    pub(crate) fn from_wire(b: v1::LocatedBlock) -> Option<Self> {
        Some(LocatedBlock {
            block: Block::from_wire(b.block.as_ref()?),
            offset: b.offset,
            locations: b.locations.into_iter().map(Datanode::from_wire).collect(),
            corrupt: b
                .corrupt_locations
                .into_iter()
                .map(Datanode::from_wire)
                .collect(),
            token: b.token.map(BlockToken::from),
        })
    }

    /// The locations not known to be corrupt.
    pub fn healthy(&self) -> impl Iterator<Item = &Datanode> {
        self.locations
            .iter()
            .filter(|d| !self.corrupt.iter().any(|c| c.id == d.id))
    }

    /// Offset just past the block's last byte in the file.
    pub fn end(&self) -> u64 {
        self.offset + self.block.length
    }
}

/// The blocks of (part of) a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockLocations {
    /// Bytes in the file.
    pub file_length: u64,
    /// The blocks overlapping the asked range, in file order.
    pub blocks: Vec<LocatedBlock>,
    /// Whether the file is still being written.
    pub under_construction: bool,
}

impl BlockLocations {
    pub(crate) fn from_wire(r: v1::GetBlockLocationsResponse) -> Self {
        BlockLocations {
            file_length: r.file_length,
            blocks: r
                .blocks
                .into_iter()
                .filter_map(LocatedBlock::from_wire)
                .collect(),
            under_construction: r.under_construction,
        }
    }
}

/// A token as a request carries it.
pub(crate) fn token_to_wire(token: Option<&BlockToken>) -> Option<v1::BlockToken> {
    token.map(v1::BlockToken::from)
}
