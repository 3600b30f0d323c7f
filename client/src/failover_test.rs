use std::time::{Duration, Instant};

use dfs_proto::status::{ErrorKind, LEADER_HINT_KEY};

use super::{Verdict, classify, next_candidate};
use crate::error::Error;
use crate::fake_cluster::{FakeNamenodes, NamenodeFault, dead_address, frozen_namenode};

const LONG: u64 = 10_000;

fn not_leader(hint: Option<&str>) -> tonic::Status {
    let mut status = ErrorKind::NotLeader.status("not the leader");
    if let Some(hint) = hint {
        status
            .metadata_mut()
            .insert(LEADER_HINT_KEY, hint.parse().unwrap());
    }
    status
}

#[test]
fn statuses_sort_into_redirect_next_or_return() {
    let cases = [
        (
            not_leader(Some("10.0.0.2:8020")),
            Verdict::Redirect {
                hint: "10.0.0.2:8020".into(),
            },
        ),
        (not_leader(None), Verdict::Next),
        (not_leader(Some(" ")), Verdict::Next),
        (
            tonic::Status::unavailable("tcp connect error"),
            Verdict::Next,
        ),
        (tonic::Status::deadline_exceeded("timeout"), Verdict::Next),
        (tonic::Status::cancelled("reset"), Verdict::Next),
        // The connection broke mid-call (the namenode was killed).
        (tonic::Status::unknown("transport error"), Verdict::Next),
        (ErrorKind::Unavailable.status("disk full"), Verdict::Return),
        (ErrorKind::NotFound.status("no such file"), Verdict::Return),
        (
            ErrorKind::PermissionDenied.status("denied"),
            Verdict::Return,
        ),
        (tonic::Status::internal("bug"), Verdict::Return),
    ];
    for (status, expected) in cases {
        assert_eq!(classify(&status), expected, "{status:?}");
    }
}

#[tokio::test]
async fn follower_hint_reaches_the_leader_in_one_hop_and_is_remembered() {
    let nns = FakeNamenodes::start(3).await;
    let [nn0, nn1, nn2] = [0, 1, 2].map(|i| nns.addresses[i].clone());
    {
        let mut state = nns.state();
        state.followers.insert(nn0.clone(), Some(nn2.clone()));
        state.followers.insert(nn1.clone(), Some(nn2.clone()));
    }
    let client = nns.client(&[&nn0, &nn1, &nn2], LONG);

    client.mkdirs("/a", false).await.unwrap();
    let calls = nns.calls_of("Mkdirs");
    let nodes: Vec<&str> = calls.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(nodes, [nn0.as_str(), nn2.as_str()], "one hop, not via nn1");
    assert_eq!(
        calls[0].1, calls[1].1,
        "the redirected write keeps its call id"
    );

    // The next call goes straight to the leader.
    client.stat("/a").await.unwrap();
    let reads: Vec<String> = nns
        .calls_of("GetFileInfo")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(reads, [nn2]);
}

#[tokio::test]
async fn hint_to_an_unconfigured_namenode_is_followed() {
    let nns = FakeNamenodes::start(2).await;
    let [nn0, nn1] = [0, 1].map(|i| nns.addresses[i].clone());
    nns.state().followers.insert(nn0.clone(), Some(nn1.clone()));
    let client = nns.client(&[&nn0], LONG);

    client.mkdirs("/a", false).await.unwrap();
    let nodes: Vec<String> = nns.calls_of("Mkdirs").into_iter().map(|(n, _)| n).collect();
    assert_eq!(nodes, [nn0, nn1]);
}

#[tokio::test]
async fn follower_without_a_hint_passes_the_call_to_the_next_namenode() {
    let nns = FakeNamenodes::start(2).await;
    let [nn0, nn1] = [0, 1].map(|i| nns.addresses[i].clone());
    nns.state().followers.insert(nn0.clone(), None);
    let client = nns.client(&[&nn0, &nn1], LONG);

    client.mkdirs("/a", false).await.unwrap();
    let nodes: Vec<String> = nns.calls_of("Mkdirs").into_iter().map(|(n, _)| n).collect();
    assert_eq!(nodes, [nn0, nn1]);
}

#[tokio::test]
async fn dead_first_namenode_fails_over_to_the_second() {
    let nns = FakeNamenodes::start(1).await;
    let dead = dead_address().await;
    let live = nns.addresses[0].clone();
    let client = nns.client(&[&dead, &live], LONG);

    let started = Instant::now();
    client.mkdirs("/a", false).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no backoff needed"
    );
    assert_eq!(nns.calls_of("Mkdirs").len(), 1);
    client.stat("/a").await.unwrap();
}

#[tokio::test]
async fn every_namenode_dead_is_unreachable_within_the_deadline() {
    let dead = [dead_address().await, dead_address().await];
    let nns = FakeNamenodes::start(0).await;
    let client = nns.client(&[&dead[0], &dead[1]], 300);

    let started = Instant::now();
    let error = client.stat("/a").await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300),
        "gave up early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "overran the deadline: {elapsed:?}"
    );
    let Error::Unreachable { namenodes, reason } = &error else {
        panic!("expected Unreachable, got {error:?}");
    };
    assert_eq!(namenodes, &dead);
    assert!(!reason.is_empty());
    let message = error.to_string();
    assert!(
        message.contains(&dead[0]) && message.contains(&dead[1]),
        "{message}"
    );
}

