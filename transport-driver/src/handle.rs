//! What an application holds of a running machine, whatever the transport.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use pcxses_core::controller::ControllerCommand;
use pcxses_core::device::DeviceCommand;
use pcxses_core::{ControllerEvent, DeviceEvent, SharedLease, Stats};
use smol::channel::{Receiver, Sender};
use smol::Task;

use crate::limits::ConnectionStats;
use crate::refusal::Refusal;
use crate::status::StatusSource;

/// A running AC: its events, its commands, and the task that drives it.
pub struct ControllerHandle {
    /// Protocol events, in order. When the application falls [`crate::EVENT_QUEUE`] events
    /// behind, further ones are dropped (and counted in the log) rather than stall the AC.
    pub events: Receiver<ControllerEvent>,
    /// Refusals, at most one per [`crate::REFUSAL_PERIOD`] (the others counted in the
    /// next); when the application falls behind, further ones are counted, not queued.
    pub refusals: Receiver<Refusal>,
    /// Commands to the controller; closing it stops the controller.
    pub commands: Sender<ControllerCommand>,
    /// The address the transport serves on.
    pub local_addr: SocketAddr,
    /// The controller's counters, refreshed after every batch of input.
    pub stats: Arc<Mutex<Stats>>,
    /// What the connection bounds did ([`crate::ConnectionLimits`]), for a transport with
    /// connections; `None` for one without (UDP).
    pub connections: Option<Arc<ConnectionStats>>,
    /// Status snapshots of the controller, answered by the driving task between batches.
    pub status: StatusSource,
    /// The driving task; it ends when `commands` is closed, with the final counters.
    pub task: Task<io::Result<Stats>>,
}

/// A running device agent: its events, its commands, its fence lease, and the task that
/// drives it.
pub struct DeviceHandle {
    /// Protocol events, in order; the agent waits for room rather than drop one.
    /// [`DeviceEvent::Stop`] must be acted on at once.
    pub events: Receiver<DeviceEvent>,
    /// Commands to the agent; closing it stops the agent.
    pub commands: Sender<DeviceCommand>,
    /// The device's fence lease ([`pcxses_core::Device::lease_until`]), published before
    /// and after every drain of its output: check it before every step of a computation.
    pub lease: SharedLease,
    /// The driving task; it ends when `commands` is closed, with the final counters.
    pub task: Task<io::Result<Stats>>,
}
