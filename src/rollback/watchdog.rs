//! Magic rollback on the target (`--confirm-timeout`): the watchdog and the plan pieces that
//! use it.
//!
//! The activation session arms a watchdog before it changes anything (`rb-watchdog arm`): it
//! reads the profile and `/run/current-system` itself (so it does not matter which tool made
//! the previous generation) and starts a process that outlives the SSH session — a transient
//! systemd unit where the target runs systemd, else a detached process. Once the deploying
//! session has ended, the watchdog waits SECONDS for a confirmation; without one it puts the
//! profile back (`nix-env --switch-generation`, or removes the profile if it had no
//! generation) and activates the system that ran before. A failure later in the activation
//! session tells it to roll back at once ([`Undo::RollBackNow`]).
//!
//! Activation runs `switch-to-configuration` in a transient systemd unit
//! ([`activation_unit`]) where the target runs systemd, and that unit goes on when the
//! deploying session dies with its SSH connection. So "the activation is over" means: the
//! deploying session has ended AND that unit is no longer active. The watchdog starts counting
//! SECONDS only then, never runs the previous system's `switch-to-configuration` while the
//! unit is active (after [`ACTIVATION_WAIT_SECS`] it stops the unit first), and the confirming
//! session does not confirm before then either.
//!
//! rb then confirms over a new SSH connection (`rb-watchdog confirm`, see `confirm.rs`). The
//! watchdog and the confirmation race for one `mkdir` on the target, so exactly one of "kept"
//! and "rolled back" happens, and both sides report the same verdict: a `result` file in the
//! watchdog's directory, `/run/rb/<run id>/`, which rb reads back in the confirming session.
//!
//! Before it confirms, the confirming session runs the `--confirm-check` commands, each within
//! what is left of the window (the watchdog writes its deadline, `deadline`, once it counts);
//! the first that fails has the watchdog roll back at once. For `switch`, the activation ran
//! `test`, and the watchdog runs the profile's `boot` once rb's confirmation has won
//! (`boot-when-confirmed`, see `action.rs`): the boot default changes only then, and a
//! rollback (the previous system's `test`) leaves it alone.
//!
//! In plans, the watchdog is the program `rb-watchdog`: rendering a session that uses it puts
//! its shell functions (`scripts/watchdog-session.sh`, `scripts/watchdog-helpers.sh`; the
//! detached watchdog is `scripts/watchdog.sh`) at the top of its script, so it costs no extra
//! round trip.

use crate::plan::{Capture, Command, Confirm, Output, Session, Step, StepKind, Undo, Word};
use crate::request::Request;
use crate::shell::quote;
use std::collections::BTreeMap;

/// The name plans give the watchdog's shell functions.
pub const PROGRAM: &str = "rb-watchdog";

/// Where the watchdogs of all runs keep their state on a target.
pub const RUN_DIR: &str = "/run/rb";

/// How long the confirming session waits on the target for a rollback in progress (the
/// previous system's activation) before it says the outcome is still pending.
pub const RESULT_WAIT_SECS: u64 = 600;

/// Marker of the watchdog's report lines on the confirming session's stdout.
pub const REPORT: &str = "@rb-watchdog ";

/// How long the watchdog waits for an activation unit that is still active once the deploying
/// session has ended (the connection was lost), before it stops the unit to roll back.
pub const ACTIVATION_WAIT_SECS: u64 = RESULT_WAIT_SECS;

/// The name the activation's systemd unit gets, before the run id (see
/// `planner/activate.rs`; [`activation_unit`]).
const ACTIVATION_UNIT_PREFIX: &str = "nixos-rebuild-switch-to-configuration-";

/// The transient systemd unit `switch-to-configuration` runs in for run `run_id` (where the
/// target has systemd and `NIXOS_REBUILD_NO_SYSTEMD_RUN` is not set). The watchdog derives it
/// from its directory's name (the run id) when it is armed, and waits while it is active.
pub fn activation_unit(run_id: &str) -> String {
    format!("{ACTIVATION_UNIT_PREFIX}{run_id}")
}

