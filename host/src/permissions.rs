//! What a plugin may read and write: DESIGN invariant 5, as data.
//!
//! A plugin's config carries one [`Permissions`]. Four parts of the host read it and must agree,
//! which is why it lives in its own module rather than in any one of them:
//! - `ops::config` checks it at load (grants name real kinds, reads are covered by watches);
//! - `hostcalls` asks [`Permissions::may_read`] / [`Permissions::may_write`] before every cache
//!   read and every write a guest asks for;
//! - `ops::rbac` turns it into the least-privilege RBAC rules the host's ServiceAccount needs;
//! - `ops::check` reports grants that no watch covers.
//!
//! Grants are allow-lists: nothing is granted unless listed. A grant with no namespaces covers
//! every namespace and cluster-scoped objects; a grant with namespaces covers only objects in
//! those namespaces (never cluster-scoped ones). Events are separate: a plugin may emit Events
//! about objects it may read unless `events: false`.
//!
//! YAML shape (camelCase, like every Kubernetes-facing config):
//! ```yaml
//! permissions:
//!   read:
//!     - { apiVersion: v1, kind: Namespace }
//!     - { apiVersion: v1, kind: Pod, namespaces: [team-a] }
//!   write:
//!     - apiVersion: networking.k8s.io/v1
//!       kind: NetworkPolicy
//!       verbs: [apply, delete]
//!   events: true
//! ```
//!
//! A grant may also name its kind's resource (`plural: cacti`), which only `trellis rbac` reads:
//! needed for CRDs whose plural is not the regular English plural of their kind.

use serde::{Deserialize, Serialize};

use crate::cache::Gvk;

/// A write a guest can ask the host for; one per WIT `writes` function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Verb {
    /// `writes.apply`: server-side apply with the plugin's field manager (creates or updates).
    Apply,
    /// `writes.create`.
    Create,
    /// `writes.delete`.
    Delete,
    /// `writes.patch-status`: a merge patch of the status subresource.
    PatchStatus,
}

impl Verb {
    pub const ALL: [Verb; 4] = [Verb::Apply, Verb::Create, Verb::Delete, Verb::PatchStatus];

    /// The name used in config and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Apply => "apply",
            Verb::Create => "create",
            Verb::Delete => "delete",
            Verb::PatchStatus => "patchStatus",
        }
    }
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which namespaces a grant covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Every namespace, and cluster-scoped objects.
    All,
    /// Only objects in these namespaces.
    Namespaces(&'a [String]),
}

impl Scope<'_> {
    /// Does the scope cover an object in `namespace` (`None` = cluster-scoped)?
    pub fn covers(&self, namespace: Option<&str>) -> bool {
        match (self, namespace) {
            (Scope::All, _) => true,
            (Scope::Namespaces(list), Some(ns)) => list.iter().any(|n| n == ns),
            (Scope::Namespaces(_), None) => false,
        }
    }
}

/// Read access to one kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadGrant {
    pub api_version: String,
    pub kind: String,
    /// Empty: all namespaces and cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// The kind's resource name (`networkpolicies`), for `trellis rbac` only: needed when it is
    /// not the regular English plural of the kind, as for some CRDs. None: derived from `kind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plural: Option<String>,
}

/// Write access to one kind, for some verbs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WriteGrant {
    pub api_version: String,
    pub kind: String,
    pub verbs: Vec<Verb>,
    /// Empty: all namespaces and cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// As [`ReadGrant::plural`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plural: Option<String>,
}

/// Everything one plugin is granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Permissions {
    #[serde(default)]
    pub read: Vec<ReadGrant>,
    #[serde(default)]
    pub write: Vec<WriteGrant>,
    /// May the plugin emit Events (about objects it may read)? Default true: Events are how a
    /// controller tells users what it did, and they cannot change any object.
    #[serde(default = "yes")]
    pub events: bool,
}

fn yes() -> bool {
    true
}

impl Default for Permissions {
    /// Nothing granted but Events (which need a readable object anyway).
    fn default() -> Self {
        Self {
            read: Vec::new(),
            write: Vec::new(),
            events: true,
        }
    }
}

fn same_kind(api_version: &str, kind: &str, gvk: &Gvk) -> bool {
    *gvk == Gvk::from_api_version(api_version, kind)
}

impl ReadGrant {
    pub fn gvk(&self) -> Gvk {
        Gvk::from_api_version(&self.api_version, &self.kind)
    }

    pub fn scope(&self) -> Scope<'_> {
        scope_of(&self.namespaces)
    }
}

impl WriteGrant {
    pub fn gvk(&self) -> Gvk {
        Gvk::from_api_version(&self.api_version, &self.kind)
    }

    pub fn scope(&self) -> Scope<'_> {
        scope_of(&self.namespaces)
    }
}

fn scope_of(namespaces: &[String]) -> Scope<'_> {
    if namespaces.is_empty() {
        Scope::All
    } else {
        Scope::Namespaces(namespaces)
    }
}

