//! What an AC's driver does whatever the transport: feeds the controller, holds its
//! connections under [`ConnectionLimits`], and reports what the bounds did. The TCP and
//! QUIC drivers each wrap a [`Serving`] with their own I/O.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pcxses_core::controller::ControllerCommand;
use pcxses_core::{Controller, ControllerEvent, Epoch, LinkId, Output, Stats};
use smol::channel::Sender;
use smol::future::FutureExt;
use smol::Timer;

use crate::limits::{ConnectionLimits, ConnectionStats};
use crate::table::{Admission, Connections};
use crate::throttle::{Throttle, WARN_PERIOD};

/// The controller, its connections (of type `C`), and the counts and throttled warnings
/// of what the driver had to drop or refuse.
pub struct Serving<C> {
    /// The protocol controller.
    pub ac: Controller,
    /// The clock the controller runs on.
    pub epoch: Epoch,
    /// The open connections, bounded by the limits given to [`Serving::new`].
    pub connections: Connections<C>,
    /// Frames and events dropped because a peer or the application fell behind.
    pub dropped: u64,
    warn: Throttle,
}

impl<C> Serving<C> {
    /// Serves `ac` on `epoch`'s clock, its connections bounded by `limits` and counted in
    /// `stats`.
    pub fn new(
        ac: Controller,
        epoch: Epoch,
        limits: ConnectionLimits,
        stats: Arc<ConnectionStats>,
    ) -> Self {
        Self {
            ac,
            epoch,
            connections: Connections::new(limits, stats),
            dropped: 0,
            warn: Throttle::new(WARN_PERIOD),
        }
    }

    /// A future that completes at `wake_at` on the controller's clock (never, for
    /// [`pcxses_core::Instant::MAX`]) or at the connections' next deadline as it stands
    /// now, whichever comes first.
    pub fn deadline(&self, wake_at: pcxses_core::Instant) -> impl Future<Output = ()> + 'static {
        let timer = crate::until(self.epoch, wake_at);
        let deadline = self.connections.next_deadline();
        let expiry = async move {
            match deadline {
                Some(at) => Timer::at(at).await,
                None => Timer::never().await,
            };
        };
        timer.or(expiry)
    }

    /// The controller's time now; hands the controller its timeout first when `wake_at`
    /// has come.
    pub fn wake(&mut self, wake_at: pcxses_core::Instant) -> pcxses_core::Instant {
        let now = self.epoch.now();
        if wake_at <= now {
            self.ac.handle_timeout(now);
        }
        now
    }

    /// Applies `command` to the controller at `now`, logging a refusal.
    pub fn command(&mut self, command: ControllerCommand, now: pcxses_core::Instant) {
        if let Err(e) = command.apply(&mut self.ac, now) {
            tracing::warn!(?command, error = %e, "command refused");
        }
    }

    /// The controller's final counters, when its driver stops; logs how much was dropped.
    pub fn stop(&self) -> Stats {
        if self.dropped > 0 {
            tracing::warn!(
                dropped = self.dropped,
                "frames or events dropped: a peer or the application fell behind"
            );
        }
        *self.ac.stats()
    }

    /// Closes the connections that outlived their deadlines, using `expired` as scratch
    /// space.
    pub fn expire(&mut self, expired: &mut Vec<(LinkId, C)>) {
        self.connections.expire(Instant::now(), expired);
        for (link, _) in expired.drain(..) {
            tracing::debug!(?link, "connection expired");
        }
    }

    /// Copies the controller's counters into `shared`.
    pub fn publish(&self, shared: &Mutex<Stats>) {
        if let Ok(mut s) = shared.lock() {
            *s = *self.ac.stats();
        }
    }

    /// Sends what the controller wants sent, with `send` (which says whether the
    /// connection took the bottle), and forwards its events to `events`; counts what was
    /// dropped and returns the controller's next timeout. Bottles for links with no open
    /// connection are passed over.
    pub fn drain(
        &mut self,
        events: &Sender<ControllerEvent>,
        mut send: impl FnMut(&C, &[u8]) -> bool,
    ) -> pcxses_core::Instant {
        loop {
            match self.ac.poll_output() {
                Output::Transmit(t) => {
                    if self
                        .connections
                        .get(t.to)
                        .is_some_and(|c| !send(c, t.bytes))
                    {
                        self.dropped += 1;
                    }
                }
                Output::Event(e) => {
                    if events.try_send(e).is_err() {
                        self.dropped += 1;
                    }
                }
                Output::Timeout(at) => return at,
            }
        }
    }

    /// Admits `connection` as `link` at `now`, warning (throttled) when the limit evicted
    /// an older connection or refused this one.
    pub fn admit(&mut self, link: LinkId, connection: C, now: Instant) {
        match self.connections.admit(link, connection, now) {
            Admission::Admitted => {}
            Admission::Evicted(old, _) => {
                if let Some(suppressed) = self.warn.allow(now) {
                    tracing::warn!(
                        evicted = ?old,
                        suppressed,
                        "connection limit reached: closed the oldest connection without an accepted bottle"
                    );
                }
            }
            Admission::Refused(_) => {
                if let Some(suppressed) = self.warn.allow(now) {
                    tracing::warn!(
                        ?link,
                        suppressed,
                        "connection limit reached and every connection proven: refused a new one"
                    );
                }
            }
        }
    }

    /// Hands the controller `frame`, read from `link` at `now`, with the peer's identity
    /// as `identity` gives it for the connection; marks the connection heard, and proven
    /// when the controller accepted the frame. A frame read after its connection was
    /// closed is passed over.
    pub fn receive(
        &mut self,
        link: LinkId,
        frame: &[u8],
        now: pcxses_core::Instant,
        identity: impl FnOnce(&C) -> Option<&str>,
    ) {
        let Some(c) = self.connections.get(link) else {
            return;
        };
        let result = self.ac.handle_receive(now, link, frame, identity(c));
        if let Err(e) = &result {
            tracing::debug!(?link, error = %e, "refused a frame");
        }
        self.connections.heard(link, Instant::now(), result.is_ok());
    }
}
