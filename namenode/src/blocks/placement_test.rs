//! Placement tests: rules as tables, then properties over seeded random
//! topologies checked against naive oracles (brute force over node subsets and
//! pipeline permutations). A failing property prints its case seed; replay it
//! with `DFS_SEED=<seed>`.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use super::*;

const BLOCK: u64 = 128 << 20;
const ROOMY: u64 = 1 << 40;
const SEEDS: std::ops::Range<u64> = 0..200;

fn id(s: &str) -> DatanodeId {
    DatanodeId::parse(s).unwrap()
}

fn ids(names: &[&str]) -> Vec<DatanodeId> {
    names.iter().map(|n| id(n)).collect()
}

fn live(name: &str, rack: &str) -> Candidate {
    Candidate {
        id: id(name),
        rack: rack.parse().unwrap(),
        state: Liveness::Live,
        remaining: ROOMY,
        active_transfers: 0,
        scheduled: 0,
    }
}

/// `cluster(&[("/r1", 3)])` is live, roomy `r1n1`, `r1n2`, `r1n3` on `/r1`.
fn cluster(racks: &[(&str, usize)]) -> Vec<Candidate> {
    let mut nodes = Vec::new();
    for (path, count) in racks {
        let short = path.rsplit('/').next().unwrap();
        for n in 1..=*count {
            nodes.push(live(&format!("{short}n{n}"), path));
        }
    }
    nodes
}

fn node_mut<'a>(nodes: &'a mut [Candidate], name: &str) -> &'a mut Candidate {
    nodes.iter_mut().find(|c| c.id.as_str() == name).unwrap()
}

fn fresh(replicas: usize) -> PlacementRequest<'static> {
    PlacementRequest {
        writer: None,
        replicas,
        chosen: &[],
        excluded: &[],
        block_size: BLOCK,
        min_replicas: 1,
    }
}

fn place(req: &PlacementRequest<'_>, nodes: &[Candidate], seed: u64) -> Vec<DatanodeId> {
    choose_targets(req, nodes, &mut StdRng::seed_from_u64(seed))
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"))
}

fn rack_of<'a>(nodes: &'a [Candidate], node: &DatanodeId) -> &'a str {
    nodes.iter().find(|c| c.id == *node).unwrap().rack.as_str()
}

fn racks_of<'a>(nodes: &'a [Candidate], targets: &[DatanodeId]) -> Vec<&'a str> {
    targets.iter().map(|t| rack_of(nodes, t)).collect()
}

fn per_rack<'a>(nodes: &'a [Candidate], targets: &[DatanodeId]) -> BTreeMap<&'a str, usize> {
    let mut load = BTreeMap::new();
    for rack in racks_of(nodes, targets) {
        *load.entry(rack).or_default() += 1;
    }
    load
}

fn is_distinct(targets: &[DatanodeId]) -> bool {
    targets.iter().collect::<BTreeSet<_>>().len() == targets.len()
}

// ---- rules, as tables -------------------------------------------------------

#[test]
fn first_replica_on_the_writer_when_it_is_a_datanode() {
    let nodes = cluster(&[("/r1", 3), ("/r2", 3)]);
    let writer = id("r2n2");
    let req = PlacementRequest {
        writer: Some(&writer),
        ..fresh(3)
    };
    for seed in SEEDS {
        let targets = place(&req, &nodes, seed);
        assert_eq!(targets.len(), 3, "seed {seed}");
        assert_eq!(targets[0], writer, "seed {seed}");
    }
}

#[test]
fn first_replica_on_the_writers_rack_when_its_node_cannot_take_it() {
    let mut nodes = cluster(&[("/r1", 3), ("/r2", 3)]);
    node_mut(&mut nodes, "r2n2").remaining = BLOCK - 1;
    let writer = id("r2n2");
    let req = PlacementRequest {
        writer: Some(&writer),
        ..fresh(1)
    };
    for seed in SEEDS {
        let targets = place(&req, &nodes, seed);
        assert_eq!(racks_of(&nodes, &targets), ["/r2"], "seed {seed}");
        assert_ne!(targets[0], writer, "seed {seed}");
    }
}

