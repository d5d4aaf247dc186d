//! The effective configuration as JSON with secrets masked, for `emonkd check-config`.
//!
//! Same shape and camelCase keys as the file, every key present with the value in force,
//! so the output can be diffed against the file or pasted back into one. Secrets that are
//! set show as `"***"` (unset ones stay `null`, so "is a token configured?" is still
//! answerable); secret *file paths* are shown, since they are not secret and say where
//! the value came from.

use std::path::Path;

use serde_json::{Value, json};

use super::{Config, Secret};

const MASK: &str = "***";

/// The effective config as JSON, secrets replaced by `"***"`.
pub fn masked_json(config: &Config) -> Value {
    let g = &config.gateway;
    let t = &config.channels.telegram;
    let d = &config.channels.discord;
    let s = &config.channels.slack;
    json!({
        "gateway": {
            "port": g.port,
            "bind": g.bind.as_str(),
            "customBindHost": g.custom_bind_host,
            "auth": {
                "token": mask(&g.auth.token),
                "tokenFile": path(g.auth.token_file.as_deref()),
                "password": mask(&g.auth.password),
                "agentToken": mask(&g.auth.agent_token),
                "agentTokenFile": path(g.auth.agent_token_file.as_deref()),
            },
            "maxPayloadBytes": g.max_payload_bytes,
            "maxClients": g.max_clients,
            "tickIntervalMs": g.tick_interval_ms,
            "allowedOrigins": g.allowed_origins,
            "agentTimeoutMs": g.agent_timeout_ms,
            "clientBacklogBytes": g.client_backlog_bytes,
        },
        "channels": {
            "telegram": {
                "enabled": t.enabled,
                "botToken": mask(&t.bot_token),
                "botTokenFile": path(t.bot_token_file.as_deref()),
                "apiBaseUrl": t.api_base_url,
                "pollTimeoutSecs": t.poll_timeout_secs,
                "allowFrom": t.allow_from,
            },
            "discord": {
                "enabled": d.enabled,
                "token": mask(&d.token),
                "tokenFile": path(d.token_file.as_deref()),
                "apiBaseUrl": d.api_base_url,
                "allowFrom": d.allow_from,
            },
            "slack": {
                "enabled": s.enabled,
                "appToken": mask(&s.app_token),
                "appTokenFile": path(s.app_token_file.as_deref()),
                "botToken": mask(&s.bot_token),
                "botTokenFile": path(s.bot_token_file.as_deref()),
                "apiBaseUrl": s.api_base_url,
                "allowFrom": s.allow_from,
            },
        },
        "spool": {
            "maxEntries": config.spool.max_entries,
            "maxBytes": config.spool.max_bytes,
        },
        // `sendDirs` null is the default, `<state>/outbox`.
        "media": {
            "maxBytes": config.media.max_bytes,
            "cacheMaxBytes": config.media.cache_max_bytes,
            "sendDirs": config.media.send_dirs,
        },
    })
}

fn mask(secret: &Option<Secret>) -> Value {
    match secret {
        Some(_) => Value::from(MASK),
        None => Value::Null,
    }
}

/// Lossy for non-UTF-8 paths, which is fine for display.
fn path(p: Option<&Path>) -> Value {
    p.map_or(Value::Null, |p| Value::from(p.to_string_lossy().into_owned()))
}

#[cfg(test)]
mod tests {
    use super::super::parse::{
        AUTH_KEYS, CHANNELS_KEYS, DISCORD_KEYS, GATEWAY_KEYS, MEDIA_KEYS, ROOT_KEYS, SLACK_KEYS, SPOOL_KEYS,
        TELEGRAM_KEYS,
    };
    use super::*;
    use crate::config::BindMode;

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    fn sorted(k: &[&'static str]) -> Vec<&'static str> {
        let mut k = k.to_vec();
        k.sort_unstable();
        k
    }

    #[test]
    fn every_known_key_is_present() {
        let v = masked_json(&Config::default());
        assert_eq!(keys(&v), sorted(ROOT_KEYS));
        assert_eq!(keys(&v["gateway"]), sorted(GATEWAY_KEYS));
        assert_eq!(keys(&v["gateway"]["auth"]), sorted(AUTH_KEYS));
        assert_eq!(keys(&v["channels"]), sorted(CHANNELS_KEYS));
        assert_eq!(keys(&v["channels"]["telegram"]), sorted(TELEGRAM_KEYS));
        assert_eq!(keys(&v["channels"]["discord"]), sorted(DISCORD_KEYS));
        assert_eq!(keys(&v["channels"]["slack"]), sorted(SLACK_KEYS));
        assert_eq!(keys(&v["spool"]), sorted(SPOOL_KEYS));
        assert_eq!(keys(&v["media"]), sorted(MEDIA_KEYS));
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
