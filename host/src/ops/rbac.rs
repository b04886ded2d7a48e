//! Least-privilege RBAC for a config (`trellis rbac -c FILE`, issue 6).
//!
//! The host's ServiceAccount needs exactly what the config makes the host do, and nothing
//! else:
//! - every watch: `get`, `list`, `watch` on its kind, in each watched namespace (a Role there)
//!   or cluster-wide (the ClusterRole) when it watches all namespaces or a cluster-scoped kind;
//! - every write grant, in its namespaces or cluster-wide: `apply` is `patch` plus `create`
//!   (server-side apply of a missing object creates it), `create` is `create`, `delete` is
//!   `delete`, `patchStatus` is `patch` on `<plural>/status`;
//! - Events (when a plugin may emit them): `create` and `patch` on `events.events.k8s.io`
//!   wherever the plugin may read (an Event lives in its object's namespace; cluster-scoped
//!   objects' Events in `default`, which only a cluster-wide read grant reaches);
//! - leader election (when configured): `get` and `update` on the one Lease by name, and
//!   `create` (which RBAC cannot restrict by name), in the lease's namespace.
//!
//! A namespaced rule already granted cluster-wide is left out. Output is sorted (ClusterRole
//! first, then one Role per namespace in name order; rules by API group, resource and name;
//! verbs alphabetically), so a rendered file diffs cleanly in review.
//!
//! Resource names come from `plural:` on a grant of the kind when there is one, else from
//! kube's pluralizer (`ApiResource::from_gvk`), which is right for every built-in kind and for
//! CRDs with regular plurals; a CRD with an irregular plural needs `plural:`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, GroupVersionKind};

use crate::cache::Gvk;
use crate::ops::config::Config;
use crate::permissions::{Scope, Verb};

/// Whom the rules are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbacOptions {
    /// The host's ServiceAccount.
    pub service_account: String,
    /// Its namespace (also the lease's, when the config leaves `leaseNamespace` out).
    pub namespace: String,
}

impl Default for RbacOptions {
    fn default() -> Self {
        Self {
            service_account: "trellis".into(),
            namespace: "trellis-system".into(),
        }
    }
}

impl RbacOptions {
    /// The name of every ClusterRole, Role and binding rendered:
    /// `trellis:<namespace>:<service account>` (unique per ServiceAccount, also cluster-wide).
    pub fn object_name(&self) -> String {
        format!("trellis:{}:{}", self.namespace, self.service_account)
    }
}

/// One resource (or one named object of it) in an API group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Resource {
    group: String,
    /// `pods`, `deployments/status`.
    resource: String,
    /// RBAC's `resourceNames`: the rule covers only this object.
    name: Option<String>,
}

type Rules = BTreeMap<Resource, BTreeSet<&'static str>>;

/// The rules a config needs: cluster-wide and per namespace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rbac {
    /// Rules for the ClusterRole (empty: none is needed).
    pub cluster: Vec<PolicyRule>,
    /// Rules for a Role in each namespace, by namespace.
    pub namespaces: BTreeMap<String, Vec<PolicyRule>>,
}

const READ: [&str; 3] = ["get", "list", "watch"];

