//! `channels.<name>.requireMention`, the part every connector shares: the gate, the
//! `<@ID>` mention syntax Discord and Slack have in common, and the `ignored` count.
//!
//! Each connector's normalizer decides `mentioned` from its platform's own signals (Telegram
//! entities and `/commands`, Discord's `mentions` list, a reply to one of the bot's
//! messages) and puts it on every `channel.message`; the gate then lets a message through
//! when the conversation is direct, the mention is not required, or it is there. A message
//! held back is confirmed to the platform like any other (it is the agent's choice not to
//! read it, not a failure), never spooled, and counted.

use serde_json::{Map, Value};

use super::ChannelStatus;

/// The gate of one connector.
#[derive(Clone, Copy, Debug)]
pub struct MentionGate {
    require: bool,
}

impl MentionGate {
    pub fn new(require: bool) -> MentionGate {
        MentionGate { require }
    }

    /// Whether `params` (a `channel.message` with `mentioned`) goes to the agent. `direct`:
    /// a conversation with the bot alone, which always passes. A message held back is
    /// counted in `status.ignored`.
    pub fn admit(&self, direct: bool, params: &Map<String, Value>, status: &mut ChannelStatus) -> bool {
        let mentioned = params.get("mentioned").and_then(Value::as_bool) == Some(true);
        if !self.require || direct || mentioned {
            return true;
        }
        status.ignored += 1;
        log::debug!(
            "{}: not delivering message {} in {}: it does not mention the bot (requireMention)",
            status.channel,
            params.get("messageId").and_then(Value::as_str).unwrap_or("?"),
            params.get("chatId").and_then(Value::as_str).unwrap_or("?"),
        );
        false
    }
}

/// Whether `text` mentions the user `id` the way Discord and Slack write it: `<@ID>`,
/// Discord's older nickname form `<@!ID>`, Slack's `<@ID|name>`.
pub fn has_user_mention(text: &str, id: &str) -> bool {
    if id.is_empty() {
        return false;
    }
    let mut rest = text;
    while let Some(i) = rest.find("<@") {
        let after = rest[i + 2..].strip_prefix('!').unwrap_or(&rest[i + 2..]);
        if let Some(tail) = after.strip_prefix(id) {
            if tail.starts_with('>') || tail.starts_with('|') {
                return true;
            }
        }
        rest = &rest[i + 2..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_mentions_in_discord_and_slack_syntax() {
        assert!(has_user_mention("hey <@123> look", "123"));
        assert!(has_user_mention("<@!123>", "123"));
        assert!(has_user_mention("cc <@UBOT|emonk>", "UBOT"));
        assert!(
            !has_user_mention("<@1234>", "123"),
            "another user whose id starts alike"
        );
        assert!(!has_user_mention("<@&123>", "123"), "a role, not the bot");
        assert!(!has_user_mention("@123 plain", "123"));
        assert!(!has_user_mention("<@123", "123"));
        assert!(!has_user_mention("<@>", ""));
    }

    #[test]
    fn the_gate_passes_direct_mentioned_or_unrequired_and_counts_the_rest() {
        let mut status = ChannelStatus::new("telegram", "running");
        let quiet = json!({"messageId": "1", "chatId": "-5", "mentioned": false});
        let quiet = quiet.as_object().unwrap();
        let loud = json!({"mentioned": true});
        let loud = loud.as_object().unwrap();
        let gate = MentionGate::new(true);
        assert!(gate.admit(true, quiet, &mut status), "a DM always passes");
        assert!(gate.admit(false, loud, &mut status));
        assert!(!gate.admit(false, quiet, &mut status));
        assert_eq!(status.ignored, 1);
        assert!(MentionGate::new(false).admit(false, quiet, &mut status));
        assert_eq!(status.ignored, 1);
    }
}
