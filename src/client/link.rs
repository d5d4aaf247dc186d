//! Opening one link to the gateway: URL check, TCP connect, WebSocket upgrade, `connect`
//! frame and `hello_ok`, all inside one deadline (`connect_timeout`).
//!
//! The socket is blocking with a short read/write timeout while this runs, so every step
//! wakes up often enough to honour the deadline and the stop flag; once the hello is in,
//! it is switched to non-blocking for the I/O thread's `poll` loop.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use log::debug;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Request;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{HandshakeError, Message, WebSocket};

use super::error::{ClientError, RemoteError};
use super::options::ClientOptions;
use super::wire::{self, Hello, PROTOCOL_VERSION, ServerFrame};

pub(crate) type Ws = WebSocket<TcpStream>;

/// How often a blocking step during the handshake wakes to check deadline and stop flag.
const SLICE: Duration = Duration::from_millis(100);
/// Frame limits before the hello tells us the real `maxPayload`: the gateway's default.
const DEFAULT_MAX_PAYLOAD: u64 = 26_214_400;
/// Room in the write buffer beyond one maximal frame, for pongs and the close frame.
const WRITE_SLACK: usize = 64 * 1024;

/// A connected, greeted link.
#[derive(Debug)]
pub(crate) struct Link {
    pub ws: Ws,
    pub hello: Hello,
}

/// Checks the URL and returns the upgrade request plus the address to dial.
pub(crate) fn parse_url(url: &str) -> Result<(Request, String, u16), ClientError> {
    let request = url
        .into_client_request()
        .map_err(|e| ClientError::InvalidUrl(format!("`{url}`: {e}")))?;
    match request.uri().scheme_str() {
        Some("ws") => {}
        Some("wss") => {
            return Err(ClientError::InvalidUrl(format!(
                "`{url}`: wss:// is not supported (emonkd serves plain ws://); reach a remote \
                 gateway through an SSH tunnel or a TLS-terminating proxy"
            )));
        }
        _ => {
            return Err(ClientError::InvalidUrl(format!("`{url}` is not a ws:// URL")));
        }
    }
    let host = request
        .uri()
        .host()
        .ok_or_else(|| ClientError::InvalidUrl(format!("`{url}` has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = request.uri().port_u16().unwrap_or(80);
    Ok((request, host, port))
}

/// Opens a link or says why not. Returns `Closed` if `stop` is raised meanwhile.
pub(crate) fn open(opts: &ClientOptions, stop: &AtomicBool) -> Result<Link, ClientError> {
    let deadline = Instant::now() + opts.connect_timeout;
    let (request, host, port) = parse_url(&opts.url)?;
    let stream = tcp_connect(&opts.url, &host, port, deadline)?;
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(SLICE))
        .and_then(|()| stream.set_write_timeout(Some(SLICE)))
        .map_err(|e| ClientError::Connect(format!("{}: {e}", opts.url)))?;

    let mut ws = upgrade(request, stream, deadline, stop, opts)?;
    let hello = greet(&mut ws, opts, deadline, stop)?;

    let max = usize::try_from(hello.max_payload).unwrap_or(usize::MAX);
    ws.set_config(|c| {
        c.max_message_size = Some(max);
        c.max_frame_size = Some(max);
        // Tungstenite's default is unbounded; the I/O thread stops taking new frames while
        // one is still unsent, so one frame plus control frames is all this must hold.
        c.max_write_buffer_size = max.saturating_add(WRITE_SLACK);
    });
    ws.get_mut()
        .set_nonblocking(true)
        .map_err(|e| ClientError::Handshake(format!("cannot make the socket non-blocking: {e}")))?;
    Ok(Link { ws, hello })
}

/// True for the errors a timed-out or non-blocking socket gives when there is no data yet.
pub(crate) fn would_block(err: &tungstenite::Error) -> bool {
    matches!(err, tungstenite::Error::Io(e) if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    ))
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

fn tcp_connect(url: &str, host: &str, port: u16, deadline: Instant) -> Result<TcpStream, ClientError> {
    // Name resolution has no timeout in std; gateway URLs are loopback or literal
    // addresses in practice, which resolve without touching the network.
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| ClientError::Connect(format!("cannot resolve `{host}` in {url}: {e}")))?;
    let mut last = None;
    for addr in addrs {
        let Some(left) = remaining(deadline) else {
            break;
        };
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                debug!("connect to {addr} failed: {e}");
                last = Some(e);
            }
        }
    }
    Err(ClientError::Connect(match last {
        Some(e) => format!("{url}: {e}"),
        None => format!("{url}: no address answered in time"),
    }))
}

