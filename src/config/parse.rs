//! The JSON walker: from config text to [`Config`].
//!
//! We parse into a `serde_json::Value` and walk it with small getters that carry the key
//! path, instead of deriving `Deserialize` with `deny_unknown_fields`: every message names
//! the key, says what was expected and what was found, lists the known keys and suggests
//! the closest one, which serde's errors (even with `serde_path_to_error`) do not; the
//! README's Dependencies section has the full reasoning. Every key is optional; absent or
//! `null` means the default.

use std::cell::RefCell;
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::base_url;
use super::bind::parse_custom_host;
use super::json;
use super::{
    AGENT_TIMEOUT_RANGE, AuthConfig, BindMode, CLIENT_BACKLOG_RANGE, ChannelsConfig, Config, ConfigError,
    DiscordConfig, GatewayConfig, MAX_CLIENTS_RANGE, MAX_PAYLOAD_RANGE, MEDIA_CACHE_MAX_BYTES_RANGE,
    MEDIA_MAX_BYTES_RANGE, MediaConfig, POLL_TIMEOUT_RANGE, SPOOL_MAX_BYTES_RANGE, SPOOL_MAX_ENTRIES_RANGE,
    STREAM_EDIT_INTERVAL_RANGE, Secret, SlackConfig, SpoolConfig, TICK_INTERVAL_RANGE, TelegramConfig,
};
use crate::json_type::json_type_name;

type Result<T> = std::result::Result<T, ConfigError>;

pub(super) fn parse(text: &str) -> Result<Config> {
    if text.trim().is_empty() {
        return Err(ConfigError::new(
            "the file is empty; write {} to use all defaults",
        ));
    }
    let root = json::from_str(text).map_err(|e| {
        ConfigError::new(format!(
            "invalid JSON: {e} (JSON allows no comments and no trailing commas)"
        ))
    })?;
    let Value::Object(map) = &root else {
        return Err(ConfigError::new(format!(
            "the top level must be a JSON object such as {{\"gateway\": {{\"port\": 18789}}}}, got {}",
            got(&root)
        )));
    };
    let root = Obj::new(String::new(), map);
    let config = Config {
        gateway: root.section("gateway", gateway)?.unwrap_or_default(),
        channels: root.section("channels", channels)?.unwrap_or_default(),
        spool: root.section("spool", spool)?.unwrap_or_default(),
        media: root.section("media", media)?.unwrap_or_default(),
    };
    root.finish()?;
    Ok(config)
}

// Each section below builds its struct as one literal, reading every key unconditionally
// and in documentation order: the compiler then refuses a field without its key, the
// keys read are the known keys of unknown-key messages (in that order), and a key is
// added in one line here plus its field.

fn media(o: &Obj) -> Result<MediaConfig> {
    let d = MediaConfig::default();
    let m = MediaConfig {
        max_bytes: o.int("maxBytes", MEDIA_MAX_BYTES_RANGE)?.unwrap_or(d.max_bytes),
        cache_max_bytes: o
            .int("cacheMaxBytes", MEDIA_CACHE_MAX_BYTES_RANGE)?
            .unwrap_or(d.cache_max_bytes),
        send_dirs: o
            .strings("sendDirs", check_send_dir)?
            .map(|dirs| dirs.into_iter().map(PathBuf::from).collect()),
    };
    if m.cache_max_bytes < m.max_bytes {
        return Err(o.err(
            "cacheMaxBytes",
            format!(
                "{} is below media.maxBytes ({}): the cache could not hold one file; raise it or \
                 lower media.maxBytes",
                m.cache_max_bytes, m.max_bytes
            ),
        ));
    }
    Ok(m)
}

/// A relative folder would depend on the daemon's working directory (`/` under systemd), so
/// only absolute paths are accepted.
fn check_send_dir(s: &str) -> std::result::Result<(), String> {
    if std::path::Path::new(s).is_absolute() {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not an absolute path; write the full path of the folder (e.g. \
             \"/var/lib/emonk/outbox\")"
        ))
    }
}

