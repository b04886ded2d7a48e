//! The built `trellis` binary, run as a user runs it: exit codes, what it prints, and
//! `trellis dev` serving kubectl until Ctrl-C.

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
        let mut child = Command::new(TRELLIS)
            .args(["dev", "--progress", "plain", "--state-dir"])
            .arg(state)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting trellis dev");
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
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
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + PATIENCE;
        let code = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status.code();
            }
            assert!(
                Instant::now() < deadline,
                "trellis dev did not stop after Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
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

    let (code, output) = dev.interrupt();
    assert_eq!(code, Some(0), "output:\n{}", output.join("\n"));
    assert!(
        !output.iter().any(|l| l.contains("panicked")),
        "{}",
        output.join("\n")
    );
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
