//! Discovery and synchronization: the two Zab phases between an election and
//! the broadcast of new transactions.
//!
//! ```text
//!   leader (Discovery)                              follower / observer
//!   ------------------                              -------------------
//!   own accepted epoch counts as the first info  <-- FOLLOWERINFO(accepted epoch)
//!   a quorum of voters reported:
//!     new epoch = max(accepted) + 1
//!     persist acceptedEpoch = new epoch (fsync)
//!   (a later learner that accepted more: LOOKING)
//!   LEADERINFO(new epoch) ----------------------->  answer_leader_info:
//!                                                     new > accepted: persist it,
//!                                                       ACKEPOCH(current, last zxid)
//!                                                     new = accepted: ACKEPOCH, not counted
//!                                                     new < accepted: refuse, LOOKING
//!   on_ack_epoch: a quorum of counted voters,    <-- ACKEPOCH
//!     none ahead of us (current epoch, zxid)
//!     -> Established: persist currentEpoch
//!   choose_sync(follower's last zxid, our log):
//!     DIFF / TRUNC (+ DIFF) / SNAP -------------->  journal it, fsync
//!   NEWLEADER ----------------------------------->  persist currentEpoch, ACK
//!   a quorum of NEWLEADER ACKs: broadcast may       (see broadcast::Leader)
//!   begin
//! ```
//!
//! Both epochs are persisted before they are used, as in ZooKeeper: the
//! accepted epoch before any LEADERINFO or ACKEPOCH that carries it, the
//! current epoch before the leader syncs anyone (and, on a follower, before
//! it ACKs NEWLEADER). A server never accepts the same epoch twice, so two
//! leaders that both chose epoch `e` cannot both gather a quorum for it.
//!
//! Zxids identify transactions: one leader per epoch issues consecutive
//! counters from 1. So any server's history is, epoch by epoch, a prefix of
//! what that epoch's leader issued, and [`choose_sync`] can decide from the
//! follower's last zxid alone.

use std::collections::BTreeSet;

use dfs_proto::ids::{Epoch, ServerId, Zxid};

/// Whether `backers` (which may name non-voters, ignored) are a strict
/// majority of `voters`.
pub(crate) fn is_quorum<'a>(
    voters: &BTreeSet<ServerId>,
    backers: impl IntoIterator<Item = &'a ServerId>,
) -> bool {
    let count = backers
        .into_iter()
        .filter(|sid| voters.contains(sid))
        .count();
    count > voters.len() / 2
}

/// Why an ensemble cannot run discovery with us as leader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MembershipError {
    /// Only a voter may lead.
    #[error("server {0} is not a voter and cannot lead")]
    NotAVoter(ServerId),
}

/// Where the leader's discovery stands after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EpochProgress {
    /// Not yet a quorum: keep the learner waiting.
    Waiting,
    /// A quorum of voters just reported: persist `epoch` as our accepted
    /// epoch (fsync), then send LEADERINFO(`epoch`) to every learner that
    /// reported so far. Returned once.
    Chosen {
        /// The new epoch.
        epoch: Epoch,
    },
    /// The epoch was chosen earlier: send LEADERINFO(`epoch`) to this learner.
    Known {
        /// The new epoch.
        epoch: Epoch,
    },
    /// The epoch was chosen earlier, below one this learner has already
    /// accepted (from a leader whose discovery did not finish). It would
    /// refuse our LEADERINFO, and only a newer epoch can take it back: step
    /// down to LOOKING, so that the next discovery chooses one.
    Outdated {
        /// Our epoch.
        epoch: Epoch,
        /// The learner's accepted epoch, above ours.
        accepted: Epoch,
    },
}

/// Where the leader's discovery stands after an ACKEPOCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckProgress {
    /// Not yet a quorum of counted acknowledgements.
    Waiting,
    /// A quorum of voters acknowledged the new epoch: persist it as our
    /// current epoch (fsync), then synchronize every learner that acked so
    /// far ([`choose_sync`]). Returned once.
    Established {
        /// The new epoch.
        epoch: Epoch,
    },
    /// The epoch was established earlier: synchronize this learner.
    Sync,
}

