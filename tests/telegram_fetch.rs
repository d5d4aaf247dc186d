//! `channels.fetch` through the Telegram connector, with the real binary and the fake Bot
//! API serving `getFile` and file downloads (contract, "Media in"): the bytes land in
//! `<state>/media/` checked by sha256, are downloaded once however many clients ask, survive
//! a restart, and every way a fetch can fail answers with its code and leaves no partial file.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::fake_telegram::{DOWNLOAD_LIMIT, DownloadFault, FakeTelegram};
use support::telegram::{TOKEN, call, next_message, polling_agent, start, start_with};
use support::{Gateway, Watchdog, Ws, error_code};

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes that are not all alike, so a torn or shifted copy cannot pass by accident.
fn file_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Push a document message carrying `file_id` and return its attachment id as the agent
/// sees it.
fn document_attachment(fake: &FakeTelegram, agent: &mut Ws, file_id: &str, name: &str) -> String {
    fake.push_update(
        "message",
        json!({"message_id": 7, "date": 1700000000,
               "from": {"id": 42, "is_bot": false, "first_name": "Ada"},
               "chat": {"id": 42, "type": "private"},
               "document": {"file_id": file_id, "file_unique_id": format!("u{file_id}"),
                            "file_name": name, "mime_type": "application/pdf"}}),
    );
    let m = next_message(agent, Duration::from_secs(10));
    m["attachments"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("an attachment id in {m}"))
        .to_owned()
}

fn fetch(ws: &mut Ws, id: &str, attachment: &str, inline: bool) -> Value {
    call(
        ws,
        id,
        "channels.fetch",
        json!({"channel": "telegram", "attachment": attachment, "inline": inline}),
    )
}

/// Files in `<state>/media/` other than sidecars: what a failed download must not leave.
fn media_files(state: &Path) -> Vec<String> {
    let Ok(dir) = fs::read_dir(state.join("media")) else {
        return Vec::new();
    };
    dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".json"))
        .collect()
}

#[test]
fn a_fetch_downloads_once_into_the_cache_and_is_served_from_it() {
    let _w = Watchdog::new("telegram fetch", Duration::from_secs(60));
    let fake = FakeTelegram::start(TOKEN);
    let bytes = file_bytes(300_000);
    fake.add_file("doc-1", "report.pdf", bytes.clone());
    let (home, gw) = start(&fake);
    let mut agent = polling_agent(&gw, &fake);
    let attachment = document_attachment(&fake, &mut agent, "doc-1", "report.pdf");

    let r = fetch(&mut agent, "f1", &attachment, false);
    let result = &r["result"];
    assert_eq!(result["size"], 300_000, "{r}");
    assert_eq!(result["sha256"], sha256(&bytes));
    assert_eq!(result["name"], "report.pdf");
    assert_eq!(result["mime"], "application/pdf");
    assert!(result.get("data").is_none(), "not inline unless asked: {r}");
    let path = Path::new(result["path"].as_str().unwrap());
    assert!(path.starts_with(home.state_dir().join("media")), "{r}");
    assert_eq!(fs::read(path).unwrap(), bytes);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(path), 0o600);
    assert_eq!(mode(&home.state_dir().join("media")), 0o700);

    // A hit: no second download, and inline data on request.
    let again = fetch(&mut agent, "f2", &attachment, true);
    assert_eq!(again["result"]["path"], result["path"], "{again}");
    let data = base64::engine::general_purpose::STANDARD
        .decode(again["result"]["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(data, bytes);
    assert_eq!(fake.downloads("doc-1"), 1);
    assert_eq!(fake.request_count("getFile"), 1);

    // The log never shows the token, which every file URL carries.
    assert!(!gw.log.text().contains("TEST-token"), "token in the log");
}

#[test]
fn concurrent_fetches_share_one_download() {
    let _w = Watchdog::new("telegram fetch single flight", Duration::from_secs(60));
    let fake = FakeTelegram::start(TOKEN);
    let bytes = file_bytes(100_000);
    fake.add_file("doc-2", "a.bin", bytes.clone());
    let (_home, gw) = start(&fake);
    let mut agent = polling_agent(&gw, &fake);
    let attachment = document_attachment(&fake, &mut agent, "doc-2", "a.bin");
    // Slow enough that all three requests arrive while the download is under way.
    fake.fail_next_download(DownloadFault::Delay(Duration::from_millis(800)));

    let mut clients: Vec<Ws> = (0..3).map(|_| gw.operator()).collect();
    for (i, ws) in clients.iter_mut().enumerate() {
        ws.send_json(
            &json!({"type": "request", "requestId": format!("c{i}"), "method": "channels.fetch",
                             "params": {"channel": "telegram", "attachment": attachment}}),
        );
    }
    for (i, ws) in clients.iter_mut().enumerate() {
        let r = ws.response(&format!("c{i}"), Duration::from_secs(20));
        assert_eq!(r["result"]["sha256"], sha256(&bytes), "{r}");
    }
    assert_eq!(fake.downloads("doc-2"), 1, "one download for three fetches");
}

#[test]
fn the_cache_survives_a_restart() {
    let _w = Watchdog::new("telegram fetch restart", Duration::from_secs(60));
    let fake = FakeTelegram::start(TOKEN);
    let bytes = file_bytes(50_000);
    fake.add_file("doc-3", "keep.bin", bytes.clone());
    let (home, mut gw) = start(&fake);
    let mut agent = polling_agent(&gw, &fake);
    let attachment = document_attachment(&fake, &mut agent, "doc-3", "keep.bin");
    assert_eq!(
        fetch(&mut agent, "f1", &attachment, false)["result"]["size"],
        50_000
    );
    drop(agent);
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(Duration::from_secs(10)).is_some_and(|s| s.success()));

    let gw = Gateway::start(&home);
    let mut client = gw.operator();
    let r = fetch(&mut client, "f2", &attachment, false);
    assert_eq!(r["result"]["sha256"], sha256(&bytes), "{r}");
    assert_eq!(
        fake.downloads("doc-3"),
        1,
        "served from the cache after the restart"
    );
}

