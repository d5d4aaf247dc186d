//! `emonkd`: the gateway daemon and its command-line tools. All logic lives in the library.

fn main() -> std::process::ExitCode {
    emonk::cli::main()
}
