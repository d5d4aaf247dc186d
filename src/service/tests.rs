//! The service commands against a temp root and a scripted runner.

use std::collections::HashMap;
use std::fs;

use super::runner::{FakeRunner, Outcome};
use super::*;

struct World {
    root: tempfile::TempDir,
    vars: HashMap<String, String>,
    runner: FakeRunner,
    out: Vec<u8>,
    euid: u32,
}

impl World {
    fn new() -> World {
        let root = tempfile::tempdir().unwrap();
        let mut vars = HashMap::new();
        vars.insert("HOME".to_owned(), "/home/u".to_owned());
        vars.insert("XDG_RUNTIME_DIR".to_owned(), "/run/user/1000".to_owned());
        World {
            root,
            vars,
            runner: FakeRunner::default(),
            out: Vec::new(),
            euid: 1000,
        }
    }

    fn with<T>(&mut self, f: impl FnOnce(&mut Host) -> T) -> T {
        let vars = self.vars.clone();
        let env = move |k: &str| vars.get(k).cloned();
        let mut host = Host {
            env: &env,
            exe: PathBuf::from("/usr/local/bin/emonkd"),
            euid: self.euid,
            root: Root::new(Some(self.root.path().to_owned())),
            runner: &mut self.runner,
            out: &mut self.out,
            user_exists: &|_| true,
        };
        f(&mut host)
    }

    fn at(&self, p: &str) -> PathBuf {
        Root::new(Some(self.root.path().to_owned())).at(Path::new(p))
    }

    fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.path().to_owned()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() && !p.is_symlink() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(self.root.path()).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }
}

fn req(kind: Kind) -> Request {
    Request {
        kind,
        dry_run: false,
        config: None,
    }
}

fn fail(stderr: &str) -> Outcome {
    Outcome {
        success: false,
        stdout: String::new(),
        stderr: stderr.to_owned(),
    }
}

#[test]
fn user_install_writes_the_unit_and_runs_reload_enable_start_then_uninstall_undoes_it() {
    let mut w = World::new();
    w.with(|h| install(h, &req(Kind::User))).unwrap();
    let unit = w.at("/home/u/.config/systemd/user/emonkd.service");
    let text = fs::read_to_string(&unit).unwrap();
    assert!(text.contains("ExecStart=/usr/local/bin/emonkd run --config /home/u/.config/emonk/emonk.json\n"));
    assert_eq!(
        w.runner.ran,
        [
            "systemctl --user show-environment",
            "systemctl --user daemon-reload",
            "systemctl --user enable emonkd.service",
            "systemctl --user start emonkd.service"
        ]
    );
    // A missing config gets an all-defaults one, so the explicit --config does not fail.
    assert_eq!(
        fs::read_to_string(w.at("/home/u/.config/emonk/emonk.json")).unwrap(),
        "{}\n"
    );
    w.runner.ran.clear();
    w.with(|h| uninstall(h, &req(Kind::User))).unwrap();
    assert!(!unit.exists());
    assert_eq!(
        w.runner.ran,
        [
            "systemctl --user show-environment",
            "systemctl --user stop emonkd.service",
            "systemctl --user disable emonkd.service",
            "systemctl --user daemon-reload"
        ]
    );
    // The user's config stays.
    assert_eq!(w.files(), ["home/u/.config/emonk/emonk.json"]);
    assert!(
        w.output()
            .contains("kept    /home/u/.config/emonk/emonk.json (config)"),
        "{}",
        w.output()
    );
}

#[test]
fn no_user_bus_in_the_environment_refuses_before_writing() {
    let mut w = World::new();
    w.vars.remove("XDG_RUNTIME_DIR");
    let e = w.with(|h| install(h, &req(Kind::User))).unwrap_err().to_string();
    assert!(
        e.contains("loginctl enable-linger") && e.contains("--system"),
        "{e}"
    );
    assert!(e.contains("Nothing was written"), "{e}");
    assert!(w.files().is_empty(), "{:?}", w.files());
    assert!(w.runner.ran.is_empty());
}

#[test]
fn an_unreachable_bus_refuses_before_writing() {
    let mut w = World::new();
    w.runner.rules.push((
        "show-environment",
        fail("Failed to connect to bus: No medium found"),
    ));
    let e = w.with(|h| install(h, &req(Kind::User))).unwrap_err().to_string();
    assert!(
        e.contains("Failed to connect to bus") && e.contains("loginctl enable-linger"),
        "{e}"
    );
    assert!(w.files().is_empty(), "{:?}", w.files());
}

#[test]
fn a_failing_step_rolls_everything_back() {
    let mut w = World::new();
    w.runner.rules.push((
        "start",
        fail("Job for emonkd.service failed because the control process exited"),
    ));
    let e = w.with(|h| install(h, &req(Kind::User))).unwrap_err().to_string();
    assert!(e.contains("install failed") && e.contains("removed again"), "{e}");
    assert!(w.files().is_empty(), "{:?}", w.files());
    assert!(
        w.runner
            .ran
            .contains(&"systemctl --user disable emonkd.service".to_owned())
    );
}

