//! Shared harness for integration tests: start the real `emonkd` binary on port 0 with a
//! temporary config and state dir, read the port from its `listening on` line, and talk to it
//! with a raw WebSocket client. Every wait is bounded, and a watchdog aborts a hung test
//! binary instead of hanging CI.

#![allow(dead_code)] // each test file uses a different subset

pub mod answers;
pub mod container;
pub mod discord;
pub mod fake_discord;
pub mod fake_server;
pub mod fake_slack;
pub mod fake_telegram;
pub mod multipart;
pub mod raw_frame;
pub mod slack;
pub mod telegram;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

pub const BIN: &str = env!("CARGO_BIN_EXE_emonkd");

/// Aborts the whole test process if not dropped within its limit: a hang fails loudly.
pub struct Watchdog {
    done: Arc<(Mutex<bool>, Condvar)>,
}

impl Watchdog {
    pub fn new(name: &str, limit: Duration) -> Watchdog {
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        let d = done.clone();
        let name = name.to_owned();
        thread::spawn(move || {
            let (lock, cvar) = &*d;
            let guard = lock.lock().unwrap();
            let (guard, _) = cvar.wait_timeout_while(guard, limit, |done| !*done).unwrap();
            if !*guard {
                eprintln!("WATCHDOG: test {name} exceeded {limit:?}; aborting");
                std::process::abort();
            }
        });
        Watchdog { done }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.done;
        *lock.lock().unwrap() = true;
        cvar.notify_all();
    }
}

/// Captured stderr lines of a child, with a way to wait for one.
#[derive(Clone, Default)]
pub struct Log {
    inner: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Log {
    fn push(&self, line: String) {
        let (lock, cvar) = &*self.inner;
        lock.lock().unwrap().push(line);
        cvar.notify_all();
    }

    pub fn lines(&self) -> Vec<String> {
        self.inner.0.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        self.lines().join("\n")
    }

    /// Wait for the `nth` (0-based) line containing `needle`.
    pub fn wait_for_nth(&self, needle: &str, nth: usize, timeout: Duration) -> Option<String> {
        let (lock, cvar) = &*self.inner;
        let deadline = Instant::now() + timeout;
        let mut guard = lock.lock().unwrap();
        loop {
            if let Some(l) = guard.iter().filter(|l| l.contains(needle)).nth(nth) {
                return Some(l.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            guard = cvar.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.wait_for_nth(needle, 0, timeout)
    }

    pub fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }
}

/// A temporary home for a gateway: config file and state dir.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new(config: &str) -> Home {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("emonk.json"), config).unwrap();
        Home { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("emonk.json")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn write_config(&self, config: &str) {
        std::fs::write(self.config_path(), config).unwrap();
    }

    /// An `emonkd` command with a clean environment pointing at this home.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("EMONK_CONFIG", self.config_path())
            .env("EMONK_STATE_DIR", self.state_dir())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null());
        cmd
    }

    /// Run a CLI command to completion (bounded by the command's own timeouts and a kill
    /// after `limit`).
    pub fn run_cli(&self, args: &[&str], limit: Duration) -> Output {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + limit;
        loop {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "emonkd {args:?} did not finish within {limit:?}; stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        self.run_cli(args, Duration::from_secs(20))
    }
}

/// A running `emonkd run` child.
pub struct Gateway {
    pub child: Child,
    pub log: Log,
    pub port: u16,
    pub pid: u32,
}

/// Wait for `listening on ws://HOST:PORT` (the `nth` occurrence) and return the port.
pub fn listening_port(log: &Log, nth: usize) -> Option<u16> {
    let line = log.wait_for_nth("listening on ws://", nth, Duration::from_secs(10))?;
    let addr = line.split("listening on ws://").nth(1)?.trim();
    addr.rsplit(':').next()?.parse().ok()
}

impl Gateway {
    /// `emonkd run --port 0` in `home`, waiting for its `listening on` line.
    pub fn start(home: &Home) -> Gateway {
        Gateway::start_with(home, &["run", "--port", "0"], &[])
    }

    pub fn start_with(home: &Home, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let mut gw = Gateway::spawn(home, args, env);
        gw.port = listening_port(&gw.log, 0)
            .unwrap_or_else(|| panic!("gateway did not start listening; log:\n{}", gw.log.text()));
        gw
    }

    /// Spawn without waiting for anything (port stays 0).
    pub fn spawn(home: &Home, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let mut cmd = home.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Gateway::spawn_cmd(cmd)
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid as i32, sig);
        }
    }

    /// Wait for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Connect a raw client that has sent `connect` and received `hello_ok`.
    pub fn client(&self, token: Option<&str>, role: &str, mode: &str) -> Ws {
        let mut ws = Ws::open(self.port);
        ws.send_json(&connect_frame(token, role, mode));
        let hello = ws.next_json(Duration::from_secs(5)).expect("hello");
        assert_eq!(hello["type"], "hello_ok", "connect refused: {hello}");
        ws
    }

