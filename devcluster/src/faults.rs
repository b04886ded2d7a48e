//! Fault injection: errors and latency for chosen requests.
//!
//! Tests of informers, queues and leader election need the API server to misbehave on cue:
//! 429 with Retry-After, 500 or 503 for some requests, slow answers. A rule matches requests
//! by verb and resource (either may be left out to match all) and fires for the next `count`
//! matches, or for a `fraction` of them, or always. Fractions are spread deterministically
//! (with fraction 0.25, exactly every fourth match fires), so tests can count on them.
//! Closing open watches and expiring the watch history are immediate actions, on the store.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::status::ApiError;

/// What a rule does to the requests it fires on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum FaultAction {
    /// Answer with this status code (any 4xx or 5xx) instead of serving the request, in a
    /// Status with the reason the real server gives that code (409 `Conflict`, 429
    /// `TooManyRequests`, 503 `ServiceUnavailable`...; see `status::reason_for_code`).
    #[serde(rename_all = "camelCase")]
    Error {
        code: u16,
        /// The `Retry-After` header and `details.retryAfterSeconds`, for any code; 429
        /// always carries one (default 1).
        #[serde(default)]
        retry_after_seconds: Option<u32>,
    },
    /// Serve the request after this delay.
    Latency { millis: u64 },
}

/// A fault rule, as the Rust API and the admin endpoint (`POST /admin/faults`) take it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`;
    /// absent matches every verb.
    #[serde(default)]
    pub verb: Option<String>,
    /// `pods`, `deployments.apps`, `pods/status`; absent matches every resource.
    #[serde(default)]
    pub resource: Option<String>,
    pub action: FaultAction,
    /// Fire for the next `count` matching requests only.
    #[serde(default)]
    pub count: Option<u64>,
    /// Fire for this fraction (0..=1) of matching requests.
    #[serde(default)]
    pub fraction: Option<f64>,
}

impl FaultRule {
    /// An error for every matching request.
    pub fn error(verb: Option<&str>, resource: Option<&str>, code: u16) -> Self {
        Self {
            verb: verb.map(str::to_string),
            resource: resource.map(str::to_string),
            action: FaultAction::Error {
                code,
                retry_after_seconds: None,
            },
            count: None,
            fraction: None,
        }
    }

    /// Latency for every matching request.
    pub fn latency(verb: Option<&str>, resource: Option<&str>, delay: Duration) -> Self {
        Self {
            verb: verb.map(str::to_string),
            resource: resource.map(str::to_string),
            action: FaultAction::Latency {
                millis: delay.as_millis() as u64,
            },
            count: None,
            fraction: None,
        }
    }

    pub fn times(mut self, count: u64) -> Self {
        self.count = Some(count);
        self
    }

    pub fn fraction(mut self, fraction: f64) -> Self {
        self.fraction = Some(fraction);
        self
    }

    pub fn retry_after(mut self, seconds: u32) -> Self {
        if let FaultAction::Error {
            retry_after_seconds,
            ..
        } = &mut self.action
        {
            *retry_after_seconds = Some(seconds);
        }
        self
    }

    /// Checks the rule is one the server can carry out.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(f) = self.fraction
            && !(0.0..=1.0).contains(&f)
        {
            return Err(format!("fraction must be between 0 and 1, got {f}"));
        }
        if let FaultAction::Error { code, .. } = self.action
            && !(400..=599).contains(&code)
        {
            return Err(format!("error code must be 4xx or 5xx, got {code}"));
        }
        Ok(())
    }

    fn matches(&self, verb: &str, resource: &str) -> bool {
        self.verb.as_deref().is_none_or(|v| v == verb)
            && self.resource.as_deref().is_none_or(|r| r == resource)
    }
}

/// What the rules decided for one request.
#[derive(Debug, Default, PartialEq)]
pub struct Decision {
    pub delay: Duration,
    pub error: Option<ApiError>,
}

struct Armed {
    rule: FaultRule,
    matched: u64,
    fired: u64,
}