/// Whether `cmd` runs the watchdog (and so needs the shell functions).
pub fn is_watchdog(cmd: &Command) -> bool {
    matches!(cmd.argv.first(), Some(Word::Lit(w)) if w == PROGRAM)
        || matches!(cmd.undo, Some(Undo::RollBackNow { .. }))
}

/// The watchdog's directory for a run.
pub fn dir(run_id: &str) -> String {
    format!("{RUN_DIR}/{run_id}")
}

/// The `switch-to-configuration` action that brings back the previous system: the inverse of
/// what the run's activation does (`test` touches neither profile nor boot loader, so neither
/// does its rollback; `switch` activates with `test` until confirmed, see `action.rs`).
fn stc_action(req: &Request) -> &'static str {
    match req.action.stc_action_until_confirmed() {
        Some(same @ ("boot" | "test")) => same,
        _ => "switch",
    }
}

/// The step of the activation session that arms the watchdog; it goes after the checks and
/// before the profile changes. A later failure in the session has it roll back at once.
pub fn arm_step(req: &Request, run_id: &str, timeout: u64) -> Step {
    let dir = dir(run_id);
    let restores_profile = req.action.sets_profile();
    let mut words = vec![
        PROGRAM.to_string(),
        "arm".into(),
        dir.clone(),
        timeout.to_string(),
        stc_action(req).into(),
        req.profile.path(),
        if restores_profile {
            "restore-profile"
        } else {
            "keep-profile"
        }
        .into(),
    ];
    // `switch`: the confirmation has the watchdog make the profile's system (its
    // specialisation, as activated) the boot default.
    if let Some(stc) = boot_when_confirmed(req) {
        words.extend([
            "boot-when-confirmed".into(),
            stc,
            if req.install_bootloader { "1" } else { "0" }.into(),
        ]);
    }
    let mut arm = Command::lit(&words);
    arm.undo = Some(Undo::RollBackNow { dir });
    Step {
        kind: StepKind::ArmWatchdog,
        message: None,
        commands: vec![arm],
        capture: None,
        output: Output::Log,
        if_lost: None,
    }
}

/// `switch`: the switch-to-configuration, inside the profile's system, that the watchdog runs
/// with `boot` once rb confirms (the one activation ran: the specialisation's, if any).
fn boot_when_confirmed(req: &Request) -> Option<String> {
    req.action
        .boots_when_confirmed()
        .then(|| match &req.specialisation {
            Some(s) => format!("specialisation/{s}/bin/switch-to-configuration"),
            None => "bin/switch-to-configuration".into(),
        })
}

/// How the confirming session settles the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Keep the new configuration (unless the watchdog has already rolled back).
    Confirm,
    /// Activation failed: have the watchdog roll back now, and report.
    RollBack,
}

impl Mode {
    fn word(self) -> &'static str {
        match self {
            Mode::Confirm => "confirm",
            Mode::RollBack => "rollback",
        }
    }
}

/// The confirmation: its own session on the target, elevated like activation. The
/// `--confirm-check` commands are the confirming command's last words: it runs them once the
/// activation is over, before it confirms (`scripts/watchdog-session.sh`).
pub fn confirm(req: &Request, run_id: &str, timeout: u64) -> Confirm {
    let dir = dir(run_id);
    let mut words = vec![
        PROGRAM.to_string(),
        Mode::Confirm.word().into(),
        dir.clone(),
    ];
    words.extend(req.confirm_checks.iter().cloned());
    Confirm {
        timeout,
        checks: req.confirm_checks.clone(),
        boot: boot_when_confirmed(req).map(|stc| format!("{}/{stc}", req.profile.path())),
        session: Session {
            host: req.target_host.clone(),
            elevation: req.elevation.clone(),
            steps: vec![Step {
                kind: StepKind::Confirm,
                message: None,
                commands: vec![Command::lit(&words)],
                capture: Some(Capture::Verdict),
                output: Output::Log,
                if_lost: None,
            }],
            fallback: None,
        },
        dir,
    }
}

