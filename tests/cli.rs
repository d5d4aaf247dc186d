//! The command line through the real binary: `--version`, `help`, usage errors, `status`
//! (text and JSON, running or not) and `call` (results, streamed chunks, errors, auth, and
//! how it finds the gateway).

mod support;

use std::thread;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Gateway, Home, Watchdog, code_of, eventually, stderr_of, stdout_of};

const WD: Duration = Duration::from_secs(30);

/// Every subcommand the contract lists (besides `service`, checked separately).
const SUBCOMMANDS: &[&str] = &["run", "call", "status", "stop", "restart", "check-config"];

fn ok_stdout(home: &Home, args: &[&str]) -> String {
    let out = home.cli(args);
    assert_eq!(
        code_of(&out),
        0,
        "emonkd {args:?}: stdout:\n{}\nstderr:\n{}",
        stdout_of(&out),
        stderr_of(&out)
    );
    stdout_of(&out)
}

fn json_stdout(home: &Home, args: &[&str]) -> Value {
    let so = ok_stdout(home, args);
    serde_json::from_str(&so).unwrap_or_else(|e| panic!("emonkd {args:?}: not JSON ({e}):\n{so}"))
}

fn stop(gw: &mut Gateway) {
    gw.signal(libc::SIGTERM);
    let st = gw.wait_exit(Duration::from_secs(6)).expect("stops");
    assert!(st.success(), "{st:?}\n{}", gw.log.text());
}

#[test]
fn version() {
    let _w = Watchdog::new("version", WD);
    let home = Home::new("{}");
    for flag in ["--version", "-V"] {
        assert_eq!(ok_stdout(&home, &[flag]), "emonkd 0.1.0\n");
    }
}

