//! Leases: how long a writer may stay silent before its files are taken
//! from it (HDFS `LeaseManager`, simplified).
//!
//! A file under construction names its writer (the lease holder) in the
//! namespace; that part is journaled. When the holder last showed a sign of
//! life (a `RenewLease`, a `Create` or an `AddBlock`) is not: it is kept in
//! memory by the leader alone, as HDFS does, and a new leader starts every
//! holder's clock afresh when its term begins (conservative: it cannot know
//! what the old leader saw).
//!
//! ```text
//!   RenewLease / Create / AddBlock ──► LeaseManager::renew (holder -> last sign of life)
//!
//!   Create/Append over another's file ──► past the soft limit? ──yes──► RecoveryInProgress
//!                                          │ no: AlreadyBeingCreated    + recovery request ─┐
//!                                                                                           v
//!   monitor (leader only, every 2 s): open files ─► holders past the hard limit ─► recovery::recover
//!                                                                      (close the file, fix its last block)
//! ```
//!
//! - [`LeaseManager`]: the clocks; pure (time comes in as an argument).
//! - `recovery`: closes a file whose lease expired, choosing its last
//!   block's length from the replicas the datanodes reported.
//! - `monitor`: the leader's task that finds expired leases and recovers them.
//!
//! It must not touch the tree except through `Namesystem::write` (the
//! recovery's txns are ordinary `AbandonBlock` and `Complete` txns checked
//! against the holder), and it never talks to datanodes itself: the block
//! map queues their commands.

mod monitor;
mod recovery;

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use dfs_proto::ids::Epoch;
use tokio::sync::mpsc;

use crate::error::Error;
use crate::namespace::OpenFile;

pub(crate) use monitor::Monitor;

/// Recovery requests queued for the monitor; when full, a create is told to
/// retry anyway and asks again.
const RECOVERY_QUEUE: usize = 256;

/// The soft and hard lease limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseLimits {
    /// After this long without a sign of life another client may take the
    /// file over (HDFS 60 s).
    pub(crate) soft: Duration,
    /// After this long the namenode recovers the file by itself (HDFS 1 h).
    pub(crate) hard: Duration,
}

/// When each lease holder last showed a sign of life, in the current
/// leadership term.
#[derive(Debug)]
pub(crate) struct LeaseManager {
    limits: LeaseLimits,
    /// The term the clocks belong to; `None` before the first.
    term: Option<Epoch>,
    /// Holder -> its last sign of life (or when this leader first saw it).
    renewed: HashMap<String, Instant>,
    /// Holder -> the address it last showed a sign of life from (for
    /// HDFS's "owned by HOLDER on ADDRESS").
    addresses: HashMap<String, IpAddr>,
}

impl LeaseManager {
    /// No holder known yet.
    pub(crate) fn new(limits: LeaseLimits) -> Self {
        LeaseManager {
            limits,
            term: None,
            renewed: HashMap::new(),
            addresses: HashMap::new(),
        }
    }

    /// The limits in force.
    pub(crate) fn limits(&self) -> LeaseLimits {
        self.limits
    }

    /// Starts the clocks of leadership term `term` afresh when it is a new
    /// one; within a term, does nothing.
    pub(crate) fn enter_term(&mut self, term: Epoch) {
        if self.term != Some(term) {
            self.term = Some(term);
            self.renewed.clear();
            self.addresses.clear();
        }
    }

    /// `holder` showed a sign of life at `now`.
    pub(crate) fn renew(&mut self, holder: &str, now: Instant) {
        match self.renewed.get_mut(holder) {
            Some(at) => *at = (*at).max(now),
            None => {
                self.renewed.insert(holder.to_owned(), now);
            }
        }
    }

    /// How long `holder` has been silent; a holder not seen before in this
    /// term starts its clock at `now`.
    fn silence(&mut self, holder: &str, now: Instant) -> Duration {
        let since = *self.renewed.entry(holder.to_owned()).or_insert(now);
        now.saturating_duration_since(since)
    }

    /// Whether `holder` has been silent past the soft limit (another client
    /// may then take its files over).
    pub(crate) fn is_soft_expired(&mut self, holder: &str, now: Instant) -> bool {
        self.silence(holder, now) > self.limits.soft
    }

