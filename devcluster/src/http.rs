//! The HTTP front: routes Kubernetes API paths to the cluster's operations.
//!
//! Paths are parsed by hand rather than with a router table because the API's shape is
//! regular but wide (core and named groups, namespaced and cluster-scoped kinds, subresources,
//! legacy `/watch/` paths). Each resource request goes through the same steps: resolve the
//! kind, determine the verb, count it, apply injected faults, run it, and for writes append
//! to the write log.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use crate::accounting::WriteRecord;
use crate::cluster::Cluster;
use crate::managed::Part;
use crate::patch::PatchType;
use crate::query::{ListOptions, Query};
use crate::registry::ResourceType;
use crate::render::{ListMeta, Renderer, negotiate};
use crate::scale::ScaleChange;
use crate::status::ApiError;
use crate::watch::{WatchSpec, start};
use crate::write::{DeleteOptions, FieldValidation, Target, WriteOptions, Written};
use crate::{admin, discovery, openapi};

/// Request bodies larger than this are refused (the real server's limit is 3 MiB per
/// object; lists for deletecollection bodies are small).
const MAX_BODY: usize = 32 * 1024 * 1024;

/// What the HTTP layer needs besides the cluster.
pub struct Server {
    pub cluster: Arc<Cluster>,
    pub bookmark_interval: Duration,
    /// `host:port`, for `/api`'s serverAddressByClientCIDRs.
    pub address: String,
}

pub fn router(server: Arc<Server>) -> Router {
    Router::new().fallback(handle).with_state(server)
}

fn json_response(code: u16, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn value_response(code: u16, value: &Value) -> Response {
    json_response(
        code,
        Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
    )
}

/// A Status response for an error.
pub fn error_response(error: &ApiError) -> Response {
    let mut response = value_response(error.code, &error.to_status());
    if let Some(seconds) = error.retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// A resource request's path, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// `/api/v1/watch/...` (deprecated, still served).
    pub legacy_watch: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    Resources(String, String),
    OpenApiIndex,
    OpenApiDocument(String),
    Admin(String),
    Resource(ResourcePath),
    NotFound,
}

fn route(path: &str) -> Route {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "livez" | "readyz", ..] => Route::Health,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", group] => Route::Group(group.to_string()),
        ["api", version] => Route::Resources(String::new(), version.to_string()),
        ["apis", group, version] => Route::Resources(group.to_string(), version.to_string()),
        ["openapi", "v3"] => Route::OpenApiIndex,
        ["openapi", "v3", rest @ ..] => Route::OpenApiDocument(rest.join("/")),
        ["admin", rest @ ..] => Route::Admin(rest.join("/")),
        ["api", version, rest @ ..] => resource_route("", version, rest),
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest),
        _ => Route::NotFound,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let (namespace, rest) = match rest {
        ["namespaces", _, "status" | "finalize"] => (None, rest),
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        rest => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(name.to_string()), None),
        [plural, name, sub] => (*plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return Route::NotFound,
    };
    if plural.is_empty() || name.as_deref() == Some("") {
        return Route::NotFound;
    }
    Route::Resource(ResourcePath {
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        plural: plural.to_string(),
        name,
        subresource,
        legacy_watch,
    })
}

