//! Per-request metrics of a node's servers, each from one tower layer, so
//! that no handler carries metric code:
//!
//! - [`RpcMetrics::layer`] on a tonic server: calls by service and method,
//!   their latency (until the response stream ends), and errors by gRPC code;
//! - [`WebHdfsMetrics::layer`] on an axum router: WebHDFS requests by op
//!   and HTTP status, and their latency by op (until the body ends).
//!
//! ```text
//!   request ──► layer: count the call, start the clock ──► service
//!   response ◄── body wrapper: grpc-status from headers or trailers;
//!                at end of stream (or drop: CANCELLED) observe latency, count error
//! ```
//!
//! Labels stay bounded whatever clients send: a gRPC method is labelled
//! only if the compiled `.proto` files define it (else service and method
//! are `OTHER`), a WebHDFS op only if Hadoop's documentation names it (else
//! `OTHER`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tonic::Code;
use tower_layer::Layer;
use tower_service::Service;

include!(concat!(env!("OUT_DIR"), "/rpc_methods.rs"));

/// Label of whatever is not a known method or op.
const OTHER: &str = "OTHER";

/// A future boxed for the layers' services.
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The latency buckets of every request histogram, in seconds: 0.5 ms to
/// about 33 s, doubling.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

/// A gRPC method, as labelled.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MethodLabels {
    /// The service (`ClientProtocol`), without its package.
    pub service: &'static str,
    /// The method (`Create`).
    pub method: &'static str,
}

impl MethodLabels {
    /// The labels of the request path `/dfs.v1.Service/Method`.
    pub fn of_path(path: &str) -> Self {
        RPC_METHODS.iter().find(|(p, _, _)| *p == path).map_or(
            MethodLabels {
                service: OTHER,
                method: OTHER,
            },
            |&(_, service, method)| MethodLabels { service, method },
        )
    }
}

/// A failed gRPC call, as labelled.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The service.
    pub service: &'static str,
    /// The method.
    pub method: &'static str,
    /// The gRPC status code, as tonic names it (`NotFound`, `Unavailable`).
    pub code: String,
}

/// Calls, errors and latency of one node's gRPC servers, by method.
#[derive(Debug, Clone)]
pub struct RpcMetrics {
    calls: Family<MethodLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Family<MethodLabels, Histogram, fn() -> Histogram>,
}

impl Default for RpcMetrics {
    fn default() -> Self {
        RpcMetrics {
            calls: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl RpcMetrics {
    /// Registers `rpc_calls_total`, `rpc_errors_total` and
    /// `rpc_duration_seconds` in `registry` (before or after the layer
    /// records anything: clones share their values).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "rpc_calls",
            "gRPC calls received, by service and method",
            self.calls.clone(),
        );
        registry.register(
            "rpc_errors",
            "gRPC calls that ended with a status other than OK, by gRPC code",
            self.errors.clone(),
        );
        registry.register_with_unit(
            "rpc_duration",
            "Time from a gRPC call's arrival to the end of its response stream",
            Unit::Seconds,
            self.duration.clone(),
        );
    }

    /// The tower layer that records every call of the server it wraps.
    pub fn layer(&self) -> RpcMetricsLayer {
        RpcMetricsLayer {
            metrics: self.clone(),
        }
    }
}

/// Records every call of the gRPC server it wraps (see [`RpcMetrics`]).
#[derive(Debug, Clone)]
pub struct RpcMetricsLayer {
    metrics: RpcMetrics,
}

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`RpcMetricsLayer`] makes.
#[derive(Debug, Clone)]
pub struct RpcMetricsService<S> {
    inner: S,
    metrics: RpcMetrics,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RpcMetricsService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Body + Unpin + Send + 'static,
{
    type Response = http::Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let method = MethodLabels::of_path(request.uri().path());
        self.metrics.calls.get_or_create(&method).inc();
        let call = Call {
            metrics: self.metrics.clone(),
            method,
            started: Instant::now(),
            finished: false,
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            // Dropped here (the caller went away first): `call` says CANCELLED.
            let response = response.await?;
            let code = grpc_code(response.headers());
            Ok(response.map(|inner| MeteredBody { inner, call, code }))
        })
    }
}

/// The `grpc-status` among `headers` (a trailers-only response carries it
/// in the headers, any other in the trailers).
fn grpc_code(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|v| Code::from_bytes(v.as_bytes()))
}

