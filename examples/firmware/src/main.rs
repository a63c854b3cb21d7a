//! A PCXSES device as Cortex-M firmware.
//!
//! The core's [`Device`] runs on the MCU's clock (SysTick) and its UART, which carries
//! the device's bottles in serial frames (`pcxses_core::serial`: COBS with a CRC-32C) to a
//! `pcxses-bridge` on the host, which passes them on to the AC. The device hosts counters
//! natively and, with the `wasm` feature, runs the WebAssembly modules MORPHs bring; its
//! name, keys and intervals come from the provisioning record ([`provision`]).
//!
//! One loop: it reads what the UART received, feeds whole frames to the device, runs its
//! timers, sends what it has to send, and steps the computations every tick, each only
//! while the fence lease permits that step. With nothing to do it sleeps (`wfi`) until the
//! UART receives a byte or the clock's next millisecond.
//!
//! Events go out as JSON lines through semihosting ([`report`]); with them, every second
//! in which they changed, a `memory` line: the heap in use, its high-water mark over the
//! last second and since boot, the deepest the stack has been, and the serial decoder's
//! counters.
//!
//! # Building and running
//!
//! The firmware is built on its own, from this directory, for a Cortex-M4F by default
//! (`.cargo/config.toml`) or for a Cortex-M0+ (`--target thumbv6m-none-eabi`, without the
//! `wasm` feature: `wasmi` needs atomics that part lacks). Its features choose what is
//! linked: `psk` (pre-shared-key mode), `signing` (MORPHs must be signed with the
//! provisioned key), `wasm` (shipped WebAssembly computations) and `semihosting` (event
//! lines, on by default).
//!
//! ```sh
//! cargo build --release --features signing,wasm
//! qemu-system-arm -M mps2-an386 -nographic -monitor none \
//!     -semihosting-config enable=on,target=native -serial pty \
//!     -kernel target/thumbv7em-none-eabihf/release/pcxses-firmware \
//!     -device loader,file=RECORD,addr=0x3ff000,force-raw=on
//! pcxses-bridge --serial /dev/pts/N --ac 127.0.0.1:4700
//! ```
//!
//! where `RECORD` is the provisioning record ([`provision`]; `pcxses_demo::mcu::Provision`
//! writes one) and `/dev/pts/N` the pseudo-terminal QEMU names on its first line. The
//! Cortex-M0+ image runs on `-M mps2-an385`.
#![no_std]
#![no_main]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod clock;
mod computations;
mod heap;
mod provision;
mod report;
mod stack;
mod uart;

use alloc::vec::Vec;
use core::time::Duration;

use cortex_m_rt::entry;
use pcxses_core::serial::{push_serial_frame, SerialDecoder, SerialStats};
use pcxses_core::{Device, DeviceEvent, Instant, Output};

use clock::Clock;
use computations::{Computations, Step};
use report::Report;
use uart::Uart;

/// How often the `memory` line is considered.
const MEMORY_EVERY: Duration = Duration::from_secs(1);

#[entry]
fn main() -> ! {
    heap::init();
    let Some(core) = cortex_m::Peripherals::take() else {
        halt()
    };
    let mut clock = Clock::start(core.SYST);
    let (node, tick) = boot(&mut clock, core.NVIC);
    let mut next_tick = clock.now() + tick;
    let mut next_memory = clock.now();
    loop {
        let now = clock.now();
        let mut busy = node.receive(now);
        if now >= node.wake_at {
            node.device.handle_timeout(now);
        }
        busy |= node.drain(&mut clock);
        if now >= next_tick {
            next_tick = (next_tick + tick).max(now);
            node.step(&mut clock);
            busy |= node.drain(&mut clock);
        }
        if now >= next_memory {
            next_memory = now + MEMORY_EVERY;
            node.report_memory(now);
        }
        if !busy && node.wake_at > now {
            // A byte, or the next millisecond, wakes the core.
            cortex_m::asm::wfi();
        }
    }
}

