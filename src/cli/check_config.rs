//! `emonkd check-config`: load the config exactly as `run` would (file, env overrides,
//! secret files, validation) and print the effective config with secrets masked.

use super::args::CheckConfigArgs;
use super::out;
use crate::config::{self, Overrides};
use crate::error::Error;
use crate::{exit, paths};

pub fn run(args: CheckConfigArgs) -> Result<u8, Error> {
    let env = paths::process_env;
    let location = paths::config_location(args.config.as_deref(), &env).map_err(Error::Config)?;
    let config = config::load(&location, &Overrides::default(), &env)?;
    let source = if location.path.exists() {
        ""
    } else {
        " (not found: all defaults)"
    };
    for w in config::warnings(&config) {
        out::eprint(&format!("warning: {w}\n"));
    }
    out::eprint(&format!("config OK: {}{source}\n", location.path.display()));
    let text = serde_json::to_string_pretty(&config::masked_json(&config)).expect("JSON value serializes");
    out::line(text)?;
    Ok(exit::OK)
}
