//! Status snapshots of a running AC, asked of its run loop and answered between batches.

use std::net::SocketAddr;

use pcxses_core::controller::{Census, ControllerStatus};
use pcxses_core::{Controller, Instant};
use smol::channel::{bounded, Receiver, Sender};

use crate::controller::Port;

/// Status requests waiting for the AC, at most; further askers wait for room.
pub(crate) const STATUS_QUEUE: usize = 4;

/// What a running AC holds, as [`StatusSource::status`] gives it.
#[derive(Clone, Debug)]
pub struct AcStatus {
    /// The controller's devices and computations.
    pub controller: ControllerStatus,
    /// The transport address of each device's live session, in the order of
    /// `controller.devices`; `None` for a device without one, or when the transport does
    /// not know it ([`Port::peer_addr`]).
    pub addrs: Vec<Option<SocketAddr>>,
}

/// One request to the run loop, with where to answer it.
pub(crate) enum StatusRequest {
    /// A whole [`AcStatus`].
    Status(Sender<AcStatus>),
    /// A [`Census`].
    Census(Sender<Census>),
}

impl StatusRequest {
    /// Answers at `now` from `ac` and `port`. Never waits: the answer goes into a channel
    /// of its own with room for it, and is dropped if the asker is gone.
    pub(crate) fn answer<P: Port>(self, ac: &Controller, port: &P, now: Instant) {
        match self {
            StatusRequest::Status(reply) => {
                let controller = ac.status(now);
                let addrs = (controller.devices.iter())
                    .map(|d| d.session.as_ref().and_then(|s| port.peer_addr(s.link)))
                    .collect();
                let _ = reply.try_send(AcStatus { controller, addrs });
            }
            StatusRequest::Census(reply) => {
                let _ = reply.try_send(ac.census());
            }
        }
    }
}

/// Asks a running AC for its status; cheap to clone, one per task that asks.
#[derive(Clone, Debug)]
pub struct StatusSource {
    requests: Sender<StatusRequest>,
}

impl StatusSource {
    /// A source and the run loop's end of it.
    pub(crate) fn new() -> (StatusSource, Receiver<StatusRequest>) {
        let (requests, rx) = bounded(STATUS_QUEUE);
        (StatusSource { requests }, rx)
    }

    /// Every device and computation, with the devices' addresses; `None` once the AC
    /// stopped. The AC builds it between two batches of input: it costs an allocation
    /// per device and computation.
    pub async fn status(&self) -> Option<AcStatus> {
        let (reply, answer) = bounded(1);
        self.requests
            .send(StatusRequest::Status(reply))
            .await
            .ok()?;
        answer.recv().await.ok()
    }

    /// How many devices and computations are in each state; `None` once the AC stopped.
    pub async fn census(&self) -> Option<Census> {
        let (reply, answer) = bounded(1);
        self.requests
            .send(StatusRequest::Census(reply))
            .await
            .ok()?;
        answer.recv().await.ok()
    }
}
