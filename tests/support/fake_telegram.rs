//! A fake Telegram Bot API server for integration tests.
//!
//! It speaks the real wire format (`/bot<TOKEN>/<method>`, the `{"ok":..}` envelope with
//! matching HTTP status, Telegram's error descriptions) and keeps Telegram's state: a queue of
//! updates confirmed by `offset`, real long polling, the 409 given to the older of two
//! concurrent `getUpdates`, the webhook/getUpdates exclusion, chats that exist or not, group
//! migration, message ids. Tests push updates, script faults and read back what the client did.
//!
//! HTTP is hand-written and minimal: std `TcpListener` on 127.0.0.1:0, one thread per
//! connection, HTTP/1.1 keep-alive (ureq reuses connections), `Content-Length` or chunked
//! request bodies, params from the query string, JSON or form-urlencoded bodies (form and query
//! values may be JSON-serialized, as Telegram allows). Multipart is not supported.
//!
//! Every wait is bounded and dropping the server wakes and joins all its threads.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::multipart::Part;
use serde_json::{Map, Value, json};

use super::answers::{self, Omitted};
use super::fake_server::{Server, Watched, deref_to_watched, local_listener};

/// The 409 the older of two concurrent `getUpdates` gets.
pub const CONFLICT_POLLER: &str =
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";
/// The 409 `getUpdates` gets while a webhook is set.
pub const CONFLICT_WEBHOOK: &str = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";
/// The 400 for a send to a group that became a supergroup.
pub const MIGRATED: &str = "Bad Request: group chat was upgraded to a supergroup chat";

/// Longest request line or header line accepted.
const MAX_LINE: usize = 16 * 1024;
/// Most headers accepted in one request.
const MAX_HEADERS: usize = 100;
/// Largest request body accepted.
/// Requests above Telegram's 50 MB upload limit (plus form overhead) are refused.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Longest message text, in UTF-16 code units, like Telegram.
const MAX_TEXT_UNITS: usize = 4096;
/// The first update id handed out (real ones are large; anything positive will do).
const FIRST_UPDATE_ID: i64 = 1000;
/// Update kinds Telegram leaves out unless asked for explicitly.
const OPT_IN_KINDS: [&str; 3] = ["chat_member", "message_reaction", "message_reaction_count"];

/// A scripted failure for the next request of one method.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Answer `{"ok":false,"error_code":status,"description":..}` with that HTTP status.
    Status(u16, String),
    /// 429 "Too Many Requests: retry after N" with `parameters.retry_after`.
    RetryAfter(u64),
    /// 400 group migrated, with `parameters.migrate_to_chat_id`. When the request names a
    /// known chat, that chat stays migrated (later sends fail the same way) and the new chat
    /// exists as a supergroup.
    Migrate(i64),
    /// 200 with an HTML body.
    Malformed,
    /// Read the request, then close the connection without answering (nothing is processed).
    Drop,
    /// Wait this long, then process the request normally (a client that timed out meanwhile
    /// does not see the answer, but a sendMessage is still delivered).
    Delay(Duration),
    /// `getUpdates` answers at once with what is pending (usually `[]`) instead of long
    /// polling.
    IgnoreTimeout,
}

/// A scripted failure of the next file download (`GET /file/bot<token>/<path>`).
#[derive(Clone, Debug, PartialEq)]
pub enum DownloadFault {
    /// Answer this HTTP status with a short body.
    Status(u16),
    /// Announce the whole length, send half the bytes, then close.
    BreakOff,
    /// Wait this long before answering normally.
    Delay(Duration),
}

/// A file the fake serves through `getFile` and its download URL.
struct FakeFile {
    path: String,
    bytes: Arc<Vec<u8>>,
}

/// Telegram's cloud Bot API serves files up to 20 MB.
pub const DOWNLOAD_LIMIT: usize = 20 * 1024 * 1024;

/// The running fake. Dropping it stops it.
pub struct FakeTelegram {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Server,
}

struct Shared {
    token: String,
    /// Signalled on every state change: new updates, polls starting/ending, requests, stop.
    state: Watched<State>,
    /// When recording (see [`FakeTelegram::record_handovers`]): the instant each update was
    /// written to a client in a getUpdates response, by update_id.
    handovers: Mutex<Option<HashMap<i64, Instant>>>,
}

struct Chat {
    kind: String,
    username: Option<String>,
    last_message_id: i64,
    migrated_to: Option<i64>,
}

struct State {
    revoked: bool,
    webhook: Option<String>,
    updates: VecDeque<Value>,
    next_update_id: i64,
    confirmed_offset: i64,
    /// Empty means Telegram's default (everything but the opt-in kinds).
    allowed_updates: Vec<String>,
    /// Bumped by every getUpdates: a waiting poll that sees it change was superseded.
    poll_generation: u64,
    polls_waiting: usize,
    chats: HashMap<i64, Chat>,
    sent: Vec<Value>,
    uploads: Vec<Upload>,
    /// sendChatAction calls accepted: chat, action, when.
    chat_actions: Vec<(i64, String, Instant)>,
    /// The bot's messages as a person in the chat sees them now: (chat, id) → text (or
    /// caption); deleted ones are gone.
    bot_messages: std::collections::BTreeMap<(i64, i64), String>,
    /// Every message id the bot was ever given, deleted or not.
    sent_ids: std::collections::HashSet<(i64, i64)>,
    /// Reactions the bot set, by (chat, message id).
    reactions: HashMap<(i64, i64), Vec<String>>,
    /// Edits accepted: (chat, message id, when).
    edits: Vec<(i64, i64, Instant)>,
    /// Callback query ids handed out, and the answers given: (id, text).
    queries: std::collections::HashSet<String>,
    answered: Vec<(String, Option<String>)>,
    /// When each chat's visible bot messages last changed (a send, an edit, a delete).
    changed: HashMap<i64, Instant>,
    /// The parse_mode each visible bot message was last sent or edited with.
    modes: HashMap<(i64, i64), String>,
    /// Telegram's flood control per chat, when on: at most `max` sends and edits into one
    /// chat in any `window` (see [`FakeTelegram::limit_per_chat`]).
    chat_limit: Option<(usize, Duration)>,
    chat_calls: HashMap<i64, VecDeque<Instant>>,
    /// 429s given by the flood control.
    flood_429s: usize,
    requests: Vec<(String, Value)>,
    faults: HashMap<String, VecDeque<Fault>>,
    /// Faults applied to every request of a method once the scripted ones are used up.
    persistent: HashMap<String, Fault>,
    /// Answers stripped to what a minimal Bot API emulator sends (see
    /// [`FakeTelegram::minimal_answers`]).
    minimal: bool,
    /// Result fields left out of successful answers, by method (canonical spelling).
    omitted: Omitted,
    /// Files by `file_id`.
    files: HashMap<String, FakeFile>,
    /// Completed and attempted downloads, by `file_id`.
    downloads: HashMap<String, usize>,
    download_faults: VecDeque<DownloadFault>,
}

/// One media message (or album) the fake accepted.
#[derive(Clone, Debug)]
pub struct Upload {
    pub method: String,
    pub chat_id: i64,
    /// The caption of the message (of the album's first item).
    pub caption: Option<String>,
    pub files: Vec<UploadedFile>,
    pub message_ids: Vec<i64>,
    /// `reply_parameters.message_id`, if the message replies.
    pub reply_to: Option<i64>,
}

/// One file of an upload, as parsed from the multipart body.
#[derive(Clone, Debug)]
pub struct UploadedFile {
    /// `photo`, `document`, `video`, ...
    pub kind: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub size: usize,
    pub sha256: String,
}

/// Telegram's upload limit for bots.
pub const UPLOAD_LIMIT: usize = 50 * 1024 * 1024;
/// Telegram's caption limit, in UTF-16 units.
const MAX_CAPTION_UNITS: usize = 1024;
/// The media methods and the field each takes its file in.
const MEDIA_METHODS: &[(&str, &str)] = &[
    ("sendPhoto", "photo"),
    ("sendDocument", "document"),
    ("sendVideo", "video"),
    ("sendAnimation", "animation"),
    ("sendAudio", "audio"),
    ("sendVoice", "voice"),
    ("sendSticker", "sticker"),
];

