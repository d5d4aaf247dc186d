//! `emonkd stop` and `emonkd restart`: signal the lock owner and wait for the outcome.
//!
//! Before signalling, the pid from the payload is checked against its recorded start time, so
//! a pid reused by another process is never signalled.

use std::thread;
use std::time::{Duration, Instant};

use super::args::{RestartArgs, StopArgs};
use super::out::outln;
use super::target::{Target, url_of};
use crate::error::Error;
use crate::lock::{self, LockPayload, Owner};
use crate::{exit, procinfo};

/// The daemon's own stop budget is 5 s; wait a little longer before giving up.
const STOP_WAIT: Duration = Duration::from_secs(8);
/// How long the daemon has to take the restart authorization.
const RESTART_ACK_WAIT: Duration = Duration::from_secs(5);
/// How long the restarted gateway has to publish its address again.
const RESTART_UP_WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

fn signal_owner(payload: &LockPayload, sig: i32) -> Result<(), Error> {
    if !procinfo::is_same_process(payload.pid, payload.start_time) {
        return Err(Error::failure(format!(
            "the lock names pid {}, but that process is not the gateway that wrote it; not signalling it",
            payload.pid
        )));
    }
    procinfo::send_signal(payload.pid, sig)
        .map_err(|e| Error::failure(format!("cannot signal pid {}: {e}", payload.pid)))
}

/// Poll `check` every [`POLL`] until it yields a value or `limit` passes.
fn wait_for<T>(
    limit: Duration,
    mut check: impl FnMut() -> Result<Option<T>, Error>,
) -> Result<Option<T>, Error> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check()? {
            return Ok(Some(v));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(POLL);
    }
}

pub fn stop(args: StopArgs) -> Result<u8, Error> {
    let target = Target::find(args.config.as_deref())?;
    let payload = target.running()?;
    signal_owner(&payload, libc::SIGTERM)?;
    let stopped = wait_for(STOP_WAIT, || {
        Ok(matches!(target.owner()?, Owner::NotRunning).then_some(()))
    })?;
    match stopped {
        Some(()) => {
            outln!("stopped gateway (pid {})", payload.pid)?;
            Ok(exit::OK)
        }
        None => Err(Error::failure(format!(
            "gateway (pid {}) did not exit within {}s after SIGTERM; check its log",
            payload.pid,
            STOP_WAIT.as_secs()
        ))),
    }
}

pub fn restart(args: RestartArgs) -> Result<u8, Error> {
    let target = Target::find(args.config.as_deref())?;
    let before = target.running()?;
    let auth = lock::authorize_restart(&target.lock_path)
        .map_err(|e| Error::failure(format!("cannot write the restart authorization: {e}")))?;
    if let Err(e) = signal_owner(&before, libc::SIGUSR1) {
        let _ = std::fs::remove_file(&auth);
        return Err(e);
    }
    let taken = wait_for(RESTART_ACK_WAIT, || Ok((!auth.exists()).then_some(())))?;
    if taken.is_none() {
        let _ = std::fs::remove_file(&auth);
        return Err(Error::failure(format!(
            "gateway (pid {}) did not act on SIGUSR1 within {}s; check its log",
            before.pid,
            RESTART_ACK_WAIT.as_secs()
        )));
    }
    // The payload is rewritten (with a new createdAt) once the new instance listens.
    let after = wait_for(RESTART_UP_WAIT, || match target.owner()? {
        Owner::Running(p) if p.created_at != before.created_at => Ok(Some(p)),
        Owner::NotRunning => Err(Error::failure(
            "the gateway exited during the restart; check its log",
        )),
        _ => Ok(None),
    })?;
    match after {
        Some(LockPayload {
            restart_error: Some(reason),
            pid,
            ..
        }) => Err(Error::Config(format!(
            "the restart could not use the new config: {reason}; gateway (pid {pid}) restarted on the config it was running. Fix the config (`emonkd check-config` checks it), then run `emonkd restart` again"
        ))),
        Some(p) => {
            outln!("restarted gateway (pid {}) on {}", p.pid, url_of(&p))?;
            Ok(exit::OK)
        }
        None => Err(Error::failure(format!(
            "gateway (pid {}) did not come back within {}s; check its log",
            before.pid,
            RESTART_UP_WAIT.as_secs()
        ))),
    }
}
