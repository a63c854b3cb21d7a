//! What the Area Controller reports to its application.

use crate::time::Instant;
use crate::wire::bottle::MorphFailReason;
use crate::wire::ids::SessionId;

/// Names a registered device: its position in [`super::ControllerConfig::devices`].
/// [`super::Controller::device_name`] gives its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub u32);

/// Names a registered computation: its position in
/// [`super::ControllerConfig::computations`]. [`super::Controller::computation_name`]
/// gives its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComputationId(pub u32);

/// Why a MORPH attempt did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigrationFailure {
    /// The target answered MORPH fail.
    Refused(MorphFailReason),
    /// No progress for the MORPH timeout; the target confirmed it dropped the attempt.
    TimedOut,
    /// The target was declared dead during the attempt.
    TargetDied,
    /// The target said GOOD_BYE or re-joined during the attempt.
    TargetLeft,
    /// The computation's host died after the migration, before storing any state there.
    DiedAfterMigration,
    /// The target died or re-joined after it held the whole stream and before it
    /// answered: its application may have crashed starting the computation.
    DiedInstalling,
}

impl MigrationFailure {
    /// Whether the failure is the computation's, and so counts towards quarantine
    /// ("failure chaining"): its target could not start it, did not start it in time,
    /// died while starting it, or died with it before it stored a state there. What the network or one target does
    /// says nothing about the computation and does not count: no progress, a target that
    /// died, left or had no room during the MORPH, a stream damaged on the way, a manifest
    /// signed with a key the target does not trust, or one meant for another session.
    pub fn counts(&self) -> bool {
        matches!(
            self,
            MigrationFailure::DiedAfterMigration
                | MigrationFailure::DiedInstalling
                | MigrationFailure::Refused(MorphFailReason::Refused | MorphFailReason::TimedOut)
        )
    }
}

/// Why a computation was quarantined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuarantineReason {
    /// It failed on as many targets in a row as the configuration allows
    /// ([`super::ControllerConfig::quarantine_after`]).
    Failures,
    /// The repository lacks one of its objects.
    MissingObject,
    /// Its MORPH does not fit: the manifest is longer than the target's largest bottle, or
    /// the stream longer than the AC's transfer limit.
    TooLarge,
}

impl QuarantineReason {
    /// The reason in one `snake_case` word: `failures`, `missing_object`, `too_large`.
    pub fn name(&self) -> &'static str {
        match self {
            QuarantineReason::Failures => "failures",
            QuarantineReason::MissingObject => "missing_object",
            QuarantineReason::TooLarge => "too_large",
        }
    }
}

/// Why no device can host a computation now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OrphanReason {
    /// No live device has the capabilities it requires and is on its host list.
    NoCapableDevice,
    /// Capable devices are live, but none is as authenticated as its state's source (or
    /// its home) requires.
    NoAuthenticatedDevice,
    /// The target-selection policy chose none of the free capable devices.
    PolicyDeclined,
}

impl OrphanReason {
    /// The reason in one `snake_case` word: `no_capable_device`,
    /// `no_authenticated_device`, `policy_declined`.
    pub fn name(&self) -> &'static str {
        match self {
            OrphanReason::NoCapableDevice => "no_capable_device",
            OrphanReason::NoAuthenticatedDevice => "no_authenticated_device",
            OrphanReason::PolicyDeclined => "policy_declined",
        }
    }
}

/// Something the AC did or saw. Every event carries the instant it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControllerEvent {
    /// A device joined and got a new session.
    DeviceJoined {
        /// The device.
        device: DeviceId,
        /// Its new session.
        session: SessionId,
        /// When.
        at: Instant,
    },
    /// A device said GOOD_BYE (or was dismissed); its computations stop and are not
    /// recovered.
    DeviceLeft {
        /// The device.
        device: DeviceId,
        /// When.
        at: Instant,
    },
    /// No HELLO for the dead interval: the session is dead and its computations recover.
    DeviceFailed {
        /// The device.
        device: DeviceId,
        /// The dead session.
        session: SessionId,
        /// Its last HELLO.
        last_hello: Instant,
        /// When the death was declared.
        at: Instant,
    },
    /// A new LKGS was stored and acknowledged.
    StateStored {
        /// The computation.
        computation: ComputationId,
        /// The device it came from.
        device: DeviceId,
        /// Its version in that device's session.
        version: u32,
        /// Its length in bytes.
        len: usize,
        /// When.
        at: Instant,
    },
    /// A computation stopped for good because its host left.
    ComputationStopped {
        /// The computation.
        computation: ComputationId,
        /// The host that left.
        device: DeviceId,
        /// When.
        at: Instant,
    },
    /// A MORPH was sent.
    MigrationStarted {
        /// The computation.
        computation: ComputationId,
        /// The device it is recovered from.
        from: DeviceId,
        /// The target.
        to: DeviceId,
        /// Attempt number in this recovery, from 1.
        attempt: u32,
        /// When.
        at: Instant,
    },
    /// The target acknowledged the MORPH: the computation runs there.
    MigrationCompleted {
        /// The computation.
        computation: ComputationId,
        /// The device it was recovered from.
        from: DeviceId,
        /// Its new host.
        to: DeviceId,
        /// When the failure was detected.
        detected_at: Instant,
        /// When this attempt's MORPH was sent.
        started_at: Instant,
        /// When MORPH ack arrived.
        acked_at: Instant,
        /// Bytes of the MORPH stream (objects plus LKGS).
        stream_bytes: u32,
    },
    /// A MORPH attempt failed; the next target is tried unless the computation is now
    /// quarantined.
    MigrationFailed {
        /// The computation.
        computation: ComputationId,
        /// The target that failed.
        to: DeviceId,
        /// Why.
        reason: MigrationFailure,
        /// When.
        at: Instant,
    },
    /// The computation will not be moved again until [`super::Controller::release`] (or
    /// the configured retry): it failed on too many targets in a row, or cannot be moved
    /// at all.
    Quarantined {
        /// The computation.
        computation: ComputationId,
        /// Why.
        reason: QuarantineReason,
        /// Consecutive failures.
        failures: u32,
        /// When.
        at: Instant,
    },
    /// No device can host the computation now; retried when a capable device joins.
    Orphaned {
        /// The computation.
        computation: ComputationId,
        /// Why.
        reason: OrphanReason,
        /// When.
        at: Instant,
    },
    /// The journal could not be made durable: the transmits and the other events of that
    /// drain were dropped, so nothing it should have recorded was acknowledged or reported.
    /// The runtime should stop.
    JournalFailed {
        /// When.
        at: Instant,
    },
    /// The AC handled its input later than its stall grace after the deadline it had
    /// asked for; every dead timer moved by `late` (see `ControllerConfig::stall_grace`).
    Stalled {
        /// How far the dead timers moved: the time since the AC last handled anything (or
        /// since the deadline, if earlier), or for a stall right after another, how late
        /// the AC was past the deadline.
        late: core::time::Duration,
        /// When it noticed.
        at: Instant,
    },
}
