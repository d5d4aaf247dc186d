//! The daemon's life: config, lock, listening socket, then a supervisor loop that starts a
//! gateway [`instance::Instance`], waits for a signal, and stops or restarts it in-process.
//!
//! Threads: the main thread supervises; `emonk-signals` forwards signals; each instance has
//! `emonk-loop`, `emonk-router` and one thread per connector. A stop is bounded by
//! [`STOP_BUDGET`] from the signal: past it the process logs what is stuck and exits anyway.

pub(crate) mod crash;
mod instance;
mod listener;
mod liveness;
pub mod notify;
mod signals;
mod threads;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, select};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};

use crate::config::{self, BindMode, Config, Overrides};
use crate::error::Error;
use crate::lock::{self, GatewayLock, LockPayload};
use crate::paths::{self, ConfigLocation};
use crate::router::RESTART_EXPECTED_MS;
use crate::spool::{Spool, SpoolLimits};
use crate::statefs;
use instance::Instance;
use listener::Listener;
use notify::Notifier;
use signals::SignalThread;

/// The whole graceful stop, from the signal to exit.
pub const STOP_BUDGET: Duration = Duration::from_secs(5);
/// How long `run` waits for another gateway with the same config to release the lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);
/// How old a restart authorization may be when SIGUSR1 arrives.
const RESTART_AUTH_MAX_AGE: Duration = Duration::from_secs(30);

/// Messages to the supervisor.
#[derive(Debug)]
pub enum Control {
    Signal(i32),
}

/// `emonkd run` options.
#[derive(Debug, Default)]
pub struct RunOptions {
    pub config: Option<PathBuf>,
    pub port: Option<u16>,
    pub bind: Option<BindMode>,
}

