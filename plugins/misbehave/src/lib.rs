//! A plugin that misbehaves on request, for the host's sandbox tests.
//!
//! Its behaviour is chosen by the object it reconciles — normally a ConfigMap whose
//! `data.mode` names the mode and whose other `data` fields are the mode's parameters — so one
//! compiled component covers every fault the host must survive, and a test picks a fault by
//! seeding an object. The modes and their parameters are documented in README.md (the host's
//! tests rely on them) and on the functions that implement them.

mod calls;
mod escape;
mod faults;
mod mode;
mod output;
mod params;

use std::time::Duration;

use serde_json::{Map, Value};
use trellis_guest::{Action, Error, Reconciler, Request};

pub use mode::Mode;
use params::Params;

pub struct Misbehave;

impl Reconciler for Misbehave {
    fn reconcile(request: Request) -> Result<Action, Error> {
        let Some(object) = request.object::<Value>()? else {
            return Ok(Action::done()); // deleted: nothing to misbehave about
        };
        let empty = Map::new();
        let data = match object.get("data") {
            None => &empty,
            Some(Value::Object(data)) => data,
            Some(other) => {
                return Err(Error::permanent(format!(
                    "data: expected an object, found {other}"
                )));
            }
        };
        let params = Params::new(data);
        let mode = Mode::parse(
            params
                .text("mode")?
                .ok_or_else(|| Error::permanent("data.mode is missing"))?,
        )?;
        trellis_guest::debug!(mode = mode.name(), "misbehave");
        match mode {
            Mode::Ok => Ok(Action::done()),
            Mode::Loop => faults::spin(),
            Mode::Memory => faults::allocate(&params),
            Mode::Recursion => faults::recurse(&params),
            Mode::Trap => faults::trap(),
            Mode::Panic => faults::panic(&params),
            Mode::HostCallFlood => calls::flood(&request, &params),
            Mode::SlowHostCall => calls::slow(&request, &params),
            Mode::HugeLog => output::huge_log(&params),
            Mode::InvalidWrite => calls::invalid_writes(&request, &params),
            Mode::StaticState => Ok(faults::count_calls()),
            Mode::WasiEscape => escape::wasi_escape(&params),
            Mode::Requeue => Ok(Action::requeue_after(Duration::from_millis(
                params.number_or("after-ms", 1000)?,
            ))),
            Mode::Error => {
                let message = params.text_or("message", "misbehave: error requested")?;
                Err(Error::permanent(message)
                    .with_retryable(params.flag("retryable")?.unwrap_or(true)))
            }
        }
    }
}

trellis_guest::export_plugin!(Misbehave);

#[cfg(test)]
mod tests;
