//! The driver end to end over a transport of its own kind: connections are pairs of
//! connected Unix sockets, so a test decides when a connection opens and when it is cut.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pcxses_core::controller::{Census, Liveness};
use pcxses_core::device::DeviceCommand;
use pcxses_core::{ControllerEvent, Device, DeviceEvent, Epoch};
use pcxses_driver::testing::{ac_event, controller, device_config, eventually, joined, loopback};
use pcxses_driver::{
    spawn_controller, spawn_device, Acs, Arrivals, Connect, ConnectionLimits, ControllerHandle,
    DeviceHandle, Frames, Opened, Pipe, Server, StatusSource,
};
use smol::channel::{unbounded, Receiver, Sender};
use smol::net::unix::UnixStream;
use smol::Executor;

/// The network: the AC's ends of the connections devices make, and the devices' ends.
struct Lab {
    to_ac: Sender<UnixStream>,
    /// Attempts to connect, so far.
    attempts: AtomicU32,
    /// Attempts that fail before one succeeds.
    failing: u32,
    /// The device's end of its latest connection.
    latest: Mutex<Option<UnixStream>>,
    /// The AC each attempt was made to, in order.
    dialed: Mutex<Vec<SocketAddr>>,
}

/// The area's three ACs, all served by the lab's one AC.
fn acs() -> Acs {
    Acs::new((1..=3).map(|port| SocketAddr::from(([127, 0, 0, 1], port)))).unwrap()
}

impl Lab {
    /// Cuts the latest connection, both ways.
    fn cut(&self) {
        let latest = self.latest.lock().unwrap();
        latest
            .as_ref()
            .expect("a connection")
            .shutdown(Shutdown::Both)
            .unwrap();
    }
}

struct Dial(Arc<Lab>, Acs);

impl Connect for Dial {
    type Connection = Pipe;

    fn acs(&self) -> &Acs {
        &self.1
    }

    async fn connect(&self, ac: SocketAddr, frames: &Frames) -> io::Result<Opened<Pipe>> {
        self.0.dialed.lock().unwrap().push(ac);
        if self.0.attempts.fetch_add(1, Relaxed) < self.0.failing {
            return Err(io::ErrorKind::ConnectionRefused.into());
        }
        let (ac_end, device_end) = UnixStream::pair()?;
        self.0.to_ac.send(ac_end).await.map_err(io::Error::other)?;
        *self.0.latest.lock().unwrap() = Some(device_end.clone());
        Ok(Opened::stream(device_end, frames.clone()))
    }
}

async fn accept(from: Receiver<UnixStream>, arrivals: Arrivals<Pipe>) {
    while let Ok(stream) = from.recv().await {
        if !arrivals
            .open(None, |frames| Opened::stream(stream, frames))
            .await
        {
            return;
        }
    }
}

/// An AC and `dev0` on a lab where connecting fails `failing` times first.
struct World {
    lab: Arc<Lab>,
    ac: ControllerHandle,
    dev0: DeviceHandle,
}

/// Starts a [`World`], `dev0` retrying its join every `join_retry_ms`, and waits until
/// `dev0` joined.
async fn joined_world(ex: &Arc<Executor<'static>>, failing: u32, join_retry_ms: u32) -> World {
    let epoch = Epoch::new();
    let (to_ac, from) = unbounded();
    let lab = Arc::new(Lab {
        to_ac,
        attempts: AtomicU32::new(0),
        failing,
        latest: Mutex::new(None),
        dialed: Mutex::default(),
    });
    let server = Server::new(ex, loopback(), ConnectionLimits::default(), |arrivals| {
        accept(from, arrivals)
    });
    let ac = spawn_controller(ex, controller(&epoch), epoch, server);
    let mut config = device_config("dev0", 7);
    config.join_retry = Duration::from_millis(join_retry_ms.into());
    config.join_retry_max = config.join_retry_max.max(config.join_retry);
    let device = Device::new(config, epoch.now());
    let dev0 = spawn_device(ex, device, epoch, Dial(lab.clone(), acs()));
    joined(&ac.events, 0).await;
    World { lab, ac, dev0 }
}

