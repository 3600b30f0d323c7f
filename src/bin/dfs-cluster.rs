//! `dfs-cluster`: runs a local multi-process dfs cluster on fake racks.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    dfs::tune_allocator();
    let args = dfs_deploy::cli::Args::parse();
    // `bench failover` fails its client over on purpose: those warnings are the measurement.
    dfs::init_tracing("warn,dfs_client=error");
    // Every dfs_deploy error already names what was being done and to what.
    match dfs_deploy::cli::run(args, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dfs-cluster: {e}");
            ExitCode::FAILURE
        }
    }
}
