//! The `host.guests` section: where guests run, on how many threads, at which OS priority,
//! validated into [`GuestSettings`] (the worker module's type; it owns the rules of a nice
//! value, this module places their mistakes in the file).
//!
//! Why it is configurable: guest threads run at nice 10 so that a looping guest cannot delay
//! the event path. In a pod with its own cgroup that only yields to the host's own threads; on
//! a shared machine it also yields to every other process (docs/workers.md has the numbers),
//! so the operator chooses, with the measured placement as the default.

use super::error::{Faults, FieldPath};
use super::raw::{PER_PLUGIN_EXECUTOR, RawGuests, SHARED_EXECUTOR};
use crate::worker::{ExecutorKind, GuestSettings, MAX_GUEST_THREADS, Nice, default_guest_threads};

/// Checks `host.guests` at `base`; every mistake is recorded, and the default stands in for
/// each wrong value (the caller only starts from a config without faults).
pub(crate) fn validate(raw: RawGuests, base: &FieldPath, faults: &mut Faults) -> GuestSettings {
    let defaults = GuestSettings::default();
    let executor = match raw.executor.as_str() {
        PER_PLUGIN_EXECUTOR => ExecutorKind::PerPlugin,
        SHARED_EXECUTOR => ExecutorKind::Shared,
        other => {
            faults.push(
                base.key("executor"),
                format!(
                    "unknown executor {other:?}, expected `{PER_PLUGIN_EXECUTOR}` (a runtime per \
                     plugin, the default) or `{SHARED_EXECUTOR}` (one runtime for every \
                     plugin's guests)"
                ),
            );
            defaults.executor
        }
    };
    let threads = match raw.threads {
        None => default_guest_threads(),
        Some(n) => match usize::try_from(n) {
            Ok(threads @ 1..=MAX_GUEST_THREADS) => threads,
            _ => {
                faults.push(
                    base.key("threads"),
                    format!(
                        "{n} is out of range: expected 1 to {MAX_GUEST_THREADS} guest threads \
                         (per plugin with `{PER_PLUGIN_EXECUTOR}`, in total with \
                         `{SHARED_EXECUTOR}`); leave it out for half the cores ({} here)",
                        default_guest_threads()
                    ),
                );
                defaults.threads
            }
        },
    };
    let nice = Nice::new(raw.nice).unwrap_or_else(|error| {
        faults.push(base.key("nice"), error.to_string());
        defaults.nice
    });
    GuestSettings {
        executor,
        threads,
        nice,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ConfigError, ConfigErrors, Location, parse};
    use super::*;

    /// A config with one valid plugin and `host` as given, parsed as a file beside the
    /// plugin's component.
    fn load(host: &str) -> Result<super::super::Config, ConfigErrors> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.wasm"), b"not read by the config").unwrap();
        let text = format!(
            "{host}plugins:\n  - name: a\n    component: a.wasm\n    watch: {{apiVersion: v1, \
             kind: ConfigMap}}\n"
        );
        parse(dir.path().join("trellis.yaml"), &text)
    }

    fn guests(host: &str) -> GuestSettings {
        match load(host) {
            Ok(config) => config.host.guests,
            Err(errors) => panic!("{errors}"),
        }
    }

    fn errors(host: &str) -> Vec<ConfigError> {
        match load(host) {
            Ok(config) => panic!("loaded: {:?}", config.host),
            Err(errors) => {
                for e in &errors {
                    assert!(
                        e.file.ends_with("trellis.yaml"),
                        "every error names the file: {e}"
                    );
                }
                errors.errors
            }
        }
    }

    #[track_caller]
    fn assert_error(error: &ConfigError, field: &str, line: usize, column: usize, says: &str) {
        assert_eq!(error.field, field, "{error}");
        assert_eq!(error.location, Some(Location { line, column }), "{error}");
        assert!(error.message.contains(says), "{says:?} in {error}");
    }

    #[test]
    fn absent_means_a_runtime_per_plugin_with_half_the_cores_at_nice_10() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let expected = GuestSettings {
            executor: ExecutorKind::PerPlugin,
            threads: (cores / 2).max(1),
            nice: Nice::DEFAULT,
        };
        assert_eq!(guests(""), expected);
        assert_eq!(guests("host: {}\n"), expected);
        assert_eq!(guests("host: {guests: {}}\n"), expected);
        assert_eq!(guests("host: {guests: {threads: null}}\n"), expected);
        assert_eq!(GuestSettings::default(), expected);
    }

    #[test]
    fn every_field_is_read() {
        let shared =
            guests("host:\n  guests:\n    executor: shared\n    threads: 3\n    nice: 0\n");
        assert_eq!(
            shared,
            GuestSettings {
                executor: ExecutorKind::Shared,
                threads: 3,
                nice: Nice::HOST,
            }
        );
        let per_plugin = guests("host: {guests: {executor: perPlugin, threads: 1024, nice: 19}}\n");
        assert_eq!(
            per_plugin,
            GuestSettings {
                executor: ExecutorKind::PerPlugin,
                threads: MAX_GUEST_THREADS,
                nice: Nice::LOWEST,
            }
        );
        assert_eq!(guests("host: {guests: {threads: 1}}\n").threads, 1);
    }

    #[test]
    fn an_unknown_executor_is_named_with_the_choices() {
        for (bad, shown) in [
            ("host", "\"host\""),
            ("PerPlugin", "\"PerPlugin\""),
            ("''", "\"\""),
        ] {
            let errors = errors(&format!("host:\n  guests:\n    executor: {bad}\n"));
            let [error] = errors.as_slice() else {
                panic!("one error: {errors:#?}")
            };
            assert_error(
                error,
                "host.guests.executor",
                3,
                15,
                &format!("unknown executor {shown}, expected `perPlugin`"),
            );
            assert!(error.message.contains("or `shared`"), "{error}");
        }
    }

    #[test]
    fn threads_must_be_1_to_1024() {
        for bad in ["0", "1025", "-1", "9223372036854775807"] {
            let errors = errors(&format!("host:\n  guests: {{threads: {bad}}}\n"));
            let [error] = errors.as_slice() else {
                panic!("one error: {errors:#?}")
            };
            assert_error(
                error,
                "host.guests.threads",
                2,
                21,
                &format!("{bad} is out of range: expected 1 to 1024 guest threads"),
            );
            assert!(error.message.contains("half the cores"), "{error}");
        }
    }

    #[test]
    fn nice_must_be_0_to_19() {
        for bad in ["-1", "-20", "20", "100"] {
            let errors = errors(&format!("host:\n  guests:\n    nice: {bad}\n"));
            let [error] = errors.as_slice() else {
                panic!("one error: {errors:#?}")
            };
            assert_error(
                error,
                "host.guests.nice",
                3,
                11,
                &format!("{bad} is out of range: expected 0 (the host's own priority) to 19"),
            );
        }
    }

    #[test]
    fn wrong_types_and_unknown_keys_are_placed() {
        let errors1 = errors("host:\n  guests:\n    nice: low\n");
        let [error] = errors1.as_slice() else {
            panic!("one error: {errors1:#?}")
        };
        assert_error(error, "host.guests.nice", 3, 11, "invalid type");

        let errors2 = errors("host:\n  guests:\n    priority: 5\n");
        let [error] = errors2.as_slice() else {
            panic!("one error: {errors2:#?}")
        };
        assert_error(
            error,
            "host.guests.priority",
            3,
            5,
            "unknown field `priority`",
        );
    }

    #[test]
    fn every_mistake_is_reported_together_with_the_others() {
        let errors = errors(
            "host:\n  metricsAddress: nowhere\n  guests:\n    executor: fastest\n    \
             threads: 0\n    nice: 20\n  cacheSyncTimeoutSeconds: 0\n",
        );
        let found: Vec<(&str, usize)> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.location.unwrap().line))
            .collect();
        assert_eq!(
            found,
            [
                ("host.metricsAddress", 2),
                ("host.guests.executor", 4),
                ("host.guests.threads", 5),
                ("host.guests.nice", 6),
                ("host.cacheSyncTimeoutSeconds", 7),
            ],
            "{errors:#?}"
        );
    }
}
