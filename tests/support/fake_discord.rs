//! A fake Discord for integration tests: the REST API on one port and the Gateway v10
//! WebSocket server on another, both on 127.0.0.1:0.
//!
//! REST: `GET …/gateway/bot` (answers `ws://127.0.0.1:WSPORT`) and
//! `POST …/channels/{id}/messages` (recorded, with rate-limit headers), both checking
//! `Authorization: Bot <token>` and the `DiscordBot (…)` User-Agent; scripted 429s (float
//! `retry_after`, global or not), other statuses with Discord's error JSON, and hang-ups.
//!
//! Gateway: real v10 frames. Hello, heartbeat ACKs, Identify (token without `Bot `, intents
//! checked) → READY with a session id and a `resume_gateway_url` pointing back here; every
//! dispatch gets the next `s` in the session's log; Resume replays the log after the
//! client's `seq`, then RESUMED. A pushed message goes to the live connection, or waits in
//! the log while there is none (or while it is a zombie). Faults for the live connection:
//! stop ACKing and delivering (zombie), op 7, op 9 true/false, op 1, close with any code,
//! drop the TCP connection; and for every Identify: close with a code, or op 9 false.
//!
//! The HTTP request reader is `fake_telegram`'s. Every wait is bounded; dropping the fake
//! stops and joins its threads.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::multipart::{self, Part};
use serde_json::{Value, json};
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

use super::answers::{self, Omitted};
use super::fake_server::{Server, Watched, deref_to_watched, local_listener};
use super::fake_telegram::read_request;

/// The bot user the fake plays.
pub const BOT_ID: &str = "900000000000000001";
pub const BOT_NAME: &str = "fakebot";
/// The intents Identify must include.
const REQUIRED_INTENTS: u64 = (1 << 9) | (1 << 12) | (1 << 15);

/// A fault for the live gateway connection.
#[derive(Clone, Debug, PartialEq)]
pub enum GwFault {
    /// Stop ACKing heartbeats and delivering events (the connection is a zombie).
    StopAcking,
    /// Op 7 Reconnect.
    Reconnect,
    /// Op 9 Invalid Session with `d`; `false` also ends the session.
    InvalidSession(bool),
    /// Op 1: the client must heartbeat at once.
    HeartbeatRequest,
    /// Close with this code.
    Close(u16),
    /// Drop the TCP connection without a close frame.
    Drop,
}

/// A scripted answer to the next create-message.
#[derive(Clone, Debug, PartialEq)]
pub enum SendFault {
    /// 429 with `retry_after` seconds; `global` sets `X-RateLimit-Global`.
    RateLimited(f64, bool),
    /// This status with `{"code":code,"message":message}`.
    Status(u16, u64, String),
    /// Close without answering.
    Drop,
}

/// What the fake saw of one Identify or Resume.
#[derive(Clone, Debug)]
pub struct Opening {
    pub at: Instant,
    pub d: Value,
}

pub struct FakeDiscord {
    shared: Arc<Shared>,
    http_addr: SocketAddr,
    ws_addr: SocketAddr,
    server: Server,
}

struct Shared {
    token: String,
    state: Watched<State>,
}

struct Session {
    id: String,
    /// Every dispatch frame of the session, `s` = index + 1.
    log: Vec<Value>,
}

#[derive(Default)]
struct State {
    ws_url: String,
    heartbeat_ms: u64,
    next_id: u64,
    sessions_made: u64,
    session: Option<Session>,
    /// The connection that gets events and faults (0: none).
    live: u64,
    next_conn: u64,
    faults: VecDeque<GwFault>,
    identify_close: Option<u16>,
    identify_invalid: bool,
    identifies: Vec<Opening>,
    resumes: Vec<Opening>,
    /// Close codes the client sent.
    client_closes: Vec<u16>,
    connections: usize,
    gateway_bot_calls: usize,
    channels: HashSet<String>,
    sent: Vec<Value>,
    send_times: Vec<Instant>,
    send_faults: VecDeque<SendFault>,
    /// CDN files by path (`/cdn/attachments/...`), with the `ex` tokens that are valid.
    cdn: HashMap<String, CdnFile>,
    cdn_downloads: usize,
    refreshes: usize,
    /// `/attachments/refresh-urls` answers 500.
    refresh_broken: bool,
    /// Typing triggers: channel, when.
    typing: Vec<(String, Instant)>,
    /// A Resume replays the whole session after READY, not only what the client missed
    /// (see [`FakeDiscord::replay_everything_on_resume`]).
    replay_all: bool,
    /// Interactions handed out: id → (token, when).
    interactions: HashMap<String, (String, Instant)>,
    /// Interaction callbacks accepted: (id, response type, how long after).
    callbacks: Vec<(String, u64, Duration)>,
    /// Every message in a channel as people see it: (channel, id) → content, the bot's or not.
    messages: std::collections::BTreeMap<(String, String), Shown>,
    revoked: bool,
    /// Answers and frames stripped to what a minimal emulator sends (see
    /// [`FakeDiscord::minimal_answers`]).
    minimal: bool,
    /// Fields left out: see [`FakeDiscord::omit_field`].
    omitted: Omitted,
}

