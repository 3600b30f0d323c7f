//! Fast leader election: a pure vote-box state machine.
//!
//! ZooKeeper's FastLeaderElection in our words, with the I/O taken out (the
//! openraft Engine/Runtime split): events come in as method calls with the
//! time as an argument, and what to do comes out as [`Action`]s. The runtime
//! (`quorum/peer.rs`) owns the sockets and the one timer and executes them.
//!
//! ```text
//!   start ──> LOOKING: round += 1, vote for ourselves, broadcast
//!               │  on_notification: a higher round clears the box and is
//!               │  adopted; a lower round is answered; a better vote in our
//!               │  round is adopted and re-broadcast; every vote is recorded
//!               │  on_timeout: re-broadcast, the interval doubling to a cap
//!               ▼
//!     a strict majority of voters in the box agrees with our vote
//!               │  wait `finalize_wait`; a change of our vote or round
//!               │  cancels the wait and the count starts again
//!               ▼
//!   LEADING (we are the vote) / FOLLOWING / OBSERVING (we are an observer)
//!
//!   FOLLOWING/LEADING notifications (the "out of election" set) let a late or
//!   returning node follow an established leader without a new round winning:
//!   a majority of voters agrees on the leader and the leader claims LEADING.
//!   Members that decided in different rounds agree once each, synced, has
//!   reported the established epoch (on_established).
//! ```
//!
//! Observers never vote and never count: a voter ignores their notifications
//! (it answers them once it has decided), and an observer learns the leader
//! only from FOLLOWING/LEADING notifications of voters.
//!
//! Leader election is a heuristic, not consensus: with messages lost or slower
//! than the finalize wait, two nodes can decide differently. Discovery (a new
//! epoch acknowledged by a quorum) is what makes a leader safe; a node whose
//! decision does not hold there calls [`Election::start`] again.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use dfs_proto::ids::{Epoch, ServerId, Zxid};

/// A logical clock: the election round (ZooKeeper's election epoch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Round(pub(crate) u64);

impl Round {
    fn next(self) -> Round {
        Round(self.0.saturating_add(1))
    }
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A proposal for who should lead, with what that server has logged.
///
/// Votes are totally ordered: higher peer epoch, then higher zxid, then higher
/// server id wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Vote {
    pub(crate) leader: ServerId,
    /// The last zxid the proposed leader has logged.
    pub(crate) zxid: Zxid,
    /// The epoch the proposed leader last accepted (its current epoch).
    pub(crate) peer_epoch: Epoch,
}

impl Vote {
    fn key(&self) -> (Epoch, Zxid, ServerId) {
        (self.peer_epoch, self.zxid, self.leader)
    }
}

impl Ord for Vote {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for Vote {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Vote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "leader {} (epoch {}, zxid {})",
            self.leader, self.peer_epoch, self.zxid
        )
    }
}

/// A server's state in the quorum, as its notifications carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PeerState {
    Looking,
    Following,
    Leading,
    Observing,
}

/// What an election ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Role {
    Leading,
    Following,
    Observing,
}

impl From<Role> for PeerState {
    fn from(role: Role) -> Self {
        match role {
            Role::Leading => PeerState::Leading,
            Role::Following => PeerState::Following,
            Role::Observing => PeerState::Observing,
        }
    }
}

/// One election message: who sends it, in which round and state, for whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Notification {
    pub(crate) from: ServerId,
    pub(crate) round: Round,
    pub(crate) state: PeerState,
    pub(crate) vote: Vote,
}

/// How an election ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Outcome {
    pub(crate) role: Role,
    /// The winning vote: the leader and the epoch and zxid it was elected with.
    pub(crate) vote: Vote,
    pub(crate) round: Round,
}

/// What the runtime must do after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Action {
    /// Send to every voter but ourselves.
    Broadcast(Notification),
    /// Send to one server.
    SendTo(ServerId, Notification),
    /// Call [`Election::on_timeout`] at this instant, replacing any earlier
    /// timer. Disarm the timer once the election is decided.
    SetTimer(Instant),
    /// The election is over: lead, follow or observe `outcome.vote.leader`.
    Decided(Outcome),
}

/// The election's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    /// How long a quorum must stand without a better vote before we decide
    /// (ZooKeeper's finalizeWait). Default 200 ms.
    pub(crate) finalize_wait: Duration,
    /// The first wait before re-broadcasting an unchanged vote. Default 200 ms.
    pub(crate) first_resend: Duration,
    /// The cap the resend wait doubles up to. Default 5 s: below ZooKeeper's
    /// 60 s so a namenode back from a partition learns the leader in seconds.
    pub(crate) max_resend: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            finalize_wait: Duration::from_millis(200),
            first_resend: Duration::from_millis(200),
            max_resend: Duration::from_secs(5),
        }
    }
}

