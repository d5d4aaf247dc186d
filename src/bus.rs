//! The message set between the event loop, the router and the connectors.
//!
//! The loop owns every socket and never blocks; the router owns every decision that needs
//! state across connections (agents, subscriptions, forwarded requests, channels). They talk
//! only through these messages over crossbeam channels. The router wakes the loop through one
//! shared mio `Waker`, coalesced so a burst of messages costs one wake-up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crossbeam_channel::Sender;
use serde_json::value::RawValue;

use crate::channels::ConnectorEvent;
use crate::protocol::{Mode, Role};
use crate::server::waker::LoopWaker;

/// A connection's id: assigned from a counter by the loop, never reused.
pub type ConnId = u64;

/// A client that completed `connect`.
#[derive(Clone, Debug)]
pub struct Peer {
    pub conn: ConnId,
    pub role: Role,
    pub mode: Mode,
    pub session_id: String,
    pub client_name: String,
    pub addr: SocketAddr,
}

/// Messages into the router.
#[derive(Debug)]
pub enum ToRouter {
    /// A client completed `connect`.
    Joined(Peer),
    /// A joined client is gone (closed, dropped, or being closed).
    Left(ConnId),
    /// A request the loop does not answer itself.
    Request {
        conn: ConnId,
        request_id: String,
        method: String,
        params: Option<Box<RawValue>>,
    },
    /// The agent answering a forwarded request (a chunk or the final frame).
    AgentResponse {
        conn: ConnId,
        request_id: String,
        is_final: bool,
        result: Option<Box<RawValue>>,
        error: Option<Box<RawValue>>,
    },
    /// A connector reporting in.
    Connector(ConnectorEvent),
    /// Stop this gateway instance: fail what is pending, close clients, stop connectors.
    Shutdown {
        restart_expected_ms: Option<u64>,
        drain_until: Instant,
    },
    /// A liveness probe from the supervisor (for the systemd watchdog): the router answers
    /// its own and passes the others on to the loop and to each connector.
    Probe {
        router: Probe,
        event_loop: Probe,
        connectors: Vec<(&'static str, Probe)>,
    },
}

/// One thread's part of a liveness probe. The thread proves it is still turning its loop by
/// answering: storing the probe's sequence number where the supervisor looks.
#[derive(Debug)]
pub struct Probe {
    seq: u64,
    ack: Arc<AtomicU64>,
}

impl Probe {
    pub fn new(seq: u64, ack: Arc<AtomicU64>) -> Probe {
        Probe { seq, ack }
    }

    /// Answer: cheap (one atomic store), so every loop can afford it.
    pub fn answer(self) {
        self.ack.fetch_max(self.seq, Ordering::SeqCst);
    }
}

/// Who receives an event.
#[derive(Debug)]
pub enum Audience {
    /// Every joined client.
    All,
    /// These clients.
    Some(Vec<ConnId>),
}

/// Messages into the event loop.
#[derive(Debug)]
pub enum ToLoop {
    /// Send one prepared frame.
    Send { conn: ConnId, frame: String },
    /// Send an event; the loop numbers it with each connection's own `seq`.
    Event {
        to: Audience,
        name: &'static str,
        params: Arc<str>,
    },
    /// Close a connection with a close code.
    Close {
        conn: ConnId,
        code: u16,
        reason: &'static str,
    },
    /// Send `shutdown` to every client, close them (1001, or 1012 when restarting), stop
    /// accepting, and end the loop once every client is gone or at `drain_until`.
    Shutdown {
        restart_expected_ms: Option<u64>,
        drain_until: Instant,
    },
    /// Answer a liveness probe (see [`ToRouter::Probe`]).
    Probe(Probe),
}

/// The sending side of the loop's command channel. Cheap to clone; every thread that feeds
/// the loop holds one.
#[derive(Clone)]
pub struct LoopHandle {
    tx: Sender<ToLoop>,
    waker: Arc<LoopWaker>,
    wake_pending: Arc<AtomicBool>,
}

impl LoopHandle {
    /// Built by the loop, which keeps the receiving side and `wake_pending`.
    pub(crate) fn new(tx: Sender<ToLoop>, waker: Arc<LoopWaker>, wake_pending: Arc<AtomicBool>) -> Self {
        LoopHandle {
            tx,
            waker,
            wake_pending,
        }
    }

    /// Queue a message and wake the loop unless a wake-up is already pending. A loop that is
    /// gone (shut down) silently drops the message: there is nobody left to send it to.
    pub fn send(&self, msg: ToLoop) {
        if self.tx.send(msg).is_ok() && !self.wake_pending.swap(true, Ordering::SeqCst) {
            if let Err(e) = self.waker.wake() {
                log::error!("could not wake the event loop: {e}");
            }
        }
    }

    /// Shorthand for [`ToLoop::Send`].
    pub fn send_frame(&self, conn: ConnId, frame: String) {
        self.send(ToLoop::Send { conn, frame });
    }
}
