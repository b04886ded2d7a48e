//! The built-in kinds, as Kubernetes 1.33 serves them.
//!
//! Scope, short names, categories, status subresources, generation tracking and selectable
//! fields are copied from the real API server (the `pkg/registry/*/strategy.go` files for the
//! fields, `kubectl api-resources` for the names). Each kind's body is checked by round-tripping
//! it through its k8s-openapi type (see `schema.rs`).

use k8s_openapi::api::{apps, batch, coordination, core, events, networking, policy, rbac};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use crate::fields::{FieldSource, SelectableField, with_metadata};
use crate::registry::{NameRule, ResourceType};
use crate::schema::{Schema, TypedCodec, codec};

struct Spec {
    t: ResourceType,
    extra: Vec<SelectableField>,
}

fn kind(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    codec: fn(&serde_json::Value) -> Result<serde_json::Value, serde_json::Error>,
) -> Spec {
    Spec {
        t: ResourceType {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            status_subresource: false,
            generation: false,
            name_rule: NameRule::Subdomain,
            selectable: with_metadata(namespaced, Vec::new()),
            schema: Schema::Typed(TypedCodec(codec)),
            printer_columns: Vec::new(),
            custom: false,
            return_deleted: false,
            conversion: None,
            scale: None,
        },
        extra: Vec::new(),
    }
}

