//! One QUIC connection as the driver runs it: control bottles on the device's
//! bidirectional stream, MORPH object code on a unidirectional stream the AC opens.

use crate::tls;
use pcxses_core::TransmitKind;
use pcxses_driver::{Connection, Frames, Opened, Pipe, SendError};
use quinn::{RecvStream, SendStream};
use smol::future::FutureExt;

/// One QUIC connection as the driver holds it (for a [`Listener`](crate::Listener) or a
/// [`Dial`](crate::Dial)), its sending side: its certified name (AC side) and its streams,
/// object code going on the AC's bulk stream. Dropping it closes the connection.
pub struct Streams {
    identity: Option<String>,
    connection: quinn::Connection,
    control: Pipe,
    /// The AC's stream for object code; a device sends everything on `control`.
    bulk: Option<Pipe>,
}

impl Connection for Streams {
    fn send(&self, kind: TransmitKind, bottle: &[u8]) -> Result<(), SendError> {
        let pipe = match (kind, &self.bulk) {
            (TransmitKind::Bulk, Some(bulk)) => bulk,
            _ => &self.control,
        };
        pipe.push(bottle)
    }

    fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        self.connection.close(0u32.into(), b"closed");
    }
}

/// A connection the AC accepted from the device `identity`, with the control stream the
/// device opened; the bulk stream opens at once.
pub(crate) fn accepted(
    connection: quinn::Connection,
    identity: String,
    (control, recv): (SendStream, RecvStream),
    frames: Frames,
) -> Opened<Streams> {
    let (control, control_writing) = Pipe::new(control);
    let opening = connection.clone();
    let (bulk, bulk_writing) = Pipe::opening(async move { opening.open_uni().await.ok() });
    let io = read(connection.clone(), recv, frames)
        .or(control_writing)
        .or(bulk_writing);
    let streams = Streams {
        identity: Some(identity),
        connection,
        control,
        bulk: Some(bulk),
    };
    Opened::new(streams, io)
}

/// A device's connection to the AC, with the control stream it opened.
pub(crate) fn connected(
    connection: quinn::Connection,
    (control, recv): (SendStream, RecvStream),
    frames: Frames,
) -> Opened<Streams> {
    let (control, control_writing) = Pipe::new(control);
    let io = read(connection.clone(), recv, frames).or(control_writing);
    let streams = Streams {
        identity: None,
        connection,
        control,
        bulk: None,
    };
    Opened::new(streams, io)
}

/// Reads the control stream and the peer's unidirectional streams (the AC's bulk stream;
/// the AC allows a device none) into `frames`, until the control stream or the
/// connection ends.
async fn read(connection: quinn::Connection, control: RecvStream, frames: Frames) {
    let bulk = {
        let frames = frames.clone();
        let connection = connection.clone();
        async move {
            while let Ok(recv) = connection.accept_uni().await {
                frames.clone().read(recv).await;
            }
        }
    };
    frames.read(control).or(bulk).await;
    if let Some(alert) = connection.close_reason().as_ref().and_then(tls::failure) {
        let peer = connection.remote_address();
        tracing::warn!(%peer, "the connection ended in a TLS failure: {alert}");
    }
}
