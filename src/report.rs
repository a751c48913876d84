//! What rb says: messages on stderr, results on stdout.
//!
//! stdout carries only results a script may read (the store path line, JSON); everything
//! else, including the output of the commands rb runs, goes to stderr.

use std::io::Write;

pub struct Report {
    /// `rb`, or `nixos-rebuild` when invoked under that name.
    pub program: String,
    pub debug: bool,
}

impl Report {
    pub fn info(&self, msg: &str) {
        eprintln!("{msg}");
    }

    pub fn warn(&self, msg: &str) {
        eprintln!("{}: warning: {msg}", self.program);
    }

    pub fn error(&self, msg: &str) {
        eprintln!("{}: error: {msg}", self.program);
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            eprintln!("{}: debug: {msg}", self.program);
        }
    }

    /// A line a session printed on stdout that belongs to no step.
    pub fn passthrough(&self, line: &str) {
        eprintln!("{line}");
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
