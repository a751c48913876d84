//! Turns a planned [`Session`] into the one process that runs it.
//!
//! A session with a single plain command runs it directly. Anything more (several steps,
//! checks with their own message, systemd-run where available, an environment taken from the
//! remote shell) becomes one `/bin/sh -c` script, so that a remote session is one SSH round
//! trip and an elevated one asks sudo once. The script prints a marker line on stdout as each
//! step starts; commands' own stdout goes to stderr unless the step captures it.

use crate::error::{Error, Result};
use crate::generations;
use crate::plan::{Capture, Command, Env, Session, Undo, Var, Word};
use crate::rollback::watchdog;
use crate::shell::{join, quote};
use crate::systemd;
use std::collections::BTreeMap;

/// Run-time values of [`Var`]s.
pub type Values = BTreeMap<Var, String>;

/// Marker a script prints on stdout as step N of its session starts.
pub const MARKER: &str = "@rb-step ";
/// Marker a remote script prints first: its process group, so that an interrupted run can
/// stop what it started there.
pub const PGID_MARKER: &str = "@rb-pgid ";

/// Where a rendered session's environment-dependent words are evaluated.
pub enum Site<'a> {
    /// On this machine: kept variables take rb's own values, fixed now.
    Local(&'a BTreeMap<String, String>),
    /// On a remote host: kept variables are expanded by the remote shell.
    Remote,
}

/// What to start for a session: argv to run on its host (for a remote host, the words
/// the remote shell gets), extra environment for a local process, and whether stdout carries
/// step markers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub markers: bool,
}

pub fn render(
    session: &Session,
    values: &Values,
    site: &Site,
    program: &str,
) -> Result<Invocation> {
    let elevate = session.elevation.argv_prefix(matches!(site, Site::Remote));
    if let Some(direct) = direct(session, site)? {
        let mut argv = elevate;
        let env = match (&direct.env, argv.is_empty()) {
            // A local unelevated process simply gets the variables.
            (Env::Inherit(vars), true) if matches!(site, Site::Local(_)) => vars.clone(),
            _ => {
                if let Site::Local(local) = site {
                    argv.extend(direct.env.prefix(false, &|k, v| format!("{k}={v}"), &|k| {
                        local.get(k).map(|v| format!("{k}={v}"))
                    }));
                }
                Vec::new()
            }
        };
        argv.extend(substitute(&direct.argv, values)?);
        return Ok(Invocation {
            argv,
            env,
            markers: false,
        });
    }
    let mut argv = elevate;
    argv.extend([
        "/bin/sh".into(),
        "-c".into(),
        script(session, values, site, program)?,
    ]);
    Ok(Invocation {
        argv,
        env: Vec::new(),
        markers: true,
    })
}

/// The single command of a session that needs no shell, if that is what it is.
fn direct<'s>(session: &'s Session, site: &Site) -> Result<Option<&'s Command>> {
    // Remote sessions always run as a script: it reports its process group (see PGID_MARKER).
    if matches!(site, Site::Remote) {
        return Ok(None);
    }
    let [step] = session.steps.as_slice() else {
        return Ok(None);
    };
    let [cmd] = step.commands.as_slice() else {
        return Ok(None);
    };
    let plain = cmd.systemd_run.is_none()
        && cmd.on_failure.is_none()
        && cmd.undo.is_none()
        && !session.elevation.sends_password()
        && !watchdog::is_watchdog(cmd);
    Ok(plain.then_some(cmd))
}

fn substitute(words: &[Word], values: &Values) -> Result<Vec<String>> {
    words.iter().map(|w| value_of(w, values)).collect()
}

fn value_of(word: &Word, values: &Values) -> Result<String> {
    match word {
        Word::Lit(s) => Ok(s.clone()),
        Word::Var { var, suffix } => values
            .get(var)
            .map(|v| format!("{v}{suffix}"))
            .ok_or_else(|| Error::Internal(format!("${} used before it is known", var.name()))),
    }
}

