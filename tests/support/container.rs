//! Driving a container engine for `tests/container.rs`: the `docker` CLI (or podman, which
//! takes the same commands) with every call bounded, containers and volumes labelled
//! `emonk-ci` and removed on drop, and the facts the tests read (logs, health, host pid,
//! published port, exit code).
//!
//! The image comes from `contrib/docker/test.sh`, which builds it and passes its tag in
//! `EMONK_CI_IMAGE`; the engine's command is `EMONK_CI_ENGINE` (default `docker`).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use super::{eventually, run_to_end};

/// Label on everything the tests create, so `test.sh` can sweep leftovers of a killed run.
pub const LABEL: &str = "emonk-ci";

/// The bound on one engine command that is not expected to wait (inspect, logs, rm).
const QUICK: Duration = Duration::from_secs(60);

/// The engine's command (`EMONK_CI_ENGINE`, default `docker`).
pub fn engine() -> String {
    std::env::var("EMONK_CI_ENGINE").unwrap_or_else(|_| "docker".into())
}

/// The image under test, from `EMONK_CI_IMAGE`.
pub fn image() -> String {
    std::env::var("EMONK_CI_IMAGE")
        .expect("EMONK_CI_IMAGE is not set: run these tests through contrib/docker/test.sh")
}

/// Run the engine with `args`, killed (and the test failed) after `limit`.
pub fn engine_run(args: &[&str], limit: Duration) -> Output {
    let mut cmd = Command::new(engine());
    cmd.args(args);
    run_to_end(cmd, limit)
}

/// Like [`engine_run`], asserting success; returns stdout, trimmed.
pub fn engine_ok(args: &[&str]) -> String {
    let out = engine_run(args, QUICK);
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}{}",
        engine(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A named volume, removed on drop.
pub struct Volume {
    pub name: String,
}

impl Volume {
    pub fn new(name: &str) -> Volume {
        let name = format!("emonk-ci-{name}-{}", std::process::id());
        engine_ok(&["volume", "create", "--label", LABEL, &name]);
        Volume { name }
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = engine_run(&["volume", "rm", "-f", &self.name], QUICK);
    }
}

/// A container started detached with `docker run -d`, removed (forced) on drop.
pub struct Container {
    pub name: String,
}

impl Container {
    /// `docker run -d --name NAME --label emonk-ci RUN_ARGS IMAGE ARGS`.
    pub fn run(name: &str, run_args: &[&str], args: &[&str]) -> Container {
        let name = format!("emonk-ci-{name}-{}", std::process::id());
        let image = image();
        let mut all = vec!["run", "-d", "--name", &name, "--label", LABEL];
        all.extend_from_slice(run_args);
        all.push(&image);
        all.extend_from_slice(args);
        engine_ok(&all);
        Container { name }
    }

    /// Everything the container wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        let out = engine_run(&["logs", &self.name], QUICK);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// The first log line containing `needle`, waiting up to `timeout`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        eventually(timeout, || {
            self.logs()
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| {
            panic!(
                "{}: no {needle:?} in the log within {timeout:?}:\n{}",
                self.name,
                self.logs()
            )
        })
    }

    /// The port the gateway listens on inside the container, from its `listening on` line.
    pub fn listening_port(&self) -> u16 {
        let line = self.wait_log("listening on ws://", Duration::from_secs(30));
        line.rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"))
    }

    /// `docker inspect -f FORMAT`.
    pub fn inspect(&self, format: &str) -> String {
        engine_ok(&["inspect", "-f", format, &self.name])
    }

    /// The container's main process as the host sees it.
    pub fn host_pid(&self) -> i32 {
        let pid = self.inspect("{{.State.Pid}}");
        pid.parse().unwrap_or_else(|_| panic!("State.Pid {pid:?}"))
    }

    /// The health status (`starting`, `healthy`, `unhealthy`).
    pub fn health(&self) -> String {
        self.inspect("{{.State.Health.Status}}")
    }

    /// Wait until the health status is `want`.
    pub fn wait_health(&self, want: &str, timeout: Duration) {
        let seen = eventually(timeout, || (self.health() == want).then_some(()));
        assert!(
            seen.is_some(),
            "{}: health is {:?}, not {want:?}, after {timeout:?}; last checks: {}",
            self.name,
            self.health(),
            self.inspect("{{json .State.Health.Log}}")
        );
    }

    /// The host address `127.0.0.1:N` that `container_port/tcp` is published on.
    pub fn published_port(&self, container_port: u16) -> u16 {
        let out = engine_ok(&["port", &self.name, &format!("{container_port}/tcp")]);
        out.lines()
            .find_map(|l| l.strip_prefix("127.0.0.1:"))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no 127.0.0.1 port in {out:?}"))
    }

    /// `docker exec NAME ARGS`, bounded by `limit`.
    pub fn exec(&self, args: &[&str], limit: Duration) -> Output {
        let mut all = vec!["exec", self.name.as_str()];
        all.extend_from_slice(args);
        engine_run(&all, limit)
    }

    /// Wait for the container to exit; its exit code.
    pub fn wait_exit(&self, timeout: Duration) -> i32 {
        let out = engine_run(&["wait", &self.name], timeout);
        let code = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        code.parse().unwrap_or_else(|_| {
            panic!(
                "docker wait {}: {code:?} {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// Remove it now, killing it if it runs (`docker rm -f`).
    pub fn remove(self) {
        engine_ok(&["rm", "-f", &self.name]);
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = engine_run(&["rm", "-f", &self.name], QUICK);
    }
}

/// Give `path` to the image's uid/gid with mode 0600, as a user must for a secret file
/// the container reads.
pub fn own_for_image(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::chown(path, Some(IMAGE_UID), Some(IMAGE_UID))
        .expect("chown to the image's uid (run as root)");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The fixed uid and gid of the image (contrib/docker/Dockerfile).
pub const IMAGE_UID: u32 = 10001;
