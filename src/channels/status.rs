//! Status and sender bookkeeping shared by the connectors' workers: reporting the
//! [`ChannelStatus`], changing its state, answering finished sends and fetches, and logging
//! each refused sender once.

use std::collections::HashSet;

use super::media::MediaError;
use super::media::cache::CachedFile;
use super::outbound::Done;
use super::{ChannelStatus, ConnectorContext, ConnectorEvent};

impl ChannelStatus {
    /// Enter `state`; a given `error` replaces the last one (none keeps it).
    pub fn set_state(&mut self, state: &str, error: Option<String>) {
        self.state = state.to_owned();
        if error.is_some() {
            self.last_error = error;
        }
    }
}

impl ConnectorContext {
    /// Report the connector's status.
    pub fn report_status(&self, status: &ChannelStatus) {
        self.report(ConnectorEvent::Status(status.clone()));
    }

    /// Answer finished `channels.send` jobs.
    pub fn finish_sends(&self, done: Vec<Done>) {
        for (id, result) in done {
            self.report(ConnectorEvent::SendDone { id, result });
        }
    }

    /// Answer a finished `channels.fetch` job.
    pub fn finish_fetch(&self, id: u64, result: Result<CachedFile, MediaError>) {
        self.report(ConnectorEvent::FetchDone { id, result });
    }
}

/// Senders refused for not being in `allowFrom`, each logged once with the exact id to add.
pub struct Refused {
    channel: &'static str,
    /// The log target: the worker's module, as if it logged the line itself.
    target: &'static str,
    seen: HashSet<String>,
}

impl Refused {
    /// For `channel`'s worker, logging as `target` (pass `module_path!()`).
    pub fn new(channel: &'static str, target: &'static str) -> Refused {
        Refused {
            channel,
            target,
            seen: HashSet::new(),
        }
    }

    /// Note a refused message from `id` (`name`: the sender's display name, where the
    /// platform gives one); the first time, say how to allow the sender.
    pub fn refuse(&mut self, id: &str, name: Option<&str>) {
        if !self.seen.insert(id.to_owned()) {
            return;
        }
        let (channel, target) = (self.channel, self.target);
        match name {
            Some(name) => log::warn!(
                target: target,
                "{channel}: refused a message from {name:?} (id {id}); to allow this sender add \"{id}\" to channels.{channel}.allowFrom"
            ),
            None => log::warn!(
                target: target,
                "{channel}: refused a message from user {id}; to allow this sender add \"{id}\" to channels.{channel}.allowFrom"
            ),
        }
    }
}
