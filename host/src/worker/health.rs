//! Is a plugin degraded? A small state machine over call results, with time passed in.
//!
//! States:
//! * **Healthy**: the last call succeeded (or none has run).
//! * **Failing**: every call since `since` (the first failure of the current streak) failed,
//!   for less than the window (`degradedAfterSeconds`).
//! * **Degraded**: the same, for at least the window.
//!
//! Transitions: a failure moves Healthy to Failing (the streak starts) and counts in Failing
//! and Degraded; time moves Failing to Degraded once `now - since >= window`, whether or not a
//! call happens then ([`Tracker::tick`], driven by the pool's watchdog at [`Tracker::deadline`]);
//! one success moves any state to Healthy. Only Failing -> Degraded and Degraded -> Healthy are
//! reported ([`Transition`]): those are what the gauge and the warning follow.
//!
//! Why time-based rather than checked at each failure: a failing key backs off up to 1000 s,
//! so with few keys the next failure can come long after the window ends; the operator should
//! learn at the window, not at the next retry. Degradation changes nothing else: the queue
//! keeps retrying with its backoff, and other plugins are not affected.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// A reported change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Degraded,
    Recovered,
}

/// The current streak of failures.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Streak {
    since: Instant,
    failures: u64,
    last_outcome: &'static str,
    last_detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Healthy,
    Failing(Streak),
    Degraded(Streak),
}

/// The degraded tracker of one plugin.
#[derive(Debug)]
pub(crate) struct Tracker {
    window: Duration,
    state: State,
}

/// Longest failure detail kept for the health report.
const DETAIL_MAX: usize = 256;

fn bounded(detail: &str) -> String {
    if detail.len() <= DETAIL_MAX {
        return detail.to_string();
    }
    let mut cut = DETAIL_MAX;
    while !detail.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &detail[..cut])
}

impl Tracker {
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            window,
            state: State::Healthy,
        }
    }

    /// A call succeeded.
    pub(crate) fn success(&mut self) -> Option<Transition> {
        let was = std::mem::replace(&mut self.state, State::Healthy);
        matches!(was, State::Degraded(_)).then_some(Transition::Recovered)
    }

    /// A call failed at `now` with outcome class `outcome`.
    pub(crate) fn failure(
        &mut self,
        now: Instant,
        outcome: &'static str,
        detail: &str,
    ) -> Option<Transition> {
        match &mut self.state {
            State::Healthy => {
                self.state = State::Failing(Streak {
                    since: now,
                    failures: 1,
                    last_outcome: outcome,
                    last_detail: bounded(detail),
                });
            }
            State::Failing(streak) | State::Degraded(streak) => {
                streak.failures += 1;
                streak.last_outcome = outcome;
                streak.last_detail = bounded(detail);
            }
        }
        self.tick(now)
    }

    /// Time passed: a streak as long as the window becomes degraded.
    pub(crate) fn tick(&mut self, now: Instant) -> Option<Transition> {
        match &self.state {
            State::Failing(streak)
                if now.saturating_duration_since(streak.since) >= self.window =>
            {
                self.state = State::Degraded(streak.clone());
                Some(Transition::Degraded)
            }
            _ => None,
        }
    }

    /// When a failing plugin becomes degraded if nothing succeeds first.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Failing(streak) => Some(streak.since + self.window),
            _ => None,
        }
    }

    pub(crate) fn snapshot(&self, plugin: &str, now: Instant) -> PluginHealth {
        let (state, streak) = match &self.state {
            State::Healthy => (HealthState::Healthy, None),
            State::Failing(s) => (HealthState::Failing, Some(s)),
            State::Degraded(s) => (HealthState::Degraded, Some(s)),
        };
        PluginHealth {
            plugin: plugin.to_string(),
            state,
            window: self.window,
            failing_since: streak.map(|s| s.since),
            failing_for: streak
                .map(|s| now.saturating_duration_since(s.since))
                .unwrap_or_default(),
            failures: streak.map_or(0, |s| s.failures),
            last_outcome: streak.map(|s| s.last_outcome),
            last_detail: streak.map(|s| s.last_detail.clone()),
        }
    }
}

/// Health states as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    Healthy,
    Failing,
    Degraded,
}

/// A plugin's health at one moment, for `/readyz` detail and logs. `Display` is the plain-text
/// reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginHealth {
    pub plugin: String,
    pub state: HealthState,
    /// The degraded window.
    pub window: Duration,
    /// First failure of the current streak (tokio time).
    pub failing_since: Option<Instant>,
    /// How long the streak has lasted.
    pub failing_for: Duration,
    /// Failures in the current streak.
    pub failures: u64,
    /// The outcome class of the last failure (`deadline`, `guest_error`, ...).
    pub last_outcome: Option<&'static str>,
    /// What the last failure said (error message, trap), at most 256 bytes.
    pub last_detail: Option<String>,
}