#[test]
fn dry_run_prints_files_and_commands_and_touches_nothing() {
    let mut w = World::new();
    let mut r = req(Kind::System);
    r.dry_run = true;
    w.with(|h| install(h, &r)).unwrap();
    let out = w.output();
    assert!(w.files().is_empty());
    assert!(w.runner.ran.is_empty());
    for needle in [
        "/etc/systemd/system/emonkd.service (mode 0644)",
        "/etc/sysusers.d/emonkd.conf",
        "/etc/tmpfiles.d/emonkd.conf",
        "/etc/emonk/gateway.token (mode 0600, only if missing",
        "/etc/emonk/emonk.json (mode 0644, only if missing",
        "ExecStart=/usr/local/bin/emonkd run --config /etc/emonk/emonk.json",
        "$ systemd-sysusers /etc/sysusers.d/emonkd.conf",
        "$ systemctl daemon-reload\n$ systemctl enable emonkd.service\n$ systemctl start emonkd.service",
    ] {
        assert!(out.contains(needle), "{needle} not in:\n{out}");
    }
}

#[test]
fn system_install_refuses_a_binary_under_home() {
    let mut w = World::new();
    w.euid = 0;
    let vars = w.vars.clone();
    let env = move |k: &str| vars.get(k).cloned();
    let mut out = Vec::new();
    let mut host = Host {
        env: &env,
        exe: PathBuf::from("/root/.cargo/bin/emonkd"),
        euid: 0,
        root: Root::new(Some(w.root.path().to_owned())),
        runner: &mut w.runner,
        out: &mut out,
        user_exists: &|_| true,
    };
    let e = install(&mut host, &req(Kind::System)).unwrap_err().to_string();
    assert!(e.contains("install -m 0755") && e.contains("ProtectHome"), "{e}");
    assert!(w.files().is_empty());
}

#[test]
fn system_install_writes_unit_sysusers_tmpfiles_token_and_uninstall_keeps_user_data() {
    let mut w = World::new();
    w.euid = 0;
    w.with(|h| install(h, &req(Kind::System))).unwrap();
    assert_eq!(
        w.files(),
        [
            "etc/emonk/emonk.json",
            "etc/emonk/gateway.token",
            "etc/systemd/system/emonkd.service",
            "etc/sysusers.d/emonkd.conf",
            "etc/tmpfiles.d/emonkd.conf"
        ]
    );
    let token = fs::read_to_string(w.at("/etc/emonk/gateway.token")).unwrap();
    assert_eq!(token.trim().len(), 64);
    w.with(|h| uninstall(h, &req(Kind::System))).unwrap();
    assert_eq!(w.files(), ["etc/emonk/emonk.json", "etc/emonk/gateway.token"]);
    // A second install keeps the existing token.
    w.with(|h| install(h, &req(Kind::System))).unwrap();
    assert_eq!(
        fs::read_to_string(w.at("/etc/emonk/gateway.token")).unwrap(),
        token
    );
}

#[test]
fn runit_install_links_the_service_dir_and_uninstall_removes_it() {
    let mut w = World::new();
    fs::create_dir_all(w.at("/var/service")).unwrap();
    let kind = Kind::Runit(PathBuf::from("/var/service"));
    w.euid = 0;
    w.with(|h| install(h, &req(kind.clone()))).unwrap();
    assert_eq!(
        fs::read_link(w.at("/var/service/emonkd")).unwrap(),
        w.at("/etc/sv/emonkd")
    );
    let run = fs::read_to_string(w.at("/etc/sv/emonkd/run")).unwrap();
    assert!(run.contains("chpst -u emonk:emonk"), "{run}");
    use std::os::unix::fs::PermissionsExt;
    for f in ["run", "finish", "log/run"] {
        let mode = fs::metadata(w.at(&format!("/etc/sv/emonkd/{f}")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "{f}");
    }
    assert!(
        w.runner.ran.is_empty(),
        "runit needs no command: {:?}",
        w.runner.ran
    );
    // runsv's own state does not keep the directory alive.
    fs::create_dir_all(w.at("/etc/sv/emonkd/supervise")).unwrap();
    fs::write(w.at("/etc/sv/emonkd/supervise/stat"), "run").unwrap();
    w.with(|h| uninstall(h, &req(kind.clone()))).unwrap();
    assert_eq!(w.runner.ran, ["sv down /var/service/emonkd"]);
    assert_eq!(w.files(), ["etc/emonk/emonk.json"]);
    assert!(!w.at("/etc/sv/emonkd").exists());
}

#[test]
fn runit_refuses_a_missing_svdir_or_a_foreign_link() {
    let mut w = World::new();
    let kind = Kind::Runit(PathBuf::from("/var/service"));
    let e = w
        .with(|h| install(h, &req(kind.clone())))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no such directory"), "{e}");
    fs::create_dir_all(w.at("/var/service")).unwrap();
    std::os::unix::fs::symlink("/etc/sv/other", w.at("/var/service/emonkd")).unwrap();
    let e = w.with(|h| install(h, &req(kind))).unwrap_err().to_string();
    assert!(e.contains("not an emonkd service link"), "{e}");
    assert_eq!(w.files(), ["var/service/emonkd"]);
}

#[test]
fn status_shows_the_supervisor_and_the_probe() {
    let mut w = World::new();
    w.runner.rules.push((
        "is-active",
        Outcome {
            success: true,
            stdout: "active\n".into(),
            stderr: String::new(),
        },
    ));
    let probe = |state: &Path, config: &Path| GatewayView {
        running: true,
        lines: vec![format!("probe {} {}", state.display(), config.display())],
    };
    let running = w.with(|h| status(h, &req(Kind::User), &probe)).unwrap();
    assert!(running);
    let out = w.output();
    assert!(
        out.contains("systemctl --user is-active emonkd.service: active"),
        "{out}"
    );
    assert!(out.contains("emonkd.service: missing"), "{out}");
    assert!(
        out.contains("probe /home/u/.local/state/emonk /home/u/.config/emonk/emonk.json"),
        "{out}"
    );
}
