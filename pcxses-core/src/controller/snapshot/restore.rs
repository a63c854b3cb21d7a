//! A controller restored from a snapshot and the changes after it. The snapshot's parts go
//! into the controller as they are read, each replaced by its last change if it has one: a
//! million devices are never listed beside the controller they go into.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{decode, Change, SnapComp, SnapDevice, SnapPlace, SnapshotError};
use super::{COUNTER_GAP, SNAPSHOT_VERSION};
use crate::controller::auth::SessionAuth;
use crate::controller::computation::Place;
#[cfg(doc)]
use crate::controller::config::ControllerConfig;
use crate::controller::recovery::Recovery;
use crate::controller::session::{Session, SessionStatus};
use crate::controller::Controller;
use crate::io::LinkId;
use crate::policy::AuthLevel;
use crate::psk::{ReplayWindow, SessionKeys};
use crate::time::{ms, Instant};
use crate::timer::arm;
use crate::wire::ids::SessionId;

impl Controller {
    /// This controller, new from its configuration, put in the state `snapshot` recorded,
    /// with the `changes` a [`crate::controller::Journal`] was given after it applied in
    /// order (none: the snapshot alone). Every session resumes with its dead interval or
    /// [`ControllerConfig::restart_grace`], whichever is longer, from `now`, so devices
    /// are not declared dead for the time the AC was down; MORPHs that were in flight are
    /// cancelled and then retried.
    ///
    /// The journal can be read once the controller is made, so that the configuration it
    /// was made from is gone before the journal is in memory. Attach the journal after the
    /// restore: a controller that has handled anything, been restored already or has a
    /// journal is refused ([`SnapshotError::NotNew`]).
    ///
    /// ```
    /// # use pcxses_core::{Controller, ControllerConfig, Instant, MemoryRepository};
    /// # use pcxses_core::controller::{ComputationSpec, DeviceSpec};
    /// let config = ControllerConfig::new(
    ///     1,
    ///     vec![DeviceSpec::new("dev0", &["comp0"])],
    ///     vec![ComputationSpec::new("comp0", "c0")],
    /// );
    /// let ac = Controller::new(config.clone(), MemoryRepository::default(), Instant::from_millis(0))?;
    /// let snapshot = ac.snapshot();
    /// let later = Instant::from_millis(5_000);
    /// let again = Controller::new(config, MemoryRepository::default(), later)?
    ///     .restore(&snapshot, [], later)?;
    /// assert_eq!(again.snapshot(), snapshot);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn restore<'a>(
        mut self,
        snapshot: &'a [u8],
        changes: impl IntoIterator<Item = &'a [u8]>,
        now: Instant,
    ) -> Result<Controller, SnapshotError> {
        // A journal attached already would not be told of what the restore puts in.
        if !self.fresh || self.journal.is_some() {
            return Err(SnapshotError::NotNew);
        }
        let now = self.tick(now);
        let ac = &mut self;
        let Some((&SNAPSHOT_VERSION, body)) = snapshot.split_first() else {
            return Err(SnapshotError::Format);
        };
        let mut restoring = Restoring::new(ac, changes, now)?;
        let read = (&mut restoring).deserialize(&mut postcard::Deserializer::from_bytes(body));
        if read.is_err() {
            return Err(restoring.failed.unwrap_or(SnapshotError::Format));
        }
        for c in restoring.to_place {
            ac.place(c, now);
        }
        for c in 0..ac.comps.len() as u32 {
            if matches!(ac.comps[c as usize].place, Place::Quarantined { .. }) {
                ac.comps[c as usize].quarantines = 1;
                ac.schedule_retry(c, now);
            }
        }
        Ok(self)
    }
}

/// A restore under way.
struct Restoring<'c, 'a> {
    ac: &'c mut Controller,
    now: Instant,
    /// The last change of each device and computation.
    devices: Latest<'a>,
    comps: Latest<'a>,
    /// The last MORPH counter among the changes.
    morphs: Option<u32>,
    /// Where the next hosted computation is looked for first.
    next_hosted: u32,
    /// Computations whose recovery goes on once every part is in place.
    to_place: Vec<u32>,
    /// Why the restore stopped, if it was not the bytes' format.
    failed: Option<SnapshotError>,
}

