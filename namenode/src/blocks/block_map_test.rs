use super::*;

fn dn(s: &str) -> DatanodeId {
    DatanodeId::parse(s).unwrap()
}

fn rep(block: u64, gs: u64, length: u64) -> Reported {
    Reported {
        block: BlockId(block),
        gen_stamp: GenStamp(gs),
        length,
    }
}

fn known(block: BlockId) -> Option<Expected> {
    (block.0 < 100).then_some(Expected {
        reopened_from: None,
        gen_stamp: GenStamp(5),
        length: Some(10),
        replication: 3,
        block_size: 10,
    })
}

#[test]
fn a_full_report_replaces_what_a_datanode_held() {
    let mut map = BlockMap::default();
    map.full_report(&dn("a"), &[rep(1, 5, 10), rep(2, 5, 10)], known);
    map.full_report(&dn("a"), &[rep(2, 5, 10)], known);
    assert_eq!(map.holders(BlockId(1)).0, Vec::<DatanodeId>::new());
    assert_eq!(map.holders(BlockId(2)).0, vec![dn("a")]);
}

#[test]
fn a_bad_checksum_a_reader_found_survives_the_next_full_report() {
    let mut map = BlockMap::default();
    map.full_report(&dn("a"), &[rep(1, 5, 10), rep(2, 5, 10)], known);
    map.mark_corrupt(&dn("a"), BlockId(1));
    map.full_report(&dn("a"), &[rep(1, 5, 10), rep(2, 5, 10)], known);
    assert_eq!(map.healthy_count(BlockId(1), GenStamp(5)), 0);
    assert_eq!(map.healthy_count(BlockId(2), GenStamp(5)), 1);
    // Once the datanode no longer has it, it is forgotten.
    map.full_report(&dn("a"), &[rep(2, 5, 10)], known);
    assert_eq!(map.holders(BlockId(1)).0, Vec::<DatanodeId>::new());
}

#[test]
fn replicas_of_unknown_blocks_are_deleted() {
    let mut map = BlockMap::default();
    map.full_report(&dn("a"), &[rep(500, 1, 10)], known);
    assert_eq!(
        map.take_commands(&dn("a")),
        vec![Command::Delete {
            block: BlockId(500),
            gen_stamp: GenStamp(1)
        }]
    );
    assert!(
        map.take_commands(&dn("a")).is_empty(),
        "commands are handed out once"
    );
}

#[test]
fn stale_and_wrong_length_replicas_are_not_healthy() {
    let mut map = BlockMap::default();
    map.received(&dn("a"), rep(1, 4, 10), known);
    map.received(&dn("b"), rep(1, 5, 9), known);
    map.received(&dn("c"), rep(1, 5, 10), known);
    let (healthy, corrupt) = map.holders(BlockId(1));
    assert_eq!(healthy, vec![dn("c")]);
    assert_eq!(corrupt, vec![dn("a"), dn("b")]);
    assert_eq!(
        map.take_commands(&dn("a")).len(),
        1,
        "the stale replica is deleted"
    );
    assert!(
        map.take_commands(&dn("b")).is_empty(),
        "kept until replaced"
    );
}

#[test]
fn a_reported_corrupt_replica_is_deleted_once_replaced() {
    let mut map = BlockMap::default();
    for d in ["a", "b", "c"] {
        map.received(&dn(d), rep(1, 5, 10), known);
    }
    map.mark_corrupt(&dn("a"), BlockId(1));
    assert_eq!(map.healthy_count(BlockId(1), GenStamp(5)), 2);
    map.invalidate_replaced_corrupt(BlockId(1), 3);
    assert!(map.take_commands(&dn("a")).is_empty());
    map.received(&dn("d"), rep(1, 5, 10), known);
    map.invalidate_replaced_corrupt(BlockId(1), 3);
    assert_eq!(map.take_commands(&dn("a")).len(), 1);
    assert_eq!(map.holders(BlockId(1)).1, Vec::<DatanodeId>::new());
}

#[test]
fn a_datanode_marks_its_own_replica_corrupt_only_at_the_gen_stamp_held() {
    let mut map = BlockMap::default();
    for d in ["a", "b"] {
        map.received(&dn(d), rep(1, 5, 10), known);
    }
    assert!(
        !map.mark_found_corrupt(&dn("a"), rep(1, 4, 10)),
        "an older replica"
    );
    assert!(
        !map.mark_found_corrupt(&dn("c"), rep(1, 5, 10)),
        "not held there"
    );
    assert!(
        !map.mark_found_corrupt(&dn("a"), rep(2, 5, 10)),
        "unknown block"
    );
    assert_eq!(map.healthy_count(BlockId(1), GenStamp(5)), 2);
    assert!(map.mark_found_corrupt(&dn("a"), rep(1, 5, 0)), "any length");
    assert_eq!(map.holders(BlockId(1)), (vec![dn("b")], vec![dn("a")]));
    // It survives the datanode's next full report, as a reader's report does.
    map.full_report(&dn("a"), &[rep(1, 5, 10)], known);
    assert_eq!(map.holders(BlockId(1)), (vec![dn("b")], vec![dn("a")]));
}

