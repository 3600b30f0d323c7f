//! Typed ids shared by namenodes, datanodes and clients.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A datanode's identity: random, persisted in its data dir, stable across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DatanodeId(String);

impl DatanodeId {
    /// Longest id a datanode may present.
    pub const MAX_LEN: usize = 128;

    /// Parses an id: 1 to [`Self::MAX_LEN`] characters of `[A-Za-z0-9_-]`.
    pub fn parse(s: &str) -> Option<Self> {
        let valid = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then(|| Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatanodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A namenode's server id in the quorum (ZooKeeper's `sid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServerId(pub u64);

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A leadership epoch: the high 32 bits of every zxid issued under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Epoch(pub u32);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A transaction id: `(epoch << 32) | counter`, totally ordered across epochs.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Zxid(pub u64);

impl Zxid {
    /// The zxid before any transaction.
    pub const ZERO: Zxid = Zxid(0);

    /// Builds the zxid of transaction `counter` in `epoch`.
    pub fn new(epoch: Epoch, counter: u32) -> Self {
        Zxid((u64::from(epoch.0) << 32) | u64::from(counter))
    }

    /// The epoch that issued this zxid.
    pub fn epoch(self) -> Epoch {
        Epoch((self.0 >> 32) as u32)
    }

    /// The position of this zxid within its epoch.
    pub fn counter(self) -> u32 {
        (self.0 & 0xffff_ffff) as u32
    }

    /// The next zxid in the same epoch, or `None` when the counter is exhausted.
    pub fn next(self) -> Option<Zxid> {
        self.counter()
            .checked_add(1)
            .map(|c| Zxid::new(self.epoch(), c))
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A block's id, allocated by the namenode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlockId(pub u64);

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blk_{}", self.0)
    }
}

/// A block's generation stamp: bumped by pipeline recovery, so stale replicas are told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GenStamp(pub u64);

impl fmt::Display for GenStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_splits_into_epoch_and_counter() {
        let z = Zxid::new(Epoch(7), 42);
        assert_eq!(z.0, (7 << 32) | 42);
        assert_eq!(z.epoch(), Epoch(7));
        assert_eq!(z.counter(), 42);
        assert_eq!(z.to_string(), "0x70000002a");
    }

    #[test]
    fn zxids_order_by_epoch_first() {
        assert!(Zxid::new(Epoch(2), 0) > Zxid::new(Epoch(1), u32::MAX));
        assert_eq!(Zxid::new(Epoch(1), u32::MAX).next(), None);
    }

    #[test]
    fn datanode_ids_reject_hostile_text() {
        assert!(DatanodeId::parse("dn-0a1b").is_some());
        assert!(DatanodeId::parse("").is_none());
        assert!(DatanodeId::parse("../etc").is_none());
        assert!(DatanodeId::parse(&"x".repeat(129)).is_none());
    }
}