impl<'c, 'a> Restoring<'c, 'a> {
    /// Notes the last change of each part, each read once here and once more if applied.
    fn new(
        ac: &'c mut Controller,
        changes: impl IntoIterator<Item = &'a [u8]>,
        now: Instant,
    ) -> Result<Self, SnapshotError> {
        let (mut devices, mut comps, mut morphs) = (Latest::default(), Latest::default(), None);
        for bytes in changes {
            match decode(bytes)? {
                Change::Device(d) => {
                    let i = SnapDevice::find(ac, d.name, 0)?;
                    devices.note(ac.devices.len(), i, bytes);
                }
                Change::Comp(c) => {
                    let i = SnapComp::find(ac, c.name, 0)?;
                    comps.note(ac.comps.len(), i, bytes);
                }
                Change::Morphs(next) => morphs = Some(next),
            }
        }
        Ok(Restoring {
            ac,
            now,
            devices,
            comps,
            morphs,
            next_hosted: 0,
            to_place: Vec::new(),
            failed: None,
        })
    }

    /// Restores `part`, the snapshot's `guess`-th of its kind, or its last change instead.
    fn part<T: SnapPart<'a>>(&mut self, part: T, guess: u32) -> Result<(), SnapshotError> {
        let i = T::find(self.ac, part.name(), guess)?;
        match T::latest(self).met(i) {
            Some(bytes) => T::changed(decode(bytes)?)?.restore(self, i),
            None => part.restore(self, i),
        }
    }

    /// Restores the last changes of parts the snapshot did not have.
    fn unmet<T: SnapPart<'a>>(&mut self) -> Result<(), SnapshotError> {
        for (i, bytes) in T::latest(self).unmet() {
            T::changed(decode(bytes)?)?.restore(self, i)?;
        }
        Ok(())
    }

    /// Keeps `e` for the caller and stops the reading.
    fn fail<E: serde::de::Error>(&mut self, e: SnapshotError) -> E {
        self.failed = Some(e);
        E::custom("restore failed")
    }
}

/// The last change of each part of one kind, by its number in the registry (nothing at all
/// when there is no change), and which of them the snapshot had.
#[derive(Default)]
struct Latest<'a> {
    changes: Vec<Option<&'a [u8]>>,
    met: Vec<bool>,
}

impl<'a> Latest<'a> {
    /// `bytes` is the last change of part `i` of `len` so far.
    fn note(&mut self, len: usize, i: u32, bytes: &'a [u8]) {
        if self.changes.is_empty() {
            self.changes = vec![None; len];
            self.met = vec![false; len];
        }
        if let Some(slot) = self.changes.get_mut(i as usize) {
            *slot = Some(bytes);
        }
    }

    /// The last change of part `i`, which the snapshot has.
    fn met(&mut self, i: u32) -> Option<&'a [u8]> {
        let change = (*self.changes.get(i as usize)?)?;
        self.met[i as usize] = true;
        Some(change)
    }

    /// The last changes of parts the snapshot did not have.
    fn unmet(&self) -> Vec<(u32, &'a [u8])> {
        (self.changes.iter().zip(&self.met).zip(0..))
            .filter_map(|((change, &met), i)| Some((i, (*change).filter(|_| !met)?)))
            .collect()
    }
}

/// A device or a computation of a snapshot.
trait SnapPart<'a>: Deserialize<'a> {
    /// What a snapshot calls a list of them.
    const LIST: &'static str;

    /// Its name.
    fn name(&self) -> &'a str;

    /// Its number in `ac`'s registry, looked for first at `guess`.
    fn find(ac: &Controller, name: &str, guess: u32) -> Result<u32, SnapshotError>;

    /// The last changes of its kind.
    fn latest<'r>(r: &'r mut Restoring<'_, 'a>) -> &'r mut Latest<'a>;

    /// The part a change of its kind holds.
    fn changed(change: Change<'a>) -> Result<Self, SnapshotError>;

    /// Puts it into the controller as part `i`.
    fn restore(self, r: &mut Restoring<'_, 'a>, i: u32) -> Result<(), SnapshotError>;
}

