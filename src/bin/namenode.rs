//! The dfs namenode.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Serves the dfs namespace to clients and datanodes.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Namenode configuration file (TOML).
    #[arg(long, env = "DFS_NAMENODE_CONFIG")]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    dfs::tune_allocator();
    let args = Args::parse();
    dfs::init_tracing("info");
    let config = dfs_namenode::NamenodeConfig::load(&args.config)?;
    let shutdown = dfs::cancel_on_signals();
    dfs_namenode::run(config, shutdown)
        .await
        .with_context(|| format!("namenode with config {}", args.config.display()))
}
