//! The namespace operations of WebHDFS, each one or a few ClientProtocol
//! calls on the in-process service, answered in Hadoop's JSON.

use axum::response::Response;
use dfs_proto::status::ErrorKind;
use dfs_proto::v1;
use dfs_proto::v1::client_protocol_server::ClientProtocol;
use dfs_proto::webhdfs::RemoteException;
use dfs_proto::webhdfs::params;
use tonic::Request;

use super::{Call, json, ok_empty, ok_json};
use crate::http::HttpContext;

/// Entries per LISTSTATUS_BATCH answer (HDFS's `dfs.ls.limit`).
const BATCH: u32 = 1000;

/// The status of the call's path.
pub(super) async fn stat(
    context: &HttpContext,
    call: &Call,
) -> Result<v1::FileStatus, RemoteException> {
    let request = v1::GetFileInfoRequest {
        caller: call.caller(),
        path: call.path.clone(),
    };
    context
        .client
        .get_file_info(Request::new(request))
        .await
        .map_err(|s| call.refused(&s))?
        .into_inner()
        .status
        .ok_or_else(|| RemoteException::runtime("the namenode gave no file status"))
}

/// One page of a directory's entries after `start_after`.
async fn list_page(
    context: &HttpContext,
    call: &Call,
    start_after: &str,
) -> Result<v1::GetListingResponse, RemoteException> {
    let request = v1::GetListingRequest {
        caller: call.caller(),
        path: call.path.clone(),
        start_after: start_after.to_owned(),
        limit: BATCH,
    };
    Ok(context
        .client
        .get_listing(Request::new(request))
        .await
        .map_err(|s| call.refused(&s))?
        .into_inner())
}

pub(super) async fn get_file_status(
    context: &HttpContext,
    call: &Call,
) -> Result<Response, RemoteException> {
    let status = stat(context, call).await?;
    Ok(ok_json(
        &serde_json::json!({ "FileStatus": json::file_status(&status, "") }),
    ))
}

/// Every entry of a directory; of a file, the file itself with an empty
/// `pathSuffix` (as Hadoop answers).
pub(super) async fn list_status(
    context: &HttpContext,
    call: &Call,
) -> Result<Response, RemoteException> {
    let status = stat(context, call).await?;
    if status.file_type() != v1::FileType::Directory {
        return Ok(ok_json(&json::file_statuses(vec![json::file_status(
            &status, "",
        )])));
    }
    let mut entries = Vec::new();
    let mut after = String::new();
    loop {
        let page = list_page(context, call, &after).await?;
        if let Some(last) = page.entries.last() {
            after = json::name_of(&last.path).to_owned();
        }
        entries.extend(
            page.entries
                .iter()
                .map(|e| json::file_status(e, json::name_of(&e.path))),
        );
        if !page.has_more || page.entries.is_empty() {
            break;
        }
    }
    Ok(ok_json(&json::file_statuses(entries)))
}

/// Up to [`BATCH`] entries after `startAfter`. `remainingEntries` is exact
/// when the listing starts at the beginning; after `startAfter` it is the
/// directory's entry count less those returned (an upper bound), and 0
/// exactly when nothing is left.
pub(super) async fn list_status_batch(
    context: &HttpContext,
    call: &Call,
) -> Result<Response, RemoteException> {
    let status = stat(context, call).await?;
    if status.file_type() != v1::FileType::Directory {
        return Ok(ok_json(&json::directory_listing(
            vec![json::file_status(&status, "")],
            0,
        )));
    }
    let start_after = call.params.get("startafter").unwrap_or("");
    let page = list_page(context, call, start_after).await?;
    let returned = page.entries.len() as u64;
    let remaining = if page.has_more {
        status.children_count.saturating_sub(returned).max(1)
    } else {
        0
    };
    let entries = page
        .entries
        .iter()
        .map(|e| json::file_status(e, json::name_of(&e.path)))
        .collect();
    Ok(ok_json(&json::directory_listing(entries, remaining)))
}

pub(super) async fn get_content_summary(
    context: &HttpContext,
    call: &Call,
) -> Result<Response, RemoteException> {
    let request = v1::GetContentSummaryRequest {
        caller: call.caller(),
        path: call.path.clone(),
    };
    let summary = context
        .client
        .get_content_summary(Request::new(request))
        .await
        .map_err(|s| call.refused(&s))?
        .into_inner()
        .summary
        .ok_or_else(|| RemoteException::runtime("the namenode gave no content summary"))?;
    Ok(ok_json(&json::content_summary(&summary)))
}

