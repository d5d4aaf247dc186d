//! `emonkd status [--json]`: who holds the lock, plus a live `gateway.status` probe.
//! Exit 0 when a gateway holds the lock and answers the probe, 4 when it holds the lock but
//! does not answer (a frozen gateway: a health check must fail then), 3 when none does.

use std::time::Duration;

use serde_json::{Value, json};

use super::args::StatusArgs;
use super::call::connect_options;
use super::out::outln;
use super::target::{Target, url_of};
use crate::client::GatewayClient;
use crate::error::Error;
use crate::exit;
use crate::lock::Owner;

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

pub fn run(args: StatusArgs) -> Result<u8, Error> {
    let target = Target::find(args.config.as_deref())?;
    let payload = match target.owner()? {
        Owner::Running(p) => p,
        Owner::RunningUnknownPayload => {
            // The lock is held, so a gateway runs; it has not published its address yet.
            if args.json {
                let out = json!({"running": true, "starting": true, "configPath": target.location.path});
                outln!("{}", serde_json::to_string_pretty(&out).expect("serializes"))?;
            } else {
                outln!("emonkd is starting (lock held, address not yet published)")?;
            }
            return Ok(exit::OK);
        }
        Owner::NotRunning => {
            if args.json {
                let out = json!({"running": false, "configPath": target.location.path});
                outln!("{}", serde_json::to_string_pretty(&out).expect("serializes"))?;
            } else {
                outln!("{}", target.not_running())?;
            }
            return Ok(exit::NOT_RUNNING);
        }
    };
    let url = url_of(&payload);
    let probe = probe(args.config.as_deref(), &url, None);
    let code = match probe {
        Err(ProbeError::Failed(_)) => exit::NOT_ANSWERING,
        Ok(_) | Err(ProbeError::NotMade(_)) => exit::OK,
    };
    if args.json {
        let (status, error) = match &probe {
            Ok(v) => (v.clone(), Value::Null),
            Err(e) => (Value::Null, Value::String(e.to_string())),
        };
        let out = json!({
            "running": true,
            "pid": payload.pid,
            "url": url,
            "configPath": payload.config_path,
            "createdAt": payload.created_at,
            "lockPath": target.lock_path,
            "probe": status,
            "probeError": error,
        });
        outln!("{}", serde_json::to_string_pretty(&out).expect("serializes"))?;
        return Ok(code);
    }
    outln!("emonkd is running: pid {}, {url}", payload.pid)?;
    outln!("  config:  {}", payload.config_path)?;
    outln!("  started: {}", payload.created_at)?;
    match probe {
        Ok(s) => {
            let clients = &s["clients"];
            outln!(
                "  version: {}, uptime {}s, clients {} ({} agent, {} operator)",
                s["version"].as_str().unwrap_or("?"),
                s["uptimeMs"].as_u64().unwrap_or(0) / 1000,
                clients["total"],
                clients["agents"],
                clients["operators"]
            )?;
            let channels = s["channels"].as_array().cloned().unwrap_or_default();
            if channels.is_empty() {
                outln!("  channels: none enabled")?;
            }
            for c in channels {
                outln!(
                    "  channel {}: {}{}",
                    c["channel"].as_str().unwrap_or("?"),
                    c["state"].as_str().unwrap_or("?"),
                    c["lastError"]
                        .as_str()
                        .map(|e| format!(" (last error: {e})"))
                        .unwrap_or_default()
                )?;
            }
        }
        Err(e) => outln!("  {e}")?,
    }
    Ok(code)
}

/// Why a probe gave no status.
#[derive(Debug)]
pub(super) enum ProbeError {
    /// The probe could not be made: the config that names the credentials is unreadable
    /// (say, mid-edit while the gateway runs on the one it loaded). This says nothing about
    /// the gateway, so `status` does not call it frozen.
    NotMade(String),
    /// The probe was made and failed: no answer in time, refused credentials, an error.
    Failed(String),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::NotMade(e) => write!(f, "probe not made: {e}"),
            ProbeError::Failed(e) => write!(f, "probe failed: {e}"),
        }
    }
}

/// `gateway.status` over the API, authenticated with `token` or else like `emonkd call`.
pub(super) fn probe(
    config: Option<&std::path::Path>,
    url: &str,
    token: Option<String>,
) -> Result<Value, ProbeError> {
    let mut opts = connect_options(config, Some(url.to_owned()), token, None)
        .map_err(|e| ProbeError::NotMade(e.to_string()))?;
    opts.client_name = "emonkd-status".into();
    opts.connect_timeout = PROBE_TIMEOUT;
    let client = GatewayClient::connect(opts).map_err(|e| ProbeError::Failed(e.to_string()))?;
    let result = client
        .call("gateway.status", json!({}), PROBE_TIMEOUT)
        .map_err(|e| ProbeError::Failed(e.to_string()));
    client.close();
    result
}
