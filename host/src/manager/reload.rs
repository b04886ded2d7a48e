//! Hot reload of one plugin (issue 7): a new component, new budgets, new grants or new
//! secondary watches, without restarting the host or the plugin's pool.
//!
//! The new version is built and validated completely before anything changes: the component
//! compiled, new watches subscribed and synced, host calls built. Any failure leaves the old
//! version running and is returned (the caller logs it and shows it). Then the pool's target is
//! swapped: calls in flight finish on the old component and old host services, the next call
//! of every worker takes the new ones. Informers are shared by spec, so a watch whose spec did
//! not change is joined again, not restarted (no relist; its cache is replayed to the queue at
//! low priority); a watch whose spec changed gets a new informer, and the old one stops when its
//! last subscription — the old version's — is dropped.
//!
//! After the switch every object of the primary kind is enqueued at low priority, so each is
//! reconciled by the new version (like a restart would, without the relist).
//!
//! What a running pool cannot change (its primary watch and cache, its queue, its worker count
//! and degraded window) is refused with the field named: those need a restart.

use std::sync::Arc;

use tracing::info;

use super::Manager;
use super::error::{PluginField, StartError};
use super::plugin::{Parts, host_calls, load, watch_field};
use super::services::ReloadLabels;
use super::stats::PluginPhase;
use crate::informer::{Subscription, SyncError};
use crate::ops::config::PluginConfig;

/// What a reload changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reloaded {
    /// The component (or its budgets) was swapped; watches and host services kept.
    Component,
    /// The component and the host services (grants, field manager, secondary watches) were
    /// swapped.
    HostServices,
}

/// Why a reload was refused; the old version keeps running in every case.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("no plugin {0:?} runs in this host (adding or removing plugins needs a restart)")]
    UnknownPlugin(String),
    #[error(
        "plugin {plugin:?}: {field} changed; that needs a restart (the running version is kept)"
    )]
    NeedsRestart { plugin: String, field: &'static str },
    #[error("plugin {plugin:?} is {phase}; it can be reloaded once it runs or stands by")]
    NotRunning { plugin: String, phase: PluginPhase },
    #[error("{0} (the running version is kept)")]
    Invalid(#[source] StartError),
    #[error("{0} (the running version is kept)")]
    Sync(#[source] SyncError),
}

impl Manager {
    /// Reloads the plugin `config.name` with `config`; counted in
    /// `trellis_plugin_reloads_total{plugin, result}`.
    pub async fn reload_plugin(&self, config: &PluginConfig) -> Result<Reloaded, ReloadError> {
        let result = self.try_reload(config).await;
        self.services
            .reloads
            .get_or_create(&ReloadLabels {
                plugin: config.name.clone(),
                result: if result.is_ok() { "ok" } else { "rejected" },
            })
            .inc();
        result
    }

    async fn try_reload(&self, config: &PluginConfig) -> Result<Reloaded, ReloadError> {
        // One reload at a time: two would race to swap the same plugin's parts.
        let _one_at_a_time = self.reloading.lock().await;
        let runner = self
            .runners
            .iter()
            .find(|r| r.name == config.name)
            .ok_or_else(|| ReloadError::UnknownPlugin(config.name.clone()))?;
        let phase = *runner.phase.borrow();
        if !matches!(
            phase,
            PluginPhase::Running | PluginPhase::Standby | PluginPhase::Degraded
        ) {
            return Err(ReloadError::NotRunning {
                plugin: config.name.clone(),
                phase,
            });
        }
        let old = runner.parts();
        let needs_restart = |field| ReloadError::NeedsRestart {
            plugin: config.name.clone(),
            field,
        };
        if old.config.watch != config.watch {
            return Err(needs_restart("watch"));
        }
        if old.config.workers != config.workers {
            return Err(needs_restart("workers"));
        }
        if old.config.degraded_after != config.degraded_after {
            return Err(needs_restart("degradedAfterSeconds"));
        }
        if old.config.queue != config.queue {
            return Err(needs_restart("queue"));
        }
        let at = |field: &str| PluginField {
            file: self.file.clone(),
            index: runner.index,
            plugin: config.name.clone(),
            field: field.to_string(),
        };

        let plugin = load(&self.services, config).await.map_err(|source| {
            ReloadError::Invalid(StartError::Component {
                at: at("component"),
                source,
            })
        })?;

        let same_services = old.config.secondary == config.secondary
            && old.config.permissions == config.permissions
            && old.config.field_manager == config.field_manager;
        if same_services {
            *runner.parts.lock() = Arc::new(Parts {
                config: config.clone(),
                plugin: plugin.clone(),
                host: old.host.clone(),
                subscriptions: old.subscriptions.clone(),
            });
            if let Some(pool) = runner.pool() {
                pool.replace_plugin(plugin);
            }
            runner.requeue_all();
            info!(plugin = %config.name, component = %config.component.display(), "plugin reloaded");
            return Ok(Reloaded::Component);
        }

        // New host services: subscribe the new watches (equal specs join the running
        // informers) and wait until they are synced before switching.
        let mut subscriptions: Vec<Subscription> = Vec::new();
        for (position, (watch, role)) in config.subscriptions().enumerate() {
            let subscription = self
                .services
                .informers
                .subscribe(&config.name, watch, role, runner.sink.clone())
                .await
                .map_err(|source| {
                    ReloadError::Invalid(StartError::Watch {
                        at: at(&watch_field(position)),
                        source,
                    })
                })?;
            subscriptions.push(subscription);
        }
        for subscription in &subscriptions {
            subscription
                .wait_synced()
                .await
                .map_err(ReloadError::Sync)?;
        }
        let host = host_calls(&self.services, config, &subscriptions, &runner.sink).map_err(
            |(field, source)| {
                ReloadError::Invalid(StartError::Caches {
                    at: at(&field),
                    source,
                })
            },
        )?;
        let previous = std::mem::replace(
            &mut *runner.parts.lock(),
            Arc::new(Parts {
                config: config.clone(),
                plugin: plugin.clone(),
                host: host.clone(),
                subscriptions: Arc::new(subscriptions),
            }),
        );
        if let Some(pool) = runner.pool() {
            pool.replace(plugin, host);
        }
        // The old subscriptions go with the old parts once no call holds them.
        drop(previous);
        runner.requeue_all();
        info!(plugin = %config.name, "plugin and its host services reloaded");
        Ok(Reloaded::HostServices)
    }
}
