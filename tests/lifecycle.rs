//! The daemon's life through the real binary: the single-instance lock, `kill -9`
//! recovery, port conflicts, graceful stop (and its 5 s bound with hostile clients),
//! signals (SIGTERM twice, SIGUSR1 without authorization, SIGHUP reload), authorized
//! restarts through `emonkd restart` and `gateway.restart`, and `emonkd stop`.

mod support;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{
    End, Gateway, Home, Watchdog, Ws, code_of, connect_frame, eventually, listening_port, stderr_of,
    stdout_of,
};

const SEC: Duration = Duration::from_secs(1);

fn ping_ok(c: &mut Ws, id: &str) {
    let r = c.request(id, "gateway.ping", json!({}));
    assert!(r["result"]["ts"].as_u64().unwrap_or(0) > 0, "ping failed: {r}");
}

/// `gateway.status` over `c`.
fn status(c: &mut Ws, id: &str) -> Value {
    let r = c.request(id, "gateway.status", json!({}));
    assert!(r["result"].is_object(), "{r}");
    r["result"].clone()
}

/// Expect the `shutdown` event (skipping ticks), then a close with `code`.
fn expect_shutdown(c: &mut Ws, reason: &str, restart_expected_ms: Value, code: u16) {
    let ev = c
        .next_non_tick(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("no shutdown event: {e:?}"));
    assert_eq!(ev["type"], "event", "{ev}");
    assert_eq!(ev["event"], "shutdown", "{ev}");
    assert_eq!(ev["params"]["reason"], reason, "{ev}");
    assert!(
        ev["params"]
            .as_object()
            .unwrap()
            .contains_key("restartExpectedMs"),
        "{ev}"
    );
    assert_eq!(ev["params"]["restartExpectedMs"], restart_expected_ms, "{ev}");
    match c.expect_close(Duration::from_secs(5)) {
        End::Closed(c, _) => assert_eq!(c, code),
        other => panic!("expected close {code}, got {other:?}"),
    }
}

fn stop(gw: &mut Gateway) {
    gw.signal(libc::SIGTERM);
    let st = gw
        .wait_exit(Duration::from_secs(6))
        .unwrap_or_else(|| panic!("did not stop; log:\n{}", gw.log.text()));
    assert!(st.success(), "{st:?}; log:\n{}", gw.log.text());
}

/// A line of the log that is exactly the `stopped` message (not "stopping ...").
fn has_stopped_line(gw: &Gateway) -> bool {
    gw.log.lines().iter().any(|l| l.trim_end().ends_with("] stopped"))
}

#[test]
fn second_run_waits_for_the_lock_then_fails_naming_the_owner() {
    let _w = Watchdog::new("lock_timeout", Duration::from_secs(30));
    let home = Home::new("{}");
    let mut first = Gateway::start(&home);
    let t0 = Instant::now();
    let out = home.run_cli(&["run", "--port", "0"], Duration::from_secs(15));
    let waited = t0.elapsed();
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 1, "{err}");
    let expected = format!(
        "gateway already running (pid {}); lock timeout after 5000ms",
        first.pid
    );
    assert!(err.contains(&expected), "stderr lacks {expected:?}:\n{err}");
    assert!(
        waited >= Duration::from_millis(4800) && waited < Duration::from_secs(9),
        "waited {waited:?}"
    );
    assert!(!err.contains("listening on"), "{err}");
    // The first one is untouched.
    assert!(first.alive());
    ping_ok(&mut first.operator(), "p");
    stop(&mut first);
}

