//! Atomic broadcast: the leader proposes, a quorum journals and ACKs, the
//! leader commits, and everyone applies in zxid order.
//!
//! ```text
//!   client op -> Leader::propose(payload)
//!                  zxid = (epoch, counter + 1)
//!                  Journal{zxid} (our own fsync, then on_message(me, Ack))
//!                  Send PROPOSAL to every synced follower
//!   follower:    Learner::on_message(PROPOSAL) -> Journal{zxid}
//!                Learner::on_journaled(zxid)   -> Send ACK
//!   leader:      on_message(sid, ACK): the oldest outstanding proposal with a
//!                  strict majority of voters' ACKs (ours included) commits,
//!                  then the next one, and so on: never out of order
//!                  -> Apply{zxid}; Send COMMIT to followers, INFORM (with
//!                     the payload) to observers
//!   learner:     COMMIT / INFORM -> Apply{zxid} once journaled, in order
//! ```
//!
//! Fencing: every message carries the epoch. A message from an older epoch
//! is dropped; one from a newer epoch means we fell behind the quorum, so we
//! go LOOKING. A learner accepts proposals only in consecutive zxid order
//! and goes LOOKING (to be re-synced) on a gap.
//!
//! The leader serves a write only while a quorum of voters (itself
//! included) is synced with it: [`Leader::has_quorum`]. The runtime reports
//! a lost learner with [`Leader::on_peer_lost`] (connection closed or no
//! ping answered in time); losing the quorum steps the leader down.
//! Observers receive committed txns but never count toward a quorum.
//!
//! Durability contract with the runtime: an ACK is sent (and our own ACK
//! counted) only once the journal made that zxid durable; the journal
//! appends in order, so an ACK of `z` also means everything before `z` is
//! durable there.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use dfs_proto::ids::{Epoch, ServerId, Zxid};

use super::sync::is_quorum;

/// A quorum message of the broadcast phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    /// Leader to follower: journal this txn.
    Proposal {
        /// The leader's epoch.
        epoch: Epoch,
        /// The txn's zxid, consecutive within the epoch.
        zxid: Zxid,
        /// The encoded txn.
        payload: Bytes,
    },
    /// Follower to leader: `zxid` is durable in my journal.
    Ack {
        /// The epoch of the leader being acknowledged.
        epoch: Epoch,
        /// The zxid made durable.
        zxid: Zxid,
    },
    /// Leader to follower: `zxid` (and everything before it) is committed.
    Commit {
        /// The leader's epoch.
        epoch: Epoch,
        /// The committed zxid.
        zxid: Zxid,
    },
    /// Leader to observer: a committed txn with its payload.
    Inform {
        /// The leader's epoch.
        epoch: Epoch,
        /// The committed zxid.
        zxid: Zxid,
        /// The encoded txn.
        payload: Bytes,
    },
}

impl Message {
    /// The epoch the message was sent in.
    pub(crate) fn epoch(&self) -> Epoch {
        match self {
            Message::Proposal { epoch, .. }
            | Message::Ack { epoch, .. }
            | Message::Commit { epoch, .. }
            | Message::Inform { epoch, .. } => *epoch,
        }
    }
}

/// Why a node must leave LEADING / FOLLOWING / OBSERVING for LOOKING.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LookingReason {
    /// The leader no longer has a quorum of voters synced with it.
    LostQuorum,
    /// A message of a newer epoch: the quorum moved on without us.
    NewerEpoch {
        /// Our epoch.
        ours: Epoch,
        /// The epoch seen.
        seen: Epoch,
    },
    /// A proposal or commit that does not follow what we have: we missed
    /// something and must be re-synced.
    Gap {
        /// The last zxid we have queued.
        have: Zxid,
        /// The zxid received.
        got: Zxid,
    },
}

