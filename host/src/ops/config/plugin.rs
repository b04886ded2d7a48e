//! One entry of `plugins`: validated into a [`PluginConfig`] whose every field is usable as is
//! (component path absolute, watches validated, queue built, budgets checked against the
//! engine, permissions checked against the watches).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{Faults, FieldPath};
use super::grants;
use super::names::dns1123_label;
use super::raw::{RawPlugin, RawQueue};
use super::readable_file;
use crate::cache::Gvk;
use crate::informer::{Role, ValidWatch, WatchConfig};
use crate::permissions::Permissions;
use crate::queue::{BackoffConfig, QueueConfig, QueueError};
use crate::sandbox::{Budgets, EngineConfig};

/// The most workers one plugin may have: more would only queue on the engine's instance pool
/// and the machine's cores.
pub const MAX_WORKERS: u32 = 64;

/// Kubernetes refuses field managers longer than this.
const MAX_FIELD_MANAGER: usize = 128;

/// One plugin, ready to run.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// A DNS-1123 label, unique in the config.
    pub name: String,
    /// The component file, absolute.
    pub component: PathBuf,
    /// Server-side apply field manager (`trellis-<name>` unless configured).
    pub field_manager: String,
    /// The primary watch: the kind this plugin reconciles.
    pub watch: Watch,
    /// Watches whose objects map to primary keys.
    pub secondary: Vec<Watch>,
    /// Concurrent reconciles, 1..=[`MAX_WORKERS`].
    pub workers: u32,
    /// Per call, validated against the engine.
    pub budgets: Budgets,
    /// The plugin's queue, validated.
    pub queue: QueueConfig,
    /// Failing every call this long makes the plugin reported as degraded.
    pub degraded_after: Duration,
    /// What the plugin may read and write; every read grant is covered by a watch, write
    /// grants have their verbs sorted and unique.
    pub permissions: Permissions,
}

/// A watch as written (what `Informers::subscribe` takes) and as validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    pub config: WatchConfig,
    pub valid: ValidWatch,
}

impl Watch {
    pub fn kind(&self) -> &Gvk {
        &self.valid.spec.kind
    }

    /// Watched namespaces; empty: all namespaces (and cluster-scoped kinds).
    pub fn namespaces(&self) -> &[String] {
        &self.valid.spec.namespaces
    }
}

impl PluginConfig {
    /// The primary watch, then the secondaries.
    pub fn watches(&self) -> impl Iterator<Item = &Watch> {
        std::iter::once(&self.watch).chain(&self.secondary)
    }

    /// Every watch with the role to subscribe it with.
    pub fn subscriptions(&self) -> impl Iterator<Item = (&WatchConfig, Role)> {
        let primary = self.watch.kind().clone();
        std::iter::once((&self.watch.config, Role::Primary)).chain(self.secondary.iter().map(
            move |w| {
                (
                    &w.config,
                    Role::Secondary {
                        primary: primary.clone(),
                    },
                )
            },
        ))
    }

    /// The primary kind.
    pub fn kind(&self) -> &Gvk {
        self.watch.kind()
    }
}

/// Checks the plugin at `base` (`plugins[i]`); `None` when anything is wrong (in `faults`).
pub(crate) fn validate(
    raw: RawPlugin,
    base: &FieldPath,
    dir: &Path,
    engine: &EngineConfig,
    faults: &mut Faults,
) -> Option<PluginConfig> {
    let before = faults.len();
    if let Err(why) = dns1123_label(&raw.name) {
        faults.push(base.key("name"), why);
    }
    let component = dir.join(&raw.component);
    if let Err(why) = readable_file(&component) {
        faults.push(base.key("component"), why);
    }
    let field_manager = field_manager(&raw);
    if raw.field_manager.is_some() {
        check_field_manager(&field_manager, &raw.name, &base.key("fieldManager"), faults);
    }
    if !(1..=MAX_WORKERS).contains(&raw.workers) {
        faults.push(
            base.key("workers"),
            format!("{} is not in 1..={MAX_WORKERS}", raw.workers),
        );
    }
    if let Err(e) = raw.budgets.validate(engine) {
        faults.push(base.join(e.field), e.problem);
    }
    let queue = queue(&raw.name, &raw.queue, &base.key("queue"), faults);
    if raw.degraded_after_seconds == 0 {
        faults.push(
            base.key("degradedAfterSeconds"),
            "must be at least 1 (the default is 300)",
        );
    }

    let watches = Watches::validate(&raw, base, faults);
    let mut permissions = raw.permissions;
    grants::validate(
        &mut permissions,
        &watches.named(),
        &base.key("permissions"),
        faults,
    );

    if faults.len() > before {
        return None;
    }
    Some(PluginConfig {
        name: raw.name,
        component,
        field_manager,
        watch: watches.primary?,
        secondary: watches.secondary.into_iter().collect::<Option<_>>()?,
        workers: raw.workers,
        budgets: raw.budgets,
        queue,
        degraded_after: Duration::from_secs(raw.degraded_after_seconds),
        permissions,
    })
}

/// The configured field manager, or `trellis-<name>`.
pub(crate) fn field_manager(raw: &RawPlugin) -> String {
    raw.field_manager
        .clone()
        .unwrap_or_else(|| format!("trellis-{}", raw.name))
}

