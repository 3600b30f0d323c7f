//! Leader election among real namenode processes, as ZooKeeper would elect:
//! a fresh ensemble elects the highest sid of the first quorum up; after the
//! leader dies the survivor with the newest data (epoch, then zxid, then sid)
//! leads in a higher epoch; a returning follower follows the current leader
//! without a new epoch; a minority elects nobody and refuses writes until a
//! majority is back. Each scenario runs with 3 and with 5 namenodes. An
//! observer follows every leader but never leads nor counts toward a quorum.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::thread;
use std::time::Duration;

use cluster::{MiniCluster, leader_of, wait_until};
use serde_json::{Value, json};

/// Bound on any election or catch-up in these tests (the namenodes decide
/// within a second on an idle machine; the tests share two cores).
const ELECTION: Duration = Duration::from_secs(30);
/// How long a minority is watched to make sure it elects nobody.
const NO_LEADER_WATCH: Duration = Duration::from_secs(3);

fn ensemble(namenodes: usize) -> MiniCluster {
    MiniCluster::builder()
        .namenodes(namenodes)
        .without_datanodes()
        .lay_out()
}

/// The status row of `node` in `rows`.
fn row<'a>(rows: &'a [Value], node: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["node"] == node)
        .unwrap_or_else(|| panic!("no {node} in {rows:?}"))
}

