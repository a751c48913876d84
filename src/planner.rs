//! From a [`Request`] to a [`Plan`]: which commands run on which host, in which order.
//!
//! The planner decides everything; the executor only follows. A new action or pipeline is a
//! new function here, not a branch in the executor.

use crate::cli::Action;
use crate::error::{Error, Result};
use crate::generations::LIST_SCRIPT;
use crate::host::Host;
use crate::nix::{FEATURES, NixCaps, NixCommand};
use crate::plan::{
    Capture, Command, Env, EnvVar, Finish, Pick, Plan, Session, Step, StepKind, Undo, Var, Word,
};
use crate::request::{Elevation, Request, Source, Upgrade};

/// What the planner needs from this run besides the request.
pub struct RunEnv<'a> {
    /// Makes names unique per run (the systemd unit).
    pub run_id: &'a str,
    /// `NIX_SSHOPTS` for copies: the user's options and the run's shared connections.
    pub nix_sshopts: &'a str,
    /// rb's working directory: `repl` hands Nix absolute paths (`builtins.getFlake` refuses
    /// relative ones, and a temporary file would change what a relative path means).
    pub cwd: &'a str,
    /// `rb` or `nixos-rebuild`: how scripts on hosts sign their notes and warnings.
    pub program: &'a str,
}

/// Builds the plan.
pub fn plan(req: &Request, caps: &NixCaps, run: &RunEnv) -> Result<Plan> {
    refuse_unavailable(req)?;
    let mut sessions = Vec::new();
    let mut inputs = Vec::new();
    let mut connect = Vec::new();
    for host in [&req.build_host, &req.target_host] {
        if let Host::Ssh(h) = host
            && !connect.contains(h)
        {
            connect.push(h.clone());
        }
    }
    // Channels are updated before anything reads them, whatever the action (as ng does).
    if req.upgrade != Upgrade::None {
        sessions.push(upgrade_channels(req, run));
    }

    let finish = match req.action {
        Action::Edit => {
            sessions.extend(edit(req));
            Finish::Nothing
        }
        Action::Repl => {
            sessions.push(repl(req, caps, run));
            Finish::Nothing
        }
        Action::ListGenerations => {
            sessions.push(list_generations(req));
            Finish::Generations { json: req.json }
        }
        _ => deploy(req, run, &mut sessions, &mut inputs)?,
    };

    Ok(Plan {
        action: req.action,
        connect,
        inputs,
        sessions: merge_sessions(sessions),
        confirm: req
            .confirm_timeout
            .map(|t| crate::watchdog::confirm(req, run.run_id, t)),
        finish,
    })
}

/// The actions that build (or take) a system and may copy and activate it.
fn deploy(
    req: &Request,
    run: &RunEnv,
    sessions: &mut Vec<Session>,
    inputs: &mut Vec<(Var, String)>,
) -> Result<Finish> {
    let activates = matches!(
        req.action,
        Action::Switch | Action::Boot | Action::Test | Action::DryActivate
    );
    // A wrong password is found out before anything is built.
    if let Elevation::Sudo {
        ask_password: true, ..
    } = &req.elevation
        && (activates || req.source == Source::Rollback)
    {
        sessions.push(check_elevation(req));
    }

    let copies = req.action != Action::DryBuild;
    match &req.source {
        Source::StorePath { path } => {
            inputs.push((Var::System, path.clone()));
            if let Host::Ssh(to) = &req.target_host {
                sessions.push(local(StepKind::Copy, copy_to(req, to, run)));
            }
        }
        Source::Rollback => sessions.push(find_generation(req)),
        Source::Flake(_) | Source::Classic | Source::File { .. } => match &req.build_host {
            Host::Local => {
                if req.action == Action::BuildImage {
                    sessions.push(image_variants(req));
                    if req.image_variant.is_none() {
                        // The evaluation fails, listing the variants to choose from.
                        return Ok(Finish::Nothing);
                    }
                }
                sessions.push(build(req)?);
                if let (Host::Ssh(to), true) = (&req.target_host, copies) {
                    sessions.extend(specialisation_before_copy(req, &req.build_host));
                    sessions.push(local(StepKind::Copy, copy_to(req, to, run)));
                }
            }
            Host::Ssh(builder) => {
                sessions.extend(build_remotely(req, builder, run));
                match &req.target_host {
                    _ if !copies => {}
                    Host::Local => {
                        sessions.extend(specialisation_before_copy(req, &req.build_host));
                        sessions.push(local(StepKind::Copy, copy_from(req, builder, run)))
                    }
                    Host::Ssh(to) if to == builder => {}
                    Host::Ssh(to) => {
                        sessions.extend(specialisation_before_copy(req, &req.build_host));
                        sessions.push(copy_between(req, builder, to, run))
                    }
                }
            }
        },
    }

    Ok(match req.action {
        _ if activates => {
            sessions.push(activation(req, run));
            Finish::NewConfiguration
        }
        Action::Build => {
            if req.diff {
                sessions.push(Session {
                    host: req.target_host.clone(),
                    elevation: Elevation::None,
                    steps: vec![diff_step(run)],
                    fallback: None,
                });
            }
            Finish::NewConfiguration
        }
        Action::BuildVm | Action::BuildVmWithBootloader => Finish::VirtualMachine,
        Action::BuildImage => Finish::Image,
        _ => Finish::Nothing,
    })
}

/// Consecutive sessions on the same remote host with the same elevation become one: one
/// round trip instead of two (e.g. realise and activate when the build host is the target).
/// A value the first captures reaches the second through a shell variable of the script,
/// which works for path captures only.
fn merge_sessions(sessions: Vec<Session>) -> Vec<Session> {
    let mut out: Vec<Session> = Vec::new();
    for session in sessions {
        if let Some(prev) = out.last_mut()
            && !prev.host.is_local()
            && prev.host == session.host
            && prev.elevation == session.elevation
            && prev.fallback.is_none()
            && session.fallback.is_none()
            && prev.steps.iter().all(|s| {
                matches!(s.capture, None | Some(Capture::PathLine(_))) && s.commands.len() == 1
            })
        {
            prev.steps.extend(session.steps);
            continue;
        }
        out.push(session);
    }
    out
}

/// Options and actions whose implementation has not landed yet: validated by `resolve`,
/// refused here with a clear message rather than half done.
fn refuse_unavailable(req: &Request) -> Result<()> {
    // polkit-stdin-agent would be needed on the target to hand run0 a password.
    let missing = matches!(req.elevation, Elevation::Run0 { ask_password: true })
        .then_some("--ask-sudo-password with run0");
    match missing {
        Some(what) => Err(Error::NotYetAvailable(what)),
        None => Ok(()),
    }
}

/// A session of one unelevated step on this machine.
fn local(kind: StepKind, command: Command) -> Session {
    Session {
        host: Host::Local,
        elevation: Elevation::None,
        steps: vec![Step {
            kind,
            message: None,
            commands: vec![command],
            capture: None,
        }],
        fallback: None,
    }
}

/// The attribute of the configuration an action builds.
fn attribute(req: &Request) -> String {
    match (req.action, &req.image_variant) {
        (Action::BuildVm, _) => "config.system.build.vm".into(),
        (Action::BuildVmWithBootloader, _) => "config.system.build.vmWithBootLoader".into(),
        (Action::BuildImage, Some(variant)) => format!("config.system.build.images.{variant}"),
        _ => "config.system.build.toplevel".into(),
    }
}

/// Actions that leave `./result` in the current directory (spec §5.6).
fn leaves_result_link(action: Action) -> bool {
    matches!(
        action,
        Action::Build | Action::BuildVm | Action::BuildVmWithBootloader | Action::BuildImage
    )
}

const BUILD_MESSAGE: &str = "building the system configuration...";

/// `<nixpkgs/nixos>` or the `-f` file, and the attribute path to build in it.
fn classic_target(req: &Request, attr: &str) -> (String, String) {
    match &req.source {
        Source::File {
            file,
            attr: Some(a),
        } => (file.clone(), format!("{a}.{attr}")),
        Source::File { file, attr: None } => (file.clone(), attr.to_string()),
        _ => ("<nixpkgs/nixos>".to_string(), attr.to_string()),
    }
}

