//! The datanode's HTTP face on one axum server: WebHDFS data transfers,
//! `/metrics` and the status page.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::prometheus_text::CONTENT_TYPE as METRICS_CONTENT_TYPE;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::DatanodeConfig;
use crate::data_path::DataPath;
use crate::metrics::DatanodeMetrics;
use crate::namenode_actor::NamenodeStates;
use crate::scanner::{ScanSettings, ScanStatus};

mod status_page;
mod webhdfs;

/// What HTTP handlers reach: the datanode's shared state.
#[derive(Debug, Clone)]
pub(crate) struct HttpContext {
    pub(crate) dp: Arc<DataPath>,
    pub(crate) config: Arc<DatanodeConfig>,
    /// The datanode id.
    pub(crate) id: String,
    pub(crate) transfer_addr: SocketAddr,
    /// This server's own address, for links.
    pub(crate) http_address: SocketAddr,
    pub(crate) started: SystemTime,
    /// What each namenode actor last heard.
    pub(crate) namenodes: Arc<NamenodeStates>,
    /// The block scanner's settings and progress; `None` when disabled.
    pub(crate) scanner: Option<(ScanSettings, Arc<ScanStatus>)>,
    /// Replicas the start-up scan found unusable.
    pub(crate) corrupt_at_start: usize,
    /// What `/metrics` serves; its WebHDFS layer wraps every route.
    pub(crate) metrics: Arc<DatanodeMetrics>,
}

/// Every HTTP route of the datanode.
pub(crate) fn router(context: HttpContext) -> Router {
    let webhdfs_metrics = context.metrics.webhdfs_layer();
    Router::new()
        .route("/", get(status_page::page))
        .route("/metrics", get(metrics))
        .merge(webhdfs::router())
        // Last, so that it wraps every route above it.
        .layer(webhdfs_metrics)
        .with_state(context)
}

/// `GET /metrics`: the Prometheus text exposition format.
async fn metrics(State(context): State<HttpContext>) -> Response {
    match context.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Serves `router` on `listener` until `shutdown`.
pub(crate) async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "http server stopped");
    }
}
