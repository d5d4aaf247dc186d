//! `emonkd service install | uninstall | status`: run emonkd under systemd (a user unit by
//! default, a system unit with `--system`) or runit (`--runit SVDIR`).
//!
//! Every command first builds a [`Plan`]: the files to write (text from [`units`], the same
//! text as `contrib/`), links, and commands. `--dry-run` prints it. Otherwise the checks
//! that can fail for reasons outside our control (no user bus, no root, a missing user or
//! SVDIR) run before anything is written, and the writes go through a
//! [`fsops::Transaction`] that is rolled back if a later command fails, so a failed install
//! leaves nothing behind. The command runner is injected ([`runner::Runner`]) and every
//! absolute path can be prefixed (`$EMONK_SERVICE_ROOT`), so tests never touch the system.

pub mod error;
pub mod fsops;
pub mod runit;
pub mod runner;
pub mod systemd;
pub mod units;

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::paths::{self, Env};
pub use error::ServiceError;
use fsops::{Root, Transaction};
use runner::{Cmd, Runner};
use units::Params;

/// Which supervisor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A systemd user unit (the default).
    User,
    /// The systemd system unit.
    System,
    /// A runit service linked into this SVDIR.
    Runit(PathBuf),
}

/// A service command as the user asked for it.
#[derive(Clone, Debug)]
pub struct Request {
    pub kind: Kind,
    pub dry_run: bool,
    /// `--config`, if given.
    pub config: Option<PathBuf>,
}

/// Everything the service commands take from the outside world, injected for tests.
pub struct Host<'a> {
    pub env: Env<'a>,
    /// The absolute path of the `emonkd` binary to run.
    pub exe: PathBuf,
    pub euid: u32,
    pub root: Root,
    pub runner: &'a mut dyn Runner,
    pub out: &'a mut dyn Write,
    pub user_exists: &'a dyn Fn(&str) -> bool,
}

/// A file to write.
pub struct FileSpec {
    pub path: PathBuf,
    pub content: Content,
    pub mode: u32,
    /// User data written only when missing (config, token): uninstall keeps it.
    pub keep: bool,
}

pub enum Content {
    Text(String),
    /// A fresh random gateway token.
    RandomToken,
}

/// What install does (and, read backwards, what uninstall undoes).
pub struct Plan {
    pub what: String,
    pub files: Vec<FileSpec>,
    pub links: Vec<(PathBuf, PathBuf)>,
    pub commands: Vec<Cmd>,
    pub undo: Vec<Cmd>,
    pub notes: Vec<String>,
}

