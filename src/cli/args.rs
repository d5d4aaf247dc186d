//! The flag table. Every flag here is documented in `man/emonkd.8`; a test checks both agree.

use std::path::PathBuf;

use argh::FromArgs;

use crate::config::BindMode;

/// emonkd: the emonk gateway daemon. It keeps chat platforms connected and serves them to
/// local programs over a WebSocket JSON API (ws://127.0.0.1:18789 by default).
#[derive(FromArgs, Debug)]
#[argh(help_triggers("-h", "--help"))]
pub struct Cli {
    /// print the version and exit
    #[argh(switch, short = 'V')]
    pub version: bool,
    #[argh(subcommand)]
    pub command: Option<Command>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    Run(RunArgs),
    Call(CallArgs),
    Status(StatusArgs),
    Stop(StopArgs),
    Restart(RestartArgs),
    CheckConfig(CheckConfigArgs),
    Service(ServiceArgs),
}

/// Run the gateway in the foreground until SIGTERM or SIGINT.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "run")]
pub struct RunArgs {
    /// config file (default: $EMONK_CONFIG, then $XDG_CONFIG_HOME/emonk/emonk.json, then
    /// ~/.config/emonk/emonk.json; a missing default file means all defaults)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// port to listen on; 0 picks a free one (overrides EMONK_GATEWAY_PORT and gateway.port)
    #[argh(option)]
    pub port: Option<u16>,
    /// loopback, lan, tailnet or custom (overrides EMONK_GATEWAY_BIND and gateway.bind)
    #[argh(option)]
    pub bind: Option<BindMode>,
    /// log at debug level (RUST_LOG, if set, still applies on top)
    #[argh(switch, short = 'v')]
    pub verbose: bool,
}

/// Call a method on the running gateway and print the result as JSON.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "call")]
pub struct CallArgs {
    /// method name, e.g. gateway.status or agent.chat
    #[argh(positional)]
    pub method: String,
    /// params as a JSON object (default {})
    #[argh(positional)]
    pub params: Option<String>,
    /// gateway URL (default: found through the lock of --config)
    #[argh(option)]
    pub url: Option<String>,
    /// token to authenticate with (default: the config's gateway.auth.token); visible to
    /// every local user in the process list, so prefer --token-file
    #[argh(option)]
    pub token: Option<String>,
    /// file holding the token (trailing newline trimmed); not together with --token
    #[argh(option)]
    pub token_file: Option<PathBuf>,
    /// password to authenticate with (default: the config's gateway.auth.password)
    #[argh(option)]
    pub password: Option<String>,
    /// how long to wait for the final answer, in milliseconds (default 130000)
    #[argh(option)]
    pub timeout_ms: Option<u64>,
    /// config file naming the gateway (see `run --help`)
    #[argh(option)]
    pub config: Option<PathBuf>,
}

/// Show whether the gateway is running and answers a live probe (exit 0), holds the lock
/// but does not answer (exit 4), or is not running (exit 3).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "status")]
pub struct StatusArgs {
    /// print JSON instead of text
    #[argh(switch)]
    pub json: bool,
    /// config file naming the gateway (see `run --help`)
    #[argh(option)]
    pub config: Option<PathBuf>,
}

/// Stop the running gateway (SIGTERM) and wait until it has exited.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "stop")]
pub struct StopArgs {
    /// config file naming the gateway (see `run --help`)
    #[argh(option)]
    pub config: Option<PathBuf>,
}

/// Restart the running gateway in-process (same pid) and wait until it is back.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "restart")]
pub struct RestartArgs {
    /// config file naming the gateway (see `run --help`)
    #[argh(option)]
    pub config: Option<PathBuf>,
}

/// Validate the config and print the effective config as JSON, secrets masked.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "check-config")]
pub struct CheckConfigArgs {
    /// config file to check (see `run --help`)
    #[argh(option)]
    pub config: Option<PathBuf>,
}

/// Install, remove or inspect emonkd as a systemd (user or system) or runit service.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "service")]
pub struct ServiceArgs {
    #[argh(subcommand)]
    pub action: ServiceAction,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum ServiceAction {
    Install(ServiceInstallArgs),
    Uninstall(ServiceUninstallArgs),
    Status(ServiceStatusArgs),
}

/// The flags every `service` action shares.
pub trait ServiceFlags {
    fn system(&self) -> bool;
    fn runit(&self) -> Option<&PathBuf>;
    fn dry_run(&self) -> bool;
    fn config(&self) -> Option<&PathBuf>;
}

macro_rules! service_flags {
    ($t:ty) => {
        impl ServiceFlags for $t {
            fn system(&self) -> bool {
                self.system
            }
            fn runit(&self) -> Option<&PathBuf> {
                self.runit.as_ref()
            }
            fn dry_run(&self) -> bool {
                self.dry_run
            }
            fn config(&self) -> Option<&PathBuf> {
                self.config.as_ref()
            }
        }
    };
}

/// Write the service files and start the service (systemd: daemon-reload, enable, start;
/// runit: link into SVDIR). Default: a systemd user unit.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "install")]
pub struct ServiceInstallArgs {
    /// a systemd system unit (/etc/systemd/system/emonkd.service) instead of a user unit
    #[argh(switch)]
    pub system: bool,
    /// a runit service directory, linked into SVDIR (e.g. /var/service)
    #[argh(option, arg_name = "SVDIR")]
    pub runit: Option<PathBuf>,
    /// print the files and commands instead of writing or running anything
    #[argh(switch)]
    pub dry_run: bool,
    /// config file the service runs with (see `run --help`; --system: /etc/emonk/emonk.json)
    #[argh(option)]
    pub config: Option<PathBuf>,
}
service_flags!(ServiceInstallArgs);

/// Stop the service and remove exactly what install created (files you changed, files that
/// existed before, and the state dir stay).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "uninstall")]
pub struct ServiceUninstallArgs {
    /// the systemd system unit instead of the user unit
    #[argh(switch)]
    pub system: bool,
    /// the runit service linked into SVDIR
    #[argh(option, arg_name = "SVDIR")]
    pub runit: Option<PathBuf>,
    /// print what would be stopped and removed instead of doing it
    #[argh(switch)]
    pub dry_run: bool,
    /// config file the service was installed with (see `service install --help`)
    #[argh(option)]
    pub config: Option<PathBuf>,
}
service_flags!(ServiceUninstallArgs);

/// Show the supervisor's view of the service and a live probe of the gateway (exit 0 when
/// the gateway runs, 3 when not).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "status")]
pub struct ServiceStatusArgs {
    /// the systemd system unit instead of the user unit
    #[argh(switch)]
    pub system: bool,
    /// the runit service linked into SVDIR
    #[argh(option, arg_name = "SVDIR")]
    pub runit: Option<PathBuf>,
    /// print the commands that would be run instead of running them
    #[argh(switch)]
    pub dry_run: bool,
    /// config file the service was installed with (see `service install --help`)
    #[argh(option)]
    pub config: Option<PathBuf>,
}
service_flags!(ServiceStatusArgs);
