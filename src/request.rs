//! The resolved request: what the command line means.
//!
//! `resolve` turns the parsed [`Cli`] into a [`Request`]: flags normalised (deprecated aliases,
//! `dry-run`), conflicts refused with nixos-rebuild-ng's messages, what to build
//! decided (flake, classic, file, store path, rollback), hosts parsed, elevation chosen.
//! Everything it needs from the outside world comes in through [`Context`], so it is pure.

use crate::cli::{Action, Cli, ElevateMethod, NixArgs};
use crate::elevation::Elevation;
use crate::error::{Error, Result};
use crate::flake::{self, FlakeRef};
use crate::host::{Host, SshHost};
use crate::shell;
use serde::Serialize;
use std::collections::BTreeMap;

/// Asks a host for its host name (for the local one, this machine's), checking what it must
/// offer for the run in the same round trip (`probe.rs`).
pub type HostnameOf = dyn Fn(&Host, &crate::probe::Checks) -> Result<String>;

/// What rb knows about its surroundings when it starts.
pub struct Context {
    /// rb's environment.
    pub env: BTreeMap<String, String>,
    /// The directory of `/etc/nixos/flake.nix` (symlinks resolved) when that file exists.
    pub etc_nixos_flake: Option<String>,
    /// Whether `/etc/nixos/system.nix` exists (a whole system expression, README "What gets
    /// built, and where").
    pub etc_nixos_system: bool,
    /// Whether `system.nix` exists in rb's working directory (what `-A` without `-f` reads).
    pub system_nix_in_cwd: bool,
    /// The host name of a host; for the local one, this machine's.
    pub hostname: Box<HostnameOf>,
}

/// What to deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// A NixOS configuration of a flake.
    Flake(FlakeRef),
    /// `<nixpkgs/nixos>`, configured by `NIXOS_CONFIG` or `<nixos-config>`.
    Classic,
    /// `-f FILE` and/or `-A ATTR`.
    File { file: String, attr: Option<String> },
    /// `--store-path`: a system closure built elsewhere.
    StorePath { path: String },
    /// `--rollback`: the previous generation of the profile; `--generation N`: generation N.
    Rollback { generation: Option<u64> },
}

/// A system profile: `system`, or `system-profiles/<name>` for `--profile-name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub name: Option<String>,
}

pub const PROFILES: &str = "/nix/var/nix/profiles";

impl Profile {
    pub fn path(&self) -> String {
        match &self.name {
            None => format!("{PROFILES}/system"),
            Some(name) => format!("{PROFILES}/system-profiles/{name}"),
        }
    }

