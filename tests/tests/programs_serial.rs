//! A device on a serial line, through `pcxses-bridge` to a real AC: noise on the line in
//! both directions costs the frames it touched, the decoders resynchronise at the next
//! frame and count what they dropped, and the device stays joined.

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant as StdInstant};

use pcxses_core::device::{DeviceEvent, StopReason};
use pcxses_core::serial::{push_serial_frame, SerialDecoder};
use pcxses_core::{Device, DeviceConfig, Epoch, Output, MAX_BOTTLE_LEN};
use pcxses_tests::noise::Noise;
use pcxses_tests::programs::{bridge_executable, is, Proc, World, WAIT};
use serialport::{SerialPort, TTYPort};

/// Frames the device sends over the noisy line: forty HELLO intervals and more, several
/// dead intervals.
const FRAMES: u64 = 40;

#[test]
fn a_device_on_a_noisy_serial_line_stays_joined_and_every_drop_is_counted() {
    let w = World::new("udp", "serial_line", 100);
    let (mut line, device_end) = TTYPort::pair().expect("a pseudo-terminal pair");
    line.set_timeout(Duration::from_millis(5)).unwrap();
    let device_end_path = device_end.name().expect("the pair's name");
    let bridge = Proc::spawn(Command::new(bridge_executable()).args([
        "--serial",
        &device_end_path,
        "--ac",
        &w.addr,
    ]));
    bridge.wait_logged("bridging");

    // This test is gamma: a real device state machine on the other end of the line.
    let epoch = Epoch::new();
    let mut config = DeviceConfig::new("gamma", 7);
    config.hello = Duration::from_millis(w.hello_ms.into());
    config.dead = Duration::from_millis(w.dead_ms.into());
    let mut device = Device::new(config, epoch.now());
    let mut decoder = SerialDecoder::new(MAX_BOTTLE_LEN);
    let mut noise = Noise(1);
    let (mut sent, mut garbage, mut flipped, mut reads_spoiled) = (0u64, 0u64, 0u64, 0u64);
    let mut fenced = false;
    let mut buf = vec![0u8; 4096];
    let started = StdInstant::now();
    while sent < FRAMES {
        assert!(started.elapsed() < WAIT, "{sent} of {FRAMES} frames sent");
        device.handle_timeout(epoch.now());
        let mut out = Vec::new();
        loop {
            match device.poll_output() {
                Output::Transmit(t) => {
                    let mut frame = Vec::new();
                    push_serial_frame(t.bytes, &mut frame);
                    sent += 1;
                    // Garbage before every fifth frame (it costs no frame: the frame's
                    // leading zero ends it), a flipped bit in every seventh.
                    if sent % 5 == 2 {
                        out.extend((0..16).map(|_| noise.draw() as u8));
                        garbage += 1;
                    }
                    if sent % 7 == 3 {
                        let at = 1 + frame.len() / 2;
                        frame[at] ^= 1 << (noise.draw() % 8);
                        flipped += 1;
                    }
                    out.extend_from_slice(&frame);
                }
                Output::Event(DeviceEvent::Stop {
                    reason: StopReason::Fenced,
                    ..
                }) => fenced = true,
                Output::Event(_) => {}
                Output::Timeout(_) => break,
            }
        }
        line.write_all(&out).unwrap();
        let n = match line.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => 0,
            Err(e) => panic!("reading the line: {e}"),
        };
        // A flipped bit in every sixth read from the AC's side.
        if n > 0 && noise.draw().is_multiple_of(6) {
            buf[n / 2] ^= 1 << (noise.draw() % 8);
            reads_spoiled += 1;
        }
        let mut input = &buf[..n];
        while let Some(bottle) = decoder.decode(&mut input) {
            let _ = device.handle_receive(epoch.now(), bottle);
        }
    }

    assert!(device.session().is_some(), "gamma is joined");
    assert!(!fenced, "no HELLO round trips lost for a whole lease");
    let ac = w.ac();
    assert_eq!(
        ac.events(|v| is(v, "device_joined") && v["device"] == "gamma")
            .len(),
        1
    );
    assert!(
        ac.events(|v| is(v, "device_failed")).is_empty(),
        "no false death"
    );
    // Towards the AC, the bridge received every frame but the flipped ones, and dropped
    // those and the garbage (which, with zeros in it, makes more than one frame).
    let counted = |v: &serde_json::Value, key: &str| v[key].as_u64().unwrap_or(0);
    bridge.wait_for("the bridge's counters of the whole run", |v| {
        is(v, "serial")
            && counted(v, "frames") >= sent - flipped
            && counted(v, "dropped") >= garbage + flipped
    });
    bridge.signal("TERM");
    bridge.wait_closed();
    let counters = bridge.events(|v| is(v, "serial"));
    let last = counters.last().expect("the bridge printed its counters");
    assert!(
        counted(last, "frames") >= sent - flipped,
        "{last} of {sent}"
    );
    assert!(counted(last, "dropped") >= garbage + flipped, "{last}");
    assert!(counted(last, "to_serial") >= 20, "{last}");
    assert!(reads_spoiled > 0);
    assert!(
        decoder.stats().dropped > 0 && decoder.stats().frames >= 20,
        "{:?}",
        decoder.stats()
    );
}

