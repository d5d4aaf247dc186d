//! A blocking Telegram Bot API client over one shared `ureq::Agent`.
//!
//! Requests are JSON POSTs to `{base}/bot{TOKEN}/{method}`. Every call takes its own timeout
//! because ureq has no way to cancel a call in flight except [`BotApi::shutdown`]: the caller
//! picks a budget that lets its thread notice a stop request in time.
//!
//! Errors are classified by what the caller must do next ([`ApiError`]). The one distinction
//! that matters most is [`ApiError::Connect`] versus [`ApiError::Network`]: only a request that
//! surely never reached Telegram may be sent again without risking a duplicate chat message.
//!
//! The bot token is a password. It appears only in the request URL; every error text this
//! module returns has it replaced by `<redacted>` (ureq puts the URL in some errors), and
//! `Debug` never prints it.
//!
//! Answers are read leniently (see [`crate::channels::fields`]): of each result only the
//! fields the connector uses are required, and a missing one is [`ApiError::Incomplete`],
//! naming it (`getMe answer has no "id"`).
//!
//! The pure halves ([`parse_envelope`], [`classify_transport`]) are separate from the I/O so
//! that they can be tested with canned input.

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::channels::actions::Action;
use crate::channels::fields::{Fields, Missing};
use crate::channels::http::{self, Transport, with_timeouts};
use crate::channels::media::multipart::Multipart;
use crate::json_type::json_type_name;
use crate::protocol::{ErrorBody, ErrorCode};
// The tests build ureq I/O errors and check the setup budget.
#[cfg(test)]
use {
    crate::channels::http::{MAX_SETUP_TIMEOUT, setup_timeout},
    std::io,
};

/// Largest response body read. A full `getUpdates` batch (100 updates) is far below this; a
/// bigger body is not something Telegram sends, so it is reported as malformed.
const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// The least margin by which the HTTP timeout of `getUpdates` must exceed its long-poll
/// timeout. Without it the client gives up just before Telegram answers, polls again while the
/// old request is still open on the server, and gets its own 409 "terminated by other
/// getUpdates request".
pub const MIN_POLL_MARGIN: Duration = Duration::from_secs(5);

/// Wait used when a 429 carries no usable `retry_after` (never zero: that would be a tight loop).
const DEFAULT_RETRY_AFTER_SECS: u64 = 5;

/// Longest piece of an unexpected response body quoted in an error.
const SNIPPET_CHARS: usize = 120;

/// The bot account, as returned by `getMe`: the two fields the connector uses. `id` keys the
/// stored offset and the spool; `username` is only shown. Everything else (`is_bot`,
/// `first_name`, ...) is ignored, so a Bot API emulator that leaves it out works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: Option<String>,
}

impl User {
    /// Read a `getMe` result.
    pub fn from_result(result: &Value) -> Result<User, Missing> {
        let fields = Fields::new("getMe answer", result);
        Ok(User {
            id: fields.i64("id")?,
            username: fields.opt_str("username").map(str::to_owned),
        })
    }
}

/// What `getFile` says about a file: where to download it (`file_path`, valid for about an
/// hour, so never stored) and its size when known. Only `file_path` is required.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    pub file_path: String,
    pub file_size: Option<u64>,
}

impl FileInfo {
    /// Read a `getFile` result.
    pub fn from_result(result: &Value) -> Result<FileInfo, Missing> {
        let fields = Fields::new("getFile answer", result);
        Ok(FileInfo {
            file_path: fields.str("file_path")?.to_owned(),
            file_size: fields.opt_i64("file_size").and_then(|n| u64::try_from(n).ok()),
        })
    }
}

/// A `sendMessage` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendMessage {
    /// A numeric chat id (sent as a JSON integer) or `@channelusername`.
    pub chat_id: String,
    pub text: String,
    /// `MarkdownV2`, `HTML` or `Markdown`; `None` sends plain text.
    pub parse_mode: Option<&'static str>,
    /// The forum topic to post in.
    pub message_thread_id: Option<i64>,
    /// Sent as `reply_parameters {message_id, allow_sending_without_reply: true}`: a reply to a
    /// message deleted meanwhile still delivers the answer instead of failing.
    pub reply_to_message_id: Option<i64>,
    /// An inline keyboard (`{"inline_keyboard": [[...]]}`), if the message has buttons.
    pub reply_markup: Option<Value>,
}

