//! What the summary says about a set of Pods, and its annotation form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::views::PodView;

/// The Pods of one Deployment at a glance. Serialized as compact JSON into the annotation, with
/// a fixed field order and sorted phases, so equal summaries are equal strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Pods whose `Ready` condition is `True`.
    pub ready: u32,
    /// Every selected Pod, terminating ones included (as `kubectl get pods` lists them).
    pub total: u32,
    /// Pods per `status.phase`; a Pod without a phase yet counts as `Pending`.
    pub phases: BTreeMap<String, u32>,
    /// Container restarts, init containers included, summed over the Pods.
    pub restarts: u32,
    /// Pods being deleted.
    pub terminating: u32,
}

fn is_ready(pod: &PodView) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

fn restarts(pod: &PodView) -> u32 {
    let Some(status) = pod.status.as_ref() else {
        return 0;
    };
    let containers = status.container_statuses.iter().flatten();
    let init = status.init_container_statuses.iter().flatten();
    containers
        .chain(init)
        .map(|c| u32::try_from(c.restart_count).unwrap_or(0))
        .fold(0u32, u32::saturating_add)
}

impl Summary {
    pub fn of<'a>(pods: impl IntoIterator<Item = &'a PodView>) -> Summary {
        let mut summary = Summary::default();
        for pod in pods {
            summary.total += 1;
            summary.ready += u32::from(is_ready(pod));
            summary.restarts = summary.restarts.saturating_add(restarts(pod));
            summary.terminating += u32::from(pod.metadata.deletion_timestamp.is_some());
            let phase = pod
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Pending".to_owned());
            *summary.phases.entry(phase).or_default() += 1;
        }
        summary
    }

    /// Whether every Pod is ready and none is on its way out: nothing left to watch for.
    pub fn is_settled(&self) -> bool {
        self.ready == self.total && self.terminating == 0
    }

    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).expect("a struct of integers and strings always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> PodView {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn counts_ready_phases_restarts_and_terminating() {
        let pods = [
            pod(
                json!({"metadata": {"name": "a"}, "status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": 2}],
                "initContainerStatuses": [{"name": "i", "image": "i", "imageID": "", "ready": true, "restartCount": 1}]}}),
            ),
            pod(
                json!({"metadata": {"name": "b"}, "status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": "False"}]}}),
            ),
            pod(
                json!({"metadata": {"name": "c", "deletionTimestamp": "2025-01-01T00:00:00Z"}, "status": {"phase": "Running"}}),
            ),
            pod(json!({"metadata": {"name": "d"}})),
        ];
        let summary = Summary::of(&pods);
        assert_eq!(
            summary.to_annotation(),
            r#"{"ready":1,"total":4,"phases":{"Pending":1,"Running":3},"restarts":3,"terminating":1}"#
        );
        assert!(!summary.is_settled());
        assert!(Summary::of(&pods[..1]).is_settled());
        assert_eq!(
            Summary::of([]).to_annotation(),
            r#"{"ready":0,"total":0,"phases":{},"restarts":0,"terminating":0}"#
        );
    }
}