/// Reads the provisioning record and sets the node up, in a static of its own: neither
/// its bytes nor the temporaries of setting it up stay on the loop's stack.
#[inline(never)]
fn boot(clock: &mut Clock, mut nvic: cortex_m::peripheral::NVIC) -> (&'static mut Node, Duration) {
    let mut report = Report::open();
    let provision = match provision::read() {
        Ok(p) => p,
        Err(e) => {
            report.event("provision_invalid", clock.now(), |l| {
                l.str("reason", e.as_str());
            });
            halt()
        }
    };
    let mut config = provision.config;
    // The record's seed, mixed with the microseconds this boot took: on a part with a
    // hardware random number generator, mix its output in as well.
    let boot_us = clock.now().as_micros();
    config.seed ^= boot_us.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    let node = Node {
        decoder: SerialDecoder::new(config.limits.max_bottle),
        device: Device::new(config, clock.now()),
        computations: Computations::default(),
        uart: Uart::take(&mut nvic),
        frame: Vec::new(),
        report,
        wake_at: Instant::from_micros(0),
        memory: (0, 0, 0, 0, SerialStats::default()),
        frames: provision.frames,
        steps: 0,
    };
    match cortex_m::singleton!(: Node = node) {
        Some(node) => (node, provision.tick),
        None => halt(),
    }
}

/// The device, its computations and its line.
struct Node {
    device: Device,
    computations: Computations,
    uart: Uart,
    decoder: SerialDecoder,
    /// The frame being sent.
    frame: Vec<u8>,
    report: Report,
    /// When the device's timers are next due.
    wake_at: Instant,
    /// The last `memory` line's figures: heap in use, its high-water mark since the line
    /// before and since boot, stack depth, the serial decoder's counters.
    memory: (usize, usize, usize, usize, SerialStats),
    /// Every how many steps a frame is reported (0: never), and the steps so far.
    frames: u32,
    steps: u32,
}

