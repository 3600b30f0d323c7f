//! `dfs-cluster`: runs a local multi-process dfs cluster on fake racks.

use std::process::ExitCode;

use clap::Parser;
use dfs_deploy::cli::{self, Args};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Every dfs_deploy error already names what was being done and to what.
    match cli::run(args, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dfs-cluster: {e}");
            ExitCode::FAILURE
        }
    }
}
