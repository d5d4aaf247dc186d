//! The stream against a simulated platform that applies each op: what a person in the chat
//! reads at the end must be the final text, whatever the appends, cuts and failures.

use super::*;
use crate::channels::split::code_points;

const MS: fn(u64) -> Duration = Duration::from_millis;

fn shape(text_max: usize, formats: bool) -> StreamShape {
    StreamShape {
        text_max,
        units: code_points,
        formats,
        edit_interval: MS(1000),
    }
}

/// The chat: message id → (text, format), in posting order; and every op seen.
#[derive(Default)]
struct Chat {
    messages: Vec<(String, String, TextFormat)>,
    ops: Vec<Op>,
    next_id: u64,
}

impl Chat {
    fn apply(&mut self, op: &Op) -> Result<Value, ErrorBody> {
        self.ops.push(op.clone());
        match op {
            Op::Post { text, format, .. } => {
                self.next_id += 1;
                let id = self.next_id.to_string();
                self.messages.push((id.clone(), text.clone(), *format));
                Ok(json!({"messageIds": [id]}))
            }
            Op::Act(Action::Edit {
                message_id,
                text,
                format,
            }) => {
                let m = self.messages.iter_mut().find(|m| &m.0 == message_id).unwrap();
                m.1 = text.clone();
                m.2 = *format;
                Ok(json!({}))
            }
            Op::Act(Action::Delete { message_id }) => {
                self.messages.retain(|m| &m.0 != message_id);
                Ok(json!({"deleted": true}))
            }
            Op::Act(other) => panic!("a stream does not {other:?}"),
        }
    }

    fn visible(&self) -> Vec<String> {
        self.messages.iter().map(|m| m.1.clone()).collect()
    }

    fn edits(&self) -> usize {
        self.ops
            .iter()
            .filter(|o| matches!(o, Op::Act(Action::Edit { .. })))
            .count()
    }
}

/// Run every op that is due at `now` to completion.
fn settle(stream: &mut Stream, chat: &mut Chat, now: Instant) {
    while let Some(op) = stream.next_op(now) {
        let result = chat.apply(&op);
        stream.on_done(result, now);
    }
}

/// Close and settle, letting time pass for retries.
fn finish(stream: &mut Stream, chat: &mut Chat, mut now: Instant) -> Instant {
    for _ in 0..100 {
        settle(stream, chat, now);
        if stream.is_finished() {
            return now;
        }
        now = stream.next_wake().unwrap_or(now).max(now);
    }
    panic!("the stream did not finish");
}

/// Non-whitespace content of the messages joined equals that of the text.
fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn appends_are_coalesced_to_one_op_per_interval_and_the_final_text_lands() {
    let t0 = Instant::now();
    let mut s = Stream::new(shape(4096, true), TextFormat::Plain, IDLE_CLOSE, t0);
    let mut chat = Chat::default();
    let mut text = String::new();
    // 2,000 appends of 5 chars over 10 s.
    for i in 0..2000u64 {
        let now = t0 + MS(i * 5);
        let piece = format!("w{:03} ", i % 1000);
        text.push_str(&piece);
        assert_eq!(
            s.append(&piece, now).unwrap(),
            text.chars().count().min(s.chars())
        );
        settle(&mut s, &mut chat, now);
    }
    s.close(None);
    let _ = finish(&mut s, &mut chat, t0 + MS(10_000));
    assert_eq!(squeeze(&chat.visible().join(" ")), squeeze(&text));
    let posts = chat.ops.len() - chat.edits();
    assert!(chat.ops.len() <= 12, "{} ops (posts {posts})", chat.ops.len());
    assert_eq!(
        s.result("telegram", "1").unwrap()["messageIds"]
            .as_array()
            .unwrap()
            .len(),
        chat.messages.len()
    );
}

#[test]
fn past_the_limit_the_message_is_finished_at_a_cut_and_the_rest_continues() {
    let t0 = Instant::now();
    let mut s = Stream::new(shape(20, false), TextFormat::Plain, IDLE_CLOSE, t0);
    let mut chat = Chat::default();
    let words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu";
    let mut now = t0;
    for w in words.split(' ') {
        s.append(&format!("{w} "), now).unwrap();
        settle(&mut s, &mut chat, now);
        now += MS(1000);
    }
    s.close(None);
    finish(&mut s, &mut chat, now);
    let visible = chat.visible();
    assert!(visible.len() >= 4, "{visible:?}");
    assert!(visible.iter().all(|m| m.chars().count() <= 20), "{visible:?}");
    assert_eq!(
        squeeze(&visible.join(" ")),
        squeeze(words),
        "nothing repeated or lost"
    );
}

#[test]
fn one_huge_append_becomes_several_messages_in_order() {
    let t0 = Instant::now();
    let mut s = Stream::new(shape(10, false), TextFormat::Plain, IDLE_CLOSE, t0);
    let mut chat = Chat::default();
    let text: String = (0..50).map(|i| format!("{i:02}-{i:02}-{i:02} ")).collect();
    s.append(&text, t0).unwrap();
    s.close(None);
    finish(&mut s, &mut chat, t0);
    assert_eq!(squeeze(&chat.visible().join(" ")), squeeze(&text));
    assert_eq!(chat.messages.len(), 50);
}

