//! What rb says: messages on stderr, results on stdout.
//!
//! stdout carries only results a script may read (the store path line, JSON); everything
//! else, including the output of the commands rb runs, goes to stderr.

use crate::error::Error;
use crate::plan::StepKind;
use std::io::{IsTerminal, Write};
use std::time::Duration;

pub struct Report {
    /// `rb`, or `nixos-rebuild` when invoked under that name.
    pub program: String,
    pub debug: bool,
    /// Colour on stderr: only on a terminal, and not with `NO_COLOR`.
    pub color: bool,
    /// Whether the `--json` document of the run is out.
    pub json_printed: std::cell::Cell<bool>,
    /// Errors already on stderr in other words: a command that failed printed rb's own
    /// message for that failure (`plan::Command::on_failure`), so rb does not add its line.
    told: std::cell::RefCell<Vec<String>>,
}

/// One whole line on stderr in a single write, so that it never interleaves with what the
/// commands rb runs write at the same time.
fn say(line: String) {
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("{line}\n").as_bytes());
}

impl Report {
    pub fn new(program: String, debug: bool) -> Self {
        let color = std::io::stderr().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Report {
            program,
            debug,
            color,
            json_printed: std::cell::Cell::new(false),
            told: Default::default(),
        }
    }

    /// `error` has been said on stderr already, by the command whose failure it is.
    pub fn told_by_command(&self, error: &Error) {
        self.told.borrow_mut().push(error.to_string());
    }

    /// Whether `error` has been said already ([`Report::told_by_command`]): then rb's own
    /// line for it would say it twice. Another error (rb's verdict after magic rollback,
    /// say) is still said.
    pub fn was_told(&self, error: &Error) -> bool {
        self.told.borrow().contains(&error.to_string())
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Progress: one line as a step starts (a phase's, or any with `--verbose`).
    pub fn step_started(&self, kind: StepKind, host: &str) {
        if !kind.is_phase() && !self.debug {
            return;
        }
        say(format!(
            "{} {} on {host}",
            self.paint("1;34", &format!("{}:", self.program)),
            kind.name()
        ));
    }

    /// Progress: one line as a step ends, with its duration (a phase's, a failed step's, or
    /// any with `--verbose`).
    pub fn step_finished(&self, kind: StepKind, host: &str, took: Duration, failed: Option<i32>) {
        if !kind.is_phase() && failed.is_none() && !self.debug {
            return;
        }
        let outcome = match failed {
            None => self.paint("32", "done"),
            Some(code) => self.paint("1;31", &format!("failed (exit status {code})")),
        };
        say(format!(
            "{} {} on {host} {outcome} in {:.2}s",
            self.paint("1;34", &format!("{}:", self.program)),
            kind.name(),
            took.as_secs_f64()
        ));
    }

    pub fn info(&self, msg: &str) {
        say(msg.to_string());
    }

    pub fn warn(&self, msg: &str) {
        say(format!("{}: warning: {msg}", self.program));
    }

    pub fn error(&self, msg: &str) {
        say(format!("{}: error: {msg}", self.program));
    }

    /// What to do about the error just said.
    pub fn hint(&self, msg: &str) {
        say(format!("hint: {msg}"));
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            say(format!("{}: debug: {msg}", self.program));
        }
    }

    /// A line a session printed on stdout that belongs to no step.
    pub fn passthrough(&self, line: &str) {
        say(line.to_string());
    }

    /// A result line: the first part on stderr, the value alone on stdout, as nixos-rebuild.
    pub fn result(&self, label: &str, value: &str) {
        eprint!("{label}");
        let _ = std::io::stderr().flush();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
    }

    pub fn stdout(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}
