//! The live status area on a terminal (README, "Progress"): one line per host that is busy,
//! saying the phase and, for Nix's builds and copies, how far they are (from the
//! `internal-json` log, [`super::state`]). A finished phase leaves one line with its time.
//! Every other line rb prints goes above the area ([`Live::say`]), so that the two never
//! mix; the commands' stderr comes through [`Live::follow`] for the same reason.
//!
//! One plan busies a host with one session at a time, so a host names its line. Several
//! targets' plans run at once and all copy "on local", so there each target has a line of
//! its own for the whole run instead ([`Live::add_targets`]): the [`Live`] a target's plan
//! runs with ([`Live::for_target`]) puts every step of that plan on its target's line, which
//! says the target's state until its result ([`Live::ended`]), and stays there.

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
    /// Several targets: each one's line, in the order given.
    targets: Arc<Mutex<Vec<TargetLine>>>,
    /// The target whose line this area's steps go on ([`Live::for_target`]); none: each
    /// host's line.
    target: Option<String>,
    color: bool,
}

/// A target's line: its state (what it does, and how far that is) or, once it is over, its
/// result.
struct TargetLine {
    dest: String,
    bar: ProgressBar,
    what: String,
    status: String,
    /// Its result, once there is one (and whether it was deployed): the line stays as it is.
    ended: Option<(String, bool)>,
}

/// The end of a command's stderr kept for [`Followed::tail`].
const KEEP: usize = 64 * 1024;

/// How much of a target's result its line shows: the whole error is above the area.
const REASON: usize = 72;

/// What a target's line says while it is busy: its step (without " on TARGET": the line is
/// the target's) and how far its command is.
pub fn target_message(dest: &str, what: &str, status: &str) -> String {
    let what = what.strip_suffix(&format!(" on {dest}")).unwrap_or(what);
    match status.is_empty() {
        true => what.to_string(),
        false => format!("{what}: {status}"),
    }
}

/// A target's result for its line: `result` ("failed (exit status 4)") and why, cut short.
pub fn ended_message(result: &str, why: Option<&str>) -> String {
    let Some(why) = why.and_then(|w| w.lines().next()).filter(|w| !w.is_empty()) else {
        return result.to_string();
    };
    let cut: String = why.chars().take(REASON).collect();
    match cut.len() < why.len() {
        true => format!("{result}: {cut}…"),
        false => format!("{result}: {cut}"),
    }
}

