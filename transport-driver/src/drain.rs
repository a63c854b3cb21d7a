//! Draining a machine: its transmits to the transport, its events to the application.

use std::future::Future;

use pcxses_core::{Instant, Machine, Output, Transmit};
use smol::channel::Sender;

/// Where a drain sends the machine's transmits.
pub(crate) trait Transmitter {
    /// Sends (or drops) one transmit.
    fn transmit(&mut self, transmit: Transmit<'_>) -> impl Future<Output = ()> + Send;
}

/// The application's event queue, and what to do when it is full.
pub(crate) struct Events<E> {
    to: Sender<E>,
    wait: bool,
    dropped: u64,
}

impl<E> Events<E> {
    /// An AC's events: one input can report an event for each of many devices, and an AC
    /// must not stall on a lagging application, so an event finding the queue full is
    /// dropped and counted.
    pub(crate) fn dropping(to: Sender<E>) -> Self {
        Events {
            to,
            wait: false,
            dropped: 0,
        }
    }

    /// A device's events: the application must see every `Stop`, so the drain waits for
    /// room.
    pub(crate) fn waiting(to: Sender<E>) -> Self {
        Events {
            to,
            wait: true,
            dropped: 0,
        }
    }

    async fn push(&mut self, event: E) {
        if self.wait {
            if self.to.send(event).await.is_err() {
                tracing::debug!("event receiver gone");
            }
        } else if self.to.try_send(event).is_err() {
            self.dropped += 1;
        }
    }

    /// Events dropped so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Drains `machine`: transmits to `out`, events to `events`. Returns when to call
/// [`Machine::handle_timeout`] next.
pub(crate) async fn drain<M: Machine>(
    machine: &mut M,
    out: &mut impl Transmitter,
    events: &mut Events<M::Event>,
) -> Instant {
    loop {
        match machine.poll_output() {
            Output::Transmit(t) => out.transmit(t).await,
            Output::Event(e) => events.push(e).await,
            Output::Timeout(at) => return at,
        }
    }
}

#[cfg(test)]
mod tests {
    use smol::channel::bounded;
    use smol::future::poll_once;

    use super::*;

    #[test]
    fn an_ac_drops_and_counts_what_a_full_queue_cannot_take() {
        let (tx, rx) = bounded(2);
        let mut events = Events::dropping(tx);
        smol::block_on(async {
            for e in 0..5 {
                events.push(e).await;
            }
        });
        assert_eq!(events.dropped(), 3);
        assert_eq!((rx.try_recv(), rx.try_recv()), (Ok(0), Ok(1)));
    }

    #[test]
    fn a_device_waits_for_room_and_loses_nothing() {
        let (tx, rx) = bounded(1);
        let mut events = Events::waiting(tx);
        smol::block_on(events.push(0));
        {
            let mut second = std::pin::pin!(events.push(1));
            assert!(
                smol::block_on(poll_once(second.as_mut())).is_none(),
                "no room, no wait"
            );
            assert_eq!(rx.try_recv(), Ok(0));
            smol::block_on(second);
        }
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(events.dropped(), 0);
    }
}
