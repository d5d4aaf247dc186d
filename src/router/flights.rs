//! Single flight: callers asking for the same thing while it is in progress wait for its one
//! result instead of starting it again.
//!
//! Used for `channels.send` (callers sharing an `idempotencyKey` while the first send is in
//! flight get its result, and nothing is sent twice) and for `channels.fetch` (concurrent
//! fetches of one attachment share one download). The router owns the table and is its only
//! user, so there is no locking: a waiter is just who to answer (connection and request id).

use std::collections::HashMap;
use std::hash::Hash;

/// One operation in progress: its key, if it can be joined, and who waits for it.
struct Flight<K, W> {
    key: Option<K>,
    waiters: Vec<W>,
}

/// Operations in progress by id, and the joinable ones by key.
pub(super) struct Flights<K, W> {
    next: u64,
    flights: HashMap<u64, Flight<K, W>>,
    by_key: HashMap<K, u64>,
}

impl<K, W> Default for Flights<K, W> {
    fn default() -> Self {
        Flights {
            next: 0,
            flights: HashMap::new(),
            by_key: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, W> Flights<K, W> {
    /// Wait for the flight under `key` if one is in progress (`Ok`); else the waiter comes
    /// back (`Err`) to start one with [`Flights::begin`].
    pub fn join(&mut self, key: &K, waiter: W) -> Result<(), W> {
        match self.by_key.get(key).and_then(|id| self.flights.get_mut(id)) {
            Some(f) => {
                f.waiters.push(waiter);
                Ok(())
            }
            None => Err(waiter),
        }
    }

    /// A fresh id for an operation about to start (the id travels with its command, so it is
    /// taken before the command is sent and registered once that succeeded).
    pub fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Register operation `id`, joinable under `key` when there is one.
    pub fn begin(&mut self, id: u64, key: Option<K>, waiter: W) {
        if let Some(k) = &key {
            self.by_key.insert(k.clone(), id);
        }
        self.flights.insert(
            id,
            Flight {
                key,
                waiters: vec![waiter],
            },
        );
    }

    /// Operation `id` finished: its key and everyone to answer, or `None` for an unknown id
    /// (already landed, or failed at shutdown).
    pub fn land(&mut self, id: u64) -> Option<(Option<K>, Vec<W>)> {
        let f = self.flights.remove(&id)?;
        if let Some(k) = &f.key {
            self.by_key.remove(k);
        }
        Some((f.key, f.waiters))
    }

    /// End every flight (at shutdown): the waiters of each, to answer with an error.
    pub fn drain(&mut self) -> Vec<W> {
        self.by_key.clear();
        self.flights.drain().flat_map(|(_, f)| f.waiters).collect()
    }

    /// Operations in progress.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.flights.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joiners_share_the_first_flight() {
        let mut f: Flights<&str, u32> = Flights::default();
        assert_eq!(f.join(&"k", 1), Err(1));
        let id = f.next_id();
        f.begin(id, Some("k"), 1);
        assert_eq!(f.join(&"k", 2), Ok(()));
        assert_eq!(f.join(&"k", 3), Ok(()));
        assert_eq!(f.join(&"other", 4), Err(4));
        assert_eq!(f.land(id), Some((Some("k"), vec![1, 2, 3])));
        assert_eq!(f.land(id), None);
        // Landed: the key starts a new flight again.
        assert_eq!(f.join(&"k", 5), Err(5));
    }

    #[test]
    fn unkeyed_flights_cannot_be_joined() {
        let mut f: Flights<String, u32> = Flights::default();
        let a = f.next_id();
        f.begin(a, None, 1);
        let b = f.next_id();
        f.begin(b, None, 2);
        assert_ne!(a, b);
        assert_eq!(f.len(), 2);
        assert_eq!(f.land(b), Some((None, vec![2])));
        assert_eq!(f.land(a), Some((None, vec![1])));
    }

    #[test]
    fn drain_ends_everything() {
        let mut f: Flights<&str, u32> = Flights::default();
        let a = f.next_id();
        f.begin(a, Some("x"), 1);
        f.join(&"x", 2).unwrap();
        let b = f.next_id();
        f.begin(b, None, 3);
        let mut all = f.drain();
        all.sort();
        assert_eq!(all, [1, 2, 3]);
        assert_eq!(f.len(), 0);
        assert_eq!(f.join(&"x", 4), Err(4));
        assert_eq!(f.land(a), None);
    }
}
