//! HTTP plumbing shared by the connectors' `ureq` clients: the agent, per-call timeouts, the
//! classification of transport errors, and the two media transfers: a streamed download into
//! the media cache ([`download`]) and a streamed multipart upload ([`post_multipart`]).
//!
//! The one distinction that matters most is [`Transport::Connect`] versus
//! [`Transport::Network`]: only a request that surely never reached the platform may be sent
//! again without risking a duplicate chat message. Each client maps these into its own error.

use std::fmt;
use std::io::{self, Read};
use std::time::Duration;

use ureq::config::RedirectAuthHeaders;
use ureq::typestate::{WithBody, WithoutBody};

use super::media::MediaError;
use super::media::multipart::Multipart;

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
/// not followed (a token-bearing request must not go elsewhere; a 3xx is returned as is;
/// only [`download`] follows them, never with the `Authorization` header),
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

/// Redirects a download follows (a platform's file URL may bounce to a CDN).
const DOWNLOAD_REDIRECTS: u32 = 3;

/// GET `request` and hand its body to `store` (normally [`super::media::cache::MediaCache::store`])
/// as it arrives, with the length the server announced, if any.
///
/// Redirects are followed (up to [`DOWNLOAD_REDIRECTS`]), but an `Authorization` header never
/// is: ureq's `RedirectAuthHeaders::Never`, set here explicitly rather than trusted as a
/// default. (Its alternative, `SameHost`, compares host names without ports, so it would hand
/// a Slack bot token to any other service on the same host.) A download that needs its token
/// after a redirect fails visibly instead.
///
/// Errors: no answer, a non-2xx status ([`MediaError::Status`], so a connector can react to
/// an expired URL) or a body that breaks off are all `UNAVAILABLE`, retryable; the limits are
/// `store`'s. The request URL is never quoted (Telegram's file URLs carry the bot token).
pub fn download<T>(
    request: ureq::RequestBuilder<WithoutBody>,
    timeout: Duration,
    store: impl FnOnce(&mut dyn Read, Option<u64>) -> Result<T, MediaError>,
) -> Result<T, MediaError> {
    let request = with_timeouts(request, timeout)
        .config()
        .max_redirects(DOWNLOAD_REDIRECTS)
        .redirect_auth_headers(RedirectAuthHeaders::Never)
        .build();
    let response = request.call().map_err(|e| {
        MediaError::Unavailable(format!(
            "the download failed: {}; try again",
            classify_transport(&e)
        ))
    })?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(MediaError::Status {
            status,
            message: format!("the platform answered HTTP {status} to the download; try again"),
        });
    }
    let length = response.body().content_length();
    let mut body = response.into_body().into_reader();
    store(&mut body, length)
}

