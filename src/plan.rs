//! The plan: what rb will run, where, and why — plain data.
//!
//! A plan is a list of sessions. A session is one process on one host (on a remote host: one
//! SSH round trip), elevated or not, running one or more steps in order. Steps refer to values
//! that only exist at run time (the built system's store path) through [`Var`]s, filled in by
//! earlier steps' captured output. `--plan` prints this value; the executor runs it.

use crate::cli::Action;
use crate::elevation::Elevation;
use crate::host::{Host, SshHost};
use crate::shell;
use serde::Serialize;
use std::fmt;

/// Version of the `--plan --json` document; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// A host to connect to, and what its first session checks there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connect {
    #[serde(flatten)]
    pub host: SshHost,
    pub checks: crate::probe::Checks,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub action: Action,
    /// Remote hosts connected to before anything runs, so that an unreachable one (or one
    /// that cannot do its part, `probe.rs`) fails fast.
    pub connect: Vec<Connect>,
    /// Values known before anything runs (e.g. `--store-path`).
    pub inputs: Vec<(Var, String)>,
    pub sessions: Vec<Session>,
    /// `--confirm-timeout` (magic rollback): confirming the new configuration after the
    /// sessions, over a new connection to the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm: Option<Confirm>,
    pub finish: Finish,
}

/// Magic rollback's second half. The activation session armed a watchdog on the target
/// (`rb-watchdog arm`, see `rollback/watchdog.rs`); this session, run over a NEW SSH connection once
/// activation is over, proves the target is still reachable and tells the watchdog to keep
/// the new configuration, then reads back what the watchdog says is active. Connection
/// attempts are retried until the timeout has passed; the watchdog decides the race.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Confirm {
    /// Seconds the watchdog waits for the confirmation, counted from the end of the
    /// activation session.
    pub timeout: u64,
    /// The watchdog's directory on the target.
    pub dir: String,
    /// `--confirm-check`: shell commands the confirming session runs on the target, in order,
    /// before it confirms; each must succeed within the confirmation window, or the target
    /// rolls back at once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    /// `switch`: what the watchdog runs with `boot` once confirmed, making the new generation
    /// the boot default (the profile's switch-to-configuration, or its specialisation's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// One step, `rb-watchdog confirm <dir> [CHECK…]`, elevated like activation.
    pub session: Session,
}

/// One process on one host: locally a child process, remotely one SSH session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    pub host: Host,
    /// How the whole session is elevated; one password prompt covers all its steps.
    pub elevation: Elevation,
    pub steps: Vec<Step>,
    /// Run instead when this session fails, after saying so (e.g. a relayed copy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Box<Session>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub kind: StepKind,
    /// Printed on stderr when the step starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub commands: Vec<Command>,
    /// What this step's stdout yields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<Capture>,
    /// What its output and failure mean, for the executor, which knows no step kinds.
    #[serde(skip_serializing_if = "Output::is_log")]
    pub output: Output,
    /// What a connection lost during the step leaves on the host, said after the error (e.g.
    /// that the profile may already be the new generation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub if_lost: Option<String>,
}

/// How the executor runs a step and reads what it does, chosen by the planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Output {
    /// Its commands' output is progress, on rb's stderr.
    Log,
    /// It takes over the terminal: stdin, stdout and Ctrl-C belong to its command (an
    /// editor, `nix repl`).
    Terminal,
    /// A copy between hosts: it needs the connections open; its stderr is read on the way for
    /// Nix's refusal of unsigned paths, and a failure may be a host without Nix.
    CopyLog,
    /// The elevation tool's first say: a failure here is its refusal.
    ElevationCheck,
    /// `--ask`: it shows what changes on the target; once its session ended, rb asks whether
    /// to go on (`progress::ask`).
    Ask,
}

impl Capture {
    /// Read when its step ends, not when its session does: what it shows comes before
    /// the later steps' output, and stays known when one of them fails.
    pub fn at_step_end(&self) -> bool {
        matches!(self, Capture::PackageDiff)
    }
}

