//! Nix's `--log-format internal-json` lines (every Nix from 2.8 on, Lix too): `@nix {…}` with
//! an action (`start`, `stop`, `result`, `msg`). Anything else on the stream (ssh's own
//! messages, a shell's error) is kept as a plain line.

use serde_json::Value;

/// The kinds of activity rb follows; Nix numbers them (`ActivityType` in its `logging.hh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// One store path being copied; `fields`: path, from, to.
    CopyPath,
    /// A download (substituter, tarball).
    FileTransfer,
    /// The whole build of a `nix build`/`nix-build`/`nix-store -r`.
    Realise,
    /// Copying many paths (`copying N paths`, and substitutions during a build).
    CopyPaths,
    /// The derivations to build: its progress counts them.
    Builds,
    /// One derivation being built; `fields`: drv path, machine, round, rounds.
    Build,
    Substitute,
    Other(u64),
}

impl Activity {
    fn from_code(code: u64) -> Self {
        match code {
            100 => Activity::CopyPath,
            101 => Activity::FileTransfer,
            102 => Activity::Realise,
            103 => Activity::CopyPaths,
            104 => Activity::Builds,
            105 => Activity::Build,
            108 => Activity::Substitute,
            other => Activity::Other(other),
        }
    }
}

/// What a `result` line reports (`ResultType` in Nix's `logging.hh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A line of a builder's output.
    BuildLogLine(String),
    /// done, expected, running, failed: paths or derivations for a parent activity, bytes
    /// for one copy or download.
    Progress {
        done: u64,
        expected: u64,
        running: u64,
        failed: u64,
    },
    /// How many of some activity kind to expect (bytes for [`Activity::CopyPath`]).
    SetExpected {
        of: Activity,
        expected: u64,
    },
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Start {
        id: u64,
        activity: Activity,
        text: String,
        /// The string fields (a build's drv path, a copy's store path).
        first_field: Option<String>,
    },
    Stop {
        id: u64,
    },
    Result {
        id: u64,
        report: Report,
    },
    /// A message Nix prints: an error (level 0), a warning (1), information (2-3) or more.
    Message {
        level: u64,
        text: String,
    },
    /// A line that is not Nix's JSON.
    Plain(String),
}

fn number(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_u64).unwrap_or(0)
}

/// Reads one line of the stream.
pub fn parse(line: &str) -> Event {
    let Some(json) = line.strip_prefix("@nix ") else {
        return Event::Plain(line.to_string());
    };
    let Ok(v) = serde_json::from_str::<Value>(json) else {
        return Event::Plain(line.to_string());
    };
    let id = number(v.get("id"));
    let fields = v.get("fields").and_then(Value::as_array);
    let field = |i: usize| fields.and_then(|f| f.get(i));
    let text = |key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match v.get("action").and_then(Value::as_str) {
        Some("start") => Event::Start {
            id,
            activity: Activity::from_code(number(v.get("type"))),
            text: text("text"),
            first_field: field(0).and_then(Value::as_str).map(String::from),
        },
        Some("stop") => Event::Stop { id },
        Some("result") => Event::Result {
            id,
            report: match number(v.get("type")) {
                101 => Report::BuildLogLine(
                    field(0)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                ),
                105 => Report::Progress {
                    done: number(field(0)),
                    expected: number(field(1)),
                    running: number(field(2)),
                    failed: number(field(3)),
                },
                106 => Report::SetExpected {
                    of: Activity::from_code(number(field(0))),
                    expected: number(field(1)),
                },
                _ => Report::Other,
            },
        },
        Some("msg") => Event::Message {
            level: number(v.get("level")),
            text: text("msg"),
        },
        _ => Event::Plain(line.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_kind_of_line() {
        assert_eq!(
            parse(
                r#"@nix {"action":"start","fields":["/nix/store/w-p1.drv","",1,1],"id":7,"level":3,"parent":0,"text":"building '/nix/store/w-p1.drv'","type":105}"#
            ),
            Event::Start {
                id: 7,
                activity: Activity::Build,
                text: "building '/nix/store/w-p1.drv'".into(),
                first_field: Some("/nix/store/w-p1.drv".into()),
            }
        );
        assert_eq!(
            parse(r#"@nix {"action":"result","fields":[3,4,1,0],"id":9,"type":105}"#),
            Event::Result {
                id: 9,
                report: Report::Progress {
                    done: 3,
                    expected: 4,
                    running: 1,
                    failed: 0
                }
            }
        );
        assert_eq!(
            parse(r#"@nix {"action":"result","fields":[100,616],"id":9,"type":106}"#),
            Event::Result {
                id: 9,
                report: Report::SetExpected {
                    of: Activity::CopyPath,
                    expected: 616
                }
            }
        );
        assert_eq!(
            parse(r#"@nix {"action":"result","fields":["hi 1"],"id":5,"type":101}"#),
            Event::Result {
                id: 5,
                report: Report::BuildLogLine("hi 1".into())
            }
        );
        assert_eq!(
            parse(r#"@nix {"action":"msg","level":1,"msg":"warning: x"}"#),
            Event::Message {
                level: 1,
                text: "warning: x".into()
            }
        );
        assert_eq!(
            parse(r#"@nix {"action":"stop","id":5}"#),
            Event::Stop { id: 5 }
        );
        for plain in ["Warning: Permanently added 'h'", "@nix {not json", ""] {
            assert_eq!(parse(plain), Event::Plain(plain.into()));
        }
    }
}
