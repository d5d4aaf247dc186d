//! Bad configurations through the real binary: `emonkd run --port 0` and
//! `emonkd check-config` both exit 78 with a message naming the problem. Also: a missing
//! default config means all defaults, `check-config` masks secrets, and the port/bind
//! priority (CLI > env > config) is proved by which port the daemon actually tries.

mod support;

use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;
use support::{Gateway, Home, Watchdog, code_of, run_to_end, stderr_of, stdout_of};

const LIMIT: Duration = Duration::from_secs(15);

/// Both `run --port 0` and `check-config` refuse `config` (with `env`) with exit 78 and a
/// stderr containing every one of `needles`. Returns the `run` stderr.
fn refused(config: &str, env: &[(&str, &str)], needles: &[&str]) -> String {
    let home = Home::new(config);
    refused_in(&home, &["run", "--port", "0"], env, needles);
    refused_in(&home, &["check-config"], env, needles)
}

fn refused_in(home: &Home, args: &[&str], env: &[(&str, &str)], needles: &[&str]) -> String {
    let out = home.run_cli_env(args, env, LIMIT);
    let err = stderr_of(&out);
    assert_eq!(
        code_of(&out),
        78,
        "emonkd {args:?}: expected exit 78; stderr:\n{err}"
    );
    for n in needles {
        assert!(err.contains(n), "emonkd {args:?}: stderr lacks {n:?}:\n{err}");
    }
    assert!(
        !err.contains("listening on"),
        "emonkd {args:?} must not start listening:\n{err}"
    );
    err
}

#[test]
fn invalid_json_names_line_and_column() {
    let _w = Watchdog::new("invalid_json", Duration::from_secs(30));
    let err = refused(
        "{\n  \"gateway\": {\n    \"port\": 1,\n  }\n}\n",
        &[],
        &["invalid JSON", "line 4", "column"],
    );
    assert!(err.contains("emonk.json"), "names the file: {err}");
}

