//! The host config: every bad input is reported with the file, the line and column, the field
//! and what was wrong, several at once; good configs become typed settings; `check` compiles
//! real components and refuses components of the wrong shape; `rbac` renders exact,
//! least-privilege rules that kubectl and an API server accept.

#[path = "sandbox_support/wat_components.rs"]
mod wat_components;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use tempfile::TempDir;
use trellis_host::cache::Gvk;
use trellis_host::informer::{Predicate, Role as WatchRole};
use trellis_host::ops::check::{self, Problem};
use trellis_host::ops::config::{
    self, Config, ConfigError, ConfigErrors, DEV_COMPONENTS, DEV_CONFIG, Location,
};
use trellis_host::ops::rbac::{self, RbacOptions};
use trellis_host::permissions::Verb;
use trellis_host::queue::RateLimit;
use trellis_host::sandbox::{Budgets, EngineConfig, LoadError};
use trellis_host::worker::{GuestSettings, Nice};

/// A directory holding a config file's neighbours: dummy components and a kubeconfig.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "a.wasm",
            "b.wasm",
            "c.wasm",
            "plugins/web-policy.wasm",
            "kubeconfig.yaml",
        ] {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"not read by the config").unwrap();
        }
        std::fs::create_dir(dir.path().join("a-directory.wasm")).unwrap();
        Self { dir }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("trellis.yaml")
    }

    fn parse(&self, text: &str) -> Result<Config, ConfigErrors> {
        config::parse(self.file(), text)
    }

    fn errors(&self, text: &str) -> Vec<ConfigError> {
        match self.parse(text) {
            Ok(config) => panic!("the config loaded: {config:#?}\n{text}"),
            Err(errors) => {
                assert_eq!(errors.file, self.file());
                for e in &errors {
                    assert_eq!(e.file, self.file(), "every error names the file");
                }
                errors.errors
            }
        }
    }

    fn error(&self, text: &str) -> ConfigError {
        let mut errors = self.errors(text);
        assert_eq!(errors.len(), 1, "exactly one error expected: {errors:#?}");
        errors.remove(0)
    }
}

/// Asserts an error's field, position (when given) and that its message says `says`.
#[track_caller]
fn assert_error(error: &ConfigError, field: &str, at: Option<(usize, usize)>, says: &str) {
    assert_eq!(error.field, field, "{error}");
    if let Some((line, column)) = at {
        assert_eq!(error.location, Some(Location { line, column }), "{error}");
    } else {
        assert!(
            error.location.is_some(),
            "every error here has a position: {error}"
        );
    }
    assert!(
        error.message.contains(says),
        "expected {says:?} in the message of {error}"
    );
}

/// One plugin `a` watching ConfigMaps; tests append lines to it (line 5 onwards).
const MINIMAL: &str = "\
plugins:
  - name: a
    component: a.wasm
    watch: {apiVersion: v1, kind: ConfigMap}
";

fn minimal_with(lines: &str) -> String {
    format!("{MINIMAL}{lines}")
}

