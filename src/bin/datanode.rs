//! The dfs datanode.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Stores dfs block replicas and reports them to the namenodes.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Datanode configuration file (TOML).
    #[arg(long, env = "DFS_DATANODE_CONFIG")]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    dfs::tune_allocator();
    let args = Args::parse();
    dfs::init_tracing("info");
    let config = dfs_datanode::DatanodeConfig::load(&args.config)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = config.worker_threads {
        runtime.worker_threads(threads);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let shutdown = dfs::cancel_on_signals();
        dfs_datanode::run(config, shutdown)
            .await
            .with_context(|| format!("datanode with config {}", args.config.display()))
    })
}
