//! Logging setup: env_logger on stderr, `info` by default, `debug` with `--verbose`, and
//! `RUST_LOG` on top. Under systemd (`JOURNAL_STREAM` set) lines carry no timestamp, since
//! journald stamps them itself. `RUST_LOG` takes env_logger's directives (`info`,
//! `emonk::router=debug`); the `/regex` message filter is not compiled in.
//!
//! Secrets never reach the log, at any level. emonk's own records never carry one, but the
//! libraries it uses log what they send: ureq logs the request path (Telegram's is
//! `/bot<token>/getMe`) at trace, ureq-proto and tungstenite log raw requests, headers and
//! frames (an `Authorization` header, Discord's Identify, a client's `connect` with its
//! token) at trace, rustls logs handshake messages. Their records above [`LIBRARY_CAP`]
//! are dropped by a filter in front of env_logger, so no `RUST_LOG` directive, not even one
//! naming a module of theirs (`ureq::run=trace`), can bring them back.

use log::{LevelFilter, Log, Metadata, Record};

/// Crates whose debug and trace records may carry request lines, headers or frames.
const CAPPED_CRATES: &[&str] = &["ureq", "ureq_proto", "rustls", "tungstenite"];

/// The most a capped crate may log: their info and above say what failed, never what was
/// sent.
const LIBRARY_CAP: LevelFilter = LevelFilter::Info;

/// env_logger behind a filter that enforces [`LIBRARY_CAP`].
struct Capped(env_logger::Logger);

/// True if a record of `metadata` is above the cap of its crate.
fn over_cap(metadata: &Metadata) -> bool {
    let krate = metadata.target().split("::").next().unwrap_or_default();
    metadata.level() > LIBRARY_CAP && CAPPED_CRATES.contains(&krate)
}

impl Log for Capped {
    fn enabled(&self, metadata: &Metadata) -> bool {
        !over_cap(metadata) && self.0.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if !over_cap(record.metadata()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// Initialize logging once; later calls are ignored.
pub fn init(verbose: bool) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(if verbose {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    });
    // tungstenite logs every handshake at debug; that is noise even with --verbose (and
    // whatever RUST_LOG says, the cap above applies).
    builder.filter_module("tungstenite", LevelFilter::Warn);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    // env_logger's own layout, formatted here: its timestamp feature pulls in a date
    // library (and its default features a regex engine) for what one function does.
    let stamped = std::env::var_os("JOURNAL_STREAM").is_none();
    builder.format(move |buf, record| {
        use std::io::Write;
        if stamped {
            let ts = crate::procinfo::format_rfc3339_ms(crate::procinfo::unix_ms());
            writeln!(
                buf,
                "[{ts} {:<5} {}] {}",
                record.level(),
                record.target(),
                record.args()
            )
        } else {
            writeln!(
                buf,
                "[{:<5} {}] {}",
                record.level(),
                record.target(),
                record.args()
            )
        }
    });
    builder.target(env_logger::Target::Stderr);
    let logger = builder.build();
    let max = logger.filter();
    if log::set_boxed_logger(Box::new(Capped(logger))).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn over(target: &str, level: log::Level) -> bool {
        over_cap(&Metadata::builder().target(target).level(level).build())
    }

    #[test]
    fn library_debug_and_trace_are_over_the_cap_and_emonk_never_is() {
        for target in [
            "ureq",
            "ureq::run",
            "ureq_proto::util",
            "rustls::client::hs",
            "tungstenite::protocol",
        ] {
            assert!(over(target, log::Level::Trace), "{target}");
            assert!(over(target, log::Level::Debug), "{target}");
            assert!(!over(target, log::Level::Info), "{target}");
            assert!(!over(target, log::Level::Warn), "{target}");
        }
        // Only whole crate names count: a crate that merely starts the same is not capped.
        for target in [
            "emonk::channels::telegram::api",
            "ureqx",
            "rustls_pemfile",
            "mio::poll",
        ] {
            assert!(!over(target, log::Level::Trace), "{target}");
        }
    }
}