#[test]
fn the_minimal_config_loads_with_every_default() {
    let f = Fixture::new();
    let config = f.parse(MINIMAL).unwrap();
    assert_eq!(config.path, f.file());
    assert_eq!(config.dir(), f.dir.path());
    let host = &config.host;
    assert_eq!(
        host.metrics_address,
        Some("127.0.0.1:9090".parse().unwrap())
    );
    assert_eq!(host.kubeconfig, None);
    assert_eq!(host.context, None);
    assert_eq!(host.cache_sync_timeout, Duration::from_secs(120));
    assert_eq!(host.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(host.engine, EngineConfig::default());
    assert_eq!(host.leader_election, None);
    assert_eq!(host.guests, GuestSettings::default());

    let [plugin] = config.plugins.as_slice() else {
        panic!("one plugin")
    };
    assert_eq!(plugin.name, "a");
    assert_eq!(plugin.component, f.dir.path().join("a.wasm"));
    assert!(plugin.component.is_absolute());
    assert_eq!(plugin.field_manager, "trellis-a");
    assert_eq!(plugin.workers, 4);
    assert_eq!(plugin.budgets, Budgets::default());
    assert_eq!(plugin.degraded_after, Duration::from_secs(300));
    assert!(plugin.secondary.is_empty());
    assert_eq!(*plugin.kind(), Gvk::new("", "v1", "ConfigMap"));
    // client-go's limiter: 5 ms .. 1000 s per key, 10 qps / burst 100 on retries.
    let queue = &plugin.queue;
    assert_eq!(queue.plugin, "a");
    assert_eq!(queue.name, "a");
    assert_eq!(queue.backoff.base, Duration::from_millis(5));
    assert_eq!(queue.backoff.cap, Duration::from_secs(1000));
    assert_eq!(queue.backoff.jitter, 0.0);
    assert_eq!(queue.retry_limit, Some(RateLimit::client_go_retries()));
    assert_eq!(queue.overall_limit, None);
    assert_eq!(queue.aging, trellis_host::queue::DEFAULT_AGING);
    assert!(!queue.fairness);
    assert!(plugin.permissions.read.is_empty() && plugin.permissions.write.is_empty());
    assert!(plugin.permissions.events);
}

#[test]
fn a_good_config_round_trips_into_typed_settings() {
    let f = Fixture::new();
    let elsewhere = f.dir.path().join("elsewhere/minimal.wasm");
    std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
    std::fs::write(&elsewhere, b"x").unwrap();
    let text = std::fs::read_to_string("tests/config/good.yaml")
        .unwrap()
        .replace("ABSOLUTE_COMPONENT", elsewhere.to_str().unwrap());
    std::fs::write(f.file(), &text).unwrap();
    let config = config::load(f.file()).unwrap();

    let host = &config.host;
    assert_eq!(host.metrics_address, Some("0.0.0.0:9100".parse().unwrap()));
    assert_eq!(host.kubeconfig, Some(f.dir.path().join("kubeconfig.yaml")));
    assert_eq!(host.context.as_deref(), Some("kind-trellis"));
    assert_eq!(host.cache_sync_timeout, Duration::from_secs(60));
    assert_eq!(host.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(
        host.engine,
        EngineConfig {
            max_instances: 32,
            max_memory_bytes: 128 << 20,
            epoch_tick_ms: 10,
            cache_dir: Some("/var/cache/trellis".into()),
            ..EngineConfig::default()
        }
    );
    let election = host.leader_election.as_ref().unwrap();
    assert_eq!(election.lease_name, "trellis-host");
    assert_eq!(election.lease_namespace.as_deref(), Some("ops"));
    assert_eq!(election.identity.as_deref(), Some("replica-a"));
    assert_eq!(election.lease_duration, Duration::from_secs(30));
    assert_eq!(election.renew_deadline, Duration::from_secs(20));
    assert_eq!(election.retry_period, Duration::from_secs(5));

    let web = config.plugin("web-policy").unwrap();
    assert_eq!(web.component, f.dir.path().join("plugins/web-policy.wasm"));
    assert_eq!(web.field_manager, "platform-web-policy");
    assert_eq!(web.workers, 8);
    assert_eq!(
        web.budgets,
        Budgets {
            fuel: 2_000_000,
            deadline_ms: 1000,
            memory_bytes: 16 << 20,
            host_calls: 50,
            writes: 5,
            ..Budgets::default()
        }
    );
    assert_eq!(web.degraded_after, Duration::from_secs(120));
    let spec = &web.watch.valid.spec;
    assert_eq!(spec.kind, Gvk::new("apps", "v1", "Deployment"));
    assert_eq!(spec.namespaces, ["team-a", "team-b"], "normalized: sorted");
    assert_eq!(spec.label_selector.as_deref(), Some("tier=web"));
    assert_eq!(
        web.watch.valid.delivery.predicates,
        [Predicate::Generation, Predicate::Labels]
    );
    assert_eq!(
        web.watch.config.namespaces,
        ["team-b", "team-a"],
        "as written"
    );
    let pods = &web.secondary[0];
    assert_eq!(pods.valid.delivery.resync, Some(Duration::from_secs(600)));
    let mapping = pods.valid.delivery.mapping.as_ref().unwrap();
    assert!(mapping.controller_owner);
    assert_eq!(mapping.label.as_deref(), Some("example.com/deployment"));
    let roles: Vec<WatchRole> = web.subscriptions().map(|(_, role)| role).collect();
    assert_eq!(
        roles,
        [
            WatchRole::Primary,
            WatchRole::Secondary {
                primary: Gvk::new("apps", "v1", "Deployment")
            }
        ]
    );

    let queue = &web.queue;
    assert_eq!(queue.backoff.base, Duration::from_millis(10));
    assert_eq!(queue.backoff.cap, Duration::from_secs(60));
    assert_eq!(queue.backoff.jitter, 0.25);
    assert_eq!(
        queue.retry_limit,
        Some(RateLimit {
            qps: 5.0,
            burst: 50
        })
    );
    assert_eq!(
        queue.overall_limit,
        Some(RateLimit {
            qps: 100.0,
            burst: 10
        })
    );
    assert_eq!(queue.aging, Duration::from_secs(30));
    assert!(queue.fairness);

    let permissions = &web.permissions;
    assert!(!permissions.events);
    assert_eq!(
        permissions.write[0].verbs,
        [Verb::Apply, Verb::PatchStatus],
        "sorted and unique"
    );
    assert_eq!(permissions.write[1].plural.as_deref(), Some("cacti"));
    let pod = Gvk::new("", "v1", "Pod");
    assert!(permissions.may_read(&pod, Some("team-a")));
    assert!(!permissions.may_read(&pod, Some("team-b")));

    let minimal = config.plugin("minimal").unwrap();
    assert_eq!(minimal.component, elsewhere, "absolute paths are kept");
    assert_eq!(
        minimal.queue.retry_limit, None,
        "null: no bucket on retries"
    );
}

#[test]
fn a_missing_file_is_one_error_naming_it() {
    let f = Fixture::new();
    let errors = config::load(f.file()).unwrap_err();
    assert_eq!(errors.len(), 1);
    let e = &errors.errors[0];
    assert_eq!(e.file, f.file());
    assert_eq!(e.field, "");
    assert_eq!(e.location, None);
    assert!(
        e.message.starts_with("cannot read the config file: "),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read", f.file().display()))
    );
}

#[test]
fn a_yaml_syntax_error_is_reported_alone_with_its_position() {
    let f = Fixture::new();
    let e = f.error(&minimal_with("    workers: [1\n  - name: b\n"));
    assert_eq!(e.field, "");
    assert_eq!(e.location.map(|l| l.line), Some(6), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("{}:6:", f.file().display())),
        "{e}"
    );

    let e = f.error("plugins: []\n---\nplugins: []\n");
    assert!(e.message.contains("more than one document"), "{e}");
    let e = f.error("plugins:\n  - &a {name: x}\n  - *b\n");
    assert!(e.message.contains("unknown anchor"), "{e}");
}

#[test]
fn the_top_level_must_be_host_and_plugins() {
    let f = Fixture::new();
    let e = f.error("");
    assert_eq!(e.field, "");
    assert!(e.message.contains("found an empty file"), "{e}");
    let e = f.error("- a\n");
    assert!(
        e.message.contains("expected a mapping with `plugins`"),
        "{e}"
    );

    let errors = f.errors("hosts: {}\nplugin: []\n");
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert_error(&errors[0], "", None, "missing field `plugins`");
    assert_error(
        &errors[1],
        "hosts",
        Some((1, 8)),
        "unknown field `hosts`, expected `host` or `plugins`",
    );
    assert_error(&errors[2], "plugin", Some((2, 9)), "unknown field `plugin`");

    assert_error(
        &f.error("plugins: []\n"),
        "plugins",
        Some((1, 10)),
        "at least one plugin",
    );
    assert_error(
        &f.error("plugins: a.wasm\n"),
        "plugins",
        Some((1, 10)),
        "expected a sequence of plugins, found string",
    );
}

#[test]
fn type_errors_have_field_path_line_and_column() {
    let f = Fixture::new();
    let e = f.error(&minimal_with("    workers: many\n"));
    assert_error(
        &e,
        "plugins[0] (a).workers",
        Some((5, 14)),
        "invalid type: string \"many\", expected u32",
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{}:5:14: plugins[0] (a).workers: invalid type: string \"many\", expected u32",
            f.file().display()
        )
    );

    let e = f.error(&minimal_with("    budgets: {fuel: -1}\n"));
    assert_error(
        &e,
        "plugins[0] (a).budgets.fuel",
        Some((5, 21)),
        "invalid type: integer `-1`, expected u64",
    );

    let e = f.error(&minimal_with(
        "    permissions:\n      write: [{apiVersion: v1, kind: Pod, verbs: [update]}]\n",
    ));
    assert_error(
        &e,
        "plugins[0] (a).permissions.write[0].verbs[0]",
        Some((6, 51)),
        "unknown variant `update`",
    );

    let e = f.error("plugins:\n  - 5\n");
    assert_error(
        &e,
        "plugins[0]",
        Some((2, 5)),
        "invalid type: integer `5`, expected struct",
    );

    let e = f.error("host: {cacheSyncTimeoutSeconds: soon}\nplugins: [{name: a, component: a.wasm, watch: {apiVersion: v1, kind: Pod}}]\n");
    assert_error(
        &e,
        "host.cacheSyncTimeoutSeconds",
        Some((1, 33)),
        "expected u64",
    );
}