    /// Of the holders of the files open now (`holders`, repeats allowed),
    /// those silent past the hard limit. Starts the clock of a holder not
    /// seen before and forgets holders with no open file left (a client
    /// that later creates a file starts afresh).
    pub(crate) fn hard_expired<'h>(
        &mut self,
        holders: impl IntoIterator<Item = &'h str>,
        now: Instant,
    ) -> BTreeSet<String> {
        let holders: BTreeSet<&str> = holders.into_iter().collect();
        self.renewed
            .retain(|holder, _| holders.contains(holder.as_str()));
        self.addresses
            .retain(|holder, _| holders.contains(holder.as_str()));
        holders
            .into_iter()
            .filter(|holder| self.silence(holder, now) > self.limits.hard)
            .map(str::to_owned)
            .collect()
    }
}

/// The handle RPC handlers hold: the lease clocks and the way to ask the
/// monitor for a recovery. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Leases {
    manager: Arc<Mutex<LeaseManager>>,
    recoveries: mpsc::Sender<OpenFile>,
}

/// What the monitor needs from [`Leases::new`].
#[derive(Debug)]
pub(crate) struct MonitorInputs {
    pub(crate) manager: Arc<Mutex<LeaseManager>>,
    pub(crate) recoveries: mpsc::Receiver<OpenFile>,
}

impl Leases {
    /// A handle and the monitor's end of it.
    pub(crate) fn new(limits: LeaseLimits) -> (Leases, MonitorInputs) {
        let manager = Arc::new(Mutex::new(LeaseManager::new(limits)));
        let (recoveries, requests) = mpsc::channel(RECOVERY_QUEUE);
        let leases = Leases {
            manager: Arc::clone(&manager),
            recoveries,
        };
        (
            leases,
            MonitorInputs {
                manager,
                recoveries: requests,
            },
        )
    }

