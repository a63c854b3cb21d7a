//! The device's run loop: one connection to the AC at a time, made again with backoff and
//! jitter whenever it ends.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pcxses_core::device::DeviceCommand;
use pcxses_core::{Device, DeviceEvent, Epoch, InputError, LinkId, SharedLease, Stats, Transmit};
use smol::channel::{bounded, Receiver};
use smol::future::FutureExt;
use smol::{Executor, Task, Timer};

use crate::acs::Acs;
use crate::backoff::Backoff;
use crate::connection::{Connection, Opened, SendError};
use crate::drain::{drain, Events, Transmitter};
use crate::frames::{Frames, Inbound};
use crate::handle::DeviceHandle;
use crate::throttle::{Throttle, WARN_PERIOD};
use crate::timer::Alarm;
use crate::EVENT_QUEUE;

/// Commands waiting for the agent, at most.
const COMMAND_QUEUE: usize = 256;

/// Bottles read and not yet handed to the device, at most.
const INBOUND_QUEUE: usize = 1_024;

/// How long a stopping device waits for its last bottles (a GOOD_BYE) to be written.
const FLUSH_WAIT: Duration = Duration::from_millis(200);

/// How long one attempt to connect may take: an AC whose host is gone answers nothing, and
/// the next AC must be tried before the device's fence lease runs out.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a device goes without a session before it warns that the AC does not answer.
const NO_ANSWER_WARNING: Duration = Duration::from_secs(10);

