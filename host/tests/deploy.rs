//! deploy/: `kubectl kustomize deploy/` renders, and what it renders is what an SRE expects of
//! the host in a cluster (issue 7, Deploy): one namespace, a ServiceAccount bound to the RBAC
//! the config needs, the config and the plugin components from generated ConfigMaps, two
//! hardened replicas with leader election and probes on the metrics port, a PodDisruptionBudget
//! and a metrics Service. The Dockerfile is checked by reading it (no image is built here).
//!
//! The plugin components are build outputs, not files in the repository: each render copies
//! deploy/ into a temporary directory and puts the components `trellis-plugin-bundle` built from
//! the current sources into its plugins/ folder, as deploy/plugins/README.md tells users to.
//! kubectl (with its built-in kustomize) must be on PATH.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde_json::Value;

const NAMESPACE: &str = "trellis-system";
const SERVICE_ACCOUNT: &str = "trellis";
/// The largest `data` + `binaryData` a ConfigMap may hold (decoded bytes).
const CONFIG_MAP_LIMIT: usize = 1024 * 1024;
/// The uid of distroless' `nonroot` user.
const NONROOT: i64 = 65532;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn deploy_dir() -> PathBuf {
    repository().join("deploy")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The components deploy/kustomization.yaml packs, as deploy/plugins/README.md names them.
fn components() -> [(&'static str, &'static [u8]); 2] {
    [
        (
            "namespace-defaults.wasm",
            trellis_plugin_bundle::NAMESPACE_DEFAULTS.wasm,
        ),
        (
            "deployment-summary.wasm",
            trellis_plugin_bundle::DEPLOYMENT_SUMMARY.wasm,
        ),
    ]
}

/// `kubectl kustomize` of a copy of deploy/ with the components in place: its stdout on
/// success, its stderr on failure.
fn kustomize(with_components: bool) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("deploy");
    copy_dir(&deploy_dir(), &copy);
    if with_components {
        for (file, wasm) in components() {
            std::fs::write(copy.join("plugins").join(file), wasm).unwrap();
        }
    }
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(&copy)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `kubectl kustomize` (is kubectl on PATH?): {e}"));
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).expect("kustomize prints UTF-8"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// The rendered objects, rendered once for every test.
fn rendered() -> &'static [Value] {
    static RENDERED: OnceLock<Vec<Value>> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let yaml = kustomize(true).unwrap_or_else(|e| panic!("kubectl kustomize failed: {e}"));
        serde_norway::Deserializer::from_str(&yaml)
            .map(|document| {
                <Value as serde::Deserialize>::deserialize(document)
                    .expect("kustomize renders YAML documents")
            })
            .collect()
    })
}

fn of_kind<T: DeserializeOwned>(kind: &str) -> Vec<T> {
    rendered()
        .iter()
        .filter(|o| o["kind"] == kind)
        .map(|o| {
            let mut object = o.clone();
            // kustomize wraps long base64 values over several lines; the API server (and
            // k8s-openapi's ByteString) take the value without them.
            if let Some(Value::Object(binary)) = object.get_mut("binaryData") {
                for value in binary.values_mut() {
                    if let Value::String(text) = value {
                        text.retain(|c| !c.is_ascii_whitespace());
                    }
                }
            }
            serde_json::from_value(object).unwrap_or_else(|e| {
                panic!(
                    "the rendered {kind} {} does not decode: {e}",
                    o["metadata"]["name"]
                )
            })
        })
        .collect()
}

fn one<T: DeserializeOwned>(kind: &str) -> T {
    let mut all = of_kind::<T>(kind);
    assert_eq!(all.len(), 1, "expected exactly one {kind}");
    all.remove(0)
}

fn deployment() -> Deployment {
    one("Deployment")
}

fn container() -> Container {
    let spec = deployment().spec.unwrap().template.spec.unwrap();
    assert_eq!(spec.containers.len(), 1, "one container: the host");
    spec.containers.into_iter().next().unwrap()
}

