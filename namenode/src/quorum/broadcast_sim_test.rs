//! Deterministic simulation of discovery, sync and broadcast.
//!
//! Three or five voters (and sometimes an observer) run the real cores:
//! [`Discovery`], [`choose_sync`], [`Leader`] and [`Learner`]. A seeded RNG
//! picks each step: propose, deliver the next message of a random link (each
//! link is FIFO like a TCP connection; links interleave at random), fsync
//! part of a node's journal, break a connection (a lost message: its
//! "retransmission" is the re-sync that follows), crash a node (losing what
//! it had not fsynced), restart one, let a LOOKING node join the leader,
//! checkpoint the leader's log (so SNAP is needed), or elect a leader when
//! there is none. The election is a stand-in for fast leader election: a
//! random quorum of LOOKING voters, led usually by its most up-to-date
//! member and sometimes by any member, so discovery's refusal is exercised.
//!
//! Simplifications: discovery and a learner's sync each happen within one
//! step, and a sync is durable at once.
//!
//! Checked on every step: a commit is in zxid order, is durable on a quorum
//! of voters' journals and never changes; a zxid is never proposed twice;
//! every learner applies exactly the committed sequence, in order; a new
//! leader's history extends everything committed; DIFF and TRUNC leave the
//! learner with a prefix of the leader's history. A failing seed is printed
//! and replays with `DFS_SEED=<seed>`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::quorum::replay::{self, SeedGuard};
use crate::quorum::sync::{
    AckEpoch, AckProgress, Discovery, DiscoveryError, EpochProgress, LeaderInfoAnswer, LogView,
    SyncPlan, answer_leader_info, choose_sync,
};

const OBSERVER: ServerId = ServerId(100);
const STEPS: usize = 400;
const SEEDS: u64 = 1000;

fn payload(p: u64) -> Bytes {
    Bytes::copy_from_slice(&p.to_le_bytes())
}

fn decode(b: &Bytes) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(b);
    u64::from_le_bytes(raw)
}

/// A leader's state beyond its core.
#[derive(Debug)]
struct Leading {
    core: Leader,
    discovery: Discovery,
    epoch: Epoch,
    /// History up to here is only in the leader's snapshot.
    log_start: Zxid,
}

#[derive(Debug)]
enum Role {
    Down,
    Looking,
    Leading(Box<Leading>),
    Learning(Learner),
}

#[derive(Debug)]
struct Node {
    role: Role,
    /// Fsynced journal entries (zxid, payload), ascending.
    durable: Vec<(Zxid, u64)>,
    /// Appended, not yet fsynced.
    pending: Vec<(Zxid, u64)>,
    /// How many committed txns the namespace has applied (a prefix).
    applied: usize,
    accepted: Epoch,
    current: Epoch,
}

impl Node {
    fn last_zxid(&self) -> Zxid {
        self.pending
            .last()
            .or(self.durable.last())
            .map_or(Zxid::ZERO, |&(z, _)| z)
    }

    fn flush(&mut self) {
        self.durable.append(&mut self.pending);
    }

    fn holds(&self, entry: (Zxid, u64)) -> bool {
        self.durable
            .binary_search_by_key(&entry.0, |&(z, _)| z)
            .is_ok_and(|i| self.durable[i] == entry)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    commits: u64,
    elections: u64,
    refused_leaders: u64,
    diffs: u64,
    truncs: u64,
    snaps: u64,
    lost_quorum: u64,
    gaps_or_newer: u64,
}

impl Stats {
    fn add(&mut self, o: Stats) {
        self.commits += o.commits;
        self.elections += o.elections;
        self.refused_leaders += o.refused_leaders;
        self.diffs += o.diffs;
        self.truncs += o.truncs;
        self.snaps += o.snaps;
        self.lost_quorum += o.lost_quorum;
        self.gaps_or_newer += o.gaps_or_newer;
    }
}

struct Sim {
    rng: StdRng,
    voters: BTreeSet<ServerId>,
    nodes: BTreeMap<ServerId, Node>,
    /// FIFO links of the current leader's sessions, by (from, to).
    links: BTreeMap<(ServerId, ServerId), VecDeque<Message>>,
    leader: Option<ServerId>,
    /// Learners in the current leader's session.
    session: BTreeSet<ServerId>,
    /// Everything committed, in order.
    committed: Vec<(Zxid, u64)>,
    /// Every zxid ever proposed, with its payload.
    proposed: BTreeMap<Zxid, u64>,
    next_payload: u64,
    stats: Stats,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = if rng.random_bool(0.5) { 3 } else { 5 };
        let voters: BTreeSet<ServerId> = (1..=n).map(ServerId).collect();
        let mut sids: Vec<ServerId> = voters.iter().copied().collect();
        if rng.random_bool(0.5) {
            sids.push(OBSERVER);
        }
        let nodes = sids
            .into_iter()
            .map(|sid| {
                let node = Node {
                    role: Role::Looking,
                    durable: Vec::new(),
                    pending: Vec::new(),
                    applied: 0,
                    accepted: Epoch(0),
                    current: Epoch(0),
                };
                (sid, node)
            })
            .collect();
        Sim {
            rng,
            voters,
            nodes,
            links: BTreeMap::new(),
            leader: None,
            session: BTreeSet::new(),
            committed: Vec::new(),
            proposed: BTreeMap::new(),
            next_payload: 1,
            stats: Stats::default(),
        }
    }

