//! `host.guests` end to end: a real manager started from a config (as `trellis run` and
//! `trellis dev` start it, without an explicit executor) against the embedded API server runs
//! each plugin's guests on threads of its own at the configured nice value.

use std::time::Duration;

use trellis_devcluster::{DevCluster, DevClusterOptions};
use trellis_host::manager::{Manager, ManagerOptions, PluginPhase};
use trellis_host::ops::config::{self, DEV_COMPONENTS, DEV_CONFIG};

/// Field 19 of a thread's stat: its nice value.
fn nice_in(stat: &str) -> i32 {
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(16).unwrap().parse().unwrap()
}

/// `(name, nice)` of every thread of this process.
fn threads() -> Vec<(String, i32)> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        if let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
        ) {
            found.push((comm.trim_end().to_string(), nice_in(&stat)));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_runs_guests_where_the_config_says_at_its_nice() {
    let own = nice_in(&std::fs::read_to_string("/proc/thread-self/stat").unwrap());
    // Above this thread's value, so no privilege is needed and seeing it proves it was set.
    let wanted = (own + 4).min(19);

    let dir = tempfile::tempdir().unwrap();
    for (plugin, file) in DEV_COMPONENTS {
        let built = trellis_plugin_bundle::by_name(plugin).expect("a bundled example plugin");
        std::fs::write(dir.path().join(file), built.wasm).unwrap();
    }
    let text = format!(
        "host:\n  metricsAddress: null\n  guests: {{executor: perPlugin, threads: 1, nice: \
         {wanted}}}\n{DEV_CONFIG}"
    );
    let config = config::parse(dir.path().join("trellis.yaml"), &text).unwrap();

    let cluster = DevCluster::start(DevClusterOptions::default())
        .await
        .unwrap();
    let client = cluster.client().unwrap();
    let manager = Manager::start(&config, client, ManagerOptions::new("guests-test"))
        .await
        .unwrap();
    assert_eq!(manager.guest_executor().name(), "per-plugin");
    assert_eq!(manager.guest_executor().threads(), Some(1));

    // Pools (and so their runtimes) start once the caches are synced.
    let running = async {
        loop {
            let stats = manager.stats();
            if stats
                .plugins
                .iter()
                .all(|p| p.phase == PluginPhase::Running)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), running)
        .await
        .expect("both plugins run within 2 minutes");

    // A runtime's threads name and renice themselves as they start, so wait (boundedly) for
    // what the config asks: one thread per plugin (threads: 1) at the configured value. Linux
    // shows 15 bytes of a thread's name: `guest-<plugin>` cut short.
    // The host calls' I/O runtime (one thread, `trellis-io`) runs at the guests' value too.
    let expected = |all: &[(String, i32)]| {
        ["guest-namespace", "guest-deploymen", "trellis-io"]
            .iter()
            .all(|thread| {
                let niced: Vec<i32> = all
                    .iter()
                    .filter(|(name, _)| name == thread)
                    .map(|(_, nice)| *nice)
                    .collect();
                niced == [wanted]
            })
    };
    let mut all = threads();
    for _ in 0..600 {
        if expected(&all) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        all = threads();
    }
    assert!(
        expected(&all),
        "one thread per plugin and one I/O thread at nice {wanted}: {all:?}"
    );
    // The host's own threads keep their value.
    assert!(
        all.iter()
            .filter(|(name, _)| !name.starts_with("guest-") && name != "trellis-io")
            .all(|(_, nice)| *nice == own),
        "{all:?}"
    );
    assert!(manager.shutdown(Duration::from_secs(5)).await.drained());
}
