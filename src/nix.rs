//! What rb knows about Nix: its version, and which pass-through options each Nix command takes.
//!
//! nixos-rebuild-ng groups the Nix options it forwards (common, build, flake evaluation, copy)
//! and emits each group in a fixed canonical order. rb does the same, and additionally leaves
//! out the options a given command is known to reject (`--repair` for copies, `-L` for the
//! legacy `nix-*` commands), so that no Nix version fails on an option rb passed it.

use crate::cli::{NixArgs, pairs};
use serde::Serialize;

/// `--extra-experimental-features 'nix-command flakes'`, for every new-style `nix` command.
pub const FEATURES: [&str; 2] = ["--extra-experimental-features", "nix-command flakes"];

/// The Nix commands rb runs, as far as option handling differs between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NixCommand {
    /// `nix build` of a flake installable.
    FlakeBuild,
    /// `nix eval` of a flake installable.
    FlakeEval,
    /// `nix-build` of a classic expression.
    LegacyBuild,
    /// `nix-instantiate` of a classic expression.
    LegacyInstantiate,
    /// `nix-store --realise` of a derivation (on a build host).
    Realise,
    /// `nix-copy-closure`.
    CopyClosure,
    /// `nix copy`.
    Copy,
    /// `nix edit` / `nix repl` of a flake.
    FlakeInteractive,
    /// A new-style `nix` command on a file or expression rather than a flake installable
    /// (`nix eval --file`, `nix repl`): no lock options, which would be refused or ignored.
    FileEval,
}

/// The Nix options the user passed (`cli::NixArgs`), grouped as nixos-rebuild-ng groups them.
impl NixArgs {
    /// The options for one Nix command, in nixos-rebuild-ng's canonical order.
    pub fn for_command(&self, cmd: NixCommand) -> Vec<String> {
        use NixCommand::*;
        let mut out = Vec::new();
        match cmd {
            FlakeBuild | FlakeInteractive | FlakeEval => {
                self.common(&mut out, cmd);
                self.common_build(&mut out, true);
                self.flake_common(&mut out);
                out.extend(self.flake_eval());
            }
            FileEval => {
                self.common(&mut out, cmd);
                self.common_build(&mut out, true);
                self.flake_common(&mut out);
            }
            LegacyBuild | LegacyInstantiate => {
                self.common(&mut out, cmd);
                self.common_build(&mut out, false);
                if self.no_build_output {
                    out.push("--no-build-output".into());
                }
            }
            Realise => self.common(&mut out, cmd),
            CopyClosure | Copy => {
                self.common(&mut out, cmd);
                if self.use_substitutes {
                    out.push("-s".into());
                }
            }
        }
        out
    }

    /// Whether rb makes Nix's builds and copies `--quiet` (README, "Progress"): unless the
    /// user asked for Nix's own output (`-v`, `--quiet`, `-L`, `--log-format`), Nix prints
    /// nothing per derivation or store path, and rb's phase lines say what happens. Errors,
    /// warnings and a failed build's last log lines still show.
    pub fn quiet_by_default(&self) -> bool {
        self.verbose == 0 && self.quiet == 0 && !self.print_build_logs && self.log_format.is_none()
    }

    /// What rb adds to a build or copy of its own (README, "Progress"): nothing when the user
    /// asked for Nix's output; `--quiet` when rb prints plain lines; and when rb draws
    /// progress on a terminal (`drawn`), Nix's `internal-json` log too, which
    /// `src/progress/` reads. Nix sends every activity (builds, copies, a builder's lines) in
    /// that format whatever the verbosity, and `--quiet` drops only its informational
    /// messages ("these N paths will be fetched"); errors and warnings still come (checked
    /// on Nix 2.8 and 2.34).
    pub fn rb_log_options(&self, drawn: bool) -> Vec<String> {
        match (self.quiet_by_default(), drawn) {
            (false, _) => vec![],
            (true, false) => vec!["--quiet".into()],
            (true, true) => ["--quiet", "--log-format", "internal-json"]
                .map(String::from)
                .to_vec(),
        }
    }

