//! Error codes and WebSocket close codes of the contract, and the error body sent on the wire.

use serde::Serialize;

/// Every error code the contract defines. The variant says what the caller should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The frame or its params are malformed: fix the request.
    InvalidRequest,
    /// No such method: check `methods` in `hello_ok`.
    UnknownMethod,
    /// Bad or missing credentials: fix the token or password.
    Unauthorized,
    /// Authenticated, but this mode or role may not do that.
    Forbidden,
    /// The named thing (channel, cursor) does not exist.
    NotFound,
    /// Temporarily impossible (no agent, gateway busy or stopping): retry later.
    Unavailable,
    /// Nothing answered in time.
    Timeout,
    /// Too many requests or failed logins: wait `retryAfterMs`.
    RateLimited,
    /// The frame was larger than allowed.
    PayloadTooLarge,
    /// The client speaks another protocol version.
    ProtocolMismatch,
    /// A bug in the gateway: report it.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::UnknownMethod => "UNKNOWN_METHOD",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::ProtocolMismatch => "PROTOCOL_MISMATCH",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

/// The `error` object of `response`, `error` and `hello_error` frames.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    pub retryable: bool,
    pub retry_after_ms: Option<u64>,
}

impl ErrorBody {
    /// A non-retryable error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            code,
            message: message.into(),
            retryable: false,
            retry_after_ms: None,
        }
    }

    /// A retryable error, optionally with the delay the caller should wait.
    pub fn retryable(code: ErrorCode, message: impl Into<String>, after_ms: Option<u64>) -> ErrorBody {
        ErrorBody {
            code,
            message: message.into(),
            retryable: true,
            retry_after_ms: after_ms,
        }
    }
}

/// WebSocket close codes used by the gateway (RFC 6455 numbers, contract meanings).
pub mod close {
    /// Normal closure (client asked to close).
    pub const NORMAL: u16 = 1000;
    /// The gateway is stopping.
    pub const STOPPING: u16 = 1001;
    /// Protocol error: bad first frame, wrong protocol version, a broken WebSocket frame.
    pub const PROTOCOL: u16 = 1002;
    /// A text frame or a close reason was not valid UTF-8 (RFC 6455, 7.4.1).
    pub const INVALID_DATA: u16 = 1007;
    /// Policy: bad auth, no connect in time, slow consumer, Origin refused, superseded agent.
    pub const POLICY: u16 = 1008;
    /// A frame was larger than allowed.
    pub const TOO_BIG: u16 = 1009;
    /// The gateway is restarting; reconnect after `restartExpectedMs`.
    pub const RESTARTING: u16 = 1012;
}