    pub fn operator(&self) -> Ws {
        self.client(None, "operator", "operator")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn connect_frame(token: Option<&str>, role: &str, mode: &str) -> Value {
    let mut params = json!({
        "protocolVersion": 1, "clientName": "test", "clientVersion": "0",
        "mode": mode, "role": role,
    });
    if let Some(t) = token {
        params["auth"] = json!({"token": t});
    }
    json!({"type": "connect", "params": params})
}

/// How a read ended when no frame came.
#[derive(Debug, PartialEq)]
pub enum End {
    /// A close frame with this code (and reason).
    Closed(u16, String),
    /// The connection ended without a close frame.
    Dropped(String),
    Timeout,
}

/// A raw, blocking WebSocket test client.
pub struct Ws {
    pub ws: WebSocket<TcpStream>,
}

impl Ws {
    pub fn open(port: u16) -> Ws {
        Ws::open_with(port, None).expect("WebSocket handshake")
    }

    /// Open with an optional Origin header; Err carries the HTTP status on refusal.
    pub fn open_with(port: u16, origin: Option<&str>) -> Result<Ws, String> {
        let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut req =
            tungstenite::client::IntoClientRequest::into_client_request(format!("ws://127.0.0.1:{port}/"))
                .unwrap();
        if let Some(o) = origin {
            req.headers_mut().insert("Origin", o.parse().unwrap());
        }
        let config = WebSocketConfig::default()
            .max_message_size(None)
            .max_frame_size(None);
        match tungstenite::client::client_with_config(req, stream, Some(config)) {
            Ok((ws, _)) => Ok(Ws { ws }),
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                Err(format!("HTTP {}", resp.status().as_u16()))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_owned())).expect("send");
    }

    pub fn send_json(&mut self, v: &Value) {
        self.send_text(&v.to_string());
    }

    /// The next text frame as JSON, or how the connection ended.
    pub fn next(&mut self, timeout: Duration) -> Result<Value, End> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(End::Timeout);
            }
            self.ws
                .get_ref()
                .set_read_timeout(Some(left.min(Duration::from_millis(200))))
                .unwrap();
            match self.ws.read() {
                Ok(Message::Text(t)) => return Ok(serde_json::from_str(&t).expect("gateway sent JSON")),
                Ok(Message::Close(Some(f))) => return Err(End::Closed(f.code.into(), f.reason.to_string())),
                Ok(Message::Close(None)) => return Err(End::Closed(1005, String::new())),
                Ok(_) => {}
                Err(e) if read_timed_out(&e) => {}
                Err(e) => return Err(End::Dropped(e.to_string())),
            }
        }
    }

    pub fn next_json(&mut self, timeout: Duration) -> Option<Value> {
        self.next(timeout).ok()
    }

    /// Skip events (`tick` etc.) until a frame of another type or an event named `event`.
    pub fn next_non_tick(&mut self, timeout: Duration) -> Result<Value, End> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.next(deadline.saturating_duration_since(Instant::now()))?;
            if v["type"] == "event" && v["event"] == "tick" {
                continue;
            }
            return Ok(v);
        }
    }

    /// Send a request and wait for its final response (skipping events and other ids).
    pub fn request(&mut self, id: &str, method: &str, params: Value) -> Value {
        self.send_json(&json!({"type": "request", "requestId": id, "method": method, "params": params}));
        self.response(id, Duration::from_secs(5))
    }

    pub fn response(&mut self, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self
                .next(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|e| panic!("no response to {id}: {e:?}"));
            if v["type"] == "response" && v["requestId"] == id {
                return v;
            }
        }
    }

    /// Read until the connection closes; the close code, if a close frame came.
    pub fn expect_close(&mut self, timeout: Duration) -> End {
        let deadline = Instant::now() + timeout;
        loop {
            match self.next(deadline.saturating_duration_since(Instant::now())) {
                Ok(_) => continue,
                Err(end) => return end,
            }
        }
    }
}

/// Poll `f` until it returns Some or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---- Additions for tests/lifecycle.rs, tests/cli.rs and tests/config_errors.rs ----

