//! Cache behaviour: reads, ordering, scoping and index consistency under any sequence of
//! inserts, updates and deletes (a property test against a brute-force model).

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn node_index() -> Vec<IndexSpec> {
    vec![
        IndexSpec {
            name: "node".into(),
            path: JsonPath::parse("spec.nodeName").unwrap(),
        },
        IndexSpec {
            name: "image".into(),
            path: JsonPath::parse("spec.containers[*].image").unwrap(),
        },
    ]
}

fn cache() -> Cache {
    Cache::new(Gvk::new("", "v1", "Pod"), node_index())
}

#[derive(Debug, Clone)]
struct Pod {
    namespace: &'static str,
    name: &'static str,
    labels: BTreeMap<&'static str, &'static str>,
    owner: Option<&'static str>,
    node: Option<&'static str>,
    images: Vec<&'static str>,
    rv: u32,
}

impl Pod {
    fn json(&self) -> String {
        let mut metadata = json!({
            "name": self.name, "namespace": self.namespace,
            "resourceVersion": self.rv.to_string(), "labels": self.labels,
        });
        if let Some(owner) = self.owner {
            metadata["ownerReferences"] = json!([
                {"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "not-controller"},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": owner, "controller": true},
            ]);
        }
        let containers: Vec<_> = self.images.iter().map(|i| json!({"image": i})).collect();
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
               "spec": {"nodeName": self.node, "containers": containers}})
        .to_string()
    }

    fn key(&self) -> ObjectKey {
        ObjectKey::namespaced(self.namespace, self.name)
    }
}

fn insert(cache: &Cache, pod: &Pod) -> Option<ObjectRef> {
    let text = pod.json();
    let raw: &RawValue = serde_json::from_str(&text).unwrap();
    let meta = Metadata::parse(&text).unwrap();
    cache
        .upsert(cache.build(raw, meta, JsonText::from(text.clone())))
        .old
}

fn pod(namespace: &'static str, name: &'static str) -> Pod {
    Pod {
        namespace,
        name,
        labels: BTreeMap::new(),
        owner: None,
        node: None,
        images: vec![],
        rv: 1,
    }
}

fn names(objects: &[ObjectRef]) -> Vec<String> {
    objects.iter().map(|o| o.key().to_string()).collect()
}

#[test]
fn get_returns_the_stored_bytes_and_list_orders_by_namespace_then_name() {
    let cache = cache();
    for (ns, name) in [("b", "x"), ("a", "z"), ("a", "b"), ("c", "a")] {
        insert(&cache, &pod(ns, name));
    }
    let got = cache.get(&ObjectKey::namespaced("a", "z")).unwrap();
    assert_eq!(got.json().as_str(), pod("a", "z").json());
    assert!(cache.get(&ObjectKey::namespaced("a", "nope")).is_none());
    let all = cache.list(None, &LabelSelector::everything());
    assert_eq!(names(&all), ["a/b", "a/z", "b/x", "c/a"]);
    let a = cache.list(Some("a"), &LabelSelector::everything());
    assert_eq!(names(&a), ["a/b", "a/z"]);
    assert!(
        cache
            .list(Some("zz"), &LabelSelector::everything())
            .is_empty()
    );
    assert_eq!(names(&cache.lookup(NAMESPACE, "b").unwrap()), ["b/x"]);
    assert_eq!(cache.keys().len(), 4);
}

#[test]
fn list_by_selector_uses_labels_and_respects_namespace() {
    let cache = cache();
    let labelled = |ns, name, app, tier| {
        let mut p = pod(ns, name);
        p.labels.insert("app", app);
        p.labels.insert("tier", tier);
        p
    };
    insert(&cache, &labelled("a", "1", "web", "front"));
    insert(&cache, &labelled("a", "2", "web", "back"));
    insert(&cache, &labelled("b", "3", "web", "front"));
    insert(&cache, &labelled("b", "4", "db", "back"));
    let select = |ns, s: &str| names(&cache.list(ns, &LabelSelector::parse(s).unwrap()));
    assert_eq!(select(None, "app=web"), ["a/1", "a/2", "b/3"]);
    assert_eq!(select(Some("a"), "app=web,tier!=back"), ["a/1"]);
    assert_eq!(
        select(None, "tier in (front,back),app notin (web)"),
        ["b/4"]
    );
    assert_eq!(select(None, "!tier"), Vec::<String>::new());
    assert_eq!(select(Some("b"), "app"), ["b/3", "b/4"]);
}

