//! Replaying the seeded quorum simulations: which seeds a run covers, and
//! naming the seed of a run that failed so `DFS_SEED=<seed>` replays it.

use std::ops::Range;

/// Prints the seed if the simulation panics, however it panics.
#[derive(Debug)]
pub(super) struct SeedGuard(pub(super) u64);

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("simulation failed; replay with DFS_SEED={}", self.0);
        }
    }
}

/// The seeds to run: the one in `DFS_SEED` when it is set, else `all`.
pub(super) fn seeds(all: Range<u64>) -> Vec<u64> {
    match std::env::var("DFS_SEED") {
        Ok(seed) => vec![seed.parse().expect("DFS_SEED is a u64")],
        Err(_) => all.collect(),
    }
}
