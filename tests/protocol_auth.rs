//! The `connect` handshake over the wire: tokens, passwords, protocol version, what a first
//! frame must be, readonly clients, and that secrets stay out of the log.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{End, Gateway, Home, Watchdog, connect_frame};

const TOKEN_CONFIG: &str = r#"{"gateway":{"auth":{"token":"t0k"}}}"#;
const WAIT: Duration = Duration::from_secs(5);

fn assert_hello_error(first: &Result<Value, End>, code: &str) {
    let v = first
        .as_ref()
        .unwrap_or_else(|e| panic!("expected hello_error {code}, got {e:?}"));
    assert_eq!(v["type"], "hello_error", "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{v}"
    );
}

fn assert_closed(end: End, code: u16) {
    match end {
        End::Closed(c, _) => assert_eq!(c, code, "close code"),
        other => panic!("expected close {code}, got {other:?}"),
    }
}

#[test]
fn right_token_gets_a_complete_hello_ok() {
    let _w = Watchdog::new("right_token", Duration::from_secs(30));
    let home = Home::new(TOKEN_CONFIG);
    let gw = Gateway::start(&home);
    let (mut ws, first) = gw.connect_with(&connect_frame(Some("t0k"), "operator", "operator"));
    let hello = first.expect("hello_ok");
    assert_eq!(hello["type"], "hello_ok", "{hello}");
    assert_eq!(hello["protocolVersion"], 1);
    assert!(
        hello["gatewayVersion"].as_str().is_some_and(|v| !v.is_empty()),
        "{hello}"
    );
    let sid = hello["sessionId"].as_str().expect("sessionId");
    assert_eq!(sid.len(), 36, "uuid: {sid}");
    assert_eq!(sid.matches('-').count(), 4, "uuid: {sid}");
    assert!(
        sid.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
        "uuid: {sid}"
    );
    assert_eq!(hello["tickIntervalMs"], 30000);
    assert_eq!(hello["maxPayload"], 26214400);
    let methods: Vec<&str> = hello["methods"]
        .as_array()
        .expect("methods")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for m in [
        "gateway.ping",
        "gateway.status",
        "channels.status",
        "channels.send",
        "events.subscribe",
    ] {
        assert!(methods.contains(&m), "{m} missing from {methods:?}");
    }
    assert!(methods.iter().any(|m| m.starts_with("agent.")), "{methods:?}");
    let events: Vec<&str> = hello["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for e in ["tick", "shutdown", "channel.message"] {
        assert!(events.contains(&e), "{e} missing from {events:?}");
    }
    // The session is usable.
    let r = ws.request("p", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].as_u64().is_some(), "{r}");
    // Every session gets its own id.
    let (_ws2, second) = gw.connect_with(&connect_frame(Some("t0k"), "operator", "operator"));
    assert_ne!(second.expect("hello_ok")["sessionId"], sid);
}