/// Run `cmd` to completion with piped stdout/stderr, killing it (and panicking) after `limit`.
pub fn run_to_end(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read both pipes on threads so a chatty child can never block on a full pipe.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out_pipe, &mut v);
        v
    });
    let err_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err_pipe, &mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = err_t.join().unwrap_or_default();
            panic!(
                "command did not finish within {limit:?}; stderr: {}",
                String::from_utf8_lossy(&err)
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

impl Home {
    /// Like [`Home::run_cli`], with extra environment variables.
    pub fn run_cli_env(&self, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_to_end(cmd, limit)
    }
}

/// Stdout of a finished command, lossily decoded.
pub fn stdout_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr of a finished command, lossily decoded.
pub fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `error.code` of a response (panics, showing it, if it is not an error).
pub fn error_code(r: &Value) -> &str {
    r["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("an error in {r}"))
}

/// The params of the next event `name` on `ws`, skipping everything else.
pub fn next_event(ws: &mut Ws, name: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let v = ws
            .next(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|e| panic!("no {name} within {timeout:?}: {e:?}"));
        if v["type"] == "event" && v["event"] == name {
            return v["params"].clone();
        }
    }
}

/// The exit code of a finished command (panics if it died by a signal).
pub fn code_of(o: &Output) -> i32 {
    o.status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {:?}; stderr: {}", o.status, stderr_of(o)))
}

// ---- Helpers for the protocol_* tests ----

impl Gateway {
    /// Open a WebSocket, send `frame` as the first frame, and return the socket with the
    /// gateway's first answer (`hello_ok`, `hello_error`, ...) or how the connection ended.
    pub fn connect_with(&self, frame: &Value) -> (Ws, Result<Value, End>) {
        let mut ws = Ws::open(self.port);
        ws.send_json(frame);
        let first = ws.next(Duration::from_secs(5));
        (ws, first)
    }
}

impl Ws {
    /// Send a text frame, reporting a failure instead of panicking (the gateway may already
    /// have closed the connection).
    pub fn try_send_text(&mut self, text: &str) -> Result<(), String> {
        self.ws
            .send(Message::text(text.to_owned()))
            .map_err(|e| e.to_string())
    }

    /// Write one masked text frame with `payload` straight to the socket from another thread,
    /// so this thread can keep reading while the gateway refuses an oversized frame (a
    /// blocking write of a refused frame would otherwise never finish). The mask key is zero,
    /// which is a valid mask that leaves the payload as is. Write errors end the thread.
    pub fn write_raw_text_frame(&self, payload: Vec<u8>) -> thread::JoinHandle<()> {
        use std::io::Write;
        let mut stream = self.ws.get_ref().try_clone().expect("clone socket");
        thread::spawn(move || {
            // The zero mask key leaves the payload as is, so it is written without a copy.
            let frame = raw_frame::RawFrame::new(raw_frame::TEXT, payload);
            let _ = stream.write_all(&frame.header());
            let _ = stream.write_all(&frame.payload);
        })
    }
}

/// The resident set size of a process in KiB (`VmRSS` in `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Gateway {
    /// Spawn an arbitrary `emonkd` command (e.g. one built with [`Home::command`] and then
    /// adjusted) as a gateway, capturing its stderr; waits for nothing (port stays 0).
    pub fn spawn_cmd(mut cmd: Command) -> Gateway {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        // Die with the test process even if it aborts (watchdog) before Drop runs.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        let log = Log::default();
        let stderr = child.stderr.take().unwrap();
        let l = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                l.push(line);
            }
        });
        let pid = child.id();
        Gateway {
            child,
            log,
            port: 0,
            pid,
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

/// Merge `patch` into `target`: objects key by key (recursively), anything else replaced.
pub fn merge_json(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                merge_json(target.entry(key).or_insert(Value::Null), value);
            }
        }
        (target, patch) => *target = patch,
    }
}

/// A blocking WebSocket read that ended because its socket read timeout passed (no data yet),
/// not because the connection failed.
pub fn read_timed_out(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io)
        if matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

// ---- Helpers for tests/all_connectors.rs and tests/log_secrets.rs ----

/// One config enabling Telegram, Discord and Slack against their fakes, `patch` merged in.
pub fn all_connectors_config(
    telegram: &fake_telegram::FakeTelegram,
    discord: &fake_discord::FakeDiscord,
    slack: &fake_slack::FakeSlack,
    patch: Value,
) -> String {
    let mut config = json!({"channels": {}});
    for part in [
        telegram::config(telegram, json!({})),
        discord::config(discord, json!({})),
        slack::config(slack, json!({})),
    ] {
        merge_json(&mut config, serde_json::from_str(&part).unwrap());
    }
    merge_json(&mut config, patch);
    config.to_string()
}

/// `channels.send` of `text` through `client` on each platform, to the chat each fake
/// knows (Telegram 100, Discord 555, Slack C1); each must answer with a result.
pub fn send_on_all_three(client: &mut Ws, text: &str) {
    for (id, channel, to) in [
        ("t", "telegram", "100"),
        ("d", "discord", "555"),
        ("s", "slack", "C1"),
    ] {
        let r = client.request(
            id,
            "channels.send",
            json!({"channel": channel, "to": to, "text": text}),
        );
        assert_eq!(r["result"]["channel"], channel, "{r}");
    }
}

impl Gateway {
    /// SIGTERM, then require exit 0 within the stop bound (plus a margin).
    pub fn stop_ok(&mut self) {
        self.signal(libc::SIGTERM);
        let st = self
            .wait_exit(Duration::from_secs(6))
            .unwrap_or_else(|| panic!("did not stop; log:\n{}", self.log.text()));
        assert!(st.success(), "{st:?}; log:\n{}", self.log.text());
    }
}

/// Run `cmd`'s child with `mask` as its umask (set between fork and exec, so the test
/// process keeps its own).
pub fn with_umask(cmd: &mut Command, mask: libc::mode_t) {
    // SAFETY: umask is async-signal-safe and cannot fail.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(mask);
            Ok(())
        });
    }
}
