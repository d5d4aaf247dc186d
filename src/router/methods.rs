//! The gateway's own methods (everything but `gateway.ping`, which the loop answers, and
//! `agent.*`, which is forwarded).

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::Router;
use crate::bus::ConnId;
use crate::protocol::{ErrorBody, ErrorCode, Mode, Role, SUBSCRIBABLE_EVENTS};

/// How long clients should expect a restart to take (`restartExpectedMs`).
pub const RESTART_EXPECTED_MS: u64 = 1500;

/// Decode params into `T`, or an `INVALID_REQUEST` naming the method.
pub(super) fn params<'a, T: Deserialize<'a>>(
    method: &str,
    raw: Option<&'a RawValue>,
) -> Result<T, ErrorBody> {
    let text = raw.map_or("{}", RawValue::get);
    serde_json::from_str(text).map_err(|e| {
        ErrorBody::new(
            ErrorCode::InvalidRequest,
            format!("invalid params for {method}: {e}"),
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeParams {
    events: Vec<String>,
}

impl Router {
    pub(super) fn call_method(
        &mut self,
        conn: ConnId,
        method: &str,
        raw: Option<&RawValue>,
    ) -> Result<Value, ErrorBody> {
        match method {
            "gateway.ping" => Ok(json!({"ts": crate::procinfo::unix_ms()})),
            "gateway.status" => Ok(self.gateway_status()),
            "gateway.restart" => self.gateway_restart(),
            "channels.status" => Ok(json!({"channels": self.channel_statuses()})),
            "events.subscribe" => self.events_subscribe(conn, params(method, raw)?),
            "events.ack" => self.events_ack(conn, params(method, raw)?),
            _ => Err(ErrorBody::new(
                ErrorCode::UnknownMethod,
                format!("unknown method {method:?}; see \"methods\" in hello_ok"),
            )),
        }
    }

    fn channel_statuses(&self) -> Vec<Value> {
        let spool = self.spool.lock().expect("spool lock");
        let spooled = spool.len_by_source();
        self.connectors
            .values()
            .map(|c| {
                let mut status = c.status.clone();
                status.spooled = spooled.get(c.status.channel).copied().unwrap_or(0) as u64;
                serde_json::to_value(&status).expect("status serializes")
            })
            .collect()
    }

    fn gateway_status(&self) -> Value {
        let agents = self.peers.values().filter(|p| p.role == Role::Agent).count();
        let s = &self.settings;
        json!({
            "version": crate::VERSION,
            "pid": std::process::id(),
            "uptimeMs": s.process_started.elapsed().as_millis() as u64,
            "bind": s.bind_host,
            "bindMode": s.bind_mode,
            "port": s.port,
            "clients": {
                "total": self.peers.len(),
                "agents": agents,
                "operators": self.peers.len() - agents,
            },
            "agentConnected": self.agent.is_some(),
            "pendingAgentRequests": self.forwarding.len(),
            "spool": self.spool_status(),
            "channels": self.channel_statuses(),
        })
    }

    fn spool_status(&self) -> Value {
        let spool = self.spool.lock().expect("spool lock");
        json!({
            "pending": spool.len(),
            "bytes": spool.bytes(),
            "acked": spool.acked().to_string(),
            "last": spool.last_cursor().to_string(),
            "delivered": self.delivered.to_string(),
        })
    }

    fn gateway_restart(&self) -> Result<Value, ErrorBody> {
        (self.settings.restart)().map_err(|e| {
            ErrorBody::new(
                ErrorCode::Internal,
                format!("could not authorize the restart: {e}"),
            )
        })?;
        log::info!("restart requested through gateway.restart");
        Ok(json!({"restartExpectedMs": RESTART_EXPECTED_MS}))
    }

    fn events_subscribe(&mut self, conn: ConnId, p: SubscribeParams) -> Result<Value, ErrorBody> {
        let mut wanted: HashSet<&'static str> = HashSet::new();
        for name in &p.events {
            let Some(known) = SUBSCRIBABLE_EVENTS.iter().find(|e| **e == name.as_str()) else {
                return Err(ErrorBody::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "unknown event {name:?}; subscribable events: {}",
                        SUBSCRIBABLE_EVENTS.join(", ")
                    ),
                ));
            };
            wanted.insert(known);
        }
        if self.peers.get(&conn).is_some_and(|p| p.mode == Mode::Readonly) {
            return Err(ErrorBody::new(
                ErrorCode::Forbidden,
                "readonly clients cannot subscribe",
            ));
        }
        let set = self.subscriptions.entry(conn).or_default();
        set.extend(wanted);
        let mut events: Vec<&str> = set.iter().copied().collect();
        events.sort_unstable();
        Ok(json!({"events": events}))
    }
}
