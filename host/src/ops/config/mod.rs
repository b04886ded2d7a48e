//! The host config file: schema, loading, and validation that reports every mistake at once
//! (issue 6). The schema and every default are documented in docs/config.md.
//!
//! Why it works this way:
//! - **Nothing half-configured.** [`load`] returns a fully validated [`Config`] or every
//!   mistake it found; the host starts from the former only.
//! - **Every mistake at once.** Fixing a config one error per run is slow and maddening, so the
//!   file is parsed to a YAML tree first (a syntax error is the only thing that stops
//!   everything), then the `host` section and each plugin are deserialized separately (a type
//!   error in one does not hide the others), then every semantic check runs on whatever parsed.
//! - **Every mistake placed.** Each [`ConfigError`] names the file, the line and column, the
//!   field with the plugin's name (`plugins[1] (deployment-summary).budgets.fuel`) and what
//!   was expected; see `error` and `yaml`.
//! - **Other modules own their rules.** Watches, budgets, the engine and the queue validate
//!   themselves (`WatchConfig::validate`, `Budgets::validate`, ...); this module places their
//!   errors in the file and checks what spans modules: reads covered by watches, names unique,
//!   files present.
//!
//! Module map: `raw` (the file's serde types and defaults), `yaml` (sections and positions),
//! `error` (paths and errors), `host` and `plugin` (one section each; `guests` is `host.guests`),
//! `grants` (permissions against watches), `names` (Kubernetes name rules), `dev` (the config
//! `trellis dev` runs).

mod dev;
mod error;
mod grants;
mod guests;
mod host;
mod names;
mod plugin;
mod raw;
mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::Value;

pub use dev::{DEV_COMPONENTS, DEV_CONFIG};
pub use error::{ConfigError, ConfigErrors, Location};
pub use host::{HostSettings, LeaderElection};
pub use plugin::{MAX_WORKERS, PluginConfig, Watch};

use error::{Faults, FieldPath};
use raw::{RawHost, RawPlugin};
use yaml::Document;

/// A validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file, absolute.
    pub path: PathBuf,
    pub host: HostSettings,
    /// At least one; names unique.
    pub plugins: Vec<PluginConfig>,
}

impl Config {
    /// The directory relative paths in the file were resolved against.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }

    pub fn plugin(&self, name: &str) -> Option<&PluginConfig> {
        self.plugins.iter().find(|p| p.name == name)
    }
}

/// Reads and validates the config file at `path`.
pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigErrors> {
    let path = path.as_ref();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(e) => {
            let mut faults = Faults::default();
            faults.push(
                FieldPath::root(),
                format!("cannot read the config file: {e}"),
            );
            Err(faults.finish(path, &[], |_| None))
        }
    }
}

/// Validates `text` as the config file at `path` (used in messages, and to resolve relative
/// paths: `trellis dev` parses its embedded config as if it were a file in its directory).
pub fn parse(path: impl AsRef<Path>, text: &str) -> Result<Config, ConfigErrors> {
    let file = path.as_ref();
    let mut faults = Faults::default();
    let doc = match Document::parse(text) {
        Ok(doc) => doc,
        Err(fault) => {
            faults.add(fault);
            return Err(faults.finish(file, &[], |_| None));
        }
    };
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let dir = absolute.parent().unwrap_or(Path::new("/")).to_path_buf();
    let root = FieldPath::root();
    let names = plugin_names(doc.value());

    let plugin_count = check_shape(doc.value(), &mut faults);
    if !doc.value().is_mapping() {
        return Err(faults.finish(file, &names, |path| doc.locate(path)));
    }
    let raw_host = match doc.extract::<Option<RawHost>>(&root.key("host")) {
        Ok(raw) => raw.flatten().unwrap_or_default(),
        Err(fault) => {
            faults.add(fault);
            RawHost::default()
        }
    };
    let host = host::validate(raw_host, &root.key("host"), &dir, &mut faults);

    let mut plugins = Vec::new();
    let mut claims = Vec::new();
    for i in 0..plugin_count {
        let path = root.key("plugins").index(i);
        match doc.extract::<RawPlugin>(&path) {
            Ok(Some(raw)) => {
                claims.push(Claims::of(&path, &raw));
                if let Some(plugin) = plugin::validate(raw, &path, &dir, &host.engine, &mut faults)
                {
                    plugins.push(plugin);
                }
            }
            Ok(None) => {}
            Err(fault) => faults.add(fault),
        }
    }
    check_claims(&claims, &mut faults);
    check_instances(&host, &plugins, &mut faults);

    if !faults.is_empty() {
        return Err(faults.finish(file, &names, |path| doc.locate(path)));
    }
    Ok(Config {
        path: absolute,
        host,
        plugins,
    })
}

/// Every worker holds at most one guest instance, and the sandbox's pool of instances is
/// shared: when the plugins' workers add up to more than `engine.maxInstances`, the calls past
/// it fail as host faults (retried, counted against health) instead of running. That is a
/// sizing mistake, so it is refused at load rather than discovered under load.
fn check_instances(host: &HostSettings, plugins: &[PluginConfig], faults: &mut Faults) {
    let total: u64 = plugins.iter().map(|p| u64::from(p.workers)).sum();
    let slots = u64::from(host.engine.max_instances);
    if total <= slots {
        return;
    }
    let each = plugins
        .iter()
        .map(|p| format!("{} {}", p.name, p.workers))
        .collect::<Vec<_>>()
        .join(", ");
    faults.push(
        FieldPath::root()
            .key("host")
            .key("engine")
            .key("maxInstances"),
        format!(
            "the plugins' workers add up to {total} ({each}), more than the {slots} guest \
             instances the engine may hold at once; raise host.engine.maxInstances to at \
             least {total} or lower some plugin's workers"
        ),
    );
}