impl Output {
    pub fn is_log(&self) -> bool {
        *self == Output::Log
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    CheckElevation,
    Build,
    Evaluate,
    Copy,
    FindGeneration,
    CheckSpecialisation,
    CheckClosure,
    CreateProfileDir,
    SetProfile,
    Activate,
    /// `--upgrade`: `nix-channel --update` of root's channels.
    UpgradeChannels,
    /// `--diff`: what changes between the running system and the new one.
    Diff,
    /// `--ask`: the units switch-to-configuration would stop, restart and start.
    DryActivate,
    /// `list-generations`: the profile's generations and their facts.
    ListGenerations,
    /// `edit` without a flake: which file the configuration is in.
    FindConfig,
    /// `edit`: an editor on the configuration (has the terminal).
    Edit,
    /// `repl`: `nix repl` with the configuration (has the terminal).
    Repl,
    ArmWatchdog,
    Confirm,
}

impl StepKind {
    /// Whether the step is a phase a user follows (README, "Progress"): build, copy,
    /// activation and the like. The others (checks, the profile's link, arming the watchdog)
    /// are part of the phase around them: their progress lines show only with `--verbose`,
    /// or when they fail.
    pub fn is_phase(self) -> bool {
        matches!(
            self,
            StepKind::Build
                | StepKind::Evaluate
                | StepKind::Copy
                | StepKind::Activate
                | StepKind::UpgradeChannels
                | StepKind::Diff
                | StepKind::Confirm
        )
    }

    /// The step as the subject of an error message.
    pub fn what(self) -> &'static str {
        match self {
            StepKind::CheckElevation => "checking the sudo password",
            StepKind::Build => "building the system configuration",
            StepKind::Evaluate => "evaluating the system configuration",
            StepKind::Copy => "copying the system closure",
            StepKind::FindGeneration => "listing the profile's generations",
            StepKind::CheckSpecialisation => "checking the specialisation",
            StepKind::CheckClosure => "checking the system closure",
            StepKind::CreateProfileDir => "creating the profile directory",
            StepKind::SetProfile => "setting the system profile",
            StepKind::Activate => "activating the configuration",
            StepKind::UpgradeChannels => "updating the channels",
            StepKind::Diff => "comparing the systems",
            StepKind::DryActivate => "finding the units that would change",
            StepKind::ListGenerations => "listing the profile's generations",
            StepKind::FindConfig => "finding the configuration file",
            StepKind::Edit => "editing the configuration",
            StepKind::Repl => "running nix repl",
            StepKind::ArmWatchdog => "arming the rollback watchdog",
            StepKind::Confirm => "confirming the new configuration",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StepKind::CheckElevation => "check-elevation",
            StepKind::Build => "build",
            StepKind::Evaluate => "evaluate",
            StepKind::Copy => "copy",
            StepKind::FindGeneration => "find-generation",
            StepKind::CheckSpecialisation => "check-specialisation",
            StepKind::CheckClosure => "check-closure",
            StepKind::CreateProfileDir => "create-profile-dir",
            StepKind::SetProfile => "set-profile",
            StepKind::Activate => "activate",
            StepKind::UpgradeChannels => "upgrade-channels",
            StepKind::Diff => "diff",
            StepKind::DryActivate => "dry-activate",
            StepKind::ListGenerations => "list-generations",
            StepKind::FindConfig => "find-config",
            StepKind::Edit => "edit",
            StepKind::Repl => "repl",
            StepKind::ArmWatchdog => "arm-watchdog",
            StepKind::Confirm => "confirm",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command {
    /// The program and its arguments. The program `rb-watchdog` is rb's own magic-rollback
    /// watchdog (`rollback/watchdog.rs`): shell functions that rendering puts at the top of the script.
    pub argv: Vec<Word>,
    pub env: Env,
    /// Run under `systemd-run` with this unit name where the host runs systemd, so that a
    /// dropped connection cannot stop the command half way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub systemd_run: Option<String>,
    /// Said on stderr when the command fails (its status is kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    /// How to undo this command when a later command of the session fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undo: Option<Undo>,
}

/// Undoing a change when a later step of the same session fails, so that a failed run leaves
/// the host as it found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Undo {
    /// Point the profile back at the generation it had before (or remove it if it had none).
    /// `boot`: and make that generation the boot default again (`switch-to-configuration
    /// boot`), as the failed activation may have changed it; not when the activation leaves
    /// the boot loader alone (`switch` under magic rollback runs `test`, see `action.rs`).
    RestoreProfile { profile: String, boot: bool },
    /// Have the magic-rollback watchdog in `dir` roll back at once, not at its deadline.
    RollBackNow { dir: String },
    /// Leave the profile where this command put it, and say so
    /// (`--keep-generation-on-failure`).
    KeepProfile { profile: String },
}

impl Command {
    pub fn new(argv: Vec<Word>) -> Self {
        Command {
            argv,
            env: Env::Inherit(Vec::new()),
            systemd_run: None,
            on_failure: None,
            undo: None,
        }
    }

