//! Linux process facts read from `/proc`, plus the few libc calls the daemon needs.
//!
//! Everything here is Linux-only on purpose: emonkd is a Linux daemon, and `/proc` gives
//! answers (a process's start time, who owns a listening socket) that have no portable
//! equivalent. Functions that look at *other* processes return `None`/`false` rather than
//! an error when `/proc` denies access (`hidepid`, another user's fds), because every
//! caller uses them to enrich a message or to guard against pid reuse, never to decide
//! correctness on its own.
//!
//! Time helpers live here too so the crate needs no date library: the only format the
//! contract asks for is RFC 3339 UTC with milliseconds.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

/// Field 22 (`starttime`, clock ticks since boot) of `/proc/PID/stat`.
///
/// `(pid, start_time)` identifies a process across pid reuse: a recycled pid gets a new
/// start time. `None` if the process does not exist or `/proc` hides it.
pub fn start_time(pid: u32) -> Option<u64> {
    read_stat(pid).map(|s| s.start_time)
}

/// True if `pid` is alive (not a zombie) and started at `start_time`.
///
/// A zombie counts as dead: it has closed every fd, so it holds no lock and no socket,
/// and it is only waiting for its parent to reap it.
pub fn is_same_process(pid: u32, start_time: u64) -> bool {
    match read_stat(pid) {
        Some(stat) => !matches!(stat.state, 'Z' | 'X' | 'x') && stat.start_time == start_time,
        None => false,
    }
}

/// The short command name of `pid` (`/proc/PID/comm`), for messages such as "port 18789
/// is in use by pid 4242 (nginx)".
pub fn process_name(pid: u32) -> Option<String> {
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(comm.trim_end_matches('\n').to_owned())
}

/// The two fields of `/proc/PID/stat` this crate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    /// Field 3: R, S, D, Z, T, ...
    state: char,
    /// Field 22.
    start_time: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    if pid == 0 {
        return None;
    }
    // Read as bytes: comm may hold any bytes the process chose, including invalid UTF-8,
    // and only the ASCII fields after it matter.
    let raw = fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&raw)
}

/// Parses `/proc/PID/stat`. The comm field (2) is wrapped in parentheses but may itself
/// contain spaces and `)`, so the fields are counted from after the *last* `)`.
fn parse_stat(raw: &[u8]) -> Option<Stat> {
    let close = raw.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&raw[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    // `fields` now starts at field 3 (state), so field 22 is 19 further on.
    let state = fields.next()?.chars().next()?;
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start_time })
}

/// The pid of a process holding a TCP socket in LISTEN state on `port`, on any address,
/// IPv4 or IPv6.
///
/// Reads the listening sockets' inodes from `/proc/net/tcp{,6}`, then looks for an fd
/// pointing at `socket:[INODE]` under `/proc/*/fd`. Processes are scanned in ascending
/// pid order so the answer is deterministic when several share the socket (after a fork).
/// `None` when nothing listens, or when the owner's fds are not readable by this user —
/// which is why this only ever enriches an error message.
pub fn port_owner(port: u16) -> Option<u32> {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        // tcp6 is absent when IPv6 is disabled; that is not an error.
        if let Ok(text) = fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let targets: HashSet<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();

    let mut pids: Vec<u32> = fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().find(|&pid| holds_any(pid, &targets))
}

/// True if one of `pid`'s fds is a link whose target is in `targets`. Processes that
/// vanish mid-scan or deny access are simply skipped.
fn holds_any(pid: u32, targets: &HashSet<String>) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok).any(|fd| {
        fs::read_link(fd.path())
            .ok()
            .and_then(|target| target.to_str().map(|t| targets.contains(t)))
            .unwrap_or(false)
    })
}

/// Inodes of LISTEN (`0A`) sockets on `port` in one `/proc/net/tcp`-format table.
///
/// Line layout: `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode`,
/// with `local_address` as `HEXADDR:HEXPORT`.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1) // header
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let local = fields.get(1)?;
            let state = fields.get(3)?;
            let inode: u64 = fields.get(9)?.parse().ok()?;
            let (_, hex_port) = local.rsplit_once(':')?;
            let local_port = u16::from_str_radix(hex_port, 16).ok()?;
            // Inode 0 means the socket is already gone (e.g. TIME_WAIT), never ours to find.
            (*state == "0A" && local_port == port && inode != 0).then_some(inode)
        })
        .collect()
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns `(old_soft, new_soft)`.
///
/// A gateway with `maxClients` 1024 plus connectors needs more than the common default
/// soft limit of 1024 fds. When the hard limit is unlimited the kernel still refuses
/// anything above `fs.nr_open`, so that is used as the ceiling.
pub fn raise_nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let old: u64 = lim.rlim_cur;
    let mut target: u64 = lim.rlim_max;
    if target == libc::RLIM_INFINITY {
        target = fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20);
    }
    if target <= old {
        return Ok((old, old));
    }
    lim.rlim_cur = target;
    // SAFETY: `lim` is a valid rlimit; only the soft limit changed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((old, target))
}

