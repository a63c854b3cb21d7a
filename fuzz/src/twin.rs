//! A machine and its twin: the same configuration, fed the same time, bottles and
//! commands, except the attacker's bottles that the machine refused. A refused bottle
//! changes nothing, so the two must then do the same; a difference shows state that a
//! refused bottle changed even where no accessor shows it.

use pcxses_core::controller::{ComputationId, DeviceId};
use pcxses_core::device::InstallId;
use pcxses_core::{
    CommandError, Controller, ControllerConfig, ControllerEvent, Device, DeviceConfig, DeviceEvent,
    InputError, Instant, LinkId, Machine, MemoryRepository, Output,
};

/// One output of a machine, owned; `E` is what it reports to its application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owned<E> {
    /// Bytes to send.
    Transmit(LinkId, Vec<u8>),
    /// An event for the application (the operator, for the AC).
    Event(E),
    /// When to wake the machine next.
    Timeout(Instant),
}

/// One output of a device, owned.
pub type Out = Owned<DeviceEvent>;

/// One output of the AC, owned.
pub type AcOut = Owned<ControllerEvent>;

/// A protocol machine that twins are made of: a device or the AC.
trait Twin: Machine {
    /// How a difference names it.
    fn label(&self) -> &str;
    /// [`Device::handle_receive`] or [`Controller::handle_receive`].
    fn receive(&mut self, now: Instant, from: LinkId, bytes: &[u8]) -> Result<(), InputError>;
}

impl Twin for Device {
    fn label(&self) -> &str {
        self.name()
    }
    fn receive(&mut self, now: Instant, _: LinkId, bytes: &[u8]) -> Result<(), InputError> {
        self.handle_receive(now, bytes)
    }
}

impl Twin for Controller {
    fn label(&self) -> &str {
        "the AC"
    }
    fn receive(&mut self, now: Instant, from: LinkId, bytes: &[u8]) -> Result<(), InputError> {
        self.handle_receive(now, from, bytes, None)
    }
}

/// Everything `m` has to say, up to and with its next deadline.
fn drain<M: Twin>(m: &mut M) -> Vec<Owned<M::Event>> {
    let mut out = Vec::new();
    loop {
        match m.poll_output() {
            Output::Transmit(t) => out.push(Owned::Transmit(t.to, t.bytes.to_vec())),
            Output::Event(e) => out.push(Owned::Event(e)),
            Output::Timeout(t) => {
                out.push(Owned::Timeout(t));
                return out;
            }
        }
    }
}

/// Time passes for `machine` and its twin.
fn timeout<M: Twin>(machine: &mut M, twin: &mut M, now: Instant) {
    machine.handle_timeout(now);
    twin.handle_timeout(now);
}

/// A bottle arrives at `machine` and then at its twin, which must answer alike, unless
/// `skippable` and `machine` refused it (then the twin never sees it).
fn receive<M: Twin>(
    machine: &mut M,
    twin: &mut M,
    now: Instant,
    from: LinkId,
    bytes: &[u8],
    skippable: bool,
) -> Result<Result<(), InputError>, String> {
    let result = machine.receive(now, from, bytes);
    if skippable && result.is_err() {
        return Ok(result);
    }
    same(machine.label(), "receive", result, twin.receive(now, from, bytes))
}

/// A device and its twin.
pub struct Twins {
    device: Device,
    twin: Device,
}

/// What the device did, if its twin did the same.
fn same<T: PartialEq + std::fmt::Debug>(
    name: &str,
    what: &str,
    device: T,
    twin: T,
) -> Result<T, String> {
    if device == twin {
        Ok(device)
    } else {
        Err(format!(
            "{name} and its twin, which never saw the attacker's bottles {name} refused, \
             differ in {what}: {device:?} and {twin:?}"
        ))
    }
}