impl PluginHealth {
    pub fn is_degraded(&self) -> bool {
        self.state == HealthState::Degraded
    }
}

impl fmt::Display for PluginHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.state {
            HealthState::Healthy => return write!(f, "plugin {}: healthy", self.plugin),
            HealthState::Failing => "failing",
            HealthState::Degraded => "degraded",
        };
        write!(
            f,
            "plugin {}: {what}: every call has failed for {}s ({} failures; degraded after {}s); \
             last outcome: {}",
            self.plugin,
            self.failing_for.as_secs(),
            self.failures,
            self.window.as_secs(),
            self.last_outcome.unwrap_or("unknown"),
        )?;
        match self.last_detail.as_deref() {
            Some(detail) if !detail.is_empty() => write!(f, ": {detail}"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(300);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn failing_for_the_window_degrades_at_the_window_not_before() {
        let t0 = Instant::now();
        let mut t = Tracker::new(WINDOW);
        assert_eq!(t.deadline(), None);
        assert_eq!(t.failure(t0, "deadline", ""), None);
        assert_eq!(t.deadline(), Some(t0 + WINDOW));
        assert_eq!(t.failure(t0 + secs(100), "trap", "bad"), None);
        assert_eq!(t.tick(t0 + secs(299)), None);
        assert_eq!(t.snapshot("p", t0 + secs(299)).state, HealthState::Failing);
        assert_eq!(t.tick(t0 + WINDOW), Some(Transition::Degraded));
        assert_eq!(t.tick(t0 + secs(400)), None, "reported once");
        assert_eq!(t.deadline(), None);
        let h = t.snapshot("p", t0 + secs(400));
        assert!(h.is_degraded());
        assert_eq!(h.failures, 2);
        assert_eq!(h.failing_since, Some(t0));
        assert_eq!(h.failing_for, secs(400));
        assert_eq!(h.last_outcome, Some("trap"));
    }

    #[test]
    fn a_failure_past_the_window_degrades_at_once() {
        let t0 = Instant::now();
        let mut t = Tracker::new(WINDOW);
        t.failure(t0, "deadline", "");
        assert_eq!(
            t.failure(t0 + secs(301), "deadline", ""),
            Some(Transition::Degraded)
        );
        assert_eq!(t.failure(t0 + secs(302), "deadline", ""), None);
    }

    #[test]
    fn one_success_clears_and_a_new_streak_starts_from_scratch() {
        let t0 = Instant::now();
        let mut t = Tracker::new(WINDOW);
        t.failure(t0, "guest_error", "x");
        t.tick(t0 + WINDOW);
        assert_eq!(t.success(), Some(Transition::Recovered));
        assert_eq!(t.success(), None);
        let h = t.snapshot("p", t0 + WINDOW);
        assert_eq!(h.state, HealthState::Healthy);
        assert_eq!((h.failures, h.failing_since), (0, None));
        // A new streak needs a whole window again.
        let t1 = t0 + secs(1000);
        assert_eq!(t.failure(t1, "guest_error", "x"), None);
        assert_eq!(t.tick(t1 + secs(299)), None);
        assert_eq!(t.tick(t1 + WINDOW), Some(Transition::Degraded));
    }

    #[test]
    fn success_while_failing_is_not_reported() {
        let t0 = Instant::now();
        let mut t = Tracker::new(WINDOW);
        t.failure(t0, "trap", "");
        assert_eq!(t.success(), None);
        assert_eq!(t.tick(t0 + secs(1000)), None);
    }

    #[test]
    fn report_text_names_plugin_state_duration_failures_and_last_outcome() {
        let t0 = Instant::now();
        let mut t = Tracker::new(WINDOW);
        t.failure(t0, "deadline", "");
        t.failure(t0 + secs(310), "guest_error", &"e".repeat(1000));
        let text = t.snapshot("web", t0 + secs(312)).to_string();
        assert!(
            text.starts_with(
                "plugin web: degraded: every call has failed for 312s (2 failures; degraded \
                 after 300s); last outcome: guest_error: eee"
            ),
            "{text}"
        );
        assert!(text.ends_with("e..."), "detail is bounded: {text}");
        assert!(text.len() < 450, "{}", text.len());
        assert_eq!(
            Tracker::new(WINDOW).snapshot("web", t0).to_string(),
            "plugin web: healthy"
        );
    }
}