    fn node(&mut self, sid: ServerId) -> &mut Node {
        self.nodes
            .get_mut(&sid)
            .expect("the simulation only names its own nodes")
    }

    fn leading(&mut self) -> Option<(ServerId, &mut Leading)> {
        let sid = self.leader?;
        match &mut self.node(sid).role {
            Role::Leading(l) => Some((sid, &mut **l)),
            _ => None,
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.rng.random_range(0..items.len())])
    }

    fn with_role(&self, want: impl Fn(&Role) -> bool) -> Vec<ServerId> {
        self.nodes
            .iter()
            .filter(|(_, n)| want(&n.role))
            .map(|(&sid, _)| sid)
            .collect()
    }

    fn step(&mut self) {
        // Weights in per mille.
        match self.rng.random_range(0..1000) {
            0..220 => self.propose(),
            220..600 => self.deliver(),
            600..820 => self.fsync(),
            820..840 => self.break_link(),
            840..852 => self.crash(),
            852..900 => self.restart(),
            900..970 => self.join(),
            970..985 => self.checkpoint(),
            _ => self.elect(),
        }
        if self.leader.is_none() && self.rng.random_bool(0.2) {
            self.elect();
        }
    }

    // ------------------------------------------------------------ events

    fn propose(&mut self) {
        let p = self.next_payload;
        let Some((sid, leading)) = self.leading() else {
            return;
        };
        let Ok((zxid, actions)) = leading.core.propose(payload(p)) else {
            return;
        };
        self.next_payload += 1;
        assert_eq!(
            self.proposed.insert(zxid, p),
            None,
            "zxid {zxid} proposed twice"
        );
        self.dispatch(sid, actions);
    }

    fn deliver(&mut self) {
        let busy: Vec<(ServerId, ServerId)> = self
            .links
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(&k, _)| k)
            .collect();
        let Some((from, to)) = self.pick(&busy) else {
            return;
        };
        let Some(msg) = self
            .links
            .get_mut(&(from, to))
            .and_then(VecDeque::pop_front)
        else {
            return;
        };
        let result = match &mut self.node(to).role {
            Role::Leading(l) => l.core.on_message(from, msg.clone()),
            Role::Learning(learner) => learner.on_message(msg.clone()),
            role => panic!("{msg:?} delivered to {to} in {role:?}"),
        };
        match result {
            Ok(actions) => self.dispatch(to, actions),
            // An ACK can arrive after its zxid committed; nothing else is
            // ever redundant on a FIFO session.
            Err(Ignored::Duplicate(_)) if matches!(msg, Message::Ack { .. }) => {}
            Err(e) => panic!("{to} ignored {msg:?} from {from}: {e}"),
        }
    }

    fn fsync(&mut self) {
        let writers = self.with_role(|_| true);
        let writers: Vec<ServerId> = writers
            .into_iter()
            .filter(|&s| !self.nodes[&s].pending.is_empty())
            .collect();
        let Some(sid) = self.pick(&writers) else {
            return;
        };
        let count = self.rng.random_range(1..=self.nodes[&sid].pending.len());
        let node = self.node(sid);
        let done: Vec<(Zxid, u64)> = node.pending.drain(..count).collect();
        node.durable.extend(&done);
        let Some(&(last, _)) = done.last() else {
            return;
        };
        let actions = match &mut node.role {
            Role::Leading(l) => {
                let epoch = l.epoch;
                let mut actions = Vec::new();
                for &(zxid, _) in &done {
                    match l.core.on_message(sid, Message::Ack { epoch, zxid }) {
                        Ok(more) => actions.extend(more),
                        Err(Ignored::Duplicate(_)) => {}
                        Err(e) => panic!("leader {sid} refused its own ACK of {zxid}: {e}"),
                    }
                }
                actions
            }
            Role::Learning(learner) => learner
                .on_journaled(last)
                .unwrap_or_else(|e| panic!("{sid} journaled {last}: {e}")),
            _ => Vec::new(),
        };
        self.dispatch(sid, actions);
    }

    /// A connection breaks: in-flight messages are lost, both ends notice.
    fn break_link(&mut self) {
        let learners: Vec<ServerId> = self.session.iter().copied().collect();
        if let Some(sid) = self.pick(&learners) {
            self.go_looking(sid);
        }
    }

    fn crash(&mut self) {
        let alive = self.with_role(|r| !matches!(r, Role::Down));
        let Some(sid) = self.pick(&alive) else {
            return;
        };
        self.node(sid).pending.clear();
        self.go_looking(sid);
        self.node(sid).role = Role::Down;
    }

    fn restart(&mut self) {
        let down = self.with_role(|r| matches!(r, Role::Down));
        if let Some(sid) = self.pick(&down) {
            self.node(sid).role = Role::Looking;
        }
    }

    /// The leader checkpoints: history up to a committed zxid is only in
    /// the snapshot from now on.
    fn checkpoint(&mut self) {
        let Some((_, leading)) = self.leading() else {
            return;
        };
        let last = leading.core.last_committed();
        let start = leading.log_start;
        let newer: Vec<Zxid> = self
            .committed
            .iter()
            .map(|&(z, _)| z)
            .filter(|&z| z >= start && z <= last)
            .collect();
        if let Some(z) = self.pick(&newer)
            && let Some((_, leading)) = self.leading()
        {
            leading.log_start = z;
        }
    }

    /// A LOOKING node finds the established leader: discovery (for a
    /// latecomer), then sync.
    fn join(&mut self) {
        if self.leader.is_none() {
            return;
        }
        let looking = self.with_role(|r| matches!(r, Role::Looking));
        let Some(sid) = self.pick(&looking) else {
            return;
        };
        let (accepted, current, last) = {
            let n = &self.nodes[&sid];
            (n.accepted, n.current, n.last_zxid())
        };
        let Some((_, leading)) = self.leading() else {
            return;
        };
        let EpochProgress::Known { epoch } = leading.discovery.on_follower_info(sid, accepted)
        else {
            panic!("an established leader's epoch is known");
        };
        let current_epoch = match answer_leader_info(accepted, epoch) {
            LeaderInfoAnswer::Accept => Some(current),
            LeaderInfoAnswer::AlreadyAccepted => None,
            LeaderInfoAnswer::Stale => return,
        };
        let ack = AckEpoch {
            epoch,
            current_epoch,
            last_zxid: last,
        };
        let progress = leading.discovery.on_ack_epoch(sid, ack);
        assert_eq!(progress, Ok(AckProgress::Sync), "latecomer {sid}");
        self.node(sid).accepted = epoch;
        self.sync(sid);
    }

    /// With no leader: a random quorum of LOOKING voters runs discovery.
    fn elect(&mut self) {
        if self.leader.is_some() {
            return;
        }
        let mut members: Vec<ServerId> = self
            .with_role(|r| matches!(r, Role::Looking))
            .into_iter()
            .filter(|sid| self.voters.contains(sid))
            .collect();
        let quorum = self.voters.len() / 2 + 1;
        if members.len() < quorum {
            return;
        }
        members.shuffle(&mut self.rng);
        members.truncate(self.rng.random_range(quorum..=members.len()));
        let summary = |n: &Node| (n.current, n.last_zxid());
        let best = members
            .iter()
            .copied()
            .max_by_key(|sid| summary(&self.nodes[sid]));
        let leader = if self.rng.random_bool(0.8) {
            best
        } else {
            self.pick(&members)
        };
        let Some(leader) = leader else {
            return;
        };
        self.stats.elections += 1;
        let n = &self.nodes[&leader];
        let mut discovery = Discovery::new(
            leader,
            self.voters.clone(),
            n.accepted,
            n.current,
            n.last_zxid(),
        )
        .expect("members are voters");
        let followers: Vec<ServerId> = members.into_iter().filter(|&s| s != leader).collect();
        let mut chosen = None;
        for &sid in &followers {
            if let EpochProgress::Chosen { epoch } =
                discovery.on_follower_info(sid, self.nodes[&sid].accepted)
            {
                chosen = Some(epoch);
            }
        }
        let epoch = chosen.expect("a quorum reported");
        self.node(leader).accepted = epoch;
        let mut to_sync = Vec::new();
        let mut established = false;
        for &sid in &followers {
            let n = &self.nodes[&sid];
            // Reports after the quorum's did not raise the epoch.
            let current_epoch = match answer_leader_info(n.accepted, epoch) {
                LeaderInfoAnswer::Accept => Some(n.current),
                LeaderInfoAnswer::AlreadyAccepted => None,
                LeaderInfoAnswer::Stale => continue,
            };
            let ack = AckEpoch {
                epoch,
                current_epoch,
                last_zxid: n.last_zxid(),
            };
            self.node(sid).accepted = epoch;
            match discovery.on_ack_epoch(sid, ack) {
                Ok(AckProgress::Established { .. }) => established = true,
                Ok(_) => {}
                Err(DiscoveryError::FollowerAhead { .. }) => {
                    self.stats.refused_leaders += 1;
                    return;
                }
                Err(e) => panic!("{e}"),
            }
            to_sync.push(sid);
        }
        if !established {
            self.stats.refused_leaders += 1;
            return;
        }

        // Established: the leader's whole history is committed.
        self.node(leader).current = epoch;
        let history = self.nodes[&leader].durable.clone();
        assert!(
            history.starts_with(&self.committed),
            "leader {leader} of epoch {epoch} lacks committed txns: has {history:?}, committed {:?}",
            self.committed
        );
        self.committed = history;
        let last = self.nodes[&leader].last_zxid();
        let core = Leader::new(leader, epoch, self.voters.clone(), last)
            .expect("the history predates the new epoch");
        let log_start = if self.rng.random_bool(0.3) {
            let committed = self.committed.clone();
            self.pick(&committed).map_or(Zxid::ZERO, |(z, _)| z)
        } else {
            Zxid::ZERO
        };
        let applied = self.committed.len();
        let node = self.node(leader);
        node.applied = applied;
        node.role = Role::Leading(Box::new(Leading {
            core,
            discovery,
            epoch,
            log_start,
        }));
        self.leader = Some(leader);
        for sid in to_sync {
            self.sync(sid);
        }
        let has_quorum = self.leading().is_some_and(|(_, l)| l.core.has_quorum());
        assert!(has_quorum, "the discovery quorum is synced");
    }

    /// Brings `sid` to the leader's last committed zxid with the chosen
    /// plan, checking the plan was right, then starts its session.
    fn sync(&mut self, sid: ServerId) {
        let Some((leader, leading)) = self.leading() else {
            return;
        };
        let epoch = leading.epoch;
        let last = leading.core.last_committed();
        let log_start = leading.log_start;
        assert_eq!(self.committed.last().map_or(Zxid::ZERO, |&(z, _)| z), last);
        let history = self.committed.clone();
        let log: Vec<Zxid> = history
            .iter()
            .map(|&(z, _)| z)
            .filter(|&z| z > log_start)
            .collect();
        let node = self.node(sid);
        node.flush();
        let plan = choose_sync(
            node.last_zxid(),
            &LogView {
                log_start,
                log: &log,
            },
        );
        match plan {
            SyncPlan::Diff { .. } => self.stats.diffs += 1,
            SyncPlan::Trunc { .. } => self.stats.truncs += 1,
            SyncPlan::Snap => self.stats.snaps += 1,
        }
        let node = self.node(sid);
        match plan.diff_from() {
            Some(from) => {
                node.durable.retain(|&(z, _)| z <= from);
                assert_eq!(
                    node.last_zxid(),
                    from,
                    "{sid}: {plan:?} from a zxid it lacks"
                );
                assert!(
                    history.starts_with(&node.durable),
                    "{sid}: {plan:?} leaves a history that is not the leader's: {:?} vs {history:?}",
                    node.durable
                );
            }
            None => node.durable.clear(),
        }
        node.durable = history;
        node.applied = node.durable.len();
        node.current = epoch;
        let role = if sid == OBSERVER {
            LearnerRole::Observer
        } else {
            LearnerRole::Follower
        };
        node.role = Role::Learning(Learner::new(role, leader, epoch, last));
        self.session.insert(sid);
        let Some((_, leading)) = self.leading() else {
            return;
        };
        let actions = leading
            .core
            .start_forwarding(sid, last)
            .expect("synced to the last committed zxid");
        if role == LearnerRole::Follower {
            leading.core.on_synced(sid).expect("a forwarding voter");
        }
        self.dispatch(leader, actions);
    }

    // ------------------------------------------------------------ actions

    fn dispatch(&mut self, from: ServerId, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Journal { zxid, payload } => {
                    self.node(from).pending.push((zxid, decode(&payload)));
                }
                Action::Send { to, msg } => {
                    let connected = (self.leader == Some(from) && self.session.contains(&to))
                        || (self.leader == Some(to) && self.session.contains(&from));
                    assert!(connected, "{from} sends {msg:?} to {to} outside a session");
                    self.links.entry((from, to)).or_default().push_back(msg);
                }
                Action::Apply { zxid } => self.apply(from, zxid),
                Action::GoLooking(reason) => {
                    match reason {
                        LookingReason::LostQuorum => self.stats.lost_quorum += 1,
                        _ => self.stats.gaps_or_newer += 1,
                    }
                    self.go_looking(from);
                }
            }
        }
    }

    fn apply(&mut self, sid: ServerId, zxid: Zxid) {
        if self.leader == Some(sid) {
            let last = self.committed.last().map_or(Zxid::ZERO, |&(z, _)| z);
            assert!(zxid > last, "commit of {zxid} after {last}");
            let entry = (zxid, self.proposed[&zxid]);
            let holders = self
                .voters
                .iter()
                .filter(|v| self.nodes.get(v).is_some_and(|n| n.holds(entry)))
                .count();
            assert!(
                holders > self.voters.len() / 2,
                "{zxid} committed on {holders} journals"
            );
            self.committed.push(entry);
            self.stats.commits += 1;
        }
        let committed = &self.committed;
        let node = self.nodes.get_mut(&sid).expect("a simulated node");
        let expected = committed.get(node.applied).copied();
        assert_eq!(
            expected.map(|(z, _)| z),
            Some(zxid),
            "{sid} applies {zxid} out of order"
        );
        if self.leader != Some(sid) {
            assert!(
                expected.is_some_and(|e| node.holds(e)),
                "{sid} applies {zxid} that it has not journaled as committed"
            );
        }
        node.applied += 1;
    }

    /// `sid` leaves its session (its connection broke, it stepped down or
    /// crashed); the leader's learners all go LOOKING with it.
    fn go_looking(&mut self, sid: ServerId) {
        let node = self.node(sid);
        node.flush();
        let was = std::mem::replace(&mut node.role, Role::Looking);
        match was {
            Role::Leading(_) => {
                self.leader = None;
                self.links.clear();
                for learner in std::mem::take(&mut self.session) {
                    let node = self.node(learner);
                    node.flush();
                    node.role = Role::Looking;
                }
            }
            Role::Learning(_) => {
                self.session.remove(&sid);
                let leader = self.leader.expect("a learner has a leader");
                self.links.remove(&(sid, leader));
                self.links.remove(&(leader, sid));
                if let Some((_, leading)) = self.leading() {
                    let actions = leading.core.on_peer_lost(sid);
                    self.dispatch(leader, actions);
                }
            }
            Role::Looking | Role::Down => {}
        }
        if matches!(was, Role::Down) {
            self.node(sid).role = Role::Down;
        }
    }

    /// What must hold at the end: every committed txn is still durable on a
    /// quorum of voters.
    fn check_end(&self) {
        for &entry in &self.committed {
            let holders = self
                .voters
                .iter()
                .filter(|v| self.nodes[v].holds(entry))
                .count();
            assert!(
                holders > self.voters.len() / 2,
                "committed {:?} survives on {holders} journals",
                entry.0
            );
        }
    }
}

