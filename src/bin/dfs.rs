//! The `dfs` command-line client.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    dfs::tune_allocator();
    let cli = dfs_client::cli::Cli::parse();
    dfs::init_tracing("warn");
    dfs_client::cli::run(cli).await
}
