//! Leader election against a real API server (the devcluster) with the real kube client.
//!
//! Transitions are recorded by a task per elector as its consumers see them (the instant a
//! worker pool would stop or start reconciling), with both clocks: monotonic for overlaps and
//! elapsed times, wall for comparisons with the Lease's `renewTime`. Bounds are generous and
//! only prove "bounded" or "before expiry"; the few lower bounds are safety properties that
//! hold by construction (nobody may take a lease before it expired), not speed.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use trellis_devcluster::{DevCluster, DevClusterOptions, FaultRule};
use trellis_host::ops::leader::{
    LeaderConfig, LeaderConfigError, LeaderElector, LeaderMetrics, Leadership,
};

const LEASE: &str = "trellis";
const NAMESPACE: &str = "default";
const LEASES: &str = "leases.coordination.k8s.io";
const PATIENCE: Duration = Duration::from_secs(60);

async fn cluster() -> DevCluster {
    DevCluster::start(DevClusterOptions::default())
        .await
        .expect("devcluster starts")
}

fn config(identity: &str, lease: u64, renew_ms: u64, retry_ms: u64) -> LeaderConfig {
    LeaderConfig {
        lease_duration: Duration::from_secs(lease),
        renew_deadline: Duration::from_millis(renew_ms),
        retry_period: Duration::from_millis(retry_ms),
        ..LeaderConfig::new(LEASE, NAMESPACE, identity)
    }
}

/// The brief's short durations: 2 s lease, 1.5 s renew deadline, 0.2 s retry.
fn short(identity: &str) -> LeaderConfig {
    config(identity, 2, 1500, 200)
}

#[derive(Debug, Clone)]
struct Seen {
    who: String,
    at: Instant,
    wall: SystemTime,
    leadership: Leadership,
}

/// Every transition of every elector, in the order their recorders saw them.
#[derive(Clone, Default)]
struct Timeline {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Timeline {
    fn record(&self, who: &str, mut receiver: watch::Receiver<Leadership>) {
        let seen = Arc::clone(&self.seen);
        let who = who.to_string();
        tokio::spawn(async move {
            loop {
                let leadership = receiver.borrow_and_update().clone();
                seen.lock().push(Seen {
                    who: who.clone(),
                    at: Instant::now(),
                    wall: SystemTime::now(),
                    leadership,
                });
                if receiver.changed().await.is_err() {
                    break;
                }
            }
        });
    }

    fn of(&self, who: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .iter()
            .filter(|seen| seen.who == who)
            .cloned()
            .collect()
    }

