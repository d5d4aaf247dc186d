//! The table of `agent.*` requests forwarded to the agent and not yet finished.
//!
//! Each entry maps the gateway's own request id (sent to the agent) back to the caller's
//! connection and request id. The deadline is reset by every chunk: `agentTimeoutMs` bounds
//! silence, not the length of a streamed answer.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::bus::ConnId;

/// One forwarded request.
#[derive(Debug, Clone)]
pub struct Forward {
    pub caller: ConnId,
    pub caller_request_id: String,
    pub agent: ConnId,
    pub method: String,
    deadline: Instant,
}

#[derive(Default)]
pub struct Forwarding {
    next: u64,
    by_id: HashMap<String, Forward>,
    /// (deadline, id) ordered by deadline, for cheap expiry.
    deadlines: BTreeSet<(Instant, String)>,
}

impl Forwarding {
    /// Record a new forwarded request; returns the id to send to the agent.
    pub fn insert(
        &mut self,
        caller: ConnId,
        caller_request_id: String,
        agent: ConnId,
        method: String,
        deadline: Instant,
    ) -> String {
        self.next += 1;
        let id = format!("gw-{}", self.next);
        self.deadlines.insert((deadline, id.clone()));
        self.by_id.insert(
            id.clone(),
            Forward {
                caller,
                caller_request_id,
                agent,
                method,
                deadline,
            },
        );
        id
    }

    /// The entry for a response from `agent`; a chunk extends the deadline by `timeout`, a
    /// final frame removes the entry. `None` for unknown ids or a different agent.
    pub fn on_response(
        &mut self,
        id: &str,
        agent: ConnId,
        is_final: bool,
        now: Instant,
        timeout: Duration,
    ) -> Option<Forward> {
        let entry = self.by_id.get_mut(id)?;
        if entry.agent != agent {
            return None;
        }
        self.deadlines.remove(&(entry.deadline, id.to_owned()));
        if is_final {
            return self.by_id.remove(id);
        }
        entry.deadline = now + timeout;
        self.deadlines.insert((entry.deadline, id.to_owned()));
        Some(entry.clone())
    }

    /// Remove and return every entry whose deadline has passed.
    pub fn expire(&mut self, now: Instant) -> Vec<Forward> {
        let mut out = Vec::new();
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline > now {
                break;
            }
            let (_, id) = self.deadlines.pop_first().expect("first exists");
            if let Some(f) = self.by_id.remove(&id) {
                out.push(f);
            }
        }
        out
    }

    /// The earliest deadline, for the router's wait.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(d, _)| *d)
    }

    /// Remove and return every entry matching `pred` (an agent or caller that left).
    pub fn remove_where(&mut self, pred: impl Fn(&Forward) -> bool) -> Vec<Forward> {
        let ids: Vec<String> = self
            .by_id
            .iter()
            .filter(|(_, f)| pred(f))
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| {
                let f = self.by_id.remove(&id)?;
                self.deadlines.remove(&(f.deadline, id));
                Some(f)
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_extend_final_removes_and_expiry_is_ordered() {
        let mut t = Forwarding::default();
        let now = Instant::now();
        let timeout = Duration::from_secs(10);
        let a = t.insert(1, "c1".into(), 9, "agent.a".into(), now + timeout);
        let b = t.insert(2, "c2".into(), 9, "agent.b".into(), now + Duration::from_secs(5));
        assert_eq!(t.next_deadline(), Some(now + Duration::from_secs(5)));
        assert!(
            t.on_response(&a, 8, false, now, timeout).is_none(),
            "wrong agent is ignored"
        );
        let later = now + Duration::from_secs(8);
        let f = t.on_response(&a, 9, false, later, timeout).unwrap();
        assert_eq!(f.caller_request_id, "c1");
        let expired = t.expire(now + Duration::from_secs(12));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].caller_request_id, "c2");
        assert!(
            t.on_response(&b, 9, true, now, timeout).is_none(),
            "expired entries are gone"
        );
        let f = t.on_response(&a, 9, true, later, timeout).unwrap();
        assert_eq!(f.caller, 1);
        assert_eq!(t.len(), 0);
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn remove_where_drops_deadlines_too() {
        let mut t = Forwarding::default();
        let now = Instant::now();
        t.insert(1, "x".into(), 9, "agent.a".into(), now);
        t.insert(2, "y".into(), 9, "agent.a".into(), now);
        let gone = t.remove_where(|f| f.caller == 1);
        assert_eq!(gone.len(), 1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.expire(now + Duration::from_secs(1)).len(), 1);
        assert_eq!(t.len(), 0);
    }
}
