//! The retry cache: a write retried after a failover is applied at most once.
//!
//! As in HDFS's RetryCache, every logged txn carries the client id and call
//! id of the request that made it ([`Logged`]). Every namenode remembers the
//! most recent ones as it applies them, so a new leader knows which calls its
//! predecessor already took: a retried `mkdir` or `create` answers with the
//! txn it made the first time instead of failing with "already exists".
//!
//! An entry is bound to the request it answered: the call carries a digest
//! of the request's op and user ([`RequestDigest`]), logged with the txn so
//! that every namenode checks it. A call id reused for a different request
//! is refused ([`Error::CallReused`]) instead of being answered with the
//! other request's result.
//!
//! Entries come from the log only (not from snapshots), and the oldest are
//! forgotten beyond [`CAPACITY`]; a client retries within seconds.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::namespace::{Caller, Op};
use crate::txn::{Txn, Zxid};

/// Calls remembered; the oldest are forgotten first.
const CAPACITY: usize = 100_000;

/// Most bytes of a client id (ours are 16; HDFS's are 16 too).
pub(crate) const MAX_CLIENT_ID: usize = 32;

/// Bytes of SHA-256 kept in a [`RequestDigest`]: collisions of 128 bits are
/// out of reach, and every logged txn carries one.
const DIGEST_LEN: usize = 16;

/// A digest of what a call asked for: its op and its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct RequestDigest([u8; DIGEST_LEN]);

impl RequestDigest {
    /// The digest of `op` asked for by `caller`.
    pub(crate) fn of(op: &Op, caller: &Caller) -> RequestDigest {
        let mut hash = Sha256::new();
        // postcard only fails on writer errors, and a Vec writer has none.
        let op = postcard::to_stdvec(op).unwrap_or_default();
        hash.update((op.len() as u64).to_be_bytes());
        hash.update(&op);
        hash.update(caller.user.as_bytes());
        let full = hash.finalize();
        let mut digest = [0; DIGEST_LEN];
        digest.copy_from_slice(&full[..DIGEST_LEN]);
        RequestDigest(digest)
    }
}

/// Who asked for a change: the client's random id and its call number,
/// bound to the request once the namesystem knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CallId {
    /// The client's id (1 to [`MAX_CLIENT_ID`] bytes).
    pub(crate) client: Vec<u8>,
    /// Numbered by the client; the same on every retry of one call.
    pub(crate) call: u64,
    /// What the call asked for; `None` only in txns logged before digests
    /// existed (any retry matches them).
    pub(crate) request: Option<RequestDigest>,
}

impl CallId {
    /// Call `call` of `client`, not yet bound to a request.
    pub(crate) fn new(client: Vec<u8>, call: u64) -> CallId {
        CallId {
            client,
            call,
            request: None,
        }
    }

    /// This call bound to `op` asked for by `caller`.
    pub(crate) fn bound_to(self, op: &Op, caller: &Caller) -> CallId {
        CallId {
            request: Some(RequestDigest::of(op, caller)),
            ..self
        }
    }

    fn key(&self) -> Key {
        (self.client.clone(), self.call)
    }

    fn reused(&self) -> Error {
        Error::CallReused {
            client: self.client.iter().map(|b| format!("{b:02x}")).collect(),
            call: self.call,
        }
    }
}

/// A txn as the journal and the quorum carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Logged {
    /// The call that made it, when a client did.
    pub(crate) call: Option<CallId>,
    /// The change.
    pub(crate) txn: Txn,
}

/// The call as the first journal format wrote it (and the current one
/// still writes it, with the digest after the txn).
#[derive(Serialize, Deserialize)]
struct WireCall {
    client: Vec<u8>,
    call: u64,
}

/// The journal encoding: the first format's fields, then the digest, so a
/// record of the first format (which ends after the txn) never decodes as
/// this one and falls back to [`LoggedV1`].
#[derive(Serialize, Deserialize)]
struct LoggedV2 {
    call: Option<WireCall>,
    txn: Txn,
    request: Option<RequestDigest>,
}

/// The first journal encoding, before calls carried a digest.
#[derive(Deserialize)]
struct LoggedV1 {
    call: Option<WireCall>,
    txn: Txn,
}

impl Logged {
    /// Encodes for the journal and the wire.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let wire = LoggedV2 {
            call: self.call.as_ref().map(|c| WireCall {
                client: c.client.clone(),
                call: c.call,
            }),
            txn: self.txn.clone(),
            request: self.call.as_ref().and_then(|c| c.request),
        };
        // postcard only fails on writer errors, and a Vec writer has none.
        postcard::to_stdvec(&wire).unwrap_or_default()
    }

    /// Decodes the bytes [`Logged::encode`] (or the first format) wrote for `zxid`.
    ///
    /// # Errors
    /// `Replay` naming `zxid` when they do not decode.
    pub(crate) fn decode(zxid: Zxid, bytes: &[u8]) -> Result<Logged, Error> {
        let (call, txn, request) = match postcard::from_bytes::<LoggedV2>(bytes) {
            Ok(v2) => (v2.call, v2.txn, v2.request),
            Err(e) => match postcard::from_bytes::<LoggedV1>(bytes) {
                Ok(v1) => (v1.call, v1.txn, None),
                Err(_) => {
                    return Err(Error::Replay {
                        zxid,
                        reason: format!("undecodable transaction: {e}"),
                    });
                }
            },
        };
        Ok(Logged {
            call: call.map(|c| CallId {
                client: c.client,
                call: c.call,
                request,
            }),
            txn,
        })
    }
}

