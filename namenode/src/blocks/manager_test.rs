use std::time::Duration;

use super::*;
use crate::blocks::block_map::{REPLICATION_TIMEOUT, Reported};

fn dn(s: &str) -> DatanodeId {
    DatanodeId::parse(s).unwrap()
}

/// Racks 1 and 2, three datanodes each at 127.0.R.N.
fn cluster(now: Instant) -> BlockManager {
    let topology: TopologyTable = TopologyTable::new(
        RackPath::default_rack(),
        vec![
            (
                "127.0.1.0/24".parse().unwrap(),
                "/dc1/rack1".parse().unwrap(),
            ),
            (
                "127.0.2.0/24".parse().unwrap(),
                "/dc1/rack2".parse().unwrap(),
            ),
        ],
    );
    let registry = Registry::new(Duration::from_secs(30), Duration::from_secs(600));
    let mut manager = BlockManager::new(registry, topology, 7);
    for rack in 1..=2 {
        for n in 1..=3 {
            let storage = Storage {
                capacity: 1 << 40,
                used: 0,
                remaining: 1 << 40,
            };
            let addr: SocketAddr = format!("127.0.{rack}.{n}:9866").parse().unwrap();
            manager.register(dn(&format!("r{rack}n{n}")), addr, storage, now);
        }
    }
    manager
}

#[test]
fn after_catching_up_every_datanode_registers_again_and_old_commands_are_dropped() {
    let now = Instant::now();
    let mut m = cluster(now);
    let storage = Storage::default();
    let unknown = Reported {
        block: BlockId(9),
        gen_stamp: GenStamp(1),
        length: 1,
    };
    // A report judged against a namespace without block 9 queues a delete.
    m.map.received(&dn("r1n1"), unknown, |_| None);
    m.drop_judgement_while_behind(&dn("r1n1"));
    assert_eq!(
        m.heartbeat(&dn("r1n1"), storage, 0, now),
        Some(vec![]),
        "not yet"
    );
    m.request_full_reports();
    assert_eq!(
        m.heartbeat(&dn("r1n1"), storage, 0, now),
        None,
        "re-register"
    );
    let addr: SocketAddr = "127.0.1.1:9866".parse().unwrap();
    m.register(dn("r1n1"), addr, storage, now);
    assert_eq!(m.heartbeat(&dn("r1n1"), storage, 0, now), Some(vec![]));
    // The others were judged right: nothing to ask them.
    assert_eq!(m.heartbeat(&dn("r2n1"), storage, 0, now), Some(vec![]));
    assert!(
        m.choose_targets(BlockId(1), None, 3, &[], &[], 1 << 20, now)
            .is_ok()
    );
}

#[test]
fn a_writer_on_a_datanode_heads_the_pipeline_and_racks_are_two() {
    let now = Instant::now();
    let mut m = cluster(now);
    let ip: IpAddr = "127.0.2.2".parse().unwrap();
    let targets = m
        .choose_targets(BlockId(1), Some(ip), 3, &[], &[], 1 << 20, now)
        .unwrap();
    assert_eq!(targets[0].id, dn("r2n2"));
    let racks: HashSet<_> = targets.iter().map(|t| t.rack.clone()).collect();
    assert_eq!(racks.len(), 2);
}

#[test]
fn readers_get_their_own_rack_first_and_stale_nodes_last() {
    let now = Instant::now();
    let mut m = cluster(now);
    let holders = [dn("r1n1"), dn("r2n1"), dn("r2n3")];
    let client: IpAddr = "127.0.2.7".parse().unwrap();
    for _ in 0..20 {
        let order = m.sort_for_reader(&holders, Some(client), now);
        assert_eq!(order.len(), 3);
        assert_eq!(order[2].id, dn("r1n1"), "the other rack comes last");
    }
    let on_node: IpAddr = "127.0.1.1".parse().unwrap();
    assert_eq!(
        m.sort_for_reader(&holders, Some(on_node), now)[0].id,
        dn("r1n1")
    );
    // r1n1 heartbeats on; the others fall silent and go stale.
    let later = now + Duration::from_secs(40);
    m.heartbeat(&dn("r1n1"), Storage::default(), 0, later);
    let order = m.sort_for_reader(&holders, Some(client), later);
    assert_eq!(order[0].id, dn("r1n1"), "stale nodes sort last");
}

