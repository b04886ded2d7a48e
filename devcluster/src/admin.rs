//! The admin endpoint (`/admin/...`): fault injection, accounting and seeding over HTTP, for
//! tests and tools outside the process (the Rust API on `DevCluster` does the same in
//! process).
//!
//! | method | path                  | does                                               |
//! |--------|-----------------------|----------------------------------------------------|
//! | GET    | `/admin/accounting`   | counters (requests, list/watch objects and bytes)   |
//! | DELETE | `/admin/accounting`   | zero the counters and empty the write log           |
//! | GET    | `/admin/writes`       | the write log                                      |
//! | GET    | `/admin/faults`       | armed rules and how often each fired               |
//! | POST   | `/admin/faults`       | arm a rule (JSON `FaultRule`)                      |
//! | DELETE | `/admin/faults`       | disarm all rules                                   |
//! | POST   | `/admin/watches/close`| end open watches (`?resource=pods`, default all)   |
//! | POST   | `/admin/history/expire`| drop watch history: next watch from an old version gets 410 (`?resource=`) |
//! | POST   | `/admin/seed`         | create `?count=N` realistic Pods in `?namespace=`  |
//!
//! Admin requests are neither counted nor subject to faults.

use std::sync::Arc;

use axum::http::Method;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::faults::FaultRule;
use crate::http::error_response;
use crate::query::Query;
use crate::status::ApiError;

fn ok(value: Value) -> Response {
    let mut response = Response::new(axum::body::Body::from(Bytes::from(
        serde_json::to_vec(&value).unwrap_or_default(),
    )));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Checks an optional `resource` parameter names a served resource (`pods`,
/// `deployments.apps`).
fn resource_param(cluster: &Cluster, query: &Query) -> Result<Option<String>, ApiError> {
    match query.get("resource").filter(|r| !r.is_empty()) {
        None => Ok(None),
        Some(resource) if cluster.registry().versions_of(resource).is_empty() => {
            Err(ApiError::bad_request(format!(
                "resource {resource:?} is not served (use e.g. pods or deployments.apps)"
            )))
        }
        Some(resource) => Ok(Some(resource.to_string())),
    }
}

pub fn handle(
    cluster: &Arc<Cluster>,
    method: &Method,
    path: &str,
    query: &Query,
    body: &[u8],
) -> Response {
    match serve(cluster, method, path, query, body) {
        Ok(value) => ok(value),
        Err(error) => error_response(&error),
    }
}

fn serve(
    cluster: &Arc<Cluster>,
    method: &Method,
    path: &str,
    query: &Query,
    body: &[u8],
) -> Result<Value, ApiError> {
    match (method.as_str(), path) {
        ("GET", "accounting") => Ok(json!(cluster.accounting.snapshot())),
        ("DELETE", "accounting") => {
            cluster.accounting.reset();
            Ok(json!({}))
        }
        ("GET", "writes") => Ok(json!(cluster.accounting.writes())),
        ("GET", "faults") => Ok(json!(
            cluster
                .faults
                .rules()
                .into_iter()
                .map(|(rule, fired)| json!({"rule": rule, "fired": fired}))
                .collect::<Vec<_>>()
        )),
        ("POST", "faults") => {
            let rule: FaultRule = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid fault rule: {e}")))?;
            cluster
                .faults
                .add(rule.clone())
                .map_err(ApiError::bad_request)?;
            Ok(json!(rule))
        }
        ("DELETE", "faults") => {
            cluster.faults.clear();
            Ok(json!({}))
        }
        ("POST", "watches/close") => {
            let resource = resource_param(cluster, query)?;
            cluster.store.close_watches(resource.as_deref());
            Ok(json!({}))
        }
        ("POST", "history/expire") => {
            let resource = resource_param(cluster, query)?;
            cluster.store.expire_history(resource.as_deref());
            Ok(json!({"resourceVersion": cluster.store.current_rv().to_string()}))
        }
        ("POST", "seed") => {
            let namespace = query.get("namespace").unwrap_or("default");
            let count: usize = query
                .get("count")
                .unwrap_or("0")
                .parse()
                .map_err(|_| ApiError::bad_request("count must be a non-negative integer"))?;
            let rv = cluster.seed_pods(namespace, count)?;
            Ok(json!({"created": count, "resourceVersion": rv.to_string()}))
        }
        _ => Err(ApiError::no_route()),
    }
}
