//! The opaque attachment id: "channel + platform reference" in one URL-safe string, and back.
//!
//! Each connector knows what it needs to download a file later (Telegram a `file_id`;
//! Discord the channel, message and attachment ids and the CDN URL; Slack the file id and
//! `url_private`). It hands those strings here as its reference, and the id carries them, so
//! the spool entry (which stores the `channel.message` as sent) holds everything a later
//! `channels.fetch` needs, across restarts, without a lookup table.
//!
//! The encoding is base64url without padding of the JSON array `[channel, part, ...]`: URL-
//! and filename-safe, stable (no key, no time), and the same input gives the same id. It is
//! not a secret and not signed: it names a file the bot can already read, and an id a client
//! forges only makes the gateway ask the platform for something the platform then refuses.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::error::MediaError;

/// Ids longer than this are refused unread (a real one is a few hundred characters: a Discord
/// CDN URL is the longest part).
pub const MAX_ID_LEN: usize = 4096;

/// The id for `channel`'s platform reference `parts`.
pub fn encode(channel: &str, parts: &[&str]) -> String {
    let mut all: Vec<&str> = Vec::with_capacity(parts.len() + 1);
    all.push(channel);
    all.extend_from_slice(parts);
    // Serializing a slice of strings cannot fail.
    let json = serde_json::to_vec(&all).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// The platform reference in `id`, which must belong to `channel`. Anything else (not our
/// encoding, another channel's id, no parts) is `NOT_FOUND`: as far as this channel knows,
/// there is no such attachment.
pub fn decode(channel: &str, id: &str) -> Result<Vec<String>, MediaError> {
    let not_found = || {
        MediaError::NotFound(format!(
            "no {channel} attachment has the id {:?}; use an id from a channel.message of this channel",
            shorten(id)
        ))
    };
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(not_found());
    }
    let bytes = URL_SAFE_NO_PAD.decode(id).map_err(|_| not_found())?;
    let mut all: Vec<String> = serde_json::from_slice(&bytes).map_err(|_| not_found())?;
    if all.len() < 2 || all[0] != channel {
        return Err(not_found());
    }
    all.remove(0);
    Ok(all)
}

/// An id as quoted in an error: a client's garbage may be long.
fn shorten(id: &str) -> String {
    match id.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &id[..at]),
        None => id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_stable() {
        let id = encode("telegram", &["AgACAgIAAxkBAAIB"]);
        assert_eq!(id, encode("telegram", &["AgACAgIAAxkBAAIB"]));
        assert_eq!(decode("telegram", &id).unwrap(), vec!["AgACAgIAAxkBAAIB"]);
        let url = "https://cdn.discordapp.com/attachments/1/2/a b.png?ex=65&is=64&hm=ab";
        let id = encode("discord", &["1", "2", "3", url]);
        assert_eq!(decode("discord", &id).unwrap(), vec!["1", "2", "3", url]);
    }

    #[test]
    fn url_safe() {
        // Parts full of characters that base64 standard would turn into '+' and '/'.
        let id = encode(
            "slack",
            &["F0\u{ff}\u{fe}?>>>", "https://files.slack.com/x?y=~~~"],
        );
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{id}"
        );
    }

    #[test]
    fn another_channels_id_is_not_found() {
        let id = encode("telegram", &["abc"]);
        let e = decode("discord", &id).unwrap_err();
        assert!(matches!(e, MediaError::NotFound(_)), "{e:?}");
        assert!(e.to_string().contains("discord"), "{e}");
    }

    #[test]
    fn garbage_is_not_found() {
        let long = "A".repeat(MAX_ID_LEN + 1);
        let cases = [
            String::new(),
            "not base64!".to_owned(),
            URL_SAFE_NO_PAD.encode(b"not json"),
            URL_SAFE_NO_PAD.encode(br#"{"c":"telegram"}"#),
            URL_SAFE_NO_PAD.encode(br#"["telegram"]"#),
            URL_SAFE_NO_PAD.encode(br#"["telegram",1]"#),
            long,
        ];
        for id in cases {
            let e = decode("telegram", &id).unwrap_err();
            assert!(matches!(e, MediaError::NotFound(_)), "{id:?}: {e:?}");
        }
    }

    #[test]
    fn errors_quote_long_ids_shortened() {
        let e = decode("telegram", &"é".repeat(500)).unwrap_err().to_string();
        assert!(e.len() < 400, "{e}");
        assert!(e.contains('…'), "{e}");
    }
}
