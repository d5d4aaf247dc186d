//! `channels.send` with attachments on Telegram, through the real binary against the fake
//! Bot API, which parses the multipart bodies for real and checks each file by sha256: a
//! photo from the outbox with its caption, albums, text too long for a caption, a document
//! streamed from disk and sent again after a 429, and every kind of bad attachment refused
//! before anything is uploaded.

mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use support::fake_telegram::{FakeTelegram, Fault};
use support::multipart::sha256_hex;
use support::telegram::{TOKEN, call, start};
use support::{Gateway, Home, Watchdog, Ws};

const CHAT: i64 = 100;

struct Setup {
    fake: FakeTelegram,
    home: Home,
    gw: Gateway,
    op: Ws,
}

fn setup() -> Setup {
    let fake = FakeTelegram::start(TOKEN);
    fake.add_chat(CHAT, "private", None);
    let (home, gw) = start(&fake);
    let op = gw.operator();
    Setup { fake, home, gw, op }
}

impl Setup {
    /// The default `media.sendDirs`, which the gateway creates.
    fn outbox(&self) -> PathBuf {
        self.home.state_dir().join("outbox")
    }

    fn put(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.outbox().join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    fn send(&mut self, id: &str, text: &str, attachments: Value) -> Value {
        call(
            &mut self.op,
            id,
            "channels.send",
            json!({"channel": "telegram", "to": CHAT.to_string(), "text": text, "attachments": attachments}),
        )
    }

    /// The error of a send that must fail, with its code; nothing may have been uploaded.
    fn refused(&mut self, attachments: Value, code: &str) -> String {
        let r = self.send("bad", "x", attachments.clone());
        assert_eq!(r["error"]["code"], code, "{attachments}: {r}");
        assert!(self.fake.uploads().is_empty(), "uploaded despite {r}");
        r["error"]["message"].as_str().unwrap().to_owned()
    }
}

fn bytes(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(seed) >> 3) as u8)
        .collect()
}

