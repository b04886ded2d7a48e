//! kubectl (v1.32 on these machines; scripts/test.sh installs Debian's kubernetes-client when
//! it is missing) against a running devcluster, with kubectl's default validation on: it
//! reads /openapi/v3, finds that the server supports `fieldValidation`, and sends
//! `fieldValidation=Strict`.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use trellis_devcluster::DevCluster;

struct Kubectl {
    kubeconfig: std::path::PathBuf,
    cache: tempfile::TempDir,
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(cluster: &DevCluster) -> Self {
        Self {
            kubeconfig: cluster.kubeconfig_path().to_path_buf(),
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Output {
        let output = tokio::time::timeout(Duration::from_secs(60), self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} finished within 60 s"))
            .unwrap_or_else(|e| {
                panic!("kubectl must be on PATH (scripts/test.sh installs it): {e}")
            });
        Output {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(out.ok, "kubectl {args:?} failed: {}", out.stderr);
        out.stdout
    }

    /// Runs kubectl expecting it to fail; returns what it said on stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(!out.ok, "kubectl {args:?} succeeded: {}", out.stdout);
        out.stderr
    }

    /// Runs kubectl expecting it to fail saying `expected` on stderr.
    async fn fails_with(&self, args: &[&str], expected: &str) {
        let stderr = self.fails(args).await;
        assert!(stderr.contains(expected), "kubectl {args:?}: {stderr}");
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all).await).unwrap()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

async fn next_line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("a line within 30 s")
        .unwrap()
        .expect("kubectl still watching")
}

fn item_names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

const CONFIGMAPS: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: web
  labels: {app: web}
data:
  color: blue
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: db
  labels: {app: db}
data:
  color: red
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_apply_select_and_delete_built_in_kinds() {
    let (cluster, _client) = start().await;
    let kubectl = Kubectl::new(&cluster);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "cms.yaml", CONFIGMAPS);

    let applied = kubectl.ok(&["apply", "--server-side", "-f", &file]).await;
    assert!(
        applied.contains("configmap/web serverside-applied"),
        "{applied}"
    );

    let listed = kubectl.json(&["get", "configmaps"]).await;
    assert_eq!(item_names(&listed), vec!["db", "web"]);
    let yaml = kubectl
        .ok(&[
            "get",
            "configmap",
            "web",
            "-o",
            "yaml",
            "--show-managed-fields",
        ])
        .await;
    assert!(
        yaml.contains("color: blue") && yaml.contains("manager: kubectl"),
        "{yaml}"
    );
    let table = kubectl.ok(&["get", "configmaps"]).await;
    assert!(
        table.starts_with("NAME") && table.contains("web") && table.contains("DATA"),
        "{table}"
    );

    let labelled = kubectl.json(&["get", "configmaps", "-l", "app=web"]).await;
    assert_eq!(item_names(&labelled), vec!["web"]);
    let fielded = kubectl
        .json(&["get", "configmaps", "--field-selector", "metadata.name=db"])
        .await;
    assert_eq!(item_names(&fielded), vec!["db"]);
    kubectl
        .fails_with(
            &["get", "configmaps", "--field-selector", "data.color=red"],
            "field label not supported: data.color",
        )
        .await;

    // Default validation is strict: the server rejects unknown fields.
    let unknown = write(
        dir.path(),
        "unknown.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nbogus: 1\n",
    );
    kubectl
        .fails_with(
            &["apply", "--server-side", "-f", &unknown],
            "unknown field \"bogus\"",
        )
        .await;
    kubectl
        .fails_with(&["create", "-f", &unknown], "unknown field \"bogus\"")
        .await;