impl<'a> SnapPart<'a> for SnapDevice<'a> {
    const LIST: &'static str = "a list of devices";

    fn name(&self) -> &'a str {
        self.name
    }

    fn find(ac: &Controller, name: &str, guess: u32) -> Result<u32, SnapshotError> {
        (ac.registry.devices.find_from(name, guess))
            .ok_or_else(|| SnapshotError::UnknownDevice(name.into()))
    }

    fn latest<'r>(r: &'r mut Restoring<'_, 'a>) -> &'r mut Latest<'a> {
        &mut r.devices
    }

    fn changed(change: Change<'a>) -> Result<Self, SnapshotError> {
        match change {
            Change::Device(d) => Ok(d),
            _ => Err(SnapshotError::Format),
        }
    }

    fn restore(self, r: &mut Restoring<'_, 'a>, d: u32) -> Result<(), SnapshotError> {
        let ac = &mut *r.ac;
        let entry = &mut ac.devices[d as usize];
        entry.generation = self.generation;
        entry.retired = SessionId(self.retired);
        entry.retired_link = LinkId(self.retired_link);
        entry.retired_status = if self.retired_dismissed {
            SessionStatus::Dismissed
        } else {
            SessionStatus::Replaced
        };
        if let (Some(a), Some(Some(p))) = (&self.auth, ac.psk.get_mut(d as usize)) {
            let keys = SessionKeys {
                key: a.key,
                sent: a.sent.saturating_add(COUNTER_GAP),
                window: ReplayWindow::resumed(a.window),
            };
            p.auth = Some(SessionAuth::new(SessionId(a.session), 0, keys));
        }
        let Some(ss) = self.session else {
            return Ok(());
        };
        let mut hosted = Vec::with_capacity(ss.hosted.len());
        for (h, name) in ss.hosted {
            let c = SnapComp::find(ac, name, r.next_hosted)?;
            r.next_hosted = c + 1;
            hosted.push((h, c));
        }
        let dead_at = r.now + ms(ss.dead_ms.max(ac.settings.restart_grace_ms));
        let auth = ac.auth_level(d, None);
        let session = ac.devices[d as usize].session.insert(Session {
            id: SessionId(ss.id),
            link: LinkId(ss.link),
            nonce: ss.nonce,
            mode: ss.mode,
            hello_ms: ss.hello_ms,
            dead_ms: ss.dead_ms,
            fence_ms: ss.fence_ms,
            chunk: ss.chunk,
            max_bottle: ss.max_bottle,
            dead_at,
            armed: Instant::MAX,
            last_hello: r.now,
            hosted: hosted.into(),
            run_len: ss.run_len,
            next_handle: ss.next_handle,
            auth,
        });
        arm(&mut ac.dead_timers, &mut session.armed, dead_at, d);
        ac.reindex(d);
        Ok(())
    }
}

