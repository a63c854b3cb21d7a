//! The bounded write pipe: frames wait in a buffer of at most [`WRITE_BUFFER`] bytes for
//! a writer that writes them out in the background.

use std::future::Future;
use std::sync::{Arc, Mutex};

use pcxses_core::frame::{push_frame, MAX_PREFIX_LEN};
use smol::channel::{bounded, Receiver, Sender};
use smol::io::{AsyncWrite, AsyncWriteExt};

use crate::connection::{Connection, SendError};

/// Bytes of frames waiting to be written to one stream before further frames are dropped
/// (the peer's retransmissions recover them).
pub const WRITE_BUFFER: usize = 128 * 1024;

/// The sending end of a stream: [`Pipe::push`] queues a frame without waiting, and the
/// pipe's writing future writes what is queued. The writer swaps the buffer for its own, so
/// both ends reuse their allocations and sending a bottle allocates nothing.
#[derive(Debug)]
pub struct Pipe {
    pending: Arc<Mutex<Vec<u8>>>,
    /// Wakes the writer; one wake-up pending is enough. Closed once the writer is gone.
    wake: Sender<()>,
}

impl Pipe {
    /// A pipe to `writer`, and the future that writes to it: run it with the connection
    /// ([`crate::Opened::new`]). It ends when a write fails or the pipe is dropped.
    pub fn new<W>(writer: W) -> (Pipe, impl Future<Output = ()> + Send + 'static)
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        Pipe::opening(async move { Some(writer) })
    }

    /// A pipe to the stream `open` yields once the writing future starts (a stream opened
    /// on demand); the future ends at once when `open` yields none.
    pub fn opening<W, F>(open: F) -> (Pipe, impl Future<Output = ()> + Send + 'static)
    where
        W: AsyncWrite + Unpin + Send + 'static,
        F: Future<Output = Option<W>> + Send + 'static,
    {
        let pending = Arc::new(Mutex::new(Vec::new()));
        let (wake, woken) = bounded(1);
        let writing = write(open, pending.clone(), woken);
        (Pipe { pending, wake }, writing)
    }

    /// Queues `bottle` as one frame.
    pub fn push(&self, bottle: &[u8]) -> Result<(), SendError> {
        if self.wake.is_closed() {
            return Err(SendError::Closed);
        }
        let Ok(mut pending) = self.pending.lock() else {
            return Err(SendError::Closed);
        };
        if pending.len() + bottle.len() + MAX_PREFIX_LEN > WRITE_BUFFER {
            return Err(SendError::Full);
        }
        push_frame(bottle, &mut pending);
        drop(pending);
        let _ = self.wake.try_send(());
        Ok(())
    }
}

/// A connection of one stream carries every kind of bottle on it.
impl Connection for Pipe {
    fn send(&self, _: pcxses_core::TransmitKind, bottle: &[u8]) -> Result<(), SendError> {
        self.push(bottle)
    }
}

async fn write<W: AsyncWrite + Unpin>(
    open: impl Future<Output = Option<W>>,
    pending: Arc<Mutex<Vec<u8>>>,
    wake: Receiver<()>,
) {
    let Some(mut writer) = open.await else {
        return;
    };
    let mut out = Vec::new();
    while wake.recv().await.is_ok() {
        match pending.lock() {
            Ok(mut p) => std::mem::swap(&mut *p, &mut out),
            Err(_) => return,
        }
        if writer.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use pcxses_core::frame::FrameDecoder;

    use super::*;

    /// A stream that appends what is written to a shared buffer, or refuses every write.
    struct Stream(Option<Arc<Mutex<Vec<u8>>>>);

    impl AsyncWrite for Stream {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Poll::Ready(match &self.0 {
                Some(out) => {
                    out.lock().unwrap().extend_from_slice(buf);
                    Ok(buf.len())
                }
                None => Err(std::io::ErrorKind::BrokenPipe.into()),
            })
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn the_buffer_is_bounded() {
        let (pipe, _writing) = Pipe::new(Stream(None));
        let bottle = vec![7u8; 1000];
        let mut taken = 0;
        while pipe.push(&bottle).is_ok() {
            taken += 1;
        }
        assert_eq!(pipe.push(&bottle), Err(SendError::Full));
        assert!(taken * 1000 <= WRITE_BUFFER && (taken + 2) * 1000 > WRITE_BUFFER);
        assert_eq!(pipe.push(&[0; 10]), Ok(()), "a small frame still fits");
    }

    #[test]
    fn a_failed_write_closes_the_pipe() {
        let (pipe, writing) = Pipe::new(Stream(None));
        assert_eq!(pipe.push(b"hello"), Ok(()));
        smol::block_on(writing);
        assert_eq!(pipe.push(b"hello"), Err(SendError::Closed));
    }

    #[test]
    fn what_is_pushed_reaches_the_stream_as_frames_in_order() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let (pipe, writing) = Pipe::new(Stream(Some(out.clone())));
        for b in [&b"one"[..], b"two", b"three"] {
            pipe.push(b).unwrap();
        }
        drop(pipe);
        smol::block_on(writing);
        let bytes = out.lock().unwrap().clone();
        let mut input = &bytes[..];
        let mut decoder = FrameDecoder::new(100);
        let mut got = Vec::new();
        while let Some(frame) = decoder.decode(&mut input).unwrap() {
            got.push(frame.to_vec());
        }
        assert_eq!(got, [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
    }
}