/// An ACKEPOCH: a learner's answer to LEADERINFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AckEpoch {
    /// The epoch acknowledged: must be the one we chose.
    pub(crate) epoch: Epoch,
    /// The learner's current epoch; `None` when it had already accepted
    /// `epoch` before (ZooKeeper's -1), so its acknowledgement is not counted.
    pub(crate) current_epoch: Option<Epoch>,
    /// The last zxid the learner has logged.
    pub(crate) last_zxid: Zxid,
}

/// Why the leader refused a discovery message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DiscoveryError {
    /// An ACKEPOCH for another epoch than ours (a stale session): drop it.
    #[error("acknowledgement of epoch {got}, ours is {ours:?}")]
    WrongEpoch {
        /// The epoch we chose, if any yet.
        ours: Option<Epoch>,
        /// The epoch the message carries.
        got: Epoch,
    },
    /// A voter has a newer history than ours: we must not lead. Step down to
    /// LOOKING (the next election will prefer that voter).
    #[error(
        "server {sid} is ahead of the leader: epoch {their_epoch} zxid {their_zxid} \
         vs epoch {our_epoch} zxid {our_zxid}"
    )]
    FollowerAhead {
        /// The voter that is ahead.
        sid: ServerId,
        /// Its current epoch.
        their_epoch: Epoch,
        /// Its last logged zxid.
        their_zxid: Zxid,
        /// Our current epoch.
        our_epoch: Epoch,
        /// Our last logged zxid.
        our_zxid: Zxid,
    },
}

/// What we logged, as discovery compares it: current epoch first, then zxid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct History {
    current_epoch: Epoch,
    last_zxid: Zxid,
}

/// The leader's side of discovery: choose the new epoch, then gather a
/// quorum that acknowledges it.
#[derive(Debug)]
pub(crate) struct Discovery {
    me: ServerId,
    voters: BTreeSet<ServerId>,
    own: History,
    /// Learners that sent FOLLOWERINFO (we count as one): they wait for the epoch.
    reported: BTreeSet<ServerId>,
    /// The highest accepted epoch reported so far, ours included.
    max_accepted: Epoch,
    /// Chosen once a quorum reported.
    new_epoch: Option<Epoch>,
    /// Learners whose ACKEPOCH counts (we count as one).
    acked: BTreeSet<ServerId>,
    is_established: bool,
}

impl Discovery {
    /// The leader's discovery, starting from what it has persisted and logged.
    ///
    /// # Errors
    /// [`MembershipError::NotAVoter`] when `me` is not among `voters`.
    pub(crate) fn new(
        me: ServerId,
        voters: BTreeSet<ServerId>,
        accepted_epoch: Epoch,
        current_epoch: Epoch,
        last_zxid: Zxid,
    ) -> Result<Self, MembershipError> {
        if !voters.contains(&me) {
            return Err(MembershipError::NotAVoter(me));
        }
        Ok(Discovery {
            me,
            voters,
            own: History {
                current_epoch,
                last_zxid,
            },
            reported: BTreeSet::from([me]),
            max_accepted: accepted_epoch,
            new_epoch: None,
            acked: BTreeSet::from([me]),
            is_established: false,
        })
    }