#[test]
fn after_kill_9_a_new_gateway_starts_at_once() {
    let _w = Watchdog::new("kill9", Duration::from_secs(30));
    let home = Home::new("{}");
    let mut first = Gateway::start(&home);
    first.signal(libc::SIGKILL);
    first.wait_exit(Duration::from_secs(5)).expect("SIGKILL kills");
    let t0 = Instant::now();
    let mut second = Gateway::spawn(&home, &["run", "--port", "0"], &[]);
    second.port = listening_port(&second.log, 0)
        .unwrap_or_else(|| panic!("no start after kill -9:\n{}", second.log.text()));
    assert!(t0.elapsed() < Duration::from_secs(2), "took {:?}", t0.elapsed());
    let out = home.cli(&["status"]);
    let so = stdout_of(&out);
    assert_eq!(code_of(&out), 0, "{so}{}", stderr_of(&out));
    assert!(
        so.contains(&format!("pid {}", second.pid)),
        "status should name the new pid {}:\n{so}",
        second.pid
    );
    assert!(so.contains(&format!("127.0.0.1:{}", second.port)), "{so}");
    assert!(!so.contains(&format!("pid {},", first.pid)), "{so}");
    stop(&mut second);
}

#[test]
fn allow_multi_gateway_lets_a_second_instance_start() {
    let _w = Watchdog::new("multi", Duration::from_secs(30));
    let home = Home::new("{}");
    let mut a = Gateway::start(&home);
    let mut b = Gateway::start_with(
        &home,
        &["run", "--port", "0"],
        &[("EMONK_ALLOW_MULTI_GATEWAY", "1")],
    );
    assert_ne!(a.port, b.port);
    assert!(
        b.log.text().contains("EMONK_ALLOW_MULTI_GATEWAY"),
        "{}",
        b.log.text()
    );
    assert_eq!(status(&mut a.operator(), "a")["pid"], a.pid);
    assert_eq!(status(&mut b.operator(), "b")["pid"], b.pid);
    stop(&mut b);
    stop(&mut a);
}

#[test]
fn port_in_use_is_a_config_error_naming_the_holder() {
    let _w = Watchdog::new("port_in_use", Duration::from_secs(30));
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let home = Home::new("{}");
    let out = home.run_cli(&["run", "--port", &port], Duration::from_secs(15));
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 78, "{err}");
    assert!(err.contains(&format!("port {port} is in use")), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "should name the test process (pid {}):\n{err}",
        std::process::id()
    );
    // And the lock was not left held: status says nothing runs.
    assert_eq!(code_of(&home.cli(&["status"])), 3);
}

#[test]
fn sigterm_sends_shutdown_then_1001_and_exits_0() {
    let _w = Watchdog::new("sigterm", Duration::from_secs(30));
    let home = Home::new("{}");
    let mut gw = Gateway::start(&home);
    let mut c = gw.operator();
    ping_ok(&mut c, "p");
    gw.signal(libc::SIGTERM);
    expect_shutdown(&mut c, "gateway stopping", Value::Null, 1001);
    let st = gw.wait_exit(Duration::from_secs(6)).expect("exits");
    assert_eq!(st.code(), Some(0), "log:\n{}", gw.log.text());
    assert!(gw.log.wait_for("SIGTERM", SEC).is_some(), "{}", gw.log.text());
    assert!(
        eventually(SEC, || has_stopped_line(&gw).then_some(())).is_some(),
        "log should say it stopped:\n{}",
        gw.log.text()
    );
    // The lock is released.
    assert_eq!(code_of(&home.cli(&["status"])), 3);
}

