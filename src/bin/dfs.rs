//! The `dfs` command-line client.

use std::process::ExitCode;

use clap::Parser;

// One thread: a command drives one stream at a time, and a packet handed
// between tasks on one thread costs no wake-up of another (`dfs cat` of
// 1 GiB: 0.75 s on the default two workers of a 2-core machine, 0.6 s here).
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    dfs::tune_allocator();
    let cli = dfs_client::cli::Cli::parse();
    dfs::init_tracing("warn");
    dfs_client::cli::run(cli).await
}