    /// `who`'s leading intervals; an open one ends now.
    fn terms(&self, who: &str) -> Vec<(Instant, Instant)> {
        let mut terms = Vec::new();
        let mut start = None;
        for seen in self.of(who) {
            match (seen.leadership.is_leading(), start) {
                (true, None) => start = Some(seen.at),
                (false, Some(began)) => {
                    terms.push((began, seen.at));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(began) = start {
            terms.push((began, Instant::now()));
        }
        terms
    }

    /// Fails if two electors ever led at once.
    fn assert_no_overlap(&self, who: &[&str]) {
        for (i, a) in who.iter().enumerate() {
            for b in &who[i + 1..] {
                for (a_start, a_end) in self.terms(a) {
                    for (b_start, b_end) in self.terms(b) {
                        assert!(
                            a_end <= b_start || b_end <= a_start,
                            "{a} led {a_start:?}..{a_end:?} and {b} led {b_start:?}..{b_end:?}: \
                             both at once\n{:#?}",
                            self.seen.lock()
                        );
                    }
                }
            }
        }
    }

    /// Waits until `who`'s latest state satisfies `check`; returns that transition.
    async fn until(&self, who: &str, what: &str, check: impl Fn(&Leadership) -> bool) -> Seen {
        let start = Instant::now();
        loop {
            if let Some(seen) = self
                .of(who)
                .into_iter()
                .last()
                .filter(|seen| check(&seen.leadership))
            {
                return seen;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "timed out waiting for {who} to be {what}: {:#?}",
                self.seen.lock()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn leading(&self, who: &str) -> Seen {
        self.until(who, "leading", Leadership::is_leading).await
    }

    async fn following(&self, who: &str, holder: Option<&str>) -> Seen {
        let what = format!("following {holder:?}");
        self.until(who, &what, |leadership| {
            *leadership
                == Leadership::Following {
                    holder: holder.map(str::to_string),
                }
        })
        .await
    }
}

fn start(client: &Client, config: LeaderConfig, timeline: &Timeline) -> (LeaderElector, Registry) {
    let mut registry = Registry::default();
    let metrics = LeaderMetrics::register(&mut registry);
    let who = config.identity.clone();
    let (elector, leadership) =
        LeaderElector::start(client.clone(), config, &metrics).expect("valid config");
    timeline.record(&who, leadership);
    (elector, registry)
}

/// `a` started with `config_a` and leading, then `b` with the same timings following it: where
/// the takeover tests start.
async fn a_leading_b_following(
    client: &Client,
    config_a: LeaderConfig,
    timeline: &Timeline,
) -> ((LeaderElector, Registry), (LeaderElector, Registry)) {
    let config_b = LeaderConfig {
        identity: "b".to_string(),
        ..config_a.clone()
    };
    let a = start(client, config_a, timeline);
    timeline.leading("a").await;
    let b = start(client, config_b, timeline);
    timeline.following("b", Some("a")).await;
    (a, b)
}

async fn lease(client: &Client) -> LeaseSpec {
    Api::<Lease>::namespaced(client.clone(), NAMESPACE)
        .get(LEASE)
        .await
        .expect("the lease exists")
        .spec
        .expect("the lease has a spec")
}

fn wall(time: &Option<MicroTime>) -> SystemTime {
    let time = time.as_ref().expect("timestamp set").0;
    SystemTime::from(time)
}

fn scrape(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
    out
}

fn status_line(leading: bool) -> String {
    format!(
        "leader_election_master_status{{name=\"{LEASE}\"}} {}",
        u8::from(leading)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_electors_one_leads_and_a_release_hands_over() {
    let cluster = cluster().await;
    let client = cluster.client().unwrap();
    let timeline = Timeline::default();
    let (a, a_metrics) = start(&client, short("a"), &timeline);
    let (b, b_metrics) = start(&client, short("b"), &timeline);

    // Exactly one wins the race for the absent lease; the other sees it as the holder.
    let first = tokio::select! {
        _ = timeline.leading("a") => "a",
        _ = timeline.leading("b") => "b",
    };
    let second = if first == "a" { "b" } else { "a" };
    timeline.following(second, Some(first)).await;
    assert_eq!(lease(&client).await.holder_identity.as_deref(), Some(first));

    // Several renewals later nothing has changed hands.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(timeline.terms(first).len(), 1, "{:#?}", timeline.of(first));
    assert!(
        timeline.terms(second).is_empty(),
        "{:#?}",
        timeline.of(second)
    );
    let spec = lease(&client).await;
    assert_eq!(spec.holder_identity.as_deref(), Some(first));
    assert_eq!(spec.lease_transitions, Some(0));
    let (leader_metrics, follower_metrics) = if first == "a" {
        (&a_metrics, &b_metrics)
    } else {
        (&b_metrics, &a_metrics)
    };
    assert!(
        scrape(leader_metrics).contains(&status_line(true)),
        "{}",
        scrape(leader_metrics)
    );
    assert!(
        scrape(follower_metrics).contains(&status_line(false)),
        "{}",
        scrape(follower_metrics)
    );

    // The leader releases: it stops leading before the release returns, and the other
    // takes over (the test below proves the handover does not wait for expiry).
    let (leader, follower) = if first == "a" { (a, b) } else { (b, a) };
    let leader_view = leader.leadership();
    leader.release().await.expect("release succeeds");
    assert_eq!(
        *leader_view.borrow(),
        Leadership::Following { holder: None }
    );
    timeline.following(first, None).await;
    timeline.leading(second).await;
    let spec = lease(&client).await;
    assert_eq!(spec.holder_identity.as_deref(), Some(second));
    assert_eq!(spec.lease_transitions, Some(1));
    assert!(scrape(leader_metrics).contains(&status_line(false)));
    assert!(scrape(follower_metrics).contains(&status_line(true)));
    timeline.assert_no_overlap(&["a", "b"]);
    follower.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_lets_a_standby_take_over_without_waiting_for_expiry() {
    let cluster = cluster().await;
    let client = cluster.client().unwrap();
    let timeline = Timeline::default();
    // A 30 s lease: a standby that waited for expiry would take at least 30 s.
    let lease_duration = Duration::from_secs(30);
    let ((a, _), (b, _)) =
        a_leading_b_following(&client, config("a", 30, 20_000, 200), &timeline).await;

    let releasing = Instant::now();
    a.release().await.expect("release succeeds");
    let spec = lease(&client).await;
    assert!(
        spec.holder_identity.is_none() || spec.holder_identity.as_deref() == Some("b"),
        "released: {spec:?}"
    );
    let took_over = timeline.leading("b").await;
    assert!(
        took_over.at - releasing < lease_duration,
        "took {:?}: the standby waited for expiry",
        took_over.at - releasing
    );
    timeline.assert_no_overlap(&["a", "b"]);
    b.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_leader_is_replaced_once_its_lease_expires() {
    let cluster = cluster().await;
    let client = cluster.client().unwrap();
    let timeline = Timeline::default();
    // A 3 s lease, so the lease is still a's when the test reads it after the stop.
    let config_a = config("a", 3, 2000, 200);
    let lease_duration = config_a.lease_duration;
    let ((a, _), (b, _)) = a_leading_b_following(&client, config_a, &timeline).await;

    // A crash: the task stops, the lease is not released.
    let stopped = Instant::now();
    a.abort().await;
    let last_renewal = wall(&lease(&client).await.renew_time);
    assert_eq!(lease(&client).await.holder_identity.as_deref(), Some("a"));

    let took_over = timeline.leading("b").await;
    // Safety: not before the lease could have expired (b's clock starts when it saw the last
    // renewal, which is after renewTime was stamped).
    assert!(
        took_over.wall >= last_renewal + lease_duration,
        "b led at {:?}, before a's lease (renewed {:?}) expired",
        took_over.wall,
        last_renewal
    );
    // Liveness: bounded by the lease duration plus retries (generously).
    assert!(
        took_over.at - stopped < lease_duration + Duration::from_secs(30),
        "took {:?}",
        took_over.at - stopped
    );
    let spec = lease(&client).await;
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    timeline.assert_no_overlap(&["a", "b"]);
    b.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_steps_down_before_its_lease_expires() {
    let cluster = cluster().await;
    let client = cluster.client().unwrap();
    let timeline = Timeline::default();
    // 3 s lease, 1.5 s renew deadline: 1.5 s between stepping down and expiry.
    let config_a = config("a", 3, 1500, 200);
    let (lease_duration, renew_deadline) = (config_a.lease_duration, config_a.renew_deadline);
    let ((a, a_metrics), (b, _)) = a_leading_b_following(&client, config_a, &timeline).await;

    // Every lease write now fails with 500 (reads still work): a cannot renew, b cannot take.
    cluster
        .add_fault(FaultRule::error(Some("update"), Some(LEASES), 500))
        .unwrap();
    let stepped_down = timeline.following("a", None).await;
    let last_renewal = wall(&lease(&client).await.renew_time);
    assert_eq!(lease(&client).await.holder_identity.as_deref(), Some("a"));
    assert!(
        stepped_down.wall < last_renewal + lease_duration,
        "a stepped down at {:?}, after its lease (renewed {:?}) expired",
        stepped_down.wall,
        last_renewal
    );
    // ... and not at the first failure: it kept trying until the renew deadline.
    assert!(
        stepped_down.wall + Duration::from_millis(100) >= last_renewal + renew_deadline,
        "a stepped down at {:?}, before its renew deadline (renewed {:?})",
        stepped_down.wall,
        last_renewal
    );
    let metrics = scrape(&a_metrics);
    assert!(metrics.contains(&status_line(false)), "{metrics}");
    let failures = metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(&format!(
                "trellis_leader_renew_failures_total{{name=\"{LEASE}\"}} "
            ))
        })
        .and_then(|value| value.parse::<u64>().ok())
        .expect("renew failures counted");
    assert!(failures >= 2, "{metrics}");

    // Writes work again: someone leads again, never both.
    cluster.clear_faults();
    tokio::select! {
        _ = timeline.leading("a") => {},
        _ = timeline.leading("b") => {},
    }
    timeline.assert_no_overlap(&["a", "b"]);
    a.release().await.unwrap();
    b.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_holder_in_the_lease_ends_leadership_at_once() {
    let cluster = cluster().await;
    let client = cluster.client().unwrap();
    let timeline = Timeline::default();
    // A 20 s renew deadline: stepping down sooner proves it came from seeing the holder.
    let (a, _) = start(&client, config("a", 30, 20_000, 200), &timeline);
    timeline.leading("a").await;

    let api = Api::<Lease>::namespaced(client.clone(), NAMESPACE);
    let mut taken = api.get(LEASE).await.unwrap();
    let spec = taken.spec.as_mut().unwrap();
    spec.holder_identity = Some("intruder".into());
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    let written = Instant::now();
    api.replace(LEASE, &PostParams::default(), &taken)
        .await
        .unwrap();

    let seen = timeline.following("a", Some("intruder")).await;
    assert!(
        seen.at - written < Duration::from_secs(20),
        "took {:?}: a waited for its renew deadline",
        seen.at - written
    );
    // a does not write the intruder's lease (it is valid for 30 s as a sees it).
    assert_eq!(
        lease(&client).await.holder_identity.as_deref(),
        Some("intruder")
    );
    // A release by a non-holder changes nothing.
    a.release().await.unwrap();
    assert_eq!(
        lease(&client).await.holder_identity.as_deref(),
        Some("intruder")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_held_by_another_is_respected_until_it_expires() {
    let cluster = cluster().await;
    let client = cluster.client().unwrap();
    let api = Api::<Lease>::namespaced(client.clone(), NAMESPACE);
    let ghost = Lease {
        metadata: ObjectMeta {
            name: Some(LEASE.into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("ghost".into()),
            lease_duration_seconds: Some(2),
            renew_time: Some(MicroTime(Timestamp::now())),
            acquire_time: Some(MicroTime(Timestamp::now())),
            lease_transitions: Some(4),
            ..LeaseSpec::default()
        }),
    };
    api.create(&PostParams::default(), &ghost).await.unwrap();

    let timeline = Timeline::default();
    let started = Instant::now();
    let (a, _) = start(&client, short("a"), &timeline);
    timeline.following("a", Some("ghost")).await;
    let took_over = timeline.leading("a").await;
    // The ghost's 2 s (its duration, not ours) count from a's first sight of the lease.
    assert!(
        took_over.at - started >= Duration::from_secs(2),
        "a took a valid lease after {:?}",
        took_over.at - started
    );
    let spec = lease(&client).await;
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(spec.lease_transitions, Some(5));
    assert_eq!(spec.lease_duration_seconds, Some(2));
    a.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_renews_with_one_write_per_period_and_no_reads() {
    let cluster = cluster().await;
    let client = cluster.client().unwrap();
    let timeline = Timeline::default();
    let (a, _) = start(&client, short("a"), &timeline);
    timeline.leading("a").await;
    let before = cluster.accounting();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = cluster.accounting();
    let renewals = after.requests("update", LEASES) - before.requests("update", LEASES);
    assert!(
        renewals >= 2,
        "{renewals} renewals in a second at a 0.2 s retry period"
    );
    assert_eq!(
        after.requests("get", LEASES),
        before.requests("get", LEASES),
        "renewals re-read the lease"
    );
    let writes: Vec<_> = cluster
        .writes()
        .into_iter()
        .filter(|write| write.resource == LEASES)
        .collect();
    assert!(
        writes
            .iter()
            .all(|write| write.manager == "trellis-leader-election"),
        "{writes:#?}"
    );
    assert_eq!(timeline.terms("a").len(), 1);
    a.release().await.unwrap();
}

#[tokio::test]
async fn bad_config_is_a_typed_error_and_touches_nothing() {
    let cluster = cluster().await;
    let client = cluster.client().unwrap();
    let mut registry = Registry::default();
    let metrics = LeaderMetrics::register(&mut registry);
    let bad = LeaderConfig {
        renew_deadline: Duration::from_secs(20),
        ..LeaderConfig::new(LEASE, NAMESPACE, "a")
    };
    let err = LeaderElector::start(client.clone(), bad, &metrics).unwrap_err();
    assert_eq!(
        err.0,
        vec![LeaderConfigError::RenewDeadlineNotBelowLease {
            renew_deadline: Duration::from_secs(20),
            lease_duration: Duration::from_secs(15),
        }]
    );
    assert!(
        err.to_string()
            .contains("leaderElection.renewDeadlineSeconds"),
        "{err}"
    );

    let err = LeaderElector::start(
        client.clone(),
        LeaderConfig::new("Bad_Name", NAMESPACE, ""),
        &metrics,
    )
    .unwrap_err();
    assert!(
        matches!(
            err.0[..],
            [
                LeaderConfigError::LeaseName { .. },
                LeaderConfigError::EmptyIdentity
            ]
        ),
        "{err}"
    );

    tokio::time::sleep(Duration::from_millis(200)).await;
    let accounting = cluster.accounting();
    assert_eq!(accounting.requests("get", LEASES), 0);
    assert_eq!(accounting.requests("create", LEASES), 0);
}
