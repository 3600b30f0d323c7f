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
//!                ├─ no answer in time ──► next namenode; this one  │ request (same call_id)
//!                │                        is skipped for a while   │ until the deadline,
//!                │                        (backoff after a round)  │ then Unreachable
//!                └─ any other error ────► returned as is           ▼
//! ```
//!
//! Every attempt has a short deadline ([`ClientConfig::rpc_timeout_ms`]): a
//! frozen or cut-off namenode (SIGSTOP, a VM stall, a partition) accepts
//! connections or swallows packets without ever answering, so waiting on
//! it is what costs a client its failover. A namenode that did not answer
//! in time is *silent*: for [`SILENT_PENALTY`] it is tried only when every
//! other namenode has failed, and hints naming it are not followed while
//! another namenode is untried (followers keep naming the old leader until
//! they notice it is gone).
//!
//! Retrying is safe for writes too because the request (and so its
//! `CallerContext` call id) is built once per logical call: the namenode's
//! retry cache answers a duplicate with the first outcome.
//!
//! [`DfsClient`]: crate::DfsClient
//! [`ClientConfig::rpc_timeout_ms`]: crate::ClientConfig::rpc_timeout_ms

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

/// Connecting to a namenode gives up after this long (an attempt's own
/// deadline is usually shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after the first round of namenodes has failed.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The pause between rounds doubles up to this: short, because a new
/// leader is usually elected within a second or two of losing the old one.
const MAX_BACKOFF: Duration = Duration::from_millis(250);
/// How long a namenode that left an attempt unanswered is passed over
/// while others remain: long enough for the rest to elect a new leader.
pub(crate) const SILENT_PENALTY: Duration = Duration::from_secs(2);

/// The configured namenodes, one lazily connected channel each, and which
/// one is believed to lead. Cheap to clone: clones share the channels and
/// the active namenode.
#[derive(Debug, Clone)]
pub(crate) struct Failover {
    inner: Arc<Mutex<Namenodes>>,
    bind_address: Option<IpAddr>,
    /// How long one call keeps failing over.
    timeout: Duration,
    /// How long one attempt at one namenode may take.
    attempt_timeout: Duration,
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
    /// Passed over until then: it left an attempt unanswered.
    silent_until: Option<Instant>,
}

impl Namenode {
    fn new(address: String) -> Self {
        Namenode {
            address,
            channel: None,
            silent_until: None,
        }
    }

