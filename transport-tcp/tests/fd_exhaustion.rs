//! An AC that runs out of file descriptors: with the process's limit low and another
//! process holding connections, `accept` fails; the acceptor backs off instead of spinning,
//! and once the holders close, a device joins.
//!
//! This file is a test binary of its own because it lowers the limit of its whole process.
//! The holders run in a child process (this binary again, in the `holder` test).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::*;
use pcxses_core::Epoch;
use rlimit::Resource;
use smol::Timer;

/// Where the holder process connects to, and how many times.
const HOLD_ADDR: &str = "PCXSES_HOLD_ADDR";
const HOLD_COUNT: &str = "PCXSES_HOLD_COUNT";

/// Open files this process may have while the test runs.
const FD_LIMIT: u64 = 64;

/// In the holder process: connects `HOLD_COUNT` times to `HOLD_ADDR`, sends each an
/// unfinished frame, says how many connected, and holds them until stdin closes. Elsewhere:
/// nothing.
#[test]
fn holder() {
    let (Ok(addr), Ok(count)) = (std::env::var(HOLD_ADDR), std::env::var(HOLD_COUNT)) else {
        return;
    };
    rlimit::increase_nofile_limit(4_096).expect("raise the holder's limit");
    let addr: SocketAddr = addr.parse().unwrap();
    let count: usize = count.parse().unwrap();
    // All at once: the attempts beyond the AC's backlog time out together.
    let connecting: Vec<_> = (0..count)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
                s.write_all(&HEADER_AND_ONE_BYTE).ok()?;
                Some(s)
            })
        })
        .collect();
    let held: Vec<TcpStream> = connecting
        .into_iter()
        .filter_map(|t| t.join().ok().flatten())
        .collect();
    println!("\nheld {}", held.len());
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read(&mut [0u8; 1]);
    drop(held);
}

#[test]
fn an_ac_out_of_file_descriptors_backs_off_and_serves_a_device_once_the_holders_close() {
    // The AC runs on a thread of its own, so that this thread can watch it even if the
    // AC's executor were starved.
    let (handle_tx, handle_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let ac_thread = std::thread::spawn(move || {
        let ex = Arc::new(smol::Executor::new());
        smol::block_on(ex.run(async {
            let epoch = Epoch::new();
            // Above what the process can open: the descriptors run out first.
            let ac = spawn_ac(&ex, epoch, limits(1_000, 60_000, 60_000)).await;
            // A task of the AC's executor that counts its turns: it stops counting if the
            // executor is starved.
            let turns = Arc::new(AtomicU64::new(0));
            let counted = turns.clone();
            let _ticker = ex.spawn(async move {
                loop {
                    Timer::after(Duration::from_millis(10)).await;
                    counted.fetch_add(1, Relaxed);
                }
            });
            handle_tx
                .send((
                    ac.local_addr,
                    ac.connections.clone().expect("TCP has connections"),
                    ac.events.clone(),
                    epoch,
                    turns,
                ))
                .unwrap();
            let _ = stop_rx.recv().await;
            ac.commands.close();
            let _ = ac.task.await;
        }));
    });
    let (addr, stats, events, epoch, turns) =
        handle_rx.recv_timeout(Duration::from_secs(10)).unwrap();

    let mut holders = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "holder", "--nocapture", "--test-threads", "1"])
        .env(HOLD_ADDR, addr.to_string())
        .env(HOLD_COUNT, "150")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (soft, hard) = rlimit::getrlimit(Resource::NOFILE).unwrap();
    rlimit::setrlimit(Resource::NOFILE, FD_LIMIT.min(soft), hard).unwrap();

    let stdout = holders.stdout.take().unwrap();
    let (held_tx, held_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some((_, n)) = line.rsplit_once("held ") {
                let _ = held_tx.send(n.parse::<usize>().unwrap());
            }
        }
    });
    let held = held_rx.recv_timeout(Duration::from_secs(120)).unwrap();
    assert!(held as u64 > FD_LIMIT, "only {held} connections held");

    // The AC ran out of descriptors.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stats.accept_errors.load(Relaxed) == 0 {
        assert!(std::time::Instant::now() < deadline, "accept never failed");
        std::thread::sleep(Duration::from_millis(10));
    }
    // For a second of exhaustion, the acceptor waits between attempts (20 ms at least)
    // instead of retrying at once.
    // Meanwhile the executor's other tasks (signal handlers, in the daemon) get their turns.
    let before = stats.accept_errors.load(Relaxed);
    let turns_before = turns.load(Relaxed);
    std::thread::sleep(Duration::from_secs(1));
    let failed = stats.accept_errors.load(Relaxed) - before;
    assert!(failed <= 60, "{failed} failed accepts in one second");
    assert!(
        turns.load(Relaxed) > turns_before,
        "the AC's executor starved"
    );

    // The holders leave; a device joins.
    drop(holders.stdin.take());
    let _ = holders.kill();
    let _ = holders.wait();
    let ex = Arc::new(smol::Executor::new());
    smol::block_on(ex.run(async {
        eventually(10, "a free descriptor", || {
            std::net::UdpSocket::bind("127.0.0.1:0").is_ok()
        })
        .await;
        let _agent = join_dev0(&ex, epoch, addr, &events).await;
    }));
    let _ = rlimit::setrlimit(Resource::NOFILE, soft, hard);
    let _ = stop_tx.try_send(());
    ac_thread.join().unwrap();
}
