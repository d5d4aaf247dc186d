//! The man pages and the program must agree: every flag `--help` shows is in `emonkd(8)`
//! and every flag `emonkd(8)` names exists; every config key `check-config` prints is in
//! `emonkd.json(5)` and every dotted key that page names exists.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use support::{Home, Watchdog, code_of, stdout_of};

const SUBCOMMANDS: &[&str] = &[
    "run",
    "call",
    "status",
    "stop",
    "restart",
    "check-config",
    "service",
    "service install",
    "service uninstall",
    "service status",
];

/// The page's text with roff escapes for dashes and fonts removed.
fn man_text(name: &str) -> String {
    let path = format!("{}/man/{name}", env!("CARGO_MANIFEST_DIR"));
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    raw.replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
        .replace("\\fP", "")
}

/// `--long-flags` in a text.
fn long_flags(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("--") {
        let start = i + pos;
        let mut end = start + 2;
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'-') {
            end += 1;
        }
        let flag = &text[start..end];
        let before_ok = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        if flag.len() > 3 && before_ok && !flag.ends_with('-') {
            out.insert(flag.to_owned());
        }
        i = end.max(start + 2);
    }
    out
}

#[test]
fn every_cli_flag_is_in_the_man_page_and_back() {
    let _w = Watchdog::new("docs flags", Duration::from_secs(60));
    let home = Home::new("{}");
    let man = man_text("emonkd.8");
    let mut code_flags = BTreeSet::new();
    for sub in SUBCOMMANDS {
        let mut args: Vec<&str> = sub.split(' ').collect();
        args.push("--help");
        let out = home.cli(&args);
        assert_eq!(code_of(&out), 0, "{sub} --help");
        code_flags.extend(long_flags(&stdout_of(&out)));
    }
    code_flags.extend(long_flags(&stdout_of(&home.cli(&["--help"]))));
    for flag in &code_flags {
        assert!(
            man.contains(flag.as_str()),
            "{flag} is in --help but not in man/emonkd.8"
        );
    }
    for flag in long_flags(&man) {
        assert!(
            code_flags.contains(&flag),
            "man/emonkd.8 names {flag}, which no subcommand accepts"
        );
    }
    for sub in SUBCOMMANDS {
        assert!(man.contains(sub), "subcommand {sub} is not in man/emonkd.8");
    }
}

fn key_paths(prefix: &str, v: &Value, out: &mut BTreeSet<String>) {
    if let Value::Object(map) = v {
        for (k, child) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if child.is_object() {
                key_paths(&path, child, out);
            }
            out.insert(path);
        }
    }
}

#[test]
fn every_config_key_is_in_the_config_man_page_and_back() {
    let _w = Watchdog::new("docs keys", Duration::from_secs(60));
    let home = Home::new("{}");
    let out = home.cli(&["check-config"]);
    assert_eq!(code_of(&out), 0);
    let config: Value = serde_json::from_str(&stdout_of(&out)).expect("check-config prints JSON");
    let mut keys = BTreeSet::new();
    key_paths("", &config, &mut keys);
    let man = man_text("emonkd.json.5");
    for key in &keys {
        // Channel keys are documented per channel by their leaf name.
        let documented = man.contains(key.as_str())
            || (key.starts_with("channels.") && man.contains(key.rsplit('.').next().unwrap()));
        assert!(documented, "config key {key} is not in man/emonkd.json.5");
    }
    for line in man.lines().filter(|l| l.starts_with(".B ")) {
        let word = line[3..].trim();
        let dotted = ["gateway.", "spool."].iter().any(|p| word.starts_with(p));
        if dotted && !word.contains(' ') {
            assert!(
                keys.contains(word),
                "man/emonkd.json.5 documents {word}, which is not a config key"
            );
        }
    }
}
