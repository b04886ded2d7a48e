//! Echoes: the watch events a plugin's own writes to its primary objects cause.
//!
//! Every write a plugin makes to one of its primary objects comes back to it as an update on
//! its primary watch — the write's *echo*. The plugin still reconciles it (the level-triggered
//! contract: a reconcile sees the state its own write produced, and a multi-step plugin
//! continues from there), but an echo is not news to the plugin that wrote it. So it enters the
//! queue at low priority, like the initial list's keys, instead of normal: otherwise, during a
//! large initial list (a restart, a cold start), the echo of every write jumps ahead of every
//! object not yet reconciled once, and the initial pass takes twice the reconciles to finish
//! (measured: docs/benchmarks/e2e.md). Aging still bounds how long an echo waits (`queue`'s
//! priority contract), and with nothing else queued it is reconciled at once, as before.
//!
//! An update is an echo when its resourceVersion is the one the write's answer carried. The
//! echo can arrive before the answer is handled (the watch and the write's answer race), so
//! while a write to an object is in flight, its updates are *presumed* echoes and go in at low
//! priority; when the answer comes, an update whose resourceVersion it does not match was
//! someone else's change and is re-added at normal priority (the queue raises a waiting or
//! in-flight key's priority, never lowers it). So a real change is at worst held at low priority
//! while one write round trip completes; an echo is never mistaken for news for longer than
//! that either.
//!
//! Only objects the primary cache holds are tracked (the writer checks), so every tracked write
//! has an echo to come, or a delete that forgets it. A write the server answers at the version
//! the object already had changed nothing and has no echo: it is reported like a failure, as is
//! a write cancelled in flight (the guest cut off at its deadline, the writer's guard). Updates
//! the watch's predicates drop are still shown to the table (never presumed echoes: nothing was
//! enqueued), so their records are consumed.
//! [`MAX_TRACKED`] objects and [`MAX_PER_OBJECT`] versions per object bound the table anyway.

use std::collections::HashMap;

use crate::cache::ObjectKey;

/// At most this many objects are tracked at once; writes to more are not (their echoes enter
/// at normal priority, as without tracking). Every tracked entry leaves with its echo, so this
/// is reached only by a plugin writing this many objects within one round trip.
pub const MAX_TRACKED: usize = 65_536;

/// At most this many answered (or presumed) versions are kept per object; older ones are
/// dropped (their echoes then enter at normal priority). One is the rule: a key is reconciled
/// by one worker at a time.
const MAX_PER_OBJECT: usize = 8;

/// Appends `rv`, dropping the oldest when `list` is full.
fn push_bounded(list: &mut Vec<Box<str>>, rv: &str) {
    if list.len() >= MAX_PER_OBJECT {
        list.remove(0);
    }
    list.push(rv.into());
}

/// What is known of one object's own writes.
#[derive(Debug, Default)]
struct Writes {
    /// Sent, not answered yet.
    in_flight: u32,
    /// Answered resourceVersions whose update has not arrived yet.
    answered: Vec<Box<str>>,
    /// Updates that arrived while a write was in flight and were enqueued at low priority,
    /// not yet matched with an answer.
    presumed: Vec<Box<str>>,
}

impl Writes {
    fn is_empty(&self) -> bool {
        self.in_flight == 0 && self.answered.is_empty() && self.presumed.is_empty()
    }

    /// An update at `rv` arrived: true when it is an answered write's echo (its record is then
    /// done with). With no write in flight, an update past every answered write ends them all:
    /// their echoes were folded into it (a relist shows only the latest state), so none is
    /// still to come.
    fn take_answered(&mut self, rv: &str) -> bool {
        if let Some(i) = self.answered.iter().position(|answered| **answered == *rv) {
            self.answered.swap_remove(i);
            return true;
        }
        if self.in_flight == 0 {
            self.answered.clear();
        }
        false
    }
}

/// The per-object bookkeeping; pure, the sink acts on its answers.
#[derive(Debug, Default)]
pub(crate) struct EchoTable {
    objects: HashMap<ObjectKey, Writes>,
}

