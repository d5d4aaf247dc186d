//! Slack's media in the shared vocabulary ([`crate::channels::media`]): the `files` of a
//! message, and the platform reference behind an attachment id.
//!
//! The reference is `[file_id, url]` with `url_private_download` (else `url_private`): the
//! file's bytes, which Slack serves only with the bot token as a Bearer header. The shared
//! download never lets that header follow a redirect (see `channels::http::download`).
//!
//! Parsing is lenient: a file counts when it has a string `id` and one of the URLs; a file
//! Slack hides from the bot (`mode: "hidden_by_limit"`, `tombstone`) has neither and is left
//! out. Every other field is used when present and of the right type.

use serde_json::Value;

use crate::channels::fields::{opt_string, opt_u32};
use crate::channels::media::{Attachment, AttachmentKind, MediaError, id};

const CHANNEL: &str = "slack";

/// The attachments of message `m` (its `files`).
pub fn attachments(m: &Value) -> Vec<Attachment> {
    let Some(files) = m.get("files").and_then(Value::as_array) else {
        return Vec::new();
    };
    files
        .iter()
        .filter_map(|f| {
            let file_id = f.get("id").and_then(Value::as_str)?;
            let url = ["url_private_download", "url_private"]
                .iter()
                .find_map(|k| f.get(*k).and_then(Value::as_str).filter(|u| !u.is_empty()))?;
            let mime = opt_string(f, "mimetype");
            let voice = f.get("subtype").and_then(Value::as_str) == Some("slack_audio");
            let mut a = Attachment::new(
                id::encode(CHANNEL, &[file_id, url]),
                AttachmentKind::from_mime(mime.as_deref(), voice),
            );
            a.name = opt_string(f, "name");
            a.mime = mime;
            a.size = f.get("size").and_then(Value::as_u64);
            a.width = opt_u32(f, "original_w");
            a.height = opt_u32(f, "original_h");
            a.duration_ms = f.get("duration_ms").and_then(Value::as_u64);
            Some(a)
        })
        .collect()
}

/// The download URL behind attachment `id` (`NOT_FOUND` for ids not Slack's).
pub fn file_url(attachment_id: &str) -> Result<String, MediaError> {
    let parts = id::decode(CHANNEL, attachment_id)?;
    match <[String; 2]>::try_from(parts) {
        Ok([_, url]) => Ok(url),
        Err(_) => Err(MediaError::NotFound(
            "not a slack attachment id; use an id from a channel.message of this channel".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn files_become_attachments() {
        let m = json!({"files": [
            {"id": "F1", "name": "cat.png", "mimetype": "image/png", "size": 10, "original_w": 4, "original_h": 3,
             "url_private": "https://files.slack.com/files-pri/T-F1/cat.png",
             "url_private_download": "https://files.slack.com/files-pri/T-F1/download/cat.png"},
            {"id": "F2", "name": "memo.m4a", "mimetype": "audio/mp4", "subtype": "slack_audio", "duration_ms": 4200,
             "url_private": "https://files.slack.com/files-pri/T-F2/memo.m4a"},
            {"id": "F3", "mode": "hidden_by_limit"},
        ]});
        let got = attachments(&m);
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].kind, got[0].width, got[0].size),
            (AttachmentKind::Photo, Some(4), Some(10))
        );
        assert_eq!(
            file_url(&got[0].id).unwrap(),
            "https://files.slack.com/files-pri/T-F1/download/cat.png"
        );
        assert_eq!(
            (got[1].kind, got[1].duration_ms),
            (AttachmentKind::Voice, Some(4200))
        );
        assert!(matches!(
            file_url(&id::encode("discord", &["a", "b", "c", "d"])),
            Err(MediaError::NotFound(_))
        ));
    }
}
