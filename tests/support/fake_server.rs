//! Plumbing shared by the fake platform servers (`fake_telegram`, `fake_discord`,
//! `fake_slack`): a [`Server`] that accepts on 127.0.0.1 listeners with a thread per
//! connection and can close every connection and join every thread, and [`Watched`], a state
//! behind a mutex with a condvar to wait on and a stopping flag.

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The longest a [`Watched`] wait sleeps before looking at the state again.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// Bind a listener on 127.0.0.1 with an ephemeral port.
pub(super) fn local_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake server");
    let addr = listener.local_addr().expect("local addr");
    (listener, addr)
}

/// State `S` with a condvar signalled on its changes and a stopping flag.
pub(super) struct Watched<S> {
    state: Mutex<S>,
    changed: Condvar,
    stopping: AtomicBool,
}

impl<S> Watched<S> {
    pub(super) fn new(state: S) -> Watched<S> {
        Watched {
            state: Mutex::new(state),
            changed: Condvar::new(),
            stopping: AtomicBool::new(false),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wake every waiter (call after changing the state).
    pub(super) fn notify(&self) {
        self.changed.notify_all();
    }

    pub(super) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Set the stopping flag and wake every waiter.
    pub(super) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.notify();
    }

    /// Wait for a change (or `timeout`) with the lock held in `guard`.
    pub(super) fn wait_timeout<'a>(&self, guard: MutexGuard<'a, S>, timeout: Duration) -> MutexGuard<'a, S> {
        self.changed
            .wait_timeout(guard, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    /// Wait until `ready` holds; false when `timeout` passes or the stopping flag is set.
    pub(super) fn wait_until(&self, timeout: Duration, ready: impl Fn(&S) -> bool) -> bool {
        self.wait(timeout, true, ready)
    }

    /// Like [`Watched::wait_until`], but a set stopping flag does not end the wait.
    pub(super) fn wait_even_stopped(&self, timeout: Duration, ready: impl Fn(&S) -> bool) -> bool {
        self.wait(timeout, false, ready)
    }

    fn wait(&self, timeout: Duration, give_up_on_stop: bool, ready: impl Fn(&S) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            if ready(&st) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || (give_up_on_stop && self.stopping()) {
                return false;
            }
            st = self.wait_timeout(st, (deadline - now).min(WAIT_SLICE));
        }
    }
}

/// `impl Deref<Target = Watched<State>> for Shared` through its `state` field, so a fake's
/// shared struct is used as its watched state (`shared.lock()`, `shared.notify()`, ...).
macro_rules! deref_to_watched {
    ($shared:ty, $state:ty) => {
        impl std::ops::Deref for $shared {
            type Target = Watched<$state>;

            fn deref(&self) -> &Watched<$state> {
                &self.state
            }
        }
    };
}
pub(super) use deref_to_watched;

/// Accept threads over listeners, a named thread per connection, and the open connections,
/// so that [`Server::shutdown`] can close them all and join every thread. Dropping it shuts
/// it down.
#[derive(Default)]
pub(super) struct Server {
    inner: Arc<Inner>,
    acceptors: Vec<(SocketAddr, JoinHandle<()>)>,
}

#[derive(Default)]
struct Inner {
    stopping: AtomicBool,
    conns: Mutex<Conns>,
}

#[derive(Default)]
struct Conns {
    next_id: u64,
    accepted: usize,
    /// Clones of open sockets, shut down on stop to unblock their threads.
    open: HashMap<u64, TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

impl Inner {
    fn conns(&self) -> MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Server {
    pub(super) fn new() -> Server {
        Server::default()
    }

    /// Accept on `listener` in a thread named `{name}-accept`, serving each connection with
    /// `serve` in a thread named `{name}-conn-{id}`.
    pub(super) fn serve(
        &mut self,
        listener: TcpListener,
        name: &str,
        serve: impl Fn(TcpStream) + Send + Sync + 'static,
    ) {
        let addr = listener.local_addr().expect("local addr");
        let inner = self.inner.clone();
        let name = name.to_owned();
        let acceptor = thread::Builder::new()
            .name(format!("{name}-accept"))
            .spawn(move || accept_loop(&inner, listener, &name, Arc::new(serve)))
            .expect("spawn acceptor");
        self.acceptors.push((addr, acceptor));
    }

    /// How many connections were accepted.
    pub(super) fn accepted(&self) -> usize {
        self.inner.conns().accepted
    }

    /// Stop accepting and shut down every open connection, without joining any thread.
    pub(super) fn close(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        for (addr, _) in &self.acceptors {
            // Wake the blocking accept().
            let _ = TcpStream::connect_timeout(addr, Duration::from_secs(1));
        }
        self.shut_streams();
    }

    /// Stop accepting, join the accept threads, shut down every open connection and join
    /// the connection threads.
    pub(super) fn shutdown(&mut self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        for (addr, _) in &self.acceptors {
            let _ = TcpStream::connect_timeout(addr, Duration::from_secs(1));
        }
        for (_, acceptor) in self.acceptors.drain(..) {
            let _ = acceptor.join();
        }
        self.shut_streams();
        let threads = std::mem::take(&mut self.inner.conns().threads);
        for thread in threads {
            let _ = thread.join();
        }
    }

    fn shut_streams(&self) {
        for stream in self.inner.conns().open.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(
    inner: &Arc<Inner>,
    listener: TcpListener,
    name: &str,
    serve: Arc<dyn Fn(TcpStream) + Send + Sync>,
) {
    for stream in listener.incoming() {
        if inner.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            // E.g. out of descriptors: do not spin.
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let mut conns = inner.conns();
        conns.accepted += 1;
        let id = conns.next_id;
        conns.next_id += 1;
        if let Ok(clone) = stream.try_clone() {
            conns.open.insert(id, clone);
        }
        let worker = inner.clone();
        let serve = serve.clone();
        let spawned = thread::Builder::new()
            .name(format!("{name}-conn-{id}"))
            .spawn(move || {
                serve(stream);
                worker.conns().open.remove(&id);
            });
        if let Ok(handle) = spawned {
            conns.threads.push(handle);
        }
    }
}

/// Write a whole raw response (a file download: any bytes, exact length). Errors mean the
/// client went away.
pub fn write_raw(
    writer: &mut impl std::io::Write,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    writer.write_all(head.as_bytes())?;
    writer.write_all(body)
}