/// One call in flight: recorded once, when it ends.
#[derive(Debug)]
struct Call {
    metrics: RpcMetrics,
    method: MethodLabels,
    started: Instant,
    finished: bool,
}

impl Call {
    /// Observes the latency and counts a non-OK `code`; only the first time.
    fn finish(&mut self, code: Code) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        self.metrics
            .duration
            .get_or_create(&self.method)
            .observe(self.started.elapsed().as_secs_f64());
        if code != Code::Ok {
            let labels = ErrorLabels {
                service: self.method.service,
                method: self.method.method,
                code: format!("{code:?}"),
            };
            self.metrics.errors.get_or_create(&labels).inc();
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish(Code::Cancelled);
    }
}

/// A response body that ends its call's record when the stream ends.
#[derive(Debug)]
pub struct MeteredBody<B> {
    inner: B,
    call: Call,
    /// The status seen so far (headers, then trailers).
    code: Option<Code>,
}

impl<B: Body + Unpin> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_code) {
                    this.code = Some(code);
                }
            }
            Poll::Ready(Some(Err(_))) => this.call.finish(Code::Unknown),
            Poll::Ready(None) => this.call.finish(this.code.unwrap_or(Code::Unknown)),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for MeteredBody<B> {
    fn drop(&mut self) {
        // A server may stop polling once it has the trailers (or never poll
        // a trailers-only body): the status seen counts, else the client left.
        self.call.finish(self.code.unwrap_or(Code::Cancelled));
    }
}

/// The WebHDFS operations Hadoop's documentation names; any other `op`
/// value is labelled `OTHER`.
const WEBHDFS_OPS: &[&str] = &[
    "OPEN",
    "GETFILESTATUS",
    "LISTSTATUS",
    "LISTSTATUS_BATCH",
    "GETCONTENTSUMMARY",
    "GETQUOTAUSAGE",
    "GETFILECHECKSUM",
    "GETHOMEDIRECTORY",
    "GETDELEGATIONTOKEN",
    "GETTRASHROOT",
    "GETXATTRS",
    "LISTXATTRS",
    "GETACLSTATUS",
    "CHECKACCESS",
    "GETALLSTORAGEPOLICY",
    "GETSTORAGEPOLICY",
    "GETFILEBLOCKLOCATIONS",
    "GETSERVERDEFAULTS",
    "GETSNAPSHOTDIFF",
    "GETSNAPSHOTTABLEDIRECTORYLIST",
    "GETSTATUS",
    "CREATE",
    "MKDIRS",
    "CREATESYMLINK",
    "RENAME",
    "SETREPLICATION",
    "SETOWNER",
    "SETPERMISSION",
    "SETTIMES",
    "RENEWDELEGATIONTOKEN",
    "CANCELDELEGATIONTOKEN",
    "SETXATTR",
    "REMOVEXATTR",
    "SETSTORAGEPOLICY",
    "SETACL",
    "MODIFYACLENTRIES",
    "REMOVEACLENTRIES",
    "REMOVEDEFAULTACL",
    "REMOVEACL",
    "ALLOWSNAPSHOT",
    "DISALLOWSNAPSHOT",
    "CREATESNAPSHOT",
    "RENAMESNAPSHOT",
    "SETQUOTA",
    "SETQUOTABYSTORAGETYPE",
    "APPEND",
    "CONCAT",
    "TRUNCATE",
    "UNSETSTORAGEPOLICY",
    "DELETE",
    "DELETESNAPSHOT",
];

/// Where WebHDFS lives on every node's HTTP server.
const WEBHDFS_PREFIX: &str = "/webhdfs/";

/// A WebHDFS request, as labelled.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct WebHdfsLabels {
    /// The `op` query parameter upper-cased, or `OTHER`.
    pub op: &'static str,
    /// The HTTP status code of the answer.
    pub status: u16,
}

/// The op label of a WebHDFS request's query string: the first `op`
/// parameter, compared without regard to case.
pub fn webhdfs_op(query: Option<&str>) -> &'static str {
    let value = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| key.eq_ignore_ascii_case("op"))
        .map(|(_, value)| value);
    value
        .and_then(|v| {
            WEBHDFS_OPS
                .iter()
                .copied()
                .find(|op| op.eq_ignore_ascii_case(v))
        })
        .unwrap_or(OTHER)
}

/// A WebHDFS op, as labelled on its latency.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OpLabels {
    /// As in [`WebHdfsLabels`].
    pub op: &'static str,
}