/// A message as the channel shows it.
#[derive(Clone, Debug, Default)]
pub struct Shown {
    pub content: String,
    pub by_bot: bool,
    pub reactions: Vec<String>,
    pub edits: usize,
}

/// A file on the fake CDN.
struct CdnFile {
    bytes: Vec<u8>,
    /// The `ex` query values that still work (a refresh adds one, expiry clears them).
    valid: HashSet<String>,
}

impl FakeDiscord {
    /// Start with this bot token and a 1 s heartbeat interval.
    pub fn start(token: &str) -> FakeDiscord {
        let (http, http_addr) = local_listener();
        let (ws, ws_addr) = local_listener();
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            state: Watched::new(State {
                ws_url: format!("ws://{ws_addr}"),
                heartbeat_ms: 1000,
                next_id: 1_250_000_000_000_000_000,
                ..State::default()
            }),
        });
        let mut server = Server::new();
        let s1 = shared.clone();
        server.serve(http, "fake-discord-http", move |stream| serve_http(&s1, stream));
        let s2 = shared.clone();
        server.serve(ws, "fake-discord-ws", move |stream| serve_ws(&s2, stream));
        FakeDiscord {
            shared,
            http_addr,
            ws_addr,
            server,
        }
    }

    /// The REST base URL, to use as `apiBaseUrl`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api/v10", self.http_addr)
    }

    pub fn set_heartbeat_ms(&self, ms: u64) {
        self.shared.lock().heartbeat_ms = ms;
    }

    /// A channel that sends may target.
    pub fn add_channel(&self, id: &str) {
        self.shared.lock().channels.insert(id.to_owned());
    }

    /// A user message in `channel` (a guild channel when `guild` is given, else a DM);
    /// returns its id. Goes out at once on a live connection, else waits in the session log.
    pub fn push_message(&self, channel: &str, guild: Option<&str>, author: &str, content: &str) -> String {
        self.push_message_with(channel, guild, author, content, json!({}))
    }

    /// Like [`FakeDiscord::push_message`] with `extra` fields merged into `d`.
    pub fn push_message_with(
        &self,
        channel: &str,
        guild: Option<&str>,
        author: &str,
        content: &str,
        extra: Value,
    ) -> String {
        let mut st = self.shared.lock();
        st.channels.insert(channel.to_owned());
        st.next_id += 1 << 22;
        let id = st.next_id.to_string();
        let mut d = json!({
            "id": id, "channel_id": channel, "type": 0, "content": content,
            "author": {"id": author, "username": format!("user{author}"), "global_name": format!("User {author}")},
            "timestamp": "2024-05-01T12:34:56.789000+00:00", "edited_timestamp": null,
            "mentions": [], "attachments": [], "embeds": [], "tts": false, "pinned": false
        });
        if let Some(g) = guild {
            d["guild_id"] = json!(g);
        }
        // Like Discord: the users written `<@id>` are listed in `mentions`.
        let mentioned: Vec<Value> = content
            .split("<@")
            .skip(1)
            .filter_map(|rest| {
                let id: String = rest
                    .trim_start_matches('!')
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                let closed = rest.trim_start_matches('!')[id.len()..].starts_with('>');
                (!id.is_empty() && closed).then(|| json!({"id": id, "username": format!("user{id}")}))
            })
            .collect();
        d["mentions"] = json!(mentioned);
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        // A reply carries the message it replies to, author included.
        let replied = d["message_reference"]["message_id"].as_str().map(str::to_owned);
        if let Some(m) = replied.and_then(|r| {
            st.messages
                .get(&(channel.to_owned(), r.clone()))
                .map(|m| (r, m.by_bot))
        }) {
            let author = if m.1 {
                json!({"id": BOT_ID, "username": BOT_NAME, "bot": true})
            } else {
                json!({"id": "1"})
            };
            d["referenced_message"] = json!({"id": m.0, "channel_id": channel, "author": author});
        }
        let shown = Shown {
            content: content.to_owned(),
            ..Shown::default()
        };
        st.messages.insert((channel.to_owned(), id.clone()), shown);
        st.dispatch("MESSAGE_CREATE", d);
        self.shared.notify();
        id
    }

    /// A user's edit of message `id` in `channel`: a MESSAGE_UPDATE with the new content.
    pub fn push_edit(&self, channel: &str, id: &str, author: &str, content: &str) {
        let mut st = self.shared.lock();
        if let Some(m) = st.messages.get_mut(&(channel.to_owned(), id.to_owned())) {
            m.content = content.to_owned();
        }
        let d = json!({
            "id": id, "channel_id": channel, "guild_id": "777", "type": 0, "content": content,
            "author": {"id": author, "username": format!("user{author}")},
            "timestamp": "2024-05-01T12:34:56.789000+00:00",
            "edited_timestamp": "2024-05-01T12:40:00.000000+00:00",
            "attachments": [], "embeds": []
        });
        st.dispatch("MESSAGE_UPDATE", d);
        drop(st);
        self.shared.notify();
    }

    /// Discord filling in an embed: a MESSAGE_UPDATE without content or author.
    pub fn push_embed_update(&self, channel: &str, id: &str) {
        let mut st = self.shared.lock();
        st.dispatch(
            "MESSAGE_UPDATE",
            json!({"id": id, "channel_id": channel, "embeds": [{"type": "link"}]}),
        );
        drop(st);
        self.shared.notify();
    }

    /// A user message with files, each `(name, content type, bytes)`, served by the fake CDN
    /// at signed URLs (`?ex=`); returns the message id.
    pub fn push_message_with_files(
        &self,
        channel: &str,
        author: &str,
        content: &str,
        files: &[(&str, &str, &[u8])],
    ) -> String {
        let mut attachments = Vec::new();
        {
            let mut st = self.shared.lock();
            for (i, (name, mime, bytes)) in files.iter().enumerate() {
                let path = format!("/cdn/attachments/{channel}/{}/{name}", 700 + st.cdn.len() + i);
                let token = format!("{}", st.cdn.len() + 1);
                let url = format!("http://{}{path}?ex={token}", self.http_addr);
                st.cdn.insert(
                    path,
                    CdnFile {
                        bytes: bytes.to_vec(),
                        valid: HashSet::from([token]),
                    },
                );
                attachments.push(
                    json!({"id": (900 + i).to_string(), "filename": name, "content_type": mime,
                                        "size": bytes.len(), "url": url, "proxy_url": url}),
                );
            }
        }
        self.push_message_with(
            channel,
            Some("777"),
            author,
            content,
            json!({"attachments": attachments}),
        )
    }

    /// What `channel` shows now, in order: (message id, message) for each one not deleted.
    pub fn visible(&self, channel: &str) -> Vec<(String, Shown)> {
        self.shared
            .lock()
            .messages
            .iter()
            .filter(|((c, _), _)| c == channel)
            .map(|((_, id), m)| (id.clone(), m.clone()))
            .collect()
    }

    /// A press by `user` on the button `custom_id` under `message` in `channel`: an
    /// INTERACTION_CREATE of type 3 (message component) as Discord sends it, `guild` set for
    /// a guild channel (the user then comes as `member.user`). Returns the interaction id.
    pub fn push_press(
        &self,
        channel: &str,
        guild: Option<&str>,
        message: &str,
        user: &str,
        custom_id: &str,
    ) -> String {
        let mut st = self.shared.lock();
        st.next_id += 1 << 22;
        let id = st.next_id.to_string();
        let token = format!("itoken-{id}");
        st.interactions
            .insert(id.clone(), (token.clone(), Instant::now()));
        let who =
            json!({"id": user, "username": format!("user{user}"), "global_name": format!("User {user}")});
        let mut d = json!({"id": id, "application_id": BOT_ID, "type": 3, "token": token, "version": 1,
                           "channel_id": channel,
                           "message": {"id": message, "channel_id": channel, "author": {"id": BOT_ID, "bot": true}},
                           "data": {"custom_id": custom_id, "component_type": 2}});
        match guild {
            Some(g) => {
                d["guild_id"] = json!(g);
                d["member"] = json!({"user": who});
            }
            None => d["user"] = who,
        }
        st.dispatch("INTERACTION_CREATE", d);
        self.shared.notify();
        id
    }

    /// From now on a Resume replays every event of the session since READY, as a gateway
    /// that delivers at least once may: what the client had already must not come twice.
    pub fn replay_everything_on_resume(&self) {
        self.shared.lock().replay_all = true;
    }

    /// Interaction callbacks accepted: (interaction id, response type, how long after the
    /// interaction).
    pub fn callbacks(&self) -> Vec<(String, u64, Duration)> {
        self.shared.lock().callbacks.clone()
    }

    /// Typing triggers received: (channel, when).
    pub fn typing(&self) -> Vec<(String, Instant)> {
        self.shared.lock().typing.clone()
    }

    /// Expire every CDN URL handed out so far (a refresh gives working ones).
    pub fn expire_cdn_urls(&self) {
        for file in self.shared.lock().cdn.values_mut() {
            file.valid.clear();
        }
    }

    /// Make `/attachments/refresh-urls` answer 500.
    pub fn break_refresh(&self, on: bool) {
        self.shared.lock().refresh_broken = on;
    }

    /// CDN downloads served (successful or not), and refresh-urls calls.
    pub fn cdn_counts(&self) -> (usize, usize) {
        let st = self.shared.lock();
        (st.cdn_downloads, st.refreshes)
    }

    /// Strip answers and frames to what a minimal third-party emulator sends, fewer fields
    /// than Discord documents: `/gateway/bot` only `url`; Hello only
    /// `d.heartbeat_interval`; heartbeat ACKs only `op`; READY only `user.id` and
    /// `session_id` (no username, no `resume_gateway_url`); MESSAGE_CREATE only `id`,
    /// `channel_id`, `author.id`, `content` and `guild_id`; a created message only `id`.
    pub fn minimal_answers(&self, on: bool) {
        self.shared.lock().minimal = on;
    }

    /// Leave the field at dotted `path` out of `answer`: `"gateway/bot"`, `"create message"`,
    /// or a dispatch name (`"READY"`, `"MESSAGE_CREATE"`). Dispatches are shaped when they
    /// are made, so call this before.
    pub fn omit_field(&self, answer: &str, path: &str) {
        self.shared.lock().omitted.add(answer, path);
    }

    /// A fault for the live connection (applied in order, one per loop turn).
    pub fn fault(&self, fault: GwFault) {
        self.shared.lock().faults.push_back(fault);
    }

    /// Close every Identify with `code` (None: stop).
    pub fn close_identifies_with(&self, code: Option<u16>) {
        self.shared.lock().identify_close = code;
    }

    /// Answer every Identify with op 9 false.
    pub fn invalidate_identifies(&self, on: bool) {
        self.shared.lock().identify_invalid = on;
    }

    /// Every REST call and Identify gets 401 / 4004 from now on.
    pub fn revoke(&self) {
        self.shared.lock().revoked = true;
    }

    pub fn fail_next_send(&self, fault: SendFault) {
        self.shared.lock().send_faults.push_back(fault);
    }

    pub fn identifies(&self) -> Vec<Opening> {
        self.shared.lock().identifies.clone()
    }

    pub fn resumes(&self) -> Vec<Opening> {
        self.shared.lock().resumes.clone()
    }

    pub fn client_closes(&self) -> Vec<u16> {
        self.shared.lock().client_closes.clone()
    }

    pub fn connections(&self) -> usize {
        self.shared.lock().connections
    }

    pub fn gateway_bot_calls(&self) -> usize {
        self.shared.lock().gateway_bot_calls
    }

    /// Accepted create-message bodies, each with `channel_id` added.
    pub fn sent(&self) -> Vec<Value> {
        self.shared.lock().sent.clone()
    }

    /// When each create-message request arrived (accepted or not).
    pub fn send_times(&self) -> Vec<Instant> {
        self.shared.lock().send_times.clone()
    }

    /// Wait until a session is live (READY or RESUMED sent on the live connection) and the
    /// fault queue is empty.
    pub fn wait_live(&self, timeout: Duration) -> bool {
        self.wait(timeout, |st| {
            st.live != 0 && st.faults.is_empty() && st.session.is_some()
        })
    }

    /// Wait until `n` Identifies arrived.
    pub fn wait_identifies(&self, n: usize, timeout: Duration) -> bool {
        self.wait(timeout, |st| st.identifies.len() >= n)
    }

    /// Wait until `n` Resumes arrived.
    pub fn wait_resumes(&self, n: usize, timeout: Duration) -> bool {
        self.wait(timeout, |st| st.resumes.len() >= n)
    }

    pub fn wait_sent(&self, n: usize, timeout: Duration) -> bool {
        self.wait(timeout, |st| st.sent.len() >= n)
    }

    fn wait(&self, timeout: Duration, ready: impl Fn(&State) -> bool) -> bool {
        self.shared.wait_even_stopped(timeout, ready)
    }

    /// Stop accepting and close every connection (the platform goes away).
    pub fn shutdown(&self) {
        self.shared.stop();
        self.server.close();
    }
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        self.shutdown();
        self.server.shutdown();
    }
}