/// What to send back.
enum Reply {
    Json(u16, Value),
    Raw(u16, &'static str, Vec<u8>),
    /// A file: the status, then its bytes; with `Some(n)` only the first `n` bytes are sent
    /// (after announcing them all) and the connection is closed.
    File(Arc<Vec<u8>>, Option<usize>),
    /// Close without answering.
    Hangup,
}

/// One parsed HTTP request (also used by `fake_discord` and `fake_slack`).
pub(super) struct Request {
    pub(super) method: String,
    pub(super) target: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
    pub(super) keep_alive: bool,
}

impl FakeTelegram {
    /// Start on 127.0.0.1 with an ephemeral port. `token` must look like a bot token
    /// (`<digits>:<chars>`), as requests with a malformed token get 404.
    pub fn start(token: &str) -> FakeTelegram {
        let (listener, addr) = local_listener();
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            state: Watched::new(State {
                revoked: false,
                webhook: None,
                updates: VecDeque::new(),
                next_update_id: FIRST_UPDATE_ID,
                confirmed_offset: 0,
                allowed_updates: Vec::new(),
                poll_generation: 0,
                polls_waiting: 0,
                chats: HashMap::new(),
                sent: Vec::new(),
                uploads: Vec::new(),
                chat_actions: Vec::new(),
                bot_messages: std::collections::BTreeMap::new(),
                sent_ids: std::collections::HashSet::new(),
                reactions: HashMap::new(),
                edits: Vec::new(),
                modes: HashMap::new(),
                changed: HashMap::new(),
                queries: std::collections::HashSet::new(),
                answered: Vec::new(),
                chat_limit: None,
                chat_calls: HashMap::new(),
                flood_429s: 0,
                requests: Vec::new(),
                faults: HashMap::new(),
                persistent: HashMap::new(),
                minimal: false,
                omitted: Omitted::default(),
                files: HashMap::new(),
                downloads: HashMap::new(),
                download_faults: VecDeque::new(),
            }),
            handovers: Mutex::new(None),
        });
        let mut server = Server::new();
        let worker = shared.clone();
        server.serve(listener, "fake-telegram", move |stream| {
            serve_connection(&worker, stream)
        });
        FakeTelegram { shared, addr, server }
    }

    /// Serve `bytes` as the file `file_id` (path `documents/<name>`), for `getFile` and its
    /// download URL. Bytes over [`DOWNLOAD_LIMIT`] are refused by `getFile` as Telegram does.
    pub fn add_file(&self, file_id: &str, name: &str, bytes: Vec<u8>) {
        let file = FakeFile {
            path: format!("documents/{name}"),
            bytes: Arc::new(bytes),
        };
        self.shared.lock().files.insert(file_id.to_owned(), file);
    }

    /// Download requests made for `file_id` so far (successful or not).
    pub fn downloads(&self, file_id: &str) -> usize {
        self.shared.lock().downloads.get(file_id).copied().unwrap_or(0)
    }

    /// Fail the next file download with `fault`.
    pub fn fail_next_download(&self, fault: DownloadFault) {
        self.shared.lock().download_faults.push_back(fault);
    }

    /// `http://127.0.0.1:PORT`, to use as `apiBaseUrl`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// Queue a text message from user `from_id` in `chat_id` (private if positive, a group if
    /// negative, a supergroup from -100…). Returns its update_id.
    pub fn push_message(&self, chat_id: i64, from_id: i64, text: &str) -> i64 {
        self.push_message_as(chat_id, default_chat_type(chat_id), from_id, text, false)
    }

    /// Queue a message in a chat of `chat_type` (`private|group|supergroup|channel`; a channel
    /// gives `channel_post` with `sender_chat` and no `from`). `edited` gives the `edited_*`
    /// kind, editing the chat's latest message. Returns its update_id.
    pub fn push_message_as(
        &self,
        chat_id: i64,
        chat_type: &str,
        from_id: i64,
        text: &str,
        edited: bool,
    ) -> i64 {
        let mut st = self.shared.lock();
        let chat = st.chat_entry(chat_id, chat_type);
        if !edited || chat.last_message_id == 0 {
            chat.last_message_id += 1;
        }
        let message_id = chat.last_message_id;
        let chat_json = chat_json(chat_id, chat);
        let now = unix_now();
        let mut message = json!({"message_id": message_id, "date": now, "chat": chat_json, "text": text});
        let entities = entities_of(text);
        if !entities.is_empty() {
            message["entities"] = json!(entities);
        }
        let channel = chat_type == "channel";
        if channel {
            message["sender_chat"] = chat_json;
        } else {
            message["from"] = json!({"id": from_id, "is_bot": false, "first_name": format!("User{from_id}"),
                                     "username": format!("user{from_id}")});
        }
        if edited {
            message["edit_date"] = json!(now);
        }
        let kind = match (channel, edited) {
            (false, false) => "message",
            (false, true) => "edited_message",
            (true, false) => "channel_post",
            (true, true) => "edited_channel_post",
        };
        self.shared.push_update(st, kind, message)
    }

    /// Queue an arbitrary update `{"update_id":.., kind: payload}` (e.g. `callback_query`).
    /// Returns its update_id. Like Telegram, a kind excluded by `allowed_updates` is not kept.
    pub fn push_update(&self, kind: &str, payload: Value) -> i64 {
        let st = self.shared.lock();
        self.shared.push_update(st, kind, payload)
    }

    /// Make a chat exist (sendMessage to an unknown chat is "chat not found").
    pub fn add_chat(&self, chat_id: i64, chat_type: &str, username: Option<&str>) {
        let mut st = self.shared.lock();
        st.chat_entry(chat_id, chat_type).username = username.map(str::to_owned);
    }

    /// What a person in `chat` reads of the bot's messages now, in order: edits applied,
    /// deleted ones gone.
    pub fn visible(&self, chat: i64) -> Vec<(i64, String)> {
        let st = self.shared.lock();
        st.bot_messages
            .iter()
            .filter(|((c, _), _)| *c == chat)
            .map(|((_, id), text)| (*id, text.clone()))
            .collect()
    }

    /// Queue a press by user `from_id` on a button with `data` under message `message_id`
    /// of `chat` (a `callback_query` as Telegram sends it). Returns (update_id, query id).
    pub fn push_press(&self, chat: i64, message_id: i64, from_id: i64, data: &str) -> (i64, String) {
        let query_id = {
            let st = self.shared.lock();
            format!("{}", 4_000_000_000_000_000_000u64 + st.queries.len() as u64)
        };
        let chat_type = default_chat_type(chat);
        let update = self.push_update(
            "callback_query",
            json!({"id": query_id, "chat_instance": "-7",
                   "from": {"id": from_id, "is_bot": false, "first_name": format!("User{from_id}"), "username": format!("user{from_id}")},
                   "message": {"message_id": message_id, "date": unix_now(), "chat": {"id": chat, "type": chat_type},
                               "from": {"id": 1, "is_bot": true, "first_name": "Fake Bot"}, "text": "…"},
                   "data": data}),
        );
        (update, query_id)
    }

    /// The callback answers given: (query id, notice text).
    pub fn answered_callbacks(&self) -> Vec<(String, Option<String>)> {
        self.shared.lock().answered.clone()
    }

    /// Queue an update again exactly as it was (Telegram resending one whose offset was
    /// never confirmed, as after a crash).
    pub fn requeue(&self, update: Value) {
        let mut st = self.shared.lock();
        st.updates.push_back(update);
        self.shared.notify();
    }

    /// When what a person in `chat` reads of the bot's messages last changed.
    pub fn last_change(&self, chat: i64) -> Option<Instant> {
        self.shared.lock().changed.get(&chat).copied()
    }

    /// The parse_mode the message was last sent or edited with ("" for plain text).
    pub fn parse_mode(&self, chat: i64, message_id: i64) -> String {
        let st = self.shared.lock();
        st.modes.get(&(chat, message_id)).cloned().unwrap_or_default()
    }

    /// Enforce flood control as Telegram does: a send or edit into a chat that already had
    /// `max` of them in the last `window` gets 429 with the `retry_after` until one ages out.
    pub fn limit_per_chat(&self, max: usize, window: Duration) {
        self.shared.lock().chat_limit = Some((max, window));
    }

    /// How many 429s the flood control gave.
    pub fn flood_429s(&self) -> usize {
        self.shared.lock().flood_429s
    }

    /// The bot's reactions on a message.
    pub fn reactions(&self, chat: i64, message_id: i64) -> Vec<String> {
        self.shared
            .lock()
            .reactions
            .get(&(chat, message_id))
            .cloned()
            .unwrap_or_default()
    }

    /// Every edit accepted: (chat, message id, when).
    pub fn edits(&self) -> Vec<(i64, i64, Instant)> {
        self.shared.lock().edits.clone()
    }

    /// Every sendChatAction accepted: (chat, action, when), in order.
    pub fn chat_actions(&self) -> Vec<(i64, String, Instant)> {
        self.shared.lock().chat_actions.clone()
    }

    /// Every media message accepted (sendPhoto, sendMediaGroup, ...), in order.
    pub fn uploads(&self) -> Vec<Upload> {
        self.shared.lock().uploads.clone()
    }

    /// The params of every sendMessage that was accepted (delivered), in order.
    pub fn sent(&self) -> Vec<Value> {
        self.shared.lock().sent.clone()
    }

    /// Every request with a well-formed path, as (method, params); known methods are spelled
    /// canonically (`getUpdates`) whatever case the client used.
    pub fn requests(&self) -> Vec<(String, Value)> {
        self.shared.lock().requests.clone()
    }

    /// How many requests of `method` (canonical spelling) arrived.
    pub fn request_count(&self, method: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|(m, _)| m == method)
            .count()
    }

    /// The highest offset a getUpdates confirmed (0 before any).
    pub fn confirmed_offset(&self) -> i64 {
        self.shared.lock().confirmed_offset
    }

    /// Updates not yet confirmed.
    pub fn pending_updates(&self) -> Vec<Value> {
        self.shared.lock().updates.iter().cloned().collect()
    }

    /// Make the next request of `method` (case-insensitive) fail with `fault`. Several faults
    /// for one method apply to successive requests.
    pub fn fail_next(&self, method: &str, fault: Fault) {
        let mut st = self.shared.lock();
        st.faults
            .entry(method.to_ascii_lowercase())
            .or_default()
            .push_back(fault);
    }

    /// Make EVERY request of `method` (case-insensitive) fail with `fault` (after any faults
    /// scripted with [`FakeTelegram::fail_next`]), until [`FakeTelegram::clear_always`].
    pub fn fail_always(&self, method: &str, fault: Fault) {
        let mut st = self.shared.lock();
        st.persistent.insert(method.to_ascii_lowercase(), fault);
    }

    /// Strip every successful answer to what a minimal third-party Bot API emulator sends,
    /// fewer fields than Telegram documents as always present: `getMe` only `id` (no
    /// `is_bot`, `first_name`, `username`), `deleteWebhook` no `result`, `sendMessage` only
    /// `message_id`, and each message update only `update_id`, `message_id`, the chat's `id`
    /// and the text (no `date`, no chat `type`, no `from`).
    pub fn minimal_answers(&self, on: bool) {
        self.shared.lock().minimal = on;
    }

    /// Leave `field` out of the result of every successful answer to `method` (canonical
    /// spelling), e.g. `("getMe", "id")`: an answer that lacks something the client needs.
    pub fn omit_field(&self, method: &str, field: &str) {
        self.shared.lock().omitted.add(method, field);
    }

    /// Stop the persistent fault of `method`.
    pub fn clear_always(&self, method: &str) {
        let mut st = self.shared.lock();
        st.persistent.remove(&method.to_ascii_lowercase());
    }

    /// Set or clear a webhook, as if another deployment had called setWebhook. Pending polls
    /// answer the webhook 409.
    pub fn set_webhook(&self, on: bool) {
        let mut st = self.shared.lock();
        st.webhook = on.then(|| "https://example.invalid/hook".to_owned());
        self.shared.notify();
    }

    /// Revoke the token: every request, and every pending poll, gets 401 from now on.
    pub fn revoke_token(&self) {
        self.shared.lock().revoked = true;
        self.shared.notify();
    }

    /// How many TCP connections were accepted (keep-alive means few).
    pub fn connections(&self) -> usize {
        self.server.accepted()
    }

    /// Start recording when each update is handed over: the instant the getUpdates response
    /// carrying it has been written to the socket. For latency measurements that must not
    /// include the long-poll wait.
    pub fn record_handovers(&self) {
        *self
            .shared
            .handovers
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(HashMap::new());
    }

    /// The recorded handover instants by update_id (empty unless recording).
    pub fn handovers(&self) -> HashMap<i64, Instant> {
        self.shared
            .handovers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_default()
    }

    /// Wait until at least `n` getUpdates are blocked in their long poll.
    pub fn wait_polling(&self, n: usize, timeout: Duration) -> bool {
        self.shared.wait_until(timeout, |st| st.polls_waiting >= n)
    }

    /// Wait until at least `n` requests of `method` (canonical spelling) have arrived.
    pub fn wait_requests(&self, method: &str, n: usize, timeout: Duration) -> bool {
        self.shared.wait_until(timeout, |st| {
            st.requests.iter().filter(|(m, _)| m == method).count() >= n
        })
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.shared.stop();
        self.server.shutdown();
    }
}

