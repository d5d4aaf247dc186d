//! Behaviour tests for [`GatewayClient`] against the in-process fake gateway. Every test
//! runs under a watchdog and every wait has a deadline, so a bug fails a test instead of
//! hanging the suite.

use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, bounded};
use serde_json::{Value, json};

use super::fake_gateway::{FakeGateway, Script};
use super::*;
use crate::exit;

const SEC: Duration = Duration::from_secs(1);

/// Runs `test` on its own thread and fails if it takes longer than `limit`.
fn watchdog(limit: Duration, test: impl FnOnce() + Send + 'static) {
    let (done_tx, done) = bounded::<()>(0);
    let handle = thread::spawn(move || {
        let _done = done_tx;
        test();
    });
    match done.recv_timeout(limit) {
        Err(RecvTimeoutError::Timeout) => panic!("test did not finish within {limit:?}"),
        _ => {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

fn opts(fake: &FakeGateway) -> ClientOptions {
    ClientOptions {
        token: Some("secret".into()),
        client_name: "test".into(),
        connect_timeout: 2 * SEC,
        ..ClientOptions::new(fake.url.clone())
    }
}

/// The next incoming item that is not a `tick`, within `timeout`.
fn next(client: &GatewayClient, timeout: Duration) -> Option<Incoming> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match client.next_incoming(left)? {
            Incoming::Event { name, .. } if name == "tick" => continue,
            other => return Some(other),
        }
    }
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// An agent connected to a fake gateway that forwards it a request `fwd-1` (`agent.ask`).
fn forwarding_agent() -> (FakeGateway, GatewayClient) {
    let fake = FakeGateway::start(Script {
        forward: true,
        ..Script::default()
    });
    let client = GatewayClient::connect(ClientOptions {
        role: Role::Agent,
        ..opts(&fake)
    })
    .unwrap();
    (fake, client)
}

#[test]
fn client_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<GatewayClient>();
}

#[test]
fn connect_and_call() {
    watchdog(10 * SEC, || {
        let fake = FakeGateway::start(Script::default());
        let client = GatewayClient::connect(opts(&fake)).unwrap();
        let params = fake.connects.recv_timeout(SEC).unwrap();
        assert_eq!(params["clientName"], "test");
        assert_eq!(params["role"], "operator");
        assert_eq!(params["auth"], json!({ "token": "secret" }));

        let hello = client.hello();
        assert_eq!(hello.session_id, "session-1");
        assert_eq!(hello.gateway_version, "fake");
        assert_eq!(hello.tick_interval_ms, 30_000);
        assert!(hello.methods.contains(&"echo".to_owned()));
        assert!(client.is_connected());

        let answer = client.call("echo", json!({ "x": 1 }), 2 * SEC).unwrap();
        assert_eq!(answer, json!({ "x": 1 }));
        let err = client.call("fail", json!({}), 2 * SEC).unwrap_err();
        let ClientError::Remote(remote) = err else {
            panic!("expected a remote error, got {err:?}");
        };
        assert_eq!(remote.code, "NOT_FOUND");
        assert!(!remote.retryable);
        client.close();
    });
}

#[test]
fn concurrent_calls_get_their_own_answers() {
    watchdog(10 * SEC, || {
        let fake = FakeGateway::start(Script::default());
        let client = GatewayClient::connect(opts(&fake)).unwrap();
        thread::scope(|s| {
            for i in 0..8 {
                let client = &client;
                s.spawn(move || {
                    for j in 0..20 {
                        let v = client.call("echo", json!([i, j]), 2 * SEC).unwrap();
                        assert_eq!(v, json!([i, j]));
                    }
                });
            }
        });
    });
}

#[test]
fn call_timeout_drops_the_late_answer() {
    watchdog(10 * SEC, || {
        let fake = FakeGateway::start(Script::default());
        let client = GatewayClient::connect(opts(&fake)).unwrap();
        let start = Instant::now();
        let err = client
            .call("late", json!({}), Duration::from_millis(100))
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(250));
        assert_eq!(
            err,
            ClientError::Timeout {
                method: "late".into(),
                after: Duration::from_millis(100)
            }
        );
        // The fake answers `late` first, then this; only this one may come back.
        let answer = client.call("echo", json!("after"), 2 * SEC).unwrap();
        assert_eq!(answer, json!("after"));
        let err = client
            .call("slow", json!({}), Duration::from_millis(50))
            .unwrap_err();
        assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    });
}

