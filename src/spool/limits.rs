//! How much the spool may hold before it refuses new messages.
//!
//! The bound is what makes "write before confirming the platform offset" safe under an
//! absent or stuck agent: when it is reached, appends fail with
//! [`SpoolError::Full`](super::SpoolError::Full), the connector stops confirming offsets and
//! the platform keeps the messages (Telegram holds unconfirmed updates for 24 h). Memory and
//! disk use therefore stay bounded without ever dropping a message.

/// Upper bounds on the unacknowledged part of the spool (`spool.maxEntries`,
/// `spool.maxBytes` in the config).
///
/// Both count only unacknowledged entries: acknowledged lines still waiting for compaction
/// do not count, so an ack always makes room at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpoolLimits {
    /// Most unacknowledged messages held. Default 10 000.
    pub max_entries: usize,
    /// Most bytes of unacknowledged journal lines (newlines included). Default 64 MiB.
    pub max_bytes: u64,
}

impl SpoolLimits {
    /// Whether `entries` messages of `bytes` bytes fit.
    pub(crate) fn admits(&self, entries: usize, bytes: u64) -> bool {
        entries <= self.max_entries && bytes <= self.max_bytes
    }
}

impl Default for SpoolLimits {
    fn default() -> SpoolLimits {
        SpoolLimits {
            max_entries: 10_000,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds_are_inclusive() {
        let l = SpoolLimits::default();
        assert_eq!(l.max_entries, 10_000);
        assert_eq!(l.max_bytes, 64 << 20);
        assert!(l.admits(10_000, 64 << 20));
        assert!(!l.admits(10_001, 0));
        assert!(!l.admits(0, (64 << 20) + 1));
    }
}
