//! The one error type of the media layer, and its mapping onto the wire.
//!
//! Every variant says what the caller (ultimately the client of `channels.fetch` or
//! `channels.send`) should do; [`MediaError::to_body`] is the only place that turns one into a
//! protocol error, so the codes of the contract's "Media in" and "Media out" are decided once.

use std::fmt;

use crate::protocol::{ErrorBody, ErrorCode};

/// Why a media operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaError {
    /// The attachment id does not decode or belongs to another channel: `NOT_FOUND`.
    NotFound(String),
    /// The request is malformed (bad base64, too many attachments, a path that is not a
    /// regular file): fix it. `INVALID_REQUEST`.
    Invalid(String),
    /// A path outside `media.sendDirs`: the gateway refuses to read it. `FORBIDDEN`.
    Forbidden(String),
    /// Over a size limit (a config key or the platform's): `PAYLOAD_TOO_LARGE`.
    TooLarge(String),
    /// The platform refused or broke off (5xx, 404 on a file URL, reset mid-body, a short
    /// body): retry later. `UNAVAILABLE`, retryable.
    Unavailable(String),
    /// The platform answered this HTTP status to a download. Kept apart from
    /// [`MediaError::Unavailable`] so a connector can react (Discord refreshes an expired
    /// attachment URL on 403/404); on the wire it is `UNAVAILABLE`, retryable.
    Status { status: u16, message: String },
    /// The media dir's file system is full: free space under the dir named, then retry.
    /// `UNAVAILABLE`, retryable (it is an operator's fix, not the client's).
    DiskFull(String),
    /// Any other local I/O failure (permissions on the state dir, say): `INTERNAL`.
    Io(String),
}

impl MediaError {
    /// The same error with its text rewritten (to say which attachment it is about).
    pub fn map_text(self, f: impl FnOnce(String) -> String) -> MediaError {
        match self {
            MediaError::NotFound(t) => MediaError::NotFound(f(t)),
            MediaError::Invalid(t) => MediaError::Invalid(f(t)),
            MediaError::Forbidden(t) => MediaError::Forbidden(f(t)),
            MediaError::TooLarge(t) => MediaError::TooLarge(f(t)),
            MediaError::Unavailable(t) => MediaError::Unavailable(f(t)),
            MediaError::DiskFull(t) => MediaError::DiskFull(f(t)),
            MediaError::Io(t) => MediaError::Io(f(t)),
            MediaError::Status { status, message } => MediaError::Status {
                status,
                message: f(message),
            },
        }
    }

    /// The protocol error for this failure.
    pub fn to_body(&self) -> ErrorBody {
        let text = self.to_string();
        match self {
            MediaError::NotFound(_) => ErrorBody::new(ErrorCode::NotFound, text),
            MediaError::Invalid(_) => ErrorBody::new(ErrorCode::InvalidRequest, text),
            MediaError::Forbidden(_) => ErrorBody::new(ErrorCode::Forbidden, text),
            MediaError::TooLarge(_) => ErrorBody::new(ErrorCode::PayloadTooLarge, text),
            MediaError::Unavailable(_) | MediaError::Status { .. } | MediaError::DiskFull(_) => {
                ErrorBody::retryable(ErrorCode::Unavailable, text, None)
            }
            MediaError::Io(_) => ErrorBody::new(ErrorCode::Internal, text),
        }
    }
}

impl fmt::Display for MediaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MediaError::NotFound(t)
            | MediaError::Invalid(t)
            | MediaError::Forbidden(t)
            | MediaError::TooLarge(t)
            | MediaError::Unavailable(t)
            | MediaError::DiskFull(t)
            | MediaError::Io(t) => f.write_str(t),
            MediaError::Status { message, .. } => f.write_str(message),
        }
    }
}

impl From<MediaError> for ErrorBody {
    fn from(e: MediaError) -> ErrorBody {
        e.to_body()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_maps_to_its_contract_code() {
        let cases = [
            (MediaError::NotFound("x".into()), ErrorCode::NotFound, false),
            (MediaError::Invalid("x".into()), ErrorCode::InvalidRequest, false),
            (MediaError::Forbidden("x".into()), ErrorCode::Forbidden, false),
            (
                MediaError::TooLarge("x".into()),
                ErrorCode::PayloadTooLarge,
                false,
            ),
            (MediaError::Unavailable("x".into()), ErrorCode::Unavailable, true),
            (
                MediaError::Status {
                    status: 503,
                    message: "x".into(),
                },
                ErrorCode::Unavailable,
                true,
            ),
            (MediaError::DiskFull("x".into()), ErrorCode::Unavailable, true),
            (MediaError::Io("x".into()), ErrorCode::Internal, false),
        ];
        for (error, code, retryable) in cases {
            let body = error.to_body();
            assert_eq!((body.code, body.retryable), (code, retryable), "{error:?}");
            assert_eq!(body.message, "x");
        }
    }
}