#[test]
fn unknown_and_missing_fields_are_named() {
    let f = Fixture::new();
    let e = f.error(&minimal_with("    budgets: {fule: 5}\n"));
    assert_error(
        &e,
        "plugins[0] (a).budgets.fule",
        Some((5, 15)),
        "unknown field `fule`, expected one of `fuel`",
    );
    let e = f.error(&minimal_with("    queue: {backoff: {base: 5}}\n"));
    assert_error(
        &e,
        "plugins[0] (a).queue.backoff.base",
        None,
        "unknown field `base`, expected one of `baseMs`, `capMs`, `jitter`",
    );
    let e = f.error(&minimal_with("    watch2: {}\n"));
    assert_error(
        &e,
        "plugins[0] (a).watch2",
        Some((5, 5)),
        "unknown field `watch2`",
    );
    let e = f.error("host: {engine: {maxInstance: 1}}\nplugins: [{name: a, component: a.wasm, watch: {apiVersion: v1, kind: Pod}}]\n");
    assert_error(
        &e,
        "host.engine.maxInstance",
        None,
        "unknown field `maxInstance`",
    );
    let e = f.error("plugins:\n  - name: a\n    watch: {apiVersion: v1, kind: Pod}\n");
    assert_error(
        &e,
        "plugins[0] (a)",
        Some((2, 5)),
        "missing field `component`",
    );
}

#[test]
fn plugin_names_must_be_dns_labels_and_unique() {
    let f = Fixture::new();
    let text = "\
plugins:
  - {name: Web_Policy, component: a.wasm, watch: {apiVersion: v1, kind: Pod}}
  - {name: dup, component: a.wasm, watch: {apiVersion: v1, kind: Pod}}
  - {name: dup, component: b.wasm, watch: {apiVersion: v1, kind: Pod}}
";
    let errors = f.errors(text);
    assert_eq!(
        errors.len(),
        2,
        "one per mistake (not also the default field manager): {errors:#?}"
    );
    assert_error(
        &errors[0],
        "plugins[0] (Web_Policy).name",
        Some((2, 12)),
        "is not a lowercase RFC 1123 label",
    );
    assert_error(
        &errors[1],
        "plugins[2] (dup).name",
        Some((4, 12)),
        "\"dup\" is also the name of plugins[1]: names must be unique",
    );
}

#[test]
fn field_managers_must_be_unique_and_printable() {
    let f = Fixture::new();
    let text = "\
plugins:
  - {name: a, component: a.wasm, watch: {apiVersion: v1, kind: Pod}}
  - {name: b, component: b.wasm, fieldManager: trellis-a, watch: {apiVersion: v1, kind: Pod}}
  - {name: c, component: c.wasm, fieldManager: '', watch: {apiVersion: v1, kind: Pod}}
";
    let errors = f.errors(text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_error(
        &errors[0],
        "plugins[1] (b).fieldManager",
        Some((3, 48)),
        "\"trellis-a\" is also the field manager of plugins[0]",
    );
    assert_error(
        &errors[1],
        "plugins[2] (c).fieldManager",
        Some((4, 48)),
        "must be 1 to 128 printable characters",
    );
}

#[test]
fn the_component_must_be_a_readable_file() {
    let f = Fixture::new();
    let e = f.error(&MINIMAL.replace("a.wasm", "missing.wasm"));
    let missing = f.dir.path().join("missing.wasm");
    assert_error(
        &e,
        "plugins[0] (a).component",
        Some((3, 16)),
        &format!("{} does not exist", missing.display()),
    );
    let e = f.error(&MINIMAL.replace("a.wasm", "a-directory.wasm"));
    assert_error(
        &e,
        "plugins[0] (a).component",
        Some((3, 16)),
        "is not a file",
    );
}

#[test]
fn workers_degraded_after_and_budgets_are_bounded() {
    let f = Fixture::new();
    for (workers, ok) in [(0, false), (1, true), (64, true), (65, false)] {
        let text = minimal_with(&format!("    workers: {workers}\n"));
        match f.parse(&text) {
            Ok(config) => {
                assert!(ok, "{workers} loaded");
                assert_eq!(config.plugins[0].workers, workers);
            }
            Err(errors) => {
                assert!(!ok, "{workers}: {errors}");
                assert_error(
                    &errors.errors[0],
                    "plugins[0] (a).workers",
                    Some((5, 14)),
                    &format!("{workers} is not in 1..=64"),
                );
            }
        }
    }
    let e = f.error(&minimal_with("    degradedAfterSeconds: 0\n"));
    assert_error(
        &e,
        "plugins[0] (a).degradedAfterSeconds",
        Some((5, 27)),
        "must be at least 1",
    );

    let e = f.error(&minimal_with("    budgets: {deadlineMs: 0}\n"));
    assert_error(
        &e,
        "plugins[0] (a).budgets.deadlineMs",
        Some((5, 27)),
        "must be greater than 0",
    );
    // Budgets are checked against the engine of the same file.
    let text = format!(
        "host: {{engine: {{maxMemoryBytes: 1048576}}}}\n{}",
        minimal_with("    budgets: {memoryBytes: 2097152}\n")
    );
    let e = f.error(&text);
    assert_error(
        &e,
        "plugins[0] (a).budgets.memoryBytes",
        Some((6, 28)),
        "engine.maxMemoryBytes = 1048576",
    );
}

#[test]
fn the_plugins_workers_must_fit_in_the_engines_instances() {
    let f = Fixture::new();
    let two = |workers: u32| {
        format!(
            "plugins:\n  - name: a\n    component: a.wasm\n    watch: {{apiVersion: v1, kind: ConfigMap}}\n    workers: {workers}\n  - name: b\n    component: b.wasm\n    watch: {{apiVersion: v1, kind: Secret}}\n    workers: {workers}\n"
        )
    };
    // 64 + 64 > the default 64 instances: named at the engine's field, with the sum and each.
    let errors = f.errors(&two(64));
    let [e] = errors.as_slice() else {
        panic!("one error: {errors:#?}")
    };
    assert_eq!(e.field, "host.engine.maxInstances", "{e}");
    assert!(
        e.message.contains("add up to 128 (a 64, b 64)") && e.message.contains("64 guest"),
        "{e}"
    );
    // Raised enough: loads; one short: refused, placed at the setting.
    let config = f
        .parse(&format!(
            "host: {{engine: {{maxInstances: 128}}}}\n{}",
            two(64)
        ))
        .unwrap();
    assert_eq!(config.host.engine.max_instances, 128);
    let e = f.error(&format!(
        "host:\n  engine:\n    maxInstances: 127\n{}",
        two(64)
    ));
    assert_error(
        &e,
        "host.engine.maxInstances",
        Some((3, 19)),
        "add up to 128",
    );
    // Exactly full is fine.
    assert!(f.parse(&two(32)).is_ok());
}

#[test]
fn host_settings_are_checked() {
    let f = Fixture::new();
    let text = format!(
        "host:\n  metricsAddress: localhost:9090\n  kubeconfig: nowhere.yaml\n  context: ''\n  \
         cacheSyncTimeoutSeconds: 0\n  engine: {{epochTickMs: 0}}\n{MINIMAL}"
    );
    let errors = f.errors(&text);
    assert_eq!(errors.len(), 5, "{errors:#?}");
    assert_error(
        &errors[0],
        "host.metricsAddress",
        Some((2, 19)),
        "\"localhost:9090\" is not an IP address and port",
    );
    assert_error(
        &errors[1],
        "host.kubeconfig",
        Some((3, 15)),
        "nowhere.yaml does not exist",
    );
    assert_error(
        &errors[2],
        "host.context",
        Some((4, 12)),
        "must not be empty",
    );
    assert_error(
        &errors[3],
        "host.cacheSyncTimeoutSeconds",
        Some((5, 28)),
        "must be at least 1",
    );
    assert_error(
        &errors[4],
        "host.engine.epochTickMs",
        Some((6, 25)),
        "must be greater than 0",
    );

    for off in ["''", "null"] {
        let config = f
            .parse(&format!("host: {{metricsAddress: {off}}}\n{MINIMAL}"))
            .unwrap();
        assert_eq!(
            config.host.metrics_address, None,
            "{off} turns the endpoint off"
        );
    }
    let config = f
        .parse(&format!("host: {{metricsAddress: '[::]:9090'}}\n{MINIMAL}"))
        .unwrap();
    assert_eq!(
        config.host.metrics_address,
        Some("[::]:9090".parse().unwrap())
    );
    let config = f.parse(&format!("host: null\n{MINIMAL}")).unwrap();
    assert_eq!(config.host.cache_sync_timeout, Duration::from_secs(120));
}

#[test]
fn leader_election_names_and_durations_are_checked() {
    let f = Fixture::new();
    let config = f
        .parse(&format!("host: {{leaderElection: {{}}}}\n{MINIMAL}"))
        .unwrap();
    let election = config.host.leader_election.unwrap();
    assert_eq!(election.lease_name, "trellis");
    assert_eq!(election.lease_namespace, None);
    assert_eq!(election.identity, None);
    assert_eq!(
        (
            election.lease_duration,
            election.renew_deadline,
            election.retry_period
        ),
        (
            Duration::from_secs(15),
            Duration::from_secs(10),
            Duration::from_secs(2)
        ),
        "controller-runtime's defaults"
    );

    let text = format!(
        "host:\n  leaderElection:\n    leaseName: Trellis\n    leaseNamespace: a.b\n    identity: ' '\n    \
         leaseDurationSeconds: 10\n    renewDeadlineSeconds: 10\n    retryPeriodSeconds: 0\n{MINIMAL}"
    );
    let errors = f.errors(&text);
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "host.leaderElection.leaseName",
            "host.leaderElection.leaseNamespace",
            "host.leaderElection.identity",
            "host.leaderElection.renewDeadlineSeconds",
            "host.leaderElection.retryPeriodSeconds",
        ],
        "{errors:#?}"
    );
    assert!(
        errors[3]
            .message
            .contains("10 must be less than leaseDurationSeconds (10)"),
        "{}",
        errors[3]
    );
    assert!(
        errors[4].message.contains("must be at least 1"),
        "{}",
        errors[4]
    );

    let text = format!(
        "host: {{leaderElection: {{renewDeadlineSeconds: 5, retryPeriodSeconds: 5}}}}\n{MINIMAL}"
    );
    let e = f.error(&text);
    assert_error(
        &e,
        "host.leaderElection.retryPeriodSeconds",
        Some((1, 70)),
        "5 must be less than renewDeadlineSeconds (5)",
    );
}