deref_to_watched!(Shared, State);

impl State {
    /// Append a dispatch to the session log (dropped when there is no session, as Discord
    /// has nobody to send it to).
    fn dispatch(&mut self, t: &str, d: Value) {
        let minimal: &[&str] = match t {
            "READY" => &["user.id", "session_id"],
            "MESSAGE_CREATE" => &["id", "channel_id", "author.id", "content", "guild_id"],
            _ => &[],
        };
        let d = self.shape(t, d, minimal);
        if let Some(session) = &mut self.session {
            let s = session.log.len() + 1;
            session.log.push(json!({"op": 0, "t": t, "s": s, "d": d}));
        }
    }
}

impl State {
    /// `value` as this server sends `answer`: only the `minimal` paths in minimal mode (none
    /// given: as is), and without the omitted fields.
    fn shape(&self, answer: &str, value: Value, minimal: &[&str]) -> Value {
        let mut value = if self.minimal && !minimal.is_empty() {
            answers::keep(&value, minimal)
        } else {
            value
        };
        self.omitted.apply(answer, &mut value);
        value
    }
}

// ---- REST ----

fn serve_http(shared: &Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    while let Ok(Some(request)) = read_request(&mut reader) {
        if shared.stopping() {
            return;
        }
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let method_get = request.body.is_empty() && request.target.ends_with("/gateway/bot");
        if request.target.starts_with("/cdn/") {
            let (status, body) = cdn_get(
                &mut shared.lock(),
                &request.target,
                !header("authorization").is_empty(),
            );
            shared.notify();
            let written =
                super::fake_server::write_raw(&mut writer, status, "application/octet-stream", &body);
            if written.is_err() || !request.keep_alive {
                return;
            }
            continue;
        }
        let reply = {
            let mut st = shared.lock();
            let auth_ok = header("authorization") == format!("Bot {}", shared.token) && !st.revoked;
            if !header("user-agent").starts_with("DiscordBot (") {
                Reply::json(
                    400,
                    json!({"code": 0, "message": "fake: User-Agent must be DiscordBot (url, version)"}),
                )
            } else if !auth_ok {
                Reply::json(401, json!({"code": 0, "message": "401: Unauthorized"}))
            } else if method_get {
                st.gateway_bot_calls += 1;
                let answer = json!({"url": st.ws_url, "shards": 1, "session_start_limit":
                       {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}});
                Reply::json(200, st.shape("gateway/bot", answer, &["url"]))
            } else if let Some(rest) = request.target.split("/interactions/").nth(1) {
                interaction_callback(&mut st, rest, &request.body)
            } else if let Some(reply) =
                message_action(&mut st, &request.method, &request.target, &request.body)
            {
                reply
            } else if let Some(channel) = request
                .target
                .split("/channels/")
                .nth(1)
                .and_then(|rest| rest.strip_suffix("/typing"))
            {
                if st.channels.contains(channel) {
                    st.typing.push((channel.to_owned(), Instant::now()));
                    Reply(Some((204, Vec::new(), String::new())))
                } else {
                    Reply::json(404, json!({"code": 10003, "message": "Unknown Channel"}))
                }
            } else if request.target.ends_with("/attachments/refresh-urls") {
                refresh_urls(&mut st, &request.body)
            } else if let Some(channel) = request
                .target
                .split("/channels/")
                .nth(1)
                .and_then(|rest| rest.strip_suffix("/messages"))
            {
                st.send_times.push(Instant::now());
                create_message(&mut st, channel, &header("content-type"), &request.body)
            } else {
                Reply::json(404, json!({"code": 0, "message": "404: Not Found"}))
            }
        };
        shared.notify();
        let Some((status, headers, body)) = reply.0 else {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        };
        let mut out = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body.as_bytes());
        if writer.write_all(&bytes).is_err() || !request.keep_alive {
            return;
        }
    }
}

