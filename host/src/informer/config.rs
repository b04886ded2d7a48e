//! Watch configuration: what the host config says about one watch, and its validation into a
//! normalized [`WatchSpec`] (what the server is asked and what the cache keeps — the key under
//! which informers are shared) and a [`DeliveryConfig`] (how events become keys for one plugin).
//!
//! YAML shape (camelCase, unknown fields rejected), with defaults:
//!
//! ```yaml
//! apiVersion: apps/v1          # required
//! kind: Deployment             # required
//! namespaces: []               # [] = all namespaces; one entry = one namespace; more = one watch each
//! labelSelector: "app=web"     # sent to the server; full syntax
//! fieldSelector: "status.phase=Running"   # sent to the server
//! metadataOnly: false          # watch PartialObjectMetadata: only apiVersion/kind/metadata kept
//! initialList: streaming       # streaming (sendInitialEvents) | paginated
//! pageSize: 500                # page size of paginated lists (also the fallback)
//! transform:
//!   keepManagedFields: false   # metadata.managedFields is stripped unless true
//!   keep: []                   # paths to keep (besides apiVersion, kind, metadata); [] = everything
//!   drop: []                   # paths to drop, e.g. status, spec.containers[*].env
//! indexes:                     # lookups by path, besides namespace, owner and label
//!   - { name: node, path: spec.nodeName }
//! predicates: []               # [] = resourceVersion; any of resourceVersion (alias any),
//!                              #   generation, labels, annotations: an update passes if one does
//! mapping:                     # secondary watches only: which primary keys an event reaches
//!   controllerOwner: true      #   the controller owner, when it is of the primary kind
//!   label: example.com/owner   #   the primary named by this label, in the object's namespace
//! resyncSeconds: null          # replay the cache (never the API) at low priority; off by default
//! ```
//!
//! Validation reports every mistake at once, each naming its field (`transform.drop[1]`,
//! `indexes[0].name`), so the host can print them all with the plugin and file.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use trellis_selector::{FieldSelector, LabelSelector};

use super::transform::{IDENTITY_PATHS, TransformSpec};
use crate::cache::{BUILT_IN_INDEXES, Gvk, IndexSpec, JsonPath, Step};

pub const DEFAULT_PAGE_SIZE: u32 = 500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WatchConfig {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_selector: Option<String>,
    #[serde(default)]
    pub metadata_only: bool,
    #[serde(default)]
    pub initial_list: InitialList,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    #[serde(default)]
    pub transform: TransformConfig,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<IndexConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predicates: Vec<Predicate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<MappingConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync_seconds: Option<u64>,
}

fn default_page_size() -> u32 {
    DEFAULT_PAGE_SIZE
}

impl WatchConfig {
    /// A config for `kind` with every default: all namespaces, no selectors.
    pub fn new(api_version: &str, kind: &str) -> Self {
        Self {
            api_version: api_version.into(),
            kind: kind.into(),
            namespaces: Vec::new(),
            label_selector: None,
            field_selector: None,
            metadata_only: false,
            initial_list: InitialList::default(),
            page_size: DEFAULT_PAGE_SIZE,
            transform: TransformConfig::default(),
            indexes: Vec::new(),
            predicates: Vec::new(),
            mapping: None,
            resync_seconds: None,
        }
    }
}

/// How the initial list (and every relist) is done.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum InitialList {
    /// A watch with `sendInitialEvents=true`: objects stream one by one, no list is held in
    /// memory by server or client. Falls back to `paginated` when the server refuses it.
    #[default]
    Streaming,
    /// `list` in pages of `pageSize`, then watch.
    Paginated,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransformConfig {
    #[serde(default)]
    pub keep_managed_fields: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IndexConfig {
    pub name: String,
    pub path: String,
}

/// Which updates reach a plugin. Creates and deletes always do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Predicate {
    /// Any change: the resourceVersion moved. Drops only replays of an unchanged object.
    #[serde(alias = "any")]
    ResourceVersion,
    /// `metadata.generation` changed (spec changes, for kinds that have a generation; kinds
    /// without one, like ConfigMap, then only see creates and deletes).
    Generation,
    /// `metadata.labels` changed.
    Labels,
    /// `metadata.annotations` changed.
    Annotations,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MappingConfig {
    #[serde(default)]
    pub controller_owner: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// One mistake in a watch config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// The field at fault, as written in the config (`labelSelector`, `indexes[2].path`).
    pub field: String,
    pub message: String,
}

/// Everything that decides what the server is asked and what the cache holds. Two plugins
/// with equal specs share one informer. Built only by [`WatchConfig::validate`], so it is
/// normalized: namespaces sorted and unique, selectors in canonical form, paths and indexes
/// sorted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatchSpec {
    pub kind: Gvk,
    /// Empty: all namespaces.
    pub namespaces: Vec<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub metadata_only: bool,
    pub initial_list: InitialList,
    pub page_size: u32,
    pub transform: TransformSpec,
    pub indexes: Vec<IndexSpec>,
}