/// POST `form` as `multipart/form-data` with its exact `Content-Length`, streaming it (files
/// are read as they are sent). Errors classify like any call ([`classify_transport`]): a
/// timeout or reset mid-body is [`Transport::Network`], so an upload, like a text send, is
/// never retried once it may have arrived.
pub fn post_multipart(
    request: ureq::RequestBuilder<WithBody>,
    timeout: Duration,
    form: Multipart,
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    let length = form.content_length();
    with_timeouts(request, timeout)
        .header("Content-Type", form.content_type())
        .header("Content-Length", length.to_string())
        .send(ureq::SendBody::from_owned_reader(form.into_reader()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::media::cache::MediaCache;
    use crate::channels::media::hash::sha256_hex;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::thread;

    /// Answers one request: reads the headers and the Content-Length body, then replies with
    /// `header_pad` bytes of extra header and a body that reports the request body's length
    /// and checksum, padded to `body_len`.
    fn serve_once(listener: TcpListener, header_pad: usize, body_len: usize) -> thread::JoinHandle<()> {
        let (handle, _) = serve(listener, 1, move |seen| {
            let sum: u64 = seen.body.iter().map(|&b| u64::from(b)).sum();
            let mut reply = format!("{} {sum} ", seen.body.len()).into_bytes();
            reply.resize(body_len, b'x');
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nX-Pad: {}\r\nContent-Length: {}\r\n\r\n",
                "p".repeat(header_pad),
                reply.len()
            )
            .into_bytes();
            out.extend_from_slice(&reply);
            out
        });
        handle
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

    /// One request as [`serve`] saw it: the head (request line and headers, lowercased) and
    /// the Content-Length body.
    struct Seen {
        head: String,
        body: Vec<u8>,
    }

    /// Answer `n` requests on `listener`, each with the raw bytes `reply` gives (a reply may
    /// stop short of its Content-Length: the connection then closes mid-body). What each
    /// request looked like comes back on the channel.
    fn serve(
        listener: TcpListener,
        n: usize,
        reply: impl Fn(&Seen) -> Vec<u8> + Send + 'static,
    ) -> (thread::JoinHandle<()>, std::sync::mpsc::Receiver<Seen>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = thread::spawn(move || {
            for _ in 0..n {
                let (stream, _) = listener.accept().unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    head.push_str(&lower);
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let seen = Seen { head, body };
                let mut stream = stream;
                let _ = stream.write_all(&reply(&seen));
                let _ = tx.send(seen);
            }
        });
        (handle, rx)
    }

    fn ok_with(body: &[u8], announced: usize) -> Vec<u8> {
        let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {announced}\r\nConnection: close\r\n\r\n")
            .into_bytes();
        r.extend_from_slice(body);
        r
    }

    fn local() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        (listener, base)
    }

    fn fetch(
        cache: &MediaCache,
        url: &str,
        max: u64,
    ) -> Result<crate::channels::media::cache::CachedFile, MediaError> {
        let request = agent(Duration::from_secs(10), "test")
            .get(url)
            .header("Authorization", "Bearer xoxb-secret");
        download(request, Duration::from_secs(10), |body, length| {
            cache.store("id1", Some("f.bin".into()), None, body, max, length)
        })
    }

    fn files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn a_download_streams_into_the_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = MediaCache::open(tmp.path(), 1 << 30).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
        let (listener, base) = local();
        let body = data.clone();
        let (server, _) = serve(listener, 1, move |_| ok_with(&body, body.len()));
        let got = fetch(&cache, &format!("{base}/file"), 1 << 20).unwrap();
        server.join().unwrap();
        assert_eq!(got.sha256, sha256_hex(&data));
        assert_eq!(std::fs::read(&got.path).unwrap(), data);
    }

    #[test]
    fn error_statuses_are_retryable_and_keep_their_status() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = MediaCache::open(tmp.path(), 1 << 30).unwrap();
        for status in [404u16, 500, 502] {
            let (listener, base) = local();
            let (server, _) = serve(listener, 1, move |_| {
                format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nno").into_bytes()
            });
            let e = fetch(&cache, &format!("{base}/file"), 1 << 20).unwrap_err();
            server.join().unwrap();
            assert!(
                matches!(&e, MediaError::Status { status: s, .. } if *s == status),
                "{e:?}"
            );
            let body = e.to_body();
            assert_eq!(
                (body.code, body.retryable),
                (crate::protocol::ErrorCode::Unavailable, true)
            );
        }
        assert_eq!(files(tmp.path()), 0);
    }

    #[test]
    fn a_body_that_breaks_off_leaves_nothing_and_the_next_fetch_works() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = MediaCache::open(tmp.path(), 1 << 30).unwrap();
        let (listener, base) = local();
        let (server, _) = serve(listener, 1, |_| ok_with(&[7u8; 50_000], 100_000));
        let e = fetch(&cache, &format!("{base}/file"), 1 << 20).unwrap_err();
        server.join().unwrap();
        assert!(matches!(e, MediaError::Unavailable(_)), "{e:?}");
        assert!(e.to_body().retryable);
        assert_eq!(files(tmp.path()), 0);
        let (listener, base) = local();
        let (server, _) = serve(listener, 1, |_| ok_with(&[7u8; 100_000], 100_000));
        assert_eq!(
            fetch(&cache, &format!("{base}/file"), 1 << 20).unwrap().size,
            100_000
        );
        server.join().unwrap();
    }

    #[test]
    fn an_announced_size_over_the_limit_is_refused_unread() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = MediaCache::open(tmp.path(), 1 << 30).unwrap();
        let (listener, base) = local();
        let (server, _) = serve(listener, 1, |_| ok_with(&[1u8; 2000], 2000));
        let e = fetch(&cache, &format!("{base}/file"), 1000).unwrap_err();
        server.join().unwrap();
        assert!(
            matches!(&e, MediaError::TooLarge(m) if m.contains("media.maxBytes")),
            "{e:?}"
        );
        assert_eq!(files(tmp.path()), 0);
    }

    /// Slack's `url_private` needs the bot token; a redirect must never carry it to another
    /// server: neither another host (127.0.0.2) nor another port of the same host.
    #[test]
    fn redirects_never_carry_the_authorization_header() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = MediaCache::open(tmp.path(), 1 << 30).unwrap();
        for target_ip in ["127.0.0.2", "127.0.0.1"] {
            let target = TcpListener::bind(format!("{target_ip}:0")).unwrap();
            let to = format!("http://{}/cdn/file", target.local_addr().unwrap());
            let (b, b_seen) = serve(target, 1, |_| ok_with(b"cdn bytes", 9));
            let (listener, base) = local();
            let (a, a_seen) = serve(listener, 1, move |_| {
                format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n").into_bytes()
            });
            let got = fetch(&cache, &format!("{base}/files-pri/x"), 1 << 20).unwrap();
            a.join().unwrap();
            b.join().unwrap();
            assert_eq!(std::fs::read(&got.path).unwrap(), b"cdn bytes");
            let first = a_seen.recv().unwrap().head;
            assert!(first.contains("authorization: bearer xoxb-secret"), "{first}");
            let second = b_seen.recv().unwrap().head;
            assert!(second.starts_with("get /cdn/file "), "{second}");
            assert!(!second.contains("authorization"), "{target_ip}: {second}");
        }
    }

    /// The upload goes with its exact Content-Length (not chunked) and the parts' bytes.
    #[test]
    fn a_multipart_post_streams_with_its_exact_length() {
        use std::io::Seek;
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 239) as u8).collect();
        file.write_all(&data).unwrap();
        file.rewind().unwrap();
        let mut form = Multipart::new();
        form.text("chat_id", "42").file(
            "document",
            "d.bin",
            "application/octet-stream",
            file,
            data.len() as u64,
        );
        let want_len = form.content_length();
        let (listener, base) = local();
        let (server, seen) = serve(listener, 1, |_| ok_with(b"{}", 2));
        let request = agent(Duration::from_secs(10), "test").post(format!("{base}/upload"));
        let response = post_multipart(request, Duration::from_secs(10), form).unwrap();
        server.join().unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let seen = seen.recv().unwrap();
        assert!(
            seen.head.contains(&format!("content-length: {want_len}\r\n")),
            "{}",
            seen.head
        );
        assert!(
            seen.head
                .contains("content-type: multipart/form-data; boundary=emonk-"),
            "{}",
            seen.head
        );
        assert!(!seen.head.contains("transfer-encoding"), "{}", seen.head);
        assert_eq!(seen.body.len() as u64, want_len);
        let at = seen.body.windows(data.len()).position(|w| w == &data[..]);
        assert!(at.is_some(), "the file bytes are in the body");
    }
}
