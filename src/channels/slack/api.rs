//! A blocking Slack Web API client over one shared `ureq::Agent`.
//!
//! Requests are `POST {apiBaseUrl}/{method}` with `Authorization: Bearer <token>` and a JSON
//! body. Slack reports most errors as HTTP 200 `{"ok":false,"error":"..."}`; a rate limit is
//! HTTP 429 with a `Retry-After` header. Errors are classified by what the caller must do
//! next ([`ApiError`]); like the Telegram client, only a request that surely never reached
//! Slack ([`ApiError::Connect`]) may be sent again without risking a duplicate message.
//!
//! Tokens appear only in the `Authorization` header, never in URLs, errors or `Debug`.
//! Answers are read leniently: only the fields used are required, and a missing one is
//! [`ApiError::Incomplete`], naming it (`auth.test answer has no "user_id"`).

use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};

use crate::channels::actions::Action;
use crate::channels::fields::{Fields, Missing};
use crate::channels::http::{self, Transport, classify_transport, with_timeouts};
use crate::protocol::{ErrorBody, ErrorCode};

/// Largest response body read.
const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;
/// Wait used when a 429 carries no usable `Retry-After` (never zero).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Longest piece of an unexpected body quoted in an error.
const SNIPPET_CHARS: usize = 120;

/// Why a Web API call failed. Each variant says what the caller should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// `invalid_auth`, `not_authed`, `account_inactive`, `token_revoked`, ...: the token is
    /// wrong. Retrying will not help: report it and wait for a config change.
    Unauthorized(String),
    /// `channel_not_found` and other unknown targets.
    NotFound(String),
    /// `not_in_channel`, `restricted_action`, ...: the bot may not post there.
    Forbidden(String),
    /// `msg_too_long`, `no_text`, `invalid_arguments`, ...: the request itself is wrong.
    BadRequest(String),
    /// `too_many_websockets` from `apps.connections.open`: the app holds Slack's maximum of
    /// Socket Mode connections (other instances of this app?). Back off for longer.
    TooManySockets,
    /// HTTP 429: wait `retry_after`, then the same request may be sent again.
    RateLimited { retry_after: Duration },
    /// 5xx or `internal_error`/`fatal_error`/`service_unavailable`: outcome unknown.
    Server(String),
    /// The request surely never reached Slack: a send may be retried after a backoff.
    Connect(String),
    /// The request was (maybe) sent but no complete answer came: do not retry a send.
    Network(String),
    /// Not the Web API's JSON answer, or any other `ok:false` error.
    Other(String),
    /// The answer lacks a field the connector needs, named in the text: the server does
    /// not speak the Web API as the connector uses it. Retrying waits for it to be fixed.
    Incomplete(Missing),
}

impl ApiError {
    /// The error as `channels.send` reports it on the wire. A refused bot token is the
    /// gateway's configuration problem, not the caller's: `UNAVAILABLE`, like Telegram.
    pub fn to_error_body(&self) -> ErrorBody {
        let message = format!("slack: {self}");
        match self {
            ApiError::Unauthorized(_) => ErrorBody::new(
                ErrorCode::Unavailable,
                format!("{message}; fix channels.slack.botToken"),
            ),
            ApiError::NotFound(_) => ErrorBody::new(ErrorCode::NotFound, message),
            ApiError::Forbidden(_) => ErrorBody::new(ErrorCode::Forbidden, message),
            ApiError::BadRequest(_) => ErrorBody::new(ErrorCode::InvalidRequest, message),
            ApiError::RateLimited { retry_after } => {
                let ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
                ErrorBody::retryable(ErrorCode::RateLimited, message, Some(ms))
            }
            ApiError::TooManySockets | ApiError::Server(_) | ApiError::Connect(_) | ApiError::Network(_) => {
                ErrorBody::retryable(ErrorCode::Unavailable, message, None)
            }
            ApiError::Other(_) | ApiError::Incomplete(_) => ErrorBody::new(ErrorCode::Unavailable, message),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Unauthorized(e) => write!(f, "token rejected ({e})"),
            ApiError::NotFound(e) | ApiError::Forbidden(e) | ApiError::BadRequest(e) => f.write_str(e),
            ApiError::TooManySockets => f.write_str(
                "too_many_websockets: the app already holds Slack's maximum of Socket Mode connections",
            ),
            ApiError::RateLimited { retry_after } => {
                write!(f, "ratelimited (retry after {} s)", retry_after.as_secs())
            }
            ApiError::Server(e) => write!(f, "server error ({e}); outcome unknown"),
            ApiError::Connect(e) => write!(f, "cannot connect: {e}"),
            ApiError::Network(e) => write!(f, "request failed after sending, outcome unknown: {e}"),
            ApiError::Other(e) => f.write_str(e),
            ApiError::Incomplete(missing) => missing.fmt(f),
        }
    }
}