fn nix_new_style(subcommand: &str) -> Vec<String> {
    let mut argv = vec!["nix".to_string()];
    argv.extend(FEATURES.map(String::from));
    argv.push(subcommand.into());
    argv
}

/// Evaluate and build the configuration here, in one Nix process.
fn build(req: &Request) -> Result<Session> {
    let attr = &attribute(req);
    let dry = req.action == Action::DryBuild;
    let link = leaves_result_link(req.action);
    let (argv, capture) = match &req.source {
        Source::Flake(flake) => {
            // `--json` works on every Nix from 2.8 on, unlike `--print-out-paths`.
            let mut argv = nix_new_style("build");
            argv.extend([flake.installable(attr), "--json".into()]);
            if !link || req.nix.no_build_output {
                argv.push("--no-link".into());
            }
            if dry {
                argv.push("--dry-run".into());
            }
            argv.extend(req.nix.for_command(NixCommand::FlakeBuild));
            (argv, Capture::BuildJson)
        }
        _ => {
            let (file, attr) = classic_target(req, attr);
            let mut argv = vec!["nix-build".to_string(), file, "--attr".into(), attr];
            if !link {
                argv.push("--no-out-link".into());
            }
            if dry {
                argv.push("--dry-run".into());
            }
            argv.extend(req.nix.for_command(NixCommand::LegacyBuild));
            (argv, Capture::PathLine(Var::System))
        }
    };
    Ok(Session {
        host: Host::Local,
        elevation: Elevation::None,
        steps: vec![Step {
            kind: StepKind::Build,
            message: Some(BUILD_MESSAGE.into()),
            commands: vec![Command::lit(&argv)],
            capture: (!dry).then_some(capture),
        }],
        fallback: None,
    })
}

/// `--build-host`: evaluate here (the only evaluation), send the derivation to the builder,
/// realise it there.
fn build_remotely(req: &Request, builder: &crate::host::SshHost, run: &RunEnv) -> Vec<Session> {
    let attr = &attribute(req);
    let evaluate = match &req.source {
        Source::Flake(flake) => {
            let mut argv = nix_new_style("eval");
            argv.extend([
                "--raw".into(),
                flake.installable(&format!("{attr}.drvPath")),
            ]);
            argv.extend(req.nix.for_command(NixCommand::FlakeEval));
            argv
        }
        _ => {
            let (file, attr) = classic_target(req, attr);
            let mut argv = vec!["nix-instantiate".to_string(), file, "--attr".into(), attr];
            argv.extend(req.nix.for_command(NixCommand::LegacyInstantiate));
            argv
        }
    };
    let mut copy = copy_command(req, "--to", builder, Var::Drv);
    copy.env = Env::Inherit(vec![("NIX_SSHOPTS".into(), run.nix_sshopts.into())]);
    let mut realise = vec![
        Word::lit("nix-store"),
        Word::lit("--realise"),
        Word::var(Var::Drv, ""),
    ];
    if req.action == Action::DryBuild {
        realise.push(Word::lit("--dry-run"));
    }
    realise.extend(
        req.nix
            .for_command(NixCommand::Realise)
            .into_iter()
            .map(Word::Lit),
    );
    vec![
        Session {
            host: Host::Local,
            elevation: Elevation::None,
            steps: vec![Step {
                kind: StepKind::Evaluate,
                message: Some(BUILD_MESSAGE.into()),
                commands: vec![Command::lit(&evaluate)],
                capture: Some(Capture::PathLine(Var::Drv)),
            }],
            fallback: None,
        },
        local(StepKind::Copy, copy),
        Session {
            host: Host::Ssh(builder.clone()),
            elevation: Elevation::None,
            steps: vec![Step {
                kind: StepKind::Build,
                message: Some(format!("building on {}...", builder.dest)),
                commands: vec![Command::new(realise)],
                capture: (req.action != Action::DryBuild).then_some(Capture::PathLine(Var::System)),
            }],
            fallback: None,
        },
    ]
}

/// `nix-copy-closure` (or `nix copy` for `ssh-ng://`) of a value to or from a host.
fn copy_command(req: &Request, direction: &str, host: &crate::host::SshHost, what: Var) -> Command {
    let mut argv: Vec<Word> = if host.scheme == "ssh" {
        let mut a = vec![Word::lit("nix-copy-closure")];
        a.extend(
            req.nix
                .for_command(NixCommand::CopyClosure)
                .into_iter()
                .map(Word::Lit),
        );
        a.extend([Word::lit(direction), Word::lit(&host.dest)]);
        a
    } else {
        let mut a: Vec<Word> = nix_new_style("copy").into_iter().map(Word::Lit).collect();
        a.extend(
            req.nix
                .for_command(NixCommand::Copy)
                .into_iter()
                .map(Word::Lit),
        );
        // Like nix-copy-closure: a closure we built ourselves needs no signature; the
        // destination honours this only for trusted users.
        a.extend([
            Word::lit("--no-check-sigs"),
            Word::lit(direction),
            Word::lit(host.store_uri()),
        ]);
        a
    };
    argv.push(Word::var(what, ""));
    Command::new(argv)
}

fn copy_to(req: &Request, to: &crate::host::SshHost, run: &RunEnv) -> Command {
    let mut cmd = copy_command(req, "--to", to, Var::System);
    cmd.env = Env::Inherit(vec![("NIX_SSHOPTS".into(), run.nix_sshopts.into())]);
    cmd
}

fn copy_from(req: &Request, from: &crate::host::SshHost, run: &RunEnv) -> Command {
    let mut cmd = copy_command(req, "--from", from, Var::System);
    cmd.env = Env::Inherit(vec![("NIX_SSHOPTS".into(), run.nix_sshopts.into())]);
    cmd
}

/// From the builder straight to the target, over the builder's own SSH access; when the
/// builder cannot reach the target, relay through this machine.
fn copy_between(
    req: &Request,
    builder: &crate::host::SshHost,
    to: &crate::host::SshHost,
    run: &RunEnv,
) -> Session {
    let mut relay = nix_new_style("copy");
    relay.extend(req.nix.for_command(NixCommand::Copy));
    relay.extend([
        "--no-check-sigs".into(),
        "--from".into(),
        builder.store_uri(),
        "--to".into(),
        to.store_uri(),
    ]);
    let mut relay: Vec<Word> = relay.into_iter().map(Word::Lit).collect();
    relay.push(Word::var(Var::System, ""));
    let mut relay = Command::new(relay);
    relay.env = Env::Inherit(vec![("NIX_SSHOPTS".into(), run.nix_sshopts.into())]);
    let mut fallback = local(StepKind::Copy, relay);
    fallback.steps[0].message = Some(format!(
        "{} could not copy to {} itself; relaying the closure through this machine",
        builder.dest, to.dest
    ));
    Session {
        host: Host::Ssh(builder.clone()),
        elevation: Elevation::None,
        steps: vec![Step {
            kind: StepKind::Copy,
            message: None,
            commands: vec![copy_command(req, "--to", to, Var::System)],
            capture: None,
        }],
        fallback: Some(Box::new(fallback)),
    }
}

/// With `--ask-sudo-password`: try the password on the target before anything is built.
fn check_elevation(req: &Request) -> Session {
    Session {
        host: req.target_host.clone(),
        elevation: req.elevation.clone(),
        steps: vec![Step {
            kind: StepKind::CheckElevation,
            message: None,
            commands: vec![Command::lit(&["true"])],
            capture: None,
        }],
        fallback: None,
    }
}

/// `--rollback`: find the generation to go back to on the target.
fn find_generation(req: &Request) -> Session {
    let profile = req.profile.path();
    let pick = match req.action {
        Action::Switch | Action::Boot => Pick::OlderThanCurrent,
        _ => Pick::NewestOther,
    };
    Session {
        host: req.target_host.clone(),
        elevation: Elevation::None,
        steps: vec![Step {
            kind: StepKind::FindGeneration,
            message: None,
            commands: vec![Command::lit(&[
                "nix-env",
                "-p",
                &profile,
                "--list-generations",
            ])],
            capture: Some(Capture::Generation { profile, pick }),
        }],
        fallback: None,
    }
}