fn config_maps() -> BTreeMap<String, ConfigMap> {
    of_kind::<ConfigMap>("ConfigMap")
        .into_iter()
        .map(|cm| (cm.metadata.name.clone().unwrap(), cm))
        .collect()
}

/// The ConfigMap generated as `prefix-<hash>`.
fn generated(prefix: &str) -> ConfigMap {
    let matching: Vec<_> = config_maps()
        .into_iter()
        .filter(|(name, _)| {
            name.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|hash| !hash.is_empty() && !hash.contains('-'))
        })
        .collect();
    assert_eq!(matching.len(), 1, "one generated ConfigMap {prefix}-<hash>");
    matching.into_iter().next().unwrap().1
}

/// The host config as rendered into its ConfigMap.
fn host_config() -> Value {
    let cm = generated("trellis-config");
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get("trellis.yaml"))
        .expect("the config ConfigMap holds trellis.yaml");
    serde_norway::from_str(text).expect("the rendered config is YAML")
}

/// Where a volume is mounted in the host container.
fn mount_of(volume: &str) -> String {
    container()
        .volume_mounts
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.name == volume)
        .unwrap_or_else(|| panic!("volume {volume} is not mounted"))
        .mount_path
}

fn pod_labels() -> BTreeMap<String, String> {
    deployment()
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .labels
        .unwrap()
}

fn selects_the_pods(selector: &BTreeMap<String, String>) -> bool {
    let labels = pod_labels();
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn the_base_renders_each_object_once_in_the_trellis_namespace() {
    let mut kinds: Vec<String> = rendered()
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_string())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "Namespace",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]
    );
    let namespace: Namespace = one("Namespace");
    assert_eq!(namespace.metadata.name.as_deref(), Some(NAMESPACE));
    let labels = namespace.metadata.labels.unwrap();
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );
    for object in rendered() {
        let kind = object["kind"].as_str().unwrap();
        let namespace = object["metadata"]["namespace"].as_str();
        match kind {
            "Namespace" | "ClusterRole" | "ClusterRoleBinding" => {
                assert_eq!(namespace, None, "{kind} is cluster-scoped")
            }
            _ => assert_eq!(namespace, Some(NAMESPACE), "{kind} {}", object["metadata"]),
        }
    }
    let account: ServiceAccount = one("ServiceAccount");
    assert_eq!(account.metadata.name.as_deref(), Some(SERVICE_ACCOUNT));
}

#[test]
fn the_deployment_runs_two_replicas_as_the_service_account() {
    let deployment = deployment();
    let spec = deployment.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(2));
    assert!(selects_the_pods(
        spec.selector.match_labels.as_ref().unwrap()
    ));
    // A rollout never takes the standby down before its replacement is ready.
    let rolling = spec
        .strategy
        .as_ref()
        .unwrap()
        .rolling_update
        .as_ref()
        .unwrap();
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(SERVICE_ACCOUNT));
    // Longer than host.shutdownTimeoutSeconds (30 s): held keys finish, the lease is released.
    assert!(pod.termination_grace_period_seconds.unwrap() > 30);
    let env: BTreeMap<_, _> = container()
        .env
        .unwrap()
        .into_iter()
        .map(|e| (e.name.clone(), e))
        .collect();
    for (variable, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let from = env
            .get(variable)
            .and_then(|e| e.value_from.as_ref())
            .and_then(|v| v.field_ref.as_ref())
            .unwrap_or_else(|| panic!("{variable} comes from the downward API"));
        assert_eq!(from.field_path, field);
    }
    // The image is the one `images:` names, not the bare placeholder.
    let image = container().image.unwrap();
    assert!(image.contains('/') && image.contains(':'), "{image}");
    assert!(!image.ends_with(":latest"), "{image}");
}

