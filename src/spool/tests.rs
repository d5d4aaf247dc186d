//! Spool behaviour end to end, against real files in a temp dir: ordering, acks,
//! redelivery, dedup, limits, compaction and crash recovery.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::*;

fn params(text: &str) -> Map<String, Value> {
    let Value::Object(m) = json!({"channel": "telegram", "chatId": "1", "text": text}) else {
        unreachable!()
    };
    m
}

fn batch(seqs: &[u64]) -> Vec<(u64, Map<String, Value>)> {
    seqs.iter().map(|&s| (s, params(&format!("m{s}")))).collect()
}

fn open(dir: &Path) -> Spool {
    Spool::open(dir, SpoolLimits::default()).unwrap()
}

fn cursors(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.cursor).collect()
}

fn texts(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            let v: Value = serde_json::from_str(&e.params).unwrap();
            v["text"].as_str().unwrap().to_string()
        })
        .collect()
}

fn all(spool: &Spool) -> Vec<Entry> {
    spool.entries_after(0, usize::MAX)
}

/// A temp dir with a closed spool that took messages 1 to 3; the dir and the journal.
fn closed_with_three() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let journal = tmp.path().join(JOURNAL_FILE);
    let mut s = open(tmp.path());
    s.append("telegram", batch(&[1, 2, 3])).unwrap();
    drop(s);
    (tmp, journal)
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn append_ack_and_redelivery_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = open(tmp.path());
    assert!(s.is_empty() && s.last_cursor() == 0 && s.acked() == 0);
    let got = s.append("telegram", batch(&[10, 11, 12])).unwrap();
    assert_eq!(cursors(&got), vec![1, 2, 3]);
    assert_eq!(texts(&got), vec!["m10", "m11", "m12"]);
    assert_eq!(got[0].source, "telegram");
    let p: Value = serde_json::from_str(&got[1].params).unwrap();
    assert_eq!(p["cursor"], json!("2"), "cursor is inside params, as a string");
    assert_eq!(p["chatId"], json!("1"));
    assert_eq!((s.len(), s.last_cursor()), (3, 3));

    assert_eq!(s.ack(2).unwrap(), 2);
    assert_eq!(cursors(&all(&s)), vec![3]);
    assert_eq!(s.ack(2).unwrap(), 0, "acking again is a no-op");
    assert_eq!(s.ack(1).unwrap(), 0, "acking an older cursor is a no-op");
    assert_eq!(s.ack(0).unwrap(), 0);
    let bytes = s.bytes();
    drop(s);

    // After a restart (or kill -9: nothing is flushed on drop) the unacked one comes back.
    let s = open(tmp.path());
    assert_eq!(cursors(&all(&s)), vec![3]);
    assert_eq!(texts(&all(&s)), vec!["m12"]);
    assert_eq!(s.bytes(), bytes);
    assert_eq!(s.acked(), 2);
}

#[test]
fn cursors_continue_after_reopen_even_when_everything_was_compacted() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = open(tmp.path());
    s.append("telegram", batch(&[1, 2])).unwrap();
    drop(s);
    let mut s = open(tmp.path());
    assert_eq!(cursors(&s.append("telegram", batch(&[3])).unwrap()), vec![3]);
    s.ack(3).unwrap();
    s.compact().unwrap();
    assert_eq!(fs::metadata(tmp.path().join(JOURNAL_FILE)).unwrap().len(), 0);
    drop(s);

    let mut s = open(tmp.path());
    assert_eq!((s.last_cursor(), s.acked(), s.len()), (3, 3, 0));
    assert_eq!(cursors(&s.append("telegram", batch(&[4])).unwrap()), vec![4]);
}

#[test]
fn ack_persists_across_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = open(tmp.path());
    s.append("telegram", batch(&[1, 2, 3, 4])).unwrap();
    s.ack(3).unwrap();
    drop(s);
    let mut s = open(tmp.path());
    assert_eq!(s.acked(), 3);
    assert_eq!(cursors(&all(&s)), vec![4]);
    // The state file says so on its own, whatever the journal holds.
    let state: Value = serde_json::from_slice(&fs::read(tmp.path().join(STATE_FILE)).unwrap()).unwrap();
    assert_eq!(state["acked"], json!(3));
    assert_eq!(s.ack(4).unwrap(), 1);
    assert!(s.is_empty() && s.bytes() == 0);
}

