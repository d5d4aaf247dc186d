//! Checking `connect` credentials: constant-time comparison, and a limit on repeated failures
//! from non-loopback addresses so a token cannot be guessed over the network.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::protocol::{Credential, ErrorBody, ErrorCode};

/// Failed attempts allowed per address within [`FAILURE_WINDOW`].
const MAX_FAILURES: u32 = 5;
/// The window in which failures are counted, and how long an address is then refused.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Compare two secrets without an early exit, so timing does not reveal how much matched.
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u64::from(given.len() != expected.len());
    for (i, &e) in expected.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(!e);
        diff |= u64::from(g ^ e);
    }
    std::hint::black_box(diff) == 0
}

struct Failures {
    count: u32,
    since: Instant,
}

/// The credentials a gateway accepts, and its record of recent failures.
pub struct Authenticator {
    token: Option<String>,
    password: Option<String>,
    failures: HashMap<IpAddr, Failures>,
}

impl Authenticator {
    /// With neither a token nor a password every client is accepted (only allowed on
    /// loopback; config validation refuses anything else).
    pub fn new(token: Option<String>, password: Option<String>) -> Authenticator {
        Authenticator {
            token,
            password,
            failures: HashMap::new(),
        }
    }

    /// Accept or refuse a `connect`. The error is sent in `hello_error`.
    pub fn check(&mut self, ip: IpAddr, offered: Option<&Credential>, now: Instant) -> Result<(), ErrorBody> {
        if self.token.is_none() && self.password.is_none() {
            return Ok(());
        }
        let limited = !ip.is_loopback();
        if limited {
            if let Some(f) = self.failures.get(&ip) {
                let elapsed = now.saturating_duration_since(f.since);
                if f.count >= MAX_FAILURES && elapsed < FAILURE_WINDOW {
                    let wait = (FAILURE_WINDOW - elapsed).as_millis() as u64;
                    return Err(ErrorBody::retryable(
                        ErrorCode::RateLimited,
                        format!("too many failed logins from {ip}; retry in {wait} ms"),
                        Some(wait),
                    ));
                }
            }
        }
        let matches = |offered: Option<&String>, expected: &Option<String>| match (offered, expected) {
            (Some(o), Some(e)) => constant_time_eq(o.as_bytes(), e.as_bytes()),
            _ => false,
        };
        let ok = offered.is_some_and(|c| {
            matches(c.token.as_ref(), &self.token) | matches(c.password.as_ref(), &self.password)
        });
        if ok {
            self.failures.remove(&ip);
            return Ok(());
        }
        if limited {
            let f = self
                .failures
                .entry(ip)
                .or_insert(Failures { count: 0, since: now });
            if now.saturating_duration_since(f.since) >= FAILURE_WINDOW {
                *f = Failures { count: 0, since: now };
            }
            f.count += 1;
        }
        let message = if offered.is_none() {
            "this gateway requires auth: send auth.token or auth.password in connect"
        } else {
            "invalid token or password"
        };
        Err(ErrorBody::new(ErrorCode::Unauthorized, message))
    }

    /// Forget failure records older than the window (called from the loop's periodic sweep).
    pub fn prune(&mut self, now: Instant) {
        self.failures
            .retain(|_, f| now.saturating_duration_since(f.since) < FAILURE_WINDOW);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(token: &str) -> Credential {
        Credential {
            token: Some(token.into()),
            password: None,
        }
    }

    #[test]
    fn constant_time_eq_compares_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abd", b"abc"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn open_gateway_accepts_anyone() {
        let mut a = Authenticator::new(None, None);
        assert!(
            a.check("127.0.0.1".parse().unwrap(), None, Instant::now())
                .is_ok()
        );
    }

    #[test]
    fn token_or_password_accepted_wrong_refused() {
        let mut a = Authenticator::new(Some("t0k".into()), Some("pw".into()));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let now = Instant::now();
        assert!(a.check(ip, Some(&cred("t0k")), now).is_ok());
        let pw = Credential {
            token: None,
            password: Some("pw".into()),
        };
        assert!(a.check(ip, Some(&pw), now).is_ok());
        let e = a.check(ip, Some(&cred("nope")), now).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthorized);
        assert_eq!(a.check(ip, None, now).unwrap_err().code, ErrorCode::Unauthorized);
    }

    #[test]
    fn remote_failures_are_rate_limited_loopback_is_not() {
        let mut a = Authenticator::new(Some("t".into()), None);
        let remote: IpAddr = "203.0.113.9".parse().unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let now = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert_eq!(
                a.check(remote, Some(&cred("x")), now).unwrap_err().code,
                ErrorCode::Unauthorized
            );
            assert_eq!(
                a.check(local, Some(&cred("x")), now).unwrap_err().code,
                ErrorCode::Unauthorized
            );
        }
        let e = a.check(remote, Some(&cred("t")), now).unwrap_err();
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert!(e.retry_after_ms.is_some());
        assert!(a.check(local, Some(&cred("t")), now).is_ok());
        let later = now + FAILURE_WINDOW;
        a.prune(later);
        assert!(a.check(remote, Some(&cred("t")), later).is_ok());
    }
}
