//! Answers to refused bottles: the REJECTs the AC sends, how often it may send them (token
//! buckets per source and over all sources, in a table of fixed size) and how long they
//! may be, so that the AC amplifies no flood and reflects nothing larger than it received.

use alloc::boxed::Box;
use alloc::vec;
use core::time::Duration;

use super::config::RefusalLimits;
use super::Controller;
use crate::error::InputError;
use crate::io::LinkId;
use crate::psk::Sealed;
use crate::time::Instant;
use crate::wire::bottle::{Bottle, Reject, RejectReason};
use crate::wire::codec::DecodeError;
use crate::wire::ids::{JoinNonce, SessionId};

/// The largest answer to a refused bottle (a REJECT with the longest session id).
const ANSWER_MAX: usize = 32;

/// A rate as a generic cell rate: time between answers, and how far ahead of that pace a
/// burst may run.
#[derive(Clone, Copy, Debug)]
struct Rate {
    every: Duration,
    tolerance: Duration,
}

impl Rate {
    fn new(per_s: u32, burst: u32) -> Rate {
        let every = Duration::from_micros(1_000_000 / u64::from(per_s.max(1)));
        Rate {
            every,
            tolerance: every * burst,
        }
    }

    /// Whether an answer due at theoretical time `tat` may go now.
    fn conforms(&self, tat: Instant, now: Instant) -> bool {
        tat <= now + self.tolerance
    }

    fn charge(&self, tat: &mut Instant, now: Instant) {
        *tat = (*tat).max(now) + self.every;
    }
}

/// The token buckets of the answers to refused bottles.
pub(super) struct RefusalGate {
    /// Keys the hash that picks a source's bucket, so that no peer can aim at another's.
    key: u64,
    /// Per bucket, the theoretical time of its next answer.
    sources: Box<[Instant]>,
    total: Instant,
    per_source: Rate,
    overall: Rate,
}

impl RefusalGate {
    pub(super) fn new(limits: &RefusalLimits, key: u64) -> RefusalGate {
        RefusalGate {
            key,
            sources: vec![Instant::default(); limits.sources.max(1)].into_boxed_slice(),
            total: Instant::default(),
            per_source: Rate::new(limits.per_source_per_s, limits.per_source_burst),
            overall: Rate::new(limits.total_per_s, limits.total_burst),
        }
    }

    fn bucket(&self, link: LinkId) -> usize {
        let h = (link.0 ^ self.key).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        ((h >> 32) % self.sources.len() as u64) as usize
    }

    /// Whether an answer to `to` may go now by the per-source rate alone; if so, it is
    /// charged to that bucket. For answers every joining device needs (a CHALLENGE), which
    /// the overall rate must not hold up when many join at once, while no single address
    /// can be flooded with them.
    pub(super) fn allow_source(&mut self, to: LinkId, now: Instant) -> bool {
        let b = self.bucket(to);
        if !self.per_source.conforms(self.sources[b], now) {
            return false;
        }
        self.per_source.charge(&mut self.sources[b], now);
        true
    }

    /// Whether an answer to `to` may go now; if so, it is charged to both buckets.
    pub(super) fn allow(&mut self, to: LinkId, now: Instant) -> bool {
        let b = self.bucket(to);
        if !self.per_source.conforms(self.sources[b], now)
            || !self.overall.conforms(self.total, now)
        {
            return false;
        }
        self.per_source.charge(&mut self.sources[b], now);
        self.overall.charge(&mut self.total, now);
        true
    }
}

impl Controller {
    /// The device a bottle names, to report its refusal: the name a GOOD_MORNING claims
    /// (as sent: unchecked, perhaps no registered device), or the registered device whose
    /// session it names, sealed or not; `None` when it names neither. Reads nothing but
    /// `bytes` and the registry, and changes nothing.
    pub fn claimed_device<'a>(&'a self, bytes: &'a [u8]) -> Option<&'a str> {
        let limits = &self.settings.limits;
        let bottle = Bottle::decode(bytes, limits).ok().or_else(|| {
            let sealed = Sealed::split(bytes)?;
            let joining = || Bottle::decode(sealed.join_parts()?.0, limits).ok();
            Bottle::decode(sealed.covered, limits).ok().or_else(joining)
        })?;
        match bottle {
            Bottle::GoodMorning(gm) => Some(gm.device),
            other => {
                let device = self.lookup(other.session()?)?.device;
                Some(self.registry.devices.get(device))
            }
        }
    }

