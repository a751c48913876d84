//! What happens on the target once the system is there: the sudo check, rollback's choice of
//! generation, and the one session that checks, sets the profile and activates.

use super::*;

/// With `--ask-sudo-password`: try the password on the target before anything is built.
pub(super) fn check_elevation(req: &Request) -> Session {
    Session::one(
        req.target_host.clone(),
        req.elevation.clone(),
        Step {
            output: Output::ElevationCheck,
            ..Step::new(StepKind::CheckElevation, vec![Command::lit(&["true"])])
        },
    )
}

/// `--rollback`: find the generation to go back to on the target.
pub(super) fn find_generation(req: &Request) -> Session {
    let profile = req.profile.path();
    // `--generation N`; else the generation that a switch or boot would have left the
    // profile at.
    let pick = match &req.source {
        Source::Rollback {
            generation: Some(n),
        } => Pick::Number(*n),
        _ if req.action.sets_profile() => Pick::OlderThanCurrent,
        _ => Pick::NewestOther,
    };
    let list = Command::lit(&["nix-env", "-p", &profile, "--list-generations"]);
    Session::one(
        req.target_host.clone(),
        Elevation::None,
        Step {
            capture: Some(Capture::Generation { profile, pick }),
            ..Step::new(StepKind::FindGeneration, vec![list])
        },
    )
}

pub(super) const MISSING_FILES: &str = "your NixOS configuration path seems to be missing essential files. \
To avoid corrupting your current NixOS installation, the activation will abort. This could be \
caused by Nix bug: https://github.com/NixOS/nix/issues/13367. This is the evaluated NixOS \
configuration path: $system. Change the directory to somewhere else (e.g., `cd $HOME`) before \
trying again. If you think this is a mistake, you can set the environment variable \
NIXOS_REBUILD_I_UNDERSTAND_THE_CONSEQUENCES_PLEASE_BREAK_MY_SYSTEM to 1 and re-run the command \
to continue. Please open an issue if this is the case.";

/// Everything that happens on the target after the system is there, in one session:
/// checks first (nothing changes when they fail), then the profile, then activation.
pub(super) fn activation(req: &Request, run: &RunEnv) -> Session {
    let profile = req.profile.path();
    let sets_profile = req.action.sets_profile();
    let rollback = matches!(req.source, Source::Rollback { .. });
    let mut steps = Vec::new();

    // Under magic rollback, `switch` activates with `test` and its confirmation makes it the
    // boot default (`action.rs`, `rollback/watchdog.rs`).
    let stc_action = match req.confirm_timeout {
        Some(_) => req.action.stc_action_until_confirmed(),
        None => req.action.stc_action(),
    }
    .unwrap_or("dry-activate");
    let stc_dir = match &req.specialisation {
        Some(s) => {
            steps.push(check_specialisation(s));
            format!("/specialisation/{s}")
        }
        None => String::new(),
    };
    let checks_closure = req.check_closure
        && ((sets_profile && !rollback) || matches!(req.source, Source::StorePath { .. }));
    if checks_closure {
        steps.push(Step::new(
            StepKind::CheckClosure,
            vec![
                Command::new(vec![
                    Word::lit("test"),
                    Word::lit("-f"),
                    Word::var(Var::System, "/nixos-version"),
                ])
                .on_failure(MISSING_FILES),
            ],
        ));
    }
    // What will change, shown while the running system is still the old one (with `--ask`,
    // by the session before, `preview`).
    if req.diff && !req.ask {
        steps.push(diff_step(run));
    }
    // Magic rollback: armed once the checks passed, before anything changes.
    if let Some(timeout) = req.confirm_timeout {
        steps.push(crate::rollback::watchdog::arm_step(
            req, run.run_id, timeout,
        ));
    }
    if sets_profile {
        if let Some(dir) = req.profile.dir_to_create() {
            steps.push(Step::new(
                StepKind::CreateProfileDir,
                vec![Command::lit(&["mkdir", "-p", "-m", "0755", &dir])],
            ));
        }
        // Back to the generation found, or on to the system built.
        let (verb, to) = if rollback {
            ("--switch-generation", Var::Generation)
        } else {
            ("--set", Var::System)
        };
        let mut set = Command::new(vec![
            Word::lit("nix-env"),
            Word::lit("-p"),
            Word::lit(&profile),
            Word::lit(verb),
            Word::var(to, ""),
        ]);
        set.undo = Some(match req.keep_generation_on_failure {
            false => Undo::RestoreProfile {
                profile: profile.clone(),
                boot: stc_action != "test",
            },
            true => Undo::KeepProfile {
                profile: profile.clone(),
            },
        });
        steps.push(Step {
            capture: Some(Capture::ProfileLink),
            if_lost: Some(
                "; the profile there is either where it was or at the new generation".into(),
            ),
            // Which generation the profile is at now, for the report.
            ..Step::new(
                StepKind::SetProfile,
                vec![set, Command::lit(&["readlink", &profile])],
            )
        });
    }

    let env = stc_env(req);
    let activate = Command {
        argv: vec![
            Word::var(
                Var::System,
                format!("{stc_dir}/bin/switch-to-configuration"),
            ),
            Word::lit(stc_action),
        ],
        env,
        systemd_run: req
            .systemd_run
            .then(|| crate::rollback::watchdog::activation_unit(run.run_id)),
        on_failure: None,
        undo: None,
    };
    steps.push(Step {
        if_lost: Some(if sets_profile {
            "; the profile there is already the new generation, whose activation may not have \
             finished"
                .into()
        } else {
            "; the activation there may not have finished".into()
        }),
        ..Step::new(StepKind::Activate, vec![activate])
    });

    Session {
        host: req.target_host.clone(),
        elevation: req.elevation.clone(),
        steps,
        fallback: None,
    }
}

