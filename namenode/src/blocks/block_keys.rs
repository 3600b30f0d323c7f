//! The namenode's block keys: it signs block access tokens with them and
//! gives them to every datanode in registration and heartbeat replies
//! (HDFS's `BlockTokenSecretManager` on the namenode side).
//!
//! ```text
//!   t0          t0+I          t0+2I         t0+3I
//!   | current A | current B   | current C   |  ...       I = key update interval
//!   | next B    | next C      | next D      |            L = token lifetime
//!   key K made at t (as "next") expires at t + 2I + L: it signs during
//!   [t+I, t+2I) and its last tokens live L longer.
//! ```
//!
//! A key is exported one interval before it signs anything, so every
//! datanode that heartbeats within an interval already holds it when the
//! first token signed with it arrives; old keys stay exported until they
//! expire. Every namenode keeps its own keys (ids carry its server id, so
//! they never collide), whether it leads or not, and datanodes keep every
//! namenode's: a new leader's tokens are accepted from its first one on,
//! and the old leader's until they expire.
//!
//! Secrets come from the thread's CSPRNG and live only in memory: a
//! restarted namenode makes new ones (its old tokens live on in the
//! datanodes' key sets until they expire). Time is passed in (wall-clock
//! ms), so the ring itself is pure.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use dfs_proto::block_token::{AccessModes, BlockKey, BlockToken, Grant, KeyId};
use dfs_proto::ids::{BlockId, GenStamp, ServerId};
use dfs_proto::wall_clock;
use rand::RngExt;

/// Bytes of an HMAC key (SHA-256's block is 64; 32 random bytes are plenty).
const SECRET_LEN: usize = 32;

/// Block token settings, validated (HDFS's `dfs.block.access.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenSettings {
    /// Whether tokens are issued at all (`dfs.block.access.token.enable`).
    pub(crate) enabled: bool,
    /// How long a key signs before the next one takes over
    /// (`dfs.block.access.key.update.interval`).
    pub(crate) key_update_interval: Duration,
    /// How long a token is valid (`dfs.block.access.token.lifetime`).
    pub(crate) token_lifetime: Duration,
}

/// The keys of one namenode, behind a lock; cheap to share.
#[derive(Debug)]
pub(crate) struct BlockKeys {
    settings: TokenSettings,
    ring: Mutex<KeyRing>,
}

impl BlockKeys {
    /// Fresh keys for the namenode `server`.
    pub(crate) fn new(server: ServerId, settings: TokenSettings) -> Self {
        BlockKeys {
            settings,
            ring: Mutex::new(KeyRing::new(server, settings, wall_clock::now_ms())),
        }
    }

    /// A token granting `modes` on `(block, gen_stamp)` to `user`; `None`
    /// with tokens disabled.
    pub(crate) fn issue(
        &self,
        block: BlockId,
        gen_stamp: GenStamp,
        modes: AccessModes,
        user: &str,
    ) -> Option<BlockToken> {
        if !self.settings.enabled {
            return None;
        }
        let grant = Grant {
            block,
            gen_stamp,
            modes,
            user: user.to_owned(),
            expiry_ms: 0,
        };
        Some(self.lock().issue(grant, wall_clock::now_ms()))
    }

