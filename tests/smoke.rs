//! The smallest end-to-end check: the real binary starts on port 0, answers ping over the
//! wire, and stops cleanly on SIGTERM.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Gateway, Home, Watchdog};

#[test]
fn starts_answers_ping_and_stops_on_sigterm() {
    let _w = Watchdog::new("smoke", Duration::from_secs(30));
    let home = Home::new("{}");
    let mut gw = Gateway::start(&home);
    let mut c = gw.operator();
    let r = c.request("1", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].as_u64().unwrap() > 0, "{r}");
    gw.signal(libc::SIGTERM);
    let status = gw
        .wait_exit(Duration::from_secs(6))
        .expect("exits within the stop bound");
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        gw.log.text()
    );
}
