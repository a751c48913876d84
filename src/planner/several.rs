//! Several targets (`--target-host` given more than once): one plan per target, as
//! [`plan`](super::plan) makes it for one, and one build of every configuration in front of
//! them (README, "Several targets").
//!
//! Each target's plan is planned alone, from its own request, so nothing here assumes one
//! target and nothing in the single-target planner knows about several. What this module does
//! is take the build out of each plan and do it once for all: when every target gets the same
//! configuration, that build as it is; else (a flake's configurations named after each
//! target's host name) one `nix eval` of every configuration's derivation (the only
//! evaluation) and one `nix-store --realise` of all of them, so that shared derivations are
//! built once. `nix build` of several installables would do both in one process, but the
//! order of its `--json` output is not the order of the installables (Nix 2.8 sorts it), and
//! `nix-store --realise` prints each output in the order given. With `--build-host`, the
//! derivations are copied there in one copy (the first target's own copy of its derivation,
//! given every one) and realised there; the build host's connection is then the build's,
//! opened once for all targets ([`Several::connect`]), and each target's copy from there goes
//! through it. Each target's plan then starts at its copy, its `$system` handed to it from the
//! build (`src/several.rs` runs it).

use super::*;
use crate::flake::FlakeRef;
use crate::plan::Connect;

/// `scripts/realise-each.sh`: one `nix-store --realise` of the derivations in `$drvs`.
const REALISE_EACH: &str = include_str!("../scripts/realise-each.sh");

/// How the targets' run goes, for [`several`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct How {
    /// See [`Several::connect_first`].
    pub connect_first: bool,
    /// As [`RunEnv::progress`], for the one build made here.
    pub progress: bool,
}

/// The plans of a run with several targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Several {
    /// The build's connection to `--build-host`, opened once for all targets while the
    /// evaluation runs; each target's sessions there go through it (`src/several.rs`), so
    /// no target's plan connects there itself. Empty without a build host or a build.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect: Vec<Connect>,
    /// Whether the targets' connections open before the build, all at once: their
    /// configurations are named after the host names those connections learn (`--flake
    /// FLAKE` without `#name`). Otherwise they open while the build runs, as for one target.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub connect_first: bool,
    /// The one build of every configuration, on this machine: what yields `$system` (the same
    /// configuration for all) or `$systems`; empty when nothing is built (`--store-path`,
    /// whose path every plan has as an input).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub build: Vec<Session>,
    /// Each target's plan without the build, in the order the targets were given.
    pub plans: Vec<Plan>,
    /// For each plan, which line of `$systems` is its `$system`; empty when the build
    /// yields `$system` itself.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system_of: Vec<usize>,
}

/// `scripts/each-path.sh`: a command with the paths of `$drvs` appended.
const EACH_PATH: &str = include_str!("../scripts/each-path.sh");

/// Whether `session` is part of a plan's build (what `deploy` makes with `build` or
/// `build_remotely`): the evaluation, the derivation's copy to the build host, the build.
fn is_build(session: &Session) -> bool {
    let drv = Word::var(Var::Drv, "");
    session.steps.iter().any(|s| {
        matches!(s.kind, StepKind::Build | StepKind::Evaluate)
            || (s.kind == StepKind::Copy && s.commands.iter().any(|c| c.argv.contains(&drv)))
    })
}

