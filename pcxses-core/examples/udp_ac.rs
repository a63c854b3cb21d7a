//! An Area Controller on one blocking `std::net::UdpSocket` for all its devices, each
//! device's address standing for a `LinkId` in a small table. Each registered device runs
//! one computation, `counter-NAME` (see the `udp_device` example). It prints
//! `listening on ADDR`, then one line per event.
//!
//! ```sh
//! cargo run -p pcxses-core --example udp_ac -- --listen 127.0.0.1:4700 --device pump
//! ```
//!
//! * `--listen ADDR`: where to listen (default `127.0.0.1:4700`; port 0 picks one).
//! * `--device NAME`: registers a device; repeat for more (default: one, `pump`).
//! * `--exit-after-states N`: exit with status 0 once N states were stored and no device
//!   is joined any more (each left, or was declared dead).
//! * `--time-limit SECS`: exit with status 1 if that has not happened after SECS seconds.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use pcxses_core::controller::{ComputationSpec, DeviceSpec};
use pcxses_core::{
    Controller, ControllerConfig, ControllerEvent as Event, Epoch, LinkId, MemoryRepository, Output,
};

/// Most device addresses the table holds: datagrams from further addresses are dropped.
const MAX_LINKS: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut listen, mut names, mut exit_after, mut limit) =
        ("127.0.0.1:4700".into(), vec![], None, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = value,
            "--device" => names.push(value),
            "--exit-after-states" => exit_after = Some(value.parse::<usize>()?),
            "--time-limit" => limit = Some(Duration::from_secs(value.parse()?)),
            _ => return Err(format!("unknown argument {flag}").into()),
        }
    }
    if names.is_empty() {
        names.push("pump".to_string());
    }
    let (devices, computations) = (names.iter())
        .map(|n| {
            let counter = format!("counter-{n}");
            let spec = DeviceSpec::new(n, &[&counter]);
            (spec, ComputationSpec::new(&counter, "counter"))
        })
        .unzip();
    let mut repo = MemoryRepository::default();
    repo.insert("counter", b"the counter's code".to_vec());
    let seed = pcxses_core::os_seed().ok_or("no randomness from the system")?;
    let config = ControllerConfig::lan(seed, devices, computations);
    let epoch = Epoch::new();
    let mut ac = Controller::new(config, repo, epoch.now())?;
    let socket = UdpSocket::bind(&listen)?;
    println!("listening on {}", socket.local_addr()?);
    let give_up = limit.map(|limit| epoch.now() + limit);

    let mut links: Vec<SocketAddr> = Vec::new(); // `LinkId(i)` is `links[i]`
                                                 // A new address whose first datagram was refused keeps no place once its answer left:
                                                 // forged sources cannot fill the table.
    let mut unaccepted = false;
    let (mut stored, mut joined, mut buf) = (0, BTreeSet::new(), [0u8; 65_535]);
    loop {
        // Drain after every call: send what the AC wants sent, report what happened.
        let deadline = loop {
            match ac.poll_output() {
                Output::Transmit(t) => {
                    let sent = socket.send_to(t.bytes, links[t.to.0 as usize]);
                    if let Err(e) = sent {
                        eprintln!("send: {e}");
                    }
                }
                Output::Event(event) => {
                    match event {
                        Event::DeviceJoined { device, .. } => {
                            joined.insert(device);
                        }
                        Event::DeviceLeft { device, .. } | Event::DeviceFailed { device, .. } => {
                            joined.remove(&device);
                        }
                        Event::StateStored { .. } => stored += 1,
                        _ => {}
                    }
                    println!("{event:?}");
                }
                Output::Timeout(at) => break at,
            }
        };
        if std::mem::take(&mut unaccepted) {
            links.pop();
        }
        if exit_after.is_some_and(|n| stored >= n) && joined.is_empty() {
            return Ok(());
        }
        if give_up.is_some_and(|at| epoch.now() >= at) {
            eprintln!("time limit reached with {stored} states stored");
            std::process::exit(1);
        }
        socket.set_read_timeout(epoch.timeout(give_up.map_or(deadline, |g| g.min(deadline))))?;
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                // Each address is a link: its place in the table, where a new one is added.
                let i = links.iter().position(|&a| a == from).unwrap_or(links.len());
                if i == MAX_LINKS {
                    eprintln!("address table full: dropped a datagram from {from}");
                    continue;
                }
                let new = i == links.len();
                if new {
                    links.push(from);
                }
                // A refused bottle changed nothing: note it and carry on.
                let link = LinkId(i as u64);
                if let Err(e) = ac.handle_receive(epoch.now(), link, &buf[..n], None) {
                    eprintln!("refused a bottle from {from}: {e}");
                    unaccepted = new;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                ac.handle_timeout(epoch.now());
            }
            Err(e) => eprintln!("receive: {e}"),
        }
    }
}
