//! `emonkd service install | uninstall | status`: run emonkd under systemd (a user unit by
//! default, a system unit with `--system`) or runit (`--runit SVDIR`).
//!
//! Every command first builds a [`Plan`]: the files to write (text from [`units`], the same
//! text as `contrib/`), links, and commands. Then the checks that can fail for reasons
//! outside our control ([`checks`]: no user bus, no root, a missing user or SVDIR, a binary
//! the unit cannot see) run, for `--dry-run` too, which prints the plan and reports them.
//! A real install writes nothing when one fails; otherwise the writes go through a
//! [`fsops::Transaction`] that is rolled back if a later command fails, so a failed install
//! leaves nothing behind. Install also writes an install record ([`manifest`]): each file,
//! link and directory it created, with a hash of each file's content. Uninstall removes
//! exactly those whose content is still what install wrote, keeps (and names) what the user
//! changed or made, and never touches a file that existed before install. The command
//! runner is injected ([`runner::Runner`]) and every absolute path can be prefixed
//! (`$EMONK_SERVICE_ROOT`), so tests never touch the system.

pub mod checks;
pub mod error;
pub mod fsops;
pub mod manifest;
pub mod runit;
pub mod runner;
pub mod systemd;
pub mod units;

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::paths::{self, Env};
pub use error::ServiceError;
use fsops::{DirModes, Root, Transaction};
use manifest::{FileEntry, Manifest};
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
    /// User data written only when missing (config, token); one that exists is never
    /// touched.
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
    /// The mode of every folder install creates, unless listed in `dir_modes`. Set
    /// explicitly, never left to the umask (under `umask 000` folders would be 0777).
    pub dir_mode: u32,
    /// Folders (logical paths) that get another mode than `dir_mode`.
    pub dir_modes: Vec<(PathBuf, u32)>,
}

/// Folders of a system install (root): 0755, like every folder in `/etc` that services and
/// admins read (`/etc/systemd/system`, `/etc/sysusers.d`, `/etc/sv/emonkd`); secrets in them
/// are protected by their own file mode (0600).
pub const SYSTEM_DIR_MODE: u32 = 0o755;
/// Folders of a user install (under the user's home: `~/.config/systemd/user`,
/// `~/.config/emonk`, `~/.local/share/emonk/sv`): 0700, as the XDG base directory spec asks
/// for folders it creates; they hold the user's config and token.
pub const USER_DIR_MODE: u32 = 0o700;

impl Plan {
    pub fn new(what: String, dir_mode: u32) -> Plan {
        Plan {
            what,
            files: Vec::new(),
            links: Vec::new(),
            commands: Vec::new(),
            undo: Vec::new(),
            notes: Vec::new(),
            dir_mode,
            dir_modes: Vec::new(),
        }
    }

    /// The folder modes with real paths (under `$EMONK_SERVICE_ROOT`).
    fn modes(&self, root: &Root) -> DirModes {
        self.dir_modes
            .iter()
            .fold(DirModes::new(self.dir_mode), |m, (p, mode)| {
                m.with(root.at(p), *mode)
            })
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
    Ok(plan)
}

fn random_token() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn out_err(e: io::Error) -> ServiceError {
    ServiceError::Failed(format!("could not write output: {e}"))
}

/// The plan's files install writes: user data that already exists is never touched.
fn files_to_write<'p>(host: &Host, plan: &'p Plan) -> Vec<&'p FileSpec> {
    plan.files
        .iter()
        .filter(|f| !f.keep || host.root.at(&f.path).symlink_metadata().is_err())
        .collect()
}