#[test]
fn unknown_key_at_depth_is_named_with_its_path() {
    let _w = Watchdog::new("unknown_key", Duration::from_secs(30));
    refused(
        r#"{"gateway": {"auth": {"tokn": "x"}}}"#,
        &[],
        &["unknown key", "gateway.auth.tokn", "did you mean \"token\""],
    );
    refused(r#"{"gatewya": {}}"#, &[], &["unknown key", "gatewya"]);
}

#[test]
fn wrong_type_and_out_of_range_values() {
    let _w = Watchdog::new("wrong_type", Duration::from_secs(30));
    refused(
        r#"{"gateway": {"port": "abc"}}"#,
        &[],
        &["gateway.port", "expected an integer", "\"abc\""],
    );
    refused(
        r#"{"gateway": {"port": 70000}}"#,
        &[],
        &["gateway.port", "0 to 65535", "70000"],
    );
    refused(
        r#"{"gateway": {"maxClients": 0}}"#,
        &[],
        &["gateway.maxClients", "got 0"],
    );
    refused(
        r#"{"gateway": {"bind": "everywhere"}}"#,
        &[],
        &["gateway.bind", "loopback"],
    );
}

#[test]
fn token_file_missing_and_token_with_token_file() {
    let _w = Watchdog::new("token_file", Duration::from_secs(30));
    refused(
        r#"{"gateway": {"auth": {"tokenFile": "no-such.token"}}}"#,
        &[],
        &["gateway.auth.tokenFile", "no-such.token", "cannot read"],
    );
    let home = Home::new(r#"{"gateway": {"auth": {"token": "abc-token", "tokenFile": "gw.token"}}}"#);
    std::fs::write(home.path().join("gw.token"), "file-token\n").unwrap();
    for args in [&["run", "--port", "0"][..], &["check-config"][..]] {
        let err = refused_in(
            &home,
            args,
            &[],
            &["gateway.auth.token", "gateway.auth.tokenFile", "not both"],
        );
        assert!(!err.contains("abc-token") && !err.contains("file-token"), "{err}");
    }
}

#[test]
fn non_loopback_without_auth_says_how_to_fix() {
    let _w = Watchdog::new("lan_no_auth", Duration::from_secs(30));
    refused(
        r#"{"gateway": {"bind": "lan"}}"#,
        &[],
        &[
            "gateway.bind is \"lan\"",
            "no auth",
            "set gateway.auth.token",
            "--bind loopback",
        ],
    );
    refused(
        r#"{"gateway": {"bind": "custom"}}"#,
        &[],
        &["customBindHost", "not set"],
    );
    // --bind lan on the command line is checked the same way.
    let home = Home::new("{}");
    refused_in(
        &home,
        &["run", "--port", "0", "--bind", "lan"],
        &[],
        &["gateway.bind is \"lan\"", "no auth"],
    );
    // So is EMONK_GATEWAY_BIND.
    refused_in(
        &home,
        &["run", "--port", "0"],
        &[("EMONK_GATEWAY_BIND", "lan")],
        &["gateway.bind is \"lan\"", "no auth"],
    );
}

#[test]
fn lan_bind_with_a_token_starts() {
    let _w = Watchdog::new("lan_with_auth", Duration::from_secs(30));
    let home = Home::new(r#"{"gateway": {"auth": {"token": "lan-tok"}}}"#);
    let mut gw = Gateway::start_with(&home, &["run", "--port", "0", "--bind", "lan"], &[]);
    assert!(
        gw.log.text().contains("listening on ws://0.0.0.0:"),
        "{}",
        gw.log.text()
    );
    let c = gw.client(Some("lan-tok"), "operator", "operator");
    drop(c);
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(Duration::from_secs(6)).unwrap().success());
}

#[test]
fn explicit_missing_config_is_an_error() {
    let _w = Watchdog::new("missing_explicit", Duration::from_secs(30));
    let home = Home::new("{}");
    let missing = home.path().join("nope.json");
    let missing = missing.to_str().unwrap();
    // Via --config.
    refused_in(
        &home,
        &["run", "--port", "0", "--config", missing],
        &[],
        &[missing, "file not found"],
    );
    refused_in(
        &home,
        &["check-config", "--config", missing],
        &[],
        &[missing, "file not found"],
    );
    // Via EMONK_CONFIG.
    refused_in(
        &home,
        &["run", "--port", "0"],
        &[("EMONK_CONFIG", missing)],
        &[missing, "file not found"],
    );
}

#[test]
fn bad_env_port_names_the_variable() {
    let _w = Watchdog::new("env_port", Duration::from_secs(30));
    refused(
        "{}",
        &[("EMONK_GATEWAY_PORT", "abc")],
        &["EMONK_GATEWAY_PORT", "\"abc\""],
    );
}

#[test]
fn enabled_telegram_without_bot_token() {
    let _w = Watchdog::new("telegram_no_token", Duration::from_secs(30));
    refused(
        r#"{"channels": {"telegram": {"enabled": true}}}"#,
        &[],
        &["channels.telegram", "botToken"],
    );
}

#[test]
fn missing_default_config_runs_on_defaults() {
    let _w = Watchdog::new("default_config", Duration::from_secs(30));
    // The home has no .config/emonk/emonk.json, and no EMONK_CONFIG/XDG_CONFIG_HOME is set.
    let home = Home::new("{}");
    let mut cmd = home.command(&["check-config"]);
    cmd.env_remove("EMONK_CONFIG");
    let out = run_to_end(cmd, LIMIT);
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 0, "{err}");
    let default_path = home.path().join(".config/emonk/emonk.json");
    assert!(
        err.contains(default_path.to_str().unwrap()) && err.contains("all defaults"),
        "{err}"
    );
    let v: Value = serde_json::from_str(&stdout_of(&out)).expect("check-config prints JSON");
    assert_eq!(v["gateway"]["port"], 18789);
    assert_eq!(v["gateway"]["bind"], "loopback");

    let mut cmd = home.command(&["run", "--port", "0"]);
    cmd.env_remove("EMONK_CONFIG");
    let mut gw = Gateway::spawn_cmd(cmd);
    let port = support::listening_port(&gw.log, 0)
        .unwrap_or_else(|| panic!("did not start on defaults:\n{}", gw.log.text()));
    gw.port = port;
    let mut c = gw.operator();
    let st = c.request("s", "gateway.status", serde_json::json!({}));
    assert_eq!(st["result"]["bindMode"], "loopback", "{st}");
    assert_eq!(st["result"]["bind"], "127.0.0.1", "{st}");
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(Duration::from_secs(6)).unwrap().success());
}