/// Takes the build out of each target's plan (`plans`, made by [`plan`] from `reqs`, one
/// request per target) and makes it one, as `how` says.
pub fn several(reqs: &[Request], mut plans: Vec<Plan>, how: How) -> Result<Several> {
    let How {
        connect_first,
        progress,
    } = how;
    let mut builds = Vec::new();
    for plan in &mut plans {
        let (build, rest): (Vec<Session>, Vec<Session>) =
            plan.sessions.drain(..).partition(is_build);
        plan.sessions = rest;
        builds.push(build);
    }
    if builds.iter().all(Vec::is_empty) {
        return Ok(Several {
            connect: Vec::new(),
            connect_first,
            build: Vec::new(),
            plans,
            system_of: Vec::new(),
        });
    }
    let connect = build_host_connection(reqs, &mut plans);
    // The same configuration for every target (`--flake FLAKE#name`, `-f`, `<nixpkgs/nixos>`):
    // that build as it is, its `$system` for all.
    if builds.iter().all(|b| same(b, &builds[0])) {
        return Ok(Several {
            connect,
            connect_first,
            build: builds.swap_remove(0),
            plans,
            system_of: Vec::new(),
        });
    }
    let flakes: Vec<&FlakeRef> = reqs
        .iter()
        .filter_map(|r| match &r.source {
            Source::Flake(f) => Some(f),
            _ => None,
        })
        .collect();
    let differ =
        || Error::Internal("the targets' builds differ in more than the configuration".into());
    if flakes.len() != reqs.len()
        || reqs.is_empty()
        || flakes.iter().any(|f| f.flake != flakes[0].flake)
    {
        return Err(differ());
    }
    let mut names: Vec<&str> = Vec::new();
    let system_of = flakes
        .iter()
        .map(|f| match names.iter().position(|n| *n == f.name) {
            Some(n) => n,
            None => {
                names.push(&f.name);
                names.len() - 1
            }
        })
        .collect();
    let mut build = evaluate_and_realise(&reqs[0], &flakes[0].flake, &names, progress);
    if let Host::Ssh(builder) = &reqs[0].build_host {
        // With a build host: the derivations go there, in the copy the first target's plan
        // has for its own (with its fallback), and are realised there.
        let copy = builds[0]
            .iter()
            .find(|s| s.steps.iter().any(|st| st.kind == StepKind::Copy))
            .ok_or_else(differ)?;
        build[1].host = Host::Ssh(builder.clone());
        build[1].steps[0].message = Some(format!(
            "building the system configurations on {}...",
            builder.dest
        ));
        build.insert(1, each_drv(copy).ok_or_else(differ)?);
    }
    Ok(Several {
        connect,
        connect_first,
        build,
        plans,
        system_of,
    })
}

/// Takes the build host's connection out of each target's plan: it is the build's, opened
/// once (the build host's probe runs once), and each target's sessions there adopt it.
fn build_host_connection(reqs: &[Request], plans: &mut [Plan]) -> Vec<Connect> {
    let mut connect: Vec<Connect> = Vec::new();
    for (req, plan) in reqs.iter().zip(plans) {
        let Host::Ssh(builder) = &req.build_host else {
            continue;
        };
        let (theirs, rest): (Vec<Connect>, Vec<Connect>) =
            plan.connect.drain(..).partition(|c| &c.host == builder);
        plan.connect = rest;
        for c in theirs {
            match connect.iter_mut().find(|d| d.host == c.host) {
                Some(d) => d.checks.merge(&c.checks),
                None => connect.push(c),
            }
        }
    }
    connect
}

/// Whether two targets' builds are the same but for their commands' environment: a copy to
/// the build host goes through each target's own connections (`NIX_SSHOPTS`), and the build
/// runs through the first target's.
fn same(a: &[Session], b: &[Session]) -> bool {
    fn bare(s: &Session) -> Session {
        let mut s = s.clone();
        for step in &mut s.steps {
            for cmd in &mut step.commands {
                cmd.env = Env::Inherit(Vec::new());
            }
        }
        s.fallback = s.fallback.as_deref().map(|f| Box::new(bare(f)));
        s
    }
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| bare(a) == bare(b))
}

/// A copy of `$drv` (and its fallbacks) made a copy of every derivation in `$drvs`.
fn each_drv(copy: &Session) -> Option<Session> {
    let mut session = copy.clone();
    for step in &mut session.steps {
        for cmd in &mut step.commands {
            if cmd.argv.pop()? != Word::var(Var::Drv, "") {
                return None;
            }
            let mut argv = [
                Word::lit("sh"),
                Word::lit("-c"),
                Word::lit(EACH_PATH),
                Word::lit("rb-each-path"),
                Word::var(Var::Drvs, ""),
            ]
            .to_vec();
            argv.append(&mut cmd.argv);
            cmd.argv = argv;
        }
    }
    session.fallback = match &copy.fallback {
        Some(f) => Some(Box::new(each_drv(f)?)),
        None => None,
    };
    Some(session)
}