#[test]
fn watch_errors_are_placed_under_their_watch() {
    let f = Fixture::new();
    let text = "\
plugins:
  - name: a
    component: a.wasm
    watch:
      apiVersion: apps/v1
      kind: Deployment
      labelSelector: 'app in'
      mapping: {label: app}
    secondary:
      - apiVersion: v1
        kind: Pod
        transform: {drop: [metadata.name]}
      - apiVersion: apps/v1/x
        kind: Service
        mapping: {controllerOwner: true}
";
    let errors = f.errors(text);
    let summary: Vec<(&str, Option<usize>)> = errors
        .iter()
        .map(|e| (e.field.as_str(), e.location.map(|l| l.line)))
        .collect();
    assert_eq!(
        summary,
        [
            ("plugins[0] (a).watch.labelSelector", Some(7)),
            ("plugins[0] (a).watch.mapping", Some(8)),
            ("plugins[0] (a).secondary[0].mapping", Some(10)),
            ("plugins[0] (a).secondary[0].transform.drop[0]", Some(12)),
            ("plugins[0] (a).secondary[1].apiVersion", Some(13)),
        ],
        "{errors:#?}"
    );
    assert!(
        errors[0].message.contains("unable to parse requirement"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1]
            .message
            .contains("mapping is for secondary watches"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2]
            .message
            .contains("needs a mapping to primary keys"),
        "{}",
        errors[2]
    );
    assert!(
        errors[3].message.contains("identifies the object"),
        "{}",
        errors[3]
    );
}

