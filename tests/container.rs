//! The image built from `contrib/docker/Dockerfile`, really run (README, "Containers").
//! These tests need a container engine and the image, so they are `#[ignore]`d in a plain
//! `cargo test`; `contrib/docker/test.sh` (run by `.ci/run`) builds the image and runs them
//! with `--ignored`, as root (secret files are given to the image's uid).
//!
//! What they check: the container starts and logs `listening on`; a client on the host gets
//! `hello_ok` over a published port with the token from a secret file (and none without
//! it); the image's health check passes, fails once the gateway is frozen (SIGSTOP) and
//! passes again after SIGCONT; the gateway runs as the image's non-root uid; `docker stop`
//! exits 0 well within 5 s; messages spooled from the Telegram fake survive `docker rm -f`
//! and are delivered once by a new container on the same volume, where a second gateway
//! gives up on the lock; `--bind lan` without auth exits 78 with the message. The compose
//! file's sidecar is checked by `test.sh` itself.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::container::{Container, IMAGE_UID, Volume, engine_ok, image, own_for_image};
use support::fake_telegram::FakeTelegram;
use support::telegram::{TOKEN, next_message};
use support::{Watchdog, Ws, connect_frame};

const WD: Duration = Duration::from_secs(240);
const GATEWAY_TOKEN: &str = "container-test-gateway-token";

/// A temp dir with `emonk.json` (`config`) and `secrets/` holding `secrets` (name, content),
/// each owned by the image's uid, mode 0600, as the README tells users to do.
fn host_files(config: &Value, secrets: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("emonk.json");
    std::fs::write(&cfg, config.to_string()).expect("write config");
    own_for_image(&cfg, 0o644);
    let sec = dir.path().join("secrets");
    std::fs::create_dir(&sec).expect("secrets dir");
    for (name, content) in secrets {
        let p = sec.join(name);
        std::fs::write(&p, format!("{content}\n")).expect("write secret");
        own_for_image(&p, 0o600);
    }
    dir
}