fn run(seed: u64) -> Stats {
    let _guard = SeedGuard(seed);
    let mut sim = Sim::new(seed);
    for _ in 0..STEPS {
        sim.step();
    }
    sim.check_end();
    sim.stats
}

#[test]
fn broadcast_and_sync_keep_every_commit_under_faults() {
    let seeds = replay::seeds(0..SEEDS);
    let mut total = Stats::default();
    for seed in &seeds {
        total.add(run(*seed));
    }
    if seeds.len() == 1 {
        return;
    }
    // The faults must actually have happened for the checks to mean anything.
    println!("{total:?}");
    assert!(total.commits > 10 * SEEDS, "{total:?}");
    assert!(total.elections > SEEDS, "{total:?}");
    for (what, n) in [
        ("refused leaders", total.refused_leaders),
        ("DIFFs", total.diffs),
        ("TRUNCs", total.truncs),
        ("SNAPs", total.snaps),
        ("lost quorums", total.lost_quorum),
    ] {
        assert!(n > 0, "no {what}: {total:?}");
    }
    assert_eq!(
        total.gaps_or_newer, 0,
        "FIFO sessions never skip: {total:?}"
    );
}

#[test]
fn a_seed_replays_the_same_run() {
    let a = run(42);
    let b = run(42);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}
