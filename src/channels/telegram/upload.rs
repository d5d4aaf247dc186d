//! Telegram's side of outbound media: which files may share an album, which method sends a
//! file, and the multipart form of each (the bytes stream from disk through the shared
//! [`Multipart`]; see [`crate::channels::media::outgoing`]).
//!
//! One file goes with its own method (`sendPhoto`, `sendDocument`, ...), the caption beside
//! it. Several go as `sendMediaGroup`, whose `media` JSON points at the file parts with
//! `attach://fN`; Telegram takes photos and videos mixed in one album, documents only with
//! documents and audio only with audio, and nothing else in an album at all.

use serde_json::{Map, Value, json};

use super::api::destination;
use crate::channels::media::AttachmentKind;
use crate::channels::media::multipart::Multipart;
use crate::channels::media::outgoing::OutFile;

/// Telegram's upload limit for bots (the cloud Bot API): 50 MB per file.
pub const UPLOAD_LIMIT: u64 = 50 * 1024 * 1024;
/// A caption, in UTF-16 code units.
pub const MAX_CAPTION_UNITS: usize = 1024;

/// The album family of a kind: files of one family may share an album.
#[derive(PartialEq, Eq)]
enum Family {
    Visual,
    Documents,
    Audio,
    /// Voice, animation, sticker: always on their own.
    Alone,
}

fn family(kind: AttachmentKind) -> Family {
    match kind {
        AttachmentKind::Photo | AttachmentKind::Video => Family::Visual,
        AttachmentKind::Document => Family::Documents,
        AttachmentKind::Audio => Family::Audio,
        AttachmentKind::Voice | AttachmentKind::Animation | AttachmentKind::Sticker => Family::Alone,
    }
}

/// Split `files`, in order, into the messages Telegram can send: runs of one album family
/// become albums, the rest single messages.
pub fn group(files: Vec<OutFile>) -> Vec<Vec<OutFile>> {
    let mut groups: Vec<Vec<OutFile>> = Vec::new();
    for file in files {
        match groups.last_mut() {
            Some(last) if family(file.kind) != Family::Alone && family(last[0].kind) == family(file.kind) => {
                last.push(file);
            }
            _ => groups.push(vec![file]),
        }
    }
    groups
}

/// Whether a message of these files can carry a caption (a sticker cannot).
pub fn takes_caption(files: &[OutFile]) -> bool {
    !(files.len() == 1 && files[0].kind == AttachmentKind::Sticker)
}

/// The method and field of a single file of `kind`.
fn single(kind: AttachmentKind) -> (&'static str, &'static str) {
    match kind {
        AttachmentKind::Photo => ("sendPhoto", "photo"),
        AttachmentKind::Video => ("sendVideo", "video"),
        AttachmentKind::Animation => ("sendAnimation", "animation"),
        AttachmentKind::Audio => ("sendAudio", "audio"),
        AttachmentKind::Voice => ("sendVoice", "voice"),
        AttachmentKind::Document => ("sendDocument", "document"),
        AttachmentKind::Sticker => ("sendSticker", "sticker"),
    }
}

/// One media message: where it goes, its files and caption.
pub struct MediaSend<'a> {
    pub chat_id: &'a str,
    pub files: &'a [OutFile],
    pub caption: Option<&'a str>,
    pub parse_mode: Option<&'static str>,
    pub thread_id: Option<i64>,
    pub reply_to: Option<i64>,
}

impl MediaSend<'_> {
    /// The method to call and its form.
    pub fn form(&self) -> (&'static str, Multipart) {
        let mut form = Multipart::new();
        let params = destination(self.chat_id, self.parse_mode, self.thread_id, self.reply_to);
        let caption_params = |m: &mut Map<String, Value>| {
            if let Some(c) = self.caption {
                m.insert("caption".into(), json!(c));
            }
        };
        let method = if let [file] = self.files {
            let (method, field) = single(file.kind);
            let mut params = params;
            caption_params(&mut params);
            add_fields(&mut form, &params);
            file.add_to(&mut form, field);
            method
        } else {
            let mut items = Vec::with_capacity(self.files.len());
            for (i, file) in self.files.iter().enumerate() {
                let mut item = Map::new();
                item.insert("type".into(), json!(single(file.kind).1));
                item.insert("media".into(), json!(format!("attach://f{i}")));
                if i == 0 {
                    caption_params(&mut item);
                    if let (Some(mode), Some(_)) = (self.parse_mode, self.caption) {
                        item.insert("parse_mode".into(), json!(mode));
                    }
                }
                items.push(Value::Object(item));
            }
            let mut params = params;
            // The caption's format goes with the item in an album.
            params.remove("parse_mode");
            params.insert("media".into(), Value::Array(items));
            add_fields(&mut form, &params);
            for (i, file) in self.files.iter().enumerate() {
                file.add_to(&mut form, &format!("f{i}"));
            }
            "sendMediaGroup"
        };
        (method, form)
    }
}

