//! The checks `service install` makes before it writes anything, for a real install and a
//! dry run alike: a dry run that passes means the real install gets past them too.
//!
//! A *refusal* is something the service could not run with (no user bus, no root, a missing
//! SVDIR or service user, a binary or config the unit's sandbox hides): the install writes
//! nothing, a dry run reports it and exits 1. A *warning* is something that works today but
//! breaks later (a binary inside a cargo build tree): both say it and go on. Every finding is
//! reported, not just the first, so one run shows all there is to fix.

use std::path::{Path, PathBuf};

use super::units::{self, Params};
use super::{Host, Kind, Request, runit, systemd};

/// What the checks found.
#[derive(Default, Debug)]
pub struct Findings {
    pub refusals: Vec<String>,
    pub warnings: Vec<String>,
}

/// Paths under /home or /root are hidden from the system unit by `ProtectHome=yes`.
fn under_home(p: &Path) -> bool {
    p.starts_with("/home") || p.starts_with("/root") || p.starts_with("/run/user")
}

/// Paths `PrivateTmp=yes` (both systemd units) replaces with an empty private directory.
fn under_tmp(p: &Path) -> bool {
    p.starts_with("/tmp") || p.starts_with("/var/tmp")
}

/// The cargo target directory `exe` lies in, if any: an ancestor holding the
/// `CACHEDIR.TAG` cargo writes, or `.rustc_info.json`. Found on the real file system, since
/// `exe` is the running binary.
pub fn build_tree(exe: &Path) -> Option<PathBuf> {
    exe.ancestors().skip(1).find_map(|dir| {
        let tag = std::fs::read_to_string(dir.join("CACHEDIR.TAG")).unwrap_or_default();
        (tag.contains("cargo") || dir.join(".rustc_info.json").is_file()).then(|| dir.to_owned())
    })
}

/// Run every check for this request.
pub fn run(host: &mut Host, req: &Request, params: &Params) -> Findings {
    let mut f = Findings::default();
    match &req.kind {
        Kind::User => {
            if let Err(e) = systemd::check_user_bus(host.env, host.runner) {
                f.refusals.push(e.to_string());
            }
        }
        Kind::System => {
            if host.euid != 0 && !host.root.is_set() {
                f.refusals.push(
                    "a system service needs root: run `sudo emonkd service install --system` (or install a user unit without --system)".into(),
                );
            }
            system_paths(params, &mut f.refusals);
        }
        Kind::Runit(svdir) => runit_checks(host, svdir, params, &mut f.refusals),
    }
    if matches!(req.kind, Kind::User | Kind::System) && under_tmp(&params.exe) {
        f.refusals.push(format!(
            "{} is under a temporary directory, which the unit hides (PrivateTmp=yes), so systemd could not start it; install the binary first, e.g. `cargo install --path .` (~/.cargo/bin/emonkd) or `sudo install -m 0755 {} /usr/local/bin/emonkd`, then run service install with that binary",
            params.exe.display(),
            params.exe.display()
        ));
    }
    if let Some(tree) = build_tree(&params.exe) {
        f.warnings.push(format!(
            "{} is inside the cargo build tree {}: the next `cargo build` replaces the binary under the running service and `cargo clean` deletes it; install it first (`cargo install --path .`, then `~/.cargo/bin/emonkd service install`)",
            params.exe.display(),
            tree.display()
        ));
    }
    f
}

/// The system unit cannot start a binary or read a config under a home directory.
fn system_paths(params: &Params, refusals: &mut Vec<String>) {
    if under_home(&params.exe) {
        refusals.push(format!(
            "{} is under a home directory, which the system unit hides (ProtectHome=yes); install the binary first, e.g. `sudo install -m 0755 {} /usr/local/bin/emonkd`, then run `sudo /usr/local/bin/emonkd service install --system`",
            params.exe.display(),
            params.exe.display()
        ));
    }
    if under_home(&params.config) {
        refusals.push(format!(
            "the config {} is under a home directory, which the system unit hides (ProtectHome=yes); use /etc/emonk/emonk.json (the default for --system)",
            params.config.display()
        ));
    }
}

fn runit_checks(host: &Host, svdir: &Path, params: &Params, refusals: &mut Vec<String>) {
    let real = host.root.at(svdir);
    if !real.is_dir() {
        refusals.push(format!(
            "--runit {}: no such directory; pass the directory runsvdir watches (often /var/service, /etc/service or /etc/runit/runsvdir/default)",
            svdir.display()
        ));
    }
    let link = host.root.at(&runit::link_path(svdir));
    if link.symlink_metadata().is_ok() && !link.read_link().is_ok_and(|t| t.ends_with("sv/emonkd")) {
        refusals.push(format!(
            "{} already exists and is not an emonkd service link; remove it first",
            link.display()
        ));
    }
    if let Some(user) = &params.user {
        if !(host.user_exists)(user) {
            refusals.push(format!(
                "the runit service runs as the user {user}, which does not exist; create it with `systemd-sysusers contrib/sysusers.d/emonkd.conf` or `useradd --system --home-dir {} --shell /usr/sbin/nologin {user}`",
                units::SYSTEM_STATE
            ));
        }
    }
}