/// A Nix string literal of `s`.
fn nix_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' | '$' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `nix eval` of the derivation of each of the flake's configurations `names` (`$drvs`, one
/// per line, in order, `-` for a missing one), then `nix-store --realise` of all of them
/// (`$systems`, in order, `-` for a missing one).
fn evaluate_and_realise(
    req: &Request,
    flake: &str,
    names: &[&str],
    progress: bool,
) -> Vec<Session> {
    let attr = attribute(req);
    let list: Vec<String> = names.iter().map(|n| nix_string(n)).collect();
    // `-` for a name the flake has no configuration of: that target alone fails
    // (`src/several.rs`), the others are built.
    let apply = format!(
        "configurations: builtins.concatStringsSep \"\\n\" (map (name: \
         configurations.${{name}}.{attr}.drvPath or \"-\") [ {} ])",
        list.join(" ")
    );
    let mut evaluate = nix_new_style("eval");
    evaluate.extend([
        "--raw".into(),
        format!("{flake}#nixosConfigurations"),
        "--apply".into(),
        apply,
    ]);
    evaluate.extend(req.nix.for_command(NixCommand::FlakeEval));
    // The outputs need no GC root: they are copied to the targets right away, as a build
    // host's are (`build_remotely`).
    let mut realise = vec![
        Word::lit("sh"),
        Word::lit("-c"),
        Word::lit(REALISE_EACH),
        Word::lit("rb-realise-each"),
        Word::var(Var::Drvs, ""),
        Word::lit("--no-gc-warning"),
    ];
    realise.extend(realise_options(req, progress));
    vec![
        Session::one(
            Host::Local,
            Elevation::None,
            Step {
                message: Some("evaluating the system configurations...".into()),
                capture: Some(Capture::PathLines(Var::Drvs)),
                ..Step::new(StepKind::Evaluate, vec![Command::lit(&evaluate)])
            },
        ),
        Session::one(
            Host::Local,
            Elevation::None,
            Step {
                message: Some("building the system configurations...".into()),
                capture: Some(Capture::PathLines(Var::Systems)),
                ..Step::new(StepKind::Build, vec![Command::new(realise)])
            },
        ),
    ]
}

impl fmt::Display for Several {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = self.plans.first().map_or("", |p| p.action.name());
        writeln!(f, "plan for '{action}' on {} targets:", self.plans.len())?;
        if !self.build.is_empty() {
            // A plan of the build alone, shown as the plans are.
            let alone = Plan {
                action: self.plans[0].action,
                connect: self.connect.clone(),
                inputs: Vec::new(),
                sessions: self.build.clone(),
                confirm: None,
                finish: Finish::Nothing,
            };
            let text = alone.to_string();
            let mut lines: Vec<&str> = text.lines().skip(1).collect();
            lines.pop();
            writeln!(f, "first, one build for every target:")?;
            for line in lines {
                writeln!(f, "{line}")?;
            }
        }
        for (i, plan) in self.plans.iter().enumerate() {
            let host = plan
                .connect
                .first()
                .map_or("?".to_string(), |c| c.host.dest.clone());
            let system = match self.system_of.get(i) {
                Some(n) => format!("line {} of $systems", n + 1),
                None if !self.build.is_empty() => "the build's $system".to_string(),
                None => "as given".to_string(),
            };
            writeln!(
                f,
                "then, for {host} ($system: {system}), at most --max-parallel targets at once:"
            )?;
            // What it prints comes at the end, for all targets.
            let mut text = plan.to_string();
            if self.connect_first {
                text = text.replace("opened while building", "opened before the build");
            }
            let mut lines: Vec<&str> = text.lines().skip(1).collect();
            lines.pop();
            for line in lines {
                writeln!(f, "  {line}")?;
            }
        }
        write!(
            f,
            "finally a summary table on stderr, `HOST<TAB>PATH` on stdout for each target deployed"
        )
    }
}

