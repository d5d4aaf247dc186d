//! The inbound attachment as `channel.message` carries it (contract, "Media in"): one shape
//! for every platform; each connector fills it from its own message format.

use serde::{Deserialize, Serialize};

/// What an attachment is. The names are the contract's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentKind {
    Photo,
    Video,
    Animation,
    Audio,
    Voice,
    Document,
    Sticker,
}

impl AttachmentKind {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentKind::Photo => "photo",
            AttachmentKind::Video => "video",
            AttachmentKind::Animation => "animation",
            AttachmentKind::Audio => "audio",
            AttachmentKind::Voice => "voice",
            AttachmentKind::Document => "document",
            AttachmentKind::Sticker => "sticker",
        }
    }

    /// The kind a file's content type implies: a GIF is an animation, and audio a voice
    /// note when the platform marks it as one (`voice`); what is not image, video or audio
    /// is a document.
    pub fn from_mime(mime: Option<&str>, voice: bool) -> AttachmentKind {
        match mime.unwrap_or("") {
            "image/gif" => AttachmentKind::Animation,
            m if m.starts_with("image/") => AttachmentKind::Photo,
            m if m.starts_with("video/") => AttachmentKind::Video,
            m if (m.starts_with("audio/") || m.is_empty()) && voice => AttachmentKind::Voice,
            m if m.starts_with("audio/") => AttachmentKind::Audio,
            _ => AttachmentKind::Document,
        }
    }

    /// Photos and videos are what platforms group into one album (Telegram's
    /// `sendMediaGroup` takes only these, mixed).
    pub fn is_visual(self) -> bool {
        matches!(self, AttachmentKind::Photo | AttachmentKind::Video)
    }
}

/// One attachment of an inbound message:
/// `{"id","kind","name","mime","size","width","height","durationMs"}`, every field present,
/// unknown ones null.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// Opaque, stable: what `channels.fetch` takes (see [`super::id`]).
    pub id: String,
    pub kind: AttachmentKind,
    pub name: Option<String>,
    pub mime: Option<String>,
    /// Bytes, when the platform says.
    pub size: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<u64>,
}

impl Attachment {
    /// An attachment of `kind` with every optional field unknown; connectors set what their
    /// platform reports.
    pub fn new(id: String, kind: AttachmentKind) -> Attachment {
        Attachment {
            id,
            kind,
            name: None,
            mime: None,
            size: None,
            width: None,
            height: None,
            duration_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_content_types() {
        use AttachmentKind::*;
        let k = |m: Option<&str>, v| AttachmentKind::from_mime(m, v);
        assert_eq!(
            [
                k(Some("image/gif"), false),
                k(Some("image/png"), false),
                k(Some("video/mp4"), false)
            ],
            [Animation, Photo, Video]
        );
        assert_eq!(
            [
                k(Some("audio/ogg"), true),
                k(Some("audio/ogg"), false),
                k(None, true)
            ],
            [Voice, Audio, Voice]
        );
        assert_eq!(
            [k(Some("application/pdf"), true), k(None, false)],
            [Document, Document]
        );
    }
    use serde_json::json;

    #[test]
    fn serializes_every_field_with_nulls_for_unknown() {
        let a = Attachment::new("abc".into(), AttachmentKind::Voice);
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"id":"abc","kind":"voice","name":null,"mime":null,"size":null,
                   "width":null,"height":null,"durationMs":null})
        );
        let full = Attachment {
            name: Some("a.jpg".into()),
            mime: Some("image/jpeg".into()),
            size: Some(10),
            width: Some(640),
            height: Some(480),
            duration_ms: Some(1500),
            ..Attachment::new("x".into(), AttachmentKind::Photo)
        };
        let v = serde_json::to_value(&full).unwrap();
        assert_eq!(v["kind"], "photo");
        assert_eq!(v["durationMs"], 1500);
        let back: Attachment = serde_json::from_value(v).unwrap();
        assert_eq!(back, full);
    }

    #[test]
    fn kind_names_match_the_contract() {
        use AttachmentKind::*;
        for kind in [Photo, Video, Animation, Audio, Voice, Document, Sticker] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
            let back: AttachmentKind = serde_json::from_value(json!(kind.as_str())).unwrap();
            assert_eq!(back, kind);
        }
        assert!(serde_json::from_value::<AttachmentKind>(json!("image")).is_err());
        assert!(Photo.is_visual() && Video.is_visual());
        assert!(!Document.is_visual() && !Animation.is_visual());
    }
}
