//! systemd: where the units go, the commands that load and start them, and recognizing the
//! commonest failure, a user bus that is not there.

use std::path::{Path, PathBuf};

use super::Plan;
use super::error::ServiceError;
use super::runner::{Cmd, Outcome, Runner};
use super::units::{self, NAME, Params};
use crate::paths::Env;

const UNIT: &str = "emonkd.service";

/// The user unit's path: `$XDG_CONFIG_HOME/systemd/user/emonkd.service`, else under
/// `~/.config`.
pub fn user_unit_path(env: Env) -> Result<PathBuf, ServiceError> {
    let base = match env("XDG_CONFIG_HOME").filter(|p| p.starts_with('/')) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(env("HOME").ok_or_else(|| {
            ServiceError::Refused("HOME is not set, so the user unit has no place; set HOME".into())
        })?)
        .join(".config"),
    };
    Ok(base.join("systemd/user").join(UNIT))
}

pub fn system_unit_path() -> PathBuf {
    PathBuf::from("/etc/systemd/system").join(UNIT)
}

fn systemctl(user: bool, args: &[&str]) -> Cmd {
    let mut v = vec!["systemctl"];
    if user {
        v.push("--user");
    }
    v.extend_from_slice(args);
    Cmd::new(&v)
}

/// Commands that load, enable and start the unit (after its files are written), and the
/// ones that undo them if a later step fails.
pub fn install_commands(user: bool) -> (Vec<Cmd>, Vec<Cmd>) {
    let mut run = Vec::new();
    if !user {
        run.push(Cmd::new(&["systemd-sysusers", "/etc/sysusers.d/emonkd.conf"]));
        run.push(Cmd::new(&[
            "systemd-tmpfiles",
            "--create",
            "/etc/tmpfiles.d/emonkd.conf",
        ]));
    }
    run.push(systemctl(user, &["daemon-reload"]));
    run.push(systemctl(user, &["enable", UNIT]));
    run.push(systemctl(user, &["start", UNIT]));
    let undo = vec![
        systemctl(user, &["stop", UNIT]),
        systemctl(user, &["disable", UNIT]),
        systemctl(user, &["daemon-reload"]),
    ];
    (run, undo)
}

/// Before uninstalling files: stop and disable. After: reload.
pub fn uninstall_commands(user: bool) -> (Vec<Cmd>, Vec<Cmd>) {
    (
        vec![
            systemctl(user, &["stop", UNIT]),
            systemctl(user, &["disable", UNIT]),
        ],
        vec![systemctl(user, &["daemon-reload"])],
    )
}

pub fn status_commands(user: bool) -> Vec<Cmd> {
    vec![
        systemctl(user, &["is-active", UNIT]),
        systemctl(user, &["is-enabled", UNIT]),
    ]
}

/// What to do when the user's systemd instance cannot be reached.
pub fn bus_advice(detail: &str) -> String {
    format!(
        "cannot reach your systemd user instance ({detail}).\n\
         This is common without a login session: over `su`/`sudo -u`, in containers, or after \
         logout without lingering. To fix it, either:\n  \
         - log in directly as this user (ssh or console) and run `loginctl enable-linger $USER` \
         once (as root: `loginctl enable-linger USER`), so your services run without a session; then retry, or\n  \
         - install a system service instead: `sudo emonkd service install --system`."
    )
}

/// The user bus must be reachable before any file is written: check the environment
/// systemctl needs, then ask it.
pub fn check_user_bus(env: Env, runner: &mut dyn Runner) -> Result<(), ServiceError> {
    if env("XDG_RUNTIME_DIR").is_none() && env("DBUS_SESSION_BUS_ADDRESS").is_none() {
        return Err(ServiceError::Refused(bus_advice(
            "neither XDG_RUNTIME_DIR nor DBUS_SESSION_BUS_ADDRESS is set",
        )));
    }
    let probe = systemctl(true, &["show-environment"]);
    match runner.run(&probe) {
        Ok(Outcome { success: true, .. }) => Ok(()),
        Ok(o) => Err(ServiceError::Refused(bus_advice(&format!(
            "`{probe}` failed: {}",
            first_line(&o.stderr)
        )))),
        Err(e) => Err(ServiceError::Refused(format!(
            "{e}; is systemd installed? For runit use --runit SVDIR"
        ))),
    }
}

/// A failed systemctl step: bus trouble gets the bus advice.
pub fn failed_step(cmd: &Cmd, o: &Outcome) -> String {
    let err = first_line(&o.stderr);
    if err.contains("Failed to connect to bus") || err.contains("No medium found") {
        bus_advice(&format!("`{cmd}`: {err}"))
    } else {
        format!("`{cmd}` failed: {err}")
    }
}

pub fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no output)")
        .trim()
        .to_owned()
}

/// The plan for a user unit.
pub fn user_plan(env: Env, params: &Params) -> Result<Plan, ServiceError> {
    let unit = user_unit_path(env)?;
    let (commands, undo) = install_commands(true);
    let mut plan = Plan::new(format!("systemd user unit {NAME}.service"), super::USER_DIR_MODE);
    plan.file(unit, units::user_unit(params), 0o644);
    plan.commands = commands;
    plan.undo = undo;
    plan.notes.push(
        "the unit runs while you are logged in; `loginctl enable-linger $USER` keeps it running after logout and starts it at boot".into(),
    );
    Ok(plan)
}

/// The plan for the system unit, with the user, directories and the gateway token.
pub fn system_plan(params: &Params) -> Plan {
    let (commands, undo) = install_commands(false);
    let mut plan = Plan::new(
        format!("systemd system unit {NAME}.service"),
        super::SYSTEM_DIR_MODE,
    );
    // The config folder holds the gateway token: 0750 from the start, as the tmpfiles.d
    // line (which install runs next) makes it, adding the group emonk.
    if let Some(etc) = Path::new(units::SYSTEM_TOKEN).parent() {
        plan.dir_modes.push((etc.to_owned(), 0o750));
    }
    plan.file(system_unit_path(), units::system_unit(params), 0o644);
    plan.file(
        PathBuf::from("/etc/sysusers.d/emonkd.conf"),
        units::sysusers(),
        0o644,
    );
    plan.file(
        PathBuf::from("/etc/tmpfiles.d/emonkd.conf"),
        units::tmpfiles(),
        0o644,
    );
    plan.token(PathBuf::from(units::SYSTEM_TOKEN));
    plan.commands = commands;
    plan.undo = undo;
    plan
}
