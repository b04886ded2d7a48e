//! What telling own-write echoes from news costs the event path.
//!
//! ```sh
//! cargo bench -p trellis-host --bench echoes
//! # knobs: ECHOES_BENCH_OBJECTS=10000 ECHOES_BENCH_ROUNDS=30
//! ```
//!
//! Every update the informer delivers to a plugin's primary watch now asks the plugin's
//! `QueueSink` whether it is the echo of the plugin's own write (a lock and a hash lookup,
//! docs/informers.md "Echoes of the plugin's own writes") before the key is added to the
//! queue. Measured here, per update, on the real `QueueSink` and `WorkQueue`:
//!
//! * `enqueue only` (the peer): the queue add the event path made before echoes were told
//!   apart;
//! * `is_echo + enqueue, no own writes`: the table is empty (a plugin that does not write its
//!   primary objects, or all its echoes have arrived);
//! * `is_echo + enqueue, other writes tracked`: every object has an answered write whose echo
//!   has not arrived, at another resourceVersion (the lookup hits and scans);
//! * `write + its echo`: the whole life of one tracked write, `sending` and `answered` (the
//!   guest's side) and its echo's `is_echo` + low-priority add (the event path's side).
//!
//! Each round runs every variant over every object once, in a rotating order, and the median
//! round per variant is reported, in ns per update and as a ratio to the peer.

#[path = "common/env.rs"]
mod common_env;
#[path = "common/stats.rs"]
mod common_stats;

use common_env::env;
use common_stats::median;
use std::time::{Duration, Instant};

use trellis_host::cache::{Gvk, Metadata, ObjectKey};
use trellis_host::hostcalls::OwnWrites;
use trellis_host::informer::{KeySink, Priority};
use trellis_host::queue::{QueueConfig, WorkQueue};
use trellis_host::worker::QueueSink;

fn metadata(i: usize, resource_version: &str) -> Metadata {
    let json = format!(
        r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"namespace":"bench","name":"d-{i}","uid":"u-{i}","resourceVersion":"{resource_version}","generation":1,"labels":{{"app":"d-{i}"}}}}}}"#
    );
    Metadata::parse(&json).expect("a valid object")
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    EnqueueOnly,
    NoOwnWrites,
    OtherWritesTracked,
    WriteAndEcho,
}

impl Variant {
    const ALL: [Variant; 4] = [
        Variant::EnqueueOnly,
        Variant::NoOwnWrites,
        Variant::OtherWritesTracked,
        Variant::WriteAndEcho,
    ];

    fn label(self) -> &'static str {
        match self {
            Variant::EnqueueOnly => "enqueue only (peer)",
            Variant::NoOwnWrites => "is_echo + enqueue, no own writes",
            Variant::OtherWritesTracked => "is_echo + enqueue, other writes tracked",
            Variant::WriteAndEcho => "write + its echo (sending, answered, is_echo, enqueue)",
        }
    }
}

/// One variant's fixtures: a sink over a fresh queue, set up as the variant says.
struct Fixture {
    sink: QueueSink,
    kind: Gvk,
    updates: Vec<Metadata>,
}

impl Fixture {
    fn new(variant: Variant, objects: usize) -> Self {
        let kind = Gvk::new("apps", "v1", "Deployment");
        let queue = WorkQueue::new(QueueConfig::new("echoes-bench")).expect("a queue");
        let sink = QueueSink::new(queue, &kind);
        let updates: Vec<Metadata> = (0..objects).map(|i| metadata(i, "2")).collect();
        if variant == Variant::OtherWritesTracked {
            for update in &updates {
                assert!(sink.sending(&kind, &update.key));
                sink.answered(&kind, &update.key, Some("1"));
            }
        }
        Self {
            sink,
            kind,
            updates,
        }
    }

    /// One pass over every object.
    fn pass(&self, variant: Variant) -> Duration {
        let started = Instant::now();
        for update in &self.updates {
            let key: &ObjectKey = &update.key;
            match variant {
                Variant::EnqueueOnly => self.sink.enqueue(key.clone(), Priority::Normal),
                Variant::NoOwnWrites | Variant::OtherWritesTracked => {
                    let echo = self.sink.is_echo(update);
                    assert!(!echo, "{variant:?}: {key:?} taken for an echo");
                    self.sink.enqueue(key.clone(), Priority::Normal);
                }
                Variant::WriteAndEcho => {
                    assert!(self.sink.sending(&self.kind, key));
                    self.sink.answered(&self.kind, key, Some("2"));
                    let echo = self.sink.is_echo(update);
                    assert!(echo, "{key:?}: its own write's echo was not recognised");
                    self.sink.enqueue(key.clone(), Priority::Low);
                }
            }
        }
        started.elapsed()
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let objects = env("ECHOES_BENCH_OBJECTS", 10_000).max(1);
    let rounds = env("ECHOES_BENCH_ROUNDS", 30).max(1);
    let fixtures: Vec<(Variant, Fixture)> = Variant::ALL
        .iter()
        .map(|&v| (v, Fixture::new(v, objects)))
        .collect();
    let mut per_update: Vec<Vec<f64>> = vec![Vec::new(); fixtures.len()];
    for round in 0..rounds {
        for offset in 0..fixtures.len() {
            let i = (round + offset) % fixtures.len();
            let (variant, fixture) = &fixtures[i];
            let took = fixture.pass(*variant);
            per_update[i].push(took.as_secs_f64() * 1e9 / objects as f64);
        }
    }
    let medians: Vec<f64> = per_update
        .into_iter()
        .map(|rounds| median(rounds).expect("at least one round"))
        .collect();
    let peer = medians[0];
    println!("\n## Echo check on the event path: {objects} objects, {rounds} rounds (medians)\n");
    println!("| variant | ns per update | vs enqueue only |");
    println!("|---|---|---|");
    for ((variant, _), ns) in fixtures.iter().zip(&medians) {
        println!("| {} | {ns:.0} | {:.2}x |", variant.label(), ns / peer);
    }
}