/// What the runtime must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Append to our journal (in order). Once durable, report it: a learner
    /// calls [`Learner::on_journaled`], the leader feeds itself an ACK.
    Journal {
        /// The txn's zxid.
        zxid: Zxid,
        /// The encoded txn.
        payload: Bytes,
    },
    /// Send a message to one server.
    Send {
        /// The recipient.
        to: ServerId,
        /// The message.
        msg: Message,
    },
    /// `zxid` is committed: apply it to the namespace (on the leader, also
    /// answer the client that asked for it). Emitted in zxid order.
    Apply {
        /// The txn to apply, already journaled (or committed by a quorum).
        zxid: Zxid,
    },
    /// Stop serving, drop the quorum connections, and elect again. The core
    /// refuses everything afterwards.
    GoLooking(LookingReason),
}

/// Why a message was dropped without effect (log it at debug).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Ignored {
    /// From an epoch older than ours (a fenced-off leader or learner).
    #[error("message of epoch {got}, ours is {ours}")]
    StaleEpoch {
        /// Our epoch.
        ours: Epoch,
        /// The message's epoch.
        got: Epoch,
    },
    /// Already seen (a duplicate or an ACK of a committed zxid).
    #[error("zxid {0} already handled")]
    Duplicate(Zxid),
    /// An ACK of a zxid we never proposed.
    #[error("zxid {0} was never proposed")]
    NotProposed(Zxid),
    /// From a server that is not a synced voter (observers never ACK).
    #[error("server {0} does not count toward the quorum")]
    NotCounted(ServerId),
    /// A message this role never receives (e.g. a PROPOSAL to an observer).
    #[error("unexpected message for this role")]
    WrongRole,
    /// A learner's sync does not reach the leader's last committed zxid.
    #[error("sync reaches {synced_to}, the leader committed up to {last_committed}")]
    SyncBehind {
        /// Where the learner's sync ends.
        synced_to: Zxid,
        /// The leader's last committed zxid.
        last_committed: Zxid,
    },
    /// We went LOOKING earlier: the core is finished.
    #[error("no longer in the quorum role")]
    SteppedDown,
}

/// Why the leader cannot take a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NotLeading {
    /// Fewer than a quorum of voters is synced with us (yet, or any more).
    #[error("no quorum of voters is synced with the leader")]
    NoQuorum,
    /// The epoch's counter is used up: go LOOKING to start a new epoch.
    #[error("the epoch's zxid counter is exhausted")]
    EpochExhausted,
    /// We stepped down.
    #[error("the leader stepped down")]
    SteppedDown,
}

/// Why a leader cannot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StartError {
    /// Only a voter may lead.
    #[error("server {0} is not a voter and cannot lead")]
    NotAVoter(ServerId),
    /// The history must predate the epoch, or zxids would repeat.
    #[error("last zxid {last} is not below epoch {epoch}")]
    HistoryNotBelowEpoch {
        /// Our last zxid.
        last: Zxid,
        /// The epoch to lead.
        epoch: Epoch,
    },
}

/// Compares a message's epoch with ours: `Ok(None)` when equal, `Ok(Some(go
/// looking))` when newer, `Err` when older.
fn fence(ours: Epoch, got: Epoch) -> Result<Option<Vec<Action>>, Ignored> {
    match got.cmp(&ours) {
        std::cmp::Ordering::Less => Err(Ignored::StaleEpoch { ours, got }),
        std::cmp::Ordering::Equal => Ok(None),
        std::cmp::Ordering::Greater => {
            Ok(Some(vec![Action::GoLooking(LookingReason::NewerEpoch {
                ours,
                seen: got,
            })]))
        }
    }
}

/// The zxid after `last` in `epoch`: counter 1 of the epoch when `last` is
/// older, `None` when the counter is exhausted.
fn next_zxid(epoch: Epoch, last: Zxid) -> Option<Zxid> {
    if last.epoch() < epoch {
        Some(Zxid::new(epoch, 1))
    } else {
        last.next()
    }
}

/// A proposal not yet committed.
#[derive(Debug)]
struct Outstanding {
    payload: Bytes,
    /// Who has it durably (non-voters are never added).
    acks: BTreeSet<ServerId>,
}