fn check_field_manager(manager: &str, plugin: &str, path: &FieldPath, faults: &mut Faults) {
    if manager.is_empty()
        || manager.len() > MAX_FIELD_MANAGER
        || manager.chars().any(char::is_control)
    {
        faults.push(
            path.clone(),
            format!(
                "{manager:?} must be 1 to {MAX_FIELD_MANAGER} printable characters; leave it \
                 out for trellis-{plugin}"
            ),
        );
    }
}

/// A plugin's watches, each validated (`None`: invalid, its mistakes recorded).
struct Watches {
    primary: Option<Watch>,
    secondary: Vec<Option<Watch>>,
}

impl Watches {
    /// Validates each watch, the mapping rules (none on the primary, one on each secondary)
    /// and that no two watches overlap.
    fn validate(raw: &RawPlugin, base: &FieldPath, faults: &mut Faults) -> Self {
        let primary = watch(&raw.watch, &base.key("watch"), faults);
        if raw.watch.mapping.is_some() {
            faults.push(
                base.key("watch").key("mapping"),
                "a primary watch enqueues its own objects' keys: mapping is for secondary watches",
            );
        }
        let mut secondary = Vec::new();
        for (i, config) in raw.secondary.iter().enumerate() {
            let path = base.key("secondary").index(i);
            if config.mapping.is_none() {
                faults.push(
                    path.key("mapping"),
                    "a secondary watch needs a mapping to primary keys (controllerOwner, label \
                     or both)",
                );
            }
            secondary.push(watch(config, &path, faults));
        }
        let watches = Self { primary, secondary };
        check_overlaps(base, &watches.named(), faults);
        watches
    }

    /// The valid watches with their names in messages (`watch`, `secondary[0]`), which are
    /// also their paths under the plugin.
    fn named(&self) -> Vec<(String, &Watch)> {
        let secondary = self.secondary.iter().enumerate();
        std::iter::once(("watch".to_string(), self.primary.as_ref()))
            .chain(secondary.map(|(i, w)| (format!("secondary[{i}]"), w.as_ref())))
            .filter_map(|(name, w)| w.map(|w| (name, w)))
            .collect()
    }
}

fn watch(config: &WatchConfig, path: &FieldPath, faults: &mut Faults) -> Option<Watch> {
    match config.validate() {
        Ok(valid) => Some(Watch {
            config: config.clone(),
            valid,
        }),
        Err(errors) => {
            for e in errors {
                faults.push(path.join(&e.field), e.message);
            }
            None
        }
    }
}

/// Two watches of one plugin on the same kind and overlapping namespaces would give it two
/// caches to answer one read from, and deliver each event twice.
fn check_overlaps(base: &FieldPath, watches: &[(String, &Watch)], faults: &mut Faults) {
    for (later, (name, watch)) in watches.iter().enumerate() {
        let earlier = watches[..later].iter().find(|(_, other)| {
            other.kind() == watch.kind() && overlap(other.namespaces(), watch.namespaces())
        });
        if let Some((other, _)) = earlier {
            faults.push(
                base.join(name),
                format!(
                    "watches {} in {}, which {other} watches already: a plugin watches a kind \
                     at most once per namespace (merge the watches, or split their namespaces)",
                    grants::kind_name(watch.kind()),
                    grants::scope_name(watch.namespaces()),
                ),
            );
        }
    }
}

fn overlap(a: &[String], b: &[String]) -> bool {
    a.is_empty() || b.is_empty() || a.iter().any(|n| b.contains(n))
}

/// The queue section as a [`QueueConfig`], validated by the queue's own rules; its field names
/// are translated to the config's.
fn queue(plugin: &str, raw: &RawQueue, base: &FieldPath, faults: &mut Faults) -> QueueConfig {
    let mut config = QueueConfig::new(plugin);
    config.backoff = BackoffConfig {
        base: Duration::from_millis(raw.backoff.base_ms),
        cap: Duration::from_millis(raw.backoff.cap_ms),
        jitter: raw.backoff.jitter,
    };
    config.retry_limit = raw.retry_limit.as_ref().map(Into::into);
    config.overall_limit = raw.overall_limit.as_ref().map(Into::into);
    config.aging = Duration::from_millis(raw.aging_ms);
    config.fairness = raw.fairness;
    // The plugin's name is checked on its own; an empty one must not hide the queue's fields.
    if plugin.is_empty() {
        config.plugin = "-".into();
        config.name = "-".into();
    }
    if let Err(QueueError::Invalid { field, problem, .. }) = config.validate() {
        let field = match field {
            "backoff.base" => "backoff.baseMs",
            "backoff.cap" => "backoff.capMs",
            "retry_limit.qps" => "retryLimit.qps",
            "retry_limit.burst" => "retryLimit.burst",
            "overall_limit.qps" => "overallLimit.qps",
            "overall_limit.burst" => "overallLimit.burst",
            "aging" => "agingMs",
            other => other,
        };
        faults.push(base.join(field), problem);
    }
    config.plugin = plugin.to_string();
    config.name = plugin.to_string();
    config
}