#[test]
fn a_plugin_watches_a_kind_once_per_namespace() {
    let f = Fixture::new();
    let text = "\
plugins:
  - name: a
    component: a.wasm
    watch: {apiVersion: v1, kind: Pod, namespaces: [x]}
    secondary:
      - {apiVersion: v1, kind: Pod, namespaces: [y], mapping: {label: owner}}
      - {apiVersion: v1, kind: Pod, namespaces: [y, z], mapping: {label: owner}}
      - {apiVersion: v1, kind: Pod, mapping: {label: owner}}
      - {apiVersion: apps/v1, kind: Pod, namespaces: [x], mapping: {label: owner}}
";
    let errors = f.errors(text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_error(
        &errors[0],
        "plugins[0] (a).secondary[1]",
        Some((7, 9)),
        "watches v1 Pod in namespaces y, z, which secondary[0] watches already",
    );
    assert_error(
        &errors[1],
        "plugins[0] (a).secondary[2]",
        Some((8, 9)),
        "watches v1 Pod in all namespaces, which watch watches already",
    );
}

#[test]
fn queue_limits_must_be_sane() {
    let f = Fixture::new();
    let cases = [
        (
            "{backoff: {baseMs: 0}}",
            "queue.backoff.baseMs",
            "must be greater than zero",
        ),
        (
            "{backoff: {baseMs: 10, capMs: 5}}",
            "queue.backoff.capMs",
            "is below backoff.base",
        ),
        (
            "{backoff: {jitter: 1.5}}",
            "queue.backoff.jitter",
            "1.5 is not a fraction in [0, 1]",
        ),
        (
            "{retryLimit: {qps: 0, burst: 1}}",
            "queue.retryLimit.qps",
            "is not a rate",
        ),
        (
            "{retryLimit: {qps: 1, burst: 0}}",
            "queue.retryLimit.burst",
            "must be at least 1",
        ),
        (
            "{overallLimit: {qps: .nan, burst: 1}}",
            "queue.overallLimit.qps",
            "is not a rate",
        ),
        (
            "{overallLimit: {qps: 1, burst: 0}}",
            "queue.overallLimit.burst",
            "must be at least 1",
        ),
        ("{agingMs: 0}", "queue.agingMs", "must be greater than zero"),
    ];
    // All in one file: one mistake per plugin, every one reported.
    let mut text = String::from("plugins:\n");
    for (i, (queue, _, _)) in cases.iter().enumerate() {
        text.push_str(&format!(
            "  - {{name: p{i}, component: a.wasm, watch: {{apiVersion: v1, kind: Pod}}, queue: {queue}}}\n"
        ));
    }
    let errors = f.errors(&text);
    assert_eq!(errors.len(), cases.len(), "{errors:#?}");
    for (i, (error, (_, field, says))) in errors.iter().zip(cases).enumerate() {
        assert_error(error, &format!("plugins[{i}] (p{i}).{field}"), None, says);
        assert_eq!(error.location.unwrap().line, i + 2, "{error}");
    }
}

#[test]
fn read_grants_must_be_covered_by_watches() {
    let f = Fixture::new();
    let text = "\
plugins:
  - name: a
    component: a.wasm
    watch: {apiVersion: apps/v1, kind: Deployment, namespaces: [x, y]}
    secondary:
      - {apiVersion: v1, kind: Pod, mapping: {label: app}}
    permissions:
      read:
        - {apiVersion: v1, kind: Pod}
        - {apiVersion: v1, kind: Pod, namespaces: [x]}
        - {apiVersion: apps/v1, kind: Deployment, namespaces: [x]}
        - {apiVersion: apps/v1, kind: Deployment, namespaces: [y, z, w]}
        - {apiVersion: v1, kind: Secret, namespaces: [x]}
        - {apiVersion: apps/v1, kind: ReplicaSet}
";
    let errors = f.errors(text);
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "plugins[0] (a).permissions.read[1]",
            "plugins[0] (a).permissions.read[3]",
            "plugins[0] (a).permissions.read[3]",
            "plugins[0] (a).permissions.read[4]",
            "plugins[0] (a).permissions.read[5]",
        ],
        "{errors:#?}"
    );
    assert!(
        errors[0]
            .message
            .contains("a second read grant for v1 Pod (the first is read[0])"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1]
            .message
            .contains("a second read grant for apps/v1 Deployment (the first is read[2])"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].message.contains("reads apps/v1 Deployment in namespaces z, w, which no watch of this plugin covers (watch watches namespaces x, y)"),
        "{}",
        errors[2]
    );
    assert!(
        errors[3]
            .message
            .contains("reads v1 Secret, which no watch of this plugin covers"),
        "{}",
        errors[3]
    );
    assert!(
        errors[4]
            .message
            .contains("reads apps/v1 ReplicaSet, which no watch"),
        "{}",
        errors[4]
    );

    // A grant of all namespaces needs a watch of all namespaces.
    let text = "\
plugins:
  - name: a
    component: a.wasm
    watch: {apiVersion: apps/v1, kind: Deployment, namespaces: [x, y]}
    permissions:
      read: [{apiVersion: apps/v1, kind: Deployment}]
";
    assert_error(
        &f.error(text),
        "plugins[0] (a).permissions.read[0]",
        Some((6, 14)),
        "reads apps/v1 Deployment in all namespaces, but watch watches it only in namespaces x, y",
    );
}

#[test]
fn grants_need_real_kinds_verbs_and_one_plural_per_kind() {
    let f = Fixture::new();
    let text = "\
plugins:
  - name: a
    component: a.wasm
    watch: {apiVersion: v1, kind: Pod}
    permissions:
      read: [{apiVersion: v1, kind: Pod, plural: Pods}]
      write:
        - {apiVersion: example.com/v1, kind: Cactus, verbs: [create], plural: cacti}
        - {apiVersion: v1, kind: Pod, verbs: []}
        - {apiVersion: example.com/v1, kind: Cactus, verbs: [delete]}
        - {apiVersion: /v1, kind: 'Not a kind', verbs: [apply], namespaces: [Bad]}
  - name: b
    component: b.wasm
    watch: {apiVersion: v1, kind: Pod}
    permissions:
      write: [{apiVersion: example.com/v1, kind: Cactus, verbs: [create], plural: cactuses}]
";
    let errors = f.errors(text);
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "plugins[0] (a).permissions.read[0].plural",
            "plugins[0] (a).permissions.write[1].verbs",
            "plugins[0] (a).permissions.write[2]",
            "plugins[0] (a).permissions.write[3].apiVersion",
            "plugins[0] (a).permissions.write[3].kind",
            "plugins[0] (a).permissions.write[3].namespaces[0]",
            "plugins[1] (b).permissions.write[0].plural",
        ],
        "{errors:#?}"
    );
    assert!(
        errors[0]
            .message
            .contains("\"Pods\" is not a lowercase RFC 1123 label"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1]
            .message
            .contains("grants nothing: list at least one of apply, create, delete, patchStatus"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2]
            .message
            .contains("a second write grant for example.com/v1 Cactus (the first is write[0])"),
        "{}",
        errors[2]
    );
    assert!(
        errors[3]
            .message
            .contains("is not version or group/version"),
        "{}",
        errors[3]
    );
    assert!(
        errors[6].message.contains("\"cactuses\", but plugins[0].permissions.write[0] gives example.com/v1 Cactus the plural \"cacti\""),
        "{}",
        errors[6]
    );
}