    pub fn lit<S: AsRef<str>>(words: &[S]) -> Self {
        Command::new(words.iter().map(|w| Word::lit(w.as_ref())).collect())
    }

    pub fn on_failure(mut self, message: impl Into<String>) -> Self {
        self.on_failure = Some(message.into());
        self
    }
}

/// The environment a command runs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Env {
    /// The host's environment plus these variables.
    Inherit(Vec<(String, String)>),
    /// Only these variables (`env -i`).
    Clean(Vec<EnvVar>),
}

impl Env {
    /// The words that give a command this environment: `env -i` first for a clean one, then
    /// each variable as `set` (a value) or `keep` (kept where the command starts; None: not
    /// passed on) writes it. `shell`: read by a shell, which takes the host's environment
    /// plus assignments as they are; for argv (no shell), `env` first for those too.
    pub fn prefix(
        &self,
        shell: bool,
        set: &dyn Fn(&str, &str) -> String,
        keep: &dyn Fn(&str) -> Option<String>,
    ) -> Vec<String> {
        match self {
            Env::Inherit(vars) if vars.is_empty() => Vec::new(),
            Env::Inherit(vars) => (!shell)
                .then(|| "env".to_string())
                .into_iter()
                .chain(vars.iter().map(|(k, v)| set(k, v)))
                .collect(),
            Env::Clean(vars) => ["env".to_string(), "-i".to_string()]
                .into_iter()
                .chain(vars.iter().filter_map(|var| match var {
                    EnvVar::Set(k, v) => Some(set(k, v)),
                    EnvVar::Keep(k) => keep(k),
                }))
                .collect(),
        }
    }