fn verify(block: u64, gs: u64) -> Command {
    Command::Verify {
        block: BlockId(block),
        gen_stamp: GenStamp(gs),
    }
}

#[test]
fn a_readers_report_only_suspects_a_replica_and_asks_its_datanode_once() {
    let mut map = BlockMap::default();
    let now = Instant::now();
    for d in ["a", "b", "c"] {
        map.received(&dn(d), rep(1, 5, 10), known);
    }
    for d in ["a", "b", "c"] {
        assert_eq!(
            map.mark_suspect(&dn(d), BlockId(1), GenStamp(5), now),
            Suspicion::VerifyQueued
        );
    }
    assert_eq!(
        map.healthy_count(BlockId(1), GenStamp(5)),
        3,
        "reports alone take no replica away"
    );
    assert!(map.is_suspect(BlockId(1), &dn("a")));
    assert_eq!(map.take_commands(&dn("a")), vec![verify(1, 5)]);
    let again = now + Duration::from_secs(1);
    assert_eq!(
        map.mark_suspect(&dn("a"), BlockId(1), GenStamp(5), again),
        Suspicion::AlreadySuspect
    );
    assert!(map.take_commands(&dn("a")).is_empty(), "asked once");
    // No verdict for a while: the next report asks again.
    let later = now + SUSPECT_RETRY;
    assert_eq!(
        map.mark_suspect(&dn("a"), BlockId(1), GenStamp(5), later),
        Suspicion::VerifyQueued
    );
    assert_eq!(map.take_commands(&dn("a")), vec![verify(1, 5)]);
}

#[test]
fn reports_of_replicas_not_held_healthy_are_ignored() {
    let mut map = BlockMap::default();
    let now = Instant::now();
    map.received(&dn("a"), rep(1, 5, 10), known);
    for (d, block, gs) in [("a", 1, 4), ("b", 1, 5), ("a", 2, 5)] {
        assert_eq!(
            map.mark_suspect(&dn(d), BlockId(block), GenStamp(gs), now),
            Suspicion::NotHeld,
            "{d} blk_{block}_{gs}"
        );
    }
    assert!(map.take_commands(&dn("a")).is_empty());
    assert!(map.take_commands(&dn("b")).is_empty());
}

#[test]
fn the_datanodes_verdict_settles_a_suspect_replica() {
    let mut map = BlockMap::default();
    let now = Instant::now();
    for d in ["a", "b"] {
        map.received(&dn(d), rep(1, 5, 10), known);
        map.mark_suspect(&dn(d), BlockId(1), GenStamp(5), now);
    }
    // a: intact; b: its checksums fail.
    assert!(!map.verified(&dn("a"), rep(1, 4, 10)), "another stamp");
    assert!(map.verified(&dn("a"), rep(1, 5, 10)));
    assert!(!map.is_suspect(BlockId(1), &dn("a")));
    assert!(map.mark_found_corrupt(&dn("b"), rep(1, 5, 10)));
    assert!(!map.is_suspect(BlockId(1), &dn("b")));
    assert_eq!(map.holders(BlockId(1)), (vec![dn("a")], vec![dn("b")]));
    // A verdict nobody asked for changes nothing.
    assert!(!map.verified(&dn("a"), rep(1, 5, 10)));
    assert_eq!(map.healthy_count(BlockId(1), GenStamp(5)), 1);
}

#[test]
fn suspects_are_forgotten_with_their_replica() {
    let mut map = BlockMap::default();
    let now = Instant::now();
    for d in ["a", "b", "c"] {
        map.received(&dn(d), rep(1, 5, 10), known);
        map.mark_suspect(&dn(d), BlockId(1), GenStamp(5), now);
    }
    map.deleted(&dn("a"), BlockId(1));
    map.remove_datanode(&dn("b"));
    assert!(!map.is_suspect(BlockId(1), &dn("a")));
    assert!(!map.is_suspect(BlockId(1), &dn("b")));
    assert!(map.is_suspect(BlockId(1), &dn("c")));
    map.free([(BlockId(1), GenStamp(5))]);
    assert!(!map.is_suspect(BlockId(1), &dn("c")));
}

