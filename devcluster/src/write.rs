//! Writes: create, update, patch, server-side apply, delete, deletecollection.
//!
//! Every write follows the real server's shape:
//! 1. check the body (kind, apiVersion, name and namespace agree with the URL);
//! 2. read the current object and compute the new one outside the store lock (patching,
//!    applying, validating against the schema, carrying server-owned metadata over, keeping
//!    status or spec depending on the subresource, bumping generation, recording field
//!    ownership);
//! 3. commit under the lock only if the object is still the version step 2 read; otherwise
//!    start over (the apiserver's `GuaranteedUpdate`). A write that changes nothing is not
//!    committed and keeps the resourceVersion.
//!
//! Side effects the real controllers would perform happen in the same transaction: deleting
//! a namespace deletes its contents and the namespace once they are gone; creating a CRD
//! serves its kinds; deleting one removes its objects and stops serving them.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::apply::Apply;
use crate::cluster::Cluster;
use crate::crd;
use crate::defaults::{default_keys, default_namespace, default_object};
use crate::managed::{ManagedFields, Part, Write};
use crate::names::name_errors;
use crate::object::{
    ObjKey, Prepared, StoredObject, finalizers, is_deleting, meta_mut, meta_str, name_suffix,
    new_uid, now_timestamp,
};
use crate::patch::{PatchError, PatchType, apply_patch};
use crate::registry::ResourceType;
use crate::schema::SchemaError;
use crate::services;
use crate::status::{ApiError, Cause, success_status};
use crate::store::Tx;

/// `fieldValidation`: what to do with unknown fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Reject the request.
    Strict,
    /// Drop them and say so in `Warning` headers (the server's default).
    #[default]
    Warn,
    /// Drop them silently.
    Ignore,
}

/// The object a write addresses.
#[derive(Debug, Clone)]
pub struct Target {
    pub resource: Arc<ResourceType>,
    /// Empty for cluster-scoped kinds.
    pub namespace: String,
    /// Empty for creates.
    pub name: String,
    pub part: Part,
}

impl Target {
    fn key(&self, name: &str) -> ObjKey {
        ObjKey::new(&self.namespace, name)
    }

    fn table(&self) -> String {
        self.resource.storage_key()
    }
}

/// Request options every write carries.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// The field manager: `fieldManager`, or derived from the user agent.
    pub manager: String,
    /// True when `fieldManager` was given explicitly (apply requires it).
    pub manager_explicit: bool,
    pub validation: FieldValidation,
    pub dry_run: bool,
    /// Apply only: take over conflicting fields.
    pub force: bool,
}

/// `DELETE` options (query or body).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

/// A successful write's answer.
#[derive(Debug, Clone)]
pub struct Written {
    pub code: u16,
    /// The object as stored, or a Status, or (from `write_scale`) the object's Scale; the HTTP
    /// layer renders objects at the version asked for.
    pub body: Bytes,
    pub warnings: Vec<String>,
    /// The resourceVersion committed, if the write changed anything.
    pub rv: Option<u64>,
}

impl Written {
    /// An answer that committed nothing (a dry run, a no-op write, a repeated delete).
    fn unchanged(code: u16, body: Bytes, warnings: Vec<String>) -> Self {
        Self {
            code,
            body,
            warnings,
            rv: None,
        }
    }

    /// An answer with the object as committed, at its version.
    fn committed(code: u16, stored: &StoredObject, warnings: Vec<String>) -> Self {
        Self {
            code,
            body: stored.json.clone(),
            warnings,
            rv: Some(stored.rv),
        }
    }
}

pub(crate) enum Ownership {
    /// A create, update or non-apply patch: the manager takes what it changed.
    Update,
    /// Ownership already computed by server-side apply.
    Applied(ManagedFields),
}

pub(crate) enum Mutation {
    Create(Value, Ownership),
    Update(Value, Ownership),
}

/// An object on its way into the store.
enum Pending {
    /// Kept as a value: its commit may turn into a deletion.
    Value(Value),
    /// Serialized ahead of the transaction.
    Prepared(Prepared),
}

enum CommitError {
    /// The object changed since it was read: recompute.
    Retry,
    Api(ApiError),
}

impl From<ApiError> for CommitError {
    fn from(e: ApiError) -> Self {
        CommitError::Api(e)
    }
}

const MAX_ATTEMPTS: usize = 64;

fn is_namespace(resource: &ResourceType) -> bool {
    !resource.custom && resource.group.is_empty() && resource.kind == "Namespace"
}

fn is_crd(resource: &ResourceType) -> bool {
    resource.group == "apiextensions.k8s.io" && resource.kind == "CustomResourceDefinition"
}

/// For a CRD write, the storage key and the kinds it will serve, computed before the store
/// lock is taken.
fn crd_types(resource: &ResourceType, object: &Value) -> Option<(String, Vec<ResourceType>)> {
    is_crd(resource).then(|| {
        (
            crd::storage_key(object).unwrap_or_default(),
            crd::resource_types(object).unwrap_or_default(),
        )
    })
}

/// A dry run's answer body: the object as it would have been stored.
fn dry_run_body(opts: &WriteOptions, object: &Value) -> Option<Bytes> {
    opts.dry_run
        .then(|| Bytes::from(serde_json::to_vec(object).unwrap_or_default()))
}

