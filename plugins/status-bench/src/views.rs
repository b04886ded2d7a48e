//! The parts of Deployments and ConfigMaps the guest reads, decoded and nothing more (a full
//! k8s-openapi `Deployment` would compile serde code for the whole Pod template into the
//! component and decode it on every call; see docs/benchmarks/guest-sizes.md).

use std::collections::BTreeMap;

use serde::Deserialize;
use trellis_guest::k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition};
use trellis_guest::k8s_openapi::api::core::v1::ConfigMap;
use trellis_guest::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use trellis_guest::{Gvk, Kind};

/// A Deployment's metadata, replicas and status conditions.
#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentView {
    pub metadata: ObjectMeta,
    pub spec: Option<DeploymentSpecView>,
    pub status: Option<DeploymentStatusView>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentSpecView {
    pub replicas: Option<i32>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentStatusView {
    pub conditions: Option<Vec<DeploymentCondition>>,
}

impl Kind for DeploymentView {
    fn gvk() -> Gvk {
        Gvk::of::<Deployment>()
    }
}

/// A ConfigMap's data.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigMapView {
    pub data: Option<BTreeMap<String, String>>,
}

impl Kind for ConfigMapView {
    fn gvk() -> Gvk {
        Gvk::of::<ConfigMap>()
    }
}
