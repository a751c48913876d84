//! The command line, as clap definitions and nothing else.
//!
//! These structs are the single source of truth for parsing, `--help`, the man page and the
//! shell completions. They only say what the user typed; what it means is decided in
//! `request.rs`.

pub use crate::action::Action;
use clap::{ArgAction, Args, Parser, ValueEnum, ValueHint};

/// Reconfigure a NixOS machine, here or over SSH.
///
/// rb is a drop-in replacement for nixos-rebuild: it builds the system configuration (here or on
/// a build host), copies it to the target, makes it the system profile's new generation and
/// activates it with switch-to-configuration.
#[derive(Debug, Parser)]
#[command(
    name = "rb",
    version,
    disable_version_flag = true,
    max_term_width = 100
)]
pub struct Cli {
    /// What to do with the configuration.
    #[arg(value_enum, value_name = "ACTION")]
    pub action: Option<Action>,

    /// Print version information.
    #[arg(long, action = ArgAction::Version)]
    pub version: Option<bool>,

    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub activation: ActivationArgs,

    #[command(flatten)]
    pub hosts: HostArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub legacy: LegacyArgs,

    #[command(flatten)]
    pub nix: NixArgs,
}

/// The examples at the end of `--help`, naming the program as it was invoked.
pub fn after_help(program: &str) -> String {
    format!(
        "Examples:\n  \
         {program} switch --flake .#my-nixos --target-host root@aquamarine\n  \
         {program} boot --flake . --build-host builder --target-host deploy@web1 --sudo -S\n  \
         {program} switch --flake .#my-nixos --plan\n\n\
         The manual page {program}(8) describes every option, the environment and the exit statuses."
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ElevateMethod {
    /// Run everything as the connecting user.
    None,
    /// Use sudo for the steps that need root.
    Sudo,
    /// Use run0 (systemd) for the steps that need root.
    Run0,
}

/// What to build.
#[derive(Debug, Args)]
#[command(next_help_heading = "Configuration")]
pub struct SourceArgs {
    /// Build the NixOS configuration of a flake: FLAKE#NAME, NAME defaulting to the target's
    /// host name.
    ///
    /// Without a value, the flake in the current directory. Without this option,
    /// /etc/nixos/flake.nix is used when it exists.
    #[arg(
        long,
        short = 'F',
        value_name = "FLAKE",
        num_args = 0..=1,
        default_missing_value = ".",
        overrides_with = "no_flake"
    )]
    pub flake: Option<String>,

    /// Do not use /etc/nixos/flake.nix even if it exists.
    #[arg(long, overrides_with = "flake")]
    pub no_flake: bool,

    /// Build the configuration from this Nix file instead of <nixpkgs/nixos>.
    #[arg(long, short = 'f', value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub file: Option<String>,

    /// Build the configuration from this attribute (of --file, default ./default.nix).
    #[arg(long, short = 'A', value_name = "ATTR", value_hint = ValueHint::Other)]
    pub attr: Option<String>,

    /// Deploy this already built system closure instead of building one.
    ///
    /// Only with switch, boot, test and dry-activate. The closure is copied to the target first.
    #[arg(long, value_name = "PATH", value_hint = ValueHint::DirPath)]
    pub store_path: Option<String>,

    /// Update the root user's nixos channel (and the ones marked for it) first.
    #[arg(long)]
    pub upgrade: bool,

    /// Update all of the root user's channels first.
    #[arg(long)]
    pub upgrade_all: bool,

    /// The image variant to build with build-image (an attribute of config.system.build.images).
    #[arg(long, value_name = "VARIANT", value_hint = ValueHint::Other)]
    pub image_variant: Option<String>,
}

/// How to activate.
#[derive(Debug, Args)]
#[command(next_help_heading = "Activation")]
pub struct ActivationArgs {
    /// Use the system profile /nix/var/nix/profiles/system-profiles/NAME.
    ///
    /// Instead of /nix/var/nix/profiles/system; the boot loader lists it as its own entries.
    /// The profile is created on the target when it does not exist yet.
    #[arg(long, short = 'p', value_name = "NAME", value_hint = ValueHint::Other)]
    pub profile_name: Option<String>,