/// What the supervisor does next.
enum Step {
    Stop(&'static str),
    Died(String),
    Restart {
        why: &'static str,
        config: Option<Box<Config>>,
        listener: Option<Listener>,
        /// Why the new config was not used (the running one is kept), published in the
        /// lock payload for `emonkd restart`.
        failure: Option<String>,
    },
}

/// What ended a wait.
enum Action {
    Stop(&'static str),
    /// SIGHUP: restart only if the re-read config is valid.
    Reload,
    /// An authorized restart: re-read the config, restart even if it is invalid (with the
    /// running config).
    Restart(&'static str),
    ThreadDied(String),
}

/// Run the gateway in the foreground until stopped.
pub fn run(opts: RunOptions) -> Result<(), Error> {
    let process_started = Instant::now();
    let env = paths::process_env;
    let location = paths::config_location(opts.config.as_deref(), &env).map_err(Error::Config)?;
    let overrides = Overrides {
        port: opts.port,
        bind: opts.bind,
    };
    let config = config::load(&location, &overrides, &env)?;
    log_warnings(&config);
    let state_dir = paths::state_dir(&env).map_err(Error::Config)?;
    // Before anything in it is opened: an unsafe state dir is refused (exit 78), and the
    // resolved path is used from here on (see `statefs::audit`).
    let state_dir = statefs::audit::prepare_state_dir(&state_dir)?;
    // Signal handlers first, before any other thread exists.
    let (control_tx, control_rx) = crossbeam_channel::bounded(16);
    let signals = SignalThread::start(control_tx)
        .map_err(|e| Error::failure(format!("cannot install signal handlers: {e}")))?;
    let daemon = Daemon {
        location,
        overrides,
        state_dir,
        control: control_rx,
        process_started,
        notifier: Notifier::from_env(&env),
        watchdog: notify::watchdog_interval(&env),
        next_watchdog: Cell::new(Instant::now()),
    };
    if let Some(interval) = daemon.watchdog {
        log::info!(
            "systemd watchdog enabled: WATCHDOG=1 every {} ms while every thread answers",
            interval.as_millis()
        );
    }
    let result = daemon.supervise(config);
    signals.stop();
    result
}

struct Daemon {
    location: ConfigLocation,
    overrides: Overrides,
    state_dir: PathBuf,
    control: Receiver<Control>,
    process_started: Instant,
    notifier: Notifier,
    /// Half of `$WATCHDOG_USEC`, when systemd asked for watchdog pings.
    watchdog: Option<Duration>,
    next_watchdog: Cell<Instant>,
}

impl Daemon {
    fn supervise(&self, mut config: Config) -> Result<(), Error> {
        let lock_path = lock::lock_path(&self.state_dir, &self.location.path);
        let mut lock = if lock::multi_gateway_allowed(&paths::process_env) {
            log::warn!(
                "{}=1: running without the single-instance lock",
                lock::MULTI_GATEWAY_ENV
            );
            None
        } else {
            Some(GatewayLock::acquire(&lock_path, LOCK_WAIT)?)
        };
        match crate::procinfo::raise_nofile_limit() {
            Ok((old, new)) => log::debug!("open file limit raised from {old} to {new}"),
            Err(e) => log::warn!("could not raise the open file limit: {e}"),
        }
        let spool_dir = self.state_dir.join("spool");
        let limits = SpoolLimits {
            max_entries: config.spool.max_entries,
            max_bytes: config.spool.max_bytes,
        };
        let spool = Spool::open(&spool_dir, limits).map_err(|e| {
            Error::failure(format!(
                "cannot open the spool in {}: {e}; check the state dir",
                spool_dir.display()
            ))
        })?;
        let spool = Arc::new(Mutex::new(spool));
        let mut listener = Listener::bind(&config.gateway)?;
        self.announce(&mut lock, &listener, &config, None)?;
        let restart_hook = instance::self_restart_hook(lock_path.clone());
        loop {
            let bind_info = listener.info(config.gateway.bind);
            let mut instance = Instance::start(
                &config,
                listener.socket(),
                &bind_info,
                self.process_started,
                restart_hook.clone(),
                &self.state_dir,
                &spool,
            )
            .map_err(|e| Error::failure(format!("cannot start the gateway threads: {e}")))?;
            // Lock held, socket listening, threads running: now we are ready.
            self.notifier.ready(&format!("listening on {}", listener.url()));
            self.next_watchdog.set(Instant::now());
            match self.next_step(&mut instance, &lock_path, &listener) {
                Step::Stop(why) => {
                    self.notifier.stopping();
                    log::info!("{why}: stopping (bounded at {}s)", STOP_BUDGET.as_secs());
                    self.stop_instance(instance, None);
                    log::info!("stopped");
                    return Ok(());
                }
                Step::Died(name) => {
                    self.notifier.stopping();
                    log::error!(
                        "thread {name} stopped unexpectedly; stopping the gateway so the supervisor can restart it"
                    );
                    self.stop_instance(instance, None);
                    return Err(Error::failure(format!(
                        "internal thread {name} stopped unexpectedly"
                    )));
                }
                Step::Restart {
                    why,
                    config: next_config,
                    listener: next_listener,
                    failure,
                } => {
                    log::info!("{why}: restarting in-process (pid {})", std::process::id());
                    if self.stop_instance(instance, Some(RESTART_EXPECTED_MS)) {
                        self.notifier.stopping();
                        log::info!("stop requested during the restart: stopped");
                        return Ok(());
                    }
                    if let Some(c) = next_config {
                        config = *c;
                    }
                    if let Some(l) = next_listener {
                        listener = l;
                    }
                    self.announce(&mut lock, &listener, &config, failure)?;
                }
            }
        }
    }

    /// Wait for what to do next with the running instance. A SIGHUP whose config does not
    /// load (or whose new address cannot be bound) changes nothing: the instance keeps
    /// running and clients stay connected. An authorized restart restarts anyway, with the
    /// running config if the new one is bad.
    fn next_step(&self, instance: &mut Instance, lock_path: &Path, listener: &Listener) -> Step {
        loop {
            match self.wait_for_action(instance, lock_path) {
                Action::Stop(why) => return Step::Stop(why),
                Action::ThreadDied(name) => return Step::Died(name),
                Action::Reload => {
                    // Type=notify-reload waits for RELOADING=1 then READY=1, even when the
                    // reload changes nothing.
                    self.notifier.reloading("reloading the config (SIGHUP)");
                    match self.prepare_restart(listener) {
                        Ok((config, listener)) => {
                            return Step::Restart {
                                why: "SIGHUP (reload)",
                                config: Some(Box::new(config)),
                                listener,
                                failure: None,
                            };
                        }
                        Err(_) => {
                            log::info!("SIGHUP: nothing reloaded; the gateway keeps running unchanged");
                            self.notifier.ready(&format!(
                                "listening on {} (the last reload failed; see the log)",
                                listener.url()
                            ));
                        }
                    }
                }
                Action::Restart(why) => {
                    self.notifier.reloading("restarting in-process");
                    return match self.prepare_restart(listener) {
                        Ok((config, listener)) => Step::Restart {
                            why,
                            config: Some(Box::new(config)),
                            listener,
                            failure: None,
                        },
                        Err(reason) => Step::Restart {
                            why,
                            config: None,
                            listener: None,
                            failure: Some(reason),
                        },
                    };
                }
            }
        }
    }

    /// Publish the lock payload (with why a restart kept the running config, if it did) and
    /// log the line scripts and tests wait for.
    fn announce(
        &self,
        lock: &mut Option<GatewayLock>,
        listener: &Listener,
        config: &Config,
        restart_error: Option<String>,
    ) -> Result<(), Error> {
        if let Some(lock) = lock.as_mut() {
            let payload = LockPayload {
                restart_error,
                ..LockPayload::for_this_process(
                    &self.location.path,
                    &listener.host().to_string(),
                    listener.port(),
                )
            };
            lock.publish(&payload).map_err(|e| {
                Error::failure(format!(
                    "cannot write the lock payload {}: {e}",
                    lock.path().display()
                ))
            })?;
        }
        if !config.gateway.auth_required() {
            log::warn!(
                "no gateway.auth configured: any local user can connect; set gateway.auth.token to require a token"
            );
        }
        log::info!("listening on {}", listener.url());
        Ok(())
    }

    /// Re-read the config and, if the address changed, bind the new one, before the running
    /// instance is stopped: a bad config or a busy port keeps the current ones. The error
    /// (already logged) says why.
    fn prepare_restart(&self, listener: &Listener) -> Result<(Config, Option<Listener>), String> {
        let next = match config::load(&self.location, &self.overrides, &paths::process_env) {
            Ok(c) => {
                log_warnings(&c);
                c
            }
            Err(e) => {
                log::error!("reload failed, keeping the running config: {e}");
                return Err(e.to_string());
            }
        };
        if listener.serves(&next.gateway) {
            return Ok((next, None));
        }
        match Listener::bind(&next.gateway) {
            Ok(l) => Ok((next, Some(l))),
            Err(e) => {
                log::error!("reload: {e}; keeping the running config on {}", listener.url());
                Err(e.to_string())
            }
        }
    }

    fn wait_for_action(&self, instance: &mut Instance, lock_path: &Path) -> Action {
        loop {
            let finished = instance.finished().clone();
            let watchdog = match self.watchdog {
                Some(_) => crossbeam_channel::at(self.next_watchdog.get()),
                None => crossbeam_channel::never(),
            };
            select! {
                recv(watchdog) -> _ => self.watchdog_tick(instance),
                recv(self.control) -> msg => {
                    let Ok(Control::Signal(sig)) = msg else { return Action::Stop("signal thread gone") };
                    match sig {
                        SIGTERM | SIGINT => return Action::Stop(signals::name(sig)),
                        SIGHUP => return Action::Reload,
                        SIGUSR1 if lock::take_restart_authorization(lock_path, RESTART_AUTH_MAX_AGE) => {
                            return Action::Restart("SIGUSR1 (authorized restart)");
                        }
                        SIGUSR1 => log::warn!(
                            "SIGUSR1 received but the restart is not authorized (use `emonkd restart` or the gateway.restart method); ignoring"
                        ),
                        _ => {}
                    }
                }
                recv(finished) -> name => {
                    let name = name.unwrap_or_default();
                    instance.mark_finished(name.clone());
                    if instance::CORE_THREADS.contains(&name.as_str()) {
                        return Action::ThreadDied(name);
                    }
                    log::error!("connector thread {name} stopped unexpectedly; its channel is down until a reload (SIGHUP) or restart");
                }
            }
        }
    }

    /// Ping the systemd watchdog if every thread answered the last probe, then probe again.
    fn watchdog_tick(&self, instance: &mut Instance) {
        let Some(interval) = self.watchdog else { return };
        let stale = instance.stale_threads();
        if stale.is_empty() {
            self.notifier.watchdog();
        } else {
            log::warn!(
                "not sending WATCHDOG=1: {} did not answer the liveness probe within {} ms; systemd will restart the gateway if this persists",
                stale.join(", "),
                interval.as_millis()
            );
        }
        instance.probe();
        // From the previous deadline, not from now, so pings do not drift later and later.
        let next = self.next_watchdog.get() + interval;
        self.next_watchdog.set(next.max(Instant::now()));
    }

    /// Stop an instance within [`STOP_BUDGET`]. Returns true if a stop signal arrived while
    /// stopping (so a restart should not continue). Exits the process if the budget runs out.
    fn stop_instance(&self, instance: Instance, restart_expected_ms: Option<u64>) -> bool {
        let deadline = Instant::now() + STOP_BUDGET;
        let mut stop_requested = false;
        let mut on_control = |msg: Control| {
            let Control::Signal(sig) = msg;
            match (sig, restart_expected_ms) {
                (SIGTERM | SIGINT, Some(_)) => {
                    log::info!(
                        "{} received while restarting: will stop instead",
                        signals::name(sig)
                    );
                    stop_requested = true;
                }
                _ => log::info!("{} received while stopping: already stopping", signals::name(sig)),
            }
        };
        if let Err(stuck) = instance.stop(restart_expected_ms, deadline, &self.control, &mut on_control) {
            log::error!(
                "shutdown timed out after {}s (still running: {}); exiting anyway",
                STOP_BUDGET.as_secs(),
                stuck.join(", ")
            );
            std::process::exit(i32::from(crate::exit::FAILURE));
        }
        stop_requested
    }
}

/// The config's warnings ([`config::warnings`]), at start and on each reload.
fn log_warnings(config: &Config) {
    for w in config::warnings(config) {
        log::warn!("{w}");
    }
}