impl SendMessage {
    /// The JSON body. A numeric `chat_id` goes out as an integer (ids can exceed 32 bits, so
    /// i64), anything else as a string.
    fn to_json(&self) -> Value {
        let mut body = destination(
            &self.chat_id,
            self.parse_mode,
            self.message_thread_id,
            self.reply_to_message_id,
        );
        body.insert("text".into(), json!(self.text));
        if let Some(markup) = &self.reply_markup {
            body.insert("reply_markup".into(), markup.clone());
        }
        Value::Object(body)
    }
}

/// The params every send method shares: where it goes, how its text is formatted, what it
/// replies to (as `reply_parameters {message_id, allow_sending_without_reply: true}`).
pub fn destination(
    chat_id: &str,
    parse_mode: Option<&'static str>,
    thread: Option<i64>,
    reply_to: Option<i64>,
) -> Map<String, Value> {
    let mut body = Map::new();
    let chat_id = match chat_id.parse::<i64>() {
        Ok(id) => json!(id),
        Err(_) => json!(chat_id),
    };
    body.insert("chat_id".into(), chat_id);
    if let Some(mode) = parse_mode {
        body.insert("parse_mode".into(), json!(mode));
    }
    if let Some(thread) = thread {
        body.insert("message_thread_id".into(), json!(thread));
    }
    if let Some(id) = reply_to {
        body.insert(
            "reply_parameters".into(),
            json!({"message_id": id, "allow_sending_without_reply": true}),
        );
    }
    body
}

/// Why a Bot API call failed. Each variant says what the caller should do. Texts never
/// contain the bot token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// 401 (revoked or wrong token) or 404 (malformed token, bad base URL). Retrying will not
    /// help: report it and wait for a config change.
    Unauthorized { status: u16, description: String },
    /// 403, e.g. "Forbidden: bot was blocked by the user". The chat refuses this bot; do not
    /// retry.
    Forbidden { description: String },
    /// HTTP 409. With `webhook`, a webhook is set: call `deleteWebhook`. Otherwise another
    /// `getUpdates` replaced ours (a second instance, or our own timed-out poll): back off and
    /// log it.
    Conflict { webhook: bool, description: String },
    /// 429 flood control: wait `retry_after`, then the same request may be sent again.
    RateLimited {
        retry_after: Duration,
        description: String,
    },
    /// The group became a supergroup: send again to `to_chat_id` (nothing was delivered).
    Migrated { to_chat_id: i64, description: String },
    /// Any other 4xx, with Telegram's description kept: the request itself is wrong.
    BadRequest { description: String },
    /// 5xx: Telegram is in trouble. The outcome of a send is unknown.
    Server { status: u16, description: String },
    /// The request surely never reached Telegram (DNS, connection refused, connect timeout,
    /// TLS setup, bad URL): a send may be retried after a backoff.
    Connect(String),
    /// The request was (maybe) sent but no complete answer came (timeout mid-request, reset):
    /// a send must NOT be retried, the message may have been delivered.
    Network(String),
    /// The answer is not the Bot API's JSON envelope (or not the expected result type).
    Malformed(String),
    /// The answer lacks a field the connector needs, named in the text: the server does
    /// not speak the Bot API as the connector uses it. Retrying waits for it to be fixed.
    Incomplete(Missing),
}

impl ApiError {
    /// True when the same send may be repeated without risking a duplicate chat message:
    /// Telegram surely did not deliver it (after [`ApiError::retry_after`] for a 429).
    /// `Migrated` is also undelivered, but must be re-addressed first, so it is false here.
    pub fn is_retryable_send(&self) -> bool {
        matches!(self, ApiError::Connect(_) | ApiError::RateLimited { .. })
    }

    /// How long Telegram asked us to wait, for a 429.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The error as `channels.send` reports it on the wire. The gateway client did nothing
    /// wrong when Telegram rejects the bot token, so that is `UNAVAILABLE` (not retryable until
    /// the config is fixed), not `UNAUTHORIZED`, which would send the client to check its own
    /// gateway credentials. `retryable` marks transient failures; for `Network` and `Server`
    /// the message says the outcome is unknown, so a caller that retries may duplicate it.
    pub fn to_error_body(&self) -> ErrorBody {
        let message = format!("telegram: {self}");
        match self {
            ApiError::Unauthorized { .. } => ErrorBody::new(
                ErrorCode::Unavailable,
                format!("{message}; fix channels.telegram.botToken"),
            ),
            ApiError::Forbidden { .. } => ErrorBody::new(ErrorCode::Forbidden, message),
            ApiError::Conflict { .. } => ErrorBody::retryable(ErrorCode::Unavailable, message, None),
            ApiError::RateLimited { retry_after, .. } => {
                let ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
                ErrorBody::retryable(ErrorCode::RateLimited, message, Some(ms))
            }
            ApiError::Migrated { .. } => ErrorBody::new(ErrorCode::NotFound, message),
            ApiError::BadRequest { description } => {
                // "chat not found", "message thread not found", "user not found": the target
                // named in `to`/`threadId` does not exist for this bot.
                let code = if description.to_ascii_lowercase().contains("not found") {
                    ErrorCode::NotFound
                } else {
                    ErrorCode::InvalidRequest
                };
                ErrorBody::new(code, message)
            }
            ApiError::Server { .. } | ApiError::Connect(_) | ApiError::Network(_) => {
                ErrorBody::retryable(ErrorCode::Unavailable, message, None)
            }
            ApiError::Malformed(_) | ApiError::Incomplete(_) => {
                ErrorBody::new(ErrorCode::Unavailable, message)
            }
        }
    }