/// The rules `config` needs, least privilege.
pub fn rules(config: &Config, options: &RbacOptions) -> Rbac {
    let mut collector = Collector::default();
    let plural = |gvk: &Gvk| plural(config, gvk);
    for plugin in &config.plugins {
        for watch in plugin.watches() {
            let resource = Resource::of(watch.kind(), plural(watch.kind()));
            collector.add(watch.namespaces(), resource, &READ);
        }
        for grant in &plugin.permissions.write {
            let gvk = grant.gvk();
            for verb in &grant.verbs {
                let (suffix, verbs): (&str, &[&'static str]) = match verb {
                    Verb::Apply => ("", &["create", "patch"]),
                    Verb::Create => ("", &["create"]),
                    Verb::Delete => ("", &["delete"]),
                    Verb::PatchStatus => ("/status", &["patch"]),
                };
                let resource = Resource::of(&gvk, plural(&gvk) + suffix);
                collector.add(&grant.namespaces, resource, verbs);
            }
        }
        if plugin.permissions.events {
            let events = Resource::of(&Gvk::new("events.k8s.io", "v1", "Event"), "events".into());
            let scopes: Vec<Scope<'_>> =
                plugin.permissions.read.iter().map(|g| g.scope()).collect();
            if scopes.contains(&Scope::All) {
                collector.add(&[], events, &["create", "patch"]);
            } else {
                for scope in scopes {
                    if let Scope::Namespaces(namespaces) = scope {
                        collector.add(namespaces, events.clone(), &["create", "patch"]);
                    }
                }
            }
        }
    }
    if let Some(election) = &config.host.leader_election {
        let namespace = [election.lease_namespace_or(Some(&options.namespace))];
        let leases = Resource {
            group: "coordination.k8s.io".into(),
            resource: "leases".into(),
            name: None,
        };
        let lease = Resource {
            name: Some(election.lease_name.clone()),
            ..leases.clone()
        };
        collector.add(&namespace, lease, &["get", "update"]);
        collector.add(&namespace, leases, &["create"]);
    }
    collector.finish()
}

/// The ClusterRole, Roles and their bindings for `config`, as multi-document YAML.
pub fn render(config: &Config, options: &RbacOptions) -> String {
    let rbac = rules(config, options);
    let mut documents = vec![format!(
        "# Least-privilege RBAC for the Trellis host ServiceAccount {}/{}: `trellis rbac`.\n",
        options.namespace, options.service_account
    )];
    let name = options.object_name();
    let subjects = Some(vec![Subject {
        api_group: None,
        kind: "ServiceAccount".into(),
        name: options.service_account.clone(),
        namespace: Some(options.namespace.clone()),
    }]);
    let metadata = |namespace: Option<&str>| ObjectMeta {
        name: Some(name.clone()),
        namespace: namespace.map(str::to_string),
        labels: Some(
            [(
                "app.kubernetes.io/part-of".to_string(),
                "trellis".to_string(),
            )]
            .into(),
        ),
        ..ObjectMeta::default()
    };
    let role_ref = |kind: &str| RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: name.clone(),
    };
    if !rbac.cluster.is_empty() {
        documents.push(yaml(&ClusterRole {
            metadata: metadata(None),
            rules: Some(rbac.cluster.clone()),
            aggregation_rule: None,
        }));
        documents.push(yaml(&ClusterRoleBinding {
            metadata: metadata(None),
            role_ref: role_ref("ClusterRole"),
            subjects: subjects.clone(),
        }));
    }
    for (namespace, rules) in &rbac.namespaces {
        documents.push(yaml(&Role {
            metadata: metadata(Some(namespace)),
            rules: Some(rules.clone()),
        }));
        documents.push(yaml(&RoleBinding {
            metadata: metadata(Some(namespace)),
            role_ref: role_ref("Role"),
            subjects: subjects.clone(),
        }));
    }
    // The comment heads the first object's document.
    let header = documents.remove(0);
    header + &documents.join("---\n")
}

fn yaml<T: serde::Serialize>(object: &T) -> String {
    serde_norway::to_string(object).expect("k8s-openapi RBAC objects serialize to YAML")
}

/// The resource name of `gvk`: a grant's `plural:` (config validation keeps them consistent),
/// else kube's pluralizer.
fn plural(config: &Config, gvk: &Gvk) -> String {
    let granted = config.plugins.iter().find_map(|p| {
        let read = p.permissions.read.iter().map(|g| (g.gvk(), &g.plural));
        let write = p.permissions.write.iter().map(|g| (g.gvk(), &g.plural));
        read.chain(write)
            .find_map(|(g, plural)| if g == *gvk { plural.clone() } else { None })
    });
    granted.unwrap_or_else(|| {
        ApiResource::from_gvk(&GroupVersionKind::gvk(&gvk.group, &gvk.version, &gvk.kind)).plural
    })
}

impl Resource {
    fn of(gvk: &Gvk, resource: String) -> Self {
        Self {
            group: gvk.group.to_string(),
            resource,
            name: None,
        }
    }
}

#[derive(Default)]
struct Collector {
    cluster: Rules,
    namespaces: BTreeMap<String, Rules>,
}

