//! Builders for the frames the gateway sends. Each returns the JSON text of one frame.

use serde::Serialize;
use serde_json::value::RawValue;

use super::codes::ErrorBody;
use super::{EVENTS, METHODS, PROTOCOL_VERSION};

/// A JSON string literal (quoted and escaped).
fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a str always serializes")
}

/// `hello_ok`, sent once `connect` succeeded.
pub fn hello_ok(session_id: &str, tick_interval_ms: u64, max_payload: usize) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct HelloOk<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        protocol_version: u64,
        gateway_version: &'static str,
        session_id: &'a str,
        tick_interval_ms: u64,
        max_payload: usize,
        methods: &'static [&'static str],
        events: &'static [&'static str],
    }
    serde_json::to_string(&HelloOk {
        kind: "hello_ok",
        protocol_version: PROTOCOL_VERSION,
        gateway_version: crate::VERSION,
        session_id,
        tick_interval_ms,
        max_payload,
        methods: METHODS,
        events: EVENTS,
    })
    .expect("hello_ok serializes")
}

/// `hello_error`; the connection is closed right after it.
pub fn hello_error(error: &ErrorBody) -> String {
    with_error("{\"type\":\"hello_error\",\"error\":", error)
}

/// `error`: a frame that could not be parsed and had no requestId.
pub fn error(error: &ErrorBody) -> String {
    with_error("{\"type\":\"error\",\"error\":", error)
}

fn with_error(prefix: &str, error: &ErrorBody) -> String {
    let mut out = String::with_capacity(prefix.len() + error.message.len() + 96);
    out.push_str(prefix);
    out.push_str(&serde_json::to_string(error).expect("error body serializes"));
    out.push('}');
    out
}

/// A successful `response` whose result is already JSON text.
pub fn response_raw(request_id: &str, is_final: bool, result: &str) -> String {
    let id = json_str(request_id);
    let mut out = String::with_capacity(id.len() + result.len() + 64);
    out.push_str("{\"type\":\"response\",\"requestId\":");
    out.push_str(&id);
    out.push_str(if is_final {
        ",\"final\":true,\"result\":"
    } else {
        ",\"final\":false,\"result\":"
    });
    out.push_str(result);
    out.push('}');
    out
}

/// A final successful `response`.
pub fn response_ok(request_id: &str, result: &impl Serialize) -> String {
    response_raw(
        request_id,
        true,
        &serde_json::to_string(result).expect("result serializes"),
    )
}

/// An error `response` whose error object is already JSON text (relayed from the agent).
pub fn response_error_raw(request_id: &str, is_final: bool, error: &str) -> String {
    let id = json_str(request_id);
    let mut out = String::with_capacity(id.len() + error.len() + 64);
    out.push_str("{\"type\":\"response\",\"requestId\":");
    out.push_str(&id);
    out.push_str(if is_final {
        ",\"final\":true,\"error\":"
    } else {
        ",\"final\":false,\"error\":"
    });
    out.push_str(error);
    out.push('}');
    out
}

/// A final error `response`.
pub fn response_error(request_id: &str, error: &ErrorBody) -> String {
    response_error_raw(
        request_id,
        true,
        &serde_json::to_string(error).expect("error serializes"),
    )
}

/// A `request` forwarded to the agent under the gateway's own request id.
pub fn forwarded_request(request_id: &str, method: &str, params: Option<&RawValue>) -> String {
    let id = json_str(request_id);
    let method = json_str(method);
    let params = params.map_or("{}", RawValue::get);
    let mut out = String::with_capacity(id.len() + method.len() + params.len() + 64);
    out.push_str("{\"type\":\"request\",\"requestId\":");
    out.push_str(&id);
    out.push_str(",\"method\":");
    out.push_str(&method);
    out.push_str(",\"params\":");
    out.push_str(params);
    out.push('}');
    out
}

/// An `event` frame. `params` is JSON text serialized once for every recipient.
pub fn event(name: &str, seq: u64, params: &str) -> String {
    let mut out = String::with_capacity(name.len() + params.len() + 56);
    out.push_str("{\"type\":\"event\",\"event\":");
    out.push_str(&json_str(name));
    out.push_str(",\"seq\":");
    out.push_str(&seq.to_string());
    out.push_str(",\"params\":");
    out.push_str(params);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorCode;
    use serde_json::{Value, json};

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).expect("valid JSON")
    }

    #[test]
    fn frames_are_valid_json_of_the_contract_shape() {
        let v = parse(&hello_ok("sid", 30000, 1024));
        assert_eq!(v["type"], "hello_ok");
        assert_eq!(v["protocolVersion"], 1);
        assert_eq!(v["sessionId"], "sid");
        assert_eq!(v["tickIntervalMs"], 30000);
        assert_eq!(v["maxPayload"], 1024);
        assert!(v["methods"].as_array().unwrap().contains(&json!("gateway.ping")));

        let v = parse(&response_ok("a\"b", &json!({"ts": 5})));
        assert_eq!(
            v,
            json!({"type":"response","requestId":"a\"b","final":true,"result":{"ts":5}})
        );

        let err = ErrorBody::retryable(ErrorCode::RateLimited, "slow down", Some(250));
        let v = parse(&response_error("r", &err));
        assert_eq!(
            v,
            json!({"type":"response","requestId":"r","final":true,"error":
                {"code":"RATE_LIMITED","message":"slow down","retryable":true,"retryAfterMs":250}})
        );
        let v = parse(&error(&ErrorBody::new(ErrorCode::InvalidRequest, "bad")));
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["retryAfterMs"], Value::Null);
        let v = parse(&hello_error(&ErrorBody::new(ErrorCode::Unauthorized, "no")));
        assert_eq!(v["type"], "hello_error");
        assert_eq!(v["error"]["code"], "UNAUTHORIZED");

        let v = parse(&event("tick", 3, r#"{"ts":1}"#));
        assert_eq!(
            v,
            json!({"type":"event","event":"tick","seq":3,"params":{"ts":1}})
        );

        let p = RawValue::from_string("{\"x\":1}".into()).unwrap();
        let v = parse(&forwarded_request("fwd-1", "agent.run", Some(&p)));
        assert_eq!(
            v,
            json!({"type":"request","requestId":"fwd-1","method":"agent.run","params":{"x":1}})
        );
        let v = parse(&response_raw("c", false, "[1]"));
        assert_eq!(v["final"], false);
    }
}