#[test]
fn the_first_good_morning_waits_for_the_first_connection() {
    let ex = Arc::new(Executor::new());
    smol::block_on(ex.run(async {
        // A GOOD_MORNING sent before the connection opened would be lost, and the next one
        // a minute away.
        let w = joined_world(&ex, 3, 60_000).await;
        assert_eq!(w.lab.attempts.load(Relaxed), 4);
        // Each failed attempt is followed by one to the next AC, round the list.
        let expected: Vec<SocketAddr> = (0..4).map(|i| acs().get(i)).collect();
        assert_eq!(*w.lab.dialed.lock().unwrap(), expected);
        let connections = w.ac.connections.as_ref().expect("a server has connections");
        assert_eq!(connections.open.load(Relaxed), 1);
    }));
}

#[test]
fn a_cut_connection_is_made_again_and_the_session_moves_to_it() {
    let ex = Arc::new(Executor::new());
    smol::block_on(ex.run(async {
        let w = joined_world(&ex, 0, 20).await;
        w.lab.cut();
        eventually(10, "a second connection", || {
            w.lab.attempts.load(Relaxed) >= 2
        })
        .await;
        let state = DeviceCommand::SetState {
            computation: "comp0".into(),
            state: b"after the cut".to_vec(),
        };
        w.dev0.commands.send(state).await.unwrap();
        // The state arrives on the new connection, in the session of the first.
        let stored = ac_event(&w.ac.events, 10, "the state", |e| {
            assert!(!matches!(e, ControllerEvent::DeviceJoined { .. }), "{e:?}");
            matches!(e, ControllerEvent::StateStored { .. })
        })
        .await;
        assert!(matches!(stored, ControllerEvent::StateStored { device, .. } if device.0 == 0));
        assert_eq!(w.ac.stats.lock().unwrap().wrong_link, 0);
    }));
}

#[test]
fn closing_the_commands_stops_the_machines_with_their_counters() {
    let ex = Arc::new(Executor::new());
    smol::block_on(ex.run(async {
        let w = joined_world(&ex, 0, 20).await;
        while !matches!(w.dev0.events.recv().await, Ok(DeviceEvent::Joined { .. })) {}
        w.dev0.commands.close();
        let device_stats = w.dev0.task.await.unwrap();
        assert!(device_stats.received >= 1, "{device_stats:?}");
        w.ac.commands.close();
        let ac_stats = w.ac.task.await.unwrap();
        assert!(ac_stats.received >= 1, "{ac_stats:?}");
    }));
}

#[test]
fn the_run_loop_answers_status_requests_until_it_stops() {
    let ex = Arc::new(Executor::new());
    smol::block_on(ex.run(async {
        let w = joined_world(&ex, 0, 20).await;
        let source = w.ac.status.clone();
        let status = source.status().await.expect("a running AC answers");
        let dev0 = &status.controller.devices[0];
        assert_eq!(dev0.liveness, Liveness::Alive);
        assert!(dev0.session.is_some());
        assert_eq!(status.addrs.len(), status.controller.devices.len());
        // This transport does not know its peers' addresses.
        assert_eq!(status.addrs[0], None);
        let census = source.census().await.expect("a running AC answers");
        assert_eq!(census.alive, 1);
        // Many askers at once: each gets its answer.
        let answers = many_at_once(&source).await;
        assert!(answers.iter().all(|c| c.is_some_and(|c| c.alive == 1)));
        w.ac.commands.close();
        w.ac.task.await.unwrap();
        assert!(source.status().await.is_none());
        assert!(source.census().await.is_none());
    }));
}

/// Sixteen census requests in flight at once, more than the queue holds.
async fn many_at_once(source: &StatusSource) -> Vec<Option<Census>> {
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let source = source.clone();
            smol::spawn(async move { source.census().await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await);
    }
    answers
}
