//! Pre-shared-key mode at the AC: each keyed device's key and session keys, challenging a
//! join, and opening sealed bottles before anything else looks at them (see
//! [`crate::psk`]).

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::config::DeviceSpec;
use super::session::SessionStatus;
use super::Controller;
use crate::error::InputError;
use crate::io::LinkId;
use crate::policy::AuthLevel;
use crate::psk::{
    challenge_key, session_key, Challenger, Counter, Direction, Psk, ReplayWindow, Seal, Sealed,
    SessionKeys, RESYNC_PERIOD,
};
use crate::time::{ms, Instant};
use crate::wire::bottle::{Bottle, Challenge, GoodMorning, Reject, RejectReason};
use crate::wire::ids::{JoinNonce, SessionId};

/// A journal records a keyed device whenever the highest counter of its bottles enters a
/// new block of this many, so that a restored AC's replay windows and send counters are
/// never far behind (see [`ReplayWindow::resumed`]).
pub(super) const RECORD_EVERY: u32 = RESYNC_PERIOD;

/// Pre-shared-key mode: a device's key, and its session's keys.
pub(super) struct PskDevice {
    psk: Psk,
    /// When the challenge of the latest session was issued: an older one opens no new
    /// session, so a recorded GOOD_MORNING cannot be replayed to replace a newer session.
    last_issued_ms: Option<u64>,
    pub(super) auth: Option<SessionAuth>,
}

/// Pre-shared-key mode: the keys of a device's session.
pub(super) struct SessionAuth {
    /// The session they belong to.
    pub(super) session: SessionId,
    /// When the AC issued that challenge: an older one opens no new session.
    issued_ms: u64,
    pub(super) keys: SessionKeys,
    /// When the device was last told to jump its counter ahead (REJECT `Resync`).
    last_resync: Instant,
}

impl SessionAuth {
    /// The keys of session `session`, opened by a challenge issued at `issued_ms` (0 when
    /// unknown).
    pub(super) fn new(session: SessionId, issued_ms: u64, keys: SessionKeys) -> SessionAuth {
        SessionAuth {
            session,
            issued_ms,
            keys,
            last_resync: Instant::default(),
        }
    }

    /// The seal of the next bottle to the device.
    pub(super) fn seal(&mut self) -> Seal<'_> {
        self.keys.seal(Direction::ToDevice, &[])
    }
}

/// The table of keyed devices for the configured `devices`: empty when none has a key.
pub(super) fn psk_devices(devices: &[DeviceSpec]) -> Vec<Option<Box<PskDevice>>> {
    if devices.iter().all(|d| d.psk.is_none()) {
        return Vec::new();
    }
    (devices.iter())
        .map(|d| {
            d.psk.clone().map(|psk| {
                Box::new(PskDevice {
                    psk,
                    last_issued_ms: None,
                    auth: None,
                })
            })
        })
        .collect()
}

/// The session keys of device `d`'s session `session`, if it has them.
pub(super) fn auth_of(
    psk: &mut [Option<Box<PskDevice>>],
    d: u32,
    session: SessionId,
) -> Option<&mut SessionAuth> {
    psk.get_mut(d as usize)?
        .as_mut()?
        .auth
        .as_mut()
        .filter(|a| a.session == session)
}

/// The seal of the next bottle to device `d`'s session `session`, if it has keys.
pub(super) fn seal_to(
    psk: &mut [Option<Box<PskDevice>>],
    d: u32,
    session: SessionId,
) -> Option<Seal<'_>> {
    auth_of(psk, d, session).map(SessionAuth::seal)
}

impl Controller {
    /// Whether device `d` has a pre-shared key: every bottle of it that reaches the
    /// protocol was sealed with it (plain ones are refused before).
    pub(super) fn has_key(&self, d: u32) -> bool {
        self.psk.get(d as usize).is_some_and(Option::is_some)
    }

    /// How authenticated a bottle of device `d` is, `identity` being what the transport
    /// authenticated (already checked to be `d`'s name).
    pub(super) fn auth_level(&self, d: u32, identity: Option<&str>) -> AuthLevel {
        if identity.is_some() || self.has_key(d) {
            AuthLevel::Authenticated
        } else {
            AuthLevel::Unauthenticated
        }
    }

