//! Running supervisor commands (`systemctl`, `systemd-sysusers`, `sv`) through an injectable
//! [`Runner`], so unit tests script the answers; integration tests put fake commands first
//! in `$PATH`. Nothing here decides anything.

use std::fmt;
use std::io;
use std::process::{Command, Stdio};

/// A command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd(pub Vec<String>);

impl Cmd {
    pub fn new(args: &[&str]) -> Cmd {
        Cmd(args.iter().map(|s| s.to_string()).collect())
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

/// What a command did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

pub trait Runner {
    /// Run `cmd` to completion. `Err` only when it could not be started at all.
    fn run(&mut self, cmd: &Cmd) -> io::Result<Outcome>;
}

/// Runs commands for real, found through `$PATH`, with stdin closed.
pub struct SystemRunner;

impl Runner for SystemRunner {
    fn run(&mut self, cmd: &Cmd) -> io::Result<Outcome> {
        let (program, args) = cmd
            .0
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        let out = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run {program}: {e}")))?;
        Ok(Outcome {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// Records every command and answers from a script: the first rule whose needle is in the
/// command line decides; anything else succeeds silently.
#[cfg(test)]
#[derive(Default)]
pub struct FakeRunner {
    pub ran: Vec<String>,
    pub rules: Vec<(&'static str, Outcome)>,
}

#[cfg(test)]
impl Runner for FakeRunner {
    fn run(&mut self, cmd: &Cmd) -> io::Result<Outcome> {
        let line = cmd.to_string();
        self.ran.push(line.clone());
        Ok(self
            .rules
            .iter()
            .find(|(needle, _)| line.contains(needle))
            .map(|(_, o)| o.clone())
            .unwrap_or(Outcome {
                success: true,
                ..Outcome::default()
            }))
    }
}
