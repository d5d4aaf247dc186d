//! Frames after `connect`: malformed and unexpected frames, the gateway's own methods, tick
//! events and their `seq`, and the Origin check of the handshake.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::{Gateway, Home, Watchdog, Ws};
use tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The next frame that is not a `tick` event.
fn next_frame(ws: &mut Ws) -> Value {
    ws.next_non_tick(WAIT)
        .unwrap_or_else(|e| panic!("expected a frame, got {e:?}"))
}

fn assert_error_frame(v: &Value, code: &str) {
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    assert!(v.get("requestId").is_none(), "{v}");
}

fn assert_error_response(v: &Value, id: &str, code: &str) {
    assert_eq!(v["type"], "response", "{v}");
    assert_eq!(v["requestId"], id, "{v}");
    assert_eq!(v["final"], true, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    assert!(v["error"]["retryable"].is_boolean(), "{v}");
    assert!(v.get("result").is_none(), "{v}");
}

fn assert_usable(ws: &mut Ws, id: &str) {
    let r = ws.request(id, "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");
}

#[test]
fn bad_frames_get_errors_and_the_connection_stays_usable() {
    let _w = Watchdog::new("bad_frames", Duration::from_secs(30));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);
    let mut c = gw.operator();

    c.send_text("{not json at all");
    assert_error_frame(&next_frame(&mut c), "INVALID_REQUEST");
    assert_usable(&mut c, "p1");

    c.send_json(&json!({"type": "bogus", "requestId": "x"}));
    assert_error_frame(&next_frame(&mut c), "INVALID_REQUEST");
    assert_usable(&mut c, "p2");

    // A request with an id but no method is answered under that id.
    c.send_json(&json!({"type": "request", "requestId": "nomethod"}));
    assert_error_response(&next_frame(&mut c), "nomethod", "INVALID_REQUEST");
    assert_usable(&mut c, "p3");

    // Params must be an object.
    for (i, params) in [json!([1, 2]), json!("str"), json!(5)].into_iter().enumerate() {
        let id = format!("badparams{i}");
        c.send_json(
            &json!({"type": "request", "requestId": id, "method": "gateway.status", "params": params}),
        );
        assert_error_response(&next_frame(&mut c), &id, "INVALID_REQUEST");
    }
    assert_usable(&mut c, "p4");

    c.ws.send(Message::binary(vec![1u8, 2, 3])).expect("send binary");
    assert_error_frame(&next_frame(&mut c), "INVALID_REQUEST");
    assert_usable(&mut c, "p5");

    // A second connect is an error, not a new session.
    c.send_json(&support::connect_frame(None, "operator", "operator"));
    assert_error_frame(&next_frame(&mut c), "INVALID_REQUEST");
    assert_usable(&mut c, "p6");

    let r = c.request("u", "no.such.method", json!({}));
    assert_error_response(&r, "u", "UNKNOWN_METHOD");
    assert_usable(&mut c, "p7");
}

#[test]
fn ping_and_status_report_real_values() {
    let _w = Watchdog::new("ping_status", Duration::from_secs(30));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);
    let mut op1 = gw.operator();
    let _op2 = gw.operator();
    let _agent = gw.client(None, "agent", "operator");

    let before = now_ms();
    let r = op1.request("ping", "gateway.ping", json!({}));
    let after = now_ms();
    assert_eq!(r["final"], true, "{r}");
    let ts = r["result"]["ts"].as_u64().expect("ts");
    assert!(
        ts + 1000 >= before && ts <= after + 1000,
        "ts {ts} not within [{before}, {after}]"
    );

    let r = op1.request("st", "gateway.status", json!({}));
    let s = &r["result"];
    assert!(s["version"].as_str().is_some_and(|v| !v.is_empty()), "{r}");
    assert_eq!(s["pid"], gw.pid, "{r}");
    let uptime = s["uptimeMs"].as_u64().expect("uptimeMs");
    assert!(uptime < 60_000, "{r}");
    assert_eq!(s["bind"], "127.0.0.1", "{r}");
    assert_eq!(s["port"], gw.port, "{r}");
    assert_eq!(s["clients"]["total"], 3, "{r}");
    assert_eq!(s["clients"]["agents"], 1, "{r}");
    assert_eq!(s["clients"]["operators"], 2, "{r}");
    assert_eq!(s["channels"], json!([]), "{r}");

    // Uptime moves forward.
    let r2 = eventually_status(&mut op1, |s| s["uptimeMs"].as_u64().unwrap() > uptime);
    assert!(r2["uptimeMs"].as_u64().unwrap() > uptime);
}

