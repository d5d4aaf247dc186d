//! One journal line: the on-disk form of an [`Entry`](super::Entry).
//!
//! ```text
//! {"cursor":12,"source":"telegram","seq":345678,"params":{...,"cursor":"12",...}}\n
//! {"cursor":13,"source":"telegram/1/actions","seq":345679,"kind":"action","params":{...}}\n
//! ```
//!
//! `kind` is absent for a message (so a journal of the previous release, which had only
//! messages, reads as it always did) and `"action"` for a button press.
//!
//! `params` is stored exactly as it will be delivered, so replay hands it to the agent
//! without re-serializing (it is borrowed as raw JSON, never parsed into a tree). The
//! newline ends the record: a line without one was never completely written, so it never
//! counted (see the crash rules in the module doc).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::entry::Kind;

/// A journal line, decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub cursor: u64,
    pub source: String,
    pub seq: u64,
    pub kind: Kind,
    pub params: Arc<str>,
}

#[derive(Deserialize)]
struct Line<'a> {
    cursor: u64,
    source: String,
    seq: u64,
    #[serde(default)]
    kind: Option<String>,
    #[serde(borrow)]
    params: &'a RawValue,
}

/// Append the line for one record, newline included, to `out`.
///
/// Formatted by hand rather than through a serializer so `params` goes in verbatim; the
/// output is deterministic, so compaction reproduces a line byte for byte.
pub(crate) fn encode(out: &mut Vec<u8>, cursor: u64, source: &str, seq: u64, kind: Kind, params: &str) {
    out.extend_from_slice(b"{\"cursor\":");
    out.extend_from_slice(cursor.to_string().as_bytes());
    out.extend_from_slice(b",\"source\":");
    // A `&str` always serializes; the fallback only keeps this free of panics.
    let quoted = serde_json::to_string(source).unwrap_or_else(|_| "\"\"".to_string());
    out.extend_from_slice(quoted.as_bytes());
    out.extend_from_slice(b",\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    if let Some(tag) = kind.tag() {
        out.extend_from_slice(b",\"kind\":\"");
        out.extend_from_slice(tag.as_bytes());
        out.extend_from_slice(b"\"");
    }
    out.extend_from_slice(b",\"params\":");
    out.extend_from_slice(params.as_bytes());
    out.extend_from_slice(b"}\n");
}

/// Decode one line (without its newline). The error says what is wrong, for the warning
/// that names the file and line.
pub(crate) fn decode(line: &[u8]) -> Result<Record, String> {
    let l: Line = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if l.cursor == 0 {
        return Err("cursor 0 (cursors start at 1)".to_string());
    }
    if !l.params.get().starts_with('{') {
        return Err("params is not a JSON object".to_string());
    }
    Ok(Record {
        cursor: l.cursor,
        source: l.source,
        seq: l.seq,
        kind: Kind::from_tag(l.kind.as_deref())?,
        params: l.params.get().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_exact() {
        let params = r#"{"cursor":"3","text":"a \"quoted\"\nline ✓"}"#;
        let mut out = Vec::new();
        encode(&mut out, 3, "tele\"gram", 42, Kind::Message, params);
        assert_eq!(out.last(), Some(&b'\n'));
        let r = decode(&out[..out.len() - 1]).unwrap();
        assert_eq!(
            r,
            Record {
                cursor: 3,
                source: "tele\"gram".to_string(),
                seq: 42,
                kind: Kind::Message,
                params: params.into(),
            }
        );
        let mut again = Vec::new();
        encode(&mut again, r.cursor, &r.source, r.seq, r.kind, &r.params);
        assert_eq!(again, out);
        // A message line is exactly what the previous release wrote (no `kind`).
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{{\"cursor\":3,\"source\":\"tele\\\"gram\",\"seq\":42,\"params\":{params}}}\n")
        );
        let mut action = Vec::new();
        encode(&mut action, 4, "t/actions", 43, Kind::Action, "{}");
        assert_eq!(
            action,
            b"{\"cursor\":4,\"source\":\"t/actions\",\"seq\":43,\"kind\":\"action\",\"params\":{}}\n"
        );
        assert_eq!(decode(&action[..action.len() - 1]).unwrap().kind, Kind::Action);
        assert!(decode(br#"{"cursor":1,"source":"t","seq":1,"kind":"poll","params":{}}"#).is_err());
    }

    #[test]
    fn rejects_garbage() {
        assert!(decode(b"").is_err());
        assert!(decode(b"\0\0\0").is_err());
        assert!(decode(br#"{"cursor":1,"source":"t","seq":1}"#).is_err());
        assert!(decode(br#"{"cursor":1,"source":"t","seq":1,"params":[1]}"#).is_err());
        assert!(decode(br#"{"cursor":0,"source":"t","seq":1,"params":{}}"#).is_err());
        assert!(decode(br#"{"cursor":-1,"source":"t","seq":1,"params":{}}"#).is_err());
        assert!(decode(br#"{"cursor":1,"source":"t","seq":1,"params":{"#).is_err());
    }
}
