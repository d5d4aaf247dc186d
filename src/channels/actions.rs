//! `channels.edit`, `channels.delete` and `channels.react`, the part every connector shares:
//! the requests, the job the router hands a connector, and the answers. An action goes
//! through the connector's send queue (`outbound.rs`) as a job of one part, so it keeps its
//! place behind the messages to that chat (an edit never overtakes the send it edits) and
//! is paced and retried with them; only the platform's call and the reading of its
//! refusals stay in the connector.

use serde::Deserialize;
use serde_json::{Value, json};

use super::TextFormat;
use crate::protocol::{ErrorBody, ErrorCode};

/// The params of `channels.edit`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EditRequest {
    pub channel: String,
    pub to: String,
    pub message_id: String,
    pub text: String,
    #[serde(default)]
    pub format: TextFormat,
}

/// The params of `channels.delete`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeleteRequest {
    pub channel: String,
    pub to: String,
    pub message_id: String,
}

/// The params of `channels.react`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReactRequest {
    pub channel: String,
    pub to: String,
    pub message_id: String,
    pub emoji: String,
    #[serde(default)]
    pub remove: bool,
}

/// What to do to a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Edit {
        message_id: String,
        text: String,
        format: TextFormat,
    },
    Delete {
        message_id: String,
    },
    React {
        message_id: String,
        emoji: String,
        remove: bool,
    },
}

/// One action handed to a connector; answered with [`super::ConnectorEvent::SendDone`].
#[derive(Clone, Debug)]
pub struct ActionJob {
    pub id: u64,
    pub channel: String,
    pub to: String,
    pub action: Action,
}

impl ActionJob {
    /// A checked job, or the `INVALID_REQUEST` for an empty field.
    pub fn new(id: u64, channel: String, to: String, action: Action) -> Result<ActionJob, ErrorBody> {
        let empty = |what: &str| {
            Err(ErrorBody::new(
                ErrorCode::InvalidRequest,
                format!("{what} must not be empty"),
            ))
        };
        if to.is_empty() {
            return empty("to");
        }
        match &action {
            Action::Edit { message_id, text, .. } => {
                if message_id.is_empty() {
                    return empty("messageId");
                }
                if text.trim().is_empty() {
                    return empty("text (an edit cannot empty a message; use channels.delete)");
                }
            }
            Action::Delete { message_id } if message_id.is_empty() => return empty("messageId"),
            Action::React {
                message_id, emoji, ..
            } => {
                if message_id.is_empty() {
                    return empty("messageId");
                }
                if emoji.trim().is_empty() {
                    return empty("emoji");
                }
            }
            Action::Delete { .. } => {}
        }
        Ok(ActionJob {
            id,
            channel,
            to,
            action,
        })
    }
}

impl Action {
    pub fn message_id(&self) -> &str {
        match self {
            Action::Edit { message_id, .. }
            | Action::Delete { message_id }
            | Action::React { message_id, .. } => message_id,
        }
    }

    /// The method's answer once the platform did it.
    pub fn result(&self, channel: &str, to: &str) -> Value {
        match self {
            Action::Edit { message_id, .. } => json!({"channel": channel, "to": to, "messageId": message_id}),
            Action::Delete { .. } => json!({"deleted": true}),
            Action::React { .. } => json!({}),
        }
    }
}

/// The platform said the message is not there (or not this bot's to see).
pub fn not_found(channel: &str, message_id: &str, detail: &str) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::NotFound,
        format!("{channel}: message {message_id} not found in that chat ({detail})"),
    )
}

/// The platform refused: not the bot's message, too old, no permission.
pub fn forbidden(channel: &str, message_id: &str, detail: &str) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::Forbidden,
        format!("{channel}: not allowed on message {message_id} ({detail})"),
    )
}

/// The platform does not take this emoji as a reaction.
pub fn bad_emoji(channel: &str, emoji: &str, detail: &str) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::InvalidRequest,
        format!("{channel}: the reaction {emoji:?} is not one {channel} accepts ({detail})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_fields_are_refused_and_results_have_their_shape() {
        let edit = Action::Edit {
            message_id: "7".into(),
            text: " ".into(),
            format: TextFormat::Plain,
        };
        assert!(ActionJob::new(1, "t".into(), "1".into(), edit).is_err());
        let react = Action::React {
            message_id: "7".into(),
            emoji: "👍".into(),
            remove: false,
        };
        assert!(ActionJob::new(1, "t".into(), "".into(), react.clone()).is_err());
        let job = ActionJob::new(1, "t".into(), "1".into(), react).unwrap();
        assert_eq!(job.action.result("t", "1"), json!({}));
        let del = Action::Delete {
            message_id: "9".into(),
        };
        assert_eq!(del.result("t", "1"), json!({"deleted": true}));
        let edit = Action::Edit {
            message_id: "7".into(),
            text: "x".into(),
            format: TextFormat::Html,
        };
        assert_eq!(
            edit.result("telegram", "1"),
            json!({"channel": "telegram", "to": "1", "messageId": "7"})
        );
    }
}