impl<'a> SnapPart<'a> for SnapComp<'a> {
    const LIST: &'static str = "a list of computations";

    fn name(&self) -> &'a str {
        self.name
    }

    fn find(ac: &Controller, name: &str, guess: u32) -> Result<u32, SnapshotError> {
        (ac.registry.comps.find_from(name, guess))
            .ok_or_else(|| SnapshotError::UnknownComputation(name.into()))
    }

    fn latest<'r>(r: &'r mut Restoring<'_, 'a>) -> &'r mut Latest<'a> {
        &mut r.comps
    }

    fn changed(change: Change<'a>) -> Result<Self, SnapshotError> {
        match change {
            Change::Comp(c) => Ok(c),
            _ => Err(SnapshotError::Format),
        }
    }

    fn restore(self, r: &mut Restoring<'_, 'a>, c: u32) -> Result<(), SnapshotError> {
        let (ac, now) = (&mut *r.ac, r.now);
        let home = ac.comps[c as usize].home.unwrap_or(u32::MAX);
        let place = match self.place {
            SnapPlace::Unplaced => Place::Unplaced,
            SnapPlace::Quarantined => Place::Quarantined {
                retry_at: Instant::MAX,
            },
            SnapPlace::Stopped => Place::Stopped,
            SnapPlace::Running {
                device,
                handle,
                morph,
                unproven,
            } => {
                let d = SnapDevice::find(ac, device, home)?;
                match ac.devices[d as usize].session.as_ref() {
                    Some(s) => Place::Running {
                        device: d,
                        session: s.id,
                        handle,
                        morph,
                        unproven,
                    },
                    None => Place::Unplaced,
                }
            }
            SnapPlace::Recovering {
                from,
                from_session,
                tried,
                in_flight,
            } => {
                let from = SnapDevice::find(ac, from, home).unwrap_or(u32::MAX);
                let mut recovery = Recovery::new(from, SessionId(from_session), now);
                recovery.tried = tried.into_iter().map(SessionId).collect();
                match in_flight {
                    Some(a) => {
                        let t = SnapDevice::find(ac, a.target, home)?;
                        let attempt = (a.morph, SessionId(a.session), a.handle);
                        ac.restore_cancelling(c, t, attempt, now);
                        recovery.attempt = Some(a.morph);
                    }
                    None => r.to_place.push(c),
                }
                Place::Recovering(Box::new(recovery))
            }
        };
        // The state's source is known to be authenticated only while its session lives on;
        // what the keys of the home and source devices require holds anyway.
        let lkgs_auth = match &place {
            Place::Running { device, .. } => (ac.devices[*device as usize].session.as_ref())
                .map_or(AuthLevel::Unauthenticated, |s| s.auth),
            _ => AuthLevel::Unauthenticated,
        };
        let entry = &mut ac.comps[c as usize];
        entry.lkgs_auth = lkgs_auth;
        entry.lkgs = self.lkgs.into();
        entry.lkgs_version = self.lkgs_version;
        entry.lkgs_from = SessionId(self.lkgs_from);
        entry.sequence = self.sequence;
        entry.failures = self.failures;
        entry.place = place;
        Ok(())
    }
}

/// A snapshot: its MORPH counter and session keys, its devices, then its computations.
impl<'a> DeserializeSeed<'a> for &mut Restoring<'_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'a>>(self, deserializer: D) -> Result<(), D::Error> {
        const FIELDS: &[&str] = &["next_morph", "session_keys", "devices", "comps"];
        deserializer.deserialize_struct("Parts", FIELDS, self)
    }
}

impl<'a> Visitor<'a> for &mut Restoring<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a snapshot")
    }

    fn visit_seq<A: SeqAccess<'a>>(self, mut seq: A) -> Result<(), A::Error> {
        let short = || A::Error::custom("a snapshot cut short");
        let next_morph: u32 = seq.next_element()?.ok_or_else(short)?;
        let keys: [u32; 4] = seq.next_element()?.ok_or_else(short)?;
        self.ac.next_morph = self.morphs.unwrap_or(next_morph).max(1);
        self.ac.session_ids = self.ac.session_ids.with_keys(keys);
        seq.next_element_seed(PartList::<SnapDevice>(self, PhantomData))?
            .ok_or_else(short)?;
        self.unmet::<SnapDevice>().map_err(|e| self.fail(e))?;
        seq.next_element_seed(PartList::<SnapComp>(self, PhantomData))?
            .ok_or_else(short)?;
        self.unmet::<SnapComp>().map_err(|e| self.fail(e))
    }
}

/// A snapshot's list of one kind of part, each restored as it is read.
struct PartList<'r, 'c, 'a, T>(&'r mut Restoring<'c, 'a>, PhantomData<T>);

impl<'a, T: SnapPart<'a>> DeserializeSeed<'a> for PartList<'_, '_, 'a, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'a>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'a, T: SnapPart<'a>> Visitor<'a> for PartList<'_, '_, 'a, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::LIST)
    }

    fn visit_seq<A: SeqAccess<'a>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut guess = 0;
        while let Some(part) = seq.next_element::<T>()? {
            self.0.part(part, guess).map_err(|e| self.0.fail(e))?;
            guess += 1;
        }
        Ok(())
    }
}
