//! `agent.*` forwarding over the wire: requests reach the agent under the gateway's own id,
//! streamed answers come back under the caller's id, and every way an agent can fail the
//! caller (absent, gone, silent, superseded) ends the request with the contract's error.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{End, Gateway, Home, Watchdog, Ws};

const WAIT: Duration = Duration::from_secs(5);

fn request(ws: &mut Ws, id: &str, method: &str, params: Value) {
    ws.send_json(&json!({"type": "request", "requestId": id, "method": method, "params": params}));
}

/// The next forwarded request the agent receives (skipping events).
fn agent_receives(agent: &mut Ws) -> Value {
    let v = agent
        .next_non_tick(WAIT)
        .unwrap_or_else(|e| panic!("agent got no request: {e:?}"));
    assert_eq!(v["type"], "request", "{v}");
    v
}

fn answer(agent: &mut Ws, id: &str, is_final: bool, result: Value) {
    agent.send_json(&json!({"type": "response", "requestId": id, "final": is_final, "result": result}));
}

/// The next non-event frame for the operator, which must be a response to `id`.
fn response_to(op: &mut Ws, id: &str, timeout: Duration) -> Value {
    let v = op
        .next_non_tick(timeout)
        .unwrap_or_else(|e| panic!("no response to {id}: {e:?}"));
    assert_eq!(v["type"], "response", "{v}");
    assert_eq!(v["requestId"], id, "{v}");
    v
}

fn assert_error(v: &Value, code: &str) {
    assert_eq!(v["final"], true, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v.get("result").is_none(), "{v}");
}

/// Assert that nothing was relayed to `op` for what the agent sent so far: a ping round trip
/// from the agent means the loop has handed its frames to the router, and a router-answered
/// request from `op` after that is queued behind anything the router relayed to `op`.
fn assert_nothing_relayed(agent: &mut Ws, op: &mut Ws, id: &str) {
    let r = agent.request(&format!("{id}-agent-ping"), "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");
    request(op, id, "gateway.status", json!({}));
    let v = response_to(op, id, WAIT);
    assert!(v["result"]["pid"].is_u64(), "{v}");
}

#[test]
fn no_agent_is_unavailable() {
    let _w = Watchdog::new("no_agent", Duration::from_secs(30));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);
    let mut op = gw.operator();
    let r = op.request("1", "agent.echo", json!({"x": 1}));
    assert_error(&r, "UNAVAILABLE");
    assert_eq!(r["error"]["retryable"], true, "{r}");
}

#[test]
fn streamed_answer_is_relayed_in_order_under_the_callers_id() {
    let _w = Watchdog::new("streamed", Duration::from_secs(30));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);
    let mut agent = gw.client(None, "agent", "operator");
    let mut op = gw.operator();

    let params = json!({"text": "héllo \"quoted\"", "n": [1, 2.5, null], "nested": {"a": {"b": true}}});
    request(&mut op, "op-7", "agent.echo", params.clone());
    let fwd = agent_receives(&mut agent);
    let fid = fwd["requestId"].as_str().expect("requestId").to_owned();
    assert!(fid.starts_with("gw-"), "{fwd}");
    assert_eq!(fwd["method"], "agent.echo", "{fwd}");
    assert_eq!(fwd["params"], params, "{fwd}");

    for i in 0..3 {
        answer(&mut agent, &fid, false, json!({"chunk": i}));
    }
    answer(&mut agent, &fid, true, json!({"done": true, "echo": params}));

    for i in 0..3 {
        let v = response_to(&mut op, "op-7", WAIT);
        assert_eq!(v["final"], false, "{v}");
        assert_eq!(v["result"], json!({"chunk": i}), "{v}");
    }
    let v = response_to(&mut op, "op-7", WAIT);
    assert_eq!(v["final"], true, "{v}");
    assert_eq!(v["result"], json!({"done": true, "echo": params}), "{v}");

    // Nothing more comes for that request: a late chunk for a finished request is dropped.
    answer(&mut agent, &fid, false, json!({"late": true}));
    assert_nothing_relayed(&mut agent, &mut op, "after");

    // Each request gets a fresh id at the agent.
    request(&mut op, "op-8", "agent.other", json!({}));
    let fwd2 = agent_receives(&mut agent);
    assert_ne!(fwd2["requestId"], fid.as_str());
    assert_eq!(fwd2["method"], "agent.other");
    answer(&mut agent, fwd2["requestId"].as_str().unwrap(), true, json!(1));
    let v = response_to(&mut op, "op-8", WAIT);
    assert_eq!(v["result"], 1, "{v}");
}

