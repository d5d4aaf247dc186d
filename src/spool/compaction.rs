//! When to rewrite the journal without its acknowledged lines.
//!
//! Acked lines are dead weight: replay skips them, but they cost disk and startup time.
//! Rewriting costs a full copy of the live tail plus two fsyncs, so it is not done on every
//! ack (agents typically ack message by message) but when the dead part is large in
//! absolute terms or dominates the file.

/// Dead bytes that always justify a rewrite.
pub(crate) const ALWAYS_DEAD: u64 = 1024 * 1024;

/// Below this a rewrite is never worth it, even if the file is mostly dead: a small file
/// costs nothing to replay, and this stops a compaction on every ack of a short queue.
pub(crate) const MIN_DEAD: u64 = 64 * 1024;

/// Whether a journal of `file_len` bytes, `dead` of them acknowledged (or corrupt), should
/// be compacted now.
pub(crate) fn due(dead: u64, file_len: u64) -> bool {
    dead >= ALWAYS_DEAD || (dead >= MIN_DEAD && dead.saturating_mul(2) >= file_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        assert!(!due(0, 0));
        assert!(!due(MIN_DEAD - 1, MIN_DEAD));
        assert!(due(MIN_DEAD, 2 * MIN_DEAD));
        assert!(!due(MIN_DEAD, 2 * MIN_DEAD + 1));
        assert!(due(ALWAYS_DEAD, 100 * ALWAYS_DEAD));
    }
}