/// Form fields are text: strings as they are, everything else as JSON.
fn add_fields(form: &mut Multipart, params: &Map<String, Value>) {
    for (name, value) in params {
        match value {
            Value::String(s) => form.text(name, s),
            other => form.text(name, &other.to_string()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::media::outgoing::Bytes;
    use std::io::Read;

    fn file(name: &str, kind: AttachmentKind) -> OutFile {
        OutFile {
            name: name.into(),
            mime: "application/octet-stream".into(),
            kind,
            bytes: Bytes::Memory(name.as_bytes().into()),
        }
    }

    fn names(groups: &[Vec<OutFile>]) -> Vec<Vec<&str>> {
        groups
            .iter()
            .map(|g| g.iter().map(|f| f.name.as_str()).collect())
            .collect()
    }

    #[test]
    fn albums_take_runs_of_one_family() {
        use AttachmentKind::*;
        let files = vec![
            file("p1", Photo),
            file("v1", Video),
            file("p2", Photo),
            file("d1", Document),
            file("d2", Document),
            file("voice", Voice),
            file("a1", Audio),
            file("s1", Sticker),
            file("s2", Sticker),
        ];
        assert_eq!(
            names(&group(files)),
            [
                vec!["p1", "v1", "p2"],
                vec!["d1", "d2"],
                vec!["voice"],
                vec!["a1"],
                vec!["s1"],
                vec!["s2"]
            ]
        );
        assert!(!takes_caption(&[file("s", Sticker)]));
        assert!(takes_caption(&[file("p", Photo)]));
    }

    fn body(send: &MediaSend) -> (&'static str, String) {
        let (method, form) = send.form();
        let mut out = Vec::new();
        form.into_reader().read_to_end(&mut out).unwrap();
        (method, String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn a_single_file_uses_its_method_and_field() {
        let files = [file("cat.jpg", AttachmentKind::Photo)];
        let (method, text) = body(&MediaSend {
            chat_id: "42",
            files: &files,
            caption: Some("a cat"),
            parse_mode: Some("HTML"),
            thread_id: Some(7),
            reply_to: Some(3),
        });
        assert_eq!(method, "sendPhoto");
        for want in [
            "name=\"chat_id\"\r\n\r\n42\r\n",
            "name=\"caption\"\r\n\r\na cat\r\n",
            "name=\"parse_mode\"\r\n\r\nHTML\r\n",
            "name=\"message_thread_id\"\r\n\r\n7\r\n",
            "\"message_id\":3",
            "name=\"photo\"; filename=\"cat.jpg\"",
        ] {
            assert!(text.contains(want), "{want:?} in {text}");
        }
    }

    #[test]
    fn an_album_points_at_its_parts() {
        let files = [
            file("a.jpg", AttachmentKind::Photo),
            file("b.mp4", AttachmentKind::Video),
        ];
        let (method, text) = body(&MediaSend {
            chat_id: "@chan",
            files: &files,
            caption: Some("two"),
            parse_mode: None,
            thread_id: None,
            reply_to: None,
        });
        assert_eq!(method, "sendMediaGroup");
        assert!(text.contains(r#"[{"caption":"two","media":"attach://f0","type":"photo"},{"media":"attach://f1","type":"video"}]"#), "{text}");
        assert!(
            text.contains("name=\"f0\"; filename=\"a.jpg\"")
                && text.contains("name=\"f1\"; filename=\"b.mp4\"")
        );
        assert!(text.contains("name=\"chat_id\"\r\n\r\n@chan\r\n"));
    }
}
