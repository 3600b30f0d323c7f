//! The quorum peer: the one task that runs the pure cores against the
//! network, the clock, the epoch files and the journal, and the only writer
//! of the namespace ([`Replica`]).
//!
//! ```text
//!            ┌────────── LOOKING: fast leader election (Election) ◄─────────┐
//!            │ decided                                                     │ GoLooking, lost
//!            ▼                                                             │ quorum, leader
//!   LEADING: Discovery ─► epoch ─► sync each learner ─► Leader (broadcast) │ silent, timeout
//!   FOLLOWING / OBSERVING: FOLLOWERINFO ─► ACKEPOCH ─► sync ─► Learner ────┘
//! ```
//!
//! Every input is an [`Event`] on one queue (notifications, learner and
//! leader messages, journal durability, status requests) or a client write;
//! the loop handles one at a time. A step may await the journal (a TRUNC, a
//! sync's DIFF read), and nothing else happens meanwhile: that is what keeps
//! a learner's sync and the start of its forwarding in one step, with no
//! commit in between.
//!
//! Sessions are numbered; events of an ended session are dropped.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dfs_proto::ids::{Epoch, ServerId, Zxid};
use dfs_proto::v1;
use dfs_proto::v1::leader_message::Kind as FromLeader;
use dfs_proto::v1::learner_message::Kind as FromLearner;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::RoleStatus;
use super::broadcast::{self, Leader, Learner, LearnerRole, Message};
use super::election::{self, Election, Notification, PeerState, Role, Timing};
use super::sync::{
    AckEpoch, AckProgress, Discovery, EpochProgress, LeaderInfoAnswer, LogView, SyncPlan,
    answer_leader_info, choose_sync,
};
use super::transport::{self, LeaderLink, Notifier, ToLearner};
use crate::config::QuorumSettings;
use crate::epoch;
use crate::error::Error;
use crate::namesystem::{Replica, WriteRequest};
use crate::retry_cache::Logged;
use crate::txn::Txn;

/// Bytes of snapshot image per SNAP chunk.
const SNAP_CHUNK: usize = 1024 * 1024;
/// Payload bytes per journal read while sending a DIFF.
const DIFF_PAGE: usize = 4 * 1024 * 1024;
/// How often the loop checks pings, silences and deadlines.
const TICK: Duration = Duration::from_millis(50);

/// Everything the peer task reacts to, besides client writes.
#[derive(Debug)]
pub(crate) enum Event {
    /// An election notification from a peer.
    Notification(Notification),
    /// A learner opened a session with us.
    Join { conn: u64, to_learner: ToLearner },
    /// A message on learner session `conn`.
    FromLearner { conn: u64, msg: v1::LearnerMessage },
    /// Learner session `conn` ended.
    LearnerGone { conn: u64 },
    /// A message from our leader on our session `session`.
    FromLeader {
        session: u64,
        msg: v1::LeaderMessage,
    },
    /// Our session `session` with the leader ended.
    LeaderGone { session: u64, reason: String },
    /// Our own journal made everything up to `zxid` durable.
    Durable { session: u64, zxid: Zxid },
    /// Our own journal failed: the namenode must stop.
    JournalFailed(Error),
    /// `dfs admin ha-status` asks.
    Status(oneshot::Sender<v1::PeerStatus>),
}

/// A write waiting for its commit, with the txn it made.
type Waiter = (oneshot::Sender<Result<Option<Txn>, Error>>, Txn);

/// The quorum peer task's state.
pub(crate) struct Peer {
    settings: QuorumSettings,
    data_dir: PathBuf,
    replica: Replica,
    election: Election,
    notifier: Notifier,
    role: watch::Sender<RoleStatus>,
    events_tx: mpsc::Sender<Event>,
    events: mpsc::Receiver<Event>,
    writes: mpsc::Receiver<WriteRequest>,
    fatal: CancellationToken,
    accepted: Epoch,
    current: Epoch,
    phase: Phase,
    next_session: u64,
    election_timer: Option<Instant>,
    /// Learners that joined before we knew we lead: adopted if we do.
    early_joins: Vec<EarlyJoin>,
    /// Set by a step that must end the session; acted on after the step.
    looking: Option<String>,
}

/// A learner session opened before we lead, with what it sent meanwhile.
struct EarlyJoin {
    conn: u64,
    to_learner: ToLearner,
    at: Instant,
    held: Vec<v1::LearnerMessage>,
}

enum Phase {
    Looking,
    Leading(Box<LeaderSession>),
    Learning(Box<LearnerSession>),
}

/// One learner connection of a leader.
struct Conn {
    sid: Option<ServerId>,
    to_learner: ToLearner,
    last_heard: Instant,
    /// The learner's ACKs are cumulative on the wire: everything up to here
    /// has been fed to the core one zxid at a time.
    acked_to: Zxid,
}

struct LeaderSession {
    id: u64,
    started: Instant,
    discovery: Discovery,
    /// Our history when the session began: all of it is committed by us.
    history: Zxid,
    core: Option<Leader>,
    conns: BTreeMap<u64, Conn>,
    /// Learners that acknowledged the epoch before it was established, with
    /// their last zxid: synced once it is.
    awaiting_sync: BTreeMap<u64, Zxid>,
    waiters: BTreeMap<Zxid, Vec<Waiter>>,
    /// Our own appends, for their durability.
    durability: mpsc::UnboundedSender<(Zxid, Durability)>,
    /// Our own ACKs fed to the core so far.
    own_acked: Zxid,
    last_ping: Instant,
    /// Writes held while outstanding proposals drain for a checkpoint.
    parked: VecDeque<WriteRequest>,
    draining: bool,
}

struct LearnerSession {
    id: u64,
    started: Instant,
    leader: ServerId,
    leader_address: SocketAddr,
    role: LearnerRole,
    link: LeaderLink,
    epoch: Option<Epoch>,
    snap: Option<(Zxid, Vec<u8>)>,
    /// The last sync txn handed to the journal.
    last_sync: Option<Durability>,
    core: Option<Learner>,
    /// Payloads journaled but not yet applied.
    unapplied: BTreeMap<Zxid, Bytes>,
    durability: mpsc::UnboundedSender<(Zxid, Durability)>,
    last_heard: Instant,
}

type Durability = oneshot::Receiver<Result<(), Error>>;

/// What the peer task needs to start.
pub(crate) struct PeerSetup {
    pub(crate) settings: QuorumSettings,
    pub(crate) data_dir: PathBuf,
    pub(crate) replica: Replica,
    pub(crate) role: watch::Sender<RoleStatus>,
    pub(crate) events_tx: mpsc::Sender<Event>,
    pub(crate) events: mpsc::Receiver<Event>,
    pub(crate) writes: mpsc::Receiver<WriteRequest>,
    pub(crate) fatal: CancellationToken,
}

