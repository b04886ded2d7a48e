//! The guest's stdout and stderr: captured, capped, then forwarded to tracing.
//!
//! A guest writing to stdout must never fail (Rust's `println!` panics on a write error, which
//! would turn chatty output into a crash), and must never make the host buffer without bound.
//! So every write succeeds; the first `cap` bytes are kept, the rest are counted and dropped,
//! except that the last [`TAIL_BYTES`] are also kept: a panicking guest prints "panicked at"
//! last, and the classifier needs to see it even after a flood of output.
//!
//! The text reaches tracing after the call ends (with the plugin's name), not line by line
//! while it runs, so a guest cannot make the host format log lines in its hot loop.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes kept from the end of a stream beyond its cap.
pub const TAIL_BYTES: usize = 2048;

/// How much one write may carry; the guest splits larger writes.
const WRITE_PERMIT: usize = 64 * 1024;

/// One captured stream. Clones share the buffer: wasmtime asks for a fresh stream handle each
/// time the guest opens stdout, and all of them must write to the same place.
#[derive(Clone)]
pub struct Capture {
    inner: Arc<Mutex<Captured>>,
}

/// What a stream captured.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Captured {
    cap: usize,
    /// The first `cap` bytes.
    pub head: Vec<u8>,
    /// The last bytes past `head`, at most [`TAIL_BYTES`].
    tail: VecDeque<u8>,
    /// Bytes written past the cap (the tail's included).
    pub dropped: u64,
}

impl Captured {
    fn push(&mut self, bytes: &[u8]) {
        let room = self.cap - self.head.len();
        let (kept, rest) = bytes.split_at(room.min(bytes.len()));
        self.head.extend_from_slice(kept);
        if rest.is_empty() {
            return;
        }
        self.dropped += rest.len() as u64;
        let rest = &rest[rest.len().saturating_sub(TAIL_BYTES)..];
        let overflow = (self.tail.len() + rest.len()).saturating_sub(TAIL_BYTES);
        self.tail.drain(..overflow);
        self.tail.extend(rest);
    }

    /// The kept head as text (lossy).
    pub fn head_text(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned()
    }

    /// The last bytes written past the cap, as text (lossy); empty when nothing was dropped.
    pub fn tail_text(&self) -> String {
        let (a, b) = self.tail.as_slices();
        let mut bytes = Vec::with_capacity(a.len() + b.len());
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Capture {
    pub fn new(cap: u64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Captured {
                cap: usize::try_from(cap).unwrap_or(usize::MAX),
                ..Captured::default()
            })),
        }
    }

    fn push(&self, bytes: &[u8]) {
        // A poisoned lock only means another writer panicked mid-push; the buffer is still a
        // valid (if partial) capture.
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(bytes);
    }

    /// Takes what was captured, leaving the capture empty.
    pub fn take(&self) -> Captured {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let cap = inner.cap;
        std::mem::replace(
            &mut *inner,
            Captured {
                cap,
                ..Captured::default()
            },
        )
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Writes what a call printed to tracing, one event per line, with the plugin's name.
pub fn forward_to_tracing(plugin: &str, stream: &'static str, captured: &Captured) {
    let text = captured.head_text();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if stream == "stderr" {
            tracing::warn!(plugin, stream, "{line}");
        } else {
            tracing::info!(plugin, stream, "{line}");
        }
    }
    if captured.dropped > 0 {
        tracing::warn!(
            plugin,
            stream,
            dropped_bytes = captured.dropped,
            "guest output past the stdio cap was dropped"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_head_counts_the_rest_and_keeps_a_tail() {
        let c = Capture::new(4);
        c.push(b"ab");
        c.push(b"cdef");
        c.push(b"gh");
        let got = c.take();
        assert_eq!(got.head, b"abcd");
        assert_eq!(got.dropped, 4);
        assert_eq!(got.tail_text(), "efgh");
    }

    #[test]
    fn the_tail_holds_only_the_last_bytes() {
        let c = Capture::new(0);
        c.push(&vec![b'x'; 3 * TAIL_BYTES]);
        c.push(b"panicked at here");
        let got = c.take();
        assert!(got.head.is_empty());
        assert_eq!(got.dropped, 3 * TAIL_BYTES as u64 + 16);
        let tail = got.tail_text();
        assert_eq!(tail.len(), TAIL_BYTES);
        assert!(tail.ends_with("panicked at here"));
    }

    #[test]
    fn clones_share_one_buffer_and_take_empties_it() {
        let c = Capture::new(100);
        let mut a = c.clone();
        let mut b = c.clone();
        OutputStream::write(&mut a, Bytes::from_static(b"one ")).unwrap();
        OutputStream::write(&mut b, Bytes::from_static(b"two")).unwrap();
        assert_eq!(c.take().head_text(), "one two");
        assert!(c.take().head.is_empty());
    }

    #[test]
    fn writes_never_fail_past_the_cap() {
        let mut c = Capture::new(1);
        for _ in 0..10 {
            assert!(OutputStream::check_write(&mut c).unwrap() > 0);
            OutputStream::write(&mut c, Bytes::from_static(b"xyz")).unwrap();
        }
        assert_eq!(c.take().dropped, 29);
    }
}
