//! Deterministic simulation of whole namenodes: the real election,
//! discovery, sync and broadcast cores, wired together the way the runtime
//! (`peer.rs`) wires them, over a seeded network with crashes and restarts.
//!
//! ```text
//!   restart (recovery: namespace = durable journal)
//!      │
//!      ▼
//!   LOOKING: Election::start(last zxid, current epoch); notifications are
//!      │     datagrams, delayed, lost and reordered independently
//!      ▼ Decided
//!   LEADING                                   FOLLOWING / OBSERVING
//!   Discovery    <── FOLLOWERINFO ─────────  opens one FIFO session
//!                ─── LEADERINFO ─────────>   answer_leader_info
//!                <── ACKEPOCH ────────────
//!   established: Leader, choose_sync
//!                ─── DIFF / TRUNC / SNAP,
//!                    txns, NEWLEADER ────>   fsync, current epoch, Learner
//!                <── ACK NEWLEADER ───────
//!   Leader       <── PROPOSAL, ACK, ──────>  Learner
//!                    COMMIT, INFORM
//!
//!   Back to LOOKING (Election::start on the same Election) on GoLooking, a
//!   lost quorum, a broken session, a discovery refusal (a follower ahead, a
//!   learner that accepted a newer epoch, a stale LEADERINFO) or the init
//!   deadline. A crash keeps the disk (fsynced journal, snapshot point,
//!   accepted and current epochs) and loses everything else.
//! ```
//!
//! Each seed draws 3 or 5 voters (sometimes an observer) and its weather:
//! notification loss and delay, session delay, fsync delay, the finalize
//! wait, how often faults strike and clients write. Faults: a crash (and a
//! later restart), a reset session, a partition, a leader's checkpoint (so
//! SNAP is needed); fsyncs are partial. A node going LOOKING closes its
//! sessions: what it sent still arrives. Some seeds start with only a
//! minority of voters up, which must not establish anything. After the chaos
//! the network heals, every node restarts, and the ensemble must settle.
//!
//! Checked on every step:
//! - at most one leader establishes each epoch, and only with a quorum of
//!   voters that persisted it (so never a minority alone);
//! - a zxid names one payload wherever it is journaled or applied;
//! - commits happen in zxid order and stay durable on a quorum of voters;
//! - an established leader of epoch `e` holds everything committed in epochs
//!   before `e`; its synced quorum commits its history without forking what
//!   is committed (an ACK may arrive after its sender moved on to a newer
//!   epoch that committed more);
//! - a learner applies only committed txns, in order, and a sync leaves it
//!   with exactly the leader's history;
//! - rebuilding a namespace (TRUNC, SNAP, NEWLEADER, a new leader) never
//!   drops a committed txn below its new end.
//!
//! Checked at the end: one leader with a synced quorum, followed by every
//! node, each of which applied exactly the committed sequence.
//!
//! What the runtime must do as this simulation does: drain (fsync) the
//! journal before voting again; fsync both epochs before use and a sync
//! before ACKing NEWLEADER; bring the namespace to the whole journal when
//! establishing; call `Election::on_established` once synced; drop what
//! still arrives on a learner's old session once it opened a new one; keep
//! retrying a refused session until the init deadline.
//!
//! A failing seed is printed and replays with `DFS_SEED=<seed>`; add
//! `DFS_TRACE=1` for the run's story on stderr. `DFS_SEEDS=<n>` runs seeds
//! `0..n` instead of the usual thousand (a soak).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dfs_proto::ids::{Epoch, ServerId, Zxid};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::broadcast::{self, Ignored, Leader, Learner, LearnerRole, LookingReason, Message};
use super::election::{self, Election, Notification, Outcome, Role, Timing};
use super::replay::{self, SeedGuard};
use super::sync::{
    AckEpoch, AckProgress, Discovery, DiscoveryError, EpochProgress, LeaderInfoAnswer, LogView,
    SyncPlan, answer_leader_info, choose_sync, is_quorum,
};

/// Seeds per `cargo test` run, spread over `CHUNKS` tests by residue.
const SEEDS: u64 = 1000;
const CHUNKS: u64 = 4;
const OBSERVER: ServerId = ServerId(100);

// All times are ms of simulated time.
/// Faults strike and links are lossy until here.
const CHAOS_MS: u64 = 12_000;
/// Clients stop writing here, so the last writes can commit before the end.
const QUIET_MS: u64 = 27_000;
const END_MS: u64 = 35_000;
/// Seeds that start with a minority of voters keep it alone this long.
const MINORITY_MS: u64 = 4_000;
/// A learner not synced, or a leader without a synced quorum, this long
/// after its decision looks again (ZooKeeper's initLimit).
const INIT_LIMIT_MS: u64 = 3_000;
/// Between a learner's attempts to reach a leader that refused it.
const CONNECT_RETRY_MS: u64 = 200;
/// The longest the far end of a broken session takes to notice.
const NOTICE_MAX_MS: u64 = 400;

/// A seed's network and fault weather while the chaos lasts.
#[derive(Debug, Clone, Copy)]
struct Weather {
    /// Chance that an election notification is lost.
    loss: f64,
    /// Longest delivery delay of a notification and of a session message:
    /// a notification late past the finalize wait can split a round.
    notify_delay: u64,
    session_delay: u64,
    /// The longest a journal append waits for its fsync (a slow disk).
    fsync_delay: u64,
    /// Mean time between faults, and between client writes.
    fault_every: u64,
    write_every: u64,
    /// The election's finalize wait: a short one decides before slow votes
    /// arrive, so the elected leader is less often the most up to date.
    finalize_wait: Duration,
}

impl Weather {
    fn draw(rng: &mut StdRng) -> Self {
        Weather {
            loss: [0.0, 0.05, 0.2, 0.4][rng.random_range(0..4)],
            notify_delay: [20, 150, 400, 1_000][rng.random_range(0..4)],
            session_delay: [5, 30, 100][rng.random_range(0..3)],
            fsync_delay: [5, 20, 300][rng.random_range(0..3)],
            fault_every: [150, 300, 800, 2_000][rng.random_range(0..4)],
            write_every: [60, 150, 400][rng.random_range(0..3)],
            finalize_wait: Duration::from_millis([200, 200, 20][rng.random_range(0..3)]),
        }
    }

    /// After the chaos: fast, lossless, no more faults.
    fn calm(self) -> Self {
        Weather {
            loss: 0.0,
            notify_delay: 10,
            session_delay: 10,
            fsync_delay: 10,
            ..self
        }
    }
}

type Entry = (Zxid, Bytes);

/// One leader-learner connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct SessionId(u64);

#[derive(Debug)]
enum Event {
    /// A node boots, or comes back from a crash.
    Restart(ServerId),
    Notify {
        to: ServerId,
        n: Notification,
    },
    ElectionTimer {
        node: ServerId,
        at: u64,
    },
    /// The next message on one direction of a session.
    Deliver {
        session: SessionId,
        to_leader: bool,
    },
    /// One end of a broken session finds out.
    Broken {
        session: SessionId,
        node: ServerId,
    },
    /// A refused learner tries its leader again.
    Connect {
        node: ServerId,
        term: u64,
    },
    /// The init deadline of a LEADING or learning term.
    InitLimit {
        node: ServerId,
        term: u64,
    },
    Fsync(ServerId),
    Fault,
    Write,
    EndPartition,
    /// The minority that started alone is joined by the others.
    EndMinority,
    Heal,
}

impl Event {
    /// A number per kind and node, for the run's digest.
    fn fingerprint(&self) -> (u64, u64) {
        let sid = |s: &ServerId| s.0;
        match self {
            Event::Restart(s) => (1, sid(s)),
            Event::Notify { to, n } => (2, (sid(to) << 32) | n.round.0),
            Event::ElectionTimer { node, .. } => (3, sid(node)),
            Event::Deliver { session, to_leader } => (4, (session.0 << 1) | u64::from(*to_leader)),
            Event::Broken { node, .. } => (5, sid(node)),
            Event::Connect { node, .. } => (6, sid(node)),
            Event::InitLimit { node, .. } => (7, sid(node)),
            Event::Fsync(node) => (8, sid(node)),
            Event::Fault => (9, 0),
            Event::Write => (10, 0),
            Event::EndPartition => (11, 0),
            Event::EndMinority => (12, 0),
            Event::Heal => (13, 0),
        }
    }
}