impl Peer {
    /// A peer that will start LOOKING.
    ///
    /// # Errors
    /// A bad ensemble, or the epoch files cannot be read.
    pub(crate) fn new(setup: PeerSetup) -> Result<Peer, Error> {
        let settings = setup.settings;
        let timing = Timing {
            finalize_wait: settings.finalize_wait,
            ..Timing::default()
        };
        let election = Election::new(
            settings.me,
            settings.voters.clone(),
            settings.observers.clone(),
            timing,
        )
        .map_err(|e| {
            Error::Config(crate::config::ConfigError::Invalid {
                field: "ensemble",
                reason: e.to_string(),
            })
        })?;
        let (accepted, current) = epoch::read_epochs(&setup.data_dir)?;
        let notifier = Notifier::start(settings.me, &settings.members);
        Ok(Peer {
            settings,
            data_dir: setup.data_dir,
            replica: setup.replica,
            election,
            notifier,
            role: setup.role,
            events_tx: setup.events_tx,
            events: setup.events,
            writes: setup.writes,
            fatal: setup.fatal,
            accepted,
            current,
            phase: Phase::Looking,
            next_session: 1,
            election_timer: None,
            early_joins: Vec::new(),
            looking: None,
        })
    }

    /// Runs until `shutdown` is cancelled or the journal fails.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        self.start_looking("starting up").await;
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let timer = self.election_timer.map(tokio::time::Instant::from_std);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.fatal.cancelled() => break,
                event = self.events.recv() => match event {
                    Some(event) => self.on_event(event).await,
                    None => break,
                },
                write = self.writes.recv() => match write {
                    Some(write) => self.on_write(write),
                    None => break,
                },
                () = sleep_until(timer) => {
                    self.election_timer = None;
                    let actions = self.election.on_timeout(Instant::now());
                    self.election_actions(actions).await;
                }
                _ = ticks.tick() => self.on_tick().await,
            }
            if let Some(reason) = self.looking.take() {
                self.start_looking(&reason).await;
            }
        }
        self.end_session("shutting down");
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Notification(n) => {
                let actions = self.election.on_notification(n, Instant::now());
                self.election_actions(actions).await;
            }
            Event::Join { conn, to_learner } => match &mut self.phase {
                Phase::Leading(session) => {
                    session.conns.insert(conn, Conn::new(to_learner));
                }
                _ => self.early_joins.push(EarlyJoin {
                    conn,
                    to_learner,
                    at: Instant::now(),
                    held: Vec::new(),
                }),
            },
            Event::FromLearner { conn, msg } => {
                match self.early_joins.iter_mut().find(|j| j.conn == conn) {
                    Some(early) => early.held.push(msg),
                    None => self.on_learner_message(conn, msg).await,
                }
            }
            Event::LearnerGone { conn } => {
                self.early_joins.retain(|j| j.conn != conn);
                self.drop_learner(conn, "its session ended");
            }
            Event::FromLeader { session, msg } => {
                if matches!(&self.phase, Phase::Learning(s) if s.id == session)
                    && let Err(e) = self.on_leader_message(msg).await
                {
                    self.fail(e, "following the leader");
                }
            }
            Event::LeaderGone { session, reason } => {
                if matches!(&self.phase, Phase::Learning(s) if s.id == session) {
                    self.go_looking(reason);
                }
            }
            Event::Durable { session, zxid } => self.on_durable(session, zxid),
            Event::JournalFailed(e) => {
                tracing::error!(error = %e, "journal failed; stopping the namenode");
                self.fatal.cancel();
            }
            Event::Status(reply) => {
                let _ = reply.send(self.status());
            }
        }
    }

    /// Handles a journal failure (fatal) or any other error (elect again).
    fn fail(&mut self, e: Error, doing: &str) {
        if matches!(e, Error::JournalFailed { .. } | Error::Io(_)) {
            tracing::error!(error = %e, doing, "journal failed; stopping the namenode");
            self.fatal.cancel();
        } else {
            self.go_looking(format!("{doing}: {e}"));
        }
    }

    fn go_looking(&mut self, reason: impl Into<String>) {
        if self.looking.is_none() {
            self.looking = Some(reason.into());
        }
    }

    // ---- LOOKING -----------------------------------------------------------

    /// Ends any session, brings the namespace to what the journal holds and
    /// starts a new election round.
    async fn start_looking(&mut self, reason: &str) {
        self.end_session(reason);
        if let Err(e) = self.replica.catch_up().await {
            self.fail(e, "loading the journal");
            return;
        }
        // A failure above may have asked to look again: we are looking.
        self.looking = None;
        self.publish_role();
        let last = self.replica.journal.last_zxid();
        let actions = self.election.start(last, self.current, Instant::now());
        tracing::info!(round = %self.election.round(), %last, epoch = %self.current, reason, "looking for a leader");
        self.election_actions(actions).await;
    }

    /// Drops the session: its connections close, its waiting writers hear
    /// that this namenode no longer leads.
    fn end_session(&mut self, reason: &str) {
        match std::mem::replace(&mut self.phase, Phase::Looking) {
            Phase::Looking => {}
            Phase::Leading(session) => {
                tracing::warn!(epoch = %self.current, reason, "leaving LEADING");
                let LeaderSession {
                    waiters, parked, ..
                } = *session;
                for (reply, _) in waiters.into_values().flatten() {
                    let _ = reply.send(Err(Error::NotLeader { leader: None }));
                }
                for write in parked {
                    let _ = write.reply.send(Err(Error::NotLeader { leader: None }));
                }
            }
            Phase::Learning(session) => {
                tracing::warn!(leader = %session.leader, reason, "leaving the leader");
            }
        }
    }

    async fn election_actions(&mut self, actions: Vec<election::Action>) {
        for action in actions {
            match action {
                election::Action::Broadcast(n) => {
                    for &sid in self
                        .settings
                        .voters
                        .iter()
                        .filter(|&&s| s != self.settings.me)
                    {
                        self.notifier.send(sid, &n);
                    }
                }
                election::Action::SendTo(sid, n) => self.notifier.send(sid, &n),
                election::Action::SetTimer(at) => self.election_timer = Some(at),
                election::Action::Decided(outcome) => {
                    self.election_timer = None;
                    let summary = self.election.round_summary(Instant::now());
                    tracing::info!(
                        round = %summary.round,
                        vote = %outcome.vote,
                        outcome = ?outcome.role,
                        ballots = summary.ballots,
                        duration_ms = summary.elapsed.as_millis() as u64,
                        "election round decided"
                    );
                    match outcome.role {
                        Role::Leading => self.start_leading().await,
                        Role::Following => {
                            self.start_learning(outcome.vote.leader, LearnerRole::Follower);
                        }
                        Role::Observing => {
                            self.start_learning(outcome.vote.leader, LearnerRole::Observer);
                        }
                    }
                }
            }
        }
    }

    fn new_session_id(&mut self) -> u64 {
        self.next_session += 1;
        self.next_session
    }

    /// Reports our own appends' durability to the loop, in order: once one
    /// is durable, the highest of those queued behind it that are durable too
    /// (the same fsync) goes out as one event, never waiting for a later fsync.
    fn durability_forwarder(&self, session: u64) -> mpsc::UnboundedSender<(Zxid, Durability)> {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Zxid, Durability)>();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let gone = || Error::JournalFailed {
                reason: "the journal writer is gone".into(),
            };
            let mut queued: VecDeque<(Zxid, Durability)> = VecDeque::new();
            loop {
                let next = match queued.pop_front() {
                    Some(next) => Some(next),
                    None => rx.recv().await,
                };
                let Some((mut zxid, durable)) = next else {
                    return;
                };
                let mut outcome = durable.await.unwrap_or_else(|_| Err(gone()));
                while outcome.is_ok() {
                    while let Ok(more) = rx.try_recv() {
                        queued.push_back(more);
                    }
                    let Some((next, durable)) = queued.front_mut() else {
                        break;
                    };
                    outcome = match durable.try_recv() {
                        Err(oneshot::error::TryRecvError::Empty) => break,
                        Ok(result) => result,
                        Err(oneshot::error::TryRecvError::Closed) => Err(gone()),
                    };
                    zxid = *next;
                    queued.pop_front();
                }
                let event = match outcome {
                    Ok(()) => Event::Durable { session, zxid },
                    Err(e) => Event::JournalFailed(e),
                };
                if events.send(event).await.is_err() {
                    return;
                }
            }
        });
        tx
    }

    // ---- LEADING -----------------------------------------------------------

    async fn start_leading(&mut self) {
        let id = self.new_session_id();
        let history = self.replica.journal.last_zxid();
        let discovery = match Discovery::new(
            self.settings.me,
            self.settings.voters.clone(),
            self.accepted,
            self.current,
            history,
        ) {
            Ok(discovery) => discovery,
            Err(e) => return self.go_looking(e.to_string()),
        };
        let now = Instant::now();
        let mut conns = BTreeMap::new();
        let mut held = Vec::new();
        for early in self.early_joins.drain(..) {
            conns.insert(early.conn, Conn::new(early.to_learner));
            held.extend(early.held.into_iter().map(|msg| (early.conn, msg)));
        }
        self.phase = Phase::Leading(Box::new(LeaderSession {
            id,
            started: now,
            discovery,
            history,
            core: None,
            conns,
            awaiting_sync: BTreeMap::new(),
            waiters: BTreeMap::new(),
            durability: self.durability_forwarder(id),
            own_acked: history,
            last_ping: now,
            parked: VecDeque::new(),
            draining: false,
        }));
        tracing::info!(%history, "leading: discovery begins");
        self.publish_role();
        // Our own FOLLOWERINFO: alone, we are the quorum.
        let me = self.settings.me;
        let progress = match &mut self.phase {
            Phase::Leading(s) => s.discovery.on_follower_info(me, self.accepted),
            _ => return,
        };
        self.epoch_progress(progress, None).await;
        for (conn, msg) in held {
            self.on_learner_message(conn, msg).await;
        }
    }

    fn leader_session(&mut self) -> Option<&mut LeaderSession> {
        match &mut self.phase {
            Phase::Leading(session) => Some(session),
            _ => None,
        }
    }

    async fn epoch_progress(&mut self, progress: EpochProgress, conn: Option<u64>) {
        match progress {
            EpochProgress::Waiting => {}
            EpochProgress::Chosen { epoch } => {
                if let Err(e) = epoch::persist_accepted(&self.data_dir, epoch) {
                    return self.fail(e, "persisting the accepted epoch");
                }
                self.accepted = epoch;
                tracing::info!(%epoch, "new epoch chosen");
                let (me, current) = (self.settings.me, self.current);
                let Some(session) = self.leader_session() else {
                    return;
                };
                let reported: BTreeSet<ServerId> = session.discovery.reported().collect();
                let targets: Vec<u64> = session
                    .conns
                    .iter()
                    .filter(|(_, c)| c.sid.is_some_and(|s| reported.contains(&s)))
                    .map(|(&id, _)| id)
                    .collect();
                for conn in targets {
                    send_to(session, conn, leader_info(epoch));
                }
                // Our own ACKEPOCH: alone, we are the quorum.
                let ack = AckEpoch {
                    epoch,
                    current_epoch: Some(current),
                    last_zxid: session.history,
                };
                let progress = session.discovery.on_ack_epoch(me, ack);
                self.ack_progress(progress, None).await;
            }
            EpochProgress::Outdated { epoch, accepted } => {
                self.go_looking(format!(
                    "a learner accepted epoch {accepted}, above ours ({epoch}): elect again for a newer one"
                ));
            }
            EpochProgress::Known { epoch } => {
                if let (Some(conn), Some(session)) = (conn, self.leader_session()) {
                    send_to(session, conn, leader_info(epoch));
                }
            }
        }
    }

    async fn ack_progress(
        &mut self,
        progress: Result<AckProgress, super::sync::DiscoveryError>,
        conn: Option<u64>,
    ) {
        match progress {
            Err(super::sync::DiscoveryError::WrongEpoch { .. }) | Ok(AckProgress::Waiting) => {}
            Err(e) => self.go_looking(e.to_string()),
            Ok(AckProgress::Established { epoch }) => {
                if let Err(e) = epoch::persist_current(&self.data_dir, epoch) {
                    return self.fail(e, "persisting the current epoch");
                }
                self.current = epoch;
                let me = self.settings.me;
                let voters = self.settings.voters.clone();
                let Some(session) = self.leader_session() else {
                    return;
                };
                match Leader::new(me, epoch, voters, session.history) {
                    Ok(core) => session.core = Some(core),
                    Err(e) => return self.go_looking(e.to_string()),
                }
                let waiting = std::mem::take(&mut session.awaiting_sync);
                self.replica.request_full_reports();
                tracing::info!(%epoch, "epoch established; syncing learners");
                for (conn, last) in waiting {
                    self.sync_learner(conn, last).await;
                }
                self.note_if_established();
                self.publish_role();
            }
            Ok(AckProgress::Sync) => {
                let Some(conn) = conn else { return };
                let last = self
                    .leader_session()
                    .and_then(|s| s.awaiting_sync.remove(&conn));
                if let Some(last) = last {
                    self.sync_learner(conn, last).await;
                }
            }
        }
    }

    async fn on_learner_message(&mut self, conn: u64, msg: v1::LearnerMessage) {
        let current = self.current;
        // Checked before the session is borrowed; only a learner's first message needs it.
        let is_member = match &msg.kind {
            Some(FromLearner::Info(info)) => self.may_learn(ServerId(info.sid), info.observer),
            _ => false,
        };
        let Some(session) = self.leader_session() else {
            return;
        };
        let Some(c) = session.conns.get_mut(&conn) else {
            return;
        };
        c.last_heard = Instant::now();
        let Some(kind) = msg.kind else { return };
        match (c.sid, kind) {
            (None, FromLearner::Info(info)) => {
                let sid = ServerId(info.sid);
                let Some(learner_accepted) = transport::epoch_from_wire(info.accepted_epoch) else {
                    return self.drop_learner(conn, "bad accepted epoch");
                };
                if !is_member {
                    tracing::warn!(%sid, observer = info.observer, "refusing a learner that is not in the ensemble as such");
                    return self.drop_learner(conn, "not a member");
                }
                // A reconnecting learner replaces its old session.
                let old: Vec<u64> = session
                    .conns
                    .iter()
                    .filter(|(id, c)| **id != conn && c.sid == Some(sid))
                    .map(|(id, _)| *id)
                    .collect();
                for old in old {
                    self.drop_learner(old, "replaced by a new session");
                }
                let Some(session) = self.leader_session() else {
                    return;
                };
                if let Some(c) = session.conns.get_mut(&conn) {
                    c.sid = Some(sid);
                }
                tracing::info!(%sid, accepted = %learner_accepted, "learner joined");
                let progress = session.discovery.on_follower_info(sid, learner_accepted);
                self.epoch_progress(progress, Some(conn)).await;
            }
            (Some(sid), FromLearner::AckEpoch(ack)) => {
                let (Some(epoch), current) = (
                    transport::epoch_from_wire(ack.epoch),
                    ack.current_epoch.and_then(transport::epoch_from_wire),
                ) else {
                    return;
                };
                let ack = AckEpoch {
                    epoch,
                    current_epoch: current,
                    last_zxid: Zxid(ack.last_zxid),
                };
                session.awaiting_sync.insert(conn, ack.last_zxid);
                let progress = session.discovery.on_ack_epoch(sid, ack);
                self.ack_progress(progress, Some(conn)).await;
            }
            (Some(sid), FromLearner::AckNewLeader(ack)) => {
                let Some(core) = session.core.as_mut() else {
                    return;
                };
                if transport::epoch_from_wire(ack.epoch) != Some(current) {
                    return;
                }
                match core.on_synced(sid) {
                    Ok(()) => {
                        tracing::info!(%sid, quorum = core.has_quorum(), "learner synced");
                        self.note_if_established();
                        self.publish_role();
                    }
                    Err(e) => tracing::debug!(%sid, error = %e, "NEWLEADER ack ignored"),
                }
            }
            (Some(sid), FromLearner::Ack(ack)) => {
                let Some(epoch) = transport::epoch_from_wire(ack.epoch) else {
                    return;
                };
                let upto = Zxid(ack.zxid);
                let from = std::mem::replace(&mut c.acked_to, upto).max(
                    session
                        .core
                        .as_ref()
                        .map_or(Zxid::ZERO, Leader::last_committed),
                );
                let acked: Vec<Zxid> = if epoch == current {
                    zxids_between(from, upto, epoch).collect()
                } else {
                    // Another epoch's ACK: the core fences it.
                    vec![upto]
                };
                for zxid in acked {
                    self.leader_on_message(sid, Message::Ack { epoch, zxid });
                }
            }
            (Some(_), FromLearner::Ping(_)) => {}
            (sid, _) => {
                tracing::debug!(?sid, "unexpected learner message; dropping the session");
                self.drop_learner(conn, "protocol violation");
            }
        }
    }

    /// Once a quorum is synced with us, our election vote names the
    /// established epoch, so that a returning server can join us.
    fn note_if_established(&mut self) {
        let established = self
            .leader_session()
            .and_then(|s| s.core.as_ref())
            .is_some_and(Leader::has_quorum);
        if established {
            self.election.on_established(self.current);
        }
    }

    /// Whether `sid` is another member of the ensemble in the role it claims.
    fn may_learn(&self, sid: ServerId, observer: bool) -> bool {
        let role = if observer {
            &self.settings.observers
        } else {
            &self.settings.voters
        };
        sid != self.settings.me && role.contains(&sid)
    }

    fn leader_on_message(&mut self, from: ServerId, msg: Message) {
        let Some(core) = self.leader_session().and_then(|s| s.core.as_mut()) else {
            return;
        };
        match core.on_message(from, msg) {
            Ok(actions) => self.broadcast_actions(actions),
            Err(e) => tracing::trace!(%from, error = %e, "quorum message ignored"),
        }
    }

    /// Brings one learner to our last committed zxid: DIFF, TRUNC or SNAP,
    /// then NEWLEADER, then the proposals still outstanding. One step: no
    /// commit happens between the plan and the start of forwarding.
    async fn sync_learner(&mut self, conn: u64, learner_last: Zxid) {
        if let Err(e) = self.replica.journal.barrier().await {
            return self.fail(e, "syncing a learner");
        }
        let epoch = self.current;
        let journal = self.replica.journal.clone();
        let Some(session) = self.leader_session() else {
            return;
        };
        let (Some(core), Some(sid)) = (
            session.core.as_ref(),
            session.conns.get(&conn).and_then(|c| c.sid),
        ) else {
            return;
        };
        let committed = core.last_committed();
        let (log_start, mut log) = journal.log_view();
        log.retain(|&z| z <= committed);
        let plan = choose_sync(
            learner_last,
            &LogView {
                log_start,
                log: &log,
            },
        );
        tracing::info!(%sid, %learner_last, ?plan, %committed, "syncing learner");
        let sent = match plan.diff_from() {
            Some(from) => {
                let mode = match plan {
                    SyncPlan::Trunc { .. } => v1::SyncMode::Trunc,
                    _ => v1::SyncMode::Diff,
                };
                match send_wait(session, conn, sync_start(epoch, mode, from)).await {
                    Ok(()) => send_diff(session, conn, &journal, epoch, from, committed).await,
                    Err(e) => Err(e),
                }
            }
            None => send_snap(session, conn, &journal, epoch, committed).await,
        };
        let sent = match sent {
            Ok(()) => {
                let new_leader = FromLeader::NewLeader(v1::NewLeader {
                    epoch: transport::epoch_to_wire(epoch),
                    zxid: committed.0,
                });
                send_wait(session, conn, new_leader).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            return self.drop_learner(conn, &e);
        }
        if let Some(c) = session.conns.get_mut(&conn) {
            c.acked_to = committed;
        }
        let Some(core) = session.core.as_mut() else {
            return;
        };
        match core.start_forwarding(sid, committed) {
            Ok(actions) => self.broadcast_actions(actions),
            Err(e) => self.drop_learner(conn, &e.to_string()),
        }
    }

    /// Closes learner session `conn` and tells the core the learner is gone.
    fn drop_learner(&mut self, conn: u64, why: &str) {
        let Some(session) = self.leader_session() else {
            return;
        };
        let Some(gone) = session.conns.remove(&conn) else {
            return;
        };
        session.awaiting_sync.remove(&conn);
        let Some(sid) = gone.sid else { return };
        tracing::info!(%sid, why, "learner dropped");
        if let Some(core) = session.core.as_mut() {
            let actions = core.on_peer_lost(sid);
            self.broadcast_actions(actions);
        }
        self.publish_role();
    }

    fn on_write(&mut self, write: WriteRequest) {
        let leader_hint = self.leader_address();
        let Phase::Leading(session) = &mut self.phase else {
            let _ = write.reply.send(Err(Error::NotLeader {
                leader: leader_hint,
            }));
            return;
        };
        let lease = self.role.borrow().lease_until;
        if lease.is_some_and(|until| Instant::now() >= until) {
            // Past our lease (we were frozen, or cut off): the quorum may
            // have a new leader already.
            let _ = write.reply.send(Err(Error::NotLeader { leader: None }));
            return;
        }
        let Some(core) = session.core.as_mut().filter(|c| c.has_quorum()) else {
            let _ = write.reply.send(Err(Error::NotLeader { leader: None }));
            return;
        };
        if session.draining {
            session.parked.push_back(write);
            return;
        }
        let retried = match write.call.as_ref().map(|c| self.replica.retried(c)) {
            Some(Err(reused)) => {
                let _ = write.reply.send(Err(reused));
                return;
            }
            Some(Ok(made)) => made,
            None => None,
        };
        if let Some((zxid, txn)) = retried {
            if *zxid <= core.last_committed() {
                let _ = write.reply.send(Ok(Some(txn.clone())));
            } else {
                let waiter = (write.reply, txn.clone());
                session.waiters.entry(*zxid).or_default().push(waiter);
            }
            return;
        }
        let txn = match self.replica.check(&write.op, &write.caller) {
            Ok(Some(txn)) => txn,
            other => {
                let _ = write.reply.send(other);
                return;
            }
        };
        let logged = Logged {
            call: write.call,
            txn,
        };
        let (zxid, actions) = match core.propose(Bytes::from(logged.encode())) {
            Ok(proposed) => proposed,
            Err(e) => {
                let _ = write.reply.send(Err(Error::NotLeader { leader: None }));
                return self.go_looking(e.to_string());
            }
        };
        if let Err(e) = self.replica.apply(zxid, &logged) {
            // Checked a moment ago against the same namespace: a bug.
            tracing::error!(%zxid, error = %e, "a checked txn did not apply; stopping");
            let _ = write.reply.send(Err(e));
            self.fatal.cancel();
            return;
        }
        session
            .waiters
            .entry(zxid)
            .or_default()
            .push((write.reply, logged.txn));
        self.broadcast_actions(actions);
        self.maybe_checkpoint_soon();
    }

    /// Starts holding writes once a checkpoint is due; it runs once every
    /// outstanding proposal is committed (so the image holds committed txns only).
    fn maybe_checkpoint_soon(&mut self) {
        let due = self.replica.checkpoint_due();
        if let Some(session) = self.leader_session() {
            session.draining |= due;
        }
    }

    fn on_durable(&mut self, session_id: u64, zxid: Zxid) {
        match &mut self.phase {
            Phase::Leading(session) if session.id == session_id => {
                let epoch = self.current;
                let me = self.settings.me;
                let Some(core) = session.core.as_mut() else {
                    return;
                };
                let mut actions = Vec::new();
                for next in zxids_between(session.own_acked, zxid, epoch) {
                    if let Ok(more) = core.on_message(me, Message::Ack { epoch, zxid: next }) {
                        actions.extend(more);
                    }
                }
                session.own_acked = zxid;
                self.broadcast_actions(actions);
            }
            Phase::Learning(session) if session.id == session_id => {
                let Some(core) = session.core.as_mut() else {
                    return;
                };
                match core.on_journaled(zxid) {
                    Ok(actions) => self.broadcast_actions(actions),
                    Err(e) => tracing::trace!(%zxid, error = %e, "durability ignored"),
                }
            }
            _ => {}
        }
    }

    /// Carries out what a broadcast core asked for, in order.
    fn broadcast_actions(&mut self, actions: Vec<broadcast::Action>) {
        for action in coalesce(actions) {
            match action {
                broadcast::Action::Journal { zxid, payload } => {
                    let durable = self.replica.journal.append(zxid, payload.to_vec());
                    match &mut self.phase {
                        Phase::Leading(s) => {
                            let _ = s.durability.send((zxid, durable));
                        }
                        Phase::Learning(s) => {
                            s.unapplied.insert(zxid, payload);
                            let _ = s.durability.send((zxid, durable));
                        }
                        Phase::Looking => {}
                    }
                }
                broadcast::Action::Send { to, msg } => self.send_quorum_message(to, msg),
                broadcast::Action::Apply { zxid } => self.apply_committed(zxid),
                broadcast::Action::GoLooking(reason) => self.go_looking(format!("{reason:?}")),
            }
        }
    }

    fn send_quorum_message(&mut self, to: ServerId, msg: Message) {
        match &mut self.phase {
            Phase::Leading(session) => {
                let kind = match msg {
                    Message::Proposal {
                        epoch,
                        zxid,
                        payload,
                    } => FromLeader::Proposal(txn_message(epoch, zxid, payload)),
                    Message::Inform {
                        epoch,
                        zxid,
                        payload,
                    } => FromLeader::Inform(txn_message(epoch, zxid, payload)),
                    Message::Commit { epoch, zxid } => FromLeader::Commit(v1::Commit {
                        epoch: transport::epoch_to_wire(epoch),
                        zxid: zxid.0,
                    }),
                    Message::Ack { .. } => return,
                };
                let conn = session
                    .conns
                    .iter()
                    .find(|(_, c)| c.sid == Some(to))
                    .map(|(id, _)| *id);
                if let Some(conn) = conn
                    && !send_to(session, conn, kind)
                {
                    self.drop_learner(conn, "its queue is full or closed");
                }
            }
            Phase::Learning(session) => {
                if let Message::Ack { epoch, zxid } = msg {
                    let ack = FromLearner::Ack(v1::Ack {
                        epoch: transport::epoch_to_wire(epoch),
                        zxid: zxid.0,
                    });
                    if session
                        .link
                        .to_leader
                        .try_send(learner_message(ack))
                        .is_err()
                    {
                        self.go_looking("the session with the leader is stuck");
                    }
                }
            }
            Phase::Looking => {}
        }
    }

    /// `zxid` is committed: answer its writers (leader) or apply it (learner).
    fn apply_committed(&mut self, zxid: Zxid) {
        match &mut self.phase {
            Phase::Leading(session) => {
                for (reply, txn) in session.waiters.remove(&zxid).unwrap_or_default() {
                    let _ = reply.send(Ok(Some(txn)));
                }
                let drained = session
                    .core
                    .as_ref()
                    .is_some_and(|c| c.last_committed() == c.last_proposed());
                if session.draining && drained {
                    self.checkpoint_and_resume();
                }
            }
            Phase::Learning(session) => {
                let Some(payload) = session.unapplied.remove(&zxid) else {
                    return;
                };
                let applied = Logged::decode(zxid, &payload)
                    .and_then(|logged| self.replica.apply(zxid, &logged));
                if let Err(e) = applied {
                    tracing::error!(%zxid, error = %e, "a committed txn did not apply; stopping");
                    self.fatal.cancel();
                    return;
                }
                if self.replica.checkpoint_due() {
                    self.spawn_checkpoint();
                }
            }
            Phase::Looking => {}
        }
    }

    /// Checkpoints now (everything proposed is committed), then takes the
    /// writes held meanwhile.
    fn checkpoint_and_resume(&mut self) {
        self.spawn_checkpoint();
        let parked = match self.leader_session() {
            Some(session) => {
                session.draining = false;
                std::mem::take(&mut session.parked)
            }
            None => return,
        };
        for write in parked {
            self.on_write(write);
        }
    }

    /// Writes a checkpoint of the namespace as applied now, in the background.
    fn spawn_checkpoint(&mut self) {
        tokio::spawn(self.replica.checkpoint());
    }

    // ---- FOLLOWING / OBSERVING ---------------------------------------------

    fn start_learning(&mut self, leader: ServerId, role: LearnerRole) {
        let Some(&leader_address) = self.settings.members.get(&leader) else {
            return self.go_looking(format!("elected leader {leader} is not a member"));
        };
        self.early_joins.clear();
        let id = self.new_session_id();
        let info = FromLearner::Info(v1::LearnerInfo {
            sid: self.settings.me.0,
            accepted_epoch: transport::epoch_to_wire(self.accepted),
            observer: role == LearnerRole::Observer,
        });
        let link = transport::follow(
            leader_address,
            id,
            learner_message(info),
            self.events_tx.clone(),
        );
        let now = Instant::now();
        self.phase = Phase::Learning(Box::new(LearnerSession {
            id,
            started: now,
            leader,
            leader_address,
            role,
            link,
            epoch: None,
            snap: None,
            last_sync: None,
            core: None,
            unapplied: BTreeMap::new(),
            durability: self.durability_forwarder(id),
            last_heard: now,
        }));
        tracing::info!(%leader, %leader_address, ?role, "following: connecting to the leader");
        self.publish_role();
    }

    async fn on_leader_message(&mut self, msg: v1::LeaderMessage) -> Result<(), Error> {
        let accepted = self.accepted;
        let current = self.current;
        let Phase::Learning(session) = &mut self.phase else {
            return Ok(());
        };
        session.last_heard = Instant::now();
        let Some(kind) = msg.kind else {
            return Ok(());
        };
        let wrong = |what: &str| Error::InvalidArgument {
            field: "leader message",
            reason: what.to_owned(),
        };
        let epoch_of = |e: u64| transport::epoch_from_wire(e).ok_or_else(|| wrong("bad epoch"));
        match kind {
            FromLeader::LeaderInfo(info) => {
                let epoch = epoch_of(info.epoch)?;
                let current_epoch = match answer_leader_info(accepted, epoch) {
                    LeaderInfoAnswer::Accept => {
                        epoch::persist_accepted(&self.data_dir, epoch)?;
                        self.accepted = epoch;
                        Some(current)
                    }
                    LeaderInfoAnswer::AlreadyAccepted => None,
                    LeaderInfoAnswer::Stale => {
                        self.go_looking(format!(
                            "the leader offers epoch {epoch}, we accepted {accepted}"
                        ));
                        return Ok(());
                    }
                };
                let Phase::Learning(session) = &mut self.phase else {
                    return Ok(());
                };
                session.epoch = Some(epoch);
                let ack = FromLearner::AckEpoch(v1::AckEpoch {
                    epoch: transport::epoch_to_wire(epoch),
                    current_epoch: current_epoch.map(transport::epoch_to_wire),
                    last_zxid: self.replica.journal.last_zxid().0,
                });
                self.send_to_leader(ack);
            }
            FromLeader::SyncStart(start) => {
                if Some(epoch_of(start.epoch)?) != session.epoch {
                    return Err(wrong("sync for another epoch"));
                }
                let zxid = Zxid(start.zxid);
                match v1::SyncMode::try_from(start.mode) {
                    Ok(v1::SyncMode::Diff) => {}
                    Ok(v1::SyncMode::Trunc) => {
                        tracing::info!(to = %zxid, "TRUNC from the leader");
                        self.replica.journal.truncate_after(zxid).await?;
                        self.replica.catch_up().await?;
                    }
                    Ok(v1::SyncMode::Snap) => {
                        tracing::info!(at = %zxid, "SNAP from the leader");
                        session.snap = Some((zxid, Vec::new()));
                    }
                    _ => return Err(wrong("unknown sync mode")),
                }
            }
            FromLeader::SnapChunk(chunk) => {
                let Some((_, image)) = session.snap.as_mut() else {
                    return Err(wrong("snapshot chunk outside a SNAP"));
                };
                image.extend_from_slice(&chunk.data);
                if chunk.last
                    && let Some((zxid, image)) = session.snap.take()
                {
                    self.replica.install(zxid, image).await?;
                }
            }
            FromLeader::SyncTxn(txn) => {
                let zxid = Zxid(txn.zxid);
                let logged = Logged::decode(zxid, &txn.payload)?;
                session.last_sync = Some(self.replica.journal.append(zxid, txn.payload.to_vec()));
                self.replica.apply(zxid, &logged)?;
            }
            FromLeader::NewLeader(new_leader) => {
                let epoch = epoch_of(new_leader.epoch)?;
                if Some(epoch) != session.epoch {
                    return Err(wrong("NEWLEADER for another epoch"));
                }
                let synced_to = Zxid(new_leader.zxid);
                if let Some(durable) = session.last_sync.take() {
                    durable.await.map_err(|_| Error::JournalFailed {
                        reason: "the journal writer is gone".into(),
                    })??;
                }
                self.replica.journal.barrier().await?;
                let last = self.replica.journal.last_zxid();
                if last != synced_to || self.replica.applied() != synced_to {
                    return Err(wrong(&format!(
                        "sync ended at {last} (applied {}), the leader said {synced_to}",
                        self.replica.applied()
                    )));
                }
                epoch::persist_current(&self.data_dir, epoch)?;
                self.current = epoch;
                let Phase::Learning(session) = &mut self.phase else {
                    return Ok(());
                };
                session.core = Some(Learner::new(session.role, session.leader, epoch, synced_to));
                self.election.on_established(epoch);
                self.replica.request_full_reports();
                tracing::info!(leader = %session.leader, %epoch, %synced_to, "synced with the leader");
                let ack = FromLearner::AckNewLeader(v1::AckNewLeader {
                    epoch: transport::epoch_to_wire(epoch),
                });
                self.send_to_leader(ack);
                self.publish_role();
            }
            FromLeader::Proposal(txn) | FromLeader::Inform(txn) if session.core.is_some() => {
                let is_inform = session.role == LearnerRole::Observer;
                let epoch = epoch_of(txn.epoch)?;
                let (zxid, payload) = (Zxid(txn.zxid), txn.payload);
                let msg = if is_inform {
                    Message::Inform {
                        epoch,
                        zxid,
                        payload,
                    }
                } else {
                    Message::Proposal {
                        epoch,
                        zxid,
                        payload,
                    }
                };
                self.learner_on_message(msg);
            }
            FromLeader::Commit(commit) if session.core.is_some() => {
                let msg = Message::Commit {
                    epoch: epoch_of(commit.epoch)?,
                    zxid: Zxid(commit.zxid),
                };
                self.learner_on_message(msg);
            }
            FromLeader::Ping(_) => {
                self.send_to_leader(FromLearner::Ping(v1::Ping {
                    epoch: transport::epoch_to_wire(current),
                }));
            }
            _ => return Err(wrong("broadcast message before NEWLEADER")),
        }
        Ok(())
    }

    fn learner_on_message(&mut self, msg: Message) {
        let Phase::Learning(session) = &mut self.phase else {
            return;
        };
        let Some(core) = session.core.as_mut() else {
            return;
        };
        match core.on_message(msg) {
            Ok(actions) => self.broadcast_actions(actions),
            Err(e) => tracing::trace!(error = %e, "leader message ignored"),
        }
    }

    fn send_to_leader(&mut self, kind: FromLearner) {
        if let Phase::Learning(session) = &self.phase
            && session
                .link
                .to_leader
                .try_send(learner_message(kind))
                .is_err()
        {
            self.go_looking("the session with the leader is stuck");
        }
    }

    // ---- timers and status -------------------------------------------------

    async fn on_tick(&mut self) {
        let now = Instant::now();
        let QuorumSettings {
            init_timeout,
            sync_timeout,
            ping_interval,
            ..
        } = self.settings;
        self.early_joins
            .retain(|j| now.duration_since(j.at) < init_timeout);
        match &mut self.phase {
            Phase::Looking => {}
            Phase::Leading(session) => {
                let established = session.core.as_ref().is_some_and(Leader::has_quorum);
                if !established && now.duration_since(session.started) > init_timeout {
                    return self.go_looking("no quorum joined in time");
                }
                let silent: Vec<u64> = session
                    .conns
                    .iter()
                    .filter(|(_, c)| now.duration_since(c.last_heard) > sync_timeout)
                    .map(|(id, _)| *id)
                    .collect();
                if now.duration_since(session.last_ping) >= ping_interval {
                    session.last_ping = now;
                    let ping = FromLeader::Ping(v1::Ping {
                        epoch: transport::epoch_to_wire(self.current),
                    });
                    let conns: Vec<u64> = session.conns.keys().copied().collect();
                    for conn in conns {
                        send_to(session, conn, ping.clone());
                    }
                }
                for conn in silent {
                    self.drop_learner(conn, "silent past the sync timeout");
                }
                // Renews the lease the services check.
                self.publish_role();
            }
            Phase::Learning(session) => {
                if now.duration_since(session.last_heard) > sync_timeout {
                    return self.go_looking("the leader is silent past the sync timeout");
                }
                if session.core.is_none() && now.duration_since(session.started) > init_timeout {
                    self.go_looking("the sync with the leader did not finish in time");
                }
            }
        }
    }

    fn leader_address(&self) -> Option<SocketAddr> {
        match &self.phase {
            Phase::Learning(session) if session.core.is_some() => Some(session.leader_address),
            _ => None,
        }
    }

    /// Until when this leader may serve: half a sync timeout after its
    /// quorum was last heard from. A follower gives up on us a whole sync
    /// timeout after it last heard from us (and then still has to elect),
    /// so while the lease holds no other leader can be serving. An ensemble
    /// with one voter needs no lease. Past its lease a frozen leader that
    /// wakes refuses clients until it is re-confirmed or has stepped down.
    fn lease_until(&self, session: &LeaderSession) -> Option<Instant> {
        if self.settings.voters.len() <= 1 {
            return None;
        }
        let now = Instant::now();
        let heard: BTreeMap<ServerId, Instant> = session
            .conns
            .values()
            .filter_map(|c| c.sid.map(|sid| (sid, c.last_heard)))
            .collect();
        let since = session
            .core
            .as_ref()
            .and_then(|core| core.quorum_heard_at(now, |sid| heard.get(&sid).copied()));
        // No synced quorum: a lease that has already run out.
        Some(since.map_or(now, |since| since + self.settings.sync_timeout / 2))
    }

    /// Tells the services whether we serve, and whom clients should ask.
    fn publish_role(&self) {
        let mut lease_until = None;
        let (state, serving, leader) = match &self.phase {
            Phase::Looking => (PeerState::Looking, false, None),
            Phase::Leading(session) => {
                let serving = session.core.as_ref().is_some_and(Leader::has_quorum);
                lease_until = self.lease_until(session);
                // Without a quorum we are no one's leader to point to.
                let me = self.settings.members.get(&self.settings.me).copied();
                (PeerState::Leading, serving, me.filter(|_| serving))
            }
            Phase::Learning(session) => (
                match session.role {
                    LearnerRole::Follower => PeerState::Following,
                    LearnerRole::Observer => PeerState::Observing,
                },
                false,
                session.core.is_some().then_some(session.leader_address),
            ),
        };
        self.role.send_replace(RoleStatus {
            state,
            serving,
            lease_until,
            epoch: self.current,
            leader,
        });
    }

    fn status(&self) -> v1::PeerStatus {
        let role = self.role.borrow().clone();
        let leader_sid = match &self.phase {
            Phase::Looking => 0,
            Phase::Leading(_) => self.settings.me.0,
            Phase::Learning(session) => session.leader.0,
        };
        v1::PeerStatus {
            sid: self.settings.me.0,
            address: self
                .settings
                .members
                .get(&self.settings.me)
                .map(ToString::to_string)
                .unwrap_or_default(),
            state: transport::state_to_wire(role.state).into(),
            current_epoch: transport::epoch_to_wire(self.current),
            accepted_epoch: transport::epoch_to_wire(self.accepted),
            last_zxid: self.replica.journal.last_zxid().0,
            applied_zxid: self.replica.applied().0,
            leader_sid,
            leader_address: role.leader.map(|a| a.to_string()).unwrap_or_default(),
            observer: self.settings.observers.contains(&self.settings.me),
            round: self.election.round().0,
            namespace_digest: self.replica.digest(),
            // Filled in by the transport, which knows the HTTP server.
            http_address: String::new(),
        }
    }
}

