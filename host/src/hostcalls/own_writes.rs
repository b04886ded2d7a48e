//! Reporting a plugin's own writes to its primary objects, so that the watch events they cause
//! (their echoes) are not taken for news: `worker/echoes.rs` says why and what the queue does
//! with them. Here: what a write reports, and a guard so that every tracked write reports an
//! answer — a failed or cancelled one (the guest cut off at its deadline) as failed.

use std::sync::Arc;

use crate::cache::{Gvk, Metadata, ObjectKey};

/// Told about a plugin's writes (the manager gives the plugin's queue sink).
pub trait OwnWrites: Send + Sync + std::fmt::Debug + 'static {
    /// A write to `key` of `kind` is being sent; false when it is not tracked (not the primary
    /// kind, or too many objects tracked), and then nothing more is reported for it.
    fn sending(&self, kind: &Gvk, key: &ObjectKey) -> bool;

    /// A tracked write was answered: `Some` with the object's new resourceVersion, `None` when
    /// it failed, was cancelled, or its answer named none.
    fn answered(&self, kind: &Gvk, key: &ObjectKey, resource_version: Option<&str>);
}

/// One tracked write in flight. Answer it with [`InFlight::answered`]; dropped unanswered, it
/// reports the write as failed.
pub(crate) struct InFlight<'a> {
    own: &'a dyn OwnWrites,
    kind: &'a Gvk,
    key: &'a ObjectKey,
    /// The object's resourceVersion before the write (the cache's).
    before: &'a str,
    open: bool,
}

impl<'a> InFlight<'a> {
    /// Reports the write as being sent, if anyone listens and tracks it; `before` is the
    /// object's resourceVersion as the cache shows it.
    pub(crate) fn start(
        own: Option<&'a Arc<dyn OwnWrites>>,
        kind: &'a Gvk,
        key: &'a ObjectKey,
        before: &'a str,
    ) -> Option<Self> {
        let own = own?.as_ref();
        own.sending(kind, key).then_some(Self {
            own,
            kind,
            key,
            before,
            open: true,
        })
    }

    /// The write's outcome: the metadata of the server's answer (the object written), or
    /// `None` when it failed. An answer at the version the object had before changed nothing
    /// (the server wrote nothing), so no echo is coming: reported like a failure.
    pub(crate) fn answered(mut self, answer: Option<&Metadata>) {
        self.open = false;
        let rv = answer
            .map(|meta| &*meta.resource_version)
            .filter(|rv| *rv != self.before);
        self.own.answered(self.kind, self.key, rv);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.open {
            self.own.answered(self.kind, self.key, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    /// Records what it is told; tracks every write.
    #[derive(Debug, Default)]
    struct Told(Mutex<Vec<String>>);

    impl OwnWrites for Told {
        fn sending(&self, _: &Gvk, key: &ObjectKey) -> bool {
            self.0.lock().push(format!("sending {key}"));
            true
        }

        fn answered(&self, _: &Gvk, key: &ObjectKey, rv: Option<&str>) {
            self.0.lock().push(format!("answered {key} {rv:?}"));
        }
    }

    fn setup() -> (Arc<Told>, Arc<dyn OwnWrites>, Gvk, ObjectKey) {
        let told = Arc::new(Told::default());
        let own: Arc<dyn OwnWrites> = told.clone();
        (
            told,
            own,
            Gvk::new("apps", "v1", "Deployment"),
            ObjectKey::namespaced("ns", "web"),
        )
    }

    #[test]
    fn an_answer_reports_the_resource_version_it_carries() {
        let (told, own, kind, key) = setup();
        let flight = InFlight::start(Some(&own), &kind, &key, "41").unwrap();
        let answer = Metadata::parse(
            r#"{"kind":"Deployment","metadata":{"name":"web","resourceVersion":"42"}}"#,
        )
        .unwrap();
        flight.answered(Some(&answer));
        assert_eq!(
            *told.0.lock(),
            ["sending ns/web", r#"answered ns/web Some("42")"#]
        );
    }

    #[test]
    fn a_failure_an_answer_without_a_version_and_a_drop_report_none() {
        let (told, own, kind, key) = setup();
        InFlight::start(Some(&own), &kind, &key, "41")
            .unwrap()
            .answered(None);
        // The writer's reading of an answer without a resourceVersion: no metadata.
        let unversioned = Metadata::parse(r#"{"metadata":{"name":"web"}}"#).ok();
        InFlight::start(Some(&own), &kind, &key, "41")
            .unwrap()
            .answered(unversioned.as_ref());
        drop(InFlight::start(Some(&own), &kind, &key, "41").unwrap());
        let told = told.0.lock();
        assert_eq!(told.len(), 6);
        assert!(
            told.iter()
                .skip(1)
                .step_by(2)
                .all(|line| line == "answered ns/web None"),
            "{told:?}"
        );
    }

    #[test]
    fn an_answer_at_the_version_before_the_write_reports_none_no_echo_is_coming() {
        let (told, own, kind, key) = setup();
        let unchanged =
            Metadata::parse(r#"{"metadata":{"name":"web","resourceVersion":"41"}}"#).unwrap();
        InFlight::start(Some(&own), &kind, &key, "41")
            .unwrap()
            .answered(Some(&unchanged));
        assert_eq!(told.0.lock()[1], "answered ns/web None");
    }

    #[test]
    fn nothing_is_reported_without_a_listener() {
        let (_, _, kind, key) = setup();
        assert!(InFlight::start(None, &kind, &key, "41").is_none());
    }
}
