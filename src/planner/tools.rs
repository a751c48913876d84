//! The actions that deploy nothing: `--upgrade`'s channel update, `edit`, `repl`,
//! `list-generations`.

use super::*;

pub(super) const UPGRADE_NEEDS_ROOT: &str = "if you pass the '--upgrade' or '--upgrade-all' flag, you must \
also pass '--sudo', '--run0', or run the command as root (e.g., with sudo)";

/// `--upgrade` (`$1` = 0) / `--upgrade-all` (`$1` = 1): root's channels, as nixos-rebuild-ng
/// updates them: `nixos` and the ones holding `.update-on-nixos-rebuild`, or all;
/// a channel that fails to update is a warning.
pub(super) const UPGRADE_SCRIPT: &str = include_str!("../scripts/upgrade-channels.sh");

/// Updates root's channels on this machine (where `<nixpkgs>` is read), as root: rb's own
/// user when that is root, else through `--sudo` (which may prompt here).
pub(super) fn upgrade_channels(req: &Request, run: &RunEnv) -> Session {
    let elevation = req.elevation.without_password();
    let all = if req.upgrade == Upgrade::All {
        "1"
    } else {
        "0"
    };
    Session::one(
        Host::Local,
        elevation,
        Step::new(
            StepKind::UpgradeChannels,
            vec![
                Command::lit(&crate::elevation::root_check()).on_failure(UPGRADE_NEEDS_ROOT),
                Command::lit(&["sh", "-c", UPGRADE_SCRIPT, run.program, all]),
            ],
        ),
    )
}

/// The configuration file of a classic system: `$NIXOS_CONFIG`, else
/// `<nixos-config>`, else `/etc/nixos`; a directory means its `default.nix`. Printed
/// absolute; fails when it does not exist.
pub(super) const FIND_CONFIG_SCRIPT: &str = include_str!("../scripts/find-config.sh");

/// `$EDITOR` split into words as `nix edit` and the bash tool do (`EDITOR="code -w"`).
pub(super) const EDITOR_SCRIPT: &str = include_str!("../scripts/editor.sh");

/// `edit`: `nix edit` of a flake's configuration; otherwise `$EDITOR` on the file found.
pub(super) fn edit(req: &Request) -> Vec<Session> {
    let interactive = |command: Command| {
        Session::one(
            Host::Local,
            Elevation::None,
            Step {
                output: Output::Terminal,
                ..Step::new(StepKind::Edit, vec![command])
            },
        )
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
        Session::one(
            Host::Local,
            Elevation::None,
            Step {
                capture: Some(Capture::PathLine(Var::ConfigFile)),
                ..Step::new(
                    StepKind::FindConfig,
                    vec![Command::lit(&find).on_failure("cannot find NixOS config file")],
                )
            },
        ),
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
pub(super) fn nix_string(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace("${", "\\${")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// `path` relative to `cwd`, `.` and `..` resolved without looking at the file system.
pub(super) fn absolute(cwd: &str, path: &str) -> String {
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
pub(super) fn absolute_flake(flake: &str, cwd: &str) -> String {
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
pub(super) fn repl_flake_expr(flake: &str, name: &str) -> String {
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
pub(super) fn repl_file_attr_expr(file: &str, attr: &str, cwd: &str) -> String {
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
pub(super) const REPL_FILE_SCRIPT: &str = include_str!("../scripts/repl-file.sh");

/// `repl`: `nix repl` with the configuration in scope.
pub(super) fn repl(req: &Request, caps: &NixCaps, run: &RunEnv) -> Session {
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
    Session::one(
        Host::Local,
        Elevation::None,
        Step {
            output: Output::Terminal,
            ..Step::new(StepKind::Repl, vec![Command::lit(&argv)])
        },
    )
}

/// `list-generations` on the target (here by default): one process, no root.
pub(super) fn list_generations(req: &Request) -> Session {
    let profile = req.profile.path();
    let name = req.profile.name.as_deref().unwrap_or("system");
    let commands = vec![
        Command::lit(&["test", "-e", &profile]).on_failure(format!("no profile '{name}' found")),
        Command::lit(&["sh", "-c", &list_script(), "sh", &profile]),
    ];
    Session::one(
        req.target_host.clone(),
        Elevation::None,
        Step {
            capture: Some(Capture::Generations),
            ..Step::new(StepKind::ListGenerations, commands)
        },
    )
}
