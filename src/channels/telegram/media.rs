//! Telegram's media in the shared vocabulary ([`crate::channels::media`]): the attachments of a
//! Message, and the platform reference behind an attachment id.
//!
//! The reference is the `file_id` alone: `getFile` turns it into a download path whenever it
//! is fetched (the path itself expires after an hour, so it is never stored).
//!
//! Parsing is lenient: an object counts as a file when it has a string `file_id`; every other
//! field is used when present and of the right type, and ignored otherwise.

use serde_json::Value;

use crate::channels::fields::{opt_string, opt_u64};
use crate::channels::media::{Attachment, AttachmentKind, MediaError, id};

const CHANNEL: &str = "telegram";

/// Message fields holding one file, and the kind each is.
const SINGLE: &[(&str, AttachmentKind)] = &[
    ("animation", AttachmentKind::Animation),
    ("video", AttachmentKind::Video),
    ("video_note", AttachmentKind::Video),
    ("audio", AttachmentKind::Audio),
    ("voice", AttachmentKind::Voice),
    ("sticker", AttachmentKind::Sticker),
    ("document", AttachmentKind::Document),
];

/// The attachments of `message`, in a stable order: the photo (largest size only), then the
/// single-file fields. A GIF comes as both `animation` and `document` (the latter for old
/// clients); only the animation is reported.
pub fn attachments(message: &Value) -> Vec<Attachment> {
    let mut out = Vec::new();
    if let Some(photo) = largest_photo(message) {
        out.push(photo);
    }
    for &(field, kind) in SINGLE {
        if field == "document" && message.get("animation").is_some() {
            continue;
        }
        if let Some(a) = message.get(field).and_then(|f| file(f, kind)) {
            out.push(a);
        }
    }
    out
}

/// The `file_id` behind attachment `id` (`NOT_FOUND` for ids not Telegram's).
pub fn file_id(attachment_id: &str) -> Result<String, MediaError> {
    let mut parts = id::decode(CHANNEL, attachment_id)?;
    Ok(parts.swap_remove(0))
}

/// `photo` is an array of sizes of one picture; the agent gets the largest.
fn largest_photo(message: &Value) -> Option<Attachment> {
    let sizes = message.get("photo")?.as_array()?;
    let area = |p: &Value| opt_u64(p, "width").unwrap_or(0) * opt_u64(p, "height").unwrap_or(0);
    let best = sizes
        .iter()
        .filter(|p| p.get("file_id").and_then(Value::as_str).is_some())
        .max_by_key(|p| (area(p), opt_u64(p, "file_size").unwrap_or(0)))?;
    let mut a = file(best, AttachmentKind::Photo)?;
    // Telegram re-encodes every photo as JPEG.
    a.mime = Some("image/jpeg".into());
    Some(a)
}

fn file(f: &Value, kind: AttachmentKind) -> Option<Attachment> {
    let file_id = f.get("file_id")?.as_str().filter(|s| !s.is_empty())?;
    let mut a = Attachment::new(id::encode(CHANNEL, &[file_id]), kind);
    a.name = opt_string(f, "file_name");
    a.mime = opt_string(f, "mime_type").or_else(|| implied_mime(f, kind));
    a.size = opt_u64(f, "file_size");
    // A video note is square: its side is `length`.
    let side = opt_u64(f, "length");
    a.width = opt_u64(f, "width").or(side).and_then(|v| u32::try_from(v).ok());
    a.height = opt_u64(f, "height").or(side).and_then(|v| u32::try_from(v).ok());
    a.duration_ms = opt_u64(f, "duration").map(|s| s.saturating_mul(1000));
    Some(a)
}

