//! HTTP plumbing shared by the connectors' `ureq` clients: the agent, per-call timeouts and
//! the classification of transport errors.
//!
//! The one distinction that matters most is [`Transport::Connect`] versus
//! [`Transport::Network`]: only a request that surely never reached the platform may be sent
//! again without risking a duplicate chat message. Each client maps these into its own error.

use std::fmt;
use std::io;
use std::time::Duration;

/// Upper bound for name resolution and for connection setup (TCP + TLS), each. Setting these
/// separately from the global timeout is what lets a connect-phase timeout be reported as
/// `Timeout::Connect`/`Resolve` (hence [`Transport::Connect`]) rather than the ambiguous
/// `Timeout::Global`.
pub const MAX_SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-connection read buffer. ureq's default is 128 KiB for each direction, allocated when
/// a connection opens and kept while it is pooled: 256 KiB for an idle Telegram long poll,
/// over a twentieth of the daemon's idle RSS. Bodies stream through the buffers in pieces, so
/// only a response's status line and headers must fit; the platforms send a few KiB.
const INPUT_BUFFER: usize = 32 * 1024;
/// Per-connection write buffer: request line and headers (well under 1 KiB here) must fit;
/// bodies are written through it in pieces.
const OUTPUT_BUFFER: usize = 16 * 1024;

/// A client's agent: statuses are answers (4xx/5xx carry the body to read), redirects are
/// not followed (a token-bearing request must not go elsewhere; a 3xx is returned as is),
/// `timeout_global` is a safety net only (every call sets its own budget).
pub fn agent(timeout_global: Duration, user_agent: &str) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .input_buffer_size(INPUT_BUFFER)
        .output_buffer_size(OUTPUT_BUFFER)
        .max_response_header_size(INPUT_BUFFER)
        .http_status_as_error(false)
        .timeout_global(Some(timeout_global))
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent(user_agent)
        .build();
    ureq::Agent::new_with_config(config)
}

/// The budget for resolving and for connecting, each, within a call's `timeout`: half of it,
/// at most [`MAX_SETUP_TIMEOUT`].
pub fn setup_timeout(timeout: Duration) -> Duration {
    (timeout / 2).min(MAX_SETUP_TIMEOUT)
}

/// `request` bounded by `timeout` as a whole (connect to last body byte), with resolving and
/// connecting bounded by [`setup_timeout`].
pub fn with_timeouts<B>(request: ureq::RequestBuilder<B>, timeout: Duration) -> ureq::RequestBuilder<B> {
    let setup = setup_timeout(timeout);
    request
        .config()
        .timeout_global(Some(timeout))
        .timeout_resolve(Some(setup))
        .timeout_connect(Some(setup))
        .build()
}

/// A call that failed without an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The request surely never reached the server: may be retried after a backoff.
    Connect(String),
    /// Sent (maybe), no complete answer: a send must not be retried.
    Network(String),
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Connect(text) => write!(f, "cannot connect: {text}"),
            Transport::Network(text) => write!(f, "request failed after sending, outcome unknown: {text}"),
        }
    }
}

/// Classify a ureq error: [`Transport::Connect`] only when the request cannot have been sent
/// (so it cannot have been delivered), else [`Transport::Network`] (it may have been, and
/// could be duplicated by a retry).
///
/// ureq reports a TLS handshake failure as an `io::Error` carrying the rustls error, which we
/// cannot name without depending on rustls. A handshake timeout is `Timeout::Connect` and a
/// certificate error is recognised by its text (both `Connect`); other handshake failures
/// (e.g. "received corrupt message" from https to a plain-HTTP port) read the same as a TLS
/// failure mid-response, so they fall on the safe side (`Network`).
pub fn classify_transport(error: &ureq::Error) -> Transport {
    use ureq::Error as E;
    let text = error.to_string();
    let before_sending = match error {
        E::HostNotFound
        | E::ConnectionFailed
        | E::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect)
        | E::Tls(_)
        | E::Rustls(_)
        | E::Pem(_)
        | E::BadUri(_)
        | E::Http(_)
        | E::RequireHttpsOnly(_)
        | E::InvalidProxyUrl
        | E::ConnectProxyFailed(_)
        | E::TlsRequired => true,
        E::Io(e) => is_setup_io_error(e),
        _ => false,
    };
    if before_sending {
        Transport::Connect(text)
    } else {
        Transport::Network(text)
    }
}

/// An I/O error that can only come from resolving or connecting.
fn is_setup_io_error(e: &io::Error) -> bool {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::NetworkDown
        | K::AddrNotAvailable => true,
        // A rustls handshake error wrapped by ureq (see `classify_transport`).
        K::InvalidData => e.to_string().contains("certificate"),
        // std's getaddrinfo failure has no ErrorKind of its own, only this text.
        _ => e.to_string().contains("failed to lookup address"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::thread;

    /// Answers one request: reads the headers and the Content-Length body, then replies with
    /// `header_pad` bytes of extra header and a body that reports the request body's length
    /// and checksum, padded to `body_len`.
    fn serve_once(listener: TcpListener, header_pad: usize, body_len: usize) -> thread::JoinHandle<()> {
        thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut content_length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    content_length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; content_length];
            reader.read_exact(&mut body).unwrap();
            let sum: u64 = body.iter().map(|&b| u64::from(b)).sum();
            let mut reply = format!("{} {sum} ", body.len()).into_bytes();
            reply.resize(body_len, b'x');
            let head = format!(
                "HTTP/1.1 200 OK\r\nX-Pad: {}\r\nContent-Length: {}\r\n\r\n",
                "p".repeat(header_pad),
                reply.len()
            );
            let mut stream = stream;
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&reply).unwrap();
        })
    }

    /// The small buffers only bound the headers: bodies far larger than both buffers go
    /// through whole, in both directions.
    #[test]
    fn bodies_larger_than_the_buffers_stream_through() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = serve_once(listener, 8 * 1024, 10 * INPUT_BUFFER);
        let sent: Vec<u8> = (0..10 * OUTPUT_BUFFER).map(|i| (i % 251) as u8).collect();
        let want_sum: u64 = sent.iter().map(|&b| u64::from(b)).sum();
        let mut response = with_timeouts(
            agent(Duration::from_secs(10), "test").post(&url),
            Duration::from_secs(10),
        )
        .send(&sent[..])
        .unwrap();
        let body = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .unwrap();
        server.join().unwrap();
        assert_eq!(body.len(), 10 * INPUT_BUFFER);
        let text = String::from_utf8_lossy(&body[..40]).into_owned();
        assert!(text.starts_with(&format!("{} {want_sum} ", sent.len())), "{text}");
    }

    /// A header block larger than the input buffer is refused with a clear error rather than
    /// read without bound.
    #[test]
    fn oversized_response_headers_are_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = serve_once(listener, 2 * INPUT_BUFFER, 16);
        let result = with_timeouts(
            agent(Duration::from_secs(10), "test").post(&url),
            Duration::from_secs(10),
        )
        .send(&b"{}"[..]);
        let _ = server.join();
        let error = result.expect_err("a 64 KiB header block must not be accepted");
        assert!(
            matches!(classify_transport(&error), Transport::Network(_)),
            "{error}"
        );
    }
}
