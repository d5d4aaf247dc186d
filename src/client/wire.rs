//! The JSON frames of protocol version 1, as this client writes and reads them.
//!
//! Outgoing frames are built with `json!` (they are few and small); incoming frames are
//! decoded into [`ServerFrame`], whose unknown `type`s decode to `Unknown` so a newer
//! gateway can add frame types without breaking older clients.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::RemoteError;
use super::options::ClientOptions;

pub use crate::protocol::PROTOCOL_VERSION;

/// What the gateway said about itself in `hello_ok`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Unique per connection; changes on every reconnect.
    pub session_id: String,
    /// The gateway's version string.
    pub gateway_version: String,
    /// How often the gateway sends `tick`; silence for twice this means a dead link.
    pub tick_interval_ms: u64,
    /// Largest frame the gateway accepts from this client, in bytes.
    pub max_payload: u64,
    /// Methods the gateway offers.
    pub methods: Vec<String>,
    /// Events the gateway may send.
    pub events: Vec<String>,
}

/// The `connect` frame. `auth` is left out without a credential, as the contract asks.
pub(crate) fn connect_frame(opts: &ClientOptions) -> String {
    let mut params = Map::new();
    params.insert("protocolVersion".into(), json!(PROTOCOL_VERSION));
    params.insert("clientName".into(), json!(opts.client_name));
    params.insert("clientVersion".into(), json!(opts.client_version));
    params.insert("mode".into(), json!(opts.mode.as_str()));
    params.insert("role".into(), json!(opts.role.as_str()));
    if let Some(token) = &opts.token {
        params.insert("auth".into(), json!({ "token": token }));
    } else if let Some(password) = &opts.password {
        params.insert("auth".into(), json!({ "password": password }));
    }
    json!({ "type": "connect", "params": params }).to_string()
}

pub(crate) fn request_frame(request_id: &str, method: &str, params: Value) -> String {
    json!({
        "type": "request",
        "requestId": request_id,
        "method": method,
        "params": params,
    })
    .to_string()
}

/// An agent's answer to a forwarded request. An error always ends the request, so it is
/// always sent as `final: true`.
pub(crate) fn response_frame(request_id: &str, result: &Result<Value, RemoteError>, final_: bool) -> String {
    match result {
        Ok(value) => json!({
            "type": "response",
            "requestId": request_id,
            "final": final_,
            "result": value,
        }),
        Err(err) => json!({
            "type": "response",
            "requestId": request_id,
            "final": true,
            "error": {
                "code": err.code,
                "message": err.message,
                "retryable": err.retryable,
                "retryAfterMs": err.retry_after_ms,
            },
        }),
    }
    .to_string()
}

/// Every frame the gateway may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ServerFrame {
    HelloOk(HelloOk),
    HelloError {
        error: WireError,
    },
    Response(ResponseFrame),
    Event(EventFrame),
    Request(RequestFrame),
    Error {
        error: WireError,
    },
    #[serde(other)]
    Unknown,
}

pub(crate) fn parse(text: &str) -> Result<ServerFrame, serde_json::Error> {
    serde_json::from_str(text)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HelloOk {
    pub protocol_version: u64,
    #[serde(default)]
    pub gateway_version: String,
    pub session_id: String,
    pub tick_interval_ms: u64,
    pub max_payload: u64,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub events: Vec<String>,
}

impl From<HelloOk> for Hello {
    fn from(h: HelloOk) -> Hello {
        Hello {
            session_id: h.session_id,
            gateway_version: h.gateway_version,
            tick_interval_ms: h.tick_interval_ms,
            max_payload: h.max_payload,
            methods: h.methods,
            events: h.events,
        }
    }
}

/// Lenient on purpose: an error with a missing field is still an error to report.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct WireError {
    pub code: String,
    pub message: String,
    pub retryable: bool,
    pub retry_after_ms: Option<u64>,
}

impl From<WireError> for RemoteError {
    fn from(e: WireError) -> RemoteError {
        RemoteError {
            code: e.code,
            message: e.message,
            retryable: e.retryable,
            retry_after_ms: e.retry_after_ms,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResponseFrame {
    pub request_id: String,
    // A response without `final` cannot be followed by more, so it ends the call.
    #[serde(rename = "final", default = "yes")]
    pub is_final: bool,
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub error: Option<WireError>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventFrame {
    pub event: String,
    #[serde(default)]
    pub seq: u64,
    #[serde(default)]
    pub params: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RequestFrame {
    pub request_id: String,
    pub method: String,
    #[serde(default)]
    pub params: Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::options::Role;

    #[test]
    fn connect_frame_omits_auth_without_credential() {
        let v: Value = serde_json::from_str(&connect_frame(&ClientOptions::default())).unwrap();
        assert_eq!(v["type"], "connect");
        assert_eq!(v["params"]["protocolVersion"], 1);
        assert_eq!(v["params"]["mode"], "operator");
        assert!(v["params"].get("auth").is_none());
    }

    #[test]
    fn connect_frame_prefers_token_over_password() {
        let opts = ClientOptions {
            token: Some("t".into()),
            password: Some("p".into()),
            role: Role::Agent,
            ..ClientOptions::default()
        };
        let v: Value = serde_json::from_str(&connect_frame(&opts)).unwrap();
        assert_eq!(v["params"]["auth"], json!({ "token": "t" }));
        assert_eq!(v["params"]["role"], "agent");
    }

    #[test]
    fn error_response_is_always_final() {
        let frame = response_frame("r1", &Err(RemoteError::new("NOT_FOUND", "x")), false);
        let v: Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(v["final"], true);
        assert_eq!(v["error"]["code"], "NOT_FOUND");
        assert_eq!(v["error"]["retryAfterMs"], Value::Null);
    }

    #[test]
    fn unknown_frame_types_are_tolerated() {
        assert!(matches!(
            parse(r#"{"type":"future_thing","x":1}"#).unwrap(),
            ServerFrame::Unknown
        ));
        let ServerFrame::Response(r) = parse(r#"{"type":"response","requestId":"a","result":null}"#).unwrap()
        else {
            panic!("not a response");
        };
        assert!(r.is_final && r.result.is_none() && r.error.is_none());
    }
}