    /// Keys the challenges of pre-shared-key joins with `entropy`, 32 bytes from a
    /// cryptographically secure source (the operating system's, or a hardware RNG) that
    /// are fresh at every start of the AC and never stored: then no join answered before a
    /// restart is accepted after it, and nobody can compute a challenge. Call it on every
    /// controller that serves keyed devices, made by [`Controller::new`] or
    /// [`Controller::restore`]; without it the secret comes from
    /// [`crate::ControllerConfig::seed`], which suits deterministic tests only.
    pub fn with_entropy(mut self, entropy: [u8; 32]) -> Controller {
        self.challenger = Challenger::new(entropy);
        self
    }

    /// The bottle in `bytes`, ready for the protocol. A device with a key must seal
    /// everything: its plain GOOD_MORNING is answered with a CHALLENGE but not accepted
    /// ([`InputError::Challenged`]), any other plain bottle of it is refused, and a sealed
    /// one is opened only if its tag is right and its counter new. Devices without a key are served as ever.
    pub(super) fn open<'b>(
        &mut self,
        now: Instant,
        from: LinkId,
        bytes: &'b [u8],
    ) -> Result<Bottle<'b>, InputError> {
        let limits = self.settings.limits;
        let plain = Bottle::decode(bytes, &limits);
        if self.psk.is_empty() {
            return Ok(plain?);
        }
        match plain {
            Ok(b) => {
                if !self.keyed(&b) {
                    return Ok(b);
                }
                match b {
                    Bottle::GoodMorning(gm) => {
                        self.challenge(now, from, &gm);
                        Err(InputError::Challenged)
                    }
                    _ => Err(InputError::Unauthenticated),
                }
            }
            Err(e) => match Sealed::split(bytes) {
                Some(sealed) => self.open_sealed(now, from, &sealed),
                None => Err(e.into()),
            },
        }
    }

    /// Whether the device a plain bottle claims to come from has a key.
    fn keyed(&self, b: &Bottle<'_>) -> bool {
        let d = match b {
            Bottle::GoodMorning(gm) => self.registry.devices.find(gm.device),
            _ => b.session().and_then(|id| self.lookup(id)).map(|r| r.device),
        };
        d.and_then(|d| self.psk.get(d as usize))
            .is_some_and(Option::is_some)
    }

    /// Answers a keyed device's GOOD_MORNING with a CHALLENGE, sealed under the device's
    /// challenge key so that the device can tell it from a forgery.
    fn challenge(&mut self, now: Instant, from: LinkId, gm: &GoodMorning<'_>) {
        let Some(device) = (self.registry.devices.find(gm.device))
            .and_then(|d| self.psk.get(d as usize)?.as_ref())
        else {
            return;
        };
        // A CHALLENGE is longer than the shortest GOOD_MORNING that asks for one: a
        // reflector must not be able to aim a stream of them at one address.
        if !self.refusals.allow_source(from, now) {
            self.stats.unanswered += 1;
            return;
        }
        let key = challenge_key(&device.psk, gm.device);
        let challenge = self.challenger.issue(gm.device, gm.nonce, now.as_millis());
        let bottle = Bottle::Challenge(Challenge {
            nonce: gm.nonce,
            challenge,
        });
        let max = self.settings.limits.max_bottle;
        // Every CHALLENGE takes counter 0: the device keeps no window for its key.
        let mut counter = 0;
        let seal = Seal::new(&key, &mut counter, Direction::ToDevice, &[]);
        (self.outbox).transmit(&mut self.stats, from, &bottle, max, Some(seal));
    }

    /// A sealed bottle of session `id` whose counter is below the floor of a restored
    /// window: it may be a replay of one accepted before the restart, so it is refused,
    /// but its tag is right. A live session's device is told to jump ahead (REJECT
    /// `Resync`), at most once per minimum HELLO interval; one declared dead meanwhile is
    /// told it was replaced, within the limits of refused bottles.
    fn answer_stale(&mut self, now: Instant, from: LinkId, device: u32, id: SessionId) {
        match self.lookup(id).map(|r| r.status) {
            Some(SessionStatus::Live) => {}
            // A session declared dead while the AC was down: its device (one that does not
            // fence, or is still frozen) learns only from this that its session is over.
            Some(SessionStatus::Replaced) => {
                let (nonce, reason) = (JoinNonce::default(), RejectReason::Replaced);
                return self.reject(now, from, id, nonce, reason, true);
            }
            _ => return,
        }
        // The session's own link has a turn of its own every minimum HELLO interval, so
        // that bottles replayed from elsewhere cannot use up the device's; other links
        // (the device's new one after a reconnect) share the limits of refused bottles.
        let on_own_link = self.devices[device as usize]
            .session
            .as_ref()
            .is_some_and(|s| s.link == from);
        if on_own_link {
            let every = ms(self.settings.hello_ms.min);
            let Some(auth) = auth_of(&mut self.psk, device, id) else {
                return;
            };
            if now < auth.last_resync + every {
                return;
            }
            auth.last_resync = now;
        } else if !self.refusals.allow(from, now) {
            self.stats.unanswered += 1;
            return;
        }
        let bottle = Bottle::Reject(Reject {
            session: id,
            nonce: JoinNonce::default(),
            reason: RejectReason::Resync,
        });
        let max = self.settings.limits.max_bottle;
        self.send(from, &bottle, max);
    }

    fn open_sealed<'b>(
        &mut self,
        now: Instant,
        from: LinkId,
        sealed: &Sealed<'b>,
    ) -> Result<Bottle<'b>, InputError> {
        let limits = self.settings.limits;
        // A bottle of a session.
        if let Ok(b) = Bottle::decode(sealed.covered, &limits) {
            let id = b.session().ok_or(InputError::Unauthenticated)?;
            let device = self.lookup(id).ok_or(InputError::Unauthenticated)?.device;
            let auth = auth_of(&mut self.psk, device, id).ok_or(InputError::Unauthenticated)?;
            if !sealed.verify(&auth.keys.key, Direction::ToAc) {
                return Err(InputError::Unauthenticated);
            }
            let top = auth.keys.window.parts().0;
            match auth.keys.window.check(sealed.counter) {
                Counter::Fresh => {}
                Counter::Replayed => return Err(InputError::Replayed),
                Counter::Stale => {
                    self.answer_stale(now, from, device, id);
                    return Err(InputError::Replayed);
                }
            }
            if sealed.counter / RECORD_EVERY > top / RECORD_EVERY {
                self.changes.device(device);
            }
            return Ok(b);
        }
        // A GOOD_MORNING answering a challenge.
        let (bottle, challenge) = sealed.join_parts().ok_or(InputError::Unauthenticated)?;
        let Bottle::GoodMorning(gm) = Bottle::decode(bottle, &limits)? else {
            return Err(InputError::Unauthenticated);
        };
        let d = (self.registry.devices)
            .find(gm.device)
            .ok_or(InputError::Unauthenticated)?;
        let device = self
            .psk
            .get(d as usize)
            .and_then(Option::as_ref)
            .ok_or(InputError::Unauthenticated)?;
        let Some(issued) = self
            .challenger
            .check(&challenge, gm.device, gm.nonce, now.as_millis())
        else {
            // Expired, or from before a restart: the device gets a fresh one.
            self.challenge(now, from, &gm);
            return Err(InputError::Unauthenticated);
        };
        let key = session_key(&device.psk, &challenge, gm.nonce);
        if !sealed.verify(&key, Direction::ToAc) {
            return Err(InputError::Unauthenticated);
        }
        let keys = SessionKeys::new(key, ReplayWindow::starting_at(sealed.counter));
        let current = self.devices[d as usize]
            .session
            .as_ref()
            .filter(|s| s.nonce == gm.nonce)
            .map(|s| s.id);
        match current {
            // A retransmission in the session it opened: the session's window decides. A
            // device that answered a later challenge (one crossed its GOOD_MORNING) moves
            // the session to that challenge's key.
            Some(id) => {
                let auth = auth_of(&mut self.psk, d, id).ok_or(InputError::Unauthenticated)?;
                if auth.keys.key != key {
                    if issued <= auth.issued_ms {
                        // An older challenge than the session's: a replay, or a device
                        // that missed the latest challenge. Either way, a fresh one.
                        self.challenge(now, from, &gm);
                        return Err(InputError::Replayed);
                    }
                    *auth = SessionAuth::new(id, issued, keys);
                    self.changes.device(d);
                } else if !auth.keys.window.accept(sealed.counter) {
                    return Err(InputError::Replayed);
                }
            }
            // A new session: only with a challenge issued after the latest session's.
            None => {
                if device.last_issued_ms.is_some_and(|last| issued <= last) {
                    self.challenge(now, from, &gm);
                    return Err(InputError::Replayed);
                }
                self.joining = Some(SessionAuth::new(SessionId::NONE, issued, keys));
            }
        }
        Ok(Bottle::GoodMorning(gm))
    }

    /// Gives session `id` of device `d` the keys of the join that opened it.
    pub(super) fn keep_join_keys(&mut self, d: u32, id: SessionId) {
        let (Some(mut auth), Some(Some(device))) =
            (self.joining.take(), self.psk.get_mut(d as usize))
        else {
            return;
        };
        auth.session = id;
        device.last_issued_ms = Some(auth.issued_ms);
        device.auth = Some(auth);
    }
}