#[test]
fn bad_fetches_answer_with_their_codes_and_leave_no_partial_file() {
    let _w = Watchdog::new("telegram fetch faults", Duration::from_secs(90));
    let fake = FakeTelegram::start(TOKEN);
    fake.add_file("big", "big.bin", file_bytes(2 * 1024 * 1024));
    fake.add_file("flaky", "flaky.bin", file_bytes(200_000));
    let (home, gw) = start_with(&fake, json!({"media": {"maxBytes": 1_048_576}}));
    let mut agent = polling_agent(&gw, &fake);
    let state = home.state_dir();

    // Not an attachment id at all, and one of another channel.
    let r = fetch(&mut agent, "u1", "not-an-id", false);
    assert_eq!(error_code(&r), "NOT_FOUND", "{r}");
    let big = document_attachment(&fake, &mut agent, "big", "big.bin");
    let r = call(
        &mut agent,
        "u2",
        "channels.fetch",
        json!({"channel": "discord", "attachment": big}),
    );
    assert_eq!(error_code(&r), "NOT_FOUND", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("not enabled"),
        "{r}"
    );

    // A file id Telegram does not know.
    let gone = document_attachment(&fake, &mut agent, "never-added", "x.pdf");
    let r = fetch(&mut agent, "u3", &gone, false);
    assert_eq!(error_code(&r), "NOT_FOUND", "{r}");

    // Over media.maxBytes (getFile says 2 MiB): refused naming the key, nothing written.
    let r = fetch(&mut agent, "big1", &big, false);
    assert_eq!(error_code(&r), "PAYLOAD_TOO_LARGE", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("media.maxBytes"),
        "{r}"
    );
    assert!(media_files(&state).is_empty(), "{:?}", media_files(&state));

    // A 5xx, then a body that breaks off: UNAVAILABLE, retryable, nothing left; the next
    // fetch works.
    let flaky = document_attachment(&fake, &mut agent, "flaky", "flaky.bin");
    fake.fail_next_download(DownloadFault::Status(502));
    let r = fetch(&mut agent, "fl1", &flaky, false);
    assert_eq!(error_code(&r), "UNAVAILABLE", "{r}");
    assert_eq!(r["error"]["retryable"], true, "{r}");
    fake.fail_next_download(DownloadFault::BreakOff);
    let r = fetch(&mut agent, "fl2", &flaky, false);
    assert_eq!(error_code(&r), "UNAVAILABLE", "{r}");
    assert_eq!(r["error"]["retryable"], true, "{r}");
    assert!(media_files(&state).is_empty(), "{:?}", media_files(&state));
    let r = fetch(&mut agent, "fl3", &flaky, false);
    assert_eq!(r["result"]["size"], 200_000, "{r}");
    assert_eq!(media_files(&state).len(), 1);

    // Missing params and unknown ones are INVALID_REQUEST.
    let r = call(&mut agent, "p1", "channels.fetch", json!({"channel": "telegram"}));
    assert_eq!(error_code(&r), "INVALID_REQUEST", "{r}");
    let r = call(
        &mut agent,
        "p2",
        "channels.fetch",
        json!({"channel": "telegram", "attachment": flaky, "inlne": true}),
    );
    assert_eq!(error_code(&r), "INVALID_REQUEST", "{r}");

    // A readonly client may not fetch.
    let mut readonly = gw.client(None, "operator", "readonly");
    let r = fetch(&mut readonly, "ro", &flaky, false);
    assert_eq!(error_code(&r), "FORBIDDEN", "{r}");

    assert!(!gw.log.text().contains("TEST-token"), "token in the log");
}

#[test]
fn telegrams_download_limit_is_payload_too_large() {
    let _w = Watchdog::new("telegram fetch 20 MB", Duration::from_secs(60));
    let fake = FakeTelegram::start(TOKEN);
    fake.add_file("huge", "huge.bin", vec![0; DOWNLOAD_LIMIT + 1]);
    let (_home, gw) = start_with(&fake, json!({"media": {"maxBytes": 104_857_600}}));
    let mut agent = polling_agent(&gw, &fake);
    let huge = document_attachment(&fake, &mut agent, "huge", "huge.bin");
    let r = fetch(&mut agent, "h", &huge, false);
    assert_eq!(error_code(&r), "PAYLOAD_TOO_LARGE", "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("20 MB"), "{r}");
    assert_eq!(fake.downloads("huge"), 0);
}