#[test]
fn streaming_delivers_every_chunk_then_the_final_result() {
    watchdog(10 * SEC, || {
        let fake = FakeGateway::start(Script::default());
        let client = GatewayClient::connect(opts(&fake)).unwrap();
        let mut chunks = Vec::new();
        let done = client
            .call_streaming("stream", json!({}), 2 * SEC, &mut |c| chunks.push(c.clone()))
            .unwrap();
        assert_eq!(
            chunks,
            vec![json!({"chunk": 0}), json!({"chunk": 1}), json!({"chunk": 2})]
        );
        assert_eq!(done, json!({ "chunks": 3 }));
        // Plain `call` skips the chunks.
        assert_eq!(
            client.call("stream", json!({}), 2 * SEC).unwrap(),
            json!({ "chunks": 3 })
        );
    });
}

#[test]
fn events_are_delivered() {
    watchdog(10 * SEC, || {
        let fake = FakeGateway::start(Script::default());
        let client = GatewayClient::connect(opts(&fake)).unwrap();
        client.call("emit", json!({}), Duration::from_millis(200)).ok();
        assert_eq!(
            next(&client, 2 * SEC),
            Some(Incoming::Event {
                name: "test.event".into(),
                seq: 1,
                params: json!({ "n": 1 })
            })
        );
        assert_eq!(client.next_incoming(Duration::from_millis(20)), None);
    });
}

#[test]
fn unauthorized_on_connect_is_returned_and_not_retried() {
    watchdog(10 * SEC, || {
        let fake = FakeGateway::start(Script {
            reject_from: Some(1),
            ..Script::default()
        });
        let err = GatewayClient::connect(opts(&fake)).unwrap_err();
        assert_eq!(
            err,
            ClientError::Rejected {
                code: "UNAUTHORIZED".into(),
                message: "bad token".into()
            }
        );
        assert!(err.is_final());
        assert!(err.to_string().contains("--token"), "{err}");
        thread::sleep(Duration::from_millis(1200));
        assert_eq!(fake.connections(), 1);
    });
}

#[test]
fn unauthorized_on_reconnect_is_final() {
    watchdog(15 * SEC, || {
        let fake = FakeGateway::start(Script {
            reject_from: Some(2),
            ..Script::default()
        });
        let client = GatewayClient::connect(opts(&fake)).unwrap();
        let err = client.call("drop", json!({}), 2 * SEC).unwrap_err();
        assert!(matches!(err, ClientError::Disconnected(_)), "{err:?}");
        // First retry after 1 s (+ jitter); it is refused and must be the last.
        wait_for("the client to give up", 4 * SEC, || {
            client.stop_reason().is_some()
        });
        let rejected = ClientError::Rejected {
            code: "UNAUTHORIZED".into(),
            message: "bad token".into(),
        };
        assert_eq!(client.stop_reason(), Some(rejected.clone()));
        assert_eq!(client.call("echo", json!({}), SEC), Err(rejected));
        assert!(!client.is_connected());
        thread::sleep(Duration::from_millis(2500));
        assert_eq!(fake.connections(), 2, "the client retried after UNAUTHORIZED");
        // Disconnected was delivered, and the queue ends once the client gave up.
        assert!(matches!(
            next(&client, SEC),
            Some(Incoming::Disconnected { code: None, .. })
        ));
        assert_eq!(client.next_incoming(5 * SEC), None);
    });
}

