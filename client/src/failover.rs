//! The namenode failover proxy: every namenode RPC of [`DfsClient`] goes
//! through [`Failover::call`], which finds the leader among the configured
//! namenodes and retries across failover (HDFS's
//! `ConfiguredFailoverProxyProvider` and `RetryPolicies`, with ZooKeeper-style
//! leader hints). It owns the namenode channels; it knows nothing about what
//! the calls mean.
//!
//! ```text
//!  call ──► active namenode ──► Ok ─────────────────────────────► reply
//!                │
//!                ├─ NotLeader + hint ──► hinted namenode, at once ─┐
//!                ├─ NotLeader, no hint ─► next namenode ───────────┤
//!                ├─ transport failure ──► next namenode ───────────┤ retry with the same
//!                │                        (backoff after a round)  │ request (same call_id)
//!                └─ any other error ────► returned as is           │ until the deadline,
//!                                                                  ▼ then Unreachable
//! ```
//!
//! Retrying is safe for writes too because the request (and so its
//! `CallerContext` call id) is built once per logical call: the namenode's
//! retry cache answers a duplicate with the first outcome.
//!
//! [`DfsClient`]: crate::DfsClient

use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dfs_proto::status::{ErrorKind, LEADER_HINT_KEY};
use dfs_proto::v1::client_protocol_client::ClientProtocolClient;
use rand::RngExt;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::error::Error;

/// Connecting to a namenode gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One RPC attempt gives up after this long.
const RPC_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause after the first round of namenodes has failed.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The pause between rounds doubles up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The configured namenodes, one lazily connected channel each, and which
/// one is believed to lead. Cheap to clone: clones share the channels and
/// the active namenode.
#[derive(Debug, Clone)]
pub(crate) struct Failover {
    inner: Arc<Mutex<Namenodes>>,
    bind_address: Option<IpAddr>,
    timeout: Duration,
}

#[derive(Debug)]
struct Namenodes {
    /// Configured addresses first, then leader hints not in the config.
    nodes: Vec<Namenode>,
    /// Index into `nodes` of the namenode every call goes to first.
    active: usize,
}

#[derive(Debug)]
struct Namenode {
    address: String,
    /// `None` until the first call to this namenode.
    channel: Option<Channel>,
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// The namenode is not the leader and named the one that is.
    Redirect { hint: String },
    /// Try the next namenode (no hint, or a transport failure).
    Next,
    /// An answer, not a failure to reach the leader: return it.
    Return,
}

impl Failover {
    /// Channels (not yet connected) to `namenodes`, bound to `bind_address`;
    /// a call gives up after `timeout` of failing over.
    ///
    /// # Errors
    /// No namenode, or an address that is not `host:port`.
    pub(crate) fn new(
        namenodes: &[String],
        bind_address: Option<IpAddr>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        if namenodes.is_empty() {
            return Err(Error::Usage("no namenode configured".into()));
        }
        for address in namenodes {
            endpoint(address, bind_address)?;
        }
        let nodes = namenodes
            .iter()
            .map(|address| Namenode {
                address: address.clone(),
                channel: None,
            })
            .collect();
        Ok(Failover {
            inner: Arc::new(Mutex::new(Namenodes { nodes, active: 0 })),
            bind_address,
            timeout,
        })
    }