fn ids(r: &Value) -> Vec<String> {
    r["result"]["messageIds"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_photo_from_the_outbox_goes_with_its_caption() {
    let _w = Watchdog::new("photo", Duration::from_secs(30));
    let mut s = setup();
    let photo = bytes(300_000, 7);
    let path = s.put("cat.jpg", &photo);
    let r = s.send("p", "a <b>cat</b>", json!([{"path": path}]));
    assert_eq!(ids(&r).len(), 1, "{r}");
    let up = &s.fake.uploads()[0];
    assert_eq!((up.method.as_str(), up.chat_id), ("sendPhoto", CHAT));
    assert_eq!(up.caption.as_deref(), Some("a <b>cat</b>"));
    assert_eq!(up.files[0].filename.as_deref(), Some("cat.jpg"));
    assert_eq!(up.files[0].content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(up.files[0].sha256, sha256_hex(&photo));
    assert_eq!(up.message_ids[0].to_string(), ids(&r)[0]);
    assert!(s.fake.sent().is_empty(), "no separate text message");
}

#[test]
fn an_album_and_a_text_too_long_for_a_caption() {
    let _w = Watchdog::new("album", Duration::from_secs(30));
    let mut s = setup();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let (p1, p2, v) = (bytes(1000, 3), bytes(2000, 5), bytes(3000, 11));
    let long = "word ".repeat(300); // 1500 characters: over the 1024 caption limit
    let r = s.send(
        "a",
        &long,
        json!([
            {"data": b64(&p1), "mime": "image/png"},
            {"data": b64(&p2), "mime": "image/jpeg"},
            {"data": b64(&v), "name": "clip.mp4", "kind": "video"},
        ]),
    );
    let got = ids(&r);
    assert_eq!(got.len(), 4, "three album messages and the text: {r}");
    let up = &s.fake.uploads()[0];
    assert_eq!(up.method, "sendMediaGroup");
    assert_eq!(up.caption, None, "the text does not fit a caption");
    let kinds: Vec<&str> = up.files.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, ["photo", "photo", "video"]);
    let sums: Vec<&str> = up.files.iter().map(|f| f.sha256.as_str()).collect();
    assert_eq!(sums, [sha256_hex(&p1), sha256_hex(&p2), sha256_hex(&v)]);
    let text = &s.fake.sent()[0];
    assert_eq!(text["text"].as_str().unwrap().trim(), long.trim());
    let album: Vec<String> = up.message_ids.iter().map(i64::to_string).collect();
    assert_eq!(got[..3], album[..], "messageIds in order");

    // Documents and a voice note: an album of documents, then the voice alone; the short
    // text is the caption of the first message.
    let r = s.send(
        "b",
        "files",
        json!([
            {"data": b64(b"one"), "name": "a.pdf"},
            {"data": b64(b"two"), "name": "b.txt"},
            {"data": b64(b"ogg"), "name": "note.ogg", "kind": "voice"},
        ]),
    );
    assert_eq!(ids(&r).len(), 3, "{r}");
    let ups = s.fake.uploads();
    assert_eq!(ups[1].method, "sendMediaGroup");
    assert_eq!(ups[1].caption.as_deref(), Some("files"));
    assert_eq!(ups[2].method, "sendVoice");
    assert_eq!(ups[2].caption, None);
}

#[test]
fn a_document_streams_from_disk_and_is_sent_again_after_a_429() {
    let _w = Watchdog::new("document", Duration::from_secs(40));
    let mut s = setup();
    let doc = bytes(5 * 1024 * 1024, 13);
    let path = s.put("report.pdf", &doc);
    s.fake.fail_next("sendDocument", Fault::RetryAfter(1));
    let r = s.send("d", "", json!([{"path": path, "kind": "document"}]));
    assert_eq!(ids(&r).len(), 1, "{r}");
    let ups = s.fake.uploads();
    assert_eq!(ups.len(), 1, "one accepted upload");
    assert_eq!(ups[0].method, "sendDocument");
    assert_eq!(ups[0].caption, None);
    assert_eq!(ups[0].files[0].size, doc.len());
    assert_eq!(ups[0].files[0].sha256, sha256_hex(&doc));
    assert_eq!(s.fake.request_count("sendDocument"), 2, "the 429, then the retry");

    // The same idempotencyKey twice: one upload.
    for id in ["k1", "k2"] {
        let r = call(
            &mut s.op,
            id,
            "channels.send",
            json!({"channel": "telegram", "to": CHAT.to_string(), "text": "once",
                   "idempotencyKey": "doc-1", "attachments": [{"path": path}]}),
        );
        assert_eq!(ids(&r).len(), 1, "{r}");
    }
    assert_eq!(s.fake.uploads().len(), 2);

    // An upload whose answer never comes may have arrived: it is not sent again.
    s.fake.fail_next("sendDocument", Fault::Drop);
    let before = s.fake.request_count("sendDocument");
    let r = s.send("lost", "", json!([{"path": path}]));
    assert_eq!(r["error"]["code"], "UNAVAILABLE", "{r}");
    assert_eq!(s.fake.request_count("sendDocument"), before + 1, "not retried");
}

#[test]
fn bad_attachments_are_refused_before_anything_is_sent() {
    let _w = Watchdog::new("bad attachments", Duration::from_secs(60));
    let mut s = setup();
    let outbox = s.outbox();
    let elsewhere = s.home.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join("secret.txt"), b"secret").unwrap();

    let e = s.refused(json!([{"path": elsewhere.join("secret.txt")}]), "FORBIDDEN");
    assert!(
        e.contains("attachments[0].path") && e.contains("media.sendDirs"),
        "{e}"
    );
    symlink(elsewhere.join("secret.txt"), outbox.join("link.txt")).unwrap();
    let e = s.refused(json!([{"path": outbox.join("link.txt")}]), "FORBIDDEN");
    assert!(e.contains("resolves to"), "{e}");
    let dotdot = format!("{}/../../elsewhere/secret.txt", outbox.display());
    s.refused(json!([{"path": dotdot}]), "FORBIDDEN");
    let evil = PathBuf::from(format!("{}-evil", outbox.display()));
    fs::create_dir(&evil).unwrap();
    fs::write(evil.join("x"), b"x").unwrap();
    s.refused(json!([{"path": evil.join("x")}]), "FORBIDDEN");

    fs::create_dir(outbox.join("folder")).unwrap();
    let e = s.refused(json!([{"path": outbox.join("folder")}]), "INVALID_REQUEST");
    assert!(e.contains("folder"), "{e}");
    let e = s.refused(json!([{"path": outbox.join("missing.png")}]), "INVALID_REQUEST");
    assert!(e.contains("missing.png"), "{e}");
    let e = s.refused(json!([{"path": "outbox/relative.png"}]), "INVALID_REQUEST");
    assert!(e.contains("absolute"), "{e}");
    mkfifo(&outbox.join("pipe"));
    let e = s.refused(json!([{"path": outbox.join("pipe")}]), "INVALID_REQUEST");
    assert!(e.contains("pipe"), "{e}");
    let ping = s.op.request("alive", "gateway.ping", json!({}));
    assert!(
        ping["result"]["ts"].is_u64(),
        "a FIFO never blocks the gateway: {ping}"
    );

    let e = s.refused(json!([{"data": "not base64!"}]), "INVALID_REQUEST");
    assert!(e.contains("attachments[0]") && e.contains("base64"), "{e}");
    let eleven: Vec<Value> = (0..11).map(|_| json!({"data": "aGk="})).collect();
    let e = s.refused(Value::Array(eleven), "INVALID_REQUEST");
    assert!(e.contains("11"), "{e}");
    s.refused(json!([{"data": "aGk=", "path": "/x"}]), "INVALID_REQUEST");

    // Over Telegram's 50 MB: refused by size, before a byte is read (a sparse file).
    let big = outbox.join("big.mp4");
    fs::File::create(&big).unwrap().set_len(51 * 1024 * 1024).unwrap();
    let e = s.refused(json!([{"data": "aGk="}, {"path": big}]), "PAYLOAD_TOO_LARGE");
    assert!(e.contains("attachments[1]") && e.contains("Telegram"), "{e}");
    assert_eq!(s.fake.request_count("sendMediaGroup"), 0);
    assert_eq!(s.fake.request_count("sendVideo"), 0);
    let _ = &s.gw;
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}
