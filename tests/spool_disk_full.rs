//! A full disk under the state dir. Under the spool, with all three connectors: nothing is lost once space
//! returns (Telegram leaves the updates unconfirmed; Discord and Slack, which will not send
//! a received message again, hold it in memory), the trouble is logged once rather than
//! every second, the retries slow down, `lastError` says it plainly, and the recovery is
//! logged. During a download: the fetch fails retryably, naming the folder, and leaves no
//! partial file, while the spool and the gateway go on. Needs root to mount a small tmpfs
//! as the state dir (CI runs as root).

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fake_discord::FakeDiscord;
use support::fake_slack::FakeSlack;
use support::fake_telegram::FakeTelegram;
use support::{Gateway, Home, Watchdog, Ws};

const S10: Duration = Duration::from_secs(10);

/// A tmpfs mounted for the test's life.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Write a file until the disk refuses: from now on every new page fails with ENOSPC.
fn fill(path: &Path) {
    let mut f = fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let page = vec![0u8; 1];
    while f.write_all(&page).is_ok() {}
}

fn status_of(ws: &mut Ws, channel: &str) -> Value {
    let r = ws.request("st", "channels.status", json!({}));
    r["result"]["channels"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["channel"] == channel).cloned())
        .unwrap_or_else(|| panic!("no {channel} in {r}"))
}

#[test]
fn a_full_disk_under_the_spool_loses_nothing_and_is_logged_once() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to mount a tmpfs as the state dir (CI runs as root)");
        return;
    }
    let _w = Watchdog::new("disk full", Duration::from_secs(150));
    let telegram = FakeTelegram::start(support::telegram::TOKEN);
    let discord = FakeDiscord::start(support::discord::TOKEN);
    let slack = FakeSlack::start();
    let home = Home::new(&support::all_connectors_config(
        &telegram,
        &discord,
        &slack,
        json!({}),
    ));
    let _disk = Tmpfs::mount(&home.state_dir(), "2m");
    let mut gw = Gateway::start(&home);
    let mut agent = gw.client(None, "agent", "operator");
    let mut op = gw.operator();
    assert!(telegram.wait_polling(1, S10), "telegram polls");
    assert!(discord.wait_live(S10), "discord session is live");
    slack.wait_sockets(1, S10);

    let filler = home.state_dir().join("filler");
    fill(&filler);
    // Each message is bigger than a page, so none fits in the journal's last page.
    let pad = "x".repeat(6000);
    let mut want = BTreeSet::new();
    for i in 0..4 {
        let (t, d, s) = (
            format!("t{i} {pad}"),
            format!("d{i} {pad}"),
            format!("s{i} {pad}"),
        );
        telegram.push_message(100, 42, &t);
        discord.push_message("555", Some("777"), "4242", &d);
        slack.push_message("C1", "U1", &s);
        want.extend([t, d, s]);
    }
    let full = "No space left on device";
    for channel in ["telegram", "discord", "slack"] {
        let line = gw
            .log
            .wait_for(&format!("{channel}: spool: "), S10)
            .unwrap_or_else(|| panic!("{channel} did not log the full disk:\n{}", gw.log.text()));
        assert!(line.contains(full) && line.contains("ERROR"), "{line}");
    }
    let polls_before = telegram.request_count("getUpdates");
    let failing_since = Instant::now();
    std::thread::sleep(Duration::from_secs(8));
    // Said once per connector, not once a second.
    let said = gw
        .log
        .lines()
        .iter()
        .filter(|l| l.contains(full) && l.contains("ERROR"))
        .count();
    assert_eq!(said, 3, "log:\n{}", gw.log.text());
    // Retries slow down (1, 2, 4 s ...): at most 4 polls in 8 s, not 8.
    let polls = telegram.request_count("getUpdates") - polls_before;
    assert!(
        polls <= 4,
        "{polls} polls in {:?} while the disk was full",
        failing_since.elapsed()
    );
    for channel in ["telegram", "discord", "slack"] {
        let s = status_of(&mut op, channel);
        let e = s["lastError"].as_str().unwrap_or_default();
        assert!(
            e.starts_with("spool: ") && e.contains(full) && !e.contains("spool: spool"),
            "{s}"
        );
    }
    assert!(
        telegram.pending_updates().len() >= 4,
        "Telegram still holds its updates"
    );

    fs::remove_file(&filler).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < want.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = support::telegram::next_message(&mut agent, left);
        got.push(m["text"].as_str().unwrap().to_owned());
    }
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(unique.len(), got.len(), "delivered twice");
    assert_eq!(unique, want);
    for channel in ["telegram", "discord", "slack"] {
        assert!(
            gw.log
                .wait_for(&format!("{channel}: the spool accepts writes again"), S10)
                .is_some(),
            "{channel} recovery not logged:\n{}",
            gw.log.text()
        );
        let s = support::eventually(S10, || {
            let s = status_of(&mut op, channel);
            s["lastError"].is_null().then_some(s)
        });
        assert!(
            s.is_some(),
            "{channel} lastError not cleared: {}",
            status_of(&mut op, channel)
        );
    }
    // Nothing more comes: no duplicate after the recovery.
    let until = Instant::now() + Duration::from_secs(2);
    while let Ok(v) = agent.next_non_tick(until.saturating_duration_since(Instant::now())) {
        assert_ne!(
            v["event"], "channel.message",
            "a message after all were delivered: {v}"
        );
    }
    gw.stop_ok();
}

#[test]
fn a_disk_that_fills_during_a_download_fails_the_fetch_and_harms_nothing_else() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to mount a tmpfs as the state dir (CI runs as root)");
        return;
    }
    let _w = Watchdog::new("disk full download", Duration::from_secs(60));
    let telegram = FakeTelegram::start(support::telegram::TOKEN);
    let home = Home::new(&support::telegram::config(&telegram, json!({})));
    let _disk = Tmpfs::mount(&home.state_dir(), "2m");
    let gw = Gateway::start(&home);
    let mut agent = support::telegram::polling_agent(&gw, &telegram);
    // A 3 MiB document cannot fit on a 2 MiB disk.
    let big: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    telegram.add_file("big-1", "big.bin", big);
    telegram.push_update(
        "message",
        json!({"message_id": 1, "date": 1_700_000_000, "chat": {"id": 100, "type": "private"},
               "from": {"id": 42, "is_bot": false, "first_name": "A"},
               "document": {"file_id": "big-1", "file_unique_id": "u1", "file_name": "big.bin",
                            "file_size": 3 * 1024 * 1024}}),
    );
    let m = support::telegram::next_message(&mut agent, S10);
    let attachment = m["attachments"][0]["id"].clone();
    let r = support::telegram::call(
        &mut agent,
        "f",
        "channels.fetch",
        json!({"channel": "telegram", "attachment": attachment}),
    );
    assert_eq!(r["error"]["code"], "UNAVAILABLE", "{r}");
    assert_eq!(r["error"]["retryable"], true, "{r}");
    let text = r["error"]["message"].as_str().unwrap();
    assert!(text.contains("media"), "names the folder: {text}");
    // Nothing half-written stays behind, and the spool still takes messages.
    let leftovers: Vec<_> = fs::read_dir(home.state_dir().join("media"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().ends_with(".json"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    telegram.push_message(100, 42, "still here");
    let m = support::telegram::next_message(&mut agent, S10);
    assert_eq!(m["text"], "still here");
    let ping = gw.operator().request("p", "gateway.ping", json!({}));
    assert!(ping["result"]["ts"].is_u64(), "the gateway answers: {ping}");
}
