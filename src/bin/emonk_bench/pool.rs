//! Many clients on one thread: joined clients handed over to a mio loop that reads whatever
//! the gateway sends them (counting `channel.message` events per client) and answers close
//! frames, the way a live client would. Used for idle clients, fan-out subscribers, and the
//! 1,000 clients of the stop figure.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use serde_json::json;
use tungstenite::Message;

use super::client::{self, Ws};

const WAKER: Token = Token(usize::MAX);
const MESSAGE_EVENT: &str = r#""event":"channel.message""#;

struct Shared {
    stop: AtomicBool,
    counts: Vec<AtomicU64>,
    total: AtomicU64,
    target: AtomicU64,
    reached_at: Mutex<Option<Instant>>,
    closed: AtomicUsize,
}

pub struct Pool {
    shared: Arc<Shared>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

/// Join `n` clients (in parallel), optionally subscribing each to `channel.message`.
pub fn join_many(port: u16, n: usize, subscribe: bool) -> Result<Vec<Ws>, String> {
    let workers = 4.min(n.max(1));
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let count = n / workers + usize::from(w < n % workers);
            thread::spawn(move || -> Result<Vec<Ws>, String> {
                let mut out = Vec::with_capacity(count);
                for i in 0..count {
                    let mut ws = client::join(port, "operator")?;
                    if subscribe {
                        let id = format!("sub-{w}-{i}");
                        client::call(
                            &mut ws,
                            &id,
                            "events.subscribe",
                            json!({"events": ["channel.message"]}),
                        )?;
                    }
                    out.push(ws);
                }
                Ok(out)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for h in handles {
        all.append(&mut h.join().map_err(|_| "a join thread panicked")??);
    }
    Ok(all)
}

impl Pool {
    pub fn start(sockets: Vec<Ws>) -> Pool {
        let poll = Poll::new().expect("mio poll");
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).expect("mio waker"));
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            counts: (0..sockets.len()).map(|_| AtomicU64::new(0)).collect(),
            total: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            reached_at: Mutex::new(None),
            closed: AtomicUsize::new(0),
        });
        let s = shared.clone();
        let thread = thread::Builder::new()
            .name("bench-pool".into())
            .spawn(move || run(poll, sockets, &s))
            .expect("spawn the pool");
        Pool {
            shared,
            waker,
            thread: Some(thread),
        }
    }

    /// `channel.message` events received by each client.
    pub fn counts(&self) -> Vec<u64> {
        self.shared
            .counts
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect()
    }

    /// Clients whose connection ended.
    pub fn closed(&self) -> usize {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Record the instant the total of received messages reaches `target`.
    pub fn expect_total(&self, target: u64) {
        *self.shared.reached_at.lock().unwrap() = None;
        self.shared.target.store(target, Ordering::SeqCst);
    }

    /// When the total reached the expected one, waiting up to `timeout`.
    pub fn wait_total(&self, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = *self.shared.reached_at.lock().unwrap() {
                return Some(at);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn total(&self) -> u64 {
        self.shared.total.load(Ordering::SeqCst)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(mut poll: Poll, mut sockets: Vec<Ws>, shared: &Shared) {
    let mut open = vec![true; sockets.len()];
    for (i, ws) in sockets.iter_mut().enumerate() {
        let stream = ws.get_mut();
        stream.set_nonblocking(true).expect("nonblocking");
        let fd = stream.as_raw_fd();
        poll.registry()
            .register(&mut SourceFd(&fd), Token(i), Interest::READABLE)
            .expect("register a client");
    }
    let mut events = Events::with_capacity(1024);
    // Frames may already be buffered inside tungstenite or the socket: read everything once.
    for (i, ws) in sockets.iter_mut().enumerate() {
        drain(i, ws, &mut open, shared);
    }
    while !shared.stop.load(Ordering::SeqCst) {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(100))) {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            panic!("pool poll: {e}");
        }
        for event in &events {
            let Token(i) = event.token();
            if i < sockets.len() && open[i] {
                drain(i, &mut sockets[i], &mut open, shared);
            }
        }
    }
}

/// Read until the socket would block; count messages; send queued close replies.
fn drain(i: usize, ws: &mut Ws, open: &mut [bool], shared: &Shared) {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => {
                if t.contains(MESSAGE_EVENT) {
                    shared.counts[i].fetch_add(1, Ordering::Relaxed);
                    let total = shared.total.fetch_add(1, Ordering::SeqCst) + 1;
                    if total == shared.target.load(Ordering::SeqCst) {
                        *shared.reached_at.lock().unwrap() = Some(Instant::now());
                    }
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let _ = ws.flush();
                return;
            }
            Err(_) => {
                let _ = ws.flush();
                open[i] = false;
                shared.closed.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }
}
