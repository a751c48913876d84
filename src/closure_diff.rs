//! `--diff`: which packages the new system adds, removes or changes the version of, against
//! the running one, and how the closure grows: read from what `src/scripts/package-diff.sh`
//! prints on the target (where both closures are), as nvd and dix show it.

use crate::progress::state::bytes_text;
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Added,
    Removed,
    Upgraded,
    Downgraded,
    /// Versions differ but neither side is newer (several versions on one side).
    Changed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub kind: ChangeKind,
    pub name: String,
    pub before: Vec<String>,
    pub after: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Side {
    pub path: String,
    pub paths: usize,
    /// The closure's size in bytes, when the target's Nix said.
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClosureDiff {
    /// None when the target runs no NixOS system yet (no /run/current-system).
    pub current: Option<Side>,
    pub new: Side,
    pub changes: Vec<Change>,
}

/// `(name, version)` of a store path's name: the version starts at the first `-` that a digit
/// follows (`python3.11-requests-2.31.0` is `python3.11-requests` at `2.31.0`).
pub fn split_name(name: &str) -> (&str, Option<&str>) {
    let bytes = name.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            return (&name[..i], Some(&name[i + 1..]));
        }
    }
    (name, None)
}

/// A version's components as Nix splits them: at `.` and `-`, and between runs of digits
/// and of other characters (`1.0pre3` is `1`, `0`, `pre`, `3`).
fn components(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut digits = false;
    for (i, c) in v.char_indices() {
        if c == '.' || c == '-' {
            if let Some(s) = start.take() {
                out.push(&v[s..i]);
            }
            continue;
        }
        match start {
            Some(s) if c.is_ascii_digit() != digits => {
                out.push(&v[s..i]);
                start = Some(i);
            }
            Some(_) => {}
            None => start = Some(i),
        }
        digits = c.is_ascii_digit();
    }
    if let Some(s) = start {
        out.push(&v[s..]);
    }
    out
}

/// Compares versions as Nix's `compareVersions` does: numbers as numbers, a missing part
/// before a number, `pre` before anything, other text before numbers and by its letters.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (pa, pb) = (components(a), components(b));
    let number = |s: &str| s.parse::<u64>().ok();
    for i in 0..pa.len().max(pb.len()) {
        let (x, y) = (
            pa.get(i).copied().unwrap_or(""),
            pb.get(i).copied().unwrap_or(""),
        );
        let o = match (number(x), number(y)) {
            _ if x == y => Ordering::Equal,
            (Some(m), Some(n)) => m.cmp(&n),
            (None, Some(_)) if x.is_empty() => Ordering::Less,
            (Some(_), None) if y.is_empty() => Ordering::Greater,
            _ if x == "pre" => Ordering::Less,
            _ if y == "pre" => Ordering::Greater,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (None, None) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// The package name and version of each store path in `paths` (those without a version
/// are not packages and are left out).
fn packages<'a>(paths: &[&'a str]) -> BTreeMap<&'a str, BTreeSet<&'a str>> {
    let mut out: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for path in paths {
        let base = path.rsplit('/').next().unwrap_or(path);
        let Some((_hash, name)) = base.split_once('-') else {
            continue;
        };
        if let (name, Some(version)) = split_name(name) {
            out.entry(name).or_default().insert(version);
        }
    }
    out
}