impl Conn {
    fn new(to_learner: ToLearner) -> Self {
        Conn {
            sid: None,
            to_learner,
            last_heard: Instant::now(),
            acked_to: Zxid::ZERO,
        }
    }
}

/// The zxids of `epoch` after `from` up to `to`: one epoch's counters are
/// consecutive, and the first is 1.
fn zxids_between(from: Zxid, to: Zxid, epoch: Epoch) -> impl Iterator<Item = Zxid> {
    let first = if from.epoch() < epoch {
        1
    } else {
        from.counter().saturating_add(1)
    };
    let last = if to.epoch() == epoch { to.counter() } else { 0 };
    (first..=last).map(move |counter| Zxid::new(epoch, counter))
}

/// Drops each COMMIT and ACK that a later one to the same server makes
/// redundant: a learner takes a COMMIT as "everything up to here", and our
/// leader side reads an ACK the same way ([`zxids_between`]). Under load this
/// turns one message per txn into one per batch.
fn coalesce(actions: Vec<broadcast::Action>) -> Vec<broadcast::Action> {
    let cumulative = |action: &broadcast::Action| match action {
        broadcast::Action::Send {
            to,
            msg: Message::Commit { .. },
        } => Some((*to, true)),
        broadcast::Action::Send {
            to,
            msg: Message::Ack { .. },
        } => Some((*to, false)),
        _ => None,
    };
    let mut last = BTreeMap::new();
    for (i, action) in actions.iter().enumerate() {
        if let Some(key) = cumulative(action) {
            last.insert(key, i);
        }
    }
    actions
        .into_iter()
        .enumerate()
        .filter(|(i, action)| cumulative(action).is_none_or(|key| last.get(&key) == Some(i)))
        .map(|(_, action)| action)
        .collect()
}

