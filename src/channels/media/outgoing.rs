//! Outbound attachments ready to upload: each [`request::Outbound`] with its bytes in hand,
//! a file opened through the `media.sendDirs` policy or decoded `data`. Prepared once, by
//! the router, before the connector sees the send, so every refusal (a bad path, a file
//! over the platform's limit) comes before anything is sent.
//!
//! The bytes are shared (`Arc`) and files are read with `pread` from their start, so a
//! retried upload (after a 429) sends the same bytes again without reopening anything.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use super::attachment::AttachmentKind;
use super::error::MediaError;
use super::multipart::Multipart;
use super::request::{self, AttachmentRequest, Source};
use super::send_dirs;

/// Where an upload's bytes are.
#[derive(Clone, Debug)]
pub enum Bytes {
    /// An open regular file inside `media.sendDirs`, and its length when it was checked.
    File { file: Arc<File>, len: u64 },
    /// Decoded `data`.
    Memory(Arc<[u8]>),
}

/// One attachment to upload.
#[derive(Clone, Debug)]
pub struct OutFile {
    /// The file name the platform shows.
    pub name: String,
    pub mime: String,
    pub kind: AttachmentKind,
    pub bytes: Bytes,
}

impl OutFile {
    pub fn len(&self) -> u64 {
        match &self.bytes {
            Bytes::File { len, .. } => *len,
            Bytes::Memory(b) => b.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Add this file to `form` as the part `field`.
    pub fn add_to(&self, form: &mut Multipart, field: &str) {
        match &self.bytes {
            Bytes::File { file, len } => form.file(field, &self.name, &self.mime, file.clone(), *len),
            Bytes::Memory(b) => form.bytes(field, &self.name, &self.mime, b.clone()),
        };
    }
}

/// Check `list` ([`request::validate`]) and open each `path` through the policy in `dirs`.
/// Errors name the attachment (`attachments[2].path: ...`).
pub fn prepare(list: Vec<AttachmentRequest>, dirs: &[PathBuf]) -> Result<Vec<OutFile>, MediaError> {
    let checked = request::validate(list)?;
    checked
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let bytes = match a.source {
                Source::Data(d) => Bytes::Memory(d.into()),
                Source::Path(p) => {
                    let f = send_dirs::open_for_send(&p, dirs)
                        .map_err(|e| e.map_text(|t| format!("attachments[{i}].path: {t}")))?;
                    Bytes::File {
                        file: Arc::new(f.file),
                        len: f.len,
                    }
                }
            };
            Ok(OutFile {
                name: a.name,
                mime: a.mime,
                kind: a.kind,
                bytes,
            })
        })
        .collect()
}

/// Refuse, before anything is sent, a file over the platform's upload limit.
pub fn check_limit(files: &[OutFile], limit: u64, platform: &str) -> Result<(), MediaError> {
    match files.iter().enumerate().find(|(_, f)| f.len() > limit) {
        Some((i, f)) => Err(MediaError::TooLarge(format!(
            "attachments[{i}] ({}) is {} bytes; {platform} takes files up to {limit} bytes",
            f.name,
            f.len()
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::{Read, Write};

    fn requests(v: serde_json::Value) -> Vec<AttachmentRequest> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn paths_are_opened_through_the_policy_and_data_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cat.png");
        std::fs::File::create(&path).unwrap().write_all(b"meow").unwrap();
        let files = prepare(
            requests(json!([{"path": path}, {"data": "aGk=", "name": "hi.txt"}])),
            &[dir.path().to_owned()],
        )
        .unwrap();
        assert_eq!((files[0].name.as_str(), files[0].len()), ("cat.png", 4));
        assert_eq!(files[0].kind, AttachmentKind::Photo);
        assert_eq!((files[1].name.as_str(), files[1].len()), ("hi.txt", 2));
        check_limit(&files, 4, "test").unwrap();
        let e = check_limit(&files, 3, "test").unwrap_err();
        assert!(
            matches!(&e, MediaError::TooLarge(t) if t.contains("attachments[0] (cat.png) is 4 bytes")),
            "{e}"
        );
    }

    #[test]
    fn a_path_outside_the_dirs_is_forbidden_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let path = other.path().join("secret");
        std::fs::write(&path, b"x").unwrap();
        let e = prepare(
            requests(json!([{"data": "aGk="}, {"path": path}])),
            &[dir.path().to_owned()],
        )
        .unwrap_err();
        assert!(
            matches!(&e, MediaError::Forbidden(t) if t.starts_with("attachments[1].path: ")),
            "{e}"
        );
    }

    #[test]
    fn the_same_file_can_be_sent_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.bin");
        std::fs::write(&path, b"0123456789").unwrap();
        let files = prepare(requests(json!([{"path": path}])), &[dir.path().to_owned()]).unwrap();
        for _ in 0..2 {
            let mut form = Multipart::new();
            files[0].add_to(&mut form, "document");
            let mut body = Vec::new();
            form.into_reader().read_to_end(&mut body).unwrap();
            let text = String::from_utf8(body).unwrap();
            assert!(text.contains("\r\n\r\n0123456789\r\n"), "{text}");
        }
    }
}
