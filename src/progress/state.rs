//! What a Nix command is doing, from its `--log-format internal-json` events: how many
//! derivations are built and which are building now, how many store paths and bytes are
//! copied, and the last lines each build printed (shown when it fails).
//!
//! Nix versions report copies differently: 2.8 names the count in the text of its
//! `copying N paths` activity and reports nothing more but each path's own activity; newer
//! Nix also sends the activity's progress and the bytes to expect. Both give the same counts.

use super::nixlog::{Activity, Event, Report};
use std::collections::{BTreeMap, VecDeque};

/// The last lines of a build's output kept for the failure report.
const LOG_LINES: usize = 25;
/// Finished builds whose output is kept, for when one of them turns out to have failed.
const KEPT_LOGS: usize = 16;

/// done of expected.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub done: u64,
    pub expected: u64,
}

#[derive(Debug)]
struct Live {
    activity: Activity,
    /// A build's derivation, a copy's store path.
    path: Option<String>,
    /// A copy's bytes so far and in all.
    bytes: Count,
    log: VecDeque<String>,
}

#[derive(Debug, Default)]
pub struct Tracker {
    live: BTreeMap<u64, Live>,
    builds: Count,
    /// From the `copying N paths` activity: its progress, or its text and the paths copied.
    copies: Count,
    copies_seen: bool,
    /// The copy (its `copying N paths` activity) ended.
    copies_ended: bool,
    paths_copied: u64,
    bytes_copied: u64,
    bytes_expected: Option<u64>,
    /// Output of finished builds, newest last: (derivation, lines).
    finished: VecDeque<(String, Vec<String>)>,
    /// Errors and warnings Nix printed (level 0 and 1), in order.
    messages: Vec<(u64, String)>,
}

/// `foo-1.0` of `/nix/store/<hash>-foo-1.0.drv`.
pub fn name_of(path: &str) -> &str {
    let base = path.rsplit('/').next().unwrap_or(path);
    let base = base.strip_suffix(".drv").unwrap_or(base);
    match base.split_once('-') {
        Some((hash, name)) if hash.len() == 32 => name,
        _ => base,
    }
}

impl Tracker {
    pub fn feed(&mut self, event: &Event) {
        match event {
            Event::Start {
                id,
                activity,
                text,
                first_field,
            } => {
                if let (Activity::CopyPaths, Some(n)) = (activity, copying_count(text)) {
                    self.copies_seen = true;
                    self.copies.expected = self.copies.expected.max(n);
                }
                self.live.insert(
                    *id,
                    Live {
                        activity: *activity,
                        path: first_field.clone(),
                        bytes: Count::default(),
                        log: VecDeque::new(),
                    },
                );
            }
            Event::Stop { id } => {
                let Some(live) = self.live.remove(id) else {
                    return;
                };
                match live.activity {
                    Activity::CopyPath => {
                        self.paths_copied += 1;
                        self.bytes_copied += live.bytes.done.max(live.bytes.expected);
                        self.copies.done = self.copies.done.max(self.paths_copied);
                    }
                    Activity::CopyPaths if self.copies_seen => self.copies_ended = true,
                    Activity::Build => {
                        if let Some(drv) = live.path {
                            self.finished.push_back((drv, live.log.into()));
                            if self.finished.len() > KEPT_LOGS {
                                self.finished.pop_front();
                            }
                        }
                    }
                    _ => {}
                }
            }
            Event::Result { id, report } => {
                let Some(live) = self.live.get_mut(id) else {
                    return;
                };
                match (live.activity, report) {
                    (_, Report::BuildLogLine(line)) => {
                        live.log.push_back(line.clone());
                        if live.log.len() > LOG_LINES {
                            live.log.pop_front();
                        }
                    }
                    (Activity::Builds, Report::Progress { done, expected, .. }) => {
                        self.builds = Count {
                            done: *done,
                            expected: *expected,
                        };
                    }
                    (Activity::CopyPaths, Report::Progress { done, expected, .. })
                        if *expected > 0 =>
                    {
                        self.copies_seen = true;
                        self.copies.done = self.copies.done.max(*done);
                        self.copies.expected = self.copies.expected.max(*expected);
                    }
                    (Activity::CopyPath, Report::Progress { done, expected, .. }) => {
                        live.bytes = Count {
                            done: *done,
                            expected: *expected,
                        };
                    }
                    (
                        Activity::CopyPaths,
                        Report::SetExpected {
                            of: Activity::CopyPath,
                            expected,
                        },
                    ) => self.bytes_expected = Some(*expected),
                    _ => {}
                }
            }
            Event::Message { level, text } if *level <= 1 => {
                self.messages.push((*level, text.clone()));
            }
            Event::Message { .. } | Event::Plain(_) => {}
        }
    }

