//! Pre-shared-key mode: authenticated joins and bottles for transports without
//! authentication of their own (TCP, UDP). See `docs/PROTOCOL.md` §12.
//!
//! Each device shares a 32-byte key with the AC. A device in this mode first sends a plain
//! GOOD_MORNING; the AC answers with a CHALLENGE (an AC nonce that binds the device's name,
//! its join nonce and the time it was issued, authenticated by a secret only the AC knows,
//! so the AC keeps no state per attempt). The device then derives the session key
//!
//! ```text
//! K_s = HMAC-SHA256(psk, "pcxses session v1" ‖ challenge ‖ join nonce)
//! ```
//!
//! and from then on seals every bottle, both ways:
//!
//! ```text
//! sealed = bottle ‖ counter:u32 LE ‖ tag[16],
//! tag    = HMAC-SHA256(K_s, direction ‖ counter ‖ bottle)[..16]
//! ```
//!
//! with `direction` 0 from device to AC and 1 from AC to device. A sealed GOOD_MORNING also
//! carries the challenge, between the bottle and the counter, so the AC can check it. The
//! receiver checks the tag before it looks at anything else, then the counter against a
//! replay window of 64; a bottle that fails either is refused and counted, and changes
//! nothing.
//!
//! The CHALLENGE itself comes sealed too, under the device's challenge key
//! `K_c = HMAC-SHA256(psk, "pcxses challenge key v1" ‖ len(name) ‖ name)`, so that a device
//! answers only challenges of an AC that holds its key.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::wire::ids::JoinNonce;

/// Bytes a sealed bottle carries after the bottle: the counter and the tag.
pub const TRAILER_LEN: usize = COUNTER_LEN + TAG_LEN;
/// Bytes of the counter.
pub const COUNTER_LEN: usize = 4;
/// Bytes of the tag: HMAC-SHA256 truncated.
pub const TAG_LEN: usize = 16;
/// Bytes of a challenge.
pub const CHALLENGE_LEN: usize = 16;
/// How long a challenge may be answered.
pub const CHALLENGE_TTL_MS: u64 = 30_000;
/// Counters a receiver still accepts below the highest it has seen, once each.
pub const REPLAY_WINDOW: u32 = 64;
/// The persistence period of a receive window: a journal records a keyed device's window
/// whenever its highest counter enters a new block of this many counters, so a restored
/// AC refuses every counter below the end of the recorded block. A device told
/// [`RejectReason::Resync`](crate::wire::RejectReason::Resync) jumps its send counter
/// ahead by this much.
pub const RESYNC_PERIOD: u32 = 1024;

type HmacSha256 = Hmac<Sha256>;

/// A device's pre-shared key. Its `Debug` output does not show the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Psk(pub [u8; 32]);

impl core::fmt::Debug for Psk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Psk(..)")
    }
}

/// Which way a sealed bottle travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From a device to the AC.
    ToAc = 0,
    /// From the AC to a device.
    ToDevice = 1,
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// The key under which the AC seals its CHALLENGEs to device `name`.
pub(crate) fn challenge_key(psk: &Psk, name: &str) -> [u8; 32] {
    let mut m = mac(&psk.0);
    m.update(b"pcxses challenge key v1");
    m.update(&[name.len() as u8]);
    m.update(name.as_bytes());
    m.finalize().into_bytes().into()
}

/// The session key of a join answered with `challenge`.
pub(crate) fn session_key(
    psk: &Psk,
    challenge: &[u8; CHALLENGE_LEN],
    nonce: JoinNonce,
) -> [u8; 32] {
    let mut m = mac(&psk.0);
    m.update(b"pcxses session v1");
    m.update(challenge);
    m.update(&nonce.0);
    m.finalize().into_bytes().into()
}

fn tag_mac(key: &[u8; 32], dir: Direction, counter: u32, bottle: &[u8]) -> HmacSha256 {
    let mut m = mac(key);
    m.update(&[dir as u8]);
    m.update(&counter.to_le_bytes());
    m.update(bottle);
    m
}