deref_to_watched!(Shared, State);

impl Shared {
    /// If recording, note now as the handover instant of every update in a written
    /// getUpdates response.
    fn note_handover(&self, body: &Value) {
        let mut handovers = self.handovers.lock().unwrap_or_else(PoisonError::into_inner);
        let (Some(handovers), Some(Value::Array(updates))) = (handovers.as_mut(), body.get("result")) else {
            return;
        };
        let now = Instant::now();
        for id in updates.iter().filter_map(|u| u.get("update_id")?.as_i64()) {
            handovers.entry(id).or_insert(now);
        }
    }

    /// Sleep for `d`, cut short by a stop.
    fn pause(&self, d: Duration) {
        let _ = self.wait_until(d, |_| false);
    }

    fn push_update(&self, mut st: MutexGuard<'_, State>, kind: &str, payload: Value) -> i64 {
        let update_id = st.next_update_id;
        st.next_update_id += 1;
        if kind == "callback_query" {
            // A query handed out may be answered (once).
            if let Some(id) = payload["id"].as_str() {
                st.queries.insert(id.to_owned());
            }
        }
        if st.admits(kind) {
            let mut update = Map::new();
            update.insert("update_id".into(), json!(update_id));
            update.insert(kind.into(), payload);
            st.updates.push_back(Value::Object(update));
        }
        self.notify();
        update_id
    }
}

impl State {
    /// Whether the bot's message `id` in `chat` was there once and is deleted now: ids of
    /// the bot's messages are recorded, so a gap among them below the last id is a deletion
    /// only if it was the bot's; the fake keeps no list of users' deletions.
    fn deleted(&self, chat: i64, id: i64) -> bool {
        self.sent_ids.contains(&(chat, id)) && !self.bot_messages.contains_key(&(chat, id))
    }

    fn chat_entry(&mut self, chat_id: i64, chat_type: &str) -> &mut Chat {
        let chat = self.chats.entry(chat_id).or_insert_with(|| Chat {
            kind: chat_type.to_owned(),
            username: None,
            last_message_id: 0,
            migrated_to: None,
        });
        chat.kind = chat_type.to_owned();
        chat
    }