/// Status, extra headers, body.
type Answer = (u16, Vec<(String, String)>, String);

/// `Some(answer)`, or `None` to hang up.
struct Reply(Option<Answer>);

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply(Some((status, Vec::new(), body.to_string())))
    }
}

/// `PATCH`/`DELETE …/channels/{c}/messages/{m}` and `PUT`/`DELETE
/// …/messages/{m}/reactions/{emoji}/@me`, with Discord's refusals; `None` for other routes.
fn message_action(st: &mut State, method: &str, target: &str, body: &[u8]) -> Option<Reply> {
    let rest = target.split("/channels/").nth(1)?;
    let mut parts = rest.splitn(3, '/');
    let (channel, kind, tail) = (parts.next()?, parts.next()?, parts.next()?);
    if kind != "messages" {
        return None;
    }
    let (id, reaction) = match tail.split_once("/reactions/") {
        Some((id, r)) => (id, Some(r.strip_suffix("/@me")?)),
        None => (tail, None),
    };
    if id.contains('/') || method == "POST" || method == "GET" {
        return None;
    }
    let unknown = || Reply::json(404, json!({"code": 10008, "message": "Unknown Message"}));
    let no_content = || Reply(Some((204, Vec::new(), String::new())));
    let key = (channel.to_owned(), id.to_owned());
    let Some(shown) = st.messages.get_mut(&key) else {
        return Some(unknown());
    };
    Some(match (method, reaction) {
        ("PATCH", None) => {
            if !shown.by_bot {
                return Some(Reply::json(
                    403,
                    json!({"code": 50005, "message": "Cannot edit a message authored by another user"}),
                ));
            }
            let req: Value = serde_json::from_slice(body).unwrap_or_default();
            let content = req["content"].as_str().unwrap_or_default().to_owned();
            if content.chars().count() > 2000 {
                return Some(Reply::json(
                    400,
                    json!({"code": 50035, "message": "Invalid Form Body"}),
                ));
            }
            shown.content = content.clone();
            shown.edits += 1;
            Reply::json(200, json!({"id": id, "channel_id": channel, "content": content}))
        }
        ("DELETE", None) => {
            st.messages.remove(&key);
            no_content()
        }
        (m @ ("PUT" | "DELETE"), Some(encoded)) => {
            let emoji = super::fake_telegram::percent_decode(encoded);
            let custom = emoji
                .split_once(':')
                .is_some_and(|(_, id)| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
            if !custom && emoji.is_ascii() {
                return Some(Reply::json(
                    400,
                    json!({"code": 10014, "message": "Unknown Emoji"}),
                ));
            }
            shown.reactions.retain(|r| *r != emoji);
            if m == "PUT" {
                shown.reactions.push(emoji);
            }
            no_content()
        }
        _ => return None,
    })
}

/// A CDN GET: the file when its `ex` token is still valid, else Discord's 404 for expired
/// content. The CDN wants no token; one sent there is a leak, refused with 400.
fn cdn_get(st: &mut State, target: &str, has_auth: bool) -> (u16, Vec<u8>) {
    st.cdn_downloads += 1;
    if has_auth {
        return (400, b"a bot token was sent to the CDN".to_vec());
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let token = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("ex="))
        .unwrap_or("");
    match st.cdn.get(path) {
        Some(f) if f.valid.contains(token) => (200, f.bytes.clone()),
        Some(_) => (404, b"This content is no longer available.".to_vec()),
        None => (404, b"Not Found".to_vec()),
    }
}

/// `POST /interactions/{id}/{token}/callback`: Discord wants it within 3 s of the
/// interaction, once; later or again is 404 Unknown interaction (10062) or 400 (40060).
fn interaction_callback(st: &mut State, rest: &str, body: &[u8]) -> Reply {
    let mut parts = rest.split('/');
    let (Some(id), Some(token), Some("callback")) = (parts.next(), parts.next(), parts.next()) else {
        return Reply::json(404, json!({"code": 0, "message": "404: Not Found"}));
    };
    let Some((want, at)) = st.interactions.get(id).cloned() else {
        return Reply::json(404, json!({"code": 10062, "message": "Unknown interaction"}));
    };
    if want != token || at.elapsed() > Duration::from_secs(3) {
        return Reply::json(404, json!({"code": 10062, "message": "Unknown interaction"}));
    }
    if st.callbacks.iter().any(|(i, _, _)| i == id) {
        return Reply::json(
            400,
            json!({"code": 40060, "message": "Interaction has already been acknowledged."}),
        );
    }
    let kind = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|b| b["type"].as_u64());
    let Some(kind) = kind else {
        return Reply::json(400, json!({"code": 50035, "message": "Invalid Form Body"}));
    };
    st.callbacks.push((id.to_owned(), kind, at.elapsed()));
    Reply(Some((204, Vec::new(), String::new())))
}

