//! Chat-platform connectors: one OS thread each, plugged into the router through one small
//! trait and message set, so adding a platform never touches the event loop.
//!
//! A connector receives [`ConnectorCommand`]s on its own channel and reports to the router
//! with [`ConnectorEvent`]s. Its thread is named `emonk-<channel>` and must return promptly
//! after [`ConnectorCommand::Stop`] (every blocking call it makes has a timeout).

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;

use crate::bus::ToRouter;

/// A connector's state as shown by `channels.status` and `channel.status` events.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStatus {
    pub channel: &'static str,
    pub enabled: bool,
    /// `starting`, `running`, `backoff`, `unauthorized`, `stopped`, ...
    pub state: String,
    /// The bot account, e.g. `@emonk_bot`, once known.
    pub account: Option<String>,
    pub last_error: Option<String>,
    pub inbound: u64,
    pub outbound: u64,
    pub spooled: u64,
}

/// What a connector tells the router.
#[derive(Debug)]
pub enum ConnectorEvent {
    /// The connector's status changed (a `channel.status` event goes to every client when the
    /// state or error changed).
    Status(ChannelStatus),
}

/// What the router tells a connector.
#[derive(Debug)]
pub enum ConnectorCommand {
    /// Stop: finish or abandon the current call within the shutdown budget and return.
    Stop,
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
    /// The thread body: runs until `Stop` arrives or the command channel disconnects.
    fn run(self: Box<Self>, ctx: ConnectorContext);
}