#[test]
fn second_replica_on_another_rack() {
    let nodes = cluster(&[("/r1", 4), ("/r2", 4), ("/r3", 4)]);
    let writer = id("r1n1");
    for replicas in [2, 3] {
        for writer in [None, Some(&writer)] {
            let req = PlacementRequest {
                writer,
                ..fresh(replicas)
            };
            for seed in SEEDS {
                let racks = racks_of(&nodes, &place(&req, &nodes, seed));
                assert_ne!(racks[0], racks[1], "seed {seed}, {replicas} replicas");
            }
        }
    }
}

#[test]
fn third_replica_shares_rack_with_second() {
    let nodes = cluster(&[("/r1", 3), ("/r2", 3), ("/r3", 3)]);
    let writer = id("r1n1");
    for writer in [None, Some(&writer)] {
        let req = PlacementRequest { writer, ..fresh(3) };
        for seed in SEEDS {
            let racks = racks_of(&nodes, &place(&req, &nodes, seed));
            assert_ne!(racks[0], racks[1], "seed {seed}");
            assert_eq!(racks[1], racks[2], "seed {seed}");
        }
    }
}

#[test]
fn third_replica_goes_elsewhere_when_the_second_rack_has_no_other_node() {
    let nodes = cluster(&[("/r1", 3), ("/r2", 1)]);
    let writer = id("r1n1");
    let req = PlacementRequest {
        writer: Some(&writer),
        ..fresh(3)
    };
    for seed in SEEDS {
        let targets = place(&req, &nodes, seed);
        // The chain stays on /r1 first and crosses to /r2 once.
        assert_eq!(
            racks_of(&nodes, &targets),
            ["/r1", "/r1", "/r2"],
            "seed {seed}"
        );
        assert_eq!(targets[0], writer);
        assert!(is_distinct(&targets));
    }
}

#[test]
fn single_rack_still_places_distinct_nodes() {
    let nodes = cluster(&[("/r1", 4)]);
    for seed in SEEDS {
        let three = place(&fresh(3), &nodes, seed);
        assert_eq!(three.len(), 3);
        assert!(is_distinct(&three), "seed {seed}: {three:?}");

        let all = place(&fresh(6), &nodes, seed);
        let all: BTreeSet<_> = all.into_iter().collect();
        assert_eq!(
            all,
            ids(&["r1n1", "r1n2", "r1n3", "r1n4"]).into_iter().collect()
        );
    }
}

#[test]
fn stale_dead_full_and_excluded_nodes_are_skipped() {
    let mut nodes = vec![
        live("ok-1", "/r1"),
        live("stale", "/r1"),
        live("dead", "/r1"),
        live("full", "/r1"),
        live("full-with-transfers-in-flight", "/r1"),
        live("ok-2", "/r2"),
        live("excluded", "/r2"),
        live("holder", "/r2"),
        live("ok-3", "/r2"),
    ];
    node_mut(&mut nodes, "stale").state = Liveness::Stale;
    node_mut(&mut nodes, "dead").state = Liveness::Dead;
    node_mut(&mut nodes, "full").remaining = BLOCK - 1;
    // Room for 2 blocks, but 2 are already on their way: the block does not fit.
    let busy = node_mut(&mut nodes, "full-with-transfers-in-flight");
    busy.remaining = 2 * BLOCK;
    busy.active_transfers = 2;

    let excluded = ids(&["excluded"]);
    let chosen = ids(&["holder"]);
    let req = PlacementRequest {
        replicas: 10,
        chosen: &chosen,
        excluded: &excluded,
        ..fresh(0)
    };
    for seed in SEEDS {
        let targets: BTreeSet<_> = place(&req, &nodes, seed).into_iter().collect();
        assert_eq!(
            targets,
            ids(&["ok-1", "ok-2", "ok-3"]).into_iter().collect(),
            "seed {seed}"
        );
    }
}