impl EchoTable {
    /// A write to `key` is being sent. False when the table is full and the write is not
    /// tracked (then nothing more is reported for it).
    pub(crate) fn sending(&mut self, key: &ObjectKey) -> bool {
        if let Some(writes) = self.objects.get_mut(key) {
            writes.in_flight += 1;
            return true;
        }
        if self.objects.len() >= MAX_TRACKED {
            return false;
        }
        let writes = Writes {
            in_flight: 1,
            ..Writes::default()
        };
        self.objects.insert(key.clone(), writes);
        true
    }

    /// Applies `change` to what is known of `key`'s writes, if anything, and drops the entry
    /// once it holds nothing.
    fn update<R>(&mut self, key: &ObjectKey, change: impl FnOnce(&mut Writes) -> R) -> Option<R> {
        let writes = self.objects.get_mut(key)?;
        let result = change(writes);
        if writes.is_empty() {
            self.objects.remove(key);
        }
        Some(result)
    }

    /// An update of `key` at `resource_version` arrived: whether it is (or is presumed to be)
    /// the echo of an own write.
    pub(crate) fn is_echo(&mut self, key: &ObjectKey, resource_version: &str) -> bool {
        self.update(key, |writes| {
            if writes.take_answered(resource_version) {
                true
            } else if writes.in_flight > 0 {
                push_bounded(&mut writes.presumed, resource_version);
                true
            } else {
                false
            }
        })
        .unwrap_or(false)
    }

    /// An update of `key` at `resource_version` was dropped by the watch's predicates: if it
    /// is an answered write's echo, that record is done with. Never presumed an echo: it was
    /// not enqueued, so there is nothing to raise later.
    pub(crate) fn passed_over(&mut self, key: &ObjectKey, resource_version: &str) {
        self.update(key, |writes| writes.take_answered(resource_version));
    }

    /// A tracked write to `key` was answered: `Some` with the object's new resourceVersion, or
    /// `None` when it failed (or was cancelled). True when `key` must be re-added at normal
    /// priority: an update presumed an echo turned out to be someone else's change. An entry
    /// forgotten meanwhile (the object was deleted) raises nothing.
    pub(crate) fn answered(&mut self, key: &ObjectKey, resource_version: Option<&str>) -> bool {
        self.update(key, |writes| {
            writes.in_flight = writes.in_flight.saturating_sub(1);
            if let Some(rv) = resource_version {
                match writes.presumed.iter().position(|seen| **seen == *rv) {
                    Some(i) => {
                        writes.presumed.swap_remove(i);
                    }
                    None => push_bounded(&mut writes.answered, rv),
                }
            }
            let promote = writes.in_flight == 0 && !writes.presumed.is_empty();
            if promote {
                writes.presumed.clear();
            }
            promote
        })
        .unwrap_or(false)
    }

    /// `key` was deleted: nothing more will come of its writes.
    pub(crate) fn forget(&mut self, key: &ObjectKey) {
        self.objects.remove(key);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.objects.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new(Some("ns"), name)
    }

    #[test]
    fn the_update_an_answer_names_is_an_echo_and_the_next_one_is_not() {
        let mut table = EchoTable::default();
        assert!(table.sending(&key("a")));
        assert!(!table.answered(&key("a"), Some("7")));
        assert!(table.is_echo(&key("a"), "7"));
        assert_eq!(table.len(), 0, "the echo took the entry");
        assert!(
            !table.is_echo(&key("a"), "8"),
            "someone else's later change is news"
        );
    }

