//! The JSON type of a value, named for error messages.

use serde_json::Value;

/// The JSON type of a value with its article ("a string", "an object", "null"), for
/// messages that must not show the value itself.
pub(crate) fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
