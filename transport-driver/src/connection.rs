//! A connection as the driver holds it: how it sends, who is at the other end, and the
//! future that keeps it going.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use pcxses_core::TransmitKind;
use smol::future::FutureExt;
use smol::io::{AsyncRead, AsyncWrite};

use crate::frames::Frames;
use crate::pipe::Pipe;

/// Why a connection did not take a bottle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Its write buffer is full: the bottle is dropped, and the peer's retransmission
    /// recovers it.
    #[error("the write buffer is full")]
    Full,
    /// It is closed: a device connects again.
    #[error("the connection is closed")]
    Closed,
}

/// One connection of a connection transport (or a device's socket): how the driver sends
/// bottles on it. Dropping it closes the connection.
pub trait Connection: Send + Sync + 'static {
    /// Queues one bottle of `kind` without waiting. A transport with one stream ignores
    /// `kind`; one with a stream for bulk data sends [`TransmitKind::Bulk`] there.
    fn send(&self, kind: TransmitKind, bottle: &[u8]) -> Result<(), SendError>;

    /// The peer's name as the transport authenticated it (a certificate's), which the AC
    /// checks against the device a bottle claims to come from; `None` when the transport
    /// authenticates no one.
    fn identity(&self) -> Option<&str> {
        None
    }
}

/// A connection just opened or accepted, and what keeps it going: reading its frames
/// ([`crate::Frames::read`]) and writing its pipes ([`crate::Pipe`]). The driver runs
/// `io` in a task of its own once it takes the connection, and drops both when the
/// connection ends; when `io` completes, the connection is over.
pub struct Opened<C> {
    pub(crate) connection: C,
    pub(crate) io: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl<C> fmt::Debug for Opened<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened").finish_non_exhaustive()
    }
}

impl<C: Connection> Opened<C> {
    /// `connection`, kept going by `io`.
    pub fn new(connection: C, io: impl Future<Output = ()> + Send + 'static) -> Self {
        Opened {
            connection,
            io: Box::pin(io),
        }
    }
}

impl Opened<Pipe> {
    /// A byte stream that carries every bottle (TCP, say), `stream` and its clones being
    /// handles of the same stream: bottles are written through a [`Pipe`] and read into
    /// `frames` until the stream ends.
    pub fn stream<S>(stream: S, frames: Frames) -> Self
    where
        S: AsyncRead + AsyncWrite + Clone + Unpin + Send + 'static,
    {
        let (pipe, writing) = Pipe::new(stream.clone());
        Opened::new(pipe, frames.read(stream).or(writing))
    }
}
