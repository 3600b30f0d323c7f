//! WebHDFS on the datanode: the second step of CREATE, APPEND, OPEN and
//! GETFILECHECKSUM, where a namenode's 307 points.
//!
//! The datanode acts as an ordinary dfs client (`dfs_client`) for the user
//! of the URL, bound to its own address: a write's first replica lands
//! here (writer-local) and a read prefers the replica here. It talks only
//! to its own configured namenodes; `namenoderpcaddress` must name one of
//! them. Bodies stream through: a CREATE or APPEND body is written packet
//! by packet as it arrives, an OPEN answer is sent chunk by chunk as the
//! read path verifies it, so a body of many GiB never sits in memory.
//!
//! What a caller can rely on:
//! - CREATE answers 201 only once the file is complete. An upload that
//!   breaks (the client vanishes, the body is malformed, the pipeline
//!   fails) deletes the file it created, so no partial file stays behind.
//! - APPEND answers 200 once the appended bytes are complete. An append
//!   that breaks leaves the file open for lease recovery, which keeps the
//!   bytes every replica acknowledged (as HDFS does for a writer that dies).
//! - The upload runs in a task of the datanode's tracker, not in the
//!   request future: a connection that drops mid-body still gets its
//!   clean-up. A body that stalls for [`BODY_IDLE_TIMEOUT`] counts as broken.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use dfs_client::{ClientConfig, CreateOptions, DfsClient, FileChecksum, OutputStream};
use dfs_proto::webhdfs::params::{self, Op, Params};
use dfs_proto::webhdfs::{PREFIX, RemoteException, response};
use futures::StreamExt;

use super::HttpContext;

/// Longest wait for the next piece of an upload's body: a client that went
/// silent (no FIN, no RST) must not hold a file open for ever.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The WebHDFS routes of the datanode.
pub(crate) fn router() -> Router<HttpContext> {
    Router::new()
        .route(PREFIX, any(handle))
        .route("/webhdfs/v1/", any(handle))
        .route("/webhdfs/v1/{*path}", any(handle))
}

/// One data operation, parsed.
#[derive(Debug)]
struct Call {
    op: Op,
    path: String,
    params: Params,
    user: String,
    /// The namenode the URL names (one of ours), for CREATE's `Location`.
    namenode: SocketAddr,
}

async fn handle(State(context): State<HttpContext>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let outcome = match parse_call(&context, &parts.method, &parts.uri) {
        Ok(call) => answer(&context, call, body).await,
        Err(e) => Err(e),
    };
    outcome.unwrap_or_else(|e| {
        tracing::debug!(path = %parts.uri.path(), error = %e, "webhdfs request refused");
        response::error(&e).into_response()
    })
}

fn parse_call(
    context: &HttpContext,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
) -> Result<Call, RemoteException> {
    let params = Params::parse(uri.query())?;
    let op = params.op(method.as_str())?;
    let path = params::fs_path(uri.path())?;
    let user = params.user()?;
    let namenode = our_namenode(&context.config.namenodes, params.get("namenoderpcaddress"))?;
    Ok(Call {
        op,
        path,
        params,
        user,
        namenode,
    })
}

/// The namenode a URL names, if it is one of this datanode's; the first of
/// them when it names none. A URL never points the datanode elsewhere.
fn our_namenode(ours: &[SocketAddr], named: Option<&str>) -> Result<SocketAddr, RemoteException> {
    let refuse = |what: &str| {
        RemoteException::illegal_argument(format!(
            "Invalid value for webhdfs parameter \"namenoderpcaddress\": {what:.128} is not a namenode of this datanode"
        ))
    };
    match named {
        None => ours
            .first()
            .copied()
            .ok_or_else(|| RemoteException::runtime("this datanode has no namenode")),
        Some(named) => {
            let addr: SocketAddr = named.parse().map_err(|_| refuse(named))?;
            ours.iter()
                // A wildcard address (a namenode listening on 0.0.0.0, or
                // configured so here) matches by port.
                .find(|ours| {
                    **ours == addr
                        || (ours.ip().is_unspecified() || addr.ip().is_unspecified())
                            && ours.port() == addr.port()
                })
                .copied()
                .ok_or_else(|| refuse(named))
        }
    }
}