fn spool(o: &Obj) -> Result<SpoolConfig> {
    let d = SpoolConfig::default();
    Ok(SpoolConfig {
        max_entries: o
            .int("maxEntries", SPOOL_MAX_ENTRIES_RANGE)?
            .map_or(d.max_entries, to_usize),
        max_bytes: o.int("maxBytes", SPOOL_MAX_BYTES_RANGE)?.unwrap_or(d.max_bytes),
    })
}

fn gateway(o: &Obj) -> Result<GatewayConfig> {
    let d = GatewayConfig::default();
    Ok(GatewayConfig {
        port: o
            .int("port", (0, u64::from(u16::MAX)))?
            .map_or(d.port, |v| v as u16),
        bind: o.bind("bind")?.unwrap_or(d.bind),
        custom_bind_host: o.custom_bind_host("customBindHost")?,
        auth: o.section("auth", auth)?.unwrap_or_default(),
        max_payload_bytes: o
            .int("maxPayloadBytes", MAX_PAYLOAD_RANGE)?
            .map_or(d.max_payload_bytes, to_usize),
        max_clients: o
            .int("maxClients", MAX_CLIENTS_RANGE)?
            .map_or(d.max_clients, to_usize),
        tick_interval_ms: o
            .int("tickIntervalMs", TICK_INTERVAL_RANGE)?
            .unwrap_or(d.tick_interval_ms),
        allowed_origins: o
            .strings("allowedOrigins", check_origin)?
            .unwrap_or(d.allowed_origins),
        agent_timeout_ms: o
            .int("agentTimeoutMs", AGENT_TIMEOUT_RANGE)?
            .unwrap_or(d.agent_timeout_ms),
        client_backlog_bytes: o
            .int("clientBacklogBytes", CLIENT_BACKLOG_RANGE)?
            .map_or(d.client_backlog_bytes, to_usize),
    })
}

fn auth(o: &Obj) -> Result<AuthConfig> {
    let (token, token_file) = o.secret_pair("token", "tokenFile")?;
    let password = o.secret("password")?;
    let (agent_token, agent_token_file) = o.secret_pair("agentToken", "agentTokenFile")?;
    if password.is_some() && (token.is_some() || token_file.is_some()) {
        // Two credentials would leave it unclear which one clients must present (and
        // which one `emonkd call` should send), so the file must pick one.
        return Err(ConfigError::new(format!(
            "set either {} (or {}) or {}, not both",
            o.path("token"),
            o.path("tokenFile"),
            o.path("password")
        )));
    }
    Ok(AuthConfig {
        token,
        token_file,
        password,
        agent_token,
        agent_token_file,
    })
}

fn channels(o: &Obj) -> Result<ChannelsConfig> {
    Ok(ChannelsConfig {
        telegram: o.section("telegram", telegram)?.unwrap_or_default(),
        discord: o.section("discord", discord)?.unwrap_or_default(),
        slack: o.section("slack", slack)?.unwrap_or_default(),
    })
}

fn telegram(o: &Obj) -> Result<TelegramConfig> {
    let d = TelegramConfig::default();
    let enabled = o.bool("enabled")?.unwrap_or(d.enabled);
    let (bot_token, bot_token_file) = o.secret_pair("botToken", "botTokenFile")?;
    Ok(TelegramConfig {
        enabled,
        bot_token,
        bot_token_file,
        api_base_url: o.url("apiBaseUrl")?.unwrap_or(d.api_base_url),
        poll_timeout_secs: o
            .int("pollTimeoutSecs", POLL_TIMEOUT_RANGE)?
            .unwrap_or(d.poll_timeout_secs),
        allow_from: o.ids("allowFrom")?.unwrap_or(d.allow_from),
        stream_edit_interval_ms: o
            .int("streamEditIntervalMs", STREAM_EDIT_INTERVAL_RANGE)?
            .unwrap_or(d.stream_edit_interval_ms),
        require_mention: o.bool("requireMention")?.unwrap_or(d.require_mention),
    })
}