impl Spec {
    fn short(mut self, names: &[&str]) -> Self {
        self.t.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    fn all(mut self) -> Self {
        self.t.categories = vec!["all".to_string()];
        self
    }

    fn status(mut self) -> Self {
        self.t.status_subresource = true;
        self
    }

    fn generation(mut self) -> Self {
        self.t.generation = true;
        self
    }

    fn names(mut self, rule: NameRule) -> Self {
        self.t.name_rule = rule;
        self
    }

    fn field(mut self, name: &str, default: &'static str) -> Self {
        self.extra.push(SelectableField::at(name, default));
        self
    }

    fn renamed(mut self, name: &str, path: &str, default: &'static str) -> Self {
        self.extra
            .push(SelectableField::renamed(name, path, default));
        self
    }

    fn scale(mut self) -> Self {
        self.t.scale = Some(crate::scale::ScaleSubresource::replicas_and_selector());
        self
    }

    fn stored_as(mut self, conversion: crate::conversion::Conversion) -> Self {
        self.t.conversion = Some(conversion);
        self
    }

    fn build(mut self) -> ResourceType {
        self.t.selectable = with_metadata(self.t.namespaced, self.extra);
        self.t
    }
}

/// The names an Event version selects Events by.
///
/// Events are served twice, as core `v1` and as `events.k8s.io/v1` (the form kube-runtime's
/// `Recorder` and client-go's new recorder write), and stored once, in the second form
/// (`conversion.rs`). The second renamed fields of the first (`involvedObject` became
/// `regarding`, `reportingComponent` became `reportingController`, `source` became
/// `deprecatedSource`), and the real server accepts each version's own names in field
/// selectors (`pkg/apis/events/v1/conversion.go`), plus `source` on both. Both versions read
/// the values from the stored form's paths, in the same order, so the values extracted when an
/// Event is written serve selectors of either version.
struct EventFields {
    regarding: &'static str,
    reporting_controller: &'static str,
}

fn events(spec: Spec, names: &EventFields) -> ResourceType {
    let mut spec = spec.short(&["ev"]);
    for part in [
        "kind",
        "namespace",
        "name",
        "uid",
        "apiVersion",
        "resourceVersion",
        "fieldPath",
    ] {
        spec = spec.renamed(
            &format!("{}.{part}", names.regarding),
            &format!("regarding.{part}"),
            "",
        );
    }
    spec.field("reason", "")
        .renamed(names.reporting_controller, "reportingController", "")
        .renamed("source", "deprecatedSource.component", "")
        .field("type", "")
        .build()
}

/// Every built-in kind.
pub fn types() -> Vec<ResourceType> {
    use core::v1 as c;
    let pod_ip = SelectableField {
        name: "status.podIP".to_string(),
        source: FieldSource::PodIp,
    };
    let mut pods = kind("", "v1", "Pod", "pods", true, codec::<c::Pod>)
        .short(&["po"])
        .all()
        .status()
        .field("spec.nodeName", "")
        .field("spec.restartPolicy", "")
        .field("spec.schedulerName", "")
        .field("spec.serviceAccountName", "")
        .field("spec.hostNetwork", "false")
        .field("status.phase", "");
    pods.extra.push(pod_ip);
    let mut pods = pods.field("status.nominatedNodeName", "").build();
    pods.return_deleted = true;

    vec![
        kind(
            "",
            "v1",
            "Namespace",
            "namespaces",
            false,
            codec::<c::Namespace>,
        )
        .short(&["ns"])
        .status()
        .names(NameRule::Label)
        .field("status.phase", "")
        .build(),
        pods,
        kind(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true,
            codec::<c::ConfigMap>,
        )
        .short(&["cm"])
        .build(),
        kind("", "v1", "Secret", "secrets", true, codec::<c::Secret>)
            .field("type", "")
            .build(),
        kind("", "v1", "Service", "services", true, codec::<c::Service>)
            .short(&["svc"])
            .all()
            .status()
            .names(NameRule::Label)
            .field("spec.clusterIP", "")
            .field("spec.type", "")
            .build(),
        events(
            kind("", "v1", "Event", "events", true, codec::<c::Event>)
                .stored_as(crate::conversion::CORE_EVENTS),
            &EventFields {
                regarding: "involvedObject",
                reporting_controller: "reportingComponent",
            },
        ),
        events(
            kind(
                "events.k8s.io",
                "v1",
                "Event",
                "events",
                true,
                codec::<events::v1::Event>,
            ),
            &EventFields {
                regarding: "regarding",
                reporting_controller: "reportingController",
            },
        ),
        kind(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            codec::<c::ServiceAccount>,
        )
        .short(&["sa"])
        .build(),
        kind(
            "",
            "v1",
            "ResourceQuota",
            "resourcequotas",
            true,
            codec::<c::ResourceQuota>,
        )
        .short(&["quota"])
        .status()
        .build(),
        kind("", "v1", "Node", "nodes", false, codec::<c::Node>)
            .short(&["no"])
            .status()
            .field("spec.unschedulable", "false")
            .build(),
        kind(
            "",
            "v1",
            "Endpoints",
            "endpoints",
            true,
            codec::<c::Endpoints>,
        )
        .short(&["ep"])
        .build(),
        kind(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            codec::<c::PersistentVolumeClaim>,
        )
        .short(&["pvc"])
        .status()
        .build(),
        kind(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            codec::<apps::v1::Deployment>,
        )
        .short(&["deploy"])
        .all()
        .status()
        .scale()
        .generation()
        .build(),
        kind(
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            true,
            codec::<apps::v1::ReplicaSet>,
        )
        .short(&["rs"])
        .all()
        .status()
        .scale()
        .generation()
        .renamed("status.replicas", "status.replicas", "0")
        .build(),
        kind(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            true,
            codec::<apps::v1::StatefulSet>,
        )
        .short(&["sts"])
        .all()
        .status()
        .scale()
        .generation()
        .build(),
        kind(
            "apps",
            "v1",
            "DaemonSet",
            "daemonsets",
            true,
            codec::<apps::v1::DaemonSet>,
        )
        .short(&["ds"])
        .all()
        .status()
        .generation()
        .build(),
        kind(
            "apps",
            "v1",
            "ControllerRevision",
            "controllerrevisions",
            true,
            codec::<apps::v1::ControllerRevision>,
        )
        .build(),
        kind("batch", "v1", "Job", "jobs", true, codec::<batch::v1::Job>)
            .all()
            .status()
            .generation()
            .renamed("status.successful", "status.succeeded", "0")
            .build(),
        kind(
            "batch",
            "v1",
            "CronJob",
            "cronjobs",
            true,
            codec::<batch::v1::CronJob>,
        )
        .short(&["cj"])
        .all()
        .status()
        .generation()
        .build(),
        kind(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            codec::<coordination::v1::Lease>,
        )
        .build(),
        kind(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            true,
            codec::<networking::v1::NetworkPolicy>,
        )
        .short(&["netpol"])
        .generation()
        .build(),
        kind(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            true,
            codec::<networking::v1::Ingress>,
        )
        .short(&["ing"])
        .status()
        .generation()
        .build(),
        kind(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
            codec::<policy::v1::PodDisruptionBudget>,
        )
        .short(&["pdb"])
        .status()
        .generation()
        .build(),
        kind(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            codec::<rbac::v1::Role>,
        )
        .names(NameRule::PathSegment)
        .build(),
        kind(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            codec::<rbac::v1::RoleBinding>,
        )
        .names(NameRule::PathSegment)
        .build(),
        kind(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            codec::<rbac::v1::ClusterRole>,
        )
        .names(NameRule::PathSegment)
        .build(),
        kind(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            codec::<rbac::v1::ClusterRoleBinding>,
        )
        .names(NameRule::PathSegment)
        .build(),
        kind(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            codec::<CustomResourceDefinition>,
        )
        .short(&["crd", "crds"])
        .status()
        .generation()
        .build(),
    ]
}
