//! sd_notify through the real binary: a fake `$NOTIFY_SOCKET` (a datagram socket in a temp
//! dir, or an abstract one) receives READY=1, RELOADING=1, READY=1 again, STOPPING=1, and
//! with `$WATCHDOG_USEC` a steady stream of WATCHDOG=1.

mod support;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use support::{Gateway, Home, Watchdog, listening_port};

/// Spawn `emonkd run` in `home` with `$NOTIFY_SOCKET` at `notify.sock` there (then `env`);
/// the socket that receives its notifications, and the gateway.
fn spawn_notifying(home: &Home, env: &[(&str, &str)]) -> (UnixDatagram, Gateway) {
    let sock = home.path().join("notify.sock");
    let rx = UnixDatagram::bind(&sock).unwrap();
    let mut vars = vec![("NOTIFY_SOCKET", sock.to_str().unwrap())];
    vars.extend_from_slice(env);
    let gw = Gateway::spawn(home, &["run", "--port", "0"], &vars);
    (rx, gw)
}

/// Receive notifications, skipping `WATCHDOG=1`, until one starts with `prefix`.
fn expect(rx: &UnixDatagram, prefix: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {prefix} within {timeout:?}; got {seen:?}");
        rx.set_read_timeout(Some(left)).unwrap();
        let Ok(len) = rx.recv(&mut buf) else {
            panic!("no {prefix} within {timeout:?}; got {seen:?}");
        };
        let msg = String::from_utf8_lossy(&buf[..len]).into_owned();
        if msg.starts_with(prefix) {
            return msg;
        }
        if !msg.starts_with("WATCHDOG=1") {
            seen.push(msg);
        }
    }
}

fn field<'a>(msg: &'a str, key: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn ready_reloading_ready_stopping() {
    let _w = Watchdog::new("sd_notify sequence", Duration::from_secs(60));
    let home = Home::new("{}");
    let (rx, mut gw) = spawn_notifying(&home, &[]);
    let ready = expect(&rx, "READY=1", Duration::from_secs(10));
    // READY=1 comes only once the socket listens: the log line is already there.
    let port = listening_port(&gw.log, 0).expect("listening");
    assert_eq!(
        field(&ready, "MAINPID"),
        Some(gw.pid.to_string().as_str()),
        "{ready}"
    );
    assert_eq!(
        field(&ready, "STATUS"),
        Some(format!("listening on ws://127.0.0.1:{port}").as_str()),
        "{ready}"
    );

    gw.signal(libc::SIGHUP);
    let reloading = expect(&rx, "RELOADING=1", Duration::from_secs(10));
    let usec: u64 = field(&reloading, "MONOTONIC_USEC")
        .expect("MONOTONIC_USEC")
        .parse()
        .unwrap();
    assert!(usec > 0, "{reloading}");
    let again = expect(&rx, "READY=1", Duration::from_secs(10));
    assert_eq!(field(&again, "MAINPID"), Some(gw.pid.to_string().as_str()));

    // A reload whose config is broken still answers RELOADING=1 then READY=1, so
    // `systemctl reload` under Type=notify-reload does not hang.
    home.write_config("{ not json");
    gw.signal(libc::SIGHUP);
    expect(&rx, "RELOADING=1", Duration::from_secs(10));
    let kept = expect(&rx, "READY=1", Duration::from_secs(10));
    assert!(
        field(&kept, "STATUS").unwrap().contains("reload failed"),
        "{kept}"
    );

    gw.signal(libc::SIGTERM);
    expect(&rx, "STOPPING=1", Duration::from_secs(10));
    let st = gw.wait_exit(Duration::from_secs(6)).expect("exits");
    assert!(st.success(), "{st:?}\n{}", gw.log.text());
}

#[test]
fn abstract_socket_and_watchdog_pings() {
    let _w = Watchdog::new("sd_notify watchdog", Duration::from_secs(60));
    use std::os::linux::net::SocketAddrExt;
    let name = format!("emonk-test-notify-{}-{:?}", std::process::id(), Instant::now());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let rx = UnixDatagram::bind_addr(&addr).unwrap();
    let home = Home::new("{}");
    let mut gw = Gateway::spawn(
        &home,
        &["run", "--port", "0"],
        &[
            ("NOTIFY_SOCKET", &format!("@{name}")),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    expect(&rx, "READY=1", Duration::from_secs(10));
    // Every 100 ms: five pings well within two seconds.
    let start = Instant::now();
    for _ in 0..5 {
        expect(&rx, "WATCHDOG=1", Duration::from_secs(2));
    }
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    gw.signal(libc::SIGTERM);
    expect(&rx, "STOPPING=1", Duration::from_secs(10));
    assert!(gw.wait_exit(Duration::from_secs(6)).expect("exits").success());
}

#[test]
fn watchdog_for_another_pid_is_ignored() {
    let _w = Watchdog::new("sd_notify watchdog pid", Duration::from_secs(60));
    let home = Home::new("{}");
    let (rx, mut gw) = spawn_notifying(&home, &[("WATCHDOG_USEC", "100000"), ("WATCHDOG_PID", "1")]);
    expect(&rx, "READY=1", Duration::from_secs(10));
    rx.set_read_timeout(Some(Duration::from_millis(400))).unwrap();
    let mut buf = [0u8; 512];
    if let Ok(len) = rx.recv(&mut buf) {
        panic!("unexpected {:?}", String::from_utf8_lossy(&buf[..len]));
    }
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(Duration::from_secs(6)).expect("exits").success());
}

#[test]
fn watchdog_pings_continue_while_a_connector_long_polls() {
    use support::fake_telegram::FakeTelegram;
    use support::telegram::{TOKEN, config};
    let _w = Watchdog::new("sd_notify watchdog telegram", Duration::from_secs(60));
    let fake = FakeTelegram::start(TOKEN);
    let patch = serde_json::json!({"channels": {"telegram": {"pollTimeoutSecs": 5}}});
    let home = Home::new(&config(&fake, patch));
    let (rx, mut gw) = spawn_notifying(&home, &[("WATCHDOG_USEC", "200000")]);
    expect(&rx, "READY=1", Duration::from_secs(10));
    assert!(
        fake.wait_polling(1, Duration::from_secs(10)),
        "the connector polls"
    );
    // The connector answers probes from its own loop while its long poll is in flight.
    for _ in 0..10 {
        expect(&rx, "WATCHDOG=1", Duration::from_secs(2));
    }
    assert!(
        !gw.log.text().contains("not sending WATCHDOG=1"),
        "{}",
        gw.log.text()
    );
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(Duration::from_secs(6)).expect("exits").success());
}
