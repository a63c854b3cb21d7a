//! The MORPH receiver: check the manifest, reassemble the stream, verify every digest,
//! hand the computation to the application, answer MORPH ack or fail.

use alloc::boxed::Box;
use alloc::vec::Vec;

use sha2::{Digest as _, Sha256};

use super::event::{DeviceEvent, Install, InstallId, InstalledObject, StopReason};
use super::session::Hosted;
use super::{Device, Phase};
use crate::error::{CommandError, InputError};
use crate::name::Name;
use crate::time::Instant;
use crate::transfer::ChunkReceiver;
use crate::wire::bottle::{
    Bottle, ChunkAck, Morph, MorphAck, MorphFail, MorphFailReason, ObjectChunk,
};
use crate::wire::ids::SessionId;
use crate::wire::manifest::Manifest;

/// MORPH outcomes remembered for answering duplicates.
const OUTCOMES: usize = 8;

/// What became of one MORPH: `result` `None` is MORPH ack.
#[derive(Clone, Copy, Debug)]
pub(super) struct Outcome {
    morph: u32,
    result: Option<MorphFailReason>,
}

/// A MORPH being received, or waiting for the application's answer.
pub(super) struct Incoming {
    morph: u32,
    handle: u16,
    computation: Name,
    sequence: u64,
    manifest: Vec<u8>,
    receiver: ChunkReceiver,
    /// Set once the stream is verified and the application was asked.
    awaiting: Option<(Instant, Vec<u8>)>,
}

impl Incoming {
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.awaiting.as_ref().map(|(at, _)| *at)
    }
}

