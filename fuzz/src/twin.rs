//! A device and its twin: the same configuration, fed the same time, bottles and commands,
//! except the attacker's bottles that the device refused. A refused bottle changes nothing,
//! so the two must then do exactly the same; a difference shows state that a refused bottle
//! changed even where no accessor shows it.

use pcxses_core::device::InstallId;
use pcxses_core::{CommandError, Device, DeviceConfig, DeviceEvent, Input, InputError, Instant};
use pcxses_core::{LinkId, Output};

/// One output of a device, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    /// Bytes to send.
    Transmit(LinkId, Vec<u8>),
    /// An event for the application.
    Event(DeviceEvent),
    /// When to wake the device next.
    Timeout(Instant),
}

/// A device and its twin.
pub struct Twins {
    device: Device,
    twin: Device,
}

fn drain(d: &mut Device) -> Vec<Out> {
    let mut out = Vec::new();
    loop {
        match d.poll_output() {
            Output::Transmit(t) => out.push(Out::Transmit(t.to, t.bytes.to_vec())),
            Output::Event(e) => out.push(Out::Event(e)),
            Output::Timeout(t) => {
                out.push(Out::Timeout(t));
                return out;
            }
        }
    }
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
        let _ = self.device.handle_input(Input::Timeout(now));
        let _ = self.twin.handle_input(Input::Timeout(now));
    }

    /// A bottle arrives. Bottles of the network reach both, which must answer alike. An
    /// attacker's bottle reaches the twin only if the device accepted it: the twin knows
    /// nothing of the attacker's refused bottles, so from then on any difference is their
    /// doing.
    pub fn receive(
        &mut self,
        now: Instant,
        from: LinkId,
        bytes: &[u8],
        attacker: bool,
    ) -> Result<Result<(), InputError>, String> {
        let input = Input::Receive {
            now,
            from,
            bytes,
            identity: None,
        };
        let result = self.device.handle_input(input);
        if attacker && result.is_err() {
            return Ok(result);
        }
        same(
            self.device.name(),
            "receive",
            result,
            self.twin.handle_input(input),
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