/// Queues a message on learner session `conn`; false when it is full or closed.
fn send_to(session: &LeaderSession, conn: u64, kind: FromLeader) -> bool {
    session.conns.get(&conn).is_some_and(|c| {
        c.to_learner
            .try_send(Ok(v1::LeaderMessage { kind: Some(kind) }))
            .is_ok()
    })
}

/// Queues a message on learner session `conn`, waiting for room (a sync).
async fn send_wait(session: &LeaderSession, conn: u64, kind: FromLeader) -> Result<(), String> {
    let Some(c) = session.conns.get(&conn) else {
        return Err("the learner is gone".into());
    };
    c.to_learner
        .send(Ok(v1::LeaderMessage { kind: Some(kind) }))
        .await
        .map_err(|_| "the learner's session closed during its sync".to_owned())
}

/// Sends the committed txns after `from` up to `committed`, page by page.
async fn send_diff(
    session: &LeaderSession,
    conn: u64,
    journal: &crate::journal::Journal,
    epoch: Epoch,
    mut from: Zxid,
    committed: Zxid,
) -> Result<(), String> {
    while from < committed {
        let page = journal
            .read_after(from, DIFF_PAGE)
            .await
            .map_err(|e| format!("reading the log for a DIFF: {e}"))?;
        if page.is_empty() {
            return Err(format!("the log ends before {committed}"));
        }
        for (zxid, payload) in page {
            if zxid > committed {
                return Ok(());
            }
            from = zxid;
            let txn = txn_message(epoch, zxid, Bytes::from(payload));
            send_wait(session, conn, FromLeader::SyncTxn(txn)).await?;
        }
    }
    Ok(())
}