/// Checks a request body against the URL and returns it with the URL's namespace filled in.
pub fn check_body(target: &Target, body: Value) -> Result<Value, ApiError> {
    let resource = &target.resource;
    let mut body = match body {
        Value::Object(map) => Value::Object(map),
        other => {
            return Err(ApiError::bad_request(format!(
                "couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}",
                go_type(&other)
            )));
        }
    };
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if kind.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{body}'"
        )));
    }
    if api_version.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Object 'apiVersion' is missing in '{body}'"
        )));
    }
    if api_version != resource.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            resource.api_version()
        )));
    }
    if kind != resource.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            resource.kind
        )));
    }
    if body
        .get("metadata")
        .is_some_and(|m| !m.is_object() && !m.is_null())
    {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {kind}: json: cannot unmarshal {} into Go struct field {kind}.metadata of type v1.ObjectMeta",
            resource.version,
            go_type(&body["metadata"])
        )));
    }
    let namespace = meta_str(&body, "namespace").to_string();
    if resource.namespaced {
        if !namespace.is_empty() && namespace != target.namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta_mut(&mut body).insert("namespace".to_string(), json!(target.namespace));
    } else {
        meta_mut(&mut body).remove("namespace");
    }
    Ok(body)
}

fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Everything but metadata (and status, for kinds with a status subresource): what
/// generation tracks.
fn generation_view(object: &Value, resource: &ResourceType) -> Value {
    let mut view = object.clone();
    if let Value::Object(map) = &mut view {
        map.remove("metadata");
        if resource.status_subresource {
            map.remove("status");
        }
    }
    view
}

/// True if `new` would store nothing `old` does not already have (times of ownership entries
/// and resourceVersion aside). Compares in place: this runs on every write.
fn same_object(old: &Value, new: &Value) -> bool {
    let (Value::Object(o), Value::Object(n)) = (old, new) else {
        return old == new;
    };
    same_map(o, n, None, |key, a, b| match key {
        "metadata" => same_metadata(a, b),
        _ => a == b,
    })
}

fn same_metadata(old: &Value, new: &Value) -> bool {
    let (Value::Object(o), Value::Object(n)) = (old, new) else {
        return old == new;
    };
    same_map(o, n, Some("resourceVersion"), |key, a, b| match key {
        "managedFields" => same_entries(a, b),
        _ => a == b,
    })
}

/// managedFields equal but for their `time`s.
fn same_entries(old: &Value, new: &Value) -> bool {
    let (Value::Array(o), Value::Array(n)) = (old, new) else {
        return old == new;
    };
    o.len() == n.len()
        && o.iter().zip(n).all(|(a, b)| match (a, b) {
            (Value::Object(a), Value::Object(b)) => same_map(a, b, Some("time"), |_, a, b| a == b),
            _ => a == b,
        })
}

/// True if `old` and `new` have the same keys, `ignored` aside, and `same(key, old, new)`
/// holds for each key's values.
fn same_map(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    ignored: Option<&str>,
    same: impl Fn(&str, &Value, &Value) -> bool,
) -> bool {
    let kept = |key: &String| Some(key.as_str()) != ignored;
    old.keys().filter(|k| kept(k)).count() == new.keys().filter(|k| kept(k)).count()
        && old
            .iter()
            .filter(|(k, _)| kept(k))
            .all(|(key, value)| new.get(key).is_some_and(|other| same(key, value, other)))
}

impl Cluster {
    /// `POST` to a collection.
    pub fn create(
        &self,
        target: &Target,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        let mut object = check_body(target, body)?;
        let name = self.assign_name(target, &mut object)?;
        let target = Target {
            name,
            ..target.clone()
        };
        let (prepared, warnings) = self.prepare(&target, opts, None, object, Ownership::Update)?;
        match self.commit_create(&target, prepared, opts, warnings) {
            Ok(written) => Ok(written),
            Err(CommitError::Api(e)) => Err(e),
            Err(CommitError::Retry) => {
                Err(ApiError::already_exists(&target.resource, &target.name))
            }
        }
    }

