//! Blocks on datanodes: where replicas are and where new ones go.
//!
//! - `block_keys`: the keys block access tokens are signed with: issued, rolled, exported.
//! - `block_map`: which datanodes hold which replicas, and queued commands.
//! - `manager`: registry + block map behind one lock: targets, read order, re-replication.
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
pub(crate) mod manager;
