//! What rb learns about a remote host in the session that opens its connection
//! (`scripts/probe.sh`), and what it refuses because of it before anything is built: Nix
//! missing from the PATH of SSH sessions, an account that cannot run commands, a user who is
//! not root with no elevation given, a sudo that wants a password nobody gave or does not take
//! the one given (`-S`: it comes on the session's stdin, see [`Checks::needs_password`]), no
//! run0 or a run0 that polkit does not let through.
//! Connections open while the evaluation and build run, so a refusal stops the build as an
//! unreachable host does (README, "What rb guarantees when things go wrong").

use crate::action::Action;
use crate::elevation::Elevation;
use crate::error::{Error, Result};
use serde::Serialize;

const SCRIPT: &str = include_str!("scripts/probe.sh");

/// What a host must offer for its part of the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Checks {
    /// Commands the PATH of its SSH sessions must have.
    pub commands: Vec<String>,
    /// Set when steps there need root: how rb elevates them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<Elevation>,
    /// The host name rb guessed for the configuration's name (`SshHost::guessed_name`): a
    /// host that reports another is [`Error::NotTheGuess`], and rb builds again with its
    /// name. Not part of the plan shown (`--plan` connects nowhere and guesses nothing).
    #[serde(skip)]
    pub expect_hostname: Option<String>,
}

impl Checks {
    /// A target host: it receives the system (`nix-store`), sets the profile (`nix-env`),
    /// and, for the actions that change it, needs root.
    pub fn target(action: Action, elevation: &Elevation) -> Checks {
        Checks {
            commands: vec!["nix-store".into(), "nix-env".into()],
            root: (action.activates() || action.sets_profile()).then(|| elevation.clone()),
            expect_hostname: None,
        }
    }

    /// A build host: it realises the derivation, unelevated.
    pub fn builder() -> Checks {
        Checks {
            commands: vec!["nix-store".into()],
            root: None,
            expect_hostname: None,
        }
    }

    /// Both parts, for a host that builds and is the target.
    pub fn merge(&mut self, other: &Checks) {
        for c in &other.commands {
            if !self.commands.contains(c) {
                self.commands.push(c.clone());
            }
        }
        if self.root.is_none() {
            self.root = other.root.clone();
        }
        if self.expect_hostname.is_none() {
            self.expect_hostname = other.expect_hostname.clone();
        }
    }

    /// Whether the opening session's stdin must carry the sudo password (asked before the
    /// connection opens), so that sudo tries it there.
    pub fn needs_password(&self) -> bool {
        self.root.as_ref().is_some_and(Elevation::sends_password)
    }

    /// Whether there is nothing to check (the connection then opens without a session).
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty() && self.root.is_none()
    }

    /// The remote command: the script and its checks.
    pub fn words(&self) -> Vec<String> {
        let mut words = vec![
            "sh".to_string(),
            "-c".into(),
            SCRIPT.into(),
            "rb-probe".into(),
        ];
        if !self.commands.is_empty() {
            words.push(format!("nix={}", self.commands.join(",")));
        }
        match &self.root {
            Some(Elevation::Sudo { ask_password, .. }) => words.push(
                if *ask_password {
                    "sudo-password"
                } else {
                    "sudo"
                }
                .into(),
            ),
            Some(Elevation::Run0 { .. }) => words.push("run0".into()),
            _ => {}
        }
        words
    }
}

/// What the probe said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub uid: Option<u32>,
    pub hostname: String,
    pub missing: Vec<String>,
    /// Whether sudo runs commands (without a password, or with the one given).
    pub sudo_ok: Option<bool>,
    pub run0: Option<Run0>,
}

/// What the probe found of run0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run0 {
    Ok,
    Missing,
    /// There, but polkit did not let it run a command without a password.
    Refused,
}

/// Reads the probe's output; None when it did not run (the account's shell refused).
pub fn parse(stdout: &str) -> Option<Facts> {
    let mut lines = stdout.lines();
    lines.find(|l| *l == "rb-probe 1")?;
    let mut facts = Facts::default();
    for line in lines {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "uid" => facts.uid = value.parse().ok(),
            "hostname" => facts.hostname = value.to_string(),
            "missing" => facts.missing.push(value.to_string()),
            "sudo" => facts.sudo_ok = Some(value == "ok"),
            "run0" => {
                facts.run0 = Some(match value {
                    "ok" => Run0::Ok,
                    "missing" => Run0::Missing,
                    _ => Run0::Refused,
                })
            }
            _ => {}
        }
    }
    Some(facts)
}