/// Reads the script's output.
pub fn parse(output: &str) -> Option<ClosureDiff> {
    let (mut current, mut new) = (None, None);
    let mut sizes = BTreeMap::new();
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for line in output.lines() {
        if let Some(p) = line.strip_prefix("current ") {
            current = Some(p);
        } else if let Some(p) = line.strip_prefix("new ") {
            new = Some(p);
        } else if let Some(rest) = line.strip_prefix("size ") {
            if let Some((p, n)) = rest.split_once(' ') {
                sizes.insert(p, n.trim().parse::<u64>().ok());
            }
        } else if let Some(p) = line.strip_prefix("- ") {
            before.push(p);
        } else if let Some(p) = line.strip_prefix("+ ") {
            after.push(p);
        }
    }
    let new = new?;
    let side = |path: &str, paths: usize| Side {
        path: path.to_string(),
        paths,
        bytes: sizes.get(path).copied().flatten(),
    };
    let (old, now) = (packages(&before), packages(&after));
    let mut changes = Vec::new();
    for name in old.keys().chain(now.keys()).collect::<BTreeSet<_>>() {
        let list = |s: Option<&BTreeSet<&str>>| -> Vec<String> {
            s.map(|s| s.iter().map(|v| v.to_string()).collect())
                .unwrap_or_default()
        };
        let (b, a) = (old.get(name), now.get(name));
        if b == a {
            continue;
        }
        let kind = match (b, a) {
            (None, _) => ChangeKind::Added,
            (_, None) => ChangeKind::Removed,
            (Some(b), Some(a)) if b.len() == 1 && a.len() == 1 => {
                let (b, a) = (b.first().unwrap(), a.first().unwrap());
                match compare_versions(a, b) {
                    Ordering::Less => ChangeKind::Downgraded,
                    _ => ChangeKind::Upgraded,
                }
            }
            _ => ChangeKind::Changed,
        };
        changes.push(Change {
            kind,
            name: name.to_string(),
            before: list(b),
            after: list(a),
        });
    }
    Some(ClosureDiff {
        current: current.map(|c| side(c, before.len())),
        new: side(new, after.len()),
        changes,
    })
}

