//! Errors of the service commands. Each says what was (not) changed and what to do.

use std::fmt;

#[derive(Debug)]
pub enum ServiceError {
    /// The command line asks for something contradictory (exit 2).
    Usage(String),
    /// A check before any change failed: nothing was written or run (exit 1).
    Refused(String),
    /// A step failed after changes began; they were rolled back as far as possible (exit 1).
    Failed(String),
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::Usage(m) | ServiceError::Refused(m) | ServiceError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ServiceError {}

impl From<ServiceError> for crate::error::Error {
    fn from(e: ServiceError) -> crate::error::Error {
        match e {
            ServiceError::Usage(m) => crate::error::Error::Usage(m),
            ServiceError::Refused(m) | ServiceError::Failed(m) => crate::error::Error::Failure(m),
        }
    }
}
