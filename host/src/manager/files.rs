//! Hot reload from files (issue 7): "replacing a plugin's component file (or its config)
//! reloads it without restarting the host".
//!
//! [`FileWatch`] keeps a content hash of the config file and of every component it names and
//! compares them on each [`poll`](FileWatch::poll) (every 2 s under `trellis run` and
//! `trellis dev`). Content, not modification times: a `touch`, or a ConfigMap volume's atomic
//! symlink swap that leaves the bytes alone, reloads nothing. Polling rather than inotify
//! because ConfigMap volumes replace whole directories through symlinks, which inotify
//! watchers notoriously miss, and two small hashes every two seconds cost nothing.
//!
//! What changed decides what happens: a config that no longer loads is rejected with all its
//! errors (the running version is kept); changed host settings and added or removed plugins
//! need a restart (logged); each plugin whose config entry or component changed is reloaded
//! with [`Manager::reload_plugin`], which validates the new version before switching.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tracing::{error, info, warn};

use super::{Manager, Reloaded};
use crate::ops::config::{self, Config, PluginConfig};

/// How often `trellis run` and `trellis dev` look at the files.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

type Hash = Option<[u8; 32]>;

fn hash(path: &Path) -> Hash {
    std::fs::read(path)
        .ok()
        .map(|bytes| Sha256::digest(&bytes).into())
}

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileReload {
    /// The config file changed and does not load; nothing changed in the host.
    ConfigRejected(String),
    /// Something changed that only a restart applies (host settings, the set of plugins).
    NeedsRestart(String),
    Reloaded {
        plugin: String,
        how: Reloaded,
    },
    /// The new version of a plugin was refused; the running one is kept.
    Rejected {
        plugin: String,
        error: String,
    },
}

/// The files of a running config, as last seen.
#[derive(Debug)]
pub struct FileWatch {
    path: PathBuf,
    config: Config,
    config_hash: Hash,
    components: HashMap<String, Hash>,
}

impl FileWatch {
    /// Starts from the config the manager runs (its file and components as they are now).
    pub fn new(config: Config) -> Self {
        let components = config
            .plugins
            .iter()
            .map(|p| (p.name.clone(), hash(&p.component)))
            .collect();
        Self {
            path: config.path.clone(),
            config_hash: hash(&config.path),
            components,
            config,
        }
    }

    /// Looks at the files once and reloads what changed.
    pub async fn poll(&mut self, manager: &Manager) -> Vec<FileReload> {
        let config_hash = hash(&self.path);
        let config_changed = config_hash != self.config_hash;
        let components_changed = self
            .config
            .plugins
            .iter()
            .any(|p| self.components.get(&p.name) != Some(&hash(&p.component)));
        if !config_changed && !components_changed {
            return Vec::new();
        }
        self.config_hash = config_hash;
        let new = match config::load(&self.path) {
            Ok(config) => config,
            Err(errors) => {
                error!(config = %self.path.display(), "config change rejected; the running version is kept:\n{errors}");
                // Components of the running config are looked at again at the next change.
                return vec![FileReload::ConfigRejected(errors.to_string())];
            }
        };
        let mut done = Vec::new();
        if format!("{:?}", new.host) != format!("{:?}", self.config.host) {
            let what = "host settings changed; restart to apply them".to_string();
            warn!(config = %self.path.display(), "{what}");
            done.push(FileReload::NeedsRestart(what));
        }
        let names = |c: &Config| c.plugins.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        if names(&new) != names(&self.config) {
            let what = format!(
                "plugins changed from {:?} to {:?}; restart to add or remove plugins",
                names(&self.config),
                names(&new)
            );
            warn!(config = %self.path.display(), "{what}");
            done.push(FileReload::NeedsRestart(what));
        }
        for plugin in &new.plugins {
            let Some(index) = self
                .config
                .plugins
                .iter()
                .position(|p| p.name == plugin.name)
            else {
                continue;
            };
            let component = hash(&plugin.component);
            let unchanged = same(&self.config.plugins[index], plugin)
                && self.components.get(&plugin.name) == Some(&component);
            if unchanged {
                continue;
            }
            // Seen, whatever the outcome: a rejected version is not retried until it changes.
            self.components.insert(plugin.name.clone(), component);
            match manager.reload_plugin(plugin).await {
                Ok(how) => {
                    info!(plugin = %plugin.name, ?how, "plugin reloaded from its files");
                    self.config.plugins[index] = plugin.clone();
                    done.push(FileReload::Reloaded {
                        plugin: plugin.name.clone(),
                        how,
                    });
                }
                Err(error) => {
                    error!(plugin = %plugin.name, %error, "plugin reload rejected");
                    done.push(FileReload::Rejected {
                        plugin: plugin.name.clone(),
                        error: error.to_string(),
                    });
                }
            }
        }
        done
    }

    /// Polls every `every` until dropped (run it in a `select!` with the host's stop signal).
    pub async fn run(mut self, manager: &Manager, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            self.poll(manager).await;
        }
    }
}

/// Whether two entries of one plugin are the same (the config types compare by value through
/// their debug form, which covers every field).
fn same(old: &PluginConfig, new: &PluginConfig) -> bool {
    format!("{old:?}") == format!("{new:?}")
}
