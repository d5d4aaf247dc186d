//! The `attachments` of `channels.send` (contract, "Media out"): 1 to 10 of
//! `{"path"|"data","name"?,"mime"?,"kind"?}`, checked and completed before any connector sees
//! them. Errors name the attachment's index so a client knows which one to fix.
//!
//! Only the shape is checked here; a `path` is opened later through
//! [`super::send_dirs::open_for_send`], the one place that decides which files may be read.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;

use super::attachment::AttachmentKind;
use super::error::MediaError;
use super::mime;

/// At most this many attachments per send (a Telegram album's limit, and the contract's).
pub const MAX_ATTACHMENTS: usize = 10;

/// One attachment as the client wrote it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentRequest {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub mime: Option<String>,
    #[serde(default)]
    pub kind: Option<AttachmentKind>,
}

/// Where an outbound attachment's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A file the client named; still to be opened through the `media.sendDirs` policy.
    Path(String),
    /// Bytes the client sent inline (decoded from base64).
    Data(Vec<u8>),
}

/// A checked outbound attachment with every default filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbound {
    pub source: Source,
    /// The file name the platform shows.
    pub name: String,
    pub mime: String,
    pub kind: AttachmentKind,
}

/// Check `list` and fill in defaults: exactly one of `path`/`data` each, `data` valid
/// base64, a usable name, `1..=10` attachments.
pub fn validate(list: Vec<AttachmentRequest>) -> Result<Vec<Outbound>, MediaError> {
    if list.is_empty() || list.len() > MAX_ATTACHMENTS {
        return Err(MediaError::Invalid(format!(
            "attachments: {} given; send 1 to {MAX_ATTACHMENTS} per message",
            list.len()
        )));
    }
    list.into_iter().enumerate().map(|(i, a)| one(i, a)).collect()
}

fn one(index: usize, a: AttachmentRequest) -> Result<Outbound, MediaError> {
    let at = format!("attachments[{index}]");
    let invalid = |what: String| MediaError::Invalid(format!("{at}: {what}"));
    let source = match (a.path, a.data) {
        (Some(p), None) if p.is_empty() => return Err(invalid("path is empty".into())),
        (Some(p), None) => Source::Path(p),
        (None, Some(d)) => Source::Data(decode_base64(&d).map_err(invalid)?),
        (Some(_), Some(_)) => return Err(invalid("give either path or data, not both".into())),
        (None, None) => {
            return Err(invalid(
                "give path (a file in media.sendDirs) or data (base64)".into(),
            ));
        }
    };
    if let Some(name) = &a.name {
        if name.is_empty() || name.contains(['/', '\0']) || name == "." || name == ".." {
            return Err(invalid(format!("name {name:?} is not a file name")));
        }
    }
    if let Some(m) = &a.mime {
        if !is_mime(m) {
            return Err(invalid(format!("mime {m:?} is not a type/subtype")));
        }
    }
    let name = match (a.name, &source) {
        (Some(n), _) => n,
        (None, Source::Path(p)) => base_name(p).unwrap_or_else(|| "file".to_owned()),
        (None, Source::Data(_)) => {
            let ext = a.mime.as_deref().and_then(mime::extension_for);
            match ext {
                Some(ext) => format!("attachment{}.{ext}", index + 1),
                None => format!("attachment{}", index + 1),
            }
        }
    };
    let mime = a
        .mime
        .clone()
        .or_else(|| mime::from_name(&name).map(str::to_owned))
        .unwrap_or_else(|| mime::OCTET_STREAM.to_owned());
    let kind = a
        .kind
        .unwrap_or_else(|| mime::default_kind(Some(&mime), Some(&name)));
    Ok(Outbound {
        source,
        name,
        mime,
        kind,
    })
}

/// Standard base64, padded or not, with line breaks tolerated (what `base64` tools write).
fn decode_base64(data: &str) -> Result<Vec<u8>, String> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let compact: String = data.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    LENIENT
        .decode(compact)
        .map_err(|e| format!("data is not valid base64 ({e})"))
}

