//! The live status area on a terminal (README, "Progress"): one line per host that is busy,
//! saying the phase and, for Nix's builds and copies, how far they are (from the
//! `internal-json` log, [`super::state`]). A finished phase leaves one line with its time.
//! Every other line rb prints goes above the area ([`Live::say`]), so that the two never
//! mix; the commands' stderr comes through [`Live::follow`] for the same reason.
//!
//! One plan busies a host with one session at a time, so a host names its line.

use super::nixlog::{self, Event};
use super::state::{Tracker, bytes_text, name_of};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a command's stderr left once read: its end (for the messages rb explains, like a
/// refused signature), the JSON turned back into Nix's words.
pub struct Followed {
    pub tail: String,
}

#[derive(Clone)]
pub struct Live {
    multi: MultiProgress,
    lines: Arc<Mutex<BTreeMap<String, ProgressBar>>>,
    color: bool,
}

/// The end of a command's stderr kept for [`Followed::tail`].
const KEEP: usize = 64 * 1024;

impl Live {
    pub fn new(color: bool) -> Self {
        Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            lines: Default::default(),
            color,
        }
    }

    fn style(&self) -> ProgressStyle {
        let template = match self.color {
            true => "{spinner:.blue} {prefix:.bold} {wide_msg} {elapsed:.dim}",
            false => "{spinner} {prefix} {wide_msg} {elapsed}",
        };
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
    }

    /// A line above the status area.
    pub fn say(&self, line: &str) {
        self.multi.suspend(|| {
            let _ = std::io::stderr()
                .lock()
                .write_all(format!("{line}\n").as_bytes());
        });
    }

    /// `what` (`copy on local`) starts on `host`: its line shows it, from no time on, saying
    /// `doing` until its command reports how far it is.
    pub fn start(&self, host: &str, what: &str, doing: &str) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = lines.get(host) {
            bar.set_prefix(what.to_string());
            bar.set_message(doing.to_string());
            bar.reset_elapsed();
            return;
        }
        // Named before it is shown, so that no frame is drawn without its name (nor, before
        // it joins the area, outside it).
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
            .with_style(self.style());
        bar.set_prefix(what.to_string());
        bar.set_message(doing.to_string());
        let bar = self.multi.add(bar);
        bar.enable_steady_tick(Duration::from_millis(120));
        lines.insert(host.to_string(), bar);
    }

    /// The step on `host` ended: its line goes, `line` (if any) stays above the area, followed by
    /// what its command last said of its progress when `with_status` ("copied 300 of 300
    /// paths").
    pub fn finish(&self, host: &str, line: Option<&str>, with_status: bool) {
        let bar = self
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(host);
        let status = bar.as_ref().map(|b| b.message()).unwrap_or_default();
        if let Some(bar) = bar {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        match (line, with_status && !status.is_empty()) {
            (Some(line), true) => self.say(&format!("{line} ({status})")),
            (Some(line), false) => self.say(line),
            (None, _) => {}
        }
    }

    /// Clears the area (the run is over, or rb is about to ask a question).
    pub fn clear(&self) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        for (_, bar) in std::mem::take(&mut *lines) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    fn set_status(&self, host: &str, status: String) {
        if let Some(bar) = self
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(host)
        {
            bar.set_message(status);
        }
    }

    /// Reads the stderr of a command on `host` to its end: Nix's `internal-json` events
    /// become the status of `host`'s line, Nix's errors and warnings and any other line
    /// (ssh's, a script's) are said above the area. When a build failed, its last lines of
    /// output follow Nix's error (Nix 2.8 puts them in its message, newer Nix does not).
    pub fn follow(&self, host: &str, from: impl Read) -> Followed {
        let mut reader = BufReader::new(from);
        let mut tracker = Tracker::default();
        let mut tail = String::new();
        let mut raw = Vec::new();
        let began = Instant::now();
        let mut said_errors = String::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            let event = nixlog::parse(line);
            let text = match &event {
                Event::Plain(text) => Some(text.clone()),
                Event::Message { level, text } if *level <= 1 => Some(text.clone()),
                _ => None,
            };
            tracker.feed(&event);
            if let Some(text) = text.filter(|t| !needless(t)) {
                let text = match self.color {
                    true => text,
                    false => strip_escapes(&text),
                };
                if matches!(event, Event::Message { level: 0, .. }) {
                    said_errors.push_str(&text);
                }
                self.say(&text);
                // Plain, for the messages rb looks for in it (`exec.rs`, `lacks_signature`).
                tail.push_str(&strip_escapes(&text));
                tail.push('\n');
                if tail.len() > KEEP {
                    let cut = tail.len() - KEEP;
                    let cut = (cut..tail.len())
                        .find(|&i| tail.is_char_boundary(i))
                        .unwrap_or(0);
                    tail.drain(..cut);
                }
            } else if let Some(status) = tracker.status() {
                self.set_status(host, with_rate(status, &tracker, began.elapsed()));
            }
        }
        // The phase's line says what was done when it leaves the area.
        if let Some(totals) = tracker.totals() {
            self.set_status(host, totals);
        }
        for line in failure_lines(&tracker, &strip_escapes(&said_errors)) {
            self.say(&line);
        }
        Followed { tail }
    }
}