/// A message on a leader-learner session.
#[derive(Debug, Clone)]
enum Wire {
    /// FOLLOWERINFO or OBSERVERINFO: the first message of every session.
    LearnerInfo {
        accepted: Epoch,
    },
    LeaderInfo {
        epoch: Epoch,
    },
    AckEpoch(AckEpoch),
    SyncStart {
        epoch: Epoch,
        plan: SyncPlan,
        /// With SNAP: the snapshot's zxid and the history it stands for.
        snapshot: Option<(Zxid, Vec<Entry>)>,
    },
    SyncTxn(Entry),
    NewLeader {
        epoch: Epoch,
        zxid: Zxid,
        /// Not on the real wire: the leader's history the sync must leave.
        expected: Vec<Entry>,
    },
    AckNewLeader,
    Broadcast(Message),
}

#[derive(Debug)]
struct Session {
    learner: ServerId,
    leader: ServerId,
    to_leader: VecDeque<Wire>,
    to_learner: VecDeque<Wire>,
    /// When the last message queued each way arrives: nothing overtakes it.
    to_leader_at: u64,
    to_learner_at: u64,
    /// The end that left: what it sent still arrives, nothing reaches it.
    closed_by: Option<ServerId>,
}

/// What survives a crash.
#[derive(Debug)]
struct Disk {
    /// Fsynced entries, ascending. Those up to `log_start` stand for the
    /// snapshot.
    journal: Vec<Entry>,
    /// History up to here is only in the snapshot: a DIFF cannot start below.
    log_start: Zxid,
    accepted: Epoch,
    current: Epoch,
}

impl Disk {
    fn holds(&self, entry: &Entry) -> bool {
        self.journal
            .binary_search_by_key(&entry.0, |(z, _)| *z)
            .is_ok_and(|i| self.journal[i] == *entry)
    }
}

#[derive(Debug)]
struct Node {
    disk: Disk,
    up: Option<Up>,
    /// Bumped by every role change and crash: older deadlines are stale.
    term: u64,
}

/// What a running node holds in memory.
#[derive(Debug)]
struct Up {
    election: Election,
    election_timer: Option<u64>,
    /// Appended to the journal, not yet fsynced.
    pending: Vec<Entry>,
    is_fsync_due: bool,
    /// The namespace: the txns applied, ascending.
    applied: Vec<Entry>,
    phase: Phase,
}

#[derive(Debug)]
enum Phase {
    Looking,
    Leading(Box<Leading>),
    Learning(Box<Learning>),
}

#[derive(Debug)]
struct Leading {
    discovery: Discovery,
    /// Once discovery established the epoch.
    core: Option<Leader>,
    sessions: BTreeMap<ServerId, SessionId>,
    /// Learners that acknowledged the epoch before it was established, with
    /// the last zxid each reported: synced at establishment.
    awaiting_sync: BTreeMap<ServerId, Zxid>,
    has_had_quorum: bool,
}

#[derive(Debug)]
struct Learning {
    leader: ServerId,
    role: LearnerRole,
    session: Option<SessionId>,
    stage: Stage,
}

#[derive(Debug)]
enum Stage {
    /// Opening the session, waiting for LEADERINFO.
    Connecting,
    /// ACKEPOCH sent: waiting for the sync to start.
    AwaitingSync {
        epoch: Epoch,
    },
    Syncing {
        epoch: Epoch,
    },
    Broadcast(Learner),
}

/// A learner's stage without its core, to match on.
#[derive(Debug, Clone, Copy)]
enum Step {
    Connecting,
    AwaitingSync(Epoch),
    Syncing(Epoch),
    Broadcast,
}

impl Stage {
    fn step(&self) -> Step {
        match self {
            Stage::Connecting => Step::Connecting,
            Stage::AwaitingSync { epoch } => Step::AwaitingSync(*epoch),
            Stage::Syncing { epoch } => Step::Syncing(*epoch),
            Stage::Broadcast(_) => Step::Broadcast,
        }
    }
}

impl Node {
    /// The journal as the node reads it: fsynced, then pending.
    fn history(&self) -> impl Iterator<Item = &Entry> {
        let pending = self.up.iter().flat_map(|up| up.pending.iter());
        self.disk.journal.iter().chain(pending)
    }

    fn last_zxid(&self) -> Zxid {
        self.history().last().map_or(Zxid::ZERO, |(z, _)| *z)
    }

    fn up(&mut self) -> &mut Up {
        self.up.as_mut().expect("only a running node acts")
    }

    /// Makes every pending entry durable.
    fn flush(&mut self) {
        if let Some(up) = &mut self.up {
            self.disk.journal.append(&mut up.pending);
        }
    }
}

/// What the whole ensemble must agree on, as only the simulation sees it.
#[derive(Debug, Default)]
struct Truth {
    /// The payload of every zxid ever proposed: a zxid names one txn.
    issued: BTreeMap<Zxid, Bytes>,
    /// Everything committed, in order.
    committed: Vec<Entry>,
    /// Who established each epoch.
    established: BTreeMap<Epoch, ServerId>,
}

impl Truth {
    fn is_committed(&self, entry: &Entry) -> bool {
        self.committed
            .binary_search_by_key(&entry.0, |(z, _)| *z)
            .is_ok_and(|i| self.committed[i] == *entry)
    }

    fn check_issued(&self, sid: ServerId, (zxid, payload): &Entry) {
        assert_eq!(
            self.issued.get(zxid),
            Some(payload),
            "{sid} holds {zxid} with a payload never proposed for it"
        );
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Stats {
    decisions: u64,
    /// Decisions to lead while another node leads: split brains to survive.
    rival_leaders: u64,
    established: u64,
    commits: u64,
    crashes: u64,
    partitions: u64,
    broken_sessions: u64,
    lost_notifications: u64,
    refused_connections: u64,
    diffs: u64,
    truncs: u64,
    snaps: u64,
    followers_ahead: u64,
    /// Leaders sent LOOKING by a learner that accepted a newer epoch.
    outdated_leaders: u64,
    already_accepted: u64,
    init_limits: u64,
    lost_quorums: u64,
    newer_epochs_or_gaps: u64,
    minority_starts: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.decisions += o.decisions;
        self.rival_leaders += o.rival_leaders;
        self.established += o.established;
        self.commits += o.commits;
        self.crashes += o.crashes;
        self.partitions += o.partitions;
        self.broken_sessions += o.broken_sessions;
        self.lost_notifications += o.lost_notifications;
        self.refused_connections += o.refused_connections;
        self.diffs += o.diffs;
        self.truncs += o.truncs;
        self.snaps += o.snaps;
        self.followers_ahead += o.followers_ahead;
        self.outdated_leaders += o.outdated_leaders;
        self.already_accepted += o.already_accepted;
        self.init_limits += o.init_limits;
        self.lost_quorums += o.lost_quorums;
        self.newer_epochs_or_gaps += o.newer_epochs_or_gaps;
        self.minority_starts += o.minority_starts;
    }
}

struct Sim {
    rng: StdRng,
    base: Instant,
    now: u64,
    /// Events by (time, sequence number): ties go in scheduling order.
    queue: BTreeMap<(u64, u64), Event>,
    scheduled: u64,
    voters: BTreeSet<ServerId>,
    observers: BTreeSet<ServerId>,
    nodes: BTreeMap<ServerId, Node>,
    sessions: BTreeMap<SessionId, Session>,
    opened: u64,
    /// Partitioned off from the others; empty when whole.
    cut: BTreeSet<ServerId>,
    weather: Weather,
    is_healed: bool,
    terms: u64,
    /// Client writes so far: each payload is unique.
    written: u64,
    truth: Truth,
    stats: Stats,
    /// FNV-1a over the events run: equal digests, equal runs.
    digest: u64,
    /// `DFS_TRACE` set: print the run's story to stderr.
    is_tracing: bool,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let voters: BTreeSet<ServerId> = (1..=if rng.random_bool(0.5) { 3 } else { 5 })
            .map(ServerId)
            .collect();
        let observers: BTreeSet<ServerId> = if rng.random_bool(0.3) {
            BTreeSet::from([OBSERVER])
        } else {
            BTreeSet::new()
        };
        let nodes = voters
            .iter()
            .chain(&observers)
            .map(|&sid| {
                let disk = Disk {
                    journal: Vec::new(),
                    log_start: Zxid::ZERO,
                    accepted: Epoch(0),
                    current: Epoch(0),
                };
                let node = Node {
                    disk,
                    up: None,
                    term: 0,
                };
                (sid, node)
            })
            .collect();
        let weather = Weather::draw(&mut rng);
        let mut sim = Sim {
            rng,
            base: Instant::now(),
            now: 0,
            queue: BTreeMap::new(),
            scheduled: 0,
            voters,
            observers,
            nodes,
            sessions: BTreeMap::new(),
            opened: 0,
            cut: BTreeSet::new(),
            weather,
            is_healed: false,
            terms: 0,
            written: 0,
            truth: Truth::default(),
            stats: Stats::default(),
            digest: 0xcbf2_9ce4_8422_2325,
            is_tracing: std::env::var_os("DFS_TRACE").is_some(),
        };
        sim.boot();
        sim
    }