/// The confirmation's session in `mode`.
pub fn session(confirm: &Confirm, mode: Mode) -> Session {
    let mut session = confirm.session.clone();
    for step in &mut session.steps {
        for cmd in &mut step.commands {
            if is_watchdog(cmd) && cmd.argv.len() > 1 {
                cmd.argv[1] = Word::lit(mode.word());
            }
        }
    }
    session
}

/// The shell function a rendered script calls for `rb-watchdog`.
pub const FUNCTION: &str = "rb_watchdog";

/// Helpers of both the sessions' functions and the watchdog itself (the pid and unit checks,
/// the generation number of a link): one copy, in both scripts.
const HELPERS: &str = include_str!("../scripts/watchdog-helpers.sh");
/// `rb_watchdog` and what it calls, for the sessions that arm and confirm.
const SESSION: &str = include_str!("../scripts/watchdog-session.sh");
/// The detached watchdog.
const WATCHDOG: &str = include_str!("../scripts/watchdog.sh");

/// Shell definitions for a script that uses the watchdog; `program` prefixes its messages.
/// They use `rb_generation_of` (generations.rs) and `rb_systemd_run` (systemd.rs), which
/// rendering defines before them.
pub fn functions(program: &str) -> String {
    format!(
        "rb_wd_prog={} rb_wd_run_dir={} rb_wd_unit_prefix={} rb_wd_wait={RESULT_WAIT_SECS}\n\
         rb_wd_body={}\n{HELPERS}{SESSION}",
        quote(program),
        quote(RUN_DIR),
        quote(ACTIVATION_UNIT_PREFIX),
        quote(&body()),
    )
}

/// The watchdog's own script, given to `sh -c`.
fn body() -> String {
    format!(
        "rb_wd_unit_wait={ACTIVATION_WAIT_SECS}\n{}{HELPERS}{WATCHDOG}",
        crate::generations::LINK_FUNCTION
    )
}

/// What the watchdog says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// rb's confirmation won: the new configuration stays.
    Confirmed,
    /// The previous generation is back, profile and running system.
    RolledBack,
    /// The watchdog tried to roll back and something failed.
    RollbackFailed,
    /// Still going on when the confirming session stopped waiting.
    Pending,
    /// No watchdog, or one that stopped without a verdict.
    Unknown,
}

/// How one confirmation check went (`check-N=…` lines of the report,
/// `rb_wd_checks` in `scripts/watchdog-session.sh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRun {
    /// Its place among the `--confirm-check` options, from 1.
    pub number: usize,
    /// Its exit status, when it finished.
    pub status: Option<i32>,
    /// The seconds it was given, when it did not finish within them.
    pub timed_out: Option<u64>,
    /// Its last lines of output, when it failed.
    pub output: Vec<String>,
}

impl CheckRun {
    pub fn passed(&self) -> bool {
        self.status == Some(0)
    }

    /// How it failed, for a message: `failed (exit status 3)`, `did not finish within 5s`.
    pub fn failure(&self) -> String {
        match (self.status, self.timed_out) {
            (_, Some(0)) => "could not run: the confirmation window was over".into(),
            (_, Some(secs)) => format!("did not finish within {secs}s"),
            (Some(status), None) => format!("failed (exit status {status})"),
            (None, None) => "failed".into(),
        }
    }
}

/// The watchdog's report, from `@rb-watchdog key=value` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub outcome: Outcome,
    fields: BTreeMap<String, String>,
}