    fn common(&self, out: &mut Vec<String>, cmd: NixCommand) {
        let copy = matches!(cmd, NixCommand::CopyClosure | NixCommand::Copy);
        if self.verbose > 0 {
            out.push(format!("-{}", "v".repeat(self.verbose.into())));
        }
        for _ in 0..self.quiet {
            out.push("--quiet".into());
        }
        if let Some(j) = &self.max_jobs {
            out.extend(["--max-jobs".into(), j.clone()]);
        }
        if let Some(c) = &self.cores {
            out.extend(["--cores".into(), c.clone()]);
        }
        if let Some(f) = &self.log_format {
            out.extend(["--log-format".into(), f.clone()]);
        }
        if self.keep_going {
            out.push("--keep-going".into());
        }
        // `nix copy` rejects --keep-failed.
        if self.keep_failed && cmd != NixCommand::Copy {
            out.push("--keep-failed".into());
        }
        if self.fallback {
            out.push("--fallback".into());
        }
        // Neither copy command knows --repair; nixos-rebuild passes it and fails.
        if self.repair && !copy {
            out.push("--repair".into());
        }
        for (name, value) in pairs(&self.option) {
            out.extend(["--option".into(), name.clone(), value.clone()]);
        }
    }

    fn common_build(&self, out: &mut Vec<String>, new_style: bool) {
        if let Some(b) = &self.builders {
            out.extend(["--builders".into(), b.clone()]);
        }
        for path in &self.include {
            out.extend(["-I".into(), path.clone()]);
        }
        // The legacy commands reject -L; they print build logs anyway.
        if self.print_build_logs && new_style {
            out.push("--print-build-logs".into());
        }
        if self.show_trace {
            out.push("--show-trace".into());
        }
    }

    fn flake_common(&self, out: &mut Vec<String>) {
        if self.offline {
            out.push("--offline".into());
        }
        if self.no_net {
            out.push("--no-net".into());
        }
    }

    fn flake_eval(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let flags = [
            (self.accept_flake_config, "--accept-flake-config"),
            (self.refresh, "--refresh"),
            (self.impure, "--impure"),
            (self.recreate_lock_file, "--recreate-lock-file"),
            (self.no_update_lock_file, "--no-update-lock-file"),
            (self.no_write_lock_file, "--no-write-lock-file"),
            (self.no_registries, "--no-registries"),
            (self.commit_lock_file, "--commit-lock-file"),
        ];
        out.extend(flags.iter().filter(|f| f.0).map(|f| f.1.to_string()));
        for input in &self.update_input {
            out.extend(["--update-input".into(), input.clone()]);
        }
        for (input, flake) in pairs(&self.override_input) {
            out.extend(["--override-input".into(), input.clone(), flake.clone()]);
        }
        out
    }
}

/// The Nix on the machine running rb, asked once per run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NixCaps {
    /// e.g. `2.8.0`; `(0, 0, 0)` when Nix could not be asked.
    pub version: (u32, u32, u32),
    pub lix: bool,
}

impl NixCaps {
    /// What a Nix 2.8 offers; the floor rb supports.
    pub fn floor() -> Self {
        NixCaps {
            version: (2, 8, 0),
            lix: false,
        }
    }

    /// Parses `nix --version` output: `nix (Nix) 2.8.0`, `nix (Lix, like Nix) 2.91.1`.
    pub fn parse(output: &str) -> Option<Self> {
        let line = output.lines().next()?;
        let lix = line.contains("Lix");
        let version = line.split_whitespace().last()?;
        let mut parts = version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next().flatten().unwrap_or(0);
        let patch = parts.next().flatten().unwrap_or(0);
        Some(NixCaps {
            version: (major, minor, patch),
            lix,
        })
    }

    /// Asks `nix --version`; falls back to the floor when Nix cannot be asked.
    pub fn detect() -> Self {
        crate::process::stdout_of(&["nix", "--version"])
            .and_then(|out| Self::parse(&out))
            .unwrap_or_else(Self::floor)
    }

