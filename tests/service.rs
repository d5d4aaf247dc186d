//! `emonkd service` through the real binary, never touching the system: `--dry-run`, a temp
//! root (`$EMONK_SERVICE_ROOT`) and fake `systemctl`/`sv` commands first in `$PATH`. Also: the
//! files in `contrib/` are exactly what `service install` writes for the canonical paths.
//!
//! Regenerate `contrib/` after changing `src/service/units.rs` with
//! `EMONK_REGENERATE_CONTRIB=1 cargo test --test service contrib`.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use emonk::service::units::{self, Params};
use support::{Home, Watchdog, code_of, run_to_end, stderr_of, stdout_of, with_umask};

const LIMIT: Duration = Duration::from_secs(20);

/// Every contrib file with its generated text and mode.
fn contrib_files() -> Vec<(&'static str, String, u32)> {
    let c = Params::canonical();
    vec![
        ("systemd/emonkd.service", units::system_unit(&c), 0o644),
        (
            "systemd/emonkd-user.service",
            units::user_unit(&Params::canonical_user()),
            0o644,
        ),
        ("sysusers.d/emonkd.conf", units::sysusers(), 0o644),
        ("tmpfiles.d/emonkd.conf", units::tmpfiles(), 0o644),
        ("runit/emonkd/run", units::runit_run(&c), 0o755),
        ("runit/emonkd/finish", units::runit_finish(), 0o755),
        ("runit/emonkd/log/run", units::runit_log_run(), 0o755),
    ]
}

#[test]
fn contrib_is_what_service_install_writes() {
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib");
    let regenerate = std::env::var_os("EMONK_REGENERATE_CONTRIB").is_some();
    for (rel, text, mode) in contrib_files() {
        let path = contrib.join(rel);
        if regenerate {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, &text).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            continue;
        }
        let on_disk = fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; regenerate with EMONK_REGENERATE_CONTRIB=1 cargo test --test service contrib",
                path.display()
            )
        });
        assert!(
            on_disk == text,
            "contrib/{rel} differs from the generated text; regenerate with EMONK_REGENERATE_CONTRIB=1 cargo test --test service contrib"
        );
        let actual = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            actual & 0o111 != 0,
            mode & 0o111 != 0,
            "contrib/{rel}: mode {actual:o}"
        );
    }
}

/// The system unit in contrib/ has what the issue asks for.
#[test]
fn contrib_system_unit_has_the_required_settings() {
    let unit = units::system_unit(&Params::canonical());
    for line in [
        "Type=notify",
        "User=emonk",
        "StateDirectory=emonk",
        "ConfigurationDirectory=emonk",
        "RestartPreventExitStatus=78",
        "TimeoutStopSec=10",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WatchdogSec=30",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "LoadCredential=gateway.auth.token:/etc/emonk/gateway.token",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing");
    }
}