/// The leader's side of broadcast, for one established epoch.
#[derive(Debug)]
pub(crate) struct Leader {
    me: ServerId,
    epoch: Epoch,
    voters: BTreeSet<ServerId>,
    last_proposed: Zxid,
    last_committed: Zxid,
    /// Proposals above `last_committed`, ascending.
    outstanding: BTreeMap<Zxid, Outstanding>,
    /// Learners whose sync is queued: they get every later PROPOSAL and
    /// COMMIT (followers) or INFORM (observers).
    forwarding: BTreeSet<ServerId>,
    /// Voters that ACKed NEWLEADER and are still connected.
    synced: BTreeSet<ServerId>,
    /// Whether a quorum was synced at some point (then losing it steps down).
    was_established: bool,
    has_stepped_down: bool,
}

impl Leader {
    /// The leader of an established `epoch` whose history ends at
    /// `last_zxid` (all of it applied, as recovery replays the whole log).
    /// No learner is synced yet: sync them, then [`Leader::start_forwarding`]
    /// and [`Leader::on_synced`].
    ///
    /// # Errors
    /// [`StartError`] when `me` is not a voter or `last_zxid` is not below `epoch`.
    pub(crate) fn new(
        me: ServerId,
        epoch: Epoch,
        voters: BTreeSet<ServerId>,
        last_zxid: Zxid,
    ) -> Result<Self, StartError> {
        if !voters.contains(&me) {
            return Err(StartError::NotAVoter(me));
        }
        if last_zxid.epoch() >= epoch {
            return Err(StartError::HistoryNotBelowEpoch {
                last: last_zxid,
                epoch,
            });
        }
        Ok(Leader {
            me,
            epoch,
            voters,
            last_proposed: last_zxid,
            last_committed: last_zxid,
            outstanding: BTreeMap::new(),
            forwarding: BTreeSet::new(),
            synced: BTreeSet::new(),
            was_established: false,
            has_stepped_down: false,
        })
    }

    /// Proposes a txn: our own journal append, and a PROPOSAL to every
    /// forwarding follower. The zxid is returned so the caller can wait for
    /// its [`Action::Apply`].
    ///
    /// # Errors
    /// [`NotLeading`]: answer the client `NotLeader`.
    pub(crate) fn propose(&mut self, payload: Bytes) -> Result<(Zxid, Vec<Action>), NotLeading> {
        if self.has_stepped_down {
            return Err(NotLeading::SteppedDown);
        }
        if !self.has_quorum() {
            return Err(NotLeading::NoQuorum);
        }
        let zxid = next_zxid(self.epoch, self.last_proposed).ok_or(NotLeading::EpochExhausted)?;
        self.last_proposed = zxid;
        let mut actions = vec![Action::Journal {
            zxid,
            payload: payload.clone(),
        }];
        actions.extend(self.forwarding_followers().map(|to| Action::Send {
            to,
            msg: Message::Proposal {
                epoch: self.epoch,
                zxid,
                payload: payload.clone(),
            },
        }));
        self.outstanding.insert(
            zxid,
            Outstanding {
                payload,
                acks: BTreeSet::new(),
            },
        );
        Ok((zxid, actions))
    }

    /// A message from `from`; only ACKs are expected. Our own journal's
    /// durability comes in here too, as an ACK from ourselves.
    ///
    /// # Errors
    /// [`Ignored`]: the message had no effect.
    pub(crate) fn on_message(
        &mut self,
        from: ServerId,
        msg: Message,
    ) -> Result<Vec<Action>, Ignored> {
        if self.has_stepped_down {
            return Err(Ignored::SteppedDown);
        }
        if let Some(looking) = fence(self.epoch, msg.epoch())? {
            self.has_stepped_down = true;
            return Ok(looking);
        }
        let Message::Ack { zxid, .. } = msg else {
            return Err(Ignored::WrongRole);
        };
        let counts = from == self.me || self.forwarding.contains(&from);
        if !counts || !self.voters.contains(&from) {
            return Err(Ignored::NotCounted(from));
        }
        if zxid <= self.last_committed {
            return Err(Ignored::Duplicate(zxid));
        }
        let proposal = self
            .outstanding
            .get_mut(&zxid)
            .ok_or(Ignored::NotProposed(zxid))?;
        if !proposal.acks.insert(from) {
            return Err(Ignored::Duplicate(zxid));
        }
        Ok(self.commit_ready())
    }

