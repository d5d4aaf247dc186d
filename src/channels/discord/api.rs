//! A blocking Discord REST client (API v10) over one shared `ureq::Agent`.
//!
//! Only two endpoints are needed: `GET /gateway/bot` (where to connect, and how many
//! Identifies are left today) and `POST /channels/{id}/messages`. Requests carry
//! `Authorization: Bot <token>` and the `DiscordBot (url, version)` User-Agent Discord asks
//! for. Every call takes its own timeout; [`RestApi::shutdown`] aborts calls in flight.
//!
//! Errors are classified by what the caller must do next ([`RestError`]); as for Telegram,
//! only [`RestError::Connect`] (the request surely never left) and [`RestError::RateLimited`]
//! may be retried without risking a duplicate message. Rate-limit headers come back with
//! every answer ([`RateInfo`]) so the sender can wait per bucket before Discord says 429.
//! The token never appears in an error text or in `Debug`. Answers are read leniently: only
//! the fields used are required, and a missing one is [`RestError::Incomplete`], naming it.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::channels::actions::Action;
use crate::channels::fields::{Fields, Missing};
use crate::channels::http::{self, Transport, classify_transport, with_timeouts};
use crate::channels::media::multipart::Multipart;
use crate::channels::media::outgoing::OutFile;
use crate::protocol::{ErrorBody, ErrorCode};

/// Sent as `User-Agent`, in the form Discord requires (`DiscordBot ($url, $versionNumber)`).
pub const USER_AGENT: &str = "DiscordBot (https://github.com/emonk, 0.1)";
/// Largest response body read.
const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;
/// Wait used when a 429 carries no usable `retry_after` (never zero: no tight loop).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Upper bound of a 429 wait we honour (a bigger one is a misbehaving server or a ban:
/// the send fails with RATE_LIMITED instead of holding the queue for hours).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Longest piece of an unexpected body quoted in an error.
const SNIPPET_CHARS: usize = 120;

/// The rate-limit headers of one answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RateInfo {
    /// `X-RateLimit-Bucket`: routes sharing it share one limit.
    pub bucket: Option<String>,
    /// `X-RateLimit-Remaining`.
    pub remaining: Option<u32>,
    /// `X-RateLimit-Reset-After` (float seconds).
    pub reset_after: Option<Duration>,
}

/// `GET /gateway/bot`.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayBot {
    pub url: String,
    /// `session_start_limit.remaining`: Identifies left in the current window.
    pub remaining: Option<u64>,
    /// `session_start_limit.reset_after`: when the window resets.
    pub reset_after: Option<Duration>,
}

/// Why a REST call failed. Each variant says what the caller should do.
#[derive(Clone, Debug, PartialEq)]
pub enum RestError {
    /// 401 (code 40001): the token is wrong or revoked. Stop and wait for a config change.
    Unauthorized { message: String },
    /// 403 (e.g. 50013 Missing Permissions): the bot may not do this here. Do not retry.
    Forbidden { code: u64, message: String },
    /// 404 (e.g. 10003 Unknown Channel): the target does not exist for this bot.
    NotFound { code: u64, message: String },
    /// 413 (40005 Request entity too large): a file over what this server takes.
    TooLarge { code: u64, message: String },
    /// Any other 4xx, e.g. 50035 Invalid Form Body: the request itself is wrong.
    Invalid { code: u64, message: String },
    /// 429: wait `retry_after`, then the same request may go again. `global` means every
    /// route waits.
    RateLimited {
        retry_after: Duration,
        global: bool,
        message: String,
    },
    /// 5xx: the outcome of a send is unknown.
    Server { status: u16, message: String },
    /// The request surely never reached Discord: may be retried after a backoff.
    Connect(String),
    /// Sent (maybe), no complete answer: a send must not be retried.
    Network(String),
    /// Not the JSON Discord sends.
    Malformed(String),
    /// The answer lacks a field the connector needs, named in the text: the server does
    /// not speak the API as the connector uses it. Retrying waits for it to be fixed.
    Incomplete(Missing),
}

impl RestError {
    /// True when the same send may be repeated without risking a duplicate message.
    pub fn is_retryable_send(&self) -> bool {
        matches!(self, RestError::Connect(_) | RestError::RateLimited { .. })
    }