use std::fmt;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::planner::tests::RUN;
    use crate::request::resolve_for;
    use crate::request::tests::ctx;
    use clap::Parser;

    /// The targets' connections open before the build (`--flake FLAKE` without `#name`).
    const CONNECT_FIRST: How = How {
        connect_first: true,
        progress: false,
    };

    /// Each target's request and whole plan, as `src/several.rs` makes them.
    fn each(args: &str) -> (Vec<Request>, Vec<Plan>) {
        let cli =
            Cli::try_parse_from(std::iter::once("rb").chain(args.split_whitespace())).unwrap();
        let reqs: Vec<Request> = cli
            .hosts
            .target_host
            .iter()
            .map(|t| resolve_for(&cli, &ctx(&[]), Some(t)).unwrap())
            .collect();
        let plans = reqs
            .iter()
            .map(|r| plan(r, &NixCaps::floor(), &RUN).unwrap())
            .collect();
        (reqs, plans)
    }

    fn without_first_session(mut p: Plan) -> Plan {
        p.sessions.remove(0);
        p
    }

    fn local_step(kind: StepKind, message: &str, capture: Capture, argv: Vec<Word>) -> Session {
        Session::one(
            Host::Local,
            Elevation::None,
            Step {
                message: Some(message.into()),
                capture: Some(capture),
                ..Step::new(kind, vec![Command::new(argv)])
            },
        )
    }

    #[test]
    fn each_target_its_host_names_configuration_from_one_evaluation_and_one_build() {
        // ctx() names an SSH host `<host>-name`: root@a and deploy@a share a configuration.
        let args = "switch --flake /cfg --target-host root@a --target-host root@b \
                    --target-host deploy@a --sudo";
        let (reqs, plans) = each(args);
        let s = several(&reqs, plans.clone(), CONNECT_FIRST).unwrap();
        // On a terminal, the one build writes Nix's log for the live area, as one target's.
        let drawn = several(
            &reqs,
            plans.clone(),
            How {
                connect_first: true,
                progress: true,
            },
        )
        .unwrap();
        let argv = &drawn.build[1].steps[0].commands[0].argv;
        assert!(
            argv.ends_with(&["--quiet", "--log-format", "internal-json"].map(Word::lit)),
            "{argv:?}"
        );
        let apply = "configurations: builtins.concatStringsSep \"\\n\" (map (name: \
                     configurations.${name}.config.system.build.toplevel.drvPath or \"-\") \
                     [ \"a-name\" \"b-name\" ])";
        let eval = [
            "nix",
            "--extra-experimental-features",
            "nix-command flakes",
            "eval",
            "--raw",
            "/cfg#nixosConfigurations",
            "--apply",
            apply,
        ];
        let realise = [
            "sh",
            "-c",
            REALISE_EACH,
            "rb-realise-each",
            "$drvs",
            "--no-gc-warning",
            "--quiet",
        ]
        .map(|w| match w {
            "$drvs" => Word::var(Var::Drvs, ""),
            w => Word::lit(w),
        });
        assert_eq!(
            s,
            Several {
                connect: Vec::new(),
                connect_first: true,
                build: vec![
                    local_step(
                        StepKind::Evaluate,
                        "evaluating the system configurations...",
                        Capture::PathLines(Var::Drvs),
                        eval.map(Word::lit).to_vec(),
                    ),
                    local_step(
                        StepKind::Build,
                        "building the system configurations...",
                        Capture::PathLines(Var::Systems),
                        realise.to_vec(),
                    ),
                ],
                // Each target's plan is its plan alone, from its copy on.
                plans: plans.into_iter().map(without_first_session).collect(),
                system_of: vec![0, 1, 0],
            }
        );
        // Every plan still connects to its own target, and only to it.
        let dests: Vec<Vec<&str>> = s
            .plans
            .iter()
            .map(|p| p.connect.iter().map(|c| c.host.dest.as_str()).collect())
            .collect();
        assert_eq!(dests, [["root@a"], ["root@b"], ["deploy@a"]]);
        let text = s.to_string();
        assert!(text.contains("for root@b ($system: line 2 of $systems)"));
        // Their names come from their connections: those open before the build.
        assert!(text.contains(
            "connect to root@b (one SSH connection for the run, opened before the build"
        ));
        assert!(!text.contains("opened while building"));
    }

    #[test]
    fn one_configuration_for_all_is_built_as_for_one_target() {
        for args in [
            "boot --flake /cfg#web --target-host root@a --target-host root@b",
            "test -f ./system.nix --target-host root@a --target-host root@b",
        ] {
            let (reqs, plans) = each(args);
            let s = several(&reqs, plans.clone(), How::default()).unwrap();
            assert_eq!(s.build, vec![plans[0].sessions[0].clone()], "{args}");
            assert_eq!(
                s.plans,
                plans
                    .into_iter()
                    .map(without_first_session)
                    .collect::<Vec<_>>()
            );
            assert!(s.system_of.is_empty() && s.connect.is_empty());
            // Names known without asking the targets: their connections open while building.
            let text = s.to_string();
            assert!(text.contains(
                "connect to root@a (one SSH connection for the run, opened while building"
            ));
            assert!(!text.contains("opened before the build"));
        }
    }

    #[test]
    fn a_store_path_is_built_nowhere_and_magic_rollback_stays_per_target() {
        let (reqs, plans) = each(
            "switch --store-path /nix/store/x-sys --target-host root@a --target-host root@b \
             --confirm-timeout 30",
        );
        let s = several(&reqs, plans.clone(), How::default()).unwrap();
        assert!(s.build.is_empty() && s.system_of.is_empty() && s.connect.is_empty());
        assert_eq!(s.plans, plans);
        assert!(s.plans.iter().all(|p| p.confirm.is_some()));
    }

    #[test]
    fn with_a_build_host_the_derivations_go_there_once_and_each_target_copies_from_there() {
        let (reqs, plans) =
            each("switch --flake /cfg --build-host bld --target-host root@a --target-host root@b");
        let s = several(&reqs, plans.clone(), CONNECT_FIRST).unwrap();
        // Each target's plan from the builder's copy to it on: its evaluation, the copy of its
        // derivation and its build are the shared ones, and so is the builder's connection.
        let rest: Vec<Plan> = plans
            .into_iter()
            .map(|mut p| {
                p.sessions.drain(..3);
                p.connect.retain(|c| c.host.dest != "bld");
                p
            })
            .collect();
        assert_eq!(s.plans, rest);
        assert_eq!(
            s.connect,
            [Connect {
                host: crate::host::SshHost::parse("--build-host", "bld").unwrap(),
                checks: crate::probe::Checks::builder(),
            }]
        );
        let dests: Vec<Vec<&str>> = s
            .plans
            .iter()
            .map(|p| p.connect.iter().map(|c| c.host.dest.as_str()).collect())
            .collect();
        assert_eq!(dests, [["root@a"], ["root@b"]]);
        // Shown once, with the build; each target's section names the target.
        let text = s.to_string();
        assert_eq!(text.matches("connect to bld").count(), 1, "{text}");
        assert!(text.contains("then, for root@a ($system: line 1 of $systems)"));
        assert!(
            s.plans
                .iter()
                .all(|p| p.sessions[0].host.to_string() == "bld"
                    && p.sessions[0].steps[0].kind == StepKind::Copy)
        );
        let shape: Vec<(String, StepKind, Option<Capture>)> = s
            .build
            .iter()
            .map(|b| {
                (
                    b.host.to_string(),
                    b.steps[0].kind,
                    b.steps[0].capture.clone(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                (
                    "local".into(),
                    StepKind::Evaluate,
                    Some(Capture::PathLines(Var::Drvs))
                ),
                ("local".into(), StepKind::Copy, None),
                (
                    "bld".into(),
                    StepKind::Build,
                    Some(Capture::PathLines(Var::Systems))
                ),
            ]
        );
        // The copy (and its nix-copy-closure fallback) takes every derivation of `$drvs`.
        let copy = &s.build[1];
        for cmd in [
            &copy.steps[0].commands[0],
            &copy.fallback.as_ref().unwrap().steps[0].commands[0],
        ] {
            assert_eq!(cmd.argv[2], Word::lit(EACH_PATH));
            assert_eq!(cmd.argv[4], Word::var(Var::Drvs, ""));
            assert!(!cmd.argv.contains(&Word::var(Var::Drv, "")));
        }
        assert_eq!(
            s.build[2].steps[0].commands[0].argv[2],
            Word::lit(REALISE_EACH)
        );
        assert_eq!(s.system_of, [0, 1]);
    }

    #[test]
    fn one_configuration_for_all_on_a_build_host_is_built_as_for_one_target() {
        let (reqs, plans) = each(
            "boot --flake /cfg#web --build-host bld --target-host root@a --target-host root@b",
        );
        let s = several(&reqs, plans.clone(), How::default()).unwrap();
        // The first target's evaluation, copy of the derivation (through its connection:
        // at run time each target's copy names its own, `same`) and build.
        assert_eq!(s.build, plans[0].sessions[..3]);
        assert!(s.system_of.is_empty());
        assert!(s.plans.iter().all(|p| p.sessions.len() == 2));
        assert_eq!(s.connect.len(), 1);
        assert!(s.plans.iter().all(|p| p.connect.len() == 1));
    }

    #[test]
    fn names_are_nix_strings() {
        assert_eq!(nix_string("a"), "\"a\"");
        assert_eq!(nix_string("a\"b${c}\\"), "\"a\\\"b\\${c}\\\\\"");
    }
}