/// `POST /attachments/refresh-urls`: a fresh signed URL for each one given.
fn refresh_urls(st: &mut State, body: &[u8]) -> Reply {
    st.refreshes += 1;
    if st.refresh_broken {
        return Reply::json(500, json!({"code": 0, "message": "500: Internal Server Error"}));
    }
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return Reply::json(
            400,
            json!({"code": 50109, "message": "The request body contains invalid JSON."}),
        );
    };
    let mut out = Vec::new();
    for url in req["attachment_urls"].as_array().cloned().unwrap_or_default() {
        let url = url.as_str().unwrap_or("").to_owned();
        let (base, _) = url.split_once('?').unwrap_or((&url, ""));
        let path = base
            .find("/cdn/")
            .map(|at| base[at..].to_owned())
            .unwrap_or_default();
        let fresh_token = format!("r{}", st.refreshes);
        if let Some(f) = st.cdn.get_mut(&path) {
            f.valid.insert(fresh_token.clone());
        }
        out.push(json!({"original": url, "refreshed": format!("{base}?ex={fresh_token}")}));
    }
    Reply::json(200, json!({"refreshed_urls": out}))
}

/// Discord's default upload limit per file for bots.
pub const UPLOAD_LIMIT: usize = 10 * 1024 * 1024;

