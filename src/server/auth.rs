//! Checking `connect` credentials: constant-time comparison, role-scoped credentials (an
//! optional agent token that alone admits `role:"agent"`), and a limit on repeated failures
//! from non-loopback addresses so a token cannot be guessed over the network.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::protocol::{Credential, ErrorBody, ErrorCode, Role};

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

/// The one message for every refused agent login while an agent token is set. It does not
/// say whether the operator token was offered: a different answer for it would tell a
/// guesser that a guess is the operator token.
const AGENT_NEEDS_AGENT_TOKEN: &str = "role \"agent\" needs the agent token (gateway.auth.agentToken) in auth.token; the operator token or password is not accepted for it";

/// The credentials a gateway accepts, and its record of recent failures.
pub struct Authenticator {
    token: Option<String>,
    password: Option<String>,
    /// When set, the only credential for `role:"agent"`, and not one for operators.
    agent_token: Option<String>,
    failures: HashMap<IpAddr, Failures>,
}

impl Authenticator {
    /// With neither a token nor a password every operator is accepted (only allowed on
    /// loopback; config validation refuses anything else). Without an agent token, agents
    /// log in like operators.
    pub fn new(
        token: Option<String>,
        password: Option<String>,
        agent_token: Option<String>,
    ) -> Authenticator {
        Authenticator {
            token,
            password,
            agent_token,
            failures: HashMap::new(),
        }
    }

    /// Accept or refuse a `connect` for `role`. The error is sent in `hello_error`.
    pub fn check(
        &mut self,
        ip: IpAddr,
        role: Role,
        offered: Option<&Credential>,
        now: Instant,
    ) -> Result<(), ErrorBody> {
        let agent_scoped = role == Role::Agent && self.agent_token.is_some();
        if !agent_scoped && self.token.is_none() && self.password.is_none() {
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
            if agent_scoped {
                matches(c.token.as_ref(), &self.agent_token)
            } else {
                // The agent token is never an operator credential, so it is simply not
                // among the candidates here (config validation keeps the two different).
                matches(c.token.as_ref(), &self.token) | matches(c.password.as_ref(), &self.password)
            }
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
        let message = if agent_scoped {
            AGENT_NEEDS_AGENT_TOKEN
        } else if offered.is_none() {
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
        let mut a = Authenticator::new(None, None, None);
        assert!(
            a.check("127.0.0.1".parse().unwrap(), Role::Agent, None, Instant::now())
                .is_ok()
        );
    }

    #[test]
    fn token_or_password_accepted_wrong_refused() {
        let mut a = Authenticator::new(Some("t0k".into()), Some("pw".into()), None);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let now = Instant::now();
        assert!(a.check(ip, Role::Operator, Some(&cred("t0k")), now).is_ok());
        let pw = Credential {
            token: None,
            password: Some("pw".into()),
        };
        assert!(a.check(ip, Role::Operator, Some(&pw), now).is_ok());
        let e = a.check(ip, Role::Operator, Some(&cred("nope")), now).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthorized);
        assert_eq!(
            a.check(ip, Role::Operator, None, now).unwrap_err().code,
            ErrorCode::Unauthorized
        );
    }

    #[test]
    fn remote_failures_are_rate_limited_loopback_is_not() {
        let mut a = Authenticator::new(Some("t".into()), None, None);
        let remote: IpAddr = "203.0.113.9".parse().unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let now = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert_eq!(
                a.check(remote, Role::Operator, Some(&cred("x")), now)
                    .unwrap_err()
                    .code,
                ErrorCode::Unauthorized
            );
            assert_eq!(
                a.check(local, Role::Operator, Some(&cred("x")), now)
                    .unwrap_err()
                    .code,
                ErrorCode::Unauthorized
            );
        }
        let e = a
            .check(remote, Role::Operator, Some(&cred("t")), now)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert!(e.retry_after_ms.is_some());
        assert!(a.check(local, Role::Operator, Some(&cred("t")), now).is_ok());
        let later = now + FAILURE_WINDOW;
        a.prune(later);
        assert!(a.check(remote, Role::Operator, Some(&cred("t")), later).is_ok());
    }

    #[test]
    fn agent_token_alone_admits_agents_and_never_operators() {
        let mut a = Authenticator::new(Some("op".into()), Some("pw".into()), Some("ag".into()));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let now = Instant::now();
        assert!(a.check(ip, Role::Agent, Some(&cred("ag")), now).is_ok());
        for refused in [cred("op"), cred("nope")] {
            let e = a.check(ip, Role::Agent, Some(&refused), now).unwrap_err();
            assert_eq!(
                (e.code, e.message.as_str()),
                (ErrorCode::Unauthorized, AGENT_NEEDS_AGENT_TOKEN)
            );
        }
        let pw = Credential {
            token: None,
            password: Some("pw".into()),
        };
        assert!(a.check(ip, Role::Agent, Some(&pw), now).is_err());
        assert!(a.check(ip, Role::Agent, None, now).is_err());
        assert!(a.check(ip, Role::Operator, Some(&cred("op")), now).is_ok());
        assert!(a.check(ip, Role::Operator, Some(&pw), now).is_ok());
        let e = a.check(ip, Role::Operator, Some(&cred("ag")), now).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthorized);
    }

    #[test]
    fn agent_token_without_operator_credentials_still_guards_the_agent_role() {
        let mut a = Authenticator::new(None, None, Some("ag".into()));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let now = Instant::now();
        assert!(a.check(ip, Role::Operator, None, now).is_ok());
        assert!(a.check(ip, Role::Agent, None, now).is_err());
        assert!(a.check(ip, Role::Agent, Some(&cred("ag")), now).is_ok());
    }

    #[test]
    fn refused_agent_logins_count_towards_the_limit() {
        let mut a = Authenticator::new(Some("op".into()), None, Some("ag".into()));
        let remote: IpAddr = "203.0.113.9".parse().unwrap();
        let now = Instant::now();
        for _ in 0..MAX_FAILURES {
            let e = a.check(remote, Role::Agent, Some(&cred("op")), now).unwrap_err();
            assert_eq!(e.code, ErrorCode::Unauthorized);
        }
        let e = a.check(remote, Role::Agent, Some(&cred("ag")), now).unwrap_err();
        assert_eq!(e.code, ErrorCode::RateLimited);
    }
}