fn writing(block: BlockId) -> Option<Expected> {
    (block.0 < 100).then_some(Expected {
        reopened_from: None,
        gen_stamp: GenStamp(5),
        length: None,
        replication: 3,
        block_size: 10,
    })
}

fn delete(block: u64, gs: u64) -> Command {
    Command::Delete {
        block: BlockId(block),
        gen_stamp: GenStamp(gs),
    }
}

#[test]
fn rbw_replicas_of_a_block_being_written_are_remembered_with_their_lengths() {
    let mut map = BlockMap::default();
    map.rbw_reported(&dn("a"), rep(1, 5, 700), false, writing);
    map.rbw_reported(&dn("b"), rep(1, 5, 512), true, writing);
    assert!(
        map.take_commands(&dn("a")).is_empty(),
        "its file may be recovered"
    );
    let lengths: Vec<u64> = map
        .rbw_replicas(BlockId(1))
        .iter()
        .map(|(_, r)| r.length)
        .collect();
    assert_eq!(lengths, vec![700, 512]);
    assert_eq!(map.blocks().count(), 0, "never counted as a replica");
    // A newer report replaces the length; finalizing or deleting forgets it.
    map.rbw_reported(&dn("a"), rep(1, 5, 900), false, writing);
    assert_eq!(map.rbw_replicas(BlockId(1))[0].1.length, 900);
    map.received(&dn("a"), rep(1, 5, 900), writing);
    map.deleted(&dn("b"), BlockId(1));
    assert!(map.rbw_replicas(BlockId(1)).is_empty());
}

#[test]
fn older_rbw_replicas_go_on_a_full_report_but_not_on_an_incremental_one() {
    let mut map = BlockMap::default();
    map.rbw_reported(&dn("a"), rep(1, 4, 10), false, writing);
    assert!(
        map.take_commands(&dn("a")).is_empty(),
        "a pipeline recovery may be taking it over"
    );
    assert!(map.rbw_replicas(BlockId(1)).is_empty(), "not a candidate");
    map.rbw_reported(&dn("a"), rep(1, 4, 10), true, writing);
    assert_eq!(map.take_commands(&dn("a")), vec![delete(1, 4)]);
    map.rbw_reported(&dn("a"), rep(500, 5, 10), false, writing);
    assert_eq!(map.take_commands(&dn("a")), vec![delete(500, 5)], "unknown");
}

#[test]
fn rbw_replicas_of_a_complete_block_are_finalized_when_long_enough() {
    let mut map = BlockMap::default();
    // `known`: complete at stamp 5 with 10 bytes.
    map.rbw_reported(&dn("a"), rep(1, 5, 12), false, known);
    assert_eq!(
        map.take_commands(&dn("a")),
        vec![Command::FinalizeRbw {
            block: BlockId(1),
            gen_stamp: GenStamp(5),
            length: 10
        }]
    );
    map.rbw_reported(&dn("a"), rep(1, 5, 9), true, known);
    assert_eq!(map.take_commands(&dn("a")), vec![delete(1, 5)], "too short");
    map.rbw_reported(&dn("a"), rep(1, 4, 10), false, known);
    assert_eq!(map.take_commands(&dn("a")), vec![delete(1, 4)], "stale");
}

#[test]
fn a_recovered_block_finalizes_the_long_enough_rbw_replicas_and_deletes_the_rest() {
    let mut map = BlockMap::default();
    map.rbw_reported(&dn("a"), rep(1, 5, 1000), false, writing);
    map.rbw_reported(&dn("b"), rep(1, 5, 700), false, writing);
    map.rbw_reported(&dn("c"), rep(1, 6, 800), false, writing);
    map.finalize_rbw(BlockId(1), GenStamp(5), 700);
    let finalize = Command::FinalizeRbw {
        block: BlockId(1),
        gen_stamp: GenStamp(5),
        length: 700,
    };
    assert_eq!(map.take_commands(&dn("a")), vec![finalize.clone()]);
    assert_eq!(map.take_commands(&dn("b")), vec![finalize]);
    assert_eq!(map.take_commands(&dn("c")), vec![delete(1, 6)]);
    assert!(map.rbw_replicas(BlockId(1)).is_empty());
}

