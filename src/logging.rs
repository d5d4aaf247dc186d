//! Logging setup: env_logger on stderr, `info` by default, `debug` with `--verbose`, and
//! `RUST_LOG` on top. Under systemd (`JOURNAL_STREAM` set) lines carry no timestamp, since
//! journald stamps them itself.

use log::LevelFilter;

/// Initialize logging once; later calls are ignored.
pub fn init(verbose: bool) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(if verbose {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    });
    // tungstenite logs every handshake at debug; that is noise even with --verbose.
    builder.filter_module("tungstenite", LevelFilter::Warn);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.format_timestamp(None);
    } else {
        builder.format_timestamp_millis();
    }
    builder.target(env_logger::Target::Stderr);
    let _ = builder.try_init();
}
