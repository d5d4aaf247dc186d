//! Process exit codes, in one place so the CLI, the man page and the tests agree.
//!
//! The numbers follow the contract: 0 ok, 1 runtime failure, 2 usage, 3 not running
//! (`status`, `stop`), 4 running but not answering (`status`), 78 configuration error (sysexits' EX_CONFIG, which systemd units can
//! list in `RestartPreventExitStatus` so a bad config is not restarted in a loop).

/// Success.
pub const OK: u8 = 0;
/// A runtime failure: I/O, a lost connection, an error answer from the gateway.
pub const FAILURE: u8 = 1;
/// The command line could not be parsed.
pub const USAGE: u8 = 2;
/// `status` / `stop`: no gateway is running for this config.
pub const NOT_RUNNING: u8 = 3;
/// `status`: a gateway holds the lock but did not answer the live probe (it is frozen,
/// overloaded, or refused the probe), so a container health check built on `status` fails.
pub const NOT_ANSWERING: u8 = 4;
/// The configuration is invalid, the port is in use, a non-loopback bind has no auth, or
/// the state dir is unsafe (owned by another user, writable by others, a link in it).
pub const CONFIG: u8 = 78;
