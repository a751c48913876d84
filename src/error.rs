//! rb's errors: for each, its kind (the variant), its message, its hints and the exit status
//! it maps to.
//!
//! The message says what went wrong, in one line; hints (`hint: …` lines after it, a `hints`
//! array in the `--json` document) say what to do about it. How an error is shown is up to the
//! caller (`app.rs`, asking `report.rs` whether a failing command already said it): an error
//! carries no say in that. The exit statuses are part of rb's interface (deploy scripts branch on
//! them), so they live here as named constants and are documented in README.md ("Exit
//! statuses") and the man page (`man/sections/exit-status.roff`).

use thiserror::Error;

pub mod exit {
    /// Everything went as asked.
    pub const SUCCESS: i32 = 0;
    /// rb itself refused or failed (bad state on a host, missing generation, …).
    pub const FAILURE: i32 = 1;
    /// The command line was wrong: unknown option, missing value, conflicting options.
    pub const USAGE: i32 = 2;
    /// A host could not be reached over SSH, or the connection was lost (ssh's own status).
    pub const SSH: i32 = 255;
    /// `--confirm-timeout`: the new configuration was not kept; the target is back on the
    /// generation it had before the run (the message says which).
    pub const ROLLED_BACK: i32 = 10;
    /// `--confirm-timeout`: rb could not confirm the new configuration and cannot say that the
    /// target is back where it was (unreachable, or its rollback failed); the message says what
    /// to check.
    pub const UNCONFIRMED: i32 = 11;
    /// A command rb needs is not on a host's PATH (a shell's "command not found").
    pub const NOT_FOUND: i32 = 127;
    /// A bug in rb: something it relies on did not hold (sysexits' EX_SOFTWARE).
    pub const INTERNAL: i32 = 70;
    /// `--ask` was answered no: the target's profile and running system were not touched.
    pub const DECLINED: i32 = 12;
}

#[derive(Debug, Error)]
pub enum Error {
    /// The command line is wrong; rb prints a usage hint after it.
    #[error("{0}")]
    Usage(String),

    /// Something rb checks itself failed (exit 1).
    #[error("{0}")]
    Failed(String),

