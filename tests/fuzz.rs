//! Generated inputs for the parsers that take what users type, and for shell quoting: many
//! thousands of cases from a small deterministic generator (the same cases on every run; set
//! RB_FUZZ_SEED to try others). No input may panic; accepted inputs keep the invariants the
//! rest of rb relies on; quoted words come back unchanged from a real shell.

use rb::flake;
use rb::host::SshHost;
use rb::shell::{join, quote, split};
use std::process::Command;

/// splitmix64: tiny, deterministic, good enough to spread cases.
struct Rng(u64);

impl Rng {
    fn new(stream: u64) -> Rng {
        let seed = std::env::var("RB_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_u64);
        Rng(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    /// Up to `max` pieces, each a character or a snippet from `pieces`.
    fn text(&mut self, pieces: &[&str], max: usize) -> String {
        let n = self.below(max + 1);
        (0..n).map(|_| *self.pick(pieces)).collect()
    }
}

const CASES: usize = 20_000;

/// Characters and snippets that matter to the parsers, and some that should not.
#[rustfmt::skip]
const FLAKE_PIECES: &[&str] = &[
    "a", "b", "Z", "0", "9", "-", "_", ".", "/", ":", "?", "=", "&", "#", "#", "\"", "\\", "$",
    "{", "}", "${", "'", " ", "\t", "\n", "\u{1}", "\u{7f}", "é", "✓", "@", "[", "]", "~",
    "github:", "path:", "git+file://", "/etc/nixos", ".#", "?dir=x",
];

/// What `flake::parse` must accept, written the other way round: the value split at `#`.
fn expected_flake(value: &str) -> Option<(String, Option<String>)> {
    let mut parts = value.split('#');
    let flake = parts.next().unwrap_or_default();
    let name = parts.next();
    if value.is_empty() || parts.next().is_some() || flake.is_empty() || flake.starts_with('-') {
        return None;
    }
    let name = name.filter(|n| !n.is_empty());
    if let Some(n) = name
        && (n.contains('"')
            || n.contains('\\')
            || n.contains("${")
            || n.chars().any(char::is_control))
    {
        return None;
    }
    Some((flake.to_string(), name.map(String::from)))
}

#[test]
fn flake_references() {
    let mut rng = Rng::new(1);
    let mut accepted = 0;
    for case in 0..CASES {
        let value = rng.text(FLAKE_PIECES, 12);
        let hostname = rng.text(&["h", "-", ".", "\"", "\n", " ", "x1"], 4);
        let got = flake::parse(&value);
        assert_eq!(
            got.as_ref().ok().map(|r| (r.flake.clone(), r.name.clone())),
            expected_flake(&value),
            "case {case}: {value:?} gave {got:?}"
        );
        let Ok(partial) = got else {
            assert!(!got.unwrap_err().is_empty());
            continue;
        };
        accepted += 1;
        let Ok(full) = partial.complete(&hostname) else {
            continue;
        };
        let attr = "config.system.build.toplevel";
        let inst = full.installable(attr);
        // The flake part has no '#': the first '#' ends it.
        let (flake_part, rest) = inst.split_once('#').unwrap();
        assert_eq!(flake_part, full.flake, "case {case}: {value:?}");
        assert!(
            !inst.starts_with('-'),
            "case {case}: {inst:?} looks like an option"
        );
        // The name is quoted exactly once, and nothing in it can end or change the string.
        assert_eq!(
            rest,
            format!("nixosConfigurations.\"{}\".{attr}", full.name),
            "case {case}: {value:?}"
        );
        assert_eq!(rest.matches('"').count(), 2, "case {case}: {inst:?}");
        assert!(!full.name.is_empty(), "case {case}");
        assert!(
            !full.name.contains('\\') && !full.name.contains("${"),
            "case {case}: {inst:?}"
        );
        assert_eq!(
            full.configuration(),
            format!("{flake_part}#nixosConfigurations.\"{}\"", full.name)
        );
        assert_eq!(
            split(&quote(&inst)).unwrap(),
            [inst.as_str()],
            "case {case}"
        );
    }
    assert!(
        accepted > CASES / 20,
        "only {accepted} accepted: generate better cases"
    );
}

#[rustfmt::skip]
const HOST_PIECES: &[&str] = &[
    "a", "b", "z", "0", "1", "-", "-", "_", ".", "@", "@", ":", "[", "]", "%", "%25", "/", "?",
    " ", "\t", "\n", "\u{1}", "é", "::1", "fe80::1", "root@", "deploy", "ssh://", "ssh-ng://",
    "http://", "-o", "ProxyCommand=x", "=",
];

#[test]
fn hosts() {
    let mut rng = Rng::new(2);
    let mut accepted = 0;
    for case in 0..CASES {
        let value = rng.text(HOST_PIECES, 8);
        let option = *rng.pick(&["--target-host", "--build-host"]);
        let host = match SshHost::parse(option, &value) {
            Ok(h) => h,
            Err(e) => {
                assert!(e.starts_with(option), "case {case}: {value:?}: {e}");
                continue;
            }
        };
        accepted += 1;
        let ctx = format!("case {case}: {value:?} gave {host:?}");
        // Never an option, never empty, never split into several words.
        for part in [&host.dest, &host.hostname] {
            assert!(!part.is_empty(), "{ctx}");
            assert!(!part.starts_with('-'), "{ctx}");
            assert!(
                !part.chars().any(|c| c.is_whitespace() || c.is_control()),
                "{ctx}"
            );
        }
        assert!(!host.hostname.contains(['/', '?', '@']), "{ctx}");
        match host.dest.strip_suffix(host.hostname.as_str()) {
            Some("") => {}
            Some(user) => {
                let user = user.strip_suffix('@').unwrap_or_else(|| panic!("{ctx}"));
                assert!(!user.is_empty() && !user.starts_with('-'), "{ctx}");
            }
            None => panic!("{ctx}: dest does not end with the host name"),
        }
        assert!(matches!(host.scheme.as_str(), "ssh" | "ssh-ng"), "{ctx}");
        let uri = host.store_uri();
        let authority = uri
            .strip_prefix(&format!("{}://", host.scheme))
            .unwrap_or_else(|| panic!("{ctx}: {uri}"));
        assert!(
            !authority.is_empty() && !authority.starts_with('-'),
            "{ctx}: {uri}"
        );
        // What is accepted parses back to the same host.
        assert_eq!(SshHost::parse(option, &value), Ok(host.clone()), "{ctx}");
    }
    assert!(
        accepted > CASES / 20,
        "only {accepted} accepted: generate better cases"
    );
}

/// Characters for words: every printable ASCII character, white space, non-ASCII (including
/// Unicode white space), and what shells treat specially.
fn word_chars() -> Vec<String> {
    let mut chars: Vec<String> = (0x20u8..0x7f).map(|b| (b as char).to_string()).collect();
    for s in [
        "\n", "\t", "\r", "\u{1}", "\u{1b}", "é", "✓", "\u{a0}", "\u{2028}", "'", "'", "\"", "\\",
        "$(", "`", "${", "*", "?", "~", "#", "&&", ";", "|", "<", ">", "!", "=",
    ] {
        chars.push(s.to_string());
    }
    chars
}

fn words(rng: &mut Rng, n: usize) -> Vec<String> {
    let chars = word_chars();
    let pieces: Vec<&str> = chars.iter().map(String::as_str).collect();
    (0..n).map(|_| rng.text(&pieces, 10)).collect()
}

/// `printf '%s\0' WORDS…` through `shell -c`, the words quoted with `join`.
fn through_shell(shell: &str, words: &[String]) -> Vec<String> {
    let mut script = vec!["printf".to_string(), "%s\\0".to_string()];
    script.extend(words.iter().cloned());
    let out = Command::new(shell)
        .arg("-c")
        .arg(join(&script))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shell}: {e}"));
    assert!(out.status.success(), "{shell}: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut got: Vec<String> = text.split('\0').map(String::from).collect();
    assert_eq!(
        got.pop().as_deref(),
        Some(""),
        "{shell}: output ends with NUL"
    );
    got
}

#[test]
fn quoted_words_come_back_from_real_shells() {
    let mut rng = Rng::new(3);
    let mut shells = vec!["/bin/sh"];
    if std::path::Path::new("/bin/bash").exists() {
        shells.push("/bin/bash");
    }
    for batch in 0..8 {
        let mut batch_words = words(&mut rng, 500);
        batch_words.extend(["".into(), "-n".into(), "--".into(), "'".into(), "''".into()]);
        for shell in &shells {
            assert_eq!(
                through_shell(shell, &batch_words),
                batch_words,
                "batch {batch} through {shell}"
            );
        }
        assert_eq!(
            split(&join(&batch_words)).unwrap(),
            batch_words,
            "batch {batch}"
        );
        for w in &batch_words {
            assert_eq!(split(&quote(w)).unwrap(), [w.as_str()], "{w:?}");
            // A quoted word is one word however it is followed or preceded.
            assert_eq!(
                split(&format!("x {} y", quote(w))).unwrap(),
                ["x", w.as_str(), "y"],
                "{w:?}"
            );
        }
    }
}

#[test]
fn split_never_panics() {
    let mut rng = Rng::new(4);
    let chars = word_chars();
    let pieces: Vec<&str> = chars.iter().map(String::as_str).collect();
    for _ in 0..CASES {
        let input = rng.text(&pieces, 16);
        if let Ok(words) = split(&input) {
            // What split accepts, join writes back to something that splits the same.
            assert_eq!(split(&join(&words)).unwrap(), words, "{input:?}");
        }
    }
}
