//! Discovery and sync-choice tests: tables of events and expected outcomes.

use super::*;

fn ids(sids: &[u64]) -> BTreeSet<ServerId> {
    sids.iter().map(|&s| ServerId(s)).collect()
}

fn z(epoch: u32, counter: u32) -> Zxid {
    Zxid::new(Epoch(epoch), counter)
}

fn ack(epoch: u32, current: Option<u32>, last: Zxid) -> AckEpoch {
    AckEpoch {
        epoch: Epoch(epoch),
        current_epoch: current.map(Epoch),
        last_zxid: last,
    }
}

/// Leader 1 of voters {1, 2, 3, 4, 5} (observer 9), accepted epoch 3,
/// current epoch 3, last zxid (3, 7).
fn discovery() -> Discovery {
    Discovery::new(
        ServerId(1),
        ids(&[1, 2, 3, 4, 5]),
        Epoch(3),
        Epoch(3),
        z(3, 7),
    )
    .unwrap()
}

// ---------------------------------------------------------------- discovery

#[test]
fn only_a_voter_can_lead_discovery() {
    let err = Discovery::new(ServerId(9), ids(&[1, 2, 3]), Epoch(0), Epoch(0), Zxid::ZERO);
    assert_eq!(err.unwrap_err(), MembershipError::NotAVoter(ServerId(9)));
}

#[test]
fn new_epoch_is_one_above_the_highest_accepted_once_a_quorum_reported() {
    let mut d = discovery();
    assert_eq!(
        d.on_follower_info(ServerId(2), Epoch(5)),
        EpochProgress::Waiting
    );
    assert_eq!(d.new_epoch(), None);
    // Leader + 2 + 3 = 3 of 5 voters.
    assert_eq!(
        d.on_follower_info(ServerId(3), Epoch(2)),
        EpochProgress::Chosen { epoch: Epoch(6) }
    );
    assert_eq!(d.new_epoch(), Some(Epoch(6)));
    assert_eq!(
        d.reported().collect::<Vec<_>>(),
        vec![ServerId(2), ServerId(3)]
    );
    // Latecomers learn the chosen epoch.
    assert_eq!(
        d.on_follower_info(ServerId(4), Epoch(6)),
        EpochProgress::Known { epoch: Epoch(6) }
    );
}

#[test]
fn a_latecomer_that_accepted_a_newer_epoch_sends_the_leader_looking() {
    let mut d = discovery();
    d.on_follower_info(ServerId(2), Epoch(3));
    d.on_follower_info(ServerId(3), Epoch(3));
    assert_eq!(d.new_epoch(), Some(Epoch(4)));
    // 4 accepted epoch 5 from a leader that never established it: it would
    // refuse epoch 4 forever, so a newer epoch must be chosen.
    assert_eq!(
        d.on_follower_info(ServerId(4), Epoch(5)),
        EpochProgress::Outdated {
            epoch: Epoch(4),
            accepted: Epoch(5)
        }
    );
    assert_eq!(
        answer_leader_info(Epoch(5), Epoch(4)),
        LeaderInfoAnswer::Stale
    );
    // An observer's promise binds it as much; an equal epoch is no refusal.
    assert_eq!(
        d.on_follower_info(ServerId(9), Epoch(7)),
        EpochProgress::Outdated {
            epoch: Epoch(4),
            accepted: Epoch(7)
        }
    );
    assert_eq!(
        d.on_follower_info(ServerId(5), Epoch(4)),
        EpochProgress::Known { epoch: Epoch(4) }
    );
    // Also once established.
    d.on_ack_epoch(ServerId(2), ack(4, Some(3), z(3, 7)))
        .unwrap();
    d.on_ack_epoch(ServerId(3), ack(4, Some(3), z(3, 7)))
        .unwrap();
    assert!(d.is_established());
    assert_eq!(
        d.on_follower_info(ServerId(4), Epoch(5)),
        EpochProgress::Outdated {
            epoch: Epoch(4),
            accepted: Epoch(5)
        }
    );
}

#[test]
fn the_leaders_own_accepted_epoch_counts() {
    let mut d = Discovery::new(ServerId(1), ids(&[1, 2, 3]), Epoch(8), Epoch(4), z(4, 1)).unwrap();
    assert_eq!(
        d.on_follower_info(ServerId(2), Epoch(1)),
        EpochProgress::Chosen { epoch: Epoch(9) }
    );
}