/// One word as shell text: a known value quoted, or a value an earlier step of the same
/// script put in a shell variable.
fn shell_word(word: &Word, values: &Values, produced: &BTreeMap<Var, String>) -> Result<String> {
    match word {
        Word::Var { var, suffix } if !values.contains_key(var) && produced.contains_key(var) => {
            let suffix = if suffix.is_empty() {
                String::new()
            } else {
                quote(suffix)
            };
            Ok(format!("\"${}\"{suffix}", produced[var]))
        }
        other => value_of(other, values).map(|v| quote(&v)),
    }
}

/// A message with `$system` in it, as one shell word.
fn shell_message(msg: &str, values: &Values, produced: &BTreeMap<Var, String>) -> String {
    match (values.get(&Var::System), produced.get(&Var::System)) {
        (Some(v), _) => quote(&msg.replace("$system", v)),
        (None, Some(name)) => msg
            .split("$system")
            .map(quote)
            .collect::<Vec<_>>()
            .join(&format!("\"${name}\"")),
        (None, None) => quote(msg),
    }
}

/// The shell function that puts a profile back (`scripts/restore-profile.sh`).
const RESTORE_PROFILE_FUNCTION: &str = "rb_restore_profile";

/// The shell functions the session's commands use, each once, before they do.
fn definitions(session: &Session, program: &str) -> Vec<String> {
    let commands = || session.steps.iter().flat_map(|s| &s.commands);
    let watchdog = commands().any(watchdog::is_watchdog);
    let restores = commands().any(|c| matches!(c.undo, Some(Undo::RestoreProfile { .. })));
    let systemd_run = commands().any(|c| c.systemd_run.is_some());
    let mut defs = Vec::new();
    if watchdog || restores {
        defs.push(generations::LINK_FUNCTION.trim_end().to_string());
    }
    // The watchdog starts systemd-run itself.
    if watchdog || systemd_run {
        defs.push(systemd::DEFINITION.trim_end().to_string());
    }
    if watchdog {
        defs.push(watchdog::functions(program).trim_end().to_string());
    }
    if restores {
        defs.push(
            include_str!("scripts/restore-profile.sh")
                .trim_end()
                .to_string(),
        );
    }
    defs
}