    /// Commits outstanding proposals from the oldest while each has a quorum
    /// of ACKs. A later proposal with a quorum waits for the earlier ones.
    fn commit_ready(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        while let Some(entry) = self.outstanding.first_entry() {
            if !is_quorum(&self.voters, &entry.get().acks) {
                break;
            }
            let (zxid, proposal) = entry.remove_entry();
            self.last_committed = zxid;
            actions.push(Action::Apply { zxid });
            for to in self.forwarding.iter().copied() {
                let msg = if self.voters.contains(&to) {
                    Message::Commit {
                        epoch: self.epoch,
                        zxid,
                    }
                } else {
                    Message::Inform {
                        epoch: self.epoch,
                        zxid,
                        payload: proposal.payload.clone(),
                    }
                };
                actions.push(Action::Send { to, msg });
            }
        }
        actions
    }

    /// A learner's sync up to `synced_to` has been queued on its connection:
    /// from now on it gets our PROPOSALs and COMMITs (an observer: INFORMs).
    /// Returns the outstanding proposals it is missing.
    ///
    /// The sync must reach our [`Leader::last_committed`] (DIFF / TRUNC / SNAP
    /// planned against it) and be queued in the same step as this call, so
    /// that no commit falls between the two.
    ///
    /// # Errors
    /// [`Ignored::WrongRole`] when `sid` is us, [`Ignored::SyncBehind`] when
    /// `synced_to` is not our last committed zxid.
    pub(crate) fn start_forwarding(
        &mut self,
        sid: ServerId,
        synced_to: Zxid,
    ) -> Result<Vec<Action>, Ignored> {
        if self.has_stepped_down {
            return Err(Ignored::SteppedDown);
        }
        if sid == self.me {
            return Err(Ignored::WrongRole);
        }
        if synced_to != self.last_committed {
            return Err(Ignored::SyncBehind {
                synced_to,
                last_committed: self.last_committed,
            });
        }
        self.forwarding.insert(sid);
        if !self.voters.contains(&sid) {
            return Ok(Vec::new());
        }
        Ok(self
            .outstanding
            .iter()
            .map(|(&zxid, proposal)| Action::Send {
                to: sid,
                msg: Message::Proposal {
                    epoch: self.epoch,
                    zxid,
                    payload: proposal.payload.clone(),
                },
            })
            .collect())
    }

    /// A forwarding voter ACKed NEWLEADER: its sync is durable and it counts
    /// toward [`Leader::has_quorum`]. Observers never count.
    ///
    /// # Errors
    /// [`Ignored::NotCounted`] for an observer or a learner not forwarded to.
    pub(crate) fn on_synced(&mut self, sid: ServerId) -> Result<(), Ignored> {
        if self.has_stepped_down {
            return Err(Ignored::SteppedDown);
        }
        if !self.voters.contains(&sid) || !self.forwarding.contains(&sid) {
            return Err(Ignored::NotCounted(sid));
        }
        self.synced.insert(sid);
        self.was_established |= self.has_quorum();
        Ok(())
    }

    /// The connection to `sid` is gone (closed, or no ping answered in
    /// time). Its ACKs of outstanding proposals are withdrawn: its re-sync
    /// may TRUNC them away (they lie beyond our last committed zxid), and
    /// it will get and ACK them again. Steps down when an established
    /// leader loses its quorum. Before the quorum ever formed, the runtime's
    /// own deadline (ZooKeeper's initLimit) decides.
    pub(crate) fn on_peer_lost(&mut self, sid: ServerId) -> Vec<Action> {
        self.forwarding.remove(&sid);
        self.synced.remove(&sid);
        for proposal in self.outstanding.values_mut() {
            proposal.acks.remove(&sid);
        }
        if self.has_stepped_down || !self.was_established || self.has_quorum() {
            return Vec::new();
        }
        self.has_stepped_down = true;
        vec![Action::GoLooking(LookingReason::LostQuorum)]
    }