    /// The directory rb must create on the target before setting the profile, if any.
    pub fn dir_to_create(&self) -> Option<String> {
        self.name
            .as_ref()
            .map(|_| format!("{PROFILES}/system-profiles"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    pub action: Action,
    pub source: Source,
    pub build_host: Host,
    pub target_host: Host,
    pub elevation: Elevation,
    pub profile: Profile,
    pub specialisation: Option<String>,
    pub install_bootloader: bool,
    pub nix: NixArgs,
    /// Wrap activation in `systemd-run` where the target runs systemd
    /// (off with `NIXOS_REBUILD_NO_SYSTEMD_RUN`).
    pub systemd_run: bool,
    /// Check that the new system has `nixos-version` before making it the profile (off with
    /// `NIXOS_REBUILD_I_UNDERSTAND_THE_CONSEQUENCES_PLEASE_BREAK_MY_SYSTEM`).
    pub check_closure: bool,
    pub diff: bool,
    /// `--ask`: show what changes on the target and ask before changing it (README,
    /// "Progress"); `ask_yes` (`--yes`): show it and go on.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ask: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ask_yes: bool,
    pub image_variant: Option<String>,
    pub upgrade: Upgrade,
    /// `--json`: machine-readable output (list-generations).
    pub json: bool,
    /// `--confirm-timeout`: magic rollback unless confirmed within this many seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm_timeout: Option<u64>,
    /// `--confirm-check`: commands that must succeed on the target before rb confirms.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub confirm_checks: Vec<String>,
    /// `--keep-generation-on-failure`: a failed activation leaves the new generation as the
    /// profile and boot default.
    pub keep_generation_on_failure: bool,
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// What `--verbose` explains about how the command line was read.
    #[serde(skip)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Upgrade {
    None,
    Nixos,
    All,
}

fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(msg.into())
}

pub fn resolve(cli: &Cli, ctx: &Context) -> Result<Request> {
    resolve_for(cli, ctx, cli.hosts.target_host.first())
}

/// The request for one target (`target`, a `--target-host` value, or None for this machine):
/// with several `--target-host`, `several.rs` resolves one request per target.
pub fn resolve_for(cli: &Cli, ctx: &Context, target: Option<&String>) -> Result<Request> {
    let action = cli
        .action
        .ok_or_else(|| usage("no action given; try 'switch', 'boot', 'test' or 'build'"))?;
    let src = &cli.source;
    let act = &cli.activation;
    let mut warnings = Vec::new();

    // Deprecated spellings, with nixos-rebuild-ng's warnings.
    let legacy = &cli.legacy;
    if legacy.install_grub {
        warnings.push("--install-grub is deprecated, use --install-bootloader instead".into());
    }
    if legacy.use_remote_sudo {
        warnings.push("--use-remote-sudo is deprecated, use --sudo instead".into());
    }
    if legacy.fast {
        warnings.push("--fast is deprecated, use --no-reexec instead".into());
    }
    if legacy.no_ssh_tty {
        warnings.push("--no-ssh-tty is deprecated, SSH's TTY is never used anymore".into());
    }
    if legacy.no_build_nix {
        warnings.push("--no-build-nix is deprecated, we do not build nix anymore".into());
    }
    let ask = act.ask && action.activates() && action != Action::DryActivate;
    if act.ask && !ask {
        warnings.push(format!("--ask is a no-op with '{}'", action.name()));
    }
    let mut diff = act.diff;
    if diff && !action.diffs() {
        warnings.push(format!("--diff is a no-op with '{}'", action.name()));
        diff = false;
    }

    // Conflicts.
    let file_mode = src.file.is_some() || src.attr.is_some();
    if action == Action::Edit && file_mode {
        return Err(usage("--file and --attr are not supported with 'edit'"));
    }
    if (!cli.hosts.target_host.is_empty() && !action.takes_target_host())
        || (cli.hosts.build_host.is_some() && !action.takes_build_host())
    {
        return Err(usage(format!(
            "--target-host/--build-host is not supported with '{}'",
            action.name()
        )));
    }
    if src.flake.is_some() && file_mode {
        return Err(usage("--flake cannot be used with --file or --attr"));
    }
    let elevation = elevation(cli, ctx)?;
    if let Some(path) = &src.store_path {
        if act.rollback {
            return Err(usage("--store-path and --rollback are mutually exclusive"));
        }
        if src.flake.is_some() || file_mode {
            return Err(usage(
                "--store-path cannot be used with --flake, --file, or --attr",
            ));
        }
        if !action.takes_store_path() {
            return Err(usage(format!(
                "--store-path cannot be used with '{}'",
                action.name()
            )));
        }
        if !path.starts_with('/') {
            return Err(usage(format!(
                "--store-path '{path}' is not an absolute store path"
            )));
        }
    }
    if let Some(s) = &act.specialisation {
        if !action.takes_specialisation() {
            return Err(usage(
                "'--specialisation' can only be used with 'switch' and 'test'",
            ));
        }
        check_name("--specialisation", s)?;
    }
    if act.generation.is_some() {
        if act.rollback {
            return Err(usage("--generation and --rollback are mutually exclusive"));
        }
        if src.store_path.is_some() || src.flake.is_some() || file_mode {
            return Err(usage(
                "--generation cannot be used with --store-path, --flake, --file or --attr: \
                 the generation is already built",
            ));
        }
        if !action.takes_generation() {
            return Err(usage(format!(
                "--generation can only be used with 'switch', 'boot' and 'test', not '{}'",
                action.name()
            )));
        }
    }
    if act.rollback && !action.takes_rollback() {
        return Err(usage(format!(
            "--rollback can only be used with 'switch', 'boot', 'test' and 'build', not '{}'",
            action.name()
        )));
    }
    if let Some(name) = &act.profile_name {
        check_name("--profile-name", name)?;
    }
    if let Some(v) = &src.image_variant {
        check_name("--image-variant", v)?;
    }

    let mut notes = Vec::new();
    let target_host = parse_host("--target-host", target, ctx, &mut notes)?;
    let build_host = parse_host(
        "--build-host",
        cli.hosts.build_host.as_ref(),
        ctx,
        &mut notes,
    )?;

    if act.confirm_timeout.is_some() {
        if !action.takes_confirm_timeout() {
            return Err(usage(format!(
                "--confirm-timeout can only be used with 'switch', 'boot' and 'test', not '{}'",
                action.name()
            )));
        }
        if target_host.is_local() {
            return Err(usage(
                "--confirm-timeout needs --target-host: rb confirms over a new SSH connection \
                 to the target",
            ));
        }
    }

    if !act.confirm_check.is_empty() {
        if act.confirm_timeout.is_none() {
            return Err(usage(
                "--confirm-check needs --confirm-timeout: the checks run before rb confirms the \
                 new configuration",
            ));
        }
        if act.confirm_check.iter().any(|c| c.trim().is_empty()) {
            return Err(usage("--confirm-check needs a command"));
        }
    }

    // Listing generations needs no configuration: no host name lookup on the target.
    let source = if action == Action::ListGenerations {
        Source::Classic
    } else {
        source(cli, ctx, &target_host, &elevation)?
    };

    let upgrade = if src.upgrade_all {
        Upgrade::All
    } else if src.upgrade {
        Upgrade::Nixos
    } else {
        Upgrade::None
    };

    Ok(Request {
        action,
        source,
        build_host,
        target_host,
        elevation,
        profile: Profile {
            name: act.profile_name.clone(),
        },
        specialisation: act.specialisation.clone(),
        install_bootloader: act.install_bootloader || legacy.install_grub,
        nix: cli.nix.clone(),
        systemd_run: ctx
            .env
            .get("NIXOS_REBUILD_NO_SYSTEMD_RUN")
            .is_none_or(|v| v.is_empty()),
        check_closure: ctx
            .env
            .get("NIXOS_REBUILD_I_UNDERSTAND_THE_CONSEQUENCES_PLEASE_BREAK_MY_SYSTEM")
            .is_none_or(|v| v.is_empty()),
        diff,
        ask,
        ask_yes: ask && act.yes,
        image_variant: src.image_variant.clone(),
        upgrade,
        json: cli.output.json,
        confirm_timeout: act.confirm_timeout,
        confirm_checks: act.confirm_check.clone(),
        keep_generation_on_failure: act.keep_generation_on_failure
            || env_switch(&ctx.env, "NIXOS_REBUILD_KEEP_GENERATION_ON_FAILURE"),
        warnings,
        notes,
    })
}

/// Names that end up as a path component on a host: no `/`, no `.`/`..`, nothing invisible.
fn check_name(option: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(usage(format!("{option} needs a non-empty name")));
    }
    if name.contains('/') || name == "." || name == ".." {
        return Err(usage(format!(
            "{option} '{name}' must be a plain name, without '/' and not '.' or '..'"
        )));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(usage(format!(
            "{option} '{}' contains white space or a control character",
            name.escape_debug()
        )));
    }
    Ok(())
}

/// A host option's value. A bare `localhost` is this machine, as older nixos-rebuild read it
/// and as the "NixOS & Flakes" guide writes `--build-host localhost`: no SSH. `root@localhost`,
/// `ssh://localhost`, or `localhost` while `NIX_SSHOPTS` holds options, go over SSH as written
/// (README, "What gets built, and where").
pub fn parse_host(
    option: &str,
    value: Option<&String>,
    ctx: &Context,
    notes: &mut Vec<String>,
) -> Result<Host> {
    let ssh_options = ctx
        .env
        .get("NIX_SSHOPTS")
        .is_some_and(|o| !o.trim().is_empty());
    match value {
        None => Ok(Host::Local),
        Some(v) if v == "localhost" && !ssh_options => {
            notes.push(format!(
                "{option} localhost is this machine: no SSH (write root@localhost to go over SSH)"
            ));
            Ok(Host::Local)
        }
        Some(v) => SshHost::parse(option, v).map(Host::Ssh).map_err(usage),
    }
}

fn elevation(cli: &Cli, ctx: &Context) -> Result<Elevation> {
    let act = &cli.activation;
    let sudo = act.sudo || cli.legacy.use_remote_sudo;
    let method = match (act.elevate, sudo, act.run0) {
        (_, true, true) => return Err(usage("--run0 and --sudo are mutually exclusive")),
        (Some(m), true, _) if m != ElevateMethod::Sudo => {
            return Err(usage(
                "--elevate and --sudo ask for different elevation methods",
            ));
        }
        (Some(m), _, true) if m != ElevateMethod::Run0 => {
            return Err(usage(
                "--elevate and --run0 ask for different elevation methods",
            ));
        }
        (Some(m), _, _) => m,
        (None, true, _) => ElevateMethod::Sudo,
        (None, _, true) => ElevateMethod::Run0,
        (None, false, false) if act.ask_sudo_password => ElevateMethod::Sudo,
        (None, false, false) => ElevateMethod::None,
    };
    let ask_password = act.ask_sudo_password;
    Ok(match method {
        ElevateMethod::None if ask_password => {
            return Err(usage(
                "--ask-sudo-password needs an elevation method; drop --elevate none",
            ));
        }
        ElevateMethod::None => Elevation::None,
        ElevateMethod::Sudo => Elevation::Sudo {
            ask_password,
            options: match ctx.env.get("NIX_SUDOOPTS") {
                Some(s) => shell::split(s).map_err(|e| usage(format!("NIX_SUDOOPTS: {e}")))?,
                None => Vec::new(),
            },
        },
        ElevateMethod::Run0 => Elevation::Run0 { ask_password },
    })
}

/// Whether an on/off environment variable like ng's `NIXOS_REBUILD_USE_NOM` is on: set to
/// anything but empty or `0`.
pub fn env_switch(env: &BTreeMap<String, String>, name: &str) -> bool {
    env.get(name).is_some_and(|v| !v.is_empty() && v != "0")
}

const ETC_NIXOS_SYSTEM: &str = "/etc/nixos/system.nix";

/// Whether the Nix search path has a `nixos-system` entry: `-I` first, then `NIX_PATH`.
fn has_nixos_system_path(cli: &Cli, ctx: &Context) -> bool {
    let entry = |e: &str| e.starts_with("nixos-system=");
    cli.nix.include.iter().any(|i| entry(i))
        || ctx
            .env
            .get("NIX_PATH")
            .is_some_and(|p| p.split(':').any(entry))
}

/// What to build: store path, rollback, file mode, explicit flake, detected
/// `/etc/nixos/flake.nix`, else `<nixpkgs/nixos>`.
fn source(cli: &Cli, ctx: &Context, target: &Host, elevation: &Elevation) -> Result<Source> {
    let src = &cli.source;
    if let Some(path) = &src.store_path {
        return Ok(Source::StorePath { path: path.clone() });
    }
    if cli.activation.rollback || cli.activation.generation.is_some() {
        return Ok(Source::Rollback {
            generation: cli.activation.generation,
        });
    }
    let nixos_system = has_nixos_system_path(cli, ctx).then(|| "<nixos-system>".to_string());
    let etc_system = ctx.etc_nixos_system.then(|| ETC_NIXOS_SYSTEM.to_string());
    if let Some(file) = &src.file {
        return Ok(Source::File {
            file: file.clone(),
            attr: src.attr.clone(),
        });
    }
    if let Some(attr) = &src.attr {
        // `-A` alone: ./system.nix, `<nixos-system>`, /etc/nixos/system.nix, ./default.nix.
        let here = ctx.system_nix_in_cwd.then(|| "system.nix".to_string());
        return Ok(Source::File {
            file: here
                .or(nixos_system)
                .or(etc_system)
                .unwrap_or_else(|| "default.nix".into()),
            attr: Some(attr.clone()),
        });
    }
    let flake = match (&src.flake, src.no_flake) {
        (Some(f), _) => Some(f.clone()),
        (None, true) => None,
        (None, false) => ctx.etc_nixos_flake.clone(),
    };
    let Some(flake) = flake else {
        // A whole system expression wins over `<nixpkgs/nixos>`; `edit` still opens the
        // classic configuration.nix.
        return Ok(match nixos_system.or(etc_system) {
            Some(file) if cli.action != Some(Action::Edit) => Source::File { file, attr: None },
            _ => Source::Classic,
        });
    };
    let partial = flake::parse(&flake).map_err(usage)?;
    // The default name is the host name of the machine being deployed.
    let hostname = if partial.name.is_none() {
        let checks = crate::probe::Checks::target(cli.action.unwrap_or(Action::Build), elevation);
        (ctx.hostname)(target, &checks)?
    } else {
        String::new()
    };
    Ok(Source::Flake(
        partial.complete(&hostname).map_err(Error::Failed)?,
    ))
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use clap::Parser;

    pub fn ctx(env: &[(&str, &str)]) -> Context {
        Context {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            etc_nixos_flake: None,
            etc_nixos_system: false,
            system_nix_in_cwd: false,
            hostname: Box::new(|h, _| {
                Ok(match h {
                    Host::Local => "workstation".into(),
                    Host::Ssh(s) => format!("{}-name", s.hostname),
                })
            }),
        }
    }

    pub fn req(args: &str) -> Result<Request> {
        req_in(args, &ctx(&[]))
    }

    pub fn req_in(args: &str, ctx: &Context) -> Result<Request> {
        let argv = std::iter::once("rb").chain(args.split_whitespace());
        let cli = Cli::try_parse_from(argv).map_err(|e| Error::Usage(e.to_string()))?;
        resolve(&cli, ctx)
    }

    fn usage_msg(args: &str) -> String {
        match req(args) {
            Err(Error::Usage(m)) => m,
            other => panic!("{args}: expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn flake_name_defaults_to_local_then_target_hostname() {
        let r = req("switch --flake /cfg").unwrap();
        assert_eq!(
            r.source,
            Source::Flake(FlakeRef {
                flake: "/cfg".into(),
                name: "workstation".into()
            })
        );
        let r = req("switch --flake /cfg --target-host root@aq").unwrap();
        assert_eq!(
            r.source,
            Source::Flake(FlakeRef {
                flake: "/cfg".into(),
                name: "aq-name".into()
            })
        );
    }

    #[test]
    fn bare_flake_means_current_directory() {
        let r = req("build --flake").unwrap();
        assert!(matches!(r.source, Source::Flake(f) if f.flake == "."));
    }

    #[test]
    fn flake_detection_and_no_flake() {
        let mut c = ctx(&[]);
        c.etc_nixos_flake = Some("/etc/nixos".into());
        let r = req_in("switch", &c).unwrap();
        assert!(matches!(r.source, Source::Flake(f) if f.flake == "/etc/nixos"));
        assert_eq!(
            req_in("switch --no-flake", &c).unwrap().source,
            Source::Classic
        );
        // The last of --flake/--no-flake wins.
        assert!(matches!(
            req_in("switch --no-flake --flake /x", &c).unwrap().source,
            Source::Flake(_)
        ));
        assert_eq!(
            req_in("switch --flake /x --no-flake", &c).unwrap().source,
            Source::Classic
        );
        // -f/-A win over a detected flake.
        assert_eq!(
            req_in("switch -A web", &c).unwrap().source,
            Source::File {
                file: "default.nix".into(),
                attr: Some("web".into())
            }
        );
    }

    #[test]
    fn a_bare_localhost_is_this_machine() {
        let r =
            req("switch --flake /cfg#h --build-host localhost --target-host localhost").unwrap();
        assert_eq!(
            (r.build_host.clone(), r.target_host.clone()),
            (Host::Local, Host::Local)
        );
        assert_eq!(
            r.notes,
            [
                "--target-host localhost is this machine: no SSH (write root@localhost to go over SSH)",
                "--build-host localhost is this machine: no SSH (write root@localhost to go over SSH)",
            ]
        );
        for over_ssh in ["root@localhost", "ssh://localhost", "ssh-ng://localhost"] {
            let r = req(&format!("switch --flake /cfg#h --target-host {over_ssh}")).unwrap();
            assert!(matches!(r.target_host, Host::Ssh(_)), "{over_ssh}");
            assert!(r.notes.is_empty());
        }
        let c = ctx(&[("NIX_SSHOPTS", "-p 2222")]);
        let r = req_in("switch --flake /cfg#h --target-host localhost", &c).unwrap();
        assert!(matches!(r.target_host, Host::Ssh(h) if h.dest == "localhost"));
    }

    #[test]
    fn a_whole_system_expression_is_found_like_ng_does() {
        let file = |f: &str, a: Option<&str>| Source::File {
            file: f.into(),
            attr: a.map(String::from),
        };
        let mut c = ctx(&[]);
        c.etc_nixos_system = true;
        assert_eq!(
            req_in("switch", &c).unwrap().source,
            file("/etc/nixos/system.nix", None)
        );
        // `edit` keeps opening configuration.nix; a flake (given or detected) wins.
        assert_eq!(req_in("edit", &c).unwrap().source, Source::Classic);
        assert!(matches!(
            req_in("switch --flake /x#h", &c).unwrap().source,
            Source::Flake(_)
        ));
        c.etc_nixos_flake = Some("/etc/nixos".into());
        assert!(matches!(
            req_in("switch", &c).unwrap().source,
            Source::Flake(_)
        ));
        assert_eq!(
            req_in("switch --no-flake", &c).unwrap().source,
            file("/etc/nixos/system.nix", None)
        );
        // `-A` alone: ./system.nix, then <nixos-system>, then /etc/nixos/system.nix.
        assert_eq!(
            req_in("build -A web", &c).unwrap().source,
            file("/etc/nixos/system.nix", Some("web"))
        );
        let mut n = ctx(&[("NIX_PATH", "nixpkgs=/n:nixos-system=/s.nix")]);
        n.etc_nixos_system = true;
        assert_eq!(
            req_in("build -A web", &n).unwrap().source,
            file("<nixos-system>", Some("web"))
        );
        assert_eq!(
            req_in("switch", &n).unwrap().source,
            file("<nixos-system>", None)
        );
        n.system_nix_in_cwd = true;
        assert_eq!(
            req_in("build -A web", &n).unwrap().source,
            file("system.nix", Some("web"))
        );
        // `-f` is used as given; -I counts like NIX_PATH.
        assert_eq!(
            req_in("build -f x.nix", &n).unwrap().source,
            file("x.nix", None)
        );
        assert_eq!(
            req_in("switch -I nixos-system=/s.nix", &ctx(&[]))
                .unwrap()
                .source,
            file("<nixos-system>", None)
        );
        assert_eq!(
            req("build -A web").unwrap().source,
            file("default.nix", Some("web"))
        );
        assert_eq!(req("switch").unwrap().source, Source::Classic);
    }

    #[test]
    fn keeping_the_generation_on_failure_by_flag_or_environment() {
        assert!(!req("switch").unwrap().keep_generation_on_failure);
        assert!(
            req("switch --keep-generation-on-failure")
                .unwrap()
                .keep_generation_on_failure
        );
        for (v, keeps) in [("1", true), ("yes", true), ("0", false), ("", false)] {
            let c = ctx(&[("NIXOS_REBUILD_KEEP_GENERATION_ON_FAILURE", v)]);
            assert_eq!(
                req_in("switch", &c).unwrap().keep_generation_on_failure,
                keeps,
                "{v:?}"
            );
        }
    }

    #[test]
    fn generation_n_conflicts_and_actions() {
        assert_eq!(
            req("switch --generation 3").unwrap().source,
            Source::Rollback {
                generation: Some(3)
            }
        );
        assert_eq!(
            usage_msg("switch --generation 3 --rollback"),
            "--generation and --rollback are mutually exclusive"
        );
        assert!(usage_msg("switch --generation 3 --flake /x#h").starts_with("--generation cannot"));
        assert!(
            usage_msg("test --generation 3 --store-path /nix/store/x").starts_with("--generation")
        );
        assert_eq!(
            usage_msg("build --generation 3"),
            "--generation can only be used with 'switch', 'boot' and 'test', not 'build'"
        );
        assert!(usage_msg("switch --generation 0").contains("--generation"));
    }

    #[test]
    fn conflicts_are_usage_errors_with_ngs_messages() {
        assert_eq!(
            usage_msg("edit -f x.nix"),
            "--file and --attr are not supported with 'edit'"
        );
        assert_eq!(
            usage_msg("repl --target-host h"),
            "--target-host/--build-host is not supported with 'repl'"
        );
        assert_eq!(
            usage_msg("list-generations --build-host h"),
            "--target-host/--build-host is not supported with 'list-generations'"
        );
        assert_eq!(
            usage_msg("build-image --target-host h"),
            "--target-host/--build-host is not supported with 'build-image'"
        );
        assert_eq!(
            usage_msg("switch --flake . -A x"),
            "--flake cannot be used with --file or --attr"
        );
        assert_eq!(
            usage_msg("switch --sudo --run0"),
            "--run0 and --sudo are mutually exclusive"
        );
        assert_eq!(
            usage_msg("switch --store-path /nix/store/x --rollback"),
            "--store-path and --rollback are mutually exclusive"
        );
        assert_eq!(
            usage_msg("switch --store-path /nix/store/x --flake ."),
            "--store-path cannot be used with --flake, --file, or --attr"
        );
        assert_eq!(
            usage_msg("build --store-path /nix/store/x"),
            "--store-path cannot be used with 'build'"
        );
        assert_eq!(
            usage_msg("boot -c web"),
            "'--specialisation' can only be used with 'switch' and 'test'"
        );
        assert!(usage_msg("switch -p ../x").contains("plain name"));
        assert!(usage_msg("switch -p ..").contains("plain name"));
        assert!(usage_msg("switch --target-host=-oProxyCommand=x").contains("option"));
        assert!(usage_msg("switch --flake a#b#c").contains("more than one '#'"));
        assert!(usage_msg("edit --rollback").contains("--rollback"));
        assert_eq!(
            usage_msg("build --confirm-timeout 5 --target-host h"),
            "--confirm-timeout can only be used with 'switch', 'boot' and 'test', not 'build'"
        );
        assert!(usage_msg("dry-activate --confirm-timeout 5 --target-host h").contains("'switch'"));
        assert!(usage_msg("switch --confirm-timeout 5").contains("needs --target-host"));
        for bad in ["0", "-1", "1.5", "x", ""] {
            let argv = [
                "rb",
                "switch",
                "--target-host",
                "h",
                "--confirm-timeout",
                bad,
            ];
            assert!(Cli::try_parse_from(argv).is_err(), "{bad:?}");
        }
        let r = req("test --confirm-timeout 30 --target-host root@h --flake /c#h").unwrap();
        assert_eq!(r.confirm_timeout, Some(30));
        assert!(r.confirm_checks.is_empty());
        assert_eq!(
            usage_msg("switch --confirm-check true --target-host root@h --flake /c#h"),
            "--confirm-check needs --confirm-timeout: the checks run before rb confirms the new \
             configuration"
        );
        let argv = [
            "rb",
            "switch",
            "--flake",
            "/c#h",
            "--target-host",
            "root@h",
            "--confirm-timeout",
            "9",
            "--confirm-check",
            "systemctl is-active nginx",
            "--confirm-check",
            "curl -fsS http://localhost/",
        ];
        let r = resolve(&Cli::try_parse_from(argv).unwrap(), &ctx(&[])).unwrap();
        assert_eq!(
            r.confirm_checks,
            ["systemctl is-active nginx", "curl -fsS http://localhost/"]
        );
        let mut blank = argv;
        blank[9] = " ";
        assert_eq!(
            resolve(&Cli::try_parse_from(blank).unwrap(), &ctx(&[]))
                .unwrap_err()
                .to_string(),
            "--confirm-check needs a command"
        );
    }

    #[test]
    fn deprecated_flags_warn_and_map() {
        let r = req("switch --use-remote-sudo --install-grub --fast --no-build-nix --no-ssh-tty")
            .unwrap();
        assert!(matches!(
            r.elevation,
            Elevation::Sudo {
                ask_password: false,
                ..
            }
        ));
        assert!(r.install_bootloader);
        assert_eq!(r.warnings.len(), 5);
        assert_eq!(
            r.warnings[1],
            "--use-remote-sudo is deprecated, use --sudo instead"
        );
    }

    #[test]
    fn elevation_choices() {
        let r = req_in("switch -S", &ctx(&[("NIX_SUDOOPTS", "-u 'a b'")])).unwrap();
        assert_eq!(
            r.elevation,
            Elevation::Sudo {
                ask_password: true,
                options: vec!["-u".into(), "a b".into()]
            }
        );
        assert_eq!(
            req("switch --elevate run0").unwrap().elevation,
            Elevation::Run0 {
                ask_password: false
            }
        );
        assert_eq!(
            req("switch --elevate none").unwrap().elevation,
            Elevation::None
        );
        assert!(req("switch --elevate none -S").is_err());
    }

    #[test]
    fn dry_run_is_dry_build_and_diff_noop_warns() {
        let r = req("dry-run --diff").unwrap();
        assert_eq!(r.action, Action::DryBuild);
        assert!(!r.diff);
        assert_eq!(r.warnings, ["--diff is a no-op with 'dry-build'"]);
    }

    #[test]
    fn list_generations_takes_a_target_and_looks_up_no_host_name() {
        let mut c = ctx(&[]);
        c.etc_nixos_flake = Some("/etc/nixos".into());
        c.hostname = Box::new(|_, _| panic!("no host name lookup for list-generations"));
        let r = req_in("list-generations --target-host deploy@aq -p web --json", &c).unwrap();
        assert_eq!(
            r.target_host,
            Host::Ssh(SshHost::parse("t", "deploy@aq").unwrap())
        );
        assert_eq!(
            r.profile.path(),
            "/nix/var/nix/profiles/system-profiles/web"
        );
        assert!(r.json);
    }

    #[test]
    fn diff_is_a_no_op_for_vms_and_images() {
        let r = req("build-vm --diff").unwrap();
        assert!(!r.diff);
        assert_eq!(r.warnings, ["--diff is a no-op with 'build-vm'"]);
        assert!(req("switch --diff").unwrap().diff);
    }

    #[test]
    fn environment_switches() {
        let r = req_in("switch", &ctx(&[("NIXOS_REBUILD_NO_SYSTEMD_RUN", "1")])).unwrap();
        assert!(!r.systemd_run);
        assert!(r.check_closure);
    }
}
