//! Loading the effective configuration: the file, then `EMONK_GATEWAY_*` from the
//! environment, then CLI flags, then secret files, then the checks that need all of them.
//!
//! The order gives the contract's priority for port and bind (CLI > env > config >
//! default) by plain overwriting, and lets the final checks see the values actually in
//! force, so `--bind lan` without a token is refused just like `"bind": "lan"` is.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{BindMode, ChannelsConfig, Config, ConfigError, GatewayConfig, Overrides, Secret};
use crate::paths::{ConfigLocation, Env};

/// Far beyond any real config, small enough that pointing `--config` at a device or a log
/// file fails fast instead of eating memory.
const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Tokens are at most a few hundred bytes.
const MAX_SECRET_BYTES: u64 = 64 << 10;

type Result<T> = std::result::Result<T, ConfigError>;

/// Read the file (missing: all defaults when `!loc.explicit`, an error when explicit),
/// parse it, apply env overrides (`EMONK_GATEWAY_PORT`, `EMONK_GATEWAY_BIND`,
/// `EMONK_GATEWAY_TOKEN`), then CLI overrides, read secret files (relative paths are
/// relative to the config file's directory), then validate: a non-loopback bind without
/// any auth is refused.
///
/// Secret files are read for `gateway.auth` and for enabled channels only: a disabled
/// channel's token file may legitimately not exist yet. The tailnet address is not
/// probed here (only [`GatewayConfig::bind_host`] does that, at bind time), so
/// `check-config` gives the same answer whether or not tailscale is up yet.
pub fn load(loc: &ConfigLocation, overrides: &Overrides, env: Env) -> Result<Config> {
    let in_file = |e: ConfigError| e.in_file(&loc.path);
    let mut config = match read_capped(&loc.path, MAX_CONFIG_BYTES) {
        Ok(text) => Config::parse(&text).map_err(in_file)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !loc.explicit => Config::default(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(in_file(ConfigError::new(
                "file not found (it was named by --config or EMONK_CONFIG); create it (write {} for all defaults) or fix the path",
            )));
        }
        Err(e) => {
            return Err(in_file(ConfigError::new(format!(
                "cannot read the file: {e}; fix its permissions or point --config at another file"
            ))));
        }
    };
    apply_env(&mut config.gateway, env)?;
    if let Some(port) = overrides.port {
        config.gateway.port = port;
    }
    if let Some(bind) = overrides.bind {
        config.gateway.bind = bind;
    }
    let base = loc.path.parent().unwrap_or(Path::new(""));
    read_secret_files(&mut config, base).map_err(in_file)?;
    read_credentials(&mut config, env).map_err(in_file)?;
    require_channel_tokens(&config).map_err(in_file)?;
    check_agent_token(&config.gateway).map_err(in_file)?;
    check_bind_auth(&config.gateway).map_err(in_file)?;
    Ok(config)
}

/// Env overrides. Their errors name the variable rather than the file: the file is fine.
fn apply_env(g: &mut GatewayConfig, env: Env) -> Result<()> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(v) = var("EMONK_GATEWAY_PORT") {
        g.port = v.trim().parse().map_err(|_| {
            ConfigError::new(format!(
                "EMONK_GATEWAY_PORT: expected an integer from 0 to 65535, got {}; fix or unset it",
                quote(&v)
            ))
        })?;
    }
    if let Some(v) = var("EMONK_GATEWAY_BIND") {
        g.bind = v
            .trim()
            .parse()
            .map_err(|e: String| ConfigError::new(format!("EMONK_GATEWAY_BIND: {e}; fix or unset it")))?;
    }
    if let Some(v) = var("EMONK_GATEWAY_TOKEN") {
        if v.trim().is_empty() {
            return Err(ConfigError::new(
                "EMONK_GATEWAY_TOKEN is blank; set a token or unset it",
            ));
        }
        if v.trim() != v {
            return Err(ConfigError::new(
                "EMONK_GATEWAY_TOKEN has leading or trailing whitespace; remove it",
            ));
        }
        if g.auth.password.is_some() {
            return Err(ConfigError::new(
                "EMONK_GATEWAY_TOKEN is set and the config sets gateway.auth.password: use one credential, not both (unset the variable or remove the password)",
            ));
        }
        g.auth.token = Some(Secret::new(v));
        // The env wins over the file; forgetting the file keeps displays honest about
        // where the token in force came from, and a stale path is not read.
        g.auth.token_file = None;
    }
    Ok(())
}

