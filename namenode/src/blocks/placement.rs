//! The block placement policy: which datanodes receive a block's replicas, and
//! in which order the write pipeline chains them.
//!
//! The rule is HDFS's `BlockPlacementPolicyDefault`. Replicas that already
//! exist (`chosen`, during pipeline recovery or re-replication) count as placed,
//! so a recovery continues the sequence where the survivors left it:
//!
//! ```text
//!  replica 1    the writer's own datanode; else a node on the writer's rack; else any
//!  replica 2    a rack other than replica 1's
//!  replica 3    replica 2's rack, another node (another rack if 1 and 2 share one)
//!  replica 4+   anywhere
//!  every pick   at most max_per_rack replicas on a rack, never two on one node
//!
//!  max_per_rack = (total - 1) / racks + 2, minus 1 if that equals total
//!                 (no cap with one rack), where total = chosen + new replicas and
//!                 racks = racks that hold a replica or have a usable node
//! ```
//!
//! A rule that cannot be met is relaxed rather than failed: first the rule for
//! that replica, then the per-rack cap. Fewer replicas than wanted are placed
//! only when there are fewer usable nodes, and that is an error only below the
//! minimum. Among the nodes a step accepts, those not busier than twice the
//! average load are preferred (HDFS's `considerLoad`), and one is picked at random.
//!
//! A node is *usable* when it is live, not `excluded`, does not already hold the
//! block, and has room for it and for every block already on its way there
//! (HDFS's `isGoodTarget`: remaining minus the space scheduled blocks will take
//! must leave at least one block):
//!
//! ```text
//!  remaining >= block_size * (1 + in_flight)
//!  in_flight  = max(scheduled, active_transfers)
//! ```
//!
//! `scheduled` counts the blocks the namenode sent the node (write pipelines,
//! re-replications) that it has not reported yet (`in_flight`), which its last
//! heartbeat's `remaining` cannot show; `active_transfers` is the node's own
//! count of transfers in flight (reads too, which errs on the safe side). Both
//! count the same blocks once they are under way, hence the larger, not the sum.
//!
//! Pure: no clock, no I/O, no registry access. Candidates are sorted by id before
//! any random choice, so the same inputs and seed give the same targets.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use dfs_proto::ids::DatanodeId;
use dfs_proto::topology::{self, NodeLocation, RackPath};
use rand::seq::IndexedRandom;

use crate::datanodes::Liveness;

/// One datanode as placement sees it: a snapshot of the registry's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// The datanode.
    pub(crate) id: DatanodeId,
    /// Its rack.
    pub(crate) rack: RackPath,
    /// Whether it heartbeats; only live nodes receive new replicas.
    pub(crate) state: Liveness,
    /// Bytes free for new blocks, as last reported.
    pub(crate) remaining: u64,
    /// Block transfers in flight on the node: its load.
    pub(crate) active_transfers: u32,
    /// Blocks the namenode sent the node that it has not reported yet.
    pub(crate) scheduled: u32,
}

/// What to place: one block, how many replicas, and what to avoid.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlacementRequest<'a> {
    /// The client's own datanode, when the writer runs on one.
    pub(crate) writer: Option<&'a DatanodeId>,
    /// Replicas wanted in all, `chosen` included (the file's replication).
    pub(crate) replicas: usize,
    /// Replicas that already exist: they count toward racks and the cap, and
    /// are never chosen again.
    pub(crate) chosen: &'a [DatanodeId],
    /// Nodes never to choose, such as those that just failed in the pipeline.
    pub(crate) excluded: &'a [DatanodeId],
    /// The block's size in bytes.
    pub(crate) block_size: u64,
    /// Fewest replicas, `chosen` included, that make the placement a success;
    /// capped at `replicas`.
    pub(crate) min_replicas: usize,
}

/// Why no acceptable set of targets exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PlacementError {
    /// Fewer usable datanodes than the minimum replication needs.
    #[error("could only place {found} of {wanted} replicas (minimum {min}): {reason}")]
    NotEnoughNodes {
        /// Replicas wanted, `chosen` included.
        wanted: usize,
        /// Replicas that could be placed, `chosen` included.
        found: usize,
        /// The minimum that was not reached.
        min: usize,
        /// Why the other datanodes could not be used, counted by cause.
        reason: String,
    },
}

