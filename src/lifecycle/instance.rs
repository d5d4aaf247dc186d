//! One running gateway instance: the event loop, the router and the connectors, built from
//! one config. An in-process restart stops the instance and starts a new one; the process,
//! its pid, the lock and (when the address is unchanged) the listening socket stay.

use std::collections::BTreeMap;
use std::io;
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::Control;
use super::liveness::Liveness;
use super::threads::ThreadGroup;
use crate::bus::ToRouter;
use crate::channels::discord::Discord;
use crate::channels::media::cache::MediaCache;
use crate::channels::slack::Slack;
use crate::channels::telegram::Telegram;
use crate::channels::{Connector, ConnectorContext};
use crate::config::Config;
use crate::router::{ConnectorSlot, RestartHook, Router, RouterSettings};
use crate::server::{CONNECT_TIMEOUT, EventLoop, ServerSettings};
use crate::spool::Spool;

/// How long clients get to finish their close handshake at shutdown, at most.
const DRAIN: Duration = Duration::from_secs(1);

/// Where the instance listens, for `gateway.status`.
pub struct BindInfo {
    pub host: String,
    pub port: u16,
    pub mode: &'static str,
}

pub struct Instance {
    threads: ThreadGroup,
    router: Sender<ToRouter>,
    liveness: Liveness,
}

/// Names of the threads whose death takes the gateway down; a connector thread that dies
/// only takes its channel down.
pub const CORE_THREADS: &[&str] = &["emonk-loop", "emonk-router"];

/// The connectors the config enables.
fn connectors(config: &Config, state_dir: &Path, spool: &Arc<Mutex<Spool>>) -> Vec<Box<dyn Connector>> {
    let mut out: Vec<Box<dyn Connector>> = Vec::new();
    if let Some(t) = Telegram::from_config(&config.channels.telegram, state_dir.to_owned(), spool.clone()) {
        out.push(Box::new(t));
    }
    if let Some(d) = Discord::from_config(&config.channels.discord, spool.clone()) {
        out.push(Box::new(d));
    }
    if let Some(s) = Slack::from_config(&config.channels.slack, state_dir.to_owned(), spool.clone()) {
        out.push(Box::new(s));
    }
    out
}

/// `<state>/media/`, cleaned up and indexed (see [`MediaCache::open`]).
fn open_media_cache(config: &Config, state_dir: &Path) -> io::Result<MediaCache> {
    let dir = state_dir.join("media");
    MediaCache::open(&dir, config.media.cache_max_bytes).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot open the media cache {}: {e}", dir.display()),
        )
    })
}

/// `media.sendDirs` in force. The default, `<state>/outbox`, is created (0700) so an agent
/// on the same host has somewhere to put files; folders the operator listed must exist
/// already (a missing one just allows nothing, and `channels.send` names it).
fn open_send_dirs(config: &Config, state_dir: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    if config.media.send_dirs.is_none() {
        let outbox = state_dir.join(crate::config::DEFAULT_OUTBOX);
        crate::statefs::ensure_dir(&outbox)?;
    }
    Ok(config.media.send_dirs(state_dir))
}

fn server_settings(config: &Config) -> ServerSettings {
    let g = &config.gateway;
    ServerSettings {
        max_payload: g.max_payload_bytes,
        max_clients: g.max_clients,
        tick_interval: Duration::from_millis(g.tick_interval_ms),
        allowed_origins: g.allowed_origins.clone().into(),
        backlog_limit: g.client_backlog_bytes,
        token: g.auth.token.as_ref().map(|s| s.expose().to_owned()),
        password: g.auth.password.as_ref().map(|s| s.expose().to_owned()),
        agent_token: g.auth.agent_token.as_ref().map(|s| s.expose().to_owned()),
        connect_timeout: CONNECT_TIMEOUT,
    }
}

impl Instance {
    /// Start the loop, router and connector threads on a clone of `listener`.
    pub fn start(
        config: &Config,
        listener: &TcpListener,
        bind: &BindInfo,
        process_started: Instant,
        restart: RestartHook,
        state_dir: &Path,
        spool: &Arc<Mutex<Spool>>,
    ) -> io::Result<Instance> {
        let (router_tx, router_rx) = crossbeam_channel::unbounded();
        let (event_loop, loop_handle) =
            EventLoop::new(listener.try_clone()?, server_settings(config), router_tx.clone())?;
        let settings = RouterSettings {
            agent_timeout: Duration::from_millis(config.gateway.agent_timeout_ms),
            bind_host: bind.host.clone(),
            bind_mode: bind.mode,
            port: bind.port,
            process_started,
            restart,
            media: Arc::new(open_media_cache(config, state_dir)?),
            media_max_bytes: config.media.max_bytes,
            send_dirs: open_send_dirs(config, state_dir)?,
            max_payload: config.gateway.max_payload_bytes,
        };
        let mut threads = ThreadGroup::new();
        let mut slots = BTreeMap::new();
        let mut channels = Vec::new();
        for connector in connectors(config, state_dir, spool) {
            let (commands_tx, commands_rx) = crossbeam_channel::unbounded();
            let channel = connector.channel();
            channels.push(channel);
            slots.insert(
                channel,
                ConnectorSlot {
                    commands: commands_tx,
                    status: connector.initial_status(),
                    stream: connector.stream_shape(),
                },
            );
            let ctx = ConnectorContext::new(commands_rx, router_tx.clone());
            threads.spawn(&format!("emonk-{channel}"), move || connector.run(ctx))?;
        }
        let router = Router::new(router_rx, loop_handle, settings, slots, spool.clone());
        threads.spawn("emonk-loop", move || event_loop.run())?;
        threads.spawn("emonk-router", move || router.run())?;
        Ok(Instance {
            threads,
            router: router_tx,
            liveness: Liveness::new(&channels),
        })
    }

    /// The threads that did not answer the last liveness probe (empty: all alive).
    pub fn stale_threads(&self) -> Vec<String> {
        self.liveness.stale()
    }

    /// Send the next liveness probe, unless the last one is still unanswered.
    pub fn probe(&mut self) {
        if let Some(probe) = self.liveness.next_probe() {
            let _ = self.router.send(probe);
        }
    }

    /// Receives the name of any instance thread that finishes; before a stop that means it
    /// died.
    pub fn finished(&self) -> &Receiver<String> {
        self.threads.finished()
    }

    /// Record a finish taken from [`Instance::finished`].
    pub fn mark_finished(&mut self, name: String) {
        self.threads.mark_finished(name);
    }

    /// Stop everything: clients get `shutdown` and a close code (1012 with
    /// `restart_expected_ms`, else 1001), connectors are told to stop, and every thread is
    /// joined by `deadline`. Control messages arriving meanwhile go to `on_control`.
    pub fn stop(
        self,
        restart_expected_ms: Option<u64>,
        deadline: Instant,
        control: &Receiver<Control>,
        on_control: &mut dyn FnMut(Control),
    ) -> Result<(), Vec<String>> {
        let drain_until = (Instant::now() + DRAIN).min(deadline);
        let _ = self.router.send(ToRouter::Shutdown {
            restart_expected_ms,
            drain_until,
        });
        drop(self.router);
        self.threads.wait_until(deadline, control, on_control)
    }
}

/// The hook `gateway.restart` runs: authorize, then signal ourselves, so the restart takes the
/// same path as `emonkd restart`.
pub fn self_restart_hook(lock_path: std::path::PathBuf) -> RestartHook {
    Arc::new(move || {
        crate::lock::authorize_restart(&lock_path)?;
        crate::procinfo::send_signal(std::process::id(), libc::SIGUSR1)
    })
}
