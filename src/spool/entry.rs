//! A spooled message, as the router delivers it and as the queue holds it.

use std::sync::Arc;

use serde_json::{Map, Value};

/// What an entry is: the event it is delivered as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    /// `channel.message`: every entry of the previous release, whose lines have no `kind`.
    #[default]
    Message,
    /// `channel.action`: a press on a button.
    Action,
}

impl Kind {
    /// The event name it is delivered as.
    pub fn event(self) -> &'static str {
        match self {
            Kind::Message => "channel.message",
            Kind::Action => "channel.action",
        }
    }

    /// Its `kind` in a journal line; none for a message, so message lines stay as the
    /// previous release wrote them.
    pub(crate) fn tag(self) -> Option<&'static str> {
        match self {
            Kind::Message => None,
            Kind::Action => Some("action"),
        }
    }

    pub(crate) fn from_tag(tag: Option<&str>) -> Result<Kind, String> {
        match tag {
            None => Ok(Kind::Message),
            Some("action") => Ok(Kind::Action),
            Some(other) => Err(format!("unknown kind {other:?}")),
        }
    }
}

/// One unacknowledged inbound message or press.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Position in the spool: global across sources, starting at 1, consecutive within an
    /// append, never reused (not even after a restart).
    pub cursor: u64,
    /// The connector it came from, e.g. `"telegram"`.
    pub source: String,
    pub kind: Kind,
    /// The complete `channel.message` (or `channel.action`) params object as JSON text, with `"cursor":"N"`
    /// already inside (a string, as the contract has all ids). Shared so that delivering to
    /// the agent, redelivering and the queue never copy the text.
    pub params: Arc<str>,
}

/// An entry as the queue holds it, with what compaction and the limits need besides.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    pub entry: Entry,
    /// The source's sequence number (Telegram `update_id`), kept so compaction can write the
    /// line back unchanged.
    pub seq: u64,
    /// Length of its journal line including the newline: what counts against `max_bytes`.
    pub bytes: u64,
}

/// The params text for `cursor`: the connector's object with `"cursor":"N"` set.
///
/// Any `cursor` the connector put there is overwritten: the spool owns that field, and the
/// agent acks with exactly what it was given.
pub(crate) fn params_with_cursor(mut params: Map<String, Value>, cursor: u64) -> Arc<str> {
    params.insert("cursor".to_string(), Value::String(cursor.to_string()));
    // `Value`'s Display is its compact JSON serialization, which cannot fail for a map
    // with string keys (unlike `serde_json::to_string`'s signature suggests).
    Value::Object(params).to_string().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cursor_is_a_string_and_overrides_the_connectors() {
        let Value::Object(map) = json!({"text": "hi", "cursor": 99}) else {
            unreachable!()
        };
        let text = params_with_cursor(map, 7);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v, json!({"text": "hi", "cursor": "7"}));
    }
}
