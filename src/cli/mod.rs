//! The `emonkd` command line: argument parsing (argh), `help`, `--version`, and dispatch to
//! one module per subcommand. Errors are printed once, here, and mapped to exit codes.

mod args;
mod call;
mod check_config;
mod control;
mod out;
mod service;
mod status;
mod target;

use std::process::ExitCode;

use argh::FromArgs;

use crate::error::Error;
use crate::exit;
pub use args::{Cli, Command};

/// Entry point of the `emonkd` binary.
pub fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let code = match parse(&argv) {
        Ok(cli) => match execute(cli) {
            Ok(code) => code,
            Err(e) => {
                out::eprint(&format!("emonkd: {e}\n"));
                e.exit_code()
            }
        },
        Err(code) => code,
    };
    ExitCode::from(code)
}

/// Parse the command line; `help [SUBCOMMAND]` is the same as `[SUBCOMMAND] --help`. On
/// `--help` the text goes to stdout (exit 0); on a usage error to stderr (exit 2).
fn parse(argv: &[String]) -> Result<Cli, u8> {
    let name = argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .unwrap_or("emonkd");
    let mut args: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    if args.first() == Some(&"help") {
        args.remove(0);
        args.push("--help");
    }
    Cli::from_args(&[name], &args).map_err(|early| {
        if early.status.is_ok() {
            match out::print(&early.output) {
                Ok(()) => exit::OK,
                Err(e) => {
                    out::eprint(&format!("emonkd: {e}\n"));
                    e.exit_code()
                }
            }
        } else {
            out::eprint(&format!(
                "{}\nRun `emonkd help` for usage.\n",
                early.output.trim_end()
            ));
            exit::USAGE
        }
    })
}

fn execute(cli: Cli) -> Result<u8, Error> {
    if cli.version {
        out::outln!("emonkd {}", crate::VERSION)?;
        return Ok(exit::OK);
    }
    let Some(command) = cli.command else {
        let help = Cli::from_args(&["emonkd"], &["--help"])
            .err()
            .map(|e| e.output)
            .unwrap_or_default();
        out::eprint(&help);
        return Err(Error::Usage("no command given; try `emonkd run`".into()));
    };
    match command {
        Command::Run(a) => {
            crate::logging::init(a.verbose);
            crate::lifecycle::crash::abort_on_panic();
            let opts = crate::lifecycle::RunOptions {
                config: a.config,
                port: a.port,
                bind: a.bind,
            };
            crate::lifecycle::run(opts)?;
            Ok(exit::OK)
        }
        Command::CheckConfig(a) => check_config::run(a),
        Command::Call(a) => call::run(a),
        Command::Status(a) => status::run(a),
        Command::Stop(a) => control::stop(a),
        Command::Restart(a) => control::restart(a),
        Command::Service(a) => service::run(a),
    }
}