/// `--specialisation S`: the system has `specialisation/S`, or the run stops here.
fn check_specialisation(s: &str) -> Step {
    Step {
        kind: StepKind::CheckSpecialisation,
        message: None,
        commands: vec![
            Command::new(vec![
                Word::lit("test"),
                Word::lit("-x"),
                Word::var(
                    Var::System,
                    format!("/specialisation/{s}/bin/switch-to-configuration"),
                ),
            ])
            .on_failure(format!("specialisation not found: {s}")),
        ],
        capture: None,
    }
}

/// A missing specialisation is found where the system was built, before it is copied to
/// the target (the target checks again before its profile changes).
fn specialisation_before_copy(req: &Request, built_on: &Host) -> Option<Session> {
    req.specialisation.as_ref().map(|s| Session {
        host: built_on.clone(),
        elevation: Elevation::None,
        steps: vec![check_specialisation(s)],
        fallback: None,
    })
}

const MISSING_FILES: &str = "your NixOS configuration path seems to be missing essential files. \
To avoid corrupting your current NixOS installation, the activation will abort. This could be \
caused by Nix bug: https://github.com/NixOS/nix/issues/13367. This is the evaluated NixOS \
configuration path: $system. Change the directory to somewhere else (e.g., `cd $HOME`) before \
trying again. If you think this is a mistake, you can set the environment variable \
NIXOS_REBUILD_I_UNDERSTAND_THE_CONSEQUENCES_PLEASE_BREAK_MY_SYSTEM to 1 and re-run the command \
to continue. Please open an issue if this is the case.";