/// Types Telegram implies without saying: stickers by their flags, video notes.
fn implied_mime(f: &Value, kind: AttachmentKind) -> Option<String> {
    let flag = |k| f.get(k).and_then(Value::as_bool) == Some(true);
    let m = match kind {
        AttachmentKind::Sticker if flag("is_animated") => "application/x-tgsticker",
        AttachmentKind::Sticker if flag("is_video") => "video/webm",
        AttachmentKind::Sticker => "image/webp",
        _ => return None,
    };
    Some(m.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_largest_photo_only() {
        let m = json!({"photo": [
            {"file_id": "small", "file_unique_id": "u1", "width": 90, "height": 60, "file_size": 1000},
            {"file_id": "big", "file_unique_id": "u3", "width": 1280, "height": 853, "file_size": 90000},
            {"file_id": "mid", "file_unique_id": "u2", "width": 320, "height": 213},
            {"width": 5000, "height": 5000}
        ]});
        let got = attachments(&m);
        assert_eq!(got.len(), 1);
        let a = &got[0];
        assert_eq!(file_id(&a.id).unwrap(), "big");
        assert_eq!(a.kind, AttachmentKind::Photo);
        assert_eq!((a.width, a.height, a.size), (Some(1280), Some(853), Some(90000)));
        assert_eq!(a.mime.as_deref(), Some("image/jpeg"));
        assert_eq!(a.name, None);
    }

    #[test]
    fn every_single_file_kind() {
        let m = json!({
            "video": {"file_id": "v", "width": 640, "height": 360, "duration": 12, "mime_type": "video/mp4", "file_size": 5},
            "audio": {"file_id": "a", "duration": 200, "file_name": "song.mp3", "mime_type": "audio/mpeg"},
            "voice": {"file_id": "o", "duration": 3, "mime_type": "audio/ogg"},
            "video_note": {"file_id": "n", "length": 240, "duration": 9},
            "sticker": {"file_id": "s", "width": 512, "height": 512, "is_animated": true, "is_video": false},
            "document": {"file_id": "d", "file_name": "r.pdf", "mime_type": "application/pdf", "file_size": 77}
        });
        let got = attachments(&m);
        let kinds: Vec<&str> = got.iter().map(|a| a.kind.as_str()).collect();
        assert_eq!(kinds, ["video", "video", "audio", "voice", "sticker", "document"]);
        assert_eq!(got[0].duration_ms, Some(12_000));
        assert_eq!((got[1].width, got[1].height), (Some(240), Some(240)));
        assert_eq!(got[2].name.as_deref(), Some("song.mp3"));
        assert_eq!(got[3].mime.as_deref(), Some("audio/ogg"));
        assert_eq!(got[4].mime.as_deref(), Some("application/x-tgsticker"));
        assert_eq!(
            (got[5].size, got[5].mime.as_deref()),
            (Some(77), Some("application/pdf"))
        );
        let ids: Vec<String> = got.iter().map(|a| file_id(&a.id).unwrap()).collect();
        assert_eq!(ids, ["v", "n", "a", "o", "s", "d"]);
    }

    #[test]
    fn a_gif_is_one_animation_not_also_a_document() {
        let m = json!({
            "animation": {"file_id": "g", "width": 100, "height": 100, "duration": 2, "mime_type": "video/mp4"},
            "document": {"file_id": "g", "mime_type": "video/mp4"}
        });
        let got = attachments(&m);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].kind, AttachmentKind::Animation);
    }

    #[test]
    fn lenient_about_everything_but_file_id() {
        let m = json!({
            "voice": {"file_id": "x", "duration": "long", "file_size": -1, "mime_type": 5},
            "sticker": {},
            "document": {"file_id": ""},
            "photo": "not an array",
            "video": {"file_id": 7}
        });
        let got = attachments(&m);
        assert_eq!(got.len(), 1);
        let a = &got[0];
        assert_eq!(a.kind, AttachmentKind::Voice);
        assert_eq!((a.duration_ms, a.size, a.mime.clone()), (None, None, None));
        assert!(attachments(&json!({"text": "hi"})).is_empty());
    }

    #[test]
    fn ids_of_other_channels_are_not_found() {
        let discord = id::encode("discord", &["1", "2", "3", "u"]);
        assert!(matches!(file_id(&discord), Err(MediaError::NotFound(_))));
        assert!(matches!(file_id("garbage"), Err(MediaError::NotFound(_))));
    }
}
