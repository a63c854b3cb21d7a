//! What the device agent reports to its application.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::time::Duration;

use crate::name::Name;
use crate::wire::bottle::{MorphFailReason, RejectReason, StateMode};
use crate::wire::ids::SessionId;

/// What the device agent asks of, or tells, its application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceEvent {
    /// The session's computations may run: start these, from their initial state (the AC
    /// holds no state of theirs; those it holds a state of arrive as [`DeviceEvent::Install`]
    /// with it). Emitted once the session holds a fence lease: see
    /// [`super::Device::lease_until`], which every step of a computation must check first.
    ///
    /// It also reports what the AC granted, which may differ from what the
    /// [`super::DeviceConfig`] proposed: the AC clamps the intervals into its bounds, raises
    /// the dead interval to at least three HELLO intervals, and may impose a mode.
    Joined {
        /// The new session.
        session: SessionId,
        /// Computations to run, by name.
        run: Vec<Name>,
        /// The negotiated HELLO interval: the device sends a HELLO this often.
        hello: Duration,
        /// The negotiated dead interval: the AC declares the device dead after this long
        /// without a HELLO.
        dead: Duration,
        /// The fence interval: the device stops its computations when no HELLO it sent in
        /// this long was acknowledged (three quarters of `dead`). `None`: the AC does not
        /// fence, and the lease never runs out.
        fence: Option<Duration>,
        /// The negotiated state mode.
        mode: StateMode,
    },
    /// The AC refused the GOOD_MORNING; the device keeps retrying slowly.
    Rejected {
        /// Why.
        reason: RejectReason,
    },
    /// The AC stored this state version of a computation as its LKGS.
    StateStored {
        /// The computation.
        computation: Name,
        /// The version the AC holds.
        version: u32,
    },
    /// A MORPH arrived complete and verified: install and start it, then call
    /// [`super::Device::answer_install`]. Boxed: it is rare, and would make every event
    /// and every queued output as large as itself.
    Install(Box<Install>),
    /// A MORPH was refused before reaching the application.
    MorphRefused {
        /// The MORPH.
        morph: u32,
        /// Why.
        reason: MorphFailReason,
    },
    /// Stop this computation now.
    Stop {
        /// The computation.
        computation: Name,
        /// Why.
        reason: StopReason,
    },
    /// The session ended with GOOD_BYE; the device is done.
    Left,
}

/// Why the application must stop a computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The AC declared this device dead and moved the computation.
    Replaced,
    /// No HELLO acknowledged for the fence interval: the AC may be about to move it.
    Fenced,
    /// The AC no longer knows this session (it restarted without it).
    SessionLost,
    /// The device is leaving.
    Left,
    /// The AC dismissed the device.
    Dismissed,
    /// The AC cancelled the MORPH that brought the computation.
    Cancelled,
}

/// A verified MORPH waiting for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Install {
    /// Answer with this id.
    pub id: InstallId,
    /// The computation.
    pub computation: Name,
    /// The device it ran on.
    pub replaces: Name,
    /// The manifest's sequence number.
    pub sequence: u64,
    /// Its objects, in manifest order, each checked against its SHA-256; their bytes are
    /// in `stream` ([`Install::objects`]).
    pub objects: Vec<InstalledObject>,
    /// The MORPH stream as it was received and checked, not copied since: the objects one
    /// after the other, then the LKGS.
    pub stream: Vec<u8>,
    /// The LKGS's version at the AC.
    pub lkgs_version: u32,
}

impl Install {
    /// The objects, in manifest order, each with its bytes.
    pub fn objects(&self) -> impl Iterator<Item = (&InstalledObject, &[u8])> {
        let mut at = 0usize;
        self.objects.iter().map(move |o| {
            let start = at;
            at = at.saturating_add(o.len as usize);
            (o, self.stream.get(start..at).unwrap_or_default())
        })
    }

    /// The LKGS to restore through the computation's State Update Interface: the stream
    /// after the objects.
    pub fn lkgs(&self) -> &[u8] {
        let objects = self.objects.iter().map(|o| o.len as usize).sum::<usize>();
        self.stream.get(objects..).unwrap_or_default()
    }
}

/// Names an install waiting for its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InstallId(pub u32);

/// One object of an install; its bytes are in the install's stream
/// ([`Install::objects`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstalledObject {
    /// The object's id.
    pub id: Name,
    /// Its length in the stream, bytes.
    pub len: u32,
    /// Whether to start it.
    pub invoke: bool,
}