    /// The keys datanodes should hold now; empty with tokens disabled.
    pub(crate) fn exported(&self) -> Vec<BlockKey> {
        if !self.settings.enabled {
            return Vec::new();
        }
        self.lock().exported(wall_clock::now_ms())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeyRing> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The current key, the next one, and retired ones not yet expired.
#[derive(Debug)]
struct KeyRing {
    server: u64,
    next_serial: u32,
    interval_ms: u64,
    lifetime_ms: u64,
    current: BlockKey,
    next: BlockKey,
    retired: Vec<BlockKey>,
    /// When `next` becomes current.
    roll_at_ms: u64,
}

impl KeyRing {
    fn new(server: ServerId, settings: TokenSettings, now_ms: u64) -> Self {
        let interval_ms = millis(settings.key_update_interval).max(1);
        let lifetime_ms = millis(settings.token_lifetime).max(1);
        // A random first serial: a restarted namenode does not reuse the ids
        // of its previous run's keys, which datanodes may still hold.
        let first: u32 = rand::rng().random();
        let mut ring = KeyRing {
            server: server.0,
            next_serial: first,
            interval_ms,
            lifetime_ms,
            current: placeholder(),
            next: placeholder(),
            retired: Vec::new(),
            roll_at_ms: now_ms.saturating_add(interval_ms),
        };
        ring.current = ring.make_key(now_ms);
        ring.next = ring.make_key(now_ms);
        ring
    }

    fn make_key(&mut self, now_ms: u64) -> BlockKey {
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        let secret: [u8; SECRET_LEN] = rand::rng().random();
        BlockKey {
            id: KeyId::new(self.server, serial),
            expiry_ms: now_ms
                .saturating_add(self.interval_ms.saturating_mul(2))
                .saturating_add(self.lifetime_ms),
            secret: Bytes::copy_from_slice(&secret),
        }
    }

    /// Moves to the next key as often as intervals have passed (a namenode
    /// that slept through several makes both keys new), and forgets
    /// retired keys that expired.
    fn roll_if_due(&mut self, now_ms: u64) {
        let mut rolls = 0;
        while now_ms >= self.roll_at_ms {
            rolls += 1;
            if rolls > 2 {
                self.retired.push(self.current.clone());
                self.retired.push(self.next.clone());
                self.current = self.make_key(now_ms);
                self.next = self.make_key(now_ms);
                self.roll_at_ms = now_ms.saturating_add(self.interval_ms);
                break;
            }
            let next = self.make_key(now_ms);
            let old = std::mem::replace(&mut self.current, std::mem::replace(&mut self.next, next));
            self.retired.push(old);
            self.roll_at_ms = self.roll_at_ms.saturating_add(self.interval_ms);
        }
        self.retired.retain(|k| k.expiry_ms > now_ms);
    }

    fn issue(&mut self, grant: Grant, now_ms: u64) -> BlockToken {
        self.roll_if_due(now_ms);
        let expiry_ms = now_ms
            .saturating_add(self.lifetime_ms)
            .min(self.current.expiry_ms);
        BlockToken::sign(Grant { expiry_ms, ..grant }, &self.current)
    }

    fn exported(&mut self, now_ms: u64) -> Vec<BlockKey> {
        self.roll_if_due(now_ms);
        let mut keys = self.retired.clone();
        keys.push(self.current.clone());
        keys.push(self.next.clone());
        keys
    }
}

fn placeholder() -> BlockKey {
    BlockKey {
        id: KeyId(0),
        expiry_ms: 0,
        secret: Bytes::new(),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use dfs_proto::block_token::KeySet;

    use super::*;

    const I: u64 = 1_000;
    const L: u64 = 5_000;
    const T0: u64 = 10_000_000;

    fn ring(server: u64) -> KeyRing {
        KeyRing::new(
            ServerId(server),
            TokenSettings {
                enabled: true,
                key_update_interval: Duration::from_millis(I),
                token_lifetime: Duration::from_millis(L),
            },
            T0,
        )
    }

    fn grant() -> Grant {
        Grant {
            block: BlockId(1),
            gen_stamp: GenStamp(1),
            modes: AccessModes::READ,
            user: "u".into(),
            expiry_ms: 0,
        }
    }

    fn accepted(keys: &KeySet, token: &BlockToken, now_ms: u64) -> bool {
        keys.verify(
            Some(token),
            BlockId(1),
            GenStamp(1),
            AccessModes::READ,
            now_ms,
        )
        .is_ok()
    }

    #[test]
    fn a_token_signed_before_a_roll_verifies_until_it_expires() {
        let mut ring = ring(1);
        let mut datanode = KeySet::default();
        datanode.add(ring.exported(T0), T0);
        let early = ring.issue(grant(), T0);
        assert_eq!(early.grant.expiry_ms, T0 + L);
        // Two rolls later the datanode heartbeats again: the old key is still exported.
        let later = T0 + 2 * I + 10;
        datanode.add(ring.exported(later), later);
        let late = ring.issue(grant(), later);
        assert_ne!(early.key, late.key, "a new key signs after the rolls");
        assert!(accepted(&datanode, &early, later));
        assert!(accepted(&datanode, &late, later));
        assert!(
            !accepted(&datanode, &early, T0 + L),
            "expired with its lifetime"
        );
    }

    #[test]
    fn the_key_that_signs_after_a_roll_was_exported_an_interval_before() {
        let mut ring = ring(1);
        let mut datanode = KeySet::default();
        datanode.add(ring.exported(T0), T0);
        // No heartbeat since: the token of the new current key still verifies.
        let after_roll = T0 + I + 1;
        let token = ring.issue(grant(), after_roll);
        assert!(accepted(&datanode, &token, after_roll));
    }

    #[test]
    fn two_namenodes_never_share_a_key_id() {
        let (mut a, mut b) = (ring(1), ring(2));
        let ids_a: Vec<KeyId> = a.exported(T0).iter().map(|k| k.id).collect();
        let ids_b: Vec<KeyId> = b.exported(T0).iter().map(|k| k.id).collect();
        assert!(ids_a.iter().all(|id| !ids_b.contains(id)));
        assert!(ids_a.iter().all(|id| id.0 >> 32 == 1));
    }

    #[test]
    fn expired_keys_are_no_longer_exported_and_a_long_sleep_makes_new_keys() {
        let mut ring = ring(1);
        let first = ring.exported(T0);
        let much_later = T0 + 100 * (I + L);
        let now = ring.exported(much_later);
        assert!(now.iter().all(|k| k.expiry_ms > much_later));
        assert!(now.iter().all(|k| first.iter().all(|f| f.id != k.id)));
        let token = ring.issue(grant(), much_later);
        assert_eq!(token.grant.expiry_ms, much_later + L);
    }

    #[test]
    fn disabled_tokens_issue_nothing_and_export_nothing() {
        let keys = BlockKeys::new(
            ServerId(1),
            TokenSettings {
                enabled: false,
                key_update_interval: Duration::from_secs(60),
                token_lifetime: Duration::from_secs(60),
            },
        );
        assert!(keys.exported().is_empty());
        assert!(
            keys.issue(BlockId(1), GenStamp(1), AccessModes::READ, "u")
                .is_none()
        );
    }
}