/// Why an election cannot run with the given ensemble and timing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SetupError {
    #[error("the ensemble has no voters")]
    NoVoters,
    #[error("the election's resend interval must be above zero")]
    ZeroResendInterval,
    #[error("server {0} is both a voter and an observer")]
    VoterAndObserver(ServerId),
    #[error("server {0} is neither a voter nor an observer of the ensemble")]
    NotAMember(ServerId),
}

/// A vote as recorded in a box: what a server said, in which round and state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ballot {
    vote: Vote,
    round: Round,
    state: PeerState,
}

impl Ballot {
    fn of(n: &Notification) -> Self {
        Ballot {
            vote: n.vote,
            round: n.round,
            state: n.state,
        }
    }

    /// Whether two ballots back the same outcome (ZooKeeper's `Vote.equals`):
    /// while either is still looking, the same vote in the same round;
    /// between decided servers, the same leader in the same epoch.
    fn agrees_with(&self, other: &Ballot) -> bool {
        if self.state == PeerState::Looking || other.state == PeerState::Looking {
            self.vote == other.vote && self.round == other.round
        } else {
            self.vote.leader == other.vote.leader && self.vote.peer_epoch == other.vote.peer_epoch
        }
    }
}

/// One server's side of fast leader election.
#[derive(Debug)]
pub(crate) struct Election {
    me: ServerId,
    voters: BTreeSet<ServerId>,
    observers: BTreeSet<ServerId>,
    timing: Timing,
    state: PeerState,
    round: Round,
    /// Our current vote; once decided, the winning vote.
    vote: Vote,
    /// What we last logged, for a round we adopt: the vote we start it with.
    own: Vote,
    /// Votes in our round, ours included (ZooKeeper's recvset). Only voters
    /// are ever recorded here or in `out_of_election`.
    ballots: BTreeMap<ServerId, Ballot>,
    /// FOLLOWING/LEADING ballots of any round (ZooKeeper's outofelection).
    out_of_election: BTreeMap<ServerId, Ballot>,
    /// When the standing quorum becomes our decision.
    finalize_at: Option<Instant>,
    /// When we repeat our vote if nothing else happened.
    resend_at: Option<Instant>,
    resend_every: Duration,
    /// The timer the runtime holds, so only changes are emitted.
    armed: Option<Instant>,
    started_at: Option<Instant>,
    decided_at: Option<Instant>,
}

impl Election {
    /// A server that has not started electing yet; call [`Election::start`].
    pub(crate) fn new(
        me: ServerId,
        voters: BTreeSet<ServerId>,
        observers: BTreeSet<ServerId>,
        timing: Timing,
    ) -> Result<Self, SetupError> {
        if voters.is_empty() {
            return Err(SetupError::NoVoters);
        }
        if timing.first_resend.is_zero() {
            return Err(SetupError::ZeroResendInterval);
        }
        if let Some(both) = voters.intersection(&observers).next() {
            return Err(SetupError::VoterAndObserver(*both));
        }
        if !voters.contains(&me) && !observers.contains(&me) {
            return Err(SetupError::NotAMember(me));
        }
        let nothing = Vote {
            leader: me,
            zxid: Zxid::ZERO,
            peer_epoch: Epoch(0),
        };
        Ok(Election {
            me,
            voters,
            observers,
            timing,
            state: PeerState::Looking,
            round: Round(0),
            vote: nothing,
            own: nothing,
            ballots: BTreeMap::new(),
            out_of_election: BTreeMap::new(),
            finalize_at: None,
            resend_at: None,
            resend_every: timing.first_resend,
            armed: None,
            started_at: None,
            decided_at: None,
        })
    }

    /// Starts a new round: LOOKING, round + 1, a vote for ourselves with what
    /// we have logged, sent to every voter. Also how a node whose leader is
    /// gone (or whose decision did not hold) looks again.
    pub(crate) fn start(
        &mut self,
        last_zxid: Zxid,
        current_epoch: Epoch,
        now: Instant,
    ) -> Vec<Action> {
        self.state = PeerState::Looking;
        self.round = self.round.next();
        self.own = Vote {
            leader: self.me,
            zxid: last_zxid,
            peer_epoch: current_epoch,
        };
        self.vote = self.own;
        self.ballots.clear();
        self.out_of_election.clear();
        self.record_own();
        self.finalize_at = None;
        self.resend_every = self.timing.first_resend;
        self.started_at = Some(now);
        self.decided_at = None;
        let mut actions = vec![self.broadcast(now)];
        // A one-voter ensemble is its own quorum.
        self.after_change(now, &mut actions);
        actions
    }

