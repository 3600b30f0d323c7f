//! Wires the datanode together: identity, the data-transfer listener and one
//! actor per namenode.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::DatanodeConfig;
use crate::error::Error;
use crate::identity;
use crate::namenode_actor::{self, Identity};

const DRAIN_DEADLINE: Duration = Duration::from_secs(8);

/// Runs a datanode until `shutdown` is cancelled.
///
/// Prints `ready <addr>` on stdout once it is registered with a namenode.
///
/// # Errors
/// The data dir or the listen address is unusable.
pub async fn run(config: DatanodeConfig, shutdown: CancellationToken) -> Result<(), Error> {
    std::fs::create_dir_all(&config.data_dir)?;
    let id = identity::load_or_create(&config.data_dir)?;
    // Bound now so the address is ours; the data-transfer service that
    // accepts on it arrives with the data path.
    let listener = TcpListener::bind(config.listen).await?;
    let transfer_addr = listener.local_addr()?;
    let me = Identity {
        id: id.clone(),
        transfer_addr,
        data_dir: config.data_dir.clone(),
        heartbeat_interval: config.heartbeat_interval(),
    };
    let tasks = TaskTracker::new();
    let (registered, mut registrations) = mpsc::channel(config.namenodes.len());
    for namenode in &config.namenodes {
        tasks.spawn(namenode_actor::run(
            *namenode,
            me.clone(),
            registered.clone(),
            shutdown.child_token(),
        ));
    }
    drop(registered);
    tracing::info!(datanode = %id, %transfer_addr, "datanode started");
    tokio::select! {
        _ = shutdown.cancelled() => {}
        Some(namenode) = registrations.recv() => {
            tracing::info!(%namenode, "datanode serving");
            println!("ready {transfer_addr}");
            shutdown.cancelled().await;
        }
    }
    drop(listener);
    tasks.close();
    if tokio::time::timeout(DRAIN_DEADLINE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("tasks still running after the drain deadline");
    }
    tracing::info!("datanode stopped");
    Ok(())
}