impl ClosureDiff {
    /// The lines rb prints for it.
    pub fn lines(&self) -> Vec<String> {
        let Some(current) = &self.current else {
            return vec![format!(
                "nothing to compare with: the target runs no NixOS system yet (new: {})",
                self.new.path
            )];
        };
        let mut out = vec![
            format!("<<< {}", current.path),
            format!(">>> {}", self.new.path),
        ];
        if current.path == self.new.path {
            out.push("No changes.".into());
            return out;
        }
        for (title, kinds) in [
            (
                "Version changes:",
                &[
                    ChangeKind::Upgraded,
                    ChangeKind::Downgraded,
                    ChangeKind::Changed,
                ][..],
            ),
            ("Added packages:", &[ChangeKind::Added][..]),
            ("Removed packages:", &[ChangeKind::Removed][..]),
        ] {
            let shown: Vec<&Change> = self
                .changes
                .iter()
                .filter(|c| kinds.contains(&c.kind))
                .collect();
            if shown.is_empty() {
                continue;
            }
            out.push(title.into());
            for c in shown {
                let mark = match c.kind {
                    ChangeKind::Upgraded => "[U]",
                    ChangeKind::Downgraded => "[D]",
                    ChangeKind::Changed => "[C]",
                    ChangeKind::Added => "[A]",
                    ChangeKind::Removed => "[R]",
                };
                let versions = match c.kind {
                    ChangeKind::Added => c.after.join(", "),
                    ChangeKind::Removed => c.before.join(", "),
                    _ => format!("{} -> {}", c.before.join(", "), c.after.join(", ")),
                };
                out.push(format!("{mark} {} {versions}", c.name));
            }
        }
        if self.changes.is_empty() {
            out.push("No version changes.".into());
        }
        let mut closure = format!("Closure: {} -> {} paths", current.paths, self.new.paths);
        if let (Some(b), Some(a)) = (current.bytes, self.new.bytes) {
            let delta = if a >= b {
                format!("+{}", bytes_text(a - b))
            } else {
                format!("-{}", bytes_text(b - a))
            };
            closure.push_str(&format!(
                ", {} -> {} ({delta})",
                bytes_text(b),
                bytes_text(a)
            ));
        }
        out.push(closure);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "new /nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-nixos-system-aq-26.05.2
current /nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-nixos-system-aq-26.05.1
size /nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-nixos-system-aq-26.05.1 1048576
size /nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-nixos-system-aq-26.05.2 2097152
- /nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-nixos-system-aq-26.05.1
- /nix/store/cccccccccccccccccccccccccccccccc-firefox-120.0.1
- /nix/store/dddddddddddddddddddddddddddddddd-nano-7.2
- /nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-etc
- /nix/store/ffffffffffffffffffffffffffffffff-python3.11-requests-2.31.0
- /nix/store/gggggggggggggggggggggggggggggggg-openssl-3.0.12
+ /nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-nixos-system-aq-26.05.2
+ /nix/store/hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh-firefox-121.0
+ /nix/store/iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii-hello-2.12.1
+ /nix/store/jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj-etc
+ /nix/store/ffffffffffffffffffffffffffffffff-python3.11-requests-2.31.0
+ /nix/store/kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk-openssl-3.0.9
+ /nix/store/llllllllllllllllllllllllllllllll-openssl-3.0.12
";

    #[test]
    fn added_removed_and_changed_versions() {
        let d = parse(OUTPUT).unwrap();
        assert_eq!(
            d.lines(),
            [
                "<<< /nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-nixos-system-aq-26.05.1",
                ">>> /nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-nixos-system-aq-26.05.2",
                "Version changes:",
                "[U] firefox 120.0.1 -> 121.0",
                "[U] nixos-system-aq 26.05.1 -> 26.05.2",
                "[C] openssl 3.0.12 -> 3.0.12, 3.0.9",
                "Added packages:",
                "[A] hello 2.12.1",
                "Removed packages:",
                "[R] nano 7.2",
                "Closure: 6 -> 7 paths, 1.0 MiB -> 2.0 MiB (+1.0 MiB)",
            ]
        );
        assert_eq!(d.changes.len(), 5);
    }

    #[test]
    fn nothing_to_compare_and_no_changes() {
        let fresh = parse("new /nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-x-1\n").unwrap();
        assert!(fresh.lines()[0].starts_with("nothing to compare with"));
        let same = parse("new /nix/store/b-x-1\ncurrent /nix/store/b-x-1\n").unwrap();
        assert_eq!(same.lines().last().unwrap(), "No changes.");
        assert_eq!(parse("garbage"), None);
    }

    #[test]
    fn without_sizes_the_packages_are_still_shown() {
        let no_sizes: String = OUTPUT
            .lines()
            .filter(|l| !l.starts_with("size "))
            .map(|l| format!("{l}\n"))
            .collect();
        let d = parse(&no_sizes).unwrap();
        assert_eq!(d.current.as_ref().unwrap().bytes, None);
        assert_eq!(d.new.bytes, None);
        assert_eq!(d.changes, parse(OUTPUT).unwrap().changes);
        assert_eq!(d.lines().last().unwrap(), "Closure: 6 -> 7 paths");
        // A size Nix did not give as a number is no size either.
        let odd = parse(&format!("{no_sizes}size {} n/a\n", d.new.path)).unwrap();
        assert_eq!(odd.new.bytes, None);
    }

    #[test]
    fn names_and_versions() {
        assert_eq!(split_name("firefox-120.0.1"), ("firefox", Some("120.0.1")));
        assert_eq!(
            split_name("python3.11-requests-2.31.0"),
            ("python3.11-requests", Some("2.31.0"))
        );
        assert_eq!(split_name("etc"), ("etc", None));
        assert_eq!(split_name("unit-dbus.service"), ("unit-dbus.service", None));
        assert_eq!(compare_versions("121.0", "120.0.1"), Ordering::Greater);
        assert_eq!(compare_versions("3.0.9", "3.0.12"), Ordering::Less);
        assert_eq!(compare_versions("1.0pre", "1.0"), Ordering::Less);
        assert_eq!(compare_versions("1.0pre3", "1.0pre10"), Ordering::Less);
        assert_eq!(compare_versions("2.0", "2.0.1"), Ordering::Less);
        assert_eq!(compare_versions("6.6.1", "6.6.1-rc1"), Ordering::Less);
        assert_eq!(compare_versions("2.12", "2.12"), Ordering::Equal);
    }
}
