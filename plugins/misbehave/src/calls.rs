//! Modes that press on the host through its imports: call floods, slow calls, invalid writes.

use serde_json::json;
use trellis_guest::{
    Action, Error, ErrorCode, EventType, ObjectKey, ObjectRef, Request, index, raw,
};

use crate::params::Params;

/// Which import a flood calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Get,
    List,
    Lookup,
    Apply,
    Event,
}

impl Call {
    fn parse(field: &str, name: &str) -> Result<Call, Error> {
        Ok(match name {
            "get" => Call::Get,
            "list" => Call::List,
            "lookup" => Call::Lookup,
            "apply" => Call::Apply,
            "event" => Call::Event,
            other => {
                return Err(Error::permanent(format!(
                    "data.{field}: unknown call {other:?} (known: get, list, lookup, apply, event)"
                )));
            }
        })
    }
}

/// Makes one call; `i` makes each apply different, so the host cannot elide it.
fn call_once(call: Call, request: &Request, target: &ObjectKey, i: u64) -> Result<(), Error> {
    let namespace = target.namespace.as_deref();
    match call {
        Call::Get => raw::get(&request.kind, target).map(drop),
        Call::List => raw::list(&request.kind, namespace, None).map(drop),
        Call::Lookup => raw::lookup(
            &request.kind,
            index::NAMESPACE,
            namespace.unwrap_or_default(),
        )
        .map(drop),
        Call::Apply => {
            let object = json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"namespace": namespace, "name": format!("{}-flood", target.name)},
                "data": {"n": i.to_string()},
            });
            raw::apply(&object.to_string(), true).map(drop)
        }
        Call::Event => raw::emit_event(
            &ObjectRef::new(request.kind.clone(), request.key.clone()),
            EventType::Normal,
            "Flood",
            &format!("event {i}"),
        ),
    }
}

/// Calls the host `count` times (default: without end). On an error, `on-error: stop` (the
/// default) returns it as the reconcile error, with the number of calls that succeeded;
/// `continue` ignores it and keeps calling, so only fuel or the deadline end the call.
fn press(
    request: &Request,
    params: &Params,
    call: Call,
    target: &ObjectKey,
    mode: &str,
) -> Result<Action, Error> {
    let count = params.number("count")?;
    let keep_going = match params.text_or("on-error", "stop")? {
        "stop" => false,
        "continue" => true,
        other => {
            return Err(Error::permanent(format!(
                "data.on-error: {other:?} is neither stop nor continue"
            )));
        }
    };
    let mut i = 0;
    while count.is_none_or(|count| i < count) {
        if let Err(e) = call_once(call, request, target, i)
            && !keep_going
        {
            let retryable = e.is_retryable();
            return Err(
                Error::permanent(format!("{mode}: {i} calls succeeded, then {e}"))
                    .with_retryable(retryable),
            );
        }
        i += 1;
    }
    trellis_guest::info!(calls = i, "{mode}: done");
    Ok(Action::done())
}

/// `host-call-flood`: `call` (get, list, lookup, apply, event; default get) about the
/// reconciled object, in a tight loop. See [`press`] for `count` and `on-error`.
pub fn flood(request: &Request, params: &Params) -> Result<Action, Error> {
    let call = Call::parse("call", params.text_or("call", "get")?)?;
    press(request, params, call, &request.key, "host-call-flood")
}

/// `slow-host-call`: `cache.get` of the object named `target` (default `slow`) in the same
/// namespace, of the same kind — the object a test host makes slow to answer. `count` and
/// `on-error` as for the flood.
pub fn slow(request: &Request, params: &Params) -> Result<Action, Error> {
    let target = ObjectKey::new(request.namespace(), params.text_or("target", "slow")?);
    press(request, params, Call::Get, &target, "slow-host-call")
}

/// The malformed writes `invalid-write` can send.
const VARIANTS: [&str; 6] = [
    "apply-not-json",
    "apply-missing-kind",
    "apply-missing-api-version",
    "apply-missing-name",
    "create-not-json",
    "patch-status-not-json",
];

fn send_invalid(variant: &str, request: &Request) -> Result<(), Error> {
    let namespace = request.namespace();
    match variant {
        "apply-not-json" => raw::apply("{this is not json", true).map(drop),
        "apply-missing-kind" => raw::apply(
            &json!({"apiVersion": "v1", "metadata": {"namespace": namespace, "name": "no-kind"}}).to_string(),
            true,
        )
        .map(drop),
        "apply-missing-api-version" => raw::apply(
            &json!({"kind": "ConfigMap", "metadata": {"namespace": namespace, "name": "no-api-version"}}).to_string(),
            true,
        )
        .map(drop),
        "apply-missing-name" => raw::apply(
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": namespace}}).to_string(),
            true,
        )
        .map(drop),
        "create-not-json" => raw::create("[[[").map(drop),
        "patch-status-not-json" => raw::patch_status(&request.kind, &request.key, "{\"status\":").map(drop),
        other => Err(Error::permanent(format!(
            "data.variants: unknown variant {other:?} (known: {})",
            VARIANTS.join(", ")
        ))),
    }
}

/// `invalid-write`: sends each malformed write in `variants` (comma-separated; default all) and
/// checks the host answered each with `invalid`. `done` when it did; otherwise a permanent
/// error listing every variant that got another answer.
pub fn invalid_writes(request: &Request, params: &Params) -> Result<Action, Error> {
    let requested = params.text("variants")?;
    let variants: Vec<&str> = match requested {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect(),
        None => VARIANTS.to_vec(),
    };
    if let Some(unknown) = variants.iter().find(|v| !VARIANTS.contains(v)) {
        return send_invalid(unknown, request).map(|()| Action::done());
    }
    let mut wrong = Vec::new();
    for variant in variants {
        let outcome = send_invalid(variant, request);
        let answer = match &outcome {
            Ok(()) => "accepted".to_owned(),
            Err(e) => e.to_string(),
        };
        trellis_guest::info!(variant = variant, answer = answer, "invalid-write");
        if outcome.as_ref().err().and_then(Error::code) != Some(ErrorCode::Invalid) {
            wrong.push(format!("{variant}: {answer}"));
        }
    }
    if wrong.is_empty() {
        Ok(Action::done())
    } else {
        Err(Error::permanent(format!(
            "invalid-write: not rejected as invalid: {}",
            wrong.join("; ")
        )))
    }
}