#[test]
fn lookup_errors_name_the_index_and_what_exists() {
    let cache = cache();
    let err = cache.lookup("byNode", "n1").unwrap_err();
    assert_eq!(
        err.to_string(),
        "no index \"byNode\" for /v1, Kind=Pod; available: image, label, namespace, node, owner"
    );
    let err = cache.lookup(LABEL, "novalue").unwrap_err();
    assert_eq!(
        err,
        CacheError::BadLabelValue {
            value: "novalue".into()
        }
    );
}

#[test]
fn an_update_moves_the_object_between_index_values() {
    let cache = cache();
    let mut p = pod("a", "p");
    p.node = Some("n1");
    p.owner = Some("rs-1");
    p.labels.insert("app", "web");
    p.images = vec!["nginx", "sidecar", "nginx"];
    insert(&cache, &p);
    assert_eq!(names(&cache.lookup("node", "n1").unwrap()), ["a/p"]);
    assert_eq!(
        names(&cache.lookup("image", "nginx").unwrap()),
        ["a/p"],
        "values deduplicated"
    );
    assert_eq!(names(&cache.lookup(OWNER, "rs-1").unwrap()), ["a/p"]);
    assert!(
        cache.lookup(OWNER, "not-controller").unwrap().is_empty(),
        "only the controller"
    );

    p.node = Some("n2");
    p.owner = Some("rs-2");
    p.labels.insert("app", "api");
    p.images = vec!["sidecar"];
    p.rv = 2;
    let old = insert(&cache, &p).unwrap();
    assert_eq!(old.resource_version(), "1");
    assert!(cache.lookup("node", "n1").unwrap().is_empty());
    assert!(cache.lookup("image", "nginx").unwrap().is_empty());
    assert!(cache.lookup(OWNER, "rs-1").unwrap().is_empty());
    assert!(cache.lookup(LABEL, "app=web").unwrap().is_empty());
    assert_eq!(names(&cache.lookup("node", "n2").unwrap()), ["a/p"]);
    assert_eq!(names(&cache.lookup(LABEL, "app=api").unwrap()), ["a/p"]);
    assert_eq!(cache.len(), 1);

    cache.remove(&p.key()).unwrap();
    assert!(cache.lookup("node", "n2").unwrap().is_empty());
    assert!(cache.lookup("image", "sidecar").unwrap().is_empty());
    assert_eq!(cache.bytes(), 0);
    assert_eq!(cache.store.read().index_sizes(), (0, 0, vec![0, 0]));
    assert!(
        cache.remove(&p.key()).is_none(),
        "a second delete is a no-op"
    );
}

#[test]
fn remove_unless_only_touches_its_namespace() {
    let cache = cache();
    for (ns, name) in [("a", "1"), ("a", "2"), ("b", "1"), ("b", "2")] {
        insert(&cache, &pod(ns, name));
    }
    let removed = cache.remove_unless(Some("a"), |key| key.name() == "2");
    assert_eq!(names(&removed), ["a/1"]);
    assert_eq!(
        names(&cache.list(None, &LabelSelector::everything())),
        ["a/2", "b/1", "b/2"]
    );
    let removed = cache.remove_unless(None, |_| false);
    assert_eq!(removed.len(), 3);
    assert!(cache.is_empty());
    assert_eq!(cache.bytes(), 0);
}

#[test]
fn bytes_track_inserts_replacements_and_deletes() {
    let cache = cache();
    let mut p = pod("a", "p");
    insert(&cache, &p);
    let one = cache.bytes();
    assert!(
        one > p.json().len(),
        "the JSON and the parsed fields are counted"
    );
    p.labels.insert("a-long-label-key", "and-a-long-value");
    p.rv = 2;
    insert(&cache, &p);
    assert!(cache.bytes() > one);
    assert_eq!(cache.len(), 1);
    cache.remove(&p.key());
    assert_eq!(cache.bytes(), 0);
}