/// WebHDFS requests of one node's HTTP server, by op and status, and
/// their latency by op.
#[derive(Debug, Clone)]
pub struct WebHdfsMetrics {
    requests: Family<WebHdfsLabels, Counter>,
    duration: Family<OpLabels, Histogram, fn() -> Histogram>,
}

impl Default for WebHdfsMetrics {
    fn default() -> Self {
        WebHdfsMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl WebHdfsMetrics {
    /// Registers `webhdfs_requests_total` and `webhdfs_duration_seconds`
    /// in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "webhdfs_requests",
            "WebHDFS requests answered, by op and HTTP status",
            self.requests.clone(),
        );
        registry.register_with_unit(
            "webhdfs_duration",
            "Time from a WebHDFS request's arrival to the end of its response body",
            Unit::Seconds,
            self.duration.clone(),
        );
    }

    /// The tower layer that counts the WebHDFS requests of the router it
    /// wraps (other paths pass uncounted).
    pub fn layer(&self) -> WebHdfsMetricsLayer {
        WebHdfsMetricsLayer {
            metrics: self.clone(),
        }
    }
}

/// Counts WebHDFS requests (see [`WebHdfsMetrics`]).
#[derive(Debug, Clone)]
pub struct WebHdfsMetricsLayer {
    metrics: WebHdfsMetrics,
}

impl<S> Layer<S> for WebHdfsMetricsLayer {
    type Service = WebHdfsMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WebHdfsMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`WebHdfsMetricsLayer`] makes.
#[derive(Debug, Clone)]
pub struct WebHdfsMetricsService<S> {
    inner: S,
    metrics: WebHdfsMetrics,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for WebHdfsMetricsService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: 'static,
{
    type Response = http::Response<TimedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let op = request
            .uri()
            .path()
            .starts_with(WEBHDFS_PREFIX)
            .then(|| webhdfs_op(request.uri().query()));
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            let timer = op.map(|op| {
                let status = response.status().as_u16();
                metrics
                    .requests
                    .get_or_create(&WebHdfsLabels { op, status })
                    .inc();
                Timer {
                    histogram: metrics.duration.get_or_create_owned(&OpLabels { op }),
                    started,
                }
            });
            Ok(response.map(|inner| TimedBody { inner, timer }))
        })
    }
}

/// The clock of one WebHDFS request.
#[derive(Debug)]
struct Timer {
    histogram: Histogram,
    started: Instant,
}

/// A response body that observes its request's latency when it ends (or
/// is dropped: a client that left), so that a streamed OPEN counts whole.
#[derive(Debug)]
pub struct TimedBody<B> {
    inner: B,
    /// `None` once observed, and for requests other than WebHDFS.
    timer: Option<Timer>,
}

impl<B> TimedBody<B> {
    fn observe(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer
                .histogram
                .observe(timer.started.elapsed().as_secs_f64());
        }
    }
}

impl<B: Body + Unpin> Body for TimedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.observe();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for TimedBody<B> {
    fn drop(&mut self) {
        self.observe();
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn known_methods_keep_their_names_and_others_are_bucketed() {
        assert_eq!(
            MethodLabels::of_path("/dfs.v1.ClientProtocol/Create"),
            MethodLabels {
                service: "ClientProtocol",
                method: "Create"
            }
        );
        assert_eq!(
            MethodLabels::of_path("/dfs.v1.DataTransfer/WriteBlock").method,
            "WriteBlock"
        );
        for unknown in ["/dfs.v1.ClientProtocol/Nope", "/x", "", "/dfs.v1.Evil\"/A"] {
            assert_eq!(MethodLabels::of_path(unknown).method, OTHER, "{unknown}");
        }
    }

    #[test]
    fn webhdfs_ops_are_upper_cased_and_unknown_ones_bucketed() {
        assert_eq!(webhdfs_op(Some("op=liststatus&user.name=x")), "LISTSTATUS");
        assert_eq!(webhdfs_op(Some("user.name=x&OP=Open&op=DELETE")), "OPEN");
        assert_eq!(webhdfs_op(Some("op=DROP_TABLES")), OTHER);
        assert_eq!(webhdfs_op(Some("op")), OTHER);
        assert_eq!(webhdfs_op(None), OTHER);
    }

    /// A tiny gRPC-ish service: the path decides the answer.
    #[derive(Clone)]
    struct Fake;

    impl Service<http::Request<()>> for Fake {
        type Response = http::Response<http_body_full::Full>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<()>) -> Self::Future {
            let mut response = http::Response::new(http_body_full::Full::new(
                request.uri().path().ends_with("/Create"),
            ));
            if request.uri().path().ends_with("/Mkdirs") {
                // Trailers-only: the status is in the headers.
                response
                    .headers_mut()
                    .insert("grpc-status", http::HeaderValue::from_static("5"));
            }
            std::future::ready(Ok(response))
        }
    }

