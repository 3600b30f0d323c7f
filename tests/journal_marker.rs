//! A namenode whose log lost txns it is known to have written (its
//! `seen_zxid` marker) refuses to start, with a clear error, instead of
//! serving an older namespace; with `accept_shorter_journal` the operator
//! can start it anyway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use cluster::MiniCluster;

#[test]
fn a_log_cut_behind_the_marker_refuses_to_start_until_the_operator_accepts() {
    let mut cluster = MiniCluster::builder()
        .namenodes(1)
        .without_datanodes()
        .start();
    let su = cluster.superuser();
    cluster.dfs_ok(&su, &["mkdir", "/before-restart"]);
    // The first append after a restart opens a segment, which marks every
    // txn before it as durably written.
    cluster.stop("nn1");
    cluster.start("nn1");
    cluster.dfs_ok(&su, &["mkdir", "/after-restart"]);
    cluster.stop("nn1");

    let journal = cluster.data_dir("nn1").join("journal");
    assert!(
        journal.join("seen_zxid").exists(),
        "no marker in {journal:?}"
    );
    let mut removed = 0;
    for entry in std::fs::read_dir(&journal).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("log.") {
            // Gone, as after restoring an older copy of the data dir
            // or a disk that dropped the writes.
            std::fs::remove_file(&path).unwrap();
            removed += 1;
        }
    }
    assert!(removed >= 2, "expected two segments in {journal:?}");

    let err = cluster
        .try_start("nn1")
        .expect_err("a namenode whose log lost durable txns must not start");
    assert!(
        err.contains("the log ends at zxid") && err.contains("durably wrote up to zxid"),
        "the error names both zxids: {err}"
    );
    assert!(
        err.contains("accept_shorter_journal"),
        "and the way out: {err}"
    );

    cluster.set_namenode_config("nn1", "accept_shorter_journal", true);
    cluster.start("nn1");
    // It serves again, without the txns the operator accepted losing.
    let out = cluster.dfs(&su, &["stat", "/before-restart"]);
    assert!(!out.status.success(), "the lost txn is gone, not invented");
    cluster.dfs_ok(&su, &["mkdir", "/after-recovery"]);
}
