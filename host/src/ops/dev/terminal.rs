//! Sharing stderr between log lines and the progress line.
//!
//! On a terminal, `trellis dev` keeps one refreshing progress line at the bottom. A log line
//! written straight to stderr would land in the middle of it; so every writer of stderr (the
//! log subscriber through [`MakeWriter`], the progress reporter through [`Terminal::draw`])
//! goes through one lock that erases the progress line, writes, and draws it again. Off a
//! terminal there is no line to protect and writes pass straight through.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use parking_lot::Mutex;
use tracing_subscriber::fmt::MakeWriter;

/// ANSI: carriage return, then erase the whole line.
const ERASE_LINE: &[u8] = b"\r\x1b[2K";

struct State {
    /// The progress line currently drawn (terminal only).
    line: Option<String>,
    out: Box<dyn Write + Send>,
}

struct Inner {
    tty: bool,
    /// A fixed width (tests); `None`: ask the terminal at each draw (it may be resized).
    width: Option<usize>,
    state: Mutex<State>,
}

/// stderr, shared by logs and the progress line. Cheap to clone.
#[derive(Clone)]
pub struct Terminal {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal")
            .field("tty", &self.inner.tty)
            .finish()
    }
}

impl Terminal {
    /// The process's stderr; a terminal if stderr is one.
    pub fn stderr() -> Self {
        Self::with_output(std::io::stderr().is_terminal(), Box::new(std::io::stderr()))
    }

    /// Any output, e.g. a buffer in tests; `tty` says whether a progress line may be drawn.
    pub fn with_output(tty: bool, out: Box<dyn Write + Send>) -> Self {
        Self::build(tty, None, out)
    }

    /// A terminal `width` columns wide writing to `out` (tests).
    pub fn with_width(out: Box<dyn Write + Send>, width: usize) -> Self {
        Self::build(true, Some(width), out)
    }

    fn build(tty: bool, width: Option<usize>, out: Box<dyn Write + Send>) -> Self {
        Self {
            inner: Arc::new(Inner {
                tty,
                width,
                state: Mutex::new(State { line: None, out }),
            }),
        }
    }

    pub fn is_tty(&self) -> bool {
        self.inner.tty
    }

    /// Replaces the refreshing progress line. Only on a terminal; elsewhere it does nothing
    /// (progress off a terminal is written as plain lines with [`write_lines`](Self::write_lines)).
    /// The line is cut to the terminal's width: a wrapped line could not be erased in place.
    pub fn draw(&self, line: &str) {
        if !self.inner.tty {
            return;
        }
        let line = fit(line, self.inner.width.or_else(stderr_width));
        let line = line.as_str();
        let mut state = self.inner.state.lock();
        let _ = state.out.write_all(ERASE_LINE);
        let _ = state.out.write_all(line.as_bytes());
        let _ = state.out.flush();
        state.line = Some(line.to_string());
    }

    /// Erases the progress line and forgets it (before a final summary, at exit).
    pub fn clear(&self) {
        let mut state = self.inner.state.lock();
        if state.line.take().is_some() {
            let _ = state.out.write_all(ERASE_LINE);
            let _ = state.out.flush();
        }
    }

    /// Writes whole lines without tearing the progress line: erase it, write, draw it again.
    pub fn write_lines(&self, text: &[u8]) {
        let mut state = self.inner.state.lock();
        let State { line, out } = &mut *state;
        if line.is_some() {
            let _ = out.write_all(ERASE_LINE);
        }
        let _ = out.write_all(text);
        if !text.ends_with(b"\n") {
            let _ = out.write_all(b"\n");
        }
        if let Some(line) = line.as_deref() {
            let _ = out.write_all(line.as_bytes());
        }
        let _ = out.flush();
    }
}

/// `line` cut to `width - 1` characters (the last column stays free so the cursor never
/// wraps), ending in `…` when cut.
fn fit(line: &str, width: Option<usize>) -> String {
    let Some(width) = width.filter(|w| *w > 1) else {
        return line.to_string();
    };
    let room = width - 1;
    if line.chars().count() <= room {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(room.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The width of the terminal on stderr, if it is one.
fn stderr_width() -> Option<usize> {
    #[cfg(unix)]
    {
        let mut size = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes a `winsize` into the pointer, which points at one.
        let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
        if ok && size.ws_col > 0 {
            return Some(usize::from(size.ws_col));
        }
    }
    std::env::var("COLUMNS").ok()?.parse().ok()
}

/// One log event's text, written in one piece when the subscriber is done with it (the fmt
/// subscriber may write an event in several calls).
pub struct EventWriter {
    terminal: Terminal,
    buffer: Vec<u8>,
}

impl Write for EventWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if !self.buffer.is_empty() {
            self.terminal.write_lines(&self.buffer);
        }
    }
}

impl<'a> MakeWriter<'a> for Terminal {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            terminal: self.clone(),
            buffer: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cloneable in-memory output.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().clone()).unwrap()
        }
    }

    #[test]
    fn a_log_line_erases_the_progress_line_and_draws_it_again() {
        let out = Shared::default();
        let terminal = Terminal::with_output(true, Box::new(out.clone()));
        terminal.draw("progress 1");
        {
            let mut writer = terminal.make_writer();
            writer.write_all(b"INFO ").unwrap();
            writer.write_all(b"hello\n").unwrap();
        }
        terminal.draw("progress 2");
        terminal.clear();
        assert_eq!(
            out.text(),
            "\r\x1b[2Kprogress 1\r\x1b[2KINFO hello\nprogress 1\r\x1b[2Kprogress 2\r\x1b[2K"
        );
    }

    #[test]
    fn a_line_wider_than_the_terminal_is_cut_so_it_can_be_erased() {
        let out = Shared::default();
        let terminal = Terminal::with_width(Box::new(out.clone()), 10);
        terminal.draw("0123456789abc");
        terminal.draw("short");
        assert_eq!(out.text(), "\r\x1b[2K01234567…\r\x1b[2Kshort");
        assert_eq!(fit("abc", None), "abc");
        assert_eq!(fit("abcdef", Some(1)), "abcdef");
    }

    #[test]
    fn off_a_terminal_nothing_is_drawn_and_lines_pass_through() {
        let out = Shared::default();
        let terminal = Terminal::with_output(false, Box::new(out.clone()));
        terminal.draw("progress");
        terminal.write_lines(b"plain progress");
        drop(terminal.make_writer()); // an empty event writes nothing
        terminal.clear();
        assert_eq!(out.text(), "plain progress\n");
    }
}
