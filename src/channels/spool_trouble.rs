//! How a connector lives with a spool that refuses writes, written once for all of them.
//!
//! Two troubles: the spool is full (the agent has not acked; it clears when it does) and the
//! disk refuses (full, read-only, failing; it clears when the operator acts). Either way the
//! connector keeps the messages where they are safe (Telegram leaves them unconfirmed, the
//! others hold them, see [`super::inbox`]) and retries. What this piece decides is how often
//! and how loudly: a full disk is retried after 1 s doubling to 30 s, a full spool every
//! 5 s (an ack can come any moment and a retry is cheap); the change into a trouble is
//! logged once, a reminder at most every 5 minutes after that, and the recovery once. A
//! disk full for a day thus costs a few hundred log lines, not 86,400.

use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::spool::SpoolError;

/// How often a full spool is retried.
const FULL_RETRY: Duration = Duration::from_secs(5);
/// The least time between two log lines about the same trouble.
const REMINDER_EVERY: Duration = Duration::from_secs(5 * 60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Full,
    Disk,
}

impl Kind {
    fn of(e: &SpoolError) -> Kind {
        match e {
            SpoolError::Full { .. } => Kind::Full,
            SpoolError::Io(_) => Kind::Disk,
        }
    }
}

struct Failing {
    kind: Kind,
    since: Instant,
    retry_at: Instant,
    last_said: Instant,
    retries: u64,
    backoff: Backoff,
}

/// The spool write state of one connector.
pub struct SpoolTrouble {
    channel: &'static str,
    failing: Option<Failing>,
}

impl SpoolTrouble {
    pub fn new(channel: &'static str) -> SpoolTrouble {
        SpoolTrouble {
            channel,
            failing: None,
        }
    }

    pub fn is_failing(&self) -> bool {
        self.failing.is_some()
    }

    /// When to try again; `None` while writes work.
    pub fn retry_at(&self) -> Option<Instant> {
        self.failing.as_ref().map(|f| f.retry_at)
    }

    /// Whether a retry is due (always, while writes work).
    pub fn due(&self, now: Instant) -> bool {
        self.retry_at().is_none_or(|at| now >= at)
    }

    /// A write failed; `keeping` says where the messages wait meanwhile ("Telegram keeps
    /// them"). Logs as the module explains. Returns the text for `lastError` when the
    /// trouble is new (or changed kind), `None` for a repeat.
    pub fn failed(&mut self, e: &SpoolError, keeping: &str, now: Instant) -> Option<String> {
        let kind = Kind::of(e);
        let channel = self.channel;
        match &mut self.failing {
            Some(f) if f.kind == kind => {
                f.retries += 1;
                f.retry_at = now + next_delay(kind, &mut f.backoff);
                if now.duration_since(f.last_said) >= REMINDER_EVERY {
                    f.last_said = now;
                    let minutes = now.duration_since(f.since).as_secs() / 60;
                    let retries = f.retries;
                    say(
                        kind,
                        &format!(
                            "{channel}: still failing after {minutes} min and {retries} retries: {e}; {keeping}"
                        ),
                    );
                } else {
                    log::debug!("{channel}: spool write retry failed: {e}");
                }
                None
            }
            _ => {
                let mut backoff = Backoff::default();
                let delay = next_delay(kind, &mut backoff);
                let then = match kind {
                    Kind::Full => "retrying every 5 s".to_owned(),
                    Kind::Disk => format!(
                        "retrying in {} s, then less often, up to every {} s",
                        delay.as_secs().max(1),
                        crate::backoff::MAX.as_secs()
                    ),
                };
                say(kind, &format!("{channel}: {e}; {keeping}; {then}"));
                self.failing = Some(Failing {
                    kind,
                    since: now,
                    retry_at: now + delay,
                    last_said: now,
                    retries: 0,
                    backoff,
                });
                Some(e.to_string())
            }
        }
    }

    /// A write worked. True (and the recovery logged) when it had been failing.
    pub fn recovered(&mut self, now: Instant) -> bool {
        let Some(f) = self.failing.take() else {
            return false;
        };
        let secs = now.duration_since(f.since).as_secs();
        let what = match f.kind {
            Kind::Full => "the spool has room again",
            Kind::Disk => "the spool accepts writes again",
        };
        log::info!(
            "{}: {what} after {secs} s and {} retries",
            self.channel,
            f.retries
        );
        true
    }
}

fn next_delay(kind: Kind, backoff: &mut Backoff) -> Duration {
    match kind {
        Kind::Full => FULL_RETRY,
        Kind::Disk => backoff.next_delay(),
    }
}

/// A full spool is the agent's to clear (a warning); a refusing disk is the operator's.
fn say(kind: Kind, line: &str) {
    match kind {
        Kind::Full => log::warn!("{line}"),
        Kind::Disk => log::error!("{line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::SpoolLimits;
    use std::io;

    fn disk() -> SpoolError {
        SpoolError::Io(io::Error::from_raw_os_error(28))
    }

    fn full() -> SpoolError {
        SpoolError::Full {
            entries: 1,
            bytes: 1,
            limits: SpoolLimits {
                max_entries: 1,
                max_bytes: 1,
            },
        }
    }

    #[test]
    fn a_refusing_disk_is_said_once_and_retried_less_and_less_often() {
        let mut t = SpoolTrouble::new("test");
        let start = Instant::now();
        let first = t.failed(&disk(), "kept", start).expect("the change is reported");
        assert!(
            first.starts_with("spool: ") && !first.contains("spool: spool"),
            "{first}"
        );
        let mut now = start;
        let mut delays = Vec::new();
        for _ in 0..8 {
            let at = t.retry_at().unwrap();
            delays.push(at.duration_since(now));
            now = at;
            assert!(!t.due(now - Duration::from_millis(1)));
            assert!(t.due(now));
            assert_eq!(t.failed(&disk(), "kept", now), None, "a repeat is not reported");
        }
        assert!(delays[0] <= Duration::from_millis(1100), "{delays:?}");
        assert!(*delays.last().unwrap() >= Duration::from_secs(27), "{delays:?}");
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(33)), "{delays:?}");
        assert!(t.recovered(now));
        assert!(!t.recovered(now));
        assert!(!t.is_failing() && t.due(now));
    }

    #[test]
    fn a_full_spool_is_retried_every_5_s_and_a_change_of_kind_is_reported() {
        let mut t = SpoolTrouble::new("test");
        let now = Instant::now();
        assert!(t.failed(&full(), "kept", now).unwrap().contains("spool full"));
        assert_eq!(t.retry_at(), Some(now + FULL_RETRY));
        assert_eq!(t.failed(&full(), "kept", now), None);
        assert!(
            t.failed(&disk(), "kept", now).is_some(),
            "full, then disk: a new trouble"
        );
    }
}
