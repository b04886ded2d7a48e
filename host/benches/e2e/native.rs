//! The native peer: what a careful kube-rs author writes for the same workload.
//!
//! A kube-runtime `Controller` on the Deployments (its own reflector store), a reflector
//! `Store<ConfigMap>` for the related objects (synced before the controller starts, as
//! Trellis syncs its caches before its workers start), the same number of concurrent
//! reconciles as Trellis has workers, streaming lists on both watches (what Trellis uses by
//! default; the faster of kube's two strategies on the devcluster), a field manager of its
//! own, and the very same logic (`status_bench::logic`) per object. Errors are retried after
//! 100 ms (kube-runtime has no per-key backoff of its own); none happen in the benchmark.
//!
//! With `predicates`, the controller is fed through kube-runtime's `predicate_filter` on the
//! Deployments' generation and annotations (what a kube-rs author adds to skip the echo of the
//! controller's own status writes; Trellis's `predicates: [generation, annotations]`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::utils::Predicate;
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Api, Client, ResourceExt};
use status_bench::logic;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const FIELD_MANAGER: &str = "native-status-bench";

#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error("Deployment {0} has no namespace")]
    NoNamespace(String),
    #[error("ConfigMap {0} is not in the store")]
    MissingConfigMap(String),
    #[error("patching the status of {0}: {1}")]
    Patch(String, #[source] kube::Error),
}

struct Context {
    client: Client,
    config_maps: Store<ConfigMap>,
    params: PatchParams,
    reconciles: AtomicU64,
    errors: AtomicU64,
}

/// A running native peer.
pub struct Native {
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    context: Arc<Context>,
}

impl Native {
    /// Starts the store and the controller on the current runtime; returns once the
    /// ConfigMap store is synced and the controller is running.
    pub async fn start(
        client: Client,
        namespace: &str,
        workers: u16,
        predicates: bool,
    ) -> Result<Self, String> {
        let shutdown = CancellationToken::new();
        let (config_maps, writer) = reflector::store();
        let stream = reflector(
            writer,
            watcher(
                Api::<ConfigMap>::namespaced(client.clone(), namespace),
                watcher::Config::default().streaming_lists(),
            ),
        )
        .default_backoff()
        .touched_objects();
        let stop = shutdown.clone();
        let store_task = tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = stream.for_each(|_| async {}) => {}
            }
        });
        let began = std::time::Instant::now();
        config_maps
            .wait_until_ready()
            .await
            .map_err(|e| format!("the ConfigMap store never synced: {e}"))?;
        // The controller then reconciles Deployments as their list streams in.
        eprintln!(
            "  native: ConfigMap store synced, controller started {:.2} s after the start",
            began.elapsed().as_secs_f64()
        );

        let context = Arc::new(Context {
            client: client.clone(),
            config_maps,
            params: PatchParams {
                field_manager: Some(FIELD_MANAGER.to_string()),
                ..PatchParams::default()
            },
            reconciles: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        });
        let stop = shutdown.clone();
        let deployments = Api::<Deployment>::namespaced(client, namespace);
        let watch = watcher::Config::default().streaming_lists();
        let controller = if predicates {
            let (reader, writer) = reflector::store();
            let changed = reflector(writer, watcher(deployments, watch))
                .default_backoff()
                .touched_objects()
                .predicate_filter(
                    predicates::generation.combine(predicates::annotations),
                    Default::default(),
                );
            Controller::for_stream(changed, reader)
        } else {
            Controller::new(deployments, watch)
        };
        let controller = controller
            .with_config(controller::Config::default().concurrency(workers))
            .graceful_shutdown_on(async move { stop.cancelled().await })
            .run(reconcile, error_policy, context.clone())
            .for_each(|_| async {});
        let controller_task = tokio::spawn(controller);
        Ok(Self {
            shutdown,
            tasks: vec![store_task, controller_task],
            context,
        })
    }

    /// Reconciles run so far (including those that found nothing to do).
    pub fn reconciles(&self) -> u64 {
        self.context.reconciles.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.context.errors.load(Ordering::Relaxed)
    }

    /// Stops the controller (in-flight reconciles finish) and the store.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

async fn reconcile(
    deployment: Arc<Deployment>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    ctx.reconciles.fetch_add(1, Ordering::Relaxed);
    let name = deployment.name_any();
    let namespace = deployment
        .namespace()
        .ok_or_else(|| ReconcileError::NoNamespace(name.clone()))?;
    let config_map = ctx
        .config_maps
        .get(&ObjectRef::new(&name).within(&namespace))
        .ok_or_else(|| ReconcileError::MissingConfigMap(format!("{namespace}/{name}")))?;
    let value = logic::expected_value(
        deployment
            .annotations()
            .get(logic::ROUND_ANNOTATION)
            .map(String::as_str),
        deployment.spec.as_ref().and_then(|s| s.replicas),
        config_map.data.as_ref(),
    );
    let conditions = deployment
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref());
    if let Some(patch) = logic::status_patch(logic::current_value(conditions), &value) {
        Api::<Deployment>::namespaced(ctx.client.clone(), &namespace)
            .patch_status(&name, &ctx.params, &Patch::Merge(&patch))
            .await
            .map_err(|e| ReconcileError::Patch(format!("{namespace}/{name}"), e))?;
    }
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Deployment>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    ctx.errors.fetch_add(1, Ordering::Relaxed);
    eprintln!("native peer: {error}");
    Action::requeue(Duration::from_millis(100))
}
