//! A plugin's `permissions`, checked against its watches (DESIGN invariant 5 starts here).
//!
//! Reads are answered from the cache only, and the cache holds only what the plugin's watches
//! bring in, so a read grant must be covered by a watch of the same kind: every namespace it
//! names watched, and a grant for all namespaces needs a watch of all namespaces. A grant
//! that no watch covers would be refused at every read; it is a config mistake, not a
//! run-time surprise. One grant per kind (per direction), so that `Permissions::read_scope`
//! never has to merge; write grants must grant something.

use super::error::{Faults, FieldPath};
use super::names::dns1123_label;
use super::plugin::Watch;
use crate::cache::Gvk;
use crate::informer::WatchConfig;
use crate::permissions::{Permissions, Verb};

/// A kind as operators write it: `apps/v1 Deployment`.
pub(crate) fn kind_name(gvk: &Gvk) -> String {
    format!("{} {}", gvk.api_version(), gvk.kind)
}

/// `all namespaces`, `namespace a`, `namespaces a, b`.
pub(crate) fn scope_name(namespaces: &[String]) -> String {
    match namespaces {
        [] => "all namespaces".to_string(),
        [one] => format!("namespace {one}"),
        many => format!("namespaces {}", many.join(", ")),
    }
}

/// Checks `permissions` (at `base`) against the plugin's valid watches, named as in messages
/// (`watch`, `secondary[0]`), and normalizes write verbs (sorted, unique).
pub(crate) fn validate(
    permissions: &mut Permissions,
    watches: &[(String, &Watch)],
    base: &FieldPath,
    faults: &mut Faults,
) {
    for (i, grant) in permissions.read.iter().enumerate() {
        let path = base.key("read").index(i);
        let usable = check_kind(
            &grant.api_version,
            &grant.kind,
            &grant.namespaces,
            &path,
            faults,
        );
        check_plural(grant.plural.as_deref(), &path, faults);
        let gvk = grant.gvk();
        if let Some(first) = permissions.read[..i].iter().position(|g| g.gvk() == gvk) {
            faults.push(
                path.clone(),
                format!(
                    "a second read grant for {} (the first is read[{first}]): list all its \
                     namespaces in one grant",
                    kind_name(&gvk)
                ),
            );
        }
        if usable && let Err(why) = covered(&gvk, &grant.namespaces, watches) {
            faults.push(path, why);
        }
    }
    for (i, grant) in permissions.write.iter_mut().enumerate() {
        grant.verbs.sort_unstable();
        grant.verbs.dedup();
        let path = base.key("write").index(i);
        check_kind(
            &grant.api_version,
            &grant.kind,
            &grant.namespaces,
            &path,
            faults,
        );
        check_plural(grant.plural.as_deref(), &path, faults);
        if grant.verbs.is_empty() {
            let all: Vec<&str> = Verb::ALL.iter().map(|v| v.as_str()).collect();
            faults.push(
                path.key("verbs"),
                format!("grants nothing: list at least one of {}", all.join(", ")),
            );
        }
    }
    for (i, grant) in permissions.write.iter().enumerate() {
        let gvk = grant.gvk();
        if let Some(first) = permissions.write[..i].iter().position(|g| g.gvk() == gvk) {
            faults.push(
                base.key("write").index(i),
                format!(
                    "a second write grant for {} (the first is write[{first}]): one grant per \
                     kind, with all its verbs and namespaces",
                    kind_name(&gvk)
                ),
            );
        }
    }
}

/// The same rules as a watch's `apiVersion`, `kind` and `namespaces` (the informer's, so the
/// messages are the same too). Returns whether all three are usable (coverage is checked only
/// then, so one mistake is not reported twice).
fn check_kind(
    api_version: &str,
    kind: &str,
    namespaces: &[String],
    path: &FieldPath,
    faults: &mut Faults,
) -> bool {
    let mut probe = WatchConfig::new(api_version, kind);
    probe.namespaces = namespaces.to_vec();
    let errors = probe.validate().err().unwrap_or_default();
    let ok = errors.is_empty();
    for e in errors {
        faults.push(path.join(&e.field), e.message);
    }
    ok
}

fn check_plural(plural: Option<&str>, path: &FieldPath, faults: &mut Faults) {
    if let Some(plural) = plural
        && let Err(why) = dns1123_label(plural)
    {
        faults.push(
            path.key("plural"),
            format!("{why} (a resource name, e.g. networkpolicies)"),
        );
    }
}

/// Whether the watches of `kind` bring into the cache every object a read grant of
/// `namespaces` allows (empty: all namespaces).
fn covered(kind: &Gvk, namespaces: &[String], watches: &[(String, &Watch)]) -> Result<(), String> {
    let of_kind: Vec<&(String, &Watch)> =
        watches.iter().filter(|(_, w)| w.kind() == kind).collect();
    if of_kind.is_empty() {
        return Err(format!(
            "reads {}, which no watch of this plugin covers: reads are answered from the \
             cache, which holds only watched objects (add a secondary watch of this kind)",
            kind_name(kind)
        ));
    }
    if of_kind.iter().any(|(_, w)| w.namespaces().is_empty()) {
        return Ok(());
    }
    let mut watched: Vec<String> = of_kind
        .iter()
        .flat_map(|(_, w)| w.namespaces().iter().cloned())
        .collect();
    watched.sort();
    watched.dedup();
    let names: Vec<&str> = of_kind.iter().map(|(name, _)| name.as_str()).collect();
    if namespaces.is_empty() {
        return Err(format!(
            "reads {} in all namespaces, but {} watch{} it only in {}: list those namespaces \
             here, or watch all namespaces",
            kind_name(kind),
            names.join(" and "),
            if names.len() == 1 { "es" } else { "" },
            scope_name(&watched)
        ));
    }
    let missing: Vec<String> = namespaces
        .iter()
        .filter(|n| !watched.contains(n))
        .cloned()
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "reads {} in {}, which no watch of this plugin covers ({} watch{} {})",
            kind_name(kind),
            scope_name(&missing),
            names.join(" and "),
            if names.len() == 1 { "es" } else { "" },
            scope_name(&watched)
        ))
    }
}