#[test]
fn a_replacement_text_rewrites_posts_and_deletes_what_it_must() {
    let t0 = Instant::now();
    let mut s = Stream::new(shape(10, false), TextFormat::Plain, IDLE_CLOSE, t0);
    let mut chat = Chat::default();
    s.append("one two three four five six seven", t0).unwrap();
    let mut now = t0;
    for _ in 0..10 {
        settle(&mut s, &mut chat, now);
        now += MS(1000);
    }
    assert!(chat.messages.len() >= 3);
    s.close(Some("short".into()));
    finish(&mut s, &mut chat, now);
    assert_eq!(chat.visible(), ["short"]);
    let ids = s.result("t", "1").unwrap()["messageIds"].clone();
    assert_eq!(ids.as_array().unwrap().len(), 1);
}

#[test]
fn markup_drafts_go_plain_and_the_final_carries_the_format() {
    let t0 = Instant::now();
    let mut s = Stream::new(shape(4096, true), TextFormat::Html, IDLE_CLOSE, t0);
    let mut chat = Chat::default();
    s.append("<b>bo", t0).unwrap();
    settle(&mut s, &mut chat, t0);
    assert_eq!(chat.messages[0].2, TextFormat::Plain);
    s.append("ld</b>", t0 + MS(1000)).unwrap();
    settle(&mut s, &mut chat, t0 + MS(1000));
    assert_eq!(
        chat.messages[0].2,
        TextFormat::Html,
        "complete markup goes formatted"
    );
    s.append(" <i>and", t0 + MS(2000)).unwrap();
    settle(&mut s, &mut chat, t0 + MS(2000));
    assert_eq!(chat.messages[0].2, TextFormat::Plain);
    s.close(None);
    finish(&mut s, &mut chat, t0 + MS(2100));
    assert_eq!(chat.messages[0].1, "<b>bold</b> <i>and");
    assert_eq!(
        chat.messages[0].2,
        TextFormat::Html,
        "the final text with its format"
    );
}

#[test]
fn a_failed_draft_edit_is_retried_by_the_next_draft_and_a_failed_final_edit_is_retried() {
    let t0 = Instant::now();
    let mut s = Stream::new(shape(4096, false), TextFormat::Plain, IDLE_CLOSE, t0);
    let mut chat = Chat::default();
    s.append("a", t0).unwrap();
    settle(&mut s, &mut chat, t0);
    s.append("b", t0 + MS(1000)).unwrap();
    let op = s.next_op(t0 + MS(1000)).unwrap();
    assert!(matches!(op, Op::Act(Action::Edit { .. })));
    let down = ErrorBody::retryable(ErrorCode::Unavailable, "down", None);
    s.on_done(Err(down.clone()), t0 + MS(1000));
    assert!(s.next_op(t0 + MS(1500)).is_none(), "paced");
    s.close(None);
    let op = s.next_op(t0 + MS(1500)).unwrap();
    s.on_done(Err(down), t0 + MS(1500));
    assert!(s.next_op(t0 + MS(1600)).is_none(), "waits before the retry");
    assert_eq!(s.next_wake(), Some(t0 + MS(2500)));
    let r = chat.apply(&s.next_op(t0 + MS(2500)).unwrap());
    s.on_done(r, t0 + MS(2500));
    assert!(s.next_op(t0 + MS(2500)).is_none(), "nothing left");
    assert!(s.is_finished());
    assert_eq!(chat.visible(), ["ab"]);
    assert!(matches!(op, Op::Act(Action::Edit { .. })));
}

#[test]
fn a_refusal_fails_the_stream_and_close_says_what_was_posted() {
    let t0 = Instant::now();
    let mut s = Stream::new(shape(4096, false), TextFormat::Plain, IDLE_CLOSE, t0);
    let mut chat = Chat::default();
    s.append("hello", t0).unwrap();
    settle(&mut s, &mut chat, t0);
    s.append(" world", t0 + MS(1000)).unwrap();
    let _ = s.next_op(t0 + MS(1000)).unwrap();
    s.on_done(
        Err(ErrorBody::new(ErrorCode::Forbidden, "bot was kicked")),
        t0 + MS(1000),
    );
    let e = s.append("!", t0 + MS(1100)).unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden, "appends learn of it");
    s.close(None);
    assert!(s.is_finished());
    let e = s.result("telegram", "1").unwrap_err();
    assert!(e.message.contains("messages so far: [1]"), "{}", e.message);
}

#[test]
fn an_empty_stream_closes_without_posting_and_the_text_is_bounded() {
    let t0 = Instant::now();
    let mut s = Stream::new(shape(4096, false), TextFormat::Plain, IDLE_CLOSE, t0);
    s.append("", t0).unwrap();
    s.close(None);
    assert!(s.next_op(t0).is_none());
    assert!(s.is_finished());
    assert_eq!(s.result("t", "1").unwrap()["messageIds"], json!([]));
    let mut s = Stream::new(shape(4096, false), TextFormat::Plain, IDLE_CLOSE, t0);
    let big = "x".repeat(MAX_TEXT_BYTES);
    s.append(&big, t0).unwrap();
    let e = s.append("y", t0).unwrap_err();
    assert_eq!(e.code, ErrorCode::PayloadTooLarge);
    assert_eq!(s.idle_deadline(), Some(t0 + IDLE_CLOSE));
}