    // Another manager changing an applied field conflicts; --force-conflicts takes it.
    let other = write(
        dir.path(),
        "other.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {color: green}\n",
    );
    kubectl
        .fails_with(
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "other",
                "-f",
                &other,
            ],
            "conflict",
        )
        .await;
    kubectl
        .ok(&[
            "apply",
            "--server-side",
            "--field-manager",
            "other",
            "--force-conflicts",
            "-f",
            &other,
        ])
        .await;
    let web = kubectl.json(&["get", "configmap", "web"]).await;
    assert_eq!(web["data"]["color"], "green");

    let deleted = kubectl.ok(&["delete", "configmap", "db"]).await;
    assert!(deleted.contains("configmap \"db\" deleted"), "{deleted}");
    kubectl
        .fails_with(&["get", "configmap", "db"], "configmaps \"db\" not found")
        .await;
    assert_eq!(cluster.count("configmaps"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_streams_changes() {
    let (cluster, client) = start().await;
    let kubectl = Kubectl::new(&cluster);
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &configmap("before", json!({})))
        .await
        .unwrap();
    let mut watch = kubectl
        .command(&["get", "configmaps", "-w", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl on PATH");
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    assert_eq!(next_line(&mut lines).await, "configmap/before");
    api.create(&PostParams::default(), &configmap("after", json!({})))
        .await
        .unwrap();
    assert_eq!(next_line(&mut lines).await, "configmap/after");
    watch.kill().await.unwrap();
}

const WIDGET_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    selectableFields: [{jsonPath: .spec.color}]
    additionalPrinterColumns:
    - {name: Color, type: string, jsonPath: .spec.color}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              color: {type: string}
              size: {type: integer}
";

const WIDGETS: &str = "apiVersion: example.com/v1
kind: Widget
metadata: {name: small, labels: {size: s}}
spec: {color: red, size: 1}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: large, labels: {size: l}}
spec: {color: blue, size: 9}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_work_like_built_ins() {
    let (cluster, _client) = start().await;
    let kubectl = Kubectl::new(&cluster);
    let dir = tempfile::tempdir().unwrap();
    let crd = write(dir.path(), "crd.yaml", WIDGET_CRD);
    let widgets = write(dir.path(), "widgets.yaml", WIDGETS);
    kubectl.ok(&["apply", "--server-side", "-f", &crd]).await;
    kubectl
        .ok(&[
            "wait",
            "--for",
            "condition=established",
            "crd/widgets.example.com",
            "--timeout=30s",
        ])
        .await;
    kubectl
        .ok(&["apply", "--server-side", "-f", &widgets])
        .await;

    let all = kubectl.json(&["get", "widgets"]).await;
    assert_eq!(item_names(&all), vec!["large", "small"]);
    let short = kubectl.json(&["get", "wd", "-l", "size=s"]).await;
    assert_eq!(item_names(&short), vec!["small"]);
    let blue = kubectl
        .json(&["get", "widgets", "--field-selector", "spec.color=blue"])
        .await;
    assert_eq!(item_names(&blue), vec!["large"]);
    let yaml = kubectl.ok(&["get", "widget", "small", "-o", "yaml"]).await;
    assert!(yaml.contains("color: red"), "{yaml}");
    let table = kubectl.ok(&["get", "widgets"]).await;
    assert!(table.contains("COLOR") && table.contains("blue"), "{table}");

    let invalid = write(
        dir.path(),
        "invalid.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: bad}\nspec: {size: huge}\n",
    );
    kubectl
        .fails_with(
            &["apply", "--server-side", "-f", &invalid],
            "must be of type integer",
        )
        .await;
    let unknown = write(
        dir.path(),
        "unknown.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: odd}\nspec: {shape: round}\n",
    );
    kubectl
        .fails_with(
            &["apply", "--server-side", "-f", &unknown],
            "unknown field \"spec.shape\"",
        )
        .await;

    kubectl.ok(&["delete", "widget", "small"]).await;
    assert_eq!(
        item_names(&kubectl.json(&["get", "widgets"]).await),
        vec!["large"]
    );
    kubectl.ok(&["delete", "-f", &crd]).await;
    // The kind is no longer served.
    kubectl.fails(&["get", "widgets"]).await;
}

/// Whether kubectl can be run; tests that only make sense with it skip (saying why) without.
async fn kubectl_available() -> bool {
    match Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .await
    {
        Ok(out) if out.status.success() => true,
        other => {
            eprintln!("SKIPPED: kubectl is not on PATH or does not run ({other:?})");
            false
        }
    }
}

/// `kubectl create namespace|configmap|secret|serviceaccount` send typed objects as protobuf
/// (`application/vnd.kubernetes.protobuf`), which client-go never retries as JSON: the server
/// decodes them. Kinds it cannot decode get a 415 that says to send JSON, and nothing is stored.
#[tokio::test]
async fn kubectl_create_generators_send_protobuf_and_work() {
    if !kubectl_available().await {
        return;
    }
    let (cluster, client) = start().await;
    let kubectl = Kubectl::new(&cluster);
    let out = kubectl.ok(&["create", "namespace", "x"]).await;
    assert_eq!(out.trim(), "namespace/x created");
    let out = kubectl
        .ok(&["create", "configmap", "y", "--from-literal=a=b", "-n", "x"])
        .await;
    assert_eq!(out.trim(), "configmap/y created");
    kubectl
        .ok(&[
            "create",
            "secret",
            "generic",
            "s",
            "--from-literal=p=q",
            "-n",
            "x",
        ])
        .await;
    kubectl
        .ok(&["create", "serviceaccount", "robot", "-n", "x"])
        .await;

    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let x = ns.get("x").await.unwrap();
    assert_eq!(
        x.metadata.labels.unwrap()["kubernetes.io/metadata.name"],
        "x"
    );
    assert_eq!(
        x.metadata.managed_fields.unwrap()[0].manager.as_deref(),
        Some("kubectl-create")
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "x");
    let y = cms.get("y").await.unwrap();
    assert_eq!(y.data.unwrap()["a"], "b");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), "x");
    let s = secrets.get("s").await.unwrap();
    assert_eq!(s.data.unwrap()["p"].0, b"q");
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client, "x");
    sas.get("robot").await.unwrap();
    // kubectl reads them back like any other object.
    let listed = kubectl.json(&["get", "configmaps", "-n", "x"]).await;
    assert_eq!(item_names(&listed), vec!["y"]);

    // Errors keep the server's wording through the protobuf path.
    kubectl
        .fails_with(
            &["create", "namespace", "x"],
            "(AlreadyExists): namespaces \"x\" already exists",
        )
        .await;
    // A kind whose protobuf is not decoded is refused, saying what to do, and not stored.
    let cronjobs = cluster.count("cronjobs.batch");
    let cronjob = kubectl
        .fails(&[
            "create",
            "cronjob",
            "c",
            "--image=busybox",
            "--schedule=*/5 * * * *",
            "-n",
            "x",
        ])
        .await;
    assert!(
        cronjob.contains("protobuf batch/v1 CronJob:") && cronjob.contains("as JSON"),
        "{cronjob}"
    );
    assert_eq!(cluster.count("cronjobs.batch"), cronjobs);
}

