//! A real `multipart/form-data` parser (RFC 7578 over RFC 2046) for the platform fakes, so
//! they accept uploads the way the real APIs do: the boundary from `Content-Type`, each part's
//! headers, `name`, `filename`, `Content-Type` and bytes, with the sha256 of each part. A
//! malformed body is an error, as the platforms answer 400 to one.
//!
//! Written independently of `src/channels/media/multipart.rs` (and hashing with `sha2`
//! directly), so a bug in the gateway's writer cannot hide behind the same bug here.

use sha2::{Digest, Sha256};

/// One part of a form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
    /// Lowercase hex sha256 of `data`.
    pub sha256: String,
}

impl Part {
    /// The data as text (text fields).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// The sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The `boundary` parameter of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Result<String, String> {
    let mut params = split_params(content_type).into_iter();
    let essence = params.next().unwrap_or_default();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return Err(format!("content type {essence:?} is not multipart/form-data"));
    }
    let b = params
        .filter_map(|p| param(&p, "boundary"))
        .next()
        .ok_or("no boundary parameter")?;
    if b.is_empty() || b.len() > 70 {
        return Err(format!("boundary {b:?} must be 1 to 70 characters"));
    }
    Ok(b)
}

/// Parse `body` sent with `content_type`.
pub fn parse(content_type: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    let delimiter = format!("--{}", boundary(content_type)?).into_bytes();
    // The first delimiter opens the body (a preamble before it is allowed and ignored).
    let mut at = if body.starts_with(&delimiter) {
        delimiter.len()
    } else {
        let mut d = b"\r\n".to_vec();
        d.extend_from_slice(&delimiter);
        find(body, &d, 0).ok_or("no opening boundary")? + d.len()
    };
    let mut close = b"\r\n".to_vec();
    close.extend_from_slice(&delimiter);
    let mut parts = Vec::new();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            // The closing delimiter; an epilogue may follow.
            return if parts.is_empty() {
                Err("a form without parts".into())
            } else {
                Ok(parts)
            };
        }
        if !rest.starts_with(b"\r\n") {
            return Err(format!("junk after a boundary at byte {at}"));
        }
        at += 2;
        let head_end = find(body, b"\r\n\r\n", at).ok_or("part headers never end")?;
        let head = std::str::from_utf8(&body[at..head_end]).map_err(|_| "part headers are not UTF-8")?;
        let data_start = head_end + 4;
        let data_end = find(body, &close, data_start).ok_or("no closing boundary")?;
        parts.push(part(head, &body[data_start..data_end])?);
        at = data_end + close.len();
    }
}

fn part(head: &str, data: &[u8]) -> Result<Part, String> {
    let mut disposition = None;
    let mut content_type = None;
    for line in head.split("\r\n") {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("malformed part header {line:?}"))?;
        match k.trim().to_ascii_lowercase().as_str() {
            "content-disposition" => disposition = Some(v.trim().to_owned()),
            "content-type" => content_type = Some(v.trim().to_owned()),
            _ => {}
        }
    }
    let disposition = disposition.ok_or("a part without Content-Disposition")?;
    let params = split_params(&disposition);
    if !params[0].eq_ignore_ascii_case("form-data") {
        return Err(format!("Content-Disposition {disposition:?} is not form-data"));
    }
    let name = params
        .iter()
        .find_map(|p| param(p, "name"))
        .ok_or("a part without a name")?;
    let filename = params.iter().find_map(|p| param(p, "filename"));
    Ok(Part {
        name,
        filename,
        content_type,
        data: data.to_vec(),
        sha256: sha256_hex(data),
    })
}

/// `a; b="x;y"; c=z` → `["a", "b=\"x;y\"", "c=z"]`: split on `;` outside quotes.
fn split_params(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                out.last_mut().unwrap().push(c);
            }
            ';' if !quoted => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|p| p.trim().to_owned()).collect()
}

/// The value of `key=value` or `key="value"` if `p` is that parameter.
fn param(p: &str, key: &str) -> Option<String> {
    let (k, v) = p.split_once('=')?;
    if !k.trim().eq_ignore_ascii_case(key) {
        return None;
    }
    let v = v.trim();
    Some(match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.to_owned(),
        None => v.to_owned(),
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}
