//! A TCP proxy on 127.0.0.1 that the tests can cut: it forwards every connection it
//! accepts to one target, both ways, until [`TcpProxy::cut`] closes them all and drops every
//! new one until [`TcpProxy::restore`]. Each connection is two threads; at most
//! [`MAX_CONNECTIONS`] are open at once, and past that new ones are dropped.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// The most connections open through one proxy at once.
pub const MAX_CONNECTIONS: usize = 64;
/// How long the proxy waits for the target to accept a connection.
const CONNECT: Duration = Duration::from_secs(2);

/// The proxy; stops, closing every connection, when dropped.
pub struct TcpProxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// What the acceptor, the forwarding threads and the handle share.
struct Shared {
    target: SocketAddr,
    /// Whether connections are cut; changed only with `open` locked.
    cut: AtomicBool,
    stop: AtomicBool,
    open: Mutex<Open>,
    /// Connections forwarded so far.
    forwarded: AtomicUsize,
}

/// The open connections, by number, and the threads forwarding them.
#[derive(Default)]
struct Open {
    next: u64,
    connections: HashMap<u64, [TcpStream; 2]>,
    threads: Vec<JoinHandle<()>>,
}

impl Shared {
    fn open(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes every open connection: their threads see it and end.
    fn close_all(&self, open: &mut Open) {
        for [client, upstream] in open.connections.values() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
        }
        open.connections.clear();
    }
}

impl TcpProxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `target`.
    pub fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let address = listener.local_addr().expect("a bound port");
        let shared = Arc::new(Shared {
            target,
            cut: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            open: Mutex::new(Open::default()),
            forwarded: AtomicUsize::new(0),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::spawn(move || accept(&listener, &shared))
        };
        TcpProxy {
            address,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Its address as an etcd client URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Closes every open connection, and drops every new one until [`TcpProxy::restore`].
    pub fn cut(&self) {
        let mut open = self.shared.open();
        self.shared.cut.store(true, Ordering::Release);
        self.shared.close_all(&mut open);
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        let _open = self.shared.open();
        self.shared.cut.store(false, Ordering::Release);
    }

    /// How many connections are open through it.
    pub fn connections(&self) -> usize {
        self.shared.open().connections.len()
    }

    /// How many connections it forwarded so far.
    pub fn forwarded(&self) -> usize {
        self.shared.forwarded.load(Ordering::Acquire)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.cut();
        // Wakes the acceptor, which sees `stop`.
        let _ = TcpStream::connect(self.address);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let threads = std::mem::take(&mut self.shared.open().threads);
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// Accepts connections until the proxy stops.
fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        // A connection not forwarded is dropped, and so closed.
        if let Ok(client) = client {
            let _ = forward_connection(client, shared);
        }
    }
}

/// Connects `client` to the target and forwards it, unless the proxy is cut or full.
fn forward_connection(client: TcpStream, shared: &Arc<Shared>) -> Option<()> {
    if shared.cut.load(Ordering::Acquire) || shared.open().connections.len() >= MAX_CONNECTIONS {
        return None;
    }
    let upstream = TcpStream::connect_timeout(&shared.target, CONNECT).ok()?;
    for stream in [&client, &upstream] {
        stream.set_nodelay(true).ok()?;
    }
    let kept = [client.try_clone().ok()?, upstream.try_clone().ok()?];
    let directions = [
        (client.try_clone().ok()?, upstream.try_clone().ok()?),
        (upstream, client),
    ];
    let mut open = shared.open();
    // Cut while this one was connecting: it is dropped like the others.
    if shared.cut.load(Ordering::Acquire) {
        return None;
    }
    open.threads.retain(|t| !t.is_finished());
    let id = open.next;
    open.next += 1;
    open.connections.insert(id, kept);
    shared.forwarded.fetch_add(1, Ordering::AcqRel);
    let running = Arc::new(AtomicU8::new(2));
    for (from, to) in directions {
        let (shared, running) = (shared.clone(), running.clone());
        open.threads.push(std::thread::spawn(move || {
            forward(from, to);
            if running.fetch_sub(1, Ordering::AcqRel) == 1 {
                shared.open().connections.remove(&id);
            }
        }));
    }
    Some(())
}

/// Copies `from` to `to` until `from` ends (then `to` is half-closed, as `from` was) or
/// either fails (then both are closed).
fn forward(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(read) => read,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if to.write_all(&buffer[..read]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