    /// Every node boots within 100 ms, or only a minority of voters (and the
    /// observer) does, and the others join after `MINORITY_MS`.
    fn boot(&mut self) {
        let minority = self.voters.len() / 2;
        let is_minority_start = self.rng.random_bool(0.15);
        let mut chaos_from = 0;
        if is_minority_start {
            self.stats.minority_starts += 1;
            chaos_from = MINORITY_MS;
            self.schedule(MINORITY_MS, Event::EndMinority);
        }
        let sids: Vec<ServerId> = self.nodes.keys().copied().collect();
        for (i, sid) in sids.into_iter().enumerate() {
            if !is_minority_start || i < minority || self.observers.contains(&sid) {
                let at = self.rng.random_range(0..100);
                self.schedule(at, Event::Restart(sid));
            }
        }
        let first_fault = chaos_from + self.weather.fault_every;
        self.schedule(first_fault, Event::Fault);
        self.schedule(chaos_from + self.weather.write_every, Event::Write);
        self.schedule(CHAOS_MS, Event::Heal);
    }

    // ------------------------------------------------------------ the loop

    fn schedule(&mut self, at: u64, event: Event) {
        self.scheduled += 1;
        self.queue.insert((at, self.scheduled), event);
    }

    fn run_until(&mut self, end: u64) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > end {
                break;
            }
            let ((at, _), event) = entry.remove_entry();
            self.now = at;
            let (kind, detail) = event.fingerprint();
            for word in [at, kind, detail] {
                self.digest = (self.digest ^ word).wrapping_mul(0x100_0000_01b3);
            }
            self.handle(event);
        }
        self.now = end;
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Restart(sid) => self.restart(sid),
            Event::Notify { to, n } => self.on_notification(to, n),
            Event::ElectionTimer { node, at } => self.on_election_timer(node, at),
            Event::Deliver { session, to_leader } => self.deliver(session, to_leader),
            Event::Broken { session, node } => self.on_broken(session, node),
            Event::Connect { node, term } => {
                if self.nodes[&node].term == term {
                    self.connect(node);
                }
            }
            Event::InitLimit { node, term } => self.on_init_limit(node, term),
            Event::Fsync(sid) => self.fsync(sid),
            Event::Fault => self.fault(),
            Event::Write => self.write(),
            Event::EndPartition => self.cut.clear(),
            Event::EndMinority => {
                assert!(
                    self.truth.established.is_empty(),
                    "a minority established {:?}",
                    self.truth.established
                );
                let down = self.down_nodes();
                for sid in down {
                    self.schedule(self.now, Event::Restart(sid));
                }
            }
            Event::Heal => {
                self.is_healed = true;
                self.weather = self.weather.calm();
                self.cut.clear();
                let down = self.down_nodes();
                for sid in down {
                    let at = self.now + self.rng.random_range(0..100);
                    self.schedule(at, Event::Restart(sid));
                }
            }
        }
    }

    fn trace(&self, what: std::fmt::Arguments<'_>) {
        if self.is_tracing {
            eprintln!("{:>6} {what}", self.now);
        }
    }

    fn instant(&self) -> Instant {
        self.base + Duration::from_millis(self.now)
    }

    /// An instant of this run in ms, rounded up.
    fn ms(&self, at: Instant) -> u64 {
        let ms = at.duration_since(self.base).as_nanos().div_ceil(1_000_000);
        u64::try_from(ms).expect("runs last minutes")
    }

    fn delay(&mut self, most: u64) -> u64 {
        self.now + self.rng.random_range(1..=most)
    }

    fn node(&mut self, sid: ServerId) -> &mut Node {
        self.nodes
            .get_mut(&sid)
            .expect("the simulation only names its own nodes")
    }

    fn is_up(&self, sid: ServerId) -> bool {
        self.nodes[&sid].up.is_some()
    }

    fn down_nodes(&self) -> Vec<ServerId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.up.is_none())
            .map(|(&sid, _)| sid)
            .collect()
    }

    fn can_reach(&self, a: ServerId, b: ServerId) -> bool {
        self.cut.contains(&a) == self.cut.contains(&b)
    }

    fn phase(&self, sid: ServerId) -> Option<&Phase> {
        self.nodes[&sid].up.as_ref().map(|up| &up.phase)
    }

    fn leading(&mut self, sid: ServerId) -> Option<&mut Leading> {
        match &mut self.node(sid).up.as_mut()?.phase {
            Phase::Leading(l) => Some(l),
            _ => None,
        }
    }

    fn learning(&mut self, sid: ServerId) -> Option<&mut Learning> {
        match &mut self.node(sid).up.as_mut()?.phase {
            Phase::Learning(l) => Some(l),
            _ => None,
        }
    }

    fn next_term(&mut self, sid: ServerId) -> u64 {
        self.terms += 1;
        let term = self.terms;
        self.node(sid).term = term;
        term
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.rng.random_range(0..items.len())])
    }

    // ------------------------------------------------------ life and death

    /// Boot or recovery: the namespace replays the durable journal, then
    /// the node looks for a leader with a fresh election.
    fn restart(&mut self, sid: ServerId) {
        if self.is_up(sid) {
            return;
        }
        let election = Election::new(
            sid,
            self.voters.clone(),
            self.observers.clone(),
            Timing {
                finalize_wait: self.weather.finalize_wait,
                ..Timing::default()
            },
        )
        .expect("a valid ensemble");
        let node = &self.nodes[&sid];
        for entry in &node.disk.journal {
            self.truth.check_issued(sid, entry);
        }
        let applied = node.disk.journal.clone();
        self.trace(format_args!("{sid} restarts: {}", describe(node)));
        self.node(sid).up = Some(Up {
            election,
            election_timer: None,
            pending: Vec::new(),
            is_fsync_due: false,
            applied,
            phase: Phase::Looking,
        });
        self.look(sid);
    }

    fn crash(&mut self, sid: ServerId) {
        self.stats.crashes += 1;
        self.next_term(sid);
        if self.node(sid).up.take().is_none() {
            return;
        }
        self.trace(format_args!(
            "{sid} crashes: {}",
            describe(&self.nodes[&sid])
        ));
        // Its connections reset, accepted or not; the far ends notice.
        let ends: Vec<(SessionId, ServerId)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.leader == sid || s.learner == sid)
            .map(|(&id, s)| (id, if s.leader == sid { s.learner } else { s.leader }))
            .collect();
        for (session, far) in ends {
            self.break_session(session, &[far]);
        }
        self.check_durable("a crash");
        let back = self.now + self.rng.random_range(100..=4_000);
        self.schedule(back, Event::Restart(sid));
    }

    /// Leaves whatever role for LOOKING: the journal drains, the sessions
    /// close, and the same election starts a new round.
    fn look(&mut self, sid: ServerId) {
        self.next_term(sid);
        let node = self.node(sid);
        node.flush();
        let phase = std::mem::replace(&mut node.up().phase, Phase::Looking);
        self.close_sessions_of(sid, phase);
        let node = &self.nodes[&sid];
        let (last, current) = (node.last_zxid(), node.disk.current);
        self.trace(format_args!("{sid} looks: {}", describe(node)));
        let now = self.instant();
        let actions = self.node(sid).up().election.start(last, current, now);
        self.run_election(sid, actions);
    }

    /// Closes the sessions `sid` held in `phase`.
    fn close_sessions_of(&mut self, sid: ServerId, phase: Phase) {
        let sessions: Vec<SessionId> = match phase {
            Phase::Leading(l) => l.sessions.into_values().collect(),
            Phase::Learning(l) => l.session.into_iter().collect(),
            Phase::Looking => Vec::new(),
        };
        for session in sessions {
            self.close_session(session, sid);
        }
    }

    fn on_init_limit(&mut self, sid: ServerId, term: u64) {
        if self.nodes[&sid].term != term {
            return;
        }
        let is_late = match self.phase(sid) {
            Some(Phase::Leading(l)) => !l.has_had_quorum,
            Some(Phase::Learning(l)) => !matches!(l.stage, Stage::Broadcast(_)),
            _ => false,
        };
        if is_late {
            self.stats.init_limits += 1;
            self.look(sid);
        }
    }

    // ------------------------------------------------------------ election

    fn send_notification(&mut self, to: ServerId, n: Notification) {
        let is_lost = self.rng.random_bool(self.weather.loss);
        if is_lost || !self.can_reach(n.from, to) {
            self.stats.lost_notifications += 1;
            return;
        }
        let at = self.delay(self.weather.notify_delay);
        self.schedule(at, Event::Notify { to, n });
    }

    fn on_notification(&mut self, to: ServerId, n: Notification) {
        if !self.is_up(to) || !self.can_reach(n.from, to) {
            return;
        }
        let now = self.instant();
        let actions = self.node(to).up().election.on_notification(n, now);
        self.run_election(to, actions);
    }

    fn on_election_timer(&mut self, sid: ServerId, at: u64) {
        let Some(up) = &mut self.node(sid).up else {
            return;
        };
        if up.election_timer != Some(at) {
            return;
        }
        up.election_timer = None;
        let now = self.instant();
        let actions = self.node(sid).up().election.on_timeout(now);
        self.run_election(sid, actions);
    }

    fn run_election(&mut self, sid: ServerId, actions: Vec<election::Action>) {
        for action in actions {
            match action {
                election::Action::Broadcast(n) => {
                    let others: Vec<ServerId> =
                        self.voters.iter().copied().filter(|&v| v != sid).collect();
                    for to in others {
                        self.send_notification(to, n);
                    }
                }
                election::Action::SendTo(to, n) => self.send_notification(to, n),
                election::Action::SetTimer(at) => {
                    let at = self.ms(at);
                    self.node(sid).up().election_timer = Some(at);
                    self.schedule(at, Event::ElectionTimer { node: sid, at });
                }
                election::Action::Decided(outcome) => {
                    self.node(sid).up().election_timer = None;
                    self.decide(sid, outcome);
                }
            }
        }
    }

    /// Starts the decided role, with a deadline to be synced by.
    fn decide(&mut self, sid: ServerId, outcome: Outcome) {
        self.stats.decisions += 1;
        self.trace(format_args!("{sid} decides {outcome:?}"));
        let term = self.next_term(sid);
        let node = &self.nodes[&sid];
        let phase = match outcome.role {
            Role::Leading => {
                let rivals = self.nodes.values().filter(|n| {
                    matches!(n.up.as_ref().map(|up| &up.phase), Some(Phase::Leading(_)))
                });
                self.stats.rival_leaders += rivals.count() as u64;
                let discovery = Discovery::new(
                    sid,
                    self.voters.clone(),
                    node.disk.accepted,
                    node.disk.current,
                    node.last_zxid(),
                )
                .expect("only voters lead");
                Phase::Leading(Box::new(Leading {
                    discovery,
                    core: None,
                    sessions: BTreeMap::new(),
                    awaiting_sync: BTreeMap::new(),
                    has_had_quorum: false,
                }))
            }
            Role::Following | Role::Observing => {
                let role = if outcome.role == Role::Observing {
                    LearnerRole::Observer
                } else {
                    LearnerRole::Follower
                };
                Phase::Learning(Box::new(Learning {
                    leader: outcome.vote.leader,
                    role,
                    session: None,
                    stage: Stage::Connecting,
                }))
            }
        };
        self.node(sid).up().phase = phase;
        self.schedule(
            self.now + INIT_LIMIT_MS,
            Event::InitLimit { node: sid, term },
        );
        if outcome.role != Role::Leading {
            self.connect(sid);
        }
    }

    // ------------------------------------------------------------ sessions

    /// A learner opens its session with FOLLOWERINFO; a leader that is down,
    /// cut off or not leading refuses it, and the learner tries again.
    fn connect(&mut self, sid: ServerId) {
        let accepted = self.nodes[&sid].disk.accepted;
        let Some(learning) = self.learning(sid) else {
            return;
        };
        if learning.session.is_some() {
            return;
        }
        let leader = learning.leader;
        self.opened += 1;
        let id = SessionId(self.opened);
        if let Some(l) = self.learning(sid) {
            l.session = Some(id);
        }
        self.sessions.insert(
            id,
            Session {
                learner: sid,
                leader,
                to_leader: VecDeque::new(),
                to_learner: VecDeque::new(),
                to_leader_at: 0,
                to_learner_at: 0,
                closed_by: None,
            },
        );
        if self.is_up(leader) && self.can_reach(sid, leader) {
            self.send(id, true, Wire::LearnerInfo { accepted });
        } else {
            self.refuse(id);
        }
    }

    fn refuse(&mut self, session: SessionId) {
        self.stats.refused_connections += 1;
        let learner = self.sessions[&session].learner;
        self.break_session(session, &[learner]);
    }

    fn send(&mut self, session: SessionId, to_leader: bool, msg: Wire) {
        let at = self.delay(self.weather.session_delay);
        let Some(s) = self
            .sessions
            .get_mut(&session)
            .filter(|s| s.closed_by.is_none())
        else {
            return;
        };
        let (queue, last) = if to_leader {
            (&mut s.to_leader, &mut s.to_leader_at)
        } else {
            (&mut s.to_learner, &mut s.to_learner_at)
        };
        queue.push_back(msg);
        *last = at.max(*last);
        let at = *last;
        self.schedule(at, Event::Deliver { session, to_leader });
    }

    /// `by` leaves the session, as a node going LOOKING closes its
    /// connections: what it sent still arrives, then the far end sees the
    /// stream end. Nothing reaches `by` any more.
    fn close_session(&mut self, session: SessionId, by: ServerId) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        if s.closed_by.is_some() {
            // Both ends left.
            self.sessions.remove(&session);
            return;
        }
        s.closed_by = Some(by);
        let (far, last_at) = if by == s.leader {
            s.to_leader.clear();
            (s.learner, s.to_learner_at)
        } else {
            s.to_learner.clear();
            (s.leader, s.to_leader_at)
        };
        let at = self.delay(self.weather.session_delay).max(last_at);
        self.schedule(at, Event::Broken { session, node: far });
    }

    /// The session is gone with whatever it still carried (a crash, a
    /// partition, a reset); `notice` are the ends that find out later.
    fn break_session(&mut self, session: SessionId, notice: &[ServerId]) {
        if self.sessions.remove(&session).is_none() {
            return;
        }
        for &node in notice {
            let at = self.now + self.rng.random_range(0..=NOTICE_MAX_MS);
            self.schedule(at, Event::Broken { session, node });
        }
    }

    fn on_broken(&mut self, session: SessionId, sid: ServerId) {
        self.sessions.remove(&session);
        match self.phase(sid) {
            Some(Phase::Leading(l)) => {
                let learner = l.sessions.iter().find(|(_, s)| **s == session);
                if let Some((&learner, _)) = learner {
                    self.lose_learner(sid, learner);
                }
            }
            Some(Phase::Learning(l)) if l.session == Some(session) => {
                if matches!(l.stage, Stage::Connecting) {
                    // Refused or cut before discovery began: try again.
                    let term = self.nodes[&sid].term;
                    if let Some(l) = self.learning(sid) {
                        l.session = None;
                    }
                    let at = self.now + CONNECT_RETRY_MS;
                    self.schedule(at, Event::Connect { node: sid, term });
                } else {
                    self.look(sid);
                }
            }
            _ => {}
        }
    }

    /// The leader drops a learner whose session broke or was replaced.
    fn lose_learner(&mut self, leader: ServerId, learner: ServerId) {
        let Some(leading) = self.leading(leader) else {
            return;
        };
        leading.sessions.remove(&learner);
        leading.awaiting_sync.remove(&learner);
        if let Some(core) = &mut leading.core {
            let actions = core.on_peer_lost(learner);
            self.run_broadcast(leader, actions);
        }
    }

    fn deliver(&mut self, session: SessionId, to_leader: bool) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        let (learner, leader) = (s.learner, s.leader);
        let queue = if to_leader {
            &mut s.to_leader
        } else {
            &mut s.to_learner
        };
        // Empty when the receiving end left the session since.
        let Some(msg) = queue.pop_front() else {
            return;
        };
        if to_leader {
            self.at_leader(leader, learner, session, msg);
        } else {
            self.at_learner(learner, session, msg);
        }
    }

    // ---------------------------------------------------------- the leader

    fn at_leader(&mut self, sid: ServerId, learner: ServerId, session: SessionId, msg: Wire) {
        if let Wire::LearnerInfo { accepted } = msg {
            self.on_learner_info(sid, learner, session, accepted);
            return;
        }
        let leading = self
            .leading(sid)
            .expect("only a leader holds an accepted session");
        assert_eq!(leading.sessions.get(&learner), Some(&session));
        match msg {
            Wire::AckEpoch(ack) => self.on_ack_epoch(sid, learner, ack),
            Wire::AckNewLeader => self.on_ack_new_leader(sid, learner),
            Wire::Broadcast(msg) => {
                let core = leading.core.as_mut().expect("ACKs follow the sync");
                match core.on_message(learner, msg.clone()) {
                    Ok(actions) => self.run_broadcast(sid, actions),
                    // An ACK may arrive after its zxid committed.
                    Err(Ignored::Duplicate(_)) => {}
                    Err(e) => panic!("leader {sid} ignored {msg:?} from {learner}: {e}"),
                }
            }
            other => panic!("leader {sid} got {other:?} from {learner}"),
        }
    }

    fn on_learner_info(
        &mut self,
        sid: ServerId,
        learner: ServerId,
        session: SessionId,
        accepted: Epoch,
    ) {
        // A learner back on a new session replaces its old one.
        let old = self
            .leading(sid)
            .and_then(|l| l.sessions.get(&learner).copied());
        if let Some(old) = old {
            self.lose_learner(sid, learner);
            self.break_session(old, &[learner]);
        }
        let Some(leading) = self.leading(sid) else {
            self.refuse(session);
            return;
        };
        leading.sessions.insert(learner, session);
        match leading.discovery.on_follower_info(learner, accepted) {
            EpochProgress::Waiting => {}
            EpochProgress::Chosen { epoch } => {
                let reported: Vec<ServerId> = leading.discovery.reported().collect();
                let disk = &mut self.node(sid).disk;
                assert!(epoch > disk.accepted, "{sid} chose {epoch} twice");
                disk.accepted = epoch;
                for to in reported {
                    let session = self.leading(sid).and_then(|l| l.sessions.get(&to).copied());
                    if let Some(session) = session {
                        self.send(session, false, Wire::LeaderInfo { epoch });
                    }
                }
            }
            EpochProgress::Known { epoch } => self.send(session, false, Wire::LeaderInfo { epoch }),
            EpochProgress::Outdated { .. } => {
                self.stats.outdated_leaders += 1;
                self.look(sid);
            }
        }
    }

    fn on_ack_epoch(&mut self, sid: ServerId, learner: ServerId, ack: AckEpoch) {
        let leading = self.leading(sid).expect("checked by the caller");
        match leading.discovery.on_ack_epoch(learner, ack) {
            Ok(AckProgress::Waiting) => {
                leading.awaiting_sync.insert(learner, ack.last_zxid);
            }
            Ok(AckProgress::Established { epoch }) => {
                leading.awaiting_sync.insert(learner, ack.last_zxid);
                self.establish(sid, epoch);
            }
            Ok(AckProgress::Sync) => self.sync(sid, learner, ack.last_zxid),
            Err(DiscoveryError::FollowerAhead { .. }) => {
                self.stats.followers_ahead += 1;
                self.look(sid);
            }
            Err(e @ DiscoveryError::WrongEpoch { .. }) => {
                panic!("leader {sid}: {e} from {learner} on a FIFO session")
            }
        }
    }

    /// A quorum acknowledged the epoch: check that nobody else established
    /// it and nothing committed is missing, then lead and sync the waiting.
    fn establish(&mut self, sid: ServerId, epoch: Epoch) {
        self.stats.established += 1;
        self.trace(format_args!("{sid} establishes epoch {epoch}"));
        if let Some(other) = self.truth.established.insert(epoch, sid) {
            panic!("epoch {epoch} established twice: by {other}, then by {sid}");
        }
        let promised = self
            .voters
            .iter()
            .filter(|v| self.nodes[v].disk.accepted >= epoch);
        assert!(
            is_quorum(&self.voters, promised),
            "{sid} established {epoch} without a quorum that accepted it"
        );
        // Newer epochs may have committed since the quorum's ACKEPOCHs were
        // sent (they arrive even from a learner that moved on); such a
        // leader can never commit (nobody syncs with it any more).
        let node = &self.nodes[&sid];
        let history: Vec<Entry> = node.history().cloned().collect();
        let committed = &self.truth.committed;
        let older = committed.partition_point(|(z, _)| z.epoch() < epoch);
        assert!(
            history.starts_with(&committed[..older]),
            "leader {sid} of epoch {epoch} lacks committed txns: has {:?}, committed {:?}",
            zxids(&history),
            zxids(committed)
        );
        let last = node.last_zxid();
        let core = Leader::new(sid, epoch, self.voters.clone(), last)
            .expect("the history predates the new epoch");
        self.node(sid).disk.current = epoch;
        // The leader serves its whole history: the namespace catches up.
        self.replace_namespace(sid, history);
        let leading = self.leading(sid).expect("establishing");
        leading.core = Some(core);
        for (learner, last) in std::mem::take(&mut leading.awaiting_sync) {
            self.sync(sid, learner, last);
        }
    }

    /// Brings a learner to the leader's last committed zxid: the plan
    /// `choose_sync` picks, the txns it needs, NEWLEADER, then the
    /// outstanding proposals, all on its session in one step.
    fn sync(&mut self, sid: ServerId, learner: ServerId, learner_last: Zxid) {
        let node = &self.nodes[&sid];
        let log_start = node.disk.log_start;
        let Some(Phase::Leading(leading)) = node.up.as_ref().map(|up| &up.phase) else {
            return;
        };
        let (Some(core), Some(epoch)) = (&leading.core, leading.discovery.new_epoch()) else {
            return;
        };
        let Some(&session) = leading.sessions.get(&learner) else {
            return;
        };
        let last = core.last_committed();
        let history: Vec<Entry> = node
            .history()
            .filter(|(z, _)| *z <= last)
            .cloned()
            .collect();
        assert_eq!(history.last().map_or(Zxid::ZERO, |(z, _)| *z), last);
        assert!(log_start <= last, "{sid} snapshotted past its commits");
        let log: Vec<Zxid> = zxids(&history)
            .into_iter()
            .filter(|&z| z > log_start)
            .collect();
        let plan = choose_sync(
            learner_last,
            &LogView {
                log_start,
                log: &log,
            },
        );
        let (from, snapshot) = match plan {
            SyncPlan::Diff { from } => {
                self.stats.diffs += 1;
                (from, None)
            }
            SyncPlan::Trunc { to } => {
                self.stats.truncs += 1;
                (to, None)
            }
            SyncPlan::Snap => {
                self.stats.snaps += 1;
                let image = history
                    .iter()
                    .filter(|(z, _)| *z <= log_start)
                    .cloned()
                    .collect();
                (log_start, Some((log_start, image)))
            }
        };
        assert_eq!(plan.diff_from().unwrap_or(log_start), from);
        self.trace(format_args!(
            "{sid} syncs {learner} at {learner_last} with {plan:?} to {last}"
        ));
        self.send(
            session,
            false,
            Wire::SyncStart {
                epoch,
                plan,
                snapshot,
            },
        );
        for entry in history.iter().filter(|(z, _)| *z > from) {
            self.send(session, false, Wire::SyncTxn(entry.clone()));
        }
        self.send(
            session,
            false,
            Wire::NewLeader {
                epoch,
                zxid: last,
                expected: history,
            },
        );
        let core = self
            .leading(sid)
            .and_then(|l| l.core.as_mut())
            .expect("checked above");
        let actions = core
            .start_forwarding(learner, last)
            .expect("the sync reaches the last committed zxid");
        self.run_broadcast(sid, actions);
    }

    fn on_ack_new_leader(&mut self, sid: ServerId, learner: ServerId) {
        if !self.voters.contains(&learner) {
            return;
        }
        let leading = self.leading(sid).expect("checked by the caller");
        let core = leading
            .core
            .as_mut()
            .expect("NEWLEADER follows establishment");
        core.on_synced(learner).expect("a forwarding voter");
        if leading.has_had_quorum || !core.has_quorum() {
            return;
        }
        // A quorum holds the leader's history durably: all of it is committed.
        leading.has_had_quorum = true;
        let last = core.last_committed();
        let epoch = leading.discovery.new_epoch().expect("established");
        self.trace(format_args!("{sid} has a synced quorum"));
        self.node(sid).up().election.on_established(epoch);
        let history: Vec<Entry> = self.nodes[&sid]
            .history()
            .filter(|(z, _)| *z <= last)
            .cloned()
            .collect();
        // The last NEWLEADER ACK may arrive after its sender moved on to a
        // newer epoch that committed more: then nothing new is committed.
        let committed = &self.truth.committed;
        if history.len() > committed.len() {
            assert!(
                history.starts_with(committed),
                "leader {sid}'s history drops commits"
            );
            self.stats.commits += (history.len() - committed.len()) as u64;
            self.truth.committed = history;
        } else {
            assert!(
                committed.starts_with(&history),
                "leader {sid}'s history forks from the commits"
            );
        }
        self.check_durable("a new leader's quorum");
    }

    // --------------------------------------------------------- the learner

    fn at_learner(&mut self, sid: ServerId, session: SessionId, msg: Wire) {
        let learning = self
            .learning(sid)
            .expect("only a learner holds its end of a session");
        assert_eq!(learning.session, Some(session));
        let step = learning.stage.step();
        match (step, msg) {
            (Step::Connecting, Wire::LeaderInfo { epoch }) => self.on_leader_info(sid, epoch),
            (
                Step::AwaitingSync(ours),
                Wire::SyncStart {
                    epoch,
                    plan,
                    snapshot,
                },
            ) => {
                assert_eq!(ours, epoch, "{sid}: a sync for another epoch");
                learning.stage = Stage::Syncing { epoch };
                self.start_sync(sid, plan, snapshot);
            }
            (Step::Syncing(_), Wire::SyncTxn(entry)) => self.append(sid, entry),
            (
                Step::Syncing(ours),
                Wire::NewLeader {
                    epoch,
                    zxid,
                    expected,
                },
            ) => {
                assert_eq!(ours, epoch, "{sid}: NEWLEADER for another epoch");
                self.on_new_leader(sid, epoch, zxid, &expected);
            }
            (Step::Broadcast, Wire::Broadcast(msg)) => {
                let Stage::Broadcast(core) = &mut learning.stage else {
                    unreachable!("the step says broadcast");
                };
                match core.on_message(msg.clone()) {
                    Ok(actions) => self.run_broadcast(sid, actions),
                    Err(e) => panic!("learner {sid} ignored {msg:?}: {e}"),
                }
            }
            (step, msg) => panic!("learner {sid} got {msg:?} in {step:?}"),
        }
    }

    fn on_leader_info(&mut self, sid: ServerId, epoch: Epoch) {
        self.trace(format_args!("{sid} gets LEADERINFO {epoch}"));
        let disk = &mut self.node(sid).disk;
        let current_epoch = match answer_leader_info(disk.accepted, epoch) {
            LeaderInfoAnswer::Accept => {
                disk.accepted = epoch;
                Some(disk.current)
            }
            LeaderInfoAnswer::AlreadyAccepted => {
                self.stats.already_accepted += 1;
                None
            }
            LeaderInfoAnswer::Stale => {
                self.look(sid);
                return;
            }
        };
        let ack = AckEpoch {
            epoch,
            current_epoch,
            last_zxid: self.nodes[&sid].last_zxid(),
        };
        let learning = self.learning(sid).expect("checked by the caller");
        learning.stage = Stage::AwaitingSync { epoch };
        let session = learning.session.expect("on a session");
        self.send(session, true, Wire::AckEpoch(ack));
    }

    /// DIFF keeps the journal; TRUNC cuts it; SNAP replaces it. Either of
    /// the last two rolls the namespace back to the journal.
    fn start_sync(&mut self, sid: ServerId, plan: SyncPlan, snapshot: Option<(Zxid, Vec<Entry>)>) {
        let node = self.node(sid);
        assert!(
            node.up().pending.is_empty(),
            "{sid} drained before it looked"
        );
        let disk = &mut node.disk;
        let last = disk.journal.last().map_or(Zxid::ZERO, |(z, _)| *z);
        match (plan, snapshot) {
            (SyncPlan::Diff { from }, None) => {
                assert_eq!(last, from, "{sid}: a DIFF from a zxid it does not end at");
                return;
            }
            // What it drops may have committed since the leader planned (a
            // proposal it ACKed on a broken session): the DIFF brings it back.
            (SyncPlan::Trunc { to }, None) => {
                assert!(to >= disk.log_start, "{sid}: TRUNC below its snapshot");
                let keep = disk.journal.partition_point(|(z, _)| *z <= to);
                let kept_last = disk.journal[..keep].last().map_or(Zxid::ZERO, |(z, _)| *z);
                assert_eq!(kept_last, to, "{sid}: TRUNC to a zxid it does not hold");
                disk.journal.truncate(keep);
            }
            (SyncPlan::Snap, Some((at, image))) => {
                disk.log_start = at;
                disk.journal = image;
            }
            (plan, snapshot) => panic!("{sid}: {plan:?} with snapshot {snapshot:?}"),
        }
        let node = &self.nodes[&sid];
        for entry in &node.disk.journal {
            self.truth.check_issued(sid, entry);
        }
        let journal = node.disk.journal.clone();
        self.replace_namespace(sid, journal);
        self.check_durable("a TRUNC or SNAP");
    }

    /// NEWLEADER: the sync is fsynced, the epoch persisted, the namespace
    /// brought to the journal; then the broadcast starts and we ACK.
    fn on_new_leader(&mut self, sid: ServerId, epoch: Epoch, zxid: Zxid, expected: &[Entry]) {
        self.trace(format_args!("{sid} synced to {zxid} in epoch {epoch}"));
        let node = self.node(sid);
        node.flush();
        assert!(
            node.disk.current <= epoch,
            "{sid}: current epoch moves back"
        );
        node.disk.current = epoch;
        assert!(
            node.disk.journal == expected,
            "{sid}: the sync left {:?}, the leader has {:?}",
            zxids(&node.disk.journal),
            zxids(expected)
        );
        let journal = node.disk.journal.clone();
        node.up().election.on_established(epoch);
        self.replace_namespace(sid, journal);
        let learning = self.learning(sid).expect("checked by the caller");
        let core = Learner::new(learning.role, learning.leader, epoch, zxid);
        learning.stage = Stage::Broadcast(core);
        let session = learning.session.expect("on a session");
        self.send(session, true, Wire::AckNewLeader);
    }

    /// Rebuilds the namespace from `entries`. Nothing committed may go,
    /// but for a tail beyond them: txns applied before they committed (by
    /// recovery, or as a sync's history) that a TRUNC planned earlier cuts;
    /// the broadcast brings those back.
    fn replace_namespace(&mut self, sid: ServerId, entries: Vec<Entry>) {
        let up = self.node(sid).up();
        let old = std::mem::replace(&mut up.applied, entries);
        let new = &self.nodes[&sid].up.as_ref().expect("running").applied;
        let end = new.last().map_or(Zxid::ZERO, |(z, _)| *z);
        let kept = old.iter().take_while(|(z, _)| *z <= end);
        for entry in kept.filter(|e| self.truth.is_committed(e)) {
            assert!(
                new.binary_search(entry).is_ok(),
                "{sid} rolls back committed {}",
                entry.0
            );
        }
    }

    // ----------------------------------------------------------- broadcast

    fn run_broadcast(&mut self, sid: ServerId, actions: Vec<broadcast::Action>) {
        for action in actions {
            match action {
                broadcast::Action::Journal { zxid, payload } => self.append(sid, (zxid, payload)),
                broadcast::Action::Send { to, msg } => self.send_broadcast(sid, to, msg),
                broadcast::Action::Apply { zxid } => self.apply(sid, zxid),
                broadcast::Action::GoLooking(reason) => {
                    match reason {
                        LookingReason::LostQuorum => self.stats.lost_quorums += 1,
                        _ => self.stats.newer_epochs_or_gaps += 1,
                    }
                    self.look(sid);
                    return;
                }
            }
        }
    }

    fn send_broadcast(&mut self, from: ServerId, to: ServerId, msg: Message) {
        let (session, to_leader) = match self.phase(from) {
            Some(Phase::Leading(l)) => (l.sessions.get(&to).copied(), false),
            Some(Phase::Learning(l)) => {
                assert_eq!(l.leader, to, "{from} sends to {to}, not its leader");
                (l.session, true)
            }
            phase => panic!("{from} sends {msg:?} in {phase:?}"),
        };
        let session = session.unwrap_or_else(|| panic!("{from} sends to {to} without a session"));
        self.send(session, to_leader, Wire::Broadcast(msg));
    }

    fn append(&mut self, sid: ServerId, entry: Entry) {
        self.truth.check_issued(sid, &entry);
        let at = self.now + self.rng.random_range(1..=self.weather.fsync_delay);
        let up = self.node(sid).up();
        up.pending.push(entry);
        if !up.is_fsync_due {
            up.is_fsync_due = true;
            self.schedule(at, Event::Fsync(sid));
        }
    }

    /// The journal makes some of what is pending durable (a partial fsync)
    /// and tells the core.
    fn fsync(&mut self, sid: ServerId) {
        let Some(up) = self.node(sid).up.as_mut() else {
            return;
        };
        up.is_fsync_due = false;
        let waiting = up.pending.len();
        if waiting == 0 {
            return;
        }
        let count = self.rng.random_range(1..=waiting);
        let again = self.now + self.rng.random_range(1..=self.weather.fsync_delay);
        let node = self.node(sid);
        let up = node.up.as_mut().expect("checked above");
        let done: Vec<Entry> = up.pending.drain(..count).collect();
        node.disk.journal.extend(done.iter().cloned());
        let up = node.up();
        if !up.pending.is_empty() {
            up.is_fsync_due = true;
            self.schedule(again, Event::Fsync(sid));
        }
        let up = self.node(sid).up();
        let actions = match &mut up.phase {
            Phase::Leading(l) => {
                let epoch = l.discovery.new_epoch().expect("proposals follow discovery");
                let core = l.core.as_mut().expect("proposals follow establishment");
                let mut actions = Vec::new();
                for &(zxid, _) in &done {
                    match core.on_message(sid, Message::Ack { epoch, zxid }) {
                        Ok(more) => actions.extend(more),
                        // Followers' ACKs committed it first.
                        Err(Ignored::Duplicate(_)) => {}
                        Err(e) => panic!("leader {sid} refused its own ACK of {zxid}: {e}"),
                    }
                }
                actions
            }
            Phase::Learning(l) => match &mut l.stage {
                Stage::Broadcast(learner) => {
                    let last = done.last().expect("count >= 1").0;
                    learner
                        .on_journaled(last)
                        .unwrap_or_else(|e| panic!("{sid} journaled {last}: {e}"))
                }
                // Sync txns: NEWLEADER waits for all of them.
                _ => Vec::new(),
            },
            Phase::Looking => Vec::new(),
        };
        self.run_broadcast(sid, actions);
    }

    fn apply(&mut self, sid: ServerId, zxid: Zxid) {
        let node = &self.nodes[&sid];
        let up = node.up.as_ref().expect("running");
        let is_leader = matches!(up.phase, Phase::Leading(_));
        // A learner applies only what it journaled; the leader may commit
        // on its followers' ACKs before its own fsync.
        let entry = if is_leader {
            node.history().find(|(z, _)| *z == zxid)
        } else {
            node.disk.journal.iter().rev().find(|(z, _)| *z == zxid)
        };
        let entry = entry
            .unwrap_or_else(|| panic!("{sid} applies {zxid}, which it has not journaled"))
            .clone();
        self.truth.check_issued(sid, &entry);
        if let Some((last, _)) = up.applied.last() {
            assert!(zxid > *last, "{sid} applies {zxid} after {last}");
        }
        if is_leader {
            let last = self.truth.committed.last().map_or(Zxid::ZERO, |(z, _)| *z);
            assert!(zxid > last, "commit of {zxid} after {last}");
            self.truth.committed.push(entry.clone());
            self.stats.commits += 1;
            self.trace(format_args!("{sid} commits {zxid}"));
            let holders = self
                .voters
                .iter()
                .filter(|v| self.nodes[v].disk.holds(&entry));
            assert!(
                is_quorum(&self.voters, holders),
                "{zxid} committed before a quorum made it durable"
            );
        } else {
            assert!(
                self.truth.is_committed(&entry),
                "{sid} applies {zxid}, which was never committed"
            );
        }
        self.node(sid).up().applied.push(entry);
    }

    // ------------------------------------------------------ clients, faults

    /// A client write reaches a leader that serves (one with a quorum).
    fn write(&mut self) {
        if self.now < QUIET_MS {
            let next = self.delay(2 * self.weather.write_every);
            self.schedule(next, Event::Write);
        }
        let serving: Vec<ServerId> = self
            .nodes
            .iter()
            .filter(|(_, n)| match n.up.as_ref().map(|up| &up.phase) {
                Some(Phase::Leading(l)) => l.core.as_ref().is_some_and(Leader::has_quorum),
                _ => false,
            })
            .map(|(&sid, _)| sid)
            .collect();
        let Some(sid) = self.pick(&serving) else {
            return;
        };
        self.written += 1;
        let payload = Bytes::copy_from_slice(&self.written.to_le_bytes());
        let core = self
            .leading(sid)
            .and_then(|l| l.core.as_mut())
            .expect("serving");
        let Ok((zxid, actions)) = core.propose(payload.clone()) else {
            return;
        };
        let earlier = self.truth.issued.insert(zxid, payload);
        assert_eq!(earlier, None, "zxid {zxid} proposed twice");
        self.run_broadcast(sid, actions);
    }

    fn fault(&mut self) {
        if self.is_healed {
            return;
        }
        let next = self.delay(2 * self.weather.fault_every);
        self.schedule(next, Event::Fault);
        match self.rng.random_range(0..100) {
            0..35 => {
                let up: Vec<ServerId> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.up.is_some())
                    .map(|(&sid, _)| sid)
                    .collect();
                if let Some(sid) = self.pick(&up) {
                    self.crash(sid);
                }
            }
            35..65 => {
                let open: Vec<SessionId> = self.sessions.keys().copied().collect();
                if let Some(session) = self.pick(&open) {
                    self.stats.broken_sessions += 1;
                    let s = &self.sessions[&session];
                    let ends = [s.learner, s.leader];
                    self.break_session(session, &ends);
                }
            }
            65..85 => self.partition(),
            _ => self.checkpoint(),
        }
    }

    /// Cuts a random group off from the rest for a while.
    fn partition(&mut self) {
        if !self.cut.is_empty() {
            return;
        }
        let sids: Vec<ServerId> = self.nodes.keys().copied().collect();
        let cut: BTreeSet<ServerId> = sids
            .into_iter()
            .filter(|_| self.rng.random_bool(0.4))
            .collect();
        if cut.is_empty() || cut.len() == self.nodes.len() {
            return;
        }
        self.stats.partitions += 1;
        self.trace(format_args!("partition {cut:?}"));
        self.cut = cut;
        let crossing: Vec<(SessionId, [ServerId; 2])> = self
            .sessions
            .iter()
            .filter(|(_, s)| !self.can_reach(s.learner, s.leader))
            .map(|(&id, s)| (id, [s.learner, s.leader]))
            .collect();
        for (session, ends) in crossing {
            self.break_session(session, &ends);
        }
        let end = self.now + self.rng.random_range(200..=3_000);
        self.schedule(end, Event::EndPartition);
    }

    /// A serving leader snapshots: its history up to a committed zxid is
    /// only in the snapshot from now on, so a learner behind it needs SNAP.
    fn checkpoint(&mut self) {
        let serving: Vec<ServerId> = self
            .nodes
            .iter()
            .filter(|(_, n)| match n.up.as_ref().map(|up| &up.phase) {
                Some(Phase::Leading(l)) => l.has_had_quorum,
                _ => false,
            })
            .map(|(&sid, _)| sid)
            .collect();
        let Some(sid) = self.pick(&serving) else {
            return;
        };
        // The journal snapshots what it has made durable, once committed.
        let disk = &self.nodes[&sid].disk;
        let candidates: Vec<Zxid> = zxids(&disk.journal)
            .into_iter()
            .filter(|&z| z > disk.log_start)
            .filter(|&z| {
                self.truth
                    .committed
                    .binary_search_by_key(&z, |(c, _)| *c)
                    .is_ok()
            })
            .collect();
        if let Some(z) = self.pick(&candidates) {
            self.node(sid).disk.log_start = z;
        }
    }

    // -------------------------------------------------------------- checks

    /// Every committed txn is durable on a quorum of voters.
    fn check_durable(&self, after: &str) {
        for entry in &self.truth.committed {
            let holders = self
                .voters
                .iter()
                .filter(|v| self.nodes[v].disk.holds(entry));
            assert!(
                is_quorum(&self.voters, holders),
                "after {after}: committed {} is durable on less than a quorum",
                entry.0
            );
        }
    }

    /// Healed and quiet: one leader serves, every node follows it, and each
    /// applied exactly what was committed.
    fn check_settled(&self) {
        let states: BTreeMap<ServerId, String> = self
            .nodes
            .iter()
            .map(|(&sid, n)| (sid, describe(n)))
            .collect();
        let serving: Vec<ServerId> = self
            .nodes
            .iter()
            .filter(|(_, n)| match n.up.as_ref().map(|up| &up.phase) {
                Some(Phase::Leading(l)) => l.core.as_ref().is_some_and(Leader::has_quorum),
                _ => false,
            })
            .map(|(&sid, _)| sid)
            .collect();
        let [leader] = serving[..] else {
            panic!("after healing, serving leaders {serving:?}: {states:?}");
        };
        for (sid, node) in &self.nodes {
            let up = node
                .up
                .as_ref()
                .unwrap_or_else(|| panic!("{sid} down: {states:?}"));
            let is_settled = match &up.phase {
                Phase::Leading(_) => *sid == leader,
                Phase::Learning(l) => l.leader == leader && matches!(l.stage, Stage::Broadcast(_)),
                Phase::Looking => false,
            };
            assert!(
                is_settled,
                "{sid} has not settled under {leader}: {states:?}"
            );
            assert!(
                up.applied == self.truth.committed,
                "{sid} applied {} txns, {} are committed; they part at {:?}: {states:?}",
                up.applied.len(),
                self.truth.committed.len(),
                parting(&up.applied, &self.truth.committed),
            );
        }
    }
}

