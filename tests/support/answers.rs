//! Shaping the fakes' answers like a server that sends less than the platform documents,
//! shared by `fake_telegram`, `fake_discord` and `fake_slack`: keep only some fields (their
//! "minimal answers" modes), or leave one field out (an answer that lacks what the client
//! needs). Paths are dotted (`user.id`).

use serde_json::{Value, json};

/// Only the fields of `value` at `paths`, with the objects on the way.
pub fn keep(value: &Value, paths: &[&str]) -> Value {
    let mut kept = json!({});
    for path in paths {
        if let Some(v) = path.split('.').try_fold(value, |v, k| v.get(k)) {
            set(&mut kept, path, v.clone());
        }
    }
    kept
}

/// Put `v` at dotted `path`, making the objects on the way.
fn set(value: &mut Value, path: &str, v: Value) {
    let mut at = value;
    let mut keys = path.split('.').peekable();
    while let Some(key) = keys.next() {
        if keys.peek().is_none() {
            at[key] = v;
            return;
        }
        if !at[key].is_object() {
            at[key] = json!({});
        }
        at = &mut at[key];
    }
}

/// Remove the field at dotted `path`, if it is there.
pub fn remove(value: &mut Value, path: &str) {
    let (parent, key) = path.rsplit_once('.').unwrap_or(("", path));
    let parent = if parent.is_empty() {
        Some(value)
    } else {
        parent.split('.').try_fold(value, |v, k| v.get_mut(k))
    };
    if let Some(object) = parent.and_then(Value::as_object_mut) {
        object.remove(key);
    }
}

/// Fields to leave out, per answer (a method, an event name: whatever the fake calls it).
#[derive(Default)]
pub struct Omitted(Vec<(String, String)>);

impl Omitted {
    /// Leave dotted `path` out of every `answer` from now on.
    pub fn add(&mut self, answer: &str, path: &str) {
        self.0.push((answer.to_owned(), path.to_owned()));
    }

    /// `value` as `answer` without the omitted fields.
    pub fn apply(&self, answer: &str, value: &mut Value) {
        for (_, path) in self.0.iter().filter(|(a, _)| a == answer) {
            remove(value, path);
        }
    }
}
