//! The namenode's status pages: server-rendered HTML, readable without
//! JavaScript (HDFS's dfshealth overview and "browse the file system").
//!
//! ```text
//!  GET /                      gather::overview ──► OverviewView ──► overview::render
//!  GET /explorer?path=P       gather::browse (ClientProtocol, as user.name,
//!            &user.name=U       default dr.who; pages of 1000 entries
//!            &start_after=N     after N) ──► ListingView | FileView
//!                                                ──► file_browser::render_*
//!  any error                  ErrorView ──► layout::error_page, with its status code
//! ```
//!
//! Gathering reads state; rendering is pure functions of the views, so the
//! pages are tested without a cluster. Names are escaped by maud and link
//! targets percent-encoded. The browser reads only on a serving leader (the
//! in-process service is not behind the gRPC leader check, so the handler
//! makes it); a follower's page links to the leader's, whose HTTP address
//! each namenode tells in its `GetPeerStatus` answer.

mod file_browser;
mod gather;
mod layout;
mod overview;

#[cfg(test)]
mod status_page_test;

use std::time::Instant;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dfs_proto::status::ErrorKind;
use maud::Markup;

use self::gather::Browsed;
use self::layout::ErrorView;
use super::HttpContext;

/// Who the file browser reads as when the URL names nobody (Hadoop's web UI default).
const DEFAULT_USER: &str = "dr.who";

/// The status page routes.
pub(crate) fn routes() -> Router<HttpContext> {
    Router::new()
        .route("/", get(overview_page))
        .route("/explorer", get(explorer_page))
}

async fn overview_page(State(ctx): State<HttpContext>) -> Markup {
    overview::render(&gather::overview(&ctx).await)
}

/// The file browser: `path` (default `/`) as `user.name` (default `dr.who`),
/// a directory's entries after `start_after` (default: from the first).
async fn explorer_page(
    State(ctx): State<HttpContext>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let Ok(Query(params)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The query string does not parse.".into(),
            None,
        );
    };
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let path = param("path").unwrap_or("/");
    let user = param("user.name").unwrap_or(DEFAULT_USER);
    if !ctx.role.borrow().serves(Instant::now()) {
        let link = gather::leader_url(&ctx).await.map(|(address, url)| {
            let href = format!(
                "{}{}",
                url.trim_end_matches('/'),
                file_browser::browse_href(path, user)
            );
            (href, format!("Browse at the leader ({address})"))
        });
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not the leader",
            "This namenode does not serve reads now: it is not the leader. The file system is browsed at the leader.".into(),
            link,
        );
    }
    let start_after = param("start_after").unwrap_or("");
    match gather::browse(&ctx, path, user, start_after).await {
        Ok(Browsed::Directory(view)) => file_browser::render_listing(&view).into_response(),
        Ok(Browsed::File(view)) => file_browser::render_file(&view).into_response(),
        Err(status) => {
            let (code, title) = http_status(&status);
            error(code, title, status.message().to_owned(), None)
        }
    }
}

/// The HTTP status and heading for a ClientProtocol error.
fn http_status(status: &tonic::Status) -> (StatusCode, &'static str) {
    match ErrorKind::of(status) {
        Some(ErrorKind::NotFound) => (StatusCode::NOT_FOUND, "Not found"),
        Some(ErrorKind::PermissionDenied) => (StatusCode::FORBIDDEN, "Permission denied"),
        Some(ErrorKind::InvalidArgument | ErrorKind::NotADirectory | ErrorKind::IsADirectory) => {
            (StatusCode::BAD_REQUEST, "Bad request")
        }
        Some(ErrorKind::NotLeader | ErrorKind::Unavailable | ErrorKind::RecoveryInProgress) => {
            (StatusCode::SERVICE_UNAVAILABLE, "Unavailable")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "Error"),
    }
}

fn error(
    code: StatusCode,
    title: &str,
    message: String,
    link: Option<(String, String)>,
) -> Response {
    let view = ErrorView {
        status: code.as_u16(),
        title: title.to_owned(),
        message,
        link,
    };
    (code, layout::error_page(&view)).into_response()
}
