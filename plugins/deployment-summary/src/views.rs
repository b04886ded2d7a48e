//! The parts of Deployments and Pods this plugin reads, decoded and nothing more.
//!
//! Decoding a full k8s-openapi `Deployment` or `Pod` compiles serde code for the entire Pod
//! spec tree (containers, volumes, probes, ...) into the component even though the plugin
//! reads none of it. These views keep the k8s-openapi types for what is read (`ObjectMeta`,
//! `LabelSelector`, `PodStatus`) and let serde skip the rest, which took this component from
//! 906 KB to about a third of that (docs/benchmarks/guest-sizes.md). A view is a [`Kind`], so
//! the SDK's typed reads work with it unchanged.

use serde::Deserialize;
use trellis_guest::k8s_openapi::api::apps::v1::Deployment;
use trellis_guest::k8s_openapi::api::core::v1::{Pod, PodStatus};
use trellis_guest::k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use trellis_guest::{Gvk, Kind};

/// A Deployment's metadata and selector.
#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentView {
    pub metadata: ObjectMeta,
    pub spec: Option<DeploymentSpecView>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentSpecView {
    pub selector: LabelSelector,
}

impl Kind for DeploymentView {
    fn gvk() -> Gvk {
        Gvk::of::<Deployment>()
    }
}

/// A Pod's metadata and status.
#[derive(Debug, Clone, Deserialize)]
pub struct PodView {
    pub metadata: ObjectMeta,
    pub status: Option<PodStatus>,
}

impl Kind for PodView {
    fn gvk() -> Gvk {
        Gvk::of::<Pod>()
    }
}