impl Twins {
    /// A device started at `now`, and its twin.
    pub fn new(cfg: &DeviceConfig, now: Instant) -> Twins {
        Twins {
            device: Device::new(cfg.clone(), now),
            twin: Device::new(cfg.clone(), now),
        }
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Time passes for both.
    pub fn timeout(&mut self, now: Instant) {
        timeout(&mut self.device, &mut self.twin, now);
    }

    /// A bottle arrives: at both, which must answer alike, unless `skippable` (the
    /// attacker's, not sealed with a real key) and the device refused it. The twin knows
    /// nothing of those, so from then on any difference is their doing.
    pub fn receive(
        &mut self,
        now: Instant,
        from: LinkId,
        bytes: &[u8],
        skippable: bool,
    ) -> Result<Result<(), InputError>, String> {
        receive(
            &mut self.device,
            &mut self.twin,
            now,
            from,
            bytes,
            skippable,
        )
    }

    /// [`Device::set_state`] on both.
    pub fn set_state(
        &mut self,
        now: Instant,
        computation: &str,
        state: &[u8],
    ) -> Result<Result<(), CommandError>, String> {
        let a = self.device.set_state(now, computation, state);
        let b = self.twin.set_state(now, computation, state);
        same(self.device.name(), "set_state", a, b)
    }

    /// [`Device::answer_install`] on both.
    pub fn answer_install(
        &mut self,
        now: Instant,
        id: InstallId,
        started: bool,
    ) -> Result<Result<(), CommandError>, String> {
        let a = self.device.answer_install(now, id, started);
        let b = self.twin.answer_install(now, id, started);
        same(self.device.name(), "answer_install", a, b)
    }

    /// [`Device::leave`] on both.
    pub fn leave(&mut self, now: Instant) {
        self.device.leave(now);
        self.twin.leave(now);
    }

    /// Drains both; they must have the same to say.
    pub fn drain(&mut self) -> Result<Vec<Out>, String> {
        let a = drain(&mut self.device);
        let b = drain(&mut self.twin);
        same(self.device.name(), "outputs", a, b)
    }
}

/// The AC and its twin, fed alike but for the attacker's unauthenticated bottles the AC
/// refused. The AC answers refusals (REJECT, rate-limited), so only what they keep is
/// compared: events and deadlines after every drain, snapshots after every step.
pub struct AcTwins {
    ac: Controller,
    twin: Controller,
}

impl AcTwins {
    /// An AC for `config` started at `now`, and its twin.
    pub fn new(config: &ControllerConfig, repo: &MemoryRepository, now: Instant) -> AcTwins {
        let ac = || Controller::new(config.clone(), repo.clone(), now).expect("valid config");
        AcTwins {
            ac: ac(),
            twin: ac(),
        }
    }

    /// The AC.
    pub fn controller(&self) -> &Controller {
        &self.ac
    }

    /// Both restart from their own snapshots.
    pub fn restart(
        &mut self,
        config: &ControllerConfig,
        repo: &MemoryRepository,
        now: Instant,
    ) -> Result<(), String> {
        let restore = |ac: &Controller| {
            let snapshot = ac.snapshot();
            let changes = std::iter::empty::<&[u8]>();
            Controller::new(config.clone(), repo.clone(), now)
                .map_err(Into::into)
                .and_then(|fresh| fresh.restore(&snapshot, changes, now))
                .map_err(|e| format!("the AC does not restore from its own snapshot: {e}"))
        };
        self.ac = restore(&self.ac)?;
        self.twin = restore(&self.twin)?;
        Ok(())
    }

    /// Time passes for both.
    pub fn timeout(&mut self, now: Instant) {
        timeout(&mut self.ac, &mut self.twin, now);
    }

    /// A bottle arrives: at both, unless `skippable` (the attacker's, unauthenticated) and
    /// the AC refused it.
    pub fn receive(
        &mut self,
        now: Instant,
        from: LinkId,
        bytes: &[u8],
        skippable: bool,
    ) -> Result<Result<(), InputError>, String> {
        receive(&mut self.ac, &mut self.twin, now, from, bytes, skippable)
    }

    /// [`Controller::release`] on both.
    pub fn release(
        &mut self,
        now: Instant,
        c: ComputationId,
    ) -> Result<Result<(), CommandError>, String> {
        let a = self.ac.release(now, c);
        same("the AC", "release", a, self.twin.release(now, c))
    }

    /// [`Controller::dismiss`] on both.
    pub fn dismiss(
        &mut self,
        now: Instant,
        d: DeviceId,
    ) -> Result<Result<(), CommandError>, String> {
        let a = self.ac.dismiss(now, d);
        same("the AC", "dismiss", a, self.twin.dismiss(now, d))
    }

    /// Both hold the same: their snapshots agree.
    pub fn check_snapshots(&self) -> Result<(), String> {
        let (a, b) = (self.ac.snapshot(), self.twin.snapshot());
        same("the AC", "snapshot", a, b).map(drop)
    }

    /// Drains both; their events and next deadlines must agree.
    pub fn drain(&mut self) -> Result<Vec<AcOut>, String> {
        let out = drain(&mut self.ac);
        let twin = drain(&mut self.twin);
        let kept = |o: &[AcOut]| -> Vec<AcOut> {
            o.iter()
                .filter(|o| !matches!(o, AcOut::Transmit(..)))
                .cloned()
                .collect()
        };
        same("the AC", "events", kept(&out), kept(&twin))?;
        Ok(out)
    }
}