impl Verdict {
    /// Reads the report lines among `lines`; None if there is no outcome.
    pub fn parse<S: AsRef<str>>(lines: &[S]) -> Option<Verdict> {
        let fields: BTreeMap<String, String> = lines
            .iter()
            .filter_map(|l| l.as_ref().strip_prefix(REPORT))
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let outcome = match fields.get("outcome")?.as_str() {
            "confirmed" => Outcome::Confirmed,
            "rolled-back" => Outcome::RolledBack,
            "rollback-failed" => Outcome::RollbackFailed,
            "pending" => Outcome::Pending,
            _ => Outcome::Unknown,
        };
        Some(Verdict { outcome, fields })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Why the watchdog rolled back: `timeout` or `requested`.
    pub fn reason(&self) -> Option<&str> {
        self.get("reason")
    }

    /// What failed during the rollback.
    pub fn failed(&self) -> Option<&str> {
        self.get("failed")
    }

    /// More about an unknown or pending outcome.
    pub fn detail(&self) -> Option<&str> {
        self.get("detail")
    }

    pub fn generation(&self) -> Option<&str> {
        self.get("generation")
    }

    /// The `switch-to-configuration` action of the run (and of its rollback).
    pub fn action(&self) -> Option<&str> {
        self.get("action")
    }

    /// The system the profile points to now.
    pub fn profile_system(&self) -> Option<&str> {
        self.get("profile-system")
    }

    /// The system the confirmation made the boot default (`switch`, see `action.rs`).
    pub fn boot_default(&self) -> Option<&str> {
        self.get("boot")
    }

    /// Why the confirmation could not make the new system the boot default.
    pub fn boot_failed(&self) -> Option<&str> {
        self.get("boot-failed")
    }

    /// The confirmation checks that ran (`--confirm-check`), in order: all passed but the
    /// last, when it failed.
    pub fn checks(&self) -> Vec<CheckRun> {
        (1..)
            .map_while(|n| {
                let said = self.get(&format!("check-{n}"))?;
                let (status, timed_out) = match said.split_once(' ') {
                    Some(("status", s)) => (s.parse().ok(), None),
                    Some(("timeout", secs)) => (None, Some(secs.parse().unwrap_or(0))),
                    _ => (None, None),
                };
                let output = (1..)
                    .map_while(|k| self.get(&format!("check-{n}-output-{k}")))
                    .map(String::from)
                    .collect();
                Some(CheckRun {
                    number: n,
                    status,
                    timed_out,
                    output,
                })
            })
            .collect()
    }

    /// The first confirmation check that did not pass.
    pub fn failed_check(&self) -> Option<CheckRun> {
        self.checks().into_iter().find(|c| !c.passed())
    }

    /// The report lines again, as the confirming session printed them (kept in the run's
    /// record for `--json`).
    pub fn report_lines(&self) -> String {
        self.fields
            .iter()
            .map(|(k, v)| format!("{REPORT}{k}={v}\n"))
            .collect()
    }

    /// What is active on the target now, for a message: e.g. `generation 1 of
    /// /nix/var/nix/profiles/system (/nix/store/…) is active`.
    pub fn now_active(&self) -> String {
        let profile = self.get("profile").unwrap_or("the profile");
        let generation = match (self.get("generation"), self.get("profile-system")) {
            (Some(g), Some(s)) => format!("generation {g} of {profile} ({s})"),
            (Some(g), None) => format!("generation {g} of {profile}"),
            _ => format!("no generation of {profile}"),
        };
        let running = self.get("system");
        match (self.get("action"), running) {
            (Some("boot"), _) => format!("{generation} is the boot default"),
            (_, Some(_)) if running == self.get("profile-system") => {
                format!("{generation} is active")
            }
            (_, Some(system)) => format!("{system} is running; {generation} is the boot default"),
            (_, None) => format!("{generation} is the boot default; no system is running"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_read_the_report_lines_only() {
        let v = Verdict::parse(&[
            "@rb-step 0",
            "@rb-watchdog outcome=rolled-back",
            "@rb-watchdog reason=timeout",
            "@rb-watchdog action=switch",
            "@rb-watchdog profile=/nix/var/nix/profiles/system",
            "@rb-watchdog generation=1",
            "@rb-watchdog profile-system=/nix/store/a-sys",
            "@rb-watchdog system=/nix/store/a-sys",
            "noise outcome=confirmed",
        ])
        .unwrap();
        assert_eq!(v.outcome, Outcome::RolledBack);
        assert_eq!(v.reason(), Some("timeout"));
        assert_eq!(
            v.now_active(),
            "generation 1 of /nix/var/nix/profiles/system (/nix/store/a-sys) is active"
        );
        assert!(Verdict::parse(&["@rb-step 0"]).is_none());
        let v = Verdict::parse(&["@rb-watchdog outcome=whatever"]).unwrap();
        assert_eq!(v.outcome, Outcome::Unknown);
        let v = Verdict::parse(&[
            "@rb-watchdog outcome=rollback-failed",
            "@rb-watchdog action=test",
            "@rb-watchdog profile=/p",
            "@rb-watchdog generation=3",
            "@rb-watchdog profile-system=/nix/store/a-sys",
            "@rb-watchdog system=/nix/store/b-sys",
        ])
        .unwrap();
        assert_eq!(
            v.now_active(),
            "/nix/store/b-sys is running; generation 3 of /p (/nix/store/a-sys) is the boot default"
        );
    }

    #[test]
    fn verdicts_say_how_the_checks_went_and_what_boots() {
        let v = Verdict::parse(&[
            "@rb-watchdog outcome=rolled-back",
            "@rb-watchdog reason=requested",
            "@rb-watchdog check-1=status 0",
            "@rb-watchdog check-2=status 7",
            "@rb-watchdog check-2-output-1=curl: (7) Failed to connect",
            "@rb-watchdog check-2-output-2=second; line",
        ])
        .unwrap();
        let checks = v.checks();
        assert_eq!(checks.len(), 2);
        assert!(checks[0].passed() && checks[0].output.is_empty());
        let failed = v.failed_check().unwrap();
        assert_eq!(failed, checks[1]);
        assert_eq!(
            (
                failed.number,
                failed.failure().as_str(),
                failed.output.len()
            ),
            (2, "failed (exit status 7)", 2)
        );
        assert_eq!(
            Verdict::parse(&v.report_lines().lines().collect::<Vec<_>>()),
            Some(v)
        );
        let v = Verdict::parse(&[
            "@rb-watchdog outcome=rolled-back",
            "@rb-watchdog check-1=timeout 12",
        ])
        .unwrap();
        assert_eq!(
            v.failed_check().unwrap().failure(),
            "did not finish within 12s"
        );
        let v =
            Verdict::parse(&["@rb-watchdog outcome=x", "@rb-watchdog check-1=timeout 0"]).unwrap();
        assert_eq!(
            v.failed_check().unwrap().failure(),
            "could not run: the confirmation window was over"
        );
        let v = Verdict::parse(&[
            "@rb-watchdog outcome=confirmed",
            "@rb-watchdog boot=/nix/store/b-sys",
        ])
        .unwrap();
        assert_eq!(
            (v.boot_default(), v.boot_failed()),
            (Some("/nix/store/b-sys"), None)
        );
        assert!(v.checks().is_empty() && v.failed_check().is_none());
    }

    #[test]
    fn the_shell_functions_are_filled_in() {
        let f = functions("nixos-rebuild");
        assert!(f.starts_with(
            "rb_wd_prog=nixos-rebuild rb_wd_run_dir=/run/rb \
             rb_wd_unit_prefix=nixos-rebuild-switch-to-configuration- rb_wd_wait=600\n\
             rb_wd_body='rb_wd_unit_wait=600\n"
        ));
        // The helpers once in each script, the watchdog's inside the sessions' (quoted).
        assert_eq!(f.matches("rb_wd_id() {").count(), 2);
        assert_eq!(body().matches("rb_wd_id() {").count(), 1);
        assert_eq!(body().matches("rb_generation_of() {").count(), 1);
        assert!(body().contains("\nd=$1 t=$2 "));
    }

    #[test]
    fn the_scripts_are_valid_sh() {
        for script in [functions("rb"), body()] {
            let out = std::process::Command::new("sh")
                .args(["-n", "-c", &script])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// The pid helpers run under dash on Debian-like targets: a process that is gone must
    /// only fail the check, never print into rb's output. Both scripts define them by
    /// `watchdog-helpers.sh`, which is checked here as the scripts have it.
    #[test]
    fn a_gone_process_is_checked_quietly_under_dash() {
        for script in [functions("rb"), body()] {
            assert!(script.contains(HELPERS));
        }
        // A gone pid fails both checks, quietly; this very shell passes them.
        let probe = format!(
            "{HELPERS}\nrb_wd_id 2147483646 && exit 9\nrb_wd_alive '2147483646 1' && exit 8\n\
             rb_wd_id $$ >/dev/null && rb_wd_alive \"$(rb_wd_id $$)\" || exit 7"
        );
        let out = std::process::Command::new("dash")
            .args(["-c", &probe])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    }

    /// The watchdog waits for the unit activation runs in: arming derives its name from the
    /// watchdog's directory, which must give the unit the planner puts activation in.
    #[test]
    fn arming_names_the_activation_unit() {
        use crate::planner::{RunEnv, plan};
        let run = RunEnv {
            run_id: "r7",
            nix_sshopts: "",
            cwd: "/home/me/cfg",
            program: "rb",
            use_nom: false,
            progress: false,
        };
        let req = crate::request::tests::req(
            "switch --flake /cfg#h --target-host root@aq --confirm-timeout 30",
        )
        .unwrap();
        let p = plan(&req, &crate::nix::NixCaps::floor(), &run).unwrap();
        let cmds = || {
            p.sessions
                .iter()
                .flat_map(|s| &s.steps)
                .flat_map(|s| &s.commands)
        };
        let arm = cmds()
            .find(|c| c.argv.get(1) == Some(&Word::lit("arm")))
            .expect("an arming command");
        let Some(Word::Lit(dir)) = arm.argv.get(2) else {
            panic!("{arm:?}")
        };
        assert_eq!(dir, "/run/rb/r7");
        let unit = cmds()
            .find_map(|c| c.systemd_run.clone())
            .expect("activation under systemd-run");
        assert_eq!(unit, activation_unit("r7"));
        assert_eq!(
            unit,
            format!(
                "{ACTIVATION_UNIT_PREFIX}{}",
                &dir[dir.rfind('/').unwrap() + 1..]
            )
        );
        // The arming script computes exactly that from the directory, records it and hands it to
        // the watchdog, which waits on it before counting and before rolling back.
        let f = functions("rb");
        assert!(f.contains(" rb_wd_unit_prefix=nixos-rebuild-switch-to-configuration- "));
        assert!(
            f.contains("rb_wd_unit=$rb_wd_unit_prefix${rb_wd_d##*/}\n"),
            "{f}"
        );
        assert!(f.contains(r#""$rb_wd_a" "$rb_wd_nixenv" "$rb_wd_unit""#));
        assert!(f.contains(r#"unit=%s\nboot=%s\n' "#));
        assert!(WATCHDOG.contains(
            "\nd=$1 t=$2 spid=$3 p=$4 r=$5 link=$6 prev=$7 a=$8 nix_env=$9 unit=${10-} \
             boot=${11-} ib=${12-0}\n"
        ));
        assert!(HELPERS.contains("systemctl is-active \"$1\""));
        assert!(WATCHDOG.contains("ue=$(($(rb_wd_now) + rb_wd_unit_wait))"));
        assert!(body().starts_with(&format!("rb_wd_unit_wait={ACTIVATION_WAIT_SECS}\n")));
        // The confirming session reads it back and does not confirm while the unit is active.
        assert!(f.contains("rb_wd_unit=$(sed -n 's/^unit=//p' \"$rb_wd_d/previous\")"));
        assert!(f.contains("rb_wd_busy \"$rb_wd_unit\"; }"));
    }
}