fn upgrade(
    request: Request,
    stream: TcpStream,
    deadline: Instant,
    stop: &AtomicBool,
    opts: &ClientOptions,
) -> Result<Ws, ClientError> {
    let default_max = DEFAULT_MAX_PAYLOAD as usize;
    let config = WebSocketConfig::default()
        .max_message_size(Some(default_max))
        .max_frame_size(Some(default_max))
        .write_buffer_size(0)
        .max_write_buffer_size(default_max + WRITE_SLACK);
    let mut attempt = tungstenite::client::client_with_config(request, stream, Some(config));
    loop {
        match attempt {
            Ok((ws, _response)) => return Ok(ws),
            Err(HandshakeError::Interrupted(mid)) => {
                if stop.load(Ordering::SeqCst) {
                    return Err(ClientError::Closed);
                }
                if remaining(deadline).is_none() {
                    return Err(ClientError::Handshake(format!(
                        "{}: no WebSocket upgrade within {} ms",
                        opts.url,
                        opts.connect_timeout.as_millis()
                    )));
                }
                attempt = mid.handshake();
            }
            Err(HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                let status = response.status();
                let hint = if status.as_u16() == 403 {
                    " (the gateway refuses this Origin or client)"
                } else {
                    ""
                };
                return Err(ClientError::Handshake(format!(
                    "{}: upgrade refused with HTTP {status}{hint}",
                    opts.url
                )));
            }
            Err(HandshakeError::Failure(e)) => {
                return Err(ClientError::Handshake(format!(
                    "{}: WebSocket upgrade failed: {e}",
                    opts.url
                )));
            }
        }
    }
}

fn greet(
    ws: &mut Ws,
    opts: &ClientOptions,
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<Hello, ClientError> {
    let late = || {
        ClientError::Handshake(format!(
            "{}: no hello from the gateway within {} ms",
            opts.url,
            opts.connect_timeout.as_millis()
        ))
    };
    let lost = |e: tungstenite::Error| {
        ClientError::Handshake(format!("{}: connection lost during hello: {e}", opts.url))
    };

    // `send` buffers the frame even when the socket would block; later reads and flushes
    // push out the rest.
    let mut unsent = match ws.send(Message::text(wire::connect_frame(opts))) {
        Ok(()) => false,
        Err(e) if would_block(&e) => true,
        Err(e) => return Err(lost(e)),
    };
    loop {
        if stop.load(Ordering::SeqCst) {
            return Err(ClientError::Closed);
        }
        if remaining(deadline).is_none() {
            return Err(late());
        }
        if unsent {
            match ws.flush() {
                Ok(()) => unsent = false,
                Err(e) if would_block(&e) => continue,
                Err(e) => return Err(lost(e)),
            }
        }
        let text = match ws.read() {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(frame)) => {
                let why = frame
                    .map(|f| format!("close {} {}", u16::from(f.code), f.reason))
                    .unwrap_or_else(|| "close without a code".to_owned());
                return Err(ClientError::Handshake(format!(
                    "{}: the gateway closed the connection before hello ({why})",
                    opts.url
                )));
            }
            Ok(_) => continue,
            Err(e) if would_block(&e) => continue,
            Err(e) => return Err(lost(e)),
        };
        match wire::parse(&text) {
            Ok(ServerFrame::HelloOk(hello)) => {
                if hello.protocol_version != PROTOCOL_VERSION {
                    return Err(ClientError::Rejected {
                        code: "PROTOCOL_MISMATCH".to_owned(),
                        message: format!(
                            "gateway speaks protocol {}, this client speaks {PROTOCOL_VERSION}",
                            hello.protocol_version
                        ),
                    });
                }
                return Ok(hello.into());
            }
            Ok(ServerFrame::HelloError { error }) => {
                let error = RemoteError::from(error);
                return Err(ClientError::Rejected {
                    code: error.code,
                    message: error.message,
                });
            }
            Ok(other) => debug!("ignoring a frame before hello: {other:?}"),
            Err(e) => {
                return Err(ClientError::Handshake(format!(
                    "{}: expected hello_ok, got an unreadable frame: {e}",
                    opts.url
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (_, host, port) = parse_url("ws://127.0.0.1:18789").unwrap();
        assert_eq!((host.as_str(), port), ("127.0.0.1", 18789));
        let (_, host, port) = parse_url("ws://[::1]:9/x").unwrap();
        assert_eq!((host.as_str(), port), ("::1", 9));
        assert_eq!(parse_url("ws://localhost").unwrap().2, 80);
        for bad in ["wss://h:1", "http://h:1", "not a url", ""] {
            assert!(
                matches!(parse_url(bad), Err(ClientError::InvalidUrl(_))),
                "{bad} accepted"
            );
        }
    }
}