#[test]
fn observers_raise_the_epoch_but_never_make_the_quorum() {
    let mut d = discovery();
    assert_eq!(
        d.on_follower_info(ServerId(9), Epoch(11)),
        EpochProgress::Waiting
    );
    assert_eq!(
        d.on_follower_info(ServerId(2), Epoch(3)),
        EpochProgress::Waiting
    );
    assert_eq!(
        d.on_follower_info(ServerId(4), Epoch(3)),
        EpochProgress::Chosen { epoch: Epoch(12) }
    );
}

#[test]
fn a_repeated_info_does_not_count_twice() {
    let mut d = discovery();
    assert_eq!(
        d.on_follower_info(ServerId(2), Epoch(3)),
        EpochProgress::Waiting
    );
    assert_eq!(
        d.on_follower_info(ServerId(2), Epoch(3)),
        EpochProgress::Waiting
    );
}

#[test]
fn an_exhausted_epoch_counter_never_chooses() {
    let mut d = Discovery::new(
        ServerId(1),
        ids(&[1, 2]),
        Epoch(u32::MAX),
        Epoch(1),
        z(1, 1),
    )
    .unwrap();
    assert_eq!(
        d.on_follower_info(ServerId(2), Epoch(1)),
        EpochProgress::Waiting
    );
    assert_eq!(d.new_epoch(), None);
}

/// Discovery of leader 1 that chose epoch 4 with voters 2 and 3.
fn chosen() -> Discovery {
    let mut d = discovery();
    d.on_follower_info(ServerId(2), Epoch(3));
    d.on_follower_info(ServerId(3), Epoch(3));
    assert_eq!(d.new_epoch(), Some(Epoch(4)));
    d
}

#[test]
fn a_quorum_of_epoch_acks_establishes_the_epoch_once() {
    let mut d = chosen();
    assert_eq!(
        d.on_ack_epoch(ServerId(2), ack(4, Some(3), z(3, 5))),
        Ok(AckProgress::Waiting)
    );
    assert!(!d.is_established());
    assert_eq!(
        d.on_ack_epoch(ServerId(3), ack(4, Some(2), z(2, 9))),
        Ok(AckProgress::Established { epoch: Epoch(4) })
    );
    assert!(d.is_established());
    assert_eq!(
        d.on_ack_epoch(ServerId(4), ack(4, Some(3), z(3, 7))),
        Ok(AckProgress::Sync)
    );
}

#[test]
fn epoch_acks_that_do_not_count() {
    let table = [
        // already accepted epoch 4 once (maybe from a rival leader)
        (2, ack(4, None, z(3, 1))),
        // an observer
        (9, ack(4, Some(3), z(3, 1))),
    ];
    for (sid, a) in table {
        let mut d = chosen();
        assert_eq!(d.on_ack_epoch(ServerId(sid), a), Ok(AckProgress::Waiting));
        assert_eq!(
            d.on_ack_epoch(ServerId(3), ack(4, Some(3), z(3, 1))),
            Ok(AckProgress::Waiting),
            "sid {sid} must not have counted"
        );
    }
}

#[test]
fn an_epoch_ack_for_another_epoch_is_refused() {
    let mut d = discovery();
    assert_eq!(
        d.on_ack_epoch(ServerId(2), ack(4, Some(3), z(3, 1))),
        Err(DiscoveryError::WrongEpoch {
            ours: None,
            got: Epoch(4)
        })
    );
    let mut d = chosen();
    assert_eq!(
        d.on_ack_epoch(ServerId(2), ack(5, Some(3), z(3, 1))),
        Err(DiscoveryError::WrongEpoch {
            ours: Some(Epoch(4)),
            got: Epoch(5)
        })
    );
}

#[test]
fn a_voter_ahead_of_the_leader_stops_discovery() {
    // Ours: current epoch 3, last zxid (3, 7).
    let ahead = [
        (Some(4), z(3, 1)), // newer current epoch, even with an older zxid
        (Some(3), z(3, 8)), // same epoch, longer history
    ];
    for (current, last) in ahead {
        let mut d = chosen();
        let got = d.on_ack_epoch(ServerId(2), ack(4, current, last));
        assert!(
            matches!(
                got,
                Err(DiscoveryError::FollowerAhead {
                    sid: ServerId(2),
                    ..
                })
            ),
            "{current:?} {last}: {got:?}"
        );
    }
    let mut d = chosen();
    assert_eq!(
        d.on_ack_epoch(ServerId(2), ack(4, Some(3), z(3, 7))),
        Ok(AckProgress::Waiting),
        "an equal history is not ahead"
    );
}

