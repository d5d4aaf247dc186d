//! Slack names its reactions (`thumbsup`), where the other platforms take the Unicode emoji.
//! A small table maps the common ones; a Slack name (with or without colons) is taken as is.

/// Unicode emoji (without a variation selector) and the Slack name of each.
const TABLE: &[(&str, &str)] = &[
    ("👍", "thumbsup"),
    ("👎", "thumbsdown"),
    ("❤", "heart"),
    ("😂", "joy"),
    ("😄", "smile"),
    ("😊", "blush"),
    ("😍", "heart_eyes"),
    ("😢", "cry"),
    ("😭", "sob"),
    ("😮", "open_mouth"),
    ("😡", "rage"),
    ("🤔", "thinking_face"),
    ("🙏", "pray"),
    ("👏", "clap"),
    ("🙌", "raised_hands"),
    ("👀", "eyes"),
    ("🔥", "fire"),
    ("🎉", "tada"),
    ("🚀", "rocket"),
    ("💯", "100"),
    ("⭐", "star"),
    ("✅", "white_check_mark"),
    ("❌", "x"),
    ("👌", "ok_hand"),
    ("👋", "wave"),
    ("💪", "muscle"),
    ("🤝", "handshake"),
    ("😎", "sunglasses"),
    ("🙈", "see_no_evil"),
    ("⚡", "zap"),
];

/// The Slack name for `emoji`: from the table for a Unicode emoji, else the name itself
/// (colons stripped). `None` when it is neither.
pub fn slack_name(emoji: &str) -> Option<String> {
    let bare: String = emoji.chars().filter(|c| *c != '\u{FE0F}').collect();
    if let Some((_, name)) = TABLE.iter().find(|(e, _)| *e == bare) {
        return Some((*name).to_owned());
    }
    let name = emoji.trim_matches(':');
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '+' | '\''));
    valid.then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_and_names() {
        assert_eq!(slack_name("👍").as_deref(), Some("thumbsup"));
        assert_eq!(
            slack_name("❤️").as_deref(),
            Some("heart"),
            "with the variation selector"
        );
        assert_eq!(slack_name(":tada:").as_deref(), Some("tada"));
        assert_eq!(
            slack_name("white_check_mark").as_deref(),
            Some("white_check_mark")
        );
        assert_eq!(slack_name("🦄"), None, "not in the table and not a name");
        assert_eq!(slack_name("Thumbs Up"), None);
    }
}