    /// The names of its variables, in order.
    pub fn names(&self) -> Vec<&str> {
        match self {
            Env::Inherit(vars) => vars.iter().map(|(k, _)| k.as_str()).collect(),
            Env::Clean(vars) => vars
                .iter()
                .map(|v| match v {
                    EnvVar::Set(k, _) | EnvVar::Keep(k) => k.as_str(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvVar {
    Set(String, String),
    /// Passed on when set where the command starts (for a local command, in rb's environment;
    /// for a remote one, in the remote shell's).
    Keep(String),
}

/// A run-time value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Var {
    /// The system closure being deployed (a store path or a generation link).
    System,
    /// A generation number of the profile.
    Generation,
    /// The derivation of the system, when it is built on a build host.
    Drv,
    /// `build-image`: the image file's path inside `$system` (its `passthru.filePath`).
    ImageFile,
    /// `list-generations`: the listing script's output, parsed by `generations.rs`.
    Generations,
    /// `edit`: the configuration file to open.
    ConfigFile,
    /// `--diff`: `package-diff.sh`'s output, read by `closure_diff.rs`.
    Diff,
    /// `--confirm-timeout`: the watchdog's report, read by `watchdog::Verdict`.
    Verdict,
    /// Several targets: the derivation of each configuration, one per line.
    Drvs,
    /// Several targets: the system of each configuration built, one per line, handed to each
    /// target's plan as its `$system`.
    Systems,
}

impl Var {
    pub fn name(self) -> &'static str {
        match self {
            Var::System => "system",
            Var::Generation => "generation",
            Var::Drv => "drv",
            Var::ImageFile => "image-file",
            Var::Generations => "generations",
            Var::ConfigFile => "config-file",
            Var::Diff => "diff",
            Var::Verdict => "verdict",
            Var::Drvs => "drvs",
            Var::Systems => "systems",
        }
    }
}

/// One argv word: literal, or a run-time value followed by a literal suffix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Word {
    Lit(String),
    Var { var: Var, suffix: String },
}

impl Word {
    pub fn lit(s: impl Into<String>) -> Self {
        Word::Lit(s.into())
    }

    pub fn var(var: Var, suffix: impl Into<String>) -> Self {
        Word::Var {
            var,
            suffix: suffix.into(),
        }
    }

    /// The word as a user would write it in a shell, with `$system` for run-time values.
    pub fn display(&self) -> String {
        match self {
            Word::Lit(s) => shell::quote(s),
            Word::Var { var, suffix } if suffix.is_empty() => format!("${}", var.name()),
            Word::Var { var, suffix } => format!("${{{}}}{}", var.name(), shell::quote(suffix)),
        }
    }
}

/// How a step's stdout becomes a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Capture {
    /// `nix build --json`: the `out` output of the first entry is `$system`.
    BuildJson,
    /// Every non-empty line is a store path, or `-` for none; all of them, in order, one per
    /// line, are the variable (several targets, `planner/several.rs`: `$drvs`, `$systems`).
    PathLines(Var),
    /// The last line is a store path, the value of the variable.
    PathLine(Var),
    /// `readlink PROFILE` after setting it: `<name>-N-link` gives `$generation`.
    ProfileLink,
    /// `nix-env --list-generations`: choose a generation other than the current one, setting
    /// `$generation` and `$system` (the generation's link in the profile's directory).
    Generation { profile: String, pick: Pick },
    /// `nix eval --json` of `{ <variant> = <filePath>; … }`: checks that the requested image
    /// variant is one of them (else lists them) and sets `$image-file`.
    ImageVariants { variant: Option<String> },
    /// The generations listing (see `generations.rs`), kept whole as `$generations`.
    Generations,
    /// `package-diff.sh`: the closures `--diff` compares, kept whole as `$diff` and shown
    /// (`ClosureDiff::lines()`, on stderr) as soon as the step ends, before the next one runs.
    PackageDiff,
    /// `rb-watchdog confirm`: the watchdog's verdict (`@rb-watchdog key=value` lines), read by
    /// `rollback/confirm.rs`; no value.
    Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pick {
    /// The newest generation older than the current one (what `nix-env --rollback` picks).
    OlderThanCurrent,
    /// The newest generation that is not the current one (nixos-rebuild-ng for test/build).
    NewestOther,
    /// This generation (`--generation N`), which must exist.
    Number(u64),
}

/// What rb prints when everything succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Finish {
    Nothing,
    /// `Done. The new configuration is ` on stderr, the path on stdout.
    NewConfiguration,
    /// The VM's run script on stdout.
    VirtualMachine,
    /// `Done. The disk image can be found in ` on stderr, `$system/$image-file` on stdout.
    Image,
    /// The generations as a table, or as JSON with `--json`.
    Generations {
        json: bool,
    },
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "plan for '{}':", self.action.name())?;
        for c in &self.connect {
            let mut checks = c.checks.commands.clone();
            match &c.checks.root {
                None => {}
                Some(e) if e.is_none() => checks.push("root as connected".into()),
                Some(e) => checks.push(format!("root{}", e.label().replace(" as root", ""))),
            }
            let checks = match checks.is_empty() {
                true => String::new(),
                false => format!("; checks {}", checks.join(", ")),
            };
            writeln!(
                f,
                "  connect to {} (one SSH connection for the run, opened while building{checks})",
                c.host.dest,
            )?;
        }
        for (var, value) in &self.inputs {
            writeln!(f, "  ${} = {}", var.name(), shell::quote(value))?;
        }
        let mut n = 0;
        for (i, session) in self.sessions.iter().enumerate() {
            let elevation = session.elevation.label();
            writeln!(f, "session {} on {}{elevation}:", i + 1, session.host)?;
            n = session.fmt_steps(f, n)?;
            let mut fallback = &session.fallback;
            while let Some(instead) = fallback {
                writeln!(f, "  if that fails, on {} instead:", instead.host)?;
                n = instead.fmt_steps(f, n)?;
                fallback = &instead.fallback;
            }
        }
        if let Some(confirm) = &self.confirm {
            let session = &confirm.session;
            // The password is asked once, before the first session.
            let elevation = session.elevation.without_password().label();
            writeln!(
                f,
                "session {} on {}{elevation}, over a NEW SSH connection, within {}s of the \
                 activation (else the target rolls back by itself):",
                self.sessions.len() + 1,
                session.host,
                confirm.timeout
            )?;
            session.fmt_steps(f, n)?;
            let pad = " ".repeat(28);
            if !confirm.checks.is_empty() {
                writeln!(
                    f,
                    "{pad}checks first, in order, each within the window (one that fails rolls \
                     back at once):"
                )?;
                for (i, check) in confirm.checks.iter().enumerate() {
                    writeln!(f, "{pad}  {}. {check}", i + 1)?;
                }
            }
            if let Some(boot) = &confirm.boot {
                writeln!(
                    f,
                    "{pad}once confirmed: {boot} boot (the new generation becomes the boot default)"
                )?;
            }
        }
        let finish = match self.finish {
            Finish::Nothing => "print nothing",
            Finish::NewConfiguration => "print the new configuration's path on stdout",
            Finish::VirtualMachine => "print the virtual machine's run script on stdout",
            Finish::Image => "print the disk image's path on stdout",
            Finish::Generations { json: false } => "print the generations as a table on stdout",
            Finish::Generations { json: true } => "print the generations as JSON on stdout",
        };
        write!(f, "then {finish}")
    }
}

impl Step {
    /// Whether the step's process may be killed outright when it has not ended shortly after
    /// rb asked it to stop (`process::Stop`): a build, an evaluation or a copy leaves nothing
    /// half done that Nix does not clean up itself (a half-copied closure never becomes valid
    /// there). Anything that sets a profile or activates must end on its own.
    pub fn may_be_killed(&self) -> bool {
        self.output == Output::CopyLog || matches!(self.kind, StepKind::Build | StepKind::Evaluate)
    }