/// The JSON payload and the files of a create-message request: a JSON body, or multipart
/// with `payload_json` and `files[i]` parts, each of which `attachments` must list by id.
fn message_request(content_type: &str, body: &[u8]) -> Result<(Value, Vec<Part>), Reply> {
    let invalid_json = || {
        Reply::json(
            400,
            json!({"code": 50109, "message": "The request body contains invalid JSON."}),
        )
    };
    if !content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return serde_json::from_slice::<Value>(body)
            .map(|v| (v, Vec::new()))
            .map_err(|_| invalid_json());
    }
    let parts = multipart::parse(content_type, body).map_err(|e| {
        Reply::json(
            400,
            json!({"code": 50035, "message": format!("Invalid Form Body: {e}")}),
        )
    })?;
    let payload = parts
        .iter()
        .find(|p| p.name == "payload_json")
        .ok_or_else(invalid_json)
        .and_then(|p| serde_json::from_slice::<Value>(&p.data).map_err(|_| invalid_json()))?;
    let files: Vec<Part> = parts
        .into_iter()
        .filter(|p| p.name.starts_with("files["))
        .collect();
    let listed = payload["attachments"].as_array().cloned().unwrap_or_default();
    for file in &files {
        let index = file.name.trim_start_matches("files[").trim_end_matches(']');
        if !listed
            .iter()
            .any(|a| a["id"].to_string().trim_matches('"') == index)
        {
            return Err(Reply::json(
                400,
                json!({"code": 50035, "message": "Invalid Form Body",
                       "errors": {"attachments": {"_errors": [{"code": "ATTACHMENT_NOT_FOUND",
                                  "message": format!("{} is not listed in attachments", file.name)}]}}}),
            ));
        }
        if file.data.len() > UPLOAD_LIMIT {
            return Err(Reply::json(
                413,
                json!({"code": 40005, "message": "Request entity too large"}),
            ));
        }
    }
    Ok((payload, files))
}

/// What Discord refuses in `components`: more than 5 action rows or 5 buttons in one, a
/// button without a label, a label over 80 characters, a `custom_id` outside 1 to 100.
fn invalid_components(components: &Value) -> Option<&'static str> {
    let rows = match components {
        Value::Null => return None,
        Value::Array(rows) => rows,
        _ => return Some("components must be an array"),
    };
    if rows.len() > 5 {
        return Some("at most 5 action rows");
    }
    for row in rows {
        if row["type"] != 1 {
            return Some("a top-level component must be an action row (type 1)");
        }
        let buttons = row["components"].as_array()?;
        if buttons.is_empty() || buttons.len() > 5 {
            return Some("an action row holds 1 to 5 components");
        }
        for b in buttons {
            let label = b["label"].as_str().unwrap_or("");
            let id = b["custom_id"].as_str().unwrap_or("");
            if b["type"] != 2 || label.trim().is_empty() || label.chars().count() > 80 {
                return Some("a button needs a label of 1 to 80 characters");
            }
            if id.is_empty() || id.chars().count() > 100 {
                return Some("custom_id must be 1 to 100 characters");
            }
        }
    }
    None
}

