//! The text of every file `emonkd service install` writes, and of the files in `contrib/`.
//!
//! This is the one source for both: `contrib/` holds these texts rendered with
//! [`Params::canonical`], and a test (`tests/service.rs`) fails if they differ. To regenerate
//! `contrib/` after changing a template, run
//! `EMONK_REGENERATE_CONTRIB=1 cargo test --test service contrib`.

use std::path::{Path, PathBuf};

/// The unit name, also the runit service name.
pub const NAME: &str = "emonkd";
/// The system user of the system unit and of a runit service installed by root.
pub const SYSTEM_USER: &str = "emonk";
/// Where the system unit reads its config.
pub const SYSTEM_CONFIG: &str = "/etc/emonk/emonk.json";
/// The system unit's gateway token, loaded as the credential `gateway.auth.token`.
pub const SYSTEM_TOKEN: &str = "/etc/emonk/gateway.token";
/// The system state directory (`StateDirectory=emonk`).
pub const SYSTEM_STATE: &str = "/var/lib/emonk";

/// What differs between installations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Absolute path of the `emonkd` binary.
    pub exe: PathBuf,
    /// Absolute path of the config file.
    pub config: PathBuf,
    /// runit only: the state directory the run script passes as `EMONK_STATE_DIR`.
    pub state_dir: PathBuf,
    /// runit only: the user to run as (`chpst -u`), when installed by root.
    pub user: Option<String>,
}

impl Params {
    /// The parameters of `contrib/systemd/emonkd-user.service`: the config in the user's
    /// home through the `%h` specifier.
    pub fn canonical_user() -> Params {
        Params {
            config: PathBuf::from(format!("{HOME_SPECIFIER}.config/emonk/emonk.json")),
            user: None,
            ..Params::canonical()
        }
    }

    /// The parameters `contrib/` is rendered with.
    pub fn canonical() -> Params {
        Params {
            exe: PathBuf::from("/usr/local/bin/emonkd"),
            config: PathBuf::from(SYSTEM_CONFIG),
            state_dir: PathBuf::from(SYSTEM_STATE),
            user: Some(SYSTEM_USER.to_owned()),
        }
    }
}

/// A leading `%h/` stays a specifier (only [`Params::canonical_user`] uses it: a resolved
/// path is absolute, so it never starts with `%`).
const HOME_SPECIFIER: &str = "%h/";

/// One argument of a systemd command line: quoted when it needs to be; `%` and `$` escaped
/// so systemd expands neither specifiers nor variables in a path.
fn unit_arg(p: &Path) -> String {
    let text = p.display().to_string();
    let (prefix, rest) = match text.strip_prefix(HOME_SPECIFIER) {
        Some(rest) => (HOME_SPECIFIER, rest),
        None => ("", text.as_str()),
    };
    let s = format!("{prefix}{}", rest.replace('%', "%%").replace('$', "$$"));
    if s.chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '\\')
    {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s
    }
}

/// One shell word, single-quoted when it needs to be.
fn sh_arg(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%=,".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn exec_start(p: &Params) -> String {
    format!("{} run --config {}", unit_arg(&p.exe), unit_arg(&p.config))
}

/// The `[Service]` settings both units share: how emonkd is started, reloaded, restarted,
/// stopped and watched.
fn service_settings(p: &Params) -> String {
    format!(
        r#"Type=notify
NotifyAccess=main
ExecStart={exec}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2
# 78: configuration error. Restarting cannot fix it; fix the config, then start again.
RestartPreventExitStatus=78
# emonkd bounds its own stop at 5 s.
TimeoutStopSec=10
WatchdogSec=30"#,
        exec = exec_start(p),
    )
}

/// The system unit (`/etc/systemd/system/emonkd.service`, `contrib/systemd/emonkd.service`).
pub fn system_unit(p: &Params) -> String {
    format!(
        r#"# emonkd as a system service. Written by `emonkd service install --system`;
# contrib/systemd/emonkd.service is the same text for /usr/local/bin/emonkd.
# Change settings with `systemctl edit emonkd` rather than editing this file.
#
# The gateway token is the credential gateway.auth.token, loaded from {token}
# (mode 0600, owned by root; emonkd reads it through $CREDENTIALS_DIRECTORY). Chat
# tokens can be loaded the same way, e.g. in a drop-in:
#   LoadCredential=channels.telegram.botToken:/etc/emonk/telegram.token
# See emonkd.json(5), SYSTEMD CREDENTIALS, and emonkd(8).

[Unit]
Description=emonk gateway daemon
Documentation=man:emonkd(8) man:emonkd.json(5)
Wants=network-online.target
After=network-online.target

[Service]
{service}
User={user}
Group={user}
StateDirectory=emonk
StateDirectoryMode=0700
ConfigurationDirectory=emonk
ConfigurationDirectoryMode=0750
LoadCredential=gateway.auth.token:{token}
UMask=0077
LimitNOFILE=65536

NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
CapabilityBoundingSet=
AmbientCapabilities=
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
"#,
        token = SYSTEM_TOKEN,
        service = service_settings(p),
        user = p.user.as_deref().unwrap_or(SYSTEM_USER),
    )
}

