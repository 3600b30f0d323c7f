//! [`LeaseRenewer`]: keeps the namenode from taking this client's files away
//! while it writes them (HDFS's `LeaseRenewer`).
//!
//! The namenode lets a writer's files go once it has been silent past the
//! lease soft limit (another client may then take them over) and closes them
//! itself past the hard limit. While at least one [`OutputStream`] of a
//! client is open, one task sends `RenewLease` every soft limit / 2 (the
//! namenode says its soft limit when a file is created); the task stops when
//! the last stream closes or is dropped.
//!
//! [`OutputStream`]: crate::OutputStream

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::fs::DfsClient;
use crate::owned_task::OwnedTask;

/// The soft limit assumed when a namenode does not say (HDFS's 60 s).
pub(crate) const DEFAULT_SOFT_LIMIT: Duration = Duration::from_secs(60);
/// Renewals never come closer together than this.
const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// One client's lease renewals; shared by the client's clones.
#[derive(Debug, Default)]
pub(crate) struct LeaseRenewer {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Output streams open now.
    open: usize,
    /// The renewing task and its interval, while `open > 0`.
    task: Option<(Duration, OwnedTask)>,
}

/// Held by an open output stream: while any guard lives, the lease is renewed.
#[derive(Debug)]
pub(crate) struct LeaseGuard {
    renewer: Arc<LeaseRenewer>,
}

impl LeaseRenewer {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one more file open for writing by `client` on a namenode
    /// whose soft limit is `soft_limit`, and renews every `soft_limit / 2`
    /// from now on (sooner if an earlier file asked for that).
    pub(crate) fn open_file(
        self: &Arc<Self>,
        client: &DfsClient,
        soft_limit: Duration,
    ) -> LeaseGuard {
        let interval = (soft_limit / 2).max(MIN_INTERVAL);
        let mut state = self.lock();
        state.open += 1;
        let is_fast_enough = state.task.as_ref().is_some_and(|(i, _)| *i <= interval);
        if !is_fast_enough {
            let task = OwnedTask::spawn(renew_every(client.clone(), interval));
            state.task = Some((interval, task));
        }
        LeaseGuard {
            renewer: Arc::clone(self),
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let mut state = self.renewer.lock();
        state.open = state.open.saturating_sub(1);
        if state.open == 0 {
            // Aborts the task (and the client clone it holds).
            state.task = None;
        }
    }
}

/// Renews `client`'s lease every `interval`, starting one interval from now.
/// A failed renewal is logged; the next one may get through (failover).
async fn renew_every(client: DfsClient, interval: Duration) {
    let start = tokio::time::Instant::now() + interval;
    let mut ticks = tokio::time::interval_at(start, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match client.renew_lease().await {
            Ok(()) => tracing::debug!("lease renewed"),
            Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use dfs_proto::status::ErrorKind;

    use super::*;
    use crate::fake_cluster::{FakeCluster, FakeNamenodes, NamenodeFault};
    use crate::fs::CreateOptions;

    fn renewals(cluster: &FakeCluster) -> usize {
        let state = cluster.state();
        state.calls.iter().filter(|c| *c == "RenewLease").count()
    }

    #[tokio::test]
    async fn open_streams_renew_every_half_soft_limit_until_the_last_one_goes() {
        let cluster = FakeCluster::start(3).await;
        cluster.state().lease_soft_limit_ms = 200;
        let options = CreateOptions::default();
        let mut first = cluster.client.create_file("/a", &options).await.unwrap();
        let second = cluster.client.create_file("/b", &options).await.unwrap();
        tokio::time::sleep(Duration::from_millis(450)).await;
        let seen = renewals(&cluster);
        assert!(
            (2..=6).contains(&seen),
            "{seen} renewals in 450 ms at 100 ms"
        );
        first.write(b"data").await.unwrap();
        first.close().await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(renewals(&cluster) > seen, "the second stream is still open");
        drop(second);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let stopped = renewals(&cluster);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(renewals(&cluster), stopped, "no stream open, no renewal");
    }

    #[tokio::test]
    async fn a_create_is_retried_while_the_old_writers_lease_is_recovered() {
        let namenodes = FakeNamenodes::start(1).await;
        let address = namenodes.addresses[0].clone();
        let client = namenodes.client(&[&address], 1000);
        for _ in 0..2 {
            let fault = NamenodeFault::Refuse(ErrorKind::RecoveryInProgress);
            namenodes
                .state()
                .namenode_faults
                .push((address.clone(), fault));
        }
        client
            .create("/f._COPYING_", &CreateOptions::default())
            .await
            .unwrap();
        let creates = namenodes.calls_of("Create");
        assert_eq!(creates.len(), 3);
        assert!(
            creates[0].1 != creates[1].1 && creates[1].1 != creates[2].1,
            "each attempt is a call of its own: {creates:?}"
        );
        // Any other refusal is final.
        let fault = NamenodeFault::Refuse(ErrorKind::AlreadyExists);
        namenodes.state().namenode_faults.push((address, fault));
        let refused = client.create("/g", &CreateOptions::default()).await;
        assert_eq!(refused.unwrap_err().kind(), Some(ErrorKind::AlreadyExists));
    }
}