    /// Activate the specialisation NAME of the configuration (switch and test).
    #[arg(long, short = 'c', value_name = "NAME", value_hint = ValueHint::Other)]
    pub specialisation: Option<String>,

    /// Go back to the previous generation instead of building.
    ///
    /// With switch and boot the profile itself goes back one generation; with test and build
    /// the previous generation is only activated or shown.
    #[arg(long)]
    pub rollback: bool,

    /// Make generation N of the profile current instead of building (switch, boot, test).
    ///
    /// Like --rollback, for any generation that `list-generations` shows; on the target host
    /// with --target-host. A generation that does not exist is an error before anything
    /// changes.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub generation: Option<u64>,

    /// Install the boot loader again while activating (NIXOS_INSTALL_BOOTLOADER=1).
    #[arg(long)]
    pub install_bootloader: bool,

    /// Show what changes between the current system and the new one before activating.
    ///
    /// A package-level diff, on stderr, of the target's running system (/run/current-system)
    /// against the new one, made where both closures are: packages upgraded, downgraded,
    /// added and removed, with their versions, and how the closure's paths and size change.
    /// With --json, the document's `diff` member holds the same.
    #[arg(long)]
    pub diff: bool,

    /// Show what changes and ask before changing the target.
    ///
    /// The package diff (as --diff), before the closure is copied to a remote target; where
    /// the closure is on the target already, also the units switch-to-configuration would
    /// stop, restart and start. Anything but "y" or "yes" exits with status 12 and leaves the
    /// target's profile and running system as they were. Needs a terminal, unless --yes is
    /// given too.
    #[arg(long)]
    pub ask: bool,

    /// With --ask: show what changes, and go on without asking (for runs without a terminal).
    #[arg(long, requires = "ask")]
    pub yes: bool,

    /// Elevate the steps that need root with sudo.
    ///
    /// Setting the profile and activating run as root through sudo, on the target host or here.
    /// NIX_SUDOOPTS adds options to each sudo call.
    #[arg(long)]
    pub sudo: bool,

    /// Ask for the sudo password once, before anything is built; implies --sudo.
    ///
    /// The password is checked on the target before the build starts and fed to sudo on its
    /// standard input, so no terminal is needed on the target.
    #[arg(long, short = 'S', visible_alias = "ask-elevate-password")]
    pub ask_sudo_password: bool,

    /// Elevate the steps that need root with run0.
    #[arg(long)]
    pub run0: bool,

    /// How to elevate the steps that need root.
    #[arg(long, value_enum, value_name = "METHOD")]
    pub elevate: Option<ElevateMethod>,

    /// Magic rollback: keep the new configuration only if the target is reached again over a
    /// new SSH connection within SECONDS after activating it; otherwise the target goes back to
    /// its previous generation by itself (switch, boot and test, with --target-host).
    ///
    /// With switch, the new generation becomes the boot default only once it is confirmed: the
    /// activation runs switch-to-configuration test, the confirmation its boot. A rollback
    /// leaves the boot default where it was.
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    pub confirm_timeout: Option<u64>,

    /// Magic rollback: run CMD on the target before confirming; it must succeed (repeatable).
    ///
    /// Each CMD runs with /bin/sh -c in the confirming session, over the new SSH connection
    /// once the activation is over, elevated like the activation, each within what is left of
    /// the --confirm-timeout window. A check that fails or does not finish in time has the
    /// target roll back at once (exit status 10); the error names it, with its last output
    /// lines.
    #[arg(long, value_name = "CMD")]
    pub confirm_check: Vec<String>,

    /// When activation fails, keep the new generation as the profile and boot default.
    ///
    /// By default a failed switch or boot puts the previous generation back. Keep the new one
    /// when it only works after a reboot (a new kernel, a daemon that switches at boot).
    /// Also NIXOS_REBUILD_KEEP_GENERATION_ON_FAILURE=1.
    #[arg(long)]
    pub keep_generation_on_failure: bool,
}