#[test]
fn reconnects_after_a_drop_and_fails_the_call_in_flight() {
    watchdog(15 * SEC, || {
        let fake = FakeGateway::start(Script::default());
        let client = GatewayClient::connect(opts(&fake)).unwrap();
        let start = Instant::now();
        let err = client.call("drop", json!({}), 5 * SEC).unwrap_err();
        assert!(matches!(err, ClientError::Disconnected(_)), "{err:?}");
        assert!(start.elapsed() < SEC, "pending call not failed promptly");

        let Some(Incoming::Disconnected { code: None, .. }) = next(&client, SEC) else {
            panic!("no Disconnected notice");
        };
        // While offline, calls fail at once rather than queueing for later.
        if !client.is_connected() {
            let err = client.call("echo", json!({}), 2 * SEC).unwrap_err();
            assert!(matches!(err, ClientError::Disconnected(_)), "{err:?}");
        }
        let Some(Incoming::Reconnected(hello)) = next(&client, 3 * SEC) else {
            panic!("no Reconnected notice");
        };
        assert_eq!(hello.session_id, "session-2");
        assert_eq!(client.hello().session_id, "session-2");
        assert_eq!(client.call("echo", json!(2), 2 * SEC).unwrap(), json!(2));
        assert_eq!(fake.connections(), 2);
        assert_eq!(client.stop_reason(), None);
    });
}

#[test]
fn follows_a_gateway_restart_quickly() {
    watchdog(10 * SEC, || {
        let fake = FakeGateway::start(Script::default());
        let client = GatewayClient::connect(opts(&fake)).unwrap();
        let err = client.call("restart", json!({}), 2 * SEC).unwrap_err();
        assert!(matches!(err, ClientError::Disconnected(_)), "{err:?}");
        let Some(Incoming::Event { name, params, .. }) = next(&client, SEC) else {
            panic!("no shutdown event");
        };
        assert_eq!(name, "shutdown");
        assert_eq!(params["restartExpectedMs"], 100);
        let Some(Incoming::Disconnected { code, .. }) = next(&client, SEC) else {
            panic!("no Disconnected notice");
        };
        assert_eq!(code, Some(1012));
        let dropped = Instant::now();
        // restartExpectedMs is 100: well before the normal 1 s backoff.
        let Some(Incoming::Reconnected(_)) = next(&client, 2 * SEC) else {
            panic!("no Reconnected notice");
        };
        assert!(
            dropped.elapsed() < Duration::from_millis(700),
            "took {:?} to follow the restart",
            dropped.elapsed()
        );
        assert_eq!(client.call("echo", json!(1), 2 * SEC).unwrap(), json!(1));
    });
}

#[test]
fn superseded_agent_does_not_reconnect() {
    watchdog(10 * SEC, || {
        let fake = FakeGateway::start(Script::default());
        let client = GatewayClient::connect(ClientOptions {
            role: Role::Agent,
            ..opts(&fake)
        })
        .unwrap();
        let err = client.call("supersede", json!({}), 2 * SEC).unwrap_err();
        assert!(matches!(err, ClientError::Disconnected(_)), "{err:?}");
        let Some(Incoming::Disconnected { code, reason }) = next(&client, SEC) else {
            panic!("no Disconnected notice");
        };
        assert_eq!(code, Some(1008));
        assert!(reason.contains("superseded"), "{reason}");
        wait_for("the client to give up", SEC, || client.stop_reason().is_some());
        let err = client.call("echo", json!({}), SEC).unwrap_err();
        assert!(
            matches!(&err, ClientError::Disconnected(why) if why.contains("another agent")),
            "{err:?}"
        );
        thread::sleep(Duration::from_millis(1500));
        assert_eq!(fake.connections(), 1);
    });
}

#[test]
fn no_reconnect_when_disabled() {
    watchdog(10 * SEC, || {
        let fake = FakeGateway::start(Script::default());
        let client = GatewayClient::connect(ClientOptions {
            reconnect: false,
            ..opts(&fake)
        })
        .unwrap();
        client.call("drop", json!({}), 2 * SEC).unwrap_err();
        assert!(matches!(next(&client, SEC), Some(Incoming::Disconnected { .. })));
        let start = Instant::now();
        assert_eq!(client.next_incoming(5 * SEC), None);
        assert!(
            start.elapsed() < SEC,
            "next_incoming blocked after the client stopped"
        );
        assert!(matches!(client.stop_reason(), Some(ClientError::Disconnected(_))));
        thread::sleep(Duration::from_millis(1200));
        assert_eq!(fake.connections(), 1);
    });
}

