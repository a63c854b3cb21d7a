//! Well-formed bottles for made-up sessions: what an off-path attacker who knows the
//! protocol but no session can send.

use pcxses_core::wire::{
    Bottle, Challenge, GoodBye, Hello, JoinNonce, MorphFail, MorphFailReason, Reject, RejectReason,
};
use pcxses_core::{SessionId, MAX_BOTTLE_LEN};

use crate::next;

/// The kinds of forged bottle, sent in turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forged {
    /// A CHALLENGE with issue time 2^64−1 for a random join nonce.
    Challenge,
    /// A MORPH_FAIL with MORPH id 2^32−1 for a random session.
    MorphFail,
    /// A REJECT `Replaced` for a random session.
    Reject,
    /// A GOOD_BYE guessing a session id.
    GoodBye,
    /// A HELLO guessing a session id.
    Hello,
}

impl Forged {
    /// Every kind, in the order they are sent.
    pub const ALL: [Forged; 5] = [
        Forged::Challenge,
        Forged::MorphFail,
        Forged::Reject,
        Forged::GoodBye,
        Forged::Hello,
    ];

    /// The kind's name in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Forged::Challenge => "challenge",
            Forged::MorphFail => "morph_fail",
            Forged::Reject => "reject",
            Forged::GoodBye => "good_bye",
            Forged::Hello => "hello",
        }
    }

    /// The `i`-th forged bottle and its kind.
    pub fn nth(rng: &mut u64, i: usize) -> (Forged, Vec<u8>) {
        let kind = Forged::ALL[i % Forged::ALL.len()];
        (kind, kind.bottle(rng))
    }

    /// One bottle of this kind, its session or nonce drawn from `rng`.
    pub fn bottle(self, rng: &mut u64) -> Vec<u8> {
        // A session id is never 0.
        let session = SessionId((next(rng) as u32).max(1));
        let nonce = JoinNonce(next(rng).to_le_bytes());
        let bottle = match self {
            Forged::Challenge => return challenge_for(nonce, rng),
            Forged::MorphFail => Bottle::MorphFail(MorphFail {
                session,
                morph: u32::MAX,
                reason: MorphFailReason::Refused,
            }),
            Forged::Reject => Bottle::Reject(Reject {
                session,
                nonce,
                reason: RejectReason::Replaced,
            }),
            Forged::GoodBye => Bottle::GoodBye(GoodBye { session }),
            Forged::Hello => Bottle::Hello(Hello {
                session,
                seq: next(rng) as u16,
                state: None,
            }),
        };
        encode(&bottle)
    }
}

/// A CHALLENGE for the join nonce `nonce` with issue time 2^64−1: later than any the AC
/// issues. An attacker who sees a plain GOOD_MORNING knows the nonce.
pub fn challenge_for(nonce: JoinNonce, rng: &mut u64) -> Vec<u8> {
    let mut challenge = [0u8; 16];
    challenge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    challenge[8..].copy_from_slice(&next(rng).to_le_bytes());
    encode(&Bottle::Challenge(Challenge { nonce, challenge }))
}

fn encode(bottle: &Bottle<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    bottle
        .encode_to_vec(&mut out, MAX_BOTTLE_LEN)
        .expect("a forged bottle is small and well-formed");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcxses_core::Limits;

    #[test]
    fn every_forged_bottle_decodes_as_its_kind() {
        let mut rng = 11;
        for i in 0..10 {
            let (kind, bytes) = Forged::nth(&mut rng, i);
            let bottle = Bottle::decode(&bytes, &Limits::DEFAULT).unwrap();
            assert_eq!(bottle.kind(), kind.name());
            match bottle {
                Bottle::MorphFail(m) => assert_eq!(m.morph, u32::MAX),
                Bottle::Challenge(c) => assert_eq!(c.challenge[..8], [0xff; 8]),
                _ => {}
            }
        }
    }
}