    fn is_silent(&self, now: Instant) -> bool {
        self.silent_until.is_some_and(|until| now < until)
    }
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
    /// one attempt gives up after `attempt_timeout`, a call after `timeout`
    /// of failing over.
    ///
    /// # Errors
    /// No namenode, or an address that is not `host:port`.
    pub(crate) fn new(
        namenodes: &[String],
        bind_address: Option<IpAddr>,
        timeout: Duration,
        attempt_timeout: Duration,
    ) -> Result<Self, Error> {
        if namenodes.is_empty() {
            return Err(Error::Usage("no namenode configured".into()));
        }
        for address in namenodes {
            endpoint(address, bind_address)?;
        }
        let nodes = namenodes.iter().cloned().map(Namenode::new).collect();
        Ok(Failover {
            inner: Arc::new(Mutex::new(Namenodes { nodes, active: 0 })),
            bind_address,
            timeout,
            attempt_timeout: attempt_timeout.max(Duration::from_millis(1)),
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
    /// answered within the failover timeout (plus at most one attempt's
    /// deadline: an attempt in flight is not cut short).
    pub(crate) async fn call<T, F, Fut>(&self, op: &'static str, mut attempt: F) -> Result<T, Error>
    where
        F: FnMut(ClientProtocolClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut backoff = FIRST_BACKOFF;
        let mut round = Round::default();
        let mut tried: Vec<String> = Vec::new();
        // A namenode's own words beat a transport error in the final message.
        let mut answered: Option<String> = None;
        loop {
            let (index, address, client) = self.active_client()?;
            if !tried.contains(&address) {
                tried.push(address.clone());
            }
            round.tried(index);
            // An attempt gets its whole deadline even near the failover
            // deadline (with a failover timeout of 0 it is the only one).
            let budget = self.attempt_timeout;
            let status = match tokio::time::timeout(budget, attempt(client)).await {
                Ok(Ok(reply)) => {
                    self.heard_from(index);
                    return Ok(reply.into_inner());
                }
                Ok(Err(status)) => {
                    if ErrorKind::of(&status).is_some() {
                        self.heard_from(index);
                    }
                    status
                }
                Err(_) => {
                    self.went_silent(index);
                    tonic::Status::deadline_exceeded(format!(
                        "no answer within {} ms",
                        budget.as_millis()
                    ))
                }
            };
            let (moved, reason) = match classify(&status) {
                Verdict::Return => return Err(Error::from_status(status, &address)),
                Verdict::Redirect { hint } => {
                    let moved = self.redirect(index, &hint, &round);
                    let to = self.next_address(moved);
                    tracing::debug!(op, from = %address, to = %to, "namenode is not the leader; following its hint");
                    (moved, format!("{address} is not the leader"))
                }
                Verdict::Next => {
                    let moved = self.advance(index, &round);
                    let to = self.next_address(moved);
                    let reason = reason_of(&status, &address);
                    if ErrorKind::of(&status).is_some() {
                        tracing::debug!(op, from = %address, to = %to, %reason, "no leader there; trying the next namenode");
                        answered = Some(reason.clone());
                    } else {
                        tracing::warn!(op, from = %address, to = %to, %reason, "failing over to the next namenode");
                    }
                    (moved, reason)
                }
            };
            let reason = answered.clone().unwrap_or(reason);
            round.failed();
            let now = Instant::now();
            if now >= deadline {
                return Err(unreachable(tried, reason));
            }
            // Once every namenode has had its chance, pause before the next round.
            if !moved || round.is_over(self.len()) {
                round = Round::default();
                self.restart_round();
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

    /// It answered: no longer passed over.
    fn heard_from(&self, index: usize) {
        if let Some(node) = self.lock().nodes.get_mut(index) {
            node.silent_until = None;
        }
    }

    /// It left an attempt unanswered: passed over for [`SILENT_PENALTY`].
    fn went_silent(&self, index: usize) {
        if let Some(node) = self.lock().nodes.get_mut(index) {
            node.silent_until = Some(Instant::now() + SILENT_PENALTY);
        }
    }

    /// Moves the active namenode on from `from` (unless a concurrent call
    /// already did) to the next one that `round` has not tried and that is
    /// not silent. `false` when there is none: the round is over.
    fn advance(&self, from: usize, round: &Round) -> bool {
        let mut inner = self.lock();
        if inner.active != from {
            return true;
        }
        match next_candidate(from, &inner.silence(), |i| round.has_tried(i)) {
            Some(next) => {
                inner.active = next;
                true
            }
            None => false,
        }
    }

    /// Makes the hinted namenode active, adding it if it is not configured.
    /// A hint naming `from` itself or a silent namenode, or an unusable
    /// address, counts as none: the next namenode `round` has not tried.
    /// `false` when there is none: the round is over.
    fn redirect(&self, from: usize, hint: &str, round: &Round) -> bool {
        let mut inner = self.lock();
        let known = inner.nodes.iter().position(|n| n.address == hint);
        let target = match known {
            Some(index) if index != from => Some(index),
            Some(_) => None,
            None if endpoint(hint, self.bind_address).is_ok() => {
                inner.nodes.push(Namenode::new(hint.to_owned()));
                Some(inner.nodes.len() - 1)
            }
            None => None,
        };
        let silence = inner.silence();
        let target = target
            .filter(|&i| !silence.get(i).copied().unwrap_or(false))
            .or_else(|| next_candidate(from, &silence, |i| round.has_tried(i)));
        match target {
            Some(index) => {
                inner.active = index;
                true
            }
            None => false,
        }
    }

    /// A new round starts at the first namenode that is not silent, or when
    /// all are, at the one whose silence ends first.
    fn restart_round(&self) {
        let mut inner = self.lock();
        let now = Instant::now();
        let first = inner
            .nodes
            .iter()
            .position(|n| !n.is_silent(now))
            .or_else(|| {
                (0..inner.nodes.len())
                    .min_by_key(|&i| inner.nodes.get(i).and_then(|n| n.silent_until))
            });
        if let Some(first) = first {
            inner.active = first;
        }
    }

    /// Where the next attempt goes, for the logs.
    fn next_address(&self, moved: bool) -> String {
        if !moved {
            return "the next round".to_owned();
        }
        let inner = self.lock();
        inner
            .nodes
            .get(inner.active)
            .map(|n| n.address.clone())
            .unwrap_or_default()
    }
}

impl Namenodes {
    /// Which namenodes are silent now, by index.
    fn silence(&self) -> Vec<bool> {
        let now = Instant::now();
        self.nodes.iter().map(|n| n.is_silent(now)).collect()
    }
}

/// The namenodes one call has tried since its last pause.
#[derive(Debug, Default)]
struct Round {
    tried: Vec<usize>,
    failures: usize,
}

impl Round {
    fn tried(&mut self, index: usize) {
        if !self.tried.contains(&index) {
            self.tried.push(index);
        }
    }

    fn has_tried(&self, index: usize) -> bool {
        self.tried.contains(&index)
    }

    fn failed(&mut self) {
        self.failures += 1;
    }

    /// As many attempts failed as there are namenodes (followers hinting
    /// at each other).
    fn is_over(&self, namenodes: usize) -> bool {
        self.failures >= namenodes
    }
}

/// The namenode to try after `from`: the next in order that `has_tried`
/// says this round has not tried and that is not `silent`. `None` when no
/// such namenode is left.
fn next_candidate(
    from: usize,
    silent: &[bool],
    has_tried: impl Fn(usize) -> bool,
) -> Option<usize> {
    let count = silent.len();
    (1..count)
        .map(|step| (from + step) % count)
        .find(|&i| !has_tried(i) && !silent.get(i).copied().unwrap_or(false))
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
        .tcp_nodelay(true);
    Ok(endpoint.local_address(bind))
}

#[cfg(test)]
#[path = "failover_test.rs"]
mod tests;