#[test]
fn duplicate_source_seqs_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = open(tmp.path());
    assert_eq!(s.high_water("telegram"), None);

    // Within a batch: repeats and anything not above the running mark.
    let got = s.append("telegram", batch(&[5, 5, 4, 6])).unwrap();
    assert_eq!(
        (cursors(&got), texts(&got)),
        (vec![1, 2], vec!["m5".into(), "m6".into()])
    );
    assert_eq!(s.high_water("telegram"), Some(6));

    // Across batches: a re-fetch of the same platform batch adds nothing and costs no fsync.
    let syncs = s.sync_count();
    assert!(s.append("telegram", batch(&[5, 6])).unwrap().is_empty());
    assert_eq!(s.sync_count(), syncs);
    assert_eq!(cursors(&s.append("telegram", batch(&[6, 7])).unwrap()), vec![3]);
    drop(s);

    // Across a reopen (the mark comes from the journal: no ack yet, so no state file).
    assert!(!tmp.path().join(STATE_FILE).exists());
    let mut s = open(tmp.path());
    assert_eq!(s.high_water("telegram"), Some(7));
    assert!(s.append("telegram", batch(&[7])).unwrap().is_empty());

    // After ack + compaction emptied the journal (the mark comes from the state file).
    s.ack(3).unwrap();
    s.compact().unwrap();
    drop(s);
    let mut s = open(tmp.path());
    assert_eq!(s.high_water("telegram"), Some(7));
    assert!(s.append("telegram", batch(&[1, 6, 7])).unwrap().is_empty());
    assert_eq!(cursors(&s.append("telegram", batch(&[7, 8])).unwrap()), vec![4]);
}

#[test]
fn torn_last_line_is_cut_and_complete_entries_recovered() {
    let (tmp, journal) = closed_with_three();
    let good = fs::read(&journal).unwrap();

    // A crash mid-append: the next record only partly reached the disk.
    let mut f = OpenOptions::new().append(true).open(&journal).unwrap();
    f.write_all(br#"{"cursor":4,"source":"telegram","seq":4,"par"#)
        .unwrap();
    drop(f);

    let mut s = open(tmp.path());
    assert_eq!(cursors(&all(&s)), vec![1, 2, 3]);
    assert_eq!(
        fs::read(&journal).unwrap(),
        good,
        "the torn tail is truncated away"
    );
    assert_eq!(s.high_water("telegram"), Some(3), "the torn record never counted");
    // The platform hands the unconfirmed message back; it is spooled normally.
    assert_eq!(cursors(&s.append("telegram", batch(&[4])).unwrap()), vec![4]);
    drop(s);
    let s = open(tmp.path());
    assert_eq!(cursors(&all(&s)), vec![1, 2, 3, 4]);
}

#[test]
fn crash_between_append_and_offset_confirmation_skips_only_what_was_spooled() {
    let (tmp, journal) = closed_with_three();
    // Power loss mid-batch: two whole lines survived, the third is gone entirely.
    let text = fs::read_to_string(&journal).unwrap();
    let two: String = text.split_inclusive('\n').take(2).collect();
    fs::write(&journal, two).unwrap();

    let mut s = open(tmp.path());
    // The platform offset was never confirmed, so the whole batch comes again.
    let got = s.append("telegram", batch(&[1, 2, 3])).unwrap();
    assert_eq!((cursors(&got), texts(&got)), (vec![3], vec!["m3".to_string()]));
    assert_eq!(texts(&all(&s)), vec!["m1", "m2", "m3"]);
}

#[test]
fn corrupt_middle_line_is_skipped() {
    let (tmp, journal) = closed_with_three();
    let text = fs::read_to_string(&journal).unwrap();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mangled = format!("{}\u{0}garbage{{\n{}", lines[0], lines[2]);
    fs::write(&journal, mangled).unwrap();

    let mut s = open(tmp.path());
    assert_eq!(cursors(&all(&s)), vec![1, 3]);
    assert_eq!(s.last_cursor(), 3);
    assert_eq!(cursors(&s.append("telegram", batch(&[4])).unwrap()), vec![4]);
}

#[test]
fn entries_after_windows() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = open(tmp.path());
    s.append("telegram", batch(&(1..=10).collect::<Vec<_>>()))
        .unwrap();
    assert_eq!(cursors(&s.entries_after(0, 3)), vec![1, 2, 3]);
    assert_eq!(cursors(&s.entries_after(3, 3)), vec![4, 5, 6]);
    assert_eq!(cursors(&s.entries_after(9, 5)), vec![10]);
    assert!(s.entries_after(10, 5).is_empty());
    assert!(s.entries_after(0, 0).is_empty());
    s.ack(5).unwrap();
    // A window that starts inside the acked part starts at the first unacked entry.
    assert_eq!(cursors(&s.entries_after(2, 2)), vec![6, 7]);
    assert_eq!(
        cursors(&s.entries_after(0, usize::MAX)),
        (6..=10).collect::<Vec<_>>()
    );
}