#[test]
fn blocks_the_namenode_sent_a_node_reserve_its_space_before_it_reports_them() {
    let mut nodes = cluster(&[("/r1", 2), ("/r2", 2)]);
    // Roomy by its last heartbeat, but two blocks are on their way that it
    // has not counted yet; r1n2 has room for exactly one more.
    let r1n1 = node_mut(&mut nodes, "r1n1");
    r1n1.remaining = 2 * BLOCK;
    r1n1.scheduled = 2;
    let r1n2 = node_mut(&mut nodes, "r1n2");
    r1n2.remaining = 2 * BLOCK;
    r1n2.scheduled = 1;
    // The node's own count and the namenode's overlap: the larger one counts.
    let r2n1 = node_mut(&mut nodes, "r2n1");
    r2n1.remaining = 2 * BLOCK;
    r2n1.scheduled = 1;
    r2n1.active_transfers = 1;
    for seed in SEEDS {
        let targets: BTreeSet<_> = place(&fresh(4), &nodes, seed).into_iter().collect();
        assert_eq!(
            targets,
            ids(&["r1n2", "r2n1", "r2n2"]).into_iter().collect(),
            "seed {seed}"
        );
    }
}

#[test]
fn too_few_nodes_is_a_clear_error_below_minimum() {
    let mut nodes = cluster(&[("/r1", 3), ("/r2", 2)]);
    node_mut(&mut nodes, "r1n2").state = Liveness::Stale;
    node_mut(&mut nodes, "r1n3").state = Liveness::Stale;
    node_mut(&mut nodes, "r2n1").state = Liveness::Dead;
    node_mut(&mut nodes, "r2n2").remaining = 0;
    let req = PlacementRequest {
        min_replicas: 2,
        ..fresh(3)
    };
    let err = choose_targets(&req, &nodes, &mut StdRng::seed_from_u64(1)).unwrap_err();
    assert_eq!(
        err,
        PlacementError::NotEnoughNodes {
            wanted: 3,
            found: 1,
            min: 2,
            reason: "1 of 5 datanodes is live with room for the block; \
                     2 stale, 1 dead, 1 without room"
                .to_owned(),
        }
    );
    assert_eq!(
        err.to_string(),
        "could only place 1 of 3 replicas (minimum 2): 1 of 5 datanodes is live with room \
         for the block; 2 stale, 1 dead, 1 without room"
    );

    // At the minimum, fewer than wanted is a success.
    let lenient = PlacementRequest {
        min_replicas: 1,
        ..req
    };
    assert_eq!(place(&lenient, &nodes, 1), ids(&["r1n1"]));

    let nobody = choose_targets(&fresh(3), &[], &mut StdRng::seed_from_u64(1)).unwrap_err();
    assert_eq!(
        nobody.to_string(),
        "could only place 0 of 3 replicas (minimum 1): no datanode has registered"
    );
}

#[test]
fn recovery_adds_a_replacement_respecting_racks() {
    let nodes = cluster(&[("/r1", 3), ("/r2", 3), ("/r3", 3)]);
    let writer = id("r1n1");

    // r1n1 -> r2n1 -> r2n2 lost r2n2: the replacement joins r2n1 on /r2.
    let chosen = ids(&["r1n1", "r2n1"]);
    let excluded = ids(&["r2n2"]);
    let req = PlacementRequest {
        writer: Some(&writer),
        chosen: &chosen,
        excluded: &excluded,
        ..fresh(3)
    };
    for seed in SEEDS {
        assert_eq!(place(&req, &nodes, seed), ids(&["r2n3"]), "seed {seed}");
    }

    // It lost r1n1 instead: both survivors are on /r2, so the new one is not.
    let chosen = ids(&["r2n1", "r2n2"]);
    let excluded = ids(&["r1n1"]);
    let req = PlacementRequest {
        writer: Some(&writer),
        chosen: &chosen,
        excluded: &excluded,
        ..fresh(3)
    };
    for seed in SEEDS {
        let targets = place(&req, &nodes, seed);
        assert_eq!(targets.len(), 1);
        assert_ne!(rack_of(&nodes, &targets[0]), "/r2", "seed {seed}");
        assert_ne!(targets[0], writer, "seed {seed}");
    }

    // Nothing to add when the survivors already make up the replication.
    let chosen = ids(&["r1n1", "r2n1", "r2n2"]);
    let req = PlacementRequest {
        chosen: &chosen,
        ..fresh(3)
    };
    assert_eq!(place(&req, &nodes, 0), Vec::<DatanodeId>::new());
}

