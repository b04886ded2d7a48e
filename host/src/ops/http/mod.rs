//! The HTTP endpoints operators scrape and probe, on `host.metricsAddress` (issue 7).
//!
//! | path                 | answers                                                        |
//! |----------------------|----------------------------------------------------------------|
//! | `/metrics`           | every metric of the host's registry, OpenMetrics text          |
//! | `/healthz`           | 200 `ok` while the process serves at all (liveness)            |
//! | `/readyz`            | 200 `ok`, or 503 with one line per check ([`Health`]); `?verbose` lists the checks on 200 too |
//! | `/debug/pprof/heap`  | a jemalloc heap profile in pprof format ([`pprof`]); 501 or 503 with the reason when profiling is unavailable or inactive |
//!
//! Liveness deliberately checks nothing but the server itself: a host that is alive but not
//! ready (a cache not synced, the API server unreachable) must not be restarted by the kubelet,
//! which would only make it relist. The server only reads shared state (the registry, the
//! health checks), so a slow scrape never holds up the host, and it runs until the host's
//! shutdown token is cancelled, then finishes the requests in flight.

pub mod pprof;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::health::Health;
use pprof::HeapProfileError;

/// The content type of prometheus-client's text encoding (OpenMetrics 1.0), which
/// Prometheus negotiates and parses.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const TEXT: &str = "text/plain; charset=utf-8";

/// Why the server could not start or ended badly. Every variant names the address.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("metricsAddress {address}: cannot listen: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("metrics server on {address} failed: {source}")]
    Serve {
        address: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("metrics server on {address} panicked")]
    Panicked { address: SocketAddr },
}

/// What the endpoints read.
#[derive(Clone)]
struct Shared {
    registry: Arc<Registry>,
    health: Health,
}

/// The running server.
pub struct OpsServer {
    address: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<io::Result<()>>,
}

impl std::fmt::Debug for OpsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsServer")
            .field("address", &self.address)
            .finish()
    }
}

impl OpsServer {
    /// Binds `address` (port 0 picks a free one, see [`OpsServer::local_addr`]) and serves
    /// until `shutdown` is cancelled or [`OpsServer::stop`] is called. Fails at once, naming
    /// the address, if it cannot be bound.
    pub async fn start(
        address: SocketAddr,
        registry: Arc<Registry>,
        health: Health,
        shutdown: &CancellationToken,
    ) -> Result<OpsServer, HttpError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| HttpError::Bind { address, source })?;
        let address = listener
            .local_addr()
            .map_err(|source| HttpError::Bind { address, source })?;
        let app = router(Shared { registry, health });
        let stop = shutdown.child_token();
        let signal = stop.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
        });
        info!(
            %address,
            heap_profiling = pprof::available(),
            "serving /metrics, /healthz, /readyz and /debug/pprof/heap"
        );
        Ok(OpsServer {
            address,
            stop,
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting connections, lets requests in flight finish, and waits for that.
    pub async fn stop(self) -> Result<(), HttpError> {
        self.stop.cancel();
        self.wait().await
    }

    /// Waits until the server has stopped (after the shutdown token was cancelled).
    pub async fn wait(self) -> Result<(), HttpError> {
        let address = self.address;
        match self.task.await {
            Ok(Ok(())) => {
                info!(%address, "metrics server stopped");
                Ok(())
            }
            Ok(Err(source)) => Err(HttpError::Serve { address, source }),
            Err(_) => Err(HttpError::Panicked { address }),
        }
    }
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/debug/pprof/heap", get(heap))
        .fallback(not_found)
        .with_state(shared)
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, TEXT)], body.into()).into_response()
}

async fn metrics(State(shared): State<Shared>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &shared.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
            body,
        )
            .into_response(),
        Err(error) => {
            warn!(%error, "encoding metrics failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding metrics failed: {error}\n"),
            )
        }
    }
}

async fn healthz() -> Response {
    text(StatusCode::OK, "ok")
}

async fn readyz(State(shared): State<Shared>, RawQuery(query): RawQuery) -> Response {
    let verbose = query.as_deref().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair == "verbose" || pair.starts_with("verbose="))
    });
    let readiness = shared.health.ready();
    match (readiness.ready, verbose) {
        (true, false) => text(StatusCode::OK, "ok"),
        (true, true) => text(StatusCode::OK, readiness.report),
        (false, _) => text(StatusCode::SERVICE_UNAVAILABLE, readiness.report),
    }
}

async fn heap() -> Response {
    match pprof::heap_profile().await {
        Ok(profile) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"heap.pb.gz\"",
                ),
            ],
            profile,
        )
            .into_response(),
        Err(error) => {
            let status = match error {
                HeapProfileError::Unavailable => StatusCode::NOT_IMPLEMENTED,
                HeapProfileError::Inactive => StatusCode::SERVICE_UNAVAILABLE,
                HeapProfileError::Dump(_) => {
                    warn!(%error, "heap profile failed");
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            text(status, format!("{error}\n"))
        }
    }
}

async fn not_found() -> Response {
    text(
        StatusCode::NOT_FOUND,
        "not found; this server serves /metrics, /healthz, /readyz and /debug/pprof/heap\n",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    // This crate's unit tests run on the system allocator: the heap endpoint must answer 501
    // with the reason (tests/http.rs covers the jemalloc side).
    #[tokio::test]
    async fn heap_profile_without_jemalloc_is_501_with_the_reason() {
        let shutdown = CancellationToken::new();
        let server = OpsServer::start(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(Registry::default()),
            Health::new(),
            &shutdown,
        )
        .await
        .unwrap();
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let uri = format!("http://{}/debug/pprof/heap", server.local_addr());
        let response = client.get(uri.parse().unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_IMPLEMENTED);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("not available"), "{body}");
        server.stop().await.unwrap();
    }
}