#[test]
fn full_writes_nothing_and_moves_no_mark() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = tmp.path().join(JOURNAL_FILE);
    let limits = SpoolLimits {
        max_entries: 3,
        ..SpoolLimits::default()
    };
    let mut s = Spool::open(tmp.path(), limits).unwrap();
    s.append("telegram", batch(&[1, 2])).unwrap();
    let before = fs::read(&journal).unwrap();
    let syncs = s.sync_count();

    let err = s.append("telegram", batch(&[3, 4])).unwrap_err();
    match &err {
        SpoolError::Full {
            entries,
            bytes,
            limits: l,
        } => assert_eq!((*entries, *bytes, *l), (2, s.bytes(), limits)),
        other => panic!("expected Full, got {other:?}"),
    }
    assert!(err.to_string().contains("events.ack"), "{err}");
    assert_eq!(fs::read(&journal).unwrap(), before);
    assert!(!tmp.path().join(STATE_FILE).exists());
    assert_eq!(s.sync_count(), syncs);
    assert_eq!(
        (s.high_water("telegram"), s.len(), s.last_cursor()),
        (Some(2), 2, 2)
    );

    // Duplicates do not count against the limit; an ack makes room at once.
    assert_eq!(cursors(&s.append("telegram", batch(&[2, 3])).unwrap()), vec![3]);
    s.ack(1).unwrap();
    assert_eq!(cursors(&s.append("telegram", batch(&[4])).unwrap()), vec![4]);

    // The byte limit works the same way.
    let one_line = s.bytes() / s.len() as u64;
    // Kept alive: the journal's directory is fsynced at the first append.
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(
        dir.path(),
        SpoolLimits {
            max_entries: 100,
            max_bytes: one_line * 2,
        },
    )
    .unwrap();
    s.append("telegram", batch(&[1])).unwrap();
    assert!(matches!(
        s.append("telegram", batch(&[2, 3])),
        Err(SpoolError::Full { .. })
    ));
    assert_eq!(s.high_water("telegram"), Some(1));
}

#[test]
fn compaction_keeps_only_unacked_and_state_survives() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = tmp.path().join(JOURNAL_FILE);
    let mut s = open(tmp.path());
    let big = "x".repeat(1200);
    let items: Vec<_> = (1..=1000u64)
        .map(|i| (100 + i, params(&format!("{i}{big}"))))
        .collect();
    s.append("telegram", items).unwrap();
    s.append("discord", batch(&[7])).unwrap();
    assert!(fs::metadata(&journal).unwrap().len() > 1 << 20);

    // Acking all but the last two leaves > 1 MiB dead: compaction runs by itself.
    assert_eq!(s.ack(999).unwrap(), 999);
    let text = fs::read_to_string(&journal).unwrap();
    assert_eq!(text.lines().count(), 2, "only the unacked lines remain");
    assert_eq!(s.bytes(), text.len() as u64);
    drop(s);

    let s = open(tmp.path());
    assert_eq!(cursors(&all(&s)), vec![1000, 1001]);
    assert_eq!(texts(&all(&s))[1], "m7");
    assert_eq!(s.high_water("telegram"), Some(1100));
    assert_eq!(s.high_water("discord"), Some(7));
    assert_eq!((s.acked(), s.last_cursor()), (999, 1001));
}

#[test]
fn small_acks_do_not_compact_every_time() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = open(tmp.path());
    s.append("telegram", batch(&[1, 2, 3])).unwrap();
    let syncs = s.sync_count();
    s.ack(1).unwrap();
    s.ack(2).unwrap();
    assert_eq!(
        s.sync_count(),
        syncs,
        "no journal rewrite for a few hundred dead bytes"
    );
    assert_eq!(
        fs::read_to_string(tmp.path().join(JOURNAL_FILE))
            .unwrap()
            .lines()
            .count(),
        3
    );
}

#[test]
fn crash_during_compaction_recovers_the_same_spool() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = tmp.path().join(JOURNAL_FILE);
    let mut s = open(tmp.path());
    s.append("telegram", batch(&[1, 2, 3])).unwrap();
    s.ack(2).unwrap();
    let uncompacted = fs::read(&journal).unwrap();
    s.compact().unwrap();
    drop(s);

    // Died after the state was saved but before the rename: the old journal and a temp.
    fs::write(&journal, &uncompacted).unwrap();
    fs::write(tmp.path().join(".journal.jsonl.compact"), b"{\"cursor\":3").unwrap();
    fs::write(tmp.path().join(".state.json.tmp.1.0"), b"{").unwrap();
    let s = open(tmp.path());
    assert_eq!(cursors(&all(&s)), vec![3]);
    assert_eq!(
        (s.acked(), s.last_cursor(), s.high_water("telegram")),
        (2, 3, Some(3))
    );
    let mut names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec![JOURNAL_FILE, STATE_FILE], "temp files are cleaned up");
}