#[test]
fn check_config_masks_secrets() {
    let _w = Watchdog::new("check_config_masks", Duration::from_secs(30));
    // An inline gateway token and a telegram token read from a file.
    let home = Home::new(
        r#"{"gateway": {"auth": {"token": "s3cr3t-value"}},
            "channels": {"telegram": {"enabled": true, "botTokenFile": "tg.token"}}}"#,
    );
    std::fs::write(home.path().join("tg.token"), "123456:tg-f1le-s3cret\n").unwrap();
    let out = home.run_cli(&["check-config"], LIMIT);
    let (so, se) = (stdout_of(&out), stderr_of(&out));
    assert_eq!(code_of(&out), 0, "{se}");
    for secret in ["s3cr3t-value", "tg-f1le-s3cret"] {
        assert!(
            !so.contains(secret) && !se.contains(secret),
            "{secret} leaked:\n{so}\n{se}"
        );
    }
    let v: Value = serde_json::from_str(&so).expect("valid JSON on stdout");
    assert_eq!(v["gateway"]["auth"]["token"], "***", "{v}");
    assert_eq!(v["channels"]["telegram"]["botToken"], "***", "{v}");
    assert!(
        v["channels"]["telegram"]["botTokenFile"]
            .as_str()
            .unwrap()
            .ends_with("tg.token"),
        "{v}"
    );
    assert!(se.contains("config OK"), "{se}");

    // The gateway token from a file, and a discord token inline.
    let home = Home::new(
        r#"{"gateway": {"auth": {"tokenFile": "gw.token"}},
            "channels": {"discord": {"enabled": true, "token": "d1sc0rd-s3cret"}}}"#,
    );
    std::fs::write(home.path().join("gw.token"), "gw-f1le-s3cret\n").unwrap();
    let out = home.run_cli(&["check-config"], LIMIT);
    let (so, se) = (stdout_of(&out), stderr_of(&out));
    assert_eq!(code_of(&out), 0, "{se}");
    for secret in ["gw-f1le-s3cret", "d1sc0rd-s3cret"] {
        assert!(
            !so.contains(secret) && !se.contains(secret),
            "{secret} leaked:\n{so}\n{se}"
        );
    }
    let v: Value = serde_json::from_str(&so).expect("valid JSON on stdout");
    assert_eq!(v["gateway"]["auth"]["token"], "***", "{v}");
    assert_eq!(v["channels"]["discord"]["token"], "***", "{v}");
}

/// A port some other socket (ours) is listening on.
fn busy_port() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