#[test]
fn a_null_result_is_relayed_as_the_final_answer() {
    // What a Python handler returning None sends: a present `result` key, null included.
    let _w = Watchdog::new("null_result", Duration::from_secs(30));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);
    let mut agent = gw.client(None, "agent", "operator");
    let mut op = gw.operator();

    request(&mut op, "n1", "agent.noop", json!({}));
    let fwd = agent_receives(&mut agent);
    answer(&mut agent, fwd["requestId"].as_str().unwrap(), true, Value::Null);
    let v = response_to(&mut op, "n1", WAIT);
    assert_eq!(v["final"], true, "{v}");
    assert!(v.get("result").is_some_and(Value::is_null), "{v}");
    assert!(v.get("error").is_none(), "{v}");
}

#[test]
fn agent_error_is_relayed() {
    let _w = Watchdog::new("agent_error", Duration::from_secs(30));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);
    let mut agent = gw.client(None, "agent", "operator");
    let mut op = gw.operator();

    request(&mut op, "e1", "agent.fail", json!({}));
    let fwd = agent_receives(&mut agent);
    let error =
        json!({"code": "NOT_FOUND", "message": "no such thing", "retryable": false, "retryAfterMs": null});
    agent.send_json(
        &json!({"type": "response", "requestId": fwd["requestId"], "final": true, "error": error}),
    );
    let v = response_to(&mut op, "e1", WAIT);
    assert_eq!(v["final"], true, "{v}");
    assert_eq!(v["error"], error, "{v}");
    assert!(v.get("result").is_none(), "{v}");
}

#[test]
fn agent_leaving_mid_request_is_unavailable() {
    let _w = Watchdog::new("agent_leaves", Duration::from_secs(30));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);
    let mut agent = gw.client(None, "agent", "operator");
    let mut op = gw.operator();

    request(&mut op, "L", "agent.slow", json!({}));
    let fwd = agent_receives(&mut agent);
    answer(
        &mut agent,
        fwd["requestId"].as_str().unwrap(),
        false,
        json!("partial"),
    );
    let v = response_to(&mut op, "L", WAIT);
    assert_eq!(v["final"], false, "{v}");
    drop(agent); // no close frame: the socket just goes away
    let v = response_to(&mut op, "L", WAIT);
    assert_error(&v, "UNAVAILABLE");

    // And with the agent gone, new requests are UNAVAILABLE right away.
    let r = op.request("L2", "agent.slow", json!({}));
    assert_error(&r, "UNAVAILABLE");
}

#[test]
fn silent_agent_times_out() {
    let _w = Watchdog::new("agent_timeout", Duration::from_secs(30));
    let home = Home::new(r#"{"gateway":{"agentTimeoutMs":300}}"#);
    let gw = Gateway::start(&home);
    let mut agent = gw.client(None, "agent", "operator");
    let mut op = gw.operator();

    let sent = Instant::now();
    request(&mut op, "T", "agent.silent", json!({}));
    let fwd = agent_receives(&mut agent);
    let v = response_to(&mut op, "T", WAIT);
    let took = sent.elapsed();
    assert_error(&v, "TIMEOUT");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "TIMEOUT after {took:?}"
    );
    // A late answer after the timeout goes nowhere.
    answer(
        &mut agent,
        fwd["requestId"].as_str().unwrap(),
        true,
        json!("late"),
    );
    assert_nothing_relayed(&mut agent, &mut op, "P");
}