/// A positive whole number of seconds.
fn seconds(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("'{s}' is not a positive whole number of seconds")),
    }
}

/// Where to build and where to deploy.
#[derive(Debug, Args)]
#[command(next_help_heading = "Hosts")]
pub struct HostArgs {
    /// Deploy to this machine over SSH: [user@]host, ssh://[user@]host, ssh-ng://[user@]host.
    ///
    /// One SSH connection per host carries every step of the run. NIX_SSHOPTS adds options to
    /// ssh. A bare `localhost` is this machine (no SSH); write root@localhost for SSH.
    /// Repeat it to deploy several hosts in one run (switch, boot, test, dry-activate and
    /// build): one build of every configuration, then copies and activations in parallel.
    #[arg(long, value_name = "HOST", value_hint = ValueHint::Hostname, action = ArgAction::Append)]
    pub target_host: Vec<String>,

    /// Build on this machine over SSH: [user@]host, ssh://[user@]host, ssh-ng://[user@]host.
    ///
    /// The derivation is evaluated here and built there. The result goes from the build host
    /// straight to the target, or through this machine when the build host cannot reach it.
    /// A bare `localhost` is this machine (no SSH).
    #[arg(long, value_name = "HOST", value_hint = ValueHint::Hostname)]
    pub build_host: Option<String>,

    /// With several --target-host: deploy at most N hosts at once (copies and activations).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: u32,

    /// With several --target-host: start no more hosts once one has failed.
    ///
    /// The hosts being deployed at that moment finish (an activation is never cut short); the
    /// others are reported as not started.
    #[arg(long)]
    pub fail_fast: bool,
}

/// What rb prints.
#[derive(Debug, Args)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Print one JSON document on stdout: the result of the run, the plan, or the generations.
    #[arg(long)]
    pub json: bool,

    /// Print the steps that would run, with their hosts, and exit without running anything.
    ///
    /// Nothing is built, copied or activated. With --json the plan is printed as JSON.
    #[arg(long)]
    pub plan: bool,

    /// Print debug messages on stderr.
    #[arg(long)]
    pub debug: bool,
}

/// Options of older nixos-rebuild versions, accepted with a warning.
#[derive(Debug, Args)]
#[command(next_help_heading = "Deprecated")]
pub struct LegacyArgs {
    /// Deprecated: use --sudo.
    #[arg(long)]
    pub use_remote_sudo: bool,

    /// Deprecated: use --install-bootloader.
    #[arg(long)]
    pub install_grub: bool,

    /// Deprecated: use --no-reexec.
    #[arg(long)]
    pub fast: bool,

    /// Accepted for compatibility; there is no re-execution to skip.
    #[arg(long)]
    pub no_reexec: bool,

    /// Deprecated: Nix is never built.
    #[arg(long)]
    pub no_build_nix: bool,

    /// Deprecated: no TTY is ever allocated over SSH.
    #[arg(long)]
    pub no_ssh_tty: bool,
}

/// Options passed on to Nix (what each Nix command gets of them: `nix.rs`).
#[derive(Debug, Args, Default, Clone, PartialEq, Eq, serde::Serialize)]
#[command(next_help_heading = "Nix options")]
pub struct NixArgs {
    /// More verbose Nix output; repeat for more.
    #[arg(long, short = 'v', action = ArgAction::Count)]
    pub verbose: u8,

    /// Less verbose Nix output; repeat for less.
    #[arg(long, action = ArgAction::Count)]
    pub quiet: u8,

    /// Number of build jobs Nix runs in parallel.
    #[arg(long, short = 'j', value_name = "N", value_hint = ValueHint::Other)]
    pub max_jobs: Option<String>,

    /// Number of cores each build may use.
    #[arg(long, value_name = "N", value_hint = ValueHint::Other)]
    pub cores: Option<String>,

