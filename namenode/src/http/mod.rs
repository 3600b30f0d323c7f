//! The namenode's HTTP face on one axum server: WebHDFS, `/metrics` and the
//! status pages. Every handler reads the same state the gRPC services use,
//! so an HTTP caller meets the same permission checks and the same leader.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::prometheus_text::CONTENT_TYPE as METRICS_CONTENT_TYPE;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::blocks::manager::BlockManager;
use crate::config::Settings;
use crate::metrics::NamenodeMetrics;
use crate::namesystem::Namesystem;
use crate::quorum::RoleStatus;
use crate::service::ClientService;

mod status_page;
mod webhdfs;

/// What HTTP handlers reach: the namenode's shared state.
#[derive(Debug, Clone)]
pub(crate) struct HttpContext {
    /// ClientProtocol in-process: every namespace operation with its checks.
    pub(crate) client: ClientService,
    pub(crate) namesystem: Namesystem,
    pub(crate) blocks: Arc<Mutex<BlockManager>>,
    pub(crate) role: watch::Receiver<RoleStatus>,
    pub(crate) settings: Arc<Settings>,
    /// This server's own address, for links and redirects.
    pub(crate) http_address: SocketAddr,
    pub(crate) started: SystemTime,
    /// What `/metrics` serves; its WebHDFS layer wraps every route.
    pub(crate) metrics: Arc<NamenodeMetrics>,
}

/// Every HTTP route of the namenode.
pub(crate) fn router(context: HttpContext) -> Router {
    let webhdfs_metrics = context.metrics.webhdfs_layer();
    Router::new()
        .merge(status_page::routes())
        .route("/metrics", get(metrics))
        .merge(webhdfs::router())
        // Last, so that it wraps every route above it.
        .layer(webhdfs_metrics)
        .with_state(context)
}

/// `GET /metrics`: the Prometheus text exposition format.
async fn metrics(State(context): State<HttpContext>) -> Response {
    match context.metrics.render().await {
        Ok(text) => ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Serves `router` on `listener` until `shutdown`.
pub(crate) async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    // Connection info: WebHDFS redirects a reader to its nearest replica.
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "http server stopped");
    }
}