    /// `PUT` to an object (or its status).
    pub fn update(
        &self,
        target: &Target,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        let body = check_body(target, body)?;
        let body_name = meta_str(&body, "name");
        if body_name != target.name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({})",
                target.name
            )));
        }
        let precondition = match meta_str(&body, "resourceVersion") {
            "" => None,
            rv => Some(rv.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("invalid resourceVersion {rv:?}: not a number"))
            })?),
        };
        self.update_loop(target, opts, |current| {
            let Some((_, rv)) = current else {
                return Err(ApiError::not_found(&target.resource, &target.name));
            };
            if precondition.is_some_and(|p| p != rv) {
                return Err(ApiError::conflict_modified(&target.resource, &target.name));
            }
            Ok(Mutation::Update(body.clone(), Ownership::Update))
        })
    }

    /// `PATCH` to an object (or its status), any patch type.
    pub fn patch(
        &self,
        target: &Target,
        kind: PatchType,
        body: &[u8],
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        let resource = &target.resource;
        if kind == PatchType::Apply {
            return self.apply(target, body, opts);
        }
        if opts.force {
            return Err(ApiError::invalid_kind(
                "PatchOptions",
                "meta.k8s.io",
                "",
                vec![Cause::forbidden(
                    "force",
                    "may not be specified for non-apply patch",
                )],
            ));
        }
        if kind == PatchType::Strategic && resource.custom {
            return Err(ApiError::unsupported_media_type(
                "application/strategic-merge-patch+json",
                &PatchType::MEDIA_TYPES[..2]
                    .iter()
                    .chain(&PatchType::MEDIA_TYPES[3..])
                    .copied()
                    .collect::<Vec<_>>(),
            ));
        }
        self.update_loop(target, opts, |current| {
            let Some((old, rv)) = current else {
                return Err(ApiError::not_found(resource, &target.name));
            };
            let mut patched = old.clone();
            apply_patch(resource, kind, &mut patched, body).map_err(|e| match e {
                PatchError::Malformed(m) => ApiError::bad_request(m),
                PatchError::Unapplicable(m) => ApiError::invalid_kind(
                    &resource.kind,
                    &resource.group,
                    &target.name,
                    vec![Cause {
                        reason: "FieldValueInvalid",
                        message: m,
                        field: String::new(),
                    }],
                ),
            })?;
            let patched_rv = meta_str(&patched, "resourceVersion");
            if !patched_rv.is_empty() && patched_rv != rv.to_string() {
                return Err(ApiError::conflict_modified(resource, &target.name));
            }
            immutable_identity(resource, old, &patched)?;
            let patched = check_body(target, patched)?;
            Ok(Mutation::Update(patched, Ownership::Update))
        })
    }

    /// Server-side apply (`PATCH` with `application/apply-patch+yaml`).
    fn apply(
        &self,
        target: &Target,
        body: &[u8],
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        let resource = &target.resource;
        if !opts.manager_explicit || opts.manager.is_empty() {
            return Err(ApiError::invalid_kind(
                "PatchOptions",
                "meta.k8s.io",
                "",
                vec![Cause::required(
                    "fieldManager",
                    "is required for apply patch",
                )],
            ));
        }
        let config: Value = serde_norway::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        let mut config = check_body(target, config)?;
        let config_name = meta_str(&config, "name");
        if config_name != target.name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({config_name}) does not match the name on the URL ({})",
                target.name
            )));
        }
        default_keys(resource, &mut config);
        let now = now_timestamp();
        let apply = Apply {
            resource,
            manager: &opts.manager,
            part: target.part,
            force: opts.force,
            now: &now,
        };
        let conflict = |conflicts: Vec<crate::apply::Conflict>| {
            ApiError::apply_conflict(resource, &target.name, &conflicts)
        };
        self.update_loop(target, opts, |current| match current {
            None => {
                if target.part == Part::Status {
                    return Err(ApiError::not_found(resource, &target.name));
                }
                let live = json!({
                    "apiVersion": resource.api_version(),
                    "kind": resource.kind,
                    "metadata": {"name": target.name, "namespace": target.namespace},
                });
                let mut managed = ManagedFields::default();
                let merged = apply
                    .merge(&live, &config, &mut managed)
                    .map_err(conflict)?;
                let merged = check_body(target, merged)?;
                Ok(Mutation::Create(merged, Ownership::Applied(managed)))
            }
            Some((old, _)) => {
                let mut managed = ManagedFields::decode(old)
                    .map_err(|e| ApiError::internal(format!("stored managedFields: {e}")))?;
                let merged = apply.merge(old, &config, &mut managed).map_err(conflict)?;
                Ok(Mutation::Update(merged, Ownership::Applied(managed)))
            }
        })
    }

    /// Reads, mutates and commits until the commit lands on the version it read.
    pub(crate) fn update_loop(
        &self,
        target: &Target,
        opts: &WriteOptions,
        mutate: impl Fn(Option<(&Value, u64)>) -> Result<Mutation, ApiError>,
    ) -> Result<Written, ApiError> {
        let table = target.table();
        let key = target.key(&target.name);
        for _ in 0..MAX_ATTEMPTS {
            let current = self.store.get(&table, &key);
            // Everything up to the commit works on the version the request was sent to.
            let old = current
                .as_ref()
                .map(|c| target.resource.to_served(c.value()));
            let mutation = mutate(old.as_ref().zip(current.as_ref().map(|c| c.rv)))?;
            let result = match mutation {
                Mutation::Create(object, ownership) => {
                    let (prepared, warnings) =
                        self.prepare(target, opts, None, object, ownership)?;
                    self.commit_create(target, prepared, opts, warnings)
                }
                Mutation::Update(object, ownership) => {
                    let (Some(current), Some(old)) = (current.as_ref(), old.as_ref()) else {
                        return Err(ApiError::not_found(&target.resource, &target.name));
                    };
                    let (prepared, warnings) =
                        self.prepare(target, opts, Some(old), object, ownership)?;
                    if same_object(old, &prepared) {
                        return Ok(Written::unchanged(200, current.json.clone(), warnings));
                    }
                    self.commit_update(target, current.rv, prepared, opts, warnings)
                }
            };
            match result {
                Ok(written) => return Ok(written),
                Err(CommitError::Api(e)) => return Err(e),
                Err(CommitError::Retry) => continue,
            }
        }
        Err(ApiError::conflict(
            &target.resource,
            &target.name,
            "too many concurrent writes, please try again",
        ))
    }

    /// Fills in `metadata.name` (from `generateName` if needed) and validates it.
    fn assign_name(&self, target: &Target, object: &mut Value) -> Result<String, ApiError> {
        let resource = &target.resource;
        let mut name = meta_str(object, "name").to_string();
        if name.is_empty() {
            let prefix = meta_str(object, "generateName");
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    resource,
                    "",
                    vec![Cause::required(
                        "metadata.name",
                        "name or generateName is required",
                    )],
                ));
            }
            let prefix: String = prefix.chars().take(58).collect();
            name = format!("{prefix}{}", name_suffix());
            meta_mut(object).insert("name".to_string(), json!(name));
        }
        let errors = name_errors(&name, resource.name_rule);
        if !errors.is_empty() {
            let causes = errors
                .iter()
                .map(|e| Cause::invalid("metadata.name", &name, e))
                .collect();
            return Err(ApiError::invalid(resource, &name, causes));
        }
        Ok(name)
    }

    /// Validates and completes the object a write will store.
    fn prepare(
        &self,
        target: &Target,
        opts: &WriteOptions,
        old: Option<&Value>,
        new: Value,
        ownership: Ownership,
    ) -> Result<(Value, Vec<String>), ApiError> {
        let resource = &target.resource;
        let name = target.name.as_str();
        let checked = resource
            .schema
            .check_against(old, new)
            .map_err(|e| match e {
                SchemaError::Decode(message) => ApiError::bad_request(format!(
                    "{kind} in version \"{version}\" cannot be handled as a {kind}: {message}",
                    kind = resource.kind,
                    version = resource.version
                )),
                SchemaError::Invalid(causes) => ApiError::invalid(resource, name, causes),
            })?;
        let warnings = match opts.validation {
            FieldValidation::Strict if !checked.unknown.is_empty() => {
                let fields: Vec<String> = checked
                    .unknown
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect();
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: {}",
                    fields.join(", ")
                )));
            }
            FieldValidation::Warn => checked
                .unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect(),
            _ => Vec::new(),
        };
        let mut new = checked.value;
        let now = now_timestamp();

        // Server-owned metadata.
        let meta = meta_mut(&mut new);
        meta.remove("selfLink");
        match old {
            None => {
                meta.insert("uid".to_string(), json!(new_uid()));
                meta.insert("creationTimestamp".to_string(), json!(now));
                meta.remove("deletionTimestamp");
                meta.remove("deletionGracePeriodSeconds");
                meta.remove("resourceVersion");
                if resource.generation {
                    meta.insert("generation".to_string(), json!(1));
                } else {
                    meta.remove("generation");
                }
            }
            Some(old) => {
                for field in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                    "name",
                    "namespace",
                ] {
                    match old.get("metadata").and_then(|m| m.get(field)) {
                        Some(v) => meta.insert(field.to_string(), v.clone()),
                        None => meta.remove(field),
                    };
                }
            }
        }

        // Which part of the object this write may change.
        if resource.status_subresource {
            match (target.part, old) {
                (Part::Main, Some(old)) => match old.get("status") {
                    Some(status) if new.get("status") == Some(status) => {}
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        new.as_object_mut().map(|m| m.remove("status"));
                    }
                },
                (Part::Main, None) => {
                    new.as_object_mut().map(|m| m.remove("status"));
                    if !resource.custom && resource.kind == "Pod" {
                        new["status"] = json!({"phase": "Pending"});
                    }
                }
                (Part::Status, Some(old)) => {
                    let status = new.get("status").cloned();
                    let managed = new.pointer("/metadata/managedFields").cloned();
                    new = old.clone();
                    match status {
                        Some(status) => new["status"] = status,
                        None => {
                            new.as_object_mut().map(|m| m.remove("status"));
                        }
                    }
                    if let Some(managed) = managed {
                        meta_mut(&mut new).insert("managedFields".to_string(), managed);
                    }
                }
                (Part::Status, None) => return Err(ApiError::not_found(resource, name)),
            }
        }

        // What the kind's controllers, defaulting and storage would add.
        default_object(resource, &mut new);
        if services::is_service(resource) && target.part == Part::Main {
            self.allocator.complete(&self.store, old, &mut new)?;
        }
        if is_namespace(resource) {
            default_namespace(&mut new, name);
        }
        if is_crd(resource) {
            crd::resource_types(&new).map_err(|c| ApiError::invalid(resource, name, c))?;
            if target.part == Part::Main {
                new["status"] = crd::established_status(&new, &now);
            }
        }

        if let Some(old) = old {
            if is_deleting(old) {
                let before = finalizers(old);
                let added: Vec<String> = finalizers(&new)
                    .into_iter()
                    .filter(|f| !before.contains(f))
                    .collect();
                if !added.is_empty() {
                    return Err(ApiError::invalid(
                        resource,
                        name,
                        vec![Cause::forbidden(
                            "metadata.finalizers",
                            &format!(
                                "no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                            ),
                        )],
                    ));
                }
            }
            if resource.generation
                && generation_view(old, resource) != generation_view(&new, resource)
            {
                let generation = old
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                meta_mut(&mut new).insert("generation".to_string(), json!(generation + 1));
            }
        }

        // Field ownership.
        let write = Write {
            resource,
            manager: &opts.manager,
            part: target.part,
            now: &now,
        };
        let managed = match ownership {
            Ownership::Applied(managed) => managed,
            Ownership::Update => {
                let requested = new.pointer("/metadata/managedFields").cloned();
                let stored = old.and_then(|o| o.pointer("/metadata/managedFields").cloned());
                let explicit = matches!(&requested, Some(Value::Array(a)) if !a.is_empty())
                    && requested != stored;
                let source = if explicit {
                    &new
                } else {
                    old.unwrap_or(&Value::Null)
                };
                let mut managed = ManagedFields::decode(source).map_err(|e| {
                    ApiError::invalid(
                        resource,
                        name,
                        vec![Cause::invalid("metadata.managedFields", "", &e)],
                    )
                })?;
                let reset = explicit
                    && requested
                        .as_ref()
                        .and_then(Value::as_array)
                        .is_some_and(|a| {
                            a.iter()
                                .all(|e| e.as_object().is_some_and(|m| m.is_empty()))
                        });
                if !explicit || reset {
                    managed.record_update(&write, old, &new);
                }
                managed
            }
        };
        let meta = meta_mut(&mut new);
        if managed.0.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".to_string(), managed.encode());
        }
        Ok((new, warnings))
    }

    fn commit_create(
        &self,
        target: &Target,
        object: Value,
        opts: &WriteOptions,
        warnings: Vec<String>,
    ) -> Result<Written, CommitError> {
        let resource = &target.resource;
        let table = target.table();
        let key = target.key(&target.name);
        let object = resource.to_storage(object);
        let crd_types = crd_types(resource, &object);
        let dry_run = dry_run_body(opts, &object);
        let prepared = Prepared::new(object, &resource.selectable);
        self.store.write(|tx| {
            if resource.namespaced {
                check_namespace_open(tx, resource, &target.namespace, &target.name)?;
            }
            if tx.get(&table, &key).is_some() {
                return Err(CommitError::Api(ApiError::already_exists(
                    resource,
                    &target.name,
                )));
            }
            if let Some(body) = dry_run {
                return Ok(Written::unchanged(201, body, warnings));
            }
            let stored = tx.put_prepared(&table, prepared);
            if let Some((key, types)) = crd_types {
                self.with_registry(|r| r.set_custom(&key, types));
            }
            Ok(Written::committed(201, &stored, warnings))
        })
    }

    fn commit_update(
        &self,
        target: &Target,
        expected: u64,
        object: Value,
        opts: &WriteOptions,
        warnings: Vec<String>,
    ) -> Result<Written, CommitError> {
        let resource = &target.resource;
        let table = target.table();
        let key = target.key(&target.name);
        let object = resource.to_storage(object);
        let crd_types = crd_types(resource, &object);
        // Objects that may be finishing their deletion stay values (the transaction decides);
        // everything else is serialized before taking the lock.
        let may_finish = is_deleting(&object) && finalizers(&object).is_empty();
        let dry_run = dry_run_body(opts, &object);
        let pending = if may_finish {
            Pending::Value(object)
        } else {
            Pending::Prepared(Prepared::new(object, &resource.selectable))
        };
        self.store.write(|tx| {
            if tx.get(&table, &key).map(|o| o.rv) != Some(expected) {
                return Err(CommitError::Retry);
            }
            if let Some(body) = dry_run {
                return Ok(Written::unchanged(200, body, warnings));
            }
            let finished =
                may_finish && (!is_namespace(resource) || namespace_empty(tx, &target.name));
            let stored = if let (true, Pending::Value(object)) = (finished, &pending) {
                let types = self.types_by_table();
                let removed = tx
                    .remove(&table, &key, Some(object.clone()), &resource.selectable)
                    .ok_or(CommitError::Retry)?;
                if is_crd(resource)
                    && let Some((key, _)) = &crd_types
                {
                    remove_custom_objects(tx, key, &types);
                    self.with_registry(|r| r.remove_custom(key));
                }
                if resource.namespaced {
                    finish_namespace_if_empty(tx, &target.namespace, &types);
                }
                removed
            } else {
                let stored = match pending {
                    Pending::Prepared(prepared) => tx.put_prepared(&table, prepared),
                    Pending::Value(object) => tx.put(&table, object, &resource.selectable),
                };
                if let Some((key, types)) = crd_types {
                    self.with_registry(|r| r.set_custom(&key, types));
                }
                stored
            };
            Ok(Written::committed(200, &stored, warnings))
        })
    }

    /// `DELETE` of one object.
    pub fn delete(&self, target: &Target, opts: &DeleteOptions) -> Result<Written, ApiError> {
        let resource = &target.resource;
        let table = target.table();
        let key = target.key(&target.name);
        let types = self.types_by_table();
        for _ in 0..MAX_ATTEMPTS {
            let Some(current) = self.store.get(&table, &key) else {
                return Err(ApiError::not_found(resource, &target.name));
            };
            let old = current.value();
            check_preconditions(resource, &target.name, &old, opts)?;
            let now = now_timestamp();
            let result = self.store.write(|tx| -> Result<Written, CommitError> {
                if tx.get(&table, &key).map(|o| o.rv) != Some(current.rv) {
                    return Err(CommitError::Retry);
                }
                if opts.dry_run {
                    return Ok(Written::unchanged(200, current.json.clone(), Vec::new()));
                }
                if is_namespace(resource) {
                    return Ok(delete_namespace(tx, resource, &old, &now, &types));
                }
                if !finalizers(&old).is_empty() {
                    if is_deleting(&old) {
                        return Ok(Written::unchanged(200, current.json.clone(), Vec::new()));
                    }
                    let stored = tx.put(
                        &table,
                        mark_deleting(old.clone(), &now),
                        &resource.selectable,
                    );
                    return Ok(Written::committed(200, &stored, Vec::new()));
                }
                let removed = tx
                    .remove(&table, &key, None, &resource.selectable)
                    .ok_or(CommitError::Retry)?;
                if is_crd(resource)
                    && let Some(key) = crd::storage_key(&old)
                {
                    remove_custom_objects(tx, &key, &types);
                    self.with_registry(|r| r.remove_custom(&key));
                }
                if resource.namespaced {
                    finish_namespace_if_empty(tx, &target.namespace, &types);
                }
                let body = if resource.return_deleted {
                    removed.json.clone()
                } else {
                    let uid = meta_str(&old, "uid");
                    Bytes::from(
                        serde_json::to_vec(&success_status(resource, &target.name, uid))
                            .unwrap_or_default(),
                    )
                };
                Ok(Written {
                    code: 200,
                    body,
                    warnings: Vec::new(),
                    rv: Some(removed.rv),
                })
            });
            match result {
                Ok(written) => {
                    if is_crd(resource)
                        && written.rv.is_some()
                        && let Some(key) = crd::storage_key(&old)
                        && self.resolve_storage(&key).is_none()
                    {
                        self.store.drop_table(&key);
                    }
                    return Ok(written);
                }
                Err(CommitError::Api(e)) => return Err(e),
                Err(CommitError::Retry) => continue,
            }
        }
        Err(ApiError::conflict(
            resource,
            &target.name,
            "too many concurrent writes, please try again",
        ))
    }

    fn resolve_storage(&self, storage_key: &str) -> Option<Arc<ResourceType>> {
        self.registry().versions_of(storage_key).into_iter().next()
    }
}

