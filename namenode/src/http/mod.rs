//! The namenode's HTTP face on one axum server: WebHDFS, `/metrics` and the
//! status pages. Every handler reads the same state the gRPC services use,
//! so an HTTP caller meets the same permission checks and the same leader.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::blocks::manager::BlockManager;
use crate::config::Settings;
use crate::namesystem::Namesystem;
use crate::quorum::RoleStatus;
use crate::service::ClientService;

mod webhdfs;

/// What HTTP handlers reach: the namenode's shared state.
#[derive(Debug, Clone)]
#[expect(dead_code, reason = "read by the routes that come next")]
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
}

/// Every HTTP route of the namenode.
pub(crate) fn router(context: HttpContext) -> Router {
    Router::new().merge(webhdfs::router()).with_state(context)
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