impl fmt::Display for WatchSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        match self.namespaces.as_slice() {
            [] => {}
            [one] => write!(f, " in namespace {one}")?,
            many => write!(f, " in namespaces {}", many.join(","))?,
        }
        if let Some(labels) = &self.label_selector {
            write!(f, " labels {labels:?}")?;
        }
        if let Some(fields) = &self.field_selector {
            write!(f, " fields {fields:?}")?;
        }
        if self.metadata_only {
            f.write_str(" (metadata only)")?;
        }
        Ok(())
    }
}

/// How one plugin's subscription turns events into keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Sorted, unique, never empty.
    pub predicates: Vec<Predicate>,
    pub mapping: Option<MappingConfig>,
    pub resync: Option<Duration>,
}

/// A validated watch config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidWatch {
    pub spec: WatchSpec,
    pub delivery: DeliveryConfig,
}

impl WatchConfig {
    /// Checks every field and returns all mistakes, or the normalized spec and delivery.
    pub fn validate(&self) -> Result<ValidWatch, Vec<ConfigError>> {
        let mut errors = Errors::default();
        let kind = self.validate_kind(&mut errors);

        let mut namespaces = BTreeSet::new();
        for (i, namespace) in self.namespaces.iter().enumerate() {
            match dns1123_label(namespace) {
                Ok(()) => {
                    namespaces.insert(namespace.clone());
                }
                Err(why) => errors.push(format!("namespaces[{i}]"), format!("{namespace:?} {why}")),
            }
        }

        let label_selector = self.label_selector.as_deref().and_then(|s| {
            LabelSelector::parse(s)
                .map_err(|e| errors.push("labelSelector", e.to_string()))
                .ok()
                .filter(|s| !s.is_everything())
                .map(|s| s.to_string())
        });
        let field_selector = self.field_selector.as_deref().and_then(|s| {
            FieldSelector::parse(s)
                .map_err(|e| errors.push("fieldSelector", e.to_string()))
                .ok()
                .filter(|s| !s.is_everything())
                .map(|s| s.to_string())
        });
        if self.page_size == 0 {
            errors.push("pageSize", "must be at least 1 (the default is 500)");
        }

        let transform = self.validate_transform(&mut errors);
        let indexes = self.validate_indexes(&mut errors);
        let mapping = self.validate_mapping(&mut errors);
        let resync = match self.resync_seconds {
            Some(0) => {
                errors.push(
                    "resyncSeconds",
                    "must be at least 1; leave it out to disable resync",
                );
                None
            }
            seconds => seconds.map(Duration::from_secs),
        };
        let mut predicates: Vec<Predicate> = self.predicates.clone();
        predicates.sort_unstable();
        predicates.dedup();
        if predicates.is_empty() {
            predicates.push(Predicate::ResourceVersion);
        }

        match (kind, errors.0.is_empty()) {
            (Some(kind), true) => Ok(ValidWatch {
                spec: WatchSpec {
                    kind,
                    namespaces: namespaces.into_iter().collect(),
                    label_selector,
                    field_selector,
                    metadata_only: self.metadata_only,
                    initial_list: self.initial_list,
                    page_size: self.page_size,
                    transform,
                    indexes,
                },
                delivery: DeliveryConfig {
                    predicates,
                    mapping,
                    resync,
                },
            }),
            _ => Err(errors.0),
        }
    }