    fn admits(&self, kind: &str) -> bool {
        if self.allowed_updates.is_empty() {
            !OPT_IN_KINDS.contains(&kind)
        } else {
            self.allowed_updates.iter().any(|k| k == kind)
        }
    }

    /// Apply a getUpdates `offset`: forget every update before it (a negative offset keeps
    /// only the last -offset updates).
    fn confirm(&mut self, offset: i64) {
        if offset < 0 {
            let keep = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
            while self.updates.len() > keep {
                self.updates.pop_front();
            }
            let first = self.updates.front().and_then(|u| u["update_id"].as_i64());
            self.confirmed_offset = self.confirmed_offset.max(first.unwrap_or(self.next_update_id));
        } else if offset > 0 {
            self.updates
                .retain(|u| u["update_id"].as_i64().is_some_and(|id| id >= offset));
            self.confirmed_offset = self.confirmed_offset.max(offset);
        }
    }
}

fn default_chat_type(chat_id: i64) -> &'static str {
    if chat_id > 0 {
        "private"
    } else if chat_id <= -1_000_000_000_000 {
        "supergroup"
    } else {
        "group"
    }
}

fn chat_json(chat_id: i64, chat: &Chat) -> Value {
    let mut value = json!({"id": chat_id, "type": chat.kind});
    if chat.kind == "private" {
        value["first_name"] = json!(format!("User{chat_id}"));
    } else {
        value["title"] = json!(format!("Chat {chat_id}"));
    }
    if let Some(name) = &chat.username {
        value["username"] = json!(name);
    }
    value
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Serve requests on one connection until the client closes it, asks to, or we stop.
fn serve_connection(shared: &Shared, stream: TcpStream) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let request = match read_request(&mut reader) {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(e) => {
                let status = if e.kind() == io::ErrorKind::FileTooLarge {
                    413
                } else {
                    400
                };
                let body =
                    json!({"ok": false, "error_code": status, "description": format!("Bad Request: {e}")});
                let _ = write_response(
                    &mut writer,
                    status,
                    "application/json",
                    body.to_string().as_bytes(),
                    true,
                );
                return;
            }
        };
        if shared.stopping() {
            return;
        }
        let reply = handle(shared, &request);
        let close = !request.keep_alive;
        let written = match reply {
            Reply::Hangup => {
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            Reply::Json(status, body) => {
                let written = write_response(
                    &mut writer,
                    status,
                    "application/json",
                    body.to_string().as_bytes(),
                    close,
                );
                if written.is_ok() {
                    shared.note_handover(&body);
                }
                written
            }
            Reply::Raw(status, content_type, body) => {
                write_response(&mut writer, status, content_type, &body, close)
            }
            Reply::File(bytes, None) => {
                write_response(&mut writer, 200, "application/octet-stream", &bytes, close)
            }
            Reply::File(bytes, Some(sent)) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nServer: fake-telegram\r\nContent-Type: application/octet-stream\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    bytes.len()
                );
                let _ = writer.write_all(head.as_bytes());
                let _ = writer.write_all(&bytes[..sent]);
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
        };
        if written.is_err() || close {
            return;
        }
    }
}

/// Read one request; `None` on a clean EOF between requests.
pub(super) fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    // RFC 9112 2.2: ignore empty lines before a request line.
    let line = loop {
        match read_line(reader)? {
            None => return Ok(None),
            Some(line) if line.is_empty() => continue,
            Some(line) => break line,
        }
    };
    let mut words = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(invalid(format!("bad request line {line:?}")));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!("unsupported version {version:?}")));
    }
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or_else(|| invalid("eof in headers"))?;
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(invalid("too many headers"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let connection = header("connection").unwrap_or("").to_ascii_lowercase();
    let keep_alive = if version == "HTTP/1.0" {
        connection.contains("keep-alive")
    } else {
        !connection.contains("close")
    };
    let body = if header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked")) {
        read_chunked(reader)?
    } else {
        let length = match header("content-length") {
            Some(v) => v.parse::<usize>().map_err(|_| invalid("bad content-length"))?,
            None => 0,
        };
        if length > MAX_BODY {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "request body too large",
            ));
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        body
    };
    Ok(Some(Request {
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
        body,
        keep_alive,
    }))
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or_else(|| invalid("eof in chunked body"))?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            while read_line(reader)?.is_some_and(|l| !l.is_empty()) {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "request body too large",
            ));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf)?;
    }
}

/// One CRLF- (or LF-) terminated line without its terminator; `None` at EOF.
fn read_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.pop() != Some(b'\n') {
        return Err(invalid("line too long or cut off"));
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| invalid("header not UTF-8"))
}

fn invalid(text: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, text.into())
}

fn write_response(
    w: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    close: bool,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    };
    let connection = if close { "close" } else { "keep-alive" };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nServer: fake-telegram\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: {connection}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    w.write_all(&out)?;
    w.flush()
}

fn ok(result: Value) -> Reply {
    Reply::Json(200, json!({"ok": true, "result": result}))
}

fn error(status: u16, description: &str) -> Reply {
    Reply::Json(
        status,
        json!({"ok": false, "error_code": status, "description": description}),
    )
}

fn error_with(status: u16, description: &str, parameters: Value) -> Reply {
    Reply::Json(
        status,
        json!({"ok": false, "error_code": status, "description": description, "parameters": parameters}),
    )
}

/// The canonical spelling of the methods the fake knows.
fn canonical_method(method: &str) -> Option<&'static str> {
    [
        "getMe",
        "getUpdates",
        "sendMessage",
        "deleteWebhook",
        "setWebhook",
        "getWebhookInfo",
        "getFile",
        "sendMediaGroup",
        "sendChatAction",
        "editMessageText",
        "deleteMessage",
        "setMessageReaction",
        "answerCallbackQuery",
    ]
    .into_iter()
    .chain(MEDIA_METHODS.iter().map(|(m, _)| *m))
    .find(|m| m.eq_ignore_ascii_case(method))
}

