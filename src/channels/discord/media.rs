//! Discord's media in the shared vocabulary ([`crate::channels::media`]): the `attachments`
//! of a message, and the platform reference behind an attachment id.
//!
//! The reference is `[channel_id, message_id, attachment_id, url]`. The CDN URL is signed and
//! expires (about a day); a fetch that finds it expired asks Discord for a fresh one
//! (`POST /attachments/refresh-urls`), which needs only the URL, so the ids are kept for
//! the log and for a later API that wants them.
//!
//! Parsing is lenient: an attachment counts when it has a string `id` and `url`; every other
//! field is used when present and of the right type.

use serde_json::Value;

use crate::channels::fields::{opt_string, opt_u32};
use crate::channels::media::{Attachment, AttachmentKind, MediaError, id};

const CHANNEL: &str = "discord";
/// Message flag IS_VOICE_MESSAGE: the one audio attachment is a voice note.
const VOICE_MESSAGE_FLAG: u64 = 1 << 13;

/// The attachments of message `d` in `channel_id`, in Discord's order.
pub fn attachments(d: &Value, channel_id: &str, message_id: &str) -> Vec<Attachment> {
    let voice = d.get("flags").and_then(Value::as_u64).unwrap_or(0) & VOICE_MESSAGE_FLAG != 0;
    let Some(list) = d.get("attachments").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|a| {
            let attachment_id = a.get("id").and_then(Value::as_str)?;
            let url = a.get("url").and_then(Value::as_str).filter(|u| !u.is_empty())?;
            let mime = opt_string(a, "content_type");
            let kind = AttachmentKind::from_mime(mime.as_deref(), voice);
            let reference = [channel_id, message_id, attachment_id, url];
            let mut out = Attachment::new(id::encode(CHANNEL, &reference), kind);
            out.name = opt_string(a, "filename");
            out.mime = mime;
            out.size = a.get("size").and_then(Value::as_u64);
            out.width = opt_u32(a, "width");
            out.height = opt_u32(a, "height");
            out.duration_ms = a
                .get("duration_secs")
                .and_then(Value::as_f64)
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| (s * 1000.0).round() as u64);
            Some(out)
        })
        .collect()
}

/// The CDN URL behind attachment `id` (`NOT_FOUND` for ids not Discord's).
pub fn cdn_url(attachment_id: &str) -> Result<String, MediaError> {
    let parts = id::decode(CHANNEL, attachment_id)?;
    match <[String; 4]>::try_from(parts) {
        Ok([_, _, _, url]) => Ok(url),
        Err(_) => Err(MediaError::NotFound(
            "not a discord attachment id; use an id from a channel.message of this channel".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attachments_carry_their_kind_size_and_reference() {
        let d = json!({"attachments": [
            {"id": "11", "filename": "cat.png", "content_type": "image/png", "size": 1234,
             "url": "https://cdn.discordapp.com/attachments/5/11/cat.png?ex=1", "width": 640, "height": 480},
            {"id": "12", "filename": "a.gif", "content_type": "image/gif", "url": "https://cdn/a.gif"},
            {"id": "13", "filename": "report.pdf", "url": "https://cdn/r.pdf"},
            {"id": "14", "url": ""},
            {"filename": "no id", "url": "https://cdn/x"},
        ]});
        let got = attachments(&d, "5", "99");
        assert_eq!(got.len(), 3);
        assert_eq!(
            (got[0].kind, got[0].size, got[0].width),
            (AttachmentKind::Photo, Some(1234), Some(640))
        );
        assert_eq!(got[1].kind, AttachmentKind::Animation);
        assert_eq!(
            (got[2].kind, got[2].mime.as_deref()),
            (AttachmentKind::Document, None)
        );
        assert_eq!(
            cdn_url(&got[0].id).unwrap(),
            "https://cdn.discordapp.com/attachments/5/11/cat.png?ex=1"
        );
    }

    #[test]
    fn a_voice_message_is_voice() {
        let d = json!({"flags": 8192, "attachments": [
            {"id": "1", "filename": "voice-message.ogg", "content_type": "audio/ogg",
             "duration_secs": 3.5, "url": "https://cdn/v.ogg"}]});
        let got = attachments(&d, "5", "9");
        assert_eq!(
            (got[0].kind, got[0].duration_ms),
            (AttachmentKind::Voice, Some(3500))
        );
        let d =
            json!({"attachments": [{"id": "1", "content_type": "audio/mpeg", "url": "https://cdn/s.mp3"}]});
        assert_eq!(attachments(&d, "5", "9")[0].kind, AttachmentKind::Audio);
    }

    #[test]
    fn other_ids_are_not_found() {
        let telegram = id::encode("telegram", &["x"]);
        assert!(matches!(cdn_url(&telegram), Err(MediaError::NotFound(_))));
        let short = id::encode("discord", &["5", "9"]);
        assert!(matches!(cdn_url(&short), Err(MediaError::NotFound(_))));
    }
}
