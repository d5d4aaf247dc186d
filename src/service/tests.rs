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
    exe: PathBuf,
    /// What the injected user lookup answers for every name.
    users_exist: bool,
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
            exe: PathBuf::from("/usr/local/bin/emonkd"),
            users_exist: true,
        }
    }

    fn with<T>(&mut self, f: impl FnOnce(&mut Host) -> T) -> T {
        let vars = self.vars.clone();
        let env = move |k: &str| vars.get(k).cloned();
        let users_exist = self.users_exist;
        let user_exists = move |_: &str| users_exist;
        let mut host = Host {
            env: &env,
            exe: self.exe.clone(),
            euid: self.euid,
            root: Root::new(Some(self.root.path().to_owned())),
            runner: &mut self.runner,
            out: &mut self.out,
            user_exists: &user_exists,
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

    /// Everything under the root, directories included: kind, mode, and the content of
    /// files or the target of links, so "exactly as before" means exactly.
    fn tree(&self) -> Vec<String> {
        use std::os::unix::fs::PermissionsExt;
        let mut out = Vec::new();
        let mut stack = vec![self.root.path().to_owned()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let md = p.symlink_metadata().unwrap();
                let rel = p.strip_prefix(self.root.path()).unwrap().display().to_string();
                let mode = md.permissions().mode() & 0o7777;
                if md.is_symlink() {
                    out.push(format!("l {rel} -> {}", fs::read_link(&p).unwrap().display()));
                } else if md.is_dir() {
                    out.push(format!("d {rel} {mode:o}"));
                    stack.push(p);
                } else {
                    out.push(format!("f {rel} {mode:o} {:?}", fs::read_to_string(&p).unwrap()));
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
    // The all-defaults config was written by install and is unchanged, so it goes too.
    assert!(w.tree().is_empty(), "{:?}", w.tree());
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
        "/etc/emonk/gateway.token (mode 0600, only if missing)",
        "/etc/emonk/emonk.json (mode 0644, only if missing)",
        "/etc/emonk/.emonkd-service.json (mode 0600): the install record",
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
    w.exe = PathBuf::from("/root/.cargo/bin/emonkd");
    let e = w
        .with(|h| install(h, &req(Kind::System)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("install -m 0755") && e.contains("ProtectHome"), "{e}");
    assert!(w.files().is_empty());
}

#[test]
fn system_install_records_what_it_wrote_and_uninstall_removes_exactly_that() {
    let mut w = World::new();
    w.euid = 0;
    w.with(|h| install(h, &req(Kind::System))).unwrap();
    assert_eq!(
        w.files(),
        [
            "etc/emonk/.emonkd-service.json",
            "etc/emonk/emonk.json",
            "etc/emonk/gateway.token",
            "etc/systemd/system/emonkd.service",
            "etc/sysusers.d/emonkd.conf",
            "etc/tmpfiles.d/emonkd.conf"
        ]
    );
    let token = fs::read_to_string(w.at("/etc/emonk/gateway.token")).unwrap();
    assert_eq!(token.trim().len(), 64);
    let record = fs::read_to_string(w.at("/etc/emonk/.emonkd-service.json")).unwrap();
    let m: manifest::Manifest = serde_json::from_str(&record).unwrap();
    let listed: Vec<_> = m.files.keys().map(|p| p.display().to_string()).collect();
    assert_eq!(
        listed,
        [
            "/etc/emonk/emonk.json",
            "/etc/emonk/gateway.token",
            "/etc/systemd/system/emonkd.service",
            "/etc/sysusers.d/emonkd.conf",
            "/etc/tmpfiles.d/emonkd.conf"
        ]
    );
    assert!(m.files.values().all(|e| e.fnv1a64.len() == 16));
    // The record holds a hash of the token, never the token.
    assert!(!record.contains(token.trim()), "{record}");
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(w.at("/etc/emonk/.emonkd-service.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Every directory install had to make (the root was empty) is on the record.
    let dirs: Vec<_> = m.dirs.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(
        dirs,
        [
            "/etc",
            "/etc/emonk",
            "/etc/systemd",
            "/etc/systemd/system",
            "/etc/sysusers.d",
            "/etc/tmpfiles.d"
        ]
    );
    w.with(|h| uninstall(h, &req(Kind::System))).unwrap();
    assert!(w.tree().is_empty(), "{:?}\n{}", w.tree(), w.output());
    assert!(
        w.output().contains(&format!(
            "removed {} (the install record)",
            w.at("/etc/emonk/.emonkd-service.json").display()
        )),
        "{}",
        w.output()
    );
}

#[test]
fn install_then_uninstall_leaves_the_root_exactly_as_before() {
    for kind in [
        Kind::User,
        Kind::System,
        Kind::Runit(PathBuf::from("/var/service")),
    ] {
        let mut w = World::new();
        w.euid = if kind == Kind::User { 1000 } else { 0 };
        // Some of the directories install writes into exist already, with other files.
        for d in [
            "/etc/systemd/system",
            "/var/service",
            "/home/u/.config",
            "/etc/sv",
        ] {
            fs::create_dir_all(w.at(d)).unwrap();
        }
        fs::write(w.at("/etc/systemd/system/other.service"), "[Unit]\n").unwrap();
        fs::write(w.at("/home/u/.config/other.conf"), "x\n").unwrap();
        let before = w.tree();
        w.with(|h| install(h, &req(kind.clone()))).unwrap();
        assert_ne!(w.tree(), before);
        // A second install changes nothing about what the first one created.
        w.with(|h| install(h, &req(kind.clone()))).unwrap();
        w.with(|h| uninstall(h, &req(kind.clone()))).unwrap();
        assert_eq!(w.tree(), before, "{kind:?}:\n{}", w.output());
        assert!(!w.output().contains("kept"), "{kind:?}:\n{}", w.output());
    }
}

#[test]
fn a_config_edited_after_install_is_kept_and_named() {
    let mut w = World::new();
    w.with(|h| install(h, &req(Kind::User))).unwrap();
    let config = w.at("/home/u/.config/emonk/emonk.json");
    fs::write(&config, "{\"gateway\": {\"port\": 18790}}\n").unwrap();
    w.with(|h| uninstall(h, &req(Kind::User))).unwrap();
    assert_eq!(
        fs::read_to_string(&config).unwrap(),
        "{\"gateway\": {\"port\": 18790}}\n"
    );
    // The unit and the record went; the config and the directories holding it stay.
    assert_eq!(w.files(), ["home/u/.config/emonk/emonk.json"]);
    assert!(!w.at("/home/u/.config/systemd").exists());
    let out = w.output();
    assert!(
        out.contains(&format!("kept    {} (changed since install)", config.display())),
        "{out}"
    );
    // Named once: the directories around it are not listed as well.
    assert_eq!(out.matches("kept").count(), 1, "{out}");
}

#[test]
fn a_token_that_existed_before_install_is_never_touched() {
    use std::os::unix::fs::PermissionsExt;
    let mut w = World::new();
    w.euid = 0;
    let token = w.at("/etc/emonk/gateway.token");
    fs::create_dir_all(token.parent().unwrap()).unwrap();
    fs::write(&token, "my-own-token\n").unwrap();
    fs::set_permissions(&token, fs::Permissions::from_mode(0o640)).unwrap();
    let before = w.tree();
    w.with(|h| install(h, &req(Kind::System))).unwrap();
    let record = fs::read_to_string(w.at("/etc/emonk/.emonkd-service.json")).unwrap();
    assert!(!record.contains("gateway.token"), "{record}");
    w.with(|h| install(h, &req(Kind::System))).unwrap();
    w.with(|h| uninstall(h, &req(Kind::System))).unwrap();
    assert_eq!(fs::read_to_string(&token).unwrap(), "my-own-token\n");
    assert_eq!(fs::metadata(&token).unwrap().permissions().mode() & 0o777, 0o640);
    // /etc/emonk existed, so it stays; everything else install made is gone.
    assert_eq!(w.tree(), before);
    assert!(
        w.output()
            .contains(&format!("kept    {} (not created by install)", token.display())),
        "{}",
        w.output()
    );
}

#[test]
fn uninstall_dry_run_shows_what_goes_and_what_stays_and_changes_nothing() {
    let mut w = World::new();
    w.euid = 0;
    w.with(|h| install(h, &req(Kind::System))).unwrap();
    fs::write(w.at("/etc/emonk/emonk.json"), "{\"log\": {}}\n").unwrap();
    let before = w.tree();
    w.runner.ran.clear();
    w.out.clear();
    let mut r = req(Kind::System);
    r.dry_run = true;
    w.with(|h| uninstall(h, &r)).unwrap();
    assert_eq!(w.tree(), before);
    assert!(w.runner.ran.is_empty(), "{:?}", w.runner.ran);
    let out = w.output();
    let at = |p: &str| w.at(p).display().to_string();
    for needle in [
        "$ systemctl stop emonkd.service".to_owned(),
        format!("remove {}\n", at("/etc/systemd/system/emonkd.service")),
        format!("remove {}\n", at("/etc/emonk/gateway.token")),
        format!(
            "remove {} (the install record)",
            at("/etc/emonk/.emonkd-service.json")
        ),
        format!(
            "remove {}/ (created by install, empty then)",
            at("/etc/tmpfiles.d")
        ),
        format!("keep   {} (changed since install)", at("/etc/emonk/emonk.json")),
    ] {
        assert!(out.contains(&needle), "{needle} not in:\n{out}");
    }
    assert!(
        !out.contains(&format!("remove {}", at("/etc/emonk/emonk.json"))),
        "{out}"
    );
    assert!(!out.contains(&format!("remove {}/ (", at("/etc/emonk"))), "{out}");
    // The real run does what the dry run said.
    w.out.clear();
    w.with(|h| uninstall(h, &req(Kind::System))).unwrap();
    assert_eq!(w.files(), ["etc/emonk/emonk.json"]);
}

#[test]
fn uninstall_without_a_record_touches_nothing() {
    let mut w = World::new();
    let unit = w.at("/home/u/.config/systemd/user/emonkd.service");
    fs::create_dir_all(unit.parent().unwrap()).unwrap();
    fs::write(&unit, "[Service]\nExecStart=/opt/emonkd run\n").unwrap();
    let before = w.tree();
    w.with(|h| uninstall(h, &req(Kind::User))).unwrap();
    assert_eq!(w.tree(), before);
    assert!(w.runner.ran.is_empty(), "{:?}", w.runner.ran);
    let out = w.output();
    assert!(
        out.contains("is not installed") && out.contains("left alone"),
        "{out}"
    );
}

#[test]
fn a_unit_that_existed_before_install_is_replaced_but_kept_on_uninstall() {
    let mut w = World::new();
    let unit = w.at("/home/u/.config/systemd/user/emonkd.service");
    fs::create_dir_all(unit.parent().unwrap()).unwrap();
    fs::write(&unit, "[Service]\nExecStart=/opt/emonkd run\n").unwrap();
    w.with(|h| install(h, &req(Kind::User))).unwrap();
    assert!(w.output().contains("uninstall keeps it"), "{}", w.output());
    w.with(|h| uninstall(h, &req(Kind::User))).unwrap();
    assert!(unit.exists());
    assert!(
        w.output()
            .contains(&format!("kept    {} (not created by install)", unit.display())),
        "{}",
        w.output()
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
    assert!(w.files().is_empty(), "{:?}", w.files());
    assert!(!w.at("/etc/sv/emonkd").exists());
    assert!(w.at("/var/service").is_dir());
    // svlogd's logs are not install's: they keep the service dir, which is named.
    fs::create_dir_all(w.at("/var/service")).unwrap();
    w.with(|h| install(h, &req(kind.clone()))).unwrap();
    fs::create_dir_all(w.at("/etc/sv/emonkd/log/main")).unwrap();
    fs::write(w.at("/etc/sv/emonkd/log/main/current"), "log\n").unwrap();
    w.out.clear();
    w.with(|h| uninstall(h, &req(kind))).unwrap();
    assert_eq!(w.files(), ["etc/sv/emonkd/log/main/current"]);
    assert!(
        w.output().contains(&format!(
            "kept    {} (created by install, but it holds main, which install did not write)",
            w.at("/etc/sv/emonkd/log").display()
        )),
        "{}",
        w.output()
    );
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

#[test]
fn a_dry_run_reports_a_missing_service_user_and_every_other_refusal() {
    let mut w = World::new();
    w.euid = 0;
    w.users_exist = false;
    let mut r = req(Kind::Runit(PathBuf::from("/var/service")));
    r.dry_run = true;
    let e = w.with(|h| install(h, &r)).unwrap_err().to_string();
    assert!(e.contains("the real install would refuse"), "{e}");
    assert!(e.contains("no such directory"), "the missing SVDIR: {e}");
    assert!(e.contains("useradd --system"), "the missing user: {e}");
    assert!(w.output().starts_with("dry run:"), "{}", w.output());
    r.dry_run = false;
    let e = w.with(|h| install(h, &r)).unwrap_err().to_string();
    assert!(
        e.contains("useradd --system") && e.contains("Nothing was written."),
        "{e}"
    );
    assert!(w.files().is_empty(), "{:?}", w.files());
}

#[test]
fn a_dry_run_of_a_system_unit_reports_a_binary_under_home_or_tmp() {
    for exe in ["/root/.cargo/bin/emonkd", "/tmp/emonkd", "/var/tmp/x/emonkd"] {
        let mut w = World::new();
        w.euid = 0;
        w.exe = PathBuf::from(exe);
        let mut r = req(Kind::System);
        r.dry_run = true;
        let e = w.with(|h| install(h, &r)).unwrap_err().to_string();
        assert!(e.contains(exe) && e.contains("install -m 0755"), "{e}");
        assert!(w.files().is_empty(), "{:?}", w.files());
    }
}

#[test]
fn a_build_tree_is_found_by_its_cargo_tag() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("proj/target");
    fs::create_dir_all(target.join("x86_64-unknown-linux-gnu/release")).unwrap();
    fs::write(
        target.join("CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by cargo.\n",
    )
    .unwrap();
    let exe = target.join("x86_64-unknown-linux-gnu/release/emonkd");
    assert_eq!(checks::build_tree(&exe), Some(target.clone()));
    assert_eq!(checks::build_tree(&t.path().join("bin/emonkd")), None);
    assert_eq!(checks::build_tree(Path::new("/usr/local/bin/emonkd")), None);
}
