//! Building the system: here in one Nix process, or evaluated here and realised on a build
//! host; image variants; the specialisation check where the system was built.

use super::*;

pub(super) const BUILD_MESSAGE: &str = "building the system configuration...";

/// `<nixpkgs/nixos>` or the `-f` file, and the attribute path to build in it.
pub(super) fn classic_target(req: &Request, attr: &str) -> (String, String) {
    match &req.source {
        Source::File {
            file,
            attr: Some(a),
        } => (file.clone(), format!("{a}.{attr}")),
        Source::File { file, attr: None } => (file.clone(), attr.to_string()),
        _ => ("<nixpkgs/nixos>".to_string(), attr.to_string()),
    }
}

/// rb's own log options for a build ([`NixArgs::rb_log_options`](crate::cli::NixArgs)):
/// `--quiet`, and Nix's `internal-json` log when rb draws progress; none for a dry run,
/// whose output is what Nix would build, nor through nom, which reads Nix's log itself.
pub(super) fn quiet(req: &Request, nom: bool, progress: bool) -> Vec<String> {
    let dry = req.action == Action::DryBuild;
    match dry || nom {
        true => vec![],
        false => req.nix.rb_log_options(progress),
    }
}

/// `nix-store --realise`'s options: the user's, then rb's log options (see [`quiet`]).
pub(super) fn realise_options(req: &Request, progress: bool) -> impl Iterator<Item = Word> {
    req.nix
        .for_command(NixCommand::Realise)
        .into_iter()
        .chain(quiet(req, false, progress))
        .map(Word::Lit)
}

/// Evaluate and build the configuration here, in one Nix process.
pub(super) fn build(req: &Request, nom: bool, progress: bool) -> Result<Session> {
    let attr = &attribute(req);
    let dry = req.action == Action::DryBuild;
    let link = req.action.leaves_result_link();
    let (argv, capture) = match &req.source {
        Source::Flake(flake) => {
            // `--json` works on every Nix from 2.8 on, unlike `--print-out-paths`.
            let mut argv = nix_new_style("build");
            if nom {
                // `nom build` takes nix's arguments after its subcommand.
                argv.retain(|w| w != "nix" && w != "build");
                argv.insert(0, "build".into());
                argv.insert(0, "nom".into());
            }
            argv.push(flake.installable(attr));
            // A dry run builds nothing to read back; without `--json` Nix says in its own
            // words what would be built and fetched, instead of a JSON line on stderr.
            if !dry {
                argv.push("--json".into());
            }
            if !link || req.nix.no_build_output {
                argv.push("--no-link".into());
            }
            if dry {
                argv.push("--dry-run".into());
            }
            argv.extend(req.nix.for_command(NixCommand::FlakeBuild));
            argv.extend(quiet(req, nom, progress));
            (argv, Capture::BuildJson)
        }
        _ => {
            let (file, attr) = classic_target(req, attr);
            let program = if nom { "nom-build" } else { "nix-build" };
            let mut argv = vec![program.to_string(), file, "--attr".into(), attr];
            if !link {
                argv.push("--no-out-link".into());
            }
            if dry {
                argv.push("--dry-run".into());
            }
            argv.extend(req.nix.for_command(NixCommand::LegacyBuild));
            argv.extend(quiet(req, nom, progress));
            (argv, Capture::PathLine(Var::System))
        }
    };
    Ok(Session::one(
        Host::Local,
        Elevation::None,
        Step {
            message: Some(BUILD_MESSAGE.into()),
            capture: (!dry).then_some(capture),
            ..Step::new(StepKind::Build, vec![Command::lit(&argv)])
        },
    ))
}

/// `--build-host`: evaluate here (the only evaluation), send the derivation to the builder,
/// realise it there.
pub(super) fn build_remotely(
    req: &Request,
    builder: &crate::host::SshHost,
    run: &RunEnv,
    caps: &NixCaps,
) -> Vec<Session> {
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
    let mut realise = vec![
        Word::lit("nix-store"),
        Word::lit("--realise"),
        Word::var(Var::Drv, ""),
    ];
    if req.action == Action::DryBuild {
        realise.push(Word::lit("--dry-run"));
    }
    realise.extend(realise_options(req, run.progress));
    vec![
        Session::one(
            Host::Local,
            Elevation::None,
            Step {
                message: Some(BUILD_MESSAGE.into()),
                capture: Some(Capture::PathLine(Var::Drv)),
                ..Step::new(StepKind::Evaluate, vec![Command::lit(&evaluate)])
            },
        ),
        copy_to(req, builder, Var::Drv, run, caps),
        Session::one(
            Host::Ssh(builder.clone()),
            Elevation::None,
            Step {
                message: Some(format!("building on {}...", builder.dest)),
                capture: (req.action != Action::DryBuild).then_some(Capture::PathLine(Var::System)),
                ..Step::new(StepKind::Build, vec![Command::new(realise)])
            },
        ),
    ]
}

/// `build-image`: one evaluation of every image variant's file name, which also checks the
/// chosen variant before anything is built.
pub(super) fn image_variants(req: &Request) -> Session {
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
    Session::one(
        Host::Local,
        Elevation::None,
        Step {
            capture: Some(Capture::ImageVariants {
                variant: req.image_variant.clone(),
            }),
            ..Step::new(StepKind::Evaluate, vec![Command::lit(&argv)])
        },
    )
}

/// `--specialisation S`: the system has `specialisation/S`, or the run stops here.
pub(super) fn check_specialisation(s: &str) -> Step {
    Step::new(
        StepKind::CheckSpecialisation,
        vec![
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
    )
}

/// A missing specialisation is found where the system was built, before it is copied to
/// the target (the target checks again before its profile changes).
pub(super) fn specialisation_before_copy(req: &Request, built_on: &Host) -> Option<Session> {
    req.specialisation
        .as_ref()
        .map(|s| Session::one(built_on.clone(), Elevation::None, check_specialisation(s)))
}
