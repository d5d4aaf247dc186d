//! A streaming `multipart/form-data` body (RFC 7578) for uploads: text fields and file parts
//! (an open [`File`] of known length, or bytes), with the exact `Content-Length` computed
//! up front, read as one [`Read`] that chains the parts. A 50 MB upload costs the HTTP
//! client's write buffer, not 50 MB.
//!
//! Why not ureq's own multipart (`ureq::unversioned::multipart`): it is outside ureq's semver
//! promise, pulls in `mime_guess` and `getrandom`, and a part made from an already open file
//! (which is what the `media.sendDirs` policy hands out, to close the gap between check and
//! use) has no known size there, so the body would go chunked, which not every platform
//! endpoint accepts for uploads. This module is small and tested against a real parser
//! (`tests/support/multipart.rs`).

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// One part's bytes.
enum Body {
    Bytes(Arc<[u8]>),
    /// A file and exactly how many bytes of it to send, from its start (its length when it
    /// was checked). Read with `pread`, never moving a shared offset, so the same open file
    /// can be sent again (a retry after a 429) or by two forms.
    File {
        file: Arc<File>,
        len: u64,
    },
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }
}

/// A form being built. Parts go on the wire in the order added.
pub struct Multipart {
    boundary: String,
    /// Each part: its delimiter and headers, then its body.
    parts: Vec<(Vec<u8>, Body)>,
}

impl Default for Multipart {
    fn default() -> Multipart {
        Multipart::new()
    }
}

impl Multipart {
    /// An empty form with a fresh random boundary (128 bits: it cannot occur in a file by
    /// chance, so file bytes need no scanning).
    pub fn new() -> Multipart {
        Multipart {
            boundary: format!("emonk-{}", uuid::Uuid::new_v4().simple()),
            parts: Vec::new(),
        }
    }

    /// A text field.
    pub fn text(&mut self, name: &str, value: &str) -> &mut Multipart {
        let head = self.head(name, None, None);
        self.parts.push((head, Body::Bytes(value.as_bytes().into())));
        self
    }

    /// A file part read from `file`: exactly `len` bytes from its start.
    pub fn file(
        &mut self,
        name: &str,
        filename: &str,
        mime: &str,
        file: impl Into<Arc<File>>,
        len: u64,
    ) -> &mut Multipart {
        let head = self.head(name, Some(filename), Some(mime));
        self.parts.push((
            head,
            Body::File {
                file: file.into(),
                len,
            },
        ));
        self
    }

    /// A file part from bytes in memory (a `data` attachment).
    pub fn bytes(
        &mut self,
        name: &str,
        filename: &str,
        mime: &str,
        data: impl Into<Arc<[u8]>>,
    ) -> &mut Multipart {
        let head = self.head(name, Some(filename), Some(mime));
        self.parts.push((head, Body::Bytes(data.into())));
        self
    }

    /// The `Content-Type` header value.
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// The exact length of the body [`Multipart::into_reader`] produces.
    pub fn content_length(&self) -> u64 {
        let parts: u64 = self
            .parts
            .iter()
            .map(|(head, body)| head.len() as u64 + body.len() + 2)
            .sum();
        parts + self.closing().len() as u64
    }

    /// The body, as a reader.
    pub fn into_reader(self) -> MultipartReader {
        let closing = self.closing();
        let mut segments = Vec::with_capacity(self.parts.len() * 3 + 1);
        for (head, body) in self.parts {
            segments.push(Segment::Bytes(Cursor::new(head)));
            segments.push(match body {
                Body::Bytes(b) => Segment::Shared { bytes: b, pos: 0 },
                Body::File { file, len } => Segment::File { file, pos: 0, len },
            });
            segments.push(Segment::Bytes(Cursor::new(b"\r\n".to_vec())));
        }
        segments.push(Segment::Bytes(Cursor::new(closing)));
        segments.reverse();
        MultipartReader { segments }
    }

    /// The delimiter line and headers that open a part.
    fn head(&self, name: &str, filename: Option<&str>, mime: Option<&str>) -> Vec<u8> {
        let mut h = format!(
            "--{}\r\nContent-Disposition: form-data; name=\"{}\"",
            self.boundary,
            escape(name)
        );
        if let Some(f) = filename {
            h.push_str(&format!("; filename=\"{}\"", escape(f)));
        }
        h.push_str("\r\n");
        if let Some(m) = mime {
            // A mime type never holds CR or LF (checked where clients give one); strip them
            // anyway so no header can be injected into the part.
            let m: String = m.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
            h.push_str(&format!("Content-Type: {m}\r\n"));
        }
        h.push_str("\r\n");
        h.into_bytes()
    }