fn zxids(entries: &[Entry]) -> Vec<Zxid> {
    entries.iter().map(|(z, _)| *z).collect()
}

/// Where two histories first differ: the zxids there, if any.
fn parting(a: &[Entry], b: &[Entry]) -> (Option<String>, Option<String>) {
    let same = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let at = |h: &[Entry]| h.get(same).map(|(z, _)| z.to_string());
    (at(a), at(b))
}

fn describe(node: &Node) -> String {
    let Some(up) = &node.up else {
        return "down".to_owned();
    };
    let phase = match &up.phase {
        Phase::Looking => "looking".to_owned(),
        Phase::Leading(l) => format!(
            "leading epoch {:?}, quorum {}",
            l.discovery.new_epoch(),
            l.core.as_ref().is_some_and(Leader::has_quorum)
        ),
        Phase::Learning(l) => format!("learning from {}, {:?}", l.leader, l.stage),
    };
    format!(
        "{phase}; round {}; accepted {} current {}; last {}",
        up.election.round(),
        node.disk.accepted,
        node.disk.current,
        node.last_zxid()
    )
}

/// What one seed's run amounts to.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    stats: Stats,
    digest: u64,
}

fn run(seed: u64) -> Run {
    let _guard = SeedGuard(seed);
    let mut sim = Sim::new(seed);
    sim.run_until(END_MS);
    sim.check_settled();
    Run {
        stats: sim.stats,
        digest: sim.digest,
    }
}

