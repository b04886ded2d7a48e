//! Kubernetes label and field selectors, parsed and matched exactly as the API server does.
//!
//! Three parts of Trellis evaluate selectors — the devcluster (serving list and watch), the
//! host's cache (answering a plugin's `list`) and the guest SDK's test harness — and all three
//! must agree with a real kube-apiserver, down to which strings are rejected and with what
//! message. So there is one implementation, ported from k8s.io/apimachinery's
//! `pkg/labels/selector.go` and `pkg/fields/selector.go`, and its error texts are the server's.

mod field;
mod label;
mod validation;

pub use field::{FieldOperator, FieldRequirement, FieldSelector, FieldSelectorError, Fields};
pub use label::{LabelOperator, LabelSelector, Labels, ParseError, Requirement};
