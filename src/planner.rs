//! From a [`Request`] to a [`Plan`]: which commands run on which host, in which order.
//!
//! The planner decides everything; the executor only follows. A new action or pipeline is a
//! new function here, not a branch in the executor.

use crate::cli::Action;
use crate::error::{Error, Result};
use crate::host::Host;
use crate::nix::{FEATURES, NixCaps, NixCommand};
use crate::plan::{
    Capture, Command, Env, EnvVar, Finish, Pick, Plan, Session, Step, StepKind, Undo, Var, Word,
};
use crate::request::{Elevation, Request, Source};

/// What the planner needs from this run besides the request.
pub struct RunEnv<'a> {
    /// Makes names unique per run (the systemd unit).
    pub run_id: &'a str,
    /// `NIX_SSHOPTS` for copies: the user's options and the run's shared connections.
    pub nix_sshopts: &'a str,
}

/// Builds the plan.
pub fn plan(req: &Request, caps: &NixCaps, run: &RunEnv) -> Result<Plan> {
    let _ = caps;
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

    let activates = matches!(
        req.action,
        Action::Switch | Action::Boot | Action::Test | Action::DryActivate
    );
    // A wrong password is found out before anything is built.
    if let (
        Host::Ssh(_),
        Elevation::Sudo {
            ask_password: true, ..
        },
    ) = (&req.target_host, &req.elevation)
        && activates
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

    let finish = match req.action {
        _ if activates => {
            sessions.push(activation(req, run.run_id));
            Finish::NewConfiguration
        }
        Action::Build => Finish::NewConfiguration,
        Action::BuildVm | Action::BuildVmWithBootloader => Finish::VirtualMachine,
        _ => Finish::Nothing,
    };

    Ok(Plan {
        action: req.action,
        connect,
        inputs,
        sessions,
        finish,
    })
}

/// Options and actions whose implementation has not landed yet: validated by `resolve`,
/// refused here with a clear message rather than half done.
fn refuse_unavailable(req: &Request) -> Result<()> {
    let missing = match req.action {
        Action::Edit => Some("the 'edit' action"),
        Action::Repl => Some("the 'repl' action"),
        Action::BuildImage => Some("the 'build-image' action"),
        Action::ListGenerations => Some("the 'list-generations' action"),
        _ => None,
    }
    .or_else(|| (req.upgrade != crate::request::Upgrade::None).then_some("--upgrade"))
    .or_else(|| req.diff.then_some("--diff"))
    .or_else(|| matches!(req.elevation, Elevation::Run0 { .. }).then_some("run0 elevation"));
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
fn attribute(action: Action) -> &'static str {
    match action {
        Action::BuildVm => "config.system.build.vm",
        Action::BuildVmWithBootloader => "config.system.build.vmWithBootLoader",
        _ => "config.system.build.toplevel",
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
    let attr = attribute(req.action);
    let dry = req.action == Action::DryBuild;
    let link = leaves_result_link(req.action) && req.target_host.is_local();
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
    let attr = attribute(req.action);
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
        a.extend([Word::lit(direction), Word::lit(host.store_uri())]);
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
fn activation(req: &Request, run_id: &str) -> Session {
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
                .then(|| format!("nixos-rebuild-switch-to-configuration-{run_id}")),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::tests::{ctx, req, req_in};

    const RUN: RunEnv = RunEnv {
        run_id: "r1",
        nix_sshopts: "-o ControlPath=/tmp/rb.t/%C",
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
                finish: Finish::NewConfiguration,
                connect: vec![],
            }
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
                finish: Finish::VirtualMachine,
                connect: vec![],
            }
        );
    }

    #[test]
    fn unavailable_options_are_refused() {
        let r = req("edit").unwrap();
        assert!(matches!(
            plan(&r, &NixCaps::floor(), &RUN),
            Err(Error::NotYetAvailable(_))
        ));
    }
}
