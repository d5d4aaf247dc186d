//! The way into the spool for connectors whose platform will not send a message again once
//! it was received: Discord (a delivered gateway event is ours to keep) and Slack (the
//! envelope is acked on receipt, as Slack wants within 3 s). When the spool refuses a write
//! (a full disk, or a full spool), the message is held in memory, in order, and the append
//! is retried as [`SpoolTrouble`] paces it; later messages queue behind it, so the agent
//! sees them in the order they came. Telegram needs none of this: it leaves what it could
//! not write unconfirmed, and Telegram keeps it.
//!
//! The hold is bounded ([`HOLD_MAX`]); a connector asks [`Inbox::is_full`] first and, if it
//! can, leaves the message with the platform (Slack: no ack, so it is redelivered). What
//! is still held at a stop is lost, and said so with the count.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Map, Value};

use super::spool_trouble::SpoolTrouble;
use super::{ChannelStatus, ConnectorContext, ConnectorEvent};
use crate::spool::Kind;
use crate::spool::{Entry, Spool};

/// Messages held in memory at most while the spool refuses writes (about 1 KiB each).
pub const HOLD_MAX: usize = 1000;

/// The source sequence number of a message.
#[derive(Clone, Copy, Debug)]
pub enum Seq {
    /// The platform's own rising number (a Discord snowflake).
    Given(u64),
    /// The next after the source's high-water mark, assigned when it is written (Slack
    /// deduplicates on event ids itself).
    Next,
}

struct Held {
    source: String,
    kind: Kind,
    seq: Seq,
    params: Map<String, Value>,
}

/// What a push or a retry did.
#[derive(Debug, Default)]
pub struct Written {
    /// Spooled now, in order: report them to the router.
    pub entries: Vec<Entry>,
    /// The spool began refusing (or refused in a new way): the text for `lastError`.
    pub trouble: Option<String>,
    /// The spool accepted writes again: clear `lastError`.
    pub recovered: bool,
}

impl Written {
    /// Nothing happened: nothing to report.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.trouble.is_none() && !self.recovered
    }

    /// Tell the router and the status: the spooled entries, the inbound count, and
    /// `lastError` (the trouble, or back to `calm` on recovery).
    pub fn report(self, status: &mut ChannelStatus, ctx: &ConnectorContext, calm: Option<String>) {
        if self.is_empty() {
            return;
        }
        if let Some(text) = self.trouble {
            status.last_error = Some(text);
        }
        if self.recovered {
            status.last_error = calm;
        }
        if !self.entries.is_empty() {
            status.inbound += self.entries.len() as u64;
            ctx.report(ConnectorEvent::Inbound(self.entries));
        }
        ctx.report_status(status);
    }
}

pub struct Inbox {
    channel: &'static str,
    spool: Arc<Mutex<Spool>>,
    held: VecDeque<Held>,
    trouble: SpoolTrouble,
}

impl Inbox {
    pub fn new(channel: &'static str, spool: Arc<Mutex<Spool>>) -> Inbox {
        Inbox {
            channel,
            spool,
            held: VecDeque::new(),
            trouble: SpoolTrouble::new(channel),
        }
    }

    /// No room to hold another message.
    pub fn is_full(&self) -> bool {
        self.held.len() >= HOLD_MAX
    }

    /// When held messages are due for another try.
    pub fn retry_at(&self) -> Option<Instant> {
        if self.held.is_empty() {
            None
        } else {
            self.trouble.retry_at()
        }
    }

    /// Spool a message behind any held ones; hold it when the spool refuses. `Err` when
    /// the hold is full too: the message was not taken, and the caller says it is lost.
    pub fn push(
        &mut self,
        source: String,
        seq: Seq,
        params: Map<String, Value>,
        now: Instant,
    ) -> Result<Written, Map<String, Value>> {
        self.push_kind(source, Kind::Message, seq, params, now)
    }

    /// [`Inbox::push`] for an entry of `kind` (a button press is `Kind::Action`).
    pub fn push_kind(
        &mut self,
        source: String,
        kind: Kind,
        seq: Seq,
        params: Map<String, Value>,
        now: Instant,
    ) -> Result<Written, Map<String, Value>> {
        if self.is_full() {
            return Err(params);
        }
        self.held.push_back(Held {
            source,
            kind,
            seq,
            params,
        });
        if self.held.len() > 1 && !self.trouble.due(now) {
            log::debug!(
                "{}: holding a message behind {} others",
                self.channel,
                self.held.len() - 1
            );
            return Ok(Written::default());
        }
        Ok(self.write_held(now))
    }

    /// Try the held messages again if they are due.
    pub fn retry(&mut self, now: Instant) -> Written {
        if self.held.is_empty() || !self.trouble.due(now) {
            return Written::default();
        }
        self.write_held(now)
    }