#[test]
fn five_replicas_respect_the_per_rack_cap() {
    // max_per_rack = (5 - 1) / 3 + 2 = 3.
    let nodes = cluster(&[("/r1", 8), ("/r2", 8), ("/r3", 1)]);
    let writer = id("r1n1");
    let req = PlacementRequest {
        writer: Some(&writer),
        ..fresh(5)
    };
    let mut seen_full_racks = 0;
    for seed in SEEDS {
        let targets = place(&req, &nodes, seed);
        assert_eq!(targets.len(), 5);
        assert!(is_distinct(&targets));
        let load = per_rack(&nodes, &targets);
        assert!(load.values().all(|&n| n <= 3), "seed {seed}: {load:?}");
        seen_full_racks += load.values().filter(|&&n| n == 3).count();
    }
    assert!(
        seen_full_racks > 0,
        "the cap never bound: the test proves nothing"
    );
}

#[test]
fn replicas_already_over_the_cap_get_no_more_company() {
    // 5 replicas on 2 racks: at most 4 per rack; /r1 already holds 3.
    let nodes = cluster(&[("/r1", 10), ("/r2", 10)]);
    let chosen = ids(&["r1n1", "r1n2", "r1n3"]);
    let req = PlacementRequest {
        chosen: &chosen,
        ..fresh(5)
    };
    for seed in SEEDS {
        let targets = place(&req, &nodes, seed);
        let load = per_rack(&nodes, &targets);
        assert_eq!(targets.len(), 2);
        assert!(
            load.get("/r1").copied().unwrap_or(0) <= 1,
            "seed {seed}: {load:?}"
        );
    }
}

#[test]
fn rules_relax_rather_than_fail_when_racks_are_lopsided() {
    // 6 replicas on 2 racks: cap 4, but /r2 has a single node.
    let nodes = cluster(&[("/r1", 6), ("/r2", 1)]);
    for seed in SEEDS {
        let targets = place(&fresh(6), &nodes, seed);
        assert_eq!(targets.len(), 6);
        assert!(is_distinct(&targets));
        assert_eq!(per_rack(&nodes, &targets).get("/r2"), Some(&1));
    }
}

#[test]
fn max_per_rack_follows_hdfs() {
    // (total replicas, racks) -> cap
    let table = [
        ((0, 3), 0),
        ((1, 3), 1),
        ((3, 1), 3),
        ((2, 2), 1),
        ((3, 2), 2),
        ((4, 2), 3),
        ((5, 2), 4),
        ((5, 3), 3),
        ((6, 2), 4),
        ((10, 4), 4),
    ];
    for ((total, racks), cap) in table {
        assert_eq!(
            max_per_rack(total, racks),
            cap,
            "{total} replicas on {racks} racks"
        );
    }
}

#[test]
fn busy_nodes_are_avoided_when_idle_ones_will_do() {
    // Average load 5: r1n1's 20 is over twice that.
    let mut nodes = cluster(&[("/r1", 4)]);
    node_mut(&mut nodes, "r1n1").active_transfers = 20;
    for seed in SEEDS {
        assert!(
            !place(&fresh(3), &nodes, seed).contains(&id("r1n1")),
            "seed {seed}"
        );
        assert!(
            place(&fresh(4), &nodes, seed).contains(&id("r1n1")),
            "seed {seed}"
        );
    }
}

#[test]
fn pipeline_crosses_racks_once_for_the_default_shape() {
    let nodes = cluster(&[("/r1", 3), ("/r2", 3)]);
    let writer = id("r2n1");
    let req = PlacementRequest {
        writer: Some(&writer),
        ..fresh(3)
    };
    for seed in SEEDS {
        let racks = racks_of(&nodes, &place(&req, &nodes, seed));
        assert_eq!(racks, ["/r2", "/r1", "/r1"], "seed {seed}");
    }

    // A writer off the chosen nodes starts the chain on its own rack.
    let chosen = ids(&["r1n1"]);
    let excluded = ids(&["r2n1"]);
    let req = PlacementRequest {
        writer: Some(&writer),
        chosen: &chosen,
        excluded: &excluded,
        ..fresh(4)
    };
    for seed in SEEDS {
        let racks = racks_of(&nodes, &place(&req, &nodes, seed));
        let crossings = racks.windows(2).filter(|w| w[0] != w[1]).count();
        assert_eq!(racks[0], "/r2", "seed {seed}: {racks:?}");
        assert!(crossings <= 1, "seed {seed}: {racks:?}");
    }
}

