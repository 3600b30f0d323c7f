//! The datanode's HTTP face on one axum server: WebHDFS data transfers,
//! `/metrics` and the status page.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::DatanodeConfig;
use crate::data_path::DataPath;

mod webhdfs;

/// What HTTP handlers reach: the datanode's shared state.
#[derive(Debug, Clone)]
#[expect(dead_code, reason = "read by the routes that come next")]
pub(crate) struct HttpContext {
    pub(crate) dp: Arc<DataPath>,
    pub(crate) config: Arc<DatanodeConfig>,
    /// The datanode id.
    pub(crate) id: String,
    pub(crate) transfer_addr: SocketAddr,
    /// This server's own address, for links.
    pub(crate) http_address: SocketAddr,
    pub(crate) started: SystemTime,
}

/// Every HTTP route of the datanode.
pub(crate) fn router(context: HttpContext) -> Router {
    Router::new().merge(webhdfs::router()).with_state(context)
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
