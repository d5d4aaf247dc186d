//! The client's one error type. Each variant's `Display` tells the user what happened and
//! what to do next, because the CLI prints it as-is; `exit_code` maps it onto the
//! contract's exit codes in one place.

use std::fmt;
use std::time::Duration;

use crate::exit;

/// An `error` object from the gateway: a response error, a `hello_error`, or an `error`
/// frame about a frame the gateway could not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// One of the contract's codes (`INVALID_REQUEST`, `UNKNOWN_METHOD`, `UNAUTHORIZED`,
    /// `FORBIDDEN`, `NOT_FOUND`, `UNAVAILABLE`, `TIMEOUT`, `RATE_LIMITED`,
    /// `PAYLOAD_TOO_LARGE`, `PROTOCOL_MISMATCH`, `INTERNAL`), or whatever an agent sent.
    pub code: String,
    /// Human-readable detail.
    pub message: String,
    /// Whether the same request may succeed later.
    pub retryable: bool,
    /// When to retry, if the gateway said.
    pub retry_after_ms: Option<u64>,
}

impl RemoteError {
    /// A non-retryable error; agents use this to answer forwarded requests.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> RemoteError {
        RemoteError {
            code: code.into(),
            message: message.into(),
            retryable: false,
            retry_after_ms: None,
        }
    }

    /// A retryable error with an optional hint of when to retry.
    pub fn retryable(
        code: impl Into<String>,
        message: impl Into<String>,
        retry_after_ms: Option<u64>,
    ) -> RemoteError {
        RemoteError {
            retryable: true,
            retry_after_ms,
            ..RemoteError::new(code, message)
        }
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        match (self.retryable, self.retry_after_ms) {
            (true, Some(ms)) => write!(f, " (retry after {ms} ms)"),
            (true, None) => write!(f, " (may be retried)"),
            (false, _) => Ok(()),
        }
    }
}

impl std::error::Error for RemoteError {}

/// Why a client operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not `ws://HOST:PORT[/PATH]`. Fix the `--url`.
    InvalidUrl(String),
    /// Nothing answered at the address (refused, unreachable, DNS, connect timeout).
    /// Check that the gateway runs and the URL is right.
    Connect(String),
    /// Something answered but the WebSocket upgrade or the hello failed: wrong service
    /// on that port, an `Origin` refusal, or no hello in time.
    Handshake(String),
    /// The gateway refused the connection with `hello_error`. `UNAUTHORIZED` and
    /// `PROTOCOL_MISMATCH` are final: the client does not reconnect after them.
    Rejected {
        /// The `hello_error` code.
        code: String,
        /// The gateway's explanation.
        message: String,
    },
    /// The gateway (or the agent behind it) answered the request with an error.
    Remote(RemoteError),
    /// No final answer within the caller's timeout. The request may still run; its late
    /// answer is discarded.
    Timeout {
        /// The method called (`"respond"` for an agent's answer).
        method: String,
        /// The timeout that elapsed.
        after: Duration,
    },
    /// The link dropped (or is down while the client reconnects). A request in flight may
    /// or may not have run; it is never resent.
    Disconnected(String),
    /// The frame would exceed the gateway's `maxPayload`; nothing was sent.
    TooLarge {
        /// Size of the encoded frame in bytes.
        size: usize,
        /// The gateway's limit from its hello.
        max: u64,
    },
    /// A streamed answer arrived faster than the chunk callback consumed it, past the
    /// client's bound; the call was abandoned.
    Overrun {
        /// The method called.
        method: String,
        /// Chunks that were queued when the client gave up.
        limit: usize,
    },
    /// `respond` named a forwarded request that is not open on the current link.
    UnknownRequest(String),
    /// The client was closed; connect a new one.
    Closed,
}

impl ClientError {
    /// The process exit code a CLI should use for this error (see [`crate::exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::InvalidUrl(_) => exit::USAGE,
            _ => exit::FAILURE,
        }
    }

    /// True for errors after which the client will not connect again by itself.
    pub fn is_final(&self) -> bool {
        match self {
            ClientError::Rejected { code, .. } => is_final_rejection(code),
            ClientError::InvalidUrl(_) | ClientError::Closed => true,
            _ => false,
        }
    }
}

/// `hello_error` codes that retrying cannot fix without a human changing something.
pub(crate) fn is_final_rejection(code: &str) -> bool {
    matches!(code, "UNAUTHORIZED" | "PROTOCOL_MISMATCH")
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidUrl(why) => write!(
                f,
                "invalid gateway URL: {why}; use ws://HOST:PORT, for example ws://127.0.0.1:18789"
            ),
            ClientError::Connect(why) => write!(
                f,
                "could not reach the gateway: {why}; check that emonkd is running \
                 (`emonkd status`) and that the URL or port is right"
            ),
            ClientError::Handshake(why) => write!(
                f,
                "reached the address but the gateway handshake failed: {why}; check that \
                 the URL points at emonkd and that client and gateway versions match"
            ),
            ClientError::Rejected { code, message } => match code.as_str() {
                "UNAUTHORIZED" => write!(
                    f,
                    "the gateway refused the credentials ({code}: {message}); pass the right \
                     --token or --password, or fix gateway.auth in the config"
                ),
                "PROTOCOL_MISMATCH" => write!(
                    f,
                    "the gateway speaks another protocol version ({message}); use a client \
                     of the same emonkd version as the gateway"
                ),
                _ => write!(f, "the gateway refused the connection: {code}: {message}"),
            },
            ClientError::Remote(err) => write!(f, "the gateway answered {err}"),
            ClientError::Timeout { method, after } => write!(
                f,
                "no answer to `{method}` within {} ms; the gateway or its agent may be busy: \
                 retry with a longer timeout (--timeout-ms)",
                after.as_millis()
            ),
            ClientError::Disconnected(why) => write!(
                f,
                "lost the connection to the gateway: {why}; a request in flight may or may \
                 not have run, so check before retrying it"
            ),
            ClientError::TooLarge { size, max } => write!(
                f,
                "the request is {size} bytes but the gateway accepts at most {max} \
                 (gateway.maxPayloadBytes); send less data"
            ),
            ClientError::Overrun { method, limit } => write!(
                f,
                "the streamed answer to `{method}` outran the chunk handler ({limit} chunks \
                 queued); the call was abandoned: make the handler faster"
            ),
            ClientError::UnknownRequest(id) => write!(
                f,
                "no forwarded request `{id}` is open on this connection (already answered, \
                 or it came over a link that has since dropped); nothing was sent"
            ),
            ClientError::Closed => write!(
                f,
                "the client was closed; connect a new one with GatewayClient::connect"
            ),
        }
    }
}

impl std::error::Error for ClientError {}
