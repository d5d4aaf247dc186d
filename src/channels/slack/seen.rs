//! The event ids already spooled, so that a redelivered event never reaches the agent twice.
//!
//! Why not the spool's high-water mark, as Telegram does? Slack has no increasing id per
//! event. `event_ts`/`ts` rise within a channel but Slack does not promise to deliver events
//! in order across channels, and a redelivery (an ack that got lost on a dying socket) comes
//! late by design, so "drop everything at or below the highest ts seen" would drop real
//! messages. Instead the connector remembers the last [`CAPACITY`] `event_id`s it spooled, in
//! memory and in `<state>/slack.seen` (rewritten atomically after each spooled event). Slack
//! redelivers within minutes (a handful of attempts), so a few thousand ids cover every
//! redelivery window by a wide margin at chat volumes. The spool itself gets a connector-local
//! sequence (high-water + 1), which only keeps its bookkeeping consistent.
//!
//! Order: the event is spooled (fsynced) first, then its id is recorded. A crash between the
//! two can let one redelivered event through once more; the opposite order could lose it.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};

/// Ids remembered.
pub const CAPACITY: usize = 4096;

pub struct Seen {
    path: PathBuf,
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl Seen {
    /// Load `<state_dir>/slack.seen`; a missing or unreadable file starts empty (logged).
    pub fn load(state_dir: &Path) -> Seen {
        let path = state_dir.join("slack.seen");
        let mut seen = Seen {
            path,
            order: VecDeque::new(),
            set: HashSet::new(),
        };
        match crate::statefs::read(&seen.path) {
            Ok(Some(text)) => match serde_json::from_slice::<Vec<String>>(&text) {
                Ok(ids) => ids.into_iter().for_each(|id| seen.remember(id)),
                Err(_) => log::warn!("ignoring {}: not a list of event ids", seen.path.display()),
            },
            Ok(None) => {}
            Err(e) => log::warn!("cannot read the Slack seen ids: {e}"),
        }
        seen
    }

    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    fn remember(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            while self.order.len() > CAPACITY {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    /// Record `id` and persist the set.
    pub fn insert(&mut self, id: String) -> io::Result<()> {
        self.remember(id);
        let text = serde_json::to_string(&self.order).unwrap_or_else(|_| "[]".into());
        crate::statefs::write_atomic(&self.path, text.as_bytes(), crate::statefs::FILE_MODE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Seen::load(dir.path());
        s.insert("Ev1".into()).unwrap();
        s.insert("Ev2".into()).unwrap();
        let s2 = Seen::load(dir.path());
        assert!(s2.contains("Ev1") && s2.contains("Ev2") && !s2.contains("Ev3"));
        let mut s = s2;
        for i in 0..CAPACITY {
            s.remember(format!("x{i}"));
        }
        assert!(!s.contains("Ev1"));
        assert_eq!(s.order.len(), CAPACITY);
        std::fs::write(dir.path().join("slack.seen"), "garbage").unwrap();
        assert!(!Seen::load(dir.path()).contains("Ev2"));
    }
}