/// Sends the newest snapshot in chunks, then the committed txns after it.
async fn send_snap(
    session: &LeaderSession,
    conn: u64,
    journal: &crate::journal::Journal,
    epoch: Epoch,
    committed: Zxid,
) -> Result<(), String> {
    let loaded = journal
        .load()
        .await
        .map_err(|e| format!("reading the snapshot for a SNAP: {e}"))?;
    let Some((zxid, image)) = loaded.snapshot else {
        return Err("a SNAP is needed but there is no snapshot".into());
    };
    send_wait(session, conn, sync_start(epoch, v1::SyncMode::Snap, zxid)).await?;
    let mut chunks = image.chunks(SNAP_CHUNK).peekable();
    if chunks.peek().is_none() {
        let last = v1::SnapChunk {
            epoch: transport::epoch_to_wire(epoch),
            data: Bytes::new(),
            last: true,
        };
        send_wait(session, conn, FromLeader::SnapChunk(last)).await?;
    }
    while let Some(chunk) = chunks.next() {
        let chunk = v1::SnapChunk {
            epoch: transport::epoch_to_wire(epoch),
            data: Bytes::copy_from_slice(chunk),
            last: chunks.peek().is_none(),
        };
        send_wait(session, conn, FromLeader::SnapChunk(chunk)).await?;
    }
    for (z, payload) in loaded.txns.into_iter().filter(|(z, _)| *z <= committed) {
        let txn = txn_message(epoch, z, Bytes::from(payload));
        send_wait(session, conn, FromLeader::SyncTxn(txn)).await?;
    }
    Ok(())
}

