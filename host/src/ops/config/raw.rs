//! The config file's sections as serde reads them: camelCase keys, unknown keys rejected, every
//! optional field with its default here and nowhere else. Validation (`host`, `plugin`) turns
//! them into the typed settings; nothing outside this module sees these structs.
//!
//! Watches, budgets, the engine and permissions are the other modules' own serde types,
//! embedded as they are.

use std::path::PathBuf;

use serde::Deserialize;

use crate::informer::WatchConfig;
use crate::permissions::Permissions;
use crate::queue::{BackoffConfig, DEFAULT_AGING, RateLimit};
use crate::sandbox::{Budgets, EngineConfig};
use crate::worker::Nice;

pub(crate) const DEFAULT_METRICS_ADDRESS: &str = "127.0.0.1:9090";
pub(crate) const DEFAULT_CACHE_SYNC_TIMEOUT_SECONDS: u64 = 120;
pub(crate) const DEFAULT_SHUTDOWN_TIMEOUT_SECONDS: u64 = 30;
pub(crate) const DEFAULT_LEASE_NAME: &str = "trellis";
/// controller-runtime's defaults: lease 15 s, renew deadline 10 s, retry period 2 s.
pub(crate) const DEFAULT_LEASE_DURATION_SECONDS: u64 = 15;
pub(crate) const DEFAULT_RENEW_DEADLINE_SECONDS: u64 = 10;
pub(crate) const DEFAULT_RETRY_PERIOD_SECONDS: u64 = 2;
pub(crate) const DEFAULT_WORKERS: u32 = 4;
pub(crate) const DEFAULT_DEGRADED_AFTER_SECONDS: u64 = 300;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawHost {
    /// `null` or `""`: no HTTP endpoint.
    #[serde(default = "default_metrics_address")]
    pub metrics_address: Option<String>,
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    #[serde(default)]
    pub context: Option<String>,
    #[serde(default = "default_cache_sync_timeout")]
    pub cache_sync_timeout_seconds: u64,
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout_seconds: u64,
    #[serde(default)]
    pub engine: EngineConfig,
    #[serde(default)]
    pub leader_election: Option<RawLeaderElection>,
    #[serde(default)]
    pub guests: RawGuests,
}

impl Default for RawHost {
    fn default() -> Self {
        Self {
            metrics_address: default_metrics_address(),
            kubeconfig: None,
            context: None,
            cache_sync_timeout_seconds: DEFAULT_CACHE_SYNC_TIMEOUT_SECONDS,
            shutdown_timeout_seconds: DEFAULT_SHUTDOWN_TIMEOUT_SECONDS,
            engine: EngineConfig::default(),
            leader_election: None,
            guests: RawGuests::default(),
        }
    }
}

/// `host.guests`. The executor is a string and the numbers are signed, so that an unknown
/// executor or a negative value is a validation mistake reported beside the others, rather
/// than a type error that hides the rest of the `host` section.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawGuests {
    #[serde(default = "default_guest_executor")]
    pub executor: String,
    /// `None` (absent or `null`): half the cores.
    #[serde(default)]
    pub threads: Option<i64>,
    #[serde(default = "default_guest_nice")]
    pub nice: i64,
}

