//! The guest's `trellis:plugin` imports: budget first, then the [`PluginHost`].
//!
//! Every import follows the same order, so no implementation can be charged differently:
//! admit the call against the [`Meter`] (refused: answer `budget-exceeded`, the host is not
//! reached), forward it, then charge what is handed back. Logs never reach a budget error: they
//! are truncated or dropped and counted. Everything the guest receives is charged, error
//! messages included.

use std::sync::Arc;

use super::bindings::trellis::plugin::{cache, events, log, types, writes};
use super::budget::{CallKind, LogAdmission, Meter, Refusal};
use super::host::{ErrorCode, EventType, Gvk, HostError, Level, LogRecord, ObjectKey, PluginHost};

/// Longest event note handed to the host (the WIT contract's 1 KiB).
pub const EVENT_NOTE_MAX: usize = 1024;

/// Bytes a list element costs beyond its text: its pointer and length in guest memory. Keeps
/// a list of many empty strings from being free.
const LIST_ELEMENT_OVERHEAD: u64 = 8;

/// Who is calling, attached to every log line the guest writes.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub plugin: Arc<str>,
    pub kind: Gvk,
    pub key: ObjectKey,
}

/// The import side of one call's store.
pub struct GuestImports {
    context: CallContext,
    meter: Meter,
    host: Arc<dyn PluginHost>,
}

impl GuestImports {
    pub fn new(context: CallContext, meter: Meter, host: Arc<dyn PluginHost>) -> Self {
        Self {
            context,
            meter,
            host,
        }
    }

    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    fn admit(&mut self, kind: CallKind) -> Result<(), HostError> {
        self.meter.admit(kind).map_err(|refusal| {
            tracing::debug!(plugin = %self.context.plugin, %refusal, "host call refused");
            budget_error(refusal)
        })
    }

    /// Charges a read's answer (or its error message) and hands it back, or refuses it.
    fn answer_read<T>(
        &mut self,
        answer: Result<T, HostError>,
        size: impl FnOnce(&T) -> u64,
    ) -> Result<T, HostError> {
        match answer {
            Ok(value) => {
                self.meter.charge_read(size(&value)).map_err(budget_error)?;
                Ok(value)
            }
            Err(error) => Err(self.charge_error(error)),
        }
    }

    /// Charges a write's answer; a write that happened is never withheld.
    fn answer_write<T>(
        &mut self,
        answer: Result<T, HostError>,
        size: impl FnOnce(&T) -> u64,
    ) -> Result<T, HostError> {
        match answer {
            Ok(value) => {
                self.meter.charge_write_answer(size(&value));
                Ok(value)
            }
            Err(error) => Err(self.charge_error(error)),
        }
    }

    fn charge_error(&mut self, error: HostError) -> HostError {
        self.meter.charge_write_answer(error.message.len() as u64);
        error
    }
}

fn budget_error(refusal: Refusal) -> HostError {
    HostError::new(ErrorCode::BudgetExceeded, refusal.to_string())
}

fn list_size(items: &[String]) -> u64 {
    items
        .iter()
        .map(|s| s.len() as u64 + LIST_ELEMENT_OVERHEAD)
        .sum()
}

fn text_size(text: &str) -> u64 {
    text.len() as u64
}