    #[test]
    fn an_echo_arriving_before_the_answer_is_presumed_and_then_confirmed() {
        let mut table = EchoTable::default();
        table.sending(&key("a"));
        assert!(
            table.is_echo(&key("a"), "7"),
            "presumed while the write is in flight"
        );
        assert!(
            !table.answered(&key("a"), Some("7")),
            "confirmed: nothing to re-add"
        );
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn a_change_presumed_an_echo_that_the_answer_does_not_name_is_promoted() {
        let mut table = EchoTable::default();
        table.sending(&key("a"));
        assert!(
            table.is_echo(&key("a"), "6"),
            "someone else's change, during our write"
        );
        assert!(
            table.answered(&key("a"), Some("7")),
            "the answer names another version: the presumed echo was news"
        );
        assert!(
            table.is_echo(&key("a"), "7"),
            "and our own echo is still recognised"
        );
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn a_failed_or_cancelled_write_promotes_what_was_presumed_its_echo() {
        let mut table = EchoTable::default();
        table.sending(&key("a"));
        assert!(table.is_echo(&key("a"), "6"));
        assert!(table.answered(&key("a"), None));
        assert_eq!(table.len(), 0);
        assert!(!table.is_echo(&key("a"), "8"));
    }

    #[test]
    fn with_two_writes_in_flight_promotion_waits_for_both_answers() {
        let mut table = EchoTable::default();
        table.sending(&key("a"));
        table.sending(&key("a"));
        assert!(table.is_echo(&key("a"), "7"));
        assert!(table.is_echo(&key("a"), "9"));
        assert!(!table.answered(&key("a"), Some("7")));
        assert!(!table.answered(&key("a"), Some("9")));
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn an_update_past_an_answered_write_clears_its_stale_echo() {
        let mut table = EchoTable::default();
        table.sending(&key("a"));
        table.answered(&key("a"), Some("7"));
        // The watch restarted and the relist shows only the later state.
        assert!(!table.is_echo(&key("a"), "9"));
        assert_eq!(table.len(), 0);
        assert!(
            !table.is_echo(&key("a"), "7"),
            "forgotten, not matched later"
        );
    }

    #[test]
    fn a_dropped_update_consumes_its_answer_and_is_never_presumed() {
        let mut table = EchoTable::default();
        table.sending(&key("a"));
        table.answered(&key("a"), Some("7"));
        table.passed_over(&key("a"), "7");
        assert_eq!(table.len(), 0, "the echo's record is done with");

        table.sending(&key("a"));
        table.passed_over(&key("a"), "6");
        assert!(
            !table.answered(&key("a"), Some("7")),
            "a dropped update was not enqueued: nothing to raise"
        );
        assert!(table.is_echo(&key("a"), "7"));
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn a_delete_forgets_the_object_and_a_late_answer_is_ignored() {
        let mut table = EchoTable::default();
        table.sending(&key("a"));
        table.forget(&key("a"));
        assert!(!table.answered(&key("a"), Some("7")));
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn objects_are_tracked_apart() {
        let mut table = EchoTable::default();
        table.sending(&key("a"));
        assert!(!table.is_echo(&key("b"), "7"));
        table.answered(&key("a"), Some("7"));
        assert!(
            !table.is_echo(&key("b"), "7"),
            "a's answer says nothing about b"
        );
        assert!(table.is_echo(&key("a"), "7"));
    }

    #[test]
    fn an_object_keeps_its_latest_answers_only() {
        let mut table = EchoTable::default();
        for rv in 0..MAX_PER_OBJECT + 2 {
            table.sending(&key("a"));
            table.answered(&key("a"), Some(&rv.to_string()));
        }
        assert!(table.is_echo(&key("a"), &(MAX_PER_OBJECT + 1).to_string()));
        assert!(!table.is_echo(&key("a"), "0"), "the oldest was dropped");
    }

    #[test]
    fn a_full_table_tracks_no_new_object_but_keeps_tracking_the_ones_it_has() {
        let mut table = EchoTable::default();
        for i in 0..MAX_TRACKED {
            assert!(table.sending(&key(&i.to_string())));
        }
        assert!(!table.sending(&key("one-too-many")));
        assert!(!table.is_echo(&key("one-too-many"), "1"));
        assert!(table.sending(&key("0")), "a tracked object's second write");
        assert_eq!(table.len(), MAX_TRACKED);
    }
}
