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

/// A client's agent: statuses are answers (4xx/5xx carry the body to read), redirects are
/// not followed (a token-bearing request must not go elsewhere; a 3xx is returned as is),
/// `timeout_global` is a safety net only (every call sets its own budget).
pub fn agent(timeout_global: Duration, user_agent: &str) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
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