    /// Derivations built of those to build.
    pub fn builds(&self) -> Count {
        self.builds
    }

    /// The names of the derivations building now, in the order they started.
    pub fn building(&self) -> Vec<&str> {
        self.live
            .values()
            .filter(|l| l.activity == Activity::Build)
            .filter_map(|l| l.path.as_deref().map(name_of))
            .collect()
    }

    /// Store paths copied of those to copy; None when nothing is being copied.
    pub fn paths(&self) -> Option<Count> {
        self.copies_seen.then_some(self.copies)
    }

    /// Bytes copied, and in all when Nix says (newer Nix does; 2.8 does not).
    pub fn bytes(&self) -> (u64, Option<u64>) {
        let live: u64 = self
            .live
            .values()
            .filter(|l| l.activity == Activity::CopyPath)
            .map(|l| l.bytes.done)
            .sum();
        (self.bytes_copied + live, self.bytes_expected)
    }

    /// The errors and warnings Nix printed.
    pub fn messages(&self) -> &[(u64, String)] {
        &self.messages
    }

    /// The build an error names, with its last lines of output: what to show when the
    /// command failed. Falls back to the last build that ended when no error names one.
    pub fn failed_build(&self) -> Option<(&str, &[String])> {
        self.named_failure().or_else(|| {
            self.finished
                .back()
                .map(|(drv, lines)| (drv.as_str(), lines.as_slice()))
        })
    }

    /// The build an error of Nix names, with its last lines of output; None when no error
    /// names a build that ran (the command succeeded, or failed for another reason).
    pub fn named_failure(&self) -> Option<(&str, &[String])> {
        self.messages.iter().rev().find_map(|(level, text)| {
            (*level == 0)
                .then(|| {
                    self.finished
                        .iter()
                        .rev()
                        .find(|(drv, _)| text.contains(drv))
                        .map(|(drv, lines)| (drv.as_str(), lines.as_slice()))
                })
                .flatten()
        })
    }
}