fn read_secret_files(c: &mut Config, base: &Path) -> Result<()> {
    let a = &mut c.gateway.auth;
    resolve(&mut a.token, &mut a.token_file, "gateway.auth.tokenFile", base)?;
    resolve(
        &mut a.agent_token,
        &mut a.agent_token_file,
        "gateway.auth.agentTokenFile",
        base,
    )?;
    for (secret, file, key) in enabled_channel_secrets(&mut c.channels) {
        resolve(secret, file, &format!("{key}File"), base)?;
    }
    Ok(())
}

/// The secrets of the enabled channels, in a fixed order: each with its `*File` and its
/// key (`channels.telegram.botToken`), which also names its systemd credential.
fn enabled_channel_secrets(
    ch: &mut ChannelsConfig,
) -> Vec<(&mut Option<Secret>, &mut Option<PathBuf>, &'static str)> {
    let mut secrets = Vec::new();
    let t = &mut ch.telegram;
    if t.enabled {
        secrets.push((
            &mut t.bot_token,
            &mut t.bot_token_file,
            "channels.telegram.botToken",
        ));
    }
    let d = &mut ch.discord;
    if d.enabled {
        secrets.push((&mut d.token, &mut d.token_file, "channels.discord.token"));
    }
    let s = &mut ch.slack;
    if s.enabled {
        secrets.push((&mut s.app_token, &mut s.app_token_file, "channels.slack.appToken"));
        secrets.push((&mut s.bot_token, &mut s.bot_token_file, "channels.slack.botToken"));
    }
    secrets
}

/// systemd credentials (`LoadCredential=`, `SetCredential=`): when `$CREDENTIALS_DIRECTORY`
/// is set, a secret the config leaves unset (no value, no `*File`, no `EMONK_GATEWAY_TOKEN`)
/// is read from the credential named after its key: `gateway.auth.token`,
/// `gateway.auth.password`, `gateway.auth.agentToken`, `channels.telegram.botToken`, `channels.discord.token`,
/// `channels.slack.appToken`, `channels.slack.botToken`. Anything the config sets wins, so
/// a credential can never silently replace a secret the admin wrote down; channel
/// credentials are read only for enabled channels, like their files.
fn read_credentials(c: &mut Config, env: Env) -> Result<()> {
    let Some(dir) = env(CREDENTIALS_DIRECTORY) else {
        return Ok(());
    };
    let dir = PathBuf::from(dir);
    let a = &mut c.gateway.auth;
    if a.token.is_none() && a.password.is_none() {
        let token = credential_path(&dir, "gateway.auth.token");
        let password = credential_path(&dir, "gateway.auth.password");
        if token.is_some() && password.is_some() {
            return Err(ConfigError::new(format!(
                "{CREDENTIALS_DIRECTORY} holds both gateway.auth.token and gateway.auth.password: use one credential, not both"
            )));
        }
        if token.is_some() {
            a.token_file = token;
            resolve(
                &mut a.token,
                &mut a.token_file,
                "gateway.auth.token (credential)",
                &dir,
            )?;
        } else if let Some(path) = password {
            let mut shown = Some(path);
            resolve(
                &mut a.password,
                &mut shown,
                "gateway.auth.password (credential)",
                &dir,
            )?;
        }
    }
    from_credential(
        &mut a.agent_token,
        &mut a.agent_token_file,
        "gateway.auth.agentToken",
        &dir,
    )?;
    for (secret, file, name) in enabled_channel_secrets(&mut c.channels) {
        from_credential(secret, file, name, &dir)?;
    }
    Ok(())
}

/// The environment variable systemd sets to the service's credentials directory.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// `dir/name`, if that credential exists.
fn credential_path(dir: &Path, name: &str) -> Option<PathBuf> {
    let path = dir.join(name);
    path.exists().then_some(path)
}