#[test]
fn rbw_replicas_of_a_block_committed_elsewhere_are_settled_by_the_next_pass() {
    let mut map = BlockMap::default();
    map.rbw_reported(&dn("a"), rep(1, 5, 12), false, writing);
    map.rbw_reported(&dn("b"), rep(1, 5, 9), false, writing);
    map.rbw_reported(&dn("c"), rep(2, 5, 9), false, writing);
    map.settle_rbw(writing);
    assert!(
        map.take_commands(&dn("a")).is_empty(),
        "still being written"
    );
    // Block 1 was committed at 10 bytes (`known`) by another leader's recovery.
    let committed = |b: BlockId| if b.0 == 1 { known(b) } else { writing(b) };
    map.settle_rbw(committed);
    assert_eq!(
        map.take_commands(&dn("a")),
        vec![Command::FinalizeRbw {
            block: BlockId(1),
            gen_stamp: GenStamp(5),
            length: 10
        }]
    );
    assert_eq!(map.take_commands(&dn("b")), vec![delete(1, 5)]);
    assert!(map.rbw_replicas(BlockId(1)).is_empty());
    assert_eq!(map.rbw_replicas(BlockId(2)).len(), 1);
    map.settle_rbw(committed);
    assert!(map.take_commands(&dn("a")).is_empty(), "settled once");
}

#[test]
fn freeing_a_block_deletes_its_rbw_replicas_and_full_reports_replace_them() {
    let mut map = BlockMap::default();
    map.rbw_reported(&dn("a"), rep(1, 5, 10), false, writing);
    map.rbw_reported(&dn("a"), rep(2, 5, 10), false, writing);
    map.full_report(&dn("a"), &[], writing);
    assert!(
        map.rbw_replicas(BlockId(2)).is_empty(),
        "not in the full report"
    );
    map.rbw_reported(&dn("a"), rep(1, 5, 10), true, writing);
    map.free([(BlockId(1), GenStamp(5))]);
    assert_eq!(map.take_commands(&dn("a")), vec![delete(1, 5)]);
    assert!(map.rbw_replicas(BlockId(1)).is_empty());
    map.rbw_reported(&dn("b"), rep(3, 5, 10), false, writing);
    map.remove_datanode(&dn("b"));
    assert!(map.rbw_replicas(BlockId(3)).is_empty());
}

#[test]
fn freed_blocks_are_deleted_everywhere_and_dead_nodes_forgotten() {
    let mut map = BlockMap::default();
    map.received(&dn("a"), rep(1, 5, 10), known);
    map.received(&dn("b"), rep(1, 5, 10), known);
    map.received(&dn("b"), rep(2, 5, 10), known);
    map.free([(BlockId(1), GenStamp(5))]);
    assert_eq!(map.take_commands(&dn("a")).len(), 1);
    assert_eq!(map.take_commands(&dn("b")).len(), 1);
    map.remove_datanode(&dn("b"));
    assert_eq!(map.blocks().count(), 0);
}

#[test]
fn health_counts_missing_under_replicated_corrupt_and_pending_deletions() {
    let mut map = BlockMap::default();
    // Block 1: three healthy. Block 2: one healthy, one stale (corrupt).
    // Block 3: nobody. Block 500: unknown to the namespace, so deleted.
    for node in ["a", "b", "c"] {
        map.received(&dn(node), rep(1, 5, 10), known);
    }
    map.received(&dn("a"), rep(2, 5, 10), known);
    map.received(&dn("b"), rep(2, 4, 10), known);
    map.received(&dn("c"), rep(500, 1, 10), known);
    let mut health = BlockHealth::default();
    for block in [1, 2, 3] {
        map.judge(&mut health, BlockId(block), GenStamp(5), 3);
    }
    assert_eq!(
        health,
        BlockHealth {
            under_replicated: 1,
            corrupt: 1,
            missing: 1
        }
    );
    // The stale replica of 2 and the unknown 500 wait for their heartbeat.
    assert_eq!(map.pending_deletions(), 2);
    map.take_commands(&dn("c"));
    assert_eq!(map.pending_deletions(), 1);
}

#[test]
fn a_reopened_blocks_finalized_replicas_are_kept_and_restamped_by_recovery() {
    let reopened = |block: BlockId| {
        (block.0 == 1).then_some(Expected {
            reopened_from: Some(GenStamp(4)),
            gen_stamp: GenStamp(5),
            length: None,
            replication: 3,
            block_size: 10,
        })
    };
    let mut map = BlockMap::default();
    map.full_report(&dn("a"), &[rep(1, 4, 7)], reopened);
    map.full_report(&dn("b"), &[rep(1, 3, 7)], reopened);
    assert!(
        map.take_commands(&dn("a")).is_empty(),
        "the append's source is kept"
    );
    assert_eq!(
        map.take_commands(&dn("b")).len(),
        1,
        "an older stamp is stale"
    );
    assert_eq!(
        map.healthy_count(BlockId(1), GenStamp(5)),
        0,
        "not readable"
    );
    map.restamp_finalized(BlockId(1), GenStamp(4), GenStamp(5), 7);
    assert_eq!(
        map.take_commands(&dn("a")),
        vec![Command::FinalizeRbw {
            block: BlockId(1),
            gen_stamp: GenStamp(5),
            length: 7,
        }]
    );
}