    fn validate_kind(&self, errors: &mut Errors) -> Option<Gvk> {
        let mut ok = true;
        let parts: Vec<&str> = self.api_version.split('/').collect();
        if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
            errors.push(
                "apiVersion",
                format!(
                    "{:?} is not version or group/version (e.g. v1, apps/v1)",
                    self.api_version
                ),
            );
            ok = false;
        }
        if self.kind.is_empty() || !self.kind.chars().all(|c| c.is_ascii_alphanumeric()) {
            errors.push(
                "kind",
                format!("{:?} is not a kind name (e.g. Pod)", self.kind),
            );
            ok = false;
        }
        ok.then(|| Gvk::from_api_version(&self.api_version, &self.kind))
    }

    fn validate_transform(&self, errors: &mut Errors) -> TransformSpec {
        let mut parse = |list: &[String], name: &str| -> Vec<JsonPath> {
            let mut paths = Vec::new();
            for (i, text) in list.iter().enumerate() {
                let field = format!("transform.{name}[{i}]");
                match JsonPath::parse(text) {
                    Err(e) => errors.push(field, e.to_string()),
                    Ok(path) if path.steps().last() == Some(&Step::Each) => errors.push(
                        field,
                        format!("{text:?} ends with [*]: name the array itself"),
                    ),
                    Ok(path) => paths.push((field, path)),
                }
            }
            paths.into_iter().map(|(_, p)| p).collect()
        };
        let keep = parse(&self.transform.keep, "keep");
        let drop = parse(&self.transform.drop, "drop");
        for (i, path) in keep.iter().enumerate() {
            if let Some(Step::Field(first)) = path.steps().first()
                && ["apiVersion", "kind", "metadata"].contains(&&**first)
            {
                errors.push(
                    format!("transform.keep[{i}]"),
                    format!("{path} is always kept (apiVersion, kind and metadata are)"),
                );
            }
        }
        if self.metadata_only && !self.transform.keep.is_empty() {
            errors.push(
                "transform.keep",
                "metadataOnly keeps only metadata: keep paths have no effect",
            );
        }
        for (i, path) in drop.iter().enumerate() {
            if IDENTITY_PATHS.contains(&path.to_string().as_str()) {
                errors.push(
                    format!("transform.drop[{i}]"),
                    format!("{path} identifies the object and cannot be dropped"),
                );
            }
        }
        let mut keep = keep;
        let mut drop = drop;
        keep.sort();
        keep.dedup();
        drop.sort();
        drop.dedup();
        TransformSpec {
            keep_managed_fields: self.transform.keep_managed_fields,
            keep,
            drop,
        }
    }

    fn validate_indexes(&self, errors: &mut Errors) -> Vec<IndexSpec> {
        let mut names = BTreeSet::new();
        let mut indexes = Vec::new();
        for (i, index) in self.indexes.iter().enumerate() {
            if index.name.is_empty() {
                errors.push(format!("indexes[{i}].name"), "must not be empty");
            } else if BUILT_IN_INDEXES.contains(&index.name.as_str()) {
                errors.push(
                    format!("indexes[{i}].name"),
                    format!(
                        "{:?} is a built-in index (namespace, owner, label)",
                        index.name
                    ),
                );
            } else if !names.insert(index.name.clone()) {
                errors.push(
                    format!("indexes[{i}].name"),
                    format!("{:?} is declared twice", index.name),
                );
            }
            match JsonPath::parse(&index.path) {
                Ok(path) => indexes.push(IndexSpec {
                    name: index.name.clone(),
                    path,
                }),
                Err(e) => errors.push(format!("indexes[{i}].path"), e.to_string()),
            }
        }
        indexes.sort();
        indexes
    }

    fn validate_mapping(&self, errors: &mut Errors) -> Option<MappingConfig> {
        let mapping = self.mapping.as_ref()?;
        if !mapping.controller_owner && mapping.label.is_none() {
            errors.push("mapping", "set controllerOwner, label or both");
        }
        if let Some(label) = &mapping.label {
            // A bare key parses as an `exists` requirement: the server's key rules, its message.
            match LabelSelector::parse(label) {
                Ok(s) if s.requirements().len() == 1 && s.requirements()[0].key() == label => {}
                Ok(_) => errors.push("mapping.label", format!("{label:?} is not a label key")),
                Err(e) => errors.push("mapping.label", e.to_string()),
            }
        }
        Some(mapping.clone())
    }
}

#[derive(Default)]
struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            field: field.into(),
            message: message.into(),
        });
    }
}

