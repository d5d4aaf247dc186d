//! Mime types from file names, and the default `kind` of an outbound attachment (contract:
//! `image/*` → photo, else document).
//!
//! A small table of the types chat platforms treat specially is enough: a file the table does
//! not know goes as `application/octet-stream`, a document, which every platform accepts.

use std::path::Path;

use super::attachment::AttachmentKind;

/// The type of bytes nobody named.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Extension (lowercase) → mime type.
const BY_EXTENSION: &[(&str, &str)] = &[
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("png", "image/png"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("bmp", "image/bmp"),
    ("heic", "image/heic"),
    ("mp4", "video/mp4"),
    ("m4v", "video/mp4"),
    ("mov", "video/quicktime"),
    ("webm", "video/webm"),
    ("mkv", "video/x-matroska"),
    ("mp3", "audio/mpeg"),
    ("m4a", "audio/mp4"),
    ("ogg", "audio/ogg"),
    ("oga", "audio/ogg"),
    ("opus", "audio/ogg"),
    ("wav", "audio/wav"),
    ("flac", "audio/flac"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("json", "application/json"),
    ("txt", "text/plain"),
    ("md", "text/markdown"),
    ("csv", "text/csv"),
    ("html", "text/html"),
];

/// The mime type for `name`'s extension, if the table knows it.
pub fn from_name(name: &str) -> Option<&'static str> {
    let ext = Path::new(name).extension()?.to_str()?.to_ascii_lowercase();
    BY_EXTENSION.iter().find(|(e, _)| *e == ext).map(|(_, m)| *m)
}

/// The extension to give bytes of `mime` that came without a name (`data` attachments).
pub fn extension_for(mime: &str) -> Option<&'static str> {
    let mime = essence(mime);
    BY_EXTENSION.iter().find(|(_, m)| *m == mime).map(|(e, _)| *e)
}

/// The kind an attachment gets when the client names none: a photo for any `image/*`
/// (a client-given mime first, else the name's), a document otherwise.
pub fn default_kind(mime: Option<&str>, name: Option<&str>) -> AttachmentKind {
    let mime = mime.map(essence).or_else(|| name.and_then(from_name));
    match mime {
        Some(m) if m.to_ascii_lowercase().starts_with("image/") => AttachmentKind::Photo,
        _ => AttachmentKind::Document,
    }
}

/// `type/subtype` without parameters (`image/png; q=1` → `image/png`).
fn essence(mime: &str) -> &str {
    mime.split(';').next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_extensions_any_case() {
        assert_eq!(from_name("cat.JPG"), Some("image/jpeg"));
        assert_eq!(from_name("/x/y/voice.ogg"), Some("audio/ogg"));
        assert_eq!(from_name("report.pdf"), Some("application/pdf"));
        assert_eq!(from_name("archive.tar.xz"), None);
        assert_eq!(from_name("noext"), None);
        assert_eq!(from_name(".hidden"), None);
    }

    #[test]
    fn extension_for_mime() {
        assert_eq!(extension_for("image/jpeg"), Some("jpg"));
        assert_eq!(extension_for("image/png; q=1"), Some("png"));
        assert_eq!(extension_for("application/x-unknown"), None);
    }

    #[test]
    fn kind_defaults_from_mime_then_name() {
        use AttachmentKind::*;
        assert_eq!(default_kind(Some("image/png"), None), Photo);
        assert_eq!(default_kind(Some("image/webp; x=1"), Some("a.pdf")), Photo);
        assert_eq!(default_kind(Some("IMAGE/PNG"), None), Photo);
        // A client's mime wins over the name.
        assert_eq!(default_kind(Some("application/pdf"), Some("a.jpg")), Document);
        assert_eq!(default_kind(None, Some("a.jpeg")), Photo);
        assert_eq!(default_kind(None, Some("clip.mp4")), Document);
        assert_eq!(default_kind(None, Some("x")), Document);
        assert_eq!(default_kind(None, None), Document);
    }
}
