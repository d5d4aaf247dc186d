//! Parsing of frames sent by clients: `connect`, `request`, and (from the agent) `response`.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::codes::{ErrorBody, ErrorCode};

/// What a connection may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Full access to every method.
    #[default]
    Operator,
    /// Only `gateway.ping`, `gateway.status` and `channels.status`; anything else is
    /// answered with `FORBIDDEN`.
    Readonly,
}

impl Mode {
    /// The wire spelling used in the `connect` frame.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Operator => "operator",
            Mode::Readonly => "readonly",
        }
    }
}

/// Which side of the agent relay a connection is on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A CLI, script or dashboard: sends requests, may subscribe to events.
    #[default]
    Operator,
    /// The one active agent: receives `channel.message` events and forwarded `agent.*`
    /// requests. A newer agent connection supersedes this one.
    Agent,
}

impl Role {
    /// The wire spelling used in the `connect` frame.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Agent => "agent",
        }
    }
}

/// Credentials offered in `connect`. Never logged.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub token: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(***)")
    }
}

/// The params of `connect`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectParams {
    pub protocol_version: u64,
    #[serde(default)]
    pub client_name: String,
    #[serde(default)]
    pub client_version: String,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub role: Role,
    #[serde(default)]
    pub auth: Option<Credential>,
}

/// A frame from a client, with relayed payloads kept as raw JSON.
#[derive(Debug)]
pub enum ClientFrame {
    Connect(ConnectParams),
    Request {
        request_id: String,
        method: String,
        params: Option<Box<RawValue>>,
    },
    /// An agent answering a request the gateway forwarded to it. Exactly one of
    /// `result`/`error` is set.
    Response {
        request_id: String,
        is_final: bool,
        result: Option<Box<RawValue>>,
        error: Option<Box<RawValue>>,
    },
}

/// Why a frame was refused. With a `request_id` the answer is a `response`; without one it
/// is an `error` frame.
#[derive(Debug)]
pub struct FrameError {
    pub body: ErrorBody,
    pub request_id: Option<String>,
}

impl FrameError {
    fn invalid(message: impl Into<String>, request_id: Option<String>) -> FrameError {
        FrameError {
            body: ErrorBody::new(ErrorCode::InvalidRequest, message),
            request_id,
        }
    }
}

#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(rename = "type")]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "requestId", borrow)]
    request_id: Option<&'a RawValue>,
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
    #[serde(rename = "final")]
    is_final: Option<bool>,
    // `present`: a key that is there with `null` is `Some("null")`, not `None`, so that an
    // agent answering `"result":null` (a Python handler returning `None`) has answered.
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

/// Deserialize a field that is present (null included) as `Some`; absent stays `None` through
/// `#[serde(default)]`. serde's own `Option` would turn `null` into `None`.
fn present<'de, D>(d: D) -> Result<Option<&'de RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <&'de RawValue as Deserialize<'de>>::deserialize(d).map(Some)
}