#[test]
fn object_code_flooding_a_slow_line_is_bounded_at_the_bridge_and_acks_pass_it() {
    use pcxses_core::wire::{Bottle, GoodBye, HelloAck, ObjectChunk};
    use pcxses_core::SessionId;
    use pcxses_tests::programs::encode;

    /// Object chunks the AC sends at once: four times what the bridge queues.
    const FLOOD: u32 = 4 * 64;
    // This test is the AC, and reads the line only once the flood is over.
    let ac = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ac.set_read_timeout(Some(WAIT)).unwrap();
    let (mut line, device_end) = TTYPort::pair().expect("a pseudo-terminal pair");
    line.set_timeout(Duration::from_millis(200)).unwrap();
    let device_end_path = device_end.name().expect("the pair's name");
    let ac_addr = ac.local_addr().unwrap().to_string();
    let bridge = Proc::spawn(Command::new(bridge_executable()).args([
        "--serial",
        &device_end_path,
        "--ac",
        &ac_addr,
    ]));
    bridge.wait_logged("bridging");
    let session = SessionId(5);
    let mut frame = Vec::new();
    push_serial_frame(&encode(&Bottle::GoodBye(GoodBye { session })), &mut frame);
    line.write_all(&frame).unwrap();
    let mut buf = vec![0u8; 2048];
    let (_, bridge_addr) = ac.recv_from(&mut buf).expect("the device's bottle");

    for index in 0..FLOOD {
        let data = [index as u8; 1000];
        let chunk = ObjectChunk {
            session,
            morph: 1,
            index,
            data: &data,
        };
        ac.send_to(&encode(&Bottle::ObjectChunk(chunk)), bridge_addr)
            .unwrap();
    }
    let ack = encode(&Bottle::HelloAck(HelloAck { session, seq: 1 }));
    ac.send_to(&ack, bridge_addr).unwrap();
    let counted = |v: &serde_json::Value, key: &str| v[key].as_u64().unwrap_or(0);
    let counters = bridge.wait_for("the bridge to drop object code", |v| {
        is(v, "serial") && counted(v, "queue_dropped") > 0
    });

    // The line, read to its end: the ack overtook the object code still queued.
    let mut decoder = SerialDecoder::new(MAX_BOTTLE_LEN);
    let mut bottles = Vec::new();
    loop {
        let n = match line.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
            Err(e) => panic!("reading the line: {e}"),
        };
        let mut input = &buf[..n];
        while let Some(bottle) = decoder.decode(&mut input) {
            bottles.push(bottle.to_vec());
        }
    }
    let at = bottles.iter().position(|b| *b == ack).expect("the ack");
    let chunks = bottles.len() - 1;
    assert!(
        chunks > at,
        "object code waited behind the ack: {at} of {chunks} before it"
    );
    let dropped = counted(&counters, "queue_dropped");
    assert!(
        chunks as u64 <= u64::from(FLOOD) - dropped,
        "{chunks} chunks on the line, {dropped} dropped"
    );
    assert_eq!(decoder.stats().dropped, 0);
}
