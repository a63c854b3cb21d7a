//! Reading frames from a connection into the driver's queue.

use pcxses_core::frame::FrameDecoder;
use pcxses_core::LinkId;
use smol::channel::Sender;
use smol::io::AsyncReadExt;
use smol::net::TcpStream;

/// What a connection's reader reports.
pub(crate) enum Inbound {
    /// A new connection (AC side) or a reconnection (device side).
    Opened(LinkId, TcpStream),
    /// One frame's bytes.
    Frame(LinkId, Vec<u8>),
    /// The connection ended (closed, failed, or sent an invalid frame).
    Closed(LinkId),
}

/// Reads frames of at most `max_frame` bytes until the connection ends.
pub(crate) async fn read_frames(
    mut stream: TcpStream,
    link: LinkId,
    max_frame: usize,
    out: Sender<Inbound>,
) {
    let mut decoder = FrameDecoder::new(max_frame);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
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
                    tracing::debug!(?link, error = %e, "invalid frame: closing");
                    let _ = out.send(Inbound::Closed(link)).await;
                    return;
                }
            }
        }
        // A peer that keeps the socket full gets no more turns than the other tasks.
        smol::future::yield_now().await;
    }
    let _ = out.send(Inbound::Closed(link)).await;
}
