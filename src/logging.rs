//! Logging setup: env_logger on stderr, `info` by default, `debug` with `--verbose`, and
//! `RUST_LOG` on top. Under systemd (`JOURNAL_STREAM` set) lines carry no timestamp, since
//! journald stamps them itself. `RUST_LOG` takes env_logger's directives (`info`,
//! `emonk::router=debug`); the `/regex` message filter is not compiled in.

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
    let _ = builder.try_init();
}