/// `-v` arguments mounting `dir`'s config and secrets where the image expects them.
fn mounts(dir: &Path) -> Vec<String> {
    vec![
        "-v".into(),
        format!("{}:/etc/emonk/emonk.json:ro", dir.join("emonk.json").display()),
        "-v".into(),
        format!("{}:/run/secrets:ro", dir.join("secrets").display()),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Connect to the gateway on the host's `port` with `token`; the first frame back.
fn hello(port: u16, token: Option<&str>) -> Value {
    let mut ws = Ws::open(port);
    ws.send_json(&connect_frame(token, "operator", "operator"));
    ws.next_json(Duration::from_secs(10))
        .expect("an answer to connect")
}

#[test]
#[ignore = "needs a container engine and the image: run contrib/docker/test.sh"]
fn image_metadata() {
    let _w = Watchdog::new("image_metadata", WD);
    let img = image();
    let cfg: Value = serde_json::from_str(&engine_ok(&["image", "inspect", "-f", "{{json .Config}}", &img]))
        .expect("image config JSON");
    assert_eq!(cfg["User"], "emonk:emonk", "{cfg}");
    assert_eq!(cfg["Entrypoint"], json!(["emonkd", "run"]), "{cfg}");
    assert_eq!(cfg["StopSignal"], "SIGTERM", "{cfg}");
    assert_eq!(
        cfg["Healthcheck"]["Test"],
        json!(["CMD", "emonkd", "status"]),
        "{cfg}"
    );
    assert!(cfg["Volumes"].get("/var/lib/emonk").is_some(), "{cfg}");
    let env = cfg["Env"].to_string();
    for want in [
        "EMONK_CONFIG=/etc/emonk/emonk.json",
        "EMONK_STATE_DIR=/var/lib/emonk",
    ] {
        assert!(env.contains(want), "{want} in {env}");
    }
}

#[test]
#[ignore = "needs a container engine and the image: run contrib/docker/test.sh"]
fn serves_the_host_is_healthy_until_frozen_and_stops_fast() {
    let _w = Watchdog::new("serves_and_stops", WD);
    let config = json!({"gateway": {"bind": "lan", "auth": {"tokenFile": "/run/secrets/gateway_token"}}});
    let dir = host_files(&config, &[("gateway_token", GATEWAY_TOKEN)]);
    let mut args = mounts(dir.path());
    // An ephemeral host port on loopback; health checked every second so the test is quick
    // (the check itself is the image's: `emonkd status`).
    args.extend(
        [
            "-p",
            "127.0.0.1::18789",
            "--health-interval",
            "1s",
            "--health-retries",
            "2",
            "--health-timeout",
            "8s",
        ]
        .map(String::from),
    );
    let c = Container::run("serve", &strs(&args), &[]);
    c.wait_log("listening on ws://0.0.0.0:18789", Duration::from_secs(30));

    // A client on the host: hello_ok with the token from the secret file, refused without.
    let port = c.published_port(18789);
    let ok = hello(port, Some(GATEWAY_TOKEN));
    assert_eq!(ok["type"], "hello_ok", "{ok}");
    let refused = hello(port, None);
    assert_eq!(refused["type"], "hello_error", "{refused}");

    // Not root: the gateway process runs as the image's uid and gid.
    let pid = c.host_pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    for key in ["Uid:", "Gid:"] {
        let ids: Vec<u32> = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .expect(key)
            .split_whitespace()
            .map(|n| n.parse().expect("id"))
            .collect();
        assert!(ids.iter().all(|&id| id == IMAGE_UID), "{key} {ids:?}");
    }
    // The secret never reaches the log.
    assert!(!c.logs().contains(GATEWAY_TOKEN), "{}", c.logs());

    // Healthy; frozen it fails (`status` exits 4 within its bound); thawed, healthy again.
    c.wait_health("healthy", Duration::from_secs(30));
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let started = Instant::now();
    let out = c.exec(&["emonkd", "status"], Duration::from_secs(20));
    let frozen_code = out.status.code();
    let took = started.elapsed();
    if frozen_code != Some(4) {
        unsafe { libc::kill(pid, libc::SIGCONT) };
    }
    assert_eq!(
        frozen_code,
        Some(4),
        "status of a frozen gateway: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(took < Duration::from_secs(10), "status took {took:?}");
    c.wait_health("unhealthy", Duration::from_secs(40));
    unsafe { libc::kill(pid, libc::SIGCONT) };
    c.wait_health("healthy", Duration::from_secs(30));

    // `docker stop` (SIGTERM to PID 1): exits 0, well within 5 s.
    let started = Instant::now();
    engine_ok(&["stop", &c.name]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "docker stop took {took:?}");
    assert_eq!(c.inspect("{{.State.ExitCode}}"), "0", "{}", c.logs());
}

#[test]
#[ignore = "needs a container engine and the image: run contrib/docker/test.sh"]
fn lan_without_auth_exits_78() {
    let _w = Watchdog::new("lan_without_auth", WD);
    let c = Container::run("noauth", &[], &["--bind", "lan"]);
    assert_eq!(c.wait_exit(Duration::from_secs(60)), 78, "{}", c.logs());
    let logs = c.logs();
    assert!(
        logs.contains("no auth is configured") && logs.contains("--bind loopback"),
        "the message says what to do: {logs}"
    );
}

#[test]
#[ignore = "needs a container engine and the image: run contrib/docker/test.sh"]
fn spool_survives_a_new_container_on_the_volume() {
    let _w = Watchdog::new("spool_survives", WD);
    let fake = FakeTelegram::start(TOKEN);
    let config = json!({
        "gateway": {"auth": {"tokenFile": "/run/secrets/gateway_token"}},
        "channels": {"telegram": {
            "enabled": true,
            "botTokenFile": "/run/secrets/telegram_token",
            "apiBaseUrl": fake.base_url(),
            "pollTimeoutSecs": 1,
            "allowFrom": ["*"],
        }}
    });
    let dir = host_files(
        &config,
        &[("gateway_token", GATEWAY_TOKEN), ("telegram_token", TOKEN)],
    );
    let volume = Volume::new("state");
    let mut args = mounts(dir.path());
    // The host's network, so the container reaches the fake on 127.0.0.1 and the host
    // reaches the gateway's loopback; port 0 so no fixed port is taken on the host.
    args.extend(["--network", "host", "-v"].map(String::from));
    args.push(format!("{}:/var/lib/emonk", volume.name));

    // First container: the messages are spooled (Telegram's offset moves past them only
    // after that), no agent is connected; then it is removed by force (SIGKILL).
    let first = Container::run("spool1", &strs(&args), &["--port", "0"]);
    first.listening_port();
    fake.push_message(42, 7, "one");
    let b = fake.push_message(42, 7, "two");
    let confirmed = support::eventually(Duration::from_secs(30), || {
        (fake.confirmed_offset() > b).then_some(())
    });
    assert!(
        confirmed.is_some(),
        "offset {} not past {b}:\n{}",
        fake.confirmed_offset(),
        first.logs()
    );
    first.remove();

    // A new container on the same volume delivers both, once each, in order.
    let second = Container::run("spool2", &strs(&args), &["--port", "0"]);
    let port = second.listening_port();
    let mut agent = Ws::open(port);
    agent.send_json(&connect_frame(Some(GATEWAY_TOKEN), "agent", "operator"));
    let hello = agent.next_json(Duration::from_secs(10)).expect("hello");
    assert_eq!(hello["type"], "hello_ok", "{hello}");
    let m1 = next_message(&mut agent, Duration::from_secs(20));
    let m2 = next_message(&mut agent, Duration::from_secs(20));
    assert_eq!(
        (m1["text"].as_str(), m2["text"].as_str()),
        (Some("one"), Some("two")),
        "{m1} {m2}"
    );
    // Nothing else arrives: no duplicate of either.
    match agent.next_non_tick(Duration::from_secs(3)) {
        Ok(frame) => panic!("unexpected frame after the two messages: {frame}"),
        Err(end) => assert!(matches!(end, support::End::Timeout), "the link stays up: {end:?}"),
    }
    agent.send_json(
        &json!({"type": "request", "requestId": "ack", "method": "events.ack",
        "params": {"cursor": m2["cursor"]}}),
    );
    let acked = agent.response("ack", Duration::from_secs(10));
    assert_eq!(acked["result"]["acked"], m2["cursor"], "{acked}");

    // The lock is on the volume too: a second gateway on it gives up (exit 1) instead of
    // polling the same bot and writing the same spool.
    let third = Container::run("spool3", &strs(&args), &["--port", "0"]);
    assert_eq!(third.wait_exit(Duration::from_secs(60)), 1, "{}", third.logs());
    assert!(
        third.logs().contains("gateway already running"),
        "{}",
        third.logs()
    );
}
