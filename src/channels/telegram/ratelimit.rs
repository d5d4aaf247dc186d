//! An outbound rate limiter following Telegram's Bots FAQ: about 1 message per second per
//! chat (short bursts tolerated), about 30 per second overall, at most 20 per minute into one
//! group.
//!
//! It is deterministic: every method takes `now`, so tests drive it with a fake clock and the
//! connector passes `Instant::now()`. Usage: wait [`RateLimiter::delay_for`] (repeat until it
//! is zero: another send may have been recorded meanwhile), send, then
//! [`RateLimiter::record`]. A 429 is still possible (Telegram's limits are not published
//! exactly); its `retry_after` is the connector's to honour.
//!
//! Two algorithms, each where its shape fits the rule:
//! - per chat, a GCRA token bucket (steady interval, small burst): smooth 1 msg/s;
//! - global and per group, an exact sliding window (at most N sends in any window): a bucket
//!   refilling at 20/min with a burst of 20 would allow 39 messages in one minute, which is
//!   what "at most 20 per minute" forbids.
//!
//! Memory is bounded: the global window holds at most `global_max` instants, each group at most
//! `group_max`, and chats whose state has decayed back to "fresh" are forgotten by a sweep
//! that runs whenever the table has doubled since the last one (amortized O(1) per send).
//! While the limiter is obeyed, live chats are at most those sent to within the last minute,
//! i.e. at most 30 × 60.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The limits. [`Limits::default`] is Telegram's documented behaviour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Per chat: the steady spacing between messages.
    pub chat_interval: Duration,
    /// Per chat: how many messages may go at once after a quiet period (at least 1).
    pub chat_burst: u32,
    /// Overall: at most `global_max` sends in any `global_window`.
    pub global_max: usize,
    pub global_window: Duration,
    /// Per group chat: at most `group_max` sends in any `group_window`.
    pub group_max: usize,
    pub group_window: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            chat_interval: Duration::from_secs(1),
            chat_burst: 3,
            global_max: 30,
            global_window: Duration::from_secs(1),
            group_max: 20,
            group_window: Duration::from_secs(60),
        }
    }
}

/// Whether a `channels.send` target is subject to the group limit: negative ids are groups,
/// supergroups and channels; `@username` names a public channel or supergroup. Erring towards
/// "group" only makes sends slower, never rejected.
pub fn is_group_chat(chat_id: &str) -> bool {
    chat_id.starts_with('-') || chat_id.starts_with('@')
}

/// What the limiter remembers about one chat.
#[derive(Debug)]
struct ChatState {
    /// GCRA "theoretical arrival time": the chat's bucket is full again at `tat`; a send is
    /// allowed once `tat - now <= (burst - 1) * interval`.
    tat: Instant,
    /// Send times inside the group window (groups only), oldest first, at most `group_max`.
    recent: VecDeque<Instant>,
}

/// The limiter. Not thread-safe by design: the connector thread owns it.
#[derive(Debug)]
pub struct RateLimiter {
    limits: Limits,
    chats: HashMap<String, ChatState>,
    global: VecDeque<Instant>,
    /// Sweep idle chats when the table grows past this.
    sweep_above: usize,
}

/// The least table size worth sweeping.
const MIN_SWEEP: usize = 64;

impl Default for RateLimiter {
    fn default() -> RateLimiter {
        RateLimiter::new(Limits::default())
    }
}

impl RateLimiter {
    pub fn new(limits: Limits) -> RateLimiter {
        RateLimiter {
            limits,
            chats: HashMap::new(),
            global: VecDeque::new(),
            sweep_above: MIN_SWEEP,
        }
    }

    /// How long to wait before sending to `chat` at `now`; zero means go now.
    pub fn delay_for(&mut self, chat: &str, is_group: bool, now: Instant) -> Duration {
        let limits = &self.limits;
        prune(&mut self.global, limits.global_window, now);
        let mut delay = window_delay(&self.global, limits.global_max, limits.global_window, now);
        if let Some(state) = self.chats.get_mut(chat) {
            let tau = limits.chat_interval * (limits.chat_burst.max(1) - 1);
            delay = delay.max(state.tat.saturating_duration_since(now).saturating_sub(tau));
            if is_group {
                prune(&mut state.recent, limits.group_window, now);
                delay = delay.max(window_delay(
                    &state.recent,
                    limits.group_max,
                    limits.group_window,
                    now,
                ));
            }
        }
        delay
    }

