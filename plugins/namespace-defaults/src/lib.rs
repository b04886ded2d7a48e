//! Namespace defaults: every Namespace labelled `trellis.dev/defaults=enabled` gets a
//! default-deny NetworkPolicy and a ResourceQuota, tuned by the Namespace's annotations.
//!
//! The plugin is a pure function of the Namespace and what the cache holds: it computes the
//! two objects, server-side applies each one only when the cache does not already show it as
//! desired (so a reconcile of an unchanged Namespace writes nothing, and its own writes do not
//! re-trigger it), and deletes them again when the label goes away. See README.md for the
//! label, the annotations and the host configuration it needs.

mod objects;
mod quantity;
mod settings;

use trellis_guest::k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use trellis_guest::k8s_openapi::api::networking::v1::NetworkPolicy;
use trellis_guest::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use trellis_guest::{Action, Applied, Error, EventType, Kind, ObjectRef, Reconciler, Request};

pub use objects::{MANAGED_BY, MANAGED_BY_LABEL, POLICY_NAME, QUOTA_NAME};
pub use settings::{DEFAULT_QUOTA, DENY_ANNOTATION, ENABLE_LABEL, ENABLED, QUOTA_ANNOTATION};

use settings::Settings;

pub struct NamespaceDefaults;

impl Reconciler for NamespaceDefaults {
    fn reconcile(request: Request) -> Result<Action, Error> {
        let Some(namespace) = request.object::<Namespace>()? else {
            // Deleted: the namespace's objects go with it.
            return Ok(Action::done());
        };
        let name = request.name();
        let about = request.object_ref();
        if is_terminating(&namespace) {
            // The server refuses new objects in a terminating namespace; nothing to do.
            return Ok(Action::done());
        }
        if !settings::enabled(namespace.metadata.labels.as_ref()) {
            return remove_defaults(name, &about);
        }
        let settings = Settings::from_annotations(namespace.metadata.annotations.as_ref())
            .map_err(|e| {
                trellis_guest::event(
                    &about,
                    EventType::Warning,
                    "InvalidDefaults",
                    &e.to_string(),
                );
                Error::permanent(e.to_string())
            })?;

        let policy =
            trellis_guest::apply_if_changed(&objects::network_policy(name, settings.deny))?;
        let quota = ensure_quota(name, &settings)?;
        let changes: Vec<Change> = [
            Change::of("NetworkPolicy", POLICY_NAME, &policy),
            Change::of("ResourceQuota", QUOTA_NAME, &quota),
        ]
        .into_iter()
        .flatten()
        .collect();
        report(&about, &changes);
        Ok(Action::done())
    }
}

fn is_terminating(namespace: &Namespace) -> bool {
    namespace.metadata.deletion_timestamp.is_some()
        || namespace.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
}

/// Applies the quota unless the cache shows it as desired. Not `apply_if_changed`: quantities
/// must be compared as numbers and a dropped resource is a change (see `quota_matches`).
fn ensure_quota(namespace: &str, settings: &Settings) -> Result<Applied<ResourceQuota>, Error> {
    let current = trellis_guest::get::<ResourceQuota>(namespace, QUOTA_NAME)?;
    if let Some(current) = current.as_ref()
        && objects::quota_matches(current, &settings.quota)
    {
        return Ok(Applied::Unchanged(current.clone()));
    }
    let applied = trellis_guest::apply(&objects::resource_quota(namespace, &settings.quota))?;
    Ok(match current {
        Some(_) => Applied::Updated(applied),
        None => Applied::Created(applied),
    })
}

/// A write this reconcile made to one owned object.
struct Change {
    created: bool,
    description: String,
}

impl Change {
    fn of<K>(kind: &str, name: &str, applied: &Applied<K>) -> Option<Change> {
        let created = match applied {
            Applied::Created(_) => true,
            Applied::Updated(_) => false,
            Applied::Unchanged(_) => return None,
        };
        let verb = if created { "created" } else { "updated" };
        Some(Change {
            created,
            description: format!("{verb} {kind} {name}"),
        })
    }
}

/// One Event per reconcile that wrote something: `DefaultsCreated` when anything was created,
/// `DefaultsUpdated` otherwise, with every change in the note.
fn report(about: &ObjectRef, changes: &[Change]) {
    if changes.is_empty() {
        return;
    }
    let reason = if changes.iter().any(|c| c.created) {
        "DefaultsCreated"
    } else {
        "DefaultsUpdated"
    };
    let note: Vec<&str> = changes.iter().map(|c| c.description.as_str()).collect();
    trellis_guest::info!(changes = note.join(", "), "{reason}");
    trellis_guest::event(about, EventType::Normal, reason, &note.join("; "));
}

/// The label is gone: delete the objects this plugin made (never same-named objects someone
/// else made). An object already gone is fine.
fn remove_defaults(namespace: &str, about: &ObjectRef) -> Result<Action, Error> {
    let mut removed = Vec::new();
    let policy = trellis_guest::get::<NetworkPolicy>(namespace, POLICY_NAME)?;
    if delete_if_managed::<NetworkPolicy>(
        namespace,
        POLICY_NAME,
        policy.as_ref().map(|p| &p.metadata),
    )? {
        removed.push(format!("NetworkPolicy {POLICY_NAME}"));
    }
    let quota = trellis_guest::get::<ResourceQuota>(namespace, QUOTA_NAME)?;
    if delete_if_managed::<ResourceQuota>(
        namespace,
        QUOTA_NAME,
        quota.as_ref().map(|q| &q.metadata),
    )? {
        removed.push(format!("ResourceQuota {QUOTA_NAME}"));
    }
    if !removed.is_empty() {
        let note = format!(
            "label {ENABLE_LABEL}={ENABLED} removed: deleted {}",
            removed.join(", ")
        );
        trellis_guest::event(about, EventType::Normal, "DefaultsRemoved", &note);
    }
    Ok(Action::done())
}

fn delete_if_managed<K: Kind>(
    namespace: &str,
    name: &str,
    metadata: Option<&ObjectMeta>,
) -> Result<bool, Error> {
    if !metadata.is_some_and(objects::is_managed) {
        return Ok(false);
    }
    match trellis_guest::delete::<K>(namespace, name) {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

trellis_guest::export_plugin!(NamespaceDefaults);
