//! `emonkd service install | uninstall | status`: the command line around [`crate::service`],
//! which does the work with the real system injected here (environment, euid, the running
//! binary's path, `$EMONK_SERVICE_ROOT`, a runner that executes commands) and the live
//! gateway probe `status` shows next to the supervisor's view.

use std::path::{Path, PathBuf};

use super::args::{ServiceAction, ServiceArgs, ServiceFlags};
use super::target::url_of;
use crate::error::Error;
use crate::lock::{self, Owner};
use crate::service::fsops::{ROOT_ENV, Root};
use crate::service::runner::SystemRunner;
use crate::service::{self, GatewayView, Host, Kind, Request, ServiceError};
use crate::{exit, paths};

fn request(flags: &dyn ServiceFlags) -> Result<Request, Error> {
    let kind = match (flags.system(), flags.runit()) {
        (true, Some(_)) => {
            return Err(Error::Usage(
                "--system and --runit exclude each other: pick systemd (--system) or runit (--runit SVDIR)"
                    .into(),
            ));
        }
        (true, None) => Kind::System,
        (false, Some(dir)) => Kind::Runit(dir.clone()),
        (false, None) => Kind::User,
    };
    Ok(Request {
        kind,
        dry_run: flags.dry_run(),
        config: flags.config().cloned(),
    })
}

fn user_exists(name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: a valid C string; only the null-ness of the static result is inspected.
    unsafe { !libc::getpwnam(c.as_ptr()).is_null() }
}

pub fn run(args: ServiceArgs) -> Result<u8, Error> {
    let env = paths::process_env;
    let exe = std::env::current_exe()
        .map_err(|e| Error::failure(format!("cannot find the path of this emonkd binary: {e}")))?;
    let mut runner = SystemRunner;
    let mut stdout = super::out::Stdout;
    let root = Root::new(env(ROOT_ENV).map(PathBuf::from));
    // Under a staging root (a package build) the service user belongs to the target
    // system, not to this one.
    let staging = root.is_set();
    let user_exists = |name: &str| staging || user_exists(name);
    let mut host = Host {
        env: &env,
        exe,
        // SAFETY: geteuid has no preconditions.
        euid: unsafe { libc::geteuid() },
        root,
        runner: &mut runner,
        out: &mut stdout,
        user_exists: &user_exists,
    };
    let result: Result<u8, ServiceError> = match args.action {
        ServiceAction::Install(a) => service::install(&mut host, &request(&a)?).map(|()| exit::OK),
        ServiceAction::Uninstall(a) => service::uninstall(&mut host, &request(&a)?).map(|()| exit::OK),
        ServiceAction::Status(a) => {
            let req = request(&a)?;
            let probe = |state: &Path, config: &Path| probe(state, config, req.config.as_deref());
            service::status(&mut host, &req, &probe)
                .map(|running| if running { exit::OK } else { exit::NOT_RUNNING })
        }
    };
    Ok(result?)
}

/// The live half of `service status`: the lock in the service's state dir, then
/// `gateway.status` over the API, authenticated like `emonkd status`.
fn probe(state_dir: &Path, config: &Path, config_flag: Option<&Path>) -> GatewayView {
    let lock_path = lock::lock_path(state_dir, config);
    let not = |line: String| GatewayView {
        running: false,
        lines: vec![line],
    };
    let payload = match lock::probe_owner(&lock_path) {
        Ok(Owner::Running(p)) => p,
        Ok(Owner::RunningUnknownPayload) => {
            return GatewayView {
                running: true,
                lines: vec!["starting (lock held, address not yet published)".into()],
            };
        }
        Ok(Owner::NotRunning) => return not(format!("not running (lock {})", lock_path.display())),
        Err(e) => {
            return not(format!(
                "unknown: cannot read the lock {}: {e}",
                lock_path.display()
            ));
        }
    };
    let url = url_of(&payload);
    let mut lines = vec![format!("running: pid {}, {url}", payload.pid)];
    // The system unit's token is a credential, not in the config: read its source when we
    // may (as root), so the probe authenticates like the clients the admin configured.
    let token = std::fs::read_to_string(crate::service::units::SYSTEM_TOKEN)
        .ok()
        .filter(|_| state_dir == Path::new(crate::service::units::SYSTEM_STATE))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    match super::status::probe(config_flag.or(Some(config)), &url, token) {
        Ok(s) => lines.push(format!(
            "probe ok: version {}, uptime {}s, {} clients",
            s["version"].as_str().unwrap_or("?"),
            s["uptimeMs"].as_u64().unwrap_or(0) / 1000,
            s["clients"]["total"]
        )),
        Err(e) => lines.push(e.to_string()),
    }
    GatewayView { running: true, lines }
}