#[test]
fn lost_replicas_of_a_dead_datanode_are_copied_elsewhere() {
    let now = Instant::now();
    let mut m = cluster(now);
    let expected = |_: BlockId| {
        Some(Expected {
            reopened_from: None,
            gen_stamp: GenStamp(1),
            length: Some(100),
            replication: 3,
            block_size: 100,
        })
    };
    let replica = Reported {
        block: BlockId(9),
        gen_stamp: GenStamp(1),
        length: 100,
    };
    for id in ["r1n1", "r2n1", "r2n2"] {
        m.map.received(&dn(id), replica, expected);
    }
    // Everyone but r2n2 keeps heartbeating past the dead interval.
    let later = now + Duration::from_secs(601);
    for id in ["r1n1", "r1n2", "r1n3", "r2n1", "r2n3"] {
        m.heartbeat(
            &dn(id),
            Storage {
                capacity: 1 << 40,
                used: 0,
                remaining: 1 << 40,
            },
            0,
            later,
        );
    }
    m.check_replication(later, expected);
    let commands: Vec<Command> = ["r1n1", "r2n1"]
        .iter()
        .flat_map(|id| m.map.take_commands(&dn(id)))
        .collect();
    assert_eq!(commands.len(), 1, "{commands:?}");
    let Command::Replicate { targets, .. } = &commands[0] else {
        panic!("expected a replication, got {commands:?}");
    };
    assert_eq!(targets.len(), 1);
    assert!(![dn("r1n1"), dn("r2n1"), dn("r2n2")].contains(&targets[0]));
    m.check_replication(later, expected);
    assert!(
        m.map.take_commands(&dn("r1n1")).is_empty(),
        "not scheduled twice"
    );
}

#[test]
fn surplus_replicas_are_deleted_from_the_crowded_rack() {
    let now = Instant::now();
    let mut m = cluster(now);
    let expected = |_: BlockId| {
        Some(Expected {
            reopened_from: None,
            gen_stamp: GenStamp(1),
            length: Some(100),
            replication: 3,
            block_size: 100,
        })
    };
    let replica = Reported {
        block: BlockId(9),
        gen_stamp: GenStamp(1),
        length: 100,
    };
    for id in ["r1n1", "r2n1", "r2n2", "r2n3"] {
        m.map.received(&dn(id), replica, expected);
    }
    m.check_replication(now, expected);
    let (healthy, _) = m.map.holders(BlockId(9));
    assert_eq!(healthy.len(), 3);
    assert!(
        healthy.contains(&dn("r1n1")),
        "the only copy on rack 1 stays"
    );
    let deleted: usize = ["r2n1", "r2n2", "r2n3"]
        .iter()
        .map(|id| m.map.take_commands(&dn(id)).len())
        .sum();
    assert_eq!(deleted, 1);
}

/// Heartbeats from every datanode of [`cluster`] at `at`, with the free
/// space `remaining` gives each (by name).
fn beat_all(m: &mut BlockManager, at: Instant, remaining: impl Fn(&str) -> u64) {
    for rack in 1..=2 {
        for n in 1..=3 {
            let name = format!("r{rack}n{n}");
            let storage = Storage {
                capacity: 1 << 40,
                used: 0,
                remaining: remaining(&name),
            };
            m.heartbeat(&dn(&name), storage, 0, at);
        }
    }
}

/// Complete blocks of 10 bytes, replication 3, in files of 100-byte blocks.
fn small(_: BlockId) -> Option<Expected> {
    Some(Expected {
        reopened_from: None,
        gen_stamp: GenStamp(1),
        length: Some(10),
        replication: 3,
        block_size: 100,
    })
}

fn replica(block: u64) -> Reported {
    Reported {
        block: BlockId(block),
        gen_stamp: GenStamp(1),
        length: 10,
    }
}

/// Every Replicate command queued, as (source, block, targets).
fn replications(m: &mut BlockManager) -> Vec<(String, BlockId, Vec<DatanodeId>)> {
    let mut out = Vec::new();
    for rack in 1..=2 {
        for n in 1..=3 {
            let name = format!("r{rack}n{n}");
            for command in m.map.take_commands(&dn(&name)) {
                if let Command::Replicate { block, targets, .. } = command {
                    out.push((name.clone(), block, targets));
                }
            }
        }
    }
    out
}

fn rack_of(id: &DatanodeId) -> &str {
    &id.as_str()[..2]
}

#[test]
fn a_block_on_one_rack_gets_a_replica_on_another_then_loses_a_surplus_one() {
    for seed in 0..20 {
        let now = Instant::now();
        let mut m = cluster(now);
        m.rng = StdRng::seed_from_u64(seed);
        for id in ["r1n1", "r1n2", "r1n3"] {
            m.map.received(&dn(id), replica(9), small);
        }
        m.check_replication(now, small);
        let copies = replications(&mut m);
        let [(_, BlockId(9), targets)] = &copies[..] else {
            panic!("seed {seed}: expected one copy, got {copies:?}");
        };
        let [target] = &targets[..] else {
            panic!("seed {seed}: one target, got {targets:?}");
        };
        assert_eq!(rack_of(target), "r2", "seed {seed}: another rack");
        m.check_replication(now, small);
        assert!(replications(&mut m).is_empty(), "seed {seed}: once");

        // The copy arrives: four replicas, one goes, from rack 1.
        m.map.received(target, replica(9), small);
        m.arrived(target, BlockId(9));
        m.check_replication(now, small);
        let (healthy, _) = m.map.holders(BlockId(9));
        assert_eq!(healthy.len(), 3, "seed {seed}: {healthy:?}");
        assert!(healthy.contains(target), "seed {seed}");
        let racks: HashSet<&str> = healthy.iter().map(rack_of).collect();
        assert_eq!(racks.len(), 2, "seed {seed}: {healthy:?}");
        m.check_replication(now, small);
        assert!(replications(&mut m).is_empty(), "seed {seed}: repaired");
    }
}

