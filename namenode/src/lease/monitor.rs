//! The lease monitor: the leader's task that recovers the files of holders
//! silent past the hard limit, and the files a create found past the soft
//! limit (HDFS `LeaseManager.Monitor`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::recovery::{Recovered, Recovery};
use super::{LeaseManager, MonitorInputs};
use crate::blocks::manager::BlockManager;
use crate::namespace::{Caller, Namespace, OpenFile};
use crate::namesystem::Namesystem;

/// Between sweeps for hard-expired leases (HDFS's
/// `dfs.namenode.lease-recheck-interval-ms`).
const RECHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The lease monitor's state.
#[derive(Debug)]
pub(crate) struct Monitor {
    manager: Arc<Mutex<LeaseManager>>,
    requests: mpsc::Receiver<OpenFile>,
    recovery: Recovery,
}

impl Monitor {
    /// A monitor fed by `inputs` that closes files through `namesystem`
    /// as `caller` (the superuser) and has `blocks` command the datanodes.
    pub(crate) fn new(
        inputs: MonitorInputs,
        namesystem: Namesystem,
        blocks: Arc<Mutex<BlockManager>>,
        caller: Caller,
    ) -> Self {
        Monitor {
            manager: inputs.manager,
            requests: inputs.recoveries,
            recovery: Recovery {
                namesystem,
                blocks,
                caller,
            },
        }
    }

    /// Every interval, and at once for each requested recovery, while this
    /// namenode leads: recovers the files of holders past the hard limit,
    /// and the requested file. Until `shutdown`.
    ///
    /// Cancel-safe: the select waits on a tick or a channel; a recovery
    /// dropped between its writes is finished by a later pass.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(RECHECK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let requested = tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => None,
                Some(file) = self.requests.recv() => Some(file),
            };
            let role = self.recovery.namesystem.role();
            if !role.serves(Instant::now()) {
                continue;
            }
            let open = self.recovery.namesystem.read(Namespace::open_files);
            let expired = {
                let mut manager = self.manager.lock().unwrap_or_else(PoisonError::into_inner);
                manager.enter_term(role.epoch);
                manager.hard_expired(open.iter().map(|f| f.holder.as_str()), Instant::now())
            };
            let mut due: Vec<OpenFile> = open
                .into_iter()
                .filter(|f| expired.contains(&f.holder))
                .collect();
            if let Some(file) = requested.filter(|f| !due.contains(f)) {
                due.push(file);
            }
            for file in &due {
                self.recover(file).await;
            }
        }
    }

    async fn recover(&self, file: &OpenFile) {
        let (path, holder) = (&file.path, &file.holder);
        match self.recovery.recover(file).await {
            Ok(Recovered::Closed { last }) => {
                let last = last.map(|b| format!("{b} ({} bytes)", b.length));
                tracing::info!(%path, %holder, last = last.as_deref().unwrap_or("none"), "lease recovered: file closed");
            }
            Ok(Recovered::DroppedLastBlock { dropped }) => {
                tracing::info!(%path, %holder, %dropped, "lease recovered: the last block had no data and was dropped");
            }
            Ok(Recovered::NotNeeded) => {
                tracing::debug!(%path, %holder, "lease recovery not needed any more");
            }
            Err(e) => {
                tracing::warn!(%path, %holder, error = %e, "lease recovery failed; retrying later")
            }
        }
    }
}
