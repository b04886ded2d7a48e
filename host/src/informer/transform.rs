//! Transform before caching: what of each object the cache keeps.
//!
//! A trie of paths is built once per informer from the config (keep paths, drop paths,
//! `managedFields` unless kept, metadata-only). Applying it rewrites the JSON text by walking
//! only the objects the trie names: every other value is copied through as raw text, never
//! parsed into a tree. An empty trie copies the object unchanged.
//!
//! Rules, in order: with `keep` paths, an object keeps only `apiVersion`, `kind`, `metadata`
//! and the kept paths; then `drop` paths are removed (a drop inside a kept path wins). Identity
//! fields (`apiVersion`, `kind`, `metadata`, `metadata.name`, `metadata.namespace`,
//! `metadata.uid`, `metadata.resourceVersion`) can be neither dropped nor named in `keep`;
//! config validation rejects such paths.

use serde_json::value::RawValue;

use crate::cache::{Gvk, JsonPath, Step};
use crate::cache::{path_elements as elements, path_entries as entries};

/// Paths the transform refuses to drop: without them an object cannot be keyed or compared.
pub const IDENTITY_PATHS: [&str; 7] = [
    "apiVersion",
    "kind",
    "metadata",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.resourceVersion",
];

#[derive(Debug, Clone, Default)]
struct Node {
    fields: Vec<(Box<str>, Rule)>,
    /// What applies to each element when the value is an array.
    each: Option<Box<Node>>,
    /// True below a `keep`: unlisted fields are dropped instead of copied.
    only_listed: bool,
}

#[derive(Debug, Clone)]
enum Rule {
    Drop,
    Keep,
    /// Replace the value with this JSON text (metadata-only objects get their real kind).
    Replace(Box<str>),
    Descend(Node),
}

impl Node {
    fn rule_mut(&mut self, name: &str) -> Option<&mut Rule> {
        self.fields
            .iter_mut()
            .find(|(n, _)| &**n == name)
            .map(|(_, r)| r)
    }

    fn rule(&self, name: &str) -> Option<&Rule> {
        self.fields
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, r)| r)
    }

    fn set(&mut self, name: &str, rule: Rule) {
        match self.rule_mut(name) {
            Some(existing) => *existing = rule,
            None => self.fields.push((name.into(), rule)),
        }
    }

    fn is_identity(&self) -> bool {
        self.fields.is_empty() && self.each.is_none() && !self.only_listed
    }

    fn keep(&mut self, steps: &[Step]) {
        let Some((step, rest)) = steps.split_first() else {
            return;
        };
        match step {
            Step::Each => {
                let each = self.each.get_or_insert_with(Box::default);
                each.only_listed = true;
                each.keep(rest);
            }
            Step::Field(name) => {
                self.only_listed = true;
                if rest.is_empty() {
                    self.set(name, Rule::Keep);
                    return;
                }
                match self.rule_mut(name) {
                    Some(Rule::Keep | Rule::Drop | Rule::Replace(_)) => {}
                    Some(Rule::Descend(child)) => child.keep(rest),
                    None => {
                        let mut child = Node::default();
                        child.keep(rest);
                        self.fields.push((name.clone(), Rule::Descend(child)));
                    }
                }
            }
        }
    }

    fn drop_path(&mut self, steps: &[Step]) {
        let Some((step, rest)) = steps.split_first() else {
            return;
        };
        match step {
            Step::Each => self.each.get_or_insert_with(Box::default).drop_path(rest),
            Step::Field(name) if rest.is_empty() => self.set(name, Rule::Drop),
            Step::Field(name) => match (self.only_listed, self.rule_mut(name)) {
                (_, Some(Rule::Drop | Rule::Replace(_))) => {}
                (_, Some(Rule::Descend(child))) => child.drop_path(rest),
                (_, Some(rule @ Rule::Keep)) => {
                    let mut child = Node::default();
                    child.drop_path(rest);
                    *rule = Rule::Descend(child);
                }
                // Below a keep, an unlisted field is dropped already.
                (true, None) => {}
                (false, None) => {
                    let mut child = Node::default();
                    child.drop_path(rest);
                    self.fields.push((name.clone(), Rule::Descend(child)));
                }
            },
        }
    }

    fn write(&self, value: &RawValue, out: &mut String) {
        let text = value.get();
        if text.starts_with('[') {
            match (&self.each, elements(value)) {
                (Some(each), Some(items)) => {
                    out.push('[');
                    for (i, item) in items.into_iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        each.write(item, out);
                    }
                    out.push(']');
                }
                _ => out.push_str(text),
            }
            return;
        }
        if self.fields.is_empty() && !self.only_listed {
            out.push_str(text);
            return;
        }
        let Some(fields) = entries(value) else {
            out.push_str(text);
            return;
        };
        out.push('{');
        let mut first = true;
        for (name, field) in fields {
            let emit = |out: &mut String, first: &mut bool| {
                if !*first {
                    out.push(',');
                }
                *first = false;
                push_key(out, &name);
            };
            match self.rule(&name) {
                Some(Rule::Drop) => {}
                None if self.only_listed => {}
                None | Some(Rule::Keep) => {
                    emit(out, &mut first);
                    out.push_str(field.get());
                }
                Some(Rule::Replace(with)) => {
                    emit(out, &mut first);
                    out.push_str(with);
                }
                Some(Rule::Descend(child)) => {
                    emit(out, &mut first);
                    child.write(field, out);
                }
            }
        }
        out.push('}');
    }
}

