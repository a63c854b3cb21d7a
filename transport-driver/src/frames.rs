//! Bottles read from a connection, on their way to the driver: the framed-stream reader.

use std::fmt;

use pcxses_core::frame::FrameDecoder;
use pcxses_core::{LinkId, MAX_BOTTLE_LEN};
use smol::channel::Sender;
use smol::io::{AsyncRead, AsyncReadExt};

/// Bytes read from a stream at once.
const READ_BUFFER: usize = 16 * 1024;

/// What the tasks of connections report to the driver.
pub(crate) enum Inbound {
    /// One bottle's bytes.
    Frame(LinkId, Vec<u8>),
    /// The connection ended: closed, failed, or sent an invalid frame.
    Closed(LinkId),
}

/// Where the bottles of one connection go: the driver's queue, each tagged with the
/// connection's link. The queue is bounded: a connection whose bottles the driver has not
/// taken yet waits, and reads no further.
#[derive(Clone)]
pub struct Frames {
    link: LinkId,
    to: Sender<Inbound>,
}

impl fmt::Debug for Frames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frames").field("link", &self.link).finish()
    }
}

impl Frames {
    pub(crate) fn new(link: LinkId, to: Sender<Inbound>) -> Self {
        Frames { link, to }
    }

    /// The link the driver knows the connection by.
    pub fn link(&self) -> LinkId {
        self.link
    }

    /// Hands the driver one bottle, waiting for room in its queue; `false` once the driver
    /// is gone.
    pub async fn deliver(&self, bottle: Vec<u8>) -> bool {
        self.to
            .send(Inbound::Frame(self.link, bottle))
            .await
            .is_ok()
    }

    /// Tells the driver that the connection ended.
    pub(crate) async fn closed(&self) {
        let _ = self.to.send(Inbound::Closed(self.link)).await;
    }

    /// Reads length-prefixed frames ([`pcxses_core::frame`]) of at most
    /// [`MAX_BOTTLE_LEN`] bytes from `reader` and delivers their bottles, until the stream
    /// ends or fails, sends an invalid frame, or the driver is gone. It yields after every
    /// read, so that a peer that keeps its socket full gets no more turns than the
    /// executor's other tasks.
    pub async fn read<R: AsyncRead + Unpin>(self, mut reader: R) {
        let mut decoder = FrameDecoder::new(MAX_BOTTLE_LEN);
        let mut buf = vec![0u8; READ_BUFFER];
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut input = &buf[..n];
            loop {
                match decoder.decode(&mut input) {
                    Ok(Some(frame)) => {
                        if !self.deliver(frame.to_vec()).await {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(link = ?self.link, error = %e, "invalid frame: closing");
                        return;
                    }
                }
            }
            smol::future::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use pcxses_core::frame::push_frame;
    use smol::channel::bounded;

    use super::*;

    /// A stream that hands out at most `chunk` bytes a read.
    struct Chunked {
        bytes: Vec<u8>,
        at: usize,
        chunk: usize,
    }

    impl AsyncRead for Chunked {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let n = self.chunk.min(buf.len()).min(self.bytes.len() - self.at);
            buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            std::task::Poll::Ready(Ok(n))
        }
    }

    /// Reads `bytes`, `chunk` bytes at a time; returns the bottles the driver got.
    fn read_all(bytes: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        let (tx, rx) = bounded(64);
        let reader = Chunked {
            bytes: bytes.to_vec(),
            at: 0,
            chunk,
        };
        smol::block_on(Frames::new(LinkId(3), tx).read(reader));
        std::iter::from_fn(|| match rx.try_recv().ok()? {
            Inbound::Frame(link, bottle) => {
                assert_eq!(link, LinkId(3));
                Some(bottle)
            }
            Inbound::Closed(_) => panic!("the reader reports no closing itself"),
        })
        .collect()
    }

    #[test]
    fn frames_split_across_reads_arrive_whole_and_in_order() {
        let mut bytes = Vec::new();
        let bottles: Vec<Vec<u8>> = (1..=20u8).map(|n| vec![n; 17 * n as usize]).collect();
        for b in &bottles {
            push_frame(b, &mut bytes);
        }
        for chunk in [1, 7, 300, bytes.len()] {
            assert_eq!(read_all(&bytes, chunk), bottles, "chunks of {chunk}");
        }
    }

    #[test]
    fn reading_stops_at_an_invalid_frame() {
        let mut bytes = Vec::new();
        push_frame(b"first", &mut bytes);
        // A length beyond any bottle.
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
        push_frame(b"never", &mut bytes);
        assert_eq!(read_all(&bytes, 5), vec![b"first".to_vec()]);
    }
}