#[test]
fn many_deletes_give_slots_back() {
    let cache = cache();
    let names: Vec<&'static str> = (0..3000)
        .map(|i| &*Box::leak(format!("p{i}").into_boxed_str()))
        .collect();
    for name in &names {
        insert(&cache, &pod("a", name));
    }
    for name in &names[10..] {
        cache.remove(&ObjectKey::namespaced("a", name));
    }
    assert_eq!(
        cache.store.read().slots_len(),
        10,
        "the empty tail of the slot table is released"
    );
    for name in &names[..10] {
        assert!(
            cache.get(&ObjectKey::namespaced("a", name)).is_some(),
            "survivors still readable"
        );
    }
    // Deleting from the front leaves holes; new objects fill the lowest holes first.
    for name in &names[..5] {
        cache.remove(&ObjectKey::namespaced("a", name));
    }
    insert(&cache, &pod("b", "new"));
    assert_eq!(
        cache.store.read().slots_len(),
        10,
        "a hole was reused, the table did not grow"
    );
    assert_eq!(cache.len(), 6);
}

const NAMESPACES: [&str; 2] = ["a", "b"];
const NAMES: [&str; 4] = ["p0", "p1", "p2", "p3"];
const VALUES: [&str; 3] = ["x", "y", "z"];

fn arb_pod() -> impl Strategy<Value = Pod> {
    (
        0..NAMESPACES.len(),
        0..NAMES.len(),
        prop::option::of(0..VALUES.len()),
        prop::option::of(0..VALUES.len()),
        prop::option::of(0..VALUES.len()),
        prop::collection::vec(0..VALUES.len(), 0..3),
        1u32..1000,
    )
        .prop_map(|(ns, name, label, owner, node, images, rv)| {
            let mut p = pod(NAMESPACES[ns], NAMES[name]);
            if let Some(l) = label {
                p.labels.insert("app", VALUES[l]);
            }
            p.owner = owner.map(|o| VALUES[o]);
            p.node = node.map(|n| VALUES[n]);
            p.images = images.into_iter().map(|i| VALUES[i]).collect();
            p.rv = rv;
            p
        })
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(Pod),
    Remove(usize, usize),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => arb_pod().prop_map(Op::Upsert),
        1 => (0..NAMESPACES.len(), 0..NAMES.len()).prop_map(|(n, m)| Op::Remove(n, m)),
    ]
}

proptest! {
    /// Whatever the sequence of writes, every index answers exactly what a scan of the live
    /// objects answers, and the byte count matches the live objects.
    #[test]
    fn indexes_agree_with_a_scan_after_any_writes(ops in prop::collection::vec(arb_op(), 1..60)) {
        let cache = cache();
        let mut model: BTreeMap<ObjectKey, Pod> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Upsert(p) => { insert(&cache, &p); model.insert(p.key(), p); }
                Op::Remove(n, m) => {
                    let key = ObjectKey::namespaced(NAMESPACES[n], NAMES[m]);
                    prop_assert_eq!(cache.remove(&key).is_some(), model.remove(&key).is_some());
                }
            }
        }
        let expect = |f: &dyn Fn(&Pod) -> bool| -> Vec<String> {
            model.values().filter(|p| f(p)).map(|p| p.key().to_string()).collect()
        };
        for value in VALUES {
            prop_assert_eq!(names(&cache.lookup("node", value).unwrap()), expect(&|p| p.node == Some(value)));
            prop_assert_eq!(names(&cache.lookup("image", value).unwrap()), expect(&|p| p.images.contains(&value)));
            prop_assert_eq!(names(&cache.lookup(OWNER, value).unwrap()), expect(&|p| p.owner == Some(value)));
            prop_assert_eq!(
                names(&cache.lookup(LABEL, &format!("app={value}")).unwrap()),
                expect(&|p| p.labels.get("app") == Some(&value))
            );
            let selector = LabelSelector::parse(&format!("app={value}")).unwrap();
            prop_assert_eq!(names(&cache.list(Some("a"), &selector)),
                expect(&|p| p.namespace == "a" && p.labels.get("app") == Some(&value)));
        }
        for ns in NAMESPACES {
            prop_assert_eq!(names(&cache.lookup(NAMESPACE, ns).unwrap()), expect(&|p| p.namespace == ns));
        }
        let survivors: Vec<String> = cache.keys().iter().map(ToString::to_string).collect();
        prop_assert_eq!(survivors, expect(&|_| true));
        for p in model.values() {
            let stored = cache.get(&p.key()).unwrap();
            prop_assert_eq!(stored.json().as_str(), p.json());
        }
        let keys: Vec<ObjectKey> = model.keys().cloned().collect();
        for key in keys { cache.remove(&key); }
        prop_assert_eq!(cache.bytes(), 0);
        prop_assert_eq!(cache.store.read().index_sizes(), (0, 0, vec![0, 0]));
    }
}