/// Fill an unset secret from the credential `name`, recording its path as the `*File`.
fn from_credential(
    secret: &mut Option<Secret>,
    file: &mut Option<PathBuf>,
    name: &str,
    dir: &Path,
) -> Result<()> {
    if secret.is_some() {
        return Ok(());
    }
    let Some(path) = credential_path(dir, name) else {
        return Ok(());
    };
    *file = Some(path);
    resolve(secret, file, &format!("{name} (credential)"), dir)
}

/// Fill `secret` from `file` (if set), and make `file` absolute for display. Relative
/// paths are relative to the config file, not the cwd, so the daemon reads the same file
/// whether started by hand, by systemd or by runit.
fn resolve(secret: &mut Option<Secret>, file: &mut Option<PathBuf>, key: &str, base: &Path) -> Result<()> {
    let Some(rel) = file.as_ref() else {
        return Ok(());
    };
    let path = base.join(rel);
    let value = read_secret_file(&path).map_err(|e| match e {
        SecretFileError::Unreadable(e) => ConfigError::new(format!(
            "{key}: cannot read {}: {e}; create the file or fix the path (a relative path is relative to the config file's directory)",
            path.display()
        )),
        SecretFileError::Empty => ConfigError::new(format!(
            "{key}: {} is empty; write the secret into it",
            path.display()
        )),
    })?;
    *secret = Some(Secret::new(value));
    *file = Some(path);
    Ok(())
}

/// Why a secret file gave no secret.
#[derive(Debug)]
pub enum SecretFileError {
    /// Missing, unreadable, or larger than any secret.
    Unreadable(std::io::Error),
    /// Nothing but whitespace in it.
    Empty,
}

/// The secret in the file at `path`, for the config's `*File` keys and the CLI's
/// `--token-file`: size-capped, surrounding whitespace trimmed (editors and `echo` add a
/// final newline; it is never part of a token), not empty. The caller words the error and
/// checks the mode ([`shared_mode`]) for its own audience.
pub fn read_secret_file(path: &Path) -> std::result::Result<String, SecretFileError> {
    let text = read_capped(path, MAX_SECRET_BYTES).map_err(SecretFileError::Unreadable)?;
    let value = text.trim();
    if value.is_empty() {
        return Err(SecretFileError::Empty);
    }
    Ok(value.to_owned())
}

/// An enabled connector without credentials could only fail at runtime, after the daemon
/// has reported a successful start, so it is a config error instead. Checked after secret
/// files and credentials, which may supply the token.
fn require_channel_tokens(c: &Config) -> Result<()> {
    let ch = &c.channels;
    let checks = [
        (
            ch.telegram.enabled,
            ch.telegram.bot_token.is_some(),
            "telegram",
            "botToken",
        ),
        (ch.discord.enabled, ch.discord.token.is_some(), "discord", "token"),
        (
            ch.slack.enabled,
            ch.slack.app_token.is_some(),
            "slack",
            "appToken",
        ),
        (
            ch.slack.enabled,
            ch.slack.bot_token.is_some(),
            "slack",
            "botToken",
        ),
    ];
    for (enabled, present, channel, key) in checks {
        if enabled && !present {
            return Err(ConfigError::new(format!(
                "channels.{channel}.enabled is true but {key} is not set: set channels.{channel}.{key} or channels.{channel}.{key}File (or the systemd credential channels.{channel}.{key}), or set enabled to false"
            )));
        }
    }
    Ok(())
}

/// An agent token equal to the operator credential would let either side take the other's
/// role, which is what the separate token exists to prevent. Checked on the values in force
/// (after `EMONK_GATEWAY_TOKEN`, files and credentials).
fn check_agent_token(g: &GatewayConfig) -> Result<()> {
    let Some(agent) = &g.auth.agent_token else {
        return Ok(());
    };
    let clashes = [
        (&g.auth.token, "the gateway token"),
        (&g.auth.password, "gateway.auth.password"),
    ];
    for (secret, name) in clashes {
        if secret.as_ref() == Some(agent) {
            return Err(ConfigError::new(format!(
                "gateway.auth.agentToken is the same as {name}: the agent token must be a different secret, or the roles are not separated; generate a new one (e.g. `openssl rand -hex 32`)"
            )));
        }
    }
    Ok(())
}