/// A warning of Nix's that says nothing to rb's user: `nix-store --realise` on a build host
/// warns that its result has no GC root, but rb copies the result away at once.
fn needless(text: &str) -> bool {
    text.contains("you did not specify '--add-root'")
}

/// The failed build's last lines of output, unless Nix's error already showed them.
pub fn failure_lines(tracker: &Tracker, errors: &str) -> Vec<String> {
    let Some((drv, lines)) = tracker.named_failure() else {
        return Vec::new();
    };
    let shown = lines.last().is_some_and(|l| errors.contains(l.as_str()));
    if lines.is_empty() || shown {
        return Vec::new();
    }
    let mut out = vec![format!("last lines of the build of {}:", name_of(drv))];
    out.extend(lines.iter().map(|l| format!("  > {}", strip_escapes(l))));
    out
}

/// The copy's rate and the time left, when Nix says how many bytes to expect.
fn with_rate(status: String, tracker: &Tracker, took: Duration) -> String {
    let (done, all) = tracker.bytes();
    let secs = took.as_secs_f64();
    match all {
        Some(all) if done > 0 && all > done && secs >= 1.0 => {
            let rate = done as f64 / secs;
            let left = (all - done) as f64 / rate;
            format!(
                "{status}, {}/s, {:.0}s left",
                bytes_text(rate as u64),
                left.ceil()
            )
        }
        _ => status,
    }
}

/// `text` without terminal escape sequences (Nix colours its messages).
pub fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            // Parameters, then one final byte in '@'..='~'.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_stripped() {
        assert_eq!(
            strip_escapes("\x1b[31;1merror:\x1b[0m Cannot build '\x1b[35;1m/nix/x\x1b[0m'."),
            "error: Cannot build '/nix/x'."
        );
        assert_eq!(strip_escapes("plain"), "plain");
    }

    #[test]
    fn a_failed_build_shows_its_last_lines_once() {
        let mut t = Tracker::default();
        for line in include_str!("testdata/nix-build34-fail.log").lines() {
            t.feed(&nixlog::parse(line));
        }
        let lines = failure_lines(&t, "error: Cannot build 'p1'");
        assert_eq!(lines[0], "last lines of the build of p1:");
        assert_eq!(lines[1], "  > hi 1");
        assert_eq!(lines.len(), 3);
        // Already in Nix's message (as Nix 2.8 words it): not twice.
        let said = format!(
            "error: builder failed\n> {}",
            lines[2].trim_start_matches("  > ")
        );
        assert!(failure_lines(&t, &said).is_empty());
        // A build that succeeded has nothing to show.
        let mut ok = Tracker::default();
        for line in include_str!("testdata/nix-build34.log").lines() {
            ok.feed(&nixlog::parse(line));
        }
        assert!(failure_lines(&ok, "").is_empty());
    }

    #[test]
    fn rate_and_time_left_once_a_second_went() {
        let mut t = Tracker::default();
        for line in include_str!("testdata/nix-copy34.log").lines().take(20) {
            t.feed(&nixlog::parse(line));
        }
        let status = t.status().unwrap();
        assert_eq!(with_rate(status.clone(), &t, Duration::ZERO), status);
        let later = with_rate(status.clone(), &t, Duration::from_secs(2));
        assert!(
            later.starts_with(&status) && later.ends_with("s left"),
            "{later}"
        );
    }
}