/// Telegram answers 404 for a token that is not `<digits>:<token chars>`.
fn token_well_formed(token: &str) -> bool {
    token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !secret.is_empty()
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

fn handle(shared: &Shared, request: &Request) -> Reply {
    let (path, query) = match request.target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (request.target.as_str(), None),
    };
    if let Some(rest) = path.strip_prefix("/file/bot") {
        return download(shared, rest);
    }
    let Some((token, method)) = path.strip_prefix("/bot").and_then(|rest| rest.split_once('/')) else {
        return error(404, "Not Found");
    };
    if method.is_empty() || method.contains('/') || !token_well_formed(token) {
        return error(404, "Not Found");
    }
    let (params, files) = match parse_params(query, request) {
        Ok(parsed) => parsed,
        Err(description) => return error(400, &description),
    };
    let canonical = canonical_method(method);
    let fault = {
        let mut st = shared.lock();
        st.requests.push((
            canonical.unwrap_or(method).to_owned(),
            Value::Object(params.clone()),
        ));
        shared.notify();
        if token != shared.token || st.revoked {
            return error(401, "Unauthorized");
        }
        if canonical.is_none() {
            return error(404, "Not Found");
        }
        let key = method.to_ascii_lowercase();
        st.faults
            .get_mut(&key)
            .and_then(VecDeque::pop_front)
            .or_else(|| st.persistent.get(&key).cloned())
    };
    let method = canonical.unwrap_or_default();
    let mut ignore_timeout = false;
    match fault {
        None => {}
        Some(Fault::Status(status, description)) => return error(status, &description),
        Some(Fault::RetryAfter(secs)) => {
            return error_with(
                429,
                &format!("Too Many Requests: retry after {secs}"),
                json!({"retry_after": secs}),
            );
        }
        Some(Fault::Migrate(new_id)) => {
            let mut st = shared.lock();
            let old = int_param(&params, "chat_id").ok().flatten();
            if let Some(chat) = old.and_then(|old| st.chats.get_mut(&old)) {
                chat.migrated_to = Some(new_id);
                st.chat_entry(new_id, "supergroup");
            }
            return error_with(400, MIGRATED, json!({"migrate_to_chat_id": new_id}));
        }
        Some(Fault::Malformed) => {
            return Reply::Raw(
                200,
                "text/html",
                b"<html><body>Service temporarily unavailable</body></html>".to_vec(),
            );
        }
        Some(Fault::Drop) => return Reply::Hangup,
        Some(Fault::Delay(d)) => shared.pause(d),
        Some(Fault::IgnoreTimeout) => ignore_timeout = true,
    }
    if let Some(reply) = flood_control(&mut shared.lock(), method, &params) {
        return reply;
    }
    let result = match method {
        "getMe" => Ok(bot_user(&shared.token)),
        "getUpdates" => {
            let reply = get_updates(shared, &params, ignore_timeout);
            return shape(&shared.lock(), method, reply);
        }
        "sendMessage" => send_message(&mut shared.lock(), &params, bot_user(&shared.token)),
        "sendChatAction" => send_chat_action(&mut shared.lock(), &params),
        "editMessageText" => edit_message_text(&mut shared.lock(), &params, bot_user(&shared.token)),
        "deleteMessage" => delete_message(&mut shared.lock(), &params),
        "setMessageReaction" => set_message_reaction(&mut shared.lock(), &params),
        "answerCallbackQuery" => answer_callback_query(&mut shared.lock(), &params),
        "sendMediaGroup" => send_media_group(&mut shared.lock(), &params, &files, bot_user(&shared.token)),
        m if MEDIA_METHODS.iter().any(|(name, _)| *name == m) => {
            send_media(&mut shared.lock(), m, &params, &files, bot_user(&shared.token))
        }
        "deleteWebhook" => {
            let mut st = shared.lock();
            st.webhook = None;
            if bool_param(&params, "drop_pending_updates") {
                st.updates.clear();
            }
            shared.notify();
            Ok(json!(true))
        }
        "setWebhook" => {
            let mut st = shared.lock();
            let url = str_param(&params, "url").unwrap_or_default();
            st.webhook = (!url.is_empty()).then_some(url);
            if bool_param(&params, "drop_pending_updates") {
                st.updates.clear();
            }
            shared.notify();
            Ok(json!(true))
        }
        "getFile" => get_file(&shared.lock(), &params),
        "getWebhookInfo" => {
            let st = shared.lock();
            Ok(
                json!({"url": st.webhook.clone().unwrap_or_default(), "has_custom_certificate": false,
                      "pending_update_count": st.updates.len()}),
            )
        }
        _ => Err(error(404, "Not Found")),
    };
    match result {
        Ok(value) => shape(&shared.lock(), method, ok(value)),
        Err(reply) => reply,
    }
}

/// `getFile`: the path to download, or Telegram's refusals.
fn get_file(st: &State, params: &Map<String, Value>) -> Result<Value, Reply> {
    let id = str_param(params, "file_id").unwrap_or_default();
    let Some(file) = st.files.get(&id) else {
        return Err(error(
            400,
            "Bad Request: wrong file_id or the file is temporarily unavailable",
        ));
    };
    if file.bytes.len() > DOWNLOAD_LIMIT {
        return Err(error(400, "Bad Request: file is too big"));
    }
    Ok(json!({"file_id": id, "file_unique_id": format!("u-{id}"),
              "file_size": file.bytes.len(), "file_path": file.path}))
}

/// `GET /file/bot<token>/<path>`: the bytes, as Telegram's file server sends them.
fn download(shared: &Shared, rest: &str) -> Reply {
    let Some((token, path)) = rest.split_once('/') else {
        return Reply::Raw(404, "text/plain", b"Not Found".to_vec());
    };
    let (bytes, fault) = {
        let mut st = shared.lock();
        if token != shared.token || st.revoked {
            return Reply::Raw(401, "text/plain", b"Unauthorized".to_vec());
        }
        let Some((id, file)) = st.files.iter().find(|(_, f)| f.path == path) else {
            return Reply::Raw(404, "text/plain", b"Not Found".to_vec());
        };
        let (id, bytes) = (id.clone(), file.bytes.clone());
        *st.downloads.entry(id).or_default() += 1;
        let fault = st.download_faults.pop_front();
        shared.notify();
        (bytes, fault)
    };
    match fault {
        None => Reply::File(bytes, None),
        Some(DownloadFault::Status(status)) => Reply::Raw(status, "text/plain", b"fault".to_vec()),
        Some(DownloadFault::BreakOff) => {
            let half = bytes.len() / 2;
            Reply::File(bytes, Some(half))
        }
        Some(DownloadFault::Delay(d)) => {
            shared.pause(d);
            Reply::File(bytes, None)
        }
    }
}

/// A successful answer as the configured server would give it: minimal, and without the
/// omitted fields.
fn shape(st: &State, method: &str, reply: Reply) -> Reply {
    let Reply::Json(200, mut body) = reply else {
        return reply;
    };
    if st.minimal {
        match method {
            "getMe" => body["result"] = answers::keep(&body["result"], &["id"]),
            "sendMessage" => body["result"] = answers::keep(&body["result"], &["message_id"]),
            "deleteWebhook" => {
                if let Some(b) = body.as_object_mut() {
                    b.remove("result");
                }
            }
            "getUpdates" => {
                if let Some(updates) = body["result"].as_array_mut() {
                    updates.iter_mut().for_each(minimal_update);
                }
            }
            _ => {}
        }
    }
    st.omitted.apply(method, &mut body["result"]);
    Reply::Json(200, body)
}

/// An update stripped to `update_id` and, for a message, its id, chat id and text.
fn minimal_update(update: &mut Value) {
    let Some(kind) = update_kind(update)
        .filter(|k| ["message", "edited_message", "channel_post", "edited_channel_post"].contains(k))
        .map(str::to_owned)
    else {
        return;
    };
    let at = |key: &str| format!("{kind}.{key}");
    let paths = ["message_id", "text", "caption", "chat.id"].map(at);
    let mut paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    paths.push("update_id");
    *update = answers::keep(update, &paths);
}

/// The entities Telegram's server finds in a text: `@username` mentions and a leading
/// `/command` (with its `@bot`, if any), offsets and lengths in UTF-16 units.
fn entities_of(text: &str) -> Vec<Value> {
    let mut entities = Vec::new();
    let mut units = 0;
    for (i, c) in text.char_indices() {
        let starts_word = i == 0 || text[..i].ends_with(char::is_whitespace);
        if (c == '@' || (c == '/' && i == 0)) && starts_word {
            let word: String = text[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '@')
                .collect();
            let valid = if c == '/' {
                !word.is_empty()
            } else {
                word.len() >= 5 && !word.contains('@')
            };
            if valid {
                let kind = if c == '/' { "bot_command" } else { "mention" };
                let length = 1 + word.encode_utf16().count();
                entities.push(json!({"type": kind, "offset": units, "length": length}));
            }
        }
        units += c.len_utf16();
    }
    entities
}