    fn lock(&self, term: Epoch) -> MutexGuard<'_, LeaseManager> {
        let mut manager = self.manager.lock().unwrap_or_else(PoisonError::into_inner);
        manager.enter_term(term);
        manager
    }

    /// The limits in force.
    pub(crate) fn limits(&self) -> LeaseLimits {
        self.manager
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .limits()
    }

    /// `holder` showed a sign of life (from `from`, when known), to the
    /// leader of `term`.
    pub(crate) fn renew(&self, holder: &str, from: Option<IpAddr>, term: Epoch) {
        let mut manager = self.lock(term);
        manager.renew(holder, Instant::now());
        if let Some(addr) = from {
            manager.addresses.insert(holder.to_owned(), addr);
        }
    }

    /// HDFS `recoverLeaseInternal` for a create or append refused because another
    /// client writes the file: once that client's soft limit has passed,
    /// asks the monitor to recover the file and answers
    /// [`Error::RecoveryInProgress`] (retry shortly); otherwise the refusal
    /// stands. Any other error is returned as it is.
    pub(crate) fn on_create_refused(
        &self,
        refusal: Error,
        from: Option<IpAddr>,
        term: Epoch,
    ) -> Error {
        let Error::AlreadyBeingCreated {
            op,
            path,
            client,
            holder,
            ..
        } = refusal
        else {
            return refusal;
        };
        let mut manager = self.lock(term);
        if holder == client || !manager.is_soft_expired(&holder, Instant::now()) {
            let holder_addr = manager.addresses.get(&holder).copied();
            return Error::AlreadyBeingCreated {
                op,
                path,
                client,
                client_addr: from,
                holder,
                holder_addr,
            };
        }
        drop(manager);
        let request = OpenFile {
            path: path.clone(),
            holder: holder.clone(),
        };
        // A full queue: the client retries and asks again.
        if self.recoveries.try_send(request).is_ok() {
            tracing::info!(%path, %holder, %client, "soft limit passed; lease recovery requested");
        }
        Error::RecoveryInProgress {
            op,
            path,
            client,
            client_addr: from,
            holder,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LeaseLimits {
        LeaseLimits {
            soft: Duration::from_secs(60),
            hard: Duration::from_secs(3600),
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_holder_expires_softly_after_the_soft_limit_and_a_renewal_resets_it() {
        let t0 = Instant::now();
        let mut leases = LeaseManager::new(limits());
        leases.enter_term(Epoch(1));
        leases.renew("c1", t0);
        assert!(!leases.is_soft_expired("c1", t0 + secs(60)));
        assert!(leases.is_soft_expired("c1", t0 + secs(61)));
        leases.renew("c1", t0 + secs(61));
        assert!(!leases.is_soft_expired("c1", t0 + secs(100)));
        // A late renewal never moves the clock back.
        leases.renew("c1", t0);
        assert!(!leases.is_soft_expired("c1", t0 + secs(121)));
    }

    #[test]
    fn a_holder_first_seen_now_starts_its_clock_now() {
        let t0 = Instant::now();
        let mut leases = LeaseManager::new(limits());
        assert!(!leases.is_soft_expired("ghost", t0 + secs(1000)));
        assert!(leases.is_soft_expired("ghost", t0 + secs(1061)));
        let expired = leases.hard_expired(["other"], t0);
        assert!(expired.is_empty(), "first seen: its clock starts");
        assert!(
            leases
                .hard_expired(["other"], t0 + secs(3601))
                .contains("other")
        );
    }

    #[test]
    fn only_holders_of_open_files_past_the_hard_limit_expire() {
        let t0 = Instant::now();
        let mut leases = LeaseManager::new(limits());
        leases.renew("alive", t0);
        leases.renew("dead", t0);
        leases.renew("done", t0);
        leases.renew("alive", t0 + secs(3000));
        let expired = leases.hard_expired(["alive", "dead", "dead"], t0 + secs(3601));
        assert_eq!(expired, BTreeSet::from(["dead".to_owned()]));
        // "done" has no open file: forgotten, so a new file of it starts afresh.
        assert!(!leases.is_soft_expired("done", t0 + secs(3601)));
    }

    #[test]
    fn a_new_term_starts_every_clock_afresh() {
        let t0 = Instant::now();
        let mut leases = LeaseManager::new(limits());
        leases.enter_term(Epoch(3));
        leases.renew("c1", t0);
        leases.enter_term(Epoch(3));
        assert!(leases.is_soft_expired("c1", t0 + secs(61)), "same term");
        // Leading again later: what the other leader saw is unknown.
        leases.enter_term(Epoch(5));
        assert!(!leases.is_soft_expired("c1", t0 + secs(61)));
        assert!(leases.hard_expired(["c1"], t0 + secs(3600)).is_empty());
    }

    #[tokio::test]
    async fn a_create_over_a_softly_expired_lease_asks_for_recovery() {
        let (leases, mut monitor) = Leases::new(LeaseLimits {
            soft: Duration::ZERO,
            hard: secs(3600),
        });
        let refused = |client: &str| Error::AlreadyBeingCreated {
            op: "CREATE_FILE",
            path: "/f".into(),
            client: client.into(),
            client_addr: None,
            holder: "old".into(),
            holder_addr: None,
        };
        // First sight of "old": its clock starts now, not expired yet.
        let first = leases.on_create_refused(refused("new"), None, Epoch(1));
        assert!(
            matches!(first, Error::AlreadyBeingCreated { .. }),
            "{first}"
        );
        std::thread::sleep(Duration::from_millis(2));
        let second = leases.on_create_refused(refused("new"), None, Epoch(1));
        assert!(
            matches!(second, Error::RecoveryInProgress { .. }),
            "{second}"
        );
        let request = monitor.recoveries.try_recv().unwrap();
        assert_eq!(
            (request.path.as_str(), request.holder.as_str()),
            ("/f", "old")
        );
        // The writer itself never recovers its own file.
        let own = Error::AlreadyBeingCreated {
            op: "CREATE_FILE",
            path: "/f".into(),
            client: "old".into(),
            client_addr: None,
            holder: "old".into(),
            holder_addr: None,
        };
        let own = leases.on_create_refused(own, None, Epoch(1));
        assert!(matches!(own, Error::AlreadyBeingCreated { .. }));
        assert!(monitor.recoveries.try_recv().is_err());
    }
}
