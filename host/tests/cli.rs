//! The built `trellis` binary, run as a user runs it: exit codes and what it prints for
//! `check` and `rbac`, `trellis run` against a devcluster until SIGTERM (lease released,
//! exit 0), SIGTERM while reconciles are held (they finish within the grace period, or are
//! cancelled at its end and named; either way a second run converges every object), a second
//! signal that exits at once (130) without releasing the lease, and `trellis dev` serving
//! kubectl and converging until Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");

/// Generous: a loaded 2-core machine runs the suite.
const PATIENCE: Duration = Duration::from_secs(120);

fn trellis(args: &[&str]) -> Output {
    Command::new(TRELLIS)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("running trellis")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn usage_mistakes_exit_2_with_one_clear_message() {
    for args in [
        &["run"][..],
        &["dev", "--port", "not-a-port"][..],
        &["frobnicate"][..],
        &["--log-format", "xml", "dev"][..],
    ] {
        let out = trellis(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let stderr = text(&out.stderr);
        assert_eq!(stderr.matches("error:").count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn help_and_version_exit_0() {
    let out = trellis(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(help.contains("Exit codes"), "{help}");
    for sub in ["run", "dev", "check", "rbac"] {
        let out = trellis(&[sub, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{sub}");
        assert!(text(&out.stdout).contains("Usage: trellis"), "{sub}");
    }
    let out = trellis(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("trellis "));
}

#[test]
fn a_malformed_rust_log_is_a_usage_error_naming_it() {
    let out = Command::new(TRELLIS)
        .args(["dev", "--state-dir", "/nonexistent/never"])
        .env("RUST_LOG", "trellis=loud")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("RUST_LOG"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn dev_with_a_missing_config_names_it_and_exits_2() {
    let state = tempfile::tempdir().unwrap();
    let out = trellis(&[
        "dev",
        "-c",
        "/nonexistent/trellis.yaml",
        "--state-dir",
        state.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("/nonexistent/trellis.yaml"), "{stderr}");
}

/// `trellis dev` in a child process; killed if the test fails.
struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dev {
    fn start(state: &Path) -> Dev {
        let child = Command::new(TRELLIS)
            .args(["dev", "--progress", "plain", "--state-dir"])
            .arg(state)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting trellis dev");
        Dev::reading(child)
    }

    /// Follows `child`'s output: every line of its piped stdout and stderr, in the order the
    /// reader threads receive them (a thread a stream, so neither pipe fills and blocks it).
    fn reading(mut child: Child) -> Dev {
        let (tx, lines) = mpsc::channel();
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
        for stream in [stdout, stderr].into_iter().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Dev {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first output line containing `needle`.
    fn line_with(&mut self, needle: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "trellis dev never printed {needle:?}; output:\n{}",
            self.seen.join("\n")
        );
    }

    /// Ctrl-C, then the exit status.
    fn interrupt(mut self) -> (Option<i32>, Vec<String>) {
        self.signal("INT");
        let code = self.exit_code();
        (code, std::mem::take(&mut self.seen))
    }
}

fn kubectl(kubeconfig: &Path, cache: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("kubectl must be on PATH (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn dev_serves_kubectl_with_the_seeded_fixtures_and_stops_on_ctrl_c() {
    let state = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(&state.path().join("dev"));
    let export = dev.line_with("export KUBECONFIG=");
    let kubeconfig = PathBuf::from(export.trim().trim_start_matches("export KUBECONFIG="));
    assert_eq!(
        kubeconfig,
        std::fs::canonicalize(state.path().join("dev"))
            .unwrap()
            .join("kubeconfig")
    );

    let namespaces = kubectl(
        &kubeconfig,
        cache.path(),
        &["get", "namespaces", "-o", "name"],
    );
    for namespace in ["team-a", "team-b", "shop", "sandbox"] {
        assert!(
            namespaces.contains(&format!("namespace/{namespace}")),
            "{namespaces}"
        );
    }
    // Statuses were seeded through the status subresource.
    let phase = kubectl(
        &kubeconfig,
        cache.path(),
        &[
            "get",
            "pod",
            "-n",
            "shop",
            "web-7d9f8c6b5-4xk2m",
            "-o",
            "jsonpath={.status.phase}",
        ],
    );
    assert_eq!(phase, "Running");

    // The example plugins converge what kubectl shows.
    let converged = eventually(|| {
        let policies = kubectl(
            &kubeconfig,
            cache.path(),
            &["get", "networkpolicies", "-A", "-o", "name"],
        );
        let summary = kubectl(
            &kubeconfig,
            cache.path(),
            &[
                "get",
                "deployment",
                "-n",
                "shop",
                "web",
                "-o",
                "jsonpath={.metadata.annotations.trellis\\.dev/pod-summary}",
            ],
        );
        (policies.matches("trellis-default-deny").count() == 3 && summary.contains("\"ready\":3"))
            .then_some(summary)
    });
    assert_eq!(
        converged,
        r#"{"ready":3,"total":3,"phases":{"Running":3},"restarts":2,"terminating":0}"#
    );
    dev.line_with("namespace-defaults running");

    let (code, output) = dev.interrupt();
    assert_eq!(code, Some(0), "output:\n{}", output.join("\n"));
    assert!(
        !output.iter().any(|l| l.contains("panicked")),
        "{}",
        output.join("\n")
    );
    let last = output.last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("stopped: namespace-defaults") && last.contains("0 errors"),
        "{last}"
    );
}

/// Polls `check` for up to [`PATIENCE`].
fn eventually<T>(mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A config directory with the example components and `yaml` as `trellis.yaml`.
fn config_dir(yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for component in trellis_plugin_bundle::ALL {
        std::fs::write(
            dir.path().join(format!("{}.wasm", component.name)),
            component.wasm,
        )
        .unwrap();
    }
    let path = dir.path().join("trellis.yaml");
    std::fs::write(&path, yaml).unwrap();
    (dir, path)
}

#[test]
fn run_with_an_unusable_kubeconfig_or_context_is_a_usage_error_naming_it() {
    let (dir, config) = config_dir(trellis_host::ops::config::DEV_CONFIG);
    let config = config.to_str().unwrap();
    let missing = dir.path().join("no-such-kubeconfig");
    let garbage = dir.path().join("garbage-kubeconfig");
    std::fs::write(&garbage, "clusters: [this is: not, a kubeconfig").unwrap();
    for (kubeconfig, names) in [
        (&missing, "no-such-kubeconfig"),
        (&garbage, "garbage-kubeconfig"),
    ] {
        let out = trellis(&[
            "run",
            "-c",
            config,
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("error: the kubeconfig"), "{stderr}");
        assert!(stderr.contains(names), "{stderr}");
    }
    // A valid kubeconfig without the context asked for.
    let valid = dir.path().join("kubeconfig");
    std::fs::write(
        &valid,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:1'}\n\
         users:\n- name: u\n  user: {}\ncontexts:\n- name: here\n  context: {cluster: c, user: u}\n\
         current-context: here\n",
    )
    .unwrap();
    let out = trellis(&[
        "run",
        "-c",
        config,
        "--kubeconfig",
        valid.to_str().unwrap(),
        "--context",
        "elsewhere",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("elsewhere"), "{stderr}");
}

#[test]
fn check_reports_a_valid_config_with_exit_0_and_every_mistake_with_exit_2() {
    let (_dir, good) = config_dir(trellis_host::ops::config::DEV_CONFIG);
    let out = trellis(&["check", "-c", good.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("ok: plugin namespace-defaults"), "{stdout}");
    assert!(stdout.contains("ok: plugin deployment-summary"), "{stdout}");
    assert!(stdout.trim_end().ends_with("2 plugins"), "{stdout}");

    let bad = trellis_host::ops::config::DEV_CONFIG
        .replace(
            "component: deployment-summary.wasm",
            "component: missing.wasm",
        )
        .replace("kind: Deployment\n", "kind: Deployment\n    workers: 0\n");
    let (_dir, bad) = config_dir(&bad);
    let out = trellis(&["check", "-c", bad.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("missing.wasm"), "{stdout}");
    assert!(stdout.contains("workers"), "{stdout}");
    assert!(stdout.contains("FAILED: 2 errors"), "{stdout}");
    assert!(!text(&out.stderr).contains("panicked"));
}

#[test]
fn rbac_prints_yaml_for_a_valid_config_and_exits_2_for_a_bad_one() {
    let (_dir, good) = config_dir(trellis_host::ops::config::DEV_CONFIG);
    let out = trellis(&[
        "rbac",
        "-c",
        good.to_str().unwrap(),
        "--namespace",
        "ops",
        "--service-account",
        "reconciler",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(yaml.contains("kind: ClusterRole"), "{yaml}");
    assert!(yaml.contains("networkpolicies"), "{yaml}");
    assert!(yaml.contains("name: reconciler"), "{yaml}");
    assert!(yaml.contains("namespace: ops"), "{yaml}");
    assert!(
        text(&out.stderr).is_empty(),
        "logs stay off stdout and quiet: {}",
        text(&out.stderr)
    );

    let (_dir, bad) = config_dir("plugins: []\n");
    let out = trellis(&["rbac", "-c", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("trellis.yaml"), "{stderr}");
    assert!(stderr.contains("plugins"), "{stderr}");
}

/// `GET path` on `address`: (status code, body).
fn http_get(address: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())?;
    Some((code, body))
}

#[test]
fn run_reconciles_serves_health_and_metrics_and_stops_on_sigterm_releasing_the_lease() {
    use k8s_openapi::api::networking::v1::NetworkPolicy;

    let cluster = TestCluster::with_dev_fixtures();
    let config = format!(
        "host:\n  metricsAddress: 127.0.0.1:0\n  shutdownTimeoutSeconds: 5\n  leaderElection:\n    \
         leaseName: trellis\n    leaseNamespace: default\n    identity: cli-test\n    \
         leaseDurationSeconds: 4\n    renewDeadlineSeconds: 3\n    retryPeriodSeconds: 1\n{}",
        trellis_host::ops::config::DEV_CONFIG
    );
    let (_dir, path) = config_dir(&config);
    let mut run = start_run(&path, &cluster);
    // JSON logs: the bound address is a field of the server's start line.
    let address = run.ops_address();

    let readiness =
        eventually(|| http_get(&address, "/readyz?verbose").filter(|(code, _)| *code == 200));
    assert!(
        readiness.1.contains("plugin:namespace-defaults"),
        "{}",
        readiness.1
    );
    assert_eq!(http_get(&address, "/healthz").map(|(c, _)| c), Some(200));
    eventually(|| {
        cluster
            .runtime
            .block_on(
                kube::Api::<NetworkPolicy>::namespaced(cluster.client.clone(), "team-a")
                    .get_opt("trellis-default-deny"),
            )
            .unwrap()
    });
    let (_, metrics) = http_get(&address, "/metrics").unwrap();
    assert!(
        metrics.contains("controller_runtime_reconcile_total{"),
        "{metrics}"
    );
    assert!(
        metrics.contains("leader_election_master_status"),
        "{metrics}"
    );

    run.signal("TERM");
    assert_eq!(run.exit_code(), Some(0), "{}", run.output());
    let spec = cluster.lease();
    let released = spec.holder_identity.as_deref().unwrap_or("").is_empty()
        || spec.lease_duration_seconds == Some(1);
    assert!(released, "the lease was not released: {spec:?}");
    // Every request named this replica: its writes in the server's log carry its User-Agent.
    let agent = trellis_host::ops::cli::user_agent("cli-test");
    let writes = cluster.server.writes();
    let lease_writes: Vec<_> = writes
        .iter()
        .filter(|w| w.resource == "leases.coordination.k8s.io")
        .collect();
    assert!(!lease_writes.is_empty());
    let plugin_writes: Vec<_> = writes
        .iter()
        .filter(|w| w.manager == "trellis-namespace-defaults")
        .collect();
    assert!(!plugin_writes.is_empty());
    for write in lease_writes.iter().chain(&plugin_writes) {
        assert_eq!(write.user_agent.as_bytes(), agent.as_bytes(), "{write:?}");
    }
    cluster.stop();
}

/// The dev config beside the real example components, as `trellis dev` lays it out.
fn dev_config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("trellis.yaml"),
        trellis_host::ops::config::DEV_CONFIG,
    )
    .unwrap();
    for (plugin, file) in trellis_host::ops::config::DEV_COMPONENTS {
        let built = trellis_plugin_bundle::by_name(plugin).expect("a bundled example plugin");
        std::fs::write(dir.path().join(file), built.wasm).unwrap();
    }
    dir
}

#[test]
fn check_passes_a_good_config_and_fails_a_bad_one_with_exit_2() {
    let dir = dev_config_dir();
    let config = dir.path().join("trellis.yaml");
    let out = trellis(&["check", "-c", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        format!("frobnicate: 1\n{}", trellis_host::ops::config::DEV_CONFIG),
    )
    .unwrap();
    let out = trellis(&["check", "-c", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("broken.yaml"), "{report}");
    assert!(report.contains("frobnicate"), "{report}");
}

#[test]
fn rbac_prints_the_roles_of_a_config_and_refuses_a_bad_one() {
    let dir = dev_config_dir();
    let config = dir.path().join("trellis.yaml");
    let out = trellis(&["rbac", "-c", config.to_str().unwrap(), "--namespace", "ops"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(yaml.contains("kind: ClusterRole"), "{yaml}");
    assert!(yaml.contains("namespace: ops"), "{yaml}");
    let out = trellis(&[
        "rbac",
        "-c",
        dir.path().join("missing.yaml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("missing.yaml"));
}

/// A devcluster in this process (serving on `runtime`'s threads while the test thread waits
/// on the binary), seeded with `fixtures`.
struct TestCluster {
    runtime: tokio::runtime::Runtime,
    server: trellis_devcluster::DevCluster,
    client: kube::Client,
    _fixtures: tempfile::TempDir,
}

impl TestCluster {
    fn start(fixtures: &str) -> TestCluster {
        TestCluster::seeded(|dir| {
            let file = dir.join("fixtures.yaml");
            std::fs::write(&file, fixtures).unwrap();
            file
        })
    }

    /// Seeded with the fixtures `trellis dev` writes by default.
    fn with_dev_fixtures() -> TestCluster {
        TestCluster::seeded(|dir| trellis_host::ops::dev::write_default_fixtures(dir).unwrap())
    }

    /// Seeded with the fixtures `write` puts into a fresh folder (it returns their path).
    fn seeded(write: impl FnOnce(&Path) -> PathBuf) -> TestCluster {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path());
        let (server, client) = runtime.block_on(async {
            let server = trellis_devcluster::DevCluster::start(Default::default())
                .await
                .unwrap();
            let client = server.client().unwrap();
            trellis_host::ops::dev::seed_fixtures(&server, &client, &file)
                .await
                .unwrap();
            (server, client)
        });
        TestCluster {
            runtime,
            server,
            client,
            _fixtures: dir,
        }
    }

    fn stop(self) {
        self.runtime.block_on(self.server.stop());
    }

    /// Asserts the lease has no holder (its holder released it).
    fn assert_lease_released(&self) {
        let lease = self.lease();
        assert!(
            lease.holder_identity.as_deref().unwrap_or("").is_empty(),
            "the lease was not released: {lease:?}"
        );
    }

    /// The lease's spec.
    fn lease(&self) -> k8s_openapi::api::coordination::v1::LeaseSpec {
        use k8s_openapi::api::coordination::v1::Lease;
        self.runtime
            .block_on(kube::Api::<Lease>::namespaced(self.client.clone(), "default").get("trellis"))
            .unwrap()
            .spec
            .unwrap()
    }

    fn config_map(&self, name: &str) -> Option<k8s_openapi::api::core::v1::ConfigMap> {
        use k8s_openapi::api::core::v1::ConfigMap;
        self.runtime
            .block_on(kube::Api::<ConfigMap>::namespaced(self.client.clone(), "load").get_opt(name))
            .unwrap()
    }

    /// Replaces a load object's `data` (merge patch, as `kubectl patch` does).
    fn set_data(&self, name: &str, data: serde_json::Value) {
        use k8s_openapi::api::core::v1::ConfigMap;
        use kube::api::{Patch, PatchParams};
        let patch = serde_json::json!({ "data": data });
        self.runtime
            .block_on(
                kube::Api::<ConfigMap>::namespaced(self.client.clone(), "load").patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                ),
            )
            .unwrap();
    }
}

/// `trellis --log-format json run -c <config> --kubeconfig <cluster's>`, stderr captured.
fn start_run(config: &Path, cluster: &TestCluster) -> Dev {
    let child = Command::new(TRELLIS)
        .args(["--log-format", "json", "run", "-c"])
        .arg(config)
        .arg("--kubeconfig")
        .arg(cluster.server.kubeconfig_path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Dev::reading(child)
}

impl Dev {
    /// The address of the ops server, from its JSON start line.
    fn ops_address(&mut self) -> String {
        let serving = self.line_with("serving /metrics");
        let record: serde_json::Value = serde_json::from_str(&serving).expect("a JSON log line");
        record["address"]
            .as_str()
            .expect("address field")
            .to_string()
    }

    /// Sends `signal` (`TERM`, `INT`) to the process.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to end; its exit code, with every line it printed collected.
    fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + PATIENCE;
        let code = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status.code();
            }
            assert!(
                Instant::now() < deadline,
                "trellis did not stop; output:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        // The pipes close with the process; the bound only covers a straggling reader.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        code
    }

    /// Every JSON log record seen whose message contains `needle`.
    fn records(&self, needle: &str) -> Vec<serde_json::Value> {
        self.seen
            .iter()
            .filter(|line| line.contains(needle))
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|record| {
                record["fields"]["message"]
                    .as_str()
                    .or_else(|| record["message"].as_str())
                    .is_some_and(|m| m.contains(needle))
            })
            .collect()
    }

    fn output(&self) -> String {
        self.seen.join("\n")
    }
}

/// The value of the sample `series` (name and labels exactly as exposed) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Polls /metrics until the `load` plugin's workers hold at least one key.
fn await_held_keys(address: &str) {
    eventually(|| {
        let (_, metrics) = http_get(address, "/metrics")?;
        (sample(
            &metrics,
            "controller_runtime_active_workers{controller=\"load\"}",
        )? >= 1.0)
            .then_some(())
    });
}

const LOAD_OBJECTS: usize = 6;

/// Namespace `load` with `LOAD_OBJECTS` labelled ConfigMaps `job-i` for the misbehave plugin,
/// each with `data`.
fn load_fixtures(data: &str) -> String {
    let mut yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: load}\n".to_string();
    for i in 0..LOAD_OBJECTS {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{namespace: load, name: job-{i}, \
             labels: {{trellis.dev/load: \"true\"}}}}\ndata: {data}\n"
        ));
    }
    yaml
}

/// One plugin, `load`: misbehave on the labelled ConfigMaps of `load`, allowed to apply
/// ConfigMaps there (its flood writes `<name>-flood`, which the label keeps out of its watch).
fn load_config(identity: &str, grace_seconds: u64, workers: u32) -> String {
    format!(
        "host:
  metricsAddress: 127.0.0.1:0
  shutdownTimeoutSeconds: {grace_seconds}
  leaderElection:
    leaseName: trellis
    leaseNamespace: default
    identity: {identity}
    leaseDurationSeconds: 4
    renewDeadlineSeconds: 3
    retryPeriodSeconds: 1
plugins:
  - name: load
    component: misbehave.wasm
    watch: {{apiVersion: v1, kind: ConfigMap, namespaces: [load], labelSelector: trellis.dev/load=true}}
    workers: {workers}
    budgets: {{fuel: 1000000000000, deadlineMs: 60000}}
    permissions:
      read:
        - {{apiVersion: v1, kind: ConfigMap, namespaces: [load]}}
      write:
        - {{apiVersion: v1, kind: ConfigMap, namespaces: [load], verbs: [apply]}}
"
    )
}

/// A flood of `count` applies: each reconcile of `job-i` leaves `job-i-flood` at
/// `data.n = count - 1`.
fn flood(count: u32) -> serde_json::Value {
    serde_json::json!({"mode": "host-call-flood", "call": "apply", "count": count.to_string()})
}

/// Changes every load object to flood `count` ConfigMaps while no host runs, then runs
/// `identity` until every flood ConfigMap shows `count` and stops it with SIGTERM (exit 0):
/// nothing the first run left behind is stranded.
fn change_all_and_converge_with_a_second_run(cluster: &TestCluster, identity: &str, count: u32) {
    for i in 0..LOAD_OBJECTS {
        cluster.set_data(&format!("job-{i}"), flood(count));
    }
    let (_dir, path) = config_dir(&load_config(identity, 30, 4));
    let mut run = start_run(&path, cluster);
    run.ops_address();
    let wanted = (count - 1).to_string();
    eventually(|| {
        (0..LOAD_OBJECTS)
            .all(|i| {
                cluster
                    .config_map(&format!("job-{i}-flood"))
                    .and_then(|map| map.data?.get("n").cloned())
                    .is_some_and(|n| n == wanted)
            })
            .then_some(())
    });
    run.signal("TERM");
    assert_eq!(run.exit_code(), Some(0), "{}", run.output());
}

#[test]
fn sigterm_while_keys_are_held_lets_them_finish_releases_the_lease_and_strands_nothing() {
    use trellis_devcluster::FaultRule;

    let cluster = TestCluster::start(&load_fixtures(
        "{mode: host-call-flood, call: apply, count: \"1\"}",
    ));
    // Every apply of a ConfigMap takes 4 s: each reconcile holds its key that long.
    cluster
        .server
        .add_fault(FaultRule::latency(
            Some("patch"),
            Some("configmaps"),
            Duration::from_secs(4),
        ))
        .unwrap();
    let (_dir, path) = config_dir(&load_config("run-1", 30, 4));
    let mut run = start_run(&path, &cluster);
    let address = run.ops_address();
    await_held_keys(&address);
    run.signal("TERM");
    assert_eq!(run.exit_code(), Some(0), "{}", run.output());

    // Every held key finished within the grace period; none was cancelled.
    let drained = run.records("work queue shut down");
    assert_eq!(drained.len(), 1, "{}", run.output());
    let finished = drained[0]["fields"]["finished_in_grace"]
        .as_u64()
        .or_else(|| drained[0]["finished_in_grace"].as_u64())
        .unwrap_or_else(|| panic!("finished_in_grace: {}", drained[0]));
    assert!(finished >= 1, "no key was held at SIGTERM: {}", drained[0]);
    assert!(run.records("cancelled").is_empty(), "{}", run.output());
    assert_eq!(
        run.records("released the lease").len(),
        1,
        "{}",
        run.output()
    );
    cluster.assert_lease_released();
    // What finished was written: as many flood ConfigMaps as keys finished (at least).
    let written = (0..LOAD_OBJECTS)
        .filter(|i| cluster.config_map(&format!("job-{i}-flood")).is_some())
        .count();
    assert!(
        written as u64 >= finished,
        "{written} written, {finished} finished"
    );

    // Every object changes while no host runs; a second run converges all of them, the
    // ones the first never got to included.
    cluster.server.clear_faults();
    change_all_and_converge_with_a_second_run(&cluster, "run-2", 2);
    cluster.stop();
}

#[test]
fn sigterm_past_the_shutdown_deadline_cancels_and_names_the_held_keys_and_strands_nothing() {
    // Every reconcile spins until its 60 s deadline; the grace period is 1 s.
    let cluster = TestCluster::start(&load_fixtures("{mode: loop}"));
    let (_dir, path) = config_dir(&load_config("run-1", 1, 2));
    let mut run = start_run(&path, &cluster);
    let address = run.ops_address();
    await_held_keys(&address);
    run.signal("TERM");
    assert_eq!(run.exit_code(), Some(0), "{}", run.output());

    let cancelled = run.records("were cancelled");
    assert!(!cancelled.is_empty(), "{}", run.output());
    let named = cancelled
        .iter()
        .any(|record| record.to_string().contains("job-"));
    assert!(named, "the cancelled keys are not named: {cancelled:?}");
    cluster.assert_lease_released();

    // The objects are fixed; the next run reconciles every one, the cancelled ones included.
    change_all_and_converge_with_a_second_run(&cluster, "run-2", 2);
    cluster.stop();
}

#[test]
fn a_second_signal_during_the_drain_exits_at_once_with_130_and_keeps_the_lease() {
    // One reconcile spins for up to 60 s, and the grace period would wait for it.
    let cluster = TestCluster::start(&load_fixtures("{mode: loop}"));
    let (_dir, path) = config_dir(&load_config("run-1", 60, 1));
    let mut run = start_run(&path, &cluster);
    let address = run.ops_address();
    await_held_keys(&address);
    run.signal("TERM");
    run.line_with("shutdown requested");
    run.signal("INT");
    // 128 + SIGINT: the shell's code for death by that signal (docs/operations.md).
    // Without the second signal it would wait for the spinning call and exit 0.
    assert_eq!(run.exit_code(), Some(130), "{}", run.output());
    assert_eq!(
        run.records("second signal: exiting at once").len(),
        1,
        "{}",
        run.output()
    );
    assert!(run.records("released the lease").is_empty());
    // Not released: a standby waits for it to expire, as after a crash.
    assert_eq!(cluster.lease().holder_identity.as_deref(), Some("run-1"));
    cluster.stop();
}
