//! A fake Slack for integration tests: the Web API over HTTP and Socket Mode over WebSocket,
//! both on 127.0.0.1:0.
//!
//! HTTP (`POST /{method}`, `Authorization: Bearer`, JSON bodies; requests are read with the
//! Telegram fake's parser): `auth.test` (bot token), `apps.connections.open` (app token;
//! answers `ws://127.0.0.1:PORT/link/?ticket=T` with a fresh single-use ticket),
//! `chat.postMessage` (bot token; records sends, hands out increasing `ts`). Errors are
//! Slack's: HTTP 200 `{"ok":false,"error":..}`, or 429 with `Retry-After`. Faults can be
//! scripted per method.
//!
//! Socket Mode (`tungstenite::accept_hdr` on each accepted stream, a thread per
//! connection): a socket with a valid ticket gets `hello`, then `events_api` envelopes. Each
//! envelope goes to the newest healthy socket; acks are recorded, and an envelope not acked
//! within the redelivery time is delivered again (same `envelope_id` and `event_id`, up to 3
//! times), on whichever socket is newest then. Scriptable per socket: `disconnect` with a
//! reason (the socket stays open until the client closes it, like Slack's refresh), going
//! silent (no reads, no pongs, no frames: half-open), dropping the TCP connection, and
//! sending any frame on it.
//!
//! Every wait is bounded and dropping the fake stops and joins all its threads.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tungstenite::Message;
use tungstenite::handshake::server::{ErrorResponse, Request as WsRequest, Response as WsResponse};

use super::answers::{self, Omitted};
use super::fake_server::{Server, Watched, deref_to_watched, local_listener};
use super::fake_telegram::read_request;

pub const APP_TOKEN: &str = "xapp-1-TEST";
pub const BOT_TOKEN: &str = "xoxb-TEST";
pub const BOT_USER: &str = "UBOT";
pub const BOT_ID: &str = "BBOT";

