//! The data operations' first step: choose a datanode and answer 307 with a
//! `Location` on its HTTP server that carries everything the second request
//! needs (fsspec re-requests it without parameters of its own).
//!
//! - OPEN: the nearest replica (sorted as GetBlockLocations sorts for the
//!   HTTP caller's address) of the block holding `offset`.
//! - GETFILECHECKSUM: the nearest replica of the first block.
//! - CREATE, APPEND: a live datanode on the caller's host if there is one
//!   (it then writes the first replica, as a writer-local client would),
//!   else a random live one.
//!
//! Refusals the namenode can see (a missing file for OPEN and APPEND, bad
//! parameters) come from here; the rest from the datanode's step.

use std::net::{IpAddr, SocketAddr};
use std::sync::PoisonError;
use std::time::Instant;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dfs_proto::ids::DatanodeId;
use dfs_proto::v1;
use dfs_proto::v1::client_protocol_server::ClientProtocol;
use dfs_proto::webhdfs::RemoteException;
use dfs_proto::webhdfs::params::{self, Op, QueryBuilder};
use rand::RngExt;
use tonic::transport::server::TcpConnectInfo;

use super::metadata::stat;
use super::{Call, ok_json};
use crate::datanodes::Liveness;
use crate::http::HttpContext;

/// Answers a data operation with its redirect (or, with `noredirect=true`,
/// with `{"Location": ...}` and 200, as Hadoop does).
pub(super) async fn redirect(
    context: &HttpContext,
    call: &Call,
) -> Result<Response, RemoteException> {
    let p = &call.params;
    let query = QueryBuilder::new()
        .push("op", call.op.as_str())
        .push("user.name", &call.user)
        .push("namenoderpcaddress", context.settings.listen.to_string());
    let (datanode, query) = match call.op {
        Op::Open => {
            let offset = p.u64("offset")?.unwrap_or(0);
            let length = p.u64("length")?;
            let datanode = reader_datanode(context, call, offset).await?;
            let query = query
                .push("offset", offset.to_string())
                .push_some("length", length);
            (datanode, query)
        }
        Op::GetFileChecksum => (reader_datanode(context, call, 0).await?, query),
        Op::Create => {
            // Checked here so that a bad value fails before any upload.
            let query = query
                .push("overwrite", p.bool("overwrite", false)?.to_string())
                .push_some("replication", p.replication()?)
                .push_some("permission", p.permission()?.map(|m| format!("{m:o}")))
                .push_some("blocksize", p.block_size()?);
            (writer_datanode(context, call.peer.map(|a| a.ip()))?, query)
        }
        Op::Append => {
            let status = stat(context, call).await?;
            if status.file_type() == v1::FileType::Directory {
                return Err(RemoteException::file_not_found(format!(
                    "Path is not a file: {}",
                    call.path
                )));
            }
            (writer_datanode(context, call.peer.map(|a| a.ip()))?, query)
        }
        _ => {
            return Err(RemoteException::illegal_argument(format!(
                "{} is not a data operation",
                call.op
            )));
        }
    };
    let location = format!(
        "http://{datanode}{}?{}",
        params::url_path(&call.path),
        query.finish()
    );
    tracing::debug!(op = %call.op, path = %call.path, %datanode, "webhdfs redirect");
    if p.bool("noredirect", false)? {
        return Ok(ok_json(&serde_json::json!({ "Location": location })));
    }
    let location = HeaderValue::from_str(&location)
        .map_err(|_| RemoteException::runtime("redirect URL is not a header value"))?;
    Ok((
        StatusCode::TEMPORARY_REDIRECT,
        [
            (header::LOCATION, location),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from_static("0")),
        ],
    )
        .into_response())
}

fn no_datanode() -> RemoteException {
    RemoteException::io("Failed to find datanode, suggest to check cluster health.")
}

/// The HTTP server of the nearest replica of the block holding `offset`;
/// for an offset at the end of the file (an empty file), any live datanode.
async fn reader_datanode(
    context: &HttpContext,
    call: &Call,
    offset: u64,
) -> Result<SocketAddr, RemoteException> {
    let mut request = tonic::Request::new(v1::GetBlockLocationsRequest {
        caller: call.caller(),
        path: call.path.clone(),
        offset,
        length: 1,
    });
    // Sorted for the HTTP caller, exactly as for a gRPC reader there.
    request.extensions_mut().insert(TcpConnectInfo {
        local_addr: None,
        remote_addr: call.peer,
    });
    let located = context
        .client
        .get_block_locations(request)
        .await
        .map_err(|s| call.refused(&s))?
        .into_inner();
    if offset > located.file_length {
        return Err(RemoteException::illegal_argument(format!(
            "Offset={offset} out of the range [0, {}]",
            located.file_length
        )));
    }
    let replicas: Vec<DatanodeId> = located
        .blocks
        .iter()
        .find(|b| {
            let length = b.block.as_ref().map_or(0, |e| e.length);
            b.offset <= offset && offset < b.offset + length.max(1)
        })
        .map(|b| {
            b.locations
                .iter()
                .filter_map(|l| DatanodeId::parse(&l.datanode_id))
                .collect()
        })
        .unwrap_or_default();
    let nearest = {
        let blocks = context
            .blocks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        replicas
            .iter()
            .filter_map(|id| blocks.datanodes.get(id))
            .find_map(|node| node.http_addr)
    };
    match nearest {
        Some(addr) => Ok(addr),
        // No replica runs HTTP (or the file has no bytes there): any
        // datanode reads through the ordinary read path.
        None => writer_datanode(context, call.peer.map(|a| a.ip())),
    }
}

/// A live datanode with an HTTP server: one on `caller`'s host if any, else
/// a random one.
fn writer_datanode(
    context: &HttpContext,
    caller: Option<IpAddr>,
) -> Result<SocketAddr, RemoteException> {
    let now = Instant::now();
    let blocks = context
        .blocks
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let registry = &blocks.datanodes;
    let live: Vec<(IpAddr, SocketAddr)> = registry
        .all()
        .into_iter()
        .filter(|node| registry.liveness(node, now) == Liveness::Live)
        .filter_map(|node| node.http_addr.map(|http| (node.transfer_addr.ip(), http)))
        .collect();
    if let Some((_, http)) = live
        .iter()
        .find(|(ip, _)| caller.is_some_and(|c| c.to_canonical() == *ip))
    {
        return Ok(*http);
    }
    if live.is_empty() {
        return Err(no_datanode());
    }
    let pick = rand::rng().random_range(0..live.len());
    live.get(pick)
        .map(|(_, http)| *http)
        .ok_or_else(no_datanode)
}