/// `kubectl create service clusterip|nodeport|externalname`: target ports as numbers and
/// names (`IntOrString`), node ports, and Go's JSON for what is left empty.
#[tokio::test]
async fn kubectl_create_service_is_decoded() {
    if !kubectl_available().await {
        return;
    }
    let (cluster, _client) = start().await;
    let kubectl = Kubectl::new(&cluster);
    let out = kubectl
        .ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"])
        .await;
    assert_eq!(out.trim(), "service/web created");
    let web = kubectl.json(&["get", "service", "web"]).await;
    let ip = web["spec"]["clusterIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(ip.starts_with("10.9"), "an allocated cluster IP: {web}");
    // What a 1.33 server stores for this command.
    assert_eq!(
        web["spec"],
        json!({
            "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
            "selector": {"app": "web"},
            "type": "ClusterIP",
            "clusterIP": ip, "clusterIPs": [ip],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
        })
    );
    assert_eq!(
        web["status"],
        Value::Null,
        "a create drops the status it was sent"
    );

    kubectl
        .ok(&[
            "create",
            "service",
            "nodeport",
            "edge",
            "--tcp=80:http",
            "--node-port=30080",
        ])
        .await;
    let edge = kubectl.json(&["get", "service", "edge"]).await;
    assert_eq!(
        edge["spec"]["ports"],
        json!([{"name": "80-http", "protocol": "TCP", "port": 80, "targetPort": "http", "nodePort": 30080}])
    );
    assert_eq!(edge["spec"]["type"], "NodePort");

    kubectl
        .ok(&[
            "create",
            "service",
            "externalname",
            "db",
            "--external-name=db.example.com",
        ])
        .await;
    let db = kubectl.json(&["get", "service", "db"]).await;
    assert_eq!(db["spec"]["externalName"], "db.example.com");
    assert_eq!(db["spec"]["type"], "ExternalName");
    assert_eq!(cluster.count("services"), 3);
    let table = kubectl.ok(&["get", "services", "-o", "wide"]).await;
    let edge = table
        .lines()
        .find(|l| l.starts_with("edge"))
        .unwrap_or_default();
    for cell in ["NodePort", "80:30080/TCP", "app=edge"] {
        assert!(edge.contains(cell), "{cell} in {table}");
    }
}

/// `kubectl create deployment` (the first thing a user of `trellis dev` tries) and `kubectl
/// create job` send apps/v1 Deployment and batch/v1 Job as protobuf, with a pod template
/// inside: the server decodes every field they send, and kubectl reads back what it asked for.
#[tokio::test]
async fn kubectl_create_deployment_and_job_are_decoded() {
    if !kubectl_available().await {
        return;
    }
    let (cluster, _client) = start().await;
    let kubectl = Kubectl::new(&cluster);
    let out = kubectl
        .ok(&[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--image=registry.example/tools/busybox",
            "--replicas=3",
            "--port=8080",
        ])
        .await;
    assert_eq!(out.trim(), "deployment.apps/web created");
    let web = kubectl
        .json(&["get", "deployment", "web", "--show-managed-fields"])
        .await;
    assert_eq!(web["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(web["spec"]["replicas"], 3);
    assert_eq!(
        web["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    let template = &web["spec"]["template"];
    assert_eq!(template["metadata"]["labels"], json!({"app": "web"}));
    let containers = template["spec"]["containers"].as_array().unwrap();
    let named: Vec<(&str, &str)> = containers
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["image"].as_str().unwrap()))
        .collect();
    assert_eq!(
        named,
        vec![
            ("nginx", "nginx:1.27"),
            ("busybox", "registry.example/tools/busybox")
        ]
    );
    assert_eq!(containers[0]["ports"][0]["containerPort"], 8080);
    assert!(containers[1].get("ports").is_none(), "{web}");
    assert_eq!(
        web["metadata"]["managedFields"][0]["manager"],
        "kubectl-create"
    );
    let table = kubectl.ok(&["get", "deployments"]).await;
    assert!(table.contains("web"), "{table}");
    // --replicas=0 is sent as a set pointer: it is kept, not taken for "unset".
    kubectl
        .ok(&[
            "create",
            "deployment",
            "idle",
            "--image=nginx",
            "--replicas=0",
        ])
        .await;
    let idle = kubectl.json(&["get", "deployment", "idle"]).await;
    assert_eq!(idle["spec"]["replicas"], 0);

    let out = kubectl
        .ok(&[
            "create",
            "job",
            "once",
            "--image=busybox",
            "--",
            "printf",
            "%s|",
            "",
            "x",
        ])
        .await;
    assert_eq!(out.trim(), "job.batch/once created");
    let job = kubectl.json(&["get", "job", "once"]).await;
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    // The empty argument is an argument: kept, not left out like an empty string field.
    assert_eq!(
        pod["containers"],
        json!([{"name": "once", "image": "busybox", "command": ["printf", "%s|", "", "x"], "resources": {}}])
    );
    assert_eq!(cluster.count("deployments.apps"), 2);
    assert_eq!(cluster.count("jobs.batch"), 1);
}

/// `kubectl scale` through the `/scale` subresource: a merge patch, or with
/// `--current-replicas` a read and a guarded update.
#[tokio::test]
async fn kubectl_scale_sets_replicas() {
    if !kubectl_available().await {
        return;
    }
    let (cluster, _client) = start().await;
    let kubectl = Kubectl::new(&cluster);
    kubectl
        .ok(&[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=1",
        ])
        .await;
    let out = kubectl
        .ok(&["scale", "deployment", "web", "--replicas=3"])
        .await;
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    let replicas = |d: &Value| d["spec"]["replicas"].clone();
    assert_eq!(
        replicas(&kubectl.json(&["get", "deployment", "web"]).await),
        3
    );
    kubectl
        .ok(&[
            "scale",
            "deployment",
            "web",
            "--current-replicas=3",
            "--replicas=5",
        ])
        .await;
    let web = kubectl.json(&["get", "deployment", "web"]).await;
    assert_eq!(replicas(&web), 5);
    assert_eq!(web["metadata"]["generation"], 3);
    // A stale precondition is refused and changes nothing.
    kubectl
        .fails_with(
            &[
                "scale",
                "deployment",
                "web",
                "--current-replicas=3",
                "--replicas=1",
            ],
            "Expected replicas to be 3, was 5",
        )
        .await;
    assert_eq!(
        replicas(&kubectl.json(&["get", "deployment", "web"]).await),
        5
    );
    // Kinds without /scale get the real server's 404.
    kubectl.ok(&["create", "configmap", "c"]).await;
    kubectl
        .fails_with(
            &["scale", "configmap", "c", "--replicas=2"],
            "(NotFound): the server could not find the requested resource",
        )
        .await;
}

/// `kubectl create role|rolebinding|clusterrole|clusterrolebinding|quota` (protobuf bodies):
/// what an operator types to try a plugin's grants in `trellis dev`.
#[tokio::test]
async fn kubectl_create_rbac_and_quota_are_decoded() {
    if !kubectl_available().await {
        return;
    }
    let (cluster, _client) = start().await;
    let kubectl = Kubectl::new(&cluster);
    kubectl.ok(&["create", "namespace", "x"]).await;
    let out = kubectl
        .ok(&[
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods,deployments.apps",
            "--resource-name=web",
            "-n",
            "x",
        ])
        .await;
    assert_eq!(out.trim(), "role.rbac.authorization.k8s.io/reader created");
    let role = kubectl.json(&["get", "role", "reader", "-n", "x"]).await;
    let rules = role["rules"].as_array().unwrap();
    let pods = rules
        .iter()
        .find(|r| r["resources"] == json!(["pods"]))
        .unwrap_or_else(|| panic!("a rule for pods: {role}"));
    // `""` is the core group: an empty list element, not an empty field.
    assert_eq!(
        pods,
        &json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["web"]})
    );
    assert!(
        rules
            .iter()
            .any(|r| r["apiGroups"] == json!(["apps"]) && r["resources"] == json!(["deployments"])),
        "{role}"
    );

    kubectl
        .ok(&[
            "create",
            "rolebinding",
            "readers",
            "--role=reader",
            "--serviceaccount=x:robot",
            "--user=alice",
            "-n",
            "x",
        ])
        .await;
    let binding = kubectl
        .json(&["get", "rolebinding", "readers", "-n", "x"])
        .await;
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"})
    );
    let subjects = binding["subjects"].as_array().unwrap();
    assert!(
        subjects.contains(&json!({"kind": "ServiceAccount", "name": "robot", "namespace": "x"})),
        "{binding}"
    );
    assert!(
        subjects.contains(
            &json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"})
        ),
        "{binding}"
    );

    kubectl
        .ok(&[
            "create",
            "clusterrole",
            "watcher",
            "--verb=watch",
            "--resource=namespaces",
        ])
        .await;
    kubectl
        .ok(&[
            "create",
            "clusterrole",
            "combined",
            "--aggregation-rule=team=a",
        ])
        .await;
    let combined = kubectl.json(&["get", "clusterrole", "combined"]).await;
    assert_eq!(
        combined["aggregationRule"],
        json!({"clusterRoleSelectors": [{"matchLabels": {"team": "a"}}]})
    );
    kubectl
        .ok(&[
            "create",
            "clusterrolebinding",
            "watchers",
            "--clusterrole=watcher",
            "--group=devs",
        ])
        .await;
    let binding = kubectl
        .json(&["get", "clusterrolebinding", "watchers"])
        .await;
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"}])
    );

    kubectl
        .ok(&[
            "create",
            "quota",
            "small",
            "--hard=pods=10,requests.cpu=500m",
            "--scopes=NotTerminating",
            "-n",
            "x",
        ])
        .await;
    let quota = kubectl.json(&["get", "quota", "small", "-n", "x"]).await;
    assert_eq!(
        quota["spec"],
        json!({"hard": {"pods": "10", "requests.cpu": "500m"}, "scopes": ["NotTerminating"]})
    );
    assert_eq!(cluster.count("roles.rbac.authorization.k8s.io"), 1);
    assert_eq!(cluster.count("clusterroles.rbac.authorization.k8s.io"), 2);
    assert_eq!(cluster.count("resourcequotas"), 1);
}

