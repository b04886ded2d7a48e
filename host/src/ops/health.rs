//! Readiness: named checks that the parts of the host keep up to date, rendered the way
//! kube-apiserver renders `/readyz?verbose`.
//!
//! Each part registers the checks it owns (`informer:apps/v1/Deployment`, `plugin:x`,
//! `leader`) and updates them as its state changes; the HTTP server only reads. A check is
//! removed when its [`Check`] handle is dropped, so an informer that is freed or a plugin that
//! is unloaded leaves nothing behind on `/readyz`. The host is ready when every check is.
//!
//! ```text
//! [+]informer:apps/v1/Deployment ok
//! [+]leader ok: standby, leader is trellis-5d8f-x2k4p
//! [-]plugin:namespace-defaults degraded: every call failed for 312 s
//! readyz check failed
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use parking_lot::RwLock;

/// The state of one check: ready or not, with a plain-text detail for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub ready: bool,
    /// Why, in a few words. For a check that is not ready it should say what is wrong
    /// (`not synced: waiting for the initial list`); for a ready one it may be empty.
    pub detail: String,
}

impl Status {
    pub fn ready(detail: impl Into<String>) -> Self {
        Self {
            ready: true,
            detail: detail.into(),
        }
    }

    pub fn not_ready(detail: impl Into<String>) -> Self {
        Self {
            ready: false,
            detail: detail.into(),
        }
    }
}

/// Two parts tried to own one check name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("readiness check {name:?} is already registered")]
pub struct DuplicateCheck {
    pub name: String,
}

#[derive(Default)]
struct Checks {
    by_name: BTreeMap<String, Status>,
}

/// The registry of readiness checks. Cheap to clone; clones share the checks.
#[derive(Clone, Default)]
pub struct Health {
    checks: Arc<RwLock<Checks>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.checks.read().by_name.iter())
            .finish()
    }
}

/// What `/readyz` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    /// One line per check, sorted by name, then `readyz check passed` or `... failed`.
    pub report: String,
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check in its initial state; it stays until the returned handle is dropped.
    pub fn register(
        &self,
        name: impl Into<String>,
        initial: Status,
    ) -> Result<Check, DuplicateCheck> {
        let name = name.into();
        let mut checks = self.checks.write();
        if checks.by_name.contains_key(&name) {
            return Err(DuplicateCheck { name });
        }
        checks.by_name.insert(name.clone(), initial);
        Ok(Check {
            name,
            checks: Arc::clone(&self.checks),
        })
    }

    /// Whether every check is ready, and the verbose report. With no checks the host is
    /// ready, as kube-apiserver is.
    pub fn ready(&self) -> Readiness {
        let checks = self.checks.read();
        let mut report = String::new();
        let mut ready = true;
        for (name, status) in &checks.by_name {
            ready &= status.ready;
            let line = match (status.ready, status.detail.is_empty()) {
                (true, true) => format!("[+]{name} ok"),
                (true, false) => format!("[+]{name} ok: {}", status.detail),
                (false, true) => format!("[-]{name} failed"),
                (false, false) => format!("[-]{name} {}", status.detail),
            };
            // One line per check, whatever the detail holds.
            let _ = writeln!(report, "{}", line.replace(['\n', '\r'], " "));
        }
        report.push_str(if ready {
            "readyz check passed\n"
        } else {
            "readyz check failed\n"
        });
        Readiness { ready, report }
    }

    /// The status of one check, if registered.
    pub fn status(&self, name: &str) -> Option<Status> {
        self.checks.read().by_name.get(name).cloned()
    }
}

/// The handle a part keeps to update its check; dropping it removes the check.
pub struct Check {
    name: String,
    checks: Arc<RwLock<Checks>>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Check").field(&self.name).finish()
    }
}

impl Check {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn set(&self, status: Status) {
        if let Some(current) = self.checks.write().by_name.get_mut(&self.name) {
            *current = status;
        }
    }

    pub fn set_ready(&self, detail: impl Into<String>) {
        self.set(Status::ready(detail));
    }

    pub fn set_not_ready(&self, detail: impl Into<String>) {
        self.set(Status::not_ready(detail));
    }
}

impl Drop for Check {
    fn drop(&mut self) {
        self.checks.write().by_name.remove(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_checks_is_ready() {
        let health = Health::new();
        let readiness = health.ready();
        assert!(readiness.ready);
        assert_eq!(readiness.report, "readyz check passed\n");
    }

    #[test]
    fn one_failing_check_fails_and_the_report_names_it() {
        let health = Health::new();
        let informer = health
            .register(
                "informer:apps/v1/Deployment",
                Status::not_ready("not synced: waiting for the initial list"),
            )
            .unwrap();
        let plugin = health.register("plugin:x", Status::ready("")).unwrap();
        let leader = health.register("leader", Status::ready("leading")).unwrap();

        let readiness = health.ready();
        assert!(!readiness.ready);
        assert_eq!(
            readiness.report,
            "[-]informer:apps/v1/Deployment not synced: waiting for the initial list\n\
             [+]leader ok: leading\n\
             [+]plugin:x ok\n\
             readyz check failed\n"
        );

        informer.set_ready("");
        assert!(health.ready().ready);
        plugin.set_not_ready("degraded: every call failed for 312 s");
        let readiness = health.ready();
        assert!(!readiness.ready);
        assert!(
            readiness
                .report
                .contains("[-]plugin:x degraded: every call failed for 312 s\n"),
            "{}",
            readiness.report
        );
        plugin.set(Status::not_ready(""));
        assert!(health.ready().report.contains("[-]plugin:x failed\n"));
        drop(leader);
    }

    #[test]
    fn dropping_the_handle_removes_the_check() {
        let health = Health::new();
        let check = health
            .register("plugin:x", Status::not_ready("loading"))
            .unwrap();
        assert!(!health.ready().ready);
        drop(check);
        assert!(health.ready().ready);
        assert_eq!(health.status("plugin:x"), None);
        // The name is free again.
        let again = health.register("plugin:x", Status::ready("")).unwrap();
        assert_eq!(health.status("plugin:x"), Some(Status::ready("")));
        drop(again);
    }

    #[test]
    fn a_name_has_one_owner() {
        let health = Health::new();
        let _first = health.register("leader", Status::ready("")).unwrap();
        let err = health
            .register("leader", Status::not_ready("x"))
            .unwrap_err();
        assert_eq!(
            err,
            DuplicateCheck {
                name: "leader".into()
            }
        );
        assert!(err.to_string().contains("\"leader\""));
        // The first owner's state is untouched.
        assert_eq!(health.status("leader"), Some(Status::ready("")));
    }

    #[test]
    fn a_detail_cannot_break_the_one_line_per_check_format() {
        let health = Health::new();
        let _check = health
            .register("plugin:x", Status::not_ready("line one\nline two"))
            .unwrap();
        assert_eq!(
            health.ready().report,
            "[-]plugin:x line one line two\nreadyz check failed\n"
        );
    }

    #[test]
    fn clones_share_checks() {
        let health = Health::new();
        let clone = health.clone();
        let _check = clone
            .register("leader", Status::not_ready("electing"))
            .unwrap();
        assert!(!health.ready().ready);
    }
}