    /// Whether a strict majority of voters (us included) is synced with us:
    /// the only state in which we may serve a write.
    pub(crate) fn has_quorum(&self) -> bool {
        !self.has_stepped_down
            && is_quorum(
                &self.voters,
                self.synced.iter().chain(std::iter::once(&self.me)),
            )
    }

    /// Since when a quorum of voters synced with us (us included, heard at
    /// `now`) has been heard from: the k-th most recent of their `last_heard`
    /// times, k a strict majority. The leader's lease runs from there, so a
    /// leader that was frozen finds it expired the moment it wakes. `None`
    /// without a synced quorum.
    pub(crate) fn quorum_heard_at<T: Copy + Ord>(
        &self,
        now: T,
        last_heard: impl Fn(ServerId) -> Option<T>,
    ) -> Option<T> {
        if !self.has_quorum() {
            return None;
        }
        let mut times: Vec<T> = self
            .synced
            .iter()
            .filter(|&&sid| sid != self.me && self.voters.contains(&sid))
            .filter_map(|&sid| last_heard(sid))
            .collect();
        times.push(now);
        times.sort_unstable_by(|a, b| b.cmp(a));
        times.get(self.voters.len() / 2).copied()
    }

    /// The last zxid committed (initially the history we started with).
    pub(crate) fn last_committed(&self) -> Zxid {
        self.last_committed
    }

    /// The last zxid proposed.
    pub(crate) fn last_proposed(&self) -> Zxid {
        self.last_proposed
    }

    fn forwarding_followers(&self) -> impl Iterator<Item = ServerId> + '_ {
        self.forwarding
            .iter()
            .copied()
            .filter(|sid| self.voters.contains(sid))
    }
}

/// Whether a learner votes (follower) or only listens (observer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LearnerRole {
    /// Gets PROPOSAL and COMMIT, journals and ACKs.
    Follower,
    /// Gets INFORM (committed txns), journals, never ACKs.
    Observer,
}

/// A follower's or observer's side of broadcast, for one leader's epoch.
#[derive(Debug)]
pub(crate) struct Learner {
    role: LearnerRole,
    leader: ServerId,
    epoch: Epoch,
    /// The last zxid handed to the journal.
    last_queued: Zxid,
    /// The last zxid the journal reported durable.
    last_journaled: Zxid,
    /// The highest zxid the leader told us is committed.
    last_committed: Zxid,
    /// Queued zxids not yet applied, ascending.
    unapplied: VecDeque<Zxid>,
    has_stepped_down: bool,
}

impl Learner {
    /// A learner of `leader` in `epoch`, synced: its journal holds (durably)
    /// and its namespace has applied the leader's history up to `synced_to`.
    /// Create it when NEWLEADER arrives (after persisting the current
    /// epoch), before ACKing it.
    pub(crate) fn new(role: LearnerRole, leader: ServerId, epoch: Epoch, synced_to: Zxid) -> Self {
        Learner {
            role,
            leader,
            epoch,
            last_queued: synced_to,
            last_journaled: synced_to,
            last_committed: synced_to,
            unapplied: VecDeque::new(),
            has_stepped_down: false,
        }
    }

