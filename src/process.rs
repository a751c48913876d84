//! Small local processes whose output rb reads (`nix --version`, `uname -n`). The sessions of
//! a plan start in `exec.rs` and `transport.rs`; everything uses `std::process`.

use std::process::{Command, Stdio};

/// The standard output of `argv` run here, whatever its status; None when it cannot start.
/// Its stderr is dropped: these are questions whose failure has a fallback.
pub fn stdout_of(argv: &[&str]) -> Option<String> {
    let (program, args) = argv.split_first()?;
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stdout_or_says_it_could_not_start() {
        assert_eq!(
            stdout_of(&["sh", "-c", "echo out; echo err >&2; exit 3"]).as_deref(),
            Some("out\n")
        );
        assert_eq!(stdout_of(&["/nonexistent/rb-test"]), None);
        assert_eq!(stdout_of(&[]), None);
    }
}
