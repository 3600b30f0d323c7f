//! The cluster secret on DatanodeProtocol: every registration, heartbeat
//! and block report a datanode sends carries a [`v1::DatanodeProof`], an
//! HMAC (through [`crate::mac`]) under the secret that the namenodes and
//! datanodes of one cluster share in their configs.
//!
//! The tag covers what the request claims (its kind, the datanode id, the
//! transfer port a registration announces) and a timestamp; the namenode
//! refuses a proof whose timestamp is more than [`WINDOW`] away from its own
//! clock, so a captured request stops working within minutes. (The window
//! is Kerberos's default clock skew; nodes of one cluster keep their clocks
//! in sync.)

use std::time::Duration;

use crate::mac;
use crate::v1;

/// How far a proof's timestamp may be from the verifier's clock.
pub const WINDOW: Duration = Duration::from_secs(5 * 60);

/// Fewest bytes a cluster secret may have.
pub const MIN_SECRET_LEN: usize = 16;

/// A cluster secret, as configured (its bytes are the HMAC key). Its
/// `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(std::sync::Arc<[u8]>);

impl ClusterSecret {
    /// The secret written in a config file.
    ///
    /// # Errors
    /// A reason when it is shorter than [`MIN_SECRET_LEN`] bytes.
    pub fn new(text: &str) -> Result<ClusterSecret, String> {
        if text.len() < MIN_SECRET_LEN {
            return Err(format!(
                "cluster_secret must have at least {MIN_SECRET_LEN} bytes (`dfs-cluster up` writes 64 hex digits)"
            ));
        }
        Ok(ClusterSecret(text.as_bytes().into()))
    }

    /// The key bytes.
    pub fn key(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

/// Which request a proof is for, so that one kind's proof never passes for another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// `RegisterDatanode`.
    Register,
    /// `Heartbeat`.
    Heartbeat,
    /// `BlockReport` with every replica.
    FullReport,
    /// `BlockReport` with the changes since the last one (and bad replicas).
    IncrementalReport,
}

impl RequestKind {
    fn label(self) -> &'static [u8] {
        match self {
            RequestKind::Register => b"register",
            RequestKind::Heartbeat => b"heartbeat",
            RequestKind::FullReport => b"full-block-report",
            RequestKind::IncrementalReport => b"incremental-block-report",
        }
    }

    /// The kind of a block report.
    pub fn report(full: bool) -> RequestKind {
        if full {
            RequestKind::FullReport
        } else {
            RequestKind::IncrementalReport
        }
    }
}

/// What a request claims, as the proof covers it.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// The request's kind.
    pub kind: RequestKind,
    /// The datanode id it speaks for.
    pub datanode_id: &'a str,
    /// The transfer port a registration announces; 0 for other kinds.
    pub transfer_port: u32,
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The request carries none.
    #[error("the request carries no cluster-secret proof")]
    Missing,
    /// Its timestamp is outside the window (a replay, or a clock far off).
    #[error(
        "the proof is {skew_ms} ms away from this node's clock (at most {} s allowed): a replayed request or a clock out of sync",
        WINDOW.as_secs()
    )]
    Stale {
        /// How far it is from our clock.
        skew_ms: u64,
    },
    /// The tag does not verify: the sender does not know this cluster's secret.
    #[error("the proof does not verify: the sender does not know this cluster's secret")]
    BadTag,
}

fn fields<'a>(claim: &'a Claim<'a>, port: &'a [u8; 4], time: &'a [u8; 8]) -> [&'a [u8]; 5] {
    [
        b"dfs-datanode-proof-v1",
        claim.kind.label(),
        claim.datanode_id.as_bytes(),
        port,
        time,
    ]
}

/// The proof of `claim` at `timestamp_ms` under `secret`.
pub fn prove(secret: &[u8], claim: &Claim<'_>, timestamp_ms: u64) -> v1::DatanodeProof {
    let port = claim.transfer_port.to_be_bytes();
    let time = timestamp_ms.to_be_bytes();
    let tag = mac::sign(secret, &fields(claim, &port, &time));
    v1::DatanodeProof {
        timestamp_ms,
        tag: bytes::Bytes::copy_from_slice(&tag),
    }
}

/// Checks that `proof` proves `claim` under `secret` at `now_ms`.
///
/// # Errors
/// [`ProofError`]: no proof, a timestamp outside [`WINDOW`], or a bad tag.
pub fn verify(
    secret: &[u8],
    claim: &Claim<'_>,
    proof: Option<&v1::DatanodeProof>,
    now_ms: u64,
) -> Result<(), ProofError> {
    let proof = proof.ok_or(ProofError::Missing)?;
    let skew_ms = now_ms.abs_diff(proof.timestamp_ms);
    if u128::from(skew_ms) > WINDOW.as_millis() {
        return Err(ProofError::Stale { skew_ms });
    }
    let port = claim.transfer_port.to_be_bytes();
    let time = proof.timestamp_ms.to_be_bytes();
    if mac::verify(secret, &fields(claim, &port, &time), &proof.tag) {
        Ok(())
    } else {
        Err(ProofError::BadTag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn register(id: &str, port: u32) -> Claim<'_> {
        Claim {
            kind: RequestKind::Register,
            datanode_id: id,
            transfer_port: port,
        }
    }

    #[test]
    fn a_proof_verifies_for_its_claim_under_its_secret_only() {
        let now = 1_700_000_000_000;
        let proof = prove(SECRET, &register("dn-1", 9866), now);
        assert_eq!(
            verify(SECRET, &register("dn-1", 9866), Some(&proof), now),
            Ok(())
        );
        for (secret, claim) in [
            (
                &b"another secret of enough length"[..],
                register("dn-1", 9866),
            ),
            (SECRET, register("dn-2", 9866)),
            (SECRET, register("dn-1", 9867)),
            (
                SECRET,
                Claim {
                    kind: RequestKind::Heartbeat,
                    ..register("dn-1", 9866)
                },
            ),
        ] {
            assert_eq!(
                verify(secret, &claim, Some(&proof), now),
                Err(ProofError::BadTag)
            );
        }
        assert_eq!(
            verify(SECRET, &register("dn-1", 9866), None, now),
            Err(ProofError::Missing)
        );
        let forged = v1::DatanodeProof {
            timestamp_ms: now + 1,
            ..proof
        };
        assert_eq!(
            verify(SECRET, &register("dn-1", 9866), Some(&forged), now),
            Err(ProofError::BadTag),
            "the timestamp is covered by the tag"
        );
    }

    #[test]
    fn a_short_secret_is_refused_and_none_is_ever_printed() {
        assert!(ClusterSecret::new("short").is_err());
        let secret = ClusterSecret::new("0123456789abcdef").unwrap();
        assert_eq!(secret.key(), b"0123456789abcdef");
        assert!(!format!("{secret:?}").contains("0123"));
    }

    #[test]
    fn a_proof_outside_the_window_is_refused() {
        let signed = 1_700_000_000_000;
        let proof = prove(SECRET, &register("dn-1", 1), signed);
        let window = u64::try_from(WINDOW.as_millis()).unwrap();
        for now in [signed + window, signed - window] {
            assert!(verify(SECRET, &register("dn-1", 1), Some(&proof), now).is_ok());
        }
        for now in [signed + window + 1, signed - window - 1] {
            assert!(matches!(
                verify(SECRET, &register("dn-1", 1), Some(&proof), now),
                Err(ProofError::Stale { .. })
            ));
        }
    }
}