#[test]
fn chunks_reset_the_agent_timeout() {
    let _w = Watchdog::new("chunks_reset", Duration::from_secs(30));
    let home = Home::new(r#"{"gateway":{"agentTimeoutMs":300}}"#);
    let gw = Gateway::start(&home);
    let mut agent = gw.client(None, "agent", "operator");
    let mut op = gw.operator();

    request(&mut op, "S", "agent.stream", json!({}));
    let fwd = agent_receives(&mut agent);
    let fid = fwd["requestId"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let streamer = thread::spawn(move || {
        // A chunk every 200 ms for 1 s: longer than the timeout, never silent for that long.
        for i in 0..5 {
            thread::sleep(Duration::from_millis(200));
            answer(&mut agent, &fid, false, json!({"i": i}));
        }
        answer(&mut agent, &fid, true, json!({"done": true}));
        agent
    });
    for i in 0..5 {
        let v = response_to(&mut op, "S", WAIT);
        assert!(v.get("error").is_none(), "chunk {i}: {v}");
        assert_eq!(v["final"], false, "{v}");
        assert_eq!(v["result"], json!({"i": i}), "{v}");
    }
    let v = response_to(&mut op, "S", WAIT);
    assert_eq!(v["final"], true, "{v}");
    assert_eq!(v["result"], json!({"done": true}), "{v}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    let _agent = streamer.join().unwrap();
}

#[test]
fn newer_agent_supersedes_the_older() {
    let _w = Watchdog::new("supersede", Duration::from_secs(30));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);
    let mut first = gw.client(None, "agent", "operator");
    let mut op = gw.operator();

    // A request pending at the first agent fails when it is superseded.
    request(&mut op, "pending", "agent.work", json!({}));
    agent_receives(&mut first);

    let mut second = gw.client(None, "agent", "operator");
    match first.expect_close(WAIT) {
        End::Closed(code, reason) => {
            assert_eq!(code, 1008);
            assert_eq!(reason, "superseded");
        }
        other => panic!("first agent: expected close 1008, got {other:?}"),
    }
    let v = response_to(&mut op, "pending", WAIT);
    assert_error(&v, "UNAVAILABLE");

    request(&mut op, "2", "agent.echo", json!({"to": "second"}));
    let fwd = agent_receives(&mut second);
    assert_eq!(fwd["params"], json!({"to": "second"}));
    answer(
        &mut second,
        fwd["requestId"].as_str().unwrap(),
        true,
        json!("from second"),
    );
    let v = response_to(&mut op, "2", WAIT);
    assert_eq!(v["result"], "from second", "{v}");

    let s = op.request("st", "gateway.status", json!({}));
    assert_eq!(s["result"]["clients"]["agents"], 1, "{s}");
}

#[test]
fn response_frames_from_operators_are_errors() {
    let _w = Watchdog::new("operator_response", Duration::from_secs(30));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);
    let mut op = gw.operator();
    op.send_json(&json!({"type": "response", "requestId": "gw-1", "final": true, "result": {}}));
    let v = op.next_non_tick(WAIT).expect("error frame");
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["code"], "INVALID_REQUEST", "{v}");
    let r = op.request("1", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");
}

#[test]
fn agent_response_for_unknown_id_is_ignored() {
    let _w = Watchdog::new("unknown_response", Duration::from_secs(30));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);
    let mut agent = gw.client(None, "agent", "operator");
    let mut op = gw.operator();

    answer(&mut agent, "gw-999999", true, json!({"x": 1}));
    answer(&mut agent, "gw-999998", false, json!({"x": 2}));
    agent.send_json(
        &json!({"type": "response", "requestId": "nope", "error": {"code": "INTERNAL", "message": "x"}}),
    );

    let r = agent.request("a", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");
    let r = op.request("o", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");
    assert_nothing_relayed(&mut agent, &mut op, "st");

    // Forwarding still works afterwards.
    request(&mut op, "f", "agent.echo", json!({}));
    let fwd = agent_receives(&mut agent);
    answer(&mut agent, fwd["requestId"].as_str().unwrap(), true, json!("ok"));
    assert_eq!(response_to(&mut op, "f", WAIT)["result"], "ok");
}

#[test]
fn same_request_id_from_two_operators_is_kept_apart() {
    let _w = Watchdog::new("same_id", Duration::from_secs(30));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);
    let mut agent = gw.client(None, "agent", "operator");
    let mut a = gw.operator();
    let mut b = gw.operator();

    request(&mut a, "1", "agent.who", json!({"who": "a"}));
    request(&mut b, "1", "agent.who", json!({"who": "b"}));
    let f1 = agent_receives(&mut agent);
    let f2 = agent_receives(&mut agent);
    assert_ne!(f1["requestId"], f2["requestId"]);
    // Answer in reverse order, echoing the caller's params.
    for f in [&f2, &f1] {
        answer(
            &mut agent,
            f["requestId"].as_str().unwrap(),
            true,
            json!({"answer": f["params"]["who"]}),
        );
    }
    let ra = response_to(&mut a, "1", WAIT);
    let rb = response_to(&mut b, "1", WAIT);
    assert_eq!(ra["result"], json!({"answer": "a"}), "{ra}");
    assert_eq!(rb["result"], json!({"answer": "b"}), "{rb}");
    // Exactly one answer each.
    assert_eq!(a.next_non_tick(Duration::from_millis(200)), Err(End::Timeout));
    assert_eq!(b.next_non_tick(Duration::from_millis(100)), Err(End::Timeout));
}