#[test]
fn odd_inputs_do_not_panic() {
    let nodes = cluster(&[("/r1", 2), ("/r2", 2)]);
    let mut rng = StdRng::seed_from_u64(7);

    assert_eq!(choose_targets(&fresh(0), &nodes, &mut rng), Ok(vec![]));

    // Holders and writers the registry does not know still count as replicas.
    let ghosts = ids(&["ghost", "ghost"]);
    let writer = id("phantom");
    let req = PlacementRequest {
        writer: Some(&writer),
        chosen: &ghosts,
        ..fresh(3)
    };
    let targets = choose_targets(&req, &nodes, &mut rng).unwrap();
    assert_eq!(targets.len(), 2);
    assert!(is_distinct(&targets));

    // The same id twice in the snapshot is still one node.
    let twice = [live("dup", "/r1"), live("dup", "/r2")];
    assert_eq!(
        choose_targets(&fresh(3), &twice, &mut rng),
        Ok(ids(&["dup"]))
    );

    // A minimum above the replication is capped at it; no block fits u64::MAX.
    let strict = PlacementRequest {
        min_replicas: 9,
        ..fresh(1)
    };
    assert_eq!(
        choose_targets(&strict, &nodes, &mut rng).map(|t| t.len()),
        Ok(1)
    );
    let huge = PlacementRequest {
        block_size: u64::MAX,
        min_replicas: 0,
        ..fresh(3)
    };
    assert_eq!(choose_targets(&huge, &nodes, &mut rng), Ok(vec![]));
}

// ---- properties over seeded random topologies -------------------------------

/// One random placement problem.
#[derive(Debug)]
struct Case {
    nodes: Vec<Candidate>,
    writer: Option<DatanodeId>,
    chosen: Vec<DatanodeId>,
    excluded: Vec<DatanodeId>,
    replicas: usize,
    min_replicas: usize,
}

impl Case {
    /// Up to `max_racks` racks (in 2 data centers) of up to `max_nodes` nodes,
    /// with random states, space and load.
    fn random(g: &mut StdRng, max_racks: usize, max_nodes: usize) -> Case {
        let mut nodes = Vec::new();
        for r in 1..=g.random_range(1..=max_racks) {
            let path = format!("/dc{}/r{r}", g.random_range(1..=2));
            for n in 1..=g.random_range(1..=max_nodes) {
                let mut node = live(&format!("r{r}n{n}"), &path);
                node.state = match g.random_range(0..10) {
                    0 => Liveness::Stale,
                    1 => Liveness::Dead,
                    _ => Liveness::Live,
                };
                node.remaining = match g.random_range(0..6) {
                    0 => 0,
                    1 => BLOCK - 1,
                    2 => 3 * BLOCK,
                    _ => ROOMY,
                };
                node.active_transfers = g.random_range(0..6);
                node.scheduled = g.random_range(0..6);
                nodes.push(node);
            }
        }
        let some_ids = |g: &mut StdRng, p: f64| -> Vec<DatanodeId> {
            let count = if g.random_bool(p) {
                g.random_range(1..=2)
            } else {
                0
            };
            (0..count)
                .map(|_| nodes[g.random_range(0..nodes.len())].id.clone())
                .collect()
        };
        let chosen = some_ids(g, 0.3);
        let excluded = some_ids(g, 0.3);
        let writer = match g.random_range(0..10) {
            0..3 => None,
            3 => Some(id("not-a-datanode")),
            _ => Some(nodes[g.random_range(0..nodes.len())].id.clone()),
        };
        nodes.shuffle(g);
        Case {
            nodes,
            writer,
            chosen,
            excluded,
            replicas: g.random_range(1..=6),
            min_replicas: g.random_range(0..=3),
        }
    }