/// Print a plan instead of doing it.
fn print_plan(host: &mut Host, plan: &Plan, files: &[&FileSpec], record: &Path) -> io::Result<()> {
    let out = &mut *host.out;
    writeln!(
        out,
        "dry run: `emonkd service install` would do the following for the {}; nothing is changed.",
        plan.what
    )?;
    for f in files {
        let path = host.root.at(&f.path);
        let keep = if f.keep { ", only if missing" } else { "" };
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
    writeln!(
        out,
        "\n==> write {} (mode 0600): the install record, listing each file, link and directory above that did not exist yet, with a hash of each file's content, for `emonkd service uninstall`",
        host.root.at(record).display()
    )?;
    if !plan.commands.is_empty() {
        writeln!(out)?;
    }
    for c in &plan.commands {
        writeln!(out, "$ {c}")?;
    }
    Ok(())
}

/// The install record of this request, read from under the root.
fn load_record(host: &Host, record: &Path) -> Result<Option<Manifest>, ServiceError> {
    Manifest::load(&host.root.at(record))
        .map_err(|e| ServiceError::Refused(format!("{e}. Nothing was changed.")))
}

/// `service install`.
pub fn install(host: &mut Host, req: &Request) -> Result<(), ServiceError> {
    let params = params(host, req)?;
    let plan = plan(host, req, &params)?;
    let record = manifest::path(&req.kind, host.env, host.euid)?;
    let files = files_to_write(host, &plan);
    let findings = checks::run(host, req, &params);
    if req.dry_run {
        print_plan(host, &plan, &files, &record).map_err(out_err)?;
        print_warnings(host, &findings).map_err(out_err)?;
        if findings.refusals.is_empty() {
            return Ok(());
        }
        return Err(ServiceError::Refused(format!(
            "the real install would refuse:\n{}",
            bullets(&findings.refusals)
        )));
    }
    if !findings.refusals.is_empty() {
        return Err(ServiceError::Refused(format!(
            "{}\nNothing was written.",
            bullets(&findings.refusals)
        )));
    }
    // A reinstall keeps what an earlier install created (and still exists) on the record.
    let mut previous = load_record(host, &record)?.unwrap_or_default();
    previous.retain_existing(&host.root);
    let mut manifest = Manifest {
        files: previous.files,
        links: previous.links,
        dirs: previous.dirs,
        ..Manifest::new(&plan.what)
    };
    let new_paths = files
        .iter()
        .map(|f| f.path.as_path())
        .chain(plan.links.iter().map(|(l, _)| l.as_path()))
        .chain([record.as_path()]);
    manifest.add_dirs(manifest::missing_dirs(&host.root, new_paths));
    let mut tx = Transaction::new(plan.modes(&host.root));
    let mut written = Vec::new();
    let step = |e: io::Error, what: &Path| {
        ServiceError::Failed(format!(
            "cannot write {}: {e}; nothing was left behind",
            what.display()
        ))
    };
    for f in &files {
        let path = host.root.at(&f.path);
        let existed = path.symlink_metadata().is_ok();
        let text = match &f.content {
            Content::Text(t) => t.clone(),
            Content::RandomToken => random_token().map_err(|e| step(e, &path))? + "\n",
        };
        tx.write(&path, text.as_bytes(), f.mode)
            .map_err(|e| step(e, &path))?;
        if !existed || manifest.files.contains_key(&f.path) {
            manifest
                .files
                .insert(f.path.clone(), FileEntry::of(text.as_bytes()));
            written.push(format!("  wrote {}", path.display()));
        } else {
            written.push(format!(
                "  wrote {} (replacing a file install did not create, so uninstall keeps it)",
                path.display()
            ));
        }
    }
    for (link, target) in &plan.links {
        let real = host.root.at(link);
        let existed = real.symlink_metadata().is_ok();
        tx.link(&real, &host.root.at(target))
            .map_err(|e| step(e, &real))?;
        if !existed || manifest.links.contains_key(link) {
            manifest.links.insert(link.clone(), target.clone());
        }
        written.push(format!("  wrote {}", real.display()));
    }
    let real_record = host.root.at(&record);
    let json = manifest.to_json().map_err(|e| step(e, &real_record))?;
    tx.write(&real_record, json.as_bytes(), 0o600)
        .map_err(|e| step(e, &real_record))?;
    written.push(format!(
        "  wrote {} (the install record uninstall reads)",
        real_record.display()
    ));
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
            return Err(ServiceError::Failed(format!("install failed: {msg}\n{cleanup}")));
        }
    }
    tx.commit();
    let out = &mut *host.out;
    (|| -> io::Result<()> {
        writeln!(out, "installed the {}:", plan.what)?;
        for line in &written {
            writeln!(out, "{line}")?;
        }
        for c in &plan.commands {
            writeln!(out, "  ran   {c}")?;
        }
        for n in &plan.notes {
            writeln!(out, "note: {n}")?;
        }
        writeln!(out, "check it with: emonkd service status{}", flags(req))
    })()
    .map_err(out_err)?;
    print_warnings(host, &findings).map_err(out_err)
}

