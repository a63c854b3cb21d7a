//! Counters of what a machine received and refused.

use crate::error::InputError;
use crate::wire::codec::DecodeError;

/// Counts of received bottles and of every kind of rejection. A rejected bottle changes no
/// protocol state; it only moves these counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bottles received (every `handle_receive`).
    pub received: u64,
    /// HELLOs accepted from live sessions.
    pub hellos: u64,
    /// Bottles that failed to decode.
    pub malformed: u64,
    /// Bottles of another protocol version.
    pub bad_version: u64,
    /// Bottles naming a session the machine does not know.
    pub unknown_session: u64,
    /// Bottles from a session that was declared dead (answered "replaced").
    pub replaced: u64,
    /// GOOD_MORNINGs from names not in the registry.
    pub unknown_device: u64,
    /// Bottles whose claimed identity differs from the authenticated one.
    pub unauthorized: u64,
    /// Well-formed bottles that make no sense in the current phase (a bottle type the
    /// machine never receives, an ack for nothing in flight, a chunk for another transfer).
    pub out_of_phase: u64,
    /// Chunks with a bad index or length.
    pub bad_chunk: u64,
    /// Duplicates of what was already received (answered again, not applied again).
    pub duplicate: u64,
    /// Bottles that were not sealed, or failed their tag (pre-shared-key mode).
    pub unauthenticated: u64,
    /// Sealed bottles whose counter was seen already or is too old (pre-shared-key mode).
    pub replayed: u64,
    /// Plain GOOD_MORNINGs of keyed devices, answered with a CHALLENGE and not accepted
    /// (pre-shared-key mode); not counted among the rejections.
    pub challenged: u64,
    /// Bottles of an unauthenticated session that arrived on another link than the
    /// session's (answered as if the session were unknown).
    pub wrong_link: u64,
    /// Answers to refused bottles not sent: over the refusal rate, or longer than the
    /// bottle that provoked them from an unauthenticated source.
    pub unanswered: u64,
    /// Transmits dropped because the output queue was full.
    pub dropped_transmits: u64,
}

impl Stats {
    /// Counts one refused bottle under its reason.
    pub(crate) fn count(&mut self, e: &InputError) {
        match e {
            InputError::Decode(DecodeError::Version(_)) => self.bad_version += 1,
            InputError::Decode(_) => self.malformed += 1,
            InputError::UnknownSession => self.unknown_session += 1,
            InputError::Replaced => self.replaced += 1,
            InputError::UnknownDevice => self.unknown_device += 1,
            InputError::Unauthorized => self.unauthorized += 1,
            InputError::OutOfPhase(_) => self.out_of_phase += 1,
            InputError::BadChunk => self.bad_chunk += 1,
            InputError::Unauthenticated => self.unauthenticated += 1,
            InputError::Replayed => self.replayed += 1,
            InputError::WrongLink => self.wrong_link += 1,
            InputError::Challenged => self.challenged += 1,
        }
    }

    /// The rejections by reason, named as [`InputError::reason`] names them (`challenged`
    /// is not among them: a challenge is not a rejection).
    pub fn rejections(&self) -> [(&'static str, u64); 11] {
        [
            ("malformed", self.malformed),
            ("bad_version", self.bad_version),
            ("unknown_session", self.unknown_session),
            ("replaced", self.replaced),
            ("unknown_device", self.unknown_device),
            ("unauthorized", self.unauthorized),
            ("out_of_phase", self.out_of_phase),
            ("bad_chunk", self.bad_chunk),
            ("not_authenticated", self.unauthenticated),
            ("replayed", self.replayed),
            ("wrong_link", self.wrong_link),
        ]
    }

    /// All rejections together.
    pub fn rejected(&self) -> u64 {
        self.rejections().iter().map(|(_, n)| n).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_counts_under_the_reason_it_is_named_by() {
        let errors = [
            InputError::Decode(DecodeError::Version(9)),
            InputError::Decode(DecodeError::Truncated),
            InputError::UnknownSession,
            InputError::Replaced,
            InputError::UnknownDevice,
            InputError::Unauthorized,
            InputError::OutOfPhase("x"),
            InputError::BadChunk,
            InputError::Unauthenticated,
            InputError::Replayed,
            InputError::WrongLink,
        ];
        for e in errors {
            let mut stats = Stats::default();
            stats.count(&e);
            let counted: alloc::vec::Vec<_> = stats
                .rejections()
                .into_iter()
                .filter(|&(_, n)| n > 0)
                .collect();
            assert_eq!(counted, [(e.reason(), 1)], "{e:?}");
            assert_eq!(stats.rejected(), 1);
        }
        let mut stats = Stats::default();
        stats.count(&InputError::Challenged);
        assert_eq!((stats.rejected(), stats.challenged), (0, 1));
    }
}
