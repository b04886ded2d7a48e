//! An in-memory `PluginHost` for the sandbox tests: a test double for the cache and API server
//! that issue 6's `hostcalls` provides. Deliberately small and obviously correct — the sandbox
//! is what is under test — and instrumented: it counts how often each method was reached, so
//! tests can prove that calls refused by a budget never reach the implementation.
//!
//! Objects are JSON strings keyed by (kind, namespace, name). A `get` of an object named
//! [`SLOW`] waits for an hour (the slow host call the deadline must cut short). It ignores the
//! `max_bytes` hint on purpose: the sandbox must enforce the budget even against a host that
//! builds the whole answer.

#![allow(dead_code)] // each test binary uses a different part of it

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use trellis_host::sandbox::{
    ErrorCode, EventType, Gvk, HostError, Level, LogRecord, ObjectKey, PluginHost, async_trait,
};

/// The name whose `get` never answers in time.
pub const SLOW: &str = "slow";

type Key = (String, Option<String>, String);

fn key(kind: &Gvk, namespace: Option<&str>, name: &str) -> Key {
    (
        format!("{}/{}/{}", kind.group, kind.version, kind.kind),
        namespace.map(str::to_string),
        name.to_string(),
    )
}

/// How often each method was reached.
#[derive(Debug, Default)]
pub struct Reached {
    pub get: AtomicU64,
    pub list: AtomicU64,
    pub lookup: AtomicU64,
    pub apply: AtomicU64,
    pub patch_status: AtomicU64,
    pub create: AtomicU64,
    pub delete: AtomicU64,
    pub emit_event: AtomicU64,
    pub log: AtomicU64,
}

fn hit(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::SeqCst);
}

pub fn count(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::SeqCst)
}

/// A log line as the host received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub level: Level,
    pub message: String,
    pub fields: Vec<(String, String)>,
    pub truncated: bool,
}

#[derive(Default)]
pub struct FakeHost {
    objects: Mutex<BTreeMap<Key, String>>,
    pub reached: Reached,
    pub logs: Mutex<Vec<Logged>>,
    pub writes: Mutex<Vec<String>>,
}

impl FakeHost {
    pub fn new() -> Self {
        Self::default()
    }

    /// Seeds an object (JSON with apiVersion, kind, metadata.name, optional namespace).
    pub fn seed(&self, object: &Value) {
        let (kind, namespace, name) = identity(object).expect("seeded objects are well formed");
        self.objects
            .lock()
            .unwrap()
            .insert(key(&kind, namespace.as_deref(), &name), object.to_string());
    }

    pub fn logs(&self) -> Vec<Logged> {
        self.logs.lock().unwrap().clone()
    }
}

fn invalid(message: impl Into<String>) -> HostError {
    HostError::new(ErrorCode::Invalid, message)
}

/// (kind, namespace, name) of a JSON object, or `invalid` naming what is missing.
fn identity(object: &Value) -> Result<(Gvk, Option<String>, String), HostError> {
    let text = |v: Option<&Value>, what: &str| {
        v.and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| invalid(format!("{what} is missing")))
    };
    let api_version = text(object.get("apiVersion"), "apiVersion")?;
    let kind = text(object.get("kind"), "kind")?;
    let metadata = object.get("metadata");
    let name = text(metadata.and_then(|m| m.get("name")), "metadata.name")?;
    let namespace = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version),
    };
    Ok((
        Gvk {
            group,
            version,
            kind,
        },
        namespace,
        name,
    ))
}

fn parse(text: &str) -> Result<Value, HostError> {
    serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))
}

impl FakeHost {
    fn of_kind_in(&self, kind: &Gvk, namespace: Option<&str>) -> Vec<String> {
        let (kind, _, _) = key(kind, None, "");
        self.objects
            .lock()
            .unwrap()
            .iter()
            .filter(|((k, ns, _), _)| {
                *k == kind && (namespace.is_none() || ns.as_deref() == namespace)
            })
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn store(&self, object: &str) -> Result<String, HostError> {
        let value = parse(object)?;
        let (kind, namespace, name) = identity(&value)?;
        self.objects
            .lock()
            .unwrap()
            .insert(key(&kind, namespace.as_deref(), &name), value.to_string());
        self.writes.lock().unwrap().push(value.to_string());
        Ok(value.to_string())
    }
}

#[async_trait]
impl PluginHost for FakeHost {
    async fn get(&self, kind: &Gvk, key_: &ObjectKey) -> Result<Option<String>, HostError> {
        hit(&self.reached.get);
        if key_.name == SLOW {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        let k = key(kind, key_.namespace.as_deref(), &key_.name);
        Ok(self.objects.lock().unwrap().get(&k).cloned())
    }

    async fn list(
        &self,
        kind: &Gvk,
        namespace: Option<&str>,
        label_selector: Option<&str>,
        _max_bytes: u64,
    ) -> Result<Vec<String>, HostError> {
        hit(&self.reached.list);
        if label_selector.is_some() {
            return Err(invalid("the fake host supports no label selectors"));
        }
        Ok(self.of_kind_in(kind, namespace))
    }

    async fn lookup(
        &self,
        kind: &Gvk,
        index: &str,
        value: &str,
        _max_bytes: u64,
    ) -> Result<Vec<String>, HostError> {
        hit(&self.reached.lookup);
        if index != "namespace" {
            return Err(HostError::new(
                ErrorCode::NotFound,
                format!("no index {index}"),
            ));
        }
        Ok(self.of_kind_in(kind, Some(value)))
    }

    async fn apply(&self, object: &str, _force: bool) -> Result<String, HostError> {
        hit(&self.reached.apply);
        self.store(object)
    }

    async fn patch_status(
        &self,
        kind: &Gvk,
        key_: &ObjectKey,
        merge_patch: &str,
    ) -> Result<String, HostError> {
        hit(&self.reached.patch_status);
        parse(merge_patch)?;
        let k = key(kind, key_.namespace.as_deref(), &key_.name);
        self.objects
            .lock()
            .unwrap()
            .get(&k)
            .cloned()
            .ok_or_else(|| HostError::new(ErrorCode::NotFound, "no such object"))
    }

    async fn create(&self, object: &str) -> Result<String, HostError> {
        hit(&self.reached.create);
        self.store(object)
    }

    async fn delete(&self, kind: &Gvk, key_: &ObjectKey) -> Result<(), HostError> {
        hit(&self.reached.delete);
        let k = key(kind, key_.namespace.as_deref(), &key_.name);
        match self.objects.lock().unwrap().remove(&k) {
            Some(_) => Ok(()),
            None => Err(HostError::new(ErrorCode::NotFound, "no such object")),
        }
    }

    async fn emit_event(
        &self,
        _kind: &Gvk,
        _regarding: &ObjectKey,
        _event_type: EventType,
        _reason: &str,
        _note: &str,
    ) -> Result<(), HostError> {
        hit(&self.reached.emit_event);
        Ok(())
    }

    fn log(&self, record: &LogRecord<'_>) {
        hit(&self.reached.log);
        self.logs.lock().unwrap().push(Logged {
            level: record.level,
            message: record.message.to_string(),
            fields: record.fields.to_vec(),
            truncated: record.truncated,
        });
    }
}