fn discord(o: &Obj) -> Result<DiscordConfig> {
    let d = DiscordConfig::default();
    let enabled = o.bool("enabled")?.unwrap_or(d.enabled);
    let (token, token_file) = o.secret_pair("token", "tokenFile")?;
    Ok(DiscordConfig {
        enabled,
        token,
        token_file,
        api_base_url: o.url("apiBaseUrl")?.unwrap_or(d.api_base_url),
        allow_from: o.ids("allowFrom")?.unwrap_or(d.allow_from),
        stream_edit_interval_ms: o
            .int("streamEditIntervalMs", STREAM_EDIT_INTERVAL_RANGE)?
            .unwrap_or(d.stream_edit_interval_ms),
        require_mention: o.bool("requireMention")?.unwrap_or(d.require_mention),
    })
}

fn slack(o: &Obj) -> Result<SlackConfig> {
    let d = SlackConfig::default();
    let enabled = o.bool("enabled")?.unwrap_or(d.enabled);
    let (app_token, app_token_file) = o.secret_pair("appToken", "appTokenFile")?;
    let (bot_token, bot_token_file) = o.secret_pair("botToken", "botTokenFile")?;
    Ok(SlackConfig {
        enabled,
        app_token,
        app_token_file,
        bot_token,
        bot_token_file,
        api_base_url: o.url("apiBaseUrl")?.unwrap_or(d.api_base_url),
        allow_from: o.ids("allowFrom")?.unwrap_or(d.allow_from),
        stream_edit_interval_ms: o
            .int("streamEditIntervalMs", STREAM_EDIT_INTERVAL_RANGE)?
            .unwrap_or(d.stream_edit_interval_ms),
        require_mention: o.bool("requireMention")?.unwrap_or(d.require_mention),
    })
}

/// One JSON object in the tree, with the dotted path that leads to it and the keys read
/// from it so far.
struct Obj<'a> {
    /// `""` at the root, else `"gateway."`, `"gateway.auth."`, …
    prefix: String,
    map: &'a Map<String, Value>,
    /// Every key asked for, in the order asked: the object's known keys.
    read: RefCell<Vec<&'static str>>,
}

impl<'a> Obj<'a> {
    fn new(prefix: String, map: &'a Map<String, Value>) -> Self {
        Obj {
            prefix,
            map,
            read: RefCell::new(Vec::new()),
        }
    }

    /// Refuse keys that were never read: a misspelt key silently ignored is a setting the
    /// user believes is in force and is not.
    fn finish(&self) -> Result<()> {
        let known = self.read.borrow();
        let Some(key) = self.map.keys().find(|k| !known.contains(&k.as_str())) else {
            return Ok(());
        };
        let mut msg = format!(
            "unknown key {} (known keys here: {})",
            Value::from(self.path(key)),
            known.join(", ")
        );
        if let Some(close) = suggest(key, &known) {
            msg.push_str(&format!("; did you mean \"{close}\"?"));
        }
        Err(ConfigError::new(msg))
    }

    fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn err(&self, key: &str, msg: impl std::fmt::Display) -> ConfigError {
        ConfigError::new(format!("{}: {msg}", self.path(key)))
    }

