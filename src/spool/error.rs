//! The spool's errors. Each variant says what the caller should do, because the connector
//! logs them as-is and the router maps them onto wire error codes.

use std::fmt;
use std::io;

use super::SpoolLimits;

/// Why opening the spool or appending to it failed.
#[derive(Debug)]
pub enum SpoolError {
    /// The batch would take the unacknowledged part past a limit. Nothing was written and
    /// no high-water mark moved: do not confirm the platform offset, so the platform keeps
    /// the messages, and retry later. It clears when the agent acks (`events.ack`) or the
    /// operator raises `spool.maxEntries` / `spool.maxBytes`.
    Full {
        /// Unacknowledged messages held now (before the refused batch).
        entries: usize,
        /// Unacknowledged bytes held now (before the refused batch).
        bytes: u64,
        /// The limits in force.
        limits: SpoolLimits,
    },
    /// The disk refused: the state dir is unwritable, full, or a spool file is unreadable or
    /// corrupt beyond repair (the message names the file). After a failed append nothing
    /// of the batch counts as spooled: do not confirm the platform offset.
    Io(io::Error),
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::Full {
                entries,
                bytes,
                limits,
            } => write!(
                f,
                "spool full: {entries} unacknowledged messages, {bytes} bytes (limits: {} messages, \
                 {} bytes); the agent must ack (events.ack) or raise spool.maxEntries/maxBytes",
                limits.max_entries, limits.max_bytes
            ),
            SpoolError::Io(e) => write!(f, "spool: {e}"),
        }
    }
}

impl std::error::Error for SpoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpoolError::Io(e) => Some(e),
            SpoolError::Full { .. } => None,
        }
    }
}

impl From<io::Error> for SpoolError {
    fn from(e: io::Error) -> SpoolError {
        SpoolError::Io(e)
    }
}

/// Why `events.ack` failed.
#[derive(Debug)]
pub enum AckError {
    /// The cursor was never handed out (it is past the last one assigned). Answer
    /// `NOT_FOUND`: the agent is confused or talking to a different gateway's spool.
    Unknown {
        /// The cursor the agent sent.
        cursor: u64,
        /// The last cursor assigned (0 if none yet).
        last: u64,
    },
    /// The acknowledgement could not be made durable, so it did not happen: nothing was
    /// removed and the messages will be delivered again. Answer `INTERNAL` (retryable).
    Io(io::Error),
}

impl fmt::Display for AckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AckError::Unknown { cursor, last } => write!(
                f,
                "cursor {cursor} was never delivered (the last cursor is {last}); ack a cursor from a \
                 channel.message"
            ),
            AckError::Io(e) => write!(f, "could not record the ack, so it did not happen: {e}"),
        }
    }
}

impl std::error::Error for AckError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AckError::Io(e) => Some(e),
            AckError::Unknown { .. } => None,
        }
    }
}

impl From<io::Error> for AckError {
    fn from(e: io::Error) -> AckError {
        AckError::Io(e)
    }
}

/// Prefix an I/O error with the file it concerns (one definition, in `statefs`).
pub(crate) use crate::statefs::at;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_do() {
        let full = SpoolError::Full {
            entries: 3,
            bytes: 10,
            limits: SpoolLimits {
                max_entries: 3,
                max_bytes: 100,
            },
        };
        let s = full.to_string();
        assert!(
            s.contains("events.ack") && s.contains("spool.maxEntries/maxBytes"),
            "{s}"
        );
        let s = AckError::Unknown { cursor: 9, last: 4 }.to_string();
        assert!(s.contains("9") && s.contains("4"), "{s}");
        let e = at(std::path::Path::new("/x/journal.jsonl"), io::Error::other("boom"));
        assert_eq!(e.to_string(), "/x/journal.jsonl: boom");
    }
}