/// Poll `gateway.status` until `pred` holds (bounded).
fn eventually_status(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    let mut n = 0;
    loop {
        n += 1;
        let r = ws.request(&format!("poll{n}"), "gateway.status", json!({}));
        if pred(&r["result"]) {
            return r["result"].clone();
        }
        assert!(Instant::now() < deadline, "status never matched: {r}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn status_counts_follow_disconnects() {
    let _w = Watchdog::new("status_counts", Duration::from_secs(30));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);
    let mut op = gw.operator();
    let other = gw.operator();
    let agent = gw.client(None, "agent", "operator");
    drop(other);
    drop(agent);
    let s = eventually_status(&mut op, |s| s["clients"]["total"] == 1);
    assert_eq!(s["clients"]["agents"], 0, "{s}");
    assert_eq!(s["clients"]["operators"], 1, "{s}");
}

#[test]
fn channel_methods_without_channels() {
    let _w = Watchdog::new("channels", Duration::from_secs(30));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);
    let mut c = gw.operator();

    let r = c.request("1", "channels.status", json!({}));
    assert_eq!(r["final"], true, "{r}");
    assert_eq!(r["result"], json!({"channels": []}), "{r}");

    let r = c.request(
        "2",
        "channels.send",
        json!({"channel": "telegram", "to": "42", "text": "hi"}),
    );
    assert_error_response(&r, "2", "NOT_FOUND");

    let r = c.request("3", "channels.send", json!({"channel": "telegram", "to": "42"}));
    assert_error_response(&r, "3", "INVALID_REQUEST");

    let r = c.request("4", "events.subscribe", json!({"events": ["channel.message"]}));
    assert_eq!(r["final"], true, "{r}");
    assert_eq!(r["result"], json!({"events": ["channel.message"]}), "{r}");

    let r = c.request("5", "events.subscribe", json!({"events": ["no.such.event"]}));
    assert_error_response(&r, "5", "INVALID_REQUEST");

    assert_usable(&mut c, "6");
}

#[test]
fn ticks_arrive_with_gapless_seq() {
    let _w = Watchdog::new("ticks", Duration::from_secs(30));
    let home = Home::new(r#"{"gateway":{"tickIntervalMs":100}}"#);
    let gw = Gateway::start(&home);
    let mut c = gw.operator();
    let mut other = gw.operator();

    let mut ticks = 0;
    let mut seqs = Vec::new();
    let started = Instant::now();
    let mut n = 0;
    while ticks < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "only {ticks} ticks in 10 s"
        );
        // Interleave requests so responses and events share the connection.
        n += 1;
        let id = format!("r{n}");
        c.send_json(&json!({"type": "request", "requestId": id, "method": "gateway.ping", "params": {}}));
        loop {
            let v = c.next(WAIT).expect("frame");
            if v["type"] == "event" {
                assert_eq!(v["event"], "tick", "{v}");
                let ts = v["params"]["ts"].as_u64().expect("tick ts");
                assert!(ts.abs_diff(now_ms()) < 10_000, "{v}");
                seqs.push(v["seq"].as_u64().expect("seq"));
                ticks += 1;
            } else {
                assert_eq!(v["type"], "response", "{v}");
                assert_eq!(v["requestId"], id, "{v}");
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "seq must count 1, 2, 3, ... with no gaps");

    // The other client, which did not read meanwhile, also has its own gapless sequence.
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        let v = other.next(WAIT).expect("tick");
        assert_eq!(v["type"], "event", "{v}");
        assert_eq!(v["event"], "tick", "{v}");
        assert!(v["params"]["ts"].is_u64(), "{v}");
        seqs.push(v["seq"].as_u64().expect("seq"));
    }
    assert_eq!(seqs, vec![1, 2, 3]);
}

#[test]
fn origin_check() {
    let _w = Watchdog::new("origin", Duration::from_secs(30));
    let home = Home::new(r#"{"gateway":{"allowedOrigins":["https://ok.example"]}}"#);
    let gw = Gateway::start(&home);

    let refused = Ws::open_with(gw.port, Some("https://evil.example"));
    assert_eq!(refused.err().as_deref(), Some("HTTP 403"));
    let refused = Ws::open_with(gw.port, Some("https://ok.example.evil"));
    assert_eq!(refused.err().as_deref(), Some("HTTP 403"));

    for origin in [Some("https://ok.example"), None] {
        let mut ws = Ws::open_with(gw.port, origin).expect("handshake");
        ws.send_json(&support::connect_frame(None, "operator", "operator"));
        let hello = ws.next(WAIT).expect("hello");
        assert_eq!(hello["type"], "hello_ok", "{origin:?}: {hello}");
        assert_usable(&mut ws, "1");
    }
    assert!(
        gw.log.wait_for("evil.example", WAIT).is_some(),
        "the refusal names the origin in the log"
    );
}

#[test]
fn default_config_refuses_every_origin() {
    let _w = Watchdog::new("origin_default", Duration::from_secs(30));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);
    assert_eq!(
        Ws::open_with(gw.port, Some("https://evil.example"))
            .err()
            .as_deref(),
        Some("HTTP 403")
    );
    let mut c = gw.operator();
    assert_usable(&mut c, "1");
}