/// The device a manifest's computation ran on and its objects, with their names held as
/// [`Name`]s; `None` if a name is too long, which a decoded manifest's never is.
fn installed(man: &Manifest<'_>) -> Option<(Name, Vec<InstalledObject>)> {
    let objects = (man.objects.iter())
        .map(|o| {
            Some(InstalledObject {
                id: Name::try_from(o.id).ok()?,
                len: o.size,
                invoke: o.invoke,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some((Name::try_from(man.replaces).ok()?, objects))
}

impl Device {
    #[cold]
    #[inline(never)]
    pub(super) fn on_morph(&mut self, m: Morph<'_>) -> Result<(), InputError> {
        let limits = self.cfg.limits;
        let max_hosted = self.cfg.max_hosted;
        let s = self.joined(m.session)?;
        if s.waiting_since.is_some() {
            // Nothing runs before the session's first lease; the AC sends the header again.
            return Err(InputError::OutOfPhase(
                "MORPH before the session's first lease",
            ));
        }
        // An outcome remembered, or, for one forgotten since, the computation the MORPH
        // brought still running here: the AC asks again for an answer it did not get.
        let earlier = (s.outcomes.iter())
            .find(|o| o.morph == m.morph)
            .map(|o| o.result)
            .or_else(|| {
                s.comps
                    .iter()
                    .any(|h| h.morph == Some(m.morph))
                    .then_some(None)
            });
        let in_progress = s
            .incoming
            .iter()
            .find(|i| i.morph == m.morph)
            .map(|i| i.receiver.progress());
        if let Some(result) = earlier {
            self.stats.duplicate += 1;
            self.answer(m.session, m.morph, result);
            return Ok(());
        }
        if let Some(progress) = in_progress {
            self.stats.duplicate += 1;
            let ack = ChunkAck {
                session: m.session,
                morph: m.morph,
                progress,
            };
            self.send(&Bottle::ChunkAck(ack));
            return Ok(());
        }
        if m.morph <= s.max_morph {
            return Err(InputError::OutOfPhase("MORPH older than one already seen"));
        }
        // The signature is checked before anything in the manifest is looked at. A MORPH
        // that fails it is answered, but changes nothing: neither the MORPH ids this
        // session has seen nor the outcomes it answers duplicates with.
        if !self.signed(&m) {
            let reason = MorphFailReason::BadSignature;
            self.outbox.event(DeviceEvent::MorphRefused {
                morph: m.morph,
                reason,
            });
            self.answer(m.session, m.morph, Some(reason));
            return Ok(());
        }
        let Phase::Joined(s) = &mut self.phase else {
            return Ok(());
        };
        s.max_morph = m.morph;
        let verdict = if s.incoming.len() + s.comps.len() >= max_hosted {
            Err(MorphFailReason::Busy)
        } else if s.comps.iter().any(|h| h.handle == m.handle)
            || s.incoming.iter().any(|i| i.handle == m.handle)
        {
            Err(MorphFailReason::Malformed)
        } else {
            match Manifest::decode(m.manifest, &limits) {
                Err(_) => Err(MorphFailReason::Malformed),
                Ok(man) => {
                    let last = s
                        .sequences
                        .iter()
                        .find(|(c, _)| *c == man.computation)
                        .map(|(_, seq)| *seq);
                    let computation = Name::try_from(man.computation);
                    if man.target != self.cfg.name || man.nonce != s.nonce {
                        Err(MorphFailReason::WrongTarget)
                    } else if last.is_some_and(|seq| man.sequence <= seq) {
                        Err(MorphFailReason::StaleSequence)
                    } else if let Ok(computation) = computation {
                        Ok(Incoming {
                            morph: m.morph,
                            handle: m.handle,
                            computation,
                            sequence: man.sequence,
                            manifest: m.manifest.to_vec(),
                            receiver: ChunkReceiver::new(man.stream_len().unwrap_or(0), s.chunk),
                            awaiting: None,
                        })
                    } else {
                        Err(MorphFailReason::Malformed)
                    }
                }
            }
        };
        match verdict {
            Ok(incoming) => {
                let progress = incoming.receiver.progress();
                if let Phase::Joined(s) = &mut self.phase {
                    s.incoming.push(incoming);
                }
                let ack = ChunkAck {
                    session: m.session,
                    morph: m.morph,
                    progress,
                };
                self.send(&Bottle::ChunkAck(ack));
            }
            Err(reason) => self.refuse(m.morph, reason),
        }
        Ok(())
    }

    /// Whether `m`'s manifest is signed as the code key this device was provisioned with
    /// asks; any manifest is, without one.
    #[cfg(feature = "signing")]
    fn signed(&self, m: &Morph<'_>) -> bool {
        match (&self.cfg.code_key, &m.signature) {
            (None, _) => true,
            (Some(key), Some(signature)) => key.verify(m.manifest, signature),
            (Some(_), None) => false,
        }
    }

    /// Whether `m`'s manifest is signed as required: a build without code signing
    /// requires nothing.
    #[cfg(not(feature = "signing"))]
    fn signed(&self, _: &Morph<'_>) -> bool {
        true
    }

    #[inline(never)]
    pub(super) fn on_object_chunk(
        &mut self,
        now: Instant,
        c: ObjectChunk<'_>,
    ) -> Result<(), InputError> {
        let s = self.joined(c.session)?;
        let Some(inc) = s.incoming.iter_mut().find(|i| i.morph == c.morph) else {
            return Err(InputError::OutOfPhase("chunk of no MORPH in progress"));
        };
        let fresh = inc
            .receiver
            .accept(c.index, c.data)
            .map_err(|_| InputError::BadChunk)?;
        let progress = inc.receiver.progress();
        let complete = fresh && inc.receiver.is_complete();
        if !fresh {
            self.stats.duplicate += 1;
        }
        self.send(&Bottle::ChunkAck(ChunkAck {
            session: c.session,
            morph: c.morph,
            progress,
        }));
        if complete {
            self.verify_and_offer(now, c.morph);
        }
        Ok(())
    }

    /// The stream is complete: check every object and the LKGS against the manifest, then
    /// ask the application.
    #[cold]
    #[inline(never)]
    fn verify_and_offer(&mut self, now: Instant, morph: u32) {
        let limits = self.cfg.limits;
        let timeout = self.timers.install_timeout;
        let Phase::Joined(s) = &mut self.phase else {
            return;
        };
        let Some(pos) = s.incoming.iter().position(|i| i.morph == morph) else {
            return;
        };
        let inc = &mut s.incoming[pos];
        let Ok(man) = Manifest::decode(&inc.manifest, &limits) else {
            return;
        };
        let Some((replaces, objects)) = installed(&man) else {
            s.incoming.swap_remove(pos);
            return self.refuse(morph, MorphFailReason::Malformed);
        };
        let stream = inc.receiver.bytes();
        let mut at = 0usize;
        let mut intact = true;
        for o in man.objects.iter() {
            let end = at.saturating_add(o.size as usize);
            let bytes = stream.get(at..end).unwrap_or_default();
            at = end;
            intact &= Sha256::digest(bytes)[..] == o.sha256.0[..];
        }
        let lkgs = stream.get(at..).unwrap_or_default();
        intact &= Sha256::digest(lkgs)[..] == man.state.sha256.0[..];
        if !intact {
            s.incoming.swap_remove(pos);
            return self.refuse(morph, MorphFailReason::DigestMismatch);
        }
        // The state is kept until the install is answered; the stream, objects and all,
        // goes to the application as it is.
        inc.awaiting = Some((now.plus_micros(timeout), lkgs.to_vec()));
        let install = Install {
            id: InstallId(morph),
            computation: inc.computation,
            replaces,
            sequence: man.sequence,
            objects,
            stream: inc.receiver.take_bytes(),
            lkgs_version: man.state.version,
        };
        self.outbox.event(DeviceEvent::Install(Box::new(install)));
    }

    /// Answers an install: `true` once the computation runs (restored from the LKGS) sends
    /// MORPH ack, `false` sends MORPH fail.
    pub fn answer_install(
        &mut self,
        now: Instant,
        id: InstallId,
        started: bool,
    ) -> Result<(), CommandError> {
        self.clock.advance(now);
        let Phase::Joined(s) = &mut self.phase else {
            return Err(CommandError::NotJoined);
        };
        let Some(pos) = s
            .incoming
            .iter()
            .position(|i| i.morph == id.0 && i.awaiting.is_some())
        else {
            return Err(CommandError::NoSuchInstall);
        };
        let inc = s.incoming.swap_remove(pos);
        if !started {
            self.refuse(inc.morph, MorphFailReason::Refused);
            return Ok(());
        }
        let state = inc.awaiting.map(|(_, lkgs)| lkgs).unwrap_or_default();
        s.comps.push(Hosted::new(
            inc.handle,
            Some(inc.morph),
            inc.computation,
            state,
        ));
        match s.sequences.iter_mut().find(|(c, _)| *c == inc.computation) {
            Some((_, seq)) => *seq = inc.sequence,
            None => s.sequences.push((inc.computation, inc.sequence)),
        }
        self.record(Outcome {
            morph: inc.morph,
            result: None,
        });
        Ok(())
    }

    /// MORPH fail from the AC cancels a MORPH: drop it, or stop the computation it
    /// brought, and confirm with MORPH fail.
    #[cold]
    #[inline(never)]
    pub(super) fn on_cancel(&mut self, f: MorphFail) -> Result<(), InputError> {
        let s = self.joined(f.session)?;
        s.max_morph = s.max_morph.max(f.morph);
        let mut stopped = None;
        if let Some(pos) = s.incoming.iter().position(|i| i.morph == f.morph) {
            s.incoming.swap_remove(pos);
        } else if let Some(pos) = s.comps.iter().position(|h| h.morph == Some(f.morph)) {
            // It was acknowledged: the computation it brought runs here; stop it.
            stopped = Some(s.comps.remove(pos).name);
        }
        if let Some(computation) = stopped {
            self.outbox.event(DeviceEvent::Stop {
                computation,
                reason: StopReason::Cancelled,
            });
        }
        self.record(Outcome {
            morph: f.morph,
            result: Some(MorphFailReason::TimedOut),
        });
        Ok(())
    }

    /// Gives up on an install the application did not answer in time.
    pub(super) fn morph_timeout(&mut self, now: Instant) {
        let Phase::Joined(s) = &mut self.phase else {
            return;
        };
        let (expired, kept): (Vec<Incoming>, Vec<Incoming>) = core::mem::take(&mut s.incoming)
            .into_iter()
            .partition(|i| i.deadline().is_some_and(|at| at <= now));
        s.incoming = kept;
        for inc in expired {
            self.refuse(inc.morph, MorphFailReason::TimedOut);
        }
    }

    fn refuse(&mut self, morph: u32, reason: MorphFailReason) {
        self.outbox
            .event(DeviceEvent::MorphRefused { morph, reason });
        self.record(Outcome {
            morph,
            result: Some(reason),
        });
    }

    /// Remembers and sends a MORPH's outcome.
    fn record(&mut self, outcome: Outcome) {
        let Phase::Joined(s) = &mut self.phase else {
            return;
        };
        let session = s.id;
        s.outcomes.retain(|o| o.morph != outcome.morph);
        if s.outcomes.len() == OUTCOMES {
            s.outcomes.remove(0);
        }
        s.outcomes.push(outcome);
        self.answer(session, outcome.morph, outcome.result);
    }

    fn answer(&mut self, session: SessionId, morph: u32, outcome: Option<MorphFailReason>) {
        let bottle = match outcome {
            None => Bottle::MorphAck(MorphAck { session, morph }),
            Some(reason) => Bottle::MorphFail(MorphFail {
                session,
                morph,
                reason,
            }),
        };
        self.send(&bottle);
    }
}
