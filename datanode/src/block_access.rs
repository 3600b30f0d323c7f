//! The datanode's gate on block access tokens: the keys it got from the
//! namenodes, the check every data-transfer request passes before anything
//! is read or written, and the tokens it signs for its own transfers
//! (re-replication), as HDFS's datanode does.
//!
//! Keys come in registration and heartbeat replies from every namenode and
//! are kept until they expire, whichever namenode sent them, so a token of
//! the leader before a failover stays valid until its own expiry. A refusal
//! is logged with the requester's address and answered `PERMISSION_DENIED`
//! (`UNAVAILABLE` while the key is not known here yet: retry shortly).

use std::sync::{PoisonError, RwLock};

use dfs_proto::block_token::{AccessModes, BlockToken, Grant, KeySet, TokenError};
use dfs_proto::ids::{BlockId, GenStamp};
use dfs_proto::status::ErrorKind;
use dfs_proto::v1;
use dfs_proto::wall_clock;

/// How long a token this datanode signs for its own copy lives.
const OWN_TOKEN_LIFETIME_MS: u64 = 10 * 60 * 1000;

/// The keys and the switch; one per datanode.
#[derive(Debug)]
pub(crate) struct BlockAccess {
    /// Whether tokens are checked (`block_access_token_enable`).
    enabled: bool,
    keys: RwLock<KeySet>,
}

/// What a request asks for, for the check and its log line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Access<'a> {
    /// The RPC (logs).
    pub(crate) op: &'static str,
    /// The block and gen stamp the request names.
    pub(crate) block: BlockId,
    pub(crate) gen_stamp: GenStamp,
    /// The modes it needs.
    pub(crate) needed: AccessModes,
    /// Who asks: its address (logs).
    pub(crate) peer: &'a str,
}

impl BlockAccess {
    /// A gate that checks tokens when `enabled`.
    pub(crate) fn new(enabled: bool) -> Self {
        BlockAccess {
            enabled,
            keys: RwLock::new(KeySet::default()),
        }
    }

    /// Keeps the keys a namenode sent (and drops expired ones).
    pub(crate) fn add_keys(&self, keys: Vec<v1::BlockKey>) {
        if keys.is_empty() {
            return;
        }
        let now = wall_clock::now_ms();
        let mut set = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        let before = set.len();
        set.add(keys.into_iter().map(Into::into), now);
        if set.len() != before {
            tracing::debug!(keys = set.len(), "block keys updated");
        }
    }

    /// Checks that `token` grants `access`.
    ///
    /// # Errors
    /// `PERMISSION_DENIED` naming what is wrong with the token, or
    /// `UNAVAILABLE` while its key has not reached this datanode yet.
    pub(crate) fn check(
        &self,
        token: Option<&BlockToken>,
        access: Access<'_>,
    ) -> Result<(), tonic::Status> {
        if !self.enabled {
            return Ok(());
        }
        let verdict = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .verify(
                token,
                access.block,
                access.gen_stamp,
                access.needed,
                wall_clock::now_ms(),
            );
        verdict.map_err(|e| {
            let user = token.map_or("-", |t| t.grant.user.as_str());
            tracing::warn!(op = access.op, block = %access.block, gen_stamp = %access.gen_stamp,
                needed = %access.needed, peer = %access.peer, %user, reason = %e,
                "refused: block access token");
            refusal(&e, access)
        })
    }

    /// A token for this datanode's own transfer of `(block, gen_stamp)`,
    /// signed with the newest key it holds; `None` with tokens disabled or
    /// before any key arrived (the target then refuses, and the namenode
    /// schedules the copy again).
    pub(crate) fn mint(
        &self,
        block: BlockId,
        gen_stamp: GenStamp,
        modes: AccessModes,
        user: &str,
    ) -> Option<BlockToken> {
        if !self.enabled {
            return None;
        }
        let now = wall_clock::now_ms();
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let key = keys.newest(now)?;
        let grant = Grant {
            block,
            gen_stamp,
            modes,
            user: user.to_owned(),
            expiry_ms: now.saturating_add(OWN_TOKEN_LIFETIME_MS).min(key.expiry_ms),
        };
        Some(BlockToken::sign(grant, key))
    }
}

/// The status a refused request gets.
fn refusal(e: &TokenError, access: Access<'_>) -> tonic::Status {
    let kind = if e.is_retriable() {
        ErrorKind::Unavailable
    } else {
        ErrorKind::PermissionDenied
    };
    kind.status(format!(
        "{} of {} (gen stamp {}) refused: {e}",
        access.op, access.block, access.gen_stamp
    ))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use dfs_proto::block_token::{BlockKey, KeyId};

    use super::*;

    fn access(needed: AccessModes) -> Access<'static> {
        Access {
            op: "ReadBlock",
            block: BlockId(5),
            gen_stamp: GenStamp(2),
            needed,
            peer: "127.0.0.1:1",
        }
    }

    fn key() -> BlockKey {
        BlockKey {
            id: KeyId::new(1, 1),
            expiry_ms: wall_clock::now_ms() + 60_000,
            secret: Bytes::from_static(b"k"),
        }
    }

    #[test]
    fn a_disabled_gate_lets_everything_through() {
        let gate = BlockAccess::new(false);
        assert!(gate.check(None, access(AccessModes::READ)).is_ok());
        assert!(
            gate.mint(BlockId(5), GenStamp(2), AccessModes::WRITE, "dn")
                .is_none()
        );
    }

    #[test]
    fn without_keys_the_refusal_is_retriable_and_without_a_token_it_is_denied() {
        let gate = BlockAccess::new(true);
        let token = BlockToken::sign(
            Grant {
                block: BlockId(5),
                gen_stamp: GenStamp(2),
                modes: AccessModes::READ,
                user: "u".into(),
                expiry_ms: wall_clock::now_ms() + 60_000,
            },
            &key(),
        );
        let wire = token;
        let status = gate
            .check(Some(&wire), access(AccessModes::READ))
            .expect_err("no keys yet");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        gate.add_keys(vec![v1::BlockKey::from(&key())]);
        assert!(gate.check(Some(&wire), access(AccessModes::READ)).is_ok());
        let status = gate
            .check(None, access(AccessModes::READ))
            .expect_err("missing");
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(status.message().contains("no block access token"));
        let status = gate
            .check(Some(&wire), access(AccessModes::WRITE))
            .expect_err("read only");
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
    }

    #[test]
    fn a_minted_token_passes_the_gate_of_another_datanode_with_the_same_keys() {
        let (a, b) = (BlockAccess::new(true), BlockAccess::new(true));
        for gate in [&a, &b] {
            gate.add_keys(vec![v1::BlockKey::from(&key())]);
        }
        let token = a.mint(BlockId(5), GenStamp(2), AccessModes::WRITE, "dn-a");
        assert!(b.check(token.as_ref(), access(AccessModes::WRITE)).is_ok());
        assert!(b.check(token.as_ref(), access(AccessModes::READ)).is_err());
    }
}