fn create_message(st: &mut State, channel: &str, content_type: &str, body: &[u8]) -> Reply {
    match st.send_faults.pop_front() {
        Some(SendFault::Drop) => return Reply(None),
        Some(SendFault::Status(status, code, message)) => {
            return Reply::json(status, json!({"code": code, "message": message}));
        }
        Some(SendFault::RateLimited(secs, global)) => {
            let mut headers = vec![
                ("Retry-After".to_owned(), format!("{}", secs.ceil() as u64)),
                (
                    "X-RateLimit-Scope".to_owned(),
                    if global { "global" } else { "user" }.to_owned(),
                ),
            ];
            if global {
                headers.push(("X-RateLimit-Global".to_owned(), "true".to_owned()));
            }
            let body =
                json!({"message": "You are being rate limited.", "retry_after": secs, "global": global});
            return Reply(Some((429, headers, body.to_string())));
        }
        None => {}
    }
    let (mut req, files) = match message_request(content_type, body) {
        Ok(parsed) => parsed,
        Err(reply) => return reply,
    };
    if !st.channels.contains(channel) {
        return Reply::json(404, json!({"code": 10003, "message": "Unknown Channel"}));
    }
    let content = req["content"].as_str().unwrap_or_default().to_owned();
    if content.trim().is_empty() && files.is_empty() {
        return Reply::json(
            400,
            json!({"code": 50006, "message": "Cannot send an empty message"}),
        );
    }
    if content.chars().count() > 2000 {
        return Reply::json(
            400,
            json!({"code": 50035, "message": "Invalid Form Body",
                   "errors": {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH",
                              "message": "Must be 2000 or fewer in length."}]}}}),
        );
    }
    if let Some(why) = invalid_components(&req["components"]) {
        return Reply::json(
            400,
            json!({"code": 50035, "message": "Invalid Form Body",
                   "errors": {"components": {"_errors": [{"code": "COMPONENT_INVALID", "message": why}]}}}),
        );
    }
    st.next_id += 1 << 22;
    let id = st.next_id.to_string();
    req["channel_id"] = json!(channel);
    let attachments: Vec<Value> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            json!({"id": (st.next_id + i as u64 + 1).to_string(), "filename": f.filename,
                   "size": f.data.len(), "content_type": f.content_type,
                   "url": format!("https://cdn.example/attachments/{channel}/{i}")})
        })
        .collect();
    if !files.is_empty() {
        req["files"] = files
            .iter()
            .map(|f| {
                json!({"filename": f.filename, "size": f.data.len(), "sha256": f.sha256,
                            "content_type": f.content_type})
            })
            .collect();
    }
    st.sent.push(req.clone());
    let shown = Shown {
        content: content.clone(),
        by_bot: true,
        ..Shown::default()
    };
    st.messages.insert((channel.to_owned(), id.clone()), shown);
    let message = json!({"id": id, "channel_id": channel, "content": content, "type": 0,
                         "author": {"id": BOT_ID, "username": BOT_NAME, "bot": true},
                         "attachments": attachments,
                         "message_reference": req.get("message_reference")});
    // The bot's own message comes back on the gateway too (the connector must skip it).
    st.dispatch("MESSAGE_CREATE", message.clone());
    let headers = vec![
        ("X-RateLimit-Limit".to_owned(), "5".to_owned()),
        ("X-RateLimit-Remaining".to_owned(), "4".to_owned()),
        ("X-RateLimit-Reset-After".to_owned(), "1.000".to_owned()),
        ("X-RateLimit-Bucket".to_owned(), format!("bucket-{channel}")),
    ];
    let answer = st.shape("create message", message, &["id"]);
    Reply(Some((200, headers, answer.to_string())))
}

// ---- Gateway ----