    /// Counts bytes that are no bottle; answers a bottle of another protocol version with
    /// REJECT `BadVersion`.
    pub(super) fn refuse_undecodable(
        &mut self,
        now: Instant,
        from: LinkId,
        e: DecodeError,
    ) -> InputError {
        if let DecodeError::Version(_) = e {
            self.stats.bad_version += 1;
            let reason = RejectReason::BadVersion;
            self.reject(
                now,
                from,
                SessionId::NONE,
                JoinNonce::default(),
                reason,
                false,
            );
        } else {
            self.stats.malformed += 1;
        }
        InputError::Decode(e)
    }

    /// Answers a refused bottle with REJECT `reason` (see [`Controller::answer`]).
    pub(super) fn reject(
        &mut self,
        now: Instant,
        to: LinkId,
        session: SessionId,
        nonce: JoinNonce,
        reason: RejectReason,
        trusted: bool,
    ) {
        let bottle = Bottle::Reject(Reject {
            session,
            nonce,
            reason,
        });
        self.answer(now, to, &bottle, trusted);
    }

    /// Sends `bottle`, the answer to a refused bottle, to `to` if the refusal limits allow
    /// it and, unless `trusted` (the source is the link of the session the refused bottle
    /// named, or an authenticated peer, or the answer is one a device cannot do without),
    /// only if it is no longer than the refused bottle: a forged source address reflects
    /// nothing larger than what was sent. An answer not sent is counted.
    pub(super) fn answer(&mut self, now: Instant, to: LinkId, bottle: &Bottle<'_>, trusted: bool) {
        let fits = trusted || no_longer(bottle, self.inbound_len);
        if !fits || !self.refusals.allow(to, now) {
            self.stats.unanswered += 1;
            return;
        }
        let max = self.settings.limits.max_bottle;
        self.send(to, bottle, max);
    }

    /// Refuses a bottle naming a session from a link it may not come from: answered exactly
    /// as a bottle naming no session, so that the answer tells nothing about the id.
    pub(super) fn refuse_wrong_link(
        &mut self,
        now: Instant,
        from: LinkId,
        id: SessionId,
    ) -> InputError {
        self.reject_unknown(now, from, id);
        InputError::WrongLink
    }

    /// Answers a bottle naming a session the AC does not know with REJECT
    /// `UnknownSession`.
    pub(super) fn reject_unknown(&mut self, now: Instant, from: LinkId, id: SessionId) {
        let reason = RejectReason::UnknownSession;
        // A device that does not fence learns only from this REJECT that its session is
        // lost (the AC restarted without its journal, or its link changed): without
        // fencing it goes even if longer than the bottle, within the rate limits.
        let needed = !self.settings.fencing;
        self.reject(now, from, id, JoinNonce::default(), reason, needed);
    }
}

/// Whether `answer` is no longer than `provoked` bytes.
pub(super) fn no_longer(answer: &Bottle<'_>, provoked: usize) -> bool {
    let mut buf = [0u8; ANSWER_MAX];
    answer.encode(&mut buf).is_ok_and(|n| n <= provoked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(sources: usize) -> RefusalLimits {
        RefusalLimits {
            per_source_per_s: 10,
            per_source_burst: 2,
            total_per_s: 100,
            total_burst: 4,
            sources,
        }
    }

    #[test]
    fn one_source_gets_its_burst_then_its_rate() {
        let mut gate = RefusalGate::new(&limits(64), 1);
        let t0 = Instant::from_millis(1_000);
        let burst = (0..10).filter(|_| gate.allow(LinkId(1), t0)).count();
        assert_eq!(burst, 3, "one answer plus a burst of two");
        assert!(!gate.allow(LinkId(1), Instant::from_millis(1_050)));
        assert!(gate.allow(LinkId(1), Instant::from_millis(1_300)));
    }

    #[test]
    fn all_sources_together_get_the_overall_rate_however_many_they_are() {
        let mut gate = RefusalGate::new(&limits(65_536), 7);
        let t0 = Instant::from_millis(1_000);
        let answered = (0..100_000u64)
            .filter(|&l| gate.allow(LinkId(l), t0))
            .count();
        assert_eq!(answered, 5, "one answer plus the overall burst of four");
        let mut answered = 0;
        for ms in 0..1_000u64 {
            let now = Instant::from_millis(2_000 + ms);
            answered += (0..50u64)
                .filter(|&l| gate.allow(LinkId(ms * 50 + l), now))
                .count();
        }
        assert!(answered <= 100 + 5, "{answered} answers in one second");
    }

    #[test]
    fn an_answer_is_measured_against_what_provoked_it() {
        let reject = Bottle::Reject(Reject {
            session: SessionId(u32::MAX),
            nonce: JoinNonce::default(),
            reason: RejectReason::UnknownSession,
        });
        let mut buf = [0u8; ANSWER_MAX];
        let n = reject.encode(&mut buf).unwrap();
        assert!(no_longer(&reject, n));
        assert!(!no_longer(&reject, n - 1));
        assert!(!no_longer(&reject, 1));
    }
}