    /// Format of Nix's log output, such as raw, bar-with-logs or internal-json.
    #[arg(long, value_name = "FORMAT", value_hint = ValueHint::Other)]
    pub log_format: Option<String>,

    /// Keep building other derivations when one fails.
    #[arg(long, short = 'k')]
    pub keep_going: bool,

    /// Keep the build directories of failed builds.
    #[arg(long, short = 'K')]
    pub keep_failed: bool,

    /// Build from source when a substitute fails.
    #[arg(long)]
    pub fallback: bool,

    /// Repair corrupted or missing store paths while building.
    #[arg(long)]
    pub repair: bool,

    /// Set the Nix configuration option NAME to VALUE, as in nix.conf.
    #[arg(
        long,
        num_args = 2,
        value_names = ["NAME", "VALUE"],
        value_hint = ValueHint::Other,
        action = ArgAction::Append
    )]
    #[serde(rename = "options", serialize_with = "serialize_pairs")]
    pub option: Vec<String>,

    /// Remote builders for Nix to use, as in nix.conf's builders setting.
    #[arg(long, value_name = "SPEC", value_hint = ValueHint::Other)]
    pub builders: Option<String>,

    /// Add PATH or NAME=PATH to the Nix search path (<nixpkgs>, <nixos-config>).
    #[arg(long = "include", short = 'I', value_name = "PATH", action = ArgAction::Append)]
    pub include: Vec<String>,

    /// Print full build logs.
    #[arg(long, short = 'L')]
    pub print_build_logs: bool,

    /// Show traces of evaluation errors.
    #[arg(long)]
    pub show_trace: bool,

    /// Use only what is cached locally; no downloads.
    #[arg(long)]
    pub offline: bool,

    /// Do not use the network.
    #[arg(long)]
    pub no_net: bool,

    /// Accept the nixConfig of the flake.
    #[arg(long)]
    pub accept_flake_config: bool,

    /// Refetch the flake and its inputs.
    #[arg(long)]
    pub refresh: bool,

    /// Allow impure evaluation.
    #[arg(long)]
    pub impure: bool,

    /// Recreate the flake's lock file.
    #[arg(long)]
    pub recreate_lock_file: bool,

    /// Do not update the flake's lock file.
    #[arg(long)]
    pub no_update_lock_file: bool,

    /// Do not write the flake's lock file.
    #[arg(long)]
    pub no_write_lock_file: bool,

    /// Do not use flake registries.
    #[arg(long)]
    pub no_registries: bool,

    /// Commit changes to the flake's lock file.
    #[arg(long)]
    pub commit_lock_file: bool,

    /// Update one input of the flake's lock file.
    #[arg(long, value_name = "INPUT", value_hint = ValueHint::Other, action = ArgAction::Append)]
    pub update_input: Vec<String>,

    /// Use FLAKEREF for the flake's input INPUT.
    #[arg(
        long,
        num_args = 2,
        value_names = ["INPUT", "FLAKEREF"],
        value_hint = ValueHint::Other,
        action = ArgAction::Append
    )]
    #[serde(serialize_with = "serialize_pairs")]
    pub override_input: Vec<String>,

    /// Do not show build output; for flakes also leaves no result link.
    #[arg(long, short = 'Q', visible_alias = "no-link")]
    pub no_build_output: bool,

    /// Let the destination of a copy fetch paths from its substituters.
    #[arg(long, short = 's', visible_alias = "substitute-on-destination")]
    pub use_substitutes: bool,
}

/// Options given as NAME VALUE pairs (`--option`, `--override-input`), which clap keeps flat.
pub(crate) fn pairs(flat: &[String]) -> impl Iterator<Item = (&String, &String)> {
    flat.chunks_exact(2).map(|c| (&c[0], &c[1]))
}

/// For the request in `--plan --json`: pairs as `[NAME, VALUE]`.
fn serialize_pairs<S: serde::Serializer>(flat: &[String], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(pairs(flat).map(|(a, b)| [a, b]))
}
