//! Refusals as the application sees them: who was refused, as which device, and why. The
//! driver reports at most one per [`REFUSAL_PERIOD`] (as a `WARN` log line and on
//! [`ControllerHandle::refusals`](crate::ControllerHandle::refusals)) and counts the rest,
//! so that a flood of junk cannot flood the log; every refusal is counted by reason in the
//! controller's [`Stats`](pcxses_core::Stats) and, for TLS, in
//! [`ConnectionStats::tls_refused`](crate::ConnectionStats::tls_refused).

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pcxses_core::{Controller, InputError, LinkId};
use smol::channel::Sender;

use crate::throttle::Throttle;

/// Refusals reported, at most one per period; the others are counted in the next one's
/// [`Refusal::suppressed`].
pub const REFUSAL_PERIOD: Duration = Duration::from_millis(100);

/// Longest device name a refusal carries (a GOOD_MORNING's name is the peer's to choose);
/// a longer one is cut at a character boundary.
pub const MAX_REPORTED_NAME: usize = 64;

/// Why the AC refused a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalReason {
    /// The controller refused one of its bottles.
    Bottle(InputError),
    /// It failed the TLS handshake (or presented a certificate that names no device): the
    /// error, with the TLS alert where there was one.
    Tls(String),
}

impl RefusalReason {
    /// The reason in one `snake_case` word: [`InputError::reason`], or `tls`.
    pub fn name(&self) -> &'static str {
        match self {
            RefusalReason::Bottle(e) => e.reason(),
            RefusalReason::Tls(_) => "tls",
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefusalReason::Bottle(e) => write!(f, "{e}"),
            RefusalReason::Tls(detail) => write!(f, "TLS: {detail}"),
        }
    }
}

/// One refusal, as reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Where it came from, when the transport knows.
    pub peer: Option<SocketAddr>,
    /// The device the refused bottle named ([`Controller::claimed_device`]), at most
    /// [`MAX_REPORTED_NAME`] bytes of it.
    pub device: Option<String>,
    /// Why.
    pub reason: RefusalReason,
    /// Refusals since the previous report that were counted but not reported.
    pub suppressed: u64,
}

/// The reporting side: the throttle, and the queue to the application.
pub(crate) struct Refusals {
    to: Sender<Refusal>,
    throttle: Throttle,
    /// Reports the application's full queue did not take, added to the next one's count.
    lost: u64,
}

impl Refusals {
    pub(crate) fn new(to: Sender<Refusal>) -> Self {
        Refusals {
            to,
            throttle: Throttle::new(REFUSAL_PERIOD),
            lost: 0,
        }
    }

    /// Reports a refusal from `peer` at `at` unless one was reported within the period;
    /// `device` is asked only then.
    fn report<'d>(
        &mut self,
        at: Instant,
        peer: Option<SocketAddr>,
        reason: RefusalReason,
        device: impl FnOnce() -> Option<&'d str>,
    ) {
        let Some(suppressed) = self.throttle.allow(at) else {
            return;
        };
        let device = device().map(|d| cut(d, MAX_REPORTED_NAME).to_owned());
        let suppressed = suppressed + std::mem::take(&mut self.lost);
        tracing::warn!(
            peer = ?peer,
            device = ?device,
            reason = reason.name(),
            suppressed,
            "refused: {reason}"
        );
        let refusal = Refusal {
            peer,
            device,
            reason,
            suppressed,
        };
        if self.to.try_send(refusal).is_err() {
            self.lost += 1;
        }
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// What a [`Port`](crate::Port) hands its input to in one turn: the controller, with every
/// refusal reported.
pub struct Inputs<'a> {
    pub(crate) ac: &'a mut Controller,
    pub(crate) now: pcxses_core::Instant,
    pub(crate) refusals: &'a mut Refusals,
}

impl Inputs<'_> {
    /// Hands the controller one bottle that came from `peer` on `link`, as
    /// [`Controller::handle_receive`] does (`identity`: the peer's name as the transport
    /// authenticated it), and reports a refusal.
    pub fn bottle(
        &mut self,
        link: LinkId,
        peer: Option<SocketAddr>,
        bytes: &[u8],
        identity: Option<&str>,
    ) -> Result<(), InputError> {
        let result = self.ac.handle_receive(self.now, link, bytes, identity);
        if let Err(e) = result {
            // A challenge is how a keyed join begins, not a refusal.
            if e != InputError::Challenged {
                let ac = &*self.ac;
                let device = || ac.claimed_device(bytes);
                let at = Instant::now();
                self.refusals
                    .report(at, peer, RefusalReason::Bottle(e), device);
            }
        }
        result
    }

    /// Reports a peer the transport refused before it sent a bottle (a failed TLS
    /// handshake, say).
    pub fn refused(&mut self, peer: SocketAddr, reason: RefusalReason) {
        self.refusals
            .report(Instant::now(), Some(peer), reason, || None);
    }
}

#[cfg(test)]
mod tests {
    use smol::channel::bounded;

    use super::*;

    #[test]
    fn a_name_is_cut_at_a_character_boundary() {
        assert_eq!(cut("abc", 64), "abc");
        assert_eq!(cut("abcdef", 4), "abcd");
        // 'é' takes two bytes: cutting inside it keeps what comes before.
        assert_eq!(cut("aé", 2), "a");
    }

    #[test]
    fn one_refusal_a_period_is_reported_and_the_rest_counted() {
        let (tx, rx) = bounded(8);
        let mut refusals = Refusals::new(tx);
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let reason = RefusalReason::Bottle(InputError::UnknownDevice);
        let start = Instant::now();
        for i in 0..1000 {
            let at = start + REFUSAL_PERIOD * i / 1000;
            refusals.report(at, Some(peer), reason.clone(), || Some("d"));
        }
        let first = rx.try_recv().unwrap();
        assert_eq!(
            (first.peer, first.device.as_deref(), first.suppressed),
            (Some(peer), Some("d"), 0)
        );
        assert!(rx.try_recv().is_err());
        let later = start + REFUSAL_PERIOD;
        refusals.report(
            later,
            Some(peer),
            RefusalReason::Tls("alert".into()),
            || None,
        );
        let next = rx.try_recv().unwrap();
        assert_eq!((next.reason.name(), next.suppressed), ("tls", 999));
    }

    #[test]
    fn reports_the_application_did_not_take_are_counted_in_the_next() {
        let (tx, rx) = bounded(1);
        let mut refusals = Refusals::new(tx);
        let reason = RefusalReason::Tls("x".into());
        let start = Instant::now();
        refusals.report(start, None, reason.clone(), || None);
        // The queue is full: this report is lost, and counted.
        refusals.report(start + REFUSAL_PERIOD, None, reason.clone(), || None);
        assert_eq!(rx.try_recv().unwrap().suppressed, 0);
        refusals.report(start + REFUSAL_PERIOD * 2, None, reason, || None);
        assert_eq!(rx.try_recv().unwrap().suppressed, 1);
    }
}