/// Cuts `text` to at most `max` bytes on a char boundary.
pub fn truncate_str(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

impl types::Host for GuestImports {}

impl cache::Host for GuestImports {
    async fn get(&mut self, kind: Gvk, key: ObjectKey) -> Result<Option<String>, HostError> {
        self.admit(CallKind::Read)?;
        let answer = self.host.get(&kind, &key).await;
        self.answer_read(answer, |o| o.as_ref().map_or(0, |s| s.len() as u64))
    }

    async fn list(
        &mut self,
        kind: Gvk,
        namespace: Option<String>,
        label_selector: Option<String>,
    ) -> Result<Vec<String>, HostError> {
        self.admit(CallKind::Read)?;
        let max_bytes = self.meter.remaining_bytes();
        let answer = self
            .host
            .list(
                &kind,
                namespace.as_deref(),
                label_selector.as_deref(),
                max_bytes,
            )
            .await;
        self.answer_read(answer, |items| list_size(items))
    }

    async fn lookup(
        &mut self,
        kind: Gvk,
        index: String,
        value: String,
    ) -> Result<Vec<String>, HostError> {
        self.admit(CallKind::Read)?;
        let max_bytes = self.meter.remaining_bytes();
        let answer = self.host.lookup(&kind, &index, &value, max_bytes).await;
        self.answer_read(answer, |items| list_size(items))
    }
}

impl writes::Host for GuestImports {
    async fn apply(&mut self, object: String, force: bool) -> Result<String, HostError> {
        self.admit(CallKind::Write)?;
        let answer = self.host.apply(&object, force).await;
        self.answer_write(answer, |text| text_size(text))
    }

    async fn patch_status(
        &mut self,
        kind: Gvk,
        key: ObjectKey,
        merge_patch: String,
    ) -> Result<String, HostError> {
        self.admit(CallKind::Write)?;
        let answer = self.host.patch_status(&kind, &key, &merge_patch).await;
        self.answer_write(answer, |text| text_size(text))
    }

    async fn create(&mut self, object: String) -> Result<String, HostError> {
        self.admit(CallKind::Write)?;
        let answer = self.host.create(&object).await;
        self.answer_write(answer, |text| text_size(text))
    }

    async fn delete(&mut self, kind: Gvk, key: ObjectKey) -> Result<(), HostError> {
        self.admit(CallKind::Write)?;
        let answer = self.host.delete(&kind, &key).await;
        self.answer_write(answer, |_| 0)
    }
}

impl events::Host for GuestImports {
    async fn emit(
        &mut self,
        regarding_kind: Gvk,
        regarding: ObjectKey,
        event_type: EventType,
        reason: String,
        note: String,
    ) -> Result<(), HostError> {
        self.admit(CallKind::Write)?;
        let note = truncate_str(&note, EVENT_NOTE_MAX);
        let answer = self
            .host
            .emit_event(&regarding_kind, &regarding, event_type, &reason, note)
            .await;
        self.answer_write(answer, |_| 0)
    }
}

impl log::Host for GuestImports {
    async fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let text_bytes =
            message.len() + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        let (message, fields, truncated) = match self.meter.admit_log(text_bytes) {
            LogAdmission::Whole => (message.as_str(), fields, false),
            LogAdmission::Dropped => return,
            LogAdmission::Truncated(room) => {
                let message = truncate_str(&message, room);
                let mut room = room - message.len();
                let mut kept = Vec::new();
                for (k, v) in fields {
                    if k.len() + v.len() > room {
                        break;
                    }
                    room -= k.len() + v.len();
                    kept.push((k, v));
                }
                (message, kept, true)
            }
        };
        let record = LogRecord {
            level,
            message,
            fields: &fields,
            truncated,
        };
        emit_log(&self.context, &record);
        self.host.log(&record);
    }
}

/// Writes a guest log line to tracing, at the guest's level, with the call's context.
fn emit_log(ctx: &CallContext, record: &LogRecord<'_>) {
    let plugin = &*ctx.plugin;
    let kind = format_args!("{}/{}/{}", ctx.kind.group, ctx.kind.version, ctx.kind.kind);
    let namespace = ctx.key.namespace.as_deref().unwrap_or("");
    let name = ctx.key.name.as_str();
    let fields = record.fields;
    let truncated = record.truncated;
    let message = record.message;
    macro_rules! at {
        ($mac:ident) => {
            tracing::$mac!(
                target: "trellis::guest",
                plugin,
                %kind,
                namespace,
                name,
                ?fields,
                truncated,
                "{message}"
            )
        };
    }
    match record.level {
        Level::Trace => at!(trace),
        Level::Debug => at!(debug),
        Level::Info => at!(info),
        Level::Warn => at!(warn),
        Level::Error => at!(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_str("héllo", 2), "h");
        assert_eq!(truncate_str("héllo", 3), "hé");
        assert_eq!(truncate_str("abc", 10), "abc");
    }

    #[test]
    fn list_elements_are_never_free() {
        let items = vec![String::new(); 1000];
        assert_eq!(list_size(&items), 1000 * LIST_ELEMENT_OVERHEAD);
    }
}