    /// Runs `attempt` against the leader, failing over as the module doc
    /// says. `attempt` must send the same request each time (clone it), so a
    /// retried write keeps its call id.
    ///
    /// Cancel-safe: dropping the future abandons the current attempt, which
    /// the namenode may or may not have applied.
    ///
    /// # Errors
    /// The namenode's refusal, or [`Error::Unreachable`] once no leader
    /// answered within the failover timeout. An attempt in flight is bounded
    /// by the channel's own timeouts (connect 5 s, RPC 60 s), not cut short
    /// by the failover deadline.
    pub(crate) async fn call<T, F, Fut>(&self, op: &'static str, mut attempt: F) -> Result<T, Error>
    where
        F: FnMut(ClientProtocolClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut backoff = FIRST_BACKOFF;
        let mut failed_in_round = 0;
        let mut tried: Vec<String> = Vec::new();
        // A namenode's own words beat a transport error in the final message.
        let mut answered: Option<String> = None;
        loop {
            let (index, address, client) = self.active_client()?;
            if !tried.contains(&address) {
                tried.push(address.clone());
            }
            let status = match attempt(client).await {
                Ok(reply) => return Ok(reply.into_inner()),
                Err(status) => status,
            };
            let reason = match classify(&status) {
                Verdict::Return => return Err(Error::from_status(status, &address)),
                Verdict::Redirect { hint } => {
                    let to = self.redirect(index, &hint);
                    tracing::debug!(op, from = %address, to = %to, "namenode is not the leader; following its hint");
                    format!("{address} is not the leader")
                }
                Verdict::Next => {
                    let to = self.advance(index);
                    let reason = reason_of(&status, &address);
                    if ErrorKind::of(&status).is_some() {
                        tracing::debug!(op, from = %address, to = %to, %reason, "no leader there; trying the next namenode");
                        answered = Some(reason.clone());
                    } else {
                        tracing::warn!(op, from = %address, to = %to, %reason, "failing over to the next namenode");
                    }
                    reason
                }
            };
            let reason = answered.clone().unwrap_or(reason);
            failed_in_round += 1;
            let now = Instant::now();
            if now >= deadline {
                return Err(unreachable(tried, reason));
            }
            // Once every namenode has had its chance, pause before the next round.
            if failed_in_round >= self.len() {
                failed_in_round = 0;
                let pause = jittered(backoff).min(deadline - now);
                tokio::time::sleep(pause).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                if Instant::now() >= deadline {
                    return Err(unreachable(tried, reason));
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Namenodes> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn len(&self) -> usize {
        self.lock().nodes.len()
    }

    /// The active namenode's index, address and client, connecting its
    /// channel (lazily) on first use.
    fn active_client(&self) -> Result<(usize, String, ClientProtocolClient<Channel>), Error> {
        let mut inner = self.lock();
        let index = inner.active;
        let Some(node) = inner.nodes.get_mut(index) else {
            return Err(Error::Usage("no namenode configured".into()));
        };
        let channel = match &node.channel {
            Some(channel) => channel.clone(),
            None => {
                let channel = endpoint(&node.address, self.bind_address)?.connect_lazy();
                node.channel = Some(channel.clone());
                channel
            }
        };
        Ok((
            index,
            node.address.clone(),
            ClientProtocolClient::new(channel),
        ))
    }

    /// Moves the active namenode on from `from` (unless a concurrent call
    /// already did); returns the new active address.
    fn advance(&self, from: usize) -> String {
        let mut inner = self.lock();
        if inner.active == from {
            inner.active = (from + 1) % inner.nodes.len().max(1);
        }
        inner
            .nodes
            .get(inner.active)
            .map(|n| n.address.clone())
            .unwrap_or_default()
    }

    /// Makes the hinted namenode active, adding it if it is not configured;
    /// a hint naming `from` itself, or an unusable address, counts as none.
    fn redirect(&self, from: usize, hint: &str) -> String {
        let mut inner = self.lock();
        let known = inner.nodes.iter().position(|n| n.address == hint);
        let target = match known {
            Some(index) if index != from => Some(index),
            Some(_) => None,
            None if endpoint(hint, self.bind_address).is_ok() => {
                inner.nodes.push(Namenode {
                    address: hint.to_owned(),
                    channel: None,
                });
                Some(inner.nodes.len() - 1)
            }
            None => None,
        };
        match target {
            Some(index) => inner.active = index,
            None if inner.active == from => inner.active = (from + 1) % inner.nodes.len().max(1),
            None => {}
        }
        inner
            .nodes
            .get(inner.active)
            .map(|n| n.address.clone())
            .unwrap_or_default()
    }
}

/// Sorts a failed attempt's status into what to do next.
fn classify(status: &tonic::Status) -> Verdict {
    match ErrorKind::of(status) {
        Some(ErrorKind::NotLeader) => {
            let hint = status
                .metadata()
                .get(LEADER_HINT_KEY)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|h| !h.is_empty());
            match hint {
                Some(hint) => Verdict::Redirect {
                    hint: hint.to_owned(),
                },
                None => Verdict::Next,
            }
        }
        Some(_) => Verdict::Return,
        // No dfs kind: the status came from the transport (refused, reset,
        // timed out, or the connection broke mid-call: tonic's "transport
        // error" is Unknown), not from a namenode's answer. A retry of a
        // call the namenode did take is answered by its retry cache.
        None if matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled
                | tonic::Code::Unknown
        ) =>
        {
            Verdict::Next
        }
        None => Verdict::Return,
    }
}

fn reason_of(status: &tonic::Status, address: &str) -> String {
    format!("{address}: {}", status.message())
}

fn unreachable(tried: Vec<String>, reason: String) -> Error {
    Error::Unreachable {
        namenodes: tried,
        reason,
    }
}

/// A pause in `[backoff / 2, backoff]`, so clients that failed together do
/// not retry together.
fn jittered(backoff: Duration) -> Duration {
    let half = backoff / 2;
    half + half.mul_f64(rand::rng().random_range(0.0..=1.0))
}

fn endpoint(namenode: &str, bind: Option<IpAddr>) -> Result<Endpoint, Error> {
    let endpoint = Endpoint::from_shared(format!("http://{namenode}"))
        .map_err(|e| Error::Usage(format!("bad namenode address {namenode:?}: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(RPC_TIMEOUT)
        .tcp_nodelay(true);
    Ok(endpoint.local_address(bind))
}

#[cfg(test)]
#[path = "failover_test.rs"]
mod tests;