    /// Bodies for the tests: one data frame, then `grpc-status: 0` trailers
    /// when asked for.
    mod http_body_full {
        use super::*;

        pub(super) struct Full {
            frames: Vec<Frame<Bytes>>,
        }

        impl Full {
            pub(super) fn new(with_trailers: bool) -> Self {
                let mut frames = Vec::new();
                if with_trailers {
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    frames.push(Frame::trailers(trailers));
                    frames.push(Frame::data(Bytes::from_static(b"ok")));
                }
                Full { frames }
            }
        }

        impl Body for Full {
            type Data = Bytes;
            type Error = Infallible;

            fn poll_frame(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
                Poll::Ready(self.frames.pop().map(Ok))
            }
        }
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    fn drain<B: Body + Unpin>(mut body: B) {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        while let Poll::Ready(Some(_)) = Pin::new(&mut body).poll_frame(&mut cx) {}
    }

    #[test]
    fn calls_errors_and_latency_are_recorded_when_the_response_ends() {
        let mut registry = Registry::with_prefix("dfs");
        let metrics = RpcMetrics::default();
        metrics.register(&mut registry);
        let mut service = metrics.layer().layer(Fake);
        let call = |service: &mut RpcMetricsService<Fake>, path: &str| {
            let request = http::Request::builder().uri(path).body(()).unwrap();
            block_on(service.call(request)).unwrap()
        };
        let ok = call(&mut service, "/dfs.v1.ClientProtocol/Create");
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            !text.contains("dfs_rpc_duration_seconds_count{"),
            "recorded before the stream ended:\n{text}"
        );
        drain(ok.into_body());
        drain(call(&mut service, "/dfs.v1.ClientProtocol/Mkdirs").into_body());
        // A response dropped before its trailers: the client went away.
        let _ = call(&mut service, "/dfs.v1.ClientProtocol/Delete");
        drain(call(&mut service, "/no.such/Method").into_body());

        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for line in [
            r#"dfs_rpc_calls_total{service="ClientProtocol",method="Create"} 1"#,
            r#"dfs_rpc_duration_seconds_count{service="ClientProtocol",method="Create"} 1"#,
            r#"dfs_rpc_errors_total{service="ClientProtocol",method="Mkdirs",code="NotFound"} 1"#,
            r#"dfs_rpc_errors_total{service="ClientProtocol",method="Delete",code="Cancelled"} 1"#,
            r#"dfs_rpc_calls_total{service="OTHER",method="OTHER"} 1"#,
        ] {
            assert!(text.contains(line), "no {line} in:\n{text}");
        }
        assert!(!text.contains(r#"method="Create",code="#), "{text}");
    }

    #[test]
    fn webhdfs_requests_are_counted_by_op_and_status_and_other_paths_are_not() {
        let mut registry = Registry::with_prefix("dfs");
        let metrics = WebHdfsMetrics::default();
        metrics.register(&mut registry);
        let mut service = metrics.layer().layer(Fake);
        for uri in [
            "/webhdfs/v1/a?op=mkdirs",
            "/webhdfs/v1/a?op=MKDIRS&op=x",
            "/webhdfs/v1/a?op=nonsense",
            "/metrics",
        ] {
            let request = http::Request::builder().uri(uri).body(()).unwrap();
            drain(block_on(service.call(request)).unwrap().into_body());
        }
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"dfs_webhdfs_requests_total{op="MKDIRS",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dfs_webhdfs_requests_total{op="OTHER",status="200"} 1"#),
            "{text}"
        );
        assert_eq!(
            text.matches("dfs_webhdfs_requests_total{").count(),
            2,
            "{text}"
        );
        assert!(
            text.contains(r#"dfs_webhdfs_duration_seconds_count{op="MKDIRS"} 2"#),
            "{text}"
        );
        assert_eq!(
            text.matches("dfs_webhdfs_duration_seconds_count{").count(),
            2,
            "{text}"
        );
    }
}