/// How a device reaches its area's ACs. A datagram transport "connects" at once, to a
/// socket that never closes.
pub trait Connect: Send + Sync + 'static {
    /// The connection it makes.
    type Connection: Connection;

    /// The area's ACs, in the order the device tries them.
    fn acs(&self) -> &Acs;

    /// One attempt to connect to the AC at `ac`, one of [`Connect::acs`]. The connection's
    /// reading delivers to `frames` ([`Frames::read`], [`Frames::deliver`]). A failed
    /// attempt is followed, after a backoff, by one to the next AC.
    fn connect(
        &self,
        ac: SocketAddr,
        frames: &Frames,
    ) -> impl Future<Output = io::Result<Opened<Self::Connection>>> + Send;

    /// The agent stopped and dropped its connection: what is left to do before its task
    /// ends (let a close reach the AC).
    fn close(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Drives `device` on `epoch`'s clock over the connections `connect` makes, in a task of
/// `ex`. It connects in the background; until the first connection opens the device's
/// timers wait, so that its first GOOD_MORNING leaves on a connection and the join's lease
/// is counted from a GOOD_MORNING that left. On every new connection the device is told
/// ([`Device::relink`]), so that a session carried on moves to it.
///
/// With more than one AC ([`Connect::acs`]: a leader and its standbys), a failed attempt
/// to connect is followed by one to the next AC, and when the AC in use stops answering
/// ([`Device::ac_silent`]) the device leaves its connection for one to the next, at once,
/// and carries its session there.
pub fn spawn_device<T: Connect>(
    ex: &Arc<Executor<'static>>,
    device: Device,
    epoch: Epoch,
    connect: T,
) -> DeviceHandle {
    let (event_tx, events) = bounded(EVENT_QUEUE);
    let (commands, command_rx) = bounded(COMMAND_QUEUE);
    let lease = SharedLease::default();
    let agent = Agent {
        ex: ex.clone(),
        device,
        epoch,
        connect: Arc::new(connect),
        lease: lease.clone(),
        at: 0,
    };
    let task = ex.spawn(agent.run(Events::waiting(event_tx), command_rx));
    DeviceHandle {
        events,
        commands,
        lease,
        task,
    }
}

/// The connection in use.
struct Current<C> {
    link: LinkId,
    connection: C,
    _io: Task<()>,
}

impl<C: Connection> Transmitter for Option<Current<C>> {
    async fn transmit(&mut self, t: Transmit<'_>) {
        // Without a connection the bottle is lost, as on a lossy network: the device
        // retransmits what matters.
        let Some(current) = self else {
            return;
        };
        match current.connection.send(t.kind, t.bytes) {
            Ok(()) => {}
            Err(SendError::Full) => tracing::debug!("write buffer full: dropped a bottle"),
            Err(SendError::Closed) => *self = None,
        }
    }
}

struct Agent<T> {
    ex: Arc<Executor<'static>>,
    device: Device,
    epoch: Epoch,
    connect: Arc<T>,
    lease: SharedLease,
    /// The AC in use or being dialed: its index in the list.
    at: usize,
}

impl<T: Connect> Agent<T> {
    /// The address of the AC in use or being dialed.
    fn ac(&self) -> SocketAddr {
        self.connect.acs().get(self.at)
    }

    /// A bottle from the AC refused: one that failed its authentication says this device
    /// cannot authenticate its AC (another key, or someone else answering), at `WARN`.
    fn refused(&self, e: InputError, warn: &mut Throttle) {
        let authentication = matches!(
            e,
            InputError::Unauthenticated | InputError::Unauthorized | InputError::Replayed
        );
        if !authentication {
            tracing::debug!(error = %e, "refused a bottle");
        } else if let Some(suppressed) = warn.allow(std::time::Instant::now()) {
            tracing::warn!(
                ac = %self.ac(),
                error = %e,
                suppressed,
                "a bottle from the AC failed authentication: is this device's key the one the AC holds for it?"
            );
        }
    }

    /// Warns when the device has had no session for [`NO_ANSWER_WARNING`]: its
    /// GOOD_MORNINGs go unanswered.
    fn unanswered(&self, since: &mut Option<std::time::Instant>, warn: &mut Throttle) {
        let now = std::time::Instant::now();
        if self.device.session().is_some() {
            *since = None;
            return;
        }
        let since = *since.get_or_insert(now);
        if now.duration_since(since) < NO_ANSWER_WARNING {
            return;
        }
        if let Some(suppressed) = warn.allow(now) {
            tracing::warn!(
                ac = %self.ac(),
                for_s = now.duration_since(since).as_secs(),
                suppressed,
                "no session with the AC: is it running at this address, and does it know this device?"
            );
        }
    }
}

enum Wake<C> {
    Command(Option<DeviceCommand>),
    Timer,
    Opened(Dialed<C>),
    Inbound(Inbound),
}

impl<T: Connect> Agent<T> {
    async fn run(
        mut self,
        mut events: Events<DeviceEvent>,
        commands: Receiver<DeviceCommand>,
    ) -> io::Result<Stats> {
        let (inbound_tx, inbound) = bounded(INBOUND_QUEUE);
        // One backoff across connections: a connection the AC closes at once (refused,
        // evicted, expired) is followed by a wait as a failed attempt is, and only a
        // connection the device accepted a bottle from resets it.
        let seed = pcxses_core::os_seed().unwrap_or(0) ^ self.epoch.now().as_micros();
        let mut backoff = Some(Backoff::new(seed));
        let mut links = 0u64;
        let mut connecting: Option<Task<Dialed<T::Connection>>> = None;
        let mut current: Option<Current<T::Connection>> = None;
        // Whether a connection opened yet.
        let mut connected = false;
        // Whether the next dial waits first: a connection just ended.
        let mut after_loss = false;
        // Since when the device has had no session, and the warnings about it and about
        // bottles that did not authenticate.
        let mut unjoined_since = Some(std::time::Instant::now());
        let mut warn = Throttle::new(WARN_PERIOD);
        let mut alarm = Alarm::new();
        loop {
            // The lease as the last input left it, before its events reach the application.
            self.lease.publish(self.device.lease_until());
            let wake_at = drain(&mut self.device, &mut current, &mut events).await;
            self.lease.publish(self.device.lease_until());
            if current.is_none() && connecting.is_none() {
                links += 1;
                let frames = Frames::new(LinkId(links), inbound_tx.clone());
                let retry = backoff.take().unwrap_or_else(|| Backoff::new(seed));
                // After a connection ended, the first attempt waits too.
                let dialing = dial(self.connect.clone(), frames, retry, after_loss, self.at);
                connecting = Some(self.ex.spawn(dialing));
            }
            let epoch = self.epoch;
            let wake = async { Wake::Command(commands.recv().await.ok()) }
                .or(async {
                    if !connected {
                        std::future::pending::<()>().await;
                    }
                    alarm.wait(epoch, wake_at).await;
                    Wake::Timer
                })
                .or(async {
                    match connecting.as_mut() {
                        Some(task) => Wake::Opened(task.await),
                        None => std::future::pending().await,
                    }
                })
                .or(async {
                    Wake::Inbound(inbound.recv().await.expect("the agent holds a sender"))
                })
                .await;
            let now = self.epoch.now();
            match wake {
                Wake::Opened(Dialed { opened, retry, at }) => {
                    connecting = None;
                    backoff = Some(retry);
                    self.at = at;
                    let frames = Frames::new(LinkId(links), inbound_tx.clone());
                    let io = opened.io;
                    current = Some(Current {
                        link: frames.link(),
                        connection: opened.connection,
                        _io: self.ex.spawn(async move {
                            io.await;
                            frames.closed().await;
                        }),
                    });
                    connected = true;
                    tracing::debug!(ac = %self.ac(), "connected");
                    self.device.relink(now);
                }
                Wake::Inbound(Inbound::Frame(link, bytes)) => {
                    if current.as_ref().is_some_and(|c| c.link == link) {
                        match self.device.handle_receive(now, &bytes) {
                            Ok(()) => backoff.as_mut().map_or((), Backoff::reset),
                            Err(e) => self.refused(e, &mut warn),
                        }
                    }
                }
                Wake::Inbound(Inbound::Closed(link)) => {
                    if current.as_ref().is_some_and(|c| c.link == link) {
                        tracing::debug!(ac = %self.ac(), "connection lost");
                        current = None;
                        after_loss = true;
                    }
                }
                Wake::Timer => {
                    if wake_at <= now {
                        self.device.handle_timeout(now);
                    }
                    self.unanswered(&mut unjoined_since, &mut warn);
                }
                Wake::Command(Some(command)) => {
                    if let Err(e) = command.apply(&mut self.device, now) {
                        tracing::warn!(error = %e, "command refused");
                    }
                }
                Wake::Command(None) => {
                    drop(connecting);
                    if let Some(Current {
                        connection, _io, ..
                    }) = current
                    {
                        // What the last drain queued (a GOOD_BYE) still leaves: without its
                        // connection the writer ends once its queue is written.
                        drop(connection);
                        _io.or(async {
                            Timer::after(FLUSH_WAIT).await;
                        })
                        .await;
                    }
                    self.connect.close().await;
                    return Ok(*self.device.stats());
                }
            }
            if current.is_some()
                && self.connect.acs().count() > 1
                && self.device.ac_silent(self.epoch.now())
            {
                let silent = self.ac();
                self.at = self.at.wrapping_add(1);
                tracing::info!(%silent, next = %self.ac(), "the AC does not answer: moving to the next");
                current = None;
                after_loss = false;
            }
        }
    }
}

/// A connection made, the backoff to go on with, and the index of the AC it reaches.
struct Dialed<C> {
    opened: Opened<C>,
    retry: Backoff,
    at: usize,
}

/// Connects with `connect`, from the AC at index `at` on, to the next after every failed
/// attempt, retrying with `backoff`, after one wait of it first when `after_loss` (a
/// connection just ended).
async fn dial<T: Connect>(
    connect: Arc<T>,
    frames: Frames,
    mut backoff: Backoff,
    after_loss: bool,
    mut at: usize,
) -> Dialed<T::Connection> {
    if after_loss {
        Timer::after(backoff.wait()).await;
    }
    let mut warn = Throttle::new(WARN_PERIOD);
    loop {
        let ac = connect.acs().get(at);
        let attempt = async { Some(connect.connect(ac, &frames).await) };
        let bounded = attempt.or(async {
            Timer::after(CONNECT_TIMEOUT).await;
            None
        });
        match bounded
            .await
            .unwrap_or_else(|| Err(io::ErrorKind::TimedOut.into()))
        {
            Ok(opened) => {
                return Dialed {
                    opened,
                    retry: backoff,
                    at,
                }
            }
            Err(e) => {
                if let Some(suppressed) = warn.allow(std::time::Instant::now()) {
                    tracing::warn!(%ac, error = %e, suppressed, "cannot connect to the AC");
                }
            }
        }
        at = at.wrapping_add(1);
        Timer::after(backoff.wait()).await;
    }
}
