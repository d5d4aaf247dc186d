//! One client connection as the event loop sees it: handshake, open, or closing, plus the
//! per-connection counters (`seq`, unsent backlog) the contract asks for.
//!
//! Everything here is non-blocking; a method that would block reports it and the loop comes
//! back on the next readiness event.

use std::io::{ErrorKind, Read};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::{Error as WsError, HandshakeError, Message, Utf8Bytes, WebSocket};

use super::handshake::PendingHandshake;
use crate::bus::ConnId;
use crate::protocol::{Mode, Role, close};

/// How long a lingering close keeps reading after our close frame went out.
const LINGER_TIME: Duration = Duration::from_secs(2);
/// How much a lingering close reads and discards before it gives up on the peer.
const LINGER_BYTES: usize = 64 * 1024 * 1024;
/// The discard buffer for a lingering close (on the loop thread's stack).
const DISCARD_CHUNK: usize = 16 * 1024;

/// Where a connection is in its life.
pub enum State {
    /// The HTTP upgrade is in progress. `None` only transiently while it is being resumed.
    Handshake(Option<Box<PendingHandshake>>),
    /// A WebSocket: before or after `connect` (see [`Conn::session`]).
    Open(Box<WebSocket<TcpStream>>),
}

/// What the client said in `connect`.
pub struct Session {
    pub role: Role,
    pub mode: Mode,
    /// The last `seq` sent to this connection; events count 1, 2, 3, ...
    pub seq: u64,
}

/// Result of resuming the handshake.
pub enum HandshakeStep {
    Done,
    Pending,
    Failed(String),
}

/// Result of reading one message.
pub enum ReadStep {
    Text(Utf8Bytes),
    Binary,
    /// A control frame (ping/pong) that tungstenite handled; keep reading.
    Control,
    /// Nothing more to read now.
    WouldBlock,
    /// The peer sent a close frame; tungstenite queued the reply.
    PeerClosed,
    /// A frame exceeded the size limit.
    TooBig(String),
    /// The peer broke the WebSocket protocol.
    Protocol(String),
    /// A text frame or a close reason was not valid UTF-8.
    BadUtf8(String),
    /// The connection is gone (reset, EOF, closed).
    Gone(String),
}

/// Result of queueing a frame.
pub enum QueueStep {
    Queued,
    /// The unsent backlog would pass its bound: close the client as a slow consumer.
    SlowConsumer,
    /// The connection is not open for sending (still in handshake, or closing): dropped.
    NotOpen,
    Broken(String),
}

/// Result of flushing.
pub enum FlushStep {
    /// Everything was handed to the kernel.
    Flushed,
    /// The kernel buffer is full; wait for writability.
    Pending,
    /// The close handshake finished, or the socket broke: drop the connection.
    Finished,
}

/// A lingering close: after a close the peer may not expect (its frame was refused, its
/// login failed) it is often still writing. Closing a socket with unread data makes the
/// kernel send a reset, which can destroy our close frame before the peer reads it. So the
/// gateway half-closes once the close frame is out and reads and discards until the peer
/// closes too, for at most [`LINGER_TIME`] and [`LINGER_BYTES`], as web servers do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Linger {
    Off,
    /// Our close frame is queued; linger once it is flushed.
    Wanted,
    /// Half-closed; discarding what the peer still sends.
    Active {
        discarded: usize,
    },
}

/// The close codes that follow something the peer did wrong, so it may still be writing.
fn lingers_after(code: u16) -> bool {
    matches!(
        code,
        close::PROTOCOL | close::INVALID_DATA | close::POLICY | close::TOO_BIG
    )
}

pub struct Conn {
    pub id: ConnId,
    pub addr: SocketAddr,
    pub accepted_at: Instant,
    pub state: State,
    pub session: Option<Session>,
    /// Bytes queued since the last complete flush: the slow-consumer measure.
    pub backlog: usize,
    /// Set once a close was started (by either side): drop at this instant at the latest.
    pub close_deadline: Option<Instant>,
    /// Written to during this loop pass; flushed at the end of the pass.
    pub dirty: bool,
    /// A read failed in a way that leaves tungstenite's frame decoder mid-frame (too big,
    /// protocol error): it must not be asked to read again (it would misparse, or trip its
    /// own buffer assertion). The connection is closing and is dropped at its deadline.
    read_failed: bool,
    linger: Linger,
}