impl Live {
    pub fn new(color: bool) -> Self {
        Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            lines: Default::default(),
            targets: Default::default(),
            target: None,
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

    /// A target's line once it is over: no spinner and no time, the result in green or red.
    fn ended_style(&self, ok: bool) -> ProgressStyle {
        let template = match (self.color, ok) {
            (false, _) => "  {prefix} {wide_msg}",
            (true, true) => "  {prefix:.bold} {wide_msg:.green}",
            (true, false) => "  {prefix:.bold} {wide_msg:.red}",
        };
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
    }

    /// A new line, named before it is shown, so that no frame is drawn without its name (nor,
    /// before it joins the area, outside it).
    fn add_line(&self, prefix: &str, message: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
            .with_style(self.style());
        bar.set_prefix(prefix.to_string());
        bar.set_message(message.to_string());
        let bar = self.multi.add(bar);
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// A line above the status area.
    pub fn say(&self, line: &str) {
        self.multi.suspend(|| {
            let _ = std::io::stderr()
                .lock()
                .write_all(format!("{line}\n").as_bytes());
        });
    }

    /// Several targets: a line for each (`dests`, in the order given, each saying
    /// "connecting": their connections open first), on top of the area for the whole run.
    pub fn add_targets(&self, dests: &[String]) {
        let width = dests.iter().map(|d| d.chars().count()).max().unwrap_or(0);
        let mut targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        for dest in dests {
            let what = "connecting".to_string();
            targets.push(TargetLine {
                dest: dest.clone(),
                bar: self.add_line(&format!("{dest:<width$}"), &what),
                what,
                status: String::new(),
                ended: None,
            });
        }
    }

    /// The area as `dest`'s plan sees it: every step it starts goes on `dest`'s line
    /// ([`Live::add_targets`]), whatever host the step runs on.
    pub fn for_target(&self, dest: &str) -> Live {
        Live {
            target: Some(dest.to_string()),
            ..self.clone()
        }
    }

    /// `dest`'s line says `state` ("waiting for the build"), from no time on.
    pub fn target_state(&self, dest: &str, state: &str) {
        self.on_target(dest, |line| {
            line.what = state.to_string();
            line.status.clear();
            line.bar.reset_elapsed();
        });
    }

    /// `dest` is over: its line says `message` ([`ended_message`]) from now on, in green when
    /// `ok`, else in red.
    pub fn ended(&self, dest: &str, message: &str, ok: bool) {
        self.on_target(dest, |line| {
            line.bar.set_style(self.ended_style(ok));
            line.bar.finish_with_message(message.to_string());
            line.ended = Some((message.to_string(), ok));
        });
    }

    /// Changes `dest`'s line, unless it is over, and shows it.
    fn on_target(&self, dest: &str, change: impl FnOnce(&mut TargetLine)) {
        let mut targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(line) = targets
            .iter_mut()
            .find(|l| l.dest == dest && l.ended.is_none())
        {
            change(line);
            if line.ended.is_none() {
                line.bar
                    .set_message(target_message(dest, &line.what, &line.status));
            }
        }
    }

    /// `what` (`copy on local`) starts on `host`: its line shows it, from no time on, saying
    /// `doing` until its command reports how far it is. (A target's step: its target's line.)
    pub fn start(&self, host: &str, what: &str, doing: &str) {
        if let Some(dest) = &self.target {
            return self.on_target(dest, |line| {
                line.what = what.to_string();
                line.status = doing.to_string();
                line.bar.reset_elapsed();
            });
        }
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = lines.get(host) {
            bar.set_prefix(what.to_string());
            bar.set_message(doing.to_string());
            bar.reset_elapsed();
            return;
        }
        lines.insert(host.to_string(), self.add_line(what, doing));
    }

    /// The step on `host` ended: its line goes, `line` (if any) stays above the area, followed by
    /// what its command last said of its progress when `with_status` ("copied 300 of 300
    /// paths"). (A target's line stays, saying the step, until its next step or its result.)
    pub fn finish(&self, host: &str, line: Option<&str>, with_status: bool) {
        let status = match &self.target {
            Some(dest) => {
                let mut status = String::new();
                self.on_target(dest, |l| status = l.status.clone());
                status
            }
            None => {
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
                status
            }
        };
        match (line, with_status && !status.is_empty()) {
            (Some(line), true) => self.say(&format!("{line} ({status})")),
            (Some(line), false) => self.say(line),
            (None, _) => {}
        }
    }

    /// Clears the area (the run is over, or rb is about to ask a question). The targets'
    /// lines stay on the terminal as the area last showed them (their results), in order,
    /// above what rb says next (the summary table, the run's error).
    pub fn clear(&self) {
        let lines = std::mem::take(&mut *self.lines.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, bar) in lines {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        let targets = std::mem::take(&mut *self.targets.lock().unwrap_or_else(|e| e.into_inner()));
        let mut left = Vec::new();
        for line in targets {
            let prefix = line.bar.prefix();
            line.bar.finish_and_clear();
            self.multi.remove(&line.bar);
            // As the area drew it: a result in its colour (`ended_style`).
            left.push(match (&line.ended, self.color) {
                (Some((result, ok)), true) => {
                    let colour = if *ok { "32" } else { "31" };
                    format!("  \x1b[1m{prefix}\x1b[0m \x1b[{colour}m{result}\x1b[0m")
                }
                (Some((result, _)), false) => format!("  {prefix} {result}"),
                (None, _) => format!(
                    "  {prefix} {}",
                    target_message(&line.dest, &line.what, &line.status)
                ),
            });
        }
        if !left.is_empty() {
            self.say(&left.join("\n"));
        }
    }

    fn set_status(&self, host: &str, status: String) {
        if let Some(dest) = &self.target {
            return self.on_target(dest, |line| line.status = status);
        }
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
    fn a_targets_line_says_its_step_without_naming_it_again() {
        let dest = "root@web1";
        assert_eq!(target_message(dest, "connecting", ""), "connecting");
        assert_eq!(
            target_message(dest, "activate on root@web1", ""),
            "activate"
        );
        assert_eq!(
            target_message(dest, "copy on local", "copied 3 of 10 paths"),
            "copy on local: copied 3 of 10 paths"
        );
        // Another host's name stays (a copy from a build host).
        assert_eq!(
            target_message(dest, "copy on root@web10", ""),
            "copy on root@web10"
        );
    }

    #[test]
    fn a_targets_result_says_why_on_one_short_line() {
        assert_eq!(ended_message("deployed", None), "deployed");
        assert_eq!(
            ended_message(
                "failed (exit status 4)",
                Some("activating the configuration")
            ),
            "failed (exit status 4): activating the configuration"
        );
        let long = format!("{}\nsecond line", "é".repeat(100));
        let cut = ended_message("unreachable", Some(&long));
        assert_eq!(cut, format!("unreachable: {}…", "é".repeat(REASON)));
        assert_eq!(ended_message("interrupted", Some("")), "interrupted");
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
