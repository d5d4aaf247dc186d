//! Starting and watching a real `emonkd` process: a temporary home (config + state dir), a
//! clean environment, `--port 0`, the port read from the `listening on` line, and the
//! process's memory, threads and CPU time read from `/proc`.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The token every bench client authenticates with.
pub const TOKEN: &str = "bench-token";

/// A temporary directory removed on drop (the bench has no dev-dependencies to lean on).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A gateway config for the bench: token auth, ticks effectively off (an hourly tick would
/// only add noise), room for 10,000+ clients, a spool big enough for every workload.
pub fn base_config() -> Value {
    serde_json::json!({
        "gateway": {
            "auth": {"token": TOKEN},
            "maxClients": 50_000,
            "tickIntervalMs": 3_600_000,
        },
        "spool": {"maxEntries": 1_000_000, "maxBytes": 1_073_741_824u64},
    })
}

/// A running `emonkd run --port 0`.
pub struct Daemon {
    child: Child,
    pub pid: u32,
    pub port: u16,
    /// From just before `spawn` to the `listening on` line arriving on its stderr.
    pub exec_to_listening: Duration,
    lines: Receiver<(Instant, String)>,
    _home: TempDir,
}

impl Daemon {
    pub fn start(bin: &Path, config: &Value) -> Result<Daemon, String> {
        let home = TempDir::new("emonk-bench");
        let config_path = home.path().join("emonk.json");
        std::fs::write(&config_path, config.to_string()).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(bin);
        cmd.args(["run", "--port", "0"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("EMONK_CONFIG", &config_path)
            .env("EMONK_STATE_DIR", home.path().join("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // glibc malloc tuning is passed through, to compare allocator settings.
        for (k, v) in std::env::vars_os().filter(|(k, _)| k.to_string_lossy().starts_with("MALLOC_")) {
            cmd.env(k, v);
        }
        // Die with the bench, even if it panics before Drop runs.
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = channel();
        thread::Builder::new()
            .name("bench-daemon-log".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((Instant::now(), line)).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn the log reader");
        let pid = child.id();
        let mut daemon = Daemon {
            child,
            pid,
            port: 0,
            exec_to_listening: Duration::ZERO,
            lines,
            _home: home,
        };
        let (at, line) = daemon
            .wait_line("listening on ws://", Duration::from_secs(10))
            .ok_or("emonkd did not print `listening on` within 10 s")?;
        daemon.exec_to_listening = at - started;
        daemon.port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| format!("no port in {line:?}"))?;
        Ok(daemon)
    }

    /// The gateway's state dir.
    pub fn state_dir(&self) -> std::path::PathBuf {
        self._home.path().join("state")
    }

    /// Wait for a log line containing `needle`; lines before it are discarded (and echoed
    /// when they are warnings or errors, so a failing run says why).
    pub fn wait_line(&self, needle: &str, timeout: Duration) -> Option<(Instant, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) if line.contains(needle) => return Some((at, line)),
                Ok((_, line)) => {
                    if line.contains("ERROR") {
                        eprintln!("emonkd: {line}");
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    pub fn sigterm(&self) {
        // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGTERM);
        }
    }

    /// Block until the process exits (it was signalled; the caller bounds the wait with a
    /// watchdog of its own if it must).
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait()
    }

    pub fn rss_bytes(&self) -> Option<u64> {
        status_field(self.pid, "VmRSS:").map(|kib| kib * 1024)
    }

    /// Where the resident memory is, from `/proc/PID/smaps`.
    pub fn rss_parts(&self) -> Option<RssParts> {
        let exe = std::fs::read_link(format!("/proc/{}/exe", self.pid)).ok()?;
        let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", self.pid)).ok()?;
        Some(RssParts::from_smaps(&smaps, &exe.to_string_lossy()))
    }

    pub fn threads(&self) -> Option<u64> {
        status_field(self.pid, "Threads:")
    }

    /// utime + stime of the whole process, in seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(self.pid)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory by kind, in bytes. File-backed pages are the program's and libraries' code
/// and constants, shared with every process that maps the same files; `private` is what
/// this process alone costs (heap, stacks, relocated data).
#[derive(Debug, Default, PartialEq)]
pub struct RssParts {
    pub binary: u64,
    pub libraries: u64,
    pub private: u64,
}

impl RssParts {
    fn from_smaps(smaps: &str, exe: &str) -> RssParts {
        let mut parts = RssParts::default();
        let (mut of_exe, mut file_backed, mut rss) = (false, false, 0);
        let kib = |line: &str| -> u64 {
            line.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
                * 1024
        };
        for line in smaps.lines() {
            let mut words = line.split_whitespace();
            let first = words.next().unwrap_or("");
            if first.contains('-') && !first.ends_with(':') {
                // A mapping header: range perms offset dev inode [path].
                let path = words.nth(4).unwrap_or("");
                of_exe = path == exe;
                file_backed = path.starts_with('/');
            } else if first == "Rss:" {
                rss = kib(line);
            } else if first == "Anonymous:" {
                let anon = kib(line);
                let file = rss.saturating_sub(anon);
                parts.private += anon;
                match (of_exe, file_backed) {
                    (true, _) => parts.binary += file,
                    (false, true) => parts.libraries += file,
                    (false, false) => parts.private += file,
                }
            }
        }
        parts
    }
}

/// A numeric field of `/proc/PID/status` (`VmRSS:` is in KiB).
pub fn status_field(pid: u32, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime (fields 14 and 15 of `/proc/PID/stat`) in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm (field 2) may contain spaces; fields after it start past the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so field N is at index N - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    Some((utime + stime) as f64 / ticks)
}

/// Kernel TCP buffer memory, system wide: `TCP: ... mem N` in `/proc/net/sockstat` (pages).
pub fn kernel_tcp_bytes() -> Option<u64> {
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let line = sockstat.lines().find(|l| l.starts_with("TCP:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words.iter().position(|w| *w == "mem")?;
    let pages: u64 = words.get(i + 1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * if page > 0 { page as u64 } else { 4096 })
}

/// Raise this process's open-file limit to its hard limit (10,000 clients need 10,000 fds
/// here as well as in the daemon).
pub fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is valid and writable for both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// `MemTotal` of `/proc/meminfo`, in KiB.
pub fn meminfo_total_kib() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The type of the filesystem holding `path`, from `/proc/self/mounts` (longest mount
/// point that is a prefix of the canonical path).
pub fn filesystem_type(path: &Path) -> Option<String> {
    let path = std::fs::canonicalize(path).ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (_dev, target, fs) = (w.next()?, w.next()?, w.next()?);
            path.starts_with(target).then(|| (target.len(), fs.to_owned()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, fs)| fs)
}

#[cfg(test)]
mod tests {
    use super::RssParts;

    #[test]
    fn smaps_is_split_into_binary_libraries_and_private() {
        let smaps = "\
55d0-55d1 r-xp 00000000 fe:00 12 /opt/emonkd
Rss:                1600 kB
Anonymous:             0 kB
55d2-55d3 r--p 00001000 fe:00 12 /opt/emonkd
Rss:                  84 kB
Anonymous:            80 kB
7f00-7f01 r-xp 00000000 fe:00 34 /usr/lib/libc.so.6
Rss:                1150 kB
Anonymous:             0 kB
7f02-7f03 rw-p 00000000 00:00 0
Rss:                 264 kB
Anonymous:           264 kB
7ffd-7ffe rw-p 00000000 00:00 0                          [stack]
Rss:                  20 kB
Anonymous:            20 kB
";
        assert_eq!(
            RssParts::from_smaps(smaps, "/opt/emonkd"),
            RssParts {
                binary: 1604 * 1024,
                libraries: 1150 * 1024,
                private: (80 + 264 + 20) * 1024,
            }
        );
    }
}