fn bot_user(token: &str) -> Value {
    let id: i64 = token
        .split(':')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or(1);
    json!({"id": id, "is_bot": true, "first_name": "Fake Bot", "username": "fake_bot",
           "can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false})
}

/// A real long poll: answer as soon as an update is there, or `[]` when `timeout` runs out; a
/// newer getUpdates makes this one answer 409.
fn get_updates(shared: &Shared, params: &Map<String, Value>, ignore_timeout: bool) -> Reply {
    let bad = |what: &str| error(400, &format!("Bad Request: wrong parameter {what}"));
    let Ok(offset) = int_param(params, "offset") else {
        return bad("offset");
    };
    let Ok(limit) = int_param(params, "limit") else {
        return bad("limit");
    };
    let Ok(timeout) = int_param(params, "timeout") else {
        return bad("timeout");
    };
    let allowed = match json_param(params, "allowed_updates") {
        None => None,
        Some(Value::Array(list)) => Some(
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        ),
        Some(_) => return error(400, "Bad Request: can't parse allowed updates"),
    };
    let limit = usize::try_from(limit.unwrap_or(100).clamp(1, 100)).unwrap_or(100);
    let wait = if ignore_timeout {
        Duration::ZERO
    } else {
        Duration::from_secs(u64::try_from(timeout.unwrap_or(0)).unwrap_or(0))
    };

    let mut st = shared.lock();
    if st.webhook.is_some() {
        return error(409, CONFLICT_WEBHOOK);
    }
    if let Some(allowed) = allowed {
        st.allowed_updates = allowed;
        // Telegram does not keep updates of kinds nobody asked for.
        let kept: VecDeque<Value> = std::mem::take(&mut st.updates)
            .into_iter()
            .filter(|u| update_kind(u).is_none_or(|kind| st.admits(kind)))
            .collect();
        st.updates = kept;
    }
    if let Some(offset) = offset {
        st.confirm(offset);
    }
    st.poll_generation += 1;
    let me = st.poll_generation;
    shared.notify();

    let deadline = Instant::now() + wait;
    st.polls_waiting += 1;
    let reply = loop {
        if st.poll_generation != me {
            break error(409, CONFLICT_POLLER);
        }
        if st.revoked {
            break error(401, "Unauthorized");
        }
        if st.webhook.is_some() {
            break error(409, CONFLICT_WEBHOOK);
        }
        let now = Instant::now();
        if !st.updates.is_empty() || now >= deadline || shared.stopping() {
            break ok(Value::Array(st.updates.iter().take(limit).cloned().collect()));
        }
        st = shared.wait_timeout(st, deadline - now);
    };
    st.polls_waiting -= 1;
    shared.notify();
    reply
}

fn update_kind(update: &Value) -> Option<&str> {
    update
        .as_object()?
        .keys()
        .map(String::as_str)
        .find(|k| *k != "update_id")
}

/// Where a message goes: the chat, its thread, and the message it replies to.
struct Target {
    chat_id: i64,
    thread_id: Option<i64>,
    reply_to: Option<i64>,
}

/// `chat_id`, `message_thread_id` and `reply_parameters` checked as Telegram does.
fn target(st: &State, params: &Map<String, Value>) -> Result<Target, Reply> {
    let chat_ref = str_param(params, "chat_id").filter(|c| !c.is_empty());
    let Some(chat_ref) = chat_ref else {
        return Err(error(400, "Bad Request: chat_id is empty"));
    };
    let chat_id = if let Some(name) = chat_ref.strip_prefix('@') {
        st.chats
            .iter()
            .find(|(_, chat)| chat.username.as_deref() == Some(name))
            .map(|(id, _)| *id)
    } else {
        chat_ref
            .parse::<i64>()
            .ok()
            .filter(|id| st.chats.contains_key(id))
    };
    let Some(chat_id) = chat_id else {
        return Err(error(400, "Bad Request: chat not found"));
    };
    if let Some(new_id) = st.chats[&chat_id].migrated_to {
        return Err(error_with(400, MIGRATED, json!({"migrate_to_chat_id": new_id})));
    }
    if let Some(mode) = str_param(params, "parse_mode").filter(|m| !m.is_empty()) {
        if !["MarkdownV2", "HTML", "Markdown"].contains(&mode.as_str()) {
            return Err(error(400, "Bad Request: unsupported parse_mode"));
        }
    }
    let Ok(thread_id) = int_param(params, "message_thread_id") else {
        return Err(error(400, "Bad Request: wrong parameter message_thread_id"));
    };
    // reply_parameters {message_id, allow_sending_without_reply}, or the older top-level form.
    let (reply_id, allow_without) = match json_param(params, "reply_parameters") {
        Some(reply) => (
            reply.get("message_id").and_then(Value::as_i64),
            reply.get("allow_sending_without_reply").and_then(Value::as_bool) == Some(true),
        ),
        None => (
            int_param(params, "reply_to_message_id").ok().flatten(),
            bool_param(params, "allow_sending_without_reply"),
        ),
    };
    let chat = &st.chats[&chat_id];
    let reply_to = reply_id.filter(|&id| id >= 1 && id <= chat.last_message_id);
    if reply_id.is_some() && reply_to.is_none() && !allow_without {
        return Err(error(400, "Bad Request: message to be replied not found"));
    }
    Ok(Target {
        chat_id,
        thread_id,
        reply_to,
    })
}

/// A new message in the target chat with `body` merged in (text, caption, photo, ...).
fn new_message(st: &mut State, to: &Target, bot: &Value, body: Value) -> Value {
    let chat = st.chats.get_mut(&to.chat_id).expect("chat resolved");
    chat.last_message_id += 1;
    let chat_json = chat_json(to.chat_id, chat);
    let now = unix_now();
    let mut message = json!({"message_id": chat.last_message_id, "from": bot,
                             "chat": chat_json, "date": now});
    if let Some(thread_id) = to.thread_id {
        message["message_thread_id"] = json!(thread_id);
    }
    if let Some(id) = to.reply_to {
        message["reply_to_message"] = json!({"message_id": id, "chat": chat_json, "date": now});
    }
    if let (Value::Object(m), Value::Object(b)) = (&mut message, body) {
        m.extend(b);
    }
    let shown = message["text"]
        .as_str()
        .or(message["caption"].as_str())
        .unwrap_or("")
        .to_owned();
    let id = message["message_id"].as_i64().unwrap_or(0);
    st.bot_messages.insert((to.chat_id, id), shown);
    st.changed.insert(to.chat_id, Instant::now());
    st.sent_ids.insert((to.chat_id, id));
    message
}

/// The chat and the `message_id` an action names.
fn message_ref(st: &State, params: &Map<String, Value>) -> Result<(i64, i64, i64), Reply> {
    let to = target(st, params)?;
    let Ok(Some(id)) = int_param(params, "message_id") else {
        return Err(error(400, "Bad Request: message identifier is not specified"));
    };
    let last = st.chats[&to.chat_id].last_message_id;
    Ok((to.chat_id, id, last))
}

/// The 429 for a send or edit over the chat's flood limit, if one is set and hit; else the
/// call is counted.
fn flood_control(st: &mut State, method: &str, params: &Map<String, Value>) -> Option<Reply> {
    let counted = method == "sendMessage"
        || method == "editMessageText"
        || method == "sendMediaGroup"
        || MEDIA_METHODS.iter().any(|(name, _)| *name == method);
    let (max, window) = st.chat_limit?;
    let chat = int_param(params, "chat_id").ok().flatten().filter(|_| counted)?;
    let now = Instant::now();
    let calls = st.chat_calls.entry(chat).or_default();
    while calls.front().is_some_and(|t| now.duration_since(*t) >= window) {
        calls.pop_front();
    }
    if calls.len() < max {
        calls.push_back(now);
        return None;
    }
    let wait = window - now.duration_since(calls[0]);
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    st.flood_429s += 1;
    Some(error_with(
        429,
        &format!("Too Many Requests: retry after {secs}"),
        json!({"retry_after": secs}),
    ))
}

/// Whether `text` parses in `mode` the way Telegram needs (HTML only: tags closed and
/// nested, `<` and `&` escaped); "can't parse entities" otherwise.
fn check_entities(text: &str, mode: Option<&str>) -> Result<(), Reply> {
    if mode != Some("HTML") {
        return Ok(());
    }
    let mut stack: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('<') {
        let Some(end) = rest[i..].find('>') else {
            return Err(error(
                400,
                "Bad Request: can't parse entities: unclosed start tag",
            ));
        };
        let tag = &rest[i + 1..i + end];
        if let Some(name) = tag.strip_prefix('/') {
            if stack.pop().as_deref() != Some(name) {
                return Err(error(400, "Bad Request: can't parse entities: unmatched end tag"));
            }
        } else {
            stack.push(tag.split_whitespace().next().unwrap_or("").to_owned());
        }
        rest = &rest[i + end + 1..];
    }
    if stack.is_empty() {
        Ok(())
    } else {
        Err(error(
            400,
            "Bad Request: can't parse entities: can't find end tag",
        ))
    }
}

/// An inline keyboard as Telegram checks it: rows of buttons with a non-empty `text` and
/// `callback_data` of 1 to 64 bytes.
fn check_inline_keyboard(markup: &Value) -> Result<(), Reply> {
    let Some(rows) = markup.get("inline_keyboard").and_then(Value::as_array) else {
        return Err(error(
            400,
            "Bad Request: can't parse reply keyboard markup JSON object",
        ));
    };
    for button in rows
        .iter()
        .flat_map(|r| r.as_array().cloned().unwrap_or_default())
    {
        if button["text"].as_str().is_none_or(|t| t.trim().is_empty()) {
            return Err(error(
                400,
                "Bad Request: text buttons are unallowed in the inline keyboard",
            ));
        }
        let data = button["callback_data"].as_str().unwrap_or("");
        if data.is_empty() || data.len() > 64 {
            return Err(error(400, "Bad Request: BUTTON_DATA_INVALID"));
        }
    }
    Ok(())
}

/// editMessageText, with Telegram's refusals: another's message, an unknown one, the same
/// text again ("not modified").
fn edit_message_text(st: &mut State, params: &Map<String, Value>, bot: Value) -> Result<Value, Reply> {
    let (chat, id, last) = message_ref(st, params)?;
    let text = str_param(params, "text").unwrap_or_default();
    let text = text.trim().to_owned();
    if text.is_empty() {
        return Err(error(400, "Bad Request: message text is empty"));
    }
    if text.encode_utf16().count() > MAX_TEXT_UNITS {
        return Err(error(400, "Bad Request: MESSAGE_TOO_LONG"));
    }
    let mode = str_param(params, "parse_mode").unwrap_or_default();
    check_entities(&text, Some(mode.as_str()))?;
    match st.bot_messages.get(&(chat, id)) {
        Some(old) if *old == text => Err(error(
            400,
            "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        )),
        Some(_) => {
            st.bot_messages.insert((chat, id), text.clone());
            st.modes.insert((chat, id), mode);
            st.edits.push((chat, id, Instant::now()));
            st.changed.insert(chat, Instant::now());
            let chat_json = chat_json(chat, &st.chats[&chat]);
            Ok(
                json!({"message_id": id, "from": bot, "chat": chat_json, "date": unix_now(),
                      "edit_date": unix_now(), "text": text}),
            )
        }
        None if id >= 1 && id <= last => Err(error(400, "Bad Request: message can't be edited")),
        None => Err(error(400, "Bad Request: message to edit not found")),
    }
}

/// answerCallbackQuery: a query the fake handed out, answered at most once (Telegram's
/// "query is too old" for a second answer or an unknown id).
fn answer_callback_query(st: &mut State, params: &Map<String, Value>) -> Result<Value, Reply> {
    let id = str_param(params, "callback_query_id").unwrap_or_default();
    if !st.queries.contains(&id) || st.answered.iter().any(|(q, _)| *q == id) {
        return Err(error(
            400,
            "Bad Request: query is too old and response timeout expired or query ID is invalid",
        ));
    }
    let text = str_param(params, "text");
    st.answered.push((id, text));
    Ok(json!(true))
}

/// deleteMessage: the bot's own messages (a bot in a private chat may delete only those).
fn delete_message(st: &mut State, params: &Map<String, Value>) -> Result<Value, Reply> {
    let (chat, id, last) = message_ref(st, params)?;
    if st.bot_messages.remove(&(chat, id)).is_some() {
        st.changed.insert(chat, Instant::now());
        return Ok(json!(true));
    }
    if id >= 1 && id <= last && !st.deleted(chat, id) {
        return Err(error(400, "Bad Request: message can't be deleted"));
    }
    Err(error(400, "Bad Request: message to delete not found"))
}

/// setMessageReaction: one of the emoji Telegram offers as reactions, or none to clear.
fn set_message_reaction(st: &mut State, params: &Map<String, Value>) -> Result<Value, Reply> {
    const REACTIONS: &[&str] = &[
        "👍",
        "👎",
        "❤",
        "🔥",
        "🥰",
        "👏",
        "😁",
        "🤔",
        "🤯",
        "😱",
        "🤬",
        "😢",
        "🎉",
        "🤩",
        "🤮",
        "💩",
        "🙏",
        "👌",
        "🕊",
        "🤡",
        "🥱",
        "🥴",
        "😍",
        "🐳",
        "❤‍🔥",
        "🌚",
        "🌭",
        "💯",
        "🤣",
        "⚡",
        "🍌",
        "🏆",
        "💔",
        "🤨",
        "😐",
        "🍓",
        "🍾",
        "💋",
        "🖕",
        "😈",
        "😴",
        "😭",
        "🤓",
        "👻",
        "👨‍💻",
        "👀",
        "🎃",
        "🙈",
        "😇",
        "😨",
        "🤝",
        "✍",
        "🤗",
        "🫡",
        "🎅",
        "🎄",
        "☃",
        "💅",
        "🤪",
        "🗿",
        "🆒",
        "💘",
        "🙉",
        "🦄",
        "😘",
        "💊",
        "🙊",
        "😎",
        "👾",
        "🤷‍♂",
        "🤷",
        "🤷‍♀",
        "😡",
    ];
    let (chat, id, last) = message_ref(st, params)?;
    if id < 1 || id > last || st.deleted(chat, id) {
        return Err(error(400, "Bad Request: MESSAGE_ID_INVALID"));
    }
    let list = json_param(params, "reaction").unwrap_or(json!([]));
    let mut emoji = Vec::new();
    for r in list.as_array().cloned().unwrap_or_default() {
        let e = r["emoji"].as_str().unwrap_or("").replace('\u{FE0F}', "");
        if r["type"] != "emoji" || !REACTIONS.contains(&e.as_str()) {
            return Err(error(400, "Bad Request: REACTION_INVALID"));
        }
        emoji.push(e);
    }
    st.reactions.insert((chat, id), emoji);
    Ok(json!(true))
}

/// sendMessage with Telegram's validation; `Err` is the error reply.
fn send_message(st: &mut State, params: &Map<String, Value>, bot: Value) -> Result<Value, Reply> {
    let to = target(st, params)?;
    // Telegram trims the text before checking it.
    let text = str_param(params, "text").unwrap_or_default();
    let text = text.trim();
    if text.is_empty() {
        return Err(error(400, "Bad Request: message text is empty"));
    }
    if text.encode_utf16().count() > MAX_TEXT_UNITS {
        return Err(error(400, "Bad Request: message is too long"));
    }
    let mode = str_param(params, "parse_mode").unwrap_or_default();
    check_entities(text, Some(mode.as_str()))?;
    let markup = json_param(params, "reply_markup");
    if let Some(markup) = &markup {
        check_inline_keyboard(markup)?;
    }
    let mut body = json!({"text": text});
    if let Some(markup) = markup {
        body["reply_markup"] = markup;
    }
    let message = new_message(st, &to, &bot, body);
    if let Some(id) = message["message_id"].as_i64() {
        st.modes.insert((to.chat_id, id), mode);
    }
    st.sent.push(Value::Object(params.clone()));
    Ok(message)
}

/// sendChatAction: a known chat and one of Telegram's actions.
fn send_chat_action(st: &mut State, params: &Map<String, Value>) -> Result<Value, Reply> {
    const ACTIONS: &[&str] = &[
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    ];
    let to = target(st, params)?;
    let action = str_param(params, "action").unwrap_or_default();
    if !ACTIONS.contains(&action.as_str()) {
        return Err(error(400, "Bad Request: wrong parameter action in request"));
    }
    st.chat_actions.push((to.chat_id, action, Instant::now()));
    Ok(json!(true))
}

/// The caption param, checked against Telegram's limit.
fn caption(params: &Map<String, Value>) -> Result<Option<String>, Reply> {
    let caption = str_param(params, "caption").filter(|c| !c.trim().is_empty());
    if caption
        .as_ref()
        .is_some_and(|c| c.encode_utf16().count() > MAX_CAPTION_UNITS)
    {
        return Err(error(400, "Bad Request: message caption is too long"));
    }
    Ok(caption)
}

/// The file part named `name` (a field of the form), checked: present, a file, not empty.
fn file_part<'p>(files: &'p [Part], name: &str, kind: &str) -> Result<&'p Part, Reply> {
    let part = files
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| error(400, &format!("Bad Request: there is no {kind} in the request")))?;
    if part.data.is_empty() {
        return Err(error(400, "Bad Request: file must be non-empty"));
    }
    Ok(part)
}

fn uploaded(kind: &str, part: &Part) -> UploadedFile {
    UploadedFile {
        kind: kind.to_owned(),
        filename: part.filename.clone(),
        content_type: part.content_type.clone(),
        size: part.data.len(),
        sha256: part.sha256.clone(),
    }
}

/// What a message says about its file (`photo` is a list of sizes, the rest one object).
fn file_json(st: &State, kind: &str, part: &Part) -> Value {
    let id = format!("up-{}-{}", st.uploads.len(), &part.sha256[..12]);
    let file = json!({"file_id": id, "file_unique_id": id, "file_size": part.data.len()});
    if kind == "photo" {
        json!([file])
    } else {
        let mut f = file;
        f["file_name"] = json!(part.filename);
        f["mime_type"] = json!(part.content_type);
        f
    }
}

/// sendPhoto, sendDocument, ...: one file in the field the method names.
fn send_media(
    st: &mut State,
    method: &str,
    params: &Map<String, Value>,
    files: &[Part],
    bot: Value,
) -> Result<Value, Reply> {
    let to = target(st, params)?;
    let kind = MEDIA_METHODS
        .iter()
        .find(|(m, _)| *m == method)
        .map(|(_, k)| *k)
        .expect("a media method");
    let caption = caption(params)?;
    let part = file_part(files, kind, kind)?;
    let mut body = json!({ kind: file_json(st, kind, part) });
    if let Some(c) = &caption {
        body["caption"] = json!(c);
    }
    let message = new_message(st, &to, &bot, body);
    let upload = Upload {
        method: method.to_owned(),
        chat_id: to.chat_id,
        caption,
        files: vec![uploaded(kind, part)],
        message_ids: vec![message["message_id"].as_i64().unwrap_or(0)],
        reply_to: to.reply_to,
    };
    st.uploads.push(upload);
    Ok(message)
}

/// sendMediaGroup: 2 to 10 items of `media`, each `attach://<part>`; photos and videos may
/// mix, documents and audio only with their own kind.
fn send_media_group(
    st: &mut State,
    params: &Map<String, Value>,
    files: &[Part],
    bot: Value,
) -> Result<Value, Reply> {
    let to = target(st, params)?;
    let Some(Value::Array(items)) = json_param(params, "media") else {
        return Err(error(400, "Bad Request: media must be a JSON array"));
    };
    if !(2..=10).contains(&items.len()) {
        return Err(error(400, "Bad Request: media must include 2-10 items"));
    }
    let kinds: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap_or("")).collect();
    let visual = kinds.iter().all(|k| matches!(*k, "photo" | "video"));
    let same = kinds.iter().all(|k| *k == kinds[0]) && matches!(kinds[0], "document" | "audio");
    if !(visual || same) {
        return Err(error(400, "Bad Request: wrong media kinds mix in the album"));
    }
    let mut messages = Vec::new();
    let mut uploaded_files = Vec::new();
    let mut first_caption = None;
    for (i, item) in items.iter().enumerate() {
        let item_caption = item["caption"].as_str().filter(|c| !c.trim().is_empty());
        if item_caption.is_some_and(|c| c.encode_utf16().count() > MAX_CAPTION_UNITS) {
            return Err(error(400, "Bad Request: message caption is too long"));
        }
        if i == 0 {
            first_caption = item_caption.map(str::to_owned);
        }
        let Some(name) = item["media"].as_str().and_then(|m| m.strip_prefix("attach://")) else {
            return Err(error(
                400,
                "Bad Request: wrong file identifier/HTTP URL specified",
            ));
        };
        let part = file_part(files, name, kinds[i])?;
        uploaded_files.push((kinds[i], part, item_caption.map(str::to_owned)));
    }
    let group = format!("{}", 9000 + st.uploads.len());
    for (kind, part, item_caption) in &uploaded_files {
        let mut body = json!({ *kind: file_json(st, kind, part), "media_group_id": group });
        if let Some(c) = item_caption {
            body["caption"] = json!(c);
        }
        messages.push(new_message(st, &to, &bot, body));
    }
    let upload = Upload {
        method: "sendMediaGroup".into(),
        chat_id: to.chat_id,
        caption: first_caption,
        files: uploaded_files.iter().map(|(k, p, _)| uploaded(k, p)).collect(),
        message_ids: messages
            .iter()
            .map(|m| m["message_id"].as_i64().unwrap_or(0))
            .collect(),
        reply_to: to.reply_to,
    };
    st.uploads.push(upload);
    Ok(Value::Array(messages))
}