/// RFC 1123 label, as namespace names must be.
fn dns1123_label(name: &str) -> Result<(), &'static str> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if name.is_empty() || name.len() > 63 {
        Err("must be 1 to 63 characters")
    } else if !name.chars().all(ok_char) || name.starts_with('-') || name.ends_with('-') {
        Err(
            "must consist of lower case alphanumerics or '-', and start and end with an alphanumeric",
        )
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> WatchConfig {
        serde_norway::from_str(text).unwrap()
    }

    fn errors(config: &WatchConfig) -> Vec<String> {
        config
            .validate()
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn defaults_are_all_namespaces_streaming_500_and_resource_version() {
        let valid = yaml("apiVersion: v1\nkind: Pod\n").validate().unwrap();
        assert_eq!(valid.spec.kind, Gvk::new("", "v1", "Pod"));
        assert!(valid.spec.namespaces.is_empty());
        assert_eq!(valid.spec.initial_list, InitialList::Streaming);
        assert_eq!(valid.spec.page_size, 500);
        assert!(!valid.spec.transform.keep_managed_fields);
        assert_eq!(valid.delivery.predicates, [Predicate::ResourceVersion]);
        assert_eq!(valid.delivery.resync, None);
        assert_eq!(valid.spec.to_string(), "/v1, Kind=Pod");
    }

    #[test]
    fn equivalent_configs_normalize_to_equal_specs() {
        let a = yaml(
            "apiVersion: apps/v1\nkind: Deployment\nnamespaces: [b, a, b]\nlabelSelector: 'tier in (x), app=web'\n\
             fieldSelector: metadata.name!=x\ntransform: {drop: [status, spec.template]}\n\
             indexes: [{name: z, path: spec.z}, {name: a, path: spec.a}]\npredicates: [generation]\n",
        );
        let b = yaml(
            "apiVersion: apps/v1\nkind: Deployment\nnamespaces: [a, b]\nlabelSelector: app=web,tier in (x)\n\
             fieldSelector: metadata.name!=x\ntransform: {drop: [spec.template, status, status]}\n\
             indexes: [{name: a, path: spec.a}, {name: z, path: spec.z}]\npredicates: [labels]\n",
        );
        let (a, b) = (a.validate().unwrap(), b.validate().unwrap());
        assert_eq!(
            a.spec, b.spec,
            "predicates are per plugin, not part of the shared spec"
        );
        assert_ne!(a.delivery, b.delivery);
        assert_eq!(a.spec.namespaces, ["a", "b"]);
        assert_eq!(
            a.spec.label_selector.as_deref(),
            Some("app=web,tier in (x)")
        );
        assert_eq!(
            a.spec.to_string(),
            "apps/v1, Kind=Deployment in namespaces a,b labels \"app=web,tier in (x)\" fields \"metadata.name!=x\""
        );
    }

    #[test]
    fn every_mistake_is_reported_with_its_field() {
        let config = yaml(
            "apiVersion: apps/v1/x\nkind: ''\nnamespaces: [ok, Bad_NS]\nlabelSelector: 'a in'\n\
             fieldSelector: 'a'\npageSize: 0\n\
             transform: {keep: [metadata.labels, 'spec[', 'spec.items[*]'], drop: [metadata.name, 'a..b']}\n\
             indexes: [{name: label, path: spec.x}, {name: n, path: ''}, {name: n, path: a}, {name: '', path: b}]\n\
             mapping: {}\nresyncSeconds: 0\n",
        );
        let errors = errors(&config);
        let fields: Vec<&str> = errors
            .iter()
            .map(|e| e.split(':').next().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "apiVersion",
                "kind",
                "namespaces[1]",
                "labelSelector",
                "fieldSelector",
                "pageSize",
                "transform.keep[1]",
                "transform.keep[2]",
                "transform.drop[1]",
                "transform.keep[0]",
                "transform.drop[0]",
                "indexes[0].name",
                "indexes[1].path",
                "indexes[2].name",
                "indexes[3].name",
                "mapping",
                "resyncSeconds",
            ],
            "{errors:#?}"
        );
        assert!(
            errors[3].contains("unable to parse requirement: found '' expected: '('"),
            "the server's message: {}",
            errors[3]
        );
        assert!(errors[4].contains("invalid selector: 'a'"), "{}", errors[4]);
    }

    #[test]
    fn metadata_only_rejects_keep_paths_and_mapping_label_must_be_a_key() {
        let config = yaml(
            "apiVersion: v1\nkind: Pod\nmetadataOnly: true\ntransform: {keep: [spec]}\nmapping: {label: 'a b'}\n",
        );
        let errors = errors(&config);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with("transform.keep: metadataOnly"),
            "{errors:?}"
        );
        assert!(errors[1].starts_with("mapping.label"), "{errors:?}");
        let ok = yaml("apiVersion: v1\nkind: Pod\nmapping: {label: example.com/owner}\n")
            .validate()
            .unwrap();
        assert_eq!(
            ok.delivery.mapping.unwrap().label.as_deref(),
            Some("example.com/owner")
        );
    }

    #[test]
    fn unknown_fields_and_predicates_are_rejected_by_the_parser() {
        let err =
            serde_norway::from_str::<WatchConfig>("apiVersion: v1\nkind: Pod\nlabelSelectr: a\n")
                .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `labelSelectr`"),
            "{err}"
        );
        let err = serde_norway::from_str::<WatchConfig>(
            "apiVersion: v1\nkind: Pod\npredicates: [spec]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown variant `spec`"), "{err}");
        let any = yaml("apiVersion: v1\nkind: Pod\npredicates: [any, labels]\n")
            .validate()
            .unwrap();
        assert_eq!(
            any.delivery.predicates,
            [Predicate::ResourceVersion, Predicate::Labels]
        );
    }
}