pub(super) async fn mkdirs(
    context: &HttpContext,
    call: &Call,
) -> Result<Response, RemoteException> {
    let request = v1::MkdirsRequest {
        caller: call.caller(),
        path: call.path.clone(),
        permission: call.params.permission()?.map(u32::from),
        create_parent: true,
    };
    context
        .client
        .mkdirs(Request::new(request))
        .await
        .map_err(|s| call.refused(&s))?;
    Ok(ok_json(&json::boolean(true)))
}

/// `{"boolean": false}` where Hadoop's rename returns false (no source, a
/// destination that exists or has no parent); other refusals are errors.
pub(super) async fn rename(
    context: &HttpContext,
    call: &Call,
) -> Result<Response, RemoteException> {
    let Some(destination) = call.params.get("destination") else {
        return Err(RemoteException::illegal_argument(
            "Required param destination for op: RENAME is null",
        ));
    };
    let destination = params::normalize(destination)?;
    let request = v1::RenameRequest {
        caller: call.caller(),
        src: call.path.clone(),
        dst: destination,
    };
    match context.client.rename(Request::new(request)).await {
        Ok(_) => Ok(ok_json(&json::boolean(true))),
        Err(s) => match ErrorKind::of(&s) {
            Some(
                ErrorKind::NotFound
                | ErrorKind::AlreadyExists
                | ErrorKind::NotADirectory
                | ErrorKind::IsADirectory
                | ErrorKind::DirectoryNotEmpty,
            ) => Ok(ok_json(&json::boolean(false))),
            _ => Err(call.refused(&s)),
        },
    }
}

/// A missing path answers `{"boolean": false}`, as Hadoop's delete returns false.
pub(super) async fn delete(
    context: &HttpContext,
    call: &Call,
) -> Result<Response, RemoteException> {
    let request = v1::DeleteRequest {
        caller: call.caller(),
        path: call.path.clone(),
        recursive: call.params.bool("recursive", false)?,
    };
    match context.client.delete(Request::new(request)).await {
        Ok(_) => Ok(ok_json(&json::boolean(true))),
        Err(s) if ErrorKind::of(&s) == Some(ErrorKind::NotFound) => {
            Ok(ok_json(&json::boolean(false)))
        }
        Err(s) => Err(call.refused(&s)),
    }
}

/// Without `permission`, 755 (Hadoop's default for this op).
pub(super) async fn set_permission(
    context: &HttpContext,
    call: &Call,
) -> Result<Response, RemoteException> {
    let request = v1::SetPermissionRequest {
        caller: call.caller(),
        path: call.path.clone(),
        permission: u32::from(call.params.permission()?.unwrap_or(0o755)),
    };
    context
        .client
        .set_permission(Request::new(request))
        .await
        .map_err(|s| call.refused(&s))?;
    Ok(ok_empty())
}

pub(super) async fn set_owner(
    context: &HttpContext,
    call: &Call,
) -> Result<Response, RemoteException> {
    let owner = call.params.get("owner").map(str::to_owned);
    let group = call.params.get("group").map(str::to_owned);
    if owner.is_none() && group.is_none() {
        return Err(RemoteException::illegal_argument(
            "Both owner and group are empty.",
        ));
    }
    let request = v1::SetOwnerRequest {
        caller: call.caller(),
        path: call.path.clone(),
        owner,
        group,
    };
    context
        .client
        .set_owner(Request::new(request))
        .await
        .map_err(|s| call.refused(&s))?;
    Ok(ok_empty())
}

/// `{"boolean": false}` for a directory, as Hadoop answers.
pub(super) async fn set_replication(
    context: &HttpContext,
    call: &Call,
) -> Result<Response, RemoteException> {
    let replication = match call.params.replication()? {
        Some(r) => r,
        None => context.settings.default_replication,
    };
    let request = v1::SetReplicationRequest {
        caller: call.caller(),
        path: call.path.clone(),
        replication: u32::from(replication),
    };
    match context.client.set_replication(Request::new(request)).await {
        Ok(_) => Ok(ok_json(&json::boolean(true))),
        Err(s) if ErrorKind::of(&s) == Some(ErrorKind::IsADirectory) => {
            Ok(ok_json(&json::boolean(false)))
        }
        Err(s) => Err(call.refused(&s)),
    }
}

pub(super) async fn set_times(
    context: &HttpContext,
    call: &Call,
) -> Result<Response, RemoteException> {
    let request = v1::SetTimesRequest {
        caller: call.caller(),
        path: call.path.clone(),
        modification_time_ms: call.params.time("modificationtime")?,
        access_time_ms: call.params.time("accesstime")?,
    };
    context
        .client
        .set_times(Request::new(request))
        .await
        .map_err(|s| call.refused(&s))?;
    Ok(ok_empty())
}