    /// Note a send to `chat` at `now` (whether or not the caller waited).
    pub fn record(&mut self, chat: &str, is_group: bool, now: Instant) {
        let limits = &self.limits;
        push_capped(&mut self.global, now, limits.global_max);
        let state = self.chats.entry(chat.to_owned()).or_insert_with(|| ChatState {
            tat: now,
            recent: VecDeque::new(),
        });
        state.tat = state.tat.max(now) + limits.chat_interval;
        if is_group {
            push_capped(&mut state.recent, now, limits.group_max);
        }
        if self.chats.len() > self.sweep_above {
            self.forget_idle(now);
        }
    }

    /// How many chats are remembered (for tests and status).
    pub fn tracked_chats(&self) -> usize {
        self.chats.len()
    }

    /// Drop chats whose state equals a fresh one: full bucket, nothing in the group window.
    fn forget_idle(&mut self, now: Instant) {
        let window = self.limits.group_window;
        self.chats.retain(|_, state| {
            prune(&mut state.recent, window, now);
            state.tat > now || !state.recent.is_empty()
        });
        self.sweep_above = (2 * self.chats.len()).max(MIN_SWEEP);
    }
}

/// Remove instants that left the window ending at `now`.
fn prune(log: &mut VecDeque<Instant>, window: Duration, now: Instant) {
    while log.front().is_some_and(|&t| t + window <= now) {
        log.pop_front();
    }
}

/// Append `now`, keeping only the `max` newest: the oldest of those is all `window_delay`
/// needs, so older ones (from a caller that did not wait) can go.
fn push_capped(log: &mut VecDeque<Instant>, now: Instant, max: usize) {
    log.push_back(now);
    while log.len() > max.max(1) {
        log.pop_front();
    }
}