/// Params from the query string and the body (JSON object, form-urlencoded, or multipart:
/// its text fields become params, its file parts are returned beside them).
fn parse_params(query: Option<&str>, request: &Request) -> Result<(Map<String, Value>, Vec<Part>), String> {
    let mut params = Map::new();
    for (key, value) in query.map(parse_form).unwrap_or_default() {
        params.insert(key, Value::String(value));
    }
    if request.body.is_empty() {
        return Ok((params, Vec::new()));
    }
    let content_type = request
        .headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_default();
    if content_type.starts_with("application/json") {
        match serde_json::from_slice::<Value>(&request.body) {
            Ok(Value::Object(body)) => params.extend(body),
            _ => return Err("Bad Request: can't parse JSON object".into()),
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        let body = String::from_utf8_lossy(&request.body);
        for (key, value) in parse_form(&body) {
            params.insert(key, Value::String(value));
        }
    } else if content_type.starts_with("multipart/form-data") {
        let raw_type = request
            .headers
            .iter()
            .find(|(n, _)| n == "content-type")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        let parts = super::multipart::parse(raw_type, &request.body)
            .map_err(|e| format!("Bad Request: can't parse multipart body: {e}"))?;
        let (files, fields): (Vec<Part>, Vec<Part>) = parts.into_iter().partition(|p| p.filename.is_some());
        for field in fields {
            params.insert(field.name.clone(), Value::String(field.text()));
        }
        return Ok((params, files));
    } else {
        return Err(format!(
            "Bad Request: unsupported content type {content_type:?} (fake)"
        ));
    }
    Ok((params, Vec::new()))
}

/// `a=1&b=x+y%21` to pairs.
pub(super) fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

pub(super) fn percent_decode(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high * 16 + low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An integer param given as a JSON number or a decimal string; `Err` if present but not one.
fn int_param(params: &Map<String, Value>, key: &str) -> Result<Option<i64>, ()> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(()),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| ()),
        Some(_) => Err(()),
    }
}

/// A string param (numbers are accepted and printed, as Telegram does for chat_id).
fn str_param(params: &Map<String, Value>, key: &str) -> Option<String> {
    match params.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn bool_param(params: &Map<String, Value>, key: &str) -> bool {
    match params.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "True" | "1"),
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

/// A structured param: JSON in a JSON body, or JSON-serialized in a query/form value.
fn json_param(params: &Map<String, Value>, key: &str) -> Option<Value> {
    match params.get(key)? {
        Value::String(s) => serde_json::from_str(s)
            .ok()
            .or_else(|| Some(Value::String(s.clone()))),
        Value::Null => None,
        other => Some(other.clone()),
    }
}