/// `metadata.name` and `metadata.namespace` cannot change.
fn immutable_identity(resource: &ResourceType, old: &Value, new: &Value) -> Result<(), ApiError> {
    let name = meta_str(old, "name");
    let mut causes = Vec::new();
    for field in ["name", "namespace"] {
        let (before, after) = (meta_str(old, field), meta_str(new, field));
        if before != after && !(field == "namespace" && after.is_empty()) {
            causes.push(Cause::invalid(
                format!("metadata.{field}"),
                after,
                "field is immutable",
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(resource, name, causes))
    }
}

fn check_preconditions(
    resource: &ResourceType,
    name: &str,
    object: &Value,
    opts: &DeleteOptions,
) -> Result<(), ApiError> {
    if let Some(uid) = &opts.uid {
        let actual = meta_str(object, "uid");
        if uid != actual {
            return Err(ApiError::conflict(
                resource,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
            ));
        }
    }
    if let Some(rv) = &opts.resource_version {
        let actual = meta_str(object, "resourceVersion");
        if rv != actual {
            return Err(ApiError::conflict(
                resource,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                ),
            ));
        }
    }
    Ok(())
}

fn mark_deleting(mut object: Value, now: &str) -> Value {
    let meta = meta_mut(&mut object);
    meta.insert("deletionTimestamp".to_string(), json!(now));
    meta.insert("deletionGracePeriodSeconds".to_string(), json!(0));
    if let Some(generation) = meta
        .get("generation")
        .and_then(Value::as_i64)
        .filter(|g| *g > 0)
    {
        meta.insert("generation".to_string(), json!(generation + 1));
    }
    object
}

fn check_namespace_open(
    tx: &Tx<'_>,
    resource: &ResourceType,
    namespace: &str,
    name: &str,
) -> Result<(), CommitError> {
    match tx.get("namespaces", &ObjKey::new("", namespace)) {
        None => Err(CommitError::Api(ApiError::namespace_not_found(namespace))),
        Some(ns) if is_deleting(&ns.value()) => {
            let mut error = ApiError::forbidden(
                resource,
                name,
                &format!(
                    "unable to create new content in namespace {namespace} because it is being terminated"
                ),
            );
            if let Some(details) = &mut error.details {
                details["causes"] = json!([{
                    "reason": "NamespaceTerminating",
                    "message": format!("namespace {namespace} is being terminated"),
                    "field": "metadata.namespace"
                }]);
            }
            Err(CommitError::Api(error))
        }
        Some(_) => Ok(()),
    }
}

fn namespace_empty(tx: &Tx<'_>, namespace: &str) -> bool {
    tx.tables()
        .iter()
        .filter(|t| *t != "namespaces")
        .all(|t| tx.keys_in_namespace(t, namespace).is_empty())
}

/// Removes a terminating namespace once nothing is left in it.
fn finish_namespace_if_empty(
    tx: &mut Tx<'_>,
    namespace: &str,
    types: &std::collections::HashMap<String, Arc<ResourceType>>,
) {
    let key = ObjKey::new("", namespace);
    let Some(ns) = tx.get("namespaces", &key) else {
        return;
    };
    let ns = ns.value();
    if is_deleting(&ns)
        && finalizers(&ns).is_empty()
        && namespace_empty(tx, namespace)
        && let Some(t) = types.get("namespaces")
    {
        tx.remove("namespaces", &key, None, &t.selectable);
    }
}

/// Marks a namespace terminating, deletes its contents (objects with finalizers are marked
/// for deletion and stay until their finalizers are removed), and removes the namespace if
/// nothing is left.
fn delete_namespace(
    tx: &mut Tx<'_>,
    resource: &ResourceType,
    old: &Value,
    now: &str,
    types: &std::collections::HashMap<String, Arc<ResourceType>>,
) -> Written {
    let name = meta_str(old, "name").to_string();
    let ns_key = ObjKey::new("", &name);
    let mut rv = None;
    if !is_deleting(old) {
        let mut terminating = old.clone();
        let meta = meta_mut(&mut terminating);
        meta.insert("deletionTimestamp".to_string(), json!(now));
        meta.insert("deletionGracePeriodSeconds".to_string(), json!(0));
        terminating["status"] = json!({"phase": "Terminating"});
        rv = Some(tx.put("namespaces", terminating, &resource.selectable).rv);
    }
    for table in tx.tables() {
        if table == "namespaces" {
            continue;
        }
        let Some(t) = types.get(&table) else { continue };
        for key in tx.keys_in_namespace(&table, &name) {
            let Some(object) = tx.get(&table, &key) else {
                continue;
            };
            let value = object.value();
            if finalizers(&value).is_empty() {
                tx.remove(&table, &key, None, &t.selectable);
            } else if !is_deleting(&value) {
                tx.put(&table, mark_deleting(value, now), &t.selectable);
            }
        }
    }
    finish_namespace_if_empty(tx, &name, types);
    let body = match tx.get("namespaces", &ns_key) {
        Some(ns) => ns.json.clone(),
        None => {
            let mut gone = old.clone();
            meta_mut(&mut gone).insert("deletionTimestamp".to_string(), json!(now));
            gone["status"] = json!({"phase": "Terminating"});
            Bytes::from(serde_json::to_vec(&gone).unwrap_or_default())
        }
    };
    Written {
        code: 200,
        body,
        warnings: Vec::new(),
        rv: rv.or(Some(tx.current_rv())),
    }
}

/// Removes every object of a CRD's table (finalizers are not waited for: the kind is going).
fn remove_custom_objects(
    tx: &mut Tx<'_>,
    table: &str,
    types: &std::collections::HashMap<String, Arc<ResourceType>>,
) {
    let Some(t) = types.get(table) else { return };
    for key in tx.all_keys(table) {
        tx.remove(table, &key, None, &t.selectable);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::managed::Part;

    fn cluster() -> Cluster {
        Cluster::new(1000)
    }

    fn target(c: &Cluster, group: &str, plural: &str, namespace: &str, name: &str) -> Target {
        Target {
            resource: c.resolve(group, "v1", plural).unwrap(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            part: Part::Main,
        }
    }

    fn opts(manager: &str) -> WriteOptions {
        WriteOptions {
            manager: manager.to_string(),
            manager_explicit: true,
            ..WriteOptions::default()
        }
    }

    /// The object after `manager`'s merge patch of `target`.
    fn merged(c: &Cluster, target: &Target, patch: &[u8], manager: &str) -> Value {
        parse(
            &c.patch(target, PatchType::Merge, patch, &opts(manager))
                .unwrap(),
        )
    }

    /// A cluster with the namespace `team`, and the target of its configmaps.
    fn configmaps_in_team() -> (Cluster, Target) {
        let c = cluster();
        namespace(&c, "team");
        let cms = target(&c, "", "configmaps", "team", "");
        (c, cms)
    }

    fn configmap(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})
    }

    fn parse(w: &Written) -> Value {
        serde_json::from_slice(&w.body).unwrap()
    }

    fn namespace(c: &Cluster, name: &str) {
        c.create(
            &target(c, "", "namespaces", "", ""),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
            &opts("test"),
        )
        .unwrap();
    }

    #[test]
    fn creates_need_an_existing_namespace_and_a_unique_name() {
        let c = cluster();
        let cms = target(&c, "", "configmaps", "team", "");
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
        let error = c.create(&cms, cm.clone(), &opts("t")).unwrap_err();
        assert_eq!(
            (error.code, error.message.as_str()),
            (404, "namespaces \"team\" not found")
        );
        namespace(&c, "team");
        let created = parse(&c.create(&cms, cm.clone(), &opts("t")).unwrap());
        assert_eq!(created["metadata"]["namespace"], "team");
        assert_eq!(created["metadata"]["managedFields"][0]["manager"], "t");
        assert!(created["metadata"]["uid"].as_str().unwrap().len() == 36);
        let error = c.create(&cms, cm, &opts("t")).unwrap_err();
        assert_eq!(error.code, 409);
        assert_eq!(error.reason, "AlreadyExists");
        assert_eq!(c.store.len("configmaps"), 1);
    }

    #[test]
    fn generate_name_and_bad_names() {
        let (c, cms) = configmaps_in_team();
        let w = c
            .create(&cms, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "cfg-"}}), &opts("t"))
            .unwrap();
        let name = parse(&w)["metadata"]["name"].as_str().unwrap().to_string();
        assert!(name.starts_with("cfg-") && name.len() == 9, "{name}");
        let error = c
            .create(&cms, configmap("Bad_Name"), &opts("t"))
            .unwrap_err();
        assert_eq!(error.code, 422);
        assert!(error.message.starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{}", error.message);
        let error = c
            .create(
                &cms,
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
                &opts("t"),
            )
            .unwrap_err();
        assert_eq!(
            error.message,
            "ConfigMap \"\" is invalid: metadata.name: Required value: name or generateName is required"
        );
    }

    #[test]
    fn bodies_must_match_the_url() {
        let (c, cms) = configmaps_in_team();
        let cases = [
            (json!([1]), "couldn't get version/kind; json parse error"),
            (
                json!({"apiVersion": "v1", "metadata": {"name": "a"}}),
                "Object 'Kind' is missing",
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
                "the API version in the data (apps/v1) does not match the expected API version (v1)",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"}}),
                "the kind in the data (Secret)",
            ),
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "other"}}),
                "the namespace of the provided object does not match the namespace sent on the request",
            ),
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": 1}}),
                "ConfigMap in version \"v1\" cannot be handled as a ConfigMap",
            ),
        ];
        for (body, message) in cases {
            let error = c.create(&cms, body.clone(), &opts("t")).unwrap_err();
            assert_eq!(error.code, 400, "{body}");
            assert!(error.message.contains(message), "{body}: {}", error.message);
        }
        assert_eq!(c.store.len("configmaps"), 0, "nothing stored");
    }

    #[test]
    fn strict_validation_rejects_and_warn_drops_unknown_fields() {
        let (c, cms) = configmaps_in_team();
        let body =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "bogus": 1});
        let strict = WriteOptions {
            validation: FieldValidation::Strict,
            ..opts("t")
        };
        let error = c.create(&cms, body.clone(), &strict).unwrap_err();
        assert_eq!(
            error.message,
            "strict decoding error: unknown field \"bogus\""
        );
        let written = c.create(&cms, body, &opts("t")).unwrap();
        assert_eq!(written.warnings, vec!["unknown field \"bogus\""]);
        assert!(parse(&written).get("bogus").is_none());
    }

    #[test]
    fn updates_check_resource_version_and_skip_no_ops() {
        let (c, cms) = configmaps_in_team();
        let created = parse(&c.create(&cms, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "1"}}), &opts("t")).unwrap());
        let a = target(&c, "", "configmaps", "team", "a");
        let mut stale = created.clone();
        stale["metadata"]["resourceVersion"] = json!("1");
        stale["data"]["k"] = json!("2");
        let error = c.update(&a, stale, &opts("t")).unwrap_err();
        assert_eq!(error.code, 409);
        let same = c.update(&a, created.clone(), &opts("t")).unwrap();
        assert!(same.rv.is_none(), "no-op update does not write");
        assert_eq!(
            parse(&same)["metadata"]["resourceVersion"],
            created["metadata"]["resourceVersion"]
        );
        let mut changed = created.clone();
        changed["data"]["k"] = json!("2");
        let updated = parse(&c.update(&a, changed, &opts("u")).unwrap());
        assert_eq!(updated["data"]["k"], "2");
        assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
        let managers: Vec<&str> = updated["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, vec!["u"], "u took the only field t had");
        let mut renamed = created;
        renamed["metadata"]["name"] = json!("b");
        let error = c.update(&a, renamed, &opts("t")).unwrap_err();
        assert_eq!(
            error.message,
            "the name of the object (b) does not match the name on the URL (a)"
        );
    }

    #[test]
    fn finalizers_hold_deletion_until_removed() {
        let (c, cms) = configmaps_in_team();
        c.create(&cms, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "finalizers": ["x/y"]}}), &opts("t")).unwrap();
        let a = target(&c, "", "configmaps", "team", "a");
        let deleting = parse(&c.delete(&a, &DeleteOptions::default()).unwrap());
        assert!(deleting["metadata"]["deletionTimestamp"].is_string());
        assert_eq!(c.store.len("configmaps"), 1);
        let error = c
            .patch(
                &a,
                PatchType::Merge,
                br#"{"metadata":{"finalizers":["x/y","new/one"]}}"#,
                &opts("t"),
            )
            .unwrap_err();
        assert_eq!(error.code, 422);
        c.patch(
            &a,
            PatchType::Merge,
            br#"{"metadata":{"finalizers":null}}"#,
            &opts("t"),
        )
        .unwrap();
        assert_eq!(
            c.store.len("configmaps"),
            0,
            "gone once the last finalizer is removed"
        );
    }

    #[test]
    fn generation_moves_with_spec_only() {
        let c = cluster();
        namespace(&c, "team");
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
        let deployments = target(&c, "apps", "deployments", "team", "");
        let created = parse(&c.create(&deployments, deploy, &opts("t")).unwrap());
        assert_eq!(created["metadata"]["generation"], 1);
        assert!(created.get("status").is_none());
        let web = target(&c, "apps", "deployments", "team", "web");
        let labelled = merged(&c, &web, br#"{"metadata":{"labels":{"a":"b"}}}"#, "t");
        assert_eq!(labelled["metadata"]["generation"], 1);
        let status = Target {
            part: Part::Status,
            ..web.clone()
        };
        let with_status = merged(
            &c,
            &status,
            br#"{"status":{"replicas":3},"spec":{"replicas":9}}"#,
            "ctrl",
        );
        assert_eq!(with_status["status"]["replicas"], 3);
        assert_eq!(
            with_status["spec"]["replicas"], 1,
            "status writes ignore spec"
        );
        assert_eq!(with_status["metadata"]["generation"], 1);
        let scaled = merged(
            &c,
            &web,
            br#"{"spec":{"replicas":2},"status":{"replicas":0}}"#,
            "t",
        );
        assert_eq!(scaled["metadata"]["generation"], 2);
        assert_eq!(scaled["status"]["replicas"], 3, "spec writes ignore status");
    }

    #[test]
    fn namespace_deletion_cascades() {
        let (c, cms) = configmaps_in_team();
        c.create(&cms, configmap("a"), &opts("t")).unwrap();
        c.create(&cms, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["x/y"]}}), &opts("t")).unwrap();
        let ns = target(&c, "", "namespaces", "", "team");
        let terminating = parse(&c.delete(&ns, &DeleteOptions::default()).unwrap());
        assert_eq!(terminating["status"]["phase"], "Terminating");
        assert_eq!(c.store.len("configmaps"), 1, "held by its finalizer");
        let error = c.create(&cms, configmap("b"), &opts("t")).unwrap_err();
        assert_eq!(error.code, 403);
        assert!(error.message.contains("because it is being terminated"));
        let held = target(&c, "", "configmaps", "team", "held");
        c.patch(
            &held,
            PatchType::Json,
            br#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
            &opts("t"),
        )
        .unwrap();
        assert_eq!(c.store.len("configmaps"), 0);
        assert_eq!(
            c.store.len("namespaces"),
            0,
            "the namespace goes with its last object"
        );
    }

    #[test]
    fn no_op_detection_ignores_versions_and_ownership_times() {
        let old = json!({"metadata": {"name": "a", "resourceVersion": "1",
            "managedFields": [{"manager": "m", "time": "t1", "fieldsV1": {}}]}, "data": {"k": "v"}});
        let mut new = old.clone();
        new["metadata"]["resourceVersion"] = json!("2");
        new["metadata"]["managedFields"][0]["time"] = json!("t2");
        assert!(same_object(&old, &new));
        new["metadata"]["managedFields"][0]["manager"] = json!("other");
        assert!(!same_object(&old, &new));
        let mut changed = old.clone();
        changed["data"]["k"] = json!("w");
        assert!(!same_object(&old, &changed));
        let mut labelled = old.clone();
        labelled["metadata"]["labels"] = json!({});
        assert!(!same_object(&old, &labelled));
    }

    #[test]
    fn delete_preconditions() {
        let (c, cms) = configmaps_in_team();
        c.create(&cms, configmap("a"), &opts("t")).unwrap();
        let a = target(&c, "", "configmaps", "team", "a");
        let error = c
            .delete(
                &a,
                &DeleteOptions {
                    uid: Some("nope".into()),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert_eq!(error.code, 409);
        assert!(
            error
                .message
                .contains("Precondition failed: UID in precondition: nope")
        );
        let status: Value =
            serde_json::from_slice(&c.delete(&a, &DeleteOptions::default()).unwrap().body).unwrap();
        assert_eq!(status["status"], "Success");
        assert_eq!(
            c.delete(&a, &DeleteOptions::default()).unwrap_err().code,
            404
        );
    }
}