#[tokio::test]
async fn followers_hinting_at_each_other_back_off_then_give_up() {
    let nns = FakeNamenodes::start(2).await;
    let [nn0, nn1] = [0, 1].map(|i| nns.addresses[i].clone());
    {
        let mut state = nns.state();
        state.followers.insert(nn0.clone(), Some(nn1.clone()));
        state.followers.insert(nn1.clone(), Some(nn0.clone()));
    }
    let client = nns.client(&[&nn0, &nn1], 500);

    let error = client.mkdirs("/a", false).await.unwrap_err();
    assert!(
        matches!(&error, Error::Unreachable { reason, .. } if reason.contains("not the leader")),
        "{error:?}"
    );
    // 500 ms of 50, 100, 200 ms pauses (with jitter): a few rounds, not a spin.
    let attempts = nns.calls_of("Mkdirs").len();
    assert!((4..=20).contains(&attempts), "{attempts} attempts");
}

#[tokio::test]
async fn retried_write_carries_the_same_call_id_each_time() {
    let nns = FakeNamenodes::start(2).await;
    let [nn0, nn1] = [0, 1].map(|i| nns.addresses[i].clone());
    {
        let mut state = nns.state();
        // nn0 leads but the reply to the first attempt is lost; nn1 points back.
        state
            .namenode_faults
            .push((nn0.clone(), NamenodeFault::Transport));
        state.followers.insert(nn1.clone(), Some(nn0.clone()));
    }
    let client = nns.client(&[&nn0, &nn1], LONG);

    client.mkdirs("/a", false).await.unwrap();
    let calls = nns.calls_of("Mkdirs");
    let nodes: Vec<&str> = calls.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(nodes, [nn0.as_str(), nn1.as_str(), nn0.as_str()]);
    let id = calls[0].1;
    assert!(calls.iter().all(|(_, i)| *i == id), "{calls:?}");

    client.mkdirs("/b", false).await.unwrap();
    let next = nns.calls_of("Mkdirs").last().unwrap().1;
    assert_ne!(next, id, "a new logical call gets a new call id");
}

#[tokio::test]
async fn refusal_is_returned_without_trying_other_namenodes() {
    let nns = FakeNamenodes::start(2).await;
    let [nn0, nn1] = [0, 1].map(|i| nns.addresses[i].clone());
    nns.state().namenode_faults.push((
        nn0.clone(),
        NamenodeFault::Refuse(ErrorKind::PermissionDenied),
    ));
    let client = nns.client(&[&nn0, &nn1], LONG);

    let error = client.mkdirs("/a", false).await.unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::PermissionDenied));
    let error = client.stat("/missing").await.unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::NotFound));

    let nodes: Vec<String> = nns
        .state()
        .namenode_calls
        .iter()
        .map(|(n, _, _)| n.clone())
        .collect();
    assert_eq!(nodes, [nn0.clone(), nn0], "nn1 was never asked");
}

#[test]
fn the_next_candidate_is_untried_and_not_silent_when_possible() {
    let none_tried = |_: usize| false;
    /// (from, silent, tried, expected)
    type Case = (usize, &'static [bool], &'static [usize], Option<usize>);
    let cases: [Case; 6] = [
        (0, &[false, false, false], &[0], Some(1)),
        (2, &[false, false, false], &[2], Some(0)),
        (0, &[false, true, false], &[0], Some(2)),
        (0, &[false, true, true], &[0], None),
        (1, &[false, false, false], &[0, 1, 2], None),
        (0, &[true], &[0], None),
    ];
    for (from, silent, tried, expected) in cases {
        assert_eq!(
            next_candidate(from, silent, |i| tried.contains(&i)),
            expected,
            "from {from}, silent {silent:?}, tried {tried:?}"
        );
    }
    assert_eq!(next_candidate(0, &[], none_tried), None);
}

#[tokio::test]
async fn frozen_leader_costs_one_attempt_and_hints_naming_it_are_passed_over() {
    let (_frozen, frozen) = frozen_namenode();
    let nns = FakeNamenodes::start(2).await;
    let [nn1, nn2] = [0, 1].map(|i| nns.addresses[i].clone());
    // The followers still believe the frozen node leads; no one else does yet.
    {
        let mut state = nns.state();
        state.followers.insert(nn1.clone(), Some(frozen.clone()));
        state.followers.insert(nn2.clone(), Some(frozen.clone()));
    }
    let client = nns.client_with_rpc_timeout(&[&frozen, &nn1, &nn2], LONG, 300);
    let elected = {
        let state = nns.state.clone();
        let nn2 = nn2.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let mut state = state.lock().unwrap();
            state.followers.remove(&nn2);
            state.followers.insert(nn1, Some(nn2));
        })
    };

    let started = Instant::now();
    client.mkdirs("/a", false).await.unwrap();
    let elapsed = started.elapsed();
    elected.await.unwrap();
    // One 300 ms attempt at the frozen node, then rounds over the others
    // (pauses of at most 250 ms) until nn2 leads at 700 ms: never a second
    // wait on the frozen node.
    assert!(
        elapsed < Duration::from_millis(1_150),
        "took {elapsed:?} to reach the new leader"
    );
    let served: Vec<String> = nns.calls_of("Mkdirs").into_iter().map(|(n, _)| n).collect();
    assert_eq!(served.last(), Some(&nn2));

    // The next call starts where the last one succeeded.
    let started = Instant::now();
    client.stat("/a").await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(250));
}