impl Permissions {
    /// The read scope granted for `kind`, or `None` when the kind may not be read at all.
    /// Several grants for one kind are not merged: config validation rejects duplicates.
    pub fn read_scope(&self, kind: &Gvk) -> Option<Scope<'_>> {
        self.read
            .iter()
            .find(|g| same_kind(&g.api_version, &g.kind, kind))
            .map(ReadGrant::scope)
    }

    /// May the plugin read an object of `kind` in `namespace` (`None` = cluster-scoped)?
    pub fn may_read(&self, kind: &Gvk, namespace: Option<&str>) -> bool {
        self.read_scope(kind).is_some_and(|s| s.covers(namespace))
    }

    /// May the plugin do `verb` on an object of `kind` in `namespace`?
    pub fn may_write(&self, verb: Verb, kind: &Gvk, namespace: Option<&str>) -> bool {
        self.write.iter().any(|g| {
            same_kind(&g.api_version, &g.kind, kind)
                && g.verbs.contains(&verb)
                && g.scope().covers(namespace)
        })
    }

    /// May the plugin emit an Event about an object of `kind` in `namespace`?
    pub fn may_emit_event(&self, kind: &Gvk, namespace: Option<&str>) -> bool {
        self.events && self.may_read(kind, namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permissions(yaml: &str) -> Permissions {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn nothing_is_granted_unless_listed() {
        let p = Permissions::default();
        let pod = Gvk::new("", "v1", "Pod");
        assert!(!p.may_read(&pod, Some("a")));
        assert!(!p.may_write(Verb::Apply, &pod, Some("a")));
        assert!(!p.may_emit_event(&pod, Some("a")));
    }

    #[test]
    fn a_grant_without_namespaces_covers_all_and_cluster_scoped() {
        let p = permissions("read: [{apiVersion: v1, kind: Namespace}]");
        let ns = Gvk::new("", "v1", "Namespace");
        assert!(p.may_read(&ns, None));
        assert!(p.may_read(&ns, Some("any")));
        assert_eq!(p.read_scope(&ns), Some(Scope::All));
        assert!(p.may_emit_event(&ns, None));
    }

    #[test]
    fn a_namespaced_grant_covers_only_its_namespaces() {
        let p = permissions("read: [{apiVersion: v1, kind: Pod, namespaces: [a, b]}]");
        let pod = Gvk::new("", "v1", "Pod");
        assert!(p.may_read(&pod, Some("a")));
        assert!(p.may_read(&pod, Some("b")));
        assert!(!p.may_read(&pod, Some("c")));
        assert!(
            !p.may_read(&pod, None),
            "cluster-scoped is not in any namespace"
        );
    }

    #[test]
    fn kinds_match_on_group_version_and_kind() {
        let p = permissions("read: [{apiVersion: apps/v1, kind: Deployment}]");
        assert!(p.may_read(&Gvk::new("apps", "v1", "Deployment"), Some("a")));
        assert!(!p.may_read(&Gvk::new("apps", "v1beta1", "Deployment"), Some("a")));
        assert!(!p.may_read(&Gvk::new("extensions", "v1", "Deployment"), Some("a")));
        assert!(!p.may_read(&Gvk::new("apps", "v1", "ReplicaSet"), Some("a")));
    }

    #[test]
    fn writes_need_the_verb_the_kind_and_the_namespace() {
        let p = permissions(
            "write:\n- {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, verbs: [apply], namespaces: [a]}\n",
        );
        let np = Gvk::new("networking.k8s.io", "v1", "NetworkPolicy");
        assert!(p.may_write(Verb::Apply, &np, Some("a")));
        assert!(!p.may_write(Verb::Delete, &np, Some("a")));
        assert!(!p.may_write(Verb::Apply, &np, Some("b")));
        assert!(!p.may_write(Verb::Apply, &Gvk::new("", "v1", "ResourceQuota"), Some("a")));
    }

    #[test]
    fn a_plural_is_optional_and_only_names_the_resource() {
        let p = permissions(
            "read: [{apiVersion: example.com/v1, kind: Cactus, plural: cacti}]\n\
             write: [{apiVersion: example.com/v1, kind: Cactus, verbs: [create]}]",
        );
        assert_eq!(p.read[0].plural.as_deref(), Some("cacti"));
        assert_eq!(p.write[0].plural, None);
        let cactus = Gvk::new("example.com", "v1", "Cactus");
        assert!(p.may_read(&cactus, Some("a")));
        assert!(p.may_write(Verb::Create, &cactus, Some("a")));
    }

    #[test]
    fn events_can_be_turned_off() {
        let p = permissions("read: [{apiVersion: v1, kind: Pod}]\nevents: false");
        assert!(!p.may_emit_event(&Gvk::new("", "v1", "Pod"), Some("a")));
    }

    #[test]
    fn unknown_fields_and_verbs_are_rejected() {
        let typo = serde_norway::from_str::<Permissions>("reads: []").unwrap_err();
        assert!(typo.to_string().contains("reads"), "{typo}");
        let verb = serde_norway::from_str::<Permissions>(
            "write: [{apiVersion: v1, kind: Pod, verbs: [update]}]",
        )
        .unwrap_err();
        assert!(verb.to_string().contains("update"), "{verb}");
    }
}