/// What `checks` make of the probe's output on `host` (`dest`, e.g. `deploy@aquamarine`).
/// A host that passes every check but reports another host name than the one expected is
/// [`Error::NotTheGuess`], which carries its facts: the run goes on over this connection.
pub fn verdict(checks: &Checks, dest: &str, stdout: &str) -> Result<Facts> {
    let facts = checked(checks, dest, stdout)?;
    match &checks.expect_hostname {
        Some(guess) if *guess != facts.hostname => Err(Error::NotTheGuess {
            host: dest.to_string(),
            guess: guess.clone(),
            facts: Box::new(facts),
        }),
        _ => Ok(facts),
    }
}

/// [`verdict`] but for the host name.
fn checked(checks: &Checks, dest: &str, stdout: &str) -> Result<Facts> {
    if checks.is_empty() {
        return Ok(Facts::default());
    }
    let Some(facts) = parse(stdout) else {
        let said = stdout
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("it printed nothing");
        return Err(Error::Unsuitable {
            host: dest.to_string(),
            why: format!("the account cannot run commands ({said})"),
            hint: Some(
                "give the user a shell that runs commands (not nologin), or connect as \
                 another user"
                    .into(),
            ),
        });
    };
    if !facts.missing.is_empty() {
        return Err(Error::NotOnPath {
            host: dest.to_string(),
            commands: facts.missing.join(" and "),
        });
    }
    if facts.uid == Some(0) {
        return Ok(facts);
    }
    let uid = facts.uid.map_or("?".to_string(), |u| u.to_string());
    match &checks.root {
        Some(Elevation::None) => Err(Error::Unsuitable {
            host: dest.to_string(),
            why: format!(
                "rb connects as uid {uid}, not root, and setting the profile and activating \
                 need root"
            ),
            hint: Some(format!(
                "pass --sudo (or --elevate run0) to elevate those steps, or deploy as \
                 root@{}",
                dest.rsplit('@').next().unwrap_or(dest)
            )),
        }),
        Some(e @ Elevation::Sudo { .. }) if facts.sudo_ok == Some(false) => {
            Err(e.refusal(dest.to_string(), 1))
        }
        Some(Elevation::Run0 { .. }) if facts.run0 == Some(Run0::Missing) => {
            Err(Error::Elevation {
                tool: "run0",
                host: dest.to_string(),
                why: "there is no run0 on the PATH of its SSH sessions (systemd 256 and newer \
                      have it)"
                    .into(),
                hint: Some("elevate with --sudo there".into()),
            })
        }
        Some(Elevation::Run0 { .. }) if facts.run0 == Some(Run0::Refused) => {
            Err(Error::Elevation {
                tool: "run0",
                host: dest.to_string(),
                why: "polkit does not let the user run commands without a password, and \
                      nobody can type one there"
                    .into(),
                hint: Some(
                    "let the user manage units without a password (a polkit rule for \
                     org.freedesktop.systemd1.manage-units), or elevate with --sudo there"
                        .into(),
                ),
            })
        }
        _ => Ok(facts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "rb-probe 1\nuid 1000\nhostname aquamarine\n";

    fn sudo(ask_password: bool) -> Elevation {
        Elevation::Sudo {
            ask_password,
            options: vec![],
        }
    }

    #[test]
    fn what_each_host_is_asked() {
        let t = Checks::target(Action::Switch, &sudo(false));
        let w = t.words();
        assert_eq!(w[..2], ["sh", "-c"]);
        assert_eq!(w[3..], ["rb-probe", "nix=nix-store,nix-env", "sudo"]);
        // A password is tried there, from the session's stdin; run0 is looked for and tried.
        let pw = Checks::target(Action::Boot, &sudo(true));
        assert_eq!(pw.words().last().unwrap(), "sudo-password");
        assert!(pw.needs_password() && !t.needs_password());
        assert!(!Checks::builder().needs_password());
        let run0 = Checks::target(
            Action::Test,
            &Elevation::Run0 {
                ask_password: false,
            },
        );
        assert_eq!(run0.words().last().unwrap(), "run0");
        // A build with a target copies there and needs no root.
        assert_eq!(Checks::target(Action::Build, &Elevation::None).root, None);
        let mut both = Checks::builder();
        both.merge(&t);
        assert_eq!(both.commands, ["nix-store", "nix-env"]);
        assert_eq!(both.root, Some(sudo(false)));
    }

    #[test]
    fn refusals_before_the_build() {
        let none = Checks::target(Action::Switch, &Elevation::None);
        let e = verdict(&none, "deploy@aq", OK).unwrap_err();
        assert_eq!(
            e.to_string(),
            "deploy@aq cannot be deployed to: rb connects as uid 1000, not root, and setting \
             the profile and activating need root"
        );
        assert!(e.hints()[0].contains("--sudo") && e.hints()[0].contains("root@aq"));
        assert_eq!(e.exit_status(), 1);
        // As root, nothing to elevate.
        let root = "rb-probe 1\nuid 0\nhostname aq\n";
        assert_eq!(verdict(&none, "root@aq", root).unwrap().hostname, "aq");

        let s = Checks::target(Action::Switch, &sudo(false));
        let e = verdict(&s, "deploy@aq", &format!("{OK}sudo password\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sudo on deploy@aq refused: it wants a password"
        );
        assert!(verdict(&s, "deploy@aq", &format!("{OK}sudo ok\n")).is_ok());

        let r = Checks::target(
            Action::Switch,
            &Elevation::Run0 {
                ask_password: false,
            },
        );
        let e = verdict(&r, "deploy@aq", &format!("{OK}run0 missing\n")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("run0 on deploy@aq refused: there is no run0")
        );
        let e = verdict(&r, "deploy@aq", &format!("{OK}run0 refused\n")).unwrap_err();
        assert!(e.to_string().starts_with("run0 on deploy@aq refused: "));
        assert!(e.hints()[0].contains("polkit"));
        assert!(verdict(&r, "deploy@aq", &format!("{OK}run0 ok\n")).is_ok());

        let p = Checks::target(Action::Switch, &sudo(true));
        let e = verdict(&p, "deploypw@aq", &format!("{OK}sudo password\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sudo on deploypw@aq refused: the password was not accepted"
        );
        assert!(verdict(&p, "deploypw@aq", &format!("{OK}sudo ok\n")).is_ok());

        let e = verdict(
            &s,
            "root@aq",
            "rb-probe 1\nuid 0\nmissing nix-store\nmissing nix-env\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "nix-store and nix-env not found on root@aq's PATH"
        );
        assert_eq!(e.exit_status(), 127);

        let e = verdict(&s, "svc@aq", "This account is currently not available.\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "svc@aq cannot be deployed to: the account cannot run commands (This account is \
             currently not available.)"
        );
    }

    #[test]
    fn a_guessed_host_name_is_checked_after_the_rest() {
        let mut s = Checks::target(Action::Switch, &sudo(false));
        s.expect_hostname = Some("aq".into());
        let root = "rb-probe 1\nuid 0\nhostname aq\n";
        assert_eq!(verdict(&s, "root@aq", root).unwrap().hostname, "aq");
        // Another name: the facts are kept for the run that goes on with that name.
        let other = "rb-probe 1\nuid 0\nhostname beryl\n";
        match verdict(&s, "root@aq", other) {
            Err(Error::NotTheGuess { guess, facts, .. }) => {
                assert_eq!((guess.as_str(), facts.hostname.as_str()), ("aq", "beryl"));
                assert_eq!(facts.uid, Some(0));
            }
            other => panic!("{other:?}"),
        }
        // A host that fails a check fails it, whatever its name.
        let e = verdict(&s, "deploy@aq", &format!("{OK}sudo password\n")).unwrap_err();
        assert!(matches!(e, Error::Elevation { .. }), "{e:?}");
        let e = verdict(
            &s,
            "deploy@aq",
            "rb-probe 1\nuid 1000\nhostname beryl\nsudo password\n",
        );
        assert!(matches!(e, Err(Error::Elevation { .. })), "{e:?}");
    }
}