    fn closing(&self) -> Vec<u8> {
        format!("--{}--\r\n", self.boundary).into_bytes()
    }
}

/// Quote a field or file name the way browsers do (WHATWG HTML, "multipart/form-data
/// encoding"): `"` and line breaks percent-encoded, everything else (UTF-8 included) as is.
fn escape(s: &str) -> String {
    s.replace('"', "%22").replace('\r', "%0D").replace('\n', "%0A")
}

enum Segment {
    Bytes(Cursor<Vec<u8>>),
    Shared { bytes: Arc<[u8]>, pos: usize },
    File { file: Arc<File>, pos: u64, len: u64 },
}

/// The form as a byte stream. A file that shrank since its length was taken is an error
/// (the `Content-Length` already promised the bytes); one that grew sends only the promised
/// length.
pub struct MultipartReader {
    /// Remaining segments, the next one last.
    segments: Vec<Segment>,
}

impl Read for MultipartReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while let Some(segment) = self.segments.last_mut() {
            let n = match segment {
                Segment::Bytes(c) => c.read(buf)?,
                Segment::Shared { bytes, pos } => {
                    let n = (bytes.len() - *pos).min(buf.len());
                    buf[..n].copy_from_slice(&bytes[*pos..*pos + n]);
                    *pos += n;
                    n
                }
                Segment::File { file, pos, len } => {
                    let want = usize::try_from(*len - *pos).unwrap_or(usize::MAX).min(buf.len());
                    if want == 0 {
                        0
                    } else {
                        let n = file.read_at(&mut buf[..want], *pos)?;
                        if n == 0 {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!("the file being uploaded shrank: {pos} of {len} bytes were there"),
                            ));
                        }
                        *pos += n as u64;
                        n
                    }
                }
            };
            if n > 0 {
                return Ok(n);
            }
            self.segments.pop();
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};

    fn body(form: Multipart) -> (u64, Vec<u8>) {
        let len = form.content_length();
        let mut out = Vec::new();
        form.into_reader().read_to_end(&mut out).unwrap();
        (len, out)
    }

    #[test]
    fn exact_bytes_of_a_small_form() {
        let mut form = Multipart::new();
        let b = form.boundary.clone();
        form.text("chat_id", "42")
            .bytes("photo", "a \"b\".png", "image/png", b"PNG".to_vec());
        let (len, out) = body(form);
        let want = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n42\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a %22b%22.png\"\r\n\
             Content-Type: image/png\r\n\r\nPNG\r\n--{b}--\r\n"
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);
        assert_eq!(len, want.len() as u64);
    }

    #[test]
    fn an_empty_form_is_just_the_closing_line() {
        let form = Multipart::new();
        let b = form.boundary.clone();
        let (len, out) = body(form);
        assert_eq!(out, format!("--{b}--\r\n").into_bytes());
        assert_eq!(len, out.len() as u64);
    }

    #[test]
    fn files_stream_exactly_their_length_in_small_reads() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        f.rewind().unwrap();
        let mut form = Multipart::new();
        form.file(
            "document",
            "x.bin",
            "application/octet-stream",
            f,
            data.len() as u64,
        )
        .text("caption", "hi");
        let len = form.content_length();
        let mut reader = form.into_reader();
        let mut out = Vec::new();
        let mut buf = [0u8; 1000];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out.len() as u64, len);
        let start = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(&out[start..start + data.len()], &data[..]);
    }

    #[test]
    fn a_file_that_grew_sends_only_the_promised_length() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"0123456789").unwrap();
        f.rewind().unwrap();
        let mut form = Multipart::new();
        form.file("f", "f", "text/plain", f, 4);
        let (len, out) = body(form);
        assert_eq!(out.len() as u64, len);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\n\r\n0123\r\n--"), "{text}");
    }

    #[test]
    fn a_file_that_shrank_is_an_error() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"abc").unwrap();
        f.rewind().unwrap();
        let mut form = Multipart::new();
        form.file("f", "f", "text/plain", f, 10);
        let mut out = Vec::new();
        let e = form.into_reader().read_to_end(&mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("3 of 10"), "{e}");
    }

    #[test]
    fn header_injection_is_defused() {
        let mut form = Multipart::new();
        form.bytes("f\r\nX: 1", "a\r\nb", "text/plain\r\nX-Evil: 1", vec![]);
        let (_, out) = body(form);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("name=\"f%0D%0AX: 1\"; filename=\"a%0D%0Ab\""),
            "{text}"
        );
        assert!(text.contains("Content-Type: text/plainX-Evil: 1\r\n"), "{text}");
    }

    #[test]
    fn boundaries_differ() {
        assert_ne!(Multipart::new().boundary, Multipart::new().boundary);
    }
}