#[test]
fn learners_accept_only_a_newer_epoch() {
    let table = [
        (3, 4, LeaderInfoAnswer::Accept),
        (4, 4, LeaderInfoAnswer::AlreadyAccepted),
        (5, 4, LeaderInfoAnswer::Stale),
    ];
    for (accepted, new, want) in table {
        assert_eq!(
            answer_leader_info(Epoch(accepted), Epoch(new)),
            want,
            "accepted {accepted}, offered {new}"
        );
    }
}

// ---------------------------------------------------------------- sync choice

#[test]
fn sync_choice_table() {
    // The leader's log: history up to (1, 3) only in its snapshot, then
    // (1, 4) (1, 5) (3, 1) (3, 2) (4, 1) (4, 2); epoch 2 committed nothing.
    let log = [z(1, 4), z(1, 5), z(3, 1), z(3, 2), z(4, 1), z(4, 2)];
    let leader = LogView {
        log_start: z(1, 3),
        log: &log,
    };
    assert_eq!(leader.last_committed(), z(4, 2));
    let table = [
        (
            "up to date: an empty DIFF",
            z(4, 2),
            SyncPlan::Diff { from: z(4, 2) },
        ),
        (
            "in the log: DIFF",
            z(3, 1),
            SyncPlan::Diff { from: z(3, 1) },
        ),
        (
            "exactly at the log's start: DIFF",
            z(1, 3),
            SyncPlan::Diff { from: z(1, 3) },
        ),
        ("older than the log: SNAP", z(1, 2), SyncPlan::Snap),
        (
            "a blank learner, log truncated: SNAP",
            Zxid::ZERO,
            SyncPlan::Snap,
        ),
        (
            "ahead in the current history: TRUNC",
            z(4, 5),
            SyncPlan::Trunc { to: z(4, 2) },
        ),
        (
            "ahead with a newer epoch: TRUNC",
            z(5, 1),
            SyncPlan::Trunc { to: z(4, 2) },
        ),
        // The classic divergence: uncommitted txns of an old epoch.
        (
            "diverged within epoch 1",
            z(1, 6),
            SyncPlan::Trunc { to: z(1, 5) },
        ),
        (
            "diverged within epoch 3",
            z(3, 3),
            SyncPlan::Trunc { to: z(3, 2) },
        ),
        (
            "an epoch the leader never saw",
            z(2, 4),
            SyncPlan::Trunc { to: z(1, 5) },
        ),
    ];
    for (why, learner, want) in table {
        assert_eq!(choose_sync(learner, &leader), want, "{why}");
    }
}

#[test]
fn sync_choice_with_a_whole_log() {
    let log = [z(1, 1), z(1, 2)];
    let leader = LogView {
        log_start: Zxid::ZERO,
        log: &log,
    };
    assert_eq!(
        choose_sync(Zxid::ZERO, &leader),
        SyncPlan::Diff { from: Zxid::ZERO }
    );
    assert_eq!(
        choose_sync(z(1, 1), &leader),
        SyncPlan::Diff { from: z(1, 1) }
    );
    // Diverged before the leader's first txn: drop everything.
    let empty = LogView {
        log_start: Zxid::ZERO,
        log: &[],
    };
    assert_eq!(empty.last_committed(), Zxid::ZERO);
    assert_eq!(
        choose_sync(z(1, 3), &empty),
        SyncPlan::Trunc { to: Zxid::ZERO }
    );
}

#[test]
fn sync_choice_when_only_the_snapshot_is_left() {
    // The log was truncated behind a snapshot at (2, 9) and nothing since.
    let leader = LogView {
        log_start: z(2, 9),
        log: &[],
    };
    assert_eq!(leader.last_committed(), z(2, 9));
    assert_eq!(
        choose_sync(z(2, 9), &leader),
        SyncPlan::Diff { from: z(2, 9) }
    );
    assert_eq!(choose_sync(z(2, 8), &leader), SyncPlan::Snap);
    assert_eq!(
        choose_sync(z(2, 10), &leader),
        SyncPlan::Trunc { to: z(2, 9) }
    );
}

#[test]
fn every_plan_but_snap_says_where_the_diff_starts() {
    assert_eq!(SyncPlan::Diff { from: z(1, 1) }.diff_from(), Some(z(1, 1)));
    assert_eq!(SyncPlan::Trunc { to: z(1, 2) }.diff_from(), Some(z(1, 2)));
    assert_eq!(SyncPlan::Snap.diff_from(), None);
}