    /// The error as `channels.send` reports it. A refused bot token is the gateway's
    /// configuration problem, not the client's credentials, so it is `UNAVAILABLE`.
    pub fn to_error_body(&self) -> ErrorBody {
        let message = format!("discord: {self}");
        match self {
            RestError::Unauthorized { .. } => ErrorBody::new(
                ErrorCode::Unavailable,
                format!("{message}; fix channels.discord.token"),
            ),
            RestError::Forbidden { .. } => ErrorBody::new(ErrorCode::Forbidden, message),
            RestError::NotFound { .. } => ErrorBody::new(ErrorCode::NotFound, message),
            RestError::TooLarge { .. } => ErrorBody::new(ErrorCode::PayloadTooLarge, message),
            RestError::Invalid { .. } => ErrorBody::new(ErrorCode::InvalidRequest, message),
            RestError::RateLimited { retry_after, .. } => {
                let ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
                ErrorBody::retryable(ErrorCode::RateLimited, message, Some(ms))
            }
            RestError::Server { .. } | RestError::Connect(_) | RestError::Network(_) => {
                ErrorBody::retryable(ErrorCode::Unavailable, message, None)
            }
            RestError::Malformed(_) | RestError::Incomplete(_) => {
                ErrorBody::new(ErrorCode::Unavailable, message)
            }
        }
    }
}

impl fmt::Display for RestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestError::Unauthorized { message } => write!(f, "bot token rejected (401: {message})"),
            RestError::Forbidden { code, message } => write!(f, "forbidden ({code}: {message})"),
            RestError::NotFound { code, message } => write!(f, "not found ({code}: {message})"),
            RestError::TooLarge { code, message } => write!(f, "too large ({code}: {message})"),
            RestError::Invalid { code, message } => write!(f, "invalid request ({code}: {message})"),
            RestError::RateLimited {
                retry_after,
                global,
                message,
            } => {
                let scope = if *global { "global " } else { "" };
                write!(
                    f,
                    "{scope}rate limit: {message} (retry after {:.3} s)",
                    retry_after.as_secs_f64()
                )
            }
            RestError::Server { status, message } => {
                write!(f, "server error (HTTP {status}: {message}); outcome unknown")
            }
            RestError::Connect(t) => write!(f, "cannot connect: {t}"),
            RestError::Network(t) => write!(f, "request failed after sending, outcome unknown: {t}"),
            RestError::Malformed(t) => write!(f, "malformed response: {t}"),
            RestError::Incomplete(missing) => missing.fmt(f),
        }
    }
}

impl std::error::Error for RestError {}

/// A REST client. Cheap to clone (clones share one connection pool).
#[derive(Clone)]
pub struct RestApi {
    agent: ureq::Agent,
    base_url: String,
    token: String,
}