impl Collector {
    /// Grants `verbs` on `resource` in `namespaces` (empty: cluster-wide).
    fn add(&mut self, namespaces: &[String], resource: Resource, verbs: &[&'static str]) {
        if namespaces.is_empty() {
            self.cluster.entry(resource).or_default().extend(verbs);
        } else {
            for namespace in namespaces {
                let rules = self.namespaces.entry(namespace.clone()).or_default();
                rules.entry(resource.clone()).or_default().extend(verbs);
            }
        }
    }

    /// Drops what a broader rule grants already: namespaced verbs granted cluster-wide, and
    /// verbs on a named object granted on the whole resource.
    fn finish(mut self) -> Rbac {
        let cluster = self.cluster.clone();
        prune(&mut self.cluster, &cluster, true);
        for rules in self.namespaces.values_mut() {
            prune(rules, &cluster, false);
            let own = rules.clone();
            prune(rules, &own, true);
        }
        self.namespaces.retain(|_, rules| !rules.is_empty());
        Rbac {
            cluster: policy_rules(&self.cluster),
            namespaces: self
                .namespaces
                .iter()
                .map(|(namespace, rules)| (namespace.clone(), policy_rules(rules)))
                .collect(),
        }
    }
}

/// Removes from `rules` the verbs `broader` grants: on the same resource (unless
/// `named_only`), and on the whole resource for named rules.
fn prune(rules: &mut Rules, broader: &Rules, named_only: bool) {
    for (resource, verbs) in rules.iter_mut() {
        let whole = Resource {
            name: None,
            ..resource.clone()
        };
        let covering = [
            (!named_only).then(|| broader.get(resource)).flatten(),
            resource
                .name
                .is_some()
                .then(|| broader.get(&whole))
                .flatten(),
        ];
        for granted in covering.into_iter().flatten() {
            verbs.retain(|v| !granted.contains(v));
        }
    }
    rules.retain(|_, verbs| !verbs.is_empty());
}

fn policy_rules(rules: &Rules) -> Vec<PolicyRule> {
    rules
        .iter()
        .map(|(resource, verbs)| PolicyRule {
            api_groups: Some(vec![resource.group.clone()]),
            resources: Some(vec![resource.resource.clone()]),
            resource_names: resource.name.clone().map(|n| vec![n]),
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            non_resource_urls: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_pluralizes_built_in_kinds() {
        let p = |kind: &str| ApiResource::from_gvk(&GroupVersionKind::gvk("g", "v1", kind)).plural;
        assert_eq!(p("NetworkPolicy"), "networkpolicies");
        assert_eq!(p("Ingress"), "ingresses");
        assert_eq!(p("Endpoints"), "endpoints");
        assert_eq!(p("Deployment"), "deployments");
    }

    #[test]
    fn broader_rules_absorb_narrower_ones() {
        let mut c = Collector::default();
        let pods = Resource {
            group: String::new(),
            resource: "pods".into(),
            name: None,
        };
        let lease = Resource {
            group: "coordination.k8s.io".into(),
            resource: "leases".into(),
            name: Some("l".into()),
        };
        c.add(&[], pods.clone(), &READ);
        c.add(&["a".into()], pods.clone(), &["get", "delete"]);
        c.add(&["b".into()], pods, &["list"]);
        c.add(&["b".into()], lease.clone(), &["get", "update"]);
        c.add(
            &["b".into()],
            Resource {
                name: None,
                ..lease
            },
            &["update"],
        );
        let rbac = c.finish();
        assert_eq!(rbac.cluster.len(), 1);
        assert_eq!(rbac.cluster[0].verbs, ["get", "list", "watch"]);
        assert_eq!(rbac.namespaces["a"].len(), 1);
        assert_eq!(rbac.namespaces["a"][0].verbs, ["delete"]);
        let b = &rbac.namespaces["b"];
        assert_eq!(b.len(), 2, "{b:?}");
        assert_eq!(b[0].resource_names, None);
        assert_eq!(b[0].verbs, ["update"]);
        assert_eq!(b[1].resource_names, Some(vec!["l".to_string()]));
        assert_eq!(b[1].verbs, ["get"]);
    }
}
