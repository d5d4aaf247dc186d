//! `emonkd call METHOD [PARAMS_JSON]`: one request to the running gateway. Streamed chunks
//! (`final:false`) are printed as JSON lines as they arrive, the final result as pretty JSON;
//! an error answer goes to stderr with its code, and the exit code is 1.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::args::CallArgs;
use super::out;
use super::target::{Target, url_of};
use crate::client::{ClientError, ClientOptions, GatewayClient};
use crate::config::SecretFileError;
use crate::error::Error;
use crate::exit;

/// Default wait for the final answer: the gateway's default agent timeout plus a margin, so
/// the gateway's own TIMEOUT answer arrives first.
const DEFAULT_TIMEOUT_MS: u64 = 130_000;

pub fn run(args: CallArgs) -> Result<u8, Error> {
    let params: Value = match args.params.as_deref() {
        None => Value::Object(Default::default()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| Error::Usage(format!("PARAMS_JSON is not valid JSON: {e}")))?,
    };
    if !params.is_object() {
        return Err(Error::Usage(
            "PARAMS_JSON must be a JSON object, e.g. '{\"text\":\"hi\"}'".into(),
        ));
    }
    let token = flag_token(args.token, args.token_file.as_deref())?;
    let mut opts = connect_options(args.config.as_deref(), args.url, token, args.password)?;
    opts.client_name = "emonkd-call".into();
    let client = GatewayClient::connect(opts).map_err(client_error)?;
    let timeout = Duration::from_millis(args.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS));
    // A chunk that cannot be printed does not cut the call short: the gateway and the agent
    // finish it, and the first write error is reported at the end.
    let mut write_failed = None;
    let mut print_chunk = |chunk: &Value| {
        if write_failed.is_none() {
            write_failed = out::line(chunk).err();
        }
    };
    let result = client.call_streaming(&args.method, params, timeout, &mut print_chunk);
    client.close();
    let value = result.map_err(client_error)?;
    if let Some(e) = write_failed {
        return Err(e);
    }
    out::line(serde_json::to_string_pretty(&value).expect("JSON value serializes"))?;
    Ok(exit::OK)
}

/// The token of `--token` or `--token-file` (at most one of them). A file is read like the
/// config's `*File` keys: trimmed, not empty, with a warning when other users may read it.
fn flag_token(token: Option<String>, file: Option<&Path>) -> Result<Option<String>, Error> {
    let Some(path) = file else {
        return Ok(token);
    };
    if token.is_some() {
        return Err(Error::Usage(
            "--token and --token-file are alternatives; pass one of them".into(),
        ));
    }
    let token = crate::config::read_secret_file(path).map_err(|e| match e {
        SecretFileError::Unreadable(e) => Error::Usage(format!(
            "cannot read --token-file {}: {e}; check the path and its permissions",
            path.display()
        )),
        SecretFileError::Empty => Error::Usage(format!(
            "--token-file {} is empty; write the gateway token into it",
            path.display()
        )),
    })?;
    if let Some(mode) = crate::config::shared_mode(path) {
        out::eprint(&format!(
            "warning: --token-file {} is accessible to other users (mode {mode:03o}); run chmod 600 on it\n",
            path.display()
        ));
    }
    Ok(Some(token))
}

/// Client options for a command that talks to the gateway: the URL from `--url` or the lock
/// payload, credentials from the flags or the config.
pub fn connect_options(
    config: Option<&std::path::Path>,
    url: Option<String>,
    token: Option<String>,
    password: Option<String>,
) -> Result<ClientOptions, Error> {
    let target = Target::find(config)?;
    let url = match url {
        Some(u) => u,
        None => url_of(&target.running()?),
    };
    let (token, password) = if token.is_some() || password.is_some() {
        (token, password)
    } else {
        let config = target.config()?;
        let auth = config.gateway.auth;
        (
            auth.token.map(|s| s.expose().to_owned()),
            auth.password.map(|s| s.expose().to_owned()),
        )
    };
    Ok(ClientOptions {
        url,
        token,
        password,
        client_version: crate::VERSION.into(),
        reconnect: false,
        ..ClientOptions::default()
    })
}

/// Map a client error onto the command's error and exit code.
pub fn client_error(e: ClientError) -> Error {
    match e.exit_code() {
        exit::USAGE => Error::Usage(e.to_string()),
        _ => Error::Failure(e.to_string()),
    }
}