    /// The same error with every text passed through `f` (used to redact the token).
    fn map_text(self, f: impl Fn(&str) -> String) -> ApiError {
        match self {
            ApiError::Unauthorized { status, description } => ApiError::Unauthorized {
                status,
                description: f(&description),
            },
            ApiError::Forbidden { description } => ApiError::Forbidden {
                description: f(&description),
            },
            ApiError::Conflict { webhook, description } => ApiError::Conflict {
                webhook,
                description: f(&description),
            },
            ApiError::RateLimited {
                retry_after,
                description,
            } => ApiError::RateLimited {
                retry_after,
                description: f(&description),
            },
            ApiError::Migrated {
                to_chat_id,
                description,
            } => ApiError::Migrated {
                to_chat_id,
                description: f(&description),
            },
            ApiError::BadRequest { description } => ApiError::BadRequest {
                description: f(&description),
            },
            ApiError::Server { status, description } => ApiError::Server {
                status,
                description: f(&description),
            },
            ApiError::Connect(text) => ApiError::Connect(f(&text)),
            ApiError::Network(text) => ApiError::Network(f(&text)),
            ApiError::Malformed(text) => ApiError::Malformed(f(&text)),
            // Field names and what was read: nothing from the request.
            ApiError::Incomplete(missing) => ApiError::Incomplete(missing),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Unauthorized { status, description } => {
                write!(f, "bot token rejected (HTTP {status}: {description})")
            }
            ApiError::Forbidden { description }
            | ApiError::Conflict { description, .. }
            | ApiError::BadRequest { description } => f.write_str(description),
            ApiError::RateLimited {
                retry_after,
                description,
            } => write!(f, "{description} (retry after {} s)", retry_after.as_secs()),
            ApiError::Migrated {
                to_chat_id,
                description,
            } => write!(f, "{description} (new chat id {to_chat_id})"),
            ApiError::Server { status, description } => {
                write!(f, "server error (HTTP {status}: {description}); outcome unknown")
            }
            ApiError::Connect(text) => write!(f, "cannot connect: {text}"),
            ApiError::Network(text) => write!(f, "request failed after sending, outcome unknown: {text}"),
            ApiError::Malformed(text) => write!(f, "malformed response: {text}"),
            ApiError::Incomplete(missing) => missing.fmt(f),
        }
    }
}

impl std::error::Error for ApiError {}

/// A Bot API client. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct BotApi {
    agent: ureq::Agent,
    base_url: String,
    token: String,
}

