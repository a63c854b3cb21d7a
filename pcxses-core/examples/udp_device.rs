//! A device agent on a blocking `std::net::UdpSocket`, running the computations its AC
//! gives it as toy counters: each steps four times a second and reports its count with
//! `set_state`. It prints one line per event.
//!
//! ```sh
//! cargo run -p pcxses-core --example udp_device -- --ac 127.0.0.1:4700 --name pump
//! ```
//!
//! * `--ac ADDR`: the AC's address (default `127.0.0.1:4700`).
//! * `--name NAME`: the device's name in the AC's registry (default `pump`).
//! * `--exit-after-states N`: once the AC has acknowledged N states, leave (GOOD_BYE) and
//!   exit with status 0 when that is done.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use pcxses_core::{Device, DeviceConfig, DeviceEvent, Epoch, Name, Output};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut ac, mut name, mut exit_after) = ("127.0.0.1:4700".to_string(), "pump".into(), None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--ac" => ac = value,
            "--name" => name = value,
            "--exit-after-states" => exit_after = Some(value.parse::<usize>()?),
            _ => return Err(format!("unknown argument {flag}").into()),
        }
    }
    let ac: SocketAddr = ac.parse()?;
    let socket = UdpSocket::bind(if ac.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
    socket.connect(ac)?;

    // A seed that differs on every start: each incarnation needs its own join nonce.
    let seed = pcxses_core::os_seed().ok_or("no randomness from the system")?;
    let epoch = Epoch::new();
    let mut device = Device::new(DeviceConfig::lan(&name, seed), epoch.now());
    device.handle_timeout(epoch.now()); // the first GOOD_MORNING
    let mut counters: BTreeMap<Name, u64> = BTreeMap::new();
    let (mut acked, mut next_step, mut buf) = (0, epoch.now(), [0u8; 65_535]);
    loop {
        // Drain after every call: send what the device wants sent, act on what happened.
        let deadline = loop {
            match device.poll_output() {
                Output::Transmit(t) => {
                    if let Err(e) = socket.send(t.bytes) {
                        eprintln!("send: {e}");
                    }
                }
                Output::Event(DeviceEvent::Install(install)) => {
                    // A computation moved here, with the last state the AC acknowledged.
                    let lkgs = <[u8; 8]>::try_from(install.lkgs());
                    let count = lkgs.map_or(0, u64::from_le_bytes);
                    println!("Install {} at count {count}", install.computation);
                    counters.insert(install.computation, count);
                    device.answer_install(epoch.now(), install.id, true)?;
                }
                Output::Event(event) => {
                    println!("{event:?}");
                    match event {
                        DeviceEvent::Joined { run, .. } => {
                            counters.extend(run.into_iter().map(|c| (c, 0)))
                        }
                        DeviceEvent::Stop { computation, .. } => {
                            counters.remove(&computation);
                        }
                        DeviceEvent::StateStored { .. } => {
                            acked += 1;
                            if exit_after == Some(acked) {
                                device.leave(epoch.now());
                            }
                        }
                        DeviceEvent::Left => return Ok(()),
                        _ => {}
                    }
                }
                Output::Timeout(at) => break at,
            }
        };
        let now = epoch.now();
        if now >= next_step {
            next_step = now + Duration::from_millis(250);
            // Step only under the fence lease, judged with the time of this step.
            if device.lease_until().is_some_and(|until| now < until) {
                for (computation, count) in &mut counters {
                    *count += 1;
                    if let Err(e) = device.set_state(now, computation, &count.to_le_bytes()) {
                        eprintln!("set_state {computation}: {e}");
                    }
                }
            }
            continue;
        }
        socket.set_read_timeout(epoch.timeout(deadline.min(next_step)))?;
        match socket.recv(&mut buf) {
            Ok(n) => {
                // A refused bottle changed nothing: note it and carry on.
                if let Err(e) = device.handle_receive(epoch.now(), &buf[..n]) {
                    eprintln!("refused a bottle: {e}");
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                device.handle_timeout(epoch.now());
            }
            // ICMP errors (the AC not up yet, or gone) end nothing: the device retries.
            Err(e) => eprintln!("receive: {e}"),
        }
    }
}