impl fmt::Debug for RestApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestApi")
            .field("base_url", &self.base_url)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl RestApi {
    pub fn new(base_url: &str, token: &str) -> RestApi {
        // The Authorization header must not follow a redirect elsewhere (the agent follows none).
        RestApi {
            agent: http::agent(Duration::from_secs(60), USER_AGENT),
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    /// Abort every call in flight and refuse new ones (at a stop).
    pub fn shutdown(&self) {
        self.agent.clone().shutdown();
    }

    /// `GET /gateway/bot`.
    pub fn gateway_bot(&self, timeout: Duration) -> Result<GatewayBot, RestError> {
        let (result, _) = self.call("GET", "/gateway/bot", None, timeout);
        gateway_bot_from(&result?)
    }

    /// `POST /channels/{channel}/messages` with `body`; the created message, and the
    /// rate-limit headers of the answer (whatever it was).
    pub fn create_message(
        &self,
        channel: &str,
        body: &Value,
        timeout: Duration,
    ) -> (Result<Value, RestError>, RateInfo) {
        let path = format!("/channels/{channel}/messages");
        self.call("POST", &path, Some(body), timeout)
    }

    /// Answer an interaction with type 6 (DEFERRED_UPDATE_MESSAGE): the press was received
    /// and the message stays as it is, so the user's client stops waiting. Discord wants
    /// it within 3 s.
    pub fn answer_interaction(
        &self,
        id: &str,
        token: &str,
        timeout: Duration,
    ) -> (Result<Value, RestError>, RateInfo) {
        let path = format!("/interactions/{id}/{token}/callback");
        self.call("POST", &path, Some(&serde_json::json!({"type": 6})), timeout)
    }

    /// An edit (`PATCH …/messages/{id}`), delete (`DELETE …/messages/{id}`) or reaction
    /// (`PUT` or `DELETE …/messages/{id}/reactions/{emoji}/@me`) in `channel`.
    pub fn act(
        &self,
        channel: &str,
        action: &Action,
        timeout: Duration,
    ) -> (Result<Value, RestError>, RateInfo) {
        let message = format!("/channels/{channel}/messages/{}", action.message_id());
        match action {
            Action::Edit { text, .. } => {
                let body = serde_json::json!({"content": text, "allowed_mentions": {"parse": []}});
                self.call("PATCH", &message, Some(&body), timeout)
            }
            Action::Delete { .. } => self.call("DELETE", &message, None, timeout),
            Action::React { emoji, remove, .. } => {
                let path = format!("{message}/reactions/{}/@me", encode_emoji(emoji));
                self.call(if *remove { "DELETE" } else { "PUT" }, &path, None, timeout)
            }
        }
    }

    /// `POST /channels/{channel}/typing`: the bot is typing there for about 10 s (answered
    /// 204, no body).
    pub fn trigger_typing(&self, channel: &str, timeout: Duration) -> Result<(), RestError> {
        let path = format!("/channels/{channel}/typing");
        self.call("POST", &path, None, timeout).0.map(|_| ())
    }

    /// A GET of a CDN URL, without the bot token (the CDN's URLs are signed).
    pub fn cdn_request(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        self.agent.get(url)
    }

    /// `POST /attachments/refresh-urls`: a fresh signed URL for an expired one.
    pub fn refresh_url(&self, url: &str, timeout: Duration) -> Result<String, RestError> {
        let body = serde_json::json!({"attachment_urls": [url]});
        let (answer, _) = self.call("POST", "/attachments/refresh-urls", Some(&body), timeout);
        let answer = answer?;
        answer
            .get("refreshed_urls")
            .and_then(|list| list.get(0))
            .and_then(|entry| entry.get("refreshed"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                RestError::Incomplete(Missing::new(
                    "POST /attachments/refresh-urls answer",
                    "refreshed_urls[0].refreshed",
                ))
            })
    }

    /// `POST /channels/{channel}/messages` as `multipart/form-data`: `payload` (which lists
    /// the files in `attachments`) as `payload_json`, each file as `files[i]`, streamed.
    pub fn create_message_with_files(
        &self,
        channel: &str,
        payload: &Value,
        files: &[OutFile],
        timeout: Duration,
    ) -> (Result<Value, RestError>, RateInfo) {
        let path = format!("/channels/{channel}/messages");
        let mut form = Multipart::new();
        form.text("payload_json", &payload.to_string());
        for (i, file) in files.iter().enumerate() {
            file.add_to(&mut form, &format!("files[{i}]"));
        }
        let request = self
            .agent
            .post(format!("{}{path}", self.base_url))
            .header("authorization", &format!("Bot {}", self.token));
        let sent = http::post_multipart(request, timeout, form);
        self.answer("POST", &path, sent)
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> (Result<Value, RestError>, RateInfo) {
        let url = format!("{}{path}", self.base_url);
        let auth = format!("Bot {}", self.token);
        let sent = match method {
            "GET" => with_timeouts(self.agent.get(&url).header("authorization", &auth), timeout).call(),
            "DELETE" => with_timeouts(self.agent.delete(&url).header("authorization", &auth), timeout).call(),
            _ => {
                let bytes = body.map(Value::to_string).unwrap_or_default();
                let request = match method {
                    "PATCH" => self.agent.patch(&url),
                    "PUT" => self.agent.put(&url),
                    _ => self.agent.post(&url),
                };
                let request = request
                    .header("authorization", &auth)
                    .header("content-type", "application/json");
                with_timeouts(request, timeout).send(bytes.as_bytes())
            }
        };
        self.answer(method, path, sent)
    }

    /// The answer of a call and its rate-limit headers, or why there is none; redacted.
    fn answer(
        &self,
        method: &str,
        path: &str,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> (Result<Value, RestError>, RateInfo) {
        let (result, rate) = match sent {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let rate = RateInfo {
                    bucket: header("x-ratelimit-bucket"),
                    remaining: header("x-ratelimit-remaining").and_then(|v| v.trim().parse().ok()),
                    reset_after: header("x-ratelimit-reset-after").and_then(|v| secs(&v)),
                };
                let global_header =
                    header("x-ratelimit-global").is_some_and(|v| v.eq_ignore_ascii_case("true"));
                let retry_header = header("retry-after").and_then(|v| secs(&v));
                let result = match response
                    .body_mut()
                    .with_config()
                    .limit(MAX_RESPONSE_BYTES)
                    .read_to_vec()
                {
                    Ok(body) => parse_answer(status, &body, global_header, retry_header),
                    Err(ureq::Error::BodyExceedsLimit(limit)) => Err(RestError::Malformed(format!(
                        "response larger than {limit} bytes"
                    ))),
                    Err(e) => Err(RestError::Network(format!("reading the response: {e}"))),
                };
                (result, rate)
            }
            Err(e) => {
                let e = match classify_transport(&e) {
                    Transport::Connect(t) => RestError::Connect(t),
                    other => RestError::Network(other.to_string()),
                };
                (Err(e), RateInfo::default())
            }
        };
        let result = result.map_err(|e| {
            let e = self.redact_error(e);
            log::debug!("discord: {method} {path} failed: {e}");
            e
        });
        (result, rate)
    }

    fn redact_error(&self, e: RestError) -> RestError {
        if self.token.is_empty() {
            return e;
        }
        let r = |t: String| t.replace(&self.token, "<redacted>");
        match e {
            RestError::Connect(t) => RestError::Connect(r(t)),
            RestError::Network(t) => RestError::Network(r(t)),
            RestError::Malformed(t) => RestError::Malformed(r(t)),
            other => other,
        }
    }
}

/// Read a `GET /gateway/bot` answer: `url` is needed, the session start limit is used when
/// it is there (`shards` and the rest are not used).
pub fn gateway_bot_from(v: &Value) -> Result<GatewayBot, RestError> {
    let f = Fields::new("GET /gateway/bot answer", v);
    let url = f.str("url").map_err(RestError::Incomplete)?;
    if !(url.starts_with("ws://") || url.starts_with("wss://")) {
        return Err(RestError::Malformed(format!(
            "GET /gateway/bot answer has \"url\" {:?}, not a ws:// or wss:// URL",
            truncate(url)
        )));
    }
    let number = |path| f.get(path).and_then(Value::as_f64).filter(|n| *n >= 0.0);
    Ok(GatewayBot {
        url: url.to_owned(),
        remaining: number("session_start_limit.remaining").map(|n| n as u64),
        reset_after: number("session_start_limit.reset_after")
            .map(|ms| Duration::from_secs_f64(ms.min(86_400_000.0) / 1000.0)),
    })
}

/// A seconds value as Discord writes it (`"1.5"`, `"0.250"`, `"3"`); `None` if negative or
/// not a number.
fn secs(text: &str) -> Option<Duration> {
    let v: f64 = text.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v.min(86_400.0)))
}

/// Decode an answer: 2xx gives its JSON; an error status is classified by the status and
/// Discord's JSON error `code`. `global_header`/`retry_header` are the 429 headers, used
/// when the body lacks `global`/`retry_after`.
pub fn parse_answer(
    status: u16,
    body: &[u8],
    global_header: bool,
    retry_header: Option<Duration>,
) -> Result<Value, RestError> {
    let json = serde_json::from_slice::<Value>(body).ok();
    if status == 204 {
        // No Content: what Discord answers an action with nothing to say (typing).
        return Ok(Value::Null);
    }
    if (200..300).contains(&status) {
        return match json {
            Some(v @ Value::Object(_)) => Ok(v),
            _ => Err(RestError::Malformed(format!("HTTP {status}: {}", snippet(body)))),
        };
    }
    let code = json
        .as_ref()
        .and_then(|j| j.get("code"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let message = json
        .as_ref()
        .and_then(|j| j.get("message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("HTTP {status}: {}", snippet(body)));
    // 50035 lists what is wrong in `errors`: keep it, it is what the caller needs to fix.
    let message = match json.as_ref().and_then(|j| j.get("errors")) {
        Some(errors) if code == 50035 => format!("{message}: {}", truncate(&errors.to_string())),
        _ => message,
    };
    Err(match status {
        401 => RestError::Unauthorized { message },
        403 => RestError::Forbidden { code, message },
        404 => RestError::NotFound { code, message },
        429 => {
            let body_wait = json
                .as_ref()
                .and_then(|j| j.get("retry_after"))
                .and_then(Value::as_f64)
                .and_then(|s| secs(&s.to_string()));
            let global = json
                .as_ref()
                .and_then(|j| j.get("global"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
                || global_header;
            let retry_after = body_wait
                .or(retry_header)
                .filter(|d| !d.is_zero())
                .unwrap_or(DEFAULT_RETRY_AFTER);
            RestError::RateLimited {
                retry_after,
                global,
                message,
            }
        }
        413 => RestError::TooLarge { code, message },
        400..=499 => RestError::Invalid { code, message },
        500..=599 => RestError::Server { status, message },
        _ => RestError::Malformed(format!("unexpected HTTP {status}: {message}")),
    })
}

/// An emoji as a path segment: a Unicode emoji percent-encoded, a custom one (`name:id`)
/// with its colon kept, as Discord wants.
fn encode_emoji(emoji: &str) -> String {
    let mut out = String::new();
    for b in emoji.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn snippet(body: &[u8]) -> String {
    format!("{:?}", truncate(&String::from_utf8_lossy(body)))
}

fn truncate(text: &str) -> String {
    text.chars().take(SNIPPET_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(status: u16, body: &str) -> RestError {
        parse_answer(status, body.as_bytes(), false, None).unwrap_err()
    }

    #[test]
    fn success_gives_the_object() {
        let v = parse_answer(200, br#"{"id":"1"}"#, false, None).unwrap();
        assert_eq!(v, json!({"id": "1"}));
        assert!(matches!(
            parse_answer(200, b"<html>", false, None),
            Err(RestError::Malformed(_))
        ));
    }

    #[test]
    fn error_codes_map_to_the_contract() {
        let e = err(401, r#"{"message":"401: Unauthorized","code":0}"#);
        assert!(matches!(e, RestError::Unauthorized { .. }));
        assert_eq!(e.to_error_body().code, ErrorCode::Unavailable);
        let e = err(403, r#"{"message":"Missing Permissions","code":50013}"#);
        assert_eq!(e.to_error_body().code, ErrorCode::Forbidden);
        assert!(e.to_string().contains("50013"));
        let e = err(404, r#"{"message":"Unknown Channel","code":10003}"#);
        assert_eq!(e.to_error_body().code, ErrorCode::NotFound);
        let e = err(
            400,
            r#"{"message":"Invalid Form Body","code":50035,"errors":{"content":{"_errors":[{"code":"BASE_TYPE_MAX_LENGTH"}]}}}"#,
        );
        let body = e.to_error_body();
        assert_eq!(body.code, ErrorCode::InvalidRequest);
        assert!(body.message.contains("BASE_TYPE_MAX_LENGTH"), "{}", body.message);
        let e = err(502, "<html>Bad Gateway</html>");
        assert!(matches!(e, RestError::Server { status: 502, .. }));
        assert!(e.to_error_body().retryable);
        assert!(!e.is_retryable_send());
    }

    #[test]
    fn rate_limits_read_float_seconds_and_global() {
        let e = err(
            429,
            r#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#,
        );
        assert_eq!(
            e,
            RestError::RateLimited {
                retry_after: Duration::from_millis(1500),
                global: false,
                message: "You are being rate limited.".into()
            }
        );
        assert!(e.is_retryable_send());
        assert_eq!(e.to_error_body().retry_after_ms, Some(1500));
        let e = parse_answer(429, br#"{"message":"x"}"#, true, Some(Duration::from_secs(2))).unwrap_err();
        assert!(
            matches!(e, RestError::RateLimited { global: true, retry_after, .. } if retry_after == Duration::from_secs(2))
        );
        let e = err(429, r#"{"message":"x","retry_after":0}"#);
        assert!(
            matches!(e, RestError::RateLimited { retry_after, .. } if retry_after == DEFAULT_RETRY_AFTER)
        );
    }

    #[test]
    fn gateway_bot_needs_only_a_ws_url() {
        let g = gateway_bot_from(&json!({"url": "wss://gateway.discord.gg"})).unwrap();
        assert_eq!(
            g,
            GatewayBot {
                url: "wss://gateway.discord.gg".into(),
                remaining: None,
                reset_after: None
            }
        );
        let g = gateway_bot_from(&json!({"url": "ws://127.0.0.1:1", "shards": "x",
            "session_start_limit": {"remaining": 0, "reset_after": 1500.0}}))
        .unwrap();
        assert_eq!(g.remaining, Some(0));
        assert_eq!(g.reset_after, Some(Duration::from_millis(1500)));
        let e = gateway_bot_from(&json!({"shards": 1})).unwrap_err();
        assert_eq!(e.to_string(), r#"GET /gateway/bot answer has no "url""#);
        assert_eq!(e.to_error_body().code, ErrorCode::Unavailable);
        let e = gateway_bot_from(&json!({"url": "https://x"})).unwrap_err();
        assert!(e.to_string().contains("not a ws:// or wss:// URL"), "{e}");
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(secs("0.250"), Some(Duration::from_millis(250)));
        assert_eq!(secs("3"), Some(Duration::from_secs(3)));
        assert_eq!(secs("-1"), None);
        assert_eq!(secs("x"), None);
    }

    #[test]
    fn token_stays_out_of_debug() {
        let api = RestApi::new("http://127.0.0.1:1/", "SEKRET.token");
        assert!(!format!("{api:?}").contains("SEKRET"));
        let e = api.redact_error(RestError::Connect("http://x SEKRET.token".into()));
        assert!(!e.to_string().contains("SEKRET"));
    }
}
