//! WebHDFS wire facts both HTTP faces agree on: the namenode answers
//! namespace operations and redirects data operations to a datanode, whose
//! own `/webhdfs/v1` endpoint moves the bytes.
//!
//! ```text
//!  client ──PUT /webhdfs/v1/f?op=CREATE──► namenode ──307 Location──┐
//!    │                                                              │
//!    └──PUT http://dn/webhdfs/v1/f?op=CREATE&user.name=..&namenoderpcaddress=..──► datanode
//!                                        (pipeline, as a writer-local client) ──201
//! ```
//!
//! - [`params`]: the query string (names, first-wins duplicates, typed
//!   values), the operation and the path, and building redirect URLs.
//! - [`remote_exception`]: Hadoop's `RemoteException` body and status code,
//!   mapped from dfs error kinds in one place.
//! - [`response`]: the JSON responses (a body, a `RemoteException`) as
//!   plain `http` values.
//!
//! Nothing here does I/O or knows axum.

pub mod params;
pub mod remote_exception;
pub mod response;

pub use params::{Op, Params};
pub use remote_exception::RemoteException;

/// The URL prefix of every WebHDFS request.
pub const PREFIX: &str = "/webhdfs/v1";
/// The user of a request without `user.name` (Hadoop's static web user).
pub const DEFAULT_USER: &str = "dr.who";