impl std::error::Error for ApiError {}

/// What `auth.test` says about the bot token: `user_id` is needed (it tells the bot's own
/// messages apart); the rest is used when it is there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub bot_id: Option<String>,
    pub user: Option<String>,
    pub team: Option<String>,
}

impl Identity {
    /// Read an `auth.test` answer.
    pub fn from_answer(v: &Value) -> Result<Identity, Missing> {
        let f = Fields::new("auth.test answer", v);
        let text = |k| f.opt_str(k).map(str::to_owned);
        Ok(Identity {
            user_id: f.str("user_id")?.to_owned(),
            bot_id: text("bot_id"),
            user: text("user"),
            team: text("team"),
        })
    }
}

/// A Web API client. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct WebApi {
    agent: ureq::Agent,
    base_url: String,
}

impl fmt::Debug for WebApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebApi")
            .field("base_url", &self.base_url)
            .finish()
    }
}

impl WebApi {
    pub fn new(base_url: &str) -> WebApi {
        WebApi {
            agent: http::agent(
                Duration::from_secs(60),
                concat!("emonkd/", env!("CARGO_PKG_VERSION")),
            ),
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// Abort every call in flight (they fail with [`ApiError::Network`]); for a stop.
    pub fn shutdown(&self) {
        self.agent.clone().shutdown();
    }

    /// `auth.test` with the bot token: who the bot is.
    pub fn auth_test(&self, token: &str, timeout: Duration) -> Result<Identity, ApiError> {
        let v = self.call("auth.test", token, &json!({}), timeout)?;
        Identity::from_answer(&v).map_err(ApiError::Incomplete)
    }

    /// `apps.connections.open` with the app-level token: a fresh Socket Mode URL.
    pub fn connections_open(&self, app_token: &str, timeout: Duration) -> Result<String, ApiError> {
        let v = self.call("apps.connections.open", app_token, &json!({}), timeout)?;
        let url = Fields::new("apps.connections.open answer", &v).str("url");
        url.map(str::to_owned).map_err(ApiError::Incomplete)
    }

    /// `chat.postMessage`: Slack's answer (`"ok":true` means it was posted; the caller reads
    /// the `ts` it needs).
    pub fn post_message(
        &self,
        token: &str,
        channel: &str,
        text: &str,
        thread_ts: Option<&str>,
        blocks: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let mut body = json!({"channel": channel, "text": text});
        if let Some(ts) = thread_ts {
            body["thread_ts"] = json!(ts);
        }
        // With blocks, `text` stays as the notification and screen-reader fallback.
        if let Some(blocks) = blocks {
            body["blocks"] = blocks.clone();
        }
        self.call("chat.postMessage", token, &body, timeout)
    }

    pub(super) fn call(
        &self,
        method: &str,
        token: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let request = self.post(method, token, timeout, "application/json; charset=utf-8");
        let sent = request.send(body.to_string().as_bytes());
        self.answer(method, sent)
    }

    /// A call with form fields (`application/x-www-form-urlencoded`), for the methods that
    /// take no JSON (`files.getUploadURLExternal`).
    pub(super) fn call_form(
        &self,
        method: &str,
        token: &str,
        fields: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect();
        let request = self.post(method, token, timeout, "application/x-www-form-urlencoded");
        let sent = request.send(body.join("&").as_bytes());
        self.answer(method, sent)
    }

    /// `chat.update`, `chat.delete`, or `reactions.add`/`reactions.remove` with the Slack
    /// emoji `name` for `action` on message `ts` in `channel`.
    pub fn act(
        &self,
        token: &str,
        channel: &str,
        action: &Action,
        name: Option<&str>,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let ts = action.message_id();
        match action {
            Action::Edit { text, .. } => {
                let body = json!({"channel": channel, "ts": ts, "text": text});
                self.call("chat.update", token, &body, timeout)
            }
            Action::Delete { .. } => self.call(
                "chat.delete",
                token,
                &json!({"channel": channel, "ts": ts}),
                timeout,
            ),
            Action::React { remove, .. } => {
                let method = if *remove {
                    "reactions.remove"
                } else {
                    "reactions.add"
                };
                let body = json!({"channel": channel, "timestamp": ts, "name": name.unwrap_or_default()});
                self.call(method, token, &body, timeout)
            }
        }
    }

    /// A GET of a file's private URL with the bot token as a Bearer header.
    pub fn file_request(&self, url: &str, token: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        self.agent
            .get(url)
            .header("authorization", &format!("Bearer {token}"))
    }

    /// Bytes to a pre-signed upload URL Slack handed out (another host: no token goes with
    /// them, and redirects are not followed). A 2xx is success; its body is not JSON.
    pub(super) fn post_bytes(
        &self,
        url: &str,
        form: crate::channels::media::multipart::Multipart,
        timeout: Duration,
    ) -> Result<(), ApiError> {
        let sent = http::post_multipart(self.agent.post(url), timeout, form);
        match sent {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(ApiError::Server(format!(
                "the upload URL answered HTTP {}",
                response.status().as_u16()
            ))),
            Err(e) => Err(match classify_transport(&e) {
                Transport::Connect(text) => ApiError::Connect(text),
                other => ApiError::Network(other.to_string()),
            }),
        }
    }

    fn post(
        &self,
        method: &str,
        token: &str,
        timeout: Duration,
        content_type: &str,
    ) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        log::trace!("slack: {method} (timeout {timeout:?})");
        let request = self
            .agent
            .post(format!("{}/{method}", self.base_url))
            .header("content-type", content_type)
            .header("authorization", &format!("Bearer {token}"));
        with_timeouts(request, timeout)
    }

    fn answer(
        &self,
        method: &str,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ApiError> {
        let result = match sent {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match response
                    .body_mut()
                    .with_config()
                    .limit(MAX_RESPONSE_BYTES)
                    .read_to_vec()
                {
                    Ok(body) => parse_answer(method, status, retry_after.as_deref(), &body),
                    Err(e) => Err(ApiError::Network(format!("reading the {method} response: {e}"))),
                }
            }
            Err(e) => Err(match classify_transport(&e) {
                Transport::Connect(text) => ApiError::Connect(text),
                other => ApiError::Network(other.to_string()),
            }),
        };
        if let Err(e) = &result {
            log::debug!("slack: {method} failed: {e}");
        }
        result
    }
}

/// `application/x-www-form-urlencoded` encoding of one key or value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Decode the answer to `method`: 429 is a rate limit whatever the body; `{"ok":true,..}` is
/// the answer; `{"ok":false,"error":E}` is classified by E; a JSON object without `ok` on a
/// 2xx is [`ApiError::Incomplete`]; anything else is classified by the HTTP status.
pub fn parse_answer(
    method: &str,
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
) -> Result<Value, ApiError> {
    if status == 429 {
        let wait = retry_after
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&s| s > 0)
            .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs);
        return Err(ApiError::RateLimited { retry_after: wait });
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.get("ok") == Some(&Value::Bool(true)) => Ok(v),
        Ok(v) if v.get("ok") == Some(&Value::Bool(false)) => {
            let error = v.get("error").and_then(Value::as_str).unwrap_or("unknown_error");
            Err(classify_error(error))
        }
        Ok(Value::Object(_)) if (200..300).contains(&status) => Err(ApiError::Incomplete(Missing::new(
            format!("{method} answer"),
            "ok",
        ))),
        _ => {
            let snippet: String = String::from_utf8_lossy(body)
                .chars()
                .take(SNIPPET_CHARS)
                .collect();
            let what = format!("HTTP {status} without a Web API answer: {snippet:?}");
            Err(if status >= 500 {
                ApiError::Server(what)
            } else {
                ApiError::Other(what)
            })
        }
    }
}