    fn request(&self) -> PlacementRequest<'_> {
        PlacementRequest {
            writer: self.writer.as_ref(),
            replicas: self.replicas,
            chosen: &self.chosen,
            excluded: &self.excluded,
            block_size: BLOCK,
            min_replicas: self.min_replicas,
        }
    }

    fn node(&self, node: &DatanodeId) -> &Candidate {
        self.nodes.iter().find(|c| c.id == *node).unwrap()
    }

    fn holders(&self) -> BTreeSet<&DatanodeId> {
        self.chosen.iter().collect()
    }

    /// Usable nodes, restated from the spec rather than from the code.
    fn usable(&self) -> Vec<&Candidate> {
        let holders = self.holders();
        self.nodes
            .iter()
            .filter(|c| {
                c.state == Liveness::Live
                    && c.remaining >= BLOCK * (u64::from(c.active_transfers.max(c.scheduled)) + 1)
                    && !self.excluded.contains(&c.id)
                    && !holders.contains(&c.id)
            })
            .collect()
    }

    /// Replicas per rack once `targets` join the holders.
    fn rack_load(&self, targets: &[&DatanodeId]) -> BTreeMap<&RackPath, usize> {
        let mut load = BTreeMap::new();
        for node in self.holders().into_iter().chain(targets.iter().copied()) {
            *load.entry(&self.node(node).rack).or_default() += 1;
        }
        load
    }

    /// Whether `targets` keep every rack within `cap` (or within what the
    /// holders alone already put there).
    fn within_cap(&self, targets: &[&DatanodeId], cap: usize) -> bool {
        let before = self.rack_load(&[]);
        self.rack_load(targets)
            .into_iter()
            .all(|(rack, n)| n <= cap.max(before.get(rack).copied().unwrap_or(0)))
    }
}

fn case_seeds(count: u64) -> Vec<u64> {
    match std::env::var("DFS_SEED") {
        Ok(seed) => vec![seed.parse().expect("DFS_SEED is a u64")],
        Err(_) => (0..count).collect(),
    }
}

/// Checks what must hold for every case, whatever the topology.
fn check_invariants(seed: u64, case: &Case) {
    let req = case.request();
    let result = choose_targets(&req, &case.nodes, &mut StdRng::seed_from_u64(seed));

    // Same seed, same answer, whatever order the registry listed nodes in.
    let mut reversed = case.nodes.clone();
    reversed.reverse();
    let again = choose_targets(&req, &reversed, &mut StdRng::seed_from_u64(seed));
    assert_eq!(result, again, "case {seed}: not deterministic");

    let usable = case.usable();
    let holders = case.holders().len();
    let expected = case.replicas.saturating_sub(holders).min(usable.len());
    let min = case.min_replicas.min(case.replicas);
    let targets = match result {
        Err(PlacementError::NotEnoughNodes { found, .. }) => {
            assert!(
                holders + expected < min,
                "case {seed}: {case:?} failed needlessly"
            );
            assert_eq!(found, holders + expected, "case {seed}");
            return;
        }
        Ok(targets) => targets,
    };
    assert!(holders + expected >= min, "case {seed}: below the minimum");
    assert_eq!(targets.len(), expected, "case {seed}: {case:?}");
    assert!(is_distinct(&targets), "case {seed}: {targets:?}");
    let usable_ids: BTreeSet<&DatanodeId> = usable.iter().map(|c| &c.id).collect();
    for t in &targets {
        assert!(usable_ids.contains(t), "case {seed}: {t} is not usable");
    }
    if targets.is_empty() {
        return;
    }

    // Two racks whenever two are available.
    let available: BTreeSet<&RackPath> = usable
        .iter()
        .map(|c| &c.rack)
        .chain(case.chosen.iter().map(|h| &case.node(h).rack))
        .collect();
    let refs: Vec<&DatanodeId> = targets.iter().collect();
    let used = case.rack_load(&refs).len();
    if available.len() >= 2 && holders + targets.len() >= 2 {
        assert!(used >= 2, "case {seed}: one rack used of {available:?}");
    }

    // The per-rack cap holds whenever the racks have room under it: each rack
    // can take `cap - holders there` more, up to its usable nodes.
    let cap = max_per_rack(holders + targets.len(), available.len());
    let before = case.rack_load(&[]);
    let room_under_cap: usize = available
        .iter()
        .map(|rack| {
            let free = usable.iter().filter(|c| c.rack == **rack).count();
            let held = before.get(rack).copied().unwrap_or(0);
            free.min(cap.saturating_sub(held))
        })
        .sum();
    if room_under_cap >= targets.len() {
        assert!(case.within_cap(&refs, cap), "case {seed}: cap {cap} broken");
    }

    // The writer heads the chain when it is a target, and on a fresh block it
    // (or else its rack) takes the first replica.
    let writer = case
        .writer
        .as_ref()
        .and_then(|w| case.nodes.iter().find(|c| c.id == *w));
    if let Some(w) = writer {
        if targets.contains(&w.id) {
            assert_eq!(targets[0], w.id, "case {seed}");
        }
        if case.chosen.is_empty() {
            if usable_ids.contains(&w.id) {
                assert!(targets.contains(&w.id), "case {seed}: writer skipped");
            } else if usable.iter().any(|c| c.rack == w.rack) {
                let on_writer_rack = targets.iter().any(|t| case.node(t).rack == w.rack);
                assert!(on_writer_rack, "case {seed}: writer's rack skipped");
            }
        }
    }
}