#[test]
fn silent_gateway_is_detected_as_dead_and_reconnected() {
    watchdog(10 * SEC, || {
        let fake = FakeGateway::start(Script {
            tick_interval_ms: 200,
            silent: true,
            ..Script::default()
        });
        let client = GatewayClient::connect(opts(&fake)).unwrap();
        let start = Instant::now();
        let err = client.call("echo", json!({}), 5 * SEC).unwrap_err();
        let elapsed = start.elapsed();
        assert!(matches!(err, ClientError::Disconnected(_)), "{err:?}");
        assert!(
            elapsed >= Duration::from_millis(350) && elapsed < SEC,
            "dead link detected after {elapsed:?}"
        );
        let Some(Incoming::Disconnected { code: None, reason }) = next(&client, SEC) else {
            panic!("no Disconnected notice");
        };
        assert!(reason.contains("presumed dead"), "{reason}");
        assert!(matches!(next(&client, 3 * SEC), Some(Incoming::Reconnected(_))));
        assert_eq!(fake.connections(), 2);
    });
}

#[test]
fn ticks_keep_a_quiet_link_alive() {
    watchdog(10 * SEC, || {
        let fake = FakeGateway::start(Script {
            tick_interval_ms: 200,
            ticks: true,
            ..Script::default()
        });
        let client = GatewayClient::connect(opts(&fake)).unwrap();
        let mut ticks = 0;
        let until = Instant::now() + SEC;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match client.next_incoming(left) {
                Some(Incoming::Event { name, .. }) if name == "tick" => ticks += 1,
                None => break,
                Some(other) => panic!("unexpected {other:?}"),
            }
        }
        assert!(ticks >= 5, "only {ticks} ticks");
        assert!(client.is_connected());
        assert_eq!(fake.connections(), 1);
    });
}

#[test]
fn agent_receives_and_answers_forwarded_requests() {
    watchdog(10 * SEC, || {
        let (fake, client) = forwarding_agent();
        assert_eq!(fake.connects.recv_timeout(SEC).unwrap()["role"], "agent");
        let Some(Incoming::Request {
            request_id,
            method,
            params,
        }) = next(&client, 2 * SEC)
        else {
            panic!("no forwarded request");
        };
        assert_eq!((request_id.as_str(), method.as_str()), ("fwd-1", "agent.ask"));
        assert_eq!(params, json!({ "q": "hi" }));

        client
            .respond(&request_id, Ok(json!({ "part": 1 })), false)
            .unwrap();
        client
            .respond(&request_id, Ok(json!({ "answer": 42 })), true)
            .unwrap();
        let chunk = fake.agent_frames.recv_timeout(2 * SEC).unwrap();
        assert_eq!(chunk["requestId"], "fwd-1");
        assert_eq!(chunk["final"], false);
        assert_eq!(chunk["result"], json!({ "part": 1 }));
        let last = fake.agent_frames.recv_timeout(2 * SEC).unwrap();
        assert_eq!(last["final"], true);
        assert_eq!(last["result"], json!({ "answer": 42 }));

        // Answered already, and never forwarded: refused locally, nothing sent.
        for id in ["fwd-1", "nope"] {
            let err = client.respond(id, Ok(Value::Null), true).unwrap_err();
            assert_eq!(err, ClientError::UnknownRequest(id.into()));
        }
        assert!(
            fake.agent_frames
                .recv_timeout(Duration::from_millis(200))
                .is_err()
        );
    });
}

#[test]
fn agent_error_answer_is_final() {
    watchdog(10 * SEC, || {
        let (fake, client) = forwarding_agent();
        let Some(Incoming::Request { request_id, .. }) = next(&client, 2 * SEC) else {
            panic!("no forwarded request");
        };
        let err = RemoteError::retryable("UNAVAILABLE", "model loading", Some(500));
        client.respond(&request_id, Err(err), false).unwrap();
        let frame = fake.agent_frames.recv_timeout(2 * SEC).unwrap();
        assert_eq!(frame["final"], true);
        assert_eq!(frame["error"]["retryAfterMs"], 500);
        let err = client.respond(&request_id, Ok(json!(1)), true).unwrap_err();
        assert!(matches!(err, ClientError::UnknownRequest(_)), "{err:?}");
    });
}