#[test]
fn stop_is_bounded_with_hostile_clients() {
    let _w = Watchdog::new("hostile_stop", Duration::from_secs(40));
    let home = Home::new("{}");
    let mut gw = Gateway::start(&home);

    // An agent that takes a request and never answers.
    let mut agent = gw.client(None, "agent", "operator");
    let mut caller = gw.operator();
    caller
        .send_json(&json!({"type": "request", "requestId": "slow", "method": "agent.x", "params": {"n": 1}}));
    let fwd = agent
        .next_non_tick(Duration::from_secs(5))
        .expect("the agent gets the request");
    assert_eq!(fwd["type"], "request", "{fwd}");
    assert_eq!(fwd["method"], "agent.x", "{fwd}");

    // A client that floods large requests and never reads.
    let mut hog = gw.operator();
    hog.ws
        .get_ref()
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let sent2 = sent.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let big = "x".repeat(32 * 1024);
        for i in 0..2000 {
            let frame = json!({"type": "request", "requestId": format!("{i}-{big}"), "method": "gateway.ping", "params": {}});
            if hog
                .ws
                .send(tungstenite::Message::text(frame.to_string()))
                .is_err()
            {
                break;
            }
            sent2.fetch_add(1, Ordering::SeqCst);
        }
        let _ = done_tx.send(());
        // Keep the socket open (unread) until the gateway closes it.
        let _ = hog.ws.get_ref().set_read_timeout(Some(Duration::from_secs(8)));
        let mut buf = [0u8; 1];
        let _ = std::io::Read::read(&mut hog.ws.get_mut(), &mut buf);
    });
    eventually(Duration::from_secs(5), || {
        (sent.load(Ordering::SeqCst) >= 100).then_some(())
    });
    assert!(gw.alive(), "{}", gw.log.text());

    let t0 = Instant::now();
    gw.signal(libc::SIGTERM);
    let st = gw
        .wait_exit(Duration::from_secs(8))
        .unwrap_or_else(|| panic!("did not exit; log:\n{}", gw.log.text()));
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(5500), "stop took {took:?}");
    assert_eq!(st.code(), Some(0), "log:\n{}", gw.log.text());

    // The caller mid-request hears about it: UNAVAILABLE, and/or the shutdown event, and the
    // connection ends.
    let mut frames = Vec::new();
    let end = loop {
        match caller.next(Duration::from_secs(3)) {
            Ok(v) => frames.push(v),
            Err(e) => break e,
        }
    };
    let unavailable = frames
        .iter()
        .any(|f| f["type"] == "response" && f["requestId"] == "slow" && f["error"]["code"] == "UNAVAILABLE");
    let shutdown = frames
        .iter()
        .any(|f| f["type"] == "event" && f["event"] == "shutdown");
    assert!(unavailable || shutdown, "frames: {frames:?}");
    assert!(matches!(end, End::Closed(1001, _) | End::Dropped(_)), "{end:?}");
    let _ = done_rx.recv_timeout(Duration::from_secs(3));
}

#[test]
fn second_sigterm_during_stop_is_logged_and_changes_nothing() {
    let _w = Watchdog::new("double_sigterm", Duration::from_secs(30));
    let home = Home::new("{}");
    let mut gw = Gateway::start(&home);
    // A client that never reads or answers the close keeps the stop draining for a while.
    let _silent = gw.operator();
    gw.signal(libc::SIGTERM);
    assert!(
        gw.log
            .wait_for("SIGTERM: stopping", Duration::from_secs(3))
            .is_some(),
        "{}",
        gw.log.text()
    );
    gw.signal(libc::SIGTERM);
    let st = gw.wait_exit(Duration::from_secs(6)).expect("exits");
    assert_eq!(st.code(), Some(0), "log:\n{}", gw.log.text());
    assert!(
        gw.log.wait_for("already stopping", SEC).is_some(),
        "{}",
        gw.log.text()
    );
    assert!(eventually(SEC, || has_stopped_line(&gw).then_some(())).is_some());
    assert!(!gw.log.text().contains("timed out"), "{}", gw.log.text());
}

#[test]
fn sigusr1_without_authorization_is_ignored() {
    let _w = Watchdog::new("sigusr1", Duration::from_secs(30));
    let home = Home::new("{}");
    let mut gw = Gateway::start(&home);
    let mut c = gw.operator();
    ping_ok(&mut c, "p1");
    gw.signal(libc::SIGUSR1);
    assert!(
        gw.log
            .wait_for("not authorized", Duration::from_secs(3))
            .is_some(),
        "{}",
        gw.log.text()
    );
    // Same connection still served, same process, no restart happened.
    ping_ok(&mut c, "p2");
    assert_eq!(status(&mut c, "s")["pid"], gw.pid);
    assert!(gw.alive());
    assert_eq!(gw.log.count("listening on"), 1, "{}", gw.log.text());
    stop(&mut gw);
}

