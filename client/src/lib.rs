//! `dfs_client`: the library a program uses to talk to dfs, and the `dfs` command set.
//!
//! - [`config`]: the client configuration (`dfs.toml`).
//! - `identity`: who the caller is (user, groups, client id).
//! - [`fs`]: [`DfsClient`], the namespace operations.
//! - [`error`]: the client's error type, mapped back from `tonic::Status`.
//! - [`cli`]: the `dfs` commands.

pub mod cli;
pub mod config;
pub mod error;
pub mod fs;
mod identity;

pub use config::ClientConfig;
pub use error::Error;
pub use fs::{DatanodeReport, DfsClient, FileKind, FileStatus};