impl Node {
    /// Feeds the device the frames the UART received; whether a byte arrived.
    fn receive(&mut self, now: Instant) -> bool {
        let mut bytes = [0u8; 64];
        let mut n = 0;
        while n < bytes.len() {
            match self.uart.read_byte() {
                Some(b) => {
                    bytes[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        let mut input = &bytes[..n];
        while let Some(bottle) = self.decoder.decode(&mut input) {
            // A refused bottle was counted by the device and changed nothing.
            let _ = self.device.handle_receive(now, bottle);
        }
        n > 0
    }

    /// Sends what the device has to send and acts on its events, until it has nothing
    /// more; whether there was anything.
    fn drain(&mut self, clock: &mut Clock) -> bool {
        let mut any = false;
        loop {
            let event = match self.device.poll_output() {
                Output::Transmit(t) => {
                    self.frame.clear();
                    push_serial_frame(t.bytes, &mut self.frame);
                    self.uart.write_all(&self.frame);
                    any = true;
                    continue;
                }
                Output::Event(e) => e,
                Output::Timeout(at) => {
                    self.wake_at = at;
                    return any;
                }
            };
            // What the event asks of the device comes out of the same drain.
            any = true;
            self.on_event(clock.now(), event);
        }
    }

    /// Acts on one event of the device, and reports it.
    fn on_event(&mut self, now: Instant, event: DeviceEvent) {
        match event {
            DeviceEvent::Joined { session, run, .. } => {
                for name in &run {
                    self.computations.start(name);
                }
                self.report.event("joined", now, |l| {
                    l.u64("session", session.0.into())
                        .strs("run", run.iter().map(|n| n.as_str()));
                });
            }
            DeviceEvent::StateStored {
                computation,
                version,
            } => {
                let state = self.computations.state_of(&computation, version);
                self.report.event("state_stored", now, |l| {
                    l.str("computation", &computation)
                        .u64("version", version.into());
                    if let Some(state) = state {
                        l.hex("state", state).count(state);
                    }
                });
            }
            DeviceEvent::Install(install) => {
                let started = self.computations.install(&install);
                self.report.event("install", now, |l| {
                    l.str("computation", &install.computation)
                        .str("replaces", &install.replaces)
                        .hex("lkgs", install.lkgs())
                        .count(install.lkgs())
                        .u64("lkgs_bytes", install.lkgs().len() as u64)
                        .u64("lkgs_version", install.lkgs_version.into())
                        .u64(
                            "code_bytes",
                            install.objects().map(|(_, b)| b.len() as u64).sum(),
                        );
                    if let Err(e) = &started {
                        l.str("refused", e);
                    }
                });
                let _ = self.device.answer_install(now, install.id, started.is_ok());
            }
            DeviceEvent::Stop {
                computation,
                reason,
            } => {
                self.computations.stop(&computation);
                self.report.event("stop", now, |l| {
                    l.str("computation", &computation)
                        .str("reason", stop_reason(reason));
                });
            }
            DeviceEvent::MorphRefused { morph, .. } => {
                self.report.event("morph_refused", now, |l| {
                    l.u64("morph", morph.into());
                });
            }
            DeviceEvent::Rejected { .. } => self.report.event("rejected", now, |_| {}),
            _ => {}
        }
    }

    /// Steps every computation once, each while the fence lease permits that step.
    fn step(&mut self, clock: &mut Clock) {
        self.steps = self.steps.wrapping_add(1);
        let frame_due = self.frames > 0 && self.steps.is_multiple_of(self.frames);
        let mut i = 0;
        while i < self.computations.len() {
            let at = clock.now();
            let permitted = self.device.lease_until().is_some_and(|until| at < until);
            if !permitted {
                i += 1;
                continue;
            }
            match self.computations.step(i) {
                Step::State(name, state) => {
                    // The name and state are the computation's: the device copies them. A
                    // state the device cannot send (too large) stops the computation.
                    if self.device.set_state(at, name, state).is_err() {
                        if let Some(name) = self.computations.stop_at(i) {
                            self.report.event("guest_failed", at, |l| {
                                l.str("computation", &name)
                                    .str("error", "its state exceeds the device's max_state");
                            });
                        }
                        continue;
                    }
                    if frame_due {
                        self.report_frame(i, at);
                    }
                    i += 1;
                }
                Step::Failed(name) => self.report.event("guest_failed", at, |l| {
                    l.str("computation", &name)
                        .str("error", "it ran out of fuel, trapped or broke a limit");
                }),
                Step::None => break,
            }
        }
    }

    /// Reports the frame of the computation at `index`, stepped at `at`, if it renders one.
    fn report_frame(&mut self, index: usize, at: Instant) {
        if let Some(text) = self.computations.frame(index) {
            let name = self.computations.name(index).unwrap_or_default();
            self.report.event("frame", at, |l| {
                l.str("computation", name).str("text", &text);
            });
        }
    }

    /// Reports the heap, the stack and the serial decoder's counters, if they changed.
    fn report_memory(&mut self, now: Instant) {
        let serial = self.decoder.stats();
        let memory = (
            heap::used(),
            heap::take_recent_peak(),
            heap::peak(),
            stack::peak(),
            serial,
        );
        if memory != self.memory {
            self.memory = memory;
            self.report.event("memory", now, |l| {
                l.u64("heap_used", memory.0 as u64)
                    .u64("heap_recent_peak", memory.1 as u64)
                    .u64("heap_peak", memory.2 as u64)
                    .u64("stack_peak", memory.3 as u64)
                    .u64("frames", serial.frames)
                    .u64("dropped", serial.dropped)
                    .u64("dropped_bytes", serial.dropped_bytes);
            });
        }
    }
}

fn stop_reason(reason: pcxses_core::device::StopReason) -> &'static str {
    use pcxses_core::device::StopReason::*;
    match reason {
        Replaced => "replaced",
        Fenced => "fenced",
        SessionLost => "session_lost",
        Left => "left",
        Dismissed => "dismissed",
        Cancelled => "cancelled",
        _ => "other",
    }
}

/// The UART's receive interrupt wakes the core and is cleared; any other interrupt or
/// exception without a handler of its own is a fault.
#[cortex_m_rt::exception]
unsafe fn DefaultHandler(irqn: i16) {
    if irqn != uart::RX_IRQ {
        panic!("an exception without a handler");
    }
    Uart::clear_interrupts();
}

/// Stops here: with a debugger (semihosting), ends the session with a failure.
fn halt() -> ! {
    #[cfg(feature = "semihosting")]
    cortex_m_semihosting::debug::exit(cortex_m_semihosting::debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut report = Report::open();
    report.event("panic", Instant::from_micros(0), |l| {
        if let Some(at) = info.location() {
            l.str("file", at.file()).u64("line", at.line().into());
        }
    });
    halt()
}