struct Sandbox {
    home: Home,
    root: PathBuf,
    bin: PathBuf,
    log: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let home = Home::new("{}");
        let root = home.path().join("root");
        let bin = home.path().join("bin");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&bin).unwrap();
        let log = home.path().join("commands.log");
        let sb = Sandbox { home, root, bin, log };
        for name in ["systemctl", "systemd-sysusers", "systemd-tmpfiles", "sv"] {
            sb.fake(name, "exit 0");
        }
        sb
    }

    /// A fake command that logs its arguments and then runs `body`.
    fn fake(&self, name: &str, body: &str) {
        let path = self.bin.join(name);
        fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"{name} $*\" >> '{}'\n{body}\n",
                self.log.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let root = self.root.to_str().unwrap().to_owned();
        let mut all: Vec<(&str, &str)> = vec![("PATH", &path), ("EMONK_SERVICE_ROOT", &root)];
        all.extend_from_slice(env);
        self.home.run_cli_env(args, &all, LIMIT)
    }

    /// [`Sandbox::run`] with the child's umask set to `mask`.
    fn run_umask(&self, args: &[&str], env: &[(&str, &str)], mask: libc::mode_t) -> Output {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = self.home.command(args);
        cmd.env("PATH", path).env("EMONK_SERVICE_ROOT", &self.root);
        for (k, v) in env {
            cmd.env(k, v);
        }
        with_umask(&mut cmd, mask);
        run_to_end(cmd, LIMIT)
    }

    /// The mode of `logical` (an absolute path) under the root.
    fn mode(&self, logical: &str) -> u32 {
        let real = self.root.join(logical.trim_start_matches('/'));
        fs::symlink_metadata(&real)
            .unwrap_or_else(|e| panic!("{}: {e}", real.display()))
            .permissions()
            .mode()
            & 0o7777
    }

    fn commands(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() && !p.is_symlink() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(&self.root).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    /// Everything under the root, directories included, with file contents and link targets.
    fn tree(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let rel = p.strip_prefix(&self.root).unwrap().display().to_string();
                if p.is_symlink() {
                    out.push(format!("{rel} -> {}", fs::read_link(&p).unwrap().display()));
                } else if p.is_dir() {
                    out.push(format!("{rel}/"));
                    stack.push(p);
                } else {
                    out.push(format!("{rel}: {:?}", fs::read_to_string(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    fn user_unit(&self) -> PathBuf {
        self.root
            .join(self.home.path().strip_prefix("/").unwrap())
            .join(".config/systemd/user/emonkd.service")
    }
}

const BUS: (&str, &str) = ("XDG_RUNTIME_DIR", "/run/user/1000");

#[test]
fn dry_run_prints_the_unit_with_this_binary_and_config_and_changes_nothing() {
    let _w = Watchdog::new("service dry run", Duration::from_secs(30));
    let sb = Sandbox::new();
    for args in [
        &["service", "install", "--dry-run"][..],
        &["service", "install", "--system", "--dry-run"],
        &["service", "uninstall", "--dry-run"],
        &["service", "status", "--dry-run"],
    ] {
        let out = sb.run(args, &[BUS]);
        assert_eq!(code_of(&out), 0, "{args:?}: {}", stderr_of(&out));
        assert!(stdout_of(&out).starts_with("dry run:"), "{}", stdout_of(&out));
    }
    let out = stdout_of(&sb.run(&["service", "install", "--dry-run"], &[BUS]));
    let exe = env!("CARGO_BIN_EXE_emonkd");
    let config = sb.home.config_path();
    assert!(
        out.contains(&format!("ExecStart={exe} run --config {}\n", config.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("==> write {}", sb.user_unit().display())),
        "{out}"
    );
    assert!(out.contains("$ systemctl --user daemon-reload"), "{out}");
    assert!(sb.files().is_empty(), "{:?}", sb.files());
    // The only commands a dry run runs are the checks' read-only questions (here: is the
    // user bus reachable), once per user-unit install dry run above.
    assert_eq!(
        sb.commands(),
        "systemctl --user show-environment\nsystemctl --user show-environment\n"
    );
}

/// A dry run makes the checks the real install makes, reports every refusal and exits 1.
#[test]
fn dry_run_reports_what_the_real_install_would_refuse() {
    let _w = Watchdog::new("service dry run checks", Duration::from_secs(30));
    let sb = Sandbox::new();
    // No user bus.
    let out = sb.run(&["service", "install", "--dry-run"], &[]);
    assert_eq!(code_of(&out), 1, "{}", stdout_of(&out));
    assert!(stdout_of(&out).starts_with("dry run:"), "the plan is still shown");
    let err = stderr_of(&out);
    assert!(
        err.contains("the real install would refuse") && err.contains("loginctl enable-linger"),
        "{err}"
    );
    // A bus systemctl cannot reach.
    sb.fake(
        "systemctl",
        "echo 'Failed to connect to bus: No medium found' >&2; exit 1",
    );
    let out = sb.run(&["service", "install", "--dry-run"], &[BUS]);
    assert_eq!(code_of(&out), 1);
    assert!(
        stderr_of(&out).contains("Failed to connect to bus"),
        "{}",
        stderr_of(&out)
    );
    // A missing runit SVDIR.
    let out = sb.run(
        &["service", "install", "--runit", "/var/service", "--dry-run"],
        &[],
    );
    assert_eq!(code_of(&out), 1);
    assert!(
        stderr_of(&out).contains("no such directory"),
        "{}",
        stderr_of(&out)
    );
    assert!(sb.files().is_empty(), "{:?}", sb.files());
}

/// The test binary lives in cargo's target directory: install says what that means, in a
/// dry run and for real, and goes on.
#[test]
fn a_binary_in_a_build_tree_is_warned_about() {
    let _w = Watchdog::new("service build tree", Duration::from_secs(30));
    let sb = Sandbox::new();
    for args in [&["service", "install", "--dry-run"][..], &["service", "install"]] {
        let out = sb.run(args, &[BUS]);
        assert_eq!(code_of(&out), 0, "{args:?}: {}", stderr_of(&out));
        let text = stdout_of(&out);
        assert!(
            text.contains("warning: ")
                && text.contains("cargo build tree")
                && text.contains("cargo install --path ."),
            "{args:?}: {text}"
        );
    }
}

/// Both systemd units have PrivateTmp=yes: a binary under /tmp would not start.
#[test]
fn a_binary_under_tmp_is_refused_in_a_dry_run_and_for_real() {
    let _w = Watchdog::new("service binary in tmp", Duration::from_secs(60));
    let sb = Sandbox::new();
    let tmp = tempfile::Builder::new().tempdir_in("/tmp").unwrap();
    let exe = tmp.path().join("emonkd");
    if fs::hard_link(env!("CARGO_BIN_EXE_emonkd"), &exe).is_err() {
        fs::copy(env!("CARGO_BIN_EXE_emonkd"), &exe).unwrap();
    }
    for args in [
        &["service", "install", "--dry-run"][..],
        &["service", "install"],
        &["service", "install", "--system", "--dry-run"],
        &["service", "install", "--system"],
    ] {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(args)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", sb.bin.display()))
            .env("HOME", sb.home.path())
            .env("EMONK_CONFIG", sb.home.config_path())
            .env("EMONK_STATE_DIR", sb.home.state_dir())
            .env("EMONK_SERVICE_ROOT", &sb.root)
            .env(BUS.0, BUS.1);
        let out = support::run_to_end(cmd, LIMIT);
        let err = stderr_of(&out);
        assert_eq!(code_of(&out), 1, "{args:?}: {err}");
        assert!(
            err.contains("PrivateTmp") && err.contains(&exe.display().to_string()),
            "{args:?}: {err}"
        );
        assert!(sb.files().is_empty(), "{args:?}: {:?}", sb.files());
    }
}

#[test]
fn user_install_then_uninstall() {
    let _w = Watchdog::new("service user install", Duration::from_secs(30));
    let sb = Sandbox::new();
    let out = sb.run(&["service", "install"], &[BUS]);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert!(sb.user_unit().exists());
    assert_eq!(
        sb.commands(),
        "systemctl --user show-environment\nsystemctl --user daemon-reload\n\
         systemctl --user enable emonkd.service\nsystemctl --user start emonkd.service\n"
    );
    // The install record is next to the default config, not in contrib/.
    let record = sb
        .user_unit()
        .ancestors()
        .nth(3)
        .unwrap()
        .join("emonk/.emonkd-service.json");
    let text = fs::read_to_string(&record).unwrap();
    assert!(
        text.contains("emonkd.service") && text.contains("fnv1a64"),
        "{text}"
    );
    // A dry run changes nothing and names what would go.
    let installed = sb.tree();
    let out = sb.run(&["service", "uninstall", "--dry-run"], &[BUS]);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains(&format!("remove {}\n", sb.user_unit().display())),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(sb.tree(), installed);
    let out = sb.run(&["service", "uninstall"], &[BUS]);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    // Install wrote an all-defaults config because (under the temp root) none existed; it
    // is unchanged, so it goes with everything else install created, directories too.
    assert_eq!(sb.tree(), Vec::<String>::new(), "{}", stdout_of(&out));
    assert!(sb.commands().ends_with(
        "systemctl --user stop emonkd.service\nsystemctl --user disable emonkd.service\n\
         systemctl --user daemon-reload\n"
    ));
}

#[test]
fn no_user_bus_explains_the_fix_and_leaves_nothing() {
    let _w = Watchdog::new("service no bus", Duration::from_secs(30));
    let sb = Sandbox::new();
    // No XDG_RUNTIME_DIR at all (su, containers).
    let out = sb.run(&["service", "install"], &[]);
    assert_eq!(code_of(&out), 1);
    let err = stderr_of(&out);
    assert!(
        err.contains("loginctl enable-linger") && err.contains("--system"),
        "{err}"
    );
    assert!(sb.files().is_empty());
    // The variable is there but systemctl cannot connect.
    sb.fake(
        "systemctl",
        "echo 'Failed to connect to bus: No medium found' >&2; exit 1",
    );
    let out = sb.run(&["service", "install"], &[BUS]);
    assert_eq!(code_of(&out), 1);
    let err = stderr_of(&out);
    assert!(
        err.contains("Failed to connect to bus") && err.contains("loginctl enable-linger"),
        "{err}"
    );
    assert!(sb.files().is_empty(), "{:?}", sb.files());
}

#[test]
fn a_failed_start_rolls_back() {
    let _w = Watchdog::new("service rollback", Duration::from_secs(30));
    let sb = Sandbox::new();
    sb.fake(
        "systemctl",
        r#"case "$*" in *start*) echo 'Job for emonkd.service failed.' >&2; exit 1;; esac"#,
    );
    let out = sb.run(&["service", "install"], &[BUS]);
    assert_eq!(code_of(&out), 1);
    assert!(
        stderr_of(&out).contains("Job for emonkd.service failed"),
        "{}",
        stderr_of(&out)
    );
    assert!(sb.files().is_empty(), "{:?}", sb.files());
}

#[test]
fn runit_install_status_uninstall() {
    let _w = Watchdog::new("service runit", Duration::from_secs(30));
    let sb = Sandbox::new();
    let svdir = "/var/service";
    fs::create_dir_all(sb.root.join("var/service")).unwrap();
    sb.fake("sv", "echo 'down: /var/service/emonkd: 3s'");
    let out = sb.run(&["service", "install", "--runit", svdir], &[]);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let link = sb.root.join("var/service/emonkd");
    let dir = fs::read_link(&link).unwrap();
    let run = fs::read_to_string(dir.join("run")).unwrap();
    assert!(run.contains(env!("CARGO_BIN_EXE_emonkd")), "{run}");
    assert!(dir.join("log/run").exists() && dir.join("finish").exists());
    let out = sb.run(&["service", "status", "--runit", svdir], &[]);
    assert_eq!(code_of(&out), 3, "not running: {}", stdout_of(&out));
    let text = stdout_of(&out);
    assert!(
        text.contains("sv status /var/service/emonkd: down: /var/service/emonkd: 3s"),
        "{text}"
    );
    assert!(text.contains("not running"), "{text}");
    let out = sb.run(&["service", "uninstall", "--runit", svdir], &[]);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert!(!link.exists() && !dir.exists());
    assert!(sb.commands().contains("sv down /var/service/emonkd"));
}

#[test]
fn system_and_runit_exclude_each_other() {
    let sb = Sandbox::new();
    let out = sb.run(&["service", "install", "--system", "--runit", "/x"], &[]);
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(sb.files().is_empty());
}

/// Under `umask 000` every folder install creates still gets its explicit mode (0755 system,
/// 0750 for the folder of the token, 0700 in a home), and no file is left open to others.
#[test]
fn install_under_umask_000_sets_explicit_folder_modes() {
    let _w = Watchdog::new("service umask", Duration::from_secs(30));
    let sb = Sandbox::new();
    let out = sb.run_umask(&["service", "install", "--system"], &[], 0);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    for (dir, mode) in [
        ("/etc", 0o755),
        ("/etc/systemd/system", 0o755),
        ("/etc/sysusers.d", 0o755),
        ("/etc/tmpfiles.d", 0o755),
        ("/etc/emonk", 0o750),
    ] {
        assert_eq!(sb.mode(dir), mode, "{dir}");
    }
    for (file, mode) in [
        ("/etc/systemd/system/emonkd.service", 0o644),
        ("/etc/emonk/gateway.token", 0o600),
        ("/etc/emonk/.emonkd-service.json", 0o600),
    ] {
        assert_eq!(sb.mode(file), mode, "{file}");
    }

    let sb = Sandbox::new();
    let out = sb.run_umask(&["service", "install"], &[BUS], 0);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let unit = sb.user_unit();
    let logical = |p: &Path| format!("/{}", p.strip_prefix(&sb.root).unwrap().display());
    for dir in unit.ancestors().skip(1).take(3) {
        assert_eq!(sb.mode(&logical(dir)), 0o700, "{}", dir.display());
    }
    assert_eq!(sb.mode(&logical(&unit)), 0o644);
}
