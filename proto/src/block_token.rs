//! Block access tokens, as namenodes sign them and datanodes check them
//! (HDFS's `BlockTokenIdentifier` and `BlockTokenSecretManager`, minus the
//! key rolling, which is the namenode's).
//!
//! A [`BlockToken`] grants [`AccessModes`] on one block under one generation
//! stamp to one user until an expiry time; its tag is HMAC-SHA256
//! ([`crate::mac`]) over those fields under a [`BlockKey`] that the namenode
//! shares with every datanode over heartbeats. A datanode holds the keys it
//! was given in a [`KeySet`] and checks every data-transfer request with
//! [`KeySet::verify`].
//!
//! Times are milliseconds since the Unix epoch (wall clock: a token crosses
//! hosts), passed in by the caller so that everything here is pure.

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;

use crate::ids::{BlockId, GenStamp};
use crate::mac;
use crate::v1;

/// Domain separation: a block token's tag can never be another MAC's.
const TAG_CONTEXT: &[u8] = b"dfs block token v1";

/// The id of a block key: the issuing namenode's server id in the high 32
/// bits and a serial number in the low 32, so two namenodes never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u64);

impl KeyId {
    /// The key `serial` of the namenode `server`.
    pub fn new(server: u64, serial: u32) -> Self {
        KeyId((server << 32) | u64::from(serial))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

/// What a token allows, as a bit set (HDFS's `AccessMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AccessModes(u32);

impl AccessModes {
    /// Read a finalized replica (ReadBlock, BlockChecksum).
    pub const READ: AccessModes = AccessModes(1);
    /// Write a replica through a pipeline (WriteBlock, also recovery).
    pub const WRITE: AccessModes = AccessModes(2);
    /// Copy a replica to other datanodes (TransferRbw).
    pub const COPY: AccessModes = AccessModes(4);
    /// Replace a replica on another datanode (balancing; unused so far).
    pub const REPLACE: AccessModes = AccessModes(8);

    /// Every mode of `self` and of `other`.
    pub const fn with(self, other: AccessModes) -> AccessModes {
        AccessModes(self.0 | other.0)
    }

    /// Whether every mode of `wanted` is in `self`.
    pub fn allows(self, wanted: AccessModes) -> bool {
        wanted.0 != 0 && self.0 & wanted.0 == wanted.0
    }

    /// The bits as they travel.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// From the wire; unknown bits are dropped.
    pub fn from_bits(bits: u32) -> AccessModes {
        AccessModes(bits & 0xf)
    }
}

impl fmt::Display for AccessModes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::READ, "read"),
            (Self::WRITE, "write"),
            (Self::COPY, "copy"),
            (Self::REPLACE, "replace"),
        ];
        let mut first = true;
        for (mode, name) in names {
            if self.allows(mode) {
                if !first {
                    f.write_str("+")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// A secret block tokens are signed with, and when it stops counting.
#[derive(Clone, PartialEq, Eq)]
pub struct BlockKey {
    /// Its id (in every token it signs).
    pub id: KeyId,
    /// No token signed with it is accepted after this (ms since the epoch).
    pub expiry_ms: u64,
    /// The HMAC key.
    pub secret: Bytes,
}

impl fmt::Debug for BlockKey {
    // Never print a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockKey")
            .field("id", &self.id)
            .field("expiry_ms", &self.expiry_ms)
            .finish_non_exhaustive()
    }
}

/// What a token grants, before it is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The block.
    pub block: BlockId,
    /// Its generation stamp.
    pub gen_stamp: GenStamp,
    /// What may be done with it.
    pub modes: AccessModes,
    /// Who may (logs; the namenode checked the permission).
    pub user: String,
    /// Until when (ms since the epoch).
    pub expiry_ms: u64,
}

/// A signed grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockToken {
    /// What it grants.
    pub grant: Grant,
    /// The key that signed it.
    pub key: KeyId,
    /// HMAC-SHA256 of the grant and the key id under that key.
    pub tag: Bytes,
}

impl BlockToken {
    /// Signs `grant` with `key`.
    pub fn sign(grant: Grant, key: &BlockKey) -> BlockToken {
        let tag = with_fields(&grant, key.id, |fields| mac::sign(&key.secret, fields));
        BlockToken {
            grant,
            key: key.id,
            tag: Bytes::copy_from_slice(&tag),
        }
    }
}

