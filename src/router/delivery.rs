//! Delivering spooled `channel.message`s: to the agent durably and in order with flow
//! control, and to subscribed operators as non-durable copies.
//!
//! The agent gets every unacknowledged entry, oldest first, but at most [`WINDOW`] beyond its
//! last `events.ack`: an agent that reconnects after 10,000 messages arrived is not flooded
//! past its connection's backlog bound (which would close it as a slow consumer). Each
//! `events.ack` opens the window again. A new agent connection starts again from the last
//! acknowledged cursor, so everything unacknowledged is sent again.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::Router;
use crate::bus::{Audience, ConnId, ToLoop};
use crate::protocol::{ErrorBody, ErrorCode};
use crate::spool::{AckError, Entry};

/// Entries the agent may have unacknowledged in flight.
pub const WINDOW: u64 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AckParams {
    cursor: String,
}

impl Router {
    /// A new agent joined: start again from the last acknowledged cursor.
    pub(super) fn restart_delivery(&mut self) {
        self.delivered = self.spool.lock().expect("spool lock").acked();
        self.pump();
    }

    /// Send the agent what it may have in flight.
    pub(super) fn pump(&mut self) {
        let Some(agent) = self.agent else { return };
        let entries = {
            let spool = self.spool.lock().expect("spool lock");
            let in_flight = self.delivered.saturating_sub(spool.acked());
            let room = WINDOW.saturating_sub(in_flight) as usize;
            if room == 0 {
                return;
            }
            spool.entries_after(self.delivered, room)
        };
        if let Some(last) = entries.last() {
            self.delivered = last.cursor;
        }
        for e in entries {
            self.out.send(ToLoop::Event {
                to: Audience::Some(vec![agent]),
                name: e.kind.event(),
                params: e.params,
            });
        }
    }

    /// A connector spooled new entries: deliver to the agent, copy to subscribers.
    pub(super) fn on_inbound(&mut self, entries: Vec<Entry>) {
        let subscribers: Vec<ConnId> = self
            .subscriptions
            .iter()
            .filter(|(_, events)| !events.is_empty())
            .filter(|(conn, _)| Some(**conn) != self.agent)
            .map(|(conn, _)| *conn)
            .collect();
        for e in &entries {
            let name = e.kind.event();
            let to: Vec<ConnId> = subscribers
                .iter()
                .copied()
                .filter(|c| self.subscriptions.get(c).is_some_and(|ev| ev.contains(name)))
                .collect();
            if !to.is_empty() {
                let params: Arc<str> = e.params.clone();
                self.out.send(ToLoop::Event {
                    to: Audience::Some(to),
                    name,
                    params,
                });
            }
        }
        self.pump();
    }

    /// `events.ack`: the agent acknowledges `cursor` and everything before it.
    pub(super) fn events_ack(&mut self, conn: ConnId, p: AckParams) -> Result<Value, ErrorBody> {
        if self.agent != Some(conn) {
            return Err(ErrorBody::new(
                ErrorCode::Forbidden,
                "only the active agent acknowledges messages",
            ));
        }
        let cursor: u64 = p.cursor.parse().map_err(|_| {
            ErrorBody::new(
                ErrorCode::InvalidRequest,
                format!("cursor {:?} is not a message cursor", p.cursor),
            )
        })?;
        if cursor > self.delivered {
            return Err(ErrorBody::new(
                ErrorCode::NotFound,
                format!(
                    "cursor {cursor} has not been delivered to this agent (last delivered: {})",
                    self.delivered
                ),
            ));
        }
        let mut spool = self.spool.lock().expect("spool lock");
        let result = spool.ack(cursor);
        let acked = spool.acked();
        drop(spool);
        match result {
            Ok(_) => {}
            Err(AckError::Unknown { last, .. }) => {
                return Err(ErrorBody::new(
                    ErrorCode::NotFound,
                    format!("cursor {cursor} was never delivered (last cursor is {last})"),
                ));
            }
            Err(AckError::Io(e)) => {
                log::error!("could not persist events.ack {cursor}: {e}");
                return Err(ErrorBody::retryable(
                    ErrorCode::Internal,
                    format!("could not persist the ack: {e}"),
                    Some(1000),
                ));
            }
        }
        self.pump();
        Ok(json!({"acked": acked.to_string()}))
    }
}