/// Each finding on its own line; one alone as it is.
fn bullets(items: &[String]) -> String {
    match items {
        [one] => one.clone(),
        _ => items
            .iter()
            .map(|i| format!("  - {i}"))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn print_warnings(host: &mut Host, findings: &checks::Findings) -> io::Result<()> {
    for w in &findings.warnings {
        writeln!(host.out, "warning: {w}")?;
    }
    Ok(())
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

/// What uninstall removes and keeps, decided from the install record before anything
/// changes, so `--dry-run` shows exactly what a real run does. Real paths (under the root).
#[derive(Default)]
struct Removal {
    links: Vec<PathBuf>,
    files: Vec<PathBuf>,
    /// runsv's run-time state inside the runit service dir.
    runtime: Vec<PathBuf>,
    record: PathBuf,
    /// Directories install created that are empty once the above are gone, deepest first.
    dirs: Vec<PathBuf>,
    /// What stays, and why.
    kept: Vec<(PathBuf, String)>,
}

fn removal(
    host: &Host,
    req: &Request,
    params: &Params,
    plan: &Plan,
    record: &Path,
    m: &Manifest,
) -> Result<Removal, ServiceError> {
    let root = &host.root;
    let mut r = Removal {
        record: root.at(record),
        ..Removal::default()
    };
    for (link, target) in &m.links {
        let real = root.at(link);
        let target = root.at(target);
        match std::fs::read_link(&real) {
            Ok(t) if t == target => r.links.push(real),
            Ok(t) => r.kept.push((real, format!("now points to {}", t.display()))),
            Err(_) if real.symlink_metadata().is_ok() => {
                r.kept.push((real, "no longer the link install made".into()));
            }
            Err(_) => {}
        }
    }
    for (path, entry) in &m.files {
        let real = root.at(path);
        match real.symlink_metadata() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => r.kept.push((real, format!("cannot inspect it: {e}"))),
            Ok(md) if !md.is_file() => r.kept.push((real, "no longer a regular file".into())),
            Ok(_) => match std::fs::read(&real) {
                Ok(bytes) if entry.matches(&bytes) => r.files.push(real),
                Ok(_) => r.kept.push((real, "changed since install".into())),
                Err(e) => r.kept.push((real, format!("cannot read it: {e}"))),
            },
        }
    }
    // What install writes but did not create: it was there before.
    let others = plan
        .files
        .iter()
        .map(|f| &f.path)
        .filter(|p| !m.files.contains_key(*p))
        .chain(
            plan.links
                .iter()
                .map(|(l, _)| l)
                .filter(|l| !m.links.contains_key(*l)),
        );
    for p in others {
        let real = root.at(p);
        if real.symlink_metadata().is_ok() {
            r.kept.push((real, "not created by install".into()));
        }
    }
    if let Kind::Runit(_) = &req.kind {
        let dir = root.at(&runit::service_dir(host.env, host.euid == 0)?);
        r.runtime = runit::runtime_dirs(&dir)
            .into_iter()
            .filter(|d| d.symlink_metadata().is_ok())
            .collect();
    }
    let state = root.at(&params.state_dir);
    if state.exists() {
        r.kept.push((state, "the state directory, never removed".into()));
    }
    // A directory goes when everything in it goes; one kept only because of something
    // already named is not named again.
    let mut gone: HashSet<PathBuf> = r
        .links
        .iter()
        .chain(&r.files)
        .chain(&r.runtime)
        .chain([&r.record])
        .cloned()
        .collect();
    let mut covered: HashSet<PathBuf> = r.kept.iter().map(|(p, _)| p.clone()).collect();
    let mut dirs: Vec<PathBuf> = m.dirs.iter().map(|d| root.at(d)).collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let left: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| !gone.contains(p))
            .collect();
        if left.is_empty() {
            gone.insert(dir.clone());
            r.dirs.push(dir);
            continue;
        }
        let mut news: Vec<String> = left
            .iter()
            .filter(|p| !covered.contains(*p))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        if !news.is_empty() {
            news.sort();
            r.kept.push((
                dir.clone(),
                format!(
                    "created by install, but it holds {}, which install did not write",
                    news.join(", ")
                ),
            ));
        }
        covered.insert(dir);
    }
    Ok(r)
}

