//! Running a session's commands as root (`--sudo`, `--run0`, `--elevate`,
//! `--ask-sudo-password`): the one place that knows the methods. The request picks one
//! (`request.rs`), sessions carry it (`plan.rs`), and rendering, the executor, the password
//! prompt and `--plan` ask it what it means.

use crate::error::Error;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Elevation {
    None,
    Sudo {
        ask_password: bool,
        /// `NIX_SUDOOPTS`, split like a shell would.
        options: Vec<String>,
    },
    Run0 {
        ask_password: bool,
    },
}

/// `scripts/is-root.sh`.
const IS_ROOT: &str = include_str!("scripts/is-root.sh");

/// The command that succeeds only as root, for a session that must run as root whatever its
/// elevation (`--upgrade` updates root's channels): with no method, rb's own user must be root.
pub fn root_check() -> [&'static str; 3] {
    ["sh", "-c", IS_ROOT]
}

impl Elevation {
    pub fn is_none(&self) -> bool {
        matches!(self, Elevation::None)
    }

    /// The tool, for messages: `sudo` or `run0`.
    pub fn tool(&self) -> Option<&'static str> {
        match self {
            Elevation::None => None,
            Elevation::Sudo { .. } => Some("sudo"),
            Elevation::Run0 { .. } => Some("run0"),
        }
    }

    /// Whether the session's stdin starts with the password (asked once per run). sudo does
    /// not read it when it needs none (NOPASSWD, a cached timestamp), so a script must drop
    /// it before anything else can read it.
    pub fn sends_password(&self) -> bool {
        matches!(
            self,
            Elevation::Sudo {
                ask_password: true,
                ..
            }
        )
    }

    /// Whether it asks for a password no method here can hand over yet (run0 would need
    /// polkit's stdin agent on the target).
    pub fn wants_unavailable_password(&self) -> bool {
        matches!(self, Elevation::Run0 { ask_password: true })
    }

    /// The same method without a password on stdin (for a session on this machine, where
    /// the tool can prompt on the terminal itself).
    pub fn without_password(&self) -> Elevation {
        match self {
            Elevation::Sudo { options, .. } => Elevation::Sudo {
                ask_password: false,
                options: options.clone(),
            },
            other => other.clone(),
        }
    }

    /// The words before the elevated command; `remote`: on a host over SSH, where nobody
    /// can answer a prompt.
    pub fn argv_prefix(&self, remote: bool) -> Vec<String> {
        match self {
            Elevation::None => Vec::new(),
            Elevation::Sudo {
                ask_password,
                options,
            } => {
                let mut argv = vec!["sudo".to_string()];
                if *ask_password {
                    // The password comes on stdin; an empty prompt keeps it out of the output.
                    argv.extend(["--prompt=".into(), "--stdin".into()]);
                } else if remote {
                    // Fail at once instead of hanging on a prompt.
                    argv.push("--non-interactive".into());
                }
                argv.extend(options.iter().cloned());
                argv
            }
            Elevation::Run0 { .. } => vec!["run0".to_string(), "--".to_string()],
        }
    }

    /// How `--plan` says it, after the host: ` as root via sudo (password asked once)`.
    pub fn label(&self) -> String {
        match self.tool() {
            None => String::new(),
            Some(tool) if self.sends_password() => {
                format!(" as root via {tool} (password asked once)")
            }
            Some(tool) => format!(" as root via {tool}"),
        }
    }

    /// The error for a session on `host` that the tool did not let through (`status`: the
    /// session's exit status).
    pub fn refusal(&self, host: String, status: i32) -> Error {
        let (why, hint) = match self {
            Elevation::Sudo {
                ask_password: true, ..
            } => ("the password was not accepted".to_string(), None),
            Elevation::Sudo { .. } => (
                "it wants a password".into(),
                Some(
                    "pass --ask-sudo-password (-S) to give it one, or allow the user to run \
                     commands without one (NOPASSWD)",
                ),
            ),
            _ => (
                format!("run0 did not run the commands (exit status {status})"),
                Some("check that polkit lets the user run them without a password"),
            ),
        };
        Error::Elevation {
            tool: self.tool().unwrap_or("sudo"),
            host,
            why,
            hint: hint.map(String::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_method_knows_its_words() {
        let sudo = |ask_password| Elevation::Sudo {
            ask_password,
            options: vec!["-u".into(), "root".into()],
        };
        assert_eq!(
            sudo(true).argv_prefix(true),
            ["sudo", "--prompt=", "--stdin", "-u", "root"]
        );
        assert_eq!(
            sudo(false).argv_prefix(true),
            ["sudo", "--non-interactive", "-u", "root"]
        );
        assert_eq!(sudo(false).argv_prefix(false), ["sudo", "-u", "root"]);
        assert_eq!(sudo(true).without_password(), sudo(false));
        assert!(sudo(true).sends_password() && !sudo(false).sends_password());
        let run0 = Elevation::Run0 { ask_password: true };
        assert_eq!(run0.argv_prefix(true), ["run0", "--"]);
        assert!(!run0.sends_password() && run0.wants_unavailable_password());
        assert_eq!(run0.without_password(), run0);
        assert!(Elevation::None.argv_prefix(true).is_empty());
        assert_eq!(
            sudo(true).label(),
            " as root via sudo (password asked once)"
        );
        assert_eq!(run0.label(), " as root via run0");
        assert_eq!(Elevation::None.label(), "");
        assert_eq!(
            sudo(true).refusal("h".into(), 1).to_string(),
            "sudo on h refused: the password was not accepted"
        );
        let e = sudo(false).refusal("h".into(), 1);
        assert_eq!(e.to_string(), "sudo on h refused: it wants a password");
        assert!(e.hints()[0].starts_with("pass --ask-sudo-password (-S)"));
    }
}
