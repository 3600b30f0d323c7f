//! `dfs bench`: load generators that measure the cluster against a baseline
//! taken in the same run on the same machine.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use super::Outcome;
use crate::config::ClientConfig;
use crate::error::Error;
use crate::fs::DfsClient;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub(super) enum Bench {
    /// Journal throughput: mkdirs/s from N concurrent clients, against the
    /// local disk's fsync rate (each mkdir is acknowledged only once fsynced).
    Mkdirs(Mkdirs),
}

#[derive(Debug, Args)]
pub(super) struct Mkdirs {
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Total mkdirs across all clients.
    #[arg(long, default_value_t = 2000)]
    count: usize,
    /// Directory (on the namenode's disk) for the fsync baseline.
    #[arg(long, default_value = ".")]
    baseline_dir: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

impl Bench {
    pub(super) async fn run(
        self,
        config: &ClientConfig,
        user: Option<String>,
        outcome: &mut Outcome,
    ) {
        match self {
            Bench::Mkdirs(args) => {
                let result = args.measure(config, user).await;
                outcome.check(result);
            }
        }
    }
}

impl Mkdirs {
    async fn measure(&self, config: &ClientConfig, user: Option<String>) -> Result<(), Error> {
        let clients = self.clients.max(1);
        let per_client = self.count.div_ceil(clients);
        let root = format!("/bench-mkdirs-{}-{}", std::process::id(), clients);
        let setup = DfsClient::connect(config, user.clone())?;
        setup.mkdirs(&root, true).await?;

        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..clients {
            let client = Arc::new(DfsClient::connect(config, user.clone())?);
            let root = root.clone();
            tasks.spawn(async move {
                for i in 0..per_client {
                    client.mkdirs(&format!("{root}/c{c}-{i}"), false).await?;
                }
                Ok::<(), Error>(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.map_err(|e| Error::Usage(format!("bench task failed: {e}")))??;
        }
        let elapsed = started.elapsed();
        let mkdirs_per_sec = (per_client * clients) as f64 / elapsed.as_secs_f64();
        setup.delete(&root, true).await?;

        let fsyncs_per_sec = fsync_rate(&self.baseline_dir, Duration::from_secs(2))?;
        let ratio = mkdirs_per_sec / fsyncs_per_sec;
        if self.json {
            let doc = serde_json::json!({
                "clients": clients,
                "mkdirs": per_client * clients,
                "mkdirs_per_sec": mkdirs_per_sec,
                "fsyncs_per_sec": fsyncs_per_sec,
                "mkdirs_per_fsync": ratio,
            });
            println!("{doc}");
        } else {
            println!(
                "mkdirs: {clients} clients, {} ops in {:.2}s: {mkdirs_per_sec:.0} mkdirs/s; \
                 local fsync baseline {fsyncs_per_sec:.0}/s; ratio {ratio:.2} mkdirs per fsync",
                per_client * clients,
                elapsed.as_secs_f64()
            );
        }
        Ok(())
    }
}

/// Appends 128-byte records with `fdatasync` after each, for `duration`: the
/// ceiling of an un-batched journal on this disk.
fn fsync_rate(dir: &std::path::Path, duration: Duration) -> Result<f64, Error> {
    let path = dir.join(format!(".dfs-fsync-baseline-{}", std::process::id()));
    let mut file = std::fs::File::create(&path)?;
    let record = [0x5au8; 128];
    let started = Instant::now();
    let mut syncs = 0u64;
    while started.elapsed() < duration {
        file.write_all(&record)?;
        file.sync_data()?;
        syncs += 1;
    }
    let rate = syncs as f64 / started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(rate)
}