fn push_key(out: &mut String, key: &str) {
    // Serializing a &str cannot fail.
    out.push_str(&serde_json::to_string(key).unwrap_or_default());
    out.push(':');
}

/// What the cache keeps of each object, compiled once per informer.
#[derive(Debug, Clone)]
pub struct Transform {
    root: Node,
}

/// The transform part of a validated watch config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransformSpec {
    pub keep_managed_fields: bool,
    pub keep: Vec<JsonPath>,
    pub drop: Vec<JsonPath>,
}

impl Transform {
    /// `metadata_only` keeps `apiVersion`, `kind` (rewritten to `kind`'s: the server answers
    /// metadata-only requests with `meta.k8s.io/v1 PartialObjectMetadata`) and `metadata`.
    pub fn new(spec: &TransformSpec, metadata_only: bool, kind: &Gvk) -> Self {
        let mut root = Node::default();
        if metadata_only || !spec.keep.is_empty() {
            root.only_listed = true;
            for field in ["apiVersion", "kind", "metadata"] {
                root.set(field, Rule::Keep);
            }
        }
        if metadata_only {
            let json = |s: &str| {
                serde_json::to_string(s)
                    .unwrap_or_default()
                    .into_boxed_str()
            };
            root.set("apiVersion", Rule::Replace(json(&kind.api_version())));
            root.set("kind", Rule::Replace(json(&kind.kind)));
        } else {
            for path in &spec.keep {
                root.keep(path.steps());
            }
        }
        for path in &spec.drop {
            root.drop_path(path.steps());
        }
        if !spec.keep_managed_fields {
            root.drop_path(&[
                Step::Field("metadata".into()),
                Step::Field("managedFields".into()),
            ]);
        }
        Self { root }
    }

    pub fn is_identity(&self) -> bool {
        self.root.is_identity()
    }

