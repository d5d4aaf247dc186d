//! One Socket Mode WebSocket: a blocking tungstenite client whose reads time out after a
//! short slice, so the connector thread can own every socket and still notice commands.
//!
//! Why one thread and read timeouts rather than a reader thread per socket: tungstenite's
//! `WebSocket` is one object for reading and writing, and acks must go out on the socket the
//! envelope came in on, at once. Owning the sockets on the connector thread makes "ack on
//! receipt, before handling" a plain function call; the cost is a wake-up per slice while a
//! socket is open (10 per second), which is nothing for a daemon.
//!
//! `connect` (TCP connect, TLS and the WebSocket handshake) blocks with its own timeouts, so
//! the connector runs it on a call thread (see [`crate::channels::calls`]).

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use tungstenite::protocol::WebSocketConfig;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// Largest frame accepted from Slack (events are a few KiB).
const MAX_MESSAGE: usize = 4 * 1024 * 1024;
/// Bound on unsent bytes (acks and pings are tiny; a peer that does not read is dead).
const MAX_WRITE_BUFFER: usize = 1024 * 1024;
/// Writes (acks, pings, close) give up after this.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// The close frame gives up after this.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_millis(200);

pub type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

/// Open a Socket Mode URL (`wss://` in production, `ws://` against a local fake). The whole
/// setup is bounded: `timeout` for the TCP connect and again for TLS plus handshake.
pub fn connect(url: &str, timeout: Duration) -> Result<Ws, String> {
    use tungstenite::client::IntoClientRequest;
    let request = url
        .into_client_request()
        .map_err(|e| format!("bad Socket Mode URL: {e}"))?;
    let uri = request.uri();
    let host = uri.host().ok_or("Socket Mode URL without host")?.to_owned();
    let tls = uri.scheme_str() == Some("wss");
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addrs: Vec<_> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut last = format!("no address for {host}");
    let mut connected = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => {
                connected = Some(s);
                break;
            }
            Err(e) => last = format!("cannot connect to {a}: {e}"),
        }
    }
    let stream = connected.ok_or(last)?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(WRITE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
        .max_write_buffer_size(MAX_WRITE_BUFFER);
    let (ws, _) = tungstenite::client_tls_with_config(request, stream, Some(config), None)
        .map_err(|e| format!("WebSocket handshake: {e}"))?;
    Ok(ws)
}

fn tcp(ws: &Ws) -> &TcpStream {
    match ws.get_ref() {
        MaybeTlsStream::Plain(s) => s,
        MaybeTlsStream::Rustls(s) => s.get_ref(),
        // MaybeTlsStream is non_exhaustive; only the two above are enabled.
        _ => unreachable!("no other TLS backend is compiled in"),
    }
}

/// What one read gave.
pub enum Read {
    Text(String),
    /// Nothing arrived within the slice (pings and pongs count as traffic, not as text).
    Idle,
    /// The socket is gone, with why.
    Closed(String),
}

/// A Socket Mode connection as the connector tracks it.
pub struct Socket {
    /// Counter-assigned, for logs.
    pub id: u64,
    ws: Ws,
    /// Last time anything (a frame, a ping, a pong) came in.
    pub last_rx: Instant,
    pub last_ping: Instant,
    /// Slack said `hello` on it.
    pub hello: bool,
    /// Slack asked us to replace it (`disconnect` refresh_requested/warning): keep reading it
    /// until the replacement says hello, then close it.
    pub draining: bool,
}

impl Socket {
    pub fn new(id: u64, ws: Ws) -> Socket {
        let now = Instant::now();
        Socket {
            id,
            ws,
            last_rx: now,
            last_ping: now,
            hello: false,
            draining: false,
        }
    }

    /// Read one frame, waiting at most `slice`.
    pub fn read(&mut self, slice: Duration) -> Read {
        if let Err(e) = tcp(&self.ws).set_read_timeout(Some(slice.max(Duration::from_millis(1)))) {
            return Read::Closed(e.to_string());
        }
        match self.ws.read() {
            Ok(Message::Text(t)) => {
                self.last_rx = Instant::now();
                Read::Text(t.to_string())
            }
            Ok(Message::Close(frame)) => Read::Closed(match frame {
                Some(f) => format!("closed by Slack ({} {})", u16::from(f.code), f.reason),
                None => "closed by Slack".into(),
            }),
            Ok(_) => {
                self.last_rx = Instant::now();
                Read::Idle
            }
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
            {
                Read::Idle
            }
            Err(e) => Read::Closed(e.to_string()),
        }
    }

    /// Send a text frame now (acks). An error means the socket is dead.
    pub fn send_text(&mut self, text: String) -> Result<(), String> {
        self.ws.send(Message::text(text)).map_err(|e| e.to_string())
    }

    pub fn ping(&mut self) -> Result<(), String> {
        self.last_ping = Instant::now();
        self.ws
            .send(Message::Ping(Vec::new().into()))
            .map_err(|e| e.to_string())
    }

    /// Send a close frame (best effort) and drop the connection.
    pub fn close(mut self) {
        // A peer that does not read must not hold up a stop.
        let _ = tcp(&self.ws).set_write_timeout(Some(CLOSE_WRITE_TIMEOUT));
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
        let _ = tcp(&self.ws).shutdown(std::net::Shutdown::Both);
    }
}