/// Appends `counter` and the tag of `out[start..]` (one encoded bottle, and for a
/// GOOD_MORNING its challenge) to `out`: seals the bottle with session key `key`. The
/// machines seal their own bottles; this is for tools and tests that need a sealed one.
pub fn seal(
    out: &mut alloc::vec::Vec<u8>,
    start: usize,
    key: &[u8; 32],
    dir: Direction,
    counter: u32,
) {
    let tag = tag_mac(key, dir, counter, &out[start..])
        .finalize()
        .into_bytes();
    out.extend_from_slice(&counter.to_le_bytes());
    out.extend_from_slice(&tag[..TAG_LEN]);
}

/// The keys of one session, the same on both sides: the session key, the counter of the
/// next bottle sent, and the counters of the peer's bottles seen.
pub(crate) struct SessionKeys {
    pub(crate) key: [u8; 32],
    /// The counter of the next bottle sent.
    pub(crate) sent: u32,
    /// Counters of the peer's bottles seen.
    pub(crate) window: ReplayWindow,
}

impl SessionKeys {
    /// Keys that have sent nothing yet, with `window` for the peer's counters.
    pub(crate) fn new(key: [u8; 32], window: ReplayWindow) -> SessionKeys {
        SessionKeys {
            key,
            sent: 0,
            window,
        }
    }

    /// The seal of the next bottle sent `dir`, with `extra` (a GOOD_MORNING's challenge)
    /// between the bottle and the trailer.
    pub(crate) fn seal<'k>(&'k mut self, dir: Direction, extra: &'k [u8]) -> Seal<'k> {
        Seal::new(&self.key, &mut self.sent, dir, extra)
    }
}

/// How to seal one bottle on its way out: the key, the sender's counter, the direction,
/// and the bytes between the bottle and the trailer.
pub(crate) struct Seal<'k> {
    key: &'k [u8; 32],
    /// The sender's counter: the bottle takes its value and moves it on.
    sent: &'k mut u32,
    dir: Direction,
    extra: &'k [u8],
}

impl<'k> Seal<'k> {
    /// The seal of the next bottle sent `dir` under `key`, counting on `sent`, with
    /// `extra` between the bottle and the trailer.
    pub(crate) fn new(
        key: &'k [u8; 32],
        sent: &'k mut u32,
        dir: Direction,
        extra: &'k [u8],
    ) -> Seal<'k> {
        Seal {
            key,
            sent,
            dir,
            extra,
        }
    }

    /// Bytes the seal adds after the bottle.
    pub(crate) fn overhead(&self) -> usize {
        self.extra.len() + TRAILER_LEN
    }

    /// Takes the sender's next counter; `None` once it is used up (2^32 bottles in one
    /// session: the fence lease runs out and the device joins again).
    pub(crate) fn take_counter(&mut self) -> Option<u32> {
        let next = self.sent.checked_add(1)?;
        Some(core::mem::replace(self.sent, next))
    }

    /// Appends the extra bytes, `counter` and the tag to `out`, whose bytes from `start`
    /// are one encoded bottle.
    pub(crate) fn apply(&self, out: &mut alloc::vec::Vec<u8>, start: usize, counter: u32) {
        out.extend_from_slice(self.extra);
        seal(out, start, self.key, self.dir, counter);
    }
}

/// A sealed bottle taken apart; nothing in it is checked yet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sealed<'a> {
    /// What the tag covers: the bottle, and for a GOOD_MORNING the challenge after it.
    pub covered: &'a [u8],
    pub counter: u32,
    tag: &'a [u8],
}

