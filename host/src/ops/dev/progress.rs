//! The live progress of `trellis dev`: per plugin, objects synced, reconciles per second and
//! errors.
//!
//! Two presentations of the same text: on a terminal one line refreshed every second (see
//! [`Terminal`]); elsewhere (a pipe, CI, a log file) a plain line every few seconds, only when
//! something changed, so a quiet loop does not fill a log. Rates come from the difference
//! between two snapshots over the time between them; nothing here reads a clock itself, which
//! keeps the arithmetic testable.

use std::fmt::Write as _;
use std::time::Duration;

use clap::ValueEnum;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Terminal;
use crate::manager::Stats;

/// `trellis dev --progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A refreshing line on a terminal, plain lines otherwise.
    Auto,
    /// A refreshing line (ANSI), even off a terminal.
    Line,
    /// A plain line every few seconds when something changed.
    Plain,
    /// No progress output.
    Off,
}

/// How often each presentation updates.
const LINE_EVERY: Duration = Duration::from_secs(1);
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Turns successive snapshots into progress text.
#[derive(Debug)]
pub struct Progress {
    started: Instant,
    previous: Option<(Instant, Stats)>,
}

impl Progress {
    pub fn new(started: Instant) -> Self {
        Self {
            started,
            previous: None,
        }
    }

    /// The progress text for `stats` taken at `now`; rates are over the time since the
    /// previous call.
    pub fn line(&mut self, now: Instant, stats: &Stats) -> String {
        let elapsed = now.saturating_duration_since(self.started).as_secs();
        let mut line = format!("[{}:{:02}]", elapsed / 60, elapsed % 60);
        if stats.plugins.is_empty() {
            line.push_str(" starting");
        }
        for plugin in &stats.plugins {
            let rate = match &self.previous {
                Some((at, before)) => {
                    let seconds = now.saturating_duration_since(*at).as_secs_f64();
                    let done = before
                        .plugin(&plugin.name)
                        .map_or(0, |p| plugin.reconciles.saturating_sub(p.reconciles));
                    if seconds > 0.0 {
                        done as f64 / seconds
                    } else {
                        0.0
                    }
                }
                None => 0.0,
            };
            let _ = write!(
                line,
                " | {} {}: {} objects, {} reconciles ({:.1}/s), {} errors",
                plugin.name, plugin.phase, plugin.objects, plugin.reconciles, rate, plugin.errors
            );
            if plugin.queued > 0 {
                let _ = write!(line, ", {} queued", plugin.queued);
            }
        }
        self.previous = Some((now, stats.clone()));
        line
    }

    /// Whether `stats` differs from the previous snapshot in anything but time.
    pub fn changed(&self, stats: &Stats) -> bool {
        self.previous
            .as_ref()
            .is_none_or(|(_, before)| before != stats)
    }
}

/// Shows progress until `stop` is cancelled, then erases the refreshing line.
pub async fn report(
    terminal: Terminal,
    mode: ProgressMode,
    stats: impl Fn() -> Stats,
    stop: CancellationToken,
) {
    let refreshing = match mode {
        ProgressMode::Off => return,
        ProgressMode::Auto => terminal.is_tty(),
        ProgressMode::Line => true,
        ProgressMode::Plain => false,
    };
    let every = if refreshing { LINE_EVERY } else { PLAIN_EVERY };
    let mut progress = Progress::new(Instant::now());
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let snapshot = stats();
        if refreshing {
            terminal.draw(&progress.line(Instant::now(), &snapshot));
        } else if progress.changed(&snapshot) {
            terminal.write_lines(progress.line(Instant::now(), &snapshot).as_bytes());
        }
    }
    terminal.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::{PluginPhase, PluginStats};

    fn stats(reconciles: u64, errors: u64) -> Stats {
        Stats {
            plugins: vec![
                PluginStats {
                    name: "namespace-defaults".into(),
                    phase: PluginPhase::Running,
                    objects: 12,
                    reconciles,
                    errors,
                    queued: 0,
                    in_flight: 1,
                },
                PluginStats {
                    name: "deployment-summary".into(),
                    phase: PluginPhase::Syncing,
                    objects: 0,
                    reconciles: 0,
                    errors: 0,
                    queued: 3,
                    in_flight: 0,
                },
            ],
        }
    }

    #[test]
    fn rates_are_reconciles_between_snapshots_over_the_time_between_them() {
        let start = Instant::now();
        let mut progress = Progress::new(start);
        assert_eq!(
            progress.line(start + Duration::from_secs(1), &stats(4, 0)),
            "[0:01] | namespace-defaults running: 12 objects, 4 reconciles (0.0/s), 0 errors \
             | deployment-summary syncing: 0 objects, 0 reconciles (0.0/s), 0 errors, 3 queued"
        );
        let line = progress.line(start + Duration::from_secs(65), &stats(260, 2));
        assert!(
            line.starts_with(
                "[1:05] | namespace-defaults running: 12 objects, 260 reconciles (4.0/s), 2 errors"
            ),
            "{line}"
        );
        // No time passed: no division by zero.
        let line = progress.line(start + Duration::from_secs(65), &stats(300, 2));
        assert!(line.contains("300 reconciles (0.0/s)"), "{line}");
    }

    #[test]
    fn plain_lines_are_written_only_when_something_changed() {
        let start = Instant::now();
        let mut progress = Progress::new(start);
        assert!(progress.changed(&stats(1, 0)));
        progress.line(start, &stats(1, 0));
        assert!(!progress.changed(&stats(1, 0)));
        assert!(progress.changed(&stats(2, 0)));
        assert!(progress.changed(&stats(1, 1)));
    }

    #[test]
    fn no_plugins_yet_reads_as_starting() {
        let start = Instant::now();
        assert_eq!(
            Progress::new(start).line(start, &Stats::default()),
            "[0:00] starting"
        );
    }
}