#[test]
fn the_pod_is_hardened_for_the_restricted_pod_security_standard() {
    let pod = deployment().spec.unwrap().template.spec.unwrap();
    let security = pod.security_context.unwrap();
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.run_as_user, Some(NONROOT));
    assert_eq!(
        security.seccomp_profile.map(|s| s.type_).as_deref(),
        Some("RuntimeDefault")
    );
    let container = container();
    let security = container.security_context.unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.run_as_non_root, Some(true));
    let capabilities = security.capabilities.unwrap();
    assert_eq!(capabilities.drop, Some(vec!["ALL".to_string()]));
    assert_eq!(capabilities.add, None);
    let resources = container.resources.unwrap();
    let requests = resources.requests.unwrap();
    assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
    assert!(resources.limits.unwrap().contains_key("memory"));
}

#[test]
fn probes_and_the_metrics_service_use_the_configured_metrics_port() {
    let config = host_config();
    let address = config["host"]["metricsAddress"].as_str().unwrap();
    let (host, port) = address.rsplit_once(':').unwrap();
    // Probes and Prometheus come from outside the pod: not loopback.
    assert_eq!(host, "0.0.0.0", "{address}");
    let port: i32 = port.parse().unwrap();

    let container = container();
    let ports = container.ports.clone().unwrap();
    let metrics = ports
        .iter()
        .find(|p| p.name.as_deref() == Some("metrics"))
        .expect("a port named metrics");
    assert_eq!(metrics.container_port, port);
    let named = IntOrString::String("metrics".into());
    for (probe, path) in [
        (container.liveness_probe, "/healthz"),
        (container.readiness_probe, "/readyz"),
        (container.startup_probe, "/healthz"),
    ] {
        let get = probe
            .and_then(|p| p.http_get)
            .unwrap_or_else(|| panic!("an HTTP probe on {path}"));
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.port, named);
    }

    let service: Service = one("Service");
    let spec = service.spec.unwrap();
    assert!(selects_the_pods(spec.selector.as_ref().unwrap()));
    let service_ports = spec.ports.unwrap();
    assert_eq!(service_ports.len(), 1);
    assert_eq!(service_ports[0].port, port);
    assert_eq!(service_ports[0].target_port, Some(named));

    let budget: PodDisruptionBudget = one("PodDisruptionBudget");
    let spec = budget.spec.unwrap();
    assert_eq!(spec.min_available, Some(IntOrString::Int(1)));
    assert_eq!(spec.max_unavailable, None);
    assert!(selects_the_pods(
        spec.selector.unwrap().match_labels.as_ref().unwrap()
    ));
}

#[test]
fn the_config_and_the_components_come_from_the_generated_config_maps() {
    let pod = deployment().spec.unwrap().template.spec.unwrap();
    let volumes: BTreeMap<_, _> = pod
        .volumes
        .unwrap()
        .into_iter()
        .map(|v| (v.name.clone(), v))
        .collect();
    let rendered = config_maps();

    // The config: the generated ConfigMap (kustomize rewrote the reference to its hashed
    // name), mounted where the container's arguments point.
    let config = volumes["config"].config_map.as_ref().unwrap();
    assert_eq!(
        config.name,
        generated("trellis-config").metadata.name.unwrap()
    );
    let args = container().args.unwrap();
    assert_eq!(args[0], "run");
    let flag = args
        .iter()
        .position(|a| a == "--config" || a == "-c")
        .unwrap();
    assert_eq!(
        args[flag + 1],
        format!("{}/trellis.yaml", mount_of("config"))
    );

    // The components: one generated ConfigMap per plugin, projected into one directory, each
    // holding its file byte for byte in binaryData.
    let sources = volumes["plugins"]
        .projected
        .as_ref()
        .expect("plugins is a projected volume")
        .sources
        .clone()
        .unwrap();
    let mut files = BTreeMap::new();
    for source in sources {
        let name = source.config_map.unwrap().name;
        let cm = rendered
            .get(&name)
            .unwrap_or_else(|| panic!("the plugins volume names {name}, which is not rendered"));
        assert!(cm.data.is_none(), "{name}: components are binary");
        let binary = cm.binary_data.clone().unwrap();
        let size: usize = binary.values().map(|b| b.0.len()).sum();
        assert!(
            size <= CONFIG_MAP_LIMIT,
            "{name} holds {size} bytes, over the ConfigMap limit"
        );
        for (file, bytes) in binary {
            assert!(files.insert(file, bytes.0).is_none(), "duplicate file");
        }
    }
    let expected: BTreeMap<_, _> = components()
        .into_iter()
        .map(|(file, wasm)| (file.to_string(), wasm.to_vec()))
        .collect();
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    assert!(
        files == expected,
        "the packed components differ from the built ones"
    );

    // Every plugin's component is one of those files, at the mount path.
    let plugins_dir = mount_of("plugins");
    let config = host_config();
    let plugins = config["plugins"].as_array().unwrap();
    assert_eq!(plugins.len(), expected.len());
    for plugin in plugins {
        let component = plugin["component"].as_str().unwrap();
        let file = component
            .strip_prefix(&format!("{plugins_dir}/"))
            .unwrap_or_else(|| panic!("{component} is not in the plugins mount {plugins_dir}"));
        assert!(expected.contains_key(file), "{component} is not shipped");
    }
}

