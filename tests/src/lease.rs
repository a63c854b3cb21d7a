//! An independent account of one device incarnation's fence lease, kept from the bottles
//! it sends and receives, against which every step of its computations is checked.
//!
//! The rule (`docs/PROTOCOL.md` §7.4): on joining, the lease runs until the send time of
//! the first GOOD_MORNING of the join's nonce plus `fence_ms`; each HELLO_ACK extends it to
//! the send time of the HELLO it acknowledges plus `fence_ms`; `fence_ms = 0` means no
//! fencing. The tracker reads the bottles as the simulation carries them, never the
//! device's own account, so that a device whose lease is wrong is caught.
//!
//! In pre-shared-key mode only sealed GOOD_MORNINGs count, as the AC opens no session on a
//! plain one (§12); the first sealed one of the nonce bounds the lease, whichever
//! challenge it answers, since the AC may open the session on any of them.
//!
//! Invariant I1: no computation steps at or after the lease ran out, and once the lease of
//! a session in which the device was told to run computations ran out, none steps in that
//! session again: only a new session, and a `Joined { run }` or an `Install` in it, lets a
//! computation step again.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use pcxses_core::psk::{CHALLENGE_LEN, TRAILER_LEN};
use pcxses_core::wire::{Bottle, JoinNonce};
use pcxses_core::{Instant, Limits, SessionId, MAX_BOTTLE_LEN};

/// What [`LeaseTracker::on_sent`] saw leave the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// A GOOD_MORNING.
    GoodMorning,
    /// A HELLO.
    Hello,
}

/// One session as the tracker knows it from its GOOD_MORNING_ACK.
#[derive(Clone, Debug)]
struct Session {
    id: SessionId,
    /// `None` when the AC does not fence.
    fence: Option<Duration>,
    /// The negotiated dead interval.
    dead: Duration,
    /// The end of the lease as tracked so far.
    lease: Instant,
    /// Computations the device was told to run in this session and has not stopped.
    told: BTreeSet<String>,
    /// Whether the device was told to run anything in this session.
    started: bool,
    /// When the lease ran out after the device was told to run computations: nothing may
    /// step in this session after that.
    fenced_at: Option<Instant>,
}

impl Session {
    /// Notes that the lease, unrenewed, ran out before `now`.
    fn lapse(&mut self, now: Instant) {
        if now >= self.lease && self.started && self.fenced_at.is_none() {
            self.fenced_at = Some(self.lease);
        }
    }
}

/// The fence lease of one device incarnation, from its traffic.
#[derive(Clone, Debug)]
pub struct LeaseTracker {
    keyed: bool,
    /// The send time of the first GOOD_MORNING that counts, per join nonce.
    good_mornings: HashMap<JoinNonce, Instant>,
    /// The nonce of the join the device is waiting to have acknowledged.
    joining: Option<JoinNonce>,
    /// The send time of each HELLO, by session and sequence number.
    hellos: HashMap<(SessionId, u16), Instant>,
    session: Option<Session>,
}

fn ms(millis: u32) -> Duration {
    Duration::from_millis(u64::from(millis))
}

/// Decodes a bottle between a device and the AC that matters to the lease (GOOD_MORNING,
/// its ack, HELLO and its ack); in pre-shared-key mode also a sealed one. Returns the
/// bottle and whether it was sealed.
fn open(bytes: &[u8], keyed: bool) -> Option<(Bottle<'_>, bool)> {
    const LIMITS: Limits = Limits::datagram(MAX_BOTTLE_LEN);
    // The type is the varint after the version byte; the four types of the lease are 0–3.
    if *bytes.get(1)? > 3 {
        return None;
    }
    if let Ok(bottle) = Bottle::decode(bytes, &LIMITS) {
        return Some((bottle, false));
    }
    if !keyed {
        return None;
    }
    // Sealed: bottle [‖ challenge] ‖ counter ‖ tag. A parse stops where the bottle ends,
    // so only the exact bottle decodes.
    let covered = bytes.get(..bytes.len().checked_sub(TRAILER_LEN)?)?;
    if let Ok(bottle) = Bottle::decode(covered, &LIMITS) {
        return Some((bottle, true));
    }
    let bottle = covered.get(..covered.len().checked_sub(CHALLENGE_LEN)?)?;
    Bottle::decode(bottle, &LIMITS).ok().map(|b| (b, true))
}

impl LeaseTracker {
    /// A tracker for a new incarnation; `keyed` when its bottles are sealed (then only a
    /// sealed GOOD_MORNING can open a session, §12, and only those count).
    pub fn new(keyed: bool) -> LeaseTracker {
        LeaseTracker {
            keyed,
            good_mornings: HashMap::new(),
            joining: None,
            hellos: HashMap::new(),
            session: None,
        }
    }

