//! Finding the running gateway for `call`, `status`, `stop` and `restart`: the config path
//! names the lock, the lock says whether a gateway holds it, and its payload says where the
//! gateway listens. Held-ness comes from the advisory lock only, never from a pid, so a stale
//! payload left by `kill -9` reads as "not running".

use std::path::{Path, PathBuf};

use crate::config::{self, Config, Overrides};
use crate::error::Error;
use crate::lock::{self, LockPayload, Owner};
use crate::paths::{self, ConfigLocation};

/// The gateway a CLI command talks to.
pub struct Target {
    pub location: ConfigLocation,
    pub lock_path: PathBuf,
}

impl Target {
    pub fn find(config_flag: Option<&Path>) -> Result<Target, Error> {
        let env = paths::process_env;
        let location = paths::config_location(config_flag, &env).map_err(Error::Config)?;
        let state_dir = paths::state_dir(&env).map_err(Error::Config)?;
        let lock_path = lock::lock_path(&state_dir, &location.path);
        Ok(Target { location, lock_path })
    }

    /// The config as `run` would load it (for credentials).
    pub fn config(&self) -> Result<Config, Error> {
        Ok(config::load(
            &self.location,
            &Overrides::default(),
            &paths::process_env,
        )?)
    }

    pub fn owner(&self) -> Result<Owner, Error> {
        lock::probe_owner(&self.lock_path).map_err(|e| {
            Error::failure(format!(
                "cannot read the gateway lock {}: {e}",
                self.lock_path.display()
            ))
        })
    }

    /// The running gateway's payload, or `NotRunning` with a message saying what to do.
    pub fn running(&self) -> Result<LockPayload, Error> {
        match self.owner()? {
            Owner::Running(payload) => Ok(payload),
            Owner::RunningUnknownPayload => Err(Error::failure(format!(
                "a gateway holds {} but has not published its address yet (still starting?); retry in a moment",
                self.lock_path.display()
            ))),
            Owner::NotRunning => Err(self.not_running()),
        }
    }

    pub fn not_running(&self) -> Error {
        Error::NotRunning(format!(
            "no gateway is running for config {}; start one with `emonkd run`",
            self.location.path.display()
        ))
    }
}

/// The URL a client uses to reach a gateway from its payload. A wildcard bind (lan) is
/// reached through loopback.
pub fn url_of(payload: &LockPayload) -> String {
    let host: std::net::IpAddr = payload
        .host
        .parse()
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    let host = match host {
        h if h.is_unspecified() && h.is_ipv4() => std::net::IpAddr::from([127, 0, 0, 1]),
        h if h.is_unspecified() => std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        h => h,
    };
    format!("ws://{}", std::net::SocketAddr::new(host, payload.port))
}