#[test]
fn the_host_writes_only_to_empty_dirs_and_elects_a_leader() {
    let config = host_config();
    assert!(
        config["host"]["leaderElection"]["leaseName"].is_string(),
        "two replicas need leader election: {config:#}"
    );
    // With a read-only root filesystem, the compiled-component cache must be an emptyDir.
    let pod = deployment().spec.unwrap().template.spec.unwrap();
    let empty_dirs: Vec<String> = pod
        .volumes
        .unwrap()
        .into_iter()
        .filter(|v| v.empty_dir.is_some())
        .map(|v| mount_of(&v.name))
        .collect();
    match config["host"]["engine"]["cacheDir"].as_str() {
        None => {}
        Some(dir) => assert!(
            empty_dirs
                .iter()
                .any(|mount| Path::new(dir).starts_with(mount)),
            "engine.cacheDir {dir} is not on an emptyDir ({empty_dirs:?})"
        ),
    }
    // Every other mount is read-only.
    for mount in container().volume_mounts.unwrap() {
        if !empty_dirs.contains(&mount.mount_path) {
            assert_eq!(mount.read_only, Some(true), "{}", mount.mount_path);
        }
    }
}

fn rules_grant(rules: &[PolicyRule], group: &str, resource: &str, verbs: &[&str]) -> bool {
    verbs.iter().all(|verb| {
        rules.iter().any(|rule| {
            rule.api_groups
                .as_ref()
                .is_some_and(|g| g.iter().any(|g| g == group))
                && rule
                    .resources
                    .as_ref()
                    .is_some_and(|r| r.iter().any(|r| r == resource))
                && rule.verbs.iter().any(|v| v == verb)
        })
    })
}

