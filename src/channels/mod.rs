//! Chat-platform connectors: one OS thread each, plugged into the router through one small
//! trait and message set, so adding a platform never touches the event loop.
//!
//! A connector receives [`ConnectorCommand`]s on its own channel and reports to the router
//! with [`ConnectorEvent`]s. Its thread is named `emonk-<channel>` and returns promptly after
//! [`ConnectorCommand::Stop`] (every blocking call it makes has a timeout, and a call still in
//! flight at a stop is abandoned rather than waited for).
//!
//! Inbound messages do not travel through the router's channel: the connector appends them to
//! the durable [`crate::spool::Spool`] first (fsynced), and only then reports
//! [`ConnectorEvent::Inbound`] so the router can deliver them.

pub mod actions;
pub mod buttons;
pub mod calls;
pub mod discord;
pub mod fetch;
pub mod fields;
pub mod http;
pub mod inbox;
pub mod media;
pub mod mention;
pub mod outbound;
pub mod slack;
pub mod split;
pub mod spool_trouble;
pub mod status;
pub mod stream;
pub mod telegram;
pub mod typing;

use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bus::ToRouter;
use crate::protocol::ErrorBody;
use crate::spool::Entry;
use fetch::FetchJob;
use media::MediaError;
use media::cache::CachedFile;
use media::outgoing::OutFile;
use media::request::AttachmentRequest;

/// A connector's state as shown by `channels.status` and `channel.status` events.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStatus {
    pub channel: &'static str,
    pub enabled: bool,
    /// `starting`, `running`, `backoff`, `conflict`, `unauthorized`, `disabled` (Slack
    /// `link_disabled`), `stopped`.
    pub state: String,
    /// The bot account, e.g. `@emonk_bot`, once known.
    pub account: Option<String>,
    pub last_error: Option<String>,
    /// Unix ms of the last successful poll (or socket activity).
    pub last_poll_ms: Option<u64>,
    pub inbound: u64,
    pub outbound: u64,
    /// Group messages not delivered because they did not mention the bot (`requireMention`).
    pub ignored: u64,
    /// Unacknowledged messages from this channel in the spool.
    pub spooled: u64,
}

impl ChannelStatus {
    pub fn new(channel: &'static str, state: &str) -> ChannelStatus {
        ChannelStatus {
            channel,
            enabled: true,
            state: state.to_owned(),
            account: None,
            last_error: None,
            last_poll_ms: None,
            inbound: 0,
            outbound: 0,
            ignored: 0,
            spooled: 0,
        }
    }
}

/// How `channels.send` text is to be rendered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextFormat {
    #[default]
    Plain,
    Markdown,
    Html,
}

/// The params of `channels.send`, validated.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SendRequest {
    pub channel: String,
    pub to: String,
    /// The message, or with attachments their caption (may then be empty).
    #[serde(default)]
    pub text: String,
    /// Files to send (contract, "Media out"); opened by the router into [`SendJob::files`].
    #[serde(default)]
    pub attachments: Vec<AttachmentRequest>,
    #[serde(default)]
    pub reply_to: Option<String>,
    #[serde(default)]
    pub thread_id: Option<String>,
    #[serde(default)]
    pub format: TextFormat,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Rows of buttons under the message (contract, "Groups and buttons").
    #[serde(default)]
    pub buttons: buttons::Rows,
}

/// One `channels.send` handed to a connector; answered with [`ConnectorEvent::SendDone`].
#[derive(Clone, Debug)]
pub struct SendJob {
    pub id: u64,
    pub request: SendRequest,
    /// The request's attachments, checked and opened (empty for a text message).
    pub files: Vec<OutFile>,
}

/// What a connector tells the router.
#[derive(Debug)]
pub enum ConnectorEvent {
    /// The connector's status changed (a `channel.status` event goes to every client when the
    /// state or error changed).
    Status(ChannelStatus),
    /// These entries were appended to the spool (durably) and may be delivered.
    Inbound(Vec<Entry>),
    /// A send finished: the `channels.send` result (`{"channel","to","messageIds"}`) or error;
    /// also the answer to a `channels.typing` (`{"shown":bool}`).
    SendDone {
        id: u64,
        result: Result<Value, ErrorBody>,
    },
    /// A fetch finished: the file in the media cache, or why not.
    FetchDone {
        id: u64,
        result: Result<CachedFile, MediaError>,
    },
}

/// What the router tells a connector.
#[derive(Debug)]
pub enum ConnectorCommand {
    /// Send a message; answer with [`ConnectorEvent::SendDone`] carrying the same id.
    Send(SendJob),
    /// Download an attachment into the media cache; answer with
    /// [`ConnectorEvent::FetchDone`] carrying the same id.
    Fetch(FetchJob),
    /// Edit, delete or react to a message; answer with [`ConnectorEvent::SendDone`].
    Act(actions::ActionJob),
    /// Show a typing indicator and keep it up; answer with [`ConnectorEvent::SendDone`]
    /// carrying `{"shown":bool}` once the platform took (or refused) the first one.
    Typing(typing::TypingJob),
    /// Stop keeping the indicator in this chat alive (a stream closed without a message);
    /// no answer.
    TypingOff { to: String, thread_id: Option<String> },
    /// Stop: abandon what is in flight within the shutdown budget and return.
    Stop,
    /// A liveness probe: answer it from the connector's own loop (see
    /// [`crate::bus::ToRouter::Probe`]).
    Probe(crate::bus::Probe),
}

/// The connector's end of its links to the router.
pub struct ConnectorContext {
    pub commands: Receiver<ConnectorCommand>,
    router: Sender<ToRouter>,
}

impl ConnectorContext {
    pub fn new(commands: Receiver<ConnectorCommand>, router: Sender<ToRouter>) -> ConnectorContext {
        ConnectorContext { commands, router }
    }

    /// Report to the router. A router that is gone means the gateway is stopping.
    pub fn report(&self, event: ConnectorEvent) {
        let _ = self.router.send(ToRouter::Connector(event));
    }
}

/// A chat-platform connector. `run` is the body of its thread.
pub trait Connector: Send + 'static {
    /// The channel name used in the protocol (`telegram`, `discord`, `slack`).
    fn channel(&self) -> &'static str;
    /// The status to show before the thread has reported anything.
    fn initial_status(&self) -> ChannelStatus;
    /// The platform's message limits and the configured edit pace, for streamed replies.
    fn stream_shape(&self) -> stream::StreamShape;
    /// The thread body: runs until `Stop` arrives or the command channel disconnects.
    fn run(self: Box<Self>, ctx: ConnectorContext);
}