/// `kill(2)`: sends `sig` (a libc signal number; 0 only checks existence) to `pid`.
///
/// Refuses pid 0 and pids above `i32::MAX`: cast to `pid_t` they would mean "my process
/// group" or a negative group id, and a corrupt lock payload must never make `emonkd stop`
/// signal anything but one process.
pub fn send_signal(pid: u32, sig: i32) -> io::Result<()> {
    let target = match libc::pid_t::try_from(pid) {
        Ok(p) if p > 0 => p,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to signal pid {pid}: not a single process"),
            ));
        }
    };
    // SAFETY: kill has no memory-safety preconditions; the pid was checked above.
    if unsafe { libc::kill(target, sig) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Milliseconds since the Unix epoch; 0 if the clock is set before 1970.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Current UTC time as RFC 3339 with milliseconds, e.g. `2026-11-25T08:40:00.123Z`.
pub fn now_rfc3339() -> String {
    format_rfc3339_ms(unix_ms())
}

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC with milliseconds.
pub fn format_rfc3339_ms(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let ms = unix_ms % 1000;
    // u64 seconds / 86400 fits easily in i64.
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let sod = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian `(year, month 1-12, day 1-31)`.
///
/// Howard Hinnant's `civil_from_days`: shift the year to start in March so the leap day
/// is the last day of the year, then split into 400-year eras of exactly 146 097 days.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days from 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let y = yoe + era * 400 + i64::from(m <= 2);
    // Both are in range by construction, so the conversions cannot fail.
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn parse_stat_splits_after_last_paren() {
        // comm "a) b (c))" contains spaces and ')' — a naive split would be off by fields.
        let mut line = String::from("4242 (a) b (c))) S");
        for field in 4..=21 {
            line.push_str(&format!(" {field}"));
        }
        line.push_str(" 987654 55 66\n");
        assert_eq!(
            parse_stat(line.as_bytes()),
            Some(Stat {
                state: 'S',
                start_time: 987_654
            })
        );
        assert_eq!(parse_stat(b"4242 (x) S 1 2"), None);
        assert_eq!(parse_stat(b"no parens"), None);
    }

    #[test]
    fn own_start_time_is_known_and_stable() {
        let pid = std::process::id();
        let first = start_time(pid).expect("own /proc/PID/stat readable");
        assert_eq!(start_time(pid), Some(first));
        assert!(is_same_process(pid, first));
        assert!(!is_same_process(pid, first + 1));
        assert!(!is_same_process(0, first));
        assert_eq!(start_time(0), None);
    }

    #[test]
    fn own_process_name_is_readable() {
        let name = process_name(std::process::id()).expect("own comm");
        assert!(!name.is_empty() && !name.ends_with('\n'));
    }

    #[test]
    fn listening_inodes_parses_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 12346 1 0000000000000000 20 4 30 10 -1\n\
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(listening_inodes(table, 8080), vec![12345]);
        assert_eq!(listening_inodes(table, 22), vec![999]);
        assert!(listening_inodes(table, 80).is_empty());
    }

    #[test]
    fn port_owner_finds_own_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(port_owner(port), Some(std::process::id()));
        drop(listener);
    }

    #[test]
    fn port_owner_finds_own_ipv6_listener() {
        // Hosts without IPv6 cannot bind [::1]; there is nothing to check there.
        let Ok(listener) = TcpListener::bind("[::1]:0") else {
            return;
        };
        let port = listener.local_addr().unwrap().port();
        assert_eq!(port_owner(port), Some(std::process::id()));
    }

    #[test]
    fn port_owner_none_when_nothing_listens() {
        // Port 0 is never a listening port, so this cannot race other tests' listeners.
        assert_eq!(port_owner(0), None);
    }

    #[test]
    fn raise_nofile_limit_never_lowers() {
        let (old, new) = raise_nofile_limit().unwrap();
        assert!(new >= old);
        // Idempotent: a second call starts where the first ended.
        let (old2, new2) = raise_nofile_limit().unwrap();
        assert_eq!(old2, new);
        assert_eq!(new2, new);
    }

    #[test]
    fn send_signal_checks_pid() {
        send_signal(std::process::id(), 0).unwrap();
        for bad in [0, u32::MAX, 1 << 31] {
            let err = send_signal(bad, 0).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn civil_from_days_known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(951_782_400 / 86_400), (2000, 2, 29));
        assert_eq!(civil_from_days(4_107_542_400 / 86_400), (2100, 3, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn rfc3339_formatting() {
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        // Expected value cross-checked with Python's datetime.fromtimestamp(..., utc).
        assert_eq!(format_rfc3339_ms(1_795_596_000_123), "2026-11-25T08:40:00.123Z");
        assert_eq!(format_rfc3339_ms(951_868_799_999), "2000-02-29T23:59:59.999Z");
    }

    #[test]
    fn now_rfc3339_shape() {
        let now = now_rfc3339();
        let b = now.as_bytes();
        assert_eq!(b.len(), 24, "{now}");
        for (i, c) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (23, b'Z'),
        ] {
            assert_eq!(b[i], c, "{now}");
        }
        assert!(now.as_str() >= "2024");
        assert!(unix_ms() > 1_700_000_000_000);
    }
}
