//! The ops HTTP server with real requests: metrics from a real registry, health and
//! readiness, heap profiles from jemalloc, binding errors and graceful stop.
//!
//! This test binary runs on jemalloc with profiling on, exactly as the `trellis` binary does
//! (the same macro), so `/debug/pprof/heap` serves a real profile here.

trellis_host::use_jemalloc!();

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use trellis_host::ops::health::{Health, Status};
use trellis_host::ops::http::{HttpError, METRICS_CONTENT_TYPE, OpsServer};

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Bytes,
}

impl Answer {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a text body")
    }
}

async fn get(address: SocketAddr, path: &str) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = Request::get(format!("http://{address}{path}"))
        .body(Empty::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(60), client.request(request))
        .await
        .expect("an answer")
        .expect("the request succeeds");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        content_type,
        body,
    }
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn serve(registry: Registry, health: Health) -> (OpsServer, CancellationToken) {
    let shutdown = CancellationToken::new();
    let server = OpsServer::start(localhost(), Arc::new(registry), health, &shutdown)
        .await
        .expect("the server starts");
    (server, shutdown)
}

#[tokio::test]
async fn metrics_are_the_registrys_in_openmetrics_text_and_change_with_work() {
    let mut registry = Registry::default();
    let reconciles = Counter::<u64>::default();
    registry.register(
        "trellis_test_reconciles",
        "Reconciles done",
        reconciles.clone(),
    );
    let depth = Gauge::<i64>::default();
    registry.register("trellis_test_depth", "Keys waiting", depth.clone());
    let (server, _shutdown) = serve(registry, Health::new()).await;

    reconciles.inc_by(3);
    depth.set(7);
    let answer = get(server.local_addr(), "/metrics").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type, METRICS_CONTENT_TYPE);
    let text = answer.text();
    assert!(
        text.contains("# TYPE trellis_test_reconciles counter\n"),
        "{text}"
    );
    assert!(text.contains("trellis_test_reconciles_total 3\n"), "{text}");
    assert!(text.contains("trellis_test_depth 7\n"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");

    reconciles.inc();
    let text = get(server.local_addr(), "/metrics")
        .await
        .text()
        .to_string();
    assert!(text.contains("trellis_test_reconciles_total 4\n"), "{text}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn healthz_answers_ok_whatever_readiness_says() {
    let health = Health::new();
    let _check = health
        .register("informer:v1/Pod", Status::not_ready("not synced"))
        .unwrap();
    let (server, _shutdown) = serve(Registry::default(), health).await;
    let answer = get(server.local_addr(), "/healthz").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "ok");
    assert!(answer.content_type.starts_with("text/plain"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn readyz_flips_from_503_with_the_detail_to_200() {
    let health = Health::new();
    let informer = health
        .register(
            "informer:apps/v1/Deployment",
            Status::not_ready("not synced: waiting for the initial list"),
        )
        .unwrap();
    let _leader = health
        .register("leader", Status::ready("standby, leader is b"))
        .unwrap();
    let (server, _shutdown) = serve(Registry::default(), health.clone()).await;

    let answer = get(server.local_addr(), "/readyz").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer.text(),
        "[-]informer:apps/v1/Deployment not synced: waiting for the initial list\n\
         [+]leader ok: standby, leader is b\n\
         readyz check failed\n"
    );

    informer.set_ready("");
    let answer = get(server.local_addr(), "/readyz").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "ok");
    let answer = get(server.local_addr(), "/readyz?verbose").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.text(),
        "[+]informer:apps/v1/Deployment ok\n[+]leader ok: standby, leader is b\nreadyz check passed\n"
    );

    // A check added later (a plugin loading) makes it unready again.
    let plugin = health
        .register("plugin:x", Status::not_ready("loading"))
        .unwrap();
    assert_eq!(
        get(server.local_addr(), "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    drop(plugin);
    assert_eq!(
        get(server.local_addr(), "/readyz").await.status,
        StatusCode::OK
    );
    server.stop().await.unwrap();
}

/// Allocations with a recognisable frame, kept alive while the profile is taken.
#[inline(never)]
fn allocate_for_profile() -> Vec<Vec<u8>> {
    (0..64).map(|i| vec![i as u8; 1 << 20]).collect()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("the profile is gzip");
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn heap_profile_is_a_symbolized_pprof_and_inactive_profiling_says_so() {
    let kept = allocate_for_profile();
    let (server, _shutdown) = serve(Registry::default(), Health::new()).await;

    let answer = get(server.local_addr(), "/debug/pprof/heap").await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{:?}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.content_type, "application/octet-stream");
    assert_eq!(&answer.body[..2], &[0x1f, 0x8b], "gzip magic");
    let profile = gunzip(&answer.body);
    // The sample type and a symbolized frame of the 64 MiB above (pprof's string table).
    assert!(contains(&profile, "inuse_space"));
    assert!(
        contains(&profile, "allocate_for_profile"),
        "no symbolized frame of the test's allocation"
    );
    drop(kept);

    // Profiling switched off: a clear 503, and on again: a profile again.
    jemalloc_pprof::deactivate_jemalloc_profiling().await;
    let answer = get(server.local_addr(), "/debug/pprof/heap").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.text().contains("not active"), "{}", answer.text());
    jemalloc_pprof::activate_jemalloc_profiling().await;
    assert_eq!(
        get(server.local_addr(), "/debug/pprof/heap").await.status,
        StatusCode::OK
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_paths_are_404_and_list_the_endpoints() {
    let (server, _shutdown) = serve(Registry::default(), Health::new()).await;
    let answer = get(server.local_addr(), "/debug/pprof/profile").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.text().contains("/metrics"), "{}", answer.text());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_address_in_use_is_an_error_naming_it() {
    let (server, shutdown) = serve(Registry::default(), Health::new()).await;
    let taken = server.local_addr();
    let err = OpsServer::start(
        taken,
        Arc::new(Registry::default()),
        Health::new(),
        &shutdown,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, HttpError::Bind { address, .. } if address == taken),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("metricsAddress {taken}: cannot listen: ")),
        "{err}"
    );
    // The first server is unaffected.
    assert_eq!(get(taken, "/healthz").await.status, StatusCode::OK);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_hosts_shutdown_stops_the_server_and_frees_the_port() {
    let (server, shutdown) = serve(Registry::default(), Health::new()).await;
    let address = server.local_addr();
    assert_eq!(get(address, "/healthz").await.status, StatusCode::OK);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(60), server.wait())
        .await
        .expect("the server stops")
        .expect("cleanly");
    assert!(
        tokio::net::TcpStream::connect(address).await.is_err(),
        "still listening"
    );
    // The port is free again.
    let again = OpsServer::start(
        address,
        Arc::new(Registry::default()),
        Health::new(),
        &CancellationToken::new(),
    )
    .await
    .expect("the port can be bound again");
    again.stop().await.unwrap();
}
