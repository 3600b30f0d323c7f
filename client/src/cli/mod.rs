//! The `dfs` command set, HDFS-shell-like: one file per command group
//! behind the `Command` enum. Errors go to stderr as `CMD: message` and
//! make the exit status non-zero; `--json` output is for scripts.

mod admin;
mod append;
mod bench;
mod data;
mod format;
mod fsck;
mod namespace;
mod tree_copy;

pub use data::parse_size;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::ClientConfig;
use crate::error::Error;
use crate::fs::DfsClient;

/// Command-line client of a dfs cluster.
#[derive(Debug, Parser)]
#[command(name = "dfs", version)]
pub struct Cli {
    /// Client configuration file (default ./dfs.toml).
    #[arg(long, global = true, env = "DFS_CONFIG")]
    config: Option<PathBuf>,
    /// Act as this user (default: the config's user, else the OS user).
    #[arg(long, global = true, env = "DFS_USER")]
    user: Option<String>,
    /// Bind outgoing connections to this local address (places the client on a rack).
    #[arg(long, global = true, env = "DFS_BIND_ADDRESS")]
    bind_address: Option<IpAddr>,
    #[command(subcommand)]
    command: Command,
}

/// Every `dfs` command.
#[derive(Debug, Subcommand)]
enum Command {
    /// Create directories.
    Mkdir(namespace::Mkdir),
    /// List directories (HDFS columns: mode, replication, owner, group, size, mtime, path).
    Ls(namespace::Ls),
    /// Describe files and directories.
    Stat(namespace::Stat),
    /// Count directories, files and bytes under paths (HDFS `count`).
    Count(namespace::Count),
    /// Create empty files.
    Touchz(namespace::Touchz),
    /// Delete files and directories.
    Rm(namespace::Rm),
    /// Move or rename.
    Mv(namespace::Mv),
    /// Change mode bits (octal like 755, or symbolic like u+x,go-w).
    Chmod(namespace::Chmod),
    /// Change owner and/or group (OWNER, OWNER:GROUP or :GROUP).
    Chown(namespace::Chown),
    /// Change the replication factor of files (of every file below a directory).
    Setrep(namespace::Setrep),
    /// Copy local files or directories (`-` = stdin) into dfs.
    Put(data::Put),
    /// Append local files (`-` = stdin), in order, to a dfs file (created if missing).
    #[command(alias = "appendToFile")]
    Append(append::Append),
    /// Copy a dfs file or directory to the local disk (`-` = stdout).
    Get(data::Get),
    /// Print files to stdout.
    Cat(data::Cat),
    /// Print each file's composite CRC32C (equal content, equal checksum, whatever the block size).
    Checksum(data::Checksum),
    /// Check the health of the blocks under a path.
    Fsck(fsck::Fsck),
    /// Cluster administration.
    #[command(subcommand)]
    Admin(admin::Admin),
    /// Benchmarks against a baseline measured in the same run.
    #[command(subcommand)]
    Bench(bench::Bench),
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::Mkdir(_) => "mkdir",
            Command::Ls(_) => "ls",
            Command::Stat(_) => "stat",
            Command::Count(_) => "count",
            Command::Touchz(_) => "touchz",
            Command::Rm(_) => "rm",
            Command::Mv(_) => "mv",
            Command::Chmod(_) => "chmod",
            Command::Chown(_) => "chown",
            Command::Setrep(_) => "setrep",
            Command::Put(_) => "put",
            Command::Append(_) => "append",
            Command::Get(_) => "get",
            Command::Cat(_) => "cat",
            Command::Checksum(_) => "checksum",
            Command::Fsck(_) => "fsck",
            Command::Admin(_) => "admin",
            Command::Bench(_) => "bench",
        }
    }
}

/// Collects per-path failures: each is reported at once, and any makes the exit status 1.
#[derive(Debug)]
struct Outcome {
    command: &'static str,
    failed: bool,
}

impl Outcome {
    fn new(command: &'static str) -> Self {
        Outcome {
            command,
            failed: false,
        }
    }

    fn check<T>(&mut self, result: Result<T, Error>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                eprintln!("{}: {e}", self.command);
                self.failed = true;
                None
            }
        }
    }
}

/// Runs one `dfs` invocation.
pub async fn run(cli: Cli) -> ExitCode {
    let name = cli.command.name();
    let mut outcome = Outcome::new(name);
    let config = ClientConfig::load(cli.config.as_deref()).map(|mut config| {
        if cli.bind_address.is_some() {
            config.bind_address = cli.bind_address;
        }
        config
    });
    let Some(config) = outcome.check(config) else {
        return ExitCode::FAILURE;
    };
    if let Command::Bench(bench) = cli.command {
        bench.run(&config, cli.user, &mut outcome).await;
    } else if let Some(client) = outcome.check(DfsClient::connect(&config, cli.user)) {
        match cli.command {
            Command::Mkdir(args) => args.run(&client, &mut outcome).await,
            Command::Ls(args) => args.run(&client, &mut outcome).await,
            Command::Stat(args) => args.run(&client, &mut outcome).await,
            Command::Count(args) => args.run(&client, &mut outcome).await,
            Command::Touchz(args) => args.run(&client, &mut outcome).await,
            Command::Rm(args) => args.run(&client, &mut outcome).await,
            Command::Mv(args) => args.run(&client, &mut outcome).await,
            Command::Chmod(args) => args.run(&client, &mut outcome).await,
            Command::Chown(args) => args.run(&client, &mut outcome).await,
            Command::Setrep(args) => args.run(&client, &mut outcome).await,
            Command::Put(args) => args.run(&client, &mut outcome).await,
            Command::Append(args) => args.run(&client, &mut outcome).await,
            Command::Get(args) => args.run(&client, &mut outcome).await,
            Command::Cat(args) => args.run(&client, &mut outcome).await,
            Command::Checksum(args) => args.run(&client, &mut outcome).await,
            Command::Fsck(args) => args.run(&client, &mut outcome).await,
            Command::Admin(args) => args.run(&config, &client, &mut outcome).await,
            Command::Bench(_) => {}
        }
    }
    if outcome.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