#[test]
fn several_mistakes_are_reported_together_in_file_order() {
    let f = Fixture::new();
    std::fs::write(
        f.file(),
        std::fs::read("tests/config/many-mistakes.yaml").unwrap(),
    )
    .unwrap();
    let errors = config::load(f.file()).unwrap_err();
    let summary: Vec<(String, usize)> = errors
        .iter()
        .map(|e| (e.field.clone(), e.location.unwrap().line))
        .collect();
    let expected = [
        ("host.metricsAddress", 3),
        ("host.engine.maxInstances", 4),
        ("plugins[0] (Bad_Name).workers", 9),
        ("plugins[1] (second).watch.labelSelector", 12),
        ("plugins[1] (second).workers", 13),
        ("plugins[1] (second).budgets.fuel", 14),
        ("plugins[1] (second).queue.backoff.baseMs", 15),
        ("plugins[2] (second).name", 16),
        ("plugins[2] (second).permissions.read[0]", 20),
        ("plugins[2] (second).permissions.write[0].verbs", 21),
    ];
    let expected: Vec<(String, usize)> =
        expected.iter().map(|(f, l)| (f.to_string(), *l)).collect();
    assert_eq!(summary, expected, "{errors}");
    let text = errors.to_string();
    assert!(
        text.starts_with(&format!("{}: 10 mistakes\n", f.file().display())),
        "{text}"
    );
    assert_eq!(text.lines().count(), 11, "{text}");
}

/// A directory with the dev config and the example plugins' real components.
fn dev_dir() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (plugin, file) in DEV_COMPONENTS {
        let built = trellis_plugin_bundle::by_name(plugin).unwrap();
        std::fs::write(dir.path().join(file), built.wasm).unwrap();
    }
    std::fs::write(dir.path().join("dev.yaml"), DEV_CONFIG).unwrap();
    dir
}

#[test]
fn the_dev_config_is_valid_and_grants_what_the_plugins_use() {
    let f = Fixture::new();
    for (_, file) in DEV_COMPONENTS {
        std::fs::write(f.dir.path().join(file), b"dummy").unwrap();
    }
    let config = config::parse(f.dir.path().join("dev.yaml"), DEV_CONFIG).unwrap();
    let names: Vec<&str> = config.plugins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, DEV_COMPONENTS.map(|(name, _)| name));

    let ns = config.plugin("namespace-defaults").unwrap();
    assert_eq!(ns.component, f.dir.path().join("namespace-defaults.wasm"));
    assert_eq!(*ns.kind(), Gvk::new("", "v1", "Namespace"));
    assert_eq!(
        ns.watch.valid.spec.label_selector, None,
        "it must see the label go"
    );
    let policy = Gvk::new("networking.k8s.io", "v1", "NetworkPolicy");
    let quota = Gvk::new("", "v1", "ResourceQuota");
    for kind in [&policy, &quota] {
        let p = &ns.permissions;
        assert!(p.may_read(kind, Some("team-a")));
        assert!(p.may_write(Verb::Apply, kind, Some("team-a")));
        assert!(p.may_write(Verb::Delete, kind, Some("team-a")));
        assert!(!p.may_write(Verb::Create, kind, Some("team-a")));
        assert!(!p.may_write(Verb::PatchStatus, kind, Some("team-a")));
    }
    assert!(
        ns.permissions
            .may_emit_event(&Gvk::new("", "v1", "Namespace"), None)
    );
    assert_eq!(ns.secondary.len(), 2);

    let ds = config.plugin("deployment-summary").unwrap();
    let deployment = Gvk::new("apps", "v1", "Deployment");
    let pod = Gvk::new("", "v1", "Pod");
    assert_eq!(*ds.kind(), deployment);
    assert!(ds.permissions.may_read(&pod, Some("shop")));
    assert!(
        ds.permissions
            .may_write(Verb::Apply, &deployment, Some("shop"))
    );
    assert!(
        !ds.permissions
            .may_write(Verb::Delete, &deployment, Some("shop"))
    );
    assert!(!ds.permissions.may_write(Verb::Apply, &pod, Some("shop")));
    assert!(!ds.permissions.events, "it records no Events");
    assert_eq!(
        ds.secondary[0]
            .valid
            .delivery
            .mapping
            .as_ref()
            .unwrap()
            .label
            .as_deref(),
        Some("app")
    );
}

#[test]
fn check_passes_the_dev_config_with_the_real_components() {
    let dir = dev_dir();
    let report = check::check(dir.path().join("dev.yaml"));
    assert!(report.is_ok(), "{report}");
    assert!(report.warnings.is_empty(), "{report}");
    let names: Vec<&str> = report.plugins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["namespace-defaults", "deployment-summary"]);
    let text = report.to_string();
    assert!(
        text.ends_with("dev.yaml: OK: 0 errors, 0 warnings, 2 plugins"),
        "{text}"
    );
    assert!(text.contains("ok: plugin namespace-defaults: "), "{text}");
}

#[test]
fn check_refuses_components_of_the_wrong_shape_naming_plugin_and_file() {
    let dir = dev_dir();
    let components = [
        ("other-world.wasm", wat_components::other_world()),
        (
            "foreign-import.wasm",
            wat_components::with_import(r#"(import "evil:net/socket" (instance))"#),
        ),
        ("core-module.wasm", wat_components::core_module()),
        ("good.wasm", trellis_plugin_bundle::MISBEHAVE.wasm.to_vec()),
    ];
    let mut text = String::from("plugins:\n");
    for (i, (file, bytes)) in components.iter().enumerate() {
        std::fs::write(dir.path().join(file), bytes).unwrap();
        text.push_str(&format!(
            "  - {{name: p{i}, component: {file}, watch: {{apiVersion: v1, kind: ConfigMap, namespaces: [n{i}]}}, permissions: {{events: false}}}}\n"
        ));
    }
    let file = dir.path().join("shapes.yaml");
    std::fs::write(&file, text).unwrap();
    let report = check::check(&file);
    assert!(!report.is_ok());
    assert_eq!(report.errors.len(), 3, "{report}");
    let expect = [
        (0, "other-world.wasm", "does not export `reconcile`"),
        (1, "foreign-import.wasm", "imports `evil:net/socket`"),
        (
            2,
            "core-module.wasm",
            "is a core WebAssembly module, not a component",
        ),
    ];
    for (problem, (index, file, says)) in report.errors.iter().zip(expect) {
        match problem {
            Problem::Component {
                index: i,
                plugin,
                error,
                ..
            } => {
                assert_eq!(*i, index);
                assert_eq!(plugin, &format!("p{index}"));
                assert!(error.to_string().contains(says), "{error}");
                match error {
                    LoadError::MissingExport { path, .. }
                    | LoadError::UnsupportedImport { path, .. }
                    | LoadError::CoreModule { path, .. } => {
                        assert_eq!(path, &dir.path().join(file))
                    }
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
        let line = problem.to_string();
        assert!(
            line.contains(&format!("plugins[{index}] (p{index}).component")),
            "{line}"
        );
        assert!(line.contains(file), "{line}");
    }
    assert_eq!(report.plugins.len(), 1, "the good one loaded");
    assert_eq!(report.plugins[0].name, "p3");
    let text = report.to_string();
    assert!(
        text.ends_with("shapes.yaml: FAILED: 3 errors, 0 warnings"),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("error: ")).count(),
        3,
        "{text}"
    );
}

#[test]
fn check_reports_config_errors_without_compiling() {
    let f = Fixture::new();
    std::fs::write(
        f.file(),
        minimal_with("    workers: 0\n    budgets: {fuel: 0}\n"),
    )
    .unwrap();
    let report = check::check(f.file());
    assert!(!report.is_ok());
    assert!(report.plugins.is_empty());
    let lines: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].ends_with(":5:14: plugins[0] (a).workers: 0 is not in 1..=64"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains(":6:21: plugins[0] (a).budgets.fuel: must be greater than 0"),
        "{lines:?}"
    );
}

#[test]
fn check_warns_about_grants_and_watches_that_do_not_fit() {
    let f = Fixture::new();
    let text = "\
plugins:
  - name: a
    component: a.wasm
    watch: {apiVersion: apps/v1, kind: Deployment}
    secondary:
      - {apiVersion: v1, kind: Pod, namespaces: [x, y], mapping: {label: app}}
      - {apiVersion: v1, kind: Service, mapping: {label: app}}
    permissions:
      read: [{apiVersion: v1, kind: Pod, namespaces: [x]}]
      write:
        - {apiVersion: apps/v1, kind: Deployment, verbs: [apply]}
        - {apiVersion: v1, kind: ConfigMap, verbs: [create]}
";
    let config = f.parse(text).unwrap();
    let warnings = check::warnings(&config);
    let fields: Vec<&str> = warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "plugins[0] (a).permissions.write[1]",
            "plugins[0] (a).secondary[0]",
            "plugins[0] (a).secondary[1]",
            "plugins[0] (a).permissions.events",
        ],
        "{warnings:#?}"
    );
    assert!(
        warnings[0]
            .message
            .contains("writes v1 ConfigMap but cannot read it"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[1]
            .message
            .contains("watches v1 Pod, which no read grant fully covers"),
        "{}",
        warnings[1]
    );
    assert!(
        warnings[3]
            .message
            .contains("no read grant covers the primary kind apps/v1 Deployment"),
        "{}",
        warnings[3]
    );
}

fn rule(group: &str, resource: &str, name: Option<&str>, verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(vec![resource.into()]),
        resource_names: name.map(|n| vec![n.into()]),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        non_resource_urls: None,
    }
}