#[test]
fn emonkd_restart_restarts_in_process_and_keeps_the_lock() {
    let _w = Watchdog::new("cli_restart", Duration::from_secs(40));
    let home = Home::new("{}");
    let mut gw = Gateway::start(&home);
    let mut c = gw.operator();
    ping_ok(&mut c, "p");
    // A second `run` waiting for the lock while the restart happens must not get it.
    let mut rival = Gateway::spawn(&home, &["run", "--port", "0"], &[]);

    let out = home.cli(&["restart"]);
    let so = stdout_of(&out);
    assert_eq!(code_of(&out), 0, "{so}{}", stderr_of(&out));
    assert!(so.contains("restarted"), "{so}");
    assert!(so.contains(&format!("pid {}", gw.pid)), "{so}");

    expect_shutdown(&mut c, "gateway restarting", json!(1500), 1012);
    let port2 = listening_port(&gw.log, 1).expect("a second listening line");
    assert_eq!(port2, gw.port, "the listening socket is kept");
    assert!(gw.alive());
    let mut c2 = gw.operator();
    ping_ok(&mut c2, "p2");
    assert_eq!(status(&mut c2, "s")["pid"], gw.pid);

    let st = rival
        .wait_exit(Duration::from_secs(10))
        .expect("the rival gives up");
    assert_eq!(st.code(), Some(1), "rival log:\n{}", rival.log.text());
    assert!(
        rival
            .log
            .wait_for(&format!("gateway already running (pid {})", gw.pid), SEC)
            .is_some(),
        "rival log:\n{}",
        rival.log.text()
    );
    assert!(!rival.log.text().contains("listening on"));
    stop(&mut gw);
}

#[test]
fn gateway_restart_method_answers_then_restarts_same_pid() {
    let _w = Watchdog::new("method_restart", Duration::from_secs(30));
    let home = Home::new("{}");
    let mut gw = Gateway::start(&home);
    let mut c = gw.operator();
    let r = c.request("r", "gateway.restart", json!({}));
    assert_eq!(r["result"], json!({"restartExpectedMs": 1500}), "{r}");
    match c.expect_close(Duration::from_secs(5)) {
        End::Closed(code, _) => assert_eq!(code, 1012),
        other => panic!("expected close 1012, got {other:?}"),
    }
    let port2 = listening_port(&gw.log, 1).unwrap_or_else(|| panic!("no restart:\n{}", gw.log.text()));
    assert_eq!(port2, gw.port);
    assert!(gw.alive());
    let mut c2 = gw.operator();
    assert_eq!(status(&mut c2, "s")["pid"], gw.pid);
    // The one-shot authorization was consumed: a bare SIGUSR1 now is refused.
    gw.signal(libc::SIGUSR1);
    assert!(
        gw.log
            .wait_for("not authorized", Duration::from_secs(3))
            .is_some()
    );
    stop(&mut gw);
}

/// Open a raw connection and send `connect` with `token`; the first answer.
fn hello_with(port: u16, token: &str) -> (Ws, Value) {
    let mut ws = Ws::open(port);
    ws.send_json(&connect_frame(Some(token), "operator", "operator"));
    let hello = ws.next_json(Duration::from_secs(5)).expect("a hello answer");
    (ws, hello)
}

