//! Reading platform answers and events leniently, shared by the three connectors.
//!
//! A connector takes from each answer only the fields it uses and ignores every other one,
//! so a server that leaves out a documented field the connector does not need (a Bot API
//! emulator whose `getMe` has no `is_bot`) works, and one that adds fields does too. When a
//! field that is needed is absent, or of another type, the error names it and where it was
//! looked for, in words an operator can act on: `getMe answer has no "id"`,
//! `READY has no "user.id"`, `update 1005 has no "message.chat.id"`. That text becomes a
//! connector's `lastError` or the log line of a skipped update.
//!
//! Paths are dotted (`user.id`): no platform key this is used for contains a dot.

use std::fmt;

use serde_json::Value;

use crate::json_type::json_type_name;

/// A needed field that an answer or event lacks (or has with an unusable type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// What was read: `getMe answer`, `READY`, `update 1005`.
    what: String,
    /// The dotted path of the field within it.
    path: String,
    /// When the field is there but unusable: the JSON type found and what was expected.
    wrong: Option<(&'static str, &'static str)>,
}

impl Missing {
    /// `what` has no `path`.
    pub fn new(what: impl Into<String>, path: impl Into<String>) -> Missing {
        Missing {
            what: what.into(),
            path: path.into(),
            wrong: None,
        }
    }

    /// The dotted path of the missing field.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.wrong {
            None => write!(f, "{} has no {:?}", self.what, self.path),
            Some((found, expected)) => {
                write!(f, "{} has {:?} as {found}, not {expected}", self.what, self.path)
            }
        }
    }
}

impl std::error::Error for Missing {}

/// An optional string field of a platform object (media lists are read this way: a field
/// of the wrong type counts as absent).
pub fn opt_string(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// An optional unsigned integer field, as [`opt_string`].
pub fn opt_u64(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// An optional pixel dimension, as [`opt_string`]; one too large for `u32` is absent.
pub fn opt_u32(v: &Value, key: &str) -> Option<u32> {
    opt_u64(v, key).and_then(|n| u32::try_from(n).ok())
}

/// The fields of one answer or event, named `what` in errors.
#[derive(Clone, Copy, Debug)]
pub struct Fields<'a> {
    what: &'a str,
    value: &'a Value,
}

impl<'a> Fields<'a> {
    pub fn new(what: &'a str, value: &'a Value) -> Fields<'a> {
        Fields { what, value }
    }

    /// The whole value, for a reader of its own (a platform's media list).
    pub fn value(&self) -> &'a Value {
        self.value
    }

    /// The value at `path`; `None` when it or a step on the way is absent or null (a null
    /// is what serializers write for an absent optional field).
    pub fn get(&self, path: &str) -> Option<&'a Value> {
        path.split('.')
            .try_fold(self.value, |v, key| v.get(key))
            .filter(|v| !v.is_null())
    }

    /// An error saying that `path` is missing.
    pub fn missing(&self, path: &str) -> Missing {
        Missing::new(self.what, path)
    }

    /// The value at `path` as `T`, or an error naming the field (`expected`: what `T` is, in
    /// words, for the error).
    pub fn parse<T>(
        &self,
        path: &str,
        expected: &'static str,
        convert: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<T, Missing> {
        let v = self.get(path).ok_or_else(|| self.missing(path))?;
        convert(v).ok_or_else(|| Missing {
            wrong: Some((json_type_name(v), expected)),
            ..self.missing(path)
        })
    }

    /// A needed string.
    pub fn str(&self, path: &str) -> Result<&'a str, Missing> {
        self.parse(path, "a string", Value::as_str)
    }

    /// A needed integer (a JSON number without a fraction that fits an i64).
    pub fn i64(&self, path: &str) -> Result<i64, Missing> {
        self.parse(path, "an integer", Value::as_i64)
    }

    /// A needed id as text: a string as is, or an integer in decimal (Discord's snowflakes
    /// are strings, a Bot API's ids are numbers; an emulator may write either).
    pub fn id(&self, path: &str) -> Result<String, Missing> {
        self.parse(path, "an id", id_text)
    }

    /// An optional string: absent, null or not a string are all "none" (what is not needed
    /// is never an error).
    pub fn opt_str(&self, path: &str) -> Option<&'a str> {
        self.get(path).and_then(Value::as_str)
    }

    /// An optional integer, like [`Fields::opt_str`].
    pub fn opt_i64(&self, path: &str) -> Option<i64> {
        self.get(path).and_then(Value::as_i64)
    }

    /// An optional id, like [`Fields::id`] but absent or unusable is "none".
    pub fn opt_id(&self, path: &str) -> Option<String> {
        self.get(path).and_then(id_text)
    }
}

/// A string, or an integer in decimal.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn present_fields_are_read_at_dotted_paths() {
        let v = json!({"id": 7, "user": {"id": "42", "name": "ada"}, "n": null});
        let f = Fields::new("READY", &v);
        assert_eq!(f.i64("id"), Ok(7));
        assert_eq!(f.str("user.name"), Ok("ada"));
        assert_eq!(f.id("user.id").as_deref(), Ok("42"));
        assert_eq!(f.id("id").as_deref(), Ok("7"));
        assert_eq!(f.opt_str("user.name"), Some("ada"));
        assert_eq!(f.opt_str("n"), None);
        assert_eq!(f.opt_i64("user.id"), None, "not needed, so a wrong type is none");
    }

    #[test]
    fn missing_and_mistyped_fields_are_named() {
        let v = json!({"user": {"id": 1.5}, "session_id": null, "text": 3});
        let f = Fields::new("READY", &v);
        assert_eq!(
            f.str("session_id").unwrap_err().to_string(),
            r#"READY has no "session_id""#
        );
        assert_eq!(
            f.str("user.name").unwrap_err().to_string(),
            r#"READY has no "user.name""#
        );
        assert_eq!(
            f.i64("guild.id").unwrap_err().to_string(),
            r#"READY has no "guild.id""#,
            "a missing step on the way is a missing field"
        );
        assert_eq!(
            f.id("user.id").unwrap_err().to_string(),
            r#"READY has "user.id" as a number, not an id"#
        );
        assert_eq!(
            f.str("text").unwrap_err().to_string(),
            r#"READY has "text" as a number, not a string"#
        );
        assert_eq!(f.str("text").unwrap_err().path(), "text");
        let top = json!("not an object");
        assert_eq!(
            Fields::new("getMe answer", &top)
                .i64("id")
                .unwrap_err()
                .to_string(),
            r#"getMe answer has no "id""#
        );
    }
}