/// Everything that happens on the target after the system is there, in one session:
/// checks first (nothing changes when they fail), then the profile, then activation.
fn activation(req: &Request, run: &RunEnv) -> Session {
    let profile = req.profile.path();
    let sets_profile = matches!(req.action, Action::Switch | Action::Boot);
    let rollback = req.source == Source::Rollback;
    let mut steps = Vec::new();
    let step = |kind, commands| Step {
        kind,
        message: None,
        commands,
        capture: None,
    };

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
        steps.push(step(
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
    // What will change, shown while the running system is still the old one.
    if req.diff {
        steps.push(diff_step(run));
    }
    // Magic rollback: armed once the checks passed, before anything changes.
    if let Some(timeout) = req.confirm_timeout {
        steps.push(crate::watchdog::arm_step(req, run.run_id, timeout));
    }
    if sets_profile {
        if let Some(dir) = req.profile.dir_to_create() {
            steps.push(step(
                StepKind::CreateProfileDir,
                vec![Command::lit(&["mkdir", "-p", "-m", "0755", &dir])],
            ));
        }
        let set = if rollback {
            vec![
                Word::lit("nix-env"),
                Word::lit("-p"),
                Word::lit(&profile),
                Word::lit("--switch-generation"),
                Word::var(Var::Generation, ""),
            ]
        } else {
            vec![
                Word::lit("nix-env"),
                Word::lit("-p"),
                Word::lit(&profile),
                Word::lit("--set"),
                Word::var(Var::System, ""),
            ]
        };
        let mut set = Command::new(set);
        set.undo = Some(Undo::RestoreProfile {
            profile: profile.clone(),
        });
        steps.push(Step {
            kind: StepKind::SetProfile,
            message: None,
            // Which generation the profile is at now, for the report.
            commands: vec![set, Command::lit(&["readlink", &profile])],
            capture: Some(Capture::ProfileLink),
        });
    }

    let stc_action = match req.action {
        Action::Switch => "switch",
        Action::Boot => "boot",
        Action::Test => "test",
        _ => "dry-activate",
    };
    // Exactly the environment nixos-rebuild-ng gives switch-to-configuration.
    let env = Env::Clean(vec![
        EnvVar::Keep("PATH".into()),
        EnvVar::Keep("LOCALE_ARCHIVE".into()),
        EnvVar::Keep("NIXOS_NO_CHECK".into()),
        EnvVar::Set(
            "NIXOS_INSTALL_BOOTLOADER".into(),
            if req.install_bootloader { "1" } else { "0" }.into(),
        ),
    ]);
    steps.push(Step {
        kind: StepKind::Activate,
        message: None,
        commands: vec![Command {
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
                .then(|| format!("nixos-rebuild-switch-to-configuration-{}", run.run_id)),
            on_failure: None,
            undo: None,
        }],
        capture: None,
    });

    Session {
        host: req.target_host.clone(),
        elevation: req.elevation.clone(),
        steps,
        fallback: None,
    }
}

/// `--diff` (spec §13.6), run where the new system will run: against that host's
/// `/run/current-system` (nixos-rebuild-ng compares the local one), never failing the run.
const DIFF_SCRIPT: &str = r#"new=$(readlink -f "$1") || new=$1
if [ ! -e /run/current-system ]; then
  echo "$0: missing '/run/current-system' on $(uname -n), skipping the configuration diff"
  exit 0
fi
current=$(readlink -f /run/current-system)
printf '<<< %s\n>>> %s\n' "$current" "$new"
if [ "$current" = "$new" ]; then
  echo "No changes."
  exit 0
fi
nix --extra-experimental-features 'nix-command flakes' store diff-closures "$current" "$new" ||
  echo "$0: warning: could not compare the closures of the current and the new configuration"
exit 0"#;

fn diff_step(run: &RunEnv) -> Step {
    Step {
        kind: StepKind::Diff,
        message: None,
        commands: vec![Command::new(vec![
            Word::lit("sh"),
            Word::lit("-c"),
            Word::lit(DIFF_SCRIPT),
            Word::lit(run.program),
            Word::var(Var::System, ""),
        ])],
        capture: None,
    }
}

const UPGRADE_NEEDS_ROOT: &str = "if you pass the '--upgrade' or '--upgrade-all' flag, you must \
also pass '--sudo', '--run0', or run the command as root (e.g., with sudo)";

/// `--upgrade` (`$1` = 0) / `--upgrade-all` (`$1` = 1): root's channels, as nixos-rebuild-ng
/// updates them (spec §12.1): `nixos` and the ones holding `.update-on-nixos-rebuild`, or all;
/// a channel that fails to update is a warning.
const UPGRADE_SCRIPT: &str = r#"all=$1
updated=
for dir in /nix/var/nix/profiles/per-user/root/channels/*/; do
  [ -d "$dir" ] || continue
  name=${dir%/}
  name=${name##*/}
  if [ "$all" = 1 ] || [ "$name" = nixos ] || [ -e "$dir.update-on-nixos-rebuild" ]; then
    updated=1
    nix-channel --update "$name" || echo "$0: warning: could not update the channel '$name'"
  fi
done
[ -n "$updated" ] || echo "$0: warning: '--upgrade' flag passed but no channels to update"
exit 0"#;

/// Updates root's channels on this machine (where `<nixpkgs>` is read), as root: rb's own
/// user when that is root, else through `--sudo` (which may prompt here).
fn upgrade_channels(req: &Request, run: &RunEnv) -> Session {
    let elevation = match &req.elevation {
        Elevation::Sudo { options, .. } => Elevation::Sudo {
            ask_password: false,
            options: options.clone(),
        },
        other => other.clone(),
    };
    let all = if req.upgrade == Upgrade::All {
        "1"
    } else {
        "0"
    };
    Session {
        host: Host::Local,
        elevation,
        steps: vec![Step {
            kind: StepKind::UpgradeChannels,
            message: None,
            commands: vec![
                Command::lit(&["sh", "-c", r#"[ "$(id -u)" = 0 ]"#]).on_failure(UPGRADE_NEEDS_ROOT),
                Command::lit(&["sh", "-c", UPGRADE_SCRIPT, run.program, all]),
            ],
            capture: None,
        }],
        fallback: None,
    }
}

/// The configuration file of a classic system (spec §13.1): `$NIXOS_CONFIG`, else
/// `<nixos-config>`, else `/etc/nixos`; a directory means its `default.nix`. Printed
/// absolute; fails when it does not exist.
const FIND_CONFIG_SCRIPT: &str = r#"file=${NIXOS_CONFIG-}
if [ -z "$file" ]; then
  file=$(nix-instantiate --find-file nixos-config "$@" 2>/dev/null) || file=
fi
[ -n "$file" ] || file=/etc/nixos
if [ -d "$file" ]; then file=${file%/}/default.nix; fi
[ -e "$file" ] || exit 1
case $file in /*) ;; *) file=$PWD/$file ;; esac
printf '%s\n' "$file""#;

/// `$EDITOR` split into words as `nix edit` and the bash tool do (`EDITOR="code -w"`).
const EDITOR_SCRIPT: &str = r#"set -f; exec ${EDITOR:-nano} "$1""#;

/// `edit`: `nix edit` of a flake's configuration; otherwise `$EDITOR` on the file found.
fn edit(req: &Request) -> Vec<Session> {
    let interactive = |command: Command| Session {
        host: Host::Local,
        elevation: Elevation::None,
        steps: vec![Step {
            kind: StepKind::Edit,
            message: None,
            commands: vec![command],
            capture: None,
        }],
        fallback: None,
    };
    if let Source::Flake(flake) = &req.source {
        let mut argv = nix_new_style("edit");
        argv.extend(req.nix.for_command(NixCommand::FlakeInteractive));
        argv.extend(["--".into(), flake.configuration()]);
        return vec![interactive(Command::lit(&argv))];
    }
    let mut find = vec!["sh", "-c", FIND_CONFIG_SCRIPT, "sh"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    find.extend(req.nix.for_command(NixCommand::LegacyInstantiate));
    vec![
        Session {
            host: Host::Local,
            elevation: Elevation::None,
            steps: vec![Step {
                kind: StepKind::FindConfig,
                message: None,
                commands: vec![Command::lit(&find).on_failure("cannot find NixOS config file")],
                capture: Some(Capture::PathLine(Var::ConfigFile)),
            }],
            fallback: None,
        },
        interactive(Command::new(vec![
            Word::lit("sh"),
            Word::lit("-c"),
            Word::lit(EDITOR_SCRIPT),
            Word::lit("sh"),
            Word::var(Var::ConfigFile, ""),
        ])),
    ]
}

/// A Nix string literal holding `s`.
fn nix_string(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace("${", "\\${")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// `path` relative to `cwd`, `.` and `..` resolved without looking at the file system.
fn absolute(cwd: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{cwd}/{path}")
    };
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// A flake reference `builtins.getFlake` accepts: a local path made absolute (also after
/// `path:`/`git+file:`), anything else as it is.
fn absolute_flake(flake: &str, cwd: &str) -> String {
    let (scheme, rest) = ["path:", "git+file:"]
        .into_iter()
        .find_map(|p| flake.strip_prefix(p).map(|rest| (p, rest)))
        .unwrap_or(("", flake));
    if scheme.is_empty() && flake.contains(':') {
        return flake.to_string();
    }
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, format!("?{q}")),
        None => (rest, String::new()),
    };
    format!("{scheme}{}{query}", absolute(cwd, path))
}

/// What `repl` loads for a flake: the configuration's module arguments, `config`, `options`,
/// `pkgs`, `lib` and the flake itself, with a greeting saying so.
fn repl_flake_expr(flake: &str, name: &str) -> String {
    let motd = format!(
        "\nThe NixOS configuration nixosConfigurations.\"{name}\" of {flake} is loaded:\n\n  \
         config   the option values\n  options  the option declarations\n  \
         pkgs     the Nixpkgs package set\n  lib      the Nixpkgs library\n  \
         flake    the flake (outputs, inputs, source)\n  \
         and the other module arguments\n\n\
         Use :r to reload after changing the configuration, :? for help.\n"
    );
    format!(
        "let\n  flake = builtins.getFlake {};\n  \
         configuration = flake.nixosConfigurations.{};\n  \
         moduleArgs = (configuration._module.args or {{ }}) // (configuration._module.specialArgs or {{ }});\n\
         in\nbuiltins.trace {} (moduleArgs // {{\n  \
         inherit (configuration) config options;\n  \
         pkgs = moduleArgs.pkgs or configuration.pkgs;\n  \
         lib = configuration.lib or moduleArgs.pkgs.lib;\n  \
         inherit flake;\n}})\n",
        nix_string(flake),
        nix_string(name),
        nix_string(&motd)
    )
}

/// `-f FILE -A ATTR` as one expression, for a `nix repl` that takes only files: the file
/// called with no arguments when it is a function, then the attribute.
fn repl_file_attr_expr(file: &str, attr: &str, cwd: &str) -> String {
    let file = if file.starts_with('<') && file.ends_with('>') {
        file.to_string()
    } else {
        nix_string(&absolute(cwd, file))
    };
    // An attribute path as the user wrote it is valid Nix when it contains quotes already.
    let path = if attr.contains('"') {
        attr.to_string()
    } else {
        attr.split('.')
            .map(nix_string)
            .collect::<Vec<_>>()
            .join(".")
    };
    format!(
        "let\n  file = import {file};\n  \
         value = if builtins.isFunction file then file {{ }} else file;\nin\nvalue.{path}\n"
    )
}

/// Runs `nix repl … FILE` on an expression written to a temporary file (Nix before 2.19 has no
/// `--expr`): `$1` is the expression, the rest the `nix repl` command. Ctrl-C belongs to the
/// repl; the file is removed when it ends.
const REPL_FILE_SCRIPT: &str = r#"expr=$1
shift
tmp=$(mktemp "${TMPDIR:-/tmp}/rb-repl.XXXXXX") || exit
trap 'rm -f "$tmp"' EXIT
trap : INT QUIT
printf '%s\n' "$expr" >"$tmp" || exit
"$@" "$tmp""#;

/// `repl` (spec §13.2): `nix repl` with the configuration in scope.
fn repl(req: &Request, caps: &NixCaps, run: &RunEnv) -> Session {
    let mut nix = nix_new_style("repl");
    let flags = req.nix.for_command(NixCommand::FileEval);
    let via_file = |expr: String, nix: Vec<String>| {
        let mut argv = vec!["sh".to_string(), "-c".into(), REPL_FILE_SCRIPT.into()];
        argv.extend([run.program.to_string(), expr]);
        argv.extend(nix);
        argv
    };
    let argv = match &req.source {
        Source::Flake(flake) => {
            let expr = repl_flake_expr(&absolute_flake(&flake.flake, run.cwd), &flake.name);
            // builtins.getFlake of a mutable reference (a local checkout) is impure.
            nix.push("--impure".into());
            if caps.repl_takes_expr() {
                nix.extend(["--expr".into(), expr]);
                nix.extend(flags);
                nix
            } else {
                nix.extend(flags);
                via_file(expr, nix)
            }
        }
        Source::File {
            file,
            attr: Some(attr),
        } if !caps.repl_takes_expr() => {
            nix.extend(flags);
            via_file(repl_file_attr_expr(file, attr, run.cwd), nix)
        }
        _ => {
            let (file, attr) = match &req.source {
                Source::File { file, attr } => (file.clone(), attr.clone()),
                _ => ("<nixpkgs/nixos>".to_string(), None),
            };
            if caps.repl_takes_expr() {
                nix.extend(["--file".into(), file]);
                nix.extend(attr);
            } else {
                nix.push(file);
            }
            nix.extend(flags);
            nix
        }
    };
    Session {
        host: Host::Local,
        elevation: Elevation::None,
        steps: vec![Step {
            kind: StepKind::Repl,
            message: None,
            commands: vec![Command::lit(&argv)],
            capture: None,
        }],
        fallback: None,
    }
}

/// `list-generations` on the target (here by default): one process, no root.
fn list_generations(req: &Request) -> Session {
    let profile = req.profile.path();
    let name = req.profile.name.as_deref().unwrap_or("system");
    Session {
        host: req.target_host.clone(),
        elevation: Elevation::None,
        steps: vec![Step {
            kind: StepKind::ListGenerations,
            message: None,
            commands: vec![
                Command::lit(&["test", "-e", &profile])
                    .on_failure(format!("no profile '{name}' found")),
                Command::lit(&["sh", "-c", LIST_SCRIPT, "sh", &profile]),
            ],
            capture: Some(Capture::Generations),
        }],
        fallback: None,
    }
}

/// `build-image`: one evaluation of every image variant's file name, which also checks the
/// chosen variant before anything is built.
fn image_variants(req: &Request) -> Session {
    const APPLY: &str =
        "images: builtins.mapAttrs (variant: image: image.passthru.filePath or null) images";
    let mut argv = nix_new_style("eval");
    argv.push("--json".into());
    match &req.source {
        Source::Flake(flake) => {
            argv.extend([
                flake.installable("config.system.build.images"),
                "--apply".into(),
                APPLY.into(),
            ]);
            argv.extend(req.nix.for_command(NixCommand::FlakeEval));
        }
        _ => {
            let (file, attr) = classic_target(req, "config.system.build.images");
            argv.extend(["--file".into(), file, attr, "--apply".into(), APPLY.into()]);
            argv.extend(req.nix.for_command(NixCommand::FileEval));
        }
    }
    Session {
        host: Host::Local,
        elevation: Elevation::None,
        steps: vec![Step {
            kind: StepKind::Evaluate,
            message: None,
            commands: vec![Command::lit(&argv)],
            capture: Some(Capture::ImageVariants {
                variant: req.image_variant.clone(),
            }),
        }],
        fallback: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::tests::{ctx, req, req_in};

    const RUN: RunEnv = RunEnv {
        run_id: "r1",
        nix_sshopts: "-o ControlPath=/tmp/rb.t/%C",
        cwd: "/home/me/cfg",
        program: "rb",
    };

    fn plan_of(args: &str) -> Plan {
        plan(&req(args).unwrap(), &NixCaps::floor(), &RUN).unwrap()
    }

    fn cmd(words: &[&str]) -> Command {
        Command::lit(words)
    }

    fn inst(attr: &str) -> String {
        format!("/cfg#nixosConfigurations.\"h\".{attr}")
    }

    fn nix_build(attr: &str, extra: &[&str]) -> Command {
        let inst = inst(attr);
        let mut w = vec![
            "nix",
            "--extra-experimental-features",
            "nix-command flakes",
            "build",
            &inst,
            "--json",
        ];
        w.extend(extra);
        cmd(&w)
    }

    fn build_session(command: Command, capture: Option<Capture>) -> Session {
        Session {
            host: Host::Local,
            elevation: Elevation::None,
            steps: vec![Step {
                kind: StepKind::Build,
                message: Some(BUILD_MESSAGE.into()),
                commands: vec![command],
                capture,
            }],
            fallback: None,
        }
    }

    fn stc(suffix: &str, action: &str, bootloader: &str) -> Step {
        Step {
            kind: StepKind::Activate,
            message: None,
            commands: vec![Command {
                argv: vec![
                    Word::var(Var::System, format!("{suffix}/bin/switch-to-configuration")),
                    Word::lit(action),
                ],
                env: Env::Clean(vec![
                    EnvVar::Keep("PATH".into()),
                    EnvVar::Keep("LOCALE_ARCHIVE".into()),
                    EnvVar::Keep("NIXOS_NO_CHECK".into()),
                    EnvVar::Set("NIXOS_INSTALL_BOOTLOADER".into(), bootloader.into()),
                ]),
                systemd_run: Some("nixos-rebuild-switch-to-configuration-r1".into()),
                on_failure: None,
                undo: None,
            }],
            capture: None,
        }
    }

    fn simple(kind: StepKind, command: Command) -> Step {
        Step {
            kind,
            message: None,
            commands: vec![command],
            capture: None,
        }
    }

    fn check_closure() -> Step {
        simple(
            StepKind::CheckClosure,
            Command::new(vec![
                Word::lit("test"),
                Word::lit("-f"),
                Word::var(Var::System, "/nixos-version"),
            ])
            .on_failure(MISSING_FILES),
        )
    }

    fn set_profile(profile: &str) -> Step {
        let mut set = Command::new(vec![
            Word::lit("nix-env"),
            Word::lit("-p"),
            Word::lit(profile),
            Word::lit("--set"),
            Word::var(Var::System, ""),
        ]);
        set.undo = Some(Undo::RestoreProfile {
            profile: profile.into(),
        });
        Step {
            kind: StepKind::SetProfile,
            message: None,
            commands: vec![set, cmd(&["readlink", profile])],
            capture: Some(Capture::ProfileLink),
        }
    }

    const SYSTEM: &str = "/nix/var/nix/profiles/system";

    #[test]
    fn switch_flake_locally() {
        assert_eq!(
            plan_of("switch --flake /cfg#h"),
            Plan {
                action: Action::Switch,
                inputs: vec![],
                sessions: vec![
                    build_session(
                        nix_build("config.system.build.toplevel", &["--no-link"]),
                        Some(Capture::BuildJson)
                    ),
                    Session {
                        host: Host::Local,
                        elevation: Elevation::None,
                        steps: vec![check_closure(), set_profile(SYSTEM), stc("", "switch", "0")],
                        fallback: None,
                    },
                ],
                confirm: None,
                finish: Finish::NewConfiguration,
                connect: vec![],
            }
        );
    }

    #[test]
    fn build_leaves_result_and_passes_flags() {
        assert_eq!(
            plan_of("build --flake /cfg#h -L --impure -j4"),
            Plan {
                action: Action::Build,
                inputs: vec![],
                sessions: vec![build_session(
                    nix_build(
                        "config.system.build.toplevel",
                        &["--max-jobs", "4", "--print-build-logs", "--impure"]
                    ),
                    Some(Capture::BuildJson)
                )],
                confirm: None,
                finish: Finish::NewConfiguration,
                connect: vec![],
            }
        );
    }

    #[test]
    fn dry_build_captures_nothing_and_links_nothing() {
        assert_eq!(
            plan_of("dry-build --flake /cfg#h"),
            Plan {
                action: Action::DryBuild,
                inputs: vec![],
                sessions: vec![build_session(
                    nix_build("config.system.build.toplevel", &["--no-link", "--dry-run"]),
                    None
                )],
                confirm: None,
                finish: Finish::Nothing,
                connect: vec![],
            }
        );
    }

    #[test]
    fn boot_classic_with_profile_name_sudo_and_bootloader() {
        let r = req_in(
            "boot --no-flake -p web --sudo --install-bootloader -vv -L",
            &ctx(&[("NIXOS_REBUILD_NO_SYSTEMD_RUN", "1")]),
        )
        .unwrap();
        let mut activate = stc("", "boot", "1");
        activate.commands[0].systemd_run = None;
        let profile = "/nix/var/nix/profiles/system-profiles/web";
        assert_eq!(
            plan(&r, &NixCaps::floor(), &RUN).unwrap(),
            Plan {
                action: Action::Boot,
                inputs: vec![],
                sessions: vec![
                    build_session(
                        cmd(&[
                            "nix-build",
                            "<nixpkgs/nixos>",
                            "--attr",
                            "config.system.build.toplevel",
                            "--no-out-link",
                            "-vv"
                        ]),
                        Some(Capture::PathLine(Var::System))
                    ),
                    Session {
                        host: Host::Local,
                        elevation: Elevation::Sudo {
                            ask_password: false,
                            options: vec![]
                        },
                        steps: vec![
                            check_closure(),
                            simple(
                                StepKind::CreateProfileDir,
                                cmd(&[
                                    "mkdir",
                                    "-p",
                                    "-m",
                                    "0755",
                                    "/nix/var/nix/profiles/system-profiles"
                                ])
                            ),
                            set_profile(profile),
                            activate,
                        ],
                        fallback: None,
                    },
                ],
                confirm: None,
                finish: Finish::NewConfiguration,
                connect: vec![],
            }
        );
    }

    #[test]
    fn test_file_mode_with_specialisation() {
        assert_eq!(
            plan_of("test -f ./x.nix -A web -c gpu"),
            Plan {
                action: Action::Test,
                inputs: vec![],
                sessions: vec![
                    build_session(
                        cmd(&[
                            "nix-build",
                            "./x.nix",
                            "--attr",
                            "web.config.system.build.toplevel",
                            "--no-out-link"
                        ]),
                        Some(Capture::PathLine(Var::System))
                    ),
                    Session {
                        host: Host::Local,
                        elevation: Elevation::None,
                        steps: vec![
                            simple(
                                StepKind::CheckSpecialisation,
                                Command::new(vec![
                                    Word::lit("test"),
                                    Word::lit("-x"),
                                    Word::var(
                                        Var::System,
                                        "/specialisation/gpu/bin/switch-to-configuration"
                                    ),
                                ])
                                .on_failure("specialisation not found: gpu")
                            ),
                            stc("/specialisation/gpu", "test", "0"),
                        ],
                        fallback: None,
                    },
                ],
                confirm: None,
                finish: Finish::NewConfiguration,
                connect: vec![],
            }
        );
    }

    #[test]
    fn rollback_switch_finds_then_switches_generation() {
        let find = Session {
            host: Host::Local,
            elevation: Elevation::None,
            steps: vec![Step {
                kind: StepKind::FindGeneration,
                message: None,
                commands: vec![cmd(&["nix-env", "-p", SYSTEM, "--list-generations"])],
                capture: Some(Capture::Generation {
                    profile: SYSTEM.into(),
                    pick: Pick::OlderThanCurrent,
                }),
            }],
            fallback: None,
        };
        assert_eq!(
            plan_of("switch --rollback"),
            Plan {
                action: Action::Switch,
                inputs: vec![],
                sessions: vec![
                    find.clone(),
                    Session {
                        host: Host::Local,
                        elevation: Elevation::None,
                        steps: vec![
                            Step {
                                kind: StepKind::SetProfile,
                                message: None,
                                commands: vec![
                                    {
                                        let mut c = Command::new(vec![
                                            Word::lit("nix-env"),
                                            Word::lit("-p"),
                                            Word::lit(SYSTEM),
                                            Word::lit("--switch-generation"),
                                            Word::var(Var::Generation, ""),
                                        ]);
                                        c.undo = Some(Undo::RestoreProfile {
                                            profile: SYSTEM.into(),
                                        });
                                        c
                                    },
                                    cmd(&["readlink", SYSTEM]),
                                ],
                                capture: Some(Capture::ProfileLink),
                            },
                            stc("", "switch", "0"),
                        ],
                        fallback: None,
                    },
                ],
                confirm: None,
                finish: Finish::NewConfiguration,
                connect: vec![],
            }
        );
        let mut find_newest = find;
        find_newest.steps[0].capture = Some(Capture::Generation {
            profile: SYSTEM.into(),
            pick: Pick::NewestOther,
        });
        assert_eq!(
            plan_of("build --rollback"),
            Plan {
                action: Action::Build,
                inputs: vec![],
                sessions: vec![find_newest],
                confirm: None,
                finish: Finish::NewConfiguration,
                connect: vec![],
            }
        );
    }

    #[test]
    fn switch_with_confirm_timeout_arms_a_watchdog_then_confirms_over_a_new_connection() {
        let aq = crate::host::SshHost::parse("--target-host", "root@aq").unwrap();
        let target = Host::Ssh(aq.clone());
        let sudo = Elevation::Sudo {
            ask_password: false,
            options: vec![],
        };
        let copy = {
            let mut c = Command::new(vec![
                Word::lit("nix-copy-closure"),
                Word::lit("--to"),
                Word::lit("root@aq"),
                Word::var(Var::System, ""),
            ]);
            c.env = Env::Inherit(vec![("NIX_SSHOPTS".into(), RUN.nix_sshopts.into())]);
            c
        };
        let mut arm = cmd(&[
            "rb-watchdog",
            "arm",
            "/run/rb/r1",
            "30",
            "switch",
            SYSTEM,
            "restore-profile",
        ]);
        arm.undo = Some(Undo::RollBackNow {
            dir: "/run/rb/r1".into(),
        });
        assert_eq!(
            plan_of("switch --flake /cfg#h --target-host root@aq --sudo --confirm-timeout 30"),
            Plan {
                action: Action::Switch,
                connect: vec![aq],
                inputs: vec![],
                sessions: vec![
                    build_session(
                        nix_build("config.system.build.toplevel", &["--no-link"]),
                        Some(Capture::BuildJson)
                    ),
                    Session {
                        host: Host::Local,
                        elevation: Elevation::None,
                        steps: vec![simple(StepKind::Copy, copy)],
                        fallback: None,
                    },
                    // One session, one round trip: checks, the watchdog, profile, activation.
                    Session {
                        host: target.clone(),
                        elevation: sudo.clone(),
                        steps: vec![
                            check_closure(),
                            simple(StepKind::ArmWatchdog, arm),
                            set_profile(SYSTEM),
                            stc("", "switch", "0"),
                        ],
                        fallback: None,
                    },
                ],
                confirm: Some(crate::plan::Confirm {
                    timeout: 30,
                    dir: "/run/rb/r1".into(),
                    session: Session {
                        host: target,
                        elevation: sudo,
                        steps: vec![Step {
                            kind: StepKind::Confirm,
                            message: None,
                            commands: vec![cmd(&["rb-watchdog", "confirm", "/run/rb/r1"])],
                            capture: Some(Capture::Verdict),
                        }],
                        fallback: None,
                    },
                }),
                finish: Finish::NewConfiguration,
            }
        );
        // `test` keeps the profile; its rollback activates the previous system with `test`.
        let p = plan_of("test --flake /cfg#h --target-host root@aq --confirm-timeout 5");
        assert_eq!(
            p.sessions[2].steps[0].commands[0].argv[3..],
            [
                Word::lit("5"),
                Word::lit("test"),
                Word::lit(SYSTEM),
                Word::lit("keep-profile")
            ]
        );
    }

    #[test]
    fn store_path_skips_the_build() {
        let p = plan_of("test --store-path /nix/store/abc-nixos-system");
        assert_eq!(
            p.inputs,
            vec![(Var::System, "/nix/store/abc-nixos-system".to_string())]
        );
        assert_eq!(p.sessions.len(), 1);
        assert_eq!(
            p.sessions[0].steps,
            vec![check_closure(), stc("", "test", "0")]
        );
    }

    #[test]
    fn build_vm_links_result_and_prints_the_vm() {
        assert_eq!(
            plan_of("build-vm --flake /cfg#h"),
            Plan {
                action: Action::BuildVm,
                inputs: vec![],
                sessions: vec![build_session(
                    nix_build("config.system.build.vm", &[]),
                    Some(Capture::BuildJson)
                )],
                confirm: None,
                finish: Finish::VirtualMachine,
                connect: vec![],
            }
        );
    }

    #[test]
    fn the_same_build_and_target_host_realises_and_activates_in_one_session() {
        let host = crate::host::SshHost::parse("--target-host", "root@t").unwrap();
        let drv_copy = {
            let mut c = Command::new(vec![
                Word::lit("nix-copy-closure"),
                Word::lit("--to"),
                Word::lit("root@t"),
                Word::var(Var::Drv, ""),
            ]);
            c.env = Env::Inherit(vec![("NIX_SSHOPTS".into(), RUN.nix_sshopts.into())]);
            c
        };
        let inst = inst("config.system.build.toplevel.drvPath");
        assert_eq!(
            plan_of("test --flake /cfg#h --build-host root@t --target-host root@t"),
            Plan {
                action: Action::Test,
                connect: vec![host.clone()],
                inputs: vec![],
                sessions: vec![
                    Session {
                        host: Host::Local,
                        elevation: Elevation::None,
                        steps: vec![Step {
                            kind: StepKind::Evaluate,
                            message: Some(BUILD_MESSAGE.into()),
                            commands: vec![cmd(&[
                                "nix",
                                "--extra-experimental-features",
                                "nix-command flakes",
                                "eval",
                                "--raw",
                                &inst,
                            ])],
                            capture: Some(Capture::PathLine(Var::Drv)),
                        }],
                        fallback: None,
                    },
                    local(StepKind::Copy, drv_copy),
                    Session {
                        host: Host::Ssh(host),
                        elevation: Elevation::None,
                        steps: vec![
                            Step {
                                kind: StepKind::Build,
                                message: Some("building on root@t...".into()),
                                commands: vec![Command::new(vec![
                                    Word::lit("nix-store"),
                                    Word::lit("--realise"),
                                    Word::var(Var::Drv, ""),
                                ])],
                                capture: Some(Capture::PathLine(Var::System)),
                            },
                            stc("", "test", "0"),
                        ],
                        fallback: None,
                    },
                ],
                finish: Finish::NewConfiguration,
                confirm: None,
            }
        );
    }

    #[test]
    fn target_host_with_a_sudo_password() {
        let host = crate::host::SshHost::parse("--target-host", "deploy@t").unwrap();
        let sudo = Elevation::Sudo {
            ask_password: true,
            options: vec![],
        };
        let mut copy = Command::new(vec![
            Word::lit("nix-copy-closure"),
            Word::lit("-s"),
            Word::lit("--to"),
            Word::lit("deploy@t"),
            Word::var(Var::System, ""),
        ]);
        copy.env = Env::Inherit(vec![("NIX_SSHOPTS".into(), RUN.nix_sshopts.into())]);
        assert_eq!(
            plan_of("switch --flake /cfg#h --target-host deploy@t -S -s"),
            Plan {
                action: Action::Switch,
                connect: vec![host.clone()],
                inputs: vec![],
                sessions: vec![
                    Session {
                        host: Host::Ssh(host.clone()),
                        elevation: sudo.clone(),
                        steps: vec![simple(StepKind::CheckElevation, cmd(&["true"]))],
                        fallback: None,
                    },
                    build_session(
                        nix_build("config.system.build.toplevel", &["--no-link"]),
                        Some(Capture::BuildJson)
                    ),
                    local(StepKind::Copy, copy),
                    Session {
                        host: Host::Ssh(host),
                        elevation: sudo,
                        steps: vec![check_closure(), set_profile(SYSTEM), stc("", "switch", "0")],
                        fallback: None,
                    },
                ],
                finish: Finish::NewConfiguration,
                confirm: None,
            }
        );
    }

    #[test]
    fn unavailable_options_are_refused() {
        let r = req("switch --run0 -S").unwrap();
        assert!(matches!(
            plan(&r, &NixCaps::floor(), &RUN),
            Err(Error::NotYetAvailable(_))
        ));
        for args in [
            "edit",
            "repl",
            "list-generations",
            "build-image --image-variant iso",
            "switch --upgrade --sudo",
            "switch --diff",
        ] {
            assert!(
                plan(&req(args).unwrap(), &NixCaps::floor(), &RUN).is_ok(),
                "{args}"
            );
        }
    }

    fn ssh(dest: &str) -> crate::host::SshHost {
        crate::host::SshHost::parse("--target-host", dest).unwrap()
    }

    fn one_step(host: Host, elevation: Elevation, step: Step) -> Session {
        Session {
            host,
            elevation,
            steps: vec![step],
            fallback: None,
        }
    }

    fn list_step(profile: &str, name: &str) -> Step {
        Step {
            kind: StepKind::ListGenerations,
            message: None,
            commands: vec![
                cmd(&["test", "-e", profile]).on_failure(format!("no profile '{name}' found")),
                cmd(&["sh", "-c", LIST_SCRIPT, "sh", profile]),
            ],
            capture: Some(Capture::Generations),
        }
    }

    #[test]
    fn list_generations_is_one_unelevated_session_on_the_target() {
        assert_eq!(
            plan_of("list-generations"),
            Plan {
                action: Action::ListGenerations,
                connect: vec![],
                inputs: vec![],
                sessions: vec![one_step(
                    Host::Local,
                    Elevation::None,
                    list_step(SYSTEM, "system")
                )],
                finish: Finish::Generations { json: false },
                confirm: None,
            }
        );
        let web = "/nix/var/nix/profiles/system-profiles/web";
        assert_eq!(
            plan_of("list-generations --json -p web --target-host deploy@aq --sudo"),
            Plan {
                action: Action::ListGenerations,
                connect: vec![ssh("deploy@aq")],
                inputs: vec![],
                sessions: vec![one_step(
                    Host::Ssh(ssh("deploy@aq")),
                    Elevation::None,
                    list_step(web, "web")
                )],
                finish: Finish::Generations { json: true },
                confirm: None,
            }
        );
    }

    fn interactive(kind: StepKind, command: Command) -> Session {
        one_step(
            Host::Local,
            Elevation::None,
            Step {
                kind,
                message: None,
                commands: vec![command],
                capture: None,
            },
        )
    }

    #[test]
    fn edit_a_flake_with_nix_edit() {
        assert_eq!(
            plan_of("edit --flake /cfg#h --show-trace --no-write-lock-file"),
            Plan {
                action: Action::Edit,
                connect: vec![],
                inputs: vec![],
                sessions: vec![interactive(
                    StepKind::Edit,
                    cmd(&[
                        "nix",
                        "--extra-experimental-features",
                        "nix-command flakes",
                        "edit",
                        "--show-trace",
                        "--no-write-lock-file",
                        "--",
                        "/cfg#nixosConfigurations.\"h\""
                    ])
                )],
                finish: Finish::Nothing,
                confirm: None,
            }
        );
    }

    #[test]
    fn edit_a_classic_configuration_finds_the_file_then_opens_it() {
        let find = Step {
            kind: StepKind::FindConfig,
            message: None,
            commands: vec![
                cmd(&[
                    "sh",
                    "-c",
                    FIND_CONFIG_SCRIPT,
                    "sh",
                    "-I",
                    "nixos-config=/x",
                ])
                .on_failure("cannot find NixOS config file"),
            ],
            capture: Some(Capture::PathLine(Var::ConfigFile)),
        };
        assert_eq!(
            plan_of("edit --no-flake -I nixos-config=/x"),
            Plan {
                action: Action::Edit,
                connect: vec![],
                inputs: vec![],
                sessions: vec![
                    one_step(Host::Local, Elevation::None, find),
                    interactive(
                        StepKind::Edit,
                        Command::new(vec![
                            Word::lit("sh"),
                            Word::lit("-c"),
                            Word::lit(EDITOR_SCRIPT),
                            Word::lit("sh"),
                            Word::var(Var::ConfigFile, ""),
                        ])
                    ),
                ],
                finish: Finish::Nothing,
                confirm: None,
            }
        );
    }

    fn repl_plan(args: &str, caps: &NixCaps) -> Plan {
        plan(&req(args).unwrap(), caps, &RUN).unwrap()
    }

    fn newer() -> NixCaps {
        NixCaps::parse("nix (Nix) 2.24.10").unwrap()
    }

    fn repl_of(argv: &[&str]) -> Plan {
        Plan {
            action: Action::Repl,
            connect: vec![],
            inputs: vec![],
            sessions: vec![interactive(StepKind::Repl, cmd(argv))],
            confirm: None,
            finish: Finish::Nothing,
        }
    }

    const NIX_REPL: [&str; 4] = [
        "nix",
        "--extra-experimental-features",
        "nix-command flakes",
        "repl",
    ];

    #[test]
    fn repl_of_a_flake_uses_an_expression_or_a_file_with_it() {
        // A relative flake is made absolute: builtins.getFlake refuses relative paths.
        let expr = repl_flake_expr("/home/me/cfg/sub", "h");
        assert!(
            expr.contains("builtins.getFlake \"/home/me/cfg/sub\""),
            "{expr}"
        );
        assert!(expr.contains("flake.nixosConfigurations.\"h\""), "{expr}");
        let mut argv = NIX_REPL.to_vec();
        argv.extend(["--impure", "--expr", &expr, "--show-trace"]);
        assert_eq!(
            repl_plan("repl --flake ./sub#h --show-trace", &newer()),
            repl_of(&argv)
        );
        // Nix 2.8's repl takes files only.
        let mut argv = vec!["sh", "-c", REPL_FILE_SCRIPT, "rb", &expr];
        argv.extend(NIX_REPL);
        argv.extend(["--impure", "--show-trace"]);
        assert_eq!(
            repl_plan("repl --flake ./sub#h --show-trace", &NixCaps::floor()),
            repl_of(&argv)
        );
    }

    #[test]
    fn repl_of_classic_and_file_configurations() {
        let mut argv = NIX_REPL.to_vec();
        argv.extend(["--file", "<nixpkgs/nixos>", "-I", "x=/y"]);
        assert_eq!(
            repl_plan("repl --no-flake -I x=/y", &newer()),
            repl_of(&argv)
        );
        let mut argv = NIX_REPL.to_vec();
        argv.extend(["<nixpkgs/nixos>", "-I", "x=/y"]);
        assert_eq!(
            repl_plan("repl --no-flake -I x=/y", &NixCaps::floor()),
            repl_of(&argv)
        );
        let mut argv = NIX_REPL.to_vec();
        argv.extend(["--file", "x.nix", "web"]);
        assert_eq!(repl_plan("repl -f x.nix -A web", &newer()), repl_of(&argv));
        let expr = repl_file_attr_expr("x.nix", "web", "/home/me/cfg");
        assert_eq!(
            expr,
            "let\n  file = import \"/home/me/cfg/x.nix\";\n  \
             value = if builtins.isFunction file then file { } else file;\nin\nvalue.\"web\"\n"
        );
        let mut argv = vec!["sh", "-c", REPL_FILE_SCRIPT, "rb", &expr];
        argv.extend(NIX_REPL);
        assert_eq!(
            repl_plan("repl -f x.nix -A web", &NixCaps::floor()),
            repl_of(&argv)
        );
    }

    #[test]
    fn paths_for_nix_are_absolute_and_strings_escaped() {
        assert_eq!(absolute("/a/b", "."), "/a/b");
        assert_eq!(absolute("/a/b", "../c/./d"), "/a/c/d");
        assert_eq!(absolute("/a/b", "/x/../y"), "/y");
        assert_eq!(absolute_flake(".", "/a"), "/a");
        assert_eq!(absolute_flake("./c?dir=x", "/a"), "/a/c?dir=x");
        assert_eq!(absolute_flake("path:..", "/a/b"), "path:/a");
        assert_eq!(absolute_flake("github:me/cfg", "/a"), "github:me/cfg");
        assert_eq!(absolute_flake("/etc/nixos", "/a"), "/etc/nixos");
        assert_eq!(nix_string("a\"b\\c${d}\n"), r#""a\"b\\c\${d}\n""#);
        assert_eq!(
            repl_file_attr_expr("<nixpkgs/nixos>", "a.\"b.c\"", "/"),
            "let\n  file = import <nixpkgs/nixos>;\n  \
             value = if builtins.isFunction file then file { } else file;\nin\nvalue.a.\"b.c\"\n"
        );
    }

    fn image_eval(argv: &[&str], variant: Option<&str>) -> Session {
        one_step(
            Host::Local,
            Elevation::None,
            Step {
                kind: StepKind::Evaluate,
                message: None,
                commands: vec![cmd(argv)],
                capture: Some(Capture::ImageVariants {
                    variant: variant.map(String::from),
                }),
            },
        )
    }

    const APPLY: &str =
        "images: builtins.mapAttrs (variant: image: image.passthru.filePath or null) images";

    #[test]
    fn build_image_evaluates_the_variants_once_then_builds_one() {
        let eval = [
            "nix",
            "--extra-experimental-features",
            "nix-command flakes",
            "eval",
            "--json",
            "/cfg#nixosConfigurations.\"h\".config.system.build.images",
            "--apply",
            APPLY,
        ];
        assert_eq!(
            plan_of("build-image --flake /cfg#h --image-variant iso"),
            Plan {
                action: Action::BuildImage,
                connect: vec![],
                inputs: vec![],
                sessions: vec![
                    image_eval(&eval, Some("iso")),
                    build_session(
                        nix_build("config.system.build.images.iso", &[]),
                        Some(Capture::BuildJson)
                    ),
                ],
                finish: Finish::Image,
                confirm: None,
            }
        );
        // Without a variant, the evaluation lists them and nothing is built.
        assert_eq!(
            plan_of("build-image --flake /cfg#h"),
            Plan {
                action: Action::BuildImage,
                connect: vec![],
                inputs: vec![],
                sessions: vec![image_eval(&eval, None)],
                finish: Finish::Nothing,
                confirm: None,
            }
        );
        let eval = [
            "nix",
            "--extra-experimental-features",
            "nix-command flakes",
            "eval",
            "--json",
            "--file",
            "x.nix",
            "web.config.system.build.images",
            "--apply",
            APPLY,
            "-I",
            "a=/b",
        ];
        assert_eq!(
            plan_of("build-image -f x.nix -A web --image-variant qcow2 -I a=/b"),
            Plan {
                action: Action::BuildImage,
                connect: vec![],
                inputs: vec![],
                sessions: vec![
                    image_eval(&eval, Some("qcow2")),
                    build_session(
                        cmd(&[
                            "nix-build",
                            "x.nix",
                            "--attr",
                            "web.config.system.build.images.qcow2",
                            "-I",
                            "a=/b"
                        ]),
                        Some(Capture::PathLine(Var::System))
                    ),
                ],
                finish: Finish::Image,
                confirm: None,
            }
        );
    }

    fn upgrade_session(elevation: Elevation, all: &str) -> Session {
        one_step(
            Host::Local,
            elevation,
            Step {
                kind: StepKind::UpgradeChannels,
                message: None,
                commands: vec![
                    cmd(&["sh", "-c", r#"[ "$(id -u)" = 0 ]"#]).on_failure(UPGRADE_NEEDS_ROOT),
                    cmd(&["sh", "-c", UPGRADE_SCRIPT, "rb", all]),
                ],
                capture: None,
            },
        )
    }

    #[test]
    fn upgrade_updates_channels_here_before_anything_else() {
        let p = plan_of("build --no-flake --upgrade");
        assert_eq!(p.sessions.len(), 2);
        assert_eq!(p.sessions[0], upgrade_session(Elevation::None, "0"));
        assert_eq!(p.sessions[1].steps[0].kind, StepKind::Build);
        // With --sudo (even a password for the target), sudo here may prompt on its own.
        let p = plan_of("switch --upgrade-all --target-host root@aq -S");
        assert_eq!(
            p.sessions[0],
            upgrade_session(
                Elevation::Sudo {
                    ask_password: false,
                    options: vec![]
                },
                "1"
            )
        );
        assert_eq!(p.sessions[1].steps[0].kind, StepKind::CheckElevation);
    }

    #[test]
    fn diff_runs_on_the_target_in_the_activation_session() {
        let p = plan_of("switch --flake /cfg#h --diff --target-host root@aq");
        assert_eq!(
            p.sessions.len(),
            3,
            "build, copy, activation: no extra session"
        );
        let activation = &p.sessions[2];
        assert_eq!(activation.host, Host::Ssh(ssh("root@aq")));
        assert_eq!(
            activation.steps.iter().map(|s| s.kind).collect::<Vec<_>>(),
            [
                StepKind::CheckClosure,
                StepKind::Diff,
                StepKind::SetProfile,
                StepKind::Activate
            ]
        );
        assert_eq!(activation.steps[1], diff_step(&RUN));
        // build has no activation: the diff is a session of its own on the target.
        let p = plan_of("build --flake /cfg#h --diff --target-host root@aq");
        assert_eq!(
            p.sessions.last().unwrap(),
            &one_step(Host::Ssh(ssh("root@aq")), Elevation::None, diff_step(&RUN))
        );
    }

    #[test]
    fn store_path_to_a_target_is_copied_then_activated_there() {
        let path = "/nix/store/abc-nixos-system";
        let copy = Command {
            argv: vec![
                Word::lit("nix-copy-closure"),
                Word::lit("--to"),
                Word::lit("root@aq"),
                Word::var(Var::System, ""),
            ],
            env: Env::Inherit(vec![("NIX_SSHOPTS".into(), RUN.nix_sshopts.into())]),
            systemd_run: None,
            on_failure: None,
            undo: None,
        };
        assert_eq!(
            plan_of(&format!("switch --store-path {path} --target-host root@aq")),
            Plan {
                action: Action::Switch,
                connect: vec![ssh("root@aq")],
                inputs: vec![(Var::System, path.into())],
                sessions: vec![
                    one_step(Host::Local, Elevation::None, simple(StepKind::Copy, copy)),
                    Session {
                        host: Host::Ssh(ssh("root@aq")),
                        elevation: Elevation::None,
                        steps: vec![check_closure(), set_profile(SYSTEM), stc("", "switch", "0")],
                        fallback: None,
                    },
                ],
                finish: Finish::NewConfiguration,
                confirm: None,
            }
        );
    }
}
