//! Commands that run under `systemd-run` (activation, the magic-rollback watchdog): how their
//! command line gets to the unit unchanged.
//!
//! systemd expands `$NAME` and `${NAME}` in the command line of a transient unit and reads
//! `$$` as one `$`. The shell function `rb_systemd_run` (`scripts/systemd-run.sh`) doubles
//! every `$` after systemd-run's `--` on the host, where the words' values are known; every
//! script that starts systemd-run does it through that function.

/// The shell function that runs a command line holding `systemd-run OPTIONS -- COMMAND…`.
pub const FUNCTION: &str = "rb_systemd_run";

/// Its definition, for the top of a script.
pub const DEFINITION: &str = include_str!("scripts/systemd-run.sh");

/// `systemd-run` and its options for activation's unit `unit`, up to and with the `--` that
/// ends them: `passed` are the variables the unit gets (`-E`), besides its own PATH.
pub fn activation_prefix(unit: &str, passed: &[&str]) -> Vec<String> {
    let mut run = vec!["systemd-run".to_string()];
    for k in passed {
        run.extend(["-E".to_string(), k.to_string()]);
    }
    run.extend(
        [
            "--collect",
            "--no-ask-password",
            "--pipe",
            "--quiet",
            "--service-type=exec",
        ]
        .map(String::from),
    );
    run.push(format!("--unit={unit}"));
    run.push("--".into());
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the unit would run, as systemd reads the command line `rb_systemd_run` hands it:
    /// `$$` is one `$`, and any other `$` starts a variable (empty here).
    fn as_systemd_reads(word: &str) -> String {
        let mut out = String::new();
        let mut chars = word.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, chars.peek()) {
                ('$', Some('$')) => {
                    chars.next();
                    out.push('$');
                }
                ('$', Some('{')) => {
                    for c in chars.by_ref() {
                        if c == '}' {
                            break;
                        }
                    }
                }
                ('$', Some(n)) if n.is_ascii_alphanumeric() || *n == '_' => {
                    while chars
                        .next_if(|n| n.is_ascii_alphanumeric() || *n == '_')
                        .is_some()
                    {}
                }
                _ => out.push(c),
            }
        }
        out
    }

    #[test]
    fn the_units_command_line_arrives_unchanged() {
        let words = [
            "plain",
            "d=$1 t=$2",
            "${n##*-}",
            "$$",
            "a$",
            "",
            "two\nlines $x",
            "--",
        ];
        let script = format!(
            "{DEFINITION}\n{FUNCTION} printf '%s\\0' before '$x' systemd-run -E X -- \"$@\""
        );
        let out = std::process::Command::new("dash")
            .args(["-c", &script, "sh"])
            .args(words)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let got: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .split_terminator('\0')
            .map(String::from)
            .collect();
        // Up to systemd-run's `--`, the words are as given; after it, systemd gets them back.
        assert_eq!(got[..6], ["before", "$x", "systemd-run", "-E", "X", "--"]);
        let unit: Vec<String> = got[6..].iter().map(|w| as_systemd_reads(w)).collect();
        assert_eq!(unit, words);
        // Without systemd-run, nothing changes.
        let script = format!("{DEFINITION}\n{FUNCTION} printf '%s\\0' -- '$x'");
        let out = std::process::Command::new("dash")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"--\0$x\0");
    }
}