    /// Write held messages in order, a run of one source per append, until all are in or
    /// the spool refuses.
    fn write_held(&mut self, now: Instant) -> Written {
        let mut written = Written::default();
        let spool = self.spool.clone();
        let mut spool = spool.lock().expect("spool lock");
        while let Some(first) = self.held.front() {
            let source = first.source.clone();
            let kind = self.held[0].kind;
            let run = self
                .held
                .iter()
                .take_while(|h| h.source == source && h.kind == kind)
                .count();
            let mut next = spool.high_water(&source).unwrap_or(0);
            let batch: Vec<(u64, Map<String, Value>)> = self
                .held
                .iter()
                .take(run)
                .map(|h| {
                    let seq = match h.seq {
                        Seq::Given(s) => s,
                        Seq::Next => next + 1,
                    };
                    next = next.max(seq);
                    (seq, h.params.clone())
                })
                .collect();
            match spool.append_kind(&source, kind, batch) {
                Ok(entries) => {
                    self.held.drain(..run);
                    written.entries.extend(entries);
                }
                Err(e) => {
                    let keeping = format!("holding {} messages in memory", self.held.len());
                    written.trouble = self.trouble.failed(&e, &keeping, now);
                    return written;
                }
            }
        }
        written.recovered = self.trouble.recovered(now);
        written
    }

    /// At a stop: what is still held cannot be written now and is lost; say how much.
    pub fn abandon(&mut self) {
        if !self.held.is_empty() {
            log::error!(
                "{}: stopping with {} messages that the spool refused; they are lost",
                self.channel,
                self.held.len()
            );
            self.held.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::SpoolLimits;
    use serde_json::json;
    use std::time::Duration;

    fn params(text: &str) -> Map<String, Value> {
        let Value::Object(m) = json!({"channel": "test", "chatId": "1", "text": text}) else {
            unreachable!()
        };
        m
    }

    fn texts(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| {
                serde_json::from_str::<Value>(&e.params).unwrap()["text"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn refused_messages_are_held_in_order_and_written_when_the_spool_takes_them() {
        let dir = tempfile::tempdir().unwrap();
        let limits = SpoolLimits {
            max_entries: 2,
            max_bytes: 1 << 20,
        };
        let spool = Arc::new(Mutex::new(Spool::open(dir.path(), limits).unwrap()));
        let mut inbox = Inbox::new("test", spool.clone());
        let now = Instant::now();
        let w = inbox.push("a".into(), Seq::Given(10), params("m1"), now).unwrap();
        assert_eq!(texts(&w.entries), ["m1"]);
        let w = inbox.push("b".into(), Seq::Next, params("m2"), now).unwrap();
        assert_eq!(texts(&w.entries), ["m2"]);
        // Full: held, and the trouble is reported once.
        let w = inbox.push("a".into(), Seq::Given(11), params("m3"), now).unwrap();
        assert!(w.entries.is_empty());
        assert!(w.trouble.unwrap().contains("spool full"));
        let w = inbox.push("b".into(), Seq::Next, params("m4"), now).unwrap();
        assert!(
            w.entries.is_empty() && w.trouble.is_none(),
            "queued behind, not retried early"
        );
        assert_eq!(inbox.retry_at(), Some(now + Duration::from_secs(5)));
        assert!(inbox.retry(now + Duration::from_secs(1)).entries.is_empty());

        spool.lock().unwrap().ack(1).unwrap();
        let w = inbox.retry(now + Duration::from_secs(5));
        assert_eq!(
            texts(&w.entries),
            ["m3"],
            "one run per append; the next still does not fit"
        );
        spool.lock().unwrap().ack(3).unwrap();
        let w = inbox.retry(now + Duration::from_secs(10));
        assert_eq!(texts(&w.entries), ["m4"]);
        assert!(w.recovered);
        assert_eq!(inbox.retry_at(), None);
        // `Next` continued the source's numbering.
        assert_eq!(spool.lock().unwrap().high_water("b"), Some(2));
        assert_eq!(spool.lock().unwrap().high_water("a"), Some(11));
    }

    #[test]
    fn the_hold_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let limits = SpoolLimits {
            max_entries: 1,
            max_bytes: 1 << 20,
        };
        let spool = Arc::new(Mutex::new(Spool::open(dir.path(), limits).unwrap()));
        let mut inbox = Inbox::new("test", spool);
        let now = Instant::now();
        for i in 0..=HOLD_MAX {
            assert!(
                inbox
                    .push("a".into(), Seq::Next, params(&format!("m{i}")), now)
                    .is_ok()
            );
        }
        assert!(inbox.is_full());
        let refused = inbox
            .push("a".into(), Seq::Next, params("over"), now)
            .unwrap_err();
        assert_eq!(refused["text"], "over");
        inbox.abandon();
        assert!(!inbox.is_full() && inbox.retry_at().is_none());
    }
}