async fn handle(State(server): State<Arc<Server>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let query = Query::parse(parts.uri.query());
    let registry = || server.cluster.registry();
    match route(parts.uri.path()) {
        Route::Version => value_response(200, &discovery::version()),
        Route::Health => json_response(200, Bytes::from_static(b"ok")),
        Route::CoreVersions => value_response(200, &discovery::core_versions(&server.address)),
        Route::Groups => value_response(200, &discovery::groups(&registry())),
        Route::Group(group) => match discovery::group(&registry(), &group) {
            Some(doc) => value_response(200, &doc),
            None => error_response(&ApiError::no_route()),
        },
        Route::Resources(group, version) => {
            match discovery::resources(&registry(), &group, &version) {
                Some(doc) => value_response(200, &doc),
                None => error_response(&ApiError::no_route()),
            }
        }
        Route::OpenApiIndex => value_response(200, &openapi::index(&registry())),
        Route::OpenApiDocument(path) => match openapi::document(&registry(), &path) {
            Some(doc) => value_response(200, &doc),
            None => error_response(&ApiError::no_route()),
        },
        Route::Admin(path) => {
            let body = match axum::body::to_bytes(body, MAX_BODY).await {
                Ok(body) => body,
                Err(e) => return error_response(&ApiError::bad_request(e.to_string())),
            };
            admin::handle(&server.cluster, &parts.method, &path, &query, &body)
        }
        Route::Resource(path) => {
            let body = match axum::body::to_bytes(body, MAX_BODY).await {
                Ok(body) => body,
                Err(e) => return error_response(&ApiError::bad_request(e.to_string())),
            };
            serve_resource(&server, &parts.method, &parts.headers, path, &query, body).await
        }
        Route::NotFound => error_response(&ApiError::no_route()),
    }
}

/// The verbs of the Kubernetes API, as audit logs and accounting name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }

    fn is_write(self) -> bool {
        !matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }
}

fn verb_of(method: &Method, path: &ResourcePath, query: &Query) -> Result<Verb, ApiError> {
    let watch = path.legacy_watch || query.flag("watch")?.unwrap_or(false);
    let verb = match (method.as_str(), path.name.is_some()) {
        ("GET", false) if watch => Verb::Watch,
        ("GET", false) => Verb::List,
        ("GET", true) => Verb::Get,
        ("POST", false) => Verb::Create,
        ("PUT", true) => Verb::Update,
        ("PATCH", true) => Verb::Patch,
        ("DELETE", true) => Verb::Delete,
        ("DELETE", false) => Verb::DeleteCollection,
        _ => return Err(ApiError::method_not_allowed("")),
    };
    Ok(verb)
}

fn header(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The field manager of a write: `fieldManager`, else the user agent's product name (what
/// the real server derives).
fn manager(query: &Query, user_agent: &str) -> (String, bool) {
    match query.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) => (m.to_string(), true),
        None => (
            user_agent.split('/').next().unwrap_or("").to_string(),
            false,
        ),
    }
}

fn write_options(query: &Query, user_agent: &str) -> Result<WriteOptions, ApiError> {
    let (manager, manager_explicit) = manager(query, user_agent);
    let validation = match query.get("fieldValidation").unwrap_or("") {
        "" | "Warn" => FieldValidation::Warn,
        "Strict" => FieldValidation::Strict,
        "Ignore" => FieldValidation::Ignore,
        other => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation {other:?} is not supported: supported values are Ignore, Warn, Strict"
            )));
        }
    };
    let dry_run = match query.get("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun {other:?} is not supported: the only supported value is All"
            )));
        }
    };
    Ok(WriteOptions {
        manager,
        manager_explicit,
        validation,
        dry_run,
        force: query.flag("force")?.unwrap_or(false),
    })
}

fn delete_options(query: &Query, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let mut options = DeleteOptions {
        dry_run: query.get("dryRun") == Some("All"),
        ..DeleteOptions::default()
    };
    if !body.iter().all(u8::is_ascii_whitespace) {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?;
        if !value.is_object() {
            return Err(ApiError::bad_request("DeleteOptions must be a JSON object"));
        }
        let text = |p: &str| value.pointer(p).and_then(Value::as_str).map(str::to_string);
        options.uid = text("/preconditions/uid");
        options.resource_version = text("/preconditions/resourceVersion");
        if value
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"))
        {
            options.dry_run = true;
        }
    }
    Ok(options)
}

/// The body formats creates and updates accept (protobuf only for the kinds `protobuf.rs`
/// decodes).
pub const BODY_MEDIA_TYPES: [&str; 3] = [
    "application/json",
    "application/yaml",
    crate::protobuf::MEDIA_TYPE,
];

