//! Blocks on datanodes: where replicas are and where new ones go.
//!
//! - `block_keys`: the keys block access tokens are signed with: issued, rolled, exported.
//! - `block_map`: which datanodes hold which replicas (healthy, suspect,
//!   corrupt), and queued commands.
//! - `in_flight`: blocks sent to targets not yet reported (the space they
//!   reserve), and re-replication targets that failed (backing off).
//! - `manager`: registry + block map behind one lock: targets, read order,
//!   the replication monitor (under- and mis-replicated blocks).
//! - `placement`: the block placement policy (HDFS's `BlockPlacementPolicyDefault`),
//!   pure and seeded: it picks targets from a snapshot of the datanodes and
//!   orders them into a write pipeline.
//!
//! The state here is soft (rebuilt from datanode reports, never journaled);
//! what a block should be comes from the namespace as arguments. Nothing here
//! touches the tree, the journal or the network.

pub(crate) mod placement;

pub(crate) mod block_keys;
pub(crate) mod block_map;
pub(crate) mod in_flight;
pub(crate) mod manager;
