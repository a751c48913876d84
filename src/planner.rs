//! From a [`Request`] to a [`Plan`]: which commands run on which host, in which order.
//!
//! The planner decides everything; the executor only follows. A new action or pipeline is a
//! new function here, not a branch in the executor.

use crate::cli::Action;
use crate::error::{Error, Result};
use crate::host::Host;
use crate::nix::{FEATURES, NixCaps, NixCommand};
use crate::plan::{
    Capture, Command, Env, EnvVar, Finish, Pick, Plan, Session, Step, StepKind, Var, Word,
};
use crate::request::{Elevation, Request, Source};

/// Builds the plan. `run_id` makes names unique per run (the systemd unit).
pub fn plan(req: &Request, caps: &NixCaps, run_id: &str) -> Result<Plan> {
    let _ = caps;
    refuse_unavailable(req)?;
    let mut sessions = Vec::new();
    let mut inputs = Vec::new();

    match &req.source {
        Source::StorePath { path } => inputs.push((Var::System, path.clone())),
        Source::Rollback => sessions.push(find_generation(req)),
        Source::Flake(_) | Source::Classic | Source::File { .. } => sessions.push(build(req)?),
    }

    let finish = match req.action {
        Action::Switch | Action::Boot | Action::Test | Action::DryActivate => {
            sessions.push(activation(req, run_id));
            Finish::NewConfiguration
        }
        Action::Build => Finish::NewConfiguration,
        Action::BuildVm | Action::BuildVmWithBootloader => Finish::VirtualMachine,
        _ => Finish::Nothing,
    };

    Ok(Plan {
        action: req.action,
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
    .or_else(|| (!req.target_host.is_local()).then_some("--target-host"))
    .or_else(|| (!req.build_host.is_local()).then_some("--build-host"))
    .or_else(|| (req.upgrade != crate::request::Upgrade::None).then_some("--upgrade"))
    .or_else(|| req.diff.then_some("--diff"))
    .or_else(|| matches!(req.elevation, Elevation::Run0 { .. }).then_some("run0 elevation"));
    match missing {
        Some(what) => Err(Error::NotYetAvailable(what)),
        None => Ok(()),
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

/// Evaluate and build the configuration here, in one Nix process.
fn build(req: &Request) -> Result<Session> {
    let attr = attribute(req.action);
    let dry = req.action == Action::DryBuild;
    let link = leaves_result_link(req.action);
    let (argv, capture) = match &req.source {
        Source::Flake(flake) => {
            // `--json` works on every Nix from 2.8 on, unlike `--print-out-paths`.
            let mut argv = vec!["nix".to_string()];
            argv.extend(FEATURES.map(String::from));
            argv.extend(["build".into(), flake.installable(attr), "--json".into()]);
            if !link || req.nix.no_build_output {
                argv.push("--no-link".into());
            }
            if dry {
                argv.push("--dry-run".into());
            }
            argv.extend(req.nix.for_command(NixCommand::FlakeBuild));
            (argv, Capture::BuildJson)
        }
        Source::Classic | Source::File { .. } => {
            let (file, attr) = match &req.source {
                Source::File {
                    file,
                    attr: Some(a),
                } => (file.clone(), format!("{a}.{attr}")),
                Source::File { file, attr: None } => (file.clone(), attr.to_string()),
                _ => ("<nixpkgs/nixos>".to_string(), attr.to_string()),
            };
            let mut argv = vec!["nix-build".to_string(), file, "--attr".into(), attr];
            if !link {
                argv.push("--no-out-link".into());
            }
            if dry {
                argv.push("--dry-run".into());
            }
            argv.extend(req.nix.for_command(NixCommand::LegacyBuild));
            (argv, Capture::PathLine)
        }
        Source::StorePath { .. } | Source::Rollback => unreachable!("nothing to build"),
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
    })
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
    }
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
            let dir = format!("/specialisation/{s}");
            steps.push(step(
                StepKind::CheckSpecialisation,
                vec![
                    Command::new(vec![
                        Word::lit("test"),
                        Word::lit("-x"),
                        Word::var(Var::System, format!("{dir}/bin/switch-to-configuration")),
                    ])
                    .on_failure(format!("specialisation not found: {s}")),
                ],
            ));
            dir
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
        steps.push(step(StepKind::SetProfile, vec![Command::new(set)]));
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
        message: Some("activating the configuration...".into()),
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
        }],
        capture: None,
    });

    Session {
        host: req.target_host.clone(),
        elevation: req.elevation.clone(),
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::tests::{ctx, req, req_in};

    fn plan_of(args: &str) -> Plan {
        plan(&req(args).unwrap(), &NixCaps::floor(), "r1").unwrap()
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
        }
    }

    fn stc(suffix: &str, action: &str, bootloader: &str) -> Step {
        Step {
            kind: StepKind::Activate,
            message: Some("activating the configuration...".into()),
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
        simple(
            StepKind::SetProfile,
            Command::new(vec![
                Word::lit("nix-env"),
                Word::lit("-p"),
                Word::lit(profile),
                Word::lit("--set"),
                Word::var(Var::System, ""),
            ]),
        )
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
                    },
                ],
                finish: Finish::NewConfiguration,
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
            plan(&r, &NixCaps::floor(), "r1").unwrap(),
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
                        Some(Capture::PathLine)
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
                    },
                ],
                finish: Finish::NewConfiguration,
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
                        Some(Capture::PathLine)
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
                    },
                ],
                finish: Finish::NewConfiguration,
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
                            simple(
                                StepKind::SetProfile,
                                Command::new(vec![
                                    Word::lit("nix-env"),
                                    Word::lit("-p"),
                                    Word::lit(SYSTEM),
                                    Word::lit("--switch-generation"),
                                    Word::var(Var::Generation, ""),
                                ])
                            ),
                            stc("", "switch", "0"),
                        ],
                    },
                ],
                finish: Finish::NewConfiguration,
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
            }
        );
    }

    #[test]
    fn unavailable_options_are_refused() {
        let r = req("edit").unwrap();
        assert!(matches!(
            plan(&r, &NixCaps::floor(), "r"),
            Err(Error::NotYetAvailable(_))
        ));
    }
}