impl Default for RawGuests {
    fn default() -> Self {
        Self {
            executor: default_guest_executor(),
            threads: None,
            nice: default_guest_nice(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawLeaderElection {
    #[serde(default = "default_lease_name")]
    pub lease_name: String,
    #[serde(default)]
    pub lease_namespace: Option<String>,
    #[serde(default)]
    pub identity: Option<String>,
    #[serde(default = "default_lease_duration")]
    pub lease_duration_seconds: u64,
    #[serde(default = "default_renew_deadline")]
    pub renew_deadline_seconds: u64,
    #[serde(default = "default_retry_period")]
    pub retry_period_seconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawPlugin {
    pub name: String,
    pub component: PathBuf,
    #[serde(default)]
    pub field_manager: Option<String>,
    pub watch: WatchConfig,
    #[serde(default)]
    pub secondary: Vec<WatchConfig>,
    #[serde(default = "default_workers")]
    pub workers: u32,
    #[serde(default)]
    pub budgets: Budgets,
    #[serde(default)]
    pub queue: RawQueue,
    #[serde(default = "default_degraded_after")]
    pub degraded_after_seconds: u64,
    #[serde(default)]
    pub permissions: Permissions,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawQueue {
    #[serde(default)]
    pub backoff: RawBackoff,
    /// Absent: client-go's 10 qps / burst 100; `null`: no bucket on retries.
    #[serde(default = "default_retry_limit")]
    pub retry_limit: Option<RawRate>,
    #[serde(default)]
    pub overall_limit: Option<RawRate>,
    #[serde(default = "default_aging_ms")]
    pub aging_ms: u64,
    #[serde(default)]
    pub fairness: bool,
}

impl Default for RawQueue {
    fn default() -> Self {
        Self {
            backoff: RawBackoff::default(),
            retry_limit: default_retry_limit(),
            overall_limit: None,
            aging_ms: default_aging_ms(),
            fairness: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawBackoff {
    #[serde(default = "default_base_ms")]
    pub base_ms: u64,
    #[serde(default = "default_cap_ms")]
    pub cap_ms: u64,
    #[serde(default)]
    pub jitter: f64,
}

impl Default for RawBackoff {
    fn default() -> Self {
        Self {
            base_ms: default_base_ms(),
            cap_ms: default_cap_ms(),
            jitter: 0.0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRate {
    pub qps: f64,
    pub burst: u32,
}

impl From<&RawRate> for RateLimit {
    fn from(raw: &RawRate) -> Self {
        RateLimit {
            qps: raw.qps,
            burst: raw.burst,
        }
    }
}

pub(crate) const PER_PLUGIN_EXECUTOR: &str = "perPlugin";
pub(crate) const SHARED_EXECUTOR: &str = "shared";

fn default_guest_executor() -> String {
    PER_PLUGIN_EXECUTOR.to_string()
}

fn default_guest_nice() -> i64 {
    i64::from(Nice::DEFAULT.get())
}

fn default_metrics_address() -> Option<String> {
    Some(DEFAULT_METRICS_ADDRESS.to_string())
}

fn default_cache_sync_timeout() -> u64 {
    DEFAULT_CACHE_SYNC_TIMEOUT_SECONDS
}

fn default_shutdown_timeout() -> u64 {
    DEFAULT_SHUTDOWN_TIMEOUT_SECONDS
}

fn default_lease_name() -> String {
    DEFAULT_LEASE_NAME.to_string()
}

fn default_lease_duration() -> u64 {
    DEFAULT_LEASE_DURATION_SECONDS
}

fn default_renew_deadline() -> u64 {
    DEFAULT_RENEW_DEADLINE_SECONDS
}

fn default_retry_period() -> u64 {
    DEFAULT_RETRY_PERIOD_SECONDS
}

fn default_workers() -> u32 {
    DEFAULT_WORKERS
}

fn default_degraded_after() -> u64 {
    DEFAULT_DEGRADED_AFTER_SECONDS
}

fn default_retry_limit() -> Option<RawRate> {
    let client_go = RateLimit::client_go_retries();
    Some(RawRate {
        qps: client_go.qps,
        burst: client_go.burst,
    })
}

fn default_aging_ms() -> u64 {
    u64::try_from(DEFAULT_AGING.as_millis()).unwrap_or(u64::MAX)
}

fn default_base_ms() -> u64 {
    u64::try_from(BackoffConfig::default().base.as_millis()).unwrap_or(u64::MAX)
}

fn default_cap_ms() -> u64 {
    u64::try_from(BackoffConfig::default().cap.as_millis()).unwrap_or(u64::MAX)
}
