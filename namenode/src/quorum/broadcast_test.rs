//! Broadcast tests: one core's view as tables of (event, expected actions).
//! The seeded simulation of whole ensembles is in `broadcast_sim_test.rs`.

use super::*;

const E: Epoch = Epoch(5);

fn ids(sids: &[u64]) -> BTreeSet<ServerId> {
    sids.iter().map(|&s| ServerId(s)).collect()
}

fn z(counter: u32) -> Zxid {
    Zxid::new(E, counter)
}

fn old(counter: u32) -> Zxid {
    Zxid::new(Epoch(4), counter)
}

fn bytes(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn ack(zxid: Zxid) -> Message {
    Message::Ack { epoch: E, zxid }
}

fn proposal(zxid: Zxid, p: &str) -> Message {
    Message::Proposal {
        epoch: E,
        zxid,
        payload: bytes(p),
    }
}

fn commit(zxid: Zxid) -> Message {
    Message::Commit { epoch: E, zxid }
}

fn inform(zxid: Zxid, p: &str) -> Message {
    Message::Inform {
        epoch: E,
        zxid,
        payload: bytes(p),
    }
}

fn send(to: u64, msg: Message) -> Action {
    Action::Send {
        to: ServerId(to),
        msg,
    }
}

fn journal(zxid: Zxid, p: &str) -> Action {
    Action::Journal {
        zxid,
        payload: bytes(p),
    }
}

fn apply(zxid: Zxid) -> Action {
    Action::Apply { zxid }
}

// ---------------------------------------------------------------- leader

/// Leader 1 of voters {1, 2, 3, 4, 5} in epoch 5, history up to (4, 9);
/// followers 2 and 3 and observer 9 synced.
fn leader() -> Leader {
    let mut l = Leader::new(ServerId(1), E, ids(&[1, 2, 3, 4, 5]), old(9)).unwrap();
    for sid in [2, 3, 9] {
        assert_eq!(l.start_forwarding(ServerId(sid), old(9)), Ok(vec![]));
    }
    l.on_synced(ServerId(2)).unwrap();
    assert!(!l.has_quorum(), "two of five voters are not a quorum");
    l.on_synced(ServerId(3)).unwrap();
    assert!(l.has_quorum());
    l
}

fn propose(l: &mut Leader, p: &str) -> Zxid {
    l.propose(bytes(p)).unwrap().0
}

#[test]
fn a_leader_needs_a_voter_and_an_older_history() {
    assert_eq!(
        Leader::new(ServerId(9), E, ids(&[1, 2, 3]), old(1)).unwrap_err(),
        StartError::NotAVoter(ServerId(9))
    );
    assert_eq!(
        Leader::new(ServerId(1), E, ids(&[1, 2, 3]), z(1)).unwrap_err(),
        StartError::HistoryNotBelowEpoch {
            last: z(1),
            epoch: E
        }
    );
}

#[test]
fn no_write_without_a_synced_quorum() {
    let mut l = Leader::new(ServerId(1), E, ids(&[1, 2, 3]), old(9)).unwrap();
    assert_eq!(l.propose(bytes("a")), Err(NotLeading::NoQuorum));
    l.start_forwarding(ServerId(9), old(9)).unwrap();
    assert_eq!(
        l.on_synced(ServerId(9)),
        Err(Ignored::NotCounted(ServerId(9))),
        "observers never count"
    );
    assert_eq!(
        l.on_synced(ServerId(2)),
        Err(Ignored::NotCounted(ServerId(2))),
        "only a learner we forward to can be synced"
    );
    assert_eq!(l.propose(bytes("a")), Err(NotLeading::NoQuorum));
    l.start_forwarding(ServerId(2), old(9)).unwrap();
    l.on_synced(ServerId(2)).unwrap();
    assert!(l.has_quorum());
    assert_eq!(l.propose(bytes("a")).unwrap().0, z(1));
}

#[test]
fn the_quorum_was_last_heard_when_its_slowest_needed_member_was() {
    // Voters {1..5}: us (at 100) and two of followers 2 and 3 make the quorum.
    let l = leader();
    let heard = |sid: ServerId| match sid.0 {
        2 => Some(90),
        3 => Some(40),
        9 => Some(99), // an observer never counts
        _ => None,
    };
    assert_eq!(l.quorum_heard_at(100, heard), Some(40));
    let mut lost = leader();
    lost.on_peer_lost(ServerId(3));
    assert_eq!(lost.quorum_heard_at(100, heard), None, "no quorum synced");
    let alone = Leader::new(ServerId(1), E, ids(&[1]), Zxid::ZERO).unwrap();
    assert_eq!(alone.quorum_heard_at(100, |_| None), Some(100));
}

#[test]
fn a_single_voter_leads_alone() {
    let mut l = Leader::new(ServerId(1), E, ids(&[1]), Zxid::ZERO).unwrap();
    let (zxid, actions) = l.propose(bytes("a")).unwrap();
    assert_eq!(actions, vec![journal(z(1), "a")]);
    assert_eq!(l.on_message(ServerId(1), ack(zxid)), Ok(vec![apply(z(1))]));
}

#[test]
fn a_proposal_is_journaled_here_and_sent_to_synced_followers_only() {
    let mut l = leader();
    let (zxid, actions) = l.propose(bytes("a")).unwrap();
    assert_eq!(zxid, z(1), "the first zxid of an epoch has counter 1");
    assert_eq!(
        actions,
        vec![
            journal(z(1), "a"),
            send(2, proposal(z(1), "a")),
            send(3, proposal(z(1), "a")),
        ]
    );
    assert_eq!(propose(&mut l, "b"), z(2));
    assert_eq!(l.last_proposed(), z(2));
    assert_eq!(l.last_committed(), old(9));
}

#[test]
fn a_strict_majority_of_voters_commits() {
    let mut l = leader();
    propose(&mut l, "a");
    assert_eq!(l.on_message(ServerId(1), ack(z(1))), Ok(vec![]));
    assert_eq!(l.on_message(ServerId(2), ack(z(1))), Ok(vec![]));
    assert_eq!(
        l.on_message(ServerId(3), ack(z(1))),
        Ok(vec![
            apply(z(1)),
            send(2, commit(z(1))),
            send(3, commit(z(1))),
            send(9, inform(z(1), "a")),
        ])
    );
    assert_eq!(l.last_committed(), z(1));
    assert_eq!(
        l.on_message(ServerId(1), ack(z(1))),
        Err(Ignored::Duplicate(z(1))),
        "a late ACK of a committed zxid"
    );
}

#[test]
fn the_leaders_own_ack_is_not_required() {
    let mut l = leader();
    for sid in [4, 5] {
        l.start_forwarding(ServerId(sid), old(9)).unwrap();
        l.on_synced(ServerId(sid)).unwrap();
    }
    propose(&mut l, "a");
    l.on_message(ServerId(2), ack(z(1))).unwrap();
    l.on_message(ServerId(3), ack(z(1))).unwrap();
    let actions = l.on_message(ServerId(4), ack(z(1))).unwrap();
    assert_eq!(actions.first(), Some(&apply(z(1))));
}

#[test]
fn a_later_zxid_never_commits_before_an_earlier_one() {
    let mut l = leader();
    propose(&mut l, "a");
    propose(&mut l, "b");
    propose(&mut l, "c");
    // (5, 2) and (5, 3) reach a quorum first: nothing commits.
    for zxid in [z(2), z(3)] {
        for sid in [1, 2, 3] {
            assert_eq!(l.on_message(ServerId(sid), ack(zxid)), Ok(vec![]));
        }
    }
    l.on_message(ServerId(1), ack(z(1))).unwrap();
    l.on_message(ServerId(2), ack(z(1))).unwrap();
    let actions = l.on_message(ServerId(3), ack(z(1))).unwrap();
    let applied: Vec<_> = actions
        .iter()
        .filter(|a| matches!(a, Action::Apply { .. }))
        .cloned()
        .collect();
    assert_eq!(applied, vec![apply(z(1)), apply(z(2)), apply(z(3))]);
    assert_eq!(l.last_committed(), z(3));
}

#[test]
fn acks_that_do_not_count() {
    let table: [(&str, u64, Message, Ignored); 6] = [
        (
            "stale epoch",
            2,
            Message::Ack {
                epoch: Epoch(4),
                zxid: z(1),
            },
            Ignored::StaleEpoch {
                ours: E,
                got: Epoch(4),
            },
        ),
        ("observer", 9, ack(z(1)), Ignored::NotCounted(ServerId(9))),
        (
            "voter not synced",
            4,
            ack(z(1)),
            Ignored::NotCounted(ServerId(4)),
        ),
        ("stranger", 77, ack(z(1)), Ignored::NotCounted(ServerId(77))),
        ("never proposed", 2, ack(z(2)), Ignored::NotProposed(z(2))),
        ("not an ACK", 2, commit(z(1)), Ignored::WrongRole),
    ];
    for (why, from, msg, want) in table {
        let mut l = leader();
        propose(&mut l, "a");
        l.on_message(ServerId(1), ack(z(1))).unwrap();
        assert_eq!(l.on_message(ServerId(from), msg), Err(want), "{why}");
        assert_eq!(
            l.on_message(ServerId(2), ack(z(1))),
            Ok(vec![]),
            "{why}: must not have counted"
        );
    }
    let mut l = leader();
    propose(&mut l, "a");
    l.on_message(ServerId(2), ack(z(1))).unwrap();
    assert_eq!(
        l.on_message(ServerId(2), ack(z(1))),
        Err(Ignored::Duplicate(z(1))),
        "the same ACK twice"
    );
    assert_eq!(l.on_message(ServerId(1), ack(z(1))), Ok(vec![]));
}

#[test]
fn a_newer_epoch_sends_the_leader_looking() {
    let mut l = leader();
    let msg = Message::Ack {
        epoch: Epoch(6),
        zxid: Zxid::new(Epoch(6), 1),
    };
    assert_eq!(
        l.on_message(ServerId(2), msg),
        Ok(vec![Action::GoLooking(LookingReason::NewerEpoch {
            ours: E,
            seen: Epoch(6)
        })])
    );
    assert!(!l.has_quorum());
    assert_eq!(l.propose(bytes("a")), Err(NotLeading::SteppedDown));
    assert_eq!(
        l.on_message(ServerId(2), ack(z(1))),
        Err(Ignored::SteppedDown)
    );
}

#[test]
fn a_learner_synced_late_gets_the_outstanding_proposals() {
    let mut l = leader();
    propose(&mut l, "a");
    propose(&mut l, "b");
    assert_eq!(
        l.start_forwarding(ServerId(4), z(1)),
        Err(Ignored::SyncBehind {
            synced_to: z(1),
            last_committed: old(9)
        }),
        "a sync must reach the last committed zxid"
    );
    assert_eq!(
        l.start_forwarding(ServerId(4), old(9)),
        Ok(vec![
            send(4, proposal(z(1), "a")),
            send(4, proposal(z(2), "b"))
        ])
    );
    assert_eq!(
        l.start_forwarding(ServerId(8), old(9)),
        Ok(vec![]),
        "an observer"
    );
    assert_eq!(
        l.start_forwarding(ServerId(1), old(9)),
        Err(Ignored::WrongRole),
        "the leader does not follow itself"
    );
    // Its ACKs count even before it ACKs NEWLEADER: they are durable.
    l.on_message(ServerId(1), ack(z(1))).unwrap();
    l.on_message(ServerId(4), ack(z(1))).unwrap();
    let actions = l.on_message(ServerId(2), ack(z(1))).unwrap();
    assert!(actions.contains(&send(4, commit(z(1)))));
    assert!(actions.contains(&send(8, inform(z(1), "a"))));
}

#[test]
fn losing_the_quorum_steps_the_leader_down() {
    let mut l = leader();
    assert_eq!(
        l.on_peer_lost(ServerId(9)),
        vec![],
        "an observer does not matter"
    );
    assert_eq!(l.on_peer_lost(ServerId(4)), vec![], "never synced");
    assert!(l.has_quorum());
    assert_eq!(
        l.on_peer_lost(ServerId(3)),
        vec![Action::GoLooking(LookingReason::LostQuorum)]
    );
    assert!(!l.has_quorum());
    assert_eq!(l.propose(bytes("a")), Err(NotLeading::SteppedDown));
    assert_eq!(l.on_peer_lost(ServerId(2)), vec![], "once is enough");
}

#[test]
fn losing_a_peer_before_the_quorum_formed_is_not_a_step_down() {
    let mut l = Leader::new(ServerId(1), E, ids(&[1, 2, 3]), old(9)).unwrap();
    l.start_forwarding(ServerId(2), old(9)).unwrap();
    assert_eq!(l.on_peer_lost(ServerId(2)), vec![]);
    l.start_forwarding(ServerId(3), old(9)).unwrap();
    l.on_synced(ServerId(3)).unwrap();
    assert!(l.has_quorum());
}

#[test]
fn acks_of_a_lost_follower_are_withdrawn() {
    // Its re-sync may TRUNC what it ACKed, so those ACKs cannot stand.
    let mut l = leader();
    l.start_forwarding(ServerId(4), old(9)).unwrap();
    l.on_synced(ServerId(4)).unwrap();
    propose(&mut l, "a");
    l.on_message(ServerId(4), ack(z(1))).unwrap();
    l.on_message(ServerId(1), ack(z(1))).unwrap();
    assert_eq!(l.on_peer_lost(ServerId(4)), vec![]);
    assert_eq!(
        l.on_message(ServerId(2), ack(z(1))),
        Ok(vec![]),
        "only 1 and 2 count"
    );
    // Back, re-synced: it gets the proposal again, and its new ACK counts.
    assert_eq!(
        l.start_forwarding(ServerId(4), old(9)),
        Ok(vec![send(4, proposal(z(1), "a"))])
    );
    assert_eq!(
        l.on_message(ServerId(4), ack(z(1))),
        Ok(vec![
            apply(z(1)),
            send(2, commit(z(1))),
            send(3, commit(z(1))),
            send(4, commit(z(1))),
            send(9, inform(z(1), "a")),
        ])
    );
}

#[test]
fn an_exhausted_epoch_refuses_writes() {
    let mut l = Leader::new(ServerId(1), E, ids(&[1]), old(9)).unwrap();
    // Skip to the end of the counter rather than propose 2^32 times.
    l.last_proposed = Zxid::new(E, u32::MAX - 1);
    assert_eq!(l.propose(bytes("a")).unwrap().0, Zxid::new(E, u32::MAX));
    assert_eq!(l.propose(bytes("b")), Err(NotLeading::EpochExhausted));
}

// ---------------------------------------------------------------- learner

/// Follower of leader 1 in epoch 5, synced to (4, 9).
fn follower() -> Learner {
    Learner::new(LearnerRole::Follower, ServerId(1), E, old(9))
}

fn observer() -> Learner {
    Learner::new(LearnerRole::Observer, ServerId(1), E, old(9))
}

#[test]
fn a_follower_journals_acks_then_applies_on_commit() {
    let mut f = follower();
    assert_eq!(
        f.on_message(proposal(z(1), "a")),
        Ok(vec![journal(z(1), "a")])
    );
    assert_eq!(f.last_queued(), z(1));
    assert_eq!(f.on_journaled(z(1)), Ok(vec![send(1, ack(z(1)))]));
    assert_eq!(f.on_message(commit(z(1))), Ok(vec![apply(z(1))]));
}

#[test]
fn a_commit_before_the_journal_is_durable_waits_for_it() {
    let mut f = follower();
    f.on_message(proposal(z(1), "a")).unwrap();
    f.on_message(proposal(z(2), "b")).unwrap();
    f.on_message(proposal(z(3), "c")).unwrap();
    assert_eq!(f.on_message(commit(z(1))), Ok(vec![]));
    assert_eq!(f.on_message(commit(z(2))), Ok(vec![]));
    // One group commit covers (5, 1) and (5, 2): an ACK for each, then both apply.
    assert_eq!(
        f.on_journaled(z(2)),
        Ok(vec![
            send(1, ack(z(1))),
            send(1, ack(z(2))),
            apply(z(1)),
            apply(z(2)),
        ])
    );
    assert_eq!(f.on_journaled(z(3)), Ok(vec![send(1, ack(z(3)))]));
    assert_eq!(f.on_message(commit(z(3))), Ok(vec![apply(z(3))]));
}

#[test]
fn a_commit_covers_the_earlier_zxids() {
    let mut f = follower();
    f.on_message(proposal(z(1), "a")).unwrap();
    f.on_message(proposal(z(2), "b")).unwrap();
    f.on_journaled(z(2)).unwrap();
    assert_eq!(
        f.on_message(commit(z(2))),
        Ok(vec![apply(z(1)), apply(z(2))])
    );
}

#[test]
fn follower_events_that_are_ignored() {
    let table: [(&str, Message, Ignored); 5] = [
        (
            "stale epoch",
            Message::Proposal {
                epoch: Epoch(4),
                zxid: old(10),
                payload: bytes("x"),
            },
            Ignored::StaleEpoch {
                ours: E,
                got: Epoch(4),
            },
        ),
        (
            "duplicate proposal",
            proposal(z(1), "a"),
            Ignored::Duplicate(z(1)),
        ),
        ("duplicate commit", commit(z(1)), Ignored::Duplicate(z(1))),
        (
            "inform to a follower",
            inform(z(2), "b"),
            Ignored::WrongRole,
        ),
        ("ack to a follower", ack(z(1)), Ignored::WrongRole),
    ];
    for (why, msg, want) in table {
        let mut f = follower();
        f.on_message(proposal(z(1), "a")).unwrap();
        f.on_journaled(z(1)).unwrap();
        f.on_message(commit(z(1))).unwrap();
        assert_eq!(f.on_message(msg), Err(want), "{why}");
        assert_eq!(
            f.on_message(proposal(z(2), "b")),
            Ok(vec![journal(z(2), "b")]),
            "{why}: the follower carries on"
        );
    }
    let mut f = follower();
    f.on_message(proposal(z(1), "a")).unwrap();
    assert_eq!(f.on_journaled(z(2)), Err(Ignored::NotProposed(z(2))));
    f.on_journaled(z(1)).unwrap();
    assert_eq!(f.on_journaled(z(1)), Err(Ignored::Duplicate(z(1))));
}

#[test]
fn follower_gaps_and_newer_epochs_go_looking() {
    let table: [(&str, Message, LookingReason); 4] = [
        (
            "a skipped proposal",
            proposal(z(3), "c"),
            LookingReason::Gap {
                have: z(1),
                got: z(3),
            },
        ),
        (
            "a commit of a txn never proposed",
            commit(z(2)),
            LookingReason::Gap {
                have: z(1),
                got: z(2),
            },
        ),
        (
            "a newer epoch",
            Message::Commit {
                epoch: Epoch(6),
                zxid: Zxid::new(Epoch(6), 1),
            },
            LookingReason::NewerEpoch {
                ours: E,
                seen: Epoch(6),
            },
        ),
        (
            "a proposal of our epoch not starting at counter 1",
            proposal(z(2), "b"),
            LookingReason::Gap {
                have: old(9),
                got: z(2),
            },
        ),
    ];
    for (i, (why, msg, want)) in table.into_iter().enumerate() {
        let mut f = follower();
        if i < 3 {
            f.on_message(proposal(z(1), "a")).unwrap();
        }
        assert_eq!(
            f.on_message(msg),
            Ok(vec![Action::GoLooking(want)]),
            "{why}"
        );
        assert_eq!(
            f.on_message(proposal(z(9), "x")),
            Err(Ignored::SteppedDown),
            "{why}: finished"
        );
        assert_eq!(f.on_journaled(z(1)), Err(Ignored::SteppedDown));
    }
}

#[test]
fn a_follower_synced_mid_epoch_continues_from_its_sync_point() {
    let mut f = Learner::new(LearnerRole::Follower, ServerId(1), E, z(7));
    assert_eq!(
        f.on_message(proposal(z(8), "h")),
        Ok(vec![journal(z(8), "h")])
    );
}

#[test]
fn an_observer_journals_informs_and_applies_without_acking() {
    let mut o = observer();
    assert_eq!(
        o.on_message(inform(z(1), "a")),
        Ok(vec![journal(z(1), "a")])
    );
    assert_eq!(
        o.on_message(inform(z(2), "b")),
        Ok(vec![journal(z(2), "b")])
    );
    assert_eq!(o.on_journaled(z(2)), Ok(vec![apply(z(1)), apply(z(2))]));
    assert_eq!(o.on_message(proposal(z(3), "c")), Err(Ignored::WrongRole));
    assert_eq!(o.on_message(commit(z(2))), Err(Ignored::WrongRole));
    assert_eq!(
        o.on_message(inform(z(4), "d")),
        Ok(vec![Action::GoLooking(LookingReason::Gap {
            have: z(2),
            got: z(4)
        })])
    );
}