    /// Lix forked from Nix 2.18, so every Lix has what Nix 2.18 has.
    fn at_least(&self, major: u32, minor: u32) -> bool {
        self.lix || self.version >= (major, minor, 0)
    }

    /// `nix repl --file`/`--expr` appeared in Nix 2.19; 2.8 takes positional files only.
    pub fn repl_takes_expr(&self) -> bool {
        self.at_least(2, 19)
    }

    /// Whether `nix-copy-closure` wants an IPv6 host as `root@[::1]`. Nix 2.8 hands the
    /// host to ssh as written (so it must be bare); 2.26 takes both; 2.34 parses it as a URL
    /// authority and refuses the bare form (README, "Tested Nix versions").
    pub fn brackets_ipv6_hosts(&self) -> bool {
        self.at_least(2, 26)
    }

    pub fn version_string(&self) -> String {
        let (a, b, c) = self.version;
        format!("{}{a}.{b}.{c}", if self.lix { "Lix " } else { "" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> NixArgs {
        NixArgs {
            verbose: 3,
            quiet: 2,
            include: vec!["a".into(), "b".into()],
            repair: true,
            print_build_logs: true,
            keep_failed: true,
            use_substitutes: true,
            impure: true,
            option: vec!["narinfo-cache-negative-ttl".into(), "1200".into()],
            ..Default::default()
        }
    }

    #[test]
    fn legacy_build_is_canonical_and_drops_print_build_logs() {
        assert_eq!(
            flags().for_command(NixCommand::LegacyBuild),
            [
                "-vvv",
                "--quiet",
                "--quiet",
                "--keep-failed",
                "--repair",
                "--option",
                "narinfo-cache-negative-ttl",
                "1200",
                "-I",
                "a",
                "-I",
                "b"
            ]
        );
    }

    #[test]
    fn flake_build_takes_everything_but_copy_flags() {
        assert_eq!(
            flags().for_command(NixCommand::FlakeBuild),
            [
                "-vvv",
                "--quiet",
                "--quiet",
                "--keep-failed",
                "--repair",
                "--option",
                "narinfo-cache-negative-ttl",
                "1200",
                "-I",
                "a",
                "-I",
                "b",
                "--print-build-logs",
                "--impure"
            ]
        );
    }

    #[test]
    fn copies_drop_what_they_reject() {
        assert_eq!(
            flags().for_command(NixCommand::CopyClosure),
            [
                "-vvv",
                "--quiet",
                "--quiet",
                "--keep-failed",
                "--option",
                "narinfo-cache-negative-ttl",
                "1200",
                "-s"
            ]
        );
        assert_eq!(
            flags().for_command(NixCommand::Copy),
            [
                "-vvv",
                "--quiet",
                "--quiet",
                "--option",
                "narinfo-cache-negative-ttl",
                "1200",
                "-s"
            ]
        );
    }

    #[test]
    fn file_evaluations_take_no_lock_options() {
        assert_eq!(
            flags().for_command(NixCommand::FileEval),
            [
                "-vvv",
                "--quiet",
                "--quiet",
                "--keep-failed",
                "--repair",
                "--option",
                "narinfo-cache-negative-ttl",
                "1200",
                "-I",
                "a",
                "-I",
                "b",
                "--print-build-logs"
            ]
        );
    }

    #[test]
    fn parses_versions() {
        assert_eq!(
            NixCaps::parse("nix (Nix) 2.8.0\n").unwrap().version,
            (2, 8, 0)
        );
        let lix = NixCaps::parse("nix (Lix, like Nix) 2.91.1").unwrap();
        assert!(lix.lix && lix.repl_takes_expr());
        assert_eq!(
            NixCaps::parse("nix (Nix) 2.24.10pre2024").unwrap().version,
            (2, 24, 10)
        );
        assert!(!NixCaps::floor().repl_takes_expr());
        assert!(NixCaps::parse("").is_none());
    }
}