    /// An option that is parsed and validated but not implemented.
    #[error("{0} is not available in this version of rb yet")]
    NotYetAvailable(&'static str),

    /// A command rb ran exited non-zero; rb exits with the same status.
    #[error("{what} failed on {host} (exit status {status})")]
    Command {
        what: String,
        host: String,
        status: i32,
    },

    /// A command could not be started at all.
    #[error("could not run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },

    /// A command ran but printed something rb could not understand.
    #[error("{0}")]
    Output(String),

    /// A bug in rb: something it relies on did not hold.
    #[error("internal error: {0}")]
    Internal(String),

    /// A host could not be reached or refused us; ssh's own status (255).
    #[error("cannot connect to {host}: {why}")]
    Unreachable { host: String, why: String },

    /// The connection to a host broke while a step ran there (ssh's status, 255).
    #[error("lost the connection to {host} while {what} (ssh exit status 255){consequence}")]
    ConnectionLost {
        host: String,
        what: String,
        /// What that means for the host, e.g. that its profile already changed.
        consequence: String,
    },

    /// Nix's commands are missing from the PATH a host gives SSH sessions.
    #[error("{commands} not found on {host}'s PATH")]
    NotOnPath { host: String, commands: String },

    /// A host that rb can reach but cannot deploy to as connected (README, "What rb
    /// guarantees when things go wrong").
    #[error("{host} cannot be deployed to: {why}")]
    Unsuitable {
        host: String,
        why: String,
        hint: Option<String>,
    },

    /// sudo on a host refused to run rb's commands.
    #[error("{tool} on {host} refused: {why}")]
    Elevation {
        /// `sudo` or `run0`.
        tool: &'static str,
        host: String,
        why: String,
        /// What would let it through.
        hint: Option<String>,
    },

    /// The destination's Nix refused the copy: the connecting user is not trusted and the
    /// closure is not signed by a key it trusts. Nix's own status.
    #[error("the destination refused the closure: its paths lack a signature by a key it trusts")]
    Untrusted { status: i32 },

    /// Stopped by a signal (SIGINT, SIGTERM, SIGHUP); exit 128 + the signal.
    #[error("interrupted")]
    Interrupted(i32),

    /// Magic rollback: the target's watchdog put the previous generation back.
    #[error("{why}; {host} was rolled back: {now}")]
    RolledBack {
        host: String,
        /// Why the new configuration was not kept.
        why: String,
        /// What is active on the target now.
        now: String,
    },

    /// Magic rollback: a `--confirm-check` failed (or did not finish in time) on the target,
    /// whose watchdog put the previous generation back.
    #[error("{why}; {host} was rolled back: {now}")]
    CheckFailed {
        host: String,
        /// Which check, how it failed and its last lines of output.
        why: String,
        /// What is active on the target now.
        now: String,
        /// Where its whole output is on the target.
        log: String,
    },

    /// Magic rollback: rb confirmed the new configuration, but making it the boot default
    /// (`switch`'s `switch-to-configuration boot` at confirmation) failed.
    #[error("{host} keeps the new configuration, but it is not the boot default: {why}")]
    NotBootDefault {
        host: String,
        why: String,
        /// Where the watchdog's log is on the target.
        log: String,
    },

    /// Several targets: not every one was deployed. The exit status is the first failed
    /// target's own (in the order given), as if it had been deployed alone; the summary and
    /// `--json` say how each went.
    #[error("{failed} of {of} targets were not deployed: {hosts}")]
    TargetsFailed {
        failed: usize,
        of: usize,
        /// The targets that were not, in order.
        hosts: String,
        status: i32,
    },

    /// `--ask` answered no (or the question's input ended): nothing changed on `host`.
    #[error("not changing {host}: {why}")]
    Declined { host: String, why: String },

    /// The host a configuration was named after without asking it (`SshHost::guessed_name`)
    /// reports another host name: internal to the run, which builds again with that name
    /// over the same connection (`app.rs`), never shown. `facts`: what its probe found.
    #[error("{host}'s host name is '{}', not '{guess}'", facts.hostname)]
    NotTheGuess {
        host: String,
        guess: String,
        facts: Box<crate::probe::Facts>,
    },

    /// Magic rollback: rb could not confirm, and does not know the target is back where it was.
    #[error("{why}")]
    Unconfirmed {
        /// What rb knows.
        why: String,
        /// What to look at on the target (a hint).
        check: String,
    },
}

impl Error {
    pub fn exit_status(&self) -> i32 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Command { status, .. }
            | Error::Untrusted { status }
            | Error::TargetsFailed { status, .. } => *status,
            Error::Interrupted(sig) => 128 + sig,
            Error::Unreachable { .. } | Error::ConnectionLost { .. } => exit::SSH,
            Error::NotOnPath { .. } => exit::NOT_FOUND,
            Error::Internal(_) => exit::INTERNAL,
            Error::RolledBack { .. } | Error::CheckFailed { .. } => exit::ROLLED_BACK,
            Error::Unconfirmed { .. } => exit::UNCONFIRMED,
            Error::Declined { .. } => exit::DECLINED,
            Error::Failed(_)
            | Error::NotYetAvailable(_)
            | Error::Spawn { .. }
            | Error::Output(_)
            | Error::Elevation { .. }
            | Error::Unsuitable { .. }
            | Error::NotTheGuess { .. }
            | Error::NotBootDefault { .. } => exit::FAILURE,
        }
    }

    /// What to do about it, one line each.
    pub fn hints(&self) -> Vec<String> {
        match self {
            Error::NotOnPath { .. } => vec![
                "rb needs Nix's commands in the PATH of non-interactive SSH sessions there".into(),
            ],
            Error::Elevation { hint, .. } | Error::Unsuitable { hint, .. } => {
                hint.iter().cloned().collect()
            }
            Error::Untrusted { .. } => vec![
                "deploy as root (root@HOST), add the user to nix.settings.trusted-users there, \
                 or sign the closure (nix store sign)"
                    .into(),
            ],
            Error::Unconfirmed { check, .. } => vec![check.clone()],
            Error::CheckFailed { host, log, .. } => {
                vec![format!("the check's whole output is in {log} on {host}")]
            }
            Error::NotBootDefault { host, log, .. } => vec![format!(
                "the watchdog's log is {log} on {host}; `switch-to-configuration boot` of the \
                 profile's system there makes it the boot default"
            )],
            Error::Internal(_) => vec!["this is a bug in rb; please report it".into()],
            _ => Vec::new(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A command's stderr as part of a one-line message: its non-blank lines joined by `; `.
pub fn one_line(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