/// A scripted failure for the next request of one method.
#[derive(Clone, Debug)]
pub enum Fault {
    /// HTTP 200 `{"ok":false,"error":E}`.
    Error(&'static str),
    /// HTTP 429 with `Retry-After: N` and `{"ok":false,"error":"ratelimited"}`.
    RateLimited(u64),
    /// This HTTP status with a non-JSON body.
    Status(u16),
}

/// Something to do on one socket.
#[derive(Clone, Debug)]
enum SockCmd {
    Frame(Value),
    Silent,
    Drop,
}

/// What the fake knows about one Socket Mode connection.
#[derive(Clone, Debug)]
pub struct SockInfo {
    pub id: u64,
    pub opened: Instant,
    /// When it ended, and whether the client closed it (close frame or EOF) rather than us.
    pub closed: Option<(Instant, bool)>,
    /// A `disconnect` was sent on it: no new envelopes go there.
    pub disconnected: bool,
    pub silent: bool,
}

struct Outstanding {
    envelope: Value,
    sent: Instant,
    attempts: u32,
}

struct State {
    bot_token: String,
    app_token: String,
    tickets: HashSet<String>,
    next_ticket: u64,
    sockets: Vec<SockInfo>,
    cmds: HashMap<u64, VecDeque<SockCmd>>,
    pending: VecDeque<Value>,
    outstanding: HashMap<String, Outstanding>,
    acks: Vec<String>,
    /// Deliveries as (socket id, envelope_id).
    deliveries: Vec<(u64, String)>,
    redeliver_after: Duration,
    /// Acks are recorded but otherwise ignored (so every envelope is redelivered).
    ignore_acks: bool,
    next_event: u64,
    next_ts: u64,
    sent: Vec<(Instant, Value)>,
    /// Upload slots by file id: the declared name and length, and the bytes once posted.
    slots: HashMap<String, Slot>,
    uploads: Vec<SlackUpload>,
    /// Every message in a channel as people see it: (channel, ts) → (text, by the bot,
    /// reaction names).
    messages: std::collections::BTreeMap<(String, String), (String, bool, Vec<String>)>,
    /// Files users shared, by the path of their private URL.
    private_files: HashMap<String, Vec<u8>>,
    file_downloads: usize,
    /// Refuse private file downloads as Slack does for a token without `files:read`.
    refuse_files: bool,
    requests: Vec<(String, Value)>,
    faults: HashMap<String, VecDeque<Fault>>,
    /// Answers and frames stripped to what a minimal emulator sends (see
    /// [`FakeSlack::minimal_answers`]).
    minimal: bool,
    /// Fields left out: see [`FakeSlack::omit_field`].
    omitted: Omitted,
}

struct Shared {
    state: Watched<State>,
    ws_addr: SocketAddr,
    http_addr: SocketAddr,
}

/// An upload slot from `files.getUploadURLExternal`.
struct Slot {
    filename: String,
    length: usize,
    /// (size, sha256) of the bytes posted to the upload URL.
    posted: Option<(usize, String)>,
}

/// Files shared by one `files.completeUploadExternal`.
#[derive(Clone, Debug)]
pub struct SlackUpload {
    pub channel: String,
    pub thread_ts: Option<String>,
    pub initial_comment: Option<String>,
    /// (filename, size, sha256) of each file, in order.
    pub files: Vec<(String, usize, String)>,
    pub ts: String,
}

/// Slack's upload limit: 1 GB.
pub const UPLOAD_LIMIT: usize = 1024 * 1024 * 1024;

pub struct FakeSlack {
    shared: Arc<Shared>,
    http_addr: SocketAddr,
    server: Server,
}

impl FakeSlack {
    pub fn start() -> FakeSlack {
        let (http, http_addr) = local_listener();
        let (ws, ws_addr) = local_listener();
        let shared = Arc::new(Shared {
            state: Watched::new(State {
                bot_token: BOT_TOKEN.into(),
                app_token: APP_TOKEN.into(),
                tickets: HashSet::new(),
                next_ticket: 0,
                sockets: Vec::new(),
                cmds: HashMap::new(),
                pending: VecDeque::new(),
                outstanding: HashMap::new(),
                acks: Vec::new(),
                deliveries: Vec::new(),
                redeliver_after: Duration::from_secs(2),
                ignore_acks: false,
                next_event: 0,
                next_ts: 0,
                sent: Vec::new(),
                slots: HashMap::new(),
                uploads: Vec::new(),
                messages: std::collections::BTreeMap::new(),
                private_files: HashMap::new(),
                file_downloads: 0,
                refuse_files: false,
                requests: Vec::new(),
                faults: HashMap::new(),
                minimal: false,
                omitted: Omitted::default(),
            }),
            ws_addr,
            http_addr,
        });
        let mut server = Server::new();
        let s1 = shared.clone();
        server.serve(http, "fake-slack-http", move |stream| serve_http(&s1, stream));
        let s2 = shared.clone();
        server.serve(ws, "fake-slack-ws", move |stream| serve_socket(&s2, stream));
        FakeSlack {
            shared,
            http_addr,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`, to use as `apiBaseUrl`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Queue a message event; returns its `(envelope_id, event_id)`.
    pub fn push_message(&self, channel: &str, user: &str, text: &str) -> (String, String) {
        self.push_event(
            json!({"type": "message", "channel": channel, "channel_type": channel_type(channel),
            "user": user, "text": text}),
        )
    }

    /// Queue a `file_share` message with files, each `(name, mimetype, bytes)`, served at
    /// their `url_private_download` only with the bot token; returns its ids.
    pub fn push_files(
        &self,
        channel: &str,
        user: &str,
        text: &str,
        files: &[(&str, &str, &[u8])],
    ) -> (String, String) {
        let mut list = Vec::new();
        {
            let mut st = self.lock();
            for (name, mime, bytes) in files {
                let id = format!("FU{:04}", st.private_files.len() + 1);
                let path = format!("/files-pri/T1-{id}/download/{name}");
                let url = format!("http://{}{path}", self.http_addr);
                st.private_files.insert(path, bytes.to_vec());
                list.push(
                    json!({"id": id, "name": name, "title": name, "mimetype": mime, "size": bytes.len(),
                                 "url_private": url, "url_private_download": url, "mode": "hosted"}),
                );
            }
        }
        self.push_event(
            json!({"type": "message", "subtype": "file_share", "channel": channel,
            "channel_type": channel_type(channel), "user": user, "text": text, "files": list}),
        )
    }

    /// What `channel` shows now: (ts, text, by the bot, reactions) of each message left.
    pub fn visible(&self, channel: &str) -> Vec<(String, String, bool, Vec<String>)> {
        self.lock()
            .messages
            .iter()
            .filter(|((c, _), _)| c == channel)
            .map(|((_, ts), (t, bot, r))| (ts.clone(), t.clone(), *bot, r.clone()))
            .collect()
    }

    /// Answer private file downloads 403, as for a bot token without `files:read`.
    pub fn refuse_file_downloads(&self, on: bool) {
        self.lock().refuse_files = on;
    }

    /// Private file downloads asked for (with or without the token).
    pub fn file_downloads(&self) -> usize {
        self.lock().file_downloads
    }

    /// Queue an event (`ts` and `event_ts` are filled in when missing); returns its ids.
    pub fn push_event(&self, event: Value) -> (String, String) {
        let envelope = self.envelope(event);
        let ids = ids_of(&envelope);
        let mut st = self.lock();
        let e = &envelope["payload"]["event"];
        if let (Some(channel), Some(ts)) = (e["channel"].as_str(), e["ts"].as_str()) {
            let text = e["text"].as_str().unwrap_or("").to_owned();
            st.messages
                .insert((channel.to_owned(), ts.to_owned()), (text, false, Vec::new()));
        }
        st.pending.push_back(envelope);
        self.shared.notify();
        ids
    }

    /// Queue a press by `user` on the button with `value` under message `message_ts` in
    /// `channel`: an `interactive` envelope with a `block_actions` payload as Slack sends it.
    /// Returns the envelope (to queue it again with [`FakeSlack::push_envelope`]).
    pub fn push_press(&self, channel: &str, message_ts: &str, user: &str, value: &str) -> Value {
        let envelope = {
            let mut st = self.lock();
            st.next_event += 1;
            let n = st.next_event;
            let action_ts = st.next_ts();
            json!({"envelope_id": format!("env-{n}"), "type": "interactive", "accepts_response_payload": false,
                "payload": {"type": "block_actions", "team": {"id": "T1"}, "api_app_id": "A1",
                    "user": {"id": user, "username": format!("user{user}"), "name": format!("user{user}"), "team_id": "T1"},
                    "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": false},
                    "channel": {"id": channel, "name": "general"},
                    "message": {"type": "message", "ts": message_ts, "user": BOT_USER, "bot_id": BOT_ID, "text": "…"},
                    "trigger_id": format!("{n}.1.abc"), "response_url": "https://hooks.slack.example/actions/x",
                    "actions": [{"type": "button", "action_id": "emonk-0-0", "block_id": "b1", "value": value,
                                 "text": {"type": "plain_text", "text": "Approve"}, "action_ts": action_ts}]}})
        };
        self.push_envelope(envelope.clone());
        envelope
    }

    /// Queue an envelope as it is (the same envelope again is what Slack's redelivery sends).
    pub fn push_envelope(&self, envelope: Value) {
        self.lock().pending.push_back(envelope);
        self.shared.notify();
    }

    /// Build an `events_api` envelope for `event` without queueing it.
    pub fn envelope(&self, mut event: Value) -> Value {
        let mut st = self.lock();
        st.next_event += 1;
        let n = st.next_event;
        let ts = st.next_ts();
        if event.get("ts").is_none() {
            event["ts"] = json!(ts);
        }
        if st.minimal {
            let event = answers::keep(
                &event,
                &[
                    "type",
                    "subtype",
                    "channel",
                    "user",
                    "text",
                    "ts",
                    "thread_ts",
                    "message",
                ],
            );
            let mut envelope =
                json!({"envelope_id": format!("env-{n}"), "type": "events_api", "payload": {"event": event}});
            st.omitted.apply("envelope", &mut envelope);
            return envelope;
        }
        if event.get("event_ts").is_none() {
            event["event_ts"] = event["ts"].clone();
        }
        let mut envelope = json!({"envelope_id": format!("env-{n}"), "type": "events_api", "accepts_response_payload": false,
            "payload": {"team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                "event_id": format!("Ev{n:06}"), "event_time": n, "event": event}});
        st.omitted.apply("envelope", &mut envelope);
        envelope
    }

    /// Strip answers and frames to what a minimal third-party emulator sends, fewer fields
    /// than Slack documents: `auth.test` only `ok` and `user_id` (no `bot_id`, `user`,
    /// `team`), `chat.postMessage` only `ok` and `ts`, `hello` only its `type`, and envelopes
    /// only `envelope_id`, `type` and `payload.event` (no `event_id`, no `channel_type`, no
    /// `event_ts`).
    pub fn minimal_answers(&self, on: bool) {
        self.lock().minimal = on;
    }

    /// Leave the field at dotted `path` out of `answer`: a Web API method, or `"envelope"`
    /// (paths from the envelope: `payload.event.user`) for envelopes built from now on.
    pub fn omit_field(&self, answer: &str, path: &str) {
        self.lock().omitted.add(answer, path);
    }

    /// Send `frame` on socket `id` now (for a redelivery the client already acked, or an
    /// envelope across a refresh), bypassing ack tracking.
    pub fn send_on(&self, id: u64, frame: Value) {
        self.command(id, SockCmd::Frame(frame));
    }

    /// Send `disconnect` with `reason` on socket `id`; it stays open until the client closes
    /// it, and gets no new envelopes.
    pub fn disconnect(&self, id: u64, reason: &str) {
        let frame = json!({"type": "disconnect", "reason": reason,
            "debug_info": {"host": "fake-slack"}});
        let mut st = self.lock();
        if let Some(s) = st.sockets.iter_mut().find(|s| s.id == id) {
            s.disconnected = true;
        }
        st.cmds.entry(id).or_default().push_back(SockCmd::Frame(frame));
        self.shared.notify();
    }

    /// Socket `id` stops reading and writing but keeps the TCP connection open.
    pub fn go_silent(&self, id: u64) {
        self.command(id, SockCmd::Silent);
    }

    /// Socket `id` is dropped without a close frame.
    pub fn drop_socket(&self, id: u64) {
        self.command(id, SockCmd::Drop);
    }

    fn command(&self, id: u64, cmd: SockCmd) {
        let mut st = self.lock();
        st.cmds.entry(id).or_default().push_back(cmd);
        self.shared.notify();
    }

    pub fn set_ignore_acks(&self, on: bool) {
        self.lock().ignore_acks = on;
    }

    pub fn fail_next(&self, method: &str, fault: Fault) {
        self.lock()
            .faults
            .entry(method.into())
            .or_default()
            .push_back(fault);
    }

    pub fn sockets(&self) -> Vec<SockInfo> {
        self.lock().sockets.clone()
    }

    pub fn acks(&self) -> Vec<String> {
        self.lock().acks.clone()
    }

    pub fn deliveries(&self) -> Vec<(u64, String)> {
        self.lock().deliveries.clone()
    }

    /// Every completed file upload, in order.
    pub fn uploads(&self) -> Vec<SlackUpload> {
        self.lock().uploads.clone()
    }

    /// chat.postMessage bodies that succeeded, with when they arrived.
    pub fn sent(&self) -> Vec<(Instant, Value)> {
        self.lock().sent.clone()
    }

    pub fn request_count(&self, method: &str) -> usize {
        self.lock().requests.iter().filter(|(m, _)| m == method).count()
    }

    /// Wait until `ready` holds (bounded).
    pub fn wait(&self, timeout: Duration, ready: impl Fn(&FakeView) -> bool) -> bool {
        self.shared.wait_until(timeout, |st| {
            ready(&FakeView {
                sockets: &st.sockets,
                acks: &st.acks,
                sent: st.sent.len(),
            })
        })
    }

    /// Wait until `n` sockets have been opened; the newest one's id.
    pub fn wait_sockets(&self, n: usize, timeout: Duration) -> u64 {
        assert!(
            self.wait(timeout, |v| v.sockets.len() >= n),
            "fewer than {n} Socket Mode connections: {:?}",
            self.sockets()
        );
        self.sockets()[n - 1].id
    }
}

/// A read-only view for [`FakeSlack::wait`].
pub struct FakeView<'a> {
    pub sockets: &'a [SockInfo],
    pub acks: &'a [String],
    pub sent: usize,
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.shared.stop();
        self.server.shutdown();
    }
}

deref_to_watched!(Shared, State);

impl State {
    fn next_ts(&mut self) -> String {
        self.next_ts += 1;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("{secs}.{:06}", self.next_ts)
    }

    /// The socket new envelopes go to: the newest open one that said hello and was neither
    /// disconnected nor silenced.
    fn target(&self) -> Option<u64> {
        self.sockets
            .iter()
            .rev()
            .find(|s| s.closed.is_none() && !s.disconnected && !s.silent)
            .map(|s| s.id)
    }
}

fn channel_type(channel: &str) -> &'static str {
    match channel.chars().next() {
        Some('D') => "im",
        Some('G') => "group",
        _ => "channel",
    }
}

fn ids_of(envelope: &Value) -> (String, String) {
    (
        envelope["envelope_id"].as_str().unwrap_or_default().to_owned(),
        envelope["payload"]["event_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

// ---- HTTP ----

fn serve_http(shared: &Arc<Shared>, stream: TcpStream) {
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    while let Ok(Some(request)) = read_request(&mut reader) {
        if shared.stopping() {
            return;
        }
        if request.target.starts_with("/files-pri/") {
            let (status, body) = private_file(shared, &request);
            let written =
                super::fake_server::write_raw(&mut writer, status, "application/octet-stream", &body);
            if written.is_err() || !request.keep_alive {
                return;
            }
            continue;
        }
        let (status, headers, body) = handle_http(shared, &request);
        let reason = match status {
            200 => "OK",
            429 => "Too Many Requests",
            _ => "Error",
        };
        let mut out = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&body);
        if writer.write_all(out.as_bytes()).is_err() || !request.keep_alive {
            return;
        }
    }
}

fn handle_http(
    shared: &Shared,
    request: &super::fake_telegram::Request,
) -> (u16, Vec<(String, String)>, String) {
    let method = request
        .target
        .trim_start_matches('/')
        .split('?')
        .next()
        .unwrap_or("")
        .to_owned();
    if let Some(file_id) = method.strip_prefix("upload/") {
        return post_upload(shared, file_id, request);
    }
    let form = request
        .headers
        .iter()
        .any(|(k, v)| k == "content-type" && v.starts_with("application/x-www-form-urlencoded"));
    let body: Value = if form {
        let pairs = super::fake_telegram::parse_form(&String::from_utf8_lossy(&request.body));
        Value::Object(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
    } else {
        serde_json::from_slice(&request.body).unwrap_or(json!({}))
    };
    let auth = request
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .and_then(|(_, v)| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let mut st = shared.lock();
    st.requests.push((method.clone(), body.clone()));
    shared.notify();
    let err = |e: &str| (200, Vec::new(), json!({"ok": false, "error": e}).to_string());
    if let Some(fault) = st.faults.get_mut(&method).and_then(VecDeque::pop_front) {
        return match fault {
            Fault::Error(e) => err(e),
            Fault::RateLimited(secs) => (
                429,
                vec![("Retry-After".into(), secs.to_string())],
                json!({"ok": false, "error": "ratelimited"}).to_string(),
            ),
            Fault::Status(status) => (status, Vec::new(), "<html>fake-slack trouble</html>".into()),
        };
    }
    let expected = match method.as_str() {
        "apps.connections.open" => st.app_token.clone(),
        "auth.test"
        | "chat.postMessage"
        | "files.getUploadURLExternal"
        | "files.completeUploadExternal"
        | "chat.update"
        | "chat.delete"
        | "reactions.add"
        | "reactions.remove" => st.bot_token.clone(),
        _ => return err("unknown_method"),
    };
    match auth {
        None => return err("not_authed"),
        Some(t) if t != expected => return err("invalid_auth"),
        Some(_) => {}
    }
    match method.as_str() {
        "auth.test" => answer(
            &st,
            &method,
            json!({"ok": true, "url": "https://fake.slack.com/", "team": "Fake Team",
            "user": "emonk", "team_id": "T1", "user_id": BOT_USER, "bot_id": BOT_ID}),
            &["ok", "user_id"],
        ),
        "files.getUploadURLExternal" => {
            // This method takes form fields only.
            if !form {
                return err("invalid_form_data");
            }
            let filename = body["filename"].as_str().unwrap_or("").to_owned();
            let length = body["length"].as_str().and_then(|l| l.parse::<usize>().ok());
            let Some(length) = length.filter(|l| *l > 0 && !filename.is_empty()) else {
                return err("invalid_arguments");
            };
            if length > UPLOAD_LIMIT {
                return err("file_too_large");
            }
            let file_id = format!("F{:06}", st.slots.len() + 1);
            st.slots.insert(
                file_id.clone(),
                Slot {
                    filename,
                    length,
                    posted: None,
                },
            );
            let url = format!("http://{}/upload/{file_id}", shared.http_addr);
            answer(
                &st,
                &method,
                json!({"ok": true, "upload_url": url, "file_id": file_id}),
                &["ok", "upload_url", "file_id"],
            )
        }
        "files.completeUploadExternal" => complete_upload(&mut st, &body),
        "chat.update" | "chat.delete" | "reactions.add" | "reactions.remove" => {
            message_action(&mut st, &method, &body)
        }
        "apps.connections.open" => {
            st.next_ticket += 1;
            let ticket = format!("ticket-{}", st.next_ticket);
            st.tickets.insert(ticket.clone());
            let url = format!("ws://{}/link/?ticket={ticket}&app_id=A1", shared.ws_addr);
            answer(&st, &method, json!({"ok": true, "url": url}), &["ok", "url"])
        }
        _ => {
            let channel = body["channel"].as_str().unwrap_or("");
            let text = body["text"].as_str().unwrap_or("");
            if channel.is_empty() {
                return err("channel_not_found");
            }
            if channel.starts_with("CMISSING") {
                return err("channel_not_found");
            }
            if channel.starts_with("COUT") {
                return err("not_in_channel");
            }
            if text.is_empty() {
                return err("no_text");
            }
            if text.chars().count() > 40_000 {
                return err("msg_too_long");
            }
            if !blocks_valid(&body["blocks"]) {
                return err("invalid_blocks");
            }
            let ts = st.next_ts();
            let mut message =
                json!({"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": text, "ts": ts});
            if let Some(t) = body.get("thread_ts") {
                message["thread_ts"] = t.clone();
            }
            st.messages.insert(
                (channel.to_owned(), ts.clone()),
                (text.to_owned(), true, Vec::new()),
            );
            let mut recorded = body.clone();
            recorded["ts"] = json!(ts);
            st.sent.push((Instant::now(), recorded));
            let full = json!({"ok": true, "channel": channel, "ts": ts, "message": message});
            answer(&st, &method, full, &["ok", "ts"])
        }
    }
}

/// Block Kit as Slack checks it: at most 50 blocks; sections of 1 to 3000 characters;
/// `actions` of 1 to 25 buttons, each with `plain_text` of 1 to 75 characters, a unique
/// `action_id` and a `value` of at most 2000.
fn blocks_valid(blocks: &Value) -> bool {
    let blocks = match blocks {
        Value::Null => return true,
        Value::Array(b) => b,
        _ => return false,
    };
    let mut ids = HashSet::new();
    blocks.len() <= 50
        && blocks.iter().all(|block| match block["type"].as_str() {
            Some("section") => block["text"]["text"]
                .as_str()
                .is_some_and(|t| !t.is_empty() && t.chars().count() <= 3000),
            Some("actions") => block["elements"].as_array().is_some_and(|els| {
                !els.is_empty()
                    && els.len() <= 25
                    && els.iter().all(|e| {
                        let text = e["text"]["text"].as_str().unwrap_or("");
                        e["type"] == "button"
                            && e["text"]["type"] == "plain_text"
                            && !text.trim().is_empty()
                            && text.chars().count() <= 75
                            && e["value"].as_str().is_some_and(|v| v.len() <= 2000)
                            && e["action_id"]
                                .as_str()
                                .is_some_and(|id| ids.insert(id.to_owned()))
                    })
            }),
            _ => false,
        })
}

/// The bytes of a slot, posted raw or as a one-file form to its upload URL (Slack takes
/// either).
fn post_upload(
    shared: &Shared,
    file_id: &str,
    request: &super::fake_telegram::Request,
) -> (u16, Vec<(String, String)>, String) {
    let content_type = request
        .headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let form_file;
    let body: &[u8] = if content_type.starts_with("multipart/form-data") {
        match super::multipart::parse(&content_type, &request.body) {
            Ok(parts) => match parts.into_iter().find(|p| p.filename.is_some()) {
                Some(p) => {
                    form_file = p.data;
                    &form_file
                }
                None => return (400, Vec::new(), "no file part".into()),
            },
            Err(e) => return (400, Vec::new(), format!("bad form: {e}")),
        }
    } else {
        &request.body
    };
    if request.headers.iter().any(|(k, _)| k == "authorization") {
        return (400, Vec::new(), "a token was sent to the upload URL".into());
    }
    let mut st = shared.lock();
    let Some(slot) = st.slots.get_mut(file_id) else {
        return (404, Vec::new(), "no such upload".into());
    };
    if body.len() != slot.length {
        return (
            400,
            Vec::new(),
            format!("declared {} bytes, got {}", slot.length, body.len()),
        );
    }
    slot.posted = Some((body.len(), super::multipart::sha256_hex(body)));
    shared.notify();
    (200, Vec::new(), format!("OK - {}", body.len()))
}

/// A file's private URL: its bytes with the bot token, 403 without (Slack redirects to a
/// login page; the gateway must not follow that with a token anyway).
fn private_file(shared: &Shared, request: &super::fake_telegram::Request) -> (u16, Vec<u8>) {
    let mut st = shared.lock();
    st.file_downloads += 1;
    let auth = request
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.clone());
    if st.refuse_files || auth.as_deref() != Some(&format!("Bearer {}", st.bot_token)) {
        return (403, b"not authorized".to_vec());
    }
    match st.private_files.get(&request.target) {
        Some(bytes) => (200, bytes.clone()),
        None => (404, b"file not found".to_vec()),
    }
}

/// `chat.update`, `chat.delete`, `reactions.add`, `reactions.remove`, with Slack's errors.
fn message_action(st: &mut State, method: &str, body: &Value) -> (u16, Vec<(String, String)>, String) {
    const NAMES: &[&str] = &[
        "thumbsup",
        "thumbsdown",
        "heart",
        "tada",
        "eyes",
        "fire",
        "white_check_mark",
        "joy",
        "rocket",
        "pray",
    ];
    let err = |e: &str| (200, Vec::new(), json!({"ok": false, "error": e}).to_string());
    let ok = |v: Value| (200, Vec::new(), v.to_string());
    let channel = body["channel"].as_str().unwrap_or("").to_owned();
    let ts = body["ts"]
        .as_str()
        .or(body["timestamp"].as_str())
        .unwrap_or("")
        .to_owned();
    let Some((text, by_bot, reactions)) = st.messages.get_mut(&(channel.clone(), ts.clone())) else {
        return err("message_not_found");
    };
    match method {
        "chat.update" => {
            if !*by_bot {
                return err("cant_update_message");
            }
            let new = body["text"].as_str().unwrap_or("");
            if new.is_empty() {
                return err("no_text");
            }
            *text = new.to_owned();
            ok(json!({"ok": true, "channel": channel, "ts": ts, "text": new}))
        }
        "chat.delete" => {
            if !*by_bot {
                return err("cant_delete_message");
            }
            st.messages.remove(&(channel.clone(), ts.clone()));
            ok(json!({"ok": true, "channel": channel, "ts": ts}))
        }
        _ => {
            let name = body["name"].as_str().unwrap_or("").to_owned();
            if !NAMES.contains(&name.as_str()) {
                return err("invalid_name");
            }
            let had = reactions.contains(&name);
            if method == "reactions.add" {
                if had {
                    return err("already_reacted");
                }
                reactions.push(name);
            } else {
                if !had {
                    return err("no_reaction");
                }
                reactions.retain(|r| *r != name);
            }
            ok(json!({"ok": true}))
        }
    }
}

/// `files.completeUploadExternal`: share posted files in a channel as one message.
fn complete_upload(st: &mut State, body: &Value) -> (u16, Vec<(String, String)>, String) {
    let err = |e: &str| (200, Vec::new(), json!({"ok": false, "error": e}).to_string());
    let Some(files) = body["files"].as_array().filter(|f| !f.is_empty()) else {
        return err("invalid_arguments");
    };
    let channel = body["channel_id"].as_str().unwrap_or("").to_owned();
    if channel.is_empty() || channel.starts_with("CMISSING") {
        return err("channel_not_found");
    }
    if channel.starts_with("COUT") {
        return err("not_in_channel");
    }
    let mut shared_files = Vec::new();
    for f in files {
        let id = f["id"].as_str().unwrap_or("");
        match st.slots.get(id) {
            Some(Slot {
                filename,
                posted: Some((size, sha)),
                ..
            }) => {
                shared_files.push((id.to_owned(), filename.clone(), *size, sha.clone()));
            }
            _ => return err("file_not_found"),
        }
    }
    for (id, ..) in &shared_files {
        st.slots.remove(id);
    }
    let ts = st.next_ts();
    let scope = if channel.starts_with('C') {
        "public"
    } else {
        "private"
    };
    let answer_files: Vec<Value> = shared_files
        .iter()
        .map(|(id, name, size, _)| {
            json!({"id": id, "name": name, "title": name, "size": size,
                   "shares": {scope: {channel.clone(): [{"ts": ts, "channel_name": "general"}]}}})
        })
        .collect();
    st.uploads.push(SlackUpload {
        channel,
        thread_ts: body["thread_ts"].as_str().map(str::to_owned),
        initial_comment: body["initial_comment"].as_str().map(str::to_owned),
        files: shared_files.into_iter().map(|(_, n, s, h)| (n, s, h)).collect(),
        ts,
    });
    answer(
        st,
        "files.completeUploadExternal",
        json!({"ok": true, "files": answer_files}),
        &["ok"],
    )
}

/// A successful answer to `method` as this server gives it: only the `minimal` fields in
/// minimal mode, and without the omitted ones.
fn answer(st: &State, method: &str, v: Value, minimal: &[&str]) -> (u16, Vec<(String, String)>, String) {
    let mut v = if st.minimal { answers::keep(&v, minimal) } else { v };
    st.omitted.apply(method, &mut v);
    (200, Vec::new(), v.to_string())
}

// ---- Socket Mode ----

// The callback signature is tungstenite's; its error type is not ours to shrink.
#[allow(clippy::result_large_err)]
fn serve_socket(shared: &Arc<Shared>, stream: TcpStream) {
    let path = Arc::new(Mutex::new(String::new()));
    let p = path.clone();
    let callback = move |req: &WsRequest, resp: WsResponse| -> Result<WsResponse, ErrorResponse> {
        *p.lock().unwrap() = req.uri().to_string();
        Ok(resp)
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(mut ws) = tungstenite::accept_hdr(stream, callback) else {
        return;
    };
    let uri = path.lock().unwrap().clone();
    let ticket = uri
        .split("ticket=")
        .nth(1)
        .unwrap_or("")
        .split('&')
        .next()
        .unwrap_or("")
        .to_owned();
    let id = {
        let mut st = shared.lock();
        if !st.tickets.remove(&ticket) {
            drop(st);
            let _ = ws.close(None);
            let _ = ws.flush();
            return; // unknown or reused ticket
        }
        let id = st.sockets.len() as u64 + 1;
        st.sockets.push(SockInfo {
            id,
            opened: Instant::now(),
            closed: None,
            disconnected: false,
            silent: false,
        });
        shared.notify();
        id
    };
    let _ = ws.get_ref().set_read_timeout(Some(Duration::from_millis(20)));
    let hello = if shared.lock().minimal {
        json!({"type": "hello"})
    } else {
        json!({"type": "hello", "num_connections": 1,
            "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060},
            "connection_info": {"app_id": "A1"}})
    };
    let mut by_client = false;
    let mut silent = false;
    if ws.send(Message::text(hello.to_string())).is_ok() {
        loop {
            if shared.stopping() {
                break;
            }
            // Scripted commands for this socket.
            let cmd = shared.lock().cmds.get_mut(&id).and_then(VecDeque::pop_front);
            match cmd {
                Some(SockCmd::Frame(f)) => {
                    if !silent && ws.send(Message::text(f.to_string())).is_err() {
                        by_client = true;
                        break;
                    }
                    continue;
                }
                Some(SockCmd::Silent) => {
                    silent = true;
                    let mut st = shared.lock();
                    if let Some(s) = st.sockets.iter_mut().find(|s| s.id == id) {
                        s.silent = true;
                    }
                    continue;
                }
                Some(SockCmd::Drop) => {
                    let _ = ws.get_ref().shutdown(Shutdown::Both);
                    break;
                }
                None => {}
            }
            if silent {
                // Half-open: neither read nor write; only notice the end of the test (or a
                // client that gave up and closed, which a read would see: we do not read).
                thread::sleep(Duration::from_millis(20));
                continue;
            }
            // Deliveries and redeliveries, when this is the target socket.
            let to_send = {
                let mut st = shared.lock();
                let mut out = Vec::new();
                if st.target() == Some(id) {
                    let now = Instant::now();
                    let after = st.redeliver_after;
                    let mut again = Vec::new();
                    for (eid, o) in st.outstanding.iter_mut() {
                        if now.duration_since(o.sent) >= after && o.attempts < 4 {
                            o.attempts += 1;
                            o.sent = now;
                            let mut env = o.envelope.clone();
                            env["retry_attempt"] = json!(o.attempts - 1);
                            env["retry_reason"] = json!("timeout");
                            again.push((eid.clone(), env));
                        }
                    }
                    for (eid, env) in again {
                        st.deliveries.push((id, eid));
                        out.push(env);
                    }
                    while let Some(env) = st.pending.pop_front() {
                        let (eid, _) = ids_of(&env);
                        st.outstanding.insert(
                            eid.clone(),
                            Outstanding {
                                envelope: env.clone(),
                                sent: now,
                                attempts: 1,
                            },
                        );
                        st.deliveries.push((id, eid));
                        out.push(env);
                    }
                    if !out.is_empty() {
                        shared.notify();
                    }
                }
                out
            };
            let mut failed = false;
            for env in to_send {
                if ws.send(Message::text(env.to_string())).is_err() {
                    failed = true;
                    break;
                }
            }
            if failed {
                by_client = true;
                break;
            }
            match ws.read() {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    if let Some(eid) = v.get("envelope_id").and_then(Value::as_str) {
                        let mut st = shared.lock();
                        st.acks.push(eid.to_owned());
                        if !st.ignore_acks {
                            st.outstanding.remove(eid);
                        }
                        shared.notify();
                    }
                }
                Ok(Message::Close(_)) => {
                    by_client = true;
                    // Let tungstenite answer the close.
                    let _ = ws.flush();
                    break;
                }
                Ok(_) => {}
                Err(e) if super::read_timed_out(&e) => {}
                Err(_) => {
                    by_client = true;
                    break;
                }
            }
        }
    }
    let _ = ws.get_ref().shutdown(Shutdown::Both);
    let mut st = shared.lock();
    if let Some(s) = st.sockets.iter_mut().find(|s| s.id == id) {
        s.closed = Some((Instant::now(), by_client));
    }
    shared.notify();
}