/// Map Slack's `error` string to what the caller must do.
pub fn classify_error(error: &str) -> ApiError {
    let e = error.to_owned();
    match error {
        "invalid_auth"
        | "not_authed"
        | "account_inactive"
        | "token_revoked"
        | "token_expired"
        | "no_permission"
        | "not_allowed_token_type"
        | "invalid_token" => ApiError::Unauthorized(e),
        "channel_not_found" | "user_not_found" | "thread_not_found" | "message_not_found" => {
            ApiError::NotFound(e)
        }
        "not_in_channel"
        | "restricted_action"
        | "is_archived"
        | "missing_scope"
        | "restricted_action_read_only_channel"
        | "restricted_action_thread_only_channel"
        | "restricted_action_non_threadable_channel"
        | "ekm_access_denied" => ApiError::Forbidden(e),
        "msg_too_long"
        | "no_text"
        | "invalid_arguments"
        | "invalid_blocks"
        | "too_many_attachments"
        | "invalid_thread_ts"
        | "invalid_form_data"
        | "invalid_json"
        | "json_not_object" => ApiError::BadRequest(e),
        "too_many_websockets" => ApiError::TooManySockets,
        "ratelimited" => ApiError::RateLimited {
            retry_after: DEFAULT_RETRY_AFTER,
        },
        "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => ApiError::Server(e),
        _ => ApiError::Other(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, retry: Option<&str>, body: &str) -> ApiError {
        parse_answer("auth.test", status, retry, body.as_bytes()).unwrap_err()
    }

    #[test]
    fn ok_false_errors_map_to_contract_codes() {
        let code = |e: &str| {
            err(200, None, &format!(r#"{{"ok":false,"error":"{e}"}}"#))
                .to_error_body()
                .code
        };
        assert_eq!(code("invalid_auth"), ErrorCode::Unavailable);
        assert_eq!(code("channel_not_found"), ErrorCode::NotFound);
        assert_eq!(code("not_in_channel"), ErrorCode::Forbidden);
        assert_eq!(code("restricted_action"), ErrorCode::Forbidden);
        assert_eq!(code("msg_too_long"), ErrorCode::InvalidRequest);
        assert_eq!(code("no_text"), ErrorCode::InvalidRequest);
        assert_eq!(code("invalid_arguments"), ErrorCode::InvalidRequest);
        assert!(matches!(
            err(200, None, r#"{"ok":false,"error":"not_authed"}"#),
            ApiError::Unauthorized(_)
        ));
        assert!(matches!(
            err(200, None, r#"{"ok":false,"error":"account_inactive"}"#),
            ApiError::Unauthorized(_)
        ));
    }

    #[test]
    fn rate_limit_takes_retry_after_from_the_header() {
        assert_eq!(
            err(429, Some("3"), r#"{"ok":false,"error":"ratelimited"}"#),
            ApiError::RateLimited {
                retry_after: Duration::from_secs(3)
            }
        );
        assert_eq!(
            err(429, None, ""),
            ApiError::RateLimited {
                retry_after: DEFAULT_RETRY_AFTER
            }
        );
        let body = err(429, Some("2"), "").to_error_body();
        assert_eq!(body.code, ErrorCode::RateLimited);
    }

    #[test]
    fn server_errors_are_retryable_and_garbage_is_not() {
        let e = err(503, None, "<html>");
        assert!(matches!(e, ApiError::Server(_)));
        assert!(e.to_error_body().retryable);
        assert!(matches!(err(200, None, "<html>"), ApiError::Other(_)));
        let ok = parse_answer("chat.postMessage", 200, None, br#"{"ok":true,"ts":"1.2"}"#).unwrap();
        assert_eq!(ok["ts"], "1.2");
    }

    #[test]
    fn answers_need_only_the_fields_used() {
        let id = Identity::from_answer(&json!({"ok": true, "user_id": "U1"})).unwrap();
        assert_eq!(
            id,
            Identity {
                user_id: "U1".into(),
                bot_id: None,
                user: None,
                team: None
            }
        );
        let e = ApiError::Incomplete(Identity::from_answer(&json!({"ok": true, "team": "T"})).unwrap_err());
        assert_eq!(e.to_string(), r#"auth.test answer has no "user_id""#);
        assert_eq!(e.to_error_body().code, ErrorCode::Unavailable);
        assert!(!e.to_error_body().retryable);
        let e = err(200, None, r#"{"user_id":"U1"}"#);
        assert_eq!(e.to_string(), r#"auth.test answer has no "ok""#);
    }
}
