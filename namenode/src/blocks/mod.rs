//! Blocks on datanodes: where replicas are and where new ones go.
//!
//! - `block_map`: which datanodes hold which replicas, and queued commands.
//! - `placement`: the block placement policy (HDFS's `BlockPlacementPolicyDefault`),
//!   pure and seeded: it picks targets from a snapshot of the datanodes and
//!   orders them into a write pipeline.
//!
//! This module owns decisions, not state: it reads the datanode registry's
//! facts as arguments and never touches the namespace, the journal or the network.

// Nothing outside the tests calls placement until `AddBlock` does; `expect`
// makes the compiler tell whoever wires it in to delete this line.
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "called by AddBlock once the service wires it in")
)]
pub(crate) mod placement;

// Wired into the block services by the data path; until then parts are unused.
#[allow(dead_code)]
pub(crate) mod block_map;