fn u64_of(row: &Value, field: &str) -> u64 {
    row[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a number in {row}"))
}

/// ZooKeeper's vote order: current epoch, then last zxid, then sid.
fn vote(row: &Value) -> (u64, u64, u64) {
    (
        u64_of(row, "current_epoch"),
        u64_of(row, "last_zxid"),
        u64_of(row, "sid"),
    )
}

/// Watches for `NO_LEADER_WATCH` that no namenode reports LEADING with a quorum behind it.
fn assert_no_leader_for_a_while(cluster: &MiniCluster, why: &str) {
    let until = std::time::Instant::now() + NO_LEADER_WATCH;
    while std::time::Instant::now() < until {
        let rows = cluster.ha_status();
        assert_eq!(
            leader_of(&rows, cluster.quorum()),
            None,
            "{why}, yet a leader was elected: {rows:#?}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until no running namenode claims to lead (a leader that lost its
/// quorum steps down once its followers fall silent).
fn wait_nobody_leads(cluster: &MiniCluster) {
    wait_until("no namenode reports LEADING", ELECTION, || {
        cluster.ha_status().iter().all(|r| r["state"] != "LEADING")
    });
}

fn mkdirs(cluster: &MiniCluster, paths: &[String]) {
    let mut args = vec!["mkdir", "-p"];
    args.extend(paths.iter().map(String::as_str));
    cluster.dfs_ok(&cluster.superuser(), &args);
}

/// The followers of `leader` among `rows`, highest sid first.
fn followers_by_sid_desc(rows: &[Value], leader: &str) -> Vec<String> {
    let mut followers: Vec<&Value> = rows
        .iter()
        .filter(|r| r["node"] != leader && r["state"] == "FOLLOWING")
        .collect();
    followers.sort_by_key(|r| std::cmp::Reverse(u64_of(r, "sid")));
    followers
        .iter()
        .map(|r| r["node"].as_str().unwrap().to_owned())
        .collect()
}

// --- (a) a fresh ensemble started one by one --------------------------------

/// Starts the namenodes in `order` one at a time. The first quorum of them
/// elects its highest sid (equal empty histories); the rest join it later
/// and follow it in the same epoch.
fn fresh_ensemble_elects_highest_sid_of_first_quorum(order: &[&str]) {
    let mut cluster = ensemble(order.len());
    let quorum = cluster.quorum();
    let first_quorum = &order[..quorum];
    let expected = *first_quorum.iter().max_by_key(|n| cluster.sid(n)).unwrap();

    eprintln!(
        "--- start {:?}: short of a quorum, nobody leads",
        &order[..quorum - 1]
    );
    {
        for node in &order[..quorum - 1] {
            cluster.start(node);
        }
        assert_no_leader_for_a_while(&cluster, "fewer than a quorum of namenodes run");
        for node in &order[..quorum - 1] {
            assert_eq!(cluster.ha_status_of(node)["state"], "LOOKING");
        }
    }

    eprintln!(
        "--- start {}: the quorum {first_quorum:?} elects {expected}",
        order[quorum - 1]
    );
    let epoch = {
        cluster.start(order[quorum - 1]);
        let leader = cluster.wait_for_leader(ELECTION);
        assert_eq!(
            leader, expected,
            "the highest sid of {first_quorum:?} should lead"
        );
        let status = cluster.ha_status_of(&leader);
        assert_eq!(status["leader_sid"], cluster.sid(&leader));
        u64_of(&status, "current_epoch")
    };

    eprintln!(
        "--- start {:?} one by one: each follows {expected} in epoch {epoch}",
        &order[quorum..]
    );
    {
        for node in &order[quorum..] {
            cluster.start(node);
            let status = cluster.wait_following(node, expected, ELECTION);
            assert_eq!(u64_of(&status, "current_epoch"), epoch, "{node}: {status}");
        }
        assert_eq!(cluster.leader().as_deref(), Some(expected));
        assert_eq!(
            u64_of(&cluster.ha_status_of(expected), "current_epoch"),
            epoch,
            "late joiners must not cause a new epoch"
        );
    }

    eprintln!("--- the ensemble serves writes and every namenode applies them");
    {
        mkdirs(&cluster, &["/fresh/a".to_owned(), "/fresh/b".to_owned()]);
        let rows = cluster.wait_converged(ELECTION);
        assert!(
            rows.iter().all(|r| u64_of(r, "applied_zxid") > 0),
            "{rows:#?}"
        );
        let listing = cluster.dfs_ok(&cluster.superuser(), &["ls", "/fresh"]);
        assert!(
            listing.contains("/fresh/a") && listing.contains("/fresh/b"),
            "{listing}"
        );
    }
}

#[test]
fn fresh_ensemble_of_3_started_one_by_one_elects_the_highest_sid_of_the_first_quorum() {
    // First quorum {nn2, nn1}: nn2 leads, and nn3 (a higher sid) only follows.
    fresh_ensemble_elects_highest_sid_of_first_quorum(&["nn2", "nn1", "nn3"]);
}

#[test]
fn fresh_ensemble_of_5_started_one_by_one_elects_the_highest_sid_of_the_first_quorum() {
    // First quorum {nn4, nn1, nn2}: nn4 leads; nn5 and nn3 follow it.
    fresh_ensemble_elects_highest_sid_of_first_quorum(&["nn4", "nn1", "nn2", "nn5", "nn3"]);
}

// --- (b) the leader dies -------------------------------------------------------

/// Stops the highest-sid followers, so that only a bare quorum keeps up with
/// new writes, then kills the leader: the bare quorum minus the leader is a
/// minority. The highest-sid stale follower comes back; the newest data
/// beats its higher sid, and the new leader's epoch is above the old one.
fn newest_survivor_leads_after_the_leader_is_killed(namenodes: usize) {
    let mut cluster = ensemble(namenodes);
    cluster.start_all();
    let quorum = cluster.quorum();

    let old_leader = cluster.wait_for_leader(ELECTION);
    let rows = cluster.wait_converged(ELECTION);
    let old_epoch = u64_of(row(&rows, &old_leader), "current_epoch");
    let followers = followers_by_sid_desc(&rows, &old_leader);
    let (stale, fresh) = followers.split_at(namenodes - quorum);
    eprintln!(
        "--- leader {old_leader} (epoch {old_epoch}); stale-to-be {stale:?}, fresh {fresh:?}"
    );

    eprintln!("--- write, stop {stale:?}, write more: only {old_leader} and {fresh:?} have it");
    let stale_rows: Vec<Value> = {
        mkdirs(&cluster, &["/before/stop".to_owned()]);
        cluster.wait_converged(ELECTION);
        let mut stale_rows = Vec::new();
        for node in stale {
            stale_rows.push(cluster.ha_status_of(node));
            cluster.stop(node);
        }
        let paths: Vec<String> = (0..20).map(|i| format!("/after/stop/d{i}")).collect();
        mkdirs(&cluster, &paths);
        stale_rows
    };

    eprintln!("--- kill -9 {old_leader}: {fresh:?} alone are a minority");
    let fresh_rows: Vec<Value> = {
        // Every fresh follower has acknowledged the writes (the leader needed
        // all of them for its quorum); wait until they have applied them too.
        let rows = cluster.wait_converged(ELECTION);
        for s in &stale_rows {
            for f in fresh {
                assert!(
                    u64_of(row(&rows, f), "last_zxid") > u64_of(s, "last_zxid"),
                    "{f} should have newer data than {}: {rows:#?} vs {s}",
                    s["node"]
                );
            }
        }
        let fresh_rows = fresh.iter().map(|f| row(&rows, f).clone()).collect();
        cluster.kill(&old_leader);
        wait_nobody_leads(&cluster);
        fresh_rows
    };

    let returning = &stale[0];
    let expected = fresh_rows
        .iter()
        .chain(&stale_rows[..1])
        .max_by_key(|r| vote(r))
        .unwrap()["node"]
        .as_str()
        .unwrap()
        .to_owned();
    eprintln!("--- start {returning} (the highest sid, but stale): {expected} must lead");
    {
        assert_ne!(&expected, returning);
        cluster.start(returning);
        let leader = cluster.wait_for_leader(ELECTION);
        assert_eq!(leader, expected, "the newest data should win the election");
        let status = cluster.ha_status_of(&leader);
        let new_epoch = u64_of(&status, "current_epoch");
        assert!(
            new_epoch > old_epoch,
            "epoch {new_epoch} after {old_epoch}: {status}"
        );
        cluster.wait_following(returning, &leader, ELECTION);
    }

    eprintln!("--- the rest come back; nothing written was lost");
    {
        for node in &stale[1..] {
            cluster.start(node);
        }
        cluster.start(&old_leader);
        let leader = cluster.leader().unwrap_or_default();
        assert_eq!(
            leader, expected,
            "returning nodes must not unseat the leader"
        );
        for node in cluster.namenodes() {
            if node != leader {
                cluster.wait_following(&node, &leader, ELECTION);
            }
        }
        cluster.wait_converged(ELECTION);
        let listing = cluster.dfs_ok(&cluster.superuser(), &["ls", "/after/stop"]);
        assert_eq!(listing.matches("/after/stop/d").count(), 20, "{listing}");
    }
}

#[test]
fn killing_the_leader_of_3_elects_the_survivor_with_the_newest_data_in_a_higher_epoch() {
    newest_survivor_leads_after_the_leader_is_killed(3);
}

#[test]
fn killing_the_leader_of_5_elects_the_survivor_with_the_newest_data_in_a_higher_epoch() {
    newest_survivor_leads_after_the_leader_is_killed(5);
}

// --- (c) a follower comes back -------------------------------------------------

fn returning_follower_follows_without_a_new_epoch(namenodes: usize) {
    let mut cluster = ensemble(namenodes);
    cluster.start_all();
    let leader = cluster.wait_for_leader(ELECTION);
    let rows = cluster.wait_converged(ELECTION);
    let epoch = u64_of(row(&rows, &leader), "current_epoch");
    let follower = followers_by_sid_desc(&rows, &leader)[0].clone();

    eprintln!("--- stop {follower}; {leader} keeps serving writes");
    {
        cluster.stop(&follower);
        let paths: Vec<String> = (0..10).map(|i| format!("/while/away/d{i}")).collect();
        mkdirs(&cluster, &paths);
    }

    eprintln!("--- start {follower}: it follows {leader} in epoch {epoch} and catches up");
    {
        cluster.start(&follower);
        let status = cluster.wait_following(&follower, &leader, ELECTION);
        assert_eq!(u64_of(&status, "current_epoch"), epoch, "{status}");
        let rows = cluster.wait_converged(ELECTION);
        assert_eq!(cluster.leader().as_deref(), Some(leader.as_str()));
        assert_eq!(
            u64_of(row(&rows, &leader), "current_epoch"),
            epoch,
            "a returning follower must not cause a new epoch: {rows:#?}"
        );
        assert_eq!(
            row(&rows, &follower)["namespace_digest"],
            row(&rows, &leader)["namespace_digest"]
        );
    }
}

#[test]
fn a_returning_follower_of_3_follows_the_leader_without_a_new_epoch() {
    returning_follower_follows_without_a_new_epoch(3);
}

#[test]
fn a_returning_follower_of_5_follows_the_leader_without_a_new_epoch() {
    returning_follower_follows_without_a_new_epoch(5);
}

// --- (d) a minority ---------------------------------------------------------------

fn minority_elects_nobody_and_refuses_writes(namenodes: usize) {
    let mut cluster = ensemble(namenodes);
    cluster.start_all();
    let quorum = cluster.quorum();
    let leader = cluster.wait_for_leader(ELECTION);
    let rows = cluster.wait_converged(ELECTION);
    // The leader and enough followers that a minority remains.
    let mut down = vec![leader.clone()];
    down.extend(
        followers_by_sid_desc(&rows, &leader)
            .into_iter()
            .take(namenodes - quorum),
    );

    eprintln!(
        "--- stop {down:?}: {} of {namenodes} run, no quorum",
        namenodes - down.len()
    );
    {
        cluster.kill(&leader);
        for node in &down[1..] {
            cluster.stop(node);
        }
        wait_nobody_leads(&cluster);
        assert_no_leader_for_a_while(&cluster, "only a minority runs");
    }

    eprintln!("--- dfs mkdir fails with a clear error");
    {
        let config = cluster.client_config_with_failover_timeout(Duration::from_secs(3));
        let out = cluster
            .dfs_command(&cluster.superuser())
            .env("DFS_CONFIG", &config)
            .args(["mkdir", "/no-quorum"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "dfs mkdir said: {}",
            stderr.lines().last().unwrap_or_default()
        );
        assert!(
            !out.status.success(),
            "mkdir without a quorum succeeded: {stderr}"
        );
        assert!(
            stderr.contains("mkdir:")
                && (stderr.contains("not the leader") || stderr.contains("leading namenode")),
            "the error should say there is no leader: {stderr}"
        );
    }

    eprintln!("--- start {down:?} again: a leader once a majority runs");
    {
        for node in &down {
            cluster.start(node);
        }
        let leader = cluster.wait_for_leader(ELECTION);
        cluster.dfs_ok(&cluster.superuser(), &["mkdir", "/with-quorum"]);
        let listing = cluster.dfs_ok(&cluster.superuser(), &["ls", "/"]);
        assert!(listing.contains("/with-quorum"), "{listing}");
        assert!(!listing.contains("/no-quorum"), "{listing}");
        let rows = cluster.wait_converged(ELECTION);
        assert!(rows.iter().all(|r| r["leader_sid"] == cluster.sid(&leader)));
    }
}

#[test]
fn a_minority_of_3_elects_nobody_and_mkdir_fails_until_a_majority_returns() {
    minority_elects_nobody_and_refuses_writes(3);
}

#[test]
fn a_minority_of_5_elects_nobody_and_mkdir_fails_until_a_majority_returns() {
    minority_elects_nobody_and_refuses_writes(5);
}

// --- observers ------------------------------------------------------------------

#[test]
fn an_observer_follows_every_leader_but_never_leads_nor_makes_a_quorum() {
    // nn4 is the highest sid, but an observer.
    let mut cluster = MiniCluster::builder()
        .namenodes(4)
        .observers(1)
        .without_datanodes()
        .lay_out();
    assert_eq!(cluster.quorum(), 2);
    cluster.start_all();

    eprintln!("--- nn4 observes the leader the voters elected");
    let leader = {
        let leader = cluster.wait_for_leader(ELECTION);
        assert_ne!(leader, "nn4");
        mkdirs(&cluster, &["/observed".to_owned()]);
        let status = cluster.wait_following("nn4", &leader, ELECTION);
        assert_eq!(status["state"], "OBSERVING");
        assert_eq!(status["observer"], true);
        leader
    };

    eprintln!("--- kill -9 {leader}: a voter leads, nn4 observes it");
    let next = {
        cluster.kill(&leader);
        let next = cluster.wait_for_leader(ELECTION);
        assert_ne!(next, "nn4");
        cluster.wait_following("nn4", &next, ELECTION);
        next
    };

    eprintln!("--- stop {next} too: one voter and the observer are no quorum");
    {
        cluster.stop(&next);
        wait_nobody_leads(&cluster);
        assert_no_leader_for_a_while(&cluster, "one voter of three runs (plus an observer)");
    }
}

// --- the harness's reading of ha-status ----------------------------------------

#[test]
fn a_leader_counts_only_with_an_established_epoch_and_a_quorum_of_voters_behind_it() {
    let status = |sid: u64, state: &str, leader: Option<u64>, epochs: (u64, u64), observer| {
        json!({
            "node": format!("nn{sid}"), "sid": sid, "state": state, "leader_sid": leader,
            "current_epoch": epochs.0, "accepted_epoch": epochs.1, "observer": observer,
        })
    };
    let rows = vec![
        status(1, "FOLLOWING", Some(3), (2, 2), false),
        status(2, "LOOKING", None, (1, 1), false),
        status(3, "LEADING", Some(3), (2, 2), false),
    ];
    assert_eq!(leader_of(&rows, 2).as_deref(), Some("nn3"));
    assert_eq!(leader_of(&rows, 3), None);
    // Still in discovery/sync: the new epoch is accepted, not yet current.
    let rows = vec![
        status(1, "FOLLOWING", Some(3), (1, 2), false),
        status(2, "FOLLOWING", Some(3), (1, 2), false),
        status(3, "LEADING", Some(3), (1, 2), false),
    ];
    assert_eq!(leader_of(&rows, 2), None);
    // A follower not yet synced into the leader's epoch does not back it.
    let rows = vec![
        status(1, "FOLLOWING", Some(3), (1, 2), false),
        status(2, "LOOKING", None, (1, 1), false),
        status(3, "LEADING", Some(3), (2, 2), false),
    ];
    assert_eq!(leader_of(&rows, 2), None);
    // An observer following it does not make a quorum.
    let rows = vec![
        status(1, "LEADING", Some(1), (1, 1), false),
        status(2, "LOOKING", None, (0, 0), false),
        status(3, "OBSERVING", Some(1), (1, 1), true),
    ];
    assert_eq!(leader_of(&rows, 2), None);
    // A deposed leader still claiming LEADING is not the leader.
    let rows = vec![
        status(1, "LEADING", Some(1), (1, 1), false),
        status(2, "FOLLOWING", Some(3), (2, 2), false),
        status(3, "LEADING", Some(3), (2, 2), false),
    ];
    assert_eq!(leader_of(&rows, 2).as_deref(), Some("nn3"));
}
