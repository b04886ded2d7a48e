//! Which Kubernetes kind a Rust type is.
//!
//! Typed reads (`get::<Deployment>`) need the group/version/kind to ask the host for; the type
//! knows it. With the `k8s` feature every k8s-openapi resource is a [`Kind`]; for a CRD, derive
//! or write a serde struct and implement [`Kind`] for it (or use the `*_dynamic` functions with
//! an explicit [`Gvk`] and `serde_json::Value`).

use crate::Gvk;

/// A Rust type that stands for one Kubernetes kind.
///
/// ```
/// use trellis_guest::{Gvk, Kind};
///
/// #[derive(serde::Deserialize)]
/// struct Backup {
///     spec: serde_json::Value,
/// }
///
/// impl Kind for Backup {
///     fn gvk() -> Gvk {
///         Gvk::new("example.com", "v1", "Backup")
///     }
/// }
/// assert_eq!(Gvk::of::<Backup>().api_version(), "example.com/v1");
/// ```
pub trait Kind {
    fn gvk() -> Gvk;
}

#[cfg(feature = "k8s")]
impl<K: k8s_openapi::Resource> Kind for K {
    fn gvk() -> Gvk {
        Gvk::new(K::GROUP, K::VERSION, K::KIND)
    }
}

#[cfg(all(test, feature = "k8s"))]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Namespace;

    #[test]
    fn k8s_openapi_resources_know_their_kind() {
        assert_eq!(
            Gvk::of::<Deployment>(),
            Gvk::new("apps", "v1", "Deployment")
        );
        assert_eq!(Gvk::of::<Namespace>(), Gvk::new("", "v1", "Namespace"));
    }
}