#[test]
fn wrong_or_missing_token_is_unauthorized_and_closed_1008() {
    let _w = Watchdog::new("wrong_token", Duration::from_secs(30));
    let home = Home::new(TOKEN_CONFIG);
    let gw = Gateway::start(&home);

    let (mut ws, first) = gw.connect_with(&connect_frame(Some("nope"), "operator", "operator"));
    assert_hello_error(&first, "UNAUTHORIZED");
    assert_closed(ws.expect_close(WAIT), 1008);

    let (mut ws, first) = gw.connect_with(&connect_frame(None, "operator", "operator"));
    assert_hello_error(&first, "UNAUTHORIZED");
    assert_closed(ws.expect_close(WAIT), 1008);

    // A password is not a token.
    let mut frame = connect_frame(None, "operator", "operator");
    frame["params"]["auth"] = json!({"password": "t0k"});
    let (mut ws, first) = gw.connect_with(&frame);
    assert_hello_error(&first, "UNAUTHORIZED");
    assert_closed(ws.expect_close(WAIT), 1008);

    // The gateway is still fine for a right token afterwards.
    let mut ok = gw.client(Some("t0k"), "operator", "operator");
    let r = ok.request("1", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");
}

#[test]
fn password_gateway_accepts_the_password() {
    let _w = Watchdog::new("password", Duration::from_secs(30));
    let home = Home::new(r#"{"gateway":{"auth":{"password":"hunter2"}}}"#);
    let gw = Gateway::start(&home);

    let mut frame = connect_frame(None, "operator", "operator");
    frame["params"]["auth"] = json!({"password": "hunter2"});
    let (mut ws, first) = gw.connect_with(&frame);
    let hello = first.expect("hello_ok");
    assert_eq!(hello["type"], "hello_ok", "{hello}");
    let r = ws.request("1", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");

    frame["params"]["auth"] = json!({"password": "hunter3"});
    let (mut ws, first) = gw.connect_with(&frame);
    assert_hello_error(&first, "UNAUTHORIZED");
    assert_closed(ws.expect_close(WAIT), 1008);
}

#[test]
fn protocol_version_2_is_a_mismatch_closed_1002() {
    let _w = Watchdog::new("version", Duration::from_secs(30));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);
    let mut frame = connect_frame(None, "operator", "operator");
    frame["params"]["protocolVersion"] = json!(2);
    let (mut ws, first) = gw.connect_with(&frame);
    assert_hello_error(&first, "PROTOCOL_MISMATCH");
    assert_closed(ws.expect_close(WAIT), 1002);
}

#[test]
fn first_frame_must_be_connect() {
    let _w = Watchdog::new("first_frame", Duration::from_secs(30));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);

    let request = json!({"type": "request", "requestId": "1", "method": "gateway.ping", "params": {}});
    let (mut ws, first) = gw.connect_with(&request);
    assert_hello_error(&first, "INVALID_REQUEST");
    assert_closed(ws.expect_close(WAIT), 1002);

    let mut ws = support::Ws::open(gw.port);
    ws.send_text("{this is not json");
    let first = ws.next(WAIT);
    assert_hello_error(&first, "INVALID_REQUEST");
    match ws.expect_close(WAIT) {
        End::Closed(code, _) => assert!(code == 1002 || code == 1008, "close code {code}"),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[test]
fn readonly_clients_may_only_read_status() {
    let _w = Watchdog::new("readonly", Duration::from_secs(30));
    let home = Home::new(TOKEN_CONFIG);
    let gw = Gateway::start(&home);
    let mut ro = gw.client(Some("t0k"), "operator", "readonly");

    let r = ro.request("1", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");
    let r = ro.request("2", "gateway.status", json!({}));
    assert!(r["result"]["pid"].is_u64(), "{r}");
    let r = ro.request("3", "channels.status", json!({}));
    assert!(r["result"]["channels"].is_array(), "{r}");

    let forbidden = [
        ("events.subscribe", json!({"events": ["channel.message"]})),
        (
            "channels.send",
            json!({"channel": "telegram", "to": "1", "text": "hi"}),
        ),
        ("gateway.restart", json!({})),
        ("agent.x", json!({"a": 1})),
    ];
    for (i, (method, params)) in forbidden.into_iter().enumerate() {
        let id = format!("f{i}");
        let r = ro.request(&id, method, params);
        assert_eq!(r["final"], true, "{r}");
        assert_eq!(r["error"]["code"], "FORBIDDEN", "{method}: {r}");
        assert!(r.get("result").is_none(), "{method}: {r}");
    }
    // The refused gateway.restart did not restart anything: still the same process, still
    // listening once, and the client is still connected.
    let r = ro.request("4", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");
    assert_eq!(gw.log.count("listening on ws://"), 1, "{}", gw.log.text());
}

#[test]
fn readonly_agent_is_refused() {
    let _w = Watchdog::new("readonly_agent", Duration::from_secs(30));
    let home = Home::new(TOKEN_CONFIG);
    let gw = Gateway::start(&home);
    let (mut ws, first) = gw.connect_with(&connect_frame(Some("t0k"), "agent", "readonly"));
    let v = first.expect("hello_error");
    assert_eq!(v["type"], "hello_error", "{v}");
    assert!(
        v["error"]["code"] == "INVALID_REQUEST" || v["error"]["code"] == "FORBIDDEN",
        "{v}"
    );
    match ws.expect_close(WAIT) {
        End::Closed(code, _) => assert!(code == 1008 || code == 1002, "close code {code}"),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[test]
fn secrets_never_appear_in_the_log() {
    let _w = Watchdog::new("secrets_log", Duration::from_secs(30));
    let token = "Sup3rS3cretT0ken-zq81";
    let wrong = "WrongGuess-xk42";
    let home = Home::new(&format!(r#"{{"gateway":{{"auth":{{"token":"{token}"}}}}}}"#));
    let gw = Gateway::start_with(&home, &["run", "--port", "0", "--verbose"], &[]);

    let mut ok = gw.client(Some(token), "operator", "operator");
    ok.request("1", "gateway.status", json!({}));
    let mut agent = gw.client(Some(token), "agent", "operator");
    agent.request("2", "gateway.ping", json!({}));

    let (mut bad, first) = gw.connect_with(&connect_frame(Some(wrong), "operator", "operator"));
    assert_hello_error(&first, "UNAUTHORIZED");
    assert_closed(bad.expect_close(WAIT), 1008);
    // The refusal is logged (so the log is really being checked), but not the secret.
    assert!(
        gw.log.wait_for("refused connect", WAIT).is_some(),
        "{}",
        gw.log.text()
    );

    let text = gw.log.text();
    assert!(!text.contains(token), "token leaked into the log:\n{text}");
    assert!(
        !text.contains(wrong),
        "offered credential leaked into the log:\n{text}"
    );
}

const AGENT_TOKEN_CONFIG: &str = r#"{"gateway":{"auth":{"token":"t0k","agentToken":"ag3nt"}}}"#;

#[test]
fn with_an_agent_token_only_it_takes_the_agent_role() {
    let _w = Watchdog::new("agent_token", Duration::from_secs(30));
    let home = Home::new(AGENT_TOKEN_CONFIG);
    let gw = Gateway::start(&home);

    // The operator token (or none, or a wrong one) no longer takes the agent role.
    for offered in [Some("t0k"), None, Some("nope")] {
        let (mut ws, first) = gw.connect_with(&connect_frame(offered, "agent", "operator"));
        assert_hello_error(&first, "UNAUTHORIZED");
        let message = first.unwrap()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains("agent token"), "{message}");
        assert!(message.contains("gateway.auth.agentToken"), "{message}");
        assert_closed(ws.expect_close(WAIT), 1008);
    }
    // Least privilege: the agent token is not an operator or readonly credential.
    for mode in ["operator", "readonly"] {
        let (mut ws, first) = gw.connect_with(&connect_frame(Some("ag3nt"), "operator", mode));
        assert_hello_error(&first, "UNAUTHORIZED");
        assert_closed(ws.expect_close(WAIT), 1008);
    }
    // Each role with its own credential works.
    let mut agent = gw.client(Some("ag3nt"), "agent", "operator");
    let r = agent.request("a", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");
    let mut op = gw.client(Some("t0k"), "operator", "operator");
    let r = op.request("o", "gateway.status", json!({}));
    assert!(r["result"]["pid"].is_u64(), "{r}");

    let text = gw.log.text();
    assert!(!text.contains("ag3nt") && !text.contains("\"t0k\""), "{text}");
}

#[test]
fn agent_token_from_a_file_is_read_relative_to_the_config() {
    let _w = Watchdog::new("agent_token_file", Duration::from_secs(30));
    let home = Home::new(r#"{"gateway":{"auth":{"password":"pw","agentTokenFile":"agent.token"}}}"#);
    std::fs::write(home.path().join("agent.token"), "ag3nt-from-file\n").unwrap();
    let gw = Gateway::start(&home);
    let mut agent = gw.client(Some("ag3nt-from-file"), "agent", "operator");
    let r = agent.request("a", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");
    let mut frame = connect_frame(None, "agent", "operator");
    frame["params"]["auth"] = json!({"password": "pw"});
    let (mut ws, first) = gw.connect_with(&frame);
    assert_hello_error(&first, "UNAUTHORIZED");
    assert_closed(ws.expect_close(WAIT), 1008);
}

#[test]
fn without_an_agent_token_the_operator_token_still_takes_the_agent_role() {
    let _w = Watchdog::new("no_agent_token", Duration::from_secs(30));
    let home = Home::new(TOKEN_CONFIG);
    let gw = Gateway::start(&home);
    let mut agent = gw.client(Some("t0k"), "agent", "operator");
    let r = agent.request("a", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");
}
