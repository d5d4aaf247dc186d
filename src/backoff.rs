//! Retry delays: 1 s doubling to 30 s with up to 10 % jitter, reset after a success. Used by
//! the client to reconnect (so a fleet of clients does not reconnect in lockstep) and by the
//! connectors after platform errors (so a failing platform never sees a hot loop). After a
//! gateway restart the client's first delay is the gateway's own `restartExpectedMs` and
//! retries start short, because following an in-process restart quickly is the point.

use std::time::Duration;

pub const INITIAL: Duration = Duration::from_secs(1);
pub const MAX: Duration = Duration::from_secs(30);
/// First delay after a restart whose `shutdown` event gave no `restartExpectedMs`.
pub const RESTART_DEFAULT: Duration = Duration::from_secs(1);
/// Retry step after the expected restart time passed and the gateway was not back yet.
pub const RESTART_RETRY: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff { next: INITIAL }
    }

    /// Called after a success: the next outage starts from the short end again.
    pub fn reset(&mut self) {
        self.next = INITIAL;
    }

    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (base * 2).min(MAX);
        jitter(base)
    }

    /// The first delay after close 1012; later failures continue from [`RESTART_RETRY`].
    pub fn after_restart(&mut self, expected: Option<Duration>) -> Duration {
        self.next = RESTART_RETRY;
        jitter(expected.unwrap_or(RESTART_DEFAULT).min(MAX))
    }
}

fn jitter(base: Duration) -> Duration {
    let spread = (base.as_millis() / 10) as u64;
    if spread == 0 {
        return base;
    }
    // uuid's v4 generator is the crate's existing source of randomness; a dedicated RNG
    // crate is not worth adding for a few milliseconds of spread.
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    base + Duration::from_millis(random % (spread + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(d: Duration, base_ms: u64) -> bool {
        let ms = d.as_millis() as u64;
        ms >= base_ms && ms <= base_ms + base_ms / 10
    }

    #[test]
    fn doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new();
        for base in [1000, 2000, 4000, 8000, 16000, 30000, 30000] {
            let d = b.next_delay();
            assert!(within(d, base), "{d:?} not within 10% above {base} ms");
        }
        b.reset();
        assert!(within(b.next_delay(), 1000));
    }

    #[test]
    fn restart_uses_the_expected_delay_then_short_retries() {
        let mut b = Backoff::new();
        b.next_delay();
        b.next_delay();
        assert!(within(b.after_restart(Some(Duration::from_millis(1500))), 1500));
        assert!(within(b.next_delay(), 250));
        assert!(within(b.next_delay(), 500));
        assert!(within(b.after_restart(None), 1000));
        assert!(within(b.after_restart(Some(Duration::from_secs(600))), 30000));
    }
}