/// Parses a create/update body: JSON, YAML, or the protobuf kubectl's generators send.
fn parse_body(content_type: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(str::trim)
        .unwrap_or("application/json");
    match media {
        "application/json" | "" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        }),
        "application/yaml" => serde_norway::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}"))),
        crate::protobuf::MEDIA_TYPE => crate::protobuf::decode(body),
        other => Err(ApiError::unsupported_media_type(other, &BODY_MEDIA_TYPES)),
    }
}

async fn serve_resource(
    server: &Server,
    method: &Method,
    headers: &HeaderMap,
    path: ResourcePath,
    query: &Query,
    body: Bytes,
) -> Response {
    let cluster = &server.cluster;
    let user_agent = header(headers, header::USER_AGENT)
        .unwrap_or("")
        .to_string();
    let Some(resource) = cluster.resolve(&path.group, &path.version, &path.plural) else {
        return error_response(&ApiError::no_route());
    };
    let verb = match verb_of(method, &path, query) {
        Ok(verb) => verb,
        Err(e) => return error_response(&e),
    };
    let mut accounted_as = resource.qualified_plural();
    if let Some(sub) = &path.subresource {
        accounted_as = format!("{accounted_as}/{sub}");
    }
    cluster.accounting.request(verb.as_str(), &accounted_as);
    let started = cluster.accounting.micros();
    let decision = cluster.faults.check(verb.as_str(), &accounted_as);
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let (response, written) = match decision.error {
        Some(error) => (error_response(&error), None),
        None => run(
            server,
            verb,
            headers,
            &path,
            resource,
            query,
            body,
            &accounted_as,
            &user_agent,
        )
        .unwrap_or_else(|error| (error_response(&error), None)),
    };
    if verb.is_write() {
        cluster.accounting.write(WriteRecord {
            seq: 0,
            verb: verb.as_str().to_string(),
            resource: accounted_as,
            namespace: path.namespace.clone().unwrap_or_default(),
            name: path.name.clone().unwrap_or_else(|| {
                written
                    .as_ref()
                    .and_then(|w: &Written| serde_json::from_slice::<Value>(&w.body).ok())
                    .and_then(|v| {
                        v.pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .unwrap_or_default()
            }),
            manager: manager(query, &user_agent).0,
            user_agent,
            code: response.status().as_u16(),
            resource_version: written.as_ref().and_then(|w| w.rv),
            started_micros: started,
            finished_micros: cluster.accounting.micros(),
        });
    }
    response
}

/// A write's answer: `body` (the written object as the client asked for it) with the write's
/// status code and warnings.
fn answer(body: Bytes, written: Written) -> (Response, Option<Written>) {
    let mut response = json_response(written.code, body);
    for warning in &written.warnings {
        if let Ok(value) =
            HeaderValue::from_str(&format!("299 - {}", crate::status::go_quote(warning)))
        {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    (response, Some(written))
}

/// `/scale` of a kind that has one (`scale.rs`): get, update and patch, in JSON.
#[allow(clippy::too_many_arguments)]
fn scale(
    cluster: &Cluster,
    verb: Verb,
    headers: &HeaderMap,
    path: &ResourcePath,
    resource: Arc<ResourceType>,
    query: &Query,
    body: Bytes,
    user_agent: &str,
) -> Result<(Response, Option<Written>), ApiError> {
    let namespace = path.namespace.clone().unwrap_or_default();
    let name = path.name.clone().unwrap_or_default();
    let content_type = header(headers, header::CONTENT_TYPE);
    let change = match verb {
        Verb::Get => {
            let scale = cluster.get_scale(&resource, &namespace, &name)?;
            let body = Bytes::from(serde_json::to_vec(&scale).unwrap_or_default());
            return Ok((json_response(200, body), None));
        }
        Verb::Update => ScaleChange::Replace(parse_body(content_type, &body)?),
        Verb::Patch => match content_type.and_then(PatchType::from_content_type) {
            // Server-side apply of a Scale is not served.
            Some(PatchType::Apply) | None => {
                return Err(ApiError::unsupported_media_type(
                    content_type.unwrap_or(""),
                    &PatchType::MEDIA_TYPES[..3],
                ));
            }
            Some(kind) => ScaleChange::Patch(kind, &body),
        },
        _ => return Err(ApiError::method_not_allowed("")),
    };
    let options = write_options(query, user_agent)?;
    let target = Target {
        resource,
        namespace,
        name,
        part: Part::Main,
    };
    let written = cluster.write_scale(&target, change, &options)?;
    Ok(answer(written.body.clone(), written))
}

#[allow(clippy::too_many_arguments)]
fn run(
    server: &Server,
    verb: Verb,
    headers: &HeaderMap,
    path: &ResourcePath,
    resource: Arc<ResourceType>,
    query: &Query,
    body: Bytes,
    accounted_as: &str,
    user_agent: &str,
) -> Result<(Response, Option<Written>), ApiError> {
    let cluster = &server.cluster;
    // Scope: cluster-scoped kinds have no namespace in the path; namespaced kinds need one
    // for everything but list and watch across all namespaces.
    match (&path.namespace, resource.namespaced) {
        (Some(_), false) => return Err(ApiError::no_route()),
        (None, true) if !matches!(verb, Verb::List | Verb::Watch) => {
            return Err(ApiError::method_not_allowed(""));
        }
        _ => {}
    }
    if path.subresource.as_deref() == Some("scale") && resource.scale.is_some() {
        return scale(
            cluster, verb, headers, path, resource, query, body, user_agent,
        );
    }
    let part = match path.subresource.as_deref() {
        None => Part::Main,
        Some("status")
            if resource.status_subresource
                && matches!(verb, Verb::Get | Verb::Update | Verb::Patch) =>
        {
            Part::Status
        }
        Some(_) => return Err(ApiError::no_route()),
    };
    let format = negotiate(header(headers, header::ACCEPT), query.get("includeObject"))?;
    let renderer = Renderer::new(&resource, format);
    let namespace = path.namespace.clone().unwrap_or_default();
    let target = Target {
        resource: resource.clone(),
        namespace: namespace.clone(),
        name: path.name.clone().unwrap_or_default(),
        part,
    };
    let written = |w: Written| answer(renderer.value_bytes(w.body.clone()), w);
    let content_type = header(headers, header::CONTENT_TYPE);
    match verb {
        Verb::Get => {
            let object = cluster.get(&resource, &namespace, &target.name)?;
            let body = renderer.object(&object);
            cluster
                .accounting
                .listed(accounted_as, 1, body.len() as u64);
            Ok((json_response(200, body), None))
        }
        Verb::List => {
            let options = ListOptions::parse(&resource, query)?;
            let listing = cluster.list(&resource, path.namespace.as_deref(), &options)?;
            let body = renderer.list(
                &listing.items,
                &ListMeta {
                    resource_version: listing.resource_version,
                    continue_token: listing.continue_token.as_deref(),
                },
            );
            cluster
                .accounting
                .listed(accounted_as, listing.items.len() as u64, body.len() as u64);
            Ok((json_response(200, body), None))
        }
        Verb::Watch => {
            let mut options = ListOptions::parse(&resource, query)?;
            options.watch = true;
            let stream = start(
                cluster.clone(),
                WatchSpec {
                    resource: resource.clone(),
                    namespace: path.namespace.clone(),
                    options,
                    format,
                    bookmark_interval: server.bookmark_interval,
                    accounted_as: accounted_as.to_string(),
                },
            )?;
            let mut response = Response::new(Body::from_stream(stream));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok((response, None))
        }
        Verb::Create => {
            let options = write_options(query, user_agent)?;
            let object = parse_body(content_type, &body)?;
            Ok(written(cluster.create(&target, object, &options)?))
        }
        Verb::Update => {
            let options = write_options(query, user_agent)?;
            let object = parse_body(content_type, &body)?;
            Ok(written(cluster.update(&target, object, &options)?))
        }
        Verb::Patch => {
            let options = write_options(query, user_agent)?;
            let kind = content_type
                .and_then(PatchType::from_content_type)
                .ok_or_else(|| {
                    ApiError::unsupported_media_type(
                        content_type.unwrap_or(""),
                        &PatchType::MEDIA_TYPES,
                    )
                })?;
            Ok(written(cluster.patch(&target, kind, &body, &options)?))
        }
        Verb::Delete => {
            let options = delete_options(query, &body)?;
            Ok(written(cluster.delete(&target, &options)?))
        }
        Verb::DeleteCollection => {
            let list_options = ListOptions::parse(&resource, query)?;
            let options = delete_options(query, &body)?;
            let listing = cluster.list(&resource, path.namespace.as_deref(), &list_options)?;
            // The answer lists what was deleted: the deleted object, or (for objects whose
            // delete answers with a Status) the object as it was listed.
            let mut items = Vec::new();
            for object in &listing.items {
                let target = Target {
                    name: object.key.name.to_string(),
                    ..target.clone()
                };
                match cluster.delete(&target, &options) {
                    Ok(w) => match serde_json::from_slice::<Value>(&w.body) {
                        Ok(v) if v.get("kind").and_then(Value::as_str) != Some("Status") => {
                            items.push(resource.for_response(v))
                        }
                        _ => items.push(resource.for_response(object.value())),
                    },
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            let list = serde_json::json!({
                "kind": resource.list_kind(),
                "apiVersion": resource.api_version(),
                "metadata": {"resourceVersion": cluster.store.current_rv().to_string()},
                "items": items,
            });
            Ok((value_response(200, &list), None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(path: &str) -> ResourcePath {
        match route(path) {
            Route::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths_route_like_the_api_server() {
        assert_eq!(route("/api"), Route::CoreVersions);
        assert_eq!(
            route("/apis/apps/v1"),
            Route::Resources("apps".into(), "v1".into())
        );
        assert_eq!(route("/api/v1"), Route::Resources("".into(), "v1".into()));
        assert_eq!(
            route("/openapi/v3/apis/apps/v1"),
            Route::OpenApiDocument("apis/apps/v1".into())
        );
        let ns = resource("/api/v1/namespaces/default");
        assert_eq!(
            (ns.plural.as_str(), ns.name.as_deref(), ns.namespace),
            ("namespaces", Some("default"), None)
        );
        let status = resource("/api/v1/namespaces/default/status");
        assert_eq!(status.subresource.as_deref(), Some("status"));
        assert_eq!(status.plural, "namespaces");
        let pods = resource("/api/v1/namespaces/default/pods");
        assert_eq!(
            (pods.namespace.as_deref(), pods.plural.as_str(), pods.name),
            (Some("default"), "pods", None)
        );
        let pod_status = resource("/apis/apps/v1/namespaces/x/deployments/web/status");
        assert_eq!(pod_status.name.as_deref(), Some("web"));
        assert_eq!(pod_status.subresource.as_deref(), Some("status"));
        let all = resource("/api/v1/pods");
        assert_eq!(all.namespace, None);
        assert!(resource("/api/v1/watch/namespaces/x/pods").legacy_watch);
        assert_eq!(route("/api/v1/namespaces/x/pods/a/b/c"), Route::NotFound);
        assert_eq!(route("/nothing"), Route::NotFound);
    }

    #[test]
    fn managers_come_from_the_query_or_the_user_agent() {
        let q = Query::parse(Some("fieldManager=ctrl"));
        assert_eq!(manager(&q, "kube-rs/5.0"), ("ctrl".to_string(), true));
        let q = Query::parse(None);
        assert_eq!(
            manager(&q, "kubectl/v1.32.4 (linux/amd64)"),
            ("kubectl".to_string(), false)
        );
    }
}