/// Bytes as people read them: `512 B`, `12.3 KiB`, `4.0 MiB`, `1.2 GiB`.
pub fn bytes_text(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

impl Tracker {
    /// One line saying how far the command is: what builds and what is copied.
    pub fn status(&self) -> Option<String> {
        let mut parts = Vec::new();
        let building = self.building();
        let b = self.builds;
        if b.expected > 0 || !building.is_empty() {
            let mut text = format!("built {} of {} derivations", b.done, b.expected.max(b.done));
            if !building.is_empty() {
                let shown: Vec<&str> = building.iter().take(3).copied().collect();
                text.push_str(&format!(", building {}", shown.join(", ")));
                if building.len() > shown.len() {
                    text.push_str(&format!(" and {} more", building.len() - shown.len()));
                }
            }
            parts.push(text);
        }
        if let Some(p) = self.paths() {
            let mut text = format!("copied {} of {} paths", p.done, p.expected.max(p.done));
            match self.bytes() {
                (0, None) => {}
                (done, Some(all)) if all >= done => {
                    text.push_str(&format!(", {} of {}", bytes_text(done), bytes_text(all)))
                }
                (done, _) => text.push_str(&format!(", {}", bytes_text(done))),
            }
            parts.push(text);
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

impl Tracker {
    /// What the command did, once it ended well: `built 3 derivations; copied 304 of 304
    /// paths, 1.2 MiB` (Nix 2.34 counts a top-level goal it never builds among those to
    /// build, so the builds' "of" would read "3 of 4"; the copies' is what was to be copied).
    /// A copy that ended copied all its paths: Nix 2.8 does not start an activity for each
    /// one it copies (seen on the fleet: 230 to 304 of 304), so they are not all counted.
    pub fn totals(&self) -> Option<String> {
        let mut parts = Vec::new();
        let plural = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        if self.builds.done > 0 {
            parts.push(format!("built {}", plural(self.builds.done, "derivation")));
        }
        if let Some(p) = self.paths() {
            let all = p.expected.max(p.done);
            let done = if self.copies_ended { all } else { p.done };
            let mut text = format!("copied {done} of {}", plural(all, "path"));
            if let (done @ 1.., _) = self.bytes() {
                text.push_str(&format!(", {}", bytes_text(done)));
            }
            parts.push(text);
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// N of `copying N paths`.
fn copying_count(text: &str) -> Option<u64> {
    let rest = text.strip_prefix("copying ")?;
    let (n, what) = rest.split_once(' ')?;
    what.starts_with("path").then(|| n.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::super::nixlog::parse;
    use super::*;

    fn fed(log: &str, lines: usize) -> Tracker {
        let mut t = Tracker::default();
        for line in log.lines().take(lines) {
            t.feed(&parse(line));
        }
        t
    }

    const BUILD_28: &str = include_str!("testdata/nix-build28.log");
    const BUILD_34: &str = include_str!("testdata/nix-build34.log");
    const BUILD_34_FAIL: &str = include_str!("testdata/nix-build34-fail.log");
    const COPY_28: &str = include_str!("testdata/nix-copy28.log");
    const COPY_34: &str = include_str!("testdata/nix-copy34.log");

    #[test]
    fn builds_are_counted_and_named_on_every_nix() {
        for log in [BUILD_28, BUILD_34] {
            let done = fed(log, usize::MAX);
            // Nix 2.34 ends at "4 of 5": it counts the top-level goal it then never builds.
            assert_eq!(done.builds().done, 4);
            assert!(done.builds().expected >= 4);
            assert!(done.building().is_empty());
            assert_eq!(done.paths(), None);
            assert_eq!(done.failed_build().map(|(d, _)| name_of(d)), Some("top"));
            // Part way: the one building now is named.
            let first_build = log.lines().position(|l| l.contains("building '")).unwrap();
            let t = fed(log, first_build + 1);
            assert_eq!(t.building(), ["p1"]);
        }
    }

    #[test]
    fn copies_are_counted_on_every_nix() {
        let t = fed(COPY_28, usize::MAX);
        assert_eq!(
            t.paths(),
            Some(Count {
                done: 4,
                expected: 4
            })
        );
        let t = fed(COPY_34, usize::MAX);
        assert_eq!(
            t.paths(),
            Some(Count {
                done: 4,
                expected: 4
            })
        );
        assert_eq!(t.bytes(), (616, Some(616)));
        // Part way through the first path of four.
        let t = fed(COPY_34, 20);
        assert_eq!(
            t.paths(),
            Some(Count {
                done: 0,
                expected: 4
            })
        );
        let (done, all) = t.bytes();
        assert!(done > 0 && done < 120, "{done}");
        assert_eq!(all, Some(616));
    }

    #[test]
    fn a_failed_build_keeps_its_last_lines() {
        let t = fed(BUILD_34_FAIL, usize::MAX);
        let (drv, lines) = t.failed_build().unwrap();
        assert_eq!(name_of(drv), "p1");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], "hi 1");
        assert!(lines[1].contains("cannot create"));
        assert!(
            t.messages()
                .iter()
                .any(|(l, m)| *l == 0 && m.contains("Cannot build"))
        );
    }

    #[test]
    fn one_status_line() {
        let first_build = BUILD_28
            .lines()
            .position(|l| l.contains("building '"))
            .unwrap();
        assert_eq!(
            fed(BUILD_28, first_build + 1).status().as_deref(),
            Some("built 0 of 4 derivations, building p1")
        );
        assert_eq!(
            fed(COPY_34, usize::MAX).status().as_deref(),
            Some("copied 4 of 4 paths, 616 B of 616 B")
        );
        assert_eq!(
            fed(COPY_28, usize::MAX).status().as_deref(),
            Some("copied 4 of 4 paths")
        );
        assert_eq!(Tracker::default().status(), None);
        assert_eq!(
            fed(COPY_34, usize::MAX).totals().as_deref(),
            Some("copied 4 of 4 paths, 616 B")
        );
        for log in [BUILD_28, BUILD_34] {
            assert_eq!(
                fed(log, usize::MAX).totals().as_deref(),
                Some("built 4 derivations")
            );
        }
        assert_eq!(Tracker::default().totals(), None);
        // Nix 2.8 leaves paths out of its activities: an ended copy copied them all.
        let some_paths: String = COPY_28
            .lines()
            .filter(|l| !l.contains("copying path"))
            .map(|l| format!("{l}\n"))
            .collect();
        let t = fed(&some_paths, usize::MAX);
        assert_eq!(t.totals().as_deref(), Some("copied 4 of 4 paths"));
        let t = fed(COPY_28, 9);
        assert_eq!(t.totals().as_deref(), Some("copied 0 of 4 paths"));
        assert_eq!(bytes_text(1536), "1.5 KiB");
        assert_eq!(bytes_text(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn names_and_counts_from_text() {
        assert_eq!(
            name_of("/nix/store/0f69dwxlxxg8va1m2b54nb35wq1iff5g-p3.drv"),
            "p3"
        );
        assert_eq!(
            name_of("/nix/store/0f69dwxlxxg8va1m2b54nb35wq1iff5g-nixos-system-aq-26.05"),
            "nixos-system-aq-26.05"
        );
        assert_eq!(name_of("plain"), "plain");
        assert_eq!(copying_count("copying 4 paths"), Some(4));
        assert_eq!(copying_count("copying 1 path"), Some(1));
        assert_eq!(
            copying_count("copying path '/nix/store/x' to 'local'"),
            None
        );
    }
}