impl Plan {
    pub fn new(what: String) -> Plan {
        Plan {
            what,
            files: Vec::new(),
            links: Vec::new(),
            commands: Vec::new(),
            undo: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn file(&mut self, path: PathBuf, text: String, mode: u32) {
        self.files.push(FileSpec {
            path,
            content: Content::Text(text),
            mode,
            keep: false,
        });
    }

    pub fn token(&mut self, path: PathBuf) {
        self.files.push(FileSpec {
            path,
            content: Content::RandomToken,
            mode: 0o600,
            keep: true,
        });
    }

    pub fn link(&mut self, link: PathBuf, target: PathBuf) {
        self.links.push((link, target));
    }
}

/// Paths under /home or /root are hidden from the system unit by `ProtectHome=yes`.
fn under_home(p: &Path) -> bool {
    p.starts_with("/home") || p.starts_with("/root") || p.starts_with("/run/user")
}

fn as_root(host: &Host, kind: &Kind) -> bool {
    match kind {
        Kind::User => false,
        Kind::System => true,
        Kind::Runit(_) => host.euid == 0,
    }
}

/// The parameters of the files for this request.
fn params(host: &Host, req: &Request) -> Result<Params, ServiceError> {
    let system = as_root(host, &req.kind);
    let location = paths::config_location(req.config.as_deref(), host.env).map_err(ServiceError::Usage)?;
    let config = if system && !location.explicit {
        PathBuf::from(units::SYSTEM_CONFIG)
    } else {
        location.path
    };
    let state_dir = if system {
        PathBuf::from(units::SYSTEM_STATE)
    } else {
        paths::state_dir(host.env).map_err(ServiceError::Refused)?
    };
    Ok(Params {
        exe: host.exe.clone(),
        config,
        state_dir,
        user: system.then(|| units::SYSTEM_USER.to_owned()),
    })
}

fn plan(host: &Host, req: &Request, params: &Params) -> Result<Plan, ServiceError> {
    let mut plan = match &req.kind {
        Kind::User => systemd::user_plan(host.env, params)?,
        Kind::System => systemd::system_plan(params),
        Kind::Runit(svdir) => {
            if !svdir.is_absolute() {
                return Err(ServiceError::Usage(format!(
                    "--runit {}: SVDIR must be an absolute path (e.g. /var/service or /etc/service)",
                    svdir.display()
                )));
            }
            let dir = runit::service_dir(host.env, host.euid == 0)?;
            runit::plan(svdir, &dir, params)
        }
    };
    // An explicit --config that does not exist stops the daemon with exit 78: give it an
    // all-defaults config instead, which the user then edits.
    let mode = if as_root(host, &req.kind) { 0o644 } else { 0o600 };
    plan.files.push(FileSpec {
        path: params.config.clone(),
        content: Content::Text("{}\n".into()),
        mode,
        keep: true,
    });
    // User data that already exists is never touched.
    plan.files.retain(|f| !f.keep || !host.root.at(&f.path).exists());
    Ok(plan)
}

fn random_token() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn out_err(e: io::Error) -> ServiceError {
    ServiceError::Failed(format!("cannot write the output: {e}"))
}

/// Print a plan instead of doing it.
fn print_plan(host: &mut Host, verb: &str, plan: &Plan) -> io::Result<()> {
    let out = &mut *host.out;
    writeln!(
        out,
        "dry run: `emonkd service {verb}` would do the following for the {}; nothing is changed.",
        plan.what
    )?;
    for f in &plan.files {
        let path = host.root.at(&f.path);
        let keep = if f.keep {
            ", only if missing; uninstall keeps it"
        } else {
            ""
        };
        writeln!(out, "\n==> write {} (mode {:04o}{keep})", path.display(), f.mode)?;
        match &f.content {
            Content::Text(t) => write!(out, "{t}")?,
            Content::RandomToken => writeln!(out, "<a new random 64-hex-digit token>")?,
        }
    }
    for (link, target) in &plan.links {
        writeln!(
            out,
            "\n==> link {} -> {}",
            host.root.at(link).display(),
            host.root.at(target).display()
        )?;
    }
    if !plan.commands.is_empty() {
        writeln!(out)?;
    }
    for c in &plan.commands {
        writeln!(out, "$ {c}")?;
    }
    Ok(())
}

/// Checks before anything is written: they fail for reasons the user has to fix.
fn preflight(host: &mut Host, req: &Request, params: &Params) -> Result<(), ServiceError> {
    match &req.kind {
        Kind::User => systemd::check_user_bus(host.env, host.runner),
        Kind::System => {
            if host.euid != 0 && !host.root.is_set() {
                return Err(ServiceError::Refused(
                    "a system service needs root: run `sudo emonkd service install --system` (or install a user unit without --system). Nothing was written.".into(),
                ));
            }
            Ok(())
        }
        Kind::Runit(svdir) => {
            let real = host.root.at(svdir);
            if !real.is_dir() {
                return Err(ServiceError::Refused(format!(
                    "--runit {}: no such directory; pass the directory runsvdir watches (often /var/service, /etc/service or /etc/runit/runsvdir/default). Nothing was written.",
                    svdir.display()
                )));
            }
            let link = host.root.at(&runit::link_path(svdir));
            if link.symlink_metadata().is_ok() && !link.read_link().is_ok_and(|t| t.ends_with("sv/emonkd")) {
                return Err(ServiceError::Refused(format!(
                    "{} already exists and is not an emonkd service link; remove it first. Nothing was written.",
                    link.display()
                )));
            }
            if let Some(user) = &params.user {
                if !(host.user_exists)(user) && !host.root.is_set() {
                    return Err(ServiceError::Refused(format!(
                        "the runit service runs as the user {user}, which does not exist; create it with `systemd-sysusers contrib/sysusers.d/emonkd.conf` or `useradd --system --home-dir {} --shell /usr/sbin/nologin {user}`. Nothing was written.",
                        units::SYSTEM_STATE
                    )));
                }
            }
            Ok(())
        }
    }
}

/// The system unit cannot start a binary or read a config under a home directory.
fn check_system_paths(req: &Request, params: &Params) -> Result<(), ServiceError> {
    if req.kind != Kind::System {
        return Ok(());
    }
    if under_home(&params.exe) {
        return Err(ServiceError::Refused(format!(
            "{} is under a home directory, which the system unit hides (ProtectHome=yes); install the binary first, e.g. `sudo install -m 0755 {} /usr/local/bin/emonkd`, then run `sudo /usr/local/bin/emonkd service install --system`. Nothing was written.",
            params.exe.display(),
            params.exe.display()
        )));
    }
    if under_home(&params.config) {
        return Err(ServiceError::Refused(format!(
            "the config {} is under a home directory, which the system unit hides (ProtectHome=yes); use /etc/emonk/emonk.json (the default for --system). Nothing was written.",
            params.config.display()
        )));
    }
    Ok(())
}

/// `service install`.
pub fn install(host: &mut Host, req: &Request) -> Result<(), ServiceError> {
    let params = params(host, req)?;
    check_system_paths(req, &params)?;
    let plan = plan(host, req, &params)?;
    if req.dry_run {
        return print_plan(host, "install", &plan).map_err(out_err);
    }
    preflight(host, req, &params)?;
    let mut tx = Transaction::new();
    let mut written = Vec::new();
    let step = |e: io::Error, what: &Path| {
        ServiceError::Failed(format!(
            "cannot write {}: {e}; nothing was left behind",
            what.display()
        ))
    };
    for f in &plan.files {
        let path = host.root.at(&f.path);
        let text = match &f.content {
            Content::Text(t) => t.clone(),
            Content::RandomToken => random_token().map_err(|e| step(e, &path))? + "\n",
        };
        tx.write(&path, text.as_bytes(), f.mode)
            .map_err(|e| step(e, &path))?;
        written.push(path);
    }
    for (link, target) in &plan.links {
        let real = host.root.at(link);
        tx.link(&real, &host.root.at(target))
            .map_err(|e| step(e, &real))?;
        written.push(real);
    }
    for cmd in &plan.commands {
        let failure = match host.runner.run(cmd) {
            Ok(o) if o.success => None,
            Ok(o) => Some(systemd::failed_step(cmd, &o)),
            Err(e) => Some(format!("`{cmd}`: {e}")),
        };
        if let Some(msg) = failure {
            for undo in &plan.undo {
                let _ = host.runner.run(undo);
            }
            let left = tx.rollback();
            let cleanup = if left.is_empty() {
                "every file it wrote was removed again".to_owned()
            } else {
                format!("could not undo: {}", left.join("; "))
            };
            // The advice text ends with "Nothing was written."; here files were written
            // and removed again, so say that instead.
            let msg = msg.trim_end_matches("Nothing was written.").trim_end().to_owned();
            return Err(ServiceError::Failed(format!("install failed: {msg}\n{cleanup}")));
        }
    }
    tx.commit();
    let out = &mut *host.out;
    (|| -> io::Result<()> {
        writeln!(out, "installed the {}:", plan.what)?;
        for p in &written {
            writeln!(out, "  wrote {}", p.display())?;
        }
        for c in &plan.commands {
            writeln!(out, "  ran   {c}")?;
        }
        for n in &plan.notes {
            writeln!(out, "note: {n}")?;
        }
        writeln!(out, "check it with: emonkd service status{}", flags(req))
    })()
    .map_err(out_err)
}

fn flags(req: &Request) -> String {
    let mut s = match &req.kind {
        Kind::User => String::new(),
        Kind::System => " --system".into(),
        Kind::Runit(d) => format!(" --runit {}", d.display()),
    };
    if let Some(c) = &req.config {
        s.push_str(&format!(" --config {}", c.display()));
    }
    s
}

/// `service uninstall`: stop, disable, remove exactly the files install writes, reload.
/// The config, the token and the state directory are the user's data and stay.
pub fn uninstall(host: &mut Host, req: &Request) -> Result<(), ServiceError> {
    let params = params(host, req)?;
    let plan = plan(host, req, &params)?;
    let files: Vec<PathBuf> = plan
        .files
        .iter()
        .filter(|f| !f.keep)
        .map(|f| f.path.clone())
        .collect();
    let links: Vec<PathBuf> = plan.links.iter().map(|(l, _)| l.clone()).collect();
    let (before, after) = match &req.kind {
        Kind::User => systemd::uninstall_commands(true),
        Kind::System => systemd::uninstall_commands(false),
        Kind::Runit(svdir) => (runit::uninstall_commands(svdir), Vec::new()),
    };
    let service_dir = match &req.kind {
        Kind::Runit(_) => Some(runit::service_dir(host.env, host.euid == 0)?),
        _ => None,
    };
    let kept = kept_paths(req, &params);
    if req.dry_run {
        let out = &mut *host.out;
        return (|| -> io::Result<()> {
            writeln!(
                out,
                "dry run: `emonkd service uninstall` would do the following for the {}; nothing is changed.",
                plan.what
            )?;
            for c in &before {
                writeln!(out, "$ {c}")?;
            }
            for p in links.iter().chain(&files) {
                writeln!(out, "remove {}", host.root.at(p).display())?;
            }
            if let Some(dir) = &service_dir {
                for d in runit::runtime_dirs(dir) {
                    writeln!(
                        out,
                        "remove {} (runsv's run-time state)",
                        host.root.at(&d).display()
                    )?;
                }
            }
            for c in &after {
                writeln!(out, "$ {c}")?;
            }
            for k in &kept {
                writeln!(out, "keep   {k}")?;
            }
            Ok(())
        })()
        .map_err(out_err);
    }
    let installed = links
        .iter()
        .chain(&files)
        .any(|p| host.root.at(p).symlink_metadata().is_ok());
    if !installed {
        writeln!(host.out, "the {} is not installed; nothing to remove", plan.what).map_err(out_err)?;
        return Ok(());
    }
    match &req.kind {
        Kind::User => systemd::check_user_bus(host.env, host.runner)?,
        Kind::System if host.euid != 0 && !host.root.is_set() => {
            return Err(ServiceError::Refused(
                "removing the system service needs root: run `sudo emonkd service uninstall --system`. Nothing was changed.".into(),
            ));
        }
        _ => {}
    }
    let mut report = Vec::new();
    for c in &before {
        match host.runner.run(c) {
            Ok(o) if o.success => report.push(format!("  ran     {c}")),
            Ok(o) => report.push(format!("  warning {c}: {}", systemd::first_line(&o.stderr))),
            Err(e) => report.push(format!("  warning {c}: {e}")),
        }
    }
    let mut failed = Vec::new();
    for p in links.iter().chain(&files) {
        let real = host.root.at(p);
        match fsops::remove(&real) {
            Ok(true) => report.push(format!("  removed {}", real.display())),
            Ok(false) => {}
            Err(e) => failed.push(format!("{}: {e}", real.display())),
        }
    }
    if let Some(dir) = &service_dir {
        let dir = host.root.at(dir);
        for d in runit::runtime_dirs(&dir) {
            let _ = std::fs::remove_dir_all(d);
        }
        fsops::remove_dir_if_empty(&dir.join("log"));
        if !fsops::remove_dir_if_empty(&dir) && dir.exists() {
            report.push(format!(
                "  kept    {} (not empty: it holds the logs in log/main)",
                dir.display()
            ));
        }
    }
    for c in &after {
        if let Ok(o) = host.runner.run(c) {
            if o.success {
                report.push(format!("  ran     {c}"));
            }
        }
    }
    let out = &mut *host.out;
    writeln!(out, "uninstalled the {}:", plan.what).map_err(out_err)?;
    for line in report {
        writeln!(out, "{line}").map_err(out_err)?;
    }
    for k in kept {
        writeln!(out, "  kept    {k}").map_err(out_err)?;
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::Failed(format!(
            "could not remove: {}",
            failed.join("; ")
        )))
    }
}

fn kept_paths(req: &Request, params: &Params) -> Vec<String> {
    let mut kept = vec![format!("{} (config)", params.config.display())];
    if req.kind == Kind::System {
        kept.push(format!("{} (gateway token)", units::SYSTEM_TOKEN));
        kept.push(format!("{} (state)", units::SYSTEM_STATE));
    } else {
        kept.push(format!("{} (state)", params.state_dir.display()));
    }
    kept
}

/// What the live probe found, as lines to print, and whether a gateway runs.
pub struct GatewayView {
    pub running: bool,
    pub lines: Vec<String>,
}

/// `service status`: the supervisor's view and a live probe of the gateway, side by side.
/// Returns whether the gateway runs (exit 0) or not (exit 3).
pub fn status(
    host: &mut Host,
    req: &Request,
    probe: &dyn Fn(&Path, &Path) -> GatewayView,
) -> Result<bool, ServiceError> {
    let params = params(host, req)?;
    let plan = plan(host, req, &params)?;
    let commands = match &req.kind {
        Kind::User => systemd::status_commands(true),
        Kind::System => systemd::status_commands(false),
        Kind::Runit(svdir) => runit::status_commands(svdir),
    };
    let state_dir = params.state_dir.clone();
    if req.dry_run {
        let out = &mut *host.out;
        return (|| -> io::Result<bool> {
            writeln!(
                out,
                "dry run: `emonkd service status` would run these and probe the gateway of {} (state {}):",
                params.config.display(),
                state_dir.display()
            )?;
            for c in &commands {
                writeln!(out, "$ {c}")?;
            }
            Ok(true)
        })()
        .map_err(out_err);
    }
    let mut lines = vec![format!("supervisor: {}", plan.what)];
    for f in plan.files.iter().filter(|f| !f.keep) {
        let real = host.root.at(&f.path);
        let state = if real.exists() { "present" } else { "missing" };
        lines.push(format!("  {}: {state}", real.display()));
    }
    for (link, _) in &plan.links {
        let real = host.root.at(link);
        let state = if real.symlink_metadata().is_ok() {
            "present"
        } else {
            "missing"
        };
        lines.push(format!("  {}: {state}", real.display()));
    }
    for c in &commands {
        let answer = match host.runner.run(c) {
            Ok(o) => {
                let text = if o.stdout.trim().is_empty() {
                    &o.stderr
                } else {
                    &o.stdout
                };
                systemd::first_line(text)
            }
            Err(e) => e.to_string(),
        };
        lines.push(format!("  {c}: {answer}"));
    }
    let view = probe(&state_dir, &params.config);
    lines.push(format!("gateway (config {}):", params.config.display()));
    lines.extend(view.lines.iter().map(|l| format!("  {l}")));
    for l in lines {
        writeln!(host.out, "{l}").map_err(out_err)?;
    }
    Ok(view.running)
}

#[cfg(test)]
mod tests;