async fn answer(
    context: &HttpContext,
    call: Call,
    body: Body,
) -> Result<Response, RemoteException> {
    tracing::debug!(op = %call.op, path = %call.path, user = %call.user, "webhdfs data operation");
    match call.op {
        Op::Create => create(context, call, body).await,
        Op::Append => append(context, call, body).await,
        Op::Open => open(context, &call).await,
        Op::GetFileChecksum => checksum(context, &call).await,
        op => Err(RemoteException::illegal_argument(format!(
            "Invalid value for webhdfs parameter \"op\": {op} is not a datanode operation"
        ))),
    }
}

/// A client of this datanode's namenodes acting as the call's user, bound
/// to this datanode's address.
fn client_for(context: &HttpContext, call: &Call) -> Result<DfsClient, RemoteException> {
    let mut config = ClientConfig::new(
        context
            .config
            .namenodes
            .iter()
            .map(ToString::to_string)
            .collect(),
    );
    let ip = context.transfer_addr.ip();
    config.bind_address = (!ip.is_unspecified()).then_some(ip);
    DfsClient::connect(&config, Some(call.user.clone()))
        .map_err(|e| RemoteException::runtime(e.to_string()))
}

/// The exception a client error maps to, through the shared table.
fn refused(e: &dfs_client::Error, path: &str) -> RemoteException {
    // Without a kind, a data-path failure: Hadoop's IOException.
    RemoteException::from_kind(e.kind(), tonic::Code::Unavailable, &e.to_string(), path)
}

/// Why an upload stopped.
#[derive(Debug)]
enum UploadError {
    /// The request body broke off or was malformed.
    Body(String),
    /// Writing through the pipeline or completing the file failed.
    Write(dfs_client::Error),
}

impl UploadError {
    fn to_remote(&self, path: &str) -> RemoteException {
        match self {
            UploadError::Body(reason) => {
                RemoteException::io(format!("upload of {path} broke off: {reason}"))
            }
            UploadError::Write(e) => refused(e, path),
        }
    }
}

/// Streams `body` into `out` and closes it (completing the file).
async fn upload(out: &mut OutputStream, body: Body) -> Result<u64, UploadError> {
    let mut stream = body.into_data_stream();
    loop {
        let next = tokio::time::timeout(BODY_IDLE_TIMEOUT, stream.next())
            .await
            .map_err(|_| {
                UploadError::Body(format!("no data for {} s", BODY_IDLE_TIMEOUT.as_secs()))
            })?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| UploadError::Body(e.to_string()))?;
        out.write(&chunk).await.map_err(UploadError::Write)?;
    }
    out.close().await.map_err(UploadError::Write)?;
    Ok(out.bytes_written())
}

async fn create(
    context: &HttpContext,
    call: Call,
    body: Body,
) -> Result<Response, RemoteException> {
    let client = client_for(context, &call)?;
    let p = &call.params;
    let options = CreateOptions {
        overwrite: p.bool("overwrite", false)?,
        // Hadoop's WebHDFS create makes missing parents.
        create_parent: true,
        replication: p.replication()?,
        block_size: p.block_size()?,
        permission: p.permission()?,
    };
    let path = call.path.clone();
    let written = context.dp.tasks.spawn(async move {
        let mut out = client
            .create_file(&path, &options)
            .await
            .map_err(|e| refused(&e, &path))?;
        match upload(&mut out, body).await {
            Ok(bytes) => Ok(bytes),
            Err(e) => {
                drop(out);
                // The file is ours and was never complete: take it away.
                match client.delete(&path, false).await {
                    Ok(()) => tracing::warn!(%path, error = ?e, "webhdfs upload failed; partial file deleted"),
                    Err(d) => tracing::warn!(%path, error = ?e, delete_error = %d, "webhdfs upload failed; partial file left to lease recovery"),
                }
                Err(e.to_remote(&path))
            }
        }
    });
    let bytes = written
        .await
        .map_err(|e| RemoteException::runtime(format!("upload task failed: {e}")))??;
    tracing::debug!(path = %call.path, bytes, "webhdfs create complete");
    let location = format!("hdfs://{}{}", call.namenode, call.path);
    let location = HeaderValue::from_str(&location)
        .map_err(|_| RemoteException::runtime("location is not a header value"))?;
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, location),
            (header::CONTENT_LENGTH, HeaderValue::from_static("0")),
        ],
    )
        .into_response())
}