/// The rendered documents, parsed back with k8s-openapi's types.
#[derive(Debug, Default)]
struct Rendered {
    cluster_roles: Vec<ClusterRole>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
}

fn parse_rendered(text: &str) -> Rendered {
    let mut out = Rendered::default();
    for document in text.split("\n---\n") {
        let value: serde_norway::Value = serde_norway::from_str(document).unwrap();
        let kind = value["kind"].as_str().unwrap().to_string();
        match kind.as_str() {
            "ClusterRole" => out
                .cluster_roles
                .push(serde_norway::from_value(value).unwrap()),
            "ClusterRoleBinding" => out
                .cluster_role_bindings
                .push(serde_norway::from_value(value).unwrap()),
            "Role" => out.roles.push(serde_norway::from_value(value).unwrap()),
            "RoleBinding" => out
                .role_bindings
                .push(serde_norway::from_value(value).unwrap()),
            other => panic!("unexpected kind {other}"),
        }
    }
    out
}

fn good_config(f: &Fixture) -> Config {
    let text = std::fs::read_to_string("tests/config/good.yaml")
        .unwrap()
        .replace(
            "ABSOLUTE_COMPONENT",
            f.dir.path().join("a.wasm").to_str().unwrap(),
        );
    f.parse(&text).unwrap()
}