#[test]
fn a_block_copied_onto_one_rack_moves_as_soon_as_the_other_rack_is_back() {
    let now = Instant::now();
    let mut m = cluster(now);
    for id in ["r1n1", "r1n2"] {
        m.map.received(&dn(id), replica(9), small);
    }
    // Rack 2 is dead: the third replica can only go to rack 1.
    let later = now + Duration::from_secs(601);
    let roomy = |_: &str| 1 << 40;
    for id in ["r1n1", "r1n2", "r1n3"] {
        m.heartbeat(
            &dn(id),
            Storage {
                capacity: 1 << 40,
                used: 0,
                remaining: 1 << 40,
            },
            0,
            later,
        );
    }
    m.check_replication(later, small);
    let copies = replications(&mut m);
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(copies[0].2, vec![dn("r1n3")]);
    m.map.received(&dn("r1n3"), replica(9), small);
    m.arrived(&dn("r1n3"), BlockId(9));
    // Rack 2 registers again a moment later: the copy that is done does
    // not hold the repair back.
    for n in 1..=3 {
        let addr: SocketAddr = format!("127.0.2.{n}:9866").parse().unwrap();
        m.register(dn(&format!("r2n{n}")), addr, Storage::default(), later);
    }
    beat_all(&mut m, later, roomy);
    m.check_replication(later, small);
    let copies = replications(&mut m);
    let [(_, _, targets)] = &copies[..] else {
        panic!("one copy to rack 2: {copies:?}");
    };
    assert_eq!(targets.len(), 1);
    assert_eq!(rack_of(&targets[0]), "r2");
}

#[test]
fn a_block_on_the_only_live_rack_stays_there() {
    let now = Instant::now();
    let mut m = cluster(now);
    for id in ["r1n1", "r1n2", "r1n3"] {
        m.map.received(&dn(id), replica(9), small);
    }
    // Rack 2 falls silent past the dead interval.
    let later = now + Duration::from_secs(601);
    for id in ["r1n1", "r1n2", "r1n3"] {
        m.heartbeat(&dn(id), Storage::default(), 0, later);
    }
    m.check_replication(later, small);
    assert!(replications(&mut m).is_empty());
    assert_eq!(m.map.holders(BlockId(9)).0.len(), 3, "nothing deleted");
}

#[test]
fn re_replication_targets_need_room_for_a_whole_block_and_what_is_on_its_way() {
    for seed in 0..20 {
        let now = Instant::now();
        let mut m = cluster(now);
        m.rng = StdRng::seed_from_u64(seed);
        // Room for one 100-byte block on r2n1; the other rack-2 nodes
        // could hold the 10 bytes of the replica, but not a block.
        beat_all(&mut m, now, |name| match name {
            "r2n1" => 100,
            "r2n2" | "r2n3" => 99,
            _ => 1 << 40,
        });
        for block in [9, 10] {
            for id in ["r1n1", "r2n3"] {
                m.map.received(&dn(id), replica(block), small);
            }
        }
        m.check_replication(now, small);
        let targets: Vec<DatanodeId> = replications(&mut m)
            .into_iter()
            .flat_map(|(_, _, t)| t)
            .collect();
        assert_eq!(targets.len(), 2, "seed {seed}: {targets:?}");
        assert!(
            !targets.contains(&dn("r2n2")),
            "seed {seed}: without room for a block: {targets:?}"
        );
        let on_r2n1 = targets.iter().filter(|t| **t == dn("r2n1")).count();
        assert!(
            on_r2n1 <= 1,
            "seed {seed}: r2n1 has room for one block, got {targets:?}"
        );
    }
}

#[test]
fn a_failed_re_replication_target_is_not_chosen_again_at_once() {
    let now = Instant::now();
    let mut m = cluster(now);
    // Two nodes could take the copy; the others are full.
    let room = |name: &str| match name {
        "r1n1" | "r2n1" | "r2n2" | "r2n3" => 1 << 40,
        _ => 0,
    };
    beat_all(&mut m, now, room);
    for id in ["r1n1", "r2n1"] {
        m.map.received(&dn(id), replica(9), small);
    }
    m.check_replication(now, small);
    let first = replications(&mut m);
    let [(_, _, targets)] = &first[..] else {
        panic!("one copy: {first:?}");
    };
    let failed = targets[0].clone();
    // It never arrives. Once the copy times out, the other node is chosen.
    let later = now + REPLICATION_TIMEOUT;
    beat_all(&mut m, later, room);
    m.check_replication(later, small);
    let second = replications(&mut m);
    let [(_, _, targets)] = &second[..] else {
        panic!("one copy again: {second:?}");
    };
    assert_eq!(targets.len(), 1);
    assert_ne!(targets[0], failed, "the failed target was chosen again");
    // With no other node left, none is chosen rather than the failed one.
    let other = targets[0].clone();
    let much_later = later + REPLICATION_TIMEOUT;
    beat_all(&mut m, much_later, room);
    m.check_replication(much_later, small);
    assert!(
        replications(&mut m).is_empty(),
        "both targets failed lately; {failed} and {other} back off"
    );
}