    /// A message from the leader.
    ///
    /// # Errors
    /// [`Ignored`]: the message had no effect.
    pub(crate) fn on_message(&mut self, msg: Message) -> Result<Vec<Action>, Ignored> {
        if self.has_stepped_down {
            return Err(Ignored::SteppedDown);
        }
        if let Some(looking) = fence(self.epoch, msg.epoch())? {
            self.has_stepped_down = true;
            return Ok(looking);
        }
        match (self.role, msg) {
            (LearnerRole::Follower, Message::Proposal { zxid, payload, .. }) => {
                Ok(self.queue(zxid, payload)?)
            }
            (LearnerRole::Follower, Message::Commit { zxid, .. }) => self.commit(zxid),
            (LearnerRole::Observer, Message::Inform { zxid, payload, .. }) => {
                let mut actions = self.queue(zxid, payload)?;
                if !self.has_stepped_down {
                    actions.extend(self.commit(zxid)?);
                }
                Ok(actions)
            }
            _ => Err(Ignored::WrongRole),
        }
    }

    /// Hands the next txn to the journal, or goes LOOKING on a gap.
    fn queue(&mut self, zxid: Zxid, payload: Bytes) -> Result<Vec<Action>, Ignored> {
        if zxid <= self.last_queued {
            return Err(Ignored::Duplicate(zxid));
        }
        // The counter cannot be exhausted here: `zxid` exists above it.
        let expected = next_zxid(self.epoch, self.last_queued).unwrap_or(zxid);
        if zxid != expected {
            return Ok(self.go_looking(LookingReason::Gap {
                have: self.last_queued,
                got: zxid,
            }));
        }
        self.last_queued = zxid;
        self.unapplied.push_back(zxid);
        Ok(vec![Action::Journal { zxid, payload }])
    }

    /// Records that everything up to `zxid` is committed; applies what is
    /// journaled. A commit of a txn we never queued is a gap.
    fn commit(&mut self, zxid: Zxid) -> Result<Vec<Action>, Ignored> {
        if zxid <= self.last_committed {
            return Err(Ignored::Duplicate(zxid));
        }
        if zxid > self.last_queued {
            return Ok(self.go_looking(LookingReason::Gap {
                have: self.last_queued,
                got: zxid,
            }));
        }
        self.last_committed = zxid;
        Ok(self.apply_ready())
    }

    /// The journal made everything up to `zxid` durable: ACK each newly
    /// durable zxid (a follower) and apply what is also committed.
    ///
    /// # Errors
    /// [`Ignored::Duplicate`] when `zxid` was already reported durable,
    /// [`Ignored::NotProposed`] when it was never queued.
    pub(crate) fn on_journaled(&mut self, zxid: Zxid) -> Result<Vec<Action>, Ignored> {
        if self.has_stepped_down {
            return Err(Ignored::SteppedDown);
        }
        if zxid <= self.last_journaled {
            return Err(Ignored::Duplicate(zxid));
        }
        if zxid > self.last_queued {
            return Err(Ignored::NotProposed(zxid));
        }
        let mut actions = Vec::new();
        if self.role == LearnerRole::Follower {
            let newly = self
                .unapplied
                .iter()
                .copied()
                .filter(|&z| z > self.last_journaled && z <= zxid);
            actions.extend(newly.map(|z| Action::Send {
                to: self.leader,
                msg: Message::Ack {
                    epoch: self.epoch,
                    zxid: z,
                },
            }));
        }
        self.last_journaled = zxid;
        actions.extend(self.apply_ready());
        Ok(actions)
    }

    /// Applies, in order, every queued txn that is both durable and committed.
    fn apply_ready(&mut self) -> Vec<Action> {
        let ready = self.last_journaled.min(self.last_committed);
        let mut actions = Vec::new();
        while let Some(zxid) = self.unapplied.front().copied().filter(|&z| z <= ready) {
            self.unapplied.pop_front();
            actions.push(Action::Apply { zxid });
        }
        actions
    }

    fn go_looking(&mut self, reason: LookingReason) -> Vec<Action> {
        self.has_stepped_down = true;
        vec![Action::GoLooking(reason)]
    }

    /// The last zxid handed to the journal.
    #[cfg(test)]
    pub(crate) fn last_queued(&self) -> Zxid {
        self.last_queued
    }
}

#[cfg(test)]
#[path = "broadcast_test.rs"]
mod tests;

#[cfg(test)]
#[path = "broadcast_sim_test.rs"]
mod sim;