#[test]
fn rbac_is_least_privilege_sorted_and_exact() {
    let f = Fixture::new();
    let config = good_config(&f);
    let options = RbacOptions {
        service_account: "trellis".into(),
        namespace: "trellis-system".into(),
    };
    let text = rbac::render(&config, &options);
    assert_eq!(text, rbac::render(&config, &options), "deterministic");
    assert!(text.starts_with("# Least-privilege RBAC"), "{text}");
    let rendered = parse_rendered(&text);
    let name = "trellis:trellis-system:trellis";

    let [cluster] = rendered.cluster_roles.as_slice() else {
        panic!("one ClusterRole: {text}")
    };
    assert_eq!(cluster.metadata.name.as_deref(), Some(name));
    assert_eq!(
        cluster.rules.as_deref().unwrap(),
        [
            rule("", "configmaps", None, &["get", "list", "watch"]),
            rule("example.com", "cacti", None, &["create", "delete"]),
        ]
    );
    let [binding] = rendered.cluster_role_bindings.as_slice() else {
        panic!("one ClusterRoleBinding")
    };
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(binding.role_ref.name, name);
    let subject = &binding.subjects.as_ref().unwrap()[0];
    assert_eq!(
        (subject.kind.as_str(), subject.name.as_str()),
        ("ServiceAccount", "trellis")
    );
    assert_eq!(subject.namespace.as_deref(), Some("trellis-system"));

    let roles: Vec<(String, Vec<PolicyRule>)> = rendered
        .roles
        .iter()
        .map(|r| {
            (
                r.metadata.namespace.clone().unwrap(),
                r.rules.clone().unwrap(),
            )
        })
        .collect();
    let read = ["get", "list", "watch"];
    assert_eq!(
        roles,
        [
            (
                "ops".to_string(),
                vec![
                    rule("coordination.k8s.io", "leases", None, &["create"]),
                    rule(
                        "coordination.k8s.io",
                        "leases",
                        Some("trellis-host"),
                        &["get", "update"]
                    ),
                ]
            ),
            (
                "team-a".to_string(),
                vec![
                    rule("", "pods", None, &read),
                    rule(
                        "apps",
                        "deployments",
                        None,
                        &["create", "get", "list", "patch", "watch"]
                    ),
                    rule("apps", "deployments/status", None, &["patch"]),
                ]
            ),
            (
                "team-b".to_string(),
                vec![
                    rule("", "pods", None, &read),
                    rule("apps", "deployments", None, &read)
                ]
            ),
        ]
    );
    let bound: Vec<(String, String, String)> = rendered
        .role_bindings
        .iter()
        .map(|b| {
            (
                b.metadata.namespace.clone().unwrap(),
                b.role_ref.kind.clone(),
                b.role_ref.name.clone(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = ["ops", "team-a", "team-b"]
        .iter()
        .map(|ns| (ns.to_string(), "Role".to_string(), name.to_string()))
        .collect();
    assert_eq!(bound, expected);
}

#[test]
fn rbac_for_the_dev_config_is_one_cluster_role() {
    let dir = dev_dir();
    let config = config::load(dir.path().join("dev.yaml")).unwrap();
    let rbac = rbac::rules(&config, &RbacOptions::default());
    let all = ["create", "delete", "get", "list", "patch", "watch"];
    assert_eq!(
        rbac.cluster,
        [
            rule("", "namespaces", None, &["get", "list", "watch"]),
            rule("", "pods", None, &["get", "list", "watch"]),
            rule("", "resourcequotas", None, &all),
            rule(
                "apps",
                "deployments",
                None,
                &["create", "get", "list", "patch", "watch"]
            ),
            rule("events.k8s.io", "events", None, &["create", "patch"]),
            rule("networking.k8s.io", "networkpolicies", None, &all),
        ]
    );
    assert!(rbac.namespaces.is_empty(), "{:?}", rbac.namespaces);
}

#[test]
fn rbac_puts_events_where_the_plugin_reads_and_leases_in_the_service_account_namespace() {
    let f = Fixture::new();
    let text = "\
host: {leaderElection: {}}
plugins:
  - name: a
    component: a.wasm
    watch: {apiVersion: v1, kind: ConfigMap, namespaces: [x, y]}
    permissions:
      read: [{apiVersion: v1, kind: ConfigMap, namespaces: [y]}]
";
    let config = f.parse(text).unwrap();
    let options = RbacOptions {
        service_account: "ctl".into(),
        namespace: "home".into(),
    };
    let rbac = rbac::rules(&config, &options);
    assert!(rbac.cluster.is_empty());
    let read = ["get", "list", "watch"];
    assert_eq!(
        rbac.namespaces.keys().collect::<Vec<_>>(),
        ["home", "x", "y"]
    );
    assert_eq!(
        rbac.namespaces["home"],
        [
            rule("coordination.k8s.io", "leases", None, &["create"]),
            rule(
                "coordination.k8s.io",
                "leases",
                Some("trellis"),
                &["get", "update"]
            ),
        ]
    );
    assert_eq!(rbac.namespaces["x"], [rule("", "configmaps", None, &read)]);
    assert_eq!(
        rbac.namespaces["y"],
        [
            rule("", "configmaps", None, &read),
            rule("events.k8s.io", "events", None, &["create", "patch"]),
        ]
    );
    let rendered = parse_rendered(&rbac::render(&config, &options));
    assert!(rendered.cluster_roles.is_empty() && rendered.cluster_role_bindings.is_empty());
    assert_eq!(rendered.roles.len(), 3);
    assert_eq!(rendered.role_bindings.len(), 3);
    assert_eq!(
        rendered.roles[0].metadata.name.as_deref(),
        Some("trellis:home:ctl")
    );
}

/// kubectl (with its default strict validation) creates the rendered objects on an API server
/// that decodes them strictly, and they read back with exactly the rules rendered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_the_rendered_rbac_on_an_api_server() {
    use kube::api::{Api, ListParams};
    use trellis_devcluster::{DevCluster, DevClusterOptions};

    let f = Fixture::new();
    let config = good_config(&f);
    let options = RbacOptions::default();
    let rendered = f.dir.path().join("rbac.yaml");
    std::fs::write(&rendered, rbac::render(&config, &options)).unwrap();

    let mut cluster_options = DevClusterOptions::default();
    cluster_options
        .namespaces
        .extend(["ops", "team-a", "team-b"].map(String::from));
    let cluster = DevCluster::start(cluster_options).await.unwrap();
    let kubectl = |args: Vec<String>| {
        let kubeconfig = cluster.kubeconfig_path().to_path_buf();
        let cache = f.dir.path().join("kube-cache");
        async move {
            let output = tokio::time::timeout(
                Duration::from_secs(120),
                tokio::process::Command::new("kubectl")
                    .env("KUBECONFIG", kubeconfig)
                    .arg("--cache-dir")
                    .arg(cache)
                    .args(&args)
                    .kill_on_drop(true)
                    .output(),
            )
            .await
            .expect("kubectl finished within 120 s")
            .expect("kubectl is on PATH");
            assert!(
                output.status.success(),
                "kubectl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
    };
    let created = kubectl(vec![
        "create".into(),
        "-f".into(),
        rendered.to_str().unwrap().into(),
        "-o".into(),
        "name".into(),
    ])
    .await;
    assert_eq!(created.lines().count(), 8, "{created}");

    let client = cluster.client().unwrap();
    let expected = rbac::rules(&config, &options);
    let cluster_role = Api::<ClusterRole>::all(client.clone())
        .get(&options.object_name())
        .await
        .unwrap();
    assert_eq!(cluster_role.rules.unwrap(), expected.cluster);
    for (namespace, rules) in &expected.namespaces {
        let role = Api::<Role>::namespaced(client.clone(), namespace)
            .get(&options.object_name())
            .await
            .unwrap();
        assert_eq!(role.rules.as_ref().unwrap(), rules, "{namespace}");
    }
    let bindings = Api::<RoleBinding>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(bindings.items.len(), 3);
    cluster.stop().await;
}

#[test]
fn paths_resolve_against_the_config_files_directory() {
    let f = Fixture::new();
    let nested = f.dir.path().join("conf/trellis.yaml");
    std::fs::create_dir_all(nested.parent().unwrap()).unwrap();
    let config = config::parse(&nested, &MINIMAL.replace("a.wasm", "../a.wasm")).unwrap();
    assert_eq!(
        config.plugins[0].component,
        f.dir.path().join("conf/../a.wasm")
    );
    assert!(Path::new(&config.plugins[0].component).is_file());
}

/// The example in docs/config.md is a valid config.
#[test]
fn the_documented_example_loads() {
    let docs = std::fs::read_to_string("../docs/config.md").unwrap();
    let example = docs
        .split("## A complete example")
        .nth(1)
        .and_then(|rest| rest.split("```yaml\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("docs/config.md has a complete example");
    let f = Fixture::new();
    let component = f.dir.path().join("plugins/namespace-defaults.wasm");
    std::fs::write(&component, b"x").unwrap();
    let config = f.parse(example).unwrap();
    assert_eq!(config.plugins[0].name, "namespace-defaults");
    assert_eq!(config.plugins[0].workers, 2);
    assert!(config.host.leader_election.is_some());
    assert_eq!(config.host.guests.nice, Nice::DEFAULT);
}

/// A read grant with a bad namespace is one mistake, not also an uncovered read.
#[test]
fn a_bad_grant_namespace_is_reported_once() {
    let f = Fixture::new();
    let text = minimal_with(
        "    permissions:\n      read: [{apiVersion: v1, kind: ConfigMap, namespaces: [Bad]}]\n",
    );
    let e = f.error(&text);
    assert_error(
        &e,
        "plugins[0] (a).permissions.read[0].namespaces[0]",
        Some((6, 61)),
        "\"Bad\" must consist of lower case alphanumerics",
    );
}
