//! Media through the Telegram connector, end to end with the real binary and the fake Bot
//! API: inbound attachments on `channel.message` (contract, "Media in").

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::Watchdog;
use support::fake_telegram::FakeTelegram;
use support::telegram::{TOKEN, next_message, polling_agent, start};

fn user() -> Value {
    json!({"id": 42, "is_bot": false, "first_name": "Ada"})
}

fn chat() -> Value {
    json!({"id": 42, "type": "private"})
}

/// A photo without caption (once skipped as "no text") and a voice note reach the agent,
/// with their attachments, `mediaGroupId`, and `text` = caption or "". A text message keeps
/// its shape, with `attachments: []`.
#[test]
fn media_messages_reach_the_agent_with_attachments() {
    let _w = Watchdog::new("telegram media in", Duration::from_secs(30));
    let fake = FakeTelegram::start(TOKEN);
    let (_home, gw) = start(&fake);
    let mut agent = polling_agent(&gw, &fake);
    fake.push_update(
        "message",
        json!({"message_id": 1, "date": 1700000000, "from": user(), "chat": chat(),
               "media_group_id": "album-1",
               "photo": [{"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90, "file_size": 900},
                         {"file_id": "large", "file_unique_id": "l", "width": 1280, "height": 960, "file_size": 99000}]}),
    );
    fake.push_update(
        "message",
        json!({"message_id": 2, "date": 1700000001, "from": user(), "chat": chat(),
               "caption": "listen", "voice": {"file_id": "v1", "file_unique_id": "v", "duration": 4,
                                              "mime_type": "audio/ogg", "file_size": 5000}}),
    );
    fake.push_message(42, 42, "plain");

    let photo = next_message(&mut agent, Duration::from_secs(10));
    assert_eq!(photo["text"], "", "{photo}");
    assert_eq!(photo["mediaGroupId"], "album-1");
    let a = photo["attachments"].as_array().unwrap();
    assert_eq!(a.len(), 1, "largest size only: {photo}");
    assert_eq!(a[0]["kind"], "photo");
    assert_eq!(
        (a[0]["width"].as_u64(), a[0]["size"].as_u64()),
        (Some(1280), Some(99000))
    );
    assert_eq!(a[0]["mime"], "image/jpeg");
    assert!(a[0]["id"].as_str().is_some_and(|id| !id.is_empty()));
    for key in [
        "id",
        "kind",
        "name",
        "mime",
        "size",
        "width",
        "height",
        "durationMs",
    ] {
        assert!(a[0].get(key).is_some(), "{key} present: {photo}");
    }

    let voice = next_message(&mut agent, Duration::from_secs(10));
    assert_eq!(voice["text"], "listen");
    assert_eq!(voice["mediaGroupId"], Value::Null);
    assert_eq!(voice["attachments"][0]["kind"], "voice");
    assert_eq!(voice["attachments"][0]["durationMs"], 4000);
    assert_ne!(voice["attachments"][0]["id"], a[0]["id"]);

    let text = next_message(&mut agent, Duration::from_secs(10));
    assert_eq!(text["text"], "plain");
    assert_eq!(text["attachments"], json!([]));
    assert_eq!(text["mediaGroupId"], Value::Null);
}