#[test]
fn rbac_binds_the_service_account_to_what_the_config_uses() {
    let cluster_role: ClusterRole = one("ClusterRole");
    let role: Role = one("Role");
    let cluster_binding: ClusterRoleBinding = one("ClusterRoleBinding");
    let binding: RoleBinding = one("RoleBinding");
    for (subjects, role_ref, target) in [
        (
            cluster_binding.subjects.unwrap(),
            cluster_binding.role_ref,
            cluster_role.metadata.name.clone().unwrap(),
        ),
        (
            binding.subjects.unwrap(),
            binding.role_ref,
            role.metadata.name.clone().unwrap(),
        ),
    ] {
        assert_eq!(role_ref.name, target);
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(subjects[0].name, SERVICE_ACCOUNT);
        assert_eq!(subjects[0].namespace.as_deref(), Some(NAMESPACE));
    }
    // Leader election: the Lease in the pod's namespace.
    let role_rules = role.rules.unwrap();
    assert!(rules_grant(
        &role_rules,
        "coordination.k8s.io",
        "leases",
        &["create"]
    ));
    assert!(role_rules.iter().any(|r| {
        r.resources.as_deref() == Some(&["leases".to_string()])
            && r.resource_names.as_deref() == Some(&["trellis".to_string()])
            && r.verbs.contains(&"get".to_string())
            && r.verbs.contains(&"update".to_string())
    }));
    // Every watch the config declares can list and watch its kind.
    let rules = cluster_role.rules.unwrap();
    let config = host_config();
    for plugin in config["plugins"].as_array().unwrap() {
        let watches = std::iter::once(&plugin["watch"])
            .chain(plugin["secondary"].as_array().into_iter().flatten());
        for watch in watches {
            let api_version = watch["apiVersion"].as_str().unwrap();
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            let kind = watch["kind"].as_str().unwrap();
            let resource = format!("{}s", kind.to_lowercase()).replace("policys", "policies");
            assert!(
                rules_grant(&rules, group, &resource, &["get", "list", "watch"]),
                "{} watches {api_version} {kind} without list/watch on {resource}",
                plugin["name"]
            );
        }
    }
}

#[test]
fn rendering_without_the_components_fails_naming_the_missing_file() {
    let error = kustomize(false).expect_err("the components are required");
    assert!(
        error.contains("namespace-defaults.wasm") || error.contains("deployment-summary.wasm"),
        "{error}"
    );
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile() -> Vec<String> {
    let text = std::fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap();
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() && current.is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    instructions
}

#[test]
fn the_dockerfile_builds_on_the_pinned_toolchain_and_runs_as_nonroot() {
    let instructions = dockerfile();
    let froms: Vec<&String> = instructions
        .iter()
        .filter(|i| i.starts_with("FROM "))
        .collect();
    // The builder uses the workspace's rust-version.
    let manifest = std::fs::read_to_string(repository().join("Cargo.toml")).unwrap();
    let rust_version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        froms[0].starts_with(&format!("FROM rust:{rust_version}")),
        "{}",
        froms[0]
    );
    for from in &froms {
        let image = from.split_whitespace().nth(1).unwrap();
        assert!(
            image == "scratch" || image.contains(':') || !image.contains('.'),
            "{from}: pin a tag"
        );
        assert!(!image.ends_with(":latest"), "{from}: never latest");
    }
    assert!(
        instructions
            .iter()
            .any(|i| i.contains("rustup target add wasm32-wasip2"))
    );
    assert!(
        instructions.iter().any(|i| i.starts_with("RUN")
            && i.contains("cargo build --locked --release -p trellis-host"))
    );
    assert!(
        !instructions.iter().any(|i| i.starts_with("ADD ")),
        "COPY, not ADD"
    );

    // The last stage is the default target: the small, non-root runtime.
    let last = instructions
        .iter()
        .rposition(|i| i.starts_with("FROM "))
        .unwrap();
    let runtime = &instructions[last..];
    assert!(
        runtime[0].starts_with("FROM gcr.io/distroless/cc-debian12:nonroot"),
        "{}",
        runtime[0]
    );
    let user = runtime
        .iter()
        .find_map(|i| i.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    // Numeric, so that the kubelet can check runAsNonRoot; the uid the Deployment runs as.
    let uid: i64 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric uid");
    assert_eq!(uid, NONROOT);
    let pod = deployment().spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.security_context.unwrap().run_as_user, Some(uid));
    assert!(
        runtime
            .iter()
            .any(|i| i == r#"ENTRYPOINT ["/usr/local/bin/trellis"]"#)
    );
    // The image's default command is what the Deployment runs.
    let cmd = runtime
        .iter()
        .find_map(|i| i.strip_prefix("CMD "))
        .expect("CMD");
    let cmd: Vec<String> = serde_json::from_str(cmd).expect("CMD in exec form");
    assert_eq!(cmd, container().args.unwrap());
}