    /// A nested object read by `read`, then checked for unknown keys; `None` if absent.
    fn section<T>(&self, key: &'static str, read: fn(&Obj) -> Result<T>) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => {
                let child = Obj::new(format!("{}.", self.path(key)), m);
                let value = read(&child)?;
                child.finish()?;
                Ok(Some(value))
            }
            Some(v) => Err(self.err(key, format!("expected an object, got {}", got(v)))),
        }
    }

    fn bind(&self, key: &'static str) -> Result<Option<BindMode>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let s = v.as_str().ok_or_else(|| {
            self.err(
                key,
                format!("expected one of {}, got {}", BindMode::VALID, got(v)),
            )
        })?;
        s.parse().map(Some).map_err(|e: String| self.err(key, e))
    }

    /// An IP literal ([`parse_custom_host`] says what is wrong otherwise).
    fn custom_bind_host(&self, key: &'static str) -> Result<Option<String>> {
        let host = self.string(key)?;
        if let Some(h) = &host {
            parse_custom_host(Some(h))?;
        }
        Ok(host)
    }

    /// The value, treating `null` like an absent key; the key becomes a known one.
    fn get(&self, key: &'static str) -> Option<&'a Value> {
        let mut read = self.read.borrow_mut();
        if !read.contains(&key) {
            read.push(key);
        }
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn int(&self, key: &'static str, (min, max): (u64, u64)) -> Result<Option<u64>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(self.err(
                key,
                format!("expected an integer from {min} to {max}, got {}", got(v)),
            )),
        }
    }

    fn bool(&self, key: &'static str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.err(key, format!("expected true or false, got {}", got(v)))),
        }
    }

    /// A non-empty string. Empty is refused rather than read as "unset": `null` says that
    /// unambiguously, and an empty value is more often a template left unfilled.
    fn string(&self, key: &'static str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => {
                Err(self.err(key, "must not be empty; set a value, or null to leave it unset"))
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.err(key, format!("expected a string, got {}", got(v)))),
        }
    }

    /// Like [`Obj::string`], but the value never appears in a message, not even a
    /// mistyped one (a password written as a JSON number is still a password).
    fn secret(&self, key: &'static str) -> Result<Option<Secret>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => {
                Err(self.err(key, "is empty; set the secret, or null to leave it unset"))
            }
            // Stray whitespace from a copy-paste would make every login fail with
            // UNAUTHORIZED and nothing pointing at the cause.
            Some(Value::String(s)) if s.trim() != s => {
                Err(self.err(key, "has leading or trailing whitespace; remove it"))
            }
            Some(Value::String(s)) => Ok(Some(Secret::new(s.clone()))),
            Some(v) => Err(self.err(key, format!("expected a string, got {}", json_type_name(v)))),
        }
    }

    /// A secret given inline or as a file, but not both: with both it is unclear which
    /// one is in force.
    fn secret_pair(
        &self,
        key: &'static str,
        file_key: &'static str,
    ) -> Result<(Option<Secret>, Option<PathBuf>)> {
        let secret = self.secret(key)?;
        let file = self.string(file_key)?.map(PathBuf::from);
        if secret.is_some() && file.is_some() {
            return Err(ConfigError::new(format!(
                "set either {} or {}, not both",
                self.path(key),
                self.path(file_key)
            )));
        }
        Ok((secret, file))
    }

    /// An API base URL ([`base_url::check`]).
    fn url(&self, key: &'static str) -> Result<Option<String>> {
        let Some(s) = self.string(key)? else {
            return Ok(None);
        };
        base_url::check(&s)
            .map(Some)
            .map_err(|why| self.err(key, format!("{} {why}", got(&Value::from(s.as_str())))))
    }

    /// An array of non-empty strings, each also passed through `check`.
    fn strings(
        &self,
        key: &'static str,
        check: fn(&str) -> std::result::Result<(), String>,
    ) -> Result<Option<Vec<String>>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let Value::Array(items) = v else {
            return Err(self.err(key, format!("expected an array of strings, got {}", got(v))));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = format!("{key}[{i}]");
            match item {
                Value::String(s) if s.is_empty() => {
                    return Err(self.err(&at, "must not be empty; remove the entry"));
                }
                Value::String(s) => {
                    check(s).map_err(|e| self.err(&at, e))?;
                    out.push(s.clone());
                }
                other => {
                    return Err(self.err(&at, format!("expected a string, got {}", got(other))));
                }
            }
        }
        Ok(Some(out))
    }

    /// Sender ids: strings, or integers converted to strings, because Telegram ids are
    /// JSON numbers in its own API and users paste them as such (negative for groups).
    fn ids(&self, key: &'static str) -> Result<Option<Vec<String>>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let Value::Array(items) = v else {
            return Err(self.err(
                key,
                format!(
                    "expected an array of sender ids (strings or integers), got {}",
                    got(v)
                ),
            ));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = format!("{key}[{i}]");
            match item {
                Value::String(s) if s.trim().is_empty() => {
                    return Err(self.err(&at, "must not be empty; remove the entry"));
                }
                Value::String(s) => out.push(s.clone()),
                Value::Number(n) if n.is_i64() || n.is_u64() => out.push(n.to_string()),
                other => {
                    return Err(self.err(
                        &at,
                        format!(
                            "expected a sender id (a string or an integer), got {}",
                            got(other)
                        ),
                    ));
                }
            }
        }
        Ok(Some(out))
    }
}

