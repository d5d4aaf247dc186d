//! A tiny in-process gateway for the client's tests: std `TcpListener` on 127.0.0.1:0, a
//! thread per connection, `tungstenite::accept`, and just enough of protocol 1 to drive
//! every client path. The method called picks the behaviour (echo, stream, drop, restart,
//! supersede, …) so each test reads as a script.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use serde_json::{Value, json};
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

use super::link::would_block;

/// Per-fake behaviour that is not chosen by the method called.
#[derive(Debug, Clone)]
pub(super) struct Script {
    pub tick_interval_ms: u64,
    pub max_payload: u64,
    /// Send `tick` events every half interval.
    pub ticks: bool,
    /// From this connection number (1-based) on, answer `hello_error` UNAUTHORIZED.
    pub reject_from: Option<usize>,
    /// After hello, neither read nor write anything again: a hung gateway.
    pub silent: bool,
    /// Right after hello, forward a request `fwd-1` (`agent.ask`) to the client.
    pub forward: bool,
}

impl Default for Script {
    fn default() -> Script {
        Script {
            tick_interval_ms: 30_000,
            max_payload: 26_214_400,
            ticks: false,
            reject_from: None,
            silent: false,
            forward: false,
        }
    }
}

pub(super) struct FakeGateway {
    pub url: String,
    /// TCP connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    /// The `params` of every `connect` frame, in order.
    pub connects: Receiver<Value>,
    /// Every `response` frame an agent sent back.
    pub agent_frames: Receiver<Value>,
    stop: Arc<AtomicBool>,
}

struct Conn {
    number: usize,
    script: Script,
    stop: Arc<AtomicBool>,
    connects: Sender<Value>,
    agent_frames: Sender<Value>,
}

type Ws = WebSocket<TcpStream>;

impl FakeGateway {
    pub fn start(script: Script) -> FakeGateway {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (connects_tx, connects) = unbounded();
        let (agent_tx, agent_frames) = unbounded();
        let (count, halt) = (connections.clone(), stop.clone());
        thread::Builder::new()
            .name("fake-gateway".into())
            .spawn(move || {
                while !halt.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let conn = Conn {
                                number: count.fetch_add(1, Ordering::SeqCst) + 1,
                                script: script.clone(),
                                stop: halt.clone(),
                                connects: connects_tx.clone(),
                                agent_frames: agent_tx.clone(),
                            };
                            thread::spawn(move || conn.serve(stream));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
            .unwrap();
        FakeGateway {
            url,
            connections,
            connects,
            agent_frames,
            stop,
        }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn send(ws: &mut Ws, value: Value) -> bool {
    ws.send(Message::text(value.to_string())).is_ok()
}

fn respond(ws: &mut Ws, id: &str, is_final: bool, result: Value) -> bool {
    send(
        ws,
        json!({"type": "response", "requestId": id, "final": is_final, "result": result}),
    )
}

/// Closes with `code` and gives the client a moment to answer, like the real gateway.
fn close(ws: &mut Ws, code: u16, reason: &str) {
    let _ = ws.close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_owned().into(),
    }));
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        match ws.read() {
            Ok(_) => {}
            Err(e) if would_block(&e) => {}
            Err(_) => break,
        }
    }
}

impl Conn {
    fn serve(self, stream: TcpStream) {
        stream.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let Ok(mut ws) = tungstenite::accept(stream) else {
            return;
        };
        let Some(params) = self.read_connect(&mut ws) else {
            return;
        };
        let _ = self.connects.send(params);
        if self.script.reject_from.is_some_and(|n| self.number >= n) {
            send(
                &mut ws,
                json!({"type": "hello_error",
                       "error": {"code": "UNAUTHORIZED", "message": "bad token"}}),
            );
            return close(&mut ws, 1008, "unauthorized");
        }
        send(
            &mut ws,
            json!({
                "type": "hello_ok", "protocolVersion": 1, "gatewayVersion": "fake",
                "sessionId": format!("session-{}", self.number),
                "tickIntervalMs": self.script.tick_interval_ms,
                "maxPayload": self.script.max_payload,
                "methods": ["echo", "stream"], "events": ["tick", "test.event"],
            }),
        );
        if self.script.forward {
            send(
                &mut ws,
                json!({"type": "request", "requestId": "fwd-1", "method": "agent.ask",
                       "params": {"q": "hi"}}),
            );
        }
        let mut silent = self.script.silent;
        let mut seq = 0u64;
        let mut last_tick = Instant::now();
        let tick_every = Duration::from_millis(self.script.tick_interval_ms / 2);
        while !self.stop.load(Ordering::SeqCst) {
            if silent {
                thread::sleep(Duration::from_millis(20));
                continue;
            }
            if self.script.ticks && last_tick.elapsed() >= tick_every {
                last_tick = Instant::now();
                seq += 1;
                send(
                    &mut ws,
                    json!({"type": "event", "event": "tick", "seq": seq, "params": {"ts": 0}}),
                );
            }
            let text = match ws.read() {
                Ok(Message::Text(text)) => text,
                Ok(_) => continue,
                Err(e) if would_block(&e) => continue,
                Err(_) => return,
            };
            let frame: Value = serde_json::from_str(&text).unwrap();
            if frame["type"] == "response" {
                let _ = self.agent_frames.send(frame);
                continue;
            }
            let id = frame["requestId"].as_str().unwrap_or_default().to_owned();
            match frame["method"].as_str().unwrap_or_default() {
                "echo" => {
                    respond(&mut ws, &id, true, frame["params"].clone());
                }
                "stream" => {
                    for i in 0..3 {
                        respond(&mut ws, &id, false, json!({ "chunk": i }));
                    }
                    respond(&mut ws, &id, true, json!({ "chunks": 3 }));
                }
                "late" => {
                    thread::sleep(Duration::from_millis(300));
                    respond(&mut ws, &id, true, json!({ "late": true }));
                }
                "slow" => {}
                "fail" => {
                    send(
                        &mut ws,
                        json!({"type": "response", "requestId": id, "final": true,
                               "error": {"code": "NOT_FOUND", "message": "no such thing",
                                         "retryable": false, "retryAfterMs": null}}),
                    );
                }
                "emit" => {
                    seq += 1;
                    send(
                        &mut ws,
                        json!({"type": "event", "event": "test.event", "seq": seq,
                               "params": {"n": 1}}),
                    );
                }
                "drop" => return,
                "silence" => silent = true,
                "restart" => {
                    seq += 1;
                    send(
                        &mut ws,
                        json!({"type": "event", "event": "shutdown", "seq": seq,
                               "params": {"reason": "gateway restarting",
                                          "restartExpectedMs": 100}}),
                    );
                    return close(&mut ws, 1012, "restarting");
                }
                "supersede" => return close(&mut ws, 1008, "superseded"),
                other => panic!("fake gateway: unexpected method {other}"),
            }
        }
    }

    fn read_connect(&self, ws: &mut Ws) -> Option<Value> {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            match ws.read() {
                Ok(Message::Text(text)) => {
                    let frame: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(frame["type"], "connect", "first frame must be connect");
                    return Some(frame["params"].clone());
                }
                Ok(_) => {}
                Err(e) if would_block(&e) => {}
                Err(_) => return None,
            }
        }
        None
    }
}