/// Runs `f` over the fields a tag covers, in their fixed order.
fn with_fields<R>(grant: &Grant, key: KeyId, f: impl FnOnce(&[&[u8]]) -> R) -> R {
    let block = grant.block.0.to_be_bytes();
    let gen_stamp = grant.gen_stamp.0.to_be_bytes();
    let modes = grant.modes.bits().to_be_bytes();
    let expiry = grant.expiry_ms.to_be_bytes();
    let key = key.0.to_be_bytes();
    f(&[
        TAG_CONTEXT,
        &block,
        &gen_stamp,
        &modes,
        grant.user.as_bytes(),
        &expiry,
        &key,
    ])
}

/// Why a token does not grant a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The request carries no token.
    #[error("no block access token")]
    Missing,
    /// This datanode has not received any block key yet (just started):
    /// retry shortly.
    #[error("no block keys received from a namenode yet; retry shortly")]
    NoKeys,
    /// The key is not (yet) known here: a key this datanode has not received
    /// yet, or one it dropped after its expiry.
    #[error("block key {key} is unknown here (not yet received, or expired)")]
    UnknownKey {
        /// The token's key.
        key: KeyId,
    },
    /// The key has expired.
    #[error("block key {key} expired")]
    KeyExpired {
        /// The token's key.
        key: KeyId,
    },
    /// The tag does not match the fields: forged or altered.
    #[error("block access token has a bad tag (forged or altered)")]
    BadTag,
    /// The token has expired.
    #[error("block access token expired at {expiry_ms} ms (now {now_ms} ms)")]
    Expired {
        /// Its expiry.
        expiry_ms: u64,
        /// Now.
        now_ms: u64,
    },
    /// The token is for another block.
    #[error("block access token is for {granted}, not {asked}")]
    WrongBlock {
        /// The token's block.
        granted: BlockId,
        /// The request's.
        asked: BlockId,
    },
    /// The token is for another generation stamp of the block.
    #[error("block access token is for gen stamp {granted}, not {asked}")]
    WrongGenStamp {
        /// The token's gen stamp.
        granted: GenStamp,
        /// The request's.
        asked: GenStamp,
    },
    /// The token does not grant the mode the request needs.
    #[error("block access token grants {granted}, not {needed}")]
    WrongMode {
        /// What the token grants.
        granted: AccessModes,
        /// What the request needs.
        needed: AccessModes,
    },
}

impl TokenError {
    /// Whether the same token may work a little later (a key not yet
    /// received): the datanode answers `UNAVAILABLE` rather than
    /// `PERMISSION_DENIED`.
    pub fn is_retriable(&self) -> bool {
        matches!(self, TokenError::NoKeys | TokenError::UnknownKey { .. })
    }
}

/// The block keys a datanode holds, from every namenode, by id.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<KeyId, BlockKey>,
}