impl Armed {
    /// Counts a match and says whether the rule fires on it.
    fn fire(&mut self) -> bool {
        self.matched += 1;
        if self.rule.count.is_some_and(|c| self.fired >= c) {
            return false;
        }
        let fires = match self.rule.fraction {
            // Fires when the running total of `fraction` crosses an integer.
            Some(f) => (self.matched as f64 * f).floor() > ((self.matched - 1) as f64 * f).floor(),
            None => true,
        };
        if fires {
            self.fired += 1;
        }
        fires
    }
}

/// The armed rules.
#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<Armed>>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Armed>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, rule: FaultRule) -> Result<(), String> {
        rule.validate()?;
        self.lock().push(Armed {
            rule,
            matched: 0,
            fired: 0,
        });
        Ok(())
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The armed rules with how often each fired.
    pub fn rules(&self) -> Vec<(FaultRule, u64)> {
        self.lock()
            .iter()
            .map(|a| (a.rule.clone(), a.fired))
            .collect()
    }

    /// Decides the fate of one request. Every matching rule counts the request; delays add
    /// up; the first error that fires wins.
    pub fn check(&self, verb: &str, resource: &str) -> Decision {
        let mut decision = Decision::default();
        for armed in self.lock().iter_mut() {
            if !armed.rule.matches(verb, resource) || !armed.fire() {
                continue;
            }
            match armed.rule.action {
                FaultAction::Latency { millis } => {
                    decision.delay += Duration::from_millis(millis);
                }
                FaultAction::Error {
                    code,
                    retry_after_seconds,
                } => {
                    if decision.error.is_none() {
                        decision.error = Some(ApiError::injected(code, retry_after_seconds));
                    }
                }
            }
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_limit_a_rule() {
        let faults = Faults::default();
        faults
            .add(FaultRule::error(Some("list"), Some("pods"), 503).times(2))
            .unwrap();
        assert!(faults.check("get", "pods").error.is_none(), "other verb");
        assert!(
            faults.check("list", "configmaps").error.is_none(),
            "other resource"
        );
        let codes: Vec<Option<u16>> = (0..4)
            .map(|_| faults.check("list", "pods").error.map(|e| e.code))
            .collect();
        assert_eq!(codes, vec![Some(503), Some(503), None, None]);
        assert_eq!(faults.rules()[0].1, 2);
    }

    #[test]
    fn fractions_are_spread_exactly() {
        let faults = Faults::default();
        faults
            .add(
                FaultRule::error(None, None, 429)
                    .fraction(0.25)
                    .retry_after(7),
            )
            .unwrap();
        let fired: Vec<bool> = (0..8)
            .map(|_| faults.check("watch", "pods").error.is_some())
            .collect();
        assert_eq!(
            fired,
            vec![false, false, false, true, false, false, false, true]
        );
        let error = (0..4)
            .filter_map(|_| faults.check("get", "x").error)
            .next()
            .unwrap();
        assert_eq!(error.retry_after, Some(7));
    }

    #[test]
    fn latencies_add_up_and_bad_rules_are_refused() {
        let faults = Faults::default();
        faults
            .add(FaultRule::latency(None, None, Duration::from_millis(5)))
            .unwrap();
        faults
            .add(FaultRule::latency(
                Some("get"),
                None,
                Duration::from_millis(7),
            ))
            .unwrap();
        assert_eq!(faults.check("get", "pods").delay, Duration::from_millis(12));
        assert!(faults.add(FaultRule::error(None, None, 200)).is_err());
        assert!(
            faults
                .add(FaultRule::error(None, None, 500).fraction(1.5))
                .is_err()
        );
        faults.clear();
        assert_eq!(faults.check("get", "pods"), Decision::default());
    }

    #[test]
    fn rules_read_from_json() {
        let rule: FaultRule = serde_json::from_str(
            r#"{"verb":"list","action":{"type":"error","code":429,"retryAfterSeconds":2},"count":1}"#,
        )
        .unwrap();
        assert_eq!(
            rule,
            FaultRule::error(Some("list"), None, 429)
                .retry_after(2)
                .times(1)
        );
    }
}