#[test]
fn sighup_reloads_a_changed_token() {
    let _w = Watchdog::new("sighup_token", Duration::from_secs(30));
    let home = Home::new(r#"{"gateway": {"auth": {"token": "one"}}}"#);
    let mut gw = Gateway::start(&home);
    let mut c = gw.client(Some("one"), "operator", "operator");
    ping_ok(&mut c, "p");
    home.write_config(r#"{"gateway": {"auth": {"token": "two"}}}"#);
    gw.signal(libc::SIGHUP);
    expect_shutdown(&mut c, "gateway restarting", json!(1500), 1012);
    let port2 = listening_port(&gw.log, 1).unwrap_or_else(|| panic!("no reload:\n{}", gw.log.text()));
    assert_eq!(port2, gw.port);

    let (mut old, hello) = hello_with(gw.port, "one");
    assert_eq!(hello["type"], "hello_error", "{hello}");
    assert_eq!(hello["error"]["code"], "UNAUTHORIZED", "{hello}");
    match old.expect_close(Duration::from_secs(5)) {
        End::Closed(code, _) => assert_eq!(code, 1008),
        other => panic!("expected close 1008, got {other:?}"),
    }
    let mut new = gw.client(Some("two"), "operator", "operator");
    ping_ok(&mut new, "p2");
    assert_eq!(status(&mut new, "s")["pid"], gw.pid);
    stop(&mut gw);
}

#[test]
fn sighup_with_an_invalid_config_keeps_the_old_one() {
    let _w = Watchdog::new("sighup_invalid", Duration::from_secs(30));
    let home = Home::new(r#"{"gateway": {"auth": {"token": "one"}}}"#);
    let mut gw = Gateway::start(&home);
    let mut c = gw.client(Some("one"), "operator", "operator");
    ping_ok(&mut c, "p1");
    home.write_config(r#"{"gateway": {"auth": {"token": "two",}}}"#);
    gw.signal(libc::SIGHUP);
    let line = gw
        .log
        .wait_for("reload failed", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{}", gw.log.text()));
    assert!(line.contains("invalid JSON"), "says why: {line}");
    assert!(gw.alive());
    // Nothing changed: the same connection keeps working (no restart, no 1012) ...
    ping_ok(&mut c, "p2");
    assert_eq!(status(&mut c, "s")["pid"], gw.pid);
    assert_eq!(gw.log.count("listening on"), 1, "{}", gw.log.text());
    // ... and new connections still use the old token.
    let mut c2 = gw.client(Some("one"), "operator", "operator");
    ping_ok(&mut c2, "p3");
    let (_ws, hello) = hello_with(gw.port, "two");
    assert_eq!(hello["error"]["code"], "UNAUTHORIZED", "{hello}");
    // A later SIGHUP with the config fixed does reload.
    home.write_config(r#"{"gateway": {"auth": {"token": "two"}}}"#);
    gw.signal(libc::SIGHUP);
    listening_port(&gw.log, 1).unwrap_or_else(|| panic!("no reload:\n{}", gw.log.text()));
    let mut c3 = gw.client(Some("two"), "operator", "operator");
    ping_ok(&mut c3, "p4");
    stop(&mut gw);
}

#[test]
fn emonkd_stop_stops_the_gateway_and_reports_none_running() {
    let _w = Watchdog::new("cli_stop", Duration::from_secs(30));
    let home = Home::new("{}");
    let mut gw = Gateway::start(&home);
    let mut c = gw.operator();
    let out = home.cli(&["stop"]);
    let so = stdout_of(&out);
    assert_eq!(code_of(&out), 0, "{so}{}", stderr_of(&out));
    assert!(so.contains(&format!("pid {}", gw.pid)), "{so}");
    let st = gw
        .wait_exit(Duration::from_secs(3))
        .expect("the gateway exited before `stop` returned");
    assert_eq!(st.code(), Some(0), "{}", gw.log.text());
    expect_shutdown(&mut c, "gateway stopping", Value::Null, 1001);

    let out = home.cli(&["stop"]);
    assert_eq!(code_of(&out), 3, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("no gateway is running"),
        "{}",
        stderr_of(&out)
    );
}