impl KeySet {
    /// Adds (or refreshes) keys and forgets those expired at `now_ms`.
    pub fn add(&mut self, keys: impl IntoIterator<Item = BlockKey>, now_ms: u64) {
        for key in keys {
            if key.expiry_ms > now_ms {
                self.keys.insert(key.id, key);
            }
        }
        self.keys.retain(|_, k| k.expiry_ms > now_ms);
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The unexpired key that expires last: what a datanode signs the tokens
    /// of its own transfers with (as HDFS's datanode does for re-replication).
    pub fn newest(&self, now_ms: u64) -> Option<&BlockKey> {
        self.keys
            .values()
            .filter(|k| k.expiry_ms > now_ms)
            .max_by_key(|k| (k.expiry_ms, k.id))
    }

    /// Checks that `token` grants `needed` on `(block, gen_stamp)` at `now_ms`.
    ///
    /// # Errors
    /// The first thing wrong with it, tag before content, so that a forged
    /// token learns nothing about what a valid one would say.
    pub fn verify(
        &self,
        token: Option<&BlockToken>,
        block: BlockId,
        gen_stamp: GenStamp,
        needed: AccessModes,
        now_ms: u64,
    ) -> Result<(), TokenError> {
        let token = token.ok_or(TokenError::Missing)?;
        if self.keys.is_empty() {
            return Err(TokenError::NoKeys);
        }
        let key = self
            .keys
            .get(&token.key)
            .ok_or(TokenError::UnknownKey { key: token.key })?;
        if !with_fields(&token.grant, key.id, |fields| {
            mac::verify(&key.secret, fields, &token.tag)
        }) {
            return Err(TokenError::BadTag);
        }
        if key.expiry_ms <= now_ms {
            return Err(TokenError::KeyExpired { key: key.id });
        }
        let grant = &token.grant;
        if grant.expiry_ms <= now_ms {
            return Err(TokenError::Expired {
                expiry_ms: grant.expiry_ms,
                now_ms,
            });
        }
        if grant.block != block {
            return Err(TokenError::WrongBlock {
                granted: grant.block,
                asked: block,
            });
        }
        if grant.gen_stamp != gen_stamp {
            return Err(TokenError::WrongGenStamp {
                granted: grant.gen_stamp,
                asked: gen_stamp,
            });
        }
        if !grant.modes.allows(needed) {
            return Err(TokenError::WrongMode {
                granted: grant.modes,
                needed,
            });
        }
        Ok(())
    }
}

impl From<&BlockToken> for v1::BlockToken {
    fn from(t: &BlockToken) -> Self {
        v1::BlockToken {
            block_id: t.grant.block.0,
            gen_stamp: t.grant.gen_stamp.0,
            modes: t.grant.modes.bits(),
            user: t.grant.user.clone(),
            expiry_ms: t.grant.expiry_ms,
            key_id: t.key.0,
            tag: t.tag.clone(),
        }
    }
}

impl From<v1::BlockToken> for BlockToken {
    fn from(t: v1::BlockToken) -> Self {
        BlockToken {
            grant: Grant {
                block: BlockId(t.block_id),
                gen_stamp: GenStamp(t.gen_stamp),
                modes: AccessModes::from_bits(t.modes),
                user: t.user,
                expiry_ms: t.expiry_ms,
            },
            key: KeyId(t.key_id),
            tag: t.tag,
        }
    }
}

impl From<&BlockKey> for v1::BlockKey {
    fn from(k: &BlockKey) -> Self {
        v1::BlockKey {
            key_id: k.id.0,
            expiry_ms: k.expiry_ms,
            secret: k.secret.clone(),
        }
    }
}

impl From<v1::BlockKey> for BlockKey {
    fn from(k: v1::BlockKey) -> Self {
        BlockKey {
            id: KeyId(k.key_id),
            expiry_ms: k.expiry_ms,
            secret: k.secret,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    fn key(server: u64, serial: u32, expiry_ms: u64) -> BlockKey {
        BlockKey {
            id: KeyId::new(server, serial),
            expiry_ms,
            secret: Bytes::from(format!("secret {server} {serial}")),
        }
    }

    fn grant(modes: AccessModes) -> Grant {
        Grant {
            block: BlockId(7),
            gen_stamp: GenStamp(3),
            modes,
            user: "alice".into(),
            expiry_ms: NOW + 1000,
        }
    }

    fn keys(list: &[BlockKey]) -> KeySet {
        let mut set = KeySet::default();
        set.add(list.iter().cloned(), NOW);
        set
    }

    fn check(set: &KeySet, token: &BlockToken, modes: AccessModes) -> Result<(), TokenError> {
        set.verify(Some(token), BlockId(7), GenStamp(3), modes, NOW)
    }

    #[test]
    fn a_token_grants_its_modes_on_its_block_and_gen_stamp_only() {
        let k = key(1, 1, NOW + 5000);
        let set = keys(std::slice::from_ref(&k));
        let token = BlockToken::sign(grant(AccessModes::WRITE.with(AccessModes::COPY)), &k);
        assert_eq!(check(&set, &token, AccessModes::WRITE), Ok(()));
        assert_eq!(check(&set, &token, AccessModes::COPY), Ok(()));
        assert_eq!(
            check(&set, &token, AccessModes::READ),
            Err(TokenError::WrongMode {
                granted: AccessModes::WRITE.with(AccessModes::COPY),
                needed: AccessModes::READ
            })
        );
        assert!(matches!(
            set.verify(
                Some(&token),
                BlockId(8),
                GenStamp(3),
                AccessModes::WRITE,
                NOW
            ),
            Err(TokenError::WrongBlock { .. })
        ));
        assert!(matches!(
            set.verify(
                Some(&token),
                BlockId(7),
                GenStamp(4),
                AccessModes::WRITE,
                NOW
            ),
            Err(TokenError::WrongGenStamp { .. })
        ));
    }

    #[test]
    fn a_missing_forged_or_altered_token_is_refused() {
        let k = key(1, 1, NOW + 5000);
        let set = keys(std::slice::from_ref(&k));
        assert_eq!(
            set.verify(None, BlockId(7), GenStamp(3), AccessModes::READ, NOW),
            Err(TokenError::Missing)
        );
        let mut altered = BlockToken::sign(grant(AccessModes::READ), &k);
        altered.grant.modes = AccessModes::WRITE;
        assert_eq!(
            check(&set, &altered, AccessModes::WRITE),
            Err(TokenError::BadTag)
        );
        let mut other_user = BlockToken::sign(grant(AccessModes::READ), &k);
        other_user.grant.user = "mallory".into();
        assert_eq!(
            check(&set, &other_user, AccessModes::READ),
            Err(TokenError::BadTag)
        );
        let forged = BlockToken::sign(
            grant(AccessModes::READ),
            &BlockKey {
                secret: Bytes::from_static(b"guess"),
                ..k.clone()
            },
        );
        assert_eq!(
            check(&set, &forged, AccessModes::READ),
            Err(TokenError::BadTag)
        );
    }

    #[test]
    fn expired_tokens_and_keys_and_unknown_keys_are_refused() {
        let k = key(1, 1, NOW + 5000);
        let set = keys(std::slice::from_ref(&k));
        let old = BlockToken::sign(
            Grant {
                expiry_ms: NOW,
                ..grant(AccessModes::READ)
            },
            &k,
        );
        assert!(matches!(
            check(&set, &old, AccessModes::READ),
            Err(TokenError::Expired { .. })
        ));
        let token = BlockToken::sign(grant(AccessModes::READ), &k);
        assert_eq!(
            set.verify(
                Some(&token),
                BlockId(7),
                GenStamp(3),
                AccessModes::READ,
                NOW + 5000
            ),
            Err(TokenError::KeyExpired { key: k.id })
        );
        let stranger = key(2, 1, NOW + 5000);
        let unknown = BlockToken::sign(grant(AccessModes::READ), &stranger);
        let refused = check(&set, &unknown, AccessModes::READ);
        assert_eq!(refused, Err(TokenError::UnknownKey { key: stranger.id }));
        assert!(refused.is_err_and(|e| e.is_retriable()));
        let empty = KeySet::default();
        assert_eq!(
            check(&empty, &token, AccessModes::READ),
            Err(TokenError::NoKeys)
        );
    }

    #[test]
    fn keys_of_two_namenodes_both_verify_and_expired_ones_are_dropped() {
        let (a, b) = (key(1, 9, NOW + 5000), key(2, 9, NOW + 6000));
        assert_ne!(a.id, b.id);
        let mut set = keys(&[a.clone(), b.clone(), key(3, 1, NOW)]);
        assert_eq!(set.len(), 2, "the expired key is not kept");
        for k in [&a, &b] {
            let token = BlockToken::sign(grant(AccessModes::READ), k);
            assert_eq!(check(&set, &token, AccessModes::READ), Ok(()));
        }
        assert_eq!(set.newest(NOW).map(|k| k.id), Some(b.id));
        set.add([], NOW + 5500);
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn tokens_and_keys_survive_the_wire() {
        let k = key(4, 2, NOW + 5000);
        let token = BlockToken::sign(grant(AccessModes::READ), &k);
        assert_eq!(BlockToken::from(v1::BlockToken::from(&token)), token);
        assert_eq!(BlockKey::from(v1::BlockKey::from(&k)), k);
        assert_eq!(
            AccessModes::READ.with(AccessModes::COPY).to_string(),
            "read+copy"
        );
        assert!(!AccessModes::default().allows(AccessModes::default()));
    }
}