impl Conn {
    pub fn new(id: ConnId, addr: SocketAddr, handshake: PendingHandshake, now: Instant) -> Conn {
        Conn {
            id,
            addr,
            accepted_at: now,
            state: State::Handshake(Some(Box::new(handshake))),
            session: None,
            backlog: 0,
            close_deadline: None,
            dirty: false,
            read_failed: false,
            linger: Linger::Off,
        }
    }

    /// The socket, for (de)registration with the poll.
    pub fn stream_mut(&mut self) -> Option<&mut TcpStream> {
        match &mut self.state {
            State::Handshake(Some(mid)) => Some(mid.get_mut().get_mut()),
            State::Handshake(None) => None,
            State::Open(ws) => Some(ws.get_mut()),
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    pub fn is_closing(&self) -> bool {
        self.close_deadline.is_some()
    }

    /// Resume the HTTP upgrade.
    pub fn drive_handshake(&mut self) -> HandshakeStep {
        let State::Handshake(slot) = &mut self.state else {
            return HandshakeStep::Done;
        };
        let Some(mid) = slot.take() else {
            return HandshakeStep::Failed("handshake state lost".into());
        };
        match mid.handshake() {
            Ok(ws) => {
                self.state = State::Open(Box::new(ws));
                HandshakeStep::Done
            }
            Err(HandshakeError::Interrupted(mid)) => {
                *slot = Some(Box::new(mid));
                HandshakeStep::Pending
            }
            Err(HandshakeError::Failure(e)) => HandshakeStep::Failed(e.to_string()),
        }
    }

    /// Change the frame-size limits (raised from 64 KiB once `connect` succeeded).
    pub fn set_limits(&mut self, config: &WebSocketConfig) {
        if let State::Open(ws) = &mut self.state {
            ws.set_config(|c| *c = *config);
        }
    }

    /// Read the next message, if one is complete.
    pub fn read(&mut self) -> ReadStep {
        if let Linger::Active { .. } = self.linger {
            return self.discard();
        }
        let State::Open(ws) = &mut self.state else {
            return ReadStep::WouldBlock;
        };
        if self.read_failed {
            return ReadStep::WouldBlock;
        }
        let step = match ws.read() {
            Ok(Message::Text(t)) => ReadStep::Text(t),
            Ok(Message::Binary(_)) => ReadStep::Binary,
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {
                self.dirty = true;
                ReadStep::Control
            }
            Ok(Message::Close(_)) => {
                self.dirty = true;
                ReadStep::PeerClosed
            }
            Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => ReadStep::WouldBlock,
            Err(WsError::Io(e)) if e.kind() == ErrorKind::Interrupted => ReadStep::Control,
            Err(WsError::Capacity(e)) => ReadStep::TooBig(e.to_string()),
            Err(WsError::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake)) => {
                ReadStep::Gone("connection reset without a close frame".into())
            }
            Err(WsError::Protocol(e)) => ReadStep::Protocol(e.to_string()),
            // tungstenite reports both a text frame and a close reason this way.
            Err(WsError::Utf8(e)) => {
                ReadStep::BadUtf8(format!("invalid UTF-8 in a text frame or close reason: {e}"))
            }
            Err(WsError::WriteBufferFull(_)) => ReadStep::TooBig("write buffer full".into()),
            Err(e) => ReadStep::Gone(e.to_string()),
        };
        if matches!(
            step,
            ReadStep::TooBig(_) | ReadStep::Protocol(_) | ReadStep::BadUtf8(_)
        ) {
            self.read_failed = true;
        }
        step
    }

    /// Queue a text frame, enforcing the backlog bound. A single frame larger than the bound
    /// is allowed when nothing else is waiting, so one big response never trips it.
    pub fn queue(&mut self, frame: String, backlog_limit: usize) -> QueueStep {
        if self.is_closing() {
            return QueueStep::NotOpen;
        }
        let State::Open(ws) = &mut self.state else {
            return QueueStep::NotOpen;
        };
        let len = frame.len();
        if self.backlog > 0 && self.backlog + len > backlog_limit {
            // `backlog` also counts bytes tungstenite already wrote to the kernel during this
            // pass; only what the kernel would not take is unsent. Flush before judging, so a
            // client that reads promptly is never closed for a burst within one pass.
            match ws.flush() {
                Ok(()) => self.backlog = 0,
                Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                    return QueueStep::SlowConsumer;
                }
                Err(e) => return QueueStep::Broken(e.to_string()),
            }
        }
        match ws.write(Message::text(frame)) {
            Ok(()) => {}
            // tungstenite keeps the frame in its buffer when the socket would block.
            Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
            Err(WsError::WriteBufferFull(_)) => return QueueStep::SlowConsumer,
            Err(e) => return QueueStep::Broken(e.to_string()),
        }
        self.backlog += len;
        self.dirty = true;
        QueueStep::Queued
    }