/// What a plugin records (kube-runtime's `Recorder`, `events.k8s.io/v1`) is what plain
/// `kubectl get events` and `kubectl describe` show (core `v1`), with the server's columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_shows_recorded_events() {
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};

    let (cluster, client) = start().await;
    let kubectl = Kubectl::new(&cluster);
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let settings = configmaps
        .create(&PostParams::default(), &configmap("settings", json!({})))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "trellis.dev/defaults".into(),
            instance: None,
        },
    );
    recorder
        .publish(
            &Event {
                type_: EventType::Normal,
                reason: "DefaultsCreated".into(),
                note: Some("created the team's defaults".into()),
                action: "Reconcile".into(),
                secondary: None,
            },
            &settings.object_ref(&()),
        )
        .await
        .unwrap();

    let table = kubectl.ok(&["get", "events"]).await;
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        header,
        ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{table}"
    );
    let row = lines.next().unwrap_or_default();
    for cell in [
        "Normal",
        "DefaultsCreated",
        "configmap/settings",
        "created the team's defaults",
    ] {
        assert!(row.contains(cell), "{cell} in {table}");
    }
    assert_eq!(lines.next(), None, "{table}");
    let wide = kubectl.ok(&["get", "events", "-o", "wide"]).await;
    assert!(
        wide.contains("trellis.dev/defaults"),
        "the source column: {wide}"
    );

    // describe finds the Events by the object's kind, name, namespace and uid.
    let described = kubectl.ok(&["describe", "configmap", "settings"]).await;
    let events = described.split("Events:").nth(1).unwrap_or_default();
    assert!(
        events.contains("DefaultsCreated") && events.contains("created the team's defaults"),
        "{described}"
    );
    let listed = kubectl.json(&["get", "events"]).await;
    assert_eq!(listed["items"][0]["apiVersion"], "v1");
    assert_eq!(listed["items"][0]["involvedObject"]["name"], "settings");
    assert_eq!(
        listed["items"][0]["reportingComponent"],
        "trellis.dev/defaults"
    );
}