/// With `log` pruned: zero if fewer than `max` sends are in the window, else until the oldest
/// of the newest `max` leaves it.
fn window_delay(log: &VecDeque<Instant>, max: usize, window: Duration, now: Instant) -> Duration {
    if log.len() < max.max(1) {
        return Duration::ZERO;
    }
    let oldest = log[log.len() - max.max(1)];
    (oldest + window).saturating_duration_since(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Send `n` messages to `chat` as fast as the limiter allows; returns the send times.
    fn send_many(rl: &mut RateLimiter, chat: &str, group: bool, now: &mut Instant, n: usize) -> Vec<Instant> {
        (0..n)
            .map(|_| {
                loop {
                    let d = rl.delay_for(chat, group, *now);
                    if d.is_zero() {
                        break;
                    }
                    *now += d;
                }
                rl.record(chat, group, *now);
                *now
            })
            .collect()
    }

    #[test]
    fn private_chat_bursts_three_then_one_per_second() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::default();
        assert_eq!(rl.delay_for("42", false, t0), Duration::ZERO);
        for _ in 0..3 {
            assert_eq!(rl.delay_for("42", false, t0), Duration::ZERO);
            rl.record("42", false, t0);
        }
        assert_eq!(rl.delay_for("42", false, t0), Duration::from_secs(1));
        assert_eq!(rl.delay_for("42", false, t0 + 400 * MS), 600 * MS);
        // Another chat is not affected.
        assert_eq!(rl.delay_for("43", false, t0), Duration::ZERO);
        let mut now = t0;
        let times = send_many(&mut rl, "42", false, &mut now, 3);
        assert_eq!(times, vec![t0 + 1000 * MS, t0 + 2000 * MS, t0 + 3000 * MS]);
        // After a quiet period the burst is back.
        let later = t0 + Duration::from_secs(10);
        for _ in 0..3 {
            assert_eq!(rl.delay_for("42", false, later), Duration::ZERO);
            rl.record("42", false, later);
        }
        assert!(!rl.delay_for("42", false, later).is_zero());
    }

    #[test]
    fn global_limit_is_thirty_per_second() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::default();
        for i in 0..30 {
            let chat = i.to_string();
            assert_eq!(rl.delay_for(&chat, false, t0 + i * MS), Duration::ZERO);
            rl.record(&chat, false, t0 + i * MS);
        }
        // The 31st waits until the first leaves the one-second window.
        assert_eq!(rl.delay_for("new", false, t0 + 500 * MS), 500 * MS);
        assert_eq!(rl.delay_for("new", false, t0 + 1000 * MS), Duration::ZERO);
    }

    #[test]
    fn group_gets_at_most_twenty_per_minute() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::default();
        let mut now = t0;
        let times = send_many(&mut rl, "-100", true, &mut now, 45);
        for (i, &t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .filter(|&&u| u < t + Duration::from_secs(60))
                .count();
            assert!(in_window <= 20, "{in_window} sends in the minute from send {i}");
        }
        // The 21st goes exactly one minute after the first.
        assert_eq!(times[20], times[0] + Duration::from_secs(60));
        // The per-chat bucket still applies inside the group allowance.
        assert_eq!(times[3], t0 + Duration::from_secs(1));
    }

    #[test]
    fn mixed_traffic_respects_every_limit() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::default();
        let chats = ["1", "2", "3", "-10", "-11", "4", "5", "6", "7", "8"];
        let mut now = t0;
        let mut sends: Vec<(Instant, &str)> = Vec::new();
        let mut seed = 7u64;
        for _ in 0..600 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let chat = chats[(seed >> 33) as usize % chats.len()];
            let group = is_group_chat(chat);
            let t = send_many(&mut rl, chat, group, &mut now, 1)[0];
            sends.push((t, chat));
            now += Duration::from_millis((seed >> 50) % 20);
        }
        for (i, &(t, _)) in sends.iter().enumerate() {
            let global = sends[i..]
                .iter()
                .filter(|(u, _)| *u < t + Duration::from_secs(1))
                .count();
            assert!(global <= 30);
        }
        for chat in chats {
            let mine: Vec<Instant> = sends
                .iter()
                .filter(|(_, c)| *c == chat)
                .map(|(t, _)| *t)
                .collect();
            for (i, &t) in mine.iter().enumerate() {
                // GCRA: at most burst + floor(L / interval) sends in any span of length L.
                let in_3s = mine[i..]
                    .iter()
                    .filter(|&&u| u < t + Duration::from_secs(3))
                    .count();
                assert!(in_3s <= 3 + 3, "chat {chat}: {in_3s} in 3 s");
                if is_group_chat(chat) {
                    let in_min = mine[i..]
                        .iter()
                        .filter(|&&u| u < t + Duration::from_secs(60))
                        .count();
                    assert!(in_min <= 20);
                }
            }
        }
    }

    #[test]
    fn idle_chats_are_forgotten() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::default();
        let mut now = t0;
        for i in 0..20_000 {
            let chat = if i % 2 == 0 {
                format!("{i}")
            } else {
                format!("-{i}")
            };
            let group = is_group_chat(&chat);
            send_many(&mut rl, &chat, group, &mut now, 1);
            now += 100 * MS;
            // Groups stay live for a minute (600 sends at this pace, half of them groups).
            assert!(
                rl.tracked_chats() <= 2 * 320 + MIN_SWEEP,
                "{} chats tracked",
                rl.tracked_chats()
            );
        }
        // A sweep keeps busy chats: one forgotten too early would show no delay here.
        let mut rl = RateLimiter::new(Limits {
            global_max: 10_000,
            ..Limits::default()
        });
        for i in 0..200 {
            rl.record(&format!("old{i}"), false, t0);
        }
        let t1 = t0 + Duration::from_secs(10);
        for i in 0..3 {
            rl.record("busy", false, t1 + i * MS);
        }
        for i in 0..100 {
            rl.record(&format!("new{i}"), false, t1 + 3 * MS);
        }
        assert!(rl.tracked_chats() <= 101, "the idle chats were kept");
        assert_eq!(rl.delay_for("busy", false, t1 + 3 * MS), 997 * MS);
    }

    #[test]
    fn clock_going_backwards_does_not_panic() {
        let t0 = Instant::now() + Duration::from_secs(100);
        let mut rl = RateLimiter::default();
        rl.record("1", true, t0);
        rl.record("1", true, t0 - Duration::from_secs(50));
        let _ = rl.delay_for("1", true, t0 - Duration::from_secs(90));
        assert!(is_group_chat("-5") && is_group_chat("@chan") && !is_group_chat("5"));
    }
}
