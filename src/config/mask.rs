//! The effective configuration as JSON with secrets masked, for `emonkd check-config`.
//!
//! Same shape and camelCase keys as the file, every key present with the value in force,
//! so the output can be diffed against the file or pasted back into one. Secrets that are
//! set show as `"***"` (unset ones stay `null`, so "is a token configured?" is still
//! answerable); secret *file paths* are shown, since they are not secret and say where
//! the value came from.

use std::path::{Path, PathBuf};

use serde::Serializer;
use serde_json::Value;

use super::Config;
#[cfg(test)]
use super::secret::MASK;

/// The effective config as JSON, secrets replaced by `"***"`. Derived from the config types
/// (`Secret` serializes as the mask), so a new key shows up here without a line of its own.
pub fn masked_json(config: &Config) -> Value {
    serde_json::to_value(config).expect("the config serializes: paths are rendered lossily")
}

/// A file path as text. Lossy for non-UTF-8 paths, which is fine for display (serde's own
/// `Path` serializer would fail on them instead).
pub(super) fn lossy_path<S: Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_str(&p.to_string_lossy()),
        None => s.serialize_none(),
    }
}

/// A list of folder paths, each as [`lossy_path`] renders it.
pub(super) fn lossy_paths<S: Serializer>(p: &Option<Vec<PathBuf>>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(dirs) => s.collect_seq(dirs.iter().map(|d| Path::to_string_lossy(d).into_owned())),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BindMode;
    use serde_json::json;

    /// The keys the parser knows in the object at `section` ("" for the root), read from
    /// its unknown-key message.
    fn known_keys(section: &str) -> Vec<String> {
        let mut probe = json!({"zzzUnknown": 1});
        for part in section.split('.').filter(|p| !p.is_empty()).rev() {
            probe = json!({ part: probe });
        }
        let e = Config::parse(&probe.to_string()).unwrap_err().to_string();
        let list = e
            .split_once("(known keys here: ")
            .and_then(|(_, rest)| rest.split_once(')'))
            .unwrap_or_else(|| panic!("{section}: {e}"))
            .0;
        let mut keys: Vec<String> = list.split(", ").map(str::to_owned).collect();
        keys.sort();
        keys
    }

    #[test]
    fn the_output_has_exactly_the_keys_the_parser_knows() {
        let v = masked_json(&Config::default());
        for section in [
            "",
            "gateway",
            "gateway.auth",
            "channels",
            "channels.telegram",
            "channels.discord",
            "channels.slack",
            "spool",
            "media",
        ] {
            let at = section
                .split('.')
                .filter(|p| !p.is_empty())
                .fold(&v, |v, part| &v[part]);
            let mut shown: Vec<String> = at.as_object().unwrap().keys().cloned().collect();
            shown.sort();
            assert_eq!(shown, known_keys(section), "section {section:?}");
        }
    }

    #[test]
    fn defaults_round_trip_through_the_parser() {
        let v = masked_json(&Config::default());
        assert_eq!(v["gateway"]["port"], 18789);
        assert_eq!(v["gateway"]["bind"], "loopback");
        assert_eq!(v["gateway"]["auth"]["token"], Value::Null);
        assert_eq!(Config::parse(&v.to_string()).unwrap(), Config::default());
    }

    #[test]
    fn secrets_are_masked() {
        let text = r#"{
          "gateway": {"bind": "lan", "auth": {"token": "SEKRET-gw-token"}},
          "channels": {
            "telegram": {"enabled": true, "botToken": "SEKRET-tg", "allowFrom": [42]},
            "discord": {"token": "SEKRET-dc"},
            "slack": {"appToken": "SEKRET-app", "botTokenFile": "/run/slack-bot"}
          }
        }"#;
        let c = Config::parse(text).unwrap();
        let v = masked_json(&c);
        let out = serde_json::to_string_pretty(&v).unwrap();
        assert!(!out.contains("SEKRET"), "{out}");
        assert_eq!(v["gateway"]["bind"], "lan");
        assert_eq!(v["gateway"]["auth"]["token"], MASK);
        assert_eq!(v["gateway"]["auth"]["password"], Value::Null);
        assert_eq!(v["channels"]["telegram"]["botToken"], MASK);
        assert_eq!(v["channels"]["telegram"]["allowFrom"], json!(["42"]));
        assert_eq!(v["channels"]["discord"]["token"], MASK);
        assert_eq!(v["channels"]["slack"]["appToken"], MASK);
        assert_eq!(v["channels"]["slack"]["botToken"], Value::Null);
        assert_eq!(v["channels"]["slack"]["botTokenFile"], "/run/slack-bot");

        let debug = format!("{c:?}");
        assert!(!debug.contains("SEKRET"), "{debug}");
        assert_eq!(c.gateway.bind, BindMode::Lan);
    }
}