    /// The object as the cache keeps it.
    pub fn apply(&self, object: &RawValue) -> String {
        if self.is_identity() {
            return object.get().to_string();
        }
        let mut out = String::with_capacity(object.get().len());
        self.root.write(object, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn spec(keep: &[&str], drop: &[&str], keep_managed_fields: bool) -> TransformSpec {
        let parse = |ps: &[&str]| ps.iter().map(|p| JsonPath::parse(p).unwrap()).collect();
        TransformSpec {
            keep_managed_fields,
            keep: parse(keep),
            drop: parse(drop),
        }
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "n", "resourceVersion": "7",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "keep": "me"},
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"nodeName": "n1",
                "containers": [{"name": "a", "image": "i", "env": [{"name": "X"}]}, {"name": "b", "image": "j"}, "odd"]},
            "status": {"phase": "Running", "podIP": "10.0.0.1"}
        })
    }

    fn apply(transform: &Transform, value: &Value) -> Value {
        let text = value.to_string();
        let raw: &RawValue = serde_json::from_str(&text).unwrap();
        let out = transform.apply(raw);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("invalid output {out}: {e}"))
    }

    fn pod_kind() -> Gvk {
        Gvk::new("", "v1", "Pod")
    }

    #[test]
    fn managed_fields_are_stripped_by_default_and_nothing_else() {
        let transform = Transform::new(&TransformSpec::default(), false, &pod_kind());
        let mut expected = pod();
        expected["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        assert_eq!(apply(&transform, &pod()), expected);
    }

    #[test]
    fn keeping_managed_fields_and_no_paths_is_the_identity() {
        let transform = Transform::new(&spec(&[], &[], true), false, &pod_kind());
        assert!(transform.is_identity());
        let text = r#"{"a" : 1,  "metadata":{"managedFields":[]}}"#;
        let raw: &RawValue = serde_json::from_str(text).unwrap();
        assert_eq!(transform.apply(raw), text, "copied byte for byte");
    }

    #[test]
    fn drop_paths_walk_arrays_and_quoted_keys() {
        let transform = Transform::new(
            &spec(
                &[],
                &[
                    "status",
                    "spec.containers[*].env",
                    r#"metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]"#,
                ],
                false,
            ),
            false,
            &pod_kind(),
        );
        let got = apply(&transform, &pod());
        assert_eq!(
            got,
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "n", "resourceVersion": "7", "annotations": {"keep": "me"}},
                "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "j"}, "odd"]}
            })
        );
    }

    #[test]
    fn keep_paths_keep_identity_and_listed_fields_only() {
        let transform = Transform::new(
            &spec(
                &["spec.containers[*].image", "status.phase"],
                &["metadata.annotations"],
                false,
            ),
            false,
            &pod_kind(),
        );
        assert_eq!(
            apply(&transform, &pod()),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "n", "resourceVersion": "7"},
                "spec": {"containers": [{"image": "i"}, {"image": "j"}, "odd"]},
                "status": {"phase": "Running"}
            })
        );
    }

    #[test]
    fn a_drop_inside_a_kept_path_wins_and_keeping_a_parent_keeps_all_of_it() {
        let transform = Transform::new(
            &spec(
                &["spec", "spec.nodeName"],
                &["spec.containers", "status.phase"],
                true,
            ),
            false,
            &pod_kind(),
        );
        let got = apply(&transform, &pod());
        assert_eq!(got["spec"], json!({"nodeName": "n1"}));
        assert!(got.get("status").is_none(), "status was not kept");
        assert!(
            got["metadata"].get("managedFields").is_some(),
            "kept on request"
        );
    }

    #[test]
    fn metadata_only_keeps_metadata_and_names_the_real_kind() {
        let transform = Transform::new(
            &TransformSpec::default(),
            true,
            &Gvk::new("apps", "v1", "Deployment"),
        );
        let partial = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": "d", "managedFields": [1]}});
        assert_eq!(
            apply(&transform, &partial),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}})
        );
        // A server that ignores the metadata-only Accept header sends the full object: the
        // transform still keeps only what a metadata-only watch promises.
        let full = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1}});
        assert_eq!(
            apply(&transform, &full),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}})
        );
    }

    #[test]
    fn paths_through_scalars_and_escaped_keys_are_copied_faithfully() {
        let transform = Transform::new(
            &spec(&[], &["spec.nodeName.x", "spec.containers.image"], false),
            false,
            &pod_kind(),
        );
        let weird = json!({"metadata": {"name": "q\"uote\u{1}", "managedFields": []}, "spec": {"nodeName": "n", "containers": [1, {"image": 2}]}, "k\\ey": "v\n"});
        let mut expected = weird.clone();
        expected["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        assert_eq!(
            apply(&transform, &weird),
            expected,
            "field steps do not apply to arrays or strings"
        );
    }
}
