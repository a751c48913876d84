//! What rb says: messages on stderr, results on stdout.
//!
//! stdout carries only results a script may read (the store path line, JSON); everything
//! else, including the output of the commands rb runs, goes to stderr.

use crate::error::Error;
use crate::plan::StepKind;
use crate::progress::live::Live;
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
    /// Whether the configuration was evaluated in a step of its own (several targets' one
    /// evaluation): the build after it evaluates nothing.
    evaluated: std::cell::Cell<bool>,
    /// The live status area, when rb draws one (`progress::drawn`): every line goes above it.
    live: std::cell::OnceCell<Live>,
}

/// One whole line on stderr in a single write, so that it never interleaves with what the
/// commands rb runs write at the same time; above the live status area when there is one.
fn say_plain(line: String) {
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
            evaluated: Default::default(),
            live: Default::default(),
        }
    }

    /// From now on, progress is the live status area (`progress::drawn` said so).
    pub fn draw_progress(&self) {
        let _ = self.live.set(Live::new(self.color));
    }

    /// From now on, progress goes to `live`: another report's area, as one target's plan of
    /// several sees it (`Live::for_target`), so that its steps show on its target's line.
    pub fn draw_progress_on(&self, live: Live) {
        let _ = self.live.set(live);
    }

    /// The live status area, when rb draws one.
    pub fn live(&self) -> Option<&Live> {
        self.live.get()
    }

    fn say(&self, line: String) {
        match self.live.get() {
            Some(live) => live.say(&line),
            None => say_plain(line),
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
        if let Some(live) = self.live.get() {
            // A build here evaluates the configuration first (a build host's realises a
            // derivation evaluated before, and so does a build after an evaluation of its
            // own): said until Nix reports builds or copies.
            self.evaluated
                .set(self.evaluated.get() || kind == StepKind::Evaluate);
            let doing = match (kind, host) {
                (StepKind::Build, "local") if !self.evaluated.get() => "evaluating",
                _ => "",
            };
            return live.start(host, &format!("{} on {host}", kind.name()), doing);
        }
        if !kind.is_phase() && !self.debug {
            return;
        }
        self.say(format!(
            "{} {} on {host}",
            self.paint("1;34", &format!("{}:", self.program)),
            kind.name()
        ));
    }

    /// Progress: one line as a step ends, with its duration (a phase's, a failed step's, or
    /// any with `--verbose`).
    pub fn step_finished(&self, kind: StepKind, host: &str, took: Duration, failed: Option<i32>) {
        let shown = kind.is_phase() || failed.is_some() || self.debug;
        let outcome = match failed {
            None => self.paint("32", "done"),
            Some(code) => self.paint("1;31", &format!("failed (exit status {code})")),
        };
        let line = format!(
            "{} {} on {host} {outcome} in {:.2}s",
            self.paint("1;34", &format!("{}:", self.program)),
            kind.name(),
            took.as_secs_f64()
        );
        match self.live.get() {
            // The phase's line leaves the area, saying how far its command got.
            Some(live) => live.finish(host, shown.then_some(line.as_str()), failed.is_none()),
            None if shown => self.say(line),
            None => {}
        }
    }

    pub fn info(&self, msg: &str) {
        self.say(msg.to_string());
    }

    pub fn warn(&self, msg: &str) {
        self.say(format!("{}: warning: {msg}", self.program));
    }

    pub fn error(&self, msg: &str) {
        self.say(format!("{}: error: {msg}", self.program));
    }

    /// What to do about the error just said.
    pub fn hint(&self, msg: &str) {
        self.say(format!("hint: {msg}"));
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.say(format!("{}: debug: {msg}", self.program));
        }
    }

    /// A line a session printed on stdout that belongs to no step.
    pub fn passthrough(&self, line: &str) {
        self.say(line.to_string());
    }

    /// A result line: the first part on stderr, the value alone on stdout, as nixos-rebuild.
    pub fn result(&self, label: &str, value: &str) {
        if let Some(live) = self.live.get() {
            live.clear();
        }
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