/// One remembered call: what it made, and the request it answered.
#[derive(Debug)]
struct Entry {
    made: (Zxid, Txn),
    request: Option<RequestDigest>,
}

impl Entry {
    fn answers(&self, call: &CallId) -> bool {
        match (self.request, call.request) {
            (Some(ours), Some(theirs)) => ours == theirs,
            // Logged before digests, or asked without one: nothing to compare.
            _ => true,
        }
    }
}

/// A call's key in the cache: client id and call id.
type Key = (Vec<u8>, u64);

/// The calls applied most recently, with the txn each made. Owned by the
/// quorum's peer task, which handles writes one at a time and applies each
/// as it proposes it: a call is in the cache before the next write is
/// looked up, so two requests under one call id cannot both pass.
#[derive(Debug, Default)]
pub(crate) struct RetryCache {
    entries: HashMap<Key, Entry>,
    order: VecDeque<Key>,
}

impl RetryCache {
    /// Remembers that `call` made `txn` at `zxid`.
    pub(crate) fn insert(&mut self, call: CallId, zxid: Zxid, txn: Txn) {
        let key = call.key();
        let entry = Entry {
            made: (zxid, txn),
            request: call.request,
        };
        if self.entries.insert(key.clone(), entry).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > CAPACITY {
            if let Some(oldest) = self.order.pop_front() {
                self.entries.remove(&oldest);
            }
        }
    }

    /// The zxid and txn `call` made, if it was applied; `None` if it is new.
    ///
    /// # Errors
    /// `CallReused` when the call was applied for a different request.
    pub(crate) fn get(&self, call: &CallId) -> Result<Option<&(Zxid, Txn)>, Error> {
        match self.entries.get(&call.key()) {
            Some(entry) if entry.answers(call) => Ok(Some(&entry.made)),
            Some(_) => Err(call.reused()),
            None => Ok(None),
        }
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
        CallId::new(vec![7; 16], n)
    }

    fn txn(n: u64) -> Txn {
        Txn::Delete {
            path: format!("/f{n}"),
            mtime_ms: n,
        }
    }

    fn caller(user: &str) -> Caller {
        Caller {
            user: user.into(),
            groups: vec![],
        }
    }

    fn delete(path: &str) -> Op {
        Op::Delete {
            path: path.into(),
            recursive: false,
        }
    }

    #[test]
    fn a_logged_txn_round_trips_with_its_call() {
        let logged = Logged {
            call: Some(call(3).bound_to(&delete("/f3"), &caller("alice"))),
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
    fn a_record_of_the_first_format_still_decodes_without_a_digest() {
        #[derive(Serialize)]
        struct V1 {
            call: Option<WireCall>,
            txn: Txn,
        }
        for call in [
            None,
            Some(WireCall {
                client: vec![7; 16],
                call: 9,
            }),
        ] {
            let had_call = call.is_some();
            let old = postcard::to_stdvec(&V1 { call, txn: txn(9) }).unwrap();
            let logged = Logged::decode(Zxid(1), &old).unwrap();
            assert_eq!(logged.txn, txn(9));
            assert_eq!(logged.call.is_some(), had_call);
            if let Some(call) = logged.call {
                assert_eq!((call.call, call.request), (9, None));
            }
        }
    }

    #[test]
    fn a_call_reused_for_a_different_request_is_refused() {
        let mut cache = RetryCache::default();
        let first = call(5).bound_to(&delete("/a"), &caller("alice"));
        cache.insert(first.clone(), Zxid(1), txn(1));
        // The same request again: a retry, answered from the cache.
        assert_eq!(cache.get(&first).unwrap().map(|e| e.0), Some(Zxid(1)));
        // Another path, or the same op by another user: refused.
        for other in [
            call(5).bound_to(&delete("/b"), &caller("alice")),
            call(5).bound_to(&delete("/a"), &caller("mallory")),
        ] {
            let err = cache.get(&other).unwrap_err();
            assert!(matches!(err, Error::CallReused { call: 5, .. }), "{err}");
            assert!(err.to_string().contains("call 5 of client 0707"), "{err}");
        }
        // Another call number of the same client is a new call.
        let new = call(6).bound_to(&delete("/b"), &caller("alice"));
        assert!(cache.get(&new).unwrap().is_none());
        // An entry logged before digests answers any retry.
        cache.insert(call(7), Zxid(2), txn(2));
        let bound = call(7).bound_to(&delete("/c"), &caller("alice"));
        assert_eq!(cache.get(&bound).unwrap().map(|e| e.0), Some(Zxid(2)));
    }

    #[test]
    fn the_oldest_calls_are_forgotten_first() {
        let mut cache = RetryCache::default();
        for n in 0..(CAPACITY as u64 + 10) {
            cache.insert(call(n), Zxid(n + 1), txn(n));
        }
        assert!(cache.get(&call(0)).unwrap().is_none());
        assert!(cache.get(&call(9)).unwrap().is_none());
        assert_eq!(cache.get(&call(10)).unwrap().map(|e| e.0), Some(Zxid(11)));
        let last = CAPACITY as u64 + 9;
        assert_eq!(
            cache.get(&call(last)).unwrap().map(|e| &e.1),
            Some(&txn(last))
        );
        let reused = CallId::new(vec![7; 16], last).bound_to(&delete("/x"), &caller("a"));
        assert!(cache.get(&reused).is_ok(), "bound without a digest");
        cache.clear();
        assert!(cache.get(&call(last)).unwrap().is_none());
    }
}
