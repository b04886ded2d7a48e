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
    use std::sync::Mutex;

    use futures::executor::block_on;

    use super::*;
    use crate::sandbox::config::Budgets;
    use crate::sandbox::host::async_trait;

    /// A log line as the host saw it: message, fields, truncated.
    type Logged = (String, Vec<(String, String)>, bool);

    /// Answers every read with `answer` and records what reached it.
    #[derive(Default)]
    struct Recorder {
        answer: Vec<String>,
        reached: Mutex<Vec<&'static str>>,
        logs: Mutex<Vec<Logged>>,
    }

    fn not_found() -> HostError {
        HostError::new(ErrorCode::NotFound, "x".repeat(10))
    }

    #[async_trait]
    impl PluginHost for Recorder {
        async fn get(&self, _: &Gvk, _: &ObjectKey) -> Result<Option<String>, HostError> {
            self.reached.lock().unwrap().push("get");
            Err(not_found())
        }
        async fn list(
            &self,
            _: &Gvk,
            _: Option<&str>,
            _: Option<&str>,
            _: u64,
        ) -> Result<Vec<String>, HostError> {
            self.reached.lock().unwrap().push("list");
            Ok(self.answer.clone())
        }
        async fn lookup(
            &self,
            _: &Gvk,
            _: &str,
            _: &str,
            _: u64,
        ) -> Result<Vec<String>, HostError> {
            unreachable!()
        }
        async fn apply(&self, _: &str, _: bool) -> Result<String, HostError> {
            self.reached.lock().unwrap().push("apply");
            Ok("y".repeat(100))
        }
        async fn patch_status(&self, _: &Gvk, _: &ObjectKey, _: &str) -> Result<String, HostError> {
            unreachable!()
        }
        async fn create(&self, _: &str) -> Result<String, HostError> {
            unreachable!()
        }
        async fn delete(&self, _: &Gvk, _: &ObjectKey) -> Result<(), HostError> {
            unreachable!()
        }
        async fn emit_event(
            &self,
            _: &Gvk,
            _: &ObjectKey,
            _: EventType,
            _: &str,
            _: &str,
        ) -> Result<(), HostError> {
            self.reached.lock().unwrap().push("event");
            Ok(())
        }
        fn log(&self, record: &LogRecord<'_>) {
            self.logs.lock().unwrap().push((
                record.message.to_string(),
                record.fields.to_vec(),
                record.truncated,
            ));
        }
    }

    fn imports(host: &Arc<Recorder>, f: impl FnOnce(&mut Budgets)) -> GuestImports {
        let mut budgets = Budgets::default();
        f(&mut budgets);
        let gvk = Gvk {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
        };
        let context = CallContext {
            plugin: "p".into(),
            kind: gvk,
            key: ObjectKey {
                namespace: None,
                name: "n".into(),
            },
        };
        GuestImports::new(context, Meter::new(&budgets), host.clone())
    }

    fn gvk() -> Gvk {
        Gvk {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
        }
    }

    fn key() -> ObjectKey {
        ObjectKey {
            namespace: None,
            name: "n".into(),
        }
    }

    #[test]
    fn refused_calls_never_reach_the_host_and_error_messages_are_charged() {
        let host = Arc::new(Recorder::default());
        let mut imports = imports(&host, |b| b.host_calls = 2);
        for _ in 0..2 {
            let err = block_on(cache::Host::get(&mut imports, gvk(), key())).unwrap_err();
            assert_eq!(err.code, ErrorCode::NotFound);
        }
        let err = block_on(cache::Host::get(&mut imports, gvk(), key())).unwrap_err();
        assert_eq!(err.code, ErrorCode::BudgetExceeded);
        assert!(err.message.contains("2 calls"), "{}", err.message);
        assert_eq!(*host.reached.lock().unwrap(), ["get", "get"]);
        assert_eq!(imports.meter().usage().returned_bytes, 20);
    }

    #[test]
    fn a_list_that_does_not_fit_is_withheld_and_not_built_again() {
        let host = Arc::new(Recorder {
            answer: vec!["z".repeat(60); 2],
            ..Recorder::default()
        });
        let mut imports = imports(&host, |b| b.returned_bytes = 100);
        let err = block_on(cache::Host::list(&mut imports, gvk(), None, None)).unwrap_err();
        assert_eq!(err.code, ErrorCode::BudgetExceeded);
        assert!(err.message.contains("136 bytes"), "{}", err.message);
        let err = block_on(cache::Host::list(&mut imports, gvk(), None, None)).unwrap_err();
        assert_eq!(err.code, ErrorCode::BudgetExceeded);
        assert_eq!(*host.reached.lock().unwrap(), ["list"]);
        // A write is still admitted and its answer handed back whole.
        let answer = block_on(writes::Host::apply(&mut imports, "{}".into(), true)).unwrap();
        assert_eq!(answer.len(), 100);
    }

    #[test]
    fn writes_and_events_share_the_write_budget() {
        let host = Arc::new(Recorder::default());
        let mut imports = imports(&host, |b| b.writes = 2);
        block_on(writes::Host::apply(&mut imports, "{}".into(), true)).unwrap();
        let event = |imports: &mut GuestImports| {
            block_on(events::Host::emit(
                imports,
                gvk(),
                key(),
                EventType::Normal,
                "Reason".into(),
                "é".repeat(2000),
            ))
        };
        event(&mut imports).unwrap();
        assert_eq!(
            event(&mut imports).unwrap_err().code,
            ErrorCode::BudgetExceeded
        );
        assert_eq!(*host.reached.lock().unwrap(), ["apply", "event"]);
    }

    #[test]
    fn a_truncated_log_line_keeps_the_fields_that_fit() {
        let host = Arc::new(Recorder::default());
        let mut imports = imports(&host, |b| {
            b.log_bytes = crate::sandbox::budget::LOG_LINE_OVERHEAD + 10
        });
        let fields = vec![
            ("k".to_string(), "v".to_string()),
            ("long".to_string(), "xxxxxxx".to_string()),
        ];
        block_on(log::Host::log(
            &mut imports,
            Level::Info,
            "hello".into(),
            fields.clone(),
        ));
        block_on(log::Host::log(
            &mut imports,
            Level::Info,
            "dropped".into(),
            fields,
        ));
        let logs = host.logs.lock().unwrap().clone();
        assert_eq!(
            logs,
            [(
                "hello".to_string(),
                vec![("k".to_string(), "v".to_string())],
                true
            )]
        );
        let usage = imports.meter().usage();
        assert_eq!((usage.log_lines_truncated, usage.log_lines_dropped), (1, 1));
    }

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
