//! The fuzz input, decoded with `arbitrary`: the mode of a run and the steps it takes.

use arbitrary::Arbitrary;

/// One run: the area's setup, then the steps.
#[derive(Arbitrary, Debug)]
pub struct Script {
    /// Pre-shared-key mode: every device has a key and seals its bottles.
    pub keyed: bool,
    /// A third device when set.
    pub three_devices: bool,
    /// Devices propose SPLIT mode instead of JOINED mode.
    pub split: bool,
    /// The application starts every computation it is asked to install at once.
    pub auto_install: bool,
    /// What happens, in order.
    pub steps: Vec<Step>,
}

/// One thing that happens to the area.
#[derive(Arbitrary, Debug)]
pub enum Step {
    /// Delivers everything in flight, in order, `rounds` times, with `ms` passing after
    /// each round: a clean network.
    Run {
        /// Rounds of delivery.
        rounds: u8,
        /// Milliseconds after each round.
        ms: u16,
    },
    /// Delivers one bottle in flight, picked by position: the network reorders.
    Deliver(u8),
    /// Loses one bottle in flight.
    Drop(u8),
    /// Delivers a copy of one bottle in flight and keeps the original in flight.
    Duplicate(u8),
    /// Delivers again a bottle that was delivered before.
    Replay(u8),
    /// Time passes; every machine is woken at each deadline it asked for.
    Advance(u16),
    /// Arbitrary bytes arrive.
    Raw {
        /// Who receives them.
        to: Target,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// A bottle made up by an attacker arrives.
    Forge {
        /// Who receives it.
        to: Target,
        /// The bottle.
        bottle: Box<Forged>,
        /// How it is sealed.
        seal: SealPick,
    },
    /// A device's application reports a computation's state.
    SetState {
        /// The device.
        device: u8,
        /// The computation, by index in the configuration.
        computation: u8,
        /// The state.
        state: StatePick,
    },
    /// A device leaves with GOOD_BYE.
    Leave(u8),
    /// A device's process dies.
    Crash(u8),
    /// A device's process starts again (a new incarnation), if it had died or left.
    Restart(u8),
    /// A device's application answers an install it was asked for.
    AnswerInstall {
        /// The device.
        device: u8,
        /// Which pending install.
        which: u8,
        /// Whether the computation started.
        started: bool,
    },
    /// The AC's operator lifts a computation's quarantine.
    Release(u8),
    /// The AC's operator dismisses a device.
    Dismiss(u8),
    /// The AC restarts from a snapshot taken now.
    AcRestart,
}

/// Who receives injected bytes.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Target {
    /// The AC, on a device's link.
    AcFromDevice(u8),
    /// The AC, on a link no device uses.
    AcFromStranger(u8),
    /// A device.
    Device(u8),
}

/// How a forged bottle is sealed.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum SealPick {
    /// Not at all.
    Plain,
    /// With a key no one uses.
    WrongKey {
        /// The key.
        key: [u8; 32],
        /// The counter.
        counter: u32,
    },
    /// With a session key derived from a device's real key and a challenge seen on the
    /// network: what a holder of that key could send.
    RightKey {
        /// Which of the keys seen.
        which: u8,
        /// The counter.
        counter: u32,
    },
}

/// A state an application reports.
#[derive(Arbitrary, Debug)]
pub enum StatePick {
    /// These bytes.
    Bytes(Vec<u8>),
    /// `len` bytes of `fill`: large states take several chunks.
    Large {
        /// Length.
        len: u16,
        /// Every byte.
        fill: u8,
    },
}

/// A session id: one seen on the network, or any.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum SessionPick {
    /// The `n`-th most recent seen.
    Seen(u8),
    /// This one.
    Raw(u32),
}

/// A join nonce: one seen on the network, or any.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum NoncePick {
    /// The `n`-th most recent seen.
    Seen(u8),
    /// This one.
    Raw([u8; 8]),
}