/// The session as one POSIX shell script.
fn script(session: &Session, values: &Values, site: &Site, program: &str) -> Result<String> {
    let mut lines = Vec::new();
    // Values that steps of this script capture, kept in shell variables for later steps.
    let mut produced: BTreeMap<Var, String> = BTreeMap::new();
    // Shell that undoes what earlier commands changed, most recent first.
    let mut undo: Vec<String> = Vec::new();
    if session.elevation.sends_password() {
        // sudo has read its password, or did not want it: nothing after it may read the rest.
        lines.push("exec </dev/null".to_string());
    }
    if matches!(site, Site::Remote) {
        // Field 5 of /proc/PID/stat is the process group (the command name, field 2, is `sh`).
        lines.push(format!(
            "read -r rb_stat < /proc/$$/stat && set -- $rb_stat && printf '{PGID_MARKER}%s\\n' \"$5\""
        ));
    }
    lines.extend(definitions(session, program));
    for (n, step) in session.steps.iter().enumerate() {
        lines.push(format!("printf '{MARKER}%s\\n' {n}"));
        for cmd in &step.commands {
            let mut line = String::new();
            let mut prefix = cmd
                .env
                .prefix(true, &|k, v| format!("{k}={}", quote(v)), &|k| match site {
                    Site::Local(env) => env.get(k).map(|v| format!("{k}={}", quote(v))),
                    Site::Remote => Some(format!("${{{k}+{k}=\"${k}\"}}")),
                });
            if let Some(unit) = &cmd.systemd_run {
                // systemd-run passes on only the variables named with -E; PATH is its own.
                let passed: Vec<&str> = match &cmd.env {
                    Env::Clean(_) => cmd
                        .env
                        .names()
                        .into_iter()
                        .filter(|k| *k != "PATH")
                        .collect(),
                    Env::Inherit(_) => Vec::new(),
                };
                lines.push(format!(
                    "if [ -d /run/systemd/system ]; then set -- {}; else set --; fi",
                    join(&systemd::activation_prefix(unit, &passed))
                ));
                // The command line goes to the unit through the function (see systemd.rs).
                prefix.insert(0, systemd::FUNCTION.into());
                if matches!(cmd.env, Env::Inherit(_)) {
                    // Assignments cannot come after the function's name: env sets them.
                    prefix.insert(1, "env".into());
                }
                prefix.push("\"$@\"".into());
            }
            line.push_str(&prefix.join(" "));
            if !line.is_empty() {
                line.push(' ');
            }
            let mut words = cmd
                .argv
                .iter()
                .map(|w| shell_word(w, values, &produced))
                .collect::<Result<Vec<_>>>()?;
            if matches!(cmd.argv.first(), Some(Word::Lit(w)) if w == watchdog::PROGRAM) {
                words[0] = watchdog::FUNCTION.into();
            }
            let words = words.join(" ");
            let assigns = match (&step.capture, step.commands.len()) {
                (Some(Capture::PathLine(var)), 1) => {
                    Some(format!("rb_{}", var.name().replace('-', "_")))
                }
                _ => None,
            };
            match &assigns {
                Some(name) => line = format!("{name}=$({line}{words})"),
                None => line.push_str(&words),
            }
            if step.capture.is_none() {
                line.push_str(" >&2");
            }
            let mut handler = String::new();
            if let Some(msg) = &cmd.on_failure {
                handler.push_str(&format!(
                    "printf '%s\\n' {} >&2; ",
                    shell_message(&format!("{program}: error: {msg}"), values, &produced)
                ));
            }
            for u in undo.iter().rev() {
                handler.push_str(u);
                handler.push_str("; ");
            }
            if handler.is_empty() {
                line.push_str(" || exit");
            } else {
                line.push_str(&format!(" || {{ s=$?; {handler}exit $s; }}"));
            }
            if let Some(Undo::RestoreProfile { profile, boot }) = &cmd.undo {
                // Remember where the profile pointed before this command changes it.
                let p = quote(profile);
                lines.push(format!("rb_prev=$(readlink {p} 2>/dev/null) || rb_prev="));
                let (boot, and_boot) = match boot {
                    true => ("boot", "and so is the boot loader's default"),
                    false => ("keep-boot", "and the boot loader's default was not changed"),
                };
                undo.push(format!(
                    "{RESTORE_PROFILE_FUNCTION} {p} \"$rb_prev\" {boot} {}",
                    quote(&format!(
                        "{program}: the profile {profile} is back where it was before this run, \
                         {and_boot}"
                    ))
                ));
            }
            if let Some(Undo::KeepProfile { profile }) = &cmd.undo {
                undo.push(format!(
                    "printf '%s\\n' {} >&2",
                    quote(&format!(
                        "{program}: warning: the profile {profile} stays at the new generation, \
                         as --keep-generation-on-failure asks"
                    ))
                ));
            }
            if let Some(Undo::RollBackNow { dir }) = &cmd.undo {
                undo.push(format!(
                    "{} roll-back-now {} >&2",
                    watchdog::FUNCTION,
                    quote(dir)
                ));
            }
            lines.push(line);
            if let (Some(name), Some(Capture::PathLine(var))) = (assigns, &step.capture) {
                lines.push(format!("printf '%s\\n' \"${name}\""));
                produced.insert(*var, name);
            }
        }
    }
    Ok(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elevation::Elevation;
    use crate::host::Host;
    use crate::plan::EnvVar;
    use crate::plan::{Output, Step, StepKind};

    fn session(steps: Vec<Step>, elevation: Elevation) -> Session {
        Session {
            host: Host::Local,
            elevation,
            steps,
            fallback: None,
        }
    }

    fn step(commands: Vec<Command>) -> Step {
        Step {
            kind: StepKind::SetProfile,
            message: None,
            commands,
            capture: None,
            output: Output::Log,
            if_lost: None,
        }
    }

    fn values() -> Values {
        [(Var::System, "/nix/store/abc-sys".to_string())].into()
    }

    #[test]
    fn a_plain_local_command_runs_directly() {
        let s = session(
            vec![step(vec![Command::new(vec![
                Word::lit("nix-env"),
                Word::lit("--set"),
                Word::var(Var::System, ""),
            ])])],
            Elevation::None,
        );
        let env = BTreeMap::new();
        assert_eq!(
            render(&s, &values(), &Site::Local(&env), "rb").unwrap(),
            Invocation {
                argv: vec![
                    "nix-env".into(),
                    "--set".into(),
                    "/nix/store/abc-sys".into()
                ],
                env: vec![],
                markers: false
            }
        );
    }

    #[test]
    fn local_sudo_with_a_clean_environment_takes_rbs_values() {
        let mut cmd = Command::lit(&["stc", "switch"]);
        cmd.env = Env::Clean(vec![
            EnvVar::Keep("PATH".into()),
            EnvVar::Keep("LOCALE_ARCHIVE".into()),
            EnvVar::Set("NIXOS_INSTALL_BOOTLOADER".into(), "1".into()),
        ]);
        let s = session(
            vec![step(vec![cmd])],
            Elevation::Sudo {
                ask_password: false,
                options: vec!["-u".into(), "root".into()],
            },
        );
        let env: BTreeMap<String, String> = [("PATH".to_string(), "/bin".to_string())].into();
        assert_eq!(
            render(&s, &values(), &Site::Local(&env), "rb")
                .unwrap()
                .argv,
            [
                "sudo",
                "-u",
                "root",
                "env",
                "-i",
                "PATH=/bin",
                "NIXOS_INSTALL_BOOTLOADER=1",
                "stc",
                "switch"
            ]
        );
    }

    #[test]
    fn remote_sessions_become_one_script() {
        let mut act = Command::new(vec![
            Word::var(Var::System, "/bin/switch-to-configuration"),
            Word::lit("switch"),
        ]);
        act.env = Env::Clean(vec![
            EnvVar::Keep("PATH".into()),
            EnvVar::Set("NIXOS_INSTALL_BOOTLOADER".into(), "0".into()),
        ]);
        act.systemd_run = Some("u1".into());
        let check = Command::new(vec![
            Word::lit("test"),
            Word::lit("-f"),
            Word::var(Var::System, "/nixos-version"),
        ])
        .on_failure("missing $system");
        let s = session(
            vec![step(vec![check]), step(vec![act])],
            Elevation::Sudo {
                ask_password: true,
                options: vec![],
            },
        );
        let inv = render(&s, &values(), &Site::Remote, "rb").unwrap();
        assert!(inv.markers);
        assert_eq!(inv.argv[..4], ["sudo", "--prompt=", "--stdin", "/bin/sh"]);
        // `{}` stands for the definition of rb_systemd_run (systemd.rs), once.
        assert_eq!(
            inv.argv[5].replacen(systemd::DEFINITION.trim_end(), "{}", 1),
            "exec </dev/null\n\
             read -r rb_stat < /proc/$$/stat && set -- $rb_stat && printf '@rb-pgid %s\\n' \"$5\"\n\
             {}\n\
             printf '@rb-step %s\\n' 0\n\
             test -f /nix/store/abc-sys/nixos-version >&2 || { s=$?; printf '%s\\n' 'rb: error: missing /nix/store/abc-sys' >&2; exit $s; }\n\
             printf '@rb-step %s\\n' 1\n\
             if [ -d /run/systemd/system ]; then set -- systemd-run -E NIXOS_INSTALL_BOOTLOADER --collect --no-ask-password --pipe --quiet --service-type=exec --unit=u1 --; else set --; fi\n\
             rb_systemd_run env -i ${PATH+PATH=\"$PATH\"} NIXOS_INSTALL_BOOTLOADER=0 \"$@\" /nix/store/abc-sys/bin/switch-to-configuration switch >&2 || exit"
        );
    }

    #[test]
    fn a_watchdog_session_carries_its_functions_and_rolls_back_on_failure() {
        let mut arm = Command::lit(&["rb-watchdog", "arm", "/run/rb/x", "3", "switch", "/p", "r"]);
        arm.undo = Some(Undo::RollBackNow {
            dir: "/run/rb/x".into(),
        });
        let mut set = Command::lit(&["nix-env", "-p", "/p", "--set", "/s"]);
        set.undo = Some(Undo::RestoreProfile {
            profile: "/p".into(),
            boot: true,
        });
        let s = session(
            vec![
                step(vec![arm]),
                step(vec![set]),
                step(vec![Command::lit(&["stc", "switch"])]),
            ],
            Elevation::None,
        );
        let inv = render(&s, &values(), &Site::Remote, "rb").unwrap();
        let script = &inv.argv[2];
        // After the process-group marker every remote script starts with.
        let (first, rest) = script.split_once('\n').unwrap();
        assert!(first.contains("@rb-pgid"), "{script}");
        // Then the functions the commands use: generation numbers, systemd-run, the
        // watchdog's and the profile's undo, each once.
        let defs = definitions(&s, "rb");
        assert_eq!(defs.len(), 4);
        assert_eq!(defs[2], watchdog::functions("rb").trim_end());
        assert!(rest.starts_with(&defs.join("\n")), "{script}");
        // (The watchdog's own script, quoted inside its functions, has its copy of the first.)
        for (f, n) in [
            ("rb_generation_of() {", 2),
            ("rb_systemd_run() {", 1),
            ("rb_restore_profile() {", 1),
        ] {
            assert_eq!(script.matches(f).count(), n, "{f}");
        }
        let tail: Vec<&str> = script.lines().rev().take(7).collect();
        assert_eq!(
            tail[0],
            "stc switch >&2 || { s=$?; rb_restore_profile /p \"$rb_prev\" boot 'rb: the profile /p \
             is back where it was before this run, and so is the boot loader'\\''s default'; \
             rb_watchdog roll-back-now /run/rb/x >&2; exit $s; }"
        );
        assert_eq!(
            tail[2],
            "nix-env -p /p --set /s >&2 || { s=$?; rb_watchdog roll-back-now /run/rb/x >&2; exit $s; }"
        );
        assert_eq!(
            tail[5],
            "rb_watchdog arm /run/rb/x 3 switch /p r >&2 || exit"
        );

        // The confirmation alone still needs the functions: never a direct command.
        let mut confirm = step(vec![Command::lit(&["rb-watchdog", "confirm", "/run/rb/x"])]);
        confirm.capture = Some(crate::plan::Capture::Verdict);
        let inv = render(
            &session(vec![confirm], Elevation::None),
            &values(),
            &Site::Remote,
            "rb",
        )
        .unwrap();
        assert!(inv.markers);
        assert!(inv.argv[2].ends_with("\nrb_watchdog confirm /run/rb/x || exit"));
    }

    #[test]
    fn remote_sudo_without_password_never_prompts() {
        let s = session(
            vec![step(vec![Command::lit(&["true"])])],
            Elevation::Sudo {
                ask_password: false,
                options: vec![],
            },
        );
        let argv = render(&s, &values(), &Site::Remote, "rb").unwrap().argv;
        assert_eq!(argv[..3], ["sudo", "--non-interactive", "/bin/sh"]);
    }

    #[test]
    fn unknown_values_are_an_error_not_an_empty_word() {
        let s = session(
            vec![step(vec![Command::new(vec![Word::var(
                Var::Generation,
                "",
            )])])],
            Elevation::None,
        );
        assert!(render(&s, &values(), &Site::Remote, "rb").is_err());
    }
}