fn serve_ws(shared: &Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(control) = stream.try_clone() else { return };
    let Ok(mut ws) = tungstenite::accept(stream) else {
        return;
    };
    let _ = control.set_read_timeout(Some(Duration::from_millis(20)));
    let (me, hello) = {
        let mut st = shared.lock();
        st.connections += 1;
        st.next_conn += 1;
        let hello = if st.minimal {
            json!({"op": 10, "d": {"heartbeat_interval": st.heartbeat_ms}})
        } else {
            json!({"op": 10, "s": null, "t": null, "d": {"heartbeat_interval": st.heartbeat_ms}})
        };
        (st.next_conn, hello)
    };
    shared.notify();
    if send(&mut ws, &hello).is_err() {
        return;
    }
    let mut zombie = false;
    // Session events sent on this connection (by `s`), once attached by READY/RESUME.
    let mut sent_upto: Option<usize> = None;
    loop {
        if shared.stopping() {
            return;
        }
        // Faults and pending events, for the live connection only.
        let (fault, pending) = {
            let mut st = shared.lock();
            if st.live != me {
                (None, Vec::new())
            } else {
                let fault = st.faults.pop_front();
                let pending = match (&st.session, sent_upto) {
                    (Some(session), Some(upto)) if !zombie => {
                        session.log[upto.min(session.log.len())..].to_vec()
                    }
                    _ => Vec::new(),
                };
                if fault.is_some() {
                    shared.notify();
                }
                (fault, pending)
            }
        };
        for frame in pending {
            if send(&mut ws, &frame).is_err() {
                return;
            }
            sent_upto = frame["s"].as_u64().map(|s| s as usize);
        }
        match fault {
            None => {}
            Some(GwFault::StopAcking) => zombie = true,
            Some(GwFault::Reconnect) => {
                let _ = send(&mut ws, &json!({"op": 7, "d": null, "s": null, "t": null}));
            }
            Some(GwFault::InvalidSession(resumable)) => {
                if !resumable {
                    shared.lock().session = None;
                }
                let _ = send(&mut ws, &json!({"op": 9, "d": resumable, "s": null, "t": null}));
            }
            Some(GwFault::HeartbeatRequest) => {
                let _ = send(&mut ws, &json!({"op": 1, "d": null, "s": null, "t": null}));
            }
            Some(GwFault::Close(code)) => {
                close(&mut ws, code);
                return;
            }
            Some(GwFault::Drop) => {
                let _ = control.shutdown(Shutdown::Both);
                return;
            }
        }
        let frame = match ws.read() {
            Ok(Message::Text(t)) => match serde_json::from_str::<Value>(&t) {
                Ok(v) => v,
                Err(_) => {
                    close(&mut ws, 4002);
                    return;
                }
            },
            Ok(Message::Close(f)) => {
                let code = f.map_or(1005, |f| u16::from(f.code));
                shared.lock().client_closes.push(code);
                shared.notify();
                return;
            }
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
            {
                continue;
            }
            Err(_) => return,
        };
        let d = &frame["d"];
        match frame["op"].as_u64() {
            Some(1) if !zombie => {
                let ack = if shared.lock().minimal {
                    json!({"op": 11})
                } else {
                    json!({"op": 11, "d": null, "s": null, "t": null})
                };
                if send(&mut ws, &ack).is_err() {
                    return;
                }
            }
            Some(2) => {
                let mut st = shared.lock();
                st.identifies.push(Opening {
                    at: Instant::now(),
                    d: d.clone(),
                });
                shared.notify();
                if d["token"] != shared.token.as_str() || st.revoked {
                    drop(st);
                    close(&mut ws, 4004);
                    return;
                }
                let intents = d["intents"].as_u64().unwrap_or(0);
                if intents & REQUIRED_INTENTS != REQUIRED_INTENTS {
                    drop(st);
                    close(&mut ws, 4013);
                    return;
                }
                if let Some(code) = st.identify_close {
                    drop(st);
                    close(&mut ws, code);
                    return;
                }
                if st.identify_invalid {
                    drop(st);
                    let _ = send(&mut ws, &json!({"op": 9, "d": false, "s": null, "t": null}));
                    continue;
                }
                st.sessions_made += 1;
                let id = format!("session-{}", st.sessions_made);
                st.session = Some(Session {
                    id: id.clone(),
                    log: Vec::new(),
                });
                st.live = me;
                let ready = json!({"v": 10, "user": {"id": BOT_ID, "username": BOT_NAME, "bot": true},
                                   "guilds": [], "session_id": id, "resume_gateway_url": st.ws_url,
                                   "shard": [0, 1], "application": {"id": BOT_ID}});
                st.dispatch("READY", ready);
                sent_upto = Some(0);
            }
            Some(6) => {
                let mut st = shared.lock();
                st.resumes.push(Opening {
                    at: Instant::now(),
                    d: d.clone(),
                });
                shared.notify();
                if d["token"] != shared.token.as_str() || st.revoked {
                    drop(st);
                    close(&mut ws, 4004);
                    return;
                }
                let matches = st
                    .session
                    .as_ref()
                    .is_some_and(|s| d["session_id"] == s.id.as_str());
                if !matches {
                    drop(st);
                    let _ = send(&mut ws, &json!({"op": 9, "d": false, "s": null, "t": null}));
                    continue;
                }
                st.live = me;
                let seq = d["seq"].as_u64().unwrap_or(0) as usize;
                st.dispatch("RESUMED", json!({}));
                // Past READY (the log's first event), everything again when asked.
                sent_upto = Some(if st.replay_all { 1 } else { seq });
            }
            _ => {}
        }
    }
}

fn send(ws: &mut WebSocket<TcpStream>, v: &Value) -> tungstenite::Result<()> {
    ws.send(Message::text(v.to_string()))
}

fn close(ws: &mut WebSocket<TcpStream>, code: u16) {
    let _ = ws.close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: "fake".into(),
    }));
    let _ = ws.flush();
    // Give the client a moment to read the close frame before the socket goes.
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        match ws.read() {
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
            Ok(_) => {}
        }
    }
}
