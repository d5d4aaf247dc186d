//! runit: a service directory (`run`, `finish`, `log/run`) linked into the directory
//! `runsvdir` watches, which then starts it within seconds; no command is needed.

use std::path::{Path, PathBuf};

use super::Plan;
use super::error::ServiceError;
use super::runner::Cmd;
use super::units::{self, NAME, Params};
use crate::paths::Env;

/// Where the service directory itself lives: `/etc/sv/emonkd` for root (the runit
/// convention), else `$XDG_DATA_HOME/emonk/sv/emonkd` (default `~/.local/share`).
pub fn service_dir(env: Env, root_user: bool) -> Result<PathBuf, ServiceError> {
    if root_user {
        return Ok(PathBuf::from("/etc/sv").join(NAME));
    }
    let base =
        match env("XDG_DATA_HOME").filter(|p| p.starts_with('/')) {
            Some(x) => PathBuf::from(x),
            None => PathBuf::from(env("HOME").ok_or_else(|| {
                ServiceError::Refused("HOME is not set; set HOME or install as root".into())
            })?)
            .join(".local/share"),
        };
    Ok(base.join("emonk/sv").join(NAME))
}

/// The link in SVDIR.
pub fn link_path(svdir: &Path) -> PathBuf {
    svdir.join(NAME)
}

pub fn plan(svdir: &Path, dir: &Path, params: &Params) -> Plan {
    // Installed by root (it then runs as `params.user`), the folders are system folders:
    // 0755 also lets that user read the config in /etc/emonk. Otherwise they are the
    // user's own, under the home.
    let dir_mode = if params.user.is_some() {
        super::SYSTEM_DIR_MODE
    } else {
        super::USER_DIR_MODE
    };
    let mut plan = Plan::new(format!("runit service {NAME} in {}", svdir.display()), dir_mode);
    plan.file(dir.join("run"), units::runit_run(params), 0o755);
    plan.file(dir.join("finish"), units::runit_finish(), 0o755);
    plan.file(dir.join("log/run"), units::runit_log_run(), 0o755);
    plan.link(link_path(svdir), dir.to_owned());
    plan.notes.push(format!(
        "runsvdir starts the service within about 5 s; logs go to {}",
        dir.join("log/main/current").display()
    ));
    plan
}

/// Take the service down before its link goes, so runsv stops it cleanly.
pub fn uninstall_commands(svdir: &Path) -> Vec<Cmd> {
    vec![Cmd::new(&["sv", "down", &link_path(svdir).display().to_string()])]
}

pub fn status_commands(svdir: &Path) -> Vec<Cmd> {
    vec![Cmd::new(&[
        "sv",
        "status",
        &link_path(svdir).display().to_string(),
    ])]
}

/// Directories runsv creates at run time inside the service dir (and the log service);
/// removed with it, since they describe a service that no longer exists.
pub fn runtime_dirs(dir: &Path) -> Vec<PathBuf> {
    vec![dir.join("supervise"), dir.join("log/supervise")]
}