/// The user unit (`~/.config/systemd/user/emonkd.service`,
/// `contrib/systemd/emonkd-user.service`).
pub fn user_unit(p: &Params) -> String {
    format!(
        r#"# emonkd as a systemd user service. Written by `emonkd service install`;
# contrib/systemd/emonkd-user.service is the same text for /usr/local/bin/emonkd.
# It runs while you are logged in, or always after `loginctl enable-linger $USER`.
# See emonkd(8).

[Unit]
Description=emonk gateway daemon
Documentation=man:emonkd(8) man:emonkd.json(5)

[Service]
{service}
UMask=0077
NoNewPrivileges=yes
PrivateTmp=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service

[Install]
WantedBy=default.target
"#,
        service = service_settings(p),
    )
}

/// `contrib/sysusers.d/emonkd.conf` (`/etc/sysusers.d/emonkd.conf`): the system user.
pub fn sysusers() -> String {
    format!(
        "# The user the emonkd system service runs as. Written by `emonkd service install --system`.\n\
         u {SYSTEM_USER} - \"emonk gateway daemon\" {SYSTEM_STATE} /usr/sbin/nologin\n"
    )
}

/// `contrib/tmpfiles.d/emonkd.conf` (`/etc/tmpfiles.d/emonkd.conf`): the config dir is
/// readable by the service's group only; the state dir is the user's alone.
pub fn tmpfiles() -> String {
    format!(
        "# Directories of the emonkd system service. Written by `emonkd service install --system`.\n\
         d /etc/emonk 0750 root {SYSTEM_USER} -\n\
         d {SYSTEM_STATE} 0700 {SYSTEM_USER} {SYSTEM_USER} -\n"
    )
}

/// runit `run`: stderr into the log service, then exec the daemon with explicit paths so
/// it finds the same config and state whoever runs `runsvdir`.
pub fn runit_run(p: &Params) -> String {
    let exe = sh_arg(&p.exe.display().to_string());
    let config = sh_arg(&p.config.display().to_string());
    let state = sh_arg(&p.state_dir.display().to_string());
    let (prepare, chpst) = match &p.user {
        Some(user) => {
            let user = sh_arg(user);
            (
                format!("install -d -m 0700 -o {user} -g {user} {state}\n"),
                format!("chpst -u {user}:{user} "),
            )
        }
        None => (String::new(), String::new()),
    };
    format!(
        r#"#!/bin/sh
# emonkd under runit. Written by `emonkd service install --runit SVDIR`;
# contrib/runit/emonkd/run is the same text for /usr/local/bin/emonkd. See emonkd(8).
exec 2>&1
{prepare}exec {chpst}env EMONK_STATE_DIR={state} {exe} run --config {config}
"#
    )
}

/// runit `finish`: exit 78 (configuration error) takes the service down instead of
/// restarting it every second; anything else restarts.
pub fn runit_finish() -> String {
    r#"#!/bin/sh
# Called by runsv when emonkd exits: $1 is the exit code (-1 if killed by a signal).
# 78 is a configuration error that restarting cannot fix: mark the service down (the same as
# `sv down`), so it stays down until the config is fixed and `sv up emonkd` is run.
if [ "$1" = 78 ]; then
    echo "emonkd: configuration error (exit 78); not restarting. Fix the config, then: sv up emonkd"
    printf d > supervise/control
fi
exit 0
"#
    .to_owned()
}

/// runit `log/run`: svlogd with timestamps, into `./main` next to this script.
pub fn runit_log_run() -> String {
    r#"#!/bin/sh
# The log service of emonkd: svlogd keeps rotated logs in ./main (see svlogd(8)).
mkdir -p main
exec svlogd -tt main
"#
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_for_systemd_and_sh() {
        let p = Params {
            exe: PathBuf::from("/opt/my apps/emonkd"),
            config: PathBuf::from("/etc/emonk/100%.json"),
            state_dir: PathBuf::from("/var/lib/it's"),
            user: None,
        };
        assert!(
            user_unit(&p).contains("ExecStart=\"/opt/my apps/emonkd\" run --config /etc/emonk/100%%.json\n"),
            "{}",
            user_unit(&p)
        );
        let run = runit_run(&p);
        assert!(
            run.contains("exec env EMONK_STATE_DIR='/var/lib/it'\\''s' '/opt/my apps/emonkd' run --config /etc/emonk/100%.json\n"),
            "{run}"
        );
    }

    #[test]
    fn canonical_system_unit() {
        let u = system_unit(&Params::canonical());
        assert!(u.contains("ExecStart=/usr/local/bin/emonkd run --config /etc/emonk/emonk.json\n"));
        assert!(u.contains("User=emonk\n"));
        let run = runit_run(&Params::canonical());
        assert!(run.contains("exec chpst -u emonk:emonk env EMONK_STATE_DIR=/var/lib/emonk /usr/local/bin/emonkd run --config /etc/emonk/emonk.json\n"), "{run}");
    }
}
