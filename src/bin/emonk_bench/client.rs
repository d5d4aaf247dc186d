//! A blocking WebSocket client, the way a CLI or an agent talks to the gateway: one socket,
//! TCP_NODELAY, tungstenite, a small read buffer (10,000 of these live in the bench).

use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use super::daemon::TOKEN;

pub type Ws = WebSocket<TcpStream>;

/// Open a WebSocket to 127.0.0.1:`port` (no `connect` frame yet).
pub fn open(port: u16) -> Result<Ws, String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .max_message_size(None)
        .max_frame_size(None);
    let url = format!("ws://127.0.0.1:{port}/");
    tungstenite::client::client_with_config(url, stream, Some(config))
        .map(|(ws, _)| ws)
        .map_err(|e| format!("WebSocket handshake: {e}"))
}

pub fn connect_frame(role: &str) -> String {
    json!({"type": "connect", "params": {
        "protocolVersion": 1, "clientName": "emonk-bench", "clientVersion": "0",
        "mode": "operator", "role": role, "auth": {"token": TOKEN},
    }})
    .to_string()
}

/// Open, send `connect`, and wait for `hello_ok`.
pub fn join(port: u16, role: &str) -> Result<Ws, String> {
    let mut ws = open(port)?;
    send(&mut ws, connect_frame(role))?;
    let hello = next_json(&mut ws)?;
    if hello["type"] != "hello_ok" {
        return Err(format!("connect refused: {hello}"));
    }
    Ok(ws)
}

pub fn send(ws: &mut Ws, text: String) -> Result<(), String> {
    ws.send(Message::text(text)).map_err(|e| format!("send: {e}"))
}

/// The next text frame, as JSON.
pub fn next_json(ws: &mut Ws) -> Result<Value, String> {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return serde_json::from_str(&t).map_err(|e| e.to_string()),
            Ok(Message::Close(f)) => return Err(format!("closed: {f:?}")),
            Ok(_) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// A request and its final response (events in between are skipped).
pub fn call(ws: &mut Ws, id: &str, method: &str, params: Value) -> Result<Value, String> {
    let frame = json!({"type": "request", "requestId": id, "method": method, "params": params});
    send(ws, frame.to_string())?;
    loop {
        let v = next_json(ws)?;
        if v["type"] == "response" && v["requestId"] == id {
            return match v.get("error") {
                Some(e) => Err(format!("{method}: {e}")),
                None => Ok(v["result"].clone()),
            };
        }
    }
}

/// `gateway.status` → `clients.total`: how many clients the gateway counts as joined.
/// Check that `n` clients really joined: `gateway.status` counts them plus the status client
/// itself.
pub fn expect_joined(port: u16, n: usize) -> Result<(), String> {
    let joined = joined_clients(port)?;
    if joined != n as u64 + 1 {
        return Err(format!(
            "gateway.status counts {joined} clients, expected {}",
            n + 1
        ));
    }
    Ok(())
}

pub fn joined_clients(port: u16) -> Result<u64, String> {
    let mut ws = join(port, "operator")?;
    let status = call(&mut ws, "status", "gateway.status", json!({}))?;
    let _ = ws.close(None);
    status["clients"]["total"]
        .as_u64()
        .ok_or_else(|| format!("no clients.total in {status}"))
}