/// Runs this chunk's share of the seeds (`DFS_SEEDS=<n>` for a longer
/// soak), and checks the faults happened.
fn run_chunk(chunk: u64) {
    let count =
        std::env::var("DFS_SEEDS").map_or(SEEDS, |n| n.parse().expect("DFS_SEEDS is a u64"));
    let seeds: Vec<u64> = replay::seeds(0..count)
        .into_iter()
        .filter(|seed| seed % CHUNKS == chunk)
        .collect();
    let mut total = Stats::default();
    for &seed in &seeds {
        total.add(&run(seed).stats);
    }
    if seeds.len() <= 1 {
        return;
    }
    println!("{total:?}");
    let count = seeds.len() as u64;
    assert!(total.established >= count, "{total:?}");
    assert!(total.commits > 50 * count, "{total:?}");
    assert_eq!(
        total.newer_epochs_or_gaps, 0,
        "sessions are FIFO and bound to one epoch: {total:?}"
    );
    for (what, n) in [
        ("rival leaders", total.rival_leaders),
        ("crashes", total.crashes),
        ("partitions", total.partitions),
        ("broken sessions", total.broken_sessions),
        ("lost notifications", total.lost_notifications),
        ("refused connections", total.refused_connections),
        ("DIFFs", total.diffs),
        ("TRUNCs", total.truncs),
        ("SNAPs", total.snaps),
        ("followers ahead", total.followers_ahead),
        ("epochs accepted before", total.already_accepted),
        ("init limits", total.init_limits),
        ("lost quorums", total.lost_quorums),
        ("minority starts", total.minority_starts),
    ] {
        assert!(n > 0, "no {what}: {total:?}");
    }
}

#[test]
fn one_leader_per_epoch_and_no_commit_lost_seeds_0_mod_4() {
    run_chunk(0);
}

#[test]
fn one_leader_per_epoch_and_no_commit_lost_seeds_1_mod_4() {
    run_chunk(1);
}

#[test]
fn one_leader_per_epoch_and_no_commit_lost_seeds_2_mod_4() {
    run_chunk(2);
}

#[test]
fn one_leader_per_epoch_and_no_commit_lost_seeds_3_mod_4() {
    run_chunk(3);
}

#[test]
fn a_seed_replays_exactly() {
    assert_eq!(run(7), run(7));
}