fn sync_start(epoch: Epoch, mode: v1::SyncMode, zxid: Zxid) -> FromLeader {
    FromLeader::SyncStart(v1::SyncStart {
        epoch: transport::epoch_to_wire(epoch),
        mode: mode.into(),
        zxid: zxid.0,
    })
}

fn leader_info(epoch: Epoch) -> FromLeader {
    FromLeader::LeaderInfo(v1::LeaderInfo {
        epoch: transport::epoch_to_wire(epoch),
    })
}

fn txn_message(epoch: Epoch, zxid: Zxid, payload: Bytes) -> v1::Txn {
    v1::Txn {
        epoch: transport::epoch_to_wire(epoch),
        zxid: zxid.0,
        payload,
    }
}

fn learner_message(kind: FromLearner) -> v1::LearnerMessage {
    v1::LearnerMessage { kind: Some(kind) }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxids_between_stay_in_the_epoch() {
        let (e1, e2) = (Epoch(1), Epoch(2));
        let z = |e, c| Zxid::new(e, c);
        let got: Vec<Zxid> = zxids_between(z(e2, 3), z(e2, 6), e2).collect();
        assert_eq!(got, vec![z(e2, 4), z(e2, 5), z(e2, 6)]);
        let got: Vec<Zxid> = zxids_between(z(e1, 9), z(e2, 2), e2).collect();
        assert_eq!(got, vec![z(e2, 1), z(e2, 2)]);
        assert_eq!(zxids_between(z(e2, 6), z(e2, 6), e2).count(), 0);
        assert_eq!(zxids_between(z(e2, 6), z(e2, 2), e2).count(), 0);
        assert_eq!(zxids_between(z(e1, 1), z(e1, 5), e2).count(), 0);
    }

    #[test]
    fn only_the_last_commit_and_ack_per_server_is_sent() {
        let (a, b) = (ServerId(1), ServerId(2));
        let epoch = Epoch(3);
        let z = |c| Zxid::new(epoch, c);
        let send = |to, msg| broadcast::Action::Send { to, msg };
        let commit = |c| Message::Commit { epoch, zxid: z(c) };
        let ack = |c| Message::Ack { epoch, zxid: z(c) };
        let proposal = |c| Message::Proposal {
            epoch,
            zxid: z(c),
            payload: Bytes::new(),
        };
        let actions = vec![
            broadcast::Action::Apply { zxid: z(1) },
            send(a, commit(1)),
            send(b, commit(1)),
            send(a, proposal(3)),
            broadcast::Action::Apply { zxid: z(2) },
            send(a, commit(2)),
            send(a, ack(1)),
            send(a, ack(2)),
        ];
        let kept = coalesce(actions);
        assert_eq!(
            kept,
            vec![
                broadcast::Action::Apply { zxid: z(1) },
                send(b, commit(1)),
                send(a, proposal(3)),
                broadcast::Action::Apply { zxid: z(2) },
                send(a, commit(2)),
                send(a, ack(2)),
            ]
        );
    }
}
