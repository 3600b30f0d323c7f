//! The retry cache: a write retried after a failover is applied at most once.
//!
//! As in HDFS's RetryCache, every logged txn carries the client id and call
//! id of the request that made it ([`Logged`]). Every namenode remembers the
//! most recent ones as it applies them, so a new leader knows which calls its
//! predecessor already took: a retried `mkdir` or `create` answers with the
//! txn it made the first time instead of failing with "already exists".
//!
//! Entries come from the log only (not from snapshots), and the oldest are
//! forgotten beyond [`CAPACITY`]; a client retries within seconds.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::txn::{Txn, Zxid};

/// Calls remembered; the oldest are forgotten first.
const CAPACITY: usize = 100_000;

/// Who asked for a change: the client's random id and its call number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct CallId {
    /// The client's id (at most 32 bytes).
    pub(crate) client: Vec<u8>,
    /// Numbered by the client; the same on every retry of one call.
    pub(crate) call: u64,
}

/// A txn as the journal and the quorum carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Logged {
    /// The call that made it, when a client did.
    pub(crate) call: Option<CallId>,
    /// The change.
    pub(crate) txn: Txn,
}

impl Logged {
    /// Encodes for the journal and the wire.
    pub(crate) fn encode(&self) -> Vec<u8> {
        // postcard only fails on writer errors, and a Vec writer has none.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Decodes the bytes [`Logged::encode`] wrote for `zxid`.
    ///
    /// # Errors
    /// `Replay` naming `zxid` when they do not decode.
    pub(crate) fn decode(zxid: Zxid, bytes: &[u8]) -> Result<Logged, Error> {
        postcard::from_bytes(bytes).map_err(|e| Error::Replay {
            zxid,
            reason: format!("undecodable transaction: {e}"),
        })
    }
}

/// The calls applied most recently, with the txn each made.
#[derive(Debug, Default)]
pub(crate) struct RetryCache {
    entries: HashMap<CallId, (Zxid, Txn)>,
    order: VecDeque<CallId>,
}

impl RetryCache {
    /// Remembers that `call` made `txn` at `zxid`.
    pub(crate) fn insert(&mut self, call: CallId, zxid: Zxid, txn: Txn) {
        if self.entries.insert(call.clone(), (zxid, txn)).is_none() {
            self.order.push_back(call);
        }
        while self.order.len() > CAPACITY {
            if let Some(oldest) = self.order.pop_front() {
                self.entries.remove(&oldest);
            }
        }
    }

    /// The zxid and txn `call` made, if it was applied.
    pub(crate) fn get(&self, call: &CallId) -> Option<&(Zxid, Txn)> {
        self.entries.get(call)
    }

    /// Forgets everything (a namespace rebuilt from elsewhere).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::{BlockId, BlockRecord, GenStamp};

    fn call(n: u64) -> CallId {
        CallId {
            client: vec![7; 16],
            call: n,
        }
    }

    fn txn(n: u64) -> Txn {
        Txn::Delete {
            path: format!("/f{n}"),
            mtime_ms: n,
        }
    }

    #[test]
    fn a_logged_txn_round_trips_with_its_call() {
        let logged = Logged {
            call: Some(call(3)),
            txn: txn(3),
        };
        assert_eq!(Logged::decode(Zxid(1), &logged.encode()).unwrap(), logged);
        assert!(Logged::decode(Zxid(1), &[0xff; 3]).is_err());
        let add_block = Logged {
            call: None,
            txn: Txn::AddBlock {
                path: "/f".into(),
                previous: Some(BlockRecord {
                    id: BlockId(1 << 30),
                    gen_stamp: GenStamp(1001),
                    length: 7,
                }),
                block: BlockRecord {
                    id: BlockId((1 << 30) + 1),
                    gen_stamp: GenStamp(1002),
                    length: 0,
                },
            },
        };
        assert_eq!(
            Logged::decode(Zxid(2), &add_block.encode()).unwrap(),
            add_block
        );
    }

    #[test]
    fn the_oldest_calls_are_forgotten_first() {
        let mut cache = RetryCache::default();
        for n in 0..(CAPACITY as u64 + 10) {
            cache.insert(call(n), Zxid(n + 1), txn(n));
        }
        assert!(cache.get(&call(0)).is_none());
        assert!(cache.get(&call(9)).is_none());
        assert_eq!(cache.get(&call(10)).map(|e| e.0), Some(Zxid(11)));
        let last = CAPACITY as u64 + 9;
        assert_eq!(cache.get(&call(last)).map(|e| &e.1), Some(&txn(last)));
        cache.clear();
        assert!(cache.get(&call(last)).is_none());
    }
}
