//! The objects, the trigger and the check: what both systems under test are given and how the
//! harness decides they are done.
//!
//! N Deployments `app-00000`.. in namespace `bench`, each with a ConfigMap of the same name
//! (three data keys). A round is a value of the `bench.trellis.dev/round` annotation: bumping it
//! on every Deployment makes every Deployment's expected status value change, so each needs
//! exactly one reconcile that writes. The expected value comes from
//! `status_bench::logic::expected_value`, the code both systems run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{ListParams, Patch, PatchParams};
use kube::core::Request;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use status_bench::logic;

/// Where the benchmark's objects live.
pub const NAMESPACE: &str = "bench";

/// The ConfigMap label naming its Deployment: Trellis's secondary watch maps ConfigMap changes
/// to Deployment keys through it (`mapping.label`).
pub const OWNER_LABEL: &str = "bench.trellis.dev/deployment";

/// The field manager of the harness's trigger writes (how the write log tells them apart).
pub const TRIGGER_MANAGER: &str = "e2e-bench-trigger";

/// The field manager of the harness's own status writes, measuring the server alone.
pub const SERVER_ALONE_MANAGER: &str = "e2e-bench-server-alone";

pub struct Workload {
    pub objects: usize,
}

impl Workload {
    pub fn name(i: usize) -> String {
        format!("app-{i:05}")
    }

    pub fn index_of(name: &str) -> Option<usize> {
        name.strip_prefix("app-")?.parse().ok()
    }

    fn replicas(i: usize) -> i32 {
        1 + (i % 5) as i32
    }

    fn tier(i: usize) -> &'static str {
        ["web", "api", "worker"][i % 3]
    }

    fn data(i: usize) -> BTreeMap<String, String> {
        [
            ("size", i.to_string()),
            ("tier", Self::tier(i).to_string()),
            ("owner", format!("team-{}", i % 17)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The status value object `i` must show once `round` is reconciled.
    pub fn expected(i: usize, round: u64) -> String {
        logic::expected_value(
            Some(&round.to_string()),
            Some(Self::replicas(i)),
            Some(&Self::data(i)),
        )
    }

    fn deployment(i: usize) -> Value {
        let name = Self::name(i);
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": name, "namespace": NAMESPACE,
                "labels": {"app": name, "tier": Self::tier(i)},
                "annotations": {logic::ROUND_ANNOTATION: "0"},
            },
            "spec": {
                "replicas": Self::replicas(i),
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name, "tier": Self::tier(i)}},
                    "spec": {"containers": [{
                        "name": "app",
                        "image": "registry.example/app:1.0",
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "env": [{"name": "CONFIG", "value": name}],
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                    }]},
                },
            },
        })
    }

    fn config_map(i: usize) -> Value {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": Self::name(i), "namespace": NAMESPACE,
                "labels": {OWNER_LABEL: Self::name(i)},
            },
            "data": Self::data(i),
        })
    }

    /// Writes every object as one fixture file (a `List`) in `dir`, for
    /// `DevCluster::load_fixtures`: seeding in-process is much faster than 2N HTTP creates
    /// and is not what is measured.
    pub fn write_fixtures(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let items: Vec<Value> = (0..self.objects)
            .flat_map(|i| [Self::config_map(i), Self::deployment(i)])
            .collect();
        let path = dir.join("e2e-objects.json");
        std::fs::write(
            &path,
            serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "List", "items": items}))?,
        )?;
        Ok(path)
    }
}

/// Sets the round annotation of every Deployment to `round` with merge patches over HTTP,
/// `concurrency` at a time. Responses are read as text, not decoded: the harness's own CPU
/// is taken from the same two cores as the systems under test, so it spends as little as it
/// can.
pub async fn trigger(
    client: &Client,
    workload: &Workload,
    round: u64,
    concurrency: usize,
) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {"annotations": {logic::ROUND_ANNOTATION: round.to_string()}}});
    patch_all(client, workload, None, TRIGGER_MANAGER, &patch, concurrency).await
}