#[test]
fn placement_invariants_hold_on_random_topologies() {
    for seed in case_seeds(3000) {
        let case = Case::random(&mut StdRng::seed_from_u64(seed), 6, 10);
        check_invariants(seed, &case);
    }
}

/// Every way to pick `k` of `items`.
fn subsets<T: Copy>(items: &[T], k: usize) -> Vec<Vec<T>> {
    (0u32..1 << items.len())
        .filter(|mask| mask.count_ones() as usize == k)
        .map(|mask| {
            (0..items.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| items[i])
                .collect()
        })
        .collect()
}

/// Every order of `items`.
fn permutations<T: Copy>(items: &[T]) -> Vec<Vec<T>> {
    if items.is_empty() {
        return vec![vec![]];
    }
    let mut all = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let head = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, head);
            all.push(tail);
        }
    }
    all
}

fn hops(case: &Case, start: Option<&Candidate>, chain: &[&DatanodeId]) -> u32 {
    let location = |c: &Candidate| NodeLocation {
        rack: c.rack.clone(),
        node: c.id.to_string(),
    };
    let mut at = start.map(location);
    let mut total = 0;
    for node in chain {
        let next = location(case.node(node));
        total += at.as_ref().map_or(0, |a| topology::distance(a, &next));
        at = Some(next);
    }
    total
}

#[test]
fn placement_is_as_good_as_brute_force_on_small_topologies() {
    for seed in case_seeds(1500) {
        let case = Case::random(&mut StdRng::seed_from_u64(seed), 4, 4);
        check_invariants(seed, &case);
        let Ok(targets) = choose_targets(
            &case.request(),
            &case.nodes,
            &mut StdRng::seed_from_u64(seed),
        ) else {
            continue;
        };
        let targets: Vec<&DatanodeId> = targets.iter().collect();
        let usable: Vec<&DatanodeId> = case.usable().iter().map(|c| &c.id).collect();
        let racks: BTreeSet<&RackPath> = usable
            .iter()
            .copied()
            .chain(&case.chosen)
            .map(|n| &case.node(n).rack)
            .collect();
        let cap = max_per_rack(case.holders().len() + targets.len(), racks.len());

        // The cap holds whenever any choice of as many nodes could keep it.
        let can_keep_cap = subsets(&usable, targets.len())
            .iter()
            .any(|s| case.within_cap(s, cap));
        if can_keep_cap {
            assert!(
                case.within_cap(&targets, cap),
                "case {seed}: {targets:?} break cap {cap}"
            );
        }

        // No order of the same targets makes a shorter chain from the writer.
        let writer = case
            .writer
            .as_ref()
            .and_then(|w| case.nodes.iter().find(|c| c.id == *w));
        let best = permutations(&targets)
            .iter()
            .map(|p| hops(&case, writer, p))
            .min()
            .unwrap_or(0);
        assert_eq!(
            hops(&case, writer, &targets),
            best,
            "case {seed}: {targets:?}"
        );
    }
}