/// What the admin should hear about a config that loads: today, secret files that group
/// or others may read. A warning, not a refusal: the admin may rely on group permissions
/// on purpose. `run` logs these at start and on each reload, `check-config` prints them.
pub fn warnings(c: &Config) -> Vec<String> {
    let (a, ch) = (&c.gateway.auth, &c.channels);
    let files = [
        ("gateway.auth.tokenFile", &a.token_file, true),
        ("gateway.auth.agentTokenFile", &a.agent_token_file, true),
        (
            "channels.telegram.botTokenFile",
            &ch.telegram.bot_token_file,
            ch.telegram.enabled,
        ),
        (
            "channels.discord.tokenFile",
            &ch.discord.token_file,
            ch.discord.enabled,
        ),
        (
            "channels.slack.appTokenFile",
            &ch.slack.app_token_file,
            ch.slack.enabled,
        ),
        (
            "channels.slack.botTokenFile",
            &ch.slack.bot_token_file,
            ch.slack.enabled,
        ),
    ];
    files
        .into_iter()
        .filter_map(|(key, path, read)| {
            let path = path.as_deref().filter(|_| read)?;
            let mode = shared_mode(path)?;
            Some(format!(
                "{key}: {} is accessible to other users (mode {mode:03o}); run chmod 600 on it",
                path.display()
            ))
        })
        .collect()
}

/// The permission bits of a secret file that group or others may access, `None` when only
/// its owner may (or it cannot be inspected).
pub fn shared_mode(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

/// A gateway reachable from other hosts without a credential lets anyone on the network
/// drive the agent and the chat accounts, so it is a configuration error, not a warning.
fn check_bind_auth(g: &GatewayConfig) -> Result<()> {
    let (shown, loopback) = match g.bind {
        BindMode::Loopback => return Ok(()),
        BindMode::Lan => ("0.0.0.0".to_string(), false),
        BindMode::Tailnet => ("100.64.0.0/10".to_string(), false),
        BindMode::Custom => {
            let ip = g.bind_host()?;
            // to_canonical: ::ffff:127.0.0.1 is loopback too.
            (ip.to_string(), ip.to_canonical().is_loopback())
        }
    };
    if loopback || g.auth_required() {
        return Ok(());
    }
    Err(ConfigError::new(format!(
        "gateway.bind is \"{}\" ({shown}) but no auth is configured: set gateway.auth.token (or tokenFile or password), or EMONK_GATEWAY_TOKEN, or use --bind loopback",
        g.bind
    )))
}

/// Read a whole UTF-8 file of at most `limit` bytes.
fn read_capped(path: &Path, limit: u64) -> io::Result<String> {
    let mut bytes = Vec::new();
    File::open(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the file is larger than {limit} bytes"),
        ));
    }
    // No detail from the UTF-8 error: it is harmless, but keeps this path secret-free.
    String::from_utf8(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the file is not valid UTF-8"))
}