    /// A learner's FOLLOWERINFO (or OBSERVERINFO) with its accepted epoch.
    ///
    /// Every learner's accepted epoch raises the maximum (so no learner has
    /// to refuse the new epoch), but only voters count toward the quorum. A
    /// learner reporting after the choice with a newer accepted epoch than
    /// ours gets [`EpochProgress::Outdated`].
    ///
    /// Returns [`EpochProgress::Waiting`] if the epoch would overflow: a
    /// cluster with 2^32 epochs behind it needs an operator.
    pub(crate) fn on_follower_info(
        &mut self,
        sid: ServerId,
        accepted_epoch: Epoch,
    ) -> EpochProgress {
        if let Some(epoch) = self.new_epoch {
            if accepted_epoch > epoch {
                return EpochProgress::Outdated {
                    epoch,
                    accepted: accepted_epoch,
                };
            }
            return EpochProgress::Known { epoch };
        }
        self.max_accepted = self.max_accepted.max(accepted_epoch);
        self.reported.insert(sid);
        if !is_quorum(&self.voters, &self.reported) {
            return EpochProgress::Waiting;
        }
        let Some(next) = self.max_accepted.0.checked_add(1) else {
            return EpochProgress::Waiting;
        };
        let epoch = Epoch(next);
        self.new_epoch = Some(epoch);
        EpochProgress::Chosen { epoch }
    }

    /// A learner's ACKEPOCH.
    ///
    /// # Errors
    /// [`DiscoveryError::WrongEpoch`]: drop the message.
    /// [`DiscoveryError::FollowerAhead`] (only before establishment, only for
    /// counted voters): step down to LOOKING.
    pub(crate) fn on_ack_epoch(
        &mut self,
        sid: ServerId,
        ack: AckEpoch,
    ) -> Result<AckProgress, DiscoveryError> {
        let Some(epoch) = self.new_epoch.filter(|&e| e == ack.epoch) else {
            return Err(DiscoveryError::WrongEpoch {
                ours: self.new_epoch,
                got: ack.epoch,
            });
        };
        if self.is_established {
            // Whatever it has beyond our history was never committed (a
            // quorum with no newer history established us): TRUNC drops it.
            return Ok(AckProgress::Sync);
        }
        let Some(current_epoch) = ack.current_epoch else {
            return Ok(AckProgress::Waiting);
        };
        if !self.voters.contains(&sid) {
            return Ok(AckProgress::Waiting);
        }
        let theirs = History {
            current_epoch,
            last_zxid: ack.last_zxid,
        };
        if theirs > self.own {
            return Err(DiscoveryError::FollowerAhead {
                sid,
                their_epoch: theirs.current_epoch,
                their_zxid: theirs.last_zxid,
                our_epoch: self.own.current_epoch,
                our_zxid: self.own.last_zxid,
            });
        }
        self.acked.insert(sid);
        if !is_quorum(&self.voters, &self.acked) {
            return Ok(AckProgress::Waiting);
        }
        self.is_established = true;
        Ok(AckProgress::Established { epoch })
    }

    /// The new epoch, once a quorum reported.
    #[cfg(test)]
    pub(crate) fn new_epoch(&self) -> Option<Epoch> {
        self.new_epoch
    }

    /// Whether a quorum acknowledged the new epoch.
    #[cfg(test)]
    pub(crate) fn is_established(&self) -> bool {
        self.is_established
    }

    /// Learners that reported and wait for LEADERINFO (us included).
    pub(crate) fn reported(&self) -> impl Iterator<Item = ServerId> + '_ {
        self.reported.iter().copied().filter(|&sid| sid != self.me)
    }
}

/// A learner's answer to LEADERINFO(`new_epoch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaderInfoAnswer {
    /// Persist `new_epoch` as the accepted epoch (fsync), then send ACKEPOCH
    /// with our current epoch and last zxid.
    Accept,
    /// We accepted this epoch before (from this leader or a rival that chose
    /// the same number): send ACKEPOCH with no current epoch, which the
    /// leader does not count.
    AlreadyAccepted,
    /// The leader is behind an epoch we accepted: refuse, go back to LOOKING.
    Stale,
}

/// How a learner answers LEADERINFO, given the epoch it accepted last.
pub(crate) fn answer_leader_info(accepted_epoch: Epoch, new_epoch: Epoch) -> LeaderInfoAnswer {
    match new_epoch.cmp(&accepted_epoch) {
        std::cmp::Ordering::Greater => LeaderInfoAnswer::Accept,
        std::cmp::Ordering::Equal => LeaderInfoAnswer::AlreadyAccepted,
        std::cmp::Ordering::Less => LeaderInfoAnswer::Stale,
    }
}