/// Chooses datanodes for the replicas of one block that `chosen` does not
/// already hold, and returns them in pipeline order (`chosen` excluded).
///
/// Places `min(replicas - chosen, usable nodes)` replicas under the rules in
/// the module docs.
///
/// # Errors
///
/// [`PlacementError::NotEnoughNodes`] when `chosen` plus the new targets would
/// stay below `min_replicas`.
pub(crate) fn choose_targets(
    req: &PlacementRequest<'_>,
    nodes: &[Candidate],
    rng: &mut impl rand::Rng,
) -> Result<Vec<DatanodeId>, PlacementError> {
    let mut sorted: Vec<&Candidate> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    sorted.dedup_by(|a, b| a.id == b.id);
    let find = |id: &DatanodeId| -> Option<&Candidate> {
        let i = sorted.binary_search_by(|c| c.id.cmp(id)).ok()?;
        sorted.get(i).copied()
    };

    let mut held: Vec<&DatanodeId> = Vec::new();
    for id in req.chosen {
        if !held.contains(&id) {
            held.push(id);
        }
    }
    let held_set: BTreeSet<&DatanodeId> = held.iter().copied().collect();
    let excluded: BTreeSet<&DatanodeId> = req.excluded.iter().collect();

    let mut census = Census {
        registered: sorted.len(),
        ..Census::default()
    };
    let mut usable: Vec<&Candidate> = Vec::new();
    for &node in &sorted {
        let fitness = if held_set.contains(&node.id) {
            Fitness::HoldsReplica
        } else if excluded.contains(&node.id) {
            Fitness::Excluded
        } else if node.state == Liveness::Dead {
            Fitness::Dead
        } else if node.state == Liveness::Stale {
            Fitness::Stale
        } else if !has_room(node, req.block_size) {
            Fitness::Full
        } else {
            usable.push(node);
            Fitness::Usable
        };
        census.count(fitness);
    }

    let to_place = req.replicas.saturating_sub(held.len()).min(usable.len());
    let min = req.min_replicas.min(req.replicas);
    let found = held.len().saturating_add(to_place);
    if found < min {
        return Err(PlacementError::NotEnoughNodes {
            wanted: req.replicas,
            found,
            min,
            reason: census.to_string(),
        });
    }

    // Racks of the replicas in placement order; `None` for a holder the
    // registry no longer knows, which then constrains nothing.
    let mut placed: Vec<Option<&RackPath>> =
        held.iter().map(|id| find(id).map(|c| &c.rack)).collect();
    let mut rack_load: BTreeMap<&RackPath, usize> = BTreeMap::new();
    for rack in placed.iter().flatten() {
        *rack_load.entry(*rack).or_default() += 1;
    }
    let racks: BTreeSet<&RackPath> = usable
        .iter()
        .map(|c| &c.rack)
        .chain(placed.iter().flatten().copied())
        .collect();
    let cap = max_per_rack(found, racks.len());

    let busy = busy_threshold(&sorted);
    let mut pool: Vec<Slot<'_>> = usable
        .into_iter()
        .map(|node| Slot {
            node,
            is_busy: busy.is_busy(node),
        })
        .collect();
    let writer = req.writer.and_then(find);
    let mut targets: Vec<&Candidate> = Vec::with_capacity(to_place);
    while targets.len() < to_place {
        let wants = wants(&placed, writer);
        let Some(node) = pick(&mut pool, &wants, &rack_load, cap, rng) else {
            break;
        };
        placed.push(Some(&node.rack));
        *rack_load.entry(&node.rack).or_default() += 1;
        targets.push(node);
    }
    Ok(order_pipeline(writer, targets))
}

/// HDFS's `getMaxNodesPerRack`: replicas one rack may hold so that `total`
/// replicas spread over `racks` racks.
fn max_per_rack(total: usize, racks: usize) -> usize {
    if racks <= 1 || total <= 1 {
        return total;
    }
    let cap = (total - 1) / racks + 2;
    // With 2 or 3 replicas the formula would allow all of them on one rack.
    if cap == total { cap - 1 } else { cap }
}

/// Whether the node can take the block and every block in flight to it.
fn has_room(node: &Candidate, block_size: u64) -> bool {
    let in_flight = node.scheduled.max(node.active_transfers);
    let blocks = u64::from(in_flight).saturating_add(1);
    node.remaining >= block_size.saturating_mul(blocks)
}

/// Load above which a node is avoided when others would do: twice the average
/// of the live nodes (HDFS's `considerLoad` with its default factor 2).
#[derive(Debug, Clone, Copy)]
struct BusyThreshold {
    live: u128,
    total_transfers: u128,
}

fn busy_threshold(nodes: &[&Candidate]) -> BusyThreshold {
    let live = nodes.iter().filter(|c| c.state == Liveness::Live);
    BusyThreshold {
        live: live.clone().count() as u128,
        total_transfers: live.map(|c| u128::from(c.active_transfers)).sum(),
    }
}

impl BusyThreshold {
    fn is_busy(self, node: &Candidate) -> bool {
        // transfers > 2 * (total / live), without division; no load, no one busy.
        self.total_transfers > 0
            && u128::from(node.active_transfers) * self.live > 2 * self.total_transfers
    }
}

/// A usable node not yet picked.
#[derive(Debug, Clone, Copy)]
struct Slot<'c> {
    node: &'c Candidate,
    is_busy: bool,
}