/// A MORPH id: one seen on the network, or any.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum MorphPick {
    /// The `n`-th most recent seen.
    Seen(u8),
    /// This one.
    Raw(u32),
}

/// A name: a configured one, or any string.
#[derive(Arbitrary, Debug, Clone)]
pub enum NamePick {
    /// A configured device's name.
    Device(u8),
    /// A configured computation's name.
    Computation(u8),
    /// This string.
    Raw(String),
}

/// A state chunk.
#[derive(Arbitrary, Debug, Clone)]
pub struct ChunkPick {
    /// Handle.
    pub handle: u16,
    /// Version.
    pub version: u32,
    /// Declared total length.
    pub total_len: u32,
    /// Index.
    pub index: u32,
    /// Bytes.
    pub data: Vec<u8>,
}

/// The manifest of a forged MORPH.
#[derive(Arbitrary, Debug, Clone)]
pub enum ManifestPick {
    /// Any bytes.
    Raw(Vec<u8>),
    /// A well-formed manifest whose sizes and digests describe `objects` and `lkgs`, which
    /// [`ChunkData::Stream`] then sends.
    Built {
        /// The computation.
        computation: NamePick,
        /// Sequence number.
        sequence: u64,
        /// The target's name.
        target: NamePick,
        /// The target's join nonce.
        nonce: NoncePick,
        /// The device it ran on.
        replaces: NamePick,
        /// The objects' ids and bytes.
        objects: Vec<(NamePick, Vec<u8>, bool)>,
        /// The LKGS's version.
        lkgs_version: u32,
        /// The LKGS.
        lkgs: Vec<u8>,
    },
}

/// The bytes of a forged OBJECT_CHUNK.
#[derive(Arbitrary, Debug, Clone)]
pub enum ChunkData {
    /// Any bytes.
    Raw(Vec<u8>),
    /// Chunk `index` of the stream of the last built manifest, cut at the chunk size seen
    /// on the network.
    Stream(u8),
}

/// Any bottle, with fields an attacker picks.
#[derive(Arbitrary, Debug, Clone)]
#[allow(missing_docs)]
pub enum Forged {
    GoodMorning {
        device: NamePick,
        nonce: NoncePick,
        split: bool,
        hello_ms: u32,
        dead_ms: u32,
        max_bottle: u16,
    },
    GoodMorningAck {
        session: SessionPick,
        nonce: NoncePick,
        split: bool,
        hello_ms: u32,
        dead_ms: u32,
        fence_ms: u32,
        chunk_size: u16,
        run: Vec<NamePick>,
    },
    Hello {
        session: SessionPick,
        seq: u16,
        state: Option<ChunkPick>,
    },
    HelloAck {
        session: SessionPick,
        seq: u16,
    },
    State {
        session: SessionPick,
        chunk: ChunkPick,
    },
    StateAck {
        session: SessionPick,
        handle: u16,
        version: u32,
        next: u32,
        sack: u32,
    },
    Morph {
        session: SessionPick,
        morph: MorphPick,
        handle: u16,
        manifest: ManifestPick,
        signature: Option<[u8; 64]>,
    },
    ObjectChunk {
        session: SessionPick,
        morph: MorphPick,
        index: u32,
        data: ChunkData,
    },
    ChunkAck {
        session: SessionPick,
        morph: MorphPick,
        next: u32,
        sack: u32,
    },
    MorphAck {
        session: SessionPick,
        morph: MorphPick,
    },
    MorphFail {
        session: SessionPick,
        morph: MorphPick,
        reason: u8,
    },
    GoodBye {
        session: SessionPick,
    },
    GoodByeAck {
        session: SessionPick,
    },
    Reject {
        session: SessionPick,
        nonce: NoncePick,
        reason: u8,
    },
    Challenge {
        nonce: NoncePick,
        challenge: [u8; 16],
    },
}