    /// A step that runs `commands`, their output progress on stderr, capturing nothing; a
    /// planner sets what differs (`Step { capture: …, ..Step::new(…) }`).
    pub fn new(kind: StepKind, commands: Vec<Command>) -> Step {
        Step {
            kind,
            message: None,
            commands,
            capture: None,
            output: Output::Log,
            if_lost: None,
        }
    }
}

impl Session {
    /// A session of the one `step` on `host`, without a fallback.
    pub fn one(host: Host, elevation: Elevation, step: Step) -> Session {
        Session {
            host,
            elevation,
            steps: vec![step],
            fallback: None,
        }
    }

    fn fmt_steps(&self, f: &mut fmt::Formatter<'_>, mut n: usize) -> Result<usize, fmt::Error> {
        {
            for step in &self.steps {
                n += 1;
                let mut lead = format!("  {n:>2}. {:<22}", step.kind.name());
                for cmd in &step.commands {
                    writeln!(f, "{lead}{}", cmd.display())?;
                    lead = " ".repeat(28);
                }
                if let Some(capture) = &step.capture {
                    let yields = match capture {
                        Capture::BuildJson => "$system".to_string(),
                        Capture::PathLines(var) => {
                            format!("${} (one per configuration, in order)", var.name())
                        }
                        Capture::ProfileLink => "$generation".to_string(),
                        Capture::PathLine(var) => format!("${}", var.name()),
                        Capture::Generation { pick, .. } => format!(
                            "$generation, $system ({})",
                            match pick {
                                Pick::OlderThanCurrent => {
                                    "the newest older than the current".to_string()
                                }
                                Pick::NewestOther => "the newest other than the current".into(),
                                Pick::Number(n) => format!("generation {n}, which must exist"),
                            }
                        ),
                        Capture::ImageVariants { variant: Some(v) } => {
                            format!("$image-file (of image variant '{v}')")
                        }
                        Capture::ImageVariants { variant: None } => {
                            "the image variants (none was chosen)".to_string()
                        }
                        Capture::Generations => "$generations".to_string(),
                        Capture::Verdict => "the watchdog's verdict".to_string(),
                        Capture::PackageDiff => {
                            "$diff (the package diff, shown when the step ends)".to_string()
                        }
                    };
                    writeln!(f, "{}→ {yields}", " ".repeat(28))?;
                }
            }
        }
        Ok(n)
    }
}

impl Command {
    /// The command as a shell line, for `--plan`.
    pub fn display(&self) -> String {
        let mut words = Vec::new();
        if let Some(unit) = &self.systemd_run {
            words.push(format!("[systemd-run --unit={unit} where available]"));
        }
        words.extend(
            self.env
                .prefix(true, &|k, v| format!("{k}={}", shell::quote(v)), &|k| {
                    Some(format!("{k}=${k}"))
                }),
        );
        words.extend(self.argv.iter().map(Word::display));
        match &self.undo {
            Some(Undo::RestoreProfile { .. }) => {
                words.push("(undone if a later step fails)".into())
            }
            Some(Undo::RollBackNow { .. }) => {
                words.push("(if a later step fails, it rolls back at once)".into())
            }
            Some(Undo::KeepProfile { .. }) => {
                words.push("(kept if a later step fails: --keep-generation-on-failure)".into())
            }
            None => {}
        }
        words.join(" ")
    }
}
