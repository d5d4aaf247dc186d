//! What the CLI tells the user about the gateway's life, through the real binary: an
//! `emonkd restart` whose new config is bad reports why and exits 78 (the gateway keeps
//! running on the old config), and a second `run` on the same config says at once who holds
//! the lock and what to do.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{Gateway, Home, Watchdog, Ws, code_of, connect_frame, listening_port, stderr_of, stdout_of};

/// Connect with `token`; the first answer (`hello_ok` or `hello_error`).
fn hello(port: u16, token: &str) -> serde_json::Value {
    let mut ws = Ws::open(port);
    ws.send_json(&connect_frame(Some(token), "operator", "operator"));
    ws.next_json(Duration::from_secs(5))
        .expect("an answer to connect")
}

#[test]
fn restart_with_a_bad_config_reports_it_and_exits_78_keeping_the_old_config() {
    let _w = Watchdog::new("restart bad config", Duration::from_secs(40));
    let home = Home::new(r#"{"gateway": {"auth": {"token": "one"}}}"#);
    let mut gw = Gateway::start(&home);
    assert_eq!(hello(gw.port, "one")["type"], "hello_ok");

    home.write_config(r#"{"gateway": {"auth": {"token": "two",}}}"#);
    let out = home.cli(&["restart"]);
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 78, "stdout:\n{}\nstderr:\n{err}", stdout_of(&out));
    assert!(err.contains("invalid JSON"), "says why: {err}");
    assert!(
        err.contains(&format!("pid {}", gw.pid)) && err.contains("emonkd check-config"),
        "says what happened and what to do: {err}"
    );
    assert!(
        !stdout_of(&out).contains("restarted gateway"),
        "{}",
        stdout_of(&out)
    );
    // The gateway runs on, on the old config.
    assert!(gw.alive());
    listening_port(&gw.log, 1).unwrap_or_else(|| panic!("no restart:\n{}", gw.log.text()));
    assert_eq!(hello(gw.port, "one")["type"], "hello_ok");
    assert_eq!(hello(gw.port, "two")["error"]["code"], "UNAUTHORIZED");
    // Its config does not load, so status cannot probe; that is no sign of a frozen gateway.
    let status = home.cli(&["status"]);
    assert_eq!(code_of(&status), 0, "{}", stderr_of(&status));
    assert!(
        stdout_of(&status).contains("probe not made: "),
        "{}",
        stdout_of(&status)
    );

    // Fixed, the next restart succeeds and uses it.
    home.write_config(r#"{"gateway": {"auth": {"token": "two"}}}"#);
    let out = home.cli(&["restart"]);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains("restarted gateway"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(hello(gw.port, "two")["type"], "hello_ok");
    gw.stop_ok();
}

#[test]
fn restart_to_an_address_that_cannot_be_bound_reports_it_and_exits_78() {
    let _w = Watchdog::new("restart unbindable", Duration::from_secs(40));
    let home = Home::new("{}");
    let mut gw = Gateway::start(&home);
    // A valid config whose address is not on this machine (TEST-NET-1).
    home.write_config(
        &json!({"gateway": {"bind": "custom", "customBindHost": "192.0.2.1", "auth": {"token": "t"}}})
            .to_string(),
    );
    let out = home.cli(&["restart"]);
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 78, "{err}\nlog:\n{}", gw.log.text());
    assert!(err.contains("192.0.2.1"), "names the address: {err}");
    assert!(gw.alive());
    assert_eq!(
        hello(gw.port, "any")["type"],
        "hello_ok",
        "still the old config, no auth"
    );
    gw.stop_ok();
}

#[test]
fn a_second_gateway_says_at_once_who_holds_the_lock_and_what_to_do() {
    let _w = Watchdog::new("second gateway", Duration::from_secs(30));
    let home = Home::new("{}");
    let mut first = Gateway::start(&home);
    let t0 = Instant::now();
    let mut second = Gateway::spawn(&home, &["run", "--port", "0"], &[]);
    let line = second
        .log
        .wait_for("holds the lock", Duration::from_secs(2))
        .unwrap_or_else(|| panic!("nothing said at once:\n{}", second.log.text()));
    assert!(t0.elapsed() < Duration::from_secs(2), "took {:?}", t0.elapsed());
    for part in [
        format!("pid {}", first.pid),
        home.config_path().display().to_string(),
        "up to 5 s".into(),
        "emonkd stop".into(),
        "--config".into(),
        "EMONK_ALLOW_MULTI_GATEWAY".into(),
    ] {
        assert!(line.contains(&part), "{part:?} missing from: {line}");
    }
    let st = second.wait_exit(Duration::from_secs(10)).expect("gives up");
    assert_eq!(st.code(), Some(1), "{}", second.log.text());
    let last = second.log.lines().last().cloned().unwrap_or_default();
    assert!(
        last.contains("emonkd stop"),
        "the final error says what to do too: {last}"
    );
    assert!(first.alive());
    first.stop_ok();
}
