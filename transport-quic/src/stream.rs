//! Frames on QUIC streams: reading them into the driver's queue, and writing them from a
//! bounded buffer.

use std::sync::{Arc, Mutex};

use pcxses_core::frame::{push_frame, FrameDecoder, MAX_PREFIX_LEN};
use pcxses_core::LinkId;
use smol::channel::{bounded, Receiver, Sender};
use smol::{Executor, Task};

use crate::WRITE_BUFFER;

/// What the connections report to the driver.
pub(crate) enum Inbound {
    /// A connection is up: its certified name (AC side) and its control stream.
    Opened {
        link: LinkId,
        identity: Option<String>,
        connection: quinn::Connection,
        control: quinn::SendStream,
    },
    /// One frame's bytes.
    Frame(LinkId, Vec<u8>),
    /// The connection ended.
    Closed(LinkId),
}

/// Reads frames from `recv` until the stream ends or sends an invalid frame.
pub(crate) async fn read_frames(mut recv: quinn::RecvStream, link: LinkId, out: Sender<Inbound>) {
    let mut decoder = FrameDecoder::new(pcxses_core::MAX_BOTTLE_LEN);
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(Some(n)) = recv.read(&mut buf).await {
        let mut input = &buf[..n];
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(frame)) => {
                    if out
                        .send(Inbound::Frame(link, frame.to_vec()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(?link, error = %e, "invalid frame: stopping the stream");
                    let _ = recv.stop(0u32.into());
                    return;
                }
            }
        }
    }
}

/// A stream's writer: frames queue in a bounded buffer that a task writes out.
pub(crate) struct Pipe {
    /// Frames waiting; the writer swaps the buffer for its own, so both reuse their
    /// allocations.
    pending: Arc<Mutex<Vec<u8>>>,
    /// Wakes the writer; one wake-up pending is enough.
    wake: Sender<()>,
    _writer: Task<()>,
}

impl Pipe {
    /// A pipe writing to the stream `open` yields.
    pub(crate) fn new<F>(ex: &Executor<'static>, open: F) -> Pipe
    where
        F: std::future::Future<Output = Option<quinn::SendStream>> + Send + 'static,
    {
        let pending = Arc::new(Mutex::new(Vec::new()));
        let (wake, woken) = bounded(1);
        let writer = ex.spawn(write_frames(open, pending.clone(), woken));
        Pipe {
            pending,
            wake,
            _writer: writer,
        }
    }

    /// Queues one frame; `false` when the buffer is full.
    pub(crate) fn push(&self, bottle: &[u8]) -> bool {
        let Ok(mut pending) = self.pending.lock() else {
            return false;
        };
        if pending.len() + bottle.len() + MAX_PREFIX_LEN > WRITE_BUFFER {
            return false;
        }
        push_frame(bottle, &mut pending);
        drop(pending);
        let _ = self.wake.try_send(());
        true
    }
}

async fn write_frames(
    open: impl std::future::Future<Output = Option<quinn::SendStream>>,
    pending: Arc<Mutex<Vec<u8>>>,
    wake: Receiver<()>,
) {
    let Some(mut stream) = open.await else {
        return;
    };
    let mut out = Vec::new();
    while wake.recv().await.is_ok() {
        match pending.lock() {
            Ok(mut p) => std::mem::swap(&mut *p, &mut out),
            Err(_) => return,
        }
        if stream.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
}