/// Parse one text frame. Unknown extra fields are ignored so newer clients keep working.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let raw: RawFrame<'_> = serde_json::from_str(text)
        .map_err(|e| FrameError::invalid(format!("frame is not a valid JSON object: {e}"), None))?;
    let request_id = match raw.request_id {
        None => None,
        Some(v) => Some(
            serde_json::from_str::<String>(v.get())
                .map_err(|_| FrameError::invalid("requestId must be a string", None))?,
        ),
    };
    let Some(kind) = raw.kind else {
        return Err(FrameError::invalid("frame has no \"type\"", request_id));
    };
    match kind.as_ref() {
        "connect" => {
            let params = raw
                .params
                .ok_or_else(|| FrameError::invalid("connect needs \"params\"", None))?;
            let params: ConnectParams = serde_json::from_str(params.get())
                .map_err(|e| FrameError::invalid(format!("invalid connect params: {e}"), None))?;
            Ok(ClientFrame::Connect(params))
        }
        "request" => {
            let request_id = request_id
                .ok_or_else(|| FrameError::invalid("request needs a string \"requestId\"", None))?;
            let Some(method) = raw.method else {
                return Err(FrameError::invalid(
                    "request needs a \"method\"",
                    Some(request_id),
                ));
            };
            if let Some(p) = raw.params {
                if !p.get().trim_start().starts_with('{') && p.get() != "null" {
                    return Err(FrameError::invalid(
                        "params must be a JSON object",
                        Some(request_id),
                    ));
                }
            }
            Ok(ClientFrame::Request {
                request_id,
                method: method.into_owned(),
                params: raw.params.filter(|p| p.get() != "null").map(RawValue::to_owned),
            })
        }
        "response" => {
            let request_id = request_id
                .ok_or_else(|| FrameError::invalid("response needs a string \"requestId\"", None))?;
            // A present `result` is an answer, `null` included. `"error":null` is never an
            // error (it is how some encoders spell "no error"), and a `"result":null` beside a
            // real error is that spelling the other way round.
            let is_null = |v: &&RawValue| v.get() == "null";
            let error = raw.error.filter(|e| !is_null(e));
            let result = raw.result.filter(|r| !(is_null(r) && error.is_some()));
            if result.is_some() == error.is_some() {
                return Err(FrameError::invalid(
                    format!("response {request_id:?} needs exactly one of \"result\" and \"error\""),
                    None,
                ));
            }
            Ok(ClientFrame::Response {
                request_id,
                is_final: raw.is_final.unwrap_or(true),
                result: result.map(RawValue::to_owned),
                error: error.map(RawValue::to_owned),
            })
        }
        other => Err(FrameError::invalid(
            format!("unknown frame type {other:?} (expected connect, request or response)"),
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_connect_with_defaults() {
        let f = parse_client_frame(r#"{"type":"connect","params":{"protocolVersion":1}}"#).unwrap();
        let ClientFrame::Connect(p) = f else {
            panic!("not connect")
        };
        assert_eq!(p.protocol_version, 1);
        assert_eq!(p.mode, Mode::Operator);
        assert_eq!(p.role, Role::Operator);
        assert!(p.auth.is_none());
    }

    #[test]
    fn parses_request_keeping_params_raw() {
        let f = parse_client_frame(
            r#"{"type":"request","requestId":"r1","method":"agent.x","params":{"a":[1, 2]}}"#,
        )
        .unwrap();
        let ClientFrame::Request {
            request_id,
            method,
            params,
        } = f
        else {
            panic!()
        };
        assert_eq!(request_id, "r1");
        assert_eq!(method, "agent.x");
        assert_eq!(params.unwrap().get(), r#"{"a":[1, 2]}"#);
    }

    #[test]
    fn request_errors_carry_the_request_id_when_known() {
        let e = parse_client_frame(r#"{"type":"request","requestId":"r9"}"#).unwrap_err();
        assert_eq!(e.request_id.as_deref(), Some("r9"));
        assert_eq!(e.body.code, ErrorCode::InvalidRequest);
        let e = parse_client_frame(r#"{"type":"request","requestId":"r9","method":"m","params":[1]}"#)
            .unwrap_err();
        assert_eq!(e.request_id.as_deref(), Some("r9"));
        let e = parse_client_frame(r#"{"type":"request","requestId":7,"method":"m"}"#).unwrap_err();
        assert_eq!(e.request_id, None);
    }

    #[test]
    fn malformed_and_unknown_frames_are_invalid_request() {
        for text in ["not json", "[1,2]", r#"{"type":"bogus"}"#, r#"{"no":"type"}"#, ""] {
            let e = parse_client_frame(text).unwrap_err();
            assert_eq!(e.body.code, ErrorCode::InvalidRequest, "{text}");
        }
    }

    #[test]
    fn parses_agent_response_chunks() {
        let f =
            parse_client_frame(r#"{"type":"response","requestId":"f1","final":false,"result":{"chunk":1}}"#)
                .unwrap();
        let ClientFrame::Response {
            is_final,
            result,
            error,
            ..
        } = f
        else {
            panic!()
        };
        assert!(!is_final);
        assert_eq!(result.unwrap().get(), r#"{"chunk":1}"#);
        assert!(error.is_none());
        let e = parse_client_frame(r#"{"type":"response","requestId":"f1"}"#).unwrap_err();
        assert_eq!(e.body.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn a_null_result_is_a_result() {
        let parts = |text: &str| match parse_client_frame(text).unwrap() {
            ClientFrame::Response { result, error, .. } => (
                result.map(|r| r.get().to_owned()),
                error.map(|e| e.get().to_owned()),
            ),
            other => panic!("not a response: {other:?}"),
        };
        let null = Some("null".to_owned());
        assert_eq!(
            parts(r#"{"type":"response","requestId":"a","final":true,"result":null}"#),
            (null.clone(), None)
        );
        assert_eq!(
            parts(r#"{"type":"response","requestId":"a","result":null,"error":null}"#),
            (null, None)
        );
        let (r, e) = parts(r#"{"type":"response","requestId":"a","result":null,"error":{"code":"X"}}"#);
        assert!(r.is_none() && e.is_some());
        let (r, e) = parts(r#"{"type":"response","requestId":"a","result":1,"error":null}"#);
        assert_eq!((r.as_deref(), e), (Some("1"), None));
        for both in [
            r#"{"type":"response","requestId":"a","result":1,"error":{"code":"X"}}"#,
            r#"{"type":"response","requestId":"a","error":null}"#,
        ] {
            assert!(parse_client_frame(both).is_err(), "{both}");
        }
    }

    #[test]
    fn credential_debug_hides_secrets() {
        let c = Credential {
            token: Some("s3cret".into()),
            password: None,
        };
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
