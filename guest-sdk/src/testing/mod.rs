//! Unit-testing plugins on the native target, without Wasm or a cluster.
//!
//! On the native target the SDK's imports are served by the [`Harness`] running the code on
//! the current thread: a fake cache seeded from YAML or JSON fixtures (reads answer as the
//! host's cache does: label selectors, the `namespace`/`owner`/`label` indexes and indexes the
//! test declares with [`Harness::index`]), and a recorder of the writes, events and logs the
//! plugin made. Writes are applied to the fake cache, so reconciling again shows whether the
//! plugin is idempotent: a second reconcile of an unchanged object should record no writes.
//! Tests can also make the next call of an operation fail ([`Harness::fail_next`]) to exercise
//! a plugin's error paths.
//!
//! Each test builds its own harness; the harness is bound to the thread while it runs plugin
//! code, so tests run in parallel as usual. See the crate docs for a complete example and
//! `store` for what the fake cache does not model (permissions, budgets, field managers).
//!
//! ```
//! use trellis_guest::testing::Harness;
//! use trellis_guest::{Gvk, ErrorCode};
//!
//! let harness = Harness::new();
//! harness.seed_yaml("
//! apiVersion: v1
//! kind: ConfigMap
//! metadata: {namespace: a, name: settings, labels: {team: x}}
//! data: {mode: fast}
//! ").unwrap();
//! let cm = Gvk::new("", "v1", "ConfigMap");
//! let found: Vec<serde_json::Value> = harness
//!     .run(|| trellis_guest::list_as(&cm, "a", "team=x"))
//!     .unwrap();
//! assert_eq!(found[0]["data"]["mode"], "fast");
//!
//! harness.fail_next(trellis_guest::testing::Operation::Get, ErrorCode::Unavailable, "down");
//! let err = harness.run(|| trellis_guest::get_as::<serde_json::Value>(&cm, "a", "settings")).unwrap_err();
//! assert_eq!(err.to_string(), "get v1 ConfigMap a/settings: unavailable: down");
//! ```

mod merge;
mod records;
mod seed;
mod store;

use std::cell::RefCell;
use std::rc::Rc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use records::{LogLine, RecordedEvent, Write};
pub use seed::SeedError;
pub use store::IndexFn;

use crate::backend::HostError;
use crate::{Action, Error, ErrorCode, Gvk, Kind, ObjectKey, ObjectRef, Reconciler, Request};
use seed::Located;
use store::FakeCache;

/// An import, for [`Harness::fail_next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Get,
    List,
    Lookup,
    Apply,
    PatchStatus,
    Create,
    Delete,
    Event,
}

/// Everything a harness holds; the native backend reaches it through [`with_active`].
#[derive(Default)]
pub(crate) struct State {
    pub cache: FakeCache,
    pub writes: Vec<Write>,
    pub events: Vec<RecordedEvent>,
    pub logs: Vec<LogLine>,
    faults: Vec<(Operation, HostError)>,
    /// Host calls left before every call is `budget-exceeded`; `None`: unlimited.
    calls_left: Option<(u64, u64)>,
}

impl State {
    /// The failure a test queued for this operation, if any (first queued, first served).
    /// The failure this call gets instead of an answer: one a test queued for the operation
    /// (first queued, first served), else `budget-exceeded` once the call budget is spent.
    /// Every call that gets past this counts against the budget, as in the host.
    pub fn take_fault(&mut self, operation: Operation) -> Option<HostError> {
        if let Some(i) = self.faults.iter().position(|(op, _)| *op == operation) {
            return Some(self.faults.remove(i).1);
        }
        match &mut self.calls_left {
            Some((_, left @ 1..)) => {
                *left -= 1;
                None
            }
            Some((limit, 0)) => Some(HostError::new(
                ErrorCode::BudgetExceeded,
                format!("the budget of {limit} host calls is spent"),
            )),
            None => None,
        }
    }
}

thread_local! {
    static ACTIVE: RefCell<Option<Rc<RefCell<State>>>> = const { RefCell::new(None) };
}

/// Runs `f` on the state of the harness running code on this thread; `None` when there is none.
pub(crate) fn with_active<T>(f: impl FnOnce(&mut State) -> T) -> Option<T> {
    let state = ACTIVE.with(|active| active.borrow().clone())?;
    let mut state = state.borrow_mut();
    Some(f(&mut state))
}

/// Restores the previously active harness when a run ends, also when the plugin panics.
struct Activation(Option<Rc<RefCell<State>>>);

impl Drop for Activation {
    fn drop(&mut self) {
        let previous = self.0.take();
        ACTIVE.with(|active| *active.borrow_mut() = previous);
    }
}

/// A fake host for one test: see the [module docs](self).
#[derive(Default)]
pub struct Harness {
    state: Rc<RefCell<State>>,
}