/// Each plugin's `name`, when it is a string, to show next to its index in messages.
fn plugin_names(value: &Value) -> Vec<Option<String>> {
    match value.get("plugins") {
        Some(Value::Sequence(plugins)) => plugins
            .iter()
            .map(|p| p.get("name").and_then(Value::as_str).map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The top level: a mapping of `host` and `plugins`, with at least one plugin. Returns how
/// many plugins there are to read.
fn check_shape(value: &Value, faults: &mut Faults) -> usize {
    let root = FieldPath::root();
    let Value::Mapping(top) = value else {
        let found = match value {
            Value::Null => "an empty file".to_string(),
            other => describe(other),
        };
        faults.push(
            root,
            format!("expected a mapping with `plugins` (and optionally `host`), found {found}"),
        );
        return 0;
    };
    for key in top.keys() {
        match key.as_str() {
            Some("host" | "plugins") => {}
            Some(other) => faults.push(
                root.key(other),
                format!("unknown field `{other}`, expected `host` or `plugins`"),
            ),
            None => faults.push(
                root.clone(),
                format!(
                    "unknown key {}, expected `host` or `plugins`",
                    describe(key)
                ),
            ),
        }
    }
    match top.get("plugins") {
        None | Some(Value::Null) => {
            faults.push(
                root,
                "missing field `plugins`: at least one plugin is required",
            );
            0
        }
        Some(Value::Sequence(list)) if list.is_empty() => {
            faults.push(root.key("plugins"), "at least one plugin is required");
            0
        }
        Some(Value::Sequence(list)) => list.len(),
        Some(other) => {
            faults.push(
                root.key("plugins"),
                format!("expected a sequence of plugins, found {}", describe(other)),
            );
            0
        }
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) => format!("number `{n}`"),
        Value::String(s) => format!("string {s:?}"),
        Value::Sequence(_) => "a sequence".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

/// What a plugin claims that others must not claim differently: checked on every plugin that
/// parsed, valid or not, so that a duplicate is reported with the plugin's other mistakes.
struct Claims {
    path: FieldPath,
    name: String,
    field_manager: String,
    /// `plural:` of each grant: (kind, plural, the grant's path).
    plurals: Vec<(crate::cache::Gvk, String, FieldPath)>,
}

impl Claims {
    fn of(path: &FieldPath, raw: &RawPlugin) -> Self {
        let grants = path.key("permissions");
        let read = raw
            .permissions
            .read
            .iter()
            .enumerate()
            .map(|(i, g)| (g.gvk(), g.plural.clone(), grants.key("read").index(i)));
        let write = raw
            .permissions
            .write
            .iter()
            .enumerate()
            .map(|(i, g)| (g.gvk(), g.plural.clone(), grants.key("write").index(i)));
        Self {
            path: path.clone(),
            name: raw.name.clone(),
            field_manager: plugin::field_manager(raw),
            plurals: read
                .chain(write)
                .filter_map(|(gvk, plural, at)| plural.map(|p| (gvk, p, at)))
                .collect(),
        }
    }
}

/// Unique names and field managers (server-side apply tells writers apart by field manager),
/// one plural per kind.
fn check_claims(claims: &[Claims], faults: &mut Faults) {
    for (later, claim) in claims.iter().enumerate() {
        let earlier = &claims[..later];
        if let Some(first) = earlier.iter().find(|c| c.name == claim.name) {
            faults.push(
                claim.path.key("name"),
                format!(
                    "{:?} is also the name of {}: names must be unique",
                    claim.name, first.path
                ),
            );
        }
        // Equal names have equal default field managers: one mistake, reported once.
        let same_manager =
            |c: &&Claims| c.field_manager == claim.field_manager && c.name != claim.name;
        if let Some(first) = earlier.iter().find(same_manager) {
            faults.push(
                claim.path.key("fieldManager"),
                format!(
                    "{:?} is also the field manager of {}: each plugin needs its own, so that \
                     server-side apply tells their fields apart",
                    claim.field_manager, first.path
                ),
            );
        }
    }
    let mut plurals: BTreeMap<&crate::cache::Gvk, (&str, &FieldPath)> = BTreeMap::new();
    for (gvk, plural, at) in claims.iter().flat_map(|c| &c.plurals) {
        match plurals.get(gvk) {
            Some((first, first_at)) if first != plural => faults.push(
                at.key("plural"),
                format!(
                    "{plural:?}, but {first_at} gives {} the plural {first:?}: one kind has one \
                     resource name",
                    grants::kind_name(gvk)
                ),
            ),
            Some(_) => {}
            None => {
                plurals.insert(gvk, (plural, at));
            }
        }
    }
}

/// A file the host will read: it must exist, be a regular file (or a link to one) and open.
fn readable_file(path: &Path) -> Result<(), String> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("{shown} does not exist"));
        }
        Err(e) => return Err(format!("cannot read {shown}: {e}")),
        Ok(meta) if !meta.is_file() => return Err(format!("{shown} is not a file")),
        Ok(_) => {}
    }
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| format!("cannot read {shown}: {e}"))
}