/// `service uninstall`: stop and disable the service, then remove exactly what install
/// created (its record lists it), except what the user has changed since; reload.
pub fn uninstall(host: &mut Host, req: &Request) -> Result<(), ServiceError> {
    let params = params(host, req)?;
    let plan = plan(host, req, &params)?;
    let record = manifest::path(&req.kind, host.env, host.euid)?;
    if !req.dry_run && req.kind == Kind::System && host.euid != 0 && !host.root.is_set() {
        return Err(ServiceError::Refused(
            "removing the system service needs root: run `sudo emonkd service uninstall --system`. Nothing was changed.".into(),
        ));
    }
    let Some(m) = load_record(host, &record)? else {
        return not_installed(host, req, &plan, &record);
    };
    let (before, after) = match &req.kind {
        Kind::User => systemd::uninstall_commands(true),
        Kind::System => systemd::uninstall_commands(false),
        Kind::Runit(svdir) => (runit::uninstall_commands(svdir), Vec::new()),
    };
    let r = removal(host, req, &params, &plan, &record, &m)?;
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
            for p in r.links.iter().chain(&r.files) {
                writeln!(out, "remove {}", p.display())?;
            }
            for d in &r.runtime {
                writeln!(out, "remove {} (runsv's run-time state)", d.display())?;
            }
            writeln!(out, "remove {} (the install record)", r.record.display())?;
            for d in &r.dirs {
                writeln!(out, "remove {}/ (created by install, empty then)", d.display())?;
            }
            for c in &after {
                writeln!(out, "$ {c}")?;
            }
            for (p, why) in &r.kept {
                writeln!(out, "keep   {} ({why})", p.display())?;
            }
            Ok(())
        })()
        .map_err(out_err);
    }
    if req.kind == Kind::User {
        systemd::check_user_bus(host.env, host.runner)
            .map_err(|e| ServiceError::Refused(format!("{e}\nNothing was changed.")))?;
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
    for p in r.links.iter().chain(&r.files) {
        match fsops::remove(p) {
            Ok(true) => report.push(format!("  removed {}", p.display())),
            Ok(false) => {}
            Err(e) => failed.push(format!("{}: {e}", p.display())),
        }
    }
    for d in &r.runtime {
        match std::fs::remove_dir_all(d) {
            Ok(()) => report.push(format!("  removed {} (runsv's run-time state)", d.display())),
            Err(e) => failed.push(format!("{}: {e}", d.display())),
        }
    }
    let mut kept = r.kept;
    if failed.is_empty() {
        // Only once everything it lists is gone: a retry then finishes the job.
        match fsops::remove(&r.record) {
            Ok(_) => report.push(format!("  removed {} (the install record)", r.record.display())),
            Err(e) => failed.push(format!("{}: {e}", r.record.display())),
        }
    } else {
        kept.push((
            r.record.clone(),
            "for a retry, since not everything could be removed".into(),
        ));
    }
    for d in &r.dirs {
        match std::fs::remove_dir(d) {
            Ok(()) => report.push(format!("  removed {}/", d.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => kept.push((d.clone(), format!("cannot remove it: {e}"))),
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
    for (p, why) in kept {
        writeln!(out, "  kept    {} ({why})", p.display()).map_err(out_err)?;
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

/// Uninstall without an install record: nothing is known to be ours, so nothing is touched.
fn not_installed(host: &mut Host, req: &Request, plan: &Plan, record: &Path) -> Result<(), ServiceError> {
    let found: Vec<PathBuf> = plan
        .files
        .iter()
        .filter(|f| !f.keep)
        .map(|f| &f.path)
        .chain(plan.links.iter().map(|(l, _)| l))
        .map(|p| host.root.at(p))
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    let out = &mut *host.out;
    let dry = if req.dry_run { "dry run: " } else { "" };
    (|| -> io::Result<()> {
        writeln!(
            out,
            "{dry}the {} is not installed (no install record {}); nothing to remove",
            plan.what,
            host.root.at(record).display()
        )?;
        for p in found {
            writeln!(
                out,
                "  left alone {} (`emonkd service install` did not record writing it)",
                p.display()
            )?;
        }
        Ok(())
    })()
    .map_err(out_err)
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