#[test]
fn port_priority_cli_over_env_over_config() {
    let _w = Watchdog::new("port_priority", Duration::from_secs(40));
    let (_busy, p) = busy_port();
    let ps = p.to_string();
    let in_use = format!("port {p} is in use");

    // The config's port is used when nothing overrides it: it is busy, so 78.
    let home = Home::new(&format!(r#"{{"gateway": {{"port": {p}}}}}"#));
    refused_in(&home, &["run"], &[], &[&in_use]);

    // --port beats the config.
    let gw = Gateway::start_with(&home, &["run", "--port", "0"], &[]);
    assert_ne!(gw.port, p);
    drop(gw);

    // EMONK_GATEWAY_PORT beats the config.
    let gw = Gateway::start_with(&home, &["run"], &[("EMONK_GATEWAY_PORT", "0")]);
    assert_ne!(gw.port, p);
    drop(gw);

    // EMONK_GATEWAY_PORT is used over a free config port (proved by the busy port).
    let home = Home::new(r#"{"gateway": {"port": 0}}"#);
    refused_in(&home, &["run"], &[("EMONK_GATEWAY_PORT", &ps)], &[&in_use]);

    // --port beats EMONK_GATEWAY_PORT.
    let gw = Gateway::start_with(&home, &["run", "--port", "0"], &[("EMONK_GATEWAY_PORT", &ps)]);
    assert_ne!(gw.port, p);
    drop(gw);

    // And --port itself is used over env 0 and config 0.
    refused_in(
        &home,
        &["run", "--port", &ps],
        &[("EMONK_GATEWAY_PORT", "0")],
        &[&in_use],
    );
}

#[test]
fn systemd_credentials_supply_unset_secrets() {
    let _w = Watchdog::new("credentials", Duration::from_secs(30));
    let home = Home::new(r#"{"gateway": {"bind": "lan"}}"#);
    let creds = home.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("gateway.auth.token"), "cred-token\n").unwrap();
    // Without the credential a lan bind has no auth: exit 78.
    let out = home.run_cli_env(&["check-config"], &[], Duration::from_secs(20));
    assert_eq!(code_of(&out), 78, "{}", stderr_of(&out));
    let out = home.run_cli_env(
        &["check-config"],
        &[("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())],
        Duration::from_secs(20),
    );
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let shown = stdout_of(&out);
    assert!(!shown.contains("cred-token"), "{shown}");
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        v["gateway"]["auth"]["tokenFile"],
        creds.join("gateway.auth.token").to_str().unwrap(),
        "{shown}"
    );
}

#[test]
fn agent_token_conflicts_and_missing_file_are_refused() {
    let _w = Watchdog::new("agent_token_conflicts", Duration::from_secs(60));
    refused(
        r#"{"gateway": {"auth": {"agentToken": "ag-inline", "agentTokenFile": "a.token"}}}"#,
        &[],
        &[
            "gateway.auth.agentToken",
            "gateway.auth.agentTokenFile",
            "not both",
        ],
    );
    refused(
        r#"{"gateway": {"auth": {"agentTokenFile": "no-such-agent.token"}}}"#,
        &[],
        &[
            "gateway.auth.agentTokenFile",
            "no-such-agent.token",
            "cannot read",
        ],
    );
    // The same secret for both roles would separate nothing; the message never shows it.
    let err = refused(
        r#"{"gateway": {"auth": {"token": "same-s3cret", "agentToken": "same-s3cret"}}}"#,
        &[],
        &["gateway.auth.agentToken", "different secret"],
    );
    assert!(!err.contains("same-s3cret"), "{err}");
    // ... also when the operator token comes from EMONK_GATEWAY_TOKEN.
    refused(
        r#"{"gateway": {"auth": {"agentToken": "env-s3cret"}}}"#,
        &[("EMONK_GATEWAY_TOKEN", "env-s3cret")],
        &["gateway.auth.agentToken", "different secret"],
    );
}

#[test]
fn check_config_masks_the_agent_token() {
    let _w = Watchdog::new("check_config_agent_token", Duration::from_secs(30));
    let home = Home::new(r#"{"gateway": {"auth": {"token": "op-s3cret", "agentToken": "ag-s3cret"}}}"#);
    let out = home.run_cli(&["check-config"], LIMIT);
    let (so, se) = (stdout_of(&out), stderr_of(&out));
    assert_eq!(code_of(&out), 0, "{se}");
    assert!(
        !so.contains("ag-s3cret") && !se.contains("ag-s3cret"),
        "{so}\n{se}"
    );
    let v: Value = serde_json::from_str(&so).expect("valid JSON on stdout");
    assert_eq!(v["gateway"]["auth"]["agentToken"], "***", "{v}");
    assert_eq!(v["gateway"]["auth"]["agentTokenFile"], Value::Null, "{v}");

    let home = Home::new(r#"{"gateway": {"auth": {"agentTokenFile": "agent.token"}}}"#);
    std::fs::write(home.path().join("agent.token"), "ag-f1le-s3cret\n").unwrap();
    let out = home.run_cli(&["check-config"], LIMIT);
    let (so, se) = (stdout_of(&out), stderr_of(&out));
    assert_eq!(code_of(&out), 0, "{se}");
    assert!(
        !so.contains("ag-f1le-s3cret") && !se.contains("ag-f1le-s3cret"),
        "{so}\n{se}"
    );
    let v: Value = serde_json::from_str(&so).expect("valid JSON on stdout");
    assert_eq!(v["gateway"]["auth"]["agentToken"], "***", "{v}");
    assert!(
        v["gateway"]["auth"]["agentTokenFile"]
            .as_str()
            .unwrap()
            .ends_with("agent.token"),
        "{v}"
    );
}

#[test]
fn api_base_urls_that_can_never_work_are_refused() {
    let _w = Watchdog::new("api_base_url", Duration::from_secs(60));
    for (url, why) in [
        ("http://[::1", "is not a valid URL"),
        (
            "http://127.0.0.1:99999",
            "has the port 99999; a port is 1 to 65535",
        ),
        ("http:///bot", "is not a valid URL"),
        ("ws://127.0.0.1:8081", "has the scheme \"ws\""),
    ] {
        refused(
            &format!(
                r#"{{"channels": {{"telegram": {{"enabled": true, "botToken": "123:abc", "apiBaseUrl": "{url}"}}}}}}"#
            ),
            &[],
            &["channels.telegram.apiBaseUrl", url, why],
        );
    }
}

/// The mode warning `run` logs for a secret file others can read is what check-config
/// prints too (on stderr, so stdout stays the JSON config).
#[test]
fn a_shared_token_file_is_a_warning_in_check_config_and_run() {
    use std::os::unix::fs::PermissionsExt;
    let _w = Watchdog::new("shared_token_file", Duration::from_secs(30));
    let home = Home::new(r#"{"gateway": {"auth": {"tokenFile": "gw.token"}}}"#);
    let file = home.path().join("gw.token");
    std::fs::write(&file, "shared-s3cret\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let want = "gateway.auth.tokenFile: ";
    let out = home.run_cli(&["check-config"], LIMIT);
    let (so, se) = (stdout_of(&out), stderr_of(&out));
    assert_eq!(code_of(&out), 0, "{se}");
    assert!(
        se.contains(&format!("warning: {want}")) && se.contains("mode 644") && se.contains("chmod 600"),
        "{se}"
    );
    assert!(!so.contains("shared-s3cret") && !se.contains("shared-s3cret"));
    serde_json::from_str::<Value>(&so).expect("stdout stays valid JSON");

    let mut gw = Gateway::start_with(&home, &["run", "--port", "0"], &[]);
    let log = gw.log.text();
    assert!(log.contains(want) && log.contains("mode 644"), "{log}");
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(Duration::from_secs(6)).unwrap().success());

    // Owner-only: no warning.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = home.run_cli(&["check-config"], LIMIT);
    assert!(!stderr_of(&out).contains("warning"), "{}", stderr_of(&out));
}