/// The leader's committed history as [`choose_sync`] sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogView<'a> {
    /// The last zxid before the log: history up to here is only in
    /// snapshots (the oldest kept segment's `prev_zxid`; 0 with a whole log).
    pub(crate) log_start: Zxid,
    /// The committed zxids in the log, ascending, all above `log_start`. The
    /// last one (or `log_start` when empty) is the leader's last committed.
    /// Proposals not yet committed are left out: the broadcast core resends
    /// them once the learner is synced.
    pub(crate) log: &'a [Zxid],
}

impl LogView<'_> {
    /// The leader's last committed zxid.
    #[cfg(test)]
    pub(crate) fn last_committed(&self) -> Zxid {
        self.log.last().copied().unwrap_or(self.log_start)
    }

    /// Whether `zxid` is in the leader's history as the log shows it.
    fn contains(&self, zxid: Zxid) -> bool {
        zxid == self.log_start || self.log.binary_search(&zxid).is_ok()
    }

    /// The highest zxid of the leader's history below `zxid`, if the log
    /// reaches back that far.
    fn highest_below(&self, zxid: Zxid) -> Option<Zxid> {
        let below = self.log.partition_point(|&z| z < zxid);
        match below.checked_sub(1) {
            Some(i) => self.log.get(i).copied(),
            None => (self.log_start < zxid).then_some(self.log_start),
        }
    }
}

/// How the leader brings a learner up to its last committed zxid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncPlan {
    /// Send every committed txn after `from` (none when the learner is up to
    /// date).
    Diff {
        /// The learner's last zxid, which the leader's history contains.
        from: Zxid,
    },
    /// The learner drops every txn after `to` (it has txns the leader never
    /// committed), then gets a DIFF from `to`, which may be empty.
    Trunc {
        /// The highest zxid the learner keeps.
        to: Zxid,
    },
    /// The learner is behind the log: send the newest snapshot, then a DIFF
    /// from the snapshot's zxid.
    Snap,
}

impl SyncPlan {
    /// After which zxid the leader's committed txns must be sent, if a
    /// snapshot is not needed.
    pub(crate) fn diff_from(self) -> Option<Zxid> {
        match self {
            SyncPlan::Diff { from } => Some(from),
            SyncPlan::Trunc { to } => Some(to),
            SyncPlan::Snap => None,
        }
    }
}

/// Chooses DIFF, TRUNC or SNAP for a learner whose last logged zxid is
/// `learner_last` (ZooKeeper's `LearnerHandler.syncFollower`).
///
/// - in the leader's history (the log or its start): DIFF from there;
/// - beyond the leader's last committed, or not in the log (uncommitted
///   txns of an epoch whose history the leader does not share): TRUNC to
///   the leader's highest zxid below it, then DIFF;
/// - before the log's start: SNAP.
///
/// TRUNC relies on discovery: the leader's history extends the initial
/// history of every established epoch, so the learner holds that point (the
/// simulation checks it). ZooKeeper sends SNAP instead when the TRUNC would
/// cross an epoch boundary, because its learner cannot truncate across log
/// files; our journal will truncate by zxid, so TRUNC is enough.
pub(crate) fn choose_sync(learner_last: Zxid, leader: &LogView<'_>) -> SyncPlan {
    if learner_last < leader.log_start {
        return SyncPlan::Snap;
    }
    if leader.contains(learner_last) {
        return SyncPlan::Diff { from: learner_last };
    }
    match leader.highest_below(learner_last) {
        Some(to) => SyncPlan::Trunc { to },
        None => SyncPlan::Snap,
    }
}

#[cfg(test)]
#[path = "sync_test.rs"]
mod tests;