async fn append(
    context: &HttpContext,
    call: Call,
    body: Body,
) -> Result<Response, RemoteException> {
    let client = client_for(context, &call)?;
    let path = call.path.clone();
    let written = context.dp.tasks.spawn(async move {
        let mut out = client
            .append(&path, &dfs_client::AppendOptions { new_block: false })
            .await
            .map_err(|e| refused(&e, &path))?;
        let outcome = upload(&mut out, body).await;
        if let Err(e) = &outcome {
            tracing::warn!(%path, error = ?e, "webhdfs append failed; the file is left to lease recovery");
        }
        outcome.map_err(|e| e.to_remote(&path))
    });
    let bytes = written
        .await
        .map_err(|e| RemoteException::runtime(format!("append task failed: {e}")))??;
    tracing::debug!(path = %call.path, bytes, "webhdfs append complete");
    Ok((StatusCode::OK, [(header::CONTENT_LENGTH, "0")]).into_response())
}

/// `[offset, offset + length)` of the file, streamed as the read path verifies it.
async fn open(context: &HttpContext, call: &Call) -> Result<Response, RemoteException> {
    let offset = call.params.u64("offset")?.unwrap_or(0);
    let length = call.params.u64("length")?;
    let client = client_for(context, call)?;
    let mut input = client
        .open(&call.path)
        .await
        .map_err(|e| refused(&e, &call.path))?;
    let file_length = input.len();
    if offset > file_length {
        return Err(RemoteException::illegal_argument(format!(
            "Offset={offset} out of the range [0, {file_length}]"
        )));
    }
    let end = length.map_or(file_length, |l| file_length.min(offset.saturating_add(l)));
    if offset > 0 {
        input
            .seek(offset)
            .await
            .map_err(|e| refused(&e, &call.path))?;
    }
    let count = end - offset;
    // After the headers an error can only cut the body short: the client
    // sees fewer bytes than Content-Length promised.
    let chunks = futures::stream::unfold((input, count), |(mut input, left)| async move {
        if left == 0 {
            return None;
        }
        let item = match input.next_chunk().await {
            Ok(Some(mut chunk)) => {
                let keep = usize::try_from(left).unwrap_or(usize::MAX).min(chunk.len());
                chunk.truncate(keep);
                let left = left - keep as u64;
                return Some((Ok::<Bytes, std::io::Error>(chunk), (input, left)));
            }
            Ok(None) => std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file ended early"),
            Err(e) => {
                tracing::warn!(path = %input.path(), error = %e, "webhdfs read failed mid-body");
                std::io::Error::other(e.to_string())
            }
        };
        Some((Err(item), (input, 0)))
    });
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(count)),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

async fn checksum(context: &HttpContext, call: &Call) -> Result<Response, RemoteException> {
    let client = client_for(context, call)?;
    let sum = client
        .checksum(&call.path)
        .await
        .map_err(|e| refused(&e, &call.path))?;
    Ok(response::json(StatusCode::OK, checksum_json(&sum).to_string()).into_response())
}

/// Hadoop's `FileChecksum`: `length` is the checksum's own size in bytes
/// (4 for a CRC32C), `bytes` its hex.
fn checksum_json(sum: &FileChecksum) -> serde_json::Value {
    serde_json::json!({
        "FileChecksum": {
            "algorithm": FileChecksum::ALGORITHM,
            "bytes": sum.hex(),
            "length": 4,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_cannot_point_the_datanode_at_another_namenode() {
        let ours: Vec<SocketAddr> = vec!["127.0.0.1:8020".parse().unwrap()];
        assert_eq!(our_namenode(&ours, None).unwrap(), ours[0]);
        assert_eq!(
            our_namenode(&ours, Some("127.0.0.1:8020")).unwrap(),
            ours[0]
        );
        assert_eq!(our_namenode(&ours, Some("0.0.0.0:8020")).unwrap(), ours[0]);
        for bad in ["10.0.0.1:8020", "127.0.0.1:8021", "evil.example:8020", ""] {
            let e = our_namenode(&ours, Some(bad)).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
        }
    }

    #[test]
    fn a_checksum_reads_as_hadoops_file_checksum() {
        let json = checksum_json(&FileChecksum {
            crc32c: 0xdead_beef,
            length: 10,
        });
        assert_eq!(json["FileChecksum"]["algorithm"], "COMPOSITE-CRC32C");
        assert_eq!(json["FileChecksum"]["bytes"], "deadbeef");
        assert_eq!(json["FileChecksum"]["length"], 4);
    }
}