/// Browsers send `Origin: scheme://host[:port]`, never with a path or trailing slash; an
/// entry with one would never match, which looks like a gateway bug to the user.
fn check_origin(s: &str) -> std::result::Result<(), String> {
    let after_scheme = s.split_once("://").map(|(_, rest)| rest);
    match after_scheme {
        Some(rest) if !rest.is_empty() && !rest.contains('/') => Ok(()),
        _ if s == "null" => Ok(()),
        _ => Err(format!(
            "expected an origin such as \"https://example.com\" or \"http://localhost:3000\" (scheme://host[:port], no path), got {}",
            got(&Value::from(s))
        )),
    }
}

/// Lossless on every target emonkd runs on (64-bit); saturating keeps 32-bit honest.
fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// A short rendering of a wrong value for an error message.
fn got(v: &Value) -> String {
    match v {
        Value::String(s) if s.chars().count() > 60 => {
            let head: String = s.chars().take(60).collect();
            format!("{}…", Value::from(head))
        }
        Value::Array(_) | Value::Object(_) => json_type_name(v).to_string(),
        other => other.to_string(),
    }
}

/// The known key closest to a misspelt one, if it is close enough to be a likely typo
/// (case or `_` differences, or an edit distance of at most 2).
fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let norm = |s: &str| s.replace(['_', '-'], "").to_ascii_lowercase();
    let k = norm(key);
    known
        .iter()
        .map(|&cand| (edit_distance(&k, &norm(cand)), cand))
        .filter(|&(d, _)| d <= 2)
        .min_by_key(|&(d, _)| d)
        .map(|(_, cand)| cand)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn err(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    const FULL: &str = r#"{
      "gateway": {
        "port": 18800,
        "bind": "custom",
        "customBindHost": "192.168.1.10",
        "auth": { "token": "gw-secret-token" },
        "maxPayloadBytes": 1048576,
        "maxClients": 16,
        "tickIntervalMs": 5000,
        "allowedOrigins": ["https://ui.example.com", "http://localhost:3000"],
        "agentTimeoutMs": 60000,
        "clientBacklogBytes": 65536
      },
      "channels": {
        "telegram": {
          "enabled": true,
          "botTokenFile": "secrets/telegram.token",
          "apiBaseUrl": "http://127.0.0.1:8081/",
          "pollTimeoutSecs": 50,
          "allowFrom": [123456789, "987654321", -1001234, "*"]
        },
        "discord": {
          "enabled": true,
          "token": "discord-secret",
          "apiBaseUrl": "https://discord.com/api/v10",
          "allowFrom": ["111"]
        },
        "slack": {
          "enabled": true,
          "appToken": "xapp-secret",
          "botTokenFile": "/run/secrets/slack-bot",
          "allowFrom": []
        }
      }
    }"#;

    #[test]
    fn empty_object_is_all_defaults() {
        assert_eq!(Config::parse("{}").unwrap(), Config::default());
        assert_eq!(
            Config::parse(r#"{"gateway": {}, "channels": {"slack": {}}}"#).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn null_means_default() {
        let text = r#"{"gateway": {"port": null, "auth": null, "customBindHost": null},
                       "channels": null}"#;
        assert_eq!(Config::parse(text).unwrap(), Config::default());
    }

    #[test]
    fn full_example() {
        let c = Config::parse(FULL).unwrap();
        let g = &c.gateway;
        assert_eq!(g.port, 18800);
        assert_eq!(g.bind, BindMode::Custom);
        assert_eq!(g.custom_bind_host.as_deref(), Some("192.168.1.10"));
        assert_eq!(g.auth.token.as_ref().unwrap().expose(), "gw-secret-token");
        assert_eq!(g.auth.token_file, None);
        assert_eq!(g.auth.password, None);
        assert_eq!(g.max_payload_bytes, 1_048_576);
        assert_eq!(g.max_clients, 16);
        assert_eq!(g.tick_interval_ms, 5000);
        assert_eq!(
            g.allowed_origins,
            ["https://ui.example.com", "http://localhost:3000"]
        );
        assert_eq!(g.agent_timeout_ms, 60_000);
        assert_eq!(g.client_backlog_bytes, 65_536);

        let t = &c.channels.telegram;
        assert!(t.enabled);
        assert_eq!(t.bot_token, None);
        assert_eq!(
            t.bot_token_file.as_deref(),
            Some(Path::new("secrets/telegram.token"))
        );
        assert_eq!(t.api_base_url, "http://127.0.0.1:8081");
        assert_eq!(t.poll_timeout_secs, 50);
        assert_eq!(t.allow_from, ["123456789", "987654321", "-1001234", "*"]);

        let d = &c.channels.discord;
        assert!(d.enabled);
        assert_eq!(d.token.as_ref().unwrap().expose(), "discord-secret");
        assert_eq!(d.allow_from, ["111"]);

        let s = &c.channels.slack;
        assert!(s.enabled);
        assert_eq!(s.app_token.as_ref().unwrap().expose(), "xapp-secret");
        assert_eq!(
            s.bot_token_file.as_deref(),
            Some(Path::new("/run/secrets/slack-bot"))
        );
        assert_eq!(s.api_base_url, "https://slack.com/api");
        assert!(s.allow_from.is_empty());
    }

    #[test]
    fn media_keys_with_ranges_and_absolute_send_dirs() {
        let c = Config::parse(
            r#"{"media": {"maxBytes": 1048576, "cacheMaxBytes": 8388608, "sendDirs": ["/srv/out", "/tmp/x"]}}"#,
        )
        .unwrap();
        assert_eq!(c.media.max_bytes, 1_048_576);
        assert_eq!(c.media.cache_max_bytes, 8_388_608);
        assert_eq!(
            c.media.send_dirs,
            Some(vec![PathBuf::from("/srv/out"), PathBuf::from("/tmp/x")])
        );
        let none = Config::parse(r#"{"media": {"sendDirs": []}}"#).unwrap();
        assert_eq!(none.media.send_dirs, Some(vec![]));
        assert_eq!(Config::parse("{}").unwrap().media, MediaConfig::default());

        let e = err(r#"{"media": {"sendDirs": ["outbox"]}}"#);
        assert!(
            e.contains("media.sendDirs[0]") && e.contains("absolute path"),
            "{e}"
        );
        let e = err(r#"{"media": {"maxBytes": 10}}"#);
        assert!(e.contains("media.maxBytes"), "{e}");
        let e = err(r#"{"media": {"maxBytes": 2097152, "cacheMaxBytes": 1048576}}"#);
        assert!(
            e.contains("media.cacheMaxBytes") && e.contains("below media.maxBytes"),
            "{e}"
        );
        let e = err(r#"{"media": {"maxbytes": 1}}"#);
        assert!(e.contains("media.maxbytes") && e.contains("maxBytes"), "{e}");
    }

    #[test]
    fn unknown_keys_at_every_depth() {
        assert_eq!(
            err(r#"{"gatway": {}}"#),
            r#"unknown key "gatway" (known keys here: gateway, channels, spool, media); did you mean "gateway"?"#
        );
        assert!(
            err(r#"{"gateway": {"prot": 1}}"#)
                .starts_with(r#"unknown key "gateway.prot" (known keys here: port, bind, customBindHost,"#)
        );
        assert_eq!(
            err(r#"{"gateway": {"auth": {"tokn": "x"}}}"#),
            r#"unknown key "gateway.auth.tokn" (known keys here: token, tokenFile, password, agentToken, agentTokenFile); did you mean "token"?"#
        );
        assert!(
            err(r#"{"channels": {"matrix": {}}}"#)
                .starts_with(r#"unknown key "channels.matrix" (known keys here: telegram, discord, slack)"#)
        );
        for (ch, key) in [
            ("telegram", "bot_token"),
            ("discord", "apiBaseURL"),
            ("slack", "allow_from"),
        ] {
            let e = err(&format!(r#"{{"channels": {{"{ch}": {{"{key}": 1}}}}}}"#));
            assert!(
                e.starts_with(&format!(r#"unknown key "channels.{ch}.{key}""#)),
                "{e}"
            );
            assert!(e.contains("did you mean"), "{e}");
        }
        // No suggestion when nothing is close.
        assert!(!err(r#"{"gateway": {"zzzzzzzz": 1}}"#).contains("did you mean"));
    }

    #[test]
    fn type_errors_name_the_path_and_expected_type() {
        assert_eq!(
            err(r#"{"gateway": {"port": "abc"}}"#),
            r#"gateway.port: expected an integer from 0 to 65535, got "abc""#
        );
        assert_eq!(
            err(r#"{"gateway": {"port": 70000}}"#),
            "gateway.port: expected an integer from 0 to 65535, got 70000"
        );
        assert_eq!(
            err(r#"{"gateway": {"port": 80.5}}"#),
            "gateway.port: expected an integer from 0 to 65535, got 80.5"
        );
        assert_eq!(
            err(r#"{"gateway": {"port": -1}}"#),
            "gateway.port: expected an integer from 0 to 65535, got -1"
        );
        assert_eq!(
            err(r#"{"gateway": {"bind": "public"}}"#),
            r#"gateway.bind: expected one of loopback, lan, tailnet, custom, got "public""#
        );
        assert_eq!(
            err(r#"{"gateway": {"bind": 1}}"#),
            "gateway.bind: expected one of loopback, lan, tailnet, custom, got 1"
        );
        assert_eq!(err(r#"{"gateway": 5}"#), "gateway: expected an object, got 5");
        assert_eq!(
            err(r#"{"gateway": {"auth": []}}"#),
            "gateway.auth: expected an object, got an array"
        );
        assert_eq!(
            err(r#"{"channels": {"telegram": {"enabled": "yes"}}}"#),
            r#"channels.telegram.enabled: expected true or false, got "yes""#
        );
        assert_eq!(
            err(r#"{"gateway": {"maxPayloadBytes": 1024}}"#),
            "gateway.maxPayloadBytes: expected an integer from 65536 to 1073741824, got 1024"
        );
        assert_eq!(
            err(r#"{"gateway": {"maxClients": 0}}"#),
            "gateway.maxClients: expected an integer from 1 to 1000000, got 0"
        );
        assert_eq!(
            err(r#"{"gateway": {"tickIntervalMs": 99}}"#),
            "gateway.tickIntervalMs: expected an integer from 100 to 86400000, got 99"
        );
        assert_eq!(
            err(r#"{"gateway": {"agentTimeoutMs": 0}}"#),
            "gateway.agentTimeoutMs: expected an integer from 1 to 86400000, got 0"
        );
        assert_eq!(
            err(r#"{"gateway": {"clientBacklogBytes": 100}}"#),
            "gateway.clientBacklogBytes: expected an integer from 65536 to 1073741824, got 100"
        );
        assert_eq!(
            err(r#"{"channels": {"telegram": {"pollTimeoutSecs": 51}}}"#),
            "channels.telegram.pollTimeoutSecs: expected an integer from 1 to 50, got 51"
        );
        assert_eq!(
            err(r#"{"gateway": {"allowedOrigins": "https://x"}}"#),
            r#"gateway.allowedOrigins: expected an array of strings, got "https://x""#
        );
        assert_eq!(
            err(r#"{"gateway": {"allowedOrigins": ["https://x", 3]}}"#),
            "gateway.allowedOrigins[1]: expected a string, got 3"
        );
        assert!(
            err(r#"{"gateway": {"allowedOrigins": ["https://x/"]}}"#)
                .starts_with("gateway.allowedOrigins[0]: expected an origin such as")
        );
        assert_eq!(
            err(r#"{"channels": {"discord": {"allowFrom": [1.5]}}}"#),
            "channels.discord.allowFrom[0]: expected a sender id (a string or an integer), got 1.5"
        );
        assert_eq!(
            err(r#"{"channels": {"discord": {"allowFrom": [""]}}}"#),
            "channels.discord.allowFrom[0]: must not be empty; remove the entry"
        );
        assert_eq!(
            err(r#"{"gateway": {"auth": {"tokenFile": ""}}}"#),
            "gateway.auth.tokenFile: must not be empty; set a value, or null to leave it unset"
        );
    }

    #[test]
    fn urls() {
        for (bad, why) in [
            ("ftp://x", "has the scheme \"ftp\""),
            ("api.telegram.org", "has no scheme"),
            ("https://", "is not a valid URL"),
            ("https:///x", "is not a valid URL"),
            ("http://a b", "is not a valid URL"),
            ("http://[::1", "is not a valid URL"),
            ("http://h:99999", "has the port 99999; a port is 1 to 65535"),
        ] {
            let e = err(&format!(
                r#"{{"channels": {{"telegram": {{"apiBaseUrl": "{bad}"}}}}}}"#
            ));
            assert!(
                e.starts_with(&format!("channels.telegram.apiBaseUrl: \"{bad}\" {why}")),
                "{e}"
            );
        }
        let c = Config::parse(r#"{"channels": {"slack": {"apiBaseUrl": "https://s.test/api//"}}}"#).unwrap();
        // Exactly one trailing slash is stripped.
        assert_eq!(c.channels.slack.api_base_url, "https://s.test/api/");
    }

    #[test]
    fn json_syntax_errors_give_position() {
        let e = err("{\n  \"gateway\": {\n    \"port\": 1,\n  }\n}");
        assert!(e.starts_with("invalid JSON: "), "{e}");
        assert!(e.contains("line 4 column 3"), "{e}");
        let e = err(r#"{"gateway": {"port": 1, "port": 2}}"#);
        assert!(e.contains("duplicate key \"port\""), "{e}");
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn top_level_must_be_an_object() {
        assert_eq!(
            err("[]"),
            r#"the top level must be a JSON object such as {"gateway": {"port": 18789}}, got an array"#
        );
        assert!(err("  \n").contains("the file is empty"));
        assert!(err("null").starts_with("the top level must be a JSON object"));
    }

    #[test]
    fn secret_and_secret_file_conflict() {
        assert_eq!(
            err(r#"{"gateway": {"auth": {"token": "a", "tokenFile": "f"}}}"#),
            "set either gateway.auth.token or gateway.auth.tokenFile, not both"
        );
        assert_eq!(
            err(r#"{"channels": {"telegram": {"botToken": "a", "botTokenFile": "f"}}}"#),
            "set either channels.telegram.botToken or channels.telegram.botTokenFile, not both"
        );
        assert_eq!(
            err(r#"{"channels": {"slack": {"appToken": "a", "appTokenFile": "f"}}}"#),
            "set either channels.slack.appToken or channels.slack.appTokenFile, not both"
        );
        assert_eq!(
            err(r#"{"gateway": {"auth": {"tokenFile": "f", "password": "p"}}}"#),
            "set either gateway.auth.token (or gateway.auth.tokenFile) or gateway.auth.password, not both"
        );
    }

    #[test]
    fn bad_secrets_never_echo_the_value() {
        let e = err(r#"{"gateway": {"auth": {"password": 987654321}}}"#);
        assert_eq!(e, "gateway.auth.password: expected a string, got a number");
        let e = err(r#"{"gateway": {"auth": {"token": ""}}}"#);
        assert_eq!(
            e,
            "gateway.auth.token: is empty; set the secret, or null to leave it unset"
        );
        let e = err(r#"{"gateway": {"auth": {"token": " hunter2\n"}}}"#);
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("whitespace"), "{e}");
    }

    #[test]
    fn custom_bind_host_must_be_an_ip_literal() {
        let c = Config::parse(r#"{"gateway": {"customBindHost": "::1"}}"#).unwrap();
        assert_eq!(c.gateway.custom_bind_host.as_deref(), Some("::1"));
        let e = err(r#"{"gateway": {"customBindHost": "my-host.lan"}}"#);
        assert!(
            e.starts_with("gateway.customBindHost: expected an IP address"),
            "{e}"
        );
    }

    #[test]
    fn long_values_are_truncated_in_messages() {
        let long = "x".repeat(500);
        let e = err(&format!(r#"{{"gateway": {{"port": "{long}"}}}}"#));
        assert!(e.len() < 200, "{e}");
        assert!(e.ends_with("…"), "{e}");
    }

    #[test]
    fn suggestions() {
        let auth = ["token", "tokenFile", "password", "agentToken", "agentTokenFile"];
        assert_eq!(suggest("tokn", &auth), Some("token"));
        assert_eq!(suggest("token_file", &auth), Some("tokenFile"));
        assert_eq!(
            suggest("bind_host", &["port", "bind", "customBindHost", "auth"]),
            None
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
