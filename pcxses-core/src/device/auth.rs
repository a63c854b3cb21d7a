//! Pre-shared-key mode at the device: answering the AC's challenge, and opening and
//! sealing bottles with the session keys (see the `psk` module). Without the `psk`
//! feature [`Auth`] has no values: `Option<Auth>` is always `None`, and every bottle
//! travels plain.

use super::Device;
use crate::error::InputError;
use crate::time::Instant;
use crate::wire::bottle::Bottle;
#[cfg(feature = "psk")]
use {
    super::Phase,
    crate::psk::{
        issued_at, session_key, Direction, ReplayWindow, Seal, Sealed, SessionKeys, CHALLENGE_LEN,
        RESYNC_PERIOD,
    },
    crate::wire::bottle::Challenge,
};

/// The keys of pre-shared-key mode, from the AC's challenge.
#[cfg(feature = "psk")]
pub(super) struct Auth {
    challenge: [u8; CHALLENGE_LEN],
    keys: SessionKeys,
}

#[cfg(feature = "psk")]
impl Auth {
    /// The seal of the next bottle to the AC: a GOOD_MORNING carries the challenge too.
    pub(super) fn seal(&mut self, bottle: &Bottle<'_>) -> Seal<'_> {
        let extra: &[u8] = match bottle {
            Bottle::GoodMorning(_) => &self.challenge,
            _ => &[],
        };
        self.keys.seal(Direction::ToAc, extra)
    }

    /// Whether a bottle went sealed with these keys: the challenge was answered.
    pub(super) fn sent_any(&self) -> bool {
        self.keys.sent > 0
    }

    /// Moves the send counter past every counter the AC may have seen.
    fn jump_ahead(&mut self) {
        self.keys.sent = self.keys.sent.saturating_add(RESYNC_PERIOD);
    }
}

/// The keys of pre-shared-key mode, which this build leaves out.
#[cfg(not(feature = "psk"))]
pub(super) enum Auth {}

#[cfg(not(feature = "psk"))]
impl Auth {
    pub(super) fn seal(&mut self, _: &Bottle<'_>) -> crate::io::Seal<'_> {
        match *self {}
    }

    pub(super) fn sent_any(&self) -> bool {
        match *self {}
    }

    fn jump_ahead(&mut self) {
        match *self {}
    }
}

impl Device {
    /// Opens and dispatches one bottle. In pre-shared-key mode nothing travels plain: a
    /// CHALLENGE must be sealed with the challenge key, every other bottle with the session
    /// key, carry the right tag and a counter not seen before.
    pub(super) fn receive(&mut self, now: Instant, bytes: &[u8]) -> Result<(), InputError> {
        let limits = self.cfg.limits;
        #[cfg(feature = "psk")]
        if self.cfg.psk.is_some() {
            return self.receive_sealed(now, bytes);
        }
        self.on_bottle(now, Bottle::decode(bytes, &limits)?)
    }

    /// Pre-shared-key mode, REJECT `Resync` (sealed, so from the AC): the AC restarted and
    /// refuses counters it may have accepted before; jump ahead and resend what is due at
    /// once.
    #[cold]
    #[inline(never)]
    pub(super) fn resync(&mut self, now: Instant) -> Result<(), InputError> {
        if let Some(auth) = self.auth.as_mut() {
            auth.jump_ahead();
        }
        self.on_timeout(now);
        Ok(())
    }
}

#[cfg(feature = "psk")]
impl Device {
    /// [`Device::receive`] in pre-shared-key mode.
    fn receive_sealed(&mut self, now: Instant, bytes: &[u8]) -> Result<(), InputError> {
        let limits = self.cfg.limits;
        let sealed = Sealed::split(bytes).ok_or(InputError::Unauthenticated)?;
        if let Ok(Bottle::Challenge(c)) = Bottle::decode(sealed.covered, &limits) {
            let genuine = (self.challenge_key.as_ref())
                .is_some_and(|key| sealed.verify(key, Direction::ToDevice));
            if !genuine {
                return Err(InputError::Unauthenticated);
            }
            return self.on_challenge(now, c);
        }
        let auth = self.auth.as_mut().ok_or(InputError::Unauthenticated)?;
        if !sealed.verify(&auth.keys.key, Direction::ToDevice) {
            return Err(InputError::Unauthenticated);
        }
        let bottle = Bottle::decode(sealed.covered, &limits)?;
        if !auth.keys.window.accept(sealed.counter) {
            return Err(InputError::Replayed);
        }
        self.on_bottle(now, bottle)
    }

    /// Pre-shared-key mode: derives the session key from the AC's challenge and answers
    /// with a sealed GOOD_MORNING at once.
    #[cold]
    #[inline(never)]
    fn on_challenge(&mut self, now: Instant, c: Challenge) -> Result<(), InputError> {
        let (
            Some(psk),
            Phase::Joining {
                nonce,
                next_at,
                first_sent,
                ..
            },
        ) = (&self.cfg.psk, &mut self.phase)
        else {
            return Err(InputError::OutOfPhase("challenge while not joining"));
        };
        if c.nonce != *nonce {
            return Err(InputError::OutOfPhase("challenge for another join"));
        }
        // Challenges are ordered by their issue time, their first eight bytes: the device
        // answers the latest, as the AC keys the session by the latest it was answered.
        if self
            .auth
            .as_ref()
            .is_some_and(|a| issued_at(&a.challenge) >= issued_at(&c.challenge))
        {
            return Err(InputError::OutOfPhase("not the latest challenge"));
        }
        // No session can predate the first sealed GOOD_MORNING of this join: the fence
        // lease counts from it. A later challenge (the AC answered a repeated plain
        // GOOD_MORNING) does not move that: the AC may have opened the session on the
        // first, and a repeated GOOD_MORNING does not reset its dead timer.
        if self.auth.as_ref().is_none_or(|a| !a.sent_any()) {
            *first_sent = None;
        }
        let key = session_key(psk, &c.challenge, *nonce);
        self.auth = Some(Auth {
            challenge: c.challenge,
            keys: SessionKeys::new(key, ReplayWindow::default()),
        });
        *next_at = now;
        self.on_timeout(now);
        Ok(())
    }
}