    /// The end of the lease as tracked, while in a session.
    pub fn lease(&self) -> Option<Instant> {
        self.session.as_ref().map(|s| s.lease)
    }

    /// The session's fence and dead intervals (the fence `None` when the AC does not
    /// fence), while in a session.
    pub fn intervals(&self) -> Option<(Option<Duration>, Duration)> {
        self.session.as_ref().map(|s| (s.fence, s.dead))
    }

    /// A bottle the device sent at `now` (whether or not the network then loses it).
    pub fn on_sent(&mut self, now: Instant, bytes: &[u8]) -> Option<Sent> {
        let (bottle, sealed) = open(bytes, self.keyed)?;
        match bottle {
            Bottle::GoodMorning(gm) => {
                self.joining = Some(gm.nonce);
                if sealed || !self.keyed {
                    self.good_mornings.entry(gm.nonce).or_insert(now);
                }
                Some(Sent::GoodMorning)
            }
            Bottle::Hello(h) => {
                self.hellos.entry((h.session, h.seq)).or_insert(now);
                Some(Sent::Hello)
            }
            _ => None,
        }
    }

    /// A bottle handed to the device at `now`.
    pub fn on_delivered(&mut self, now: Instant, bytes: &[u8]) {
        let Some((bottle, _)) = open(bytes, self.keyed) else {
            return;
        };
        match bottle {
            Bottle::GoodMorningAck(ack) => {
                // The device takes the ack of the join it is making, once.
                if self.joining != Some(ack.nonce) {
                    return;
                }
                let Some(&sent) = self.good_mornings.get(&ack.nonce) else {
                    return;
                };
                self.joining = None;
                // Nothing of an earlier join or session renews this one.
                self.good_mornings.clear();
                self.hellos.clear();
                let fence = (ack.fence_ms > 0).then(|| ms(ack.fence_ms));
                self.session = Some(Session {
                    id: ack.session,
                    fence,
                    dead: ms(ack.dead_ms),
                    lease: fence.map_or(Instant::MAX, |f| sent + f),
                    told: BTreeSet::new(),
                    started: false,
                    fenced_at: None,
                });
            }
            Bottle::HelloAck(ack) => {
                let Some(s) = self.session.as_mut().filter(|s| s.id == ack.session) else {
                    return;
                };
                let Some(&sent) = self.hellos.get(&(ack.session, ack.seq)) else {
                    return;
                };
                // The device judges its lease before anything that arrives late.
                s.lapse(now);
                if let Some(fence) = s.fence {
                    s.lease = s.lease.max(sent + fence);
                }
            }
            _ => {}
        }
    }

    /// The device told its application at `now` to run `computation` in `session` (a
    /// `Joined { run }` naming it, or an `Install` of it).
    pub fn on_told(
        &mut self,
        now: Instant,
        session: SessionId,
        computation: &str,
    ) -> Result<(), String> {
        let s = match self.session.as_mut() {
            Some(s) if s.id == session => s,
            other => {
                return Err(format!(
                    "I1: told to run {computation} in {session}, but the GOOD_MORNING_ACK \
                     the device took named {:?}",
                    other.map(|s| s.id)
                ))
            }
        };
        s.lapse(now);
        s.started = true;
        s.told.insert(computation.into());
        Ok(())
    }

    /// The application stopped `computation`.
    pub fn on_stopped(&mut self, computation: &str) {
        if let Some(s) = self.session.as_mut() {
            s.told.remove(computation);
        }
    }

    /// `computation` takes a step at `now`: a violation of I1 unless the device was told to
    /// run it in its current session and that session's lease runs past `now` and never
    /// ran out since.
    pub fn on_step(&mut self, now: Instant, computation: &str) -> Result<(), String> {
        let Some(s) = self.session.as_mut() else {
            return Err(format!(
                "I1: {computation} steps at {} ms on a device in no session",
                now.as_millis()
            ));
        };
        if !s.told.contains(computation) {
            return Err(format!(
                "I1: {computation} steps at {} ms in {} without being told to run it there",
                now.as_millis(),
                s.id
            ));
        }
        s.lapse(now);
        if let Some(at) = s.fenced_at {
            return Err(format!(
                "I1: {computation} steps at {} ms (µs {}), but the fence lease of {} ran out \
                 at µs {} and the device has not re-joined since",
                now.as_millis(),
                now.as_micros(),
                s.id,
                at.as_micros()
            ));
        }
        Ok(())
    }
}
