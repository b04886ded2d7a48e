//! `huge-log`: more output than any host should keep.

use std::io::Write;

use trellis_guest::{Action, Error, Level, raw};

use crate::params::Params;

/// Writes `bytes` (default 4 MiB) to each channel in `to` (comma-separated from `log`,
/// `stdout`, `stderr`; default all three), in lines of `line-bytes` (default 64 KiB). Log lines
/// carry a field as long as the message, so both are exercised. Write errors on stdout/stderr
/// (a host that closed them) end that channel early; the mode still returns `done`.
pub fn huge_log(params: &Params) -> Result<Action, Error> {
    let total = params.number_or("bytes", 4 << 20)?;
    let line = params.number_or("line-bytes", 64 << 10)?.max(1);
    let line = usize::try_from(line).map_err(|_| Error::permanent("data.line-bytes: too large"))?;
    let channels = params.text_or("to", "log,stdout,stderr")?;
    let text = "x".repeat(line);
    let lines = total.div_ceil(line as u64);
    for channel in channels.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        match channel {
            "log" => {
                let fields = [("payload".to_owned(), text.clone())];
                for _ in 0..lines {
                    raw::log(Level::Info, &text, &fields);
                }
            }
            "stdout" => write_lines(&mut std::io::stdout().lock(), &text, lines),
            "stderr" => write_lines(&mut std::io::stderr().lock(), &text, lines),
            other => {
                return Err(Error::permanent(format!(
                    "data.to: unknown channel {other:?} (known: log, stdout, stderr)"
                )));
            }
        }
    }
    Ok(Action::done())
}

fn write_lines(out: &mut impl Write, text: &str, lines: u64) {
    for _ in 0..lines {
        if writeln!(out, "{text}").is_err() {
            return;
        }
    }
    let _ = out.flush();
}
