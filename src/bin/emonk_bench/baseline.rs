//! The baseline: a minimal thread-per-connection tungstenite server in this process. It
//! parses each JSON text frame and answers a JSON response frame with the same `requestId`
//! (a `connect` gets a small `hello_ok`), which is the least any gateway must do per request.
//! Its threads are detached and end when their client disconnects; the accept thread ends
//! with the process.

use std::net::{TcpListener, TcpStream};
use std::thread;

use serde_json::{Value, json};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// Start listening on 127.0.0.1:0; returns the port.
pub fn start() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the baseline");
    let port = listener.local_addr().expect("baseline addr").port();
    thread::Builder::new()
        .name("baseline-accept".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = thread::Builder::new()
                    .name("baseline-conn".into())
                    .spawn(move || serve(stream));
            }
        })
        .expect("spawn the baseline");
    port
}

fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
    let Ok(mut ws) = tungstenite::accept_with_config(stream, Some(config)) else {
        return;
    };
    loop {
        let text = match ws.read() {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) | Err(_) => {
                let _ = ws.flush();
                return;
            }
            Ok(_) => continue,
        };
        let Some(reply) = answer(&text) else { continue };
        if send(&mut ws, reply).is_err() {
            return;
        }
    }
}

fn send(ws: &mut WebSocket<TcpStream>, text: String) -> tungstenite::Result<()> {
    ws.send(Message::text(text))
}

fn answer(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    if v["type"] == "connect" {
        return Some(r#"{"type":"hello_ok","protocolVersion":1}"#.to_owned());
    }
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let id = v.get("requestId")?;
    Some(json!({"type": "response", "requestId": id, "final": true, "result": {"ts": ts}}).to_string())
}