/// A user-supplied value for a message, JSON-quoted and kept short.
fn quote(s: &str) -> String {
    let short: String = s.chars().take(60).collect();
    Value::from(short).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::fs;
    use std::net::{IpAddr, Ipv4Addr};

    struct Fixture {
        dir: tempfile::TempDir,
        loc: ConfigLocation,
    }

    fn fixture(config: Option<&str>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/emonk.json");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        if let Some(text) = config {
            fs::write(&path, text).unwrap();
        }
        Fixture {
            loc: ConfigLocation { path, explicit: true },
            dir,
        }
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    fn no_env() -> impl Fn(&str) -> Option<String> {
        env(&[])
    }

    fn load_err(f: &Fixture, o: &Overrides, e: &[(&str, &str)]) -> String {
        load(&f.loc, o, &env(e)).unwrap_err().to_string()
    }

    #[test]
    fn missing_default_file_is_all_defaults() {
        let mut f = fixture(None);
        f.loc.explicit = false;
        let c = load(&f.loc, &Overrides::default(), &no_env()).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn missing_explicit_file_is_an_error_naming_the_path() {
        let f = fixture(None);
        let e = load_err(&f, &Overrides::default(), &[]);
        assert!(
            e.starts_with(&format!("config {}: file not found", f.loc.path.display())),
            "{e}"
        );
    }

    #[test]
    fn unreadable_file_is_an_error_even_at_a_default_path() {
        let mut f = fixture(None);
        fs::create_dir(&f.loc.path).unwrap();
        f.loc.explicit = false;
        let e = load_err(&f, &Overrides::default(), &[]);
        assert!(e.contains("cannot read the file"), "{e}");
    }

    #[test]
    fn parse_errors_name_the_file() {
        let f = fixture(Some(r#"{"gateway": {"auth": {"tokn": "x"}}}"#));
        assert_eq!(
            load_err(&f, &Overrides::default(), &[]),
            format!(
                "config {}: unknown key \"gateway.auth.tokn\" (known keys here: token, tokenFile, password, agentToken, agentTokenFile); did you mean \"token\"?",
                f.loc.path.display()
            )
        );
    }

    #[test]
    fn port_and_bind_priority_cli_env_config_default() {
        let f = fixture(Some(
            r#"{"gateway": {"port": 1000, "bind": "lan", "auth": {"token": "t0k3n-value"}}}"#,
        ));
        let cli = Overrides {
            port: Some(3000),
            bind: Some(BindMode::Loopback),
        };
        let e = env(&[("EMONK_GATEWAY_PORT", "2000"), ("EMONK_GATEWAY_BIND", "tailnet")]);
        let c = load(&f.loc, &cli, &e).unwrap();
        assert_eq!((c.gateway.port, c.gateway.bind), (3000, BindMode::Loopback));

        let c = load(&f.loc, &Overrides::default(), &e).unwrap();
        assert_eq!((c.gateway.port, c.gateway.bind), (2000, BindMode::Tailnet));

        let c = load(&f.loc, &Overrides::default(), &no_env()).unwrap();
        assert_eq!((c.gateway.port, c.gateway.bind), (1000, BindMode::Lan));

        let f = fixture(Some("{}"));
        let c = load(&f.loc, &Overrides::default(), &no_env()).unwrap();
        assert_eq!((c.gateway.port, c.gateway.bind), (18789, BindMode::Loopback));

        // Port 0 (ephemeral) is a valid override.
        let e = env(&[("EMONK_GATEWAY_PORT", " 0 ")]);
        let c = load(&f.loc, &Overrides::default(), &e).unwrap();
        assert_eq!(c.gateway.port, 0);
    }

    #[test]
    fn invalid_env_overrides_name_the_variable() {
        let f = fixture(Some("{}"));
        let o = Overrides::default();
        assert_eq!(
            load_err(&f, &o, &[("EMONK_GATEWAY_PORT", "abc")]),
            "EMONK_GATEWAY_PORT: expected an integer from 0 to 65535, got \"abc\"; fix or unset it"
        );
        assert!(load_err(&f, &o, &[("EMONK_GATEWAY_PORT", "70000")]).contains("got \"70000\""));
        assert_eq!(
            load_err(&f, &o, &[("EMONK_GATEWAY_BIND", "foo")]),
            "EMONK_GATEWAY_BIND: expected one of loopback, lan, tailnet, custom, got \"foo\"; fix or unset it"
        );
        assert!(load_err(&f, &o, &[("EMONK_GATEWAY_TOKEN", "  ")]).contains("blank"));
        // An empty variable is the same as an unset one.
        assert!(load(&f.loc, &o, &env(&[("EMONK_GATEWAY_PORT", "")])).is_ok());
    }

    #[test]
    fn env_token_wins_over_the_file() {
        let f = fixture(Some(r#"{"gateway": {"auth": {"tokenFile": "missing.token"}}}"#));
        let c = load(
            &f.loc,
            &Overrides::default(),
            &env(&[("EMONK_GATEWAY_TOKEN", "from-env")]),
        )
        .unwrap();
        assert_eq!(c.gateway.auth.token.unwrap().expose(), "from-env");
        assert_eq!(c.gateway.auth.token_file, None);

        let f = fixture(Some(r#"{"gateway": {"auth": {"password": "pw-value"}}}"#));
        let e = load_err(&f, &Overrides::default(), &[("EMONK_GATEWAY_TOKEN", "from-env")]);
        assert!(e.contains("use one credential"), "{e}");
        assert!(!e.contains("from-env") && !e.contains("pw-value"), "{e}");
    }

    #[test]
    fn token_file_is_relative_to_the_config_dir() {
        let f = fixture(Some(
            r#"{"gateway": {"bind": "lan", "auth": {"tokenFile": "secrets/gw.token"}}}"#,
        ));
        let secret_path = f.dir.path().join("etc/secrets/gw.token");
        fs::create_dir_all(secret_path.parent().unwrap()).unwrap();
        fs::write(&secret_path, "file-token-123\n\n").unwrap();
        let c = load(&f.loc, &Overrides::default(), &no_env()).unwrap();
        assert_eq!(c.gateway.auth.token.as_ref().unwrap().expose(), "file-token-123");
        assert_eq!(c.gateway.auth.token_file.as_deref(), Some(secret_path.as_path()));
        assert!(c.gateway.auth_required());
    }

    #[test]
    fn absolute_token_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("tok");
        fs::write(&secret, "abs-token").unwrap();
        let text = format!(
            r#"{{"gateway": {{"auth": {{"tokenFile": {}}}}}}}"#,
            Value::from(secret.to_str().unwrap())
        );
        let f = fixture(Some(&text));
        let c = load(&f.loc, &Overrides::default(), &no_env()).unwrap();
        assert_eq!(c.gateway.auth.token.unwrap().expose(), "abs-token");
    }

    #[test]
    fn token_file_missing_or_empty() {
        let f = fixture(Some(r#"{"gateway": {"auth": {"tokenFile": "gw.token"}}}"#));
        let expected = f.dir.path().join("etc/gw.token");
        let e = load_err(&f, &Overrides::default(), &[]);
        assert!(
            e.starts_with(&format!(
                "config {}: gateway.auth.tokenFile: cannot read {}:",
                f.loc.path.display(),
                expected.display()
            )),
            "{e}"
        );
        assert!(e.contains("relative to the config file's directory"), "{e}");

        fs::write(&expected, " \n").unwrap();
        let e = load_err(&f, &Overrides::default(), &[]);
        assert!(e.ends_with("gw.token is empty; write the secret into it"), "{e}");
    }

    #[test]
    fn channel_token_files_are_read_only_when_enabled() {
        let f = fixture(Some(
            r#"{"channels": {
                "telegram": {"enabled": true, "botTokenFile": "tg.token"},
                "discord": {"enabled": false, "tokenFile": "not-there"},
                "slack": {"enabled": true, "appTokenFile": "app.token", "botToken": "xoxb-inline"}
            }}"#,
        ));
        let etc = f.dir.path().join("etc");
        fs::write(etc.join("tg.token"), "123:ABC\n").unwrap();
        fs::write(etc.join("app.token"), "xapp-1\n").unwrap();
        let c = load(&f.loc, &Overrides::default(), &no_env()).unwrap();
        let ch = &c.channels;
        assert_eq!(ch.telegram.bot_token.as_ref().unwrap().expose(), "123:ABC");
        assert_eq!(ch.discord.token, None);
        assert_eq!(ch.discord.token_file.as_deref(), Some(Path::new("not-there")));
        assert_eq!(ch.slack.app_token.as_ref().unwrap().expose(), "xapp-1");
        assert_eq!(ch.slack.bot_token.as_ref().unwrap().expose(), "xoxb-inline");

        fs::remove_file(etc.join("app.token")).unwrap();
        let e = load_err(&f, &Overrides::default(), &[]);
        assert!(e.contains("channels.slack.appTokenFile: cannot read"), "{e}");
    }

    #[test]
    fn non_loopback_without_auth_is_refused() {
        let f = fixture(Some("{}"));
        let lan = Overrides {
            bind: Some(BindMode::Lan),
            ..Overrides::default()
        };
        assert_eq!(
            load_err(&f, &lan, &[]),
            format!(
                "config {}: gateway.bind is \"lan\" (0.0.0.0) but no auth is configured: set gateway.auth.token (or tokenFile or password), or EMONK_GATEWAY_TOKEN, or use --bind loopback",
                f.loc.path.display()
            )
        );
        let e = load_err(&f, &Overrides::default(), &[("EMONK_GATEWAY_BIND", "tailnet")]);
        assert!(e.contains("gateway.bind is \"tailnet\""), "{e}");

        // Any credential makes it acceptable, including one from the env.
        let c = load(&f.loc, &lan, &env(&[("EMONK_GATEWAY_TOKEN", "env-tok")])).unwrap();
        assert_eq!(c.gateway.bind_host().unwrap(), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let f = fixture(Some(r#"{"gateway": {"auth": {"password": "pw"}}}"#));
        assert!(load(&f.loc, &lan, &no_env()).is_ok());
    }

    #[test]
    fn custom_bind_host() {
        let f = fixture(Some(r#"{"gateway": {"bind": "custom"}}"#));
        let e = load_err(&f, &Overrides::default(), &[]);
        assert!(e.contains("gateway.customBindHost is not set"), "{e}");

        for host in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            let text = format!(r#"{{"gateway": {{"bind": "custom", "customBindHost": "{host}"}}}}"#);
            let f = fixture(Some(&text));
            let c = load(&f.loc, &Overrides::default(), &no_env()).unwrap();
            assert_eq!(c.gateway.bind_host().unwrap(), host.parse::<IpAddr>().unwrap());
        }
        for host in ["0.0.0.0", "::", "192.168.1.10"] {
            let text = format!(r#"{{"gateway": {{"bind": "custom", "customBindHost": "{host}"}}}}"#);
            let f = fixture(Some(&text));
            let e = load_err(&f, &Overrides::default(), &[]);
            assert!(
                e.contains(&format!("gateway.bind is \"custom\" ({host}) but no auth")),
                "{e}"
            );
        }
    }

    #[test]
    fn secrets_never_leak_into_errors_or_debug() {
        let f = fixture(Some(
            r#"{"gateway": {"bind": "custom", "auth": {"token": "SEKRET-gw"}},
                "channels": {"discord": {"enabled": true, "token": "SEKRET-dc"}}}"#,
        ));
        let e = load_err(&f, &Overrides::default(), &[]);
        assert!(!e.contains("SEKRET"), "{e}");
        let e = load(&f.loc, &Overrides::default(), &no_env()).unwrap_err();
        assert!(!format!("{e:?}").contains("SEKRET"));

        let f = fixture(Some(
            r#"{"gateway": {"auth": {"token": "SEKRET-gw"}},
                "channels": {"discord": {"enabled": true, "token": "SEKRET-dc"}}}"#,
        ));
        let c = load(&f.loc, &Overrides::default(), &no_env()).unwrap();
        let debug = format!("{c:?} {c:#?}");
        assert!(!debug.contains("SEKRET"), "{debug}");
        assert!(debug.contains("***"));
    }

    #[test]
    fn oversized_config_is_refused() {
        let big = format!("{{\"gateway\": {{}}, \"x\": \"{}\"}}", "a".repeat(2 << 20));
        let f = fixture(Some(&big));
        let e = load_err(&f, &Overrides::default(), &[]);
        assert!(e.contains("larger than"), "{e}");
    }

    fn credentials(f: &Fixture, files: &[(&str, &str)]) -> String {
        let dir = f.dir.path().join("creds");
        fs::create_dir_all(&dir).unwrap();
        for (name, value) in files {
            fs::write(dir.join(name), value).unwrap();
        }
        dir.to_str().unwrap().to_owned()
    }

    /// Load `f` with `$CREDENTIALS_DIRECTORY` set to `creds` (and nothing else).
    fn load_with_credentials(f: &Fixture, creds: &str) -> Config {
        load(
            &f.loc,
            &Overrides::default(),
            &env(&[("CREDENTIALS_DIRECTORY", creds)]),
        )
        .unwrap()
    }

    #[test]
    fn credentials_fill_unset_secrets_by_key_name() {
        let f = fixture(Some(
            r#"{"gateway": {"bind": "lan"},
                "channels": {"telegram": {"enabled": true},
                             "slack": {"enabled": true, "botToken": "xoxb-inline"}}}"#,
        ));
        let creds = credentials(
            &f,
            &[
                ("gateway.auth.token", "gw-cred\n"),
                ("channels.telegram.botToken", "tg-cred"),
                ("channels.slack.appToken", "xapp-cred"),
                ("channels.slack.botToken", "xoxb-cred"),
                ("channels.discord.token", "unused: discord is disabled"),
            ],
        );
        let c = load_with_credentials(&f, &creds);
        assert_eq!(c.gateway.auth.token.as_ref().unwrap().expose(), "gw-cred");
        assert_eq!(
            c.gateway.auth.token_file.as_deref(),
            Some(Path::new(&creds).join("gateway.auth.token").as_path())
        );
        assert_eq!(
            c.channels.telegram.bot_token.as_ref().unwrap().expose(),
            "tg-cred"
        );
        assert_eq!(c.channels.slack.app_token.as_ref().unwrap().expose(), "xapp-cred");
        // The config's own value wins over a credential.
        assert_eq!(
            c.channels.slack.bot_token.as_ref().unwrap().expose(),
            "xoxb-inline"
        );
        assert!(c.channels.discord.token.is_none());
        // Without $CREDENTIALS_DIRECTORY nothing is read.
        let e = load_err(&f, &Overrides::default(), &[]);
        assert!(e.contains("botToken is not set"), "{e}");
    }

    #[test]
    fn config_and_env_win_over_credentials() {
        let f = fixture(Some(r#"{"gateway": {"auth": {"tokenFile": "gw.token"}}}"#));
        fs::write(f.dir.path().join("etc/gw.token"), "from-file").unwrap();
        let creds = credentials(&f, &[("gateway.auth.token", "from-cred")]);
        let c = load_with_credentials(&f, &creds);
        assert_eq!(c.gateway.auth.token.unwrap().expose(), "from-file");
        let f = fixture(Some("{}"));
        let vars = [
            ("CREDENTIALS_DIRECTORY", creds.as_str()),
            ("EMONK_GATEWAY_TOKEN", "from-env"),
        ];
        let c = load(&f.loc, &Overrides::default(), &env(&vars)).unwrap();
        assert_eq!(c.gateway.auth.token.unwrap().expose(), "from-env");
        // A password in the config means no token credential is read either.
        let f = fixture(Some(r#"{"gateway": {"auth": {"password": "pw"}}}"#));
        let creds = credentials(&f, &[("gateway.auth.token", "from-cred")]);
        let c = load_with_credentials(&f, &creds);
        assert!(c.gateway.auth.token.is_none());
    }

    #[test]
    fn password_credential_and_conflicts() {
        let f = fixture(Some("{}"));
        let creds = credentials(&f, &[("gateway.auth.password", "pw-cred")]);
        let c = load_with_credentials(&f, &creds);
        assert_eq!(c.gateway.auth.password.unwrap().expose(), "pw-cred");
        credentials(&f, &[("gateway.auth.token", "tok")]);
        let e = load_err(&f, &Overrides::default(), &[("CREDENTIALS_DIRECTORY", &creds)]);
        assert!(e.contains("use one credential"), "{e}");
        let f = fixture(Some("{}"));
        let creds = credentials(&f, &[("gateway.auth.token", "  \n")]);
        let e = load_err(&f, &Overrides::default(), &[("CREDENTIALS_DIRECTORY", &creds)]);
        assert!(
            e.contains("gateway.auth.token (credential)") && e.contains("is empty"),
            "{e}"
        );
    }
    #[test]
    fn enabled_channel_needs_a_token() {
        let err = |text: &str| load_err(&fixture(Some(text)), &Overrides::default(), &[]);
        assert_eq!(
            err(r#"{"channels": {"telegram": {"enabled": true}}}"#)
                .split(": ")
                .skip(1)
                .collect::<Vec<_>>()
                .join(": "),
            "channels.telegram.enabled is true but botToken is not set: set channels.telegram.botToken or channels.telegram.botTokenFile (or the systemd credential channels.telegram.botToken), or set enabled to false"
        );
        assert!(
            err(r#"{"channels": {"discord": {"enabled": true}}}"#)
                .contains("channels.discord.enabled is true but token is not set: set channels.discord.token or channels.discord.tokenFile")
        );
        assert!(
            err(r#"{"channels": {"slack": {"enabled": true, "botToken": "b"}}}"#)
                .contains("set channels.slack.appToken or channels.slack.appTokenFile")
        );
        assert!(
            err(r#"{"channels": {"slack": {"enabled": true, "appToken": "a"}}}"#)
                .contains("set channels.slack.botToken or channels.slack.botTokenFile")
        );
        // Disabled channels may be half-configured.
        let f = fixture(Some(r#"{"channels": {"telegram": {"enabled": false}}}"#));
        assert!(load(&f.loc, &Overrides::default(), &no_env()).is_ok());
    }
}