    /// Start the closing handshake with a close code. The caller sets the deadline.
    pub fn start_close(&mut self, code: u16, reason: &str, deadline: Instant) {
        if self.is_closing() {
            return;
        }
        self.close_deadline = Some(deadline);
        if let State::Open(ws) = &mut self.state {
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: reason.to_owned().into(),
            };
            // Errors here mean the socket is already unusable; the flush will report it.
            let _ = ws.close(Some(frame));
            self.dirty = true;
            if lingers_after(code) {
                self.linger = Linger::Wanted;
            }
        }
    }

    /// Once our close frame is flushed, start a lingering close if one is wanted: shut the
    /// write side (the peer reads EOF right after the close frame) and discard what comes.
    /// Returns the new close deadline when lingering started now.
    pub fn start_linger(&mut self, now: Instant) -> Option<Instant> {
        if self.linger != Linger::Wanted {
            return None;
        }
        let State::Open(ws) = &mut self.state else {
            return None;
        };
        // A failure means the peer is gone already; the next read reports it.
        let _ = ws.get_mut().shutdown(Shutdown::Write);
        self.linger = Linger::Active { discarded: 0 };
        let until = now + LINGER_TIME;
        self.close_deadline = Some(until);
        Some(until)
    }

    /// Read and drop raw bytes during a lingering close, bypassing tungstenite (whose
    /// decoder may be mid-frame). The end of the stream ends the connection.
    fn discard(&mut self) -> ReadStep {
        let State::Open(ws) = &mut self.state else {
            return ReadStep::WouldBlock;
        };
        let Linger::Active { discarded } = &mut self.linger else {
            return ReadStep::WouldBlock;
        };
        let mut chunk = [0u8; DISCARD_CHUNK];
        match ws.get_mut().read(&mut chunk) {
            Ok(0) => ReadStep::Gone("closed by the client after our close frame".into()),
            Ok(n) => {
                *discarded += n;
                if *discarded > LINGER_BYTES {
                    ReadStep::Gone(format!(
                        "still sending after our close frame ({LINGER_BYTES} bytes discarded)"
                    ))
                } else {
                    ReadStep::Control
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => ReadStep::WouldBlock,
            Err(e) if e.kind() == ErrorKind::Interrupted => ReadStep::Control,
            Err(e) => ReadStep::Gone(format!("read failed after our close frame: {e}")),
        }
    }

    /// Hand queued bytes to the kernel.
    pub fn flush(&mut self) -> FlushStep {
        self.dirty = false;
        let State::Open(ws) = &mut self.state else {
            return FlushStep::Flushed;
        };
        match ws.flush() {
            Ok(()) => {
                self.backlog = 0;
                FlushStep::Flushed
            }
            Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => FlushStep::Pending,
            Err(_) => FlushStep::Finished,
        }
    }

    /// The next `seq` for an event on this connection.
    pub fn next_seq(&mut self) -> Option<u64> {
        let session = self.session.as_mut()?;
        session.seq += 1;
        Some(session.seq)
    }
}
