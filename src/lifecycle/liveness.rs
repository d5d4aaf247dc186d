//! Liveness of an instance's threads, for the systemd watchdog.
//!
//! A thread that is alive but stuck (a deadlock, a blocking call without a timeout, a hot
//! loop that never reads its channel) would fool a watchdog fed by a timer alone. So the
//! supervisor sends a probe with a sequence number through the same paths real work takes:
//! to the router, which answers and passes it on to the event loop (through its command
//! channel and waker) and to each connector (through its command channel). Each answers by
//! storing the number in its own atomic. `WATCHDOG=1` is sent only when every thread answered
//! the previous probe. The cost is one message per thread per half watchdog interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::bus::{Probe, ToRouter};

struct Slot {
    name: String,
    ack: Arc<AtomicU64>,
}

pub struct Liveness {
    /// The last probe sent (0: none yet).
    sent: u64,
    router: Slot,
    event_loop: Slot,
    connectors: Vec<(&'static str, Slot)>,
}

impl Liveness {
    pub fn new(connectors: &[&'static str]) -> Liveness {
        let slot = |name: &str| Slot {
            name: name.to_owned(),
            ack: Arc::new(AtomicU64::new(0)),
        };
        Liveness {
            sent: 0,
            router: slot("emonk-router"),
            event_loop: slot("emonk-loop"),
            connectors: connectors
                .iter()
                .map(|c| (*c, slot(&format!("emonk-{c}"))))
                .collect(),
        }
    }

    fn slots(&self) -> impl Iterator<Item = &Slot> {
        [&self.router, &self.event_loop]
            .into_iter()
            .chain(self.connectors.iter().map(|(_, s)| s))
    }

    /// The threads that have not answered the last probe.
    pub fn stale(&self) -> Vec<String> {
        self.slots()
            .filter(|s| s.ack.load(Ordering::SeqCst) < self.sent)
            .map(|s| s.name.clone())
            .collect()
    }

    /// The next probe to send to the router, unless the last one is still unanswered (then
    /// it is still in some queue; sending more would only pile up).
    pub fn next_probe(&mut self) -> Option<ToRouter> {
        if !self.stale().is_empty() {
            return None;
        }
        self.sent += 1;
        let seq = self.sent;
        Some(ToRouter::Probe {
            router: Probe::new(seq, self.router.ack.clone()),
            event_loop: Probe::new(seq, self.event_loop.ack.clone()),
            connectors: self
                .connectors
                .iter()
                .map(|(c, s)| (*c, Probe::new(seq, s.ack.clone())))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_all(msg: ToRouter, skip: Option<&str>) {
        let ToRouter::Probe {
            router,
            event_loop,
            connectors,
        } = msg
        else {
            panic!("not a probe")
        };
        router.answer();
        event_loop.answer();
        for (c, p) in connectors {
            if Some(c) != skip {
                p.answer();
            }
        }
    }

    #[test]
    fn fresh_is_alive_and_answered_probes_keep_it_alive() {
        let mut l = Liveness::new(&["telegram"]);
        assert!(l.stale().is_empty());
        let p = l.next_probe().unwrap();
        assert_eq!(l.stale().len(), 3, "sent, not yet answered");
        answer_all(p, None);
        assert!(l.stale().is_empty());
        answer_all(l.next_probe().unwrap(), None);
        assert!(l.stale().is_empty());
    }

    #[test]
    fn a_silent_thread_is_named_and_no_more_probes_pile_up() {
        let mut l = Liveness::new(&["telegram"]);
        answer_all(l.next_probe().unwrap(), Some("telegram"));
        assert_eq!(l.stale(), vec!["emonk-telegram".to_string()]);
        assert!(l.next_probe().is_none());
    }
}