/// One preference for the next replica.
#[derive(Debug, Clone, Copy)]
enum Want<'a> {
    Node(&'a DatanodeId),
    Rack(&'a RackPath),
    NotRack(&'a RackPath),
}

impl Want<'_> {
    fn accepts(self, node: &Candidate) -> bool {
        match self {
            Want::Node(id) => node.id == *id,
            Want::Rack(rack) => node.rack == *rack,
            Want::NotRack(rack) => node.rack != *rack,
        }
    }
}

/// The next replica's preferences, strongest first, given the racks of the
/// replicas placed so far.
fn wants<'a>(placed: &[Option<&'a RackPath>], writer: Option<&'a Candidate>) -> Vec<Want<'a>> {
    match placed {
        [] => writer
            .map(|w| vec![Want::Node(&w.id), Want::Rack(&w.rack)])
            .unwrap_or_default(),
        [Some(first)] => vec![Want::NotRack(first)],
        [Some(first), Some(second)] if first == second => vec![Want::NotRack(first)],
        [Some(_), Some(second)] => vec![Want::Rack(second)],
        // One holder's rack is unknown: at least keep away from the known one.
        [Some(known), None] | [None, Some(known)] => vec![Want::NotRack(known)],
        _ => Vec::new(),
    }
}

/// Takes one node out of `pool`: the first tier with any match wins, idle nodes
/// before busy ones, then a random one. The tiers are each want under the cap,
/// then anything under the cap, then anything.
fn pick<'c>(
    pool: &mut Vec<Slot<'c>>,
    wants: &[Want<'_>],
    rack_load: &BTreeMap<&RackPath, usize>,
    cap: usize,
    rng: &mut impl rand::Rng,
) -> Option<&'c Candidate> {
    let under_cap = |node: &Candidate| rack_load.get(&node.rack).copied().unwrap_or(0) < cap;
    for tier in 0..wants.len() + 2 {
        let accepts = |node: &Candidate| match wants.get(tier) {
            Some(want) => want.accepts(node) && under_cap(node),
            None if tier == wants.len() => under_cap(node),
            None => true,
        };
        let matching: Vec<(usize, bool)> = pool
            .iter()
            .enumerate()
            .filter(|(_, slot)| accepts(slot.node))
            .map(|(i, slot)| (i, slot.is_busy))
            .collect();
        let idle: Vec<usize> = matching
            .iter()
            .filter(|(_, is_busy)| !is_busy)
            .map(|(i, _)| *i)
            .collect();
        let choice = if idle.is_empty() {
            matching.choose(rng).map(|(i, _)| *i)
        } else {
            idle.choose(rng).copied()
        };
        if let Some(i) = choice {
            return (i < pool.len()).then(|| pool.remove(i).node);
        }
    }
    None
}

/// Orders targets into a chain that starts at the writer (or, when the writer
/// is not a known datanode, at the first target picked) and always goes on to
/// the nearest remaining target (HDFS's `getPipeline`), so the chain crosses
/// each rack boundary as few times as it can.
fn order_pipeline(writer: Option<&Candidate>, targets: Vec<&Candidate>) -> Vec<DatanodeId> {
    let location = |c: &Candidate| NodeLocation {
        rack: c.rack.clone(),
        node: c.id.to_string(),
    };
    let mut chain: Vec<(&Candidate, NodeLocation)> =
        targets.into_iter().map(|c| (c, location(c))).collect();
    let mut from = writer
        .or_else(|| chain.first().map(|(c, _)| *c))
        .map(location);
    for i in 0..chain.len() {
        if let Some(from) = &from {
            let nearest = chain
                .iter()
                .enumerate()
                .skip(i)
                .min_by_key(|(_, (_, loc))| topology::distance(from, loc))
                .map_or(i, |(j, _)| j);
            chain.swap(i, nearest);
        }
        from = chain.get(i).map(|(_, loc)| loc.clone());
    }
    chain.into_iter().map(|(c, _)| c.id.clone()).collect()
}

/// Why a datanode can or cannot take the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fitness {
    Usable,
    HoldsReplica,
    Excluded,
    Dead,
    Stale,
    Full,
}

/// Datanodes counted by [`Fitness`], for an error a user can act on.
#[derive(Debug, Default)]
struct Census {
    registered: usize,
    usable: usize,
    holding: usize,
    excluded: usize,
    dead: usize,
    stale: usize,
    full: usize,
}

impl Census {
    fn count(&mut self, fitness: Fitness) {
        let counter = match fitness {
            Fitness::Usable => &mut self.usable,
            Fitness::HoldsReplica => &mut self.holding,
            Fitness::Excluded => &mut self.excluded,
            Fitness::Dead => &mut self.dead,
            Fitness::Stale => &mut self.stale,
            Fitness::Full => &mut self.full,
        };
        *counter += 1;
    }
}

impl fmt::Display for Census {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.registered == 0 {
            return f.write_str("no datanode has registered");
        }
        let verb = if self.usable == 1 { "is" } else { "are" };
        write!(
            f,
            "{} of {} datanodes {verb} live with room for the block",
            self.usable, self.registered
        )?;
        let others = [
            (self.stale, "stale"),
            (self.dead, "dead"),
            (self.full, "without room"),
            (self.excluded, "excluded after failing"),
            (self.holding, "already holding a replica"),
        ];
        let mut sep = "; ";
        for (n, what) in others {
            if n > 0 {
                write!(f, "{sep}{n} {what}")?;
                sep = ", ";
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "placement_test.rs"]
mod tests;
