//! Whole plans, compared for each scenario.

use super::*;
use crate::plan::Connect;
use crate::request::tests::{ctx, req, req_in};

/// The run every plan test plans for (`planner/several.rs`'s tests too).
pub(super) const RUN: RunEnv = RunEnv {
    run_id: "r1",
    nix_sshopts: "-o ControlPath=/tmp/rb.t/%C",
    cwd: "/home/me/cfg",
    program: "rb",
    use_nom: false,
    progress: false,
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
    // rb keeps Nix quiet unless the user asks for its output (NixArgs::quiet_by_default),
    // or the output is the point (a dry run).
    if !extra
        .iter()
        .any(|w| ["--print-build-logs", "--dry-run"].contains(w) || w.starts_with("-v"))
    {
        w.push("--quiet");
    }
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
            output: Output::Log,
            if_lost: None,
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
        output: Output::Log,
        if_lost: Some(
            if matches!(action, "switch" | "boot") {
                "; the profile there is already the new generation, whose activation may not \
                 have finished"
            } else {
                "; the activation there may not have finished"
            }
            .into(),
        ),
    }
}

fn simple(kind: StepKind, command: Command) -> Step {
    Step {
        kind,
        message: None,
        commands: vec![command],
        capture: None,
        output: Output::Log,
        if_lost: None,
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
    set_profile_by(profile, "--set", Var::System)
}

/// `nix-env -p PROFILE VERB $TO`, undone if a later step fails.
fn set_profile_by(profile: &str, verb: &str, to: Var) -> Step {
    let mut set = Command::new(vec![
        Word::lit("nix-env"),
        Word::lit("-p"),
        Word::lit(profile),
        Word::lit(verb),
        Word::var(to, ""),
    ]);
    set.undo = Some(Undo::RestoreProfile {
        profile: profile.into(),
        boot: true,
    });
    Step {
        kind: StepKind::SetProfile,
        message: None,
        commands: vec![set, cmd(&["readlink", profile])],
        capture: Some(Capture::ProfileLink),
        output: Output::Log,
        if_lost: Some("; the profile there is either where it was or at the new generation".into()),
    }
}

/// The copy of `what` from here to a plain `dest` with options `extra`: `nix copy` over
/// ssh-ng, falling back to `nix-copy-closure` with a note; both `--quiet` unless `extra` has
/// a `-v`.
fn copy_here_to(dest: &str, what: Var, extra: &[&str]) -> Session {
    let env = Env::Inherit(vec![("NIX_SSHOPTS".into(), RUN.nix_sshopts.into())]);
    let quiet: &[&str] = if extra.iter().any(|w| w.starts_with("-v")) {
        &[]
    } else {
        &["--quiet"]
    };
    let extra: Vec<&str> = extra.iter().chain(quiet).copied().collect();
    let extra = &extra[..];
    let mut streamed: Vec<Word> = [
        "nix",
        "--extra-experimental-features",
        "nix-command flakes",
        "copy",
    ]
    .iter()
    .chain(extra)
    .chain(&["--no-check-sigs"])
    .map(|w| Word::lit(*w))
    .collect();
    if what == Var::Drv {
        streamed.push(Word::lit("--derivation"));
    }
    streamed.extend([
        Word::lit("--to"),
        Word::lit(format!("ssh-ng://{dest}")),
        Word::var(what, ""),
    ]);
    let mut legacy: Vec<Word> = std::iter::once(&"nix-copy-closure")
        .chain(extra)
        .map(|w| Word::lit(*w))
        .collect();
    legacy.extend([Word::lit("--to"), Word::lit(dest), Word::var(what, "")]);
    let session = |argv: Vec<Word>, message: Option<String>| {
        let mut c = Command::new(argv);
        c.env = env.clone();
        let mut step = simple(StepKind::Copy, c);
        step.message = message;
        step.output = Output::CopyLog;
        Session {
            host: Host::Local,
            elevation: Elevation::None,
            steps: vec![step],
            fallback: None,
        }
    };
    let mut copy = session(streamed, None);
    copy.fallback = Some(Box::new(session(
        legacy,
        Some(format!(
            "the streamed copy to {dest} failed; copying with nix-copy-closure instead \
             (one round trip per store path)"
        )),
    )));
    copy
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
                {
                    let mut c =
                        nix_build("config.system.build.toplevel", &["--no-link", "--dry-run"]);
                    c.argv.retain(|w| w != &Word::lit("--json"));
                    c
                },
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
                        "--no-out-link",
                        "--quiet"
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
            output: Output::Log,
            if_lost: None,
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
                        set_profile_by(SYSTEM, "--switch-generation", Var::Generation),
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

/// `--generation N` is `--rollback` with the generation named: the same plan, but for the
/// generation the capture picks.
#[test]
fn generation_n_is_a_rollback_to_that_generation() {
    for action in ["switch", "boot", "test"] {
        let mut rollback = plan_of(&format!("{action} --rollback -p web --target-host root@aq"));
        let Some(Capture::Generation { pick, .. }) = &mut rollback.sessions[0].steps[0].capture
        else {
            panic!("{rollback:?}")
        };
        *pick = Pick::Number(4);
        assert_eq!(
            plan_of(&format!(
                "{action} --generation 4 -p web --target-host root@aq"
            )),
            rollback,
            "{action}"
        );
    }
}

#[test]
fn switch_with_confirm_timeout_arms_a_watchdog_then_confirms_over_a_new_connection() {
    let aq = crate::host::SshHost::parse("--target-host", "root@aq").unwrap();
    let target = Host::Ssh(aq.clone());
    let sudo = Elevation::Sudo {
        ask_password: false,
        options: vec![],
    };
    // `switch` activates with `test`, rolls back with `test`, and has the watchdog make the
    // new generation the boot default once confirmed.
    let mut arm = cmd(&[
        "rb-watchdog",
        "arm",
        "/run/rb/r1",
        "30",
        "test",
        SYSTEM,
        "restore-profile",
        "boot-when-confirmed",
        "bin/switch-to-configuration",
        "0",
    ]);
    arm.undo = Some(Undo::RollBackNow {
        dir: "/run/rb/r1".into(),
    });
    // A failed `test` leaves the boot loader alone: the profile goes back without `boot`.
    let mut set = set_profile(SYSTEM);
    set.commands[0].undo = Some(Undo::RestoreProfile {
        profile: SYSTEM.into(),
        boot: false,
    });
    assert_eq!(
        plan_of("switch --flake /cfg#h --target-host root@aq --sudo --confirm-timeout 30"),
        Plan {
            action: Action::Switch,
            connect: vec![connect_to(&aq, true, Some(sudo.clone()))],
            inputs: vec![],
            sessions: vec![
                build_session(
                    nix_build("config.system.build.toplevel", &["--no-link"]),
                    Some(Capture::BuildJson)
                ),
                copy_here_to("root@aq", Var::System, &[]),
                // One session, one round trip: checks, the watchdog, profile, activation.
                Session {
                    host: target.clone(),
                    elevation: sudo.clone(),
                    steps: vec![
                        check_closure(),
                        simple(StepKind::ArmWatchdog, arm),
                        set,
                        Step {
                            if_lost: stc("", "switch", "0").if_lost,
                            ..stc("", "test", "0")
                        },
                    ],
                    fallback: None,
                },
            ],
            confirm: Some(crate::plan::Confirm {
                timeout: 30,
                dir: "/run/rb/r1".into(),
                checks: vec![],
                boot: Some(format!("{SYSTEM}/bin/switch-to-configuration")),
                session: Session {
                    host: target,
                    elevation: sudo,
                    steps: vec![Step {
                        kind: StepKind::Confirm,
                        message: None,
                        commands: vec![cmd(&["rb-watchdog", "confirm", "/run/rb/r1"])],
                        capture: Some(Capture::Verdict),
                        output: Output::Log,
                        if_lost: None,
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
    let inst = inst("config.system.build.toplevel.drvPath");
    assert_eq!(
        plan_of("test --flake /cfg#h --build-host root@t --target-host root@t"),
        Plan {
            action: Action::Test,
            connect: vec![connect_to(&host, true, Some(Elevation::None))],
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
                        output: Output::Log,
                        if_lost: None,
                    }],
                    fallback: None,
                },
                copy_here_to("root@t", Var::Drv, &[]),
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
                                Word::lit("--quiet"),
                            ])],
                            capture: Some(Capture::PathLine(Var::System)),
                            output: Output::Log,
                            if_lost: None,
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
    assert_eq!(
        plan_of("switch --flake /cfg#h --target-host deploy@t -S -s"),
        Plan {
            action: Action::Switch,
            connect: vec![connect_to(&host, true, Some(sudo.clone()))],
            inputs: vec![],
            // The connection's probe tries the password (probe.rs): no session of its own.
            sessions: vec![
                build_session(
                    nix_build("config.system.build.toplevel", &["--no-link"]),
                    Some(Capture::BuildJson)
                ),
                copy_here_to("deploy@t", Var::System, &["-s"]),
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

/// A host to connect to with what its probe checks: `target` (commands, and root with
/// `root`), else a build host's.
fn connect_to(host: &crate::host::SshHost, target: bool, root: Option<Elevation>) -> Connect {
    use crate::probe::Checks;
    let mut checks = match target {
        true => Checks {
            commands: vec!["nix-store".into(), "nix-env".into()],
            ..Checks::default()
        },
        false => Checks::builder(),
    };
    checks.root = root;
    Connect {
        host: host.clone(),
        checks,
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
            cmd(&["sh", "-c", &list_script(), "sh", profile]),
        ],
        capture: Some(Capture::Generations),
        output: Output::Log,
        if_lost: None,
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
            connect: vec![Connect {
                host: ssh("deploy@aq"),
                checks: Default::default(),
            }],
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
            output: Output::Terminal,
            if_lost: None,
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
        output: Output::Log,
        if_lost: None,
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
            output: Output::Log,
            if_lost: None,
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
                        "a=/b",
                        "--quiet"
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
                cmd(&crate::elevation::root_check()).on_failure(UPGRADE_NEEDS_ROOT),
                cmd(&["sh", "-c", UPGRADE_SCRIPT, "rb", all]),
            ],
            capture: None,
            output: Output::Log,
            if_lost: None,
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
    assert_eq!(p.sessions[1].steps[0].kind, StepKind::Build);
    assert!(p.connect[0].checks.needs_password());
    // Here, the password is tried by a session of its own before the build.
    let p = plan_of("switch --upgrade -S");
    assert_eq!(p.sessions[1].steps[0].kind, StepKind::CheckElevation);
    assert_eq!(
        p.sessions[1].elevation,
        Elevation::Sudo {
            ask_password: true,
            options: vec![]
        }
    );
    assert_eq!(p.sessions[2].steps[0].kind, StepKind::Build);
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
    // The package diff script, on the new system, its output kept as the package diff.
    let diff = Step {
        kind: StepKind::Diff,
        message: None,
        commands: vec![Command::new(vec![
            Word::lit("sh"),
            Word::lit("-c"),
            Word::lit(include_str!("../scripts/package-diff.sh")),
            Word::lit("rb"),
            Word::var(Var::System, ""),
        ])],
        capture: Some(Capture::PackageDiff),
        output: Output::Log,
        if_lost: None,
    };
    assert_eq!(activation.steps[1], diff);
    assert!(
        p.to_string()
            .contains("→ $diff (the package diff, shown when the step ends)"),
        "{p}"
    );
    // build has no activation: the diff is a session of its own on the target.
    let p = plan_of("build --flake /cfg#h --diff --target-host root@aq");
    assert_eq!(
        p.sessions.last().unwrap(),
        &one_step(Host::Ssh(ssh("root@aq")), Elevation::None, diff)
    );
}

/// On a terminal (`RunEnv::progress`), builds and copies write Nix's `internal-json` log for
/// rb's status area, and still `--quiet`; the user's own log options leave them alone.
#[test]
fn drawn_progress_asks_nix_for_its_json_log() {
    let drawn = RunEnv {
        progress: true,
        ..RUN
    };
    let json = ["--quiet", "--log-format", "internal-json"].map(Word::lit);
    let has_json = |c: &Command| c.argv.windows(3).any(|w| w == json);
    let p = plan(
        &req("switch --flake /cfg#h --target-host root@aq").unwrap(),
        &NixCaps::floor(),
        &drawn,
    )
    .unwrap();
    let build = &p.sessions[0].steps[0];
    assert!(has_json(&build.commands[0]), "{p}");
    let copy = &p.sessions[1];
    assert!(has_json(&copy.steps[0].commands[0]), "{p}");
    assert!(
        has_json(&copy.fallback.as_ref().unwrap().steps[0].commands[0]),
        "{p}"
    );
    let p = plan(
        &req("switch --flake /cfg#h --build-host b --target-host root@aq").unwrap(),
        &NixCaps::floor(),
        &drawn,
    )
    .unwrap();
    let realise = p
        .sessions
        .iter()
        .flat_map(|s| &s.steps)
        .find(|s| s.kind == StepKind::Build)
        .unwrap();
    assert!(has_json(&realise.commands[0]), "{p}");
    // -L: Nix's own output, as asked.
    let p = plan(
        &req("switch --flake /cfg#h -L").unwrap(),
        &NixCaps::floor(),
        &drawn,
    )
    .unwrap();
    assert!(!has_json(&p.sessions[0].steps[0].commands[0]), "{p}");
}

/// `--ask`: a session of its own shows what changes and asks at its end. Before a copy to a
/// remote target: the package diff, made here with the target's half over ssh. Where the
/// closure is on the target already: on the target, the package diff and the units
/// dry-activate names. The activation session after it is as without `--ask`, its diff
/// being shown already.
#[test]
fn ask_previews_in_a_session_of_its_own_before_activation() {
    let kinds = |s: &Session| s.steps.iter().map(|s| s.kind).collect::<Vec<_>>();
    let p = plan_of("switch --flake /cfg#h --diff --ask --target-host root@aq");
    assert_eq!(p.sessions.len(), 4, "{p}");
    let preview = &p.sessions[1];
    assert_eq!(preview.host, Host::Local);
    assert_eq!(kinds(preview), [StepKind::Diff]);
    assert_eq!(preview.steps[0].output, Output::Ask);
    assert_eq!(preview.steps[0].capture, Some(Capture::PackageDiff));
    assert_eq!(kinds(&p.sessions[2]), [StepKind::Copy]);
    assert_eq!(
        kinds(&p.sessions[3]),
        [
            StepKind::CheckClosure,
            StepKind::SetProfile,
            StepKind::Activate
        ]
    );
    // The closure is on the target already (built there): asked there, with the units.
    let p = plan_of("switch --flake /cfg#h --ask --build-host root@aq --target-host root@aq");
    let preview = &p.sessions[p.sessions.len() - 2];
    assert_eq!(preview.host, Host::Ssh(ssh("root@aq")));
    // (In one session with the build there.)
    assert_eq!(
        kinds(preview)[kinds(preview).len() - 2..],
        [StepKind::Diff, StepKind::DryActivate]
    );
    assert_eq!(preview.steps.last().unwrap().output, Output::Ask);
    // boot activates nothing now: no units to name.
    let p = plan_of("boot --flake /cfg#h --ask");
    assert_eq!(kinds(&p.sessions[1]), [StepKind::Diff]);
    assert_eq!(p.sessions[1].steps[0].output, Output::Ask);
    // --yes: shown, not asked.
    let p = plan_of("switch --flake /cfg#h --ask --yes");
    assert!(
        p.sessions
            .iter()
            .flat_map(|s| &s.steps)
            .all(|s| s.output != Output::Ask),
        "{p}"
    );
    assert!(
        p.sessions
            .iter()
            .flat_map(|s| &s.steps)
            .any(|s| s.kind == StepKind::DryActivate)
    );
    // Nothing to ask for an action that changes nothing.
    let r = req("build --flake /cfg#h --ask").unwrap();
    assert!(!r.ask);
    assert_eq!(r.warnings, ["--ask is a no-op with 'build'"]);
}

#[test]
fn store_path_to_a_target_is_copied_then_activated_there() {
    let path = "/nix/store/abc-nixos-system";
    assert_eq!(
        plan_of(&format!("switch --store-path {path} --target-host root@aq")),
        Plan {
            action: Action::Switch,
            connect: vec![connect_to(&ssh("root@aq"), true, Some(Elevation::None))],
            inputs: vec![(Var::System, path.into())],
            sessions: vec![
                copy_here_to("root@aq", Var::System, &[]),
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

#[test]
fn only_the_hosts_a_run_needs_are_connected_to() {
    let t = ssh("root@t");
    let b = ssh("b");
    let connect = |args: &str| plan_of(args).connect;
    let root = Some(Elevation::None);
    assert_eq!(
        connect("dry-build --flake /cfg#h --target-host root@t"),
        vec![]
    );
    assert_eq!(
        connect("switch --rollback --build-host b --target-host root@t"),
        vec![connect_to(&t, true, root.clone())]
    );
    assert_eq!(
        connect("test --store-path /nix/store/x-sys --build-host b --target-host root@t"),
        vec![connect_to(&t, true, root.clone())]
    );
    // build: the target only receives the system, so needs no root.
    assert_eq!(
        connect("build --flake /cfg#h --build-host b --target-host root@t"),
        vec![connect_to(&b, false, None), connect_to(&t, true, None)]
    );
    assert_eq!(
        connect("switch --flake /cfg#h --build-host b"),
        vec![connect_to(&b, false, None)]
    );
}

/// The copy chain of each host form: a plain host streams with a fallback, a scheme the user
/// wrote is used as written.
#[test]
fn copies_stream_to_plain_hosts_and_keep_a_written_scheme() {
    let argv0 = |s: &Session| match &s.steps[0].commands[0].argv[..] {
        [Word::Lit(p), ..] if p == "nix" => s.steps[0].commands[0]
            .argv
            .iter()
            .filter_map(|w| match w {
                Word::Lit(l)
                    if l.contains("://")
                        || l.starts_with("--")
                            && l != "--no-check-sigs"
                            && l != "--quiet"
                            && l != "--extra-experimental-features" =>
                {
                    Some(l.clone())
                }
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" "),
        // A script: its name and its other literal words.
        [Word::Lit(sh), Word::Lit(c), Word::Lit(_script), rest @ ..] if sh == "sh" && c == "-c" => {
            rest.iter()
                .map(|w| match w {
                    Word::Lit(l) => l.clone(),
                    Word::Var { var, .. } => format!("{var:?}"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        }
        [Word::Lit(p), ..] => p.clone(),
        _ => String::new(),
    };
    let chain = |s: &Session| {
        let mut out = vec![format!("{}: {}", s.host, argv0(s))];
        let mut next = &s.fallback;
        while let Some(f) = next {
            out.push(format!("{}: {}", f.host, argv0(f)));
            next = &f.fallback;
        }
        out
    };
    let legacy = plan_of("switch --flake /cfg#h --target-host ssh://root@aq");
    assert_eq!(chain(&legacy.sessions[1]), ["local: nix-copy-closure"]);
    let ng = plan_of("switch --flake /cfg#h --build-host ssh-ng://b --target-host ssh-ng://t");
    assert_eq!(
        chain(&ng.sessions[1]),
        ["local: --derivation --to ssh-ng://b"]
    );
    assert_eq!(
        chain(&ng.sessions[3]),
        [
            "b: --to ssh-ng://t",
            "local: --from ssh-ng://b --to ssh-ng://t"
        ]
    );
    let plain = plan_of("switch --flake /cfg#h --build-host b --target-host root@t");
    assert_eq!(
        chain(&plain.sessions[3]),
        [
            "b: --to ssh-ng://root@t",
            "b: nix-copy-closure",
            "local: --from ssh://b --to ssh://root@t"
        ]
    );
    // Results come back in one streamed session (scripts/copy-from.sh, its remote half
    // quoted for the host's shell), nix-copy-closure as its fallback; a written scheme is
    // used as written.
    let back = plan_of("switch --flake /cfg#h --build-host b");
    let remote = crate::shell::join(&[
        "sh",
        "-c",
        super::copy::EXPORT_CLOSURE_SCRIPT,
        "rb-export-closure",
    ]);
    assert_eq!(
        chain(&back.sessions[3]),
        [
            format!("local: rb-copy-from b {remote} System"),
            "local: nix-copy-closure".into()
        ]
    );
    assert_eq!(
        back.sessions[3].steps[0].commands[0].argv[2],
        Word::lit(super::copy::COPY_FROM_SCRIPT)
    );
    let back = plan_of("switch --flake /cfg#h --build-host ssh://b");
    assert_eq!(chain(&back.sessions[3]), ["local: nix-copy-closure"]);
    let back = plan_of("switch --flake /cfg#h --build-host ssh-ng://b");
    assert_eq!(chain(&back.sessions[3]), ["local: --from ssh-ng://b"]);
}

/// Nix 2.8's `nix-copy-closure` hands an IPv6 host to ssh as written; 2.34's refuses it
/// without brackets. The streamed copy takes a URI, bracketed on every version.
#[test]
fn an_ipv6_target_is_spelled_for_the_local_nix() {
    let copy_words = |caps: &NixCaps| {
        let r = req("test --store-path /nix/store/abc-nixos-system --target-host root@[::1]");
        let p = plan(&r.unwrap(), caps, &RUN).unwrap();
        let copy = p
            .sessions
            .iter()
            .find(|s| s.steps[0].kind == StepKind::Copy)
            .unwrap()
            .clone();
        let lits = |s: &Session| -> Vec<String> {
            s.steps[0].commands[0]
                .argv
                .iter()
                .filter_map(|w| match w {
                    Word::Lit(l) => Some(l.clone()),
                    _ => None,
                })
                .collect()
        };
        (lits(&copy), lits(copy.fallback.as_deref().unwrap()))
    };
    let (streamed, legacy) = copy_words(&NixCaps::floor());
    assert_eq!(streamed[streamed.len() - 1], "ssh-ng://root@[::1]");
    assert_eq!(legacy, ["nix-copy-closure", "--quiet", "--to", "root@::1"]);
    let (streamed, legacy) = copy_words(&NixCaps::parse("nix (Nix) 2.34.8").unwrap());
    assert_eq!(streamed[streamed.len() - 1], "ssh-ng://root@[::1]");
    assert_eq!(
        legacy,
        ["nix-copy-closure", "--quiet", "--to", "root@[::1]"]
    );
}

/// With nix-output-monitor, the local build is `nom build` (nix's arguments after its
/// subcommand) or `nom-build`; nothing else in the plan changes.
#[test]
fn nom_builds_locally_when_asked() {
    let nom = RunEnv {
        use_nom: true,
        ..RUN
    };
    for (args, program) in [
        ("switch --flake /cfg#h", "nom"),
        ("switch -f /cfg/system.nix", "nom-build"),
    ] {
        let plain = plan(&req(args).unwrap(), &NixCaps::floor(), &RUN).unwrap();
        let mut with_nom = plan(&req(args).unwrap(), &NixCaps::floor(), &nom).unwrap();
        let argv = &mut with_nom.sessions[0].steps[0].commands[0].argv;
        assert_eq!(argv[0], Word::lit(program), "{args}");
        if program == "nom" {
            assert_eq!(argv[1], Word::lit("build"));
            assert_eq!(argv[2..4], [Word::lit(FEATURES[0]), Word::lit(FEATURES[1])]);
            // Back to `nix <features> build …`: the rest is the same as without nom.
            argv.drain(0..2);
            argv.insert(2, Word::lit("build"));
            argv.insert(0, Word::lit("nix"));
        } else {
            argv[0] = Word::lit("nix-build");
        }
        // Nix stays quiet without nom; nom reads Nix's log itself.
        let mut plain = plain;
        assert_eq!(
            plain.sessions[0].steps[0].commands[0].argv.pop(),
            Some(Word::lit("--quiet"))
        );
        assert_eq!(with_nom, plain, "{args}");
    }
}

/// The plan of a command line given word by word (for options whose values have spaces).
fn plan_of_argv(words: &[&str]) -> Plan {
    use clap::Parser;
    let cli = crate::cli::Cli::try_parse_from(std::iter::once("rb").chain(words.iter().copied()))
        .unwrap();
    let req = crate::request::resolve(&cli, &ctx(&[])).unwrap();
    plan(&req, &NixCaps::floor(), &RUN).unwrap()
}

/// `--confirm-check`: the confirming command carries the checks (one round trip); a
/// specialisation's `switch` activates it with `test` and has the watchdog make it the boot
/// default once confirmed, with --install-bootloader then.
#[test]
fn confirm_checks_run_in_the_confirming_session_and_switch_boots_once_confirmed() {
    let path = "/nix/store/abc-nixos-system";
    let aq = ssh("root@aq");
    let target = Host::Ssh(aq.clone());
    let mut arm = cmd(&[
        "rb-watchdog",
        "arm",
        "/run/rb/r1",
        "9",
        "test",
        SYSTEM,
        "restore-profile",
        "boot-when-confirmed",
        "specialisation/web/bin/switch-to-configuration",
        "1",
    ]);
    arm.undo = Some(Undo::RollBackNow {
        dir: "/run/rb/r1".into(),
    });
    let mut set = set_profile(SYSTEM);
    set.commands[0].undo = Some(Undo::RestoreProfile {
        profile: SYSTEM.into(),
        boot: false,
    });
    let checks = [
        "systemctl is-active nginx",
        "curl -fsS http://localhost/ | grep -q '$ok'",
    ];
    let p = plan_of_argv(&[
        "switch",
        "--store-path",
        path,
        "--target-host",
        "root@aq",
        "-c",
        "web",
        "--install-bootloader",
        "--confirm-timeout",
        "9",
        "--confirm-check",
        checks[0],
        "--confirm-check",
        checks[1],
    ]);
    assert_eq!(
        p,
        Plan {
            action: Action::Switch,
            connect: vec![connect_to(&aq, true, Some(Elevation::None))],
            inputs: vec![(Var::System, path.into())],
            sessions: vec![
                copy_here_to("root@aq", Var::System, &[]),
                Session {
                    host: target.clone(),
                    elevation: Elevation::None,
                    steps: vec![
                        check_specialisation("web"),
                        check_closure(),
                        simple(StepKind::ArmWatchdog, arm),
                        set,
                        Step {
                            if_lost: stc("", "switch", "1").if_lost,
                            ..stc("/specialisation/web", "test", "1")
                        },
                    ],
                    fallback: None,
                },
            ],
            confirm: Some(crate::plan::Confirm {
                timeout: 9,
                dir: "/run/rb/r1".into(),
                checks: checks.map(String::from).to_vec(),
                boot: Some(format!(
                    "{SYSTEM}/specialisation/web/bin/switch-to-configuration"
                )),
                session: Session {
                    host: target,
                    elevation: Elevation::None,
                    steps: vec![Step {
                        kind: StepKind::Confirm,
                        message: None,
                        commands: vec![cmd(&[
                            "rb-watchdog",
                            "confirm",
                            "/run/rb/r1",
                            checks[0],
                            checks[1],
                        ])],
                        capture: Some(Capture::Verdict),
                        output: Output::Log,
                        if_lost: None,
                    }],
                    fallback: None,
                },
            }),
            finish: Finish::NewConfiguration,
        }
    );
    let text = p.to_string();
    assert!(
        text.ends_with(&format!(
            "   8. confirm               rb-watchdog confirm /run/rb/r1 'systemctl is-active nginx' \
             'curl -fsS http://localhost/ | grep -q '\\''$ok'\\'''\n\
             {pad}→ the watchdog's verdict\n\
             {pad}checks first, in order, each within the window (one that fails rolls back at \
             once):\n\
             {pad}  1. systemctl is-active nginx\n\
             {pad}  2. curl -fsS http://localhost/ | grep -q '$ok'\n\
             {pad}once confirmed: {SYSTEM}/specialisation/web/bin/switch-to-configuration boot \
             (the new generation becomes the boot default)\n\
             then print the new configuration's path on stdout",
            pad = " ".repeat(28)
        )),
        "{text}"
    );
}

/// `boot` and `test` under magic rollback do what they do without it (`boot` sets the boot
/// default when it runs, and its rollback puts the previous one back); no boot at
/// confirmation; checks are the confirming command's words there too.
#[test]
fn boot_and_test_with_confirm_timeout_keep_their_activation() {
    let p = plan_of_argv(&[
        "boot",
        "--store-path",
        "/nix/store/abc-nixos-system",
        "--target-host",
        "root@aq",
        "--confirm-timeout",
        "9",
        "--confirm-check",
        "true",
    ]);
    let activation = &p.sessions[1];
    assert_eq!(
        activation.steps[1].commands[0],
        Command {
            undo: Some(Undo::RollBackNow {
                dir: "/run/rb/r1".into()
            }),
            ..cmd(&[
                "rb-watchdog",
                "arm",
                "/run/rb/r1",
                "9",
                "boot",
                SYSTEM,
                "restore-profile"
            ])
        }
    );
    assert_eq!(activation.steps[2], set_profile(SYSTEM));
    assert_eq!(activation.steps[3], stc("", "boot", "0"));
    let confirm = p.confirm.unwrap();
    assert_eq!(
        (confirm.checks.as_slice(), &confirm.boot),
        (&["true".to_string()][..], &None)
    );
    assert_eq!(
        confirm.session.steps[0].commands[0],
        cmd(&["rb-watchdog", "confirm", "/run/rb/r1", "true"])
    );
    let p = plan_of(
        "test --store-path /nix/store/abc-nixos-system --target-host root@aq --confirm-timeout 9",
    );
    assert_eq!(p.sessions[1].steps[2], stc("", "test", "0"));
    assert_eq!(p.confirm.unwrap().boot, None);
}
