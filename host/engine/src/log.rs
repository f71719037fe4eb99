//! Bounded capture of a call's stdout and stderr.
//!
//! wasmtime-wasi's own memory pipe fails the guest's write once it is full,
//! and Rust's `println!` panics on a failed write: a function that logs too
//! much would then fail for that reason alone. [`LogPipe`] instead keeps the
//! first `capacity` bytes, silently drops the rest and counts it, so a guest
//! that prints gigabytes costs the host at most the capacity and still runs
//! to its end.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// An in-memory, bounded sink for a guest's output streams. Clones share
/// the same buffer, so stdout and stderr can write into one log in the
/// order the guest wrote them.
#[derive(Clone, Debug)]
pub struct LogPipe {
    inner: Arc<Mutex<Buffer>>,
}

#[derive(Debug)]
struct Buffer {
    bytes: Vec<u8>,
    capacity: usize,
    dropped: u64,
}

/// What a [`LogPipe`] captured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturedLog {
    /// The first bytes written, up to the capacity.
    pub bytes: Vec<u8>,
    /// How many bytes were written past the capacity and dropped.
    pub dropped: u64,
}

impl CapturedLog {
    /// The log as text: invalid UTF-8 is replaced, and a marker line says
    /// how much was cut off.
    pub fn to_text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.bytes).into_owned();
        if self.dropped > 0 {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!(
                "[wisp: log cut off here, {} more bytes were dropped]\n",
                self.dropped
            ));
        }
        text
    }
}

impl LogPipe {
    /// A pipe that keeps at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Buffer {
                bytes: Vec::new(),
                capacity,
                dropped: 0,
            })),
        }
    }

    /// Takes what was captured so far, leaving the pipe empty.
    pub fn take(&self) -> CapturedLog {
        let mut buffer = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        CapturedLog {
            bytes: std::mem::take(&mut buffer.bytes),
            dropped: std::mem::take(&mut buffer.dropped),
        }
    }

    fn append(&self, data: &[u8]) {
        let mut buffer = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let room = buffer.capacity.saturating_sub(buffer.bytes.len());
        let kept = room.min(data.len());
        buffer.bytes.extend_from_slice(&data[..kept]);
        buffer.dropped += (data.len() - kept) as u64;
    }
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for LogPipe {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always accept: what does not fit is counted and dropped.
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for LogPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_counts_the_rest() {
        let pipe = LogPipe::new(8);
        pipe.append(b"hello ");
        pipe.append(b"world\n");
        let log = pipe.take();
        assert_eq!(log.bytes, b"hello wo");
        assert_eq!(log.dropped, 4);
        assert_eq!(
            log.to_text(),
            "hello wo\n[wisp: log cut off here, 4 more bytes were dropped]\n"
        );
        assert_eq!(pipe.take(), CapturedLog::default());
    }
}