#[test]
fn close_and_drop_are_quick_even_with_a_silent_gateway() {
    watchdog(10 * SEC, || {
        let fake = FakeGateway::start(Script {
            silent: true,
            ..Script::default()
        });
        let client = GatewayClient::connect(opts(&fake)).unwrap();
        let start = Instant::now();
        client.close();
        assert!(
            start.elapsed() < Duration::from_millis(1100),
            "{:?}",
            start.elapsed()
        );

        let client = GatewayClient::connect(opts(&fake)).unwrap();
        let start = Instant::now();
        drop(client);
        assert!(
            start.elapsed() < Duration::from_millis(1100),
            "{:?}",
            start.elapsed()
        );
    });
}

#[test]
fn close_while_reconnecting_is_quick_and_fails_waiting_calls() {
    watchdog(10 * SEC, || {
        let fake = FakeGateway::start(Script::default());
        let client = GatewayClient::connect(opts(&fake)).unwrap();
        client.call("drop", json!({}), 2 * SEC).unwrap_err();
        assert!(matches!(next(&client, SEC), Some(Incoming::Disconnected { .. })));
        let start = Instant::now();
        client.close();
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );

        // A call in flight when close() runs gets Closed.
        let client = GatewayClient::connect(opts(&fake)).unwrap();
        thread::scope(|s| {
            let waiting = s.spawn(|| client.call("slow", json!({}), 5 * SEC));
            thread::sleep(Duration::from_millis(100));
            // `close` needs ownership, which the waiting thread's borrow prevents; this
            // is the first half of `close`, the part that fails the waiting calls.
            client.request_stop();
            assert_eq!(waiting.join().unwrap(), Err(ClientError::Closed));
        });
    });
}

#[test]
fn oversized_requests_are_refused_locally() {
    watchdog(10 * SEC, || {
        let fake = FakeGateway::start(Script {
            max_payload: 1024,
            ..Script::default()
        });
        let client = GatewayClient::connect(opts(&fake)).unwrap();
        let err = client.call("echo", json!("x".repeat(2000)), SEC).unwrap_err();
        assert!(matches!(err, ClientError::TooLarge { max: 1024, .. }), "{err:?}");
        assert_eq!(client.call("echo", json!("ok"), SEC).unwrap(), json!("ok"));
    });
}

#[test]
fn unreachable_and_invalid_urls() {
    watchdog(10 * SEC, || {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("ws://127.0.0.1:{port}");
        let err = GatewayClient::connect(ClientOptions::new(url.clone())).unwrap_err();
        let ClientError::Connect(why) = &err else {
            panic!("expected Connect, got {err:?}");
        };
        assert!(why.contains(&url), "{why}");
        assert!(err.to_string().contains("emonkd status"), "{err}");
        assert_eq!(err.exit_code(), exit::FAILURE);

        let err = GatewayClient::connect(ClientOptions::new("wss://127.0.0.1:1")).unwrap_err();
        assert!(matches!(err, ClientError::InvalidUrl(_)), "{err:?}");
        assert_eq!(err.exit_code(), exit::USAGE);
    });
}

#[test]
fn a_listener_that_never_answers_times_out_the_handshake() {
    watchdog(10 * SEC, || {
        // Accepted by the kernel backlog, never served: no upgrade response ever comes.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let start = Instant::now();
        let err = GatewayClient::connect(ClientOptions {
            connect_timeout: Duration::from_millis(300),
            ..ClientOptions::new(url)
        })
        .unwrap_err();
        assert!(matches!(err, ClientError::Handshake(_)), "{err:?}");
        assert!(start.elapsed() < SEC, "{:?}", start.elapsed());
    });
}

#[test]
fn debug_output_hides_credentials() {
    let o = ClientOptions {
        token: Some("hunter2".into()),
        password: Some("swordfish".into()),
        ..ClientOptions::default()
    };
    let shown = format!("{o:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("swordfish"),
        "{shown}"
    );
}