#[test]
fn help_lists_every_subcommand() {
    let _w = Watchdog::new("help", WD);
    let home = Home::new("{}");
    for args in [&["help"][..], &["--help"][..], &["-h"][..]] {
        let so = ok_stdout(&home, args);
        assert!(so.contains("Usage: emonkd"), "{so}");
        for sub in SUBCOMMANDS {
            assert!(
                so.lines().any(|l| l.trim_start().starts_with(sub)),
                "emonkd {args:?} does not list {sub}:\n{so}"
            );
        }
        // `service` is in the contract; if the binary has it, help must list it too.
        let service = home.cli(&["service", "--help"]);
        if code_of(&service) == 0 {
            assert!(so.contains("service"), "{so}");
        }
    }
    // Every subcommand has --help (and `help SUB` is the same).
    for sub in SUBCOMMANDS {
        let a = ok_stdout(&home, &[sub, "--help"]);
        assert!(a.contains(&format!("Usage: emonkd {sub}")), "{a}");
        assert!(a.contains("--config"), "every subcommand takes --config: {a}");
        let b = ok_stdout(&home, &["help", sub]);
        assert_eq!(a, b);
    }
    let run = ok_stdout(&home, &["help", "run"]);
    for flag in ["--port", "--bind", "--config", "--verbose"] {
        assert!(run.contains(flag), "help run lacks {flag}:\n{run}");
    }
    let call = ok_stdout(&home, &["help", "call"]);
    for flag in ["--url", "--token", "--token-file", "--password", "--timeout-ms"] {
        assert!(call.contains(flag), "help call lacks {flag}:\n{call}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let _w = Watchdog::new("usage", WD);
    let home = Home::new("{}");
    for args in [
        &["bogus"][..],
        &["run", "--bogus"][..],
        &["status", "--nope"][..],
        &["run", "--port", "notaport"][..],
        &["run", "--port", "70000"][..],
        &["run", "--bind", "moon"][..],
        &["call"][..],
        &[][..],
    ] {
        let out = home.cli(args);
        assert_eq!(code_of(&out), 2, "emonkd {args:?}: {}", stderr_of(&out));
        assert!(!stderr_of(&out).is_empty(), "emonkd {args:?} explains on stderr");
        assert!(
            stdout_of(&out).is_empty(),
            "emonkd {args:?}: usage errors go to stderr, not stdout: {}",
            stdout_of(&out)
        );
    }
}

#[test]
fn status_not_running_exits_3() {
    let _w = Watchdog::new("status_not_running", WD);
    let home = Home::new("{}");
    let out = home.cli(&["status"]);
    assert_eq!(code_of(&out), 3, "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains("no gateway is running"),
        "{}",
        stdout_of(&out)
    );
    let out = home.cli(&["status", "--json"]);
    assert_eq!(code_of(&out), 3);
    let v: Value = serde_json::from_str(&stdout_of(&out)).expect("JSON");
    assert_eq!(v["running"], false, "{v}");
}

#[test]
fn status_running_text_and_json() {
    let _w = Watchdog::new("status_running", WD);
    let home = Home::new("{}");
    let mut gw = Gateway::start(&home);
    let so = ok_stdout(&home, &["status"]);
    assert!(
        so.contains(&format!("pid {}", gw.pid)) && so.contains(&gw.url()),
        "status should show pid {} and {}:\n{so}",
        gw.pid,
        gw.url()
    );
    assert!(so.contains("version: 0.1.0"), "the live probe worked:\n{so}");

    let v = json_stdout(&home, &["status", "--json"]);
    assert_eq!(v["running"], true, "{v}");
    assert_eq!(v["pid"], gw.pid, "{v}");
    assert_eq!(v["url"], gw.url(), "{v}");
    assert_eq!(v["probe"]["port"], gw.port, "{v}");
    assert_eq!(v["probe"]["pid"], gw.pid, "{v}");
    assert!(v["probeError"].is_null(), "{v}");
    stop(&mut gw);
    // Once stopped, status says so.
    assert_eq!(code_of(&home.cli(&["status"])), 3);
}

/// A gateway that holds the lock but does not answer (frozen: SIGSTOP) is exit 4, within the
/// probe's bound, so a container health check built on `status` fails; once it runs again,
/// exit 0 again.
#[test]
fn status_frozen_gateway_exits_4() {
    let _w = Watchdog::new("status_frozen", WD);
    let home = Home::new("{}");
    let mut gw = Gateway::start(&home);
    gw.signal(libc::SIGSTOP);
    // The probe's bound is 3 s; the rest is slack for a loaded machine.
    let bound = Duration::from_secs(10);
    let started = std::time::Instant::now();
    let out = home.run_cli(&["status"], bound);
    let took = started.elapsed();
    let so = stdout_of(&out);
    assert_eq!(code_of(&out), 4, "stdout:\n{so}\nstderr:\n{}", stderr_of(&out));
    assert!(
        so.contains(&format!("pid {}", gw.pid)) && so.contains("probe failed"),
        "status names the frozen gateway and the failed probe:\n{so}"
    );
    assert!(
        took >= Duration::from_secs(2),
        "it waited for the probe: {took:?}"
    );

    let out = home.run_cli(&["status", "--json"], bound);
    assert_eq!(code_of(&out), 4, "{}", stderr_of(&out));
    let v: Value = serde_json::from_str(&stdout_of(&out)).expect("JSON");
    assert_eq!(v["running"], true, "{v}");
    assert!(v["probe"].is_null() && v["probeError"].is_string(), "{v}");

    gw.signal(libc::SIGCONT);
    assert_eq!(code_of(&home.cli(&["status"])), 0, "answers again after SIGCONT");
    stop(&mut gw);
}

#[test]
fn call_ping_and_status() {
    let _w = Watchdog::new("call_ping", WD);
    let home = Home::new("{}");
    let mut gw = Gateway::start(&home);
    let v = json_stdout(&home, &["call", "gateway.ping"]);
    assert!(v["ts"].as_u64().unwrap_or(0) > 1_600_000_000_000, "{v}");
    let v = json_stdout(&home, &["call", "gateway.ping", "{}"]);
    assert!(v["ts"].is_u64(), "{v}");

    let _watcher = gw.operator();
    let v = json_stdout(&home, &["call", "gateway.status"]);
    assert_eq!(v["version"], "0.1.0", "{v}");
    assert_eq!(v["pid"], gw.pid, "{v}");
    assert_eq!(v["port"], gw.port, "{v}");
    // This test's operator plus the call's own connection.
    assert!(v["clients"]["total"].as_u64().unwrap() >= 2, "{v}");
    assert!(v["clients"]["operators"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(v["clients"]["agents"], 0, "{v}");
    stop(&mut gw);
}

#[test]
fn call_errors() {
    let _w = Watchdog::new("call_errors", WD);
    let home = Home::new("{}");
    let mut gw = Gateway::start(&home);
    for bad in ["{not json", "[1,2]", "\"text\""] {
        let out = home.cli(&["call", "gateway.ping", bad]);
        assert_eq!(code_of(&out), 2, "{bad}: {}", stderr_of(&out));
        assert!(stderr_of(&out).contains("PARAMS_JSON"), "{}", stderr_of(&out));
    }
    let out = home.cli(&["call", "no.such.method"]);
    assert_eq!(code_of(&out), 1, "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("UNKNOWN_METHOD"), "{}", stderr_of(&out));
    assert!(stdout_of(&out).is_empty(), "{}", stdout_of(&out));
    // agent.* with no agent connected.
    let out = home.cli(&["call", "agent.echo"]);
    assert_eq!(code_of(&out), 1, "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("UNAVAILABLE"), "{}", stderr_of(&out));
    // A URL that is not ws:// is a usage error.
    let out = home.cli(&["call", "gateway.ping", "--url", "http://127.0.0.1:1/"]);
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    stop(&mut gw);
}

#[test]
fn call_authenticates_with_the_config_token_unless_told_otherwise() {
    let _w = Watchdog::new("call_auth", WD);
    let home = Home::new(r#"{"gateway": {"auth": {"token": "cli-t0ken"}}}"#);
    let mut gw = Gateway::start(&home);
    // Default: the config's token.
    let v = json_stdout(&home, &["call", "gateway.ping"]);
    assert!(v["ts"].is_u64(), "{v}");
    // An explicit right token.
    let v = json_stdout(&home, &["call", "gateway.ping", "--token", "cli-t0ken"]);
    assert!(v["ts"].is_u64(), "{v}");
    // A wrong one.
    let out = home.cli(&["call", "gateway.ping", "--token", "wrong"]);
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 1, "{err}");
    assert!(err.contains("UNAUTHORIZED"), "{err}");
    assert!(!err.contains("cli-t0ken"), "the real token never shows: {err}");
    // status probes with the config's token too.
    let v = json_stdout(&home, &["status", "--json"]);
    assert_eq!(v["probe"]["pid"], gw.pid, "{v}");
    stop(&mut gw);
}

#[test]
fn call_reads_the_token_from_a_file() {
    use std::os::unix::fs::PermissionsExt;
    let _w = Watchdog::new("call_token_file", WD);
    // The config has no token of its own to fall back on for this test's wrong-token case:
    // the token file is what authenticates.
    let home = Home::new(r#"{"gateway": {"auth": {"token": "f1le-t0ken"}}}"#);
    let mut gw = Gateway::start(&home);
    let file = home.path().join("cli.token");
    std::fs::write(&file, "f1le-t0ken\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = file.to_str().unwrap();
    let out = home.cli(&["call", "gateway.ping", "--token-file", path]);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains("warning"), "{}", stderr_of(&out));

    // Readable by others: it still works, with a warning that names the file.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = home.cli(&["call", "gateway.ping", "--token-file", path]);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(err.contains("cli.token") && err.contains("chmod 600"), "{err}");
    assert!(!err.contains("f1le-t0ken"), "{err}");

    // A wrong token in the file is refused like a wrong --token.
    std::fs::write(&file, "wrong\n").unwrap();
    let out = home.cli(&["call", "gateway.ping", "--token-file", path]);
    assert_eq!(code_of(&out), 1, "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("UNAUTHORIZED"), "{}", stderr_of(&out));

    // Usage errors, exit 2: both flags, a missing file, an empty file.
    let out = home.cli(&["call", "gateway.ping", "--token", "x", "--token-file", path]);
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("--token-file"), "{}", stderr_of(&out));
    let missing = home.path().join("nope.token");
    let out = home.cli(&["call", "gateway.ping", "--token-file", missing.to_str().unwrap()]);
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("nope.token"), "{}", stderr_of(&out));
    std::fs::write(&file, "\n").unwrap();
    let out = home.cli(&["call", "gateway.ping", "--token-file", path]);
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("empty"), "{}", stderr_of(&out));
    stop(&mut gw);
}

#[test]
fn call_with_explicit_url() {
    let _w = Watchdog::new("call_url", WD);
    let home = Home::new("{}");
    let mut gw = Gateway::start(&home);
    // Another home, with no gateway of its own: --url alone says where to go.
    let other = Home::new("{}");
    let out = other.cli(&["call", "gateway.status"]);
    assert_eq!(code_of(&out), 3, "{}", stderr_of(&out));
    let v = json_stdout(&other, &["call", "gateway.status", "--url", &gw.url()]);
    assert_eq!(v["pid"], gw.pid, "{v}");
    // An explicit URL where nothing listens fails (1), it does not fall back to the lock.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("ws://127.0.0.1:{}", dead.local_addr().unwrap().port());
    drop(dead);
    let out = home.cli(&["call", "gateway.ping", "--url", &dead_url]);
    assert_eq!(code_of(&out), 1, "{}", stderr_of(&out));
    stop(&mut gw);
}

#[test]
fn call_when_no_gateway_runs_exits_3() {
    let _w = Watchdog::new("call_not_running", WD);
    let home = Home::new("{}");
    let out = home.cli(&["call", "gateway.ping"]);
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 3, "{err}");
    assert!(err.contains("no gateway is running"), "{err}");
    assert!(stdout_of(&out).is_empty());
}

/// Wait until the gateway reports an agent connected (the router has registered it).
fn wait_agent(gw: &Gateway) {
    let mut op = gw.operator();
    let mut n = 0;
    let seen = eventually(Duration::from_secs(5), || {
        n += 1;
        let r = op.request(&format!("s{n}"), "gateway.status", json!({}));
        (r["result"]["clients"]["agents"] == 1).then_some(())
    });
    assert!(seen.is_some(), "the agent never showed up in gateway.status");
}

#[test]
fn call_prints_streamed_chunks_then_the_final_result() {
    let _w = Watchdog::new("call_stream", WD);
    let home = Home::new("{}");
    let mut gw = Gateway::start(&home);
    let mut agent = gw.client(None, "agent", "operator");
    wait_agent(&gw);
    let agent_thread = thread::spawn(move || {
        let req = agent
            .next_non_tick(Duration::from_secs(15))
            .expect("the agent gets the request");
        assert_eq!(req["type"], "request", "{req}");
        assert_eq!(req["method"], "agent.echo", "{req}");
        let id = req["requestId"].as_str().unwrap().to_owned();
        for i in 1..=3 {
            agent.send_json(
                &json!({"type": "response", "requestId": id, "final": false, "result": {"chunk": i}}),
            );
        }
        agent.send_json(&json!({"type": "response", "requestId": id, "final": true,
            "result": {"done": true, "echo": req["params"]}}));
        agent
    });
    let so = ok_stdout(&home, &["call", "agent.echo", r#"{"text":"hi"}"#]);
    let _agent = agent_thread.join().expect("agent thread");
    let lines: Vec<&str> = so.lines().collect();
    assert!(lines.len() >= 4, "{so}");
    for (i, line) in lines[..3].iter().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(v, json!({"chunk": i + 1}), "chunk line {i}: {so}");
    }
    let rest = lines[3..].join("\n");
    let fin: Value = serde_json::from_str(&rest).unwrap_or_else(|e| panic!("final result ({e}):\n{so}"));
    assert_eq!(fin, json!({"done": true, "echo": {"text": "hi"}}), "{so}");
    stop(&mut gw);
}

#[test]
fn call_timeout_ms_bounds_the_wait() {
    let _w = Watchdog::new("call_timeout", WD);
    let home = Home::new("{}");
    let mut gw = Gateway::start(&home);
    // An agent that never answers.
    let _agent = gw.client(None, "agent", "operator");
    wait_agent(&gw);
    let t0 = std::time::Instant::now();
    let out = home.cli(&["call", "agent.slow", "--timeout-ms", "300"]);
    let took = t0.elapsed();
    assert_eq!(code_of(&out), 1, "{}", stderr_of(&out));
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(stdout_of(&out).is_empty(), "{}", stdout_of(&out));
    stop(&mut gw);
}