impl Harness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Seeds objects from multi-document YAML (or a `kind: List`). On error nothing from this
    /// call is seeded.
    pub fn seed_yaml(&self, yaml: &str) -> Result<(), SeedError> {
        self.seed_all(seed::from_yaml(yaml)?)
    }

    /// Seeds objects from JSON: one object, an array of objects, or a `kind: List`.
    pub fn seed_json(&self, json: &str) -> Result<(), SeedError> {
        self.seed_all(seed::from_json(json)?)
    }

    /// Seeds one typed object (a k8s-openapi type, a CRD struct, a `serde_json::Value`).
    pub fn seed<T: Serialize>(&self, object: &T) -> Result<(), SeedError> {
        let object = serde_json::to_value(object).map_err(SeedError::Encode)?;
        self.seed_all(vec![Located {
            document: 1,
            item: None,
            object,
        }])
    }

    /// Validates every object first, so a bad fixture leaves the cache as it was. Seeding an
    /// object that is already in the cache is an error; use [`Harness::put`] to change one.
    fn seed_all(&self, objects: Vec<Located>) -> Result<(), SeedError> {
        let mut state = self.state.borrow_mut();
        let mut seen = std::collections::HashSet::new();
        for located in &objects {
            let target = store::identify(&located.object).map_err(|e| located.error(e))?;
            if state.cache.object(&target).is_some() || !seen.insert(target.clone()) {
                return Err(located.error(format!("{target} is seeded twice")));
            }
        }
        for located in objects {
            state
                .cache
                .put(located.object, false)
                .expect("validated above: identifiable and not yet stored");
        }
        Ok(())
    }

    /// Stores an object, replacing any with the same key: a test simulating someone else's
    /// change between two reconciles (a Pod becoming ready, a user editing a label).
    pub fn put<T: Serialize>(&self, object: &T) -> Result<(), SeedError> {
        let object = serde_json::to_value(object).map_err(SeedError::Encode)?;
        let located = Located {
            document: 1,
            item: None,
            object,
        };
        let mut state = self.state.borrow_mut();
        state
            .cache
            .put(located.object.clone(), true)
            .map(drop)
            .map_err(|e| located.error(e))
    }

    /// Removes an object, as if someone else deleted it; whether it was there.
    pub fn remove<'a>(
        &self,
        kind: &Gvk,
        namespace: impl Into<Option<&'a str>>,
        name: &str,
    ) -> bool {
        let target = ObjectRef::new(kind.clone(), ObjectKey::new(namespace, name));
        self.state.borrow_mut().cache.remove(&target).is_some()
    }

    /// Declares an index for a kind, as the host configuration would: `values` computes the
    /// index values of one object (its JSON). `lookup(kind, name, value)` then returns the
    /// objects of `kind` with `value` among their values. Index functions must not call the
    /// SDK.
    pub fn index(&self, kind: &Gvk, name: &str, values: impl Fn(&Value) -> Vec<String> + 'static) {
        self.state.borrow_mut().cache.register_index(
            kind.clone(),
            name.to_owned(),
            Box::new(values),
        );
    }

    /// Makes the next call of `operation` fail with this error, without doing anything (as the
    /// host does for `forbidden` or `budget-exceeded`). Queued failures are served in order.
    pub fn fail_next(&self, operation: Operation, code: ErrorCode, message: &str) {
        self.state
            .borrow_mut()
            .faults
            .push((operation, HostError::new(code, message)));
    }

    /// Limits the host calls (reads, writes, events; not logs) that succeed from now on, as
    /// the host's per-call budget does: after `calls` of them every call fails with
    /// `budget-exceeded` and does nothing. Counted across everything run on this harness.
    pub fn limit_host_calls(&self, calls: u64) {
        self.state.borrow_mut().calls_left = Some((calls, calls));
    }

    /// Runs `f` with this harness serving the SDK's imports on this thread.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        let previous = ACTIVE.with(|active| active.borrow_mut().replace(self.state.clone()));
        let _restore = Activation(previous);
        f()
    }

    /// Reconciles one key as the host would: the request carries the object the cache holds
    /// for it now (`None` when there is none, as after a delete).
    pub fn reconcile<'a, R: Reconciler>(
        &self,
        kind: &Gvk,
        namespace: impl Into<Option<&'a str>>,
        name: &str,
    ) -> Result<Action, Error> {
        let key = ObjectKey::new(namespace, name);
        let object_json = self
            .state
            .borrow()
            .cache
            .get(kind, &key)
            .map(|o| serde_json::to_string(&o).expect("a serde_json::Value always serializes"));
        let request = Request {
            kind: kind.clone(),
            key,
            object_json,
        };
        self.run(|| R::reconcile(request))
    }

    /// The object the fake cache holds now, as JSON.
    pub fn object<'a>(
        &self,
        kind: &Gvk,
        namespace: impl Into<Option<&'a str>>,
        name: &str,
    ) -> Option<Value> {
        self.state
            .borrow()
            .cache
            .get(kind, &ObjectKey::new(namespace, name))
    }

    /// The object the fake cache holds now, decoded (panics if it does not decode as `K`:
    /// this is for assertions).
    pub fn get<'a, K: Kind + DeserializeOwned>(
        &self,
        namespace: impl Into<Option<&'a str>>,
        name: &str,
    ) -> Option<K> {
        self.object(&K::gvk(), namespace, name).map(|o| {
            serde_json::from_value(o)
                .unwrap_or_else(|e| panic!("the cached {} does not decode: {e}", K::gvk()))
        })
    }

    /// Every object of a kind, ordered by namespace then name.
    pub fn objects(&self, kind: &Gvk) -> Vec<Value> {
        self.state
            .borrow()
            .cache
            .objects_of(kind)
            .cloned()
            .collect()
    }

    /// The writes recorded since the harness was made or last cleared.
    pub fn writes(&self) -> Vec<Write> {
        self.state.borrow().writes.clone()
    }

    pub fn events(&self) -> Vec<RecordedEvent> {
        self.state.borrow().events.clone()
    }

    pub fn logs(&self) -> Vec<LogLine> {
        self.state.borrow().logs.clone()
    }

    /// Forgets recorded writes, events and logs (not the cache, not queued failures): the
    /// usual step between a first and a second reconcile.
    pub fn clear_records(&self) {
        let mut state = self.state.borrow_mut();
        state.writes.clear();
        state.events.clear();
        state.logs.clear();
    }
}

#[cfg(test)]
mod tests;
