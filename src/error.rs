//! The command-level error: what went wrong, said so the user knows what to do, and the
//! exit code it maps to. Every subcommand returns this; `cli::main` prints it once.

use std::fmt;

use crate::exit;

#[derive(Debug)]
pub enum Error {
    /// Bad command line (exit 2).
    Usage(String),
    /// Bad configuration, port in use, unsafe bind, unsafe state dir (exit 78).
    Config(String),
    /// No gateway is running for this config (exit 3).
    NotRunning(String),
    /// Anything else that failed at run time (exit 1).
    Failure(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Config(_) => exit::CONFIG,
            Error::NotRunning(_) => exit::NOT_RUNNING,
            Error::Failure(_) => exit::FAILURE,
        }
    }

    pub fn failure(message: impl Into<String>) -> Error {
        Error::Failure(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Config(m) | Error::NotRunning(m) | Error::Failure(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<crate::config::ConfigError> for Error {
    fn from(e: crate::config::ConfigError) -> Error {
        Error::Config(e.to_string())
    }
}

impl From<crate::lock::LockError> for Error {
    fn from(e: crate::lock::LockError) -> Error {
        Error::Failure(e.to_string())
    }
}

impl From<crate::statefs::audit::StateDirError> for Error {
    fn from(e: crate::statefs::audit::StateDirError) -> Error {
        use crate::statefs::audit::StateDirError;
        match e {
            StateDirError::Unsafe(_) => Error::Config(e.to_string()),
            StateDirError::Io(_) => Error::Failure(e.to_string()),
        }
    }
}
