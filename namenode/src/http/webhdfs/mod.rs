//! WebHDFS on the namenode: `/webhdfs/v1/<path>?op=...`.
//!
//! Namespace operations run through the in-process `ClientService`, so an
//! HTTP caller meets exactly the checks of a gRPC one (existence,
//! permissions, leadership). Data operations (CREATE, APPEND, OPEN,
//! GETFILECHECKSUM) answer 307 with a `Location` on a datanode's HTTP
//! server (`redirect`): data never passes through here, and the request
//! body is never read.
//!
//! ```text
//!  request ──► Params::parse ─► op, path, user ─► serving? ──no──► 403 StandbyException
//!                                                   │yes
//!              metadata::* (ClientService) ◄────────┼────────► redirect::* (307 to a datanode)
//! ```
//!
//! A namenode that does not serve (a follower, a leader without a quorum)
//! answers every operation with `StandbyException`, so that HdfsCLI given
//! every namenode's URL moves on to the next one.

mod json;
mod metadata;
mod redirect;

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use dfs_proto::v1;
use dfs_proto::webhdfs::params::{self, Op, Params};
use dfs_proto::webhdfs::{PREFIX, RemoteException, response};
use rand::RngExt;

use super::HttpContext;

/// The WebHDFS routes (the root and everything under it).
pub(crate) fn router() -> Router<HttpContext> {
    Router::new()
        .route(PREFIX, any(handle))
        .route("/webhdfs/v1/", any(handle))
        .route("/webhdfs/v1/{*path}", any(handle))
}

/// One WebHDFS request, parsed.
#[derive(Debug)]
struct Call {
    op: Op,
    /// The file-system path, decoded and normalised.
    path: String,
    params: Params,
    user: String,
    /// Where the request came from (nearest datanode, writer-local datanode).
    peer: Option<SocketAddr>,
}

impl Call {
    /// A fresh caller context for one ClientProtocol call: the caller's
    /// user, a new client id (each HTTP request is its own client).
    fn caller(&self) -> Option<v1::CallerContext> {
        let client_id: [u8; 16] = rand::rng().random();
        Some(v1::CallerContext {
            user: self.user.clone(),
            groups: Vec::new(),
            client_id: Bytes::copy_from_slice(&client_id),
            call_id: 1,
        })
    }

    /// The exception a refusal of this call's namenode request maps to.
    fn refused(&self, status: &tonic::Status) -> RemoteException {
        RemoteException::from_status(status, &self.path)
    }
}

async fn handle(State(context): State<HttpContext>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    // The body is never read: CREATE and APPEND send it to the datanode.
    let (parts, _body) = request.into_parts();
    match answer(&context, &parts.method, &parts.uri, peer).await {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(uri = %truncated(&parts.uri), error = %e, "webhdfs request refused");
            response::error(&e).into_response()
        }
    }
}

/// The request's op, path, parameters and user, checked before anything runs.
fn parse_call(
    method: &Method,
    uri: &Uri,
    peer: Option<SocketAddr>,
) -> Result<Call, RemoteException> {
    let params = Params::parse(uri.query())?;
    let op = params.op(method.as_str())?;
    let path = params::fs_path(uri.path())?;
    let user = params.user()?;
    Ok(Call {
        op,
        path,
        params,
        user,
        peer,
    })
}

async fn answer(
    context: &HttpContext,
    method: &Method,
    uri: &Uri,
    peer: Option<SocketAddr>,
) -> Result<Response, RemoteException> {
    let call = parse_call(method, uri, peer)?;
    if !context.role.borrow().serves(Instant::now()) {
        return Err(RemoteException::standby());
    }
    tracing::debug!(op = %call.op, path = %call.path, user = %call.user, "webhdfs");
    match call.op {
        Op::GetFileStatus => metadata::get_file_status(context, &call).await,
        Op::ListStatus => metadata::list_status(context, &call).await,
        Op::ListStatusBatch => metadata::list_status_batch(context, &call).await,
        Op::GetHomeDirectory => Ok(ok_json(&json::path(&format!("/user/{}", call.user)))),
        Op::GetContentSummary => metadata::get_content_summary(context, &call).await,
        Op::Mkdirs => metadata::mkdirs(context, &call).await,
        Op::Rename => metadata::rename(context, &call).await,
        Op::Delete => metadata::delete(context, &call).await,
        Op::SetPermission => metadata::set_permission(context, &call).await,
        Op::SetOwner => metadata::set_owner(context, &call).await,
        Op::SetReplication => metadata::set_replication(context, &call).await,
        Op::SetTimes => metadata::set_times(context, &call).await,
        Op::Open | Op::GetFileChecksum | Op::Create | Op::Append => {
            redirect::redirect(context, &call).await
        }
    }
}

/// The URI for a log line, cut short (a hostile one may be huge).
fn truncated(uri: &Uri) -> String {
    let s = uri.to_string();
    match s.char_indices().nth(256) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s,
    }
}

/// 200 with a JSON body.
fn ok_json(value: &serde_json::Value) -> Response {
    response::json(StatusCode::OK, value.to_string()).into_response()
}

/// 200 with no body (SETPERMISSION, SETOWNER, SETTIMES).
fn ok_empty() -> Response {
    (StatusCode::OK, [(header::CONTENT_LENGTH, "0")]).into_response()
}

#[cfg(test)]
#[path = "webhdfs_test.rs"]
mod webhdfs_test;