/// Writes `value` into every Deployment's status as the systems do (the same merge patch of
/// the status subresource), `concurrency` requests in flight: what the server sustains for
/// the systems' writes when nothing else runs.
pub async fn write_statuses(
    client: &Client,
    workload: &Workload,
    value: &str,
    concurrency: usize,
) -> Result<(), kube::Error> {
    let patch = logic::status_patch(None, value).expect("no current value: a patch");
    patch_all(
        client,
        workload,
        Some("status"),
        SERVER_ALONE_MANAGER,
        &patch,
        concurrency,
    )
    .await
}

/// Sends `patch` (a merge patch) to every Deployment, or to its `subresource`, with
/// `concurrency` requests in flight.
async fn patch_all(
    client: &Client,
    workload: &Workload,
    subresource: Option<&str>,
    manager: &str,
    patch: &Value,
    concurrency: usize,
) -> Result<(), kube::Error> {
    let request = Request::new(format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments"));
    let params = PatchParams {
        field_manager: Some(manager.to_string()),
        ..PatchParams::default()
    };
    futures::stream::iter(0..workload.objects)
        .map(|i| {
            let name = Workload::name(i);
            let patch = Patch::Merge(patch);
            let built = match subresource {
                Some(sub) => request.patch_subresource(sub, &name, &params, &patch),
                None => request.patch(&name, &params, &patch),
            };
            async move {
                client
                    .request_text(built.map_err(kube::Error::BuildRequest)?)
                    .await
            }
        })
        .buffer_unordered(concurrency)
        .try_for_each(|_| async { Ok(()) })
        .await
}

/// Sets the round annotation of the workload's Deployments to `round` at `rate` patches per
/// second (each sent on its own task, at most 64 in flight), for latency below saturation.
pub async fn trigger_paced(
    client: &Client,
    workload: &Workload,
    round: u64,
    rate: u32,
) -> Result<(), kube::Error> {
    let request = Request::new(format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments"));
    let params = PatchParams {
        field_manager: Some(TRIGGER_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let patch = json!({"metadata": {"annotations": {logic::ROUND_ANNOTATION: round.to_string()}}});
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    let mut tick = tokio::time::interval(std::time::Duration::from_secs_f64(1.0 / f64::from(rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = Vec::with_capacity(workload.objects);
    for i in 0..workload.objects {
        tick.tick().await;
        let permit = permits.clone().acquire_owned().await.expect("never closed");
        let built = request
            .patch(&Workload::name(i), &params, &Patch::Merge(&patch))
            .map_err(kube::Error::BuildRequest)?;
        let client = client.clone();
        sent.push(tokio::spawn(async move {
            let answer = client.request_text(built).await;
            drop(permit);
            answer
        }));
    }
    for task in sent {
        task.await.expect("a trigger task panicked")?;
    }
    Ok(())
}

/// Reads every Deployment back from the server and checks that the status of each of the
/// workload's objects (`app-00000` up to `objects`) shows the value of `round`. The error names how many differ and the first few, with what they show.
pub async fn verify(client: &Client, workload: &Workload, round: u64) -> Result<(), String> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let mut seen = 0usize;
    let mut wrong = Vec::new();
    let mut params = ListParams::default().limit(1000);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|e| format!("listing the Deployments to verify: {e}"))?;
        for deployment in &page.items {
            let name = deployment.name_any();
            let Some(i) = Workload::index_of(&name).filter(|&i| i < workload.objects) else {
                continue;
            };
            seen += 1;
            let shown = logic::current_value(
                deployment
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_deref()),
            );
            let expected = Workload::expected(i, round);
            if shown != Some(expected.as_str()) {
                wrong.push(format!("{name} shows {shown:?}, expected {expected:?}"));
            }
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    if seen != workload.objects {
        return Err(format!(
            "the server holds {seen} benchmark Deployments, expected {}",
            workload.objects
        ));
    }
    if !wrong.is_empty() {
        return Err(format!(
            "{} of {} statuses do not show round {round}: {}",
            wrong.len(),
            workload.objects,
            wrong[..wrong.len().min(5)].join("; ")
        ));
    }
    Ok(())
}