#[test]
fn a_thousand_message_batch_is_one_fsync() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = open(tmp.path());
    let before = s.sync_count();
    let got = s
        .append("telegram", batch(&(1..=1000).collect::<Vec<_>>()))
        .unwrap();
    assert_eq!(got.len(), 1000);
    assert_eq!(s.sync_count() - before, 1);
}

#[test]
fn files_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state/spool");
    let mut s = open(&dir);
    s.append("telegram", batch(&[1, 2])).unwrap();
    s.ack(1).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(JOURNAL_FILE)), 0o600);
    assert_eq!(mode(&dir.join(STATE_FILE)), 0o600);
    s.compact().unwrap();
    assert_eq!(mode(&dir.join(JOURNAL_FILE)), 0o600);
    drop(s);

    // Loosened by hand: tightened again at open.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(dir.join(JOURNAL_FILE), fs::Permissions::from_mode(0o644)).unwrap();
    let _s = open(&dir);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(JOURNAL_FILE)), 0o600);
}

#[test]
fn ack_of_a_future_cursor_is_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = open(tmp.path());
    assert!(matches!(s.ack(1), Err(AckError::Unknown { cursor: 1, last: 0 })));
    s.append("telegram", batch(&[1, 2])).unwrap();
    let err = s.ack(3).unwrap_err();
    assert!(matches!(err, AckError::Unknown { cursor: 3, last: 2 }), "{err:?}");
    assert_eq!((s.acked(), s.len()), (0, 2), "a refused ack changes nothing");
}

#[test]
fn sources_interleave_with_separate_marks_and_global_cursors() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = open(tmp.path());
    assert_eq!(
        cursors(&s.append("telegram", batch(&[500, 501])).unwrap()),
        vec![1, 2]
    );
    assert_eq!(cursors(&s.append("discord", batch(&[1, 2])).unwrap()), vec![3, 4]);
    assert_eq!(
        cursors(&s.append("telegram", batch(&[501, 502])).unwrap()),
        vec![5]
    );
    // Low numbers are new for a source that never used them, whatever others did.
    assert_eq!(cursors(&s.append("slack", batch(&[1])).unwrap()), vec![6]);
    assert!(s.append("discord", batch(&[2])).unwrap().is_empty());
    assert_eq!(
        (
            s.high_water("telegram"),
            s.high_water("discord"),
            s.high_water("slack")
        ),
        (Some(502), Some(2), Some(1))
    );
    let sources: Vec<String> = all(&s).into_iter().map(|e| e.source).collect();
    assert_eq!(
        sources,
        ["telegram", "telegram", "discord", "discord", "telegram", "slack"]
    );
    s.ack(6).unwrap();
    s.compact().unwrap();
    drop(s);
    let s = open(tmp.path());
    assert_eq!(
        (
            s.high_water("telegram"),
            s.high_water("discord"),
            s.high_water("slack")
        ),
        (Some(502), Some(2), Some(1))
    );
    assert_eq!(s.high_water("matrix"), None);
}

#[test]
fn corrupt_state_refuses_to_open() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = open(tmp.path());
    s.append("telegram", batch(&[1])).unwrap();
    drop(s);
    fs::write(tmp.path().join(STATE_FILE), b"{\"acked\":\"x\"}").unwrap();
    let err = Spool::open(tmp.path(), SpoolLimits::default()).unwrap_err();
    assert!(matches!(&err, SpoolError::Io(e) if e.kind() == std::io::ErrorKind::InvalidData));
    assert!(err.to_string().contains(STATE_FILE), "{err}");
}

#[test]
fn over_limit_contents_are_kept_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = open(tmp.path());
    s.append("telegram", batch(&[1, 2, 3])).unwrap();
    drop(s);
    let tight = SpoolLimits {
        max_entries: 1,
        ..SpoolLimits::default()
    };
    let mut s = Spool::open(tmp.path(), tight).unwrap();
    assert_eq!(s.len(), 3, "lowering a limit never drops spooled messages");
    assert!(matches!(
        s.append("telegram", batch(&[4])),
        Err(SpoolError::Full { .. })
    ));
    s.ack(3).unwrap();
    assert_eq!(cursors(&s.append("telegram", batch(&[4])).unwrap()), vec![4]);
}