impl<'a> Sealed<'a> {
    /// Splits the trailer off `bytes`; `None` if they are too short to carry one.
    pub(crate) fn split(bytes: &'a [u8]) -> Option<Sealed<'a>> {
        let body = bytes.len().checked_sub(TRAILER_LEN)?;
        let (covered, trailer) = bytes.split_at(body);
        let (counter, tag) = trailer.split_at(COUNTER_LEN);
        Some(Sealed {
            covered,
            counter: u32::from_le_bytes(counter.try_into().ok()?),
            tag,
        })
    }

    /// The bottle and the challenge of a sealed GOOD_MORNING.
    #[cfg(feature = "controller")]
    pub(crate) fn join_parts(&self) -> Option<(&'a [u8], [u8; CHALLENGE_LEN])> {
        let at = self.covered.len().checked_sub(CHALLENGE_LEN)?;
        let (bottle, challenge) = self.covered.split_at(at);
        Some((bottle, challenge.try_into().ok()?))
    }

    /// Whether the tag is right for `key` (in constant time).
    pub(crate) fn verify(&self, key: &[u8; 32], dir: Direction) -> bool {
        tag_mac(key, dir, self.counter, self.covered)
            .verify_truncated_left(self.tag)
            .is_ok()
    }
}

/// The counters a receiver has seen: the highest, and which of the 63 below it. A window
/// restored after a restart also has a floor: the counters below it may have been
/// accepted before the restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReplayWindow {
    top: u32,
    seen: u64,
    started: bool,
    floor: u32,
}

/// What a window says of a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counter {
    /// Not seen before: accepted, and now marked seen.
    Fresh,
    /// Seen, or too old for the window.
    Replayed,
    /// Below the floor of a restored window: it may have been accepted before the restart,
    /// so it proves nothing; the sender is to jump ahead ([`RESYNC_PERIOD`]).
    Stale,
}

impl ReplayWindow {
    /// A window that has seen `counter` only.
    pub(crate) fn starting_at(counter: u32) -> ReplayWindow {
        ReplayWindow {
            top: counter,
            seen: 1,
            started: true,
            floor: 0,
        }
    }

    /// The highest counter seen and the bitmap below it, for a snapshot.
    #[cfg(feature = "controller")]
    pub(crate) fn parts(&self) -> (u32, u64) {
        (self.top, self.seen)
    }

    /// A window restored after a restart from the [`ReplayWindow::parts`] a journal
    /// recorded. The journal records the window whenever its top enters a new block of
    /// [`RESYNC_PERIOD`] counters, so the counters accepted before the restart all lie
    /// below the end of the recorded top's block: that is the floor, and nothing below it
    /// is accepted again.
    #[cfg(feature = "controller")]
    pub(crate) fn resumed((top, _): (u32, u64)) -> ReplayWindow {
        let floor = (top / RESYNC_PERIOD)
            .checked_add(1)
            .and_then(|b| b.checked_mul(RESYNC_PERIOD))
            .unwrap_or(u32::MAX);
        ReplayWindow {
            top: floor.saturating_sub(1),
            seen: u64::MAX,
            started: true,
            floor,
        }
    }

    /// Whether `counter` is new; if so it is marked seen.
    pub(crate) fn accept(&mut self, counter: u32) -> bool {
        self.check(counter) == Counter::Fresh
    }

    /// What `counter` is; a fresh one is marked seen, nothing else changes.
    pub(crate) fn check(&mut self, counter: u32) -> Counter {
        if counter < self.floor {
            return Counter::Stale;
        }
        if !self.started {
            *self = ReplayWindow::starting_at(counter);
            return Counter::Fresh;
        }
        if counter > self.top {
            let shift = counter - self.top;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.top = counter;
            return Counter::Fresh;
        }
        let back = self.top - counter;
        if back >= REPLAY_WINDOW {
            return Counter::Replayed;
        }
        let bit = 1u64 << back;
        if self.seen & bit != 0 {
            return Counter::Replayed;
        }
        self.seen |= bit;
        Counter::Fresh
    }
}