/// Exactly the environment nixos-rebuild-ng gives switch-to-configuration.
fn stc_env(req: &Request) -> Env {
    Env::Clean(vec![
        EnvVar::Keep("PATH".into()),
        EnvVar::Keep("LOCALE_ARCHIVE".into()),
        EnvVar::Keep("NIXOS_NO_CHECK".into()),
        EnvVar::Set(
            "NIXOS_INSTALL_BOOTLOADER".into(),
            if req.install_bootloader { "1" } else { "0" }.into(),
        ),
    ])
}

/// `--ask`'s look at the units: `switch-to-configuration dry-activate`, never failing.
pub(super) const DRY_ACTIVATE_SCRIPT: &str = include_str!("../scripts/dry-activate.sh");

/// `--ask`: what changes on the target, shown before rb asks whether to go on
/// (`progress::ask`), in a session of its own that changes nothing: the package diff (as
/// `--diff`'s), and for an action that activates now (switch, test) the units
/// switch-to-configuration would stop, restart and start. Elevated as activation is, since
/// dry-activate reads what only root may. Its last step asks (`Output::Ask`), unless `--yes`.
pub(super) fn preview(req: &Request, run: &RunEnv) -> Session {
    let mut steps = vec![diff_step(run)];
    if matches!(req.action.stc_action(), Some("switch" | "test")) {
        let stc_dir = match &req.specialisation {
            Some(s) => format!("/specialisation/{s}"),
            None => String::new(),
        };
        let mut dry = Command::new(vec![
            Word::lit("sh"),
            Word::lit("-c"),
            Word::lit(DRY_ACTIVATE_SCRIPT),
            Word::lit(run.program),
            Word::var(
                Var::System,
                format!("{stc_dir}/bin/switch-to-configuration"),
            ),
        ]);
        dry.env = stc_env(req);
        steps.push(Step::new(StepKind::DryActivate, vec![dry]));
    }
    if let (false, Some(last)) = (req.ask_yes, steps.last_mut()) {
        last.output = Output::Ask;
    }
    Session {
        host: req.target_host.clone(),
        elevation: req.elevation.clone(),
        steps,
        fallback: None,
    }
}

/// `--ask` before a copy: the package diff made here, where the new closure is, with the
/// target's half over the run's master connection (`scripts/package-diff-here.sh`).
pub(super) const DIFF_HERE_SCRIPT: &str = include_str!("../scripts/package-diff-here.sh");

/// `--ask` when the closure still has to go to a remote target: rb asks before copying it,
/// showing the package diff (the units dry-activate would name need the closure there, so
/// they are not shown). With `--yes` nothing is asked: `preview`, after the copy, shows
/// the units too.
pub(super) fn preview_before_copy(to: &crate::host::SshHost, run: &RunEnv) -> Session {
    let remote = crate::shell::join(&["sh", "-c", DIFF_SCRIPT, run.program]);
    let mut diff = Command::new(vec![
        Word::lit("sh"),
        Word::lit("-c"),
        Word::lit(DIFF_HERE_SCRIPT),
        Word::lit(run.program),
        Word::var(Var::System, ""),
        Word::lit(&to.dest),
        Word::Lit(remote),
    ]);
    diff.env = Env::Inherit(vec![("NIX_SSHOPTS".into(), run.nix_sshopts.into())]);
    Session::one(
        Host::Local,
        Elevation::None,
        Step {
            capture: Some(Capture::PackageDiff),
            output: Output::Ask,
            ..Step::new(StepKind::Diff, vec![diff])
        },
    )
}

/// `--diff`, run where the new system will run, where both closures are: against that host's
/// `/run/current-system` (nixos-rebuild-ng compares the local one), never failing the run.
/// Its output is the closures' paths and sizes; rb makes the package diff of them
/// (`closure_diff.rs`).
pub(super) const DIFF_SCRIPT: &str = include_str!("../scripts/package-diff.sh");

pub(super) fn diff_step(run: &RunEnv) -> Step {
    let diff = Command::new(vec![
        Word::lit("sh"),
        Word::lit("-c"),
        Word::lit(DIFF_SCRIPT),
        Word::lit(run.program),
        Word::var(Var::System, ""),
    ]);
    Step {
        capture: Some(Capture::PackageDiff),
        ..Step::new(StepKind::Diff, vec![diff])
    }
}