fn is_mime(m: &str) -> bool {
    let essence = m.split(';').next().unwrap_or("").trim();
    match essence.split_once('/') {
        Some((t, s)) => {
            let token = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
            token(t) && token(s) && !m.contains(['\r', '\n'])
        }
        None => false,
    }
}

fn base_name(path: &str) -> Option<String> {
    std::path::Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parse(v: Value) -> Result<Vec<Outbound>, MediaError> {
        validate(serde_json::from_value(v).unwrap())
    }

    fn invalid(v: Value) -> String {
        match parse(v) {
            Err(MediaError::Invalid(text)) => text,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn path_defaults_from_its_name() {
        let got = parse(json!([{"path": "/out/cat.PNG"}, {"path": "/out/report.pdf"}])).unwrap();
        assert_eq!(got[0].source, Source::Path("/out/cat.PNG".into()));
        assert_eq!(
            (got[0].name.as_str(), got[0].mime.as_str(), got[0].kind),
            ("cat.PNG", "image/png", AttachmentKind::Photo)
        );
        assert_eq!(
            (got[1].mime.as_str(), got[1].kind),
            ("application/pdf", AttachmentKind::Document)
        );
    }

    #[test]
    fn data_is_decoded_and_named() {
        let got = parse(json!([
            {"data": "aGVsbG8=", "mime": "image/jpeg"},
            {"data": "aGVsbG8"},
            {"data": "aGVs\nbG8=", "name": "hi.txt", "kind": "voice"},
        ]))
        .unwrap();
        assert_eq!(got[0].source, Source::Data(b"hello".to_vec()));
        assert_eq!(
            (got[0].name.as_str(), got[0].kind),
            ("attachment1.jpg", AttachmentKind::Photo)
        );
        assert_eq!(got[1].source, Source::Data(b"hello".to_vec()));
        assert_eq!(
            (got[1].name.as_str(), got[1].mime.as_str(), got[1].kind),
            ("attachment2", mime::OCTET_STREAM, AttachmentKind::Document)
        );
        // An explicit kind wins over the mime's default.
        assert_eq!(
            (got[2].name.as_str(), got[2].mime.as_str(), got[2].kind),
            ("hi.txt", "text/plain", AttachmentKind::Voice)
        );
    }

    #[test]
    fn count_must_be_one_to_ten() {
        assert!(invalid(json!([])).contains("0 given"));
        let eleven: Vec<Value> = (0..11).map(|i| json!({"path": format!("/o/{i}.png")})).collect();
        let e = invalid(Value::Array(eleven.clone()));
        assert!(e.contains("11 given") && e.contains("1 to 10"), "{e}");
        assert_eq!(parse(Value::Array(eleven[..10].to_vec())).unwrap().len(), 10);
    }

    #[test]
    fn bad_entries_name_their_index() {
        let e = invalid(json!([{"path": "/o/a"}, {"data": "%%%"}]));
        assert!(e.starts_with("attachments[1]: data is not valid base64"), "{e}");
        let e = invalid(json!([{"path": "/o/a", "data": "aGk="}]));
        assert!(e.contains("attachments[0]") && e.contains("not both"), "{e}");
        let e = invalid(json!([{"name": "x"}]));
        assert!(e.contains("media.sendDirs"), "{e}");
        assert!(invalid(json!([{"path": ""}])).contains("path is empty"));
        assert!(invalid(json!([{"data": "aGk=", "name": "a/b"}])).contains("not a file name"));
        assert!(invalid(json!([{"data": "aGk=", "name": ".."}])).contains("not a file name"));
        assert!(invalid(json!([{"data": "aGk=", "mime": "jpeg"}])).contains("type/subtype"));
        assert!(invalid(json!([{"data": "aGk=", "mime": "a/b\r\nX: y"}])).contains("type/subtype"));
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused_by_the_parser() {
        let r: Result<Vec<AttachmentRequest>, _> =
            serde_json::from_value(json!([{"path": "/a", "url": "x"}]));
        assert!(r.is_err());
        let r: Result<Vec<AttachmentRequest>, _> =
            serde_json::from_value(json!([{"path": "/a", "kind": "image"}]));
        assert!(r.is_err());
    }
}