    /// Handles a notification from another server.
    pub(crate) fn on_notification(&mut self, n: Notification, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.started_at.is_none() || n.from == self.me {
            return actions;
        }
        let from_voter = self.voters.contains(&n.from);
        if self.state != PeerState::Looking {
            // Tell a looking server (voter or observer) whom we settled on.
            if n.state == PeerState::Looking && (from_voter || self.observers.contains(&n.from)) {
                actions.push(Action::SendTo(n.from, self.notification()));
            }
            return actions;
        }
        if !from_voter || !self.voters.contains(&n.vote.leader) {
            return actions;
        }
        match n.state {
            PeerState::Looking if self.is_voter() => self.on_looking(n, now, &mut actions),
            PeerState::Following | PeerState::Leading => self.on_decided(n, now, &mut actions),
            PeerState::Looking | PeerState::Observing => {}
        }
        actions
    }

    /// Handles the timer set by [`Action::SetTimer`]: the finalize wait's end,
    /// or a resend of our vote when nothing has been decided yet.
    pub(crate) fn on_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.state != PeerState::Looking || self.started_at.is_none() {
            return actions;
        }
        match self.finalize_at {
            Some(at) if now >= at => {
                if self.has_quorum(&self.ballots, &self.own_ballot()) {
                    let role = self.role_under(self.vote.leader);
                    self.decide(role, self.vote, self.round, now, &mut actions);
                    return actions;
                }
                self.finalize_at = None;
            }
            Some(_) => {}
            None if self.resend_at.is_some_and(|at| now >= at) => {
                self.resend_every = (self.resend_every * 2).min(self.timing.max_resend);
                actions.push(self.broadcast(now));
            }
            None => {}
        }
        // Early or stale: re-arm whatever is due next.
        self.armed = None;
        self.arm(&mut actions);
        actions
    }

    /// Our leader's epoch is established and we are synced with it (the
    /// leader: a quorum is): from now on our vote carries that epoch.
    ///
    /// Members may have decided for the same leader in different rounds,
    /// with votes naming different peer epochs; a returning server follows
    /// only a majority that agrees on the leader *and* its epoch, so without
    /// this it could never join (ZooKeeper's `updateElectionVote`,
    /// ZOOKEEPER-1732). Ignored while looking.
    pub(crate) fn on_established(&mut self, epoch: Epoch) {
        if self.state != PeerState::Looking {
            self.vote.peer_epoch = epoch;
        }
    }

    /// Our state.
    #[cfg(test)]
    pub(crate) fn state(&self) -> PeerState {
        self.state
    }

    /// Our logical clock.
    pub(crate) fn round(&self) -> Round {
        self.round
    }

    /// Our current vote; once decided, the winning one.
    #[cfg(test)]
    pub(crate) fn vote(&self) -> Vote {
        self.vote
    }

    /// What the runtime logs about this round (one line per round at least).
    pub(crate) fn round_summary(&self, now: Instant) -> RoundSummary {
        let since = self.started_at.unwrap_or(now);
        RoundSummary {
            round: self.round,
            state: self.state,
            vote: self.vote,
            ballots: self.ballots.len(),
            elapsed: self
                .decided_at
                .unwrap_or(now)
                .saturating_duration_since(since),
        }
    }

    fn is_voter(&self) -> bool {
        self.voters.contains(&self.me)
    }

    /// A LOOKING voter's notification, to a LOOKING voter.
    fn on_looking(&mut self, n: Notification, now: Instant, actions: &mut Vec<Action>) {
        let before = (self.round, self.vote);
        match n.round.cmp(&self.round) {
            Ordering::Less => {
                actions.push(Action::SendTo(n.from, self.notification()));
                return;
            }
            Ordering::Greater => {
                self.round = n.round;
                self.ballots.clear();
                self.vote = self.own.max(n.vote);
                actions.push(self.broadcast(now));
            }
            Ordering::Equal if n.vote > self.vote => {
                self.vote = n.vote;
                actions.push(self.broadcast(now));
            }
            Ordering::Equal => {}
        }
        // Every ballot in the box is of our round, where a server's vote only
        // improves: a worse one from it is an older message overtaken.
        let newer = self.ballots.get(&n.from).is_none_or(|b| b.vote <= n.vote);
        if newer {
            self.ballots.insert(n.from, Ballot::of(&n));
        }
        if (self.round, self.vote) != before {
            self.finalize_at = None;
            self.record_own();
        }
        self.after_change(now, actions);
    }

    /// A FOLLOWING or LEADING voter's notification, to a LOOKING server: the
    /// way to join an election that is over.
    fn on_decided(&mut self, n: Notification, now: Instant, actions: &mut Vec<Action>) {
        let theirs = Ballot::of(&n);
        if n.round == self.round {
            self.ballots.insert(n.from, theirs);
            if self.has_quorum(&self.ballots, &theirs)
                && self.leader_confirms(&self.ballots, &theirs)
            {
                self.decide(
                    self.role_under(n.vote.leader),
                    n.vote,
                    n.round,
                    now,
                    actions,
                );
                return;
            }
        }
        self.out_of_election.insert(n.from, theirs);
        if self.has_quorum(&self.out_of_election, &theirs)
            && self.leader_confirms(&self.out_of_election, &theirs)
        {
            self.decide(
                self.role_under(n.vote.leader),
                n.vote,
                n.round,
                now,
                actions,
            );
            return;
        }
        self.after_change(now, actions);
    }

    /// After the box or our vote changed: wait to finalize a standing quorum,
    /// else keep the resend timer.
    fn after_change(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self.is_voter()
            && self.finalize_at.is_none()
            && self.has_quorum(&self.ballots, &self.own_ballot())
        {
            self.finalize_at = Some(now + self.timing.finalize_wait);
        }
        self.arm(actions);
    }

    /// Emits the timer for the next thing due, if it moved.
    fn arm(&mut self, actions: &mut Vec<Action>) {
        let due = self.finalize_at.or(self.resend_at);
        if let Some(at) = due.filter(|_| self.armed != due) {
            self.armed = due;
            actions.push(Action::SetTimer(at));
        }
    }

    fn decide(
        &mut self,
        role: Role,
        vote: Vote,
        round: Round,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        self.state = role.into();
        self.vote = vote;
        self.round = round;
        self.finalize_at = None;
        self.armed = None;
        self.decided_at = Some(now);
        actions.push(Action::Decided(Outcome { role, vote, round }));
    }

    fn role_under(&self, leader: ServerId) -> Role {
        if !self.is_voter() {
            Role::Observing
        } else if leader == self.me {
            Role::Leading
        } else {
            Role::Following
        }
    }

    /// Whether a strict majority of voters in `ballots` (which hold only
    /// voters) agrees with `target`.
    fn has_quorum(&self, ballots: &BTreeMap<ServerId, Ballot>, target: &Ballot) -> bool {
        let agreeing = ballots.values().filter(|b| b.agrees_with(target)).count();
        agreeing > self.voters.len() / 2
    }

    /// Whether the leader of `target` stands behind it (ZooKeeper's
    /// `checkLeader`): it said LEADING itself, or it is us and the round is ours.
    fn leader_confirms(&self, ballots: &BTreeMap<ServerId, Ballot>, target: &Ballot) -> bool {
        if target.vote.leader == self.me {
            target.round == self.round
        } else {
            ballots
                .get(&target.vote.leader)
                .is_some_and(|b| b.state == PeerState::Leading)
        }
    }

    fn own_ballot(&self) -> Ballot {
        Ballot {
            vote: self.vote,
            round: self.round,
            state: PeerState::Looking,
        }
    }

    fn record_own(&mut self) {
        if self.is_voter() {
            self.ballots.insert(self.me, self.own_ballot());
        }
    }

    fn notification(&self) -> Notification {
        Notification {
            from: self.me,
            round: self.round,
            state: self.state,
            vote: self.vote,
        }
    }

    fn broadcast(&mut self, now: Instant) -> Action {
        self.resend_at = Some(now + self.resend_every);
        Action::Broadcast(self.notification())
    }
}

/// One election round, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoundSummary {
    pub(crate) round: Round,
    pub(crate) state: PeerState,
    pub(crate) vote: Vote,
    /// Ballots in our round's box, ours included.
    pub(crate) ballots: usize,
    /// From the round's start to its decision, or to now while looking.
    pub(crate) elapsed: Duration,
}

impl fmt::Display for RoundSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "round {} {:?} for {} with {} ballots after {:?}",
            self.round, self.state, self.vote, self.ballots, self.elapsed
        )
    }
}

#[cfg(test)]
#[path = "election_test.rs"]
mod tests;