/// A challenge's issue time: its first eight bytes, by which challenges are ordered.
pub(crate) fn issued_at(challenge: &[u8; CHALLENGE_LEN]) -> u64 {
    let mut t = [0u8; 8];
    t.copy_from_slice(&challenge[..8]);
    u64::from_le_bytes(t)
}

/// The AC's challenges: `issued_ms:u64 LE ‖ HMAC(secret, name ‖ nonce ‖ issued_ms)[..8]`.
#[cfg(feature = "controller")]
pub(crate) struct Challenger {
    secret: [u8; 32],
}

#[cfg(feature = "controller")]
impl Challenger {
    pub(crate) fn new(secret: [u8; 32]) -> Challenger {
        Challenger { secret }
    }

    fn mac(&self, name: &str, nonce: JoinNonce, issued_ms: u64) -> [u8; 8] {
        let mut m = mac(&self.secret);
        m.update(b"pcxses challenge v1");
        m.update(&[name.len() as u8]);
        m.update(name.as_bytes());
        m.update(&nonce.0);
        m.update(&issued_ms.to_le_bytes());
        let out = m.finalize().into_bytes();
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&out[..8]);
        tag
    }

    /// A challenge for device `name` joining with `nonce`, issued at `now_ms`.
    pub(crate) fn issue(&self, name: &str, nonce: JoinNonce, now_ms: u64) -> [u8; CHALLENGE_LEN] {
        let mut c = [0u8; CHALLENGE_LEN];
        c[..8].copy_from_slice(&now_ms.to_le_bytes());
        c[8..].copy_from_slice(&self.mac(name, nonce, now_ms));
        c
    }

    /// When `challenge` was issued, if this AC issued it for `name` and `nonce` and it has
    /// not expired at `now_ms`.
    pub(crate) fn check(
        &self,
        challenge: &[u8; CHALLENGE_LEN],
        name: &str,
        nonce: JoinNonce,
        now_ms: u64,
    ) -> Option<u64> {
        let issued = issued_at(challenge);
        let fresh = issued <= now_ms && now_ms - issued <= CHALLENGE_TTL_MS;
        let genuine = self.mac(name, nonce, issued)[..] == challenge[8..];
        (fresh && genuine).then_some(issued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn a_sealed_bottle_opens_only_with_its_key_direction_and_bytes() {
        let key = [7u8; 32];
        let mut out = Vec::from(&b"\x01\x02hello"[..]);
        seal(&mut out, 0, &key, Direction::ToAc, 9);
        let s = Sealed::split(&out).unwrap();
        assert_eq!((s.covered, s.counter), (&b"\x01\x02hello"[..], 9));
        assert!(s.verify(&key, Direction::ToAc));
        assert!(!s.verify(&key, Direction::ToDevice));
        assert!(!s.verify(&[8u8; 32], Direction::ToAc));
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 1;
            let s = Sealed::split(&bad).unwrap();
            assert!(!s.verify(&key, Direction::ToAc), "flip at {i}");
        }
        assert!(Sealed::split(&out[..TRAILER_LEN - 1]).is_none());
    }

    #[test]
    fn a_sealed_hello_takes_at_most_32_bytes() {
        use crate::wire::bottle::{Bottle, Hello};
        use crate::wire::ids::SessionId;
        for (session, seq) in [
            (0, 0),
            (u32::MAX, 127),
            (u32::MAX, 128),
            (u32::MAX, u16::MAX),
        ] {
            let hello = Bottle::Hello(Hello {
                session: SessionId(session),
                seq,
                state: None,
            });
            let mut out = Vec::new();
            hello.encode_to_vec(&mut out, 64).unwrap();
            seal(&mut out, 0, &[0; 32], Direction::ToAc, u32::MAX);
            assert!(out.len() <= 32, "{} bytes", out.len());
        }
    }

    #[test]
    fn the_window_accepts_each_counter_once() {
        let mut w = ReplayWindow::starting_at(0);
        assert!(!w.accept(0));
        assert!(w.accept(5));
        assert!(w.accept(3));
        assert!(!w.accept(3));
        assert!(!w.accept(5));
        assert!(w.accept(100));
        assert!(!w.accept(36), "more than 64 below the top");
        assert!(w.accept(37));
        assert!(w.accept(u32::MAX));
        assert!(!w.accept(u32::MAX));
    }

    #[test]
    #[cfg(feature = "controller")]
    fn a_resumed_window_refuses_every_counter_of_the_recorded_block_as_stale() {
        // Recorded at 1030; up to 2047 may have been accepted before the restart.
        let mut w = ReplayWindow::resumed((1030, 1));
        for c in [0, 1030, 1500, 2047] {
            assert_eq!(w.check(c), Counter::Stale, "{c}");
        }
        assert_eq!(w.check(2048), Counter::Fresh);
        assert_eq!(w.check(2048), Counter::Replayed);
        assert_eq!(w.check(2047), Counter::Stale);
        // Its parts, recorded and resumed again, keep the same floor until a new block.
        let mut again = ReplayWindow::resumed(ReplayWindow::resumed((1030, 1)).parts());
        assert_eq!(again.check(2047), Counter::Stale);
        assert_eq!(again.check(2048), Counter::Fresh);
        let mut top = ReplayWindow::resumed((u32::MAX - 3, 1));
        assert_eq!(top.check(u32::MAX - 1), Counter::Stale);
    }

    #[test]
    fn challenge_keys_bind_the_key_and_the_name() {
        let k = challenge_key(&Psk([1; 32]), "dev0");
        assert_ne!(k, challenge_key(&Psk([2; 32]), "dev0"));
        assert_ne!(k, challenge_key(&Psk([1; 32]), "dev1"));
        assert_ne!(
            k,
            session_key(&Psk([1; 32]), &[0; CHALLENGE_LEN], JoinNonce([0; 8]))
        );
    }

    #[test]
    fn a_sealed_challenge_has_its_pinned_bytes() {
        use crate::wire::bottle::{Bottle, Challenge};
        let key = challenge_key(&Psk([0x11; 32]), "pacman-cabinet-1");
        let mut out = Vec::new();
        let challenge = Bottle::Challenge(Challenge {
            nonce: JoinNonce([0xa5, 0x5a, 1, 2, 3, 4, 5, 6]),
            challenge: [0x44; CHALLENGE_LEN],
        });
        challenge.encode_to_vec(&mut out, 64).unwrap();
        seal(&mut out, 0, &key, Direction::ToDevice, 0);
        let hex: alloc::string::String = out.iter().map(|b| alloc::format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "010ea55a0102030405064444444444444444444444444444444400000000c9cbc202b3346c7c534f3b97a9e7f0f0"
        );
    }

    #[test]
    #[cfg(feature = "controller")]
    fn challenges_bind_name_nonce_and_time() {
        let c = Challenger::new([1u8; 32]);
        let n = JoinNonce([2u8; 8]);
        let ch = c.issue("dev0", n, 1_000);
        assert_eq!(
            c.check(&ch, "dev0", n, 1_000 + CHALLENGE_TTL_MS),
            Some(1_000)
        );
        assert_eq!(c.check(&ch, "dev0", n, 1_001 + CHALLENGE_TTL_MS), None);
        assert_eq!(c.check(&ch, "dev1", n, 1_500), None);
        assert_eq!(c.check(&ch, "dev0", JoinNonce([3u8; 8]), 1_500), None);
        assert_eq!(c.check(&ch, "dev0", n, 999), None, "issued in the future");
        let mut forged = ch;
        forged[0] ^= 1;
        assert_eq!(c.check(&forged, "dev0", n, 1_500), None);
        assert_eq!(
            Challenger::new([9u8; 32]).check(&ch, "dev0", n, 1_500),
            None
        );
    }
}