impl fmt::Debug for BotApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BotApi")
            .field("base_url", &self.base_url)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl BotApi {
    /// A client for `base_url` (e.g. `https://api.telegram.org` or `http://127.0.0.1:PORT`,
    /// trailing `/` ignored). Nothing is sent until the first call.
    pub fn new(base_url: &str, token: &str) -> BotApi {
        // Telegram never redirects; following one would send the token-bearing URL's request
        // elsewhere. A 3xx is returned as is and reported as malformed.
        BotApi {
            agent: http::agent(
                Duration::from_secs(120),
                concat!("emonkd/", env!("CARGO_PKG_VERSION")),
            ),
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    /// Abort every call in flight on this client and its clones (they fail with
    /// [`ApiError::Network`]) and refuse new ones. For a stop that cannot wait out a long poll;
    /// a graceful stop that still wants to confirm the offset must not call this first.
    pub fn shutdown(&self) {
        self.agent.clone().shutdown();
    }

    /// `text` with the bot token replaced by `<redacted>`, for anything logged or returned.
    pub fn redact(&self, text: &str) -> String {
        redact(text, &self.token)
    }

    /// `getMe`: the bot account. Use it as the startup token check.
    pub fn get_me(&self, timeout: Duration) -> Result<User, ApiError> {
        let result = self.call("getMe", &json!({}), timeout)?;
        User::from_result(&result).map_err(ApiError::Incomplete)
    }

    /// `deleteWebhook`; `drop_pending` also discards updates Telegram still holds. The result
    /// (`true`) is not needed: `"ok":true` is the answer.
    pub fn delete_webhook(&self, drop_pending: bool, timeout: Duration) -> Result<(), ApiError> {
        self.call(
            "deleteWebhook",
            &json!({"drop_pending_updates": drop_pending}),
            timeout,
        )
        .map(|_| ())
    }

    /// `getUpdates`: raw Update objects, oldest first. `offset` (highest `update_id` seen + 1)
    /// confirms every earlier update, which Telegram then forgets. `limit` is clamped to
    /// 1..=100. An empty `allowed_updates` is omitted, which keeps Telegram's previous setting.
    /// `http_timeout` must exceed the long poll; if it is shorter than
    /// `poll_timeout_secs` + [`MIN_POLL_MARGIN`] it is raised to that (see the constant).
    pub fn get_updates(
        &self,
        offset: Option<i64>,
        limit: u32,
        poll_timeout_secs: u64,
        allowed_updates: &[&str],
        http_timeout: Duration,
    ) -> Result<Vec<Value>, ApiError> {
        let params = get_updates_params(offset, limit, poll_timeout_secs, allowed_updates);
        let timeout = poll_http_timeout(poll_timeout_secs, http_timeout);
        match self.call("getUpdates", &params, timeout)? {
            Value::Array(updates) => Ok(updates),
            Value::Null => Err(ApiError::Incomplete(Missing::new("getUpdates answer", "result"))),
            other => Err(ApiError::Malformed(format!(
                "getUpdates result is not an array but {}",
                json_type_name(&other)
            ))),
        }
    }

    /// `sendMessage`: the sent Message as Telegram gave it (null when the answer had no
    /// result). `"ok":true` means it was sent, whatever the result holds, so no shape is
    /// required here: the caller reads the id it needs. On error see
    /// [`ApiError::is_retryable_send`].
    pub fn send_message(&self, req: &SendMessage, timeout: Duration) -> Result<Value, ApiError> {
        self.call("sendMessage", &req.to_json(), timeout)
    }

    /// A media method (`sendPhoto`, `sendMediaGroup`, ...) with its multipart form, streamed
    /// from disk. Its answer is a Message, or for an album an array of them.
    pub fn send_media(&self, method: &str, form: Multipart, timeout: Duration) -> Result<Value, ApiError> {
        let url = format!("{}/bot{}/{}", self.base_url, self.token, method);
        log::trace!("telegram: {method} (timeout {timeout:?})");
        let sent = http::post_multipart(self.agent.post(&url), timeout, form);
        self.answer(method, sent)
    }

    /// `editMessageText`, `deleteMessage` or `setMessageReaction` for `action` in `chat_id`.
    pub fn act(
        &self,
        chat_id: &str,
        message_id: i64,
        action: &Action,
        parse_mode: Option<&'static str>,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let (method, mut params) = match action {
            Action::Edit { text, .. } => {
                let mut p = destination(chat_id, parse_mode, None, None);
                p.insert("text".into(), json!(text));
                ("editMessageText", p)
            }
            Action::Delete { .. } => ("deleteMessage", destination(chat_id, None, None, None)),
            Action::React { emoji, remove, .. } => {
                let mut p = destination(chat_id, None, None, None);
                let reaction = if *remove {
                    json!([])
                } else {
                    json!([{"type": "emoji", "emoji": emoji}])
                };
                p.insert("reaction".into(), reaction);
                ("setMessageReaction", p)
            }
        };
        params.insert("message_id".into(), json!(message_id));
        self.call(method, &Value::Object(params), timeout)
    }

    /// `sendChatAction`: show `action` ("typing", ...) in a chat for about 5 s.
    pub fn send_chat_action(
        &self,
        chat_id: &str,
        action: &str,
        thread: Option<i64>,
        timeout: Duration,
    ) -> Result<(), ApiError> {
        let mut params = destination(chat_id, None, thread, None);
        params.insert("action".into(), json!(action));
        self.call("sendChatAction", &Value::Object(params), timeout)
            .map(|_| ())
    }

    /// `answerCallbackQuery`: the press was received, so the user's client stops its
    /// spinner; `text` (if any) shows as a brief notice.
    pub fn answer_callback(&self, id: &str, text: Option<&str>, timeout: Duration) -> Result<(), ApiError> {
        let mut params = json!({"callback_query_id": id});
        if let Some(text) = text {
            params["text"] = json!(text);
        }
        self.call("answerCallbackQuery", &params, timeout).map(|_| ())
    }

    /// `getFile`: where to download the file behind `file_id`.
    pub fn get_file(&self, file_id: &str, timeout: Duration) -> Result<FileInfo, ApiError> {
        let result = self.call("getFile", &json!({"file_id": file_id}), timeout)?;
        FileInfo::from_result(&result).map_err(ApiError::Incomplete)
    }

    /// The download of a `getFile` path: `<base>/file/bot<token>/<file_path>`. The URL holds
    /// the token, so it is never logged or quoted (see [`http::download`]).
    pub fn file_request(&self, file_path: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let path = file_path.trim_start_matches('/');
        self.agent
            .get(format!("{}/file/bot{}/{path}", self.base_url, self.token))
    }

    /// One POST with a JSON body; the whole exchange (connect to last body byte) is bounded by
    /// `timeout`.
    fn call(&self, method: &str, params: &Value, timeout: Duration) -> Result<Value, ApiError> {
        let url = format!("{}/bot{}/{}", self.base_url, self.token, method);
        log::trace!("telegram: {method} (timeout {timeout:?})");
        let request = self.agent.post(&url).header("content-type", "application/json");
        let sent = with_timeouts(request, timeout).send(params.to_string().as_bytes());
        self.answer(method, sent)
    }

    /// The envelope of a call's answer, or why there is none; texts redacted.
    fn answer(
        &self,
        method: &str,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ApiError> {
        let result = match sent {
            Ok(mut response) => {
                let status = response.status().as_u16();
                match response
                    .body_mut()
                    .with_config()
                    .limit(MAX_RESPONSE_BYTES)
                    .read_to_vec()
                {
                    Ok(body) => parse_envelope(method, status, &body),
                    Err(ureq::Error::BodyExceedsLimit(limit)) => Err(ApiError::Malformed(format!(
                        "{method} response larger than {limit} bytes"
                    ))),
                    // The response had started: Telegram got the request.
                    Err(e) => Err(ApiError::Network(format!("reading the {method} response: {e}"))),
                }
            }
            Err(e) => Err(classify_transport(&e)),
        };
        result.map_err(|e| {
            let e = e.map_text(|text| redact(text, &self.token));
            log::debug!("telegram: {method} failed: {e}");
            e
        })
    }
}

/// The `getUpdates` parameters.
fn get_updates_params(offset: Option<i64>, limit: u32, poll_timeout_secs: u64, allowed: &[&str]) -> Value {
    let mut params = Map::new();
    if let Some(offset) = offset {
        params.insert("offset".into(), json!(offset));
    }
    params.insert("limit".into(), json!(limit.clamp(1, 100)));
    params.insert("timeout".into(), json!(poll_timeout_secs));
    if !allowed.is_empty() {
        params.insert("allowed_updates".into(), json!(allowed));
    }
    Value::Object(params)
}

/// The HTTP budget of a long poll: at least the poll plus [`MIN_POLL_MARGIN`].
fn poll_http_timeout(poll_timeout_secs: u64, requested: Duration) -> Duration {
    requested.max(Duration::from_secs(poll_timeout_secs) + MIN_POLL_MARGIN)
}

/// `text` with every occurrence of `token` replaced.
fn redact(text: &str, token: &str) -> String {
    if token.is_empty() {
        text.to_owned()
    } else {
        text.replace(token, "<redacted>")
    }
}

/// Decode the answer to `method`: `{"ok":true,"result":..}` gives the result (null when
/// there is none: not every caller needs one); `{"ok":false,..}` is classified by
/// `error_code` (falling back to the HTTP status). A JSON object without `ok` on a 2xx is
/// [`ApiError::Incomplete`]; another body that is not an envelope is [`ApiError::Malformed`]
/// on a 2xx/3xx, and is classified by the HTTP status otherwise (a proxy's HTML 502 is still
/// a server error).
pub fn parse_envelope(method: &str, status: u16, body: &[u8]) -> Result<Value, ApiError> {
    let envelope = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) if map.get("ok").is_some_and(Value::is_boolean) => map,
        Ok(Value::Object(_)) if (200..300).contains(&status) => {
            let what = format!("{method} answer");
            return Err(ApiError::Incomplete(Missing::new(what, "ok")));
        }
        _ => {
            let snippet: String = String::from_utf8_lossy(body)
                .chars()
                .take(SNIPPET_CHARS)
                .collect();
            let what = format!("HTTP {status} without a Bot API envelope: {snippet:?}");
            return Err(if status < 400 {
                ApiError::Malformed(what)
            } else {
                classify_failure(status, what, None, None)
            });
        }
    };
    let mut envelope = envelope;
    if envelope.get("ok") == Some(&Value::Bool(true)) {
        return Ok(envelope.remove("result").unwrap_or(Value::Null));
    }
    let code = envelope
        .get("error_code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(status);
    let description = match envelope.get("description").and_then(Value::as_str) {
        Some(text) if !text.is_empty() => text.to_owned(),
        _ => format!("error {code} without a description"),
    };
    let parameters = envelope.get("parameters");
    let retry_after = parameters
        .and_then(|p| p.get("retry_after"))
        .and_then(Value::as_u64);
    let migrate_to = parameters
        .and_then(|p| p.get("migrate_to_chat_id"))
        .and_then(Value::as_i64);
    Err(classify_failure(code, description, retry_after, migrate_to))
}

/// Map an `{"ok":false}` answer (or an error status without one) to its [`ApiError`].
fn classify_failure(
    code: u16,
    description: String,
    retry_after: Option<u64>,
    migrate_to: Option<i64>,
) -> ApiError {
    if let Some(to_chat_id) = migrate_to {
        return ApiError::Migrated {
            to_chat_id,
            description,
        };
    }
    match code {
        401 | 404 => ApiError::Unauthorized {
            status: code,
            description,
        },
        403 => ApiError::Forbidden { description },
        409 => ApiError::Conflict {
            webhook: description.to_ascii_lowercase().contains("webhook"),
            description,
        },
        429 => {
            let secs = retry_after
                .or_else(|| retry_after_from_text(&description))
                .filter(|&s| s > 0)
                .unwrap_or(DEFAULT_RETRY_AFTER_SECS);
            ApiError::RateLimited {
                retry_after: Duration::from_secs(secs),
                description,
            }
        }
        400..=499 => ApiError::BadRequest { description },
        500..=599 => ApiError::Server {
            status: code,
            description,
        },
        _ => ApiError::Malformed(format!("unexpected error_code {code}: {description}")),
    }
}

/// The N of "Too Many Requests: retry after N", for a 429 whose `parameters` are missing.
fn retry_after_from_text(description: &str) -> Option<u64> {
    let lower = description.to_ascii_lowercase();
    let rest = &lower[lower.find("retry after ")? + "retry after ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Classify an error from sending a request (before any response arrived). Only errors that
/// certainly happened before a byte of the request could reach Telegram are
/// [`ApiError::Connect`]; anything ambiguous is [`ApiError::Network`], so a send is never
/// duplicated by a retry (see [`http::classify_transport`]).
pub fn classify_transport(error: &ureq::Error) -> ApiError {
    match http::classify_transport(error) {
        Transport::Connect(text) => ApiError::Connect(text),
        Transport::Network(text) => ApiError::Network(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, body: &str) -> ApiError {
        parse_envelope("getMe", status, body.as_bytes()).unwrap_err()
    }

    #[test]
    fn ok_envelope_gives_result() {
        let v = parse_envelope("getUpdates", 200, br#"{"ok":true,"result":[{"update_id":1}]}"#).unwrap();
        assert_eq!(v, json!([{"update_id": 1}]));
        let v = parse_envelope("deleteWebhook", 200, br#"{"ok":true,"result":true}"#).unwrap();
        assert_eq!(v, json!(true));
        // Unknown fields are ignored; a missing result is left to the caller.
        let v = parse_envelope("deleteWebhook", 200, br#"{"ok":true,"extra":{}}"#).unwrap();
        assert_eq!(v, Value::Null);
    }

    #[test]
    fn not_an_envelope_is_malformed_and_one_without_ok_says_so() {
        assert!(matches!(err(200, "<html>hi</html>"), ApiError::Malformed(_)));
        assert!(matches!(err(200, "[1,2]"), ApiError::Malformed(_)));
        assert!(matches!(err(302, ""), ApiError::Malformed(_)));
        let e = err(200, r#"{"result":1}"#);
        assert_eq!(e.to_string(), r#"getMe answer has no "ok""#);
        assert_eq!(e.to_error_body().code, ErrorCode::Unavailable);
        assert!(!e.to_error_body().retryable);
    }

    /// getMe needs the id and nothing else; `is_bot` and `first_name` may be missing.
    #[test]
    fn get_me_requires_only_the_id() {
        let user = User::from_result(&json!({"id": 42})).unwrap();
        assert_eq!(
            user,
            User {
                id: 42,
                username: None
            }
        );
        let user = User::from_result(&json!({"id": 42, "username": "b", "is_bot": "yes", "x": [1]})).unwrap();
        assert_eq!(user.username.as_deref(), Some("b"));
        let e = ApiError::Incomplete(User::from_result(&json!({"is_bot": true})).unwrap_err());
        assert_eq!(e.to_string(), r#"getMe answer has no "id""#);
        let e = User::from_result(&Value::Null).unwrap_err();
        assert_eq!(e.to_string(), r#"getMe answer has no "id""#);
    }

    #[test]
    fn non_envelope_error_status_is_classified_by_status() {
        assert!(matches!(
            err(502, "<html>Bad Gateway</html>"),
            ApiError::Server { status: 502, .. }
        ));
        assert!(matches!(
            err(404, "nope"),
            ApiError::Unauthorized { status: 404, .. }
        ));
    }

    #[test]
    fn unauthorized_and_not_found() {
        let e = err(
            401,
            r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
        );
        assert_eq!(
            e,
            ApiError::Unauthorized {
                status: 401,
                description: "Unauthorized".into()
            }
        );
        let e = err(404, r#"{"ok":false,"error_code":404,"description":"Not Found"}"#);
        assert!(matches!(e, ApiError::Unauthorized { status: 404, .. }));
        let body = e.to_error_body();
        assert_eq!(body.code, ErrorCode::Unavailable);
        assert!(!body.retryable);
    }

    #[test]
    fn conflicts() {
        let e = err(
            409,
            r#"{"ok":false,"error_code":409,"description":"Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"}"#,
        );
        assert!(matches!(e, ApiError::Conflict { webhook: false, .. }));
        let e = err(
            409,
            r#"{"ok":false,"error_code":409,"description":"Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"}"#,
        );
        assert!(matches!(e, ApiError::Conflict { webhook: true, .. }));
    }

    #[test]
    fn rate_limited_with_and_without_parameters() {
        let e = err(
            429,
            r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#,
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(e.is_retryable_send());
        let body = e.to_error_body();
        assert_eq!(body.code, ErrorCode::RateLimited);
        assert!(body.retryable);
        assert_eq!(body.retry_after_ms, Some(7000));

        let e = err(
            429,
            r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 12"}"#,
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(12)));
        let e = err(429, r#"{"ok":false,"error_code":429,"description":"slow down"}"#);
        assert_eq!(
            e.retry_after(),
            Some(Duration::from_secs(DEFAULT_RETRY_AFTER_SECS))
        );
        let e = err(
            429,
            r#"{"ok":false,"error_code":429,"description":"x","parameters":{"retry_after":0}}"#,
        );
        assert_eq!(
            e.retry_after(),
            Some(Duration::from_secs(DEFAULT_RETRY_AFTER_SECS))
        );
    }

    #[test]
    fn migrated_keeps_big_chat_id() {
        let e = err(
            400,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001234567890}}"#,
        );
        assert!(matches!(
            e,
            ApiError::Migrated {
                to_chat_id: -1001234567890,
                ..
            }
        ));
        assert!(!e.is_retryable_send());
        assert_eq!(e.to_error_body().code, ErrorCode::NotFound);
        assert!(e.to_string().contains("-1001234567890"));
    }

    #[test]
    fn bad_requests_keep_description_and_map_to_codes() {
        let e = err(
            400,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#,
        );
        assert_eq!(
            e,
            ApiError::BadRequest {
                description: "Bad Request: chat not found".into()
            }
        );
        assert_eq!(e.to_error_body().code, ErrorCode::NotFound);
        let e = err(
            400,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: message is too long"}"#,
        );
        let body = e.to_error_body();
        assert_eq!(body.code, ErrorCode::InvalidRequest);
        assert!(body.message.contains("message is too long"));
        assert!(!body.retryable);
        // error_code wins over the HTTP status; a missing description is filled in.
        let e = err(200, r#"{"ok":false,"error_code":400}"#);
        assert!(matches!(e, ApiError::BadRequest { ref description } if description.contains("400")));
    }

    #[test]
    fn forbidden_and_server() {
        let e = err(
            403,
            r#"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#,
        );
        assert_eq!(e.to_error_body().code, ErrorCode::Forbidden);
        let e = err(
            500,
            r#"{"ok":false,"error_code":500,"description":"Internal Server Error"}"#,
        );
        assert!(matches!(e, ApiError::Server { status: 500, .. }));
        assert!(!e.is_retryable_send());
        let body = e.to_error_body();
        assert_eq!(body.code, ErrorCode::Unavailable);
        assert!(body.retryable);
    }

    #[test]
    fn transport_errors_before_sending_are_connect() {
        let refused = ureq::Error::Io(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(matches!(classify_transport(&refused), ApiError::Connect(_)));
        assert!(matches!(
            classify_transport(&ureq::Error::HostNotFound),
            ApiError::Connect(_)
        ));
        let t = ureq::Error::Timeout(ureq::Timeout::Connect);
        assert!(matches!(classify_transport(&t), ApiError::Connect(_)));
        let t = ureq::Error::Timeout(ureq::Timeout::Resolve);
        assert!(matches!(classify_transport(&t), ApiError::Connect(_)));
        let dns = ureq::Error::Io(io::Error::other(
            "failed to lookup address information: Name or service not known",
        ));
        assert!(matches!(classify_transport(&dns), ApiError::Connect(_)));
        let cert = ureq::Error::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            "invalid peer certificate: UnknownIssuer",
        ));
        assert!(matches!(classify_transport(&cert), ApiError::Connect(_)));
        assert!(ApiError::Connect("x".into()).is_retryable_send());
    }

    #[test]
    fn transport_errors_after_sending_are_network() {
        for e in [
            ureq::Error::Timeout(ureq::Timeout::Global),
            ureq::Error::Timeout(ureq::Timeout::RecvResponse),
            ureq::Error::Timeout(ureq::Timeout::SendBody),
            ureq::Error::Io(io::Error::from(io::ErrorKind::ConnectionReset)),
            ureq::Error::Io(io::Error::from(io::ErrorKind::UnexpectedEof)),
            ureq::Error::Io(io::Error::from(io::ErrorKind::TimedOut)),
            ureq::Error::Io(io::Error::new(io::ErrorKind::InvalidData, "bad record mac")),
        ] {
            let classified = classify_transport(&e);
            assert!(
                matches!(classified, ApiError::Network(_)),
                "{e:?} -> {classified:?}"
            );
            assert!(!classified.is_retryable_send());
            assert!(classified.to_error_body().retryable);
        }
    }

    #[test]
    fn send_message_body() {
        let req = SendMessage {
            chat_id: "-1001234567890".into(),
            text: "hi".into(),
            parse_mode: Some("HTML"),
            message_thread_id: Some(7),
            reply_to_message_id: Some(42),
            reply_markup: None,
        };
        assert_eq!(
            req.to_json(),
            json!({"chat_id": -1001234567890i64, "text": "hi", "parse_mode": "HTML",
                   "message_thread_id": 7,
                   "reply_parameters": {"message_id": 42, "allow_sending_without_reply": true}})
        );
        let req = SendMessage {
            chat_id: "@mychannel".into(),
            text: "x".into(),
            parse_mode: None,
            message_thread_id: None,
            reply_to_message_id: None,
            reply_markup: Some(json!({"inline_keyboard": []})),
        };
        assert_eq!(
            req.to_json(),
            json!({"chat_id": "@mychannel", "text": "x", "reply_markup": {"inline_keyboard": []}})
        );
    }

    #[test]
    fn get_updates_params_and_timeouts() {
        assert_eq!(
            get_updates_params(Some(5), 500, 25, &["message"]),
            json!({"offset": 5, "limit": 100, "timeout": 25, "allowed_updates": ["message"]})
        );
        assert_eq!(
            get_updates_params(None, 0, 0, &[]),
            json!({"limit": 1, "timeout": 0})
        );
        assert_eq!(
            poll_http_timeout(25, Duration::from_secs(10)),
            Duration::from_secs(30)
        );
        assert_eq!(
            poll_http_timeout(25, Duration::from_secs(40)),
            Duration::from_secs(40)
        );
        assert_eq!(setup_timeout(Duration::from_secs(4)), Duration::from_secs(2));
        assert_eq!(setup_timeout(Duration::from_secs(60)), MAX_SETUP_TIMEOUT);
    }

    #[test]
    fn token_is_redacted_everywhere() {
        let token = "123456:ABC-secret";
        let e =
            ApiError::Connect(format!("bad uri http://x/bot{token}/getMe")).map_text(|t| redact(t, token));
        assert!(!format!("{e} {e:?}").contains(token));
        let api = BotApi::new("http://127.0.0.1:1/", token);
        assert!(!format!("{api:?}").contains(token));
        assert_eq!(api.redact(&format!("a {token} b")), "a <redacted> b");
    }
}
