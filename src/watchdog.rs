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
//! In plans, the watchdog is the program `rb-watchdog`: rendering a session that uses it puts
//! the shell functions below at the top of its script, so it costs no extra round trip.

use crate::plan::{Capture, Command, Confirm, Session, Step, StepKind, Undo, Word};
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
/// what the run does (`test` touches neither profile nor boot loader, so neither does its
/// rollback).
fn stc_action(req: &Request) -> &'static str {
    match req.action {
        crate::cli::Action::Boot => "boot",
        crate::cli::Action::Test => "test",
        _ => "switch",
    }
}

/// The step of the activation session that arms the watchdog; it goes after the checks and
/// before the profile changes. A later failure in the session has it roll back at once.
pub fn arm_step(req: &Request, run_id: &str, timeout: u64) -> Step {
    let dir = dir(run_id);
    let restores_profile = matches!(
        req.action,
        crate::cli::Action::Switch | crate::cli::Action::Boot
    );
    let mut arm = Command::lit(&[
        PROGRAM,
        "arm",
        &dir,
        &timeout.to_string(),
        stc_action(req),
        &req.profile.path(),
        if restores_profile {
            "restore-profile"
        } else {
            "keep-profile"
        },
    ]);
    arm.undo = Some(Undo::RollBackNow { dir });
    Step {
        kind: StepKind::ArmWatchdog,
        message: None,
        commands: vec![arm],
        capture: None,
    }
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

/// The confirmation: its own session on the target, elevated like activation.
pub fn confirm(req: &Request, run_id: &str, timeout: u64) -> Confirm {
    let dir = dir(run_id);
    Confirm {
        timeout,
        session: Session {
            host: req.target_host.clone(),
            elevation: req.elevation.clone(),
            steps: vec![Step {
                kind: StepKind::Confirm,
                message: None,
                commands: vec![Command::lit(&[PROGRAM, Mode::Confirm.word(), &dir])],
                capture: Some(Capture::Verdict),
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

/// Shell definitions for a script that uses the watchdog; `program` prefixes its messages.
pub fn functions(program: &str) -> String {
    FUNCTIONS
        .replace("@BODY@", &quote(&body()))
        .replace("@PROG@", program)
        .replace("@WAIT@", &RESULT_WAIT_SECS.to_string())
        .replace("@RUN_DIR@", RUN_DIR)
        .replace("@UNIT@", ACTIVATION_UNIT_PREFIX)
}

/// The watchdog's own script, filled in.
fn body() -> String {
    BODY.replace("@UNIT_WAIT@", &ACTIVATION_WAIT_SECS.to_string())
}

/// Functions for the sessions (the activation's and the confirmation's). Every variable is
/// prefixed: they run inside the session's own script.
const FUNCTIONS: &str = r#"rb_wd_body=@BODY@
rb_wd_now() { read -r rb_wd_u _ </proc/uptime; echo "${rb_wd_u%%.*}"; }
rb_wd_tick() { sleep 0.2 2>/dev/null || sleep 1; }
# "PID STARTTIME" of a live process, so that a reused pid is never taken for it.
rb_wd_id() {
  # dash reports a failed `<` before a later `2>` applies, so the braces take the message.
  { read -r rb_wd_st <"/proc/$1/stat"; } 2>/dev/null || return 1
  # shellcheck disable=SC2086 # the fields after "(comm) " are split on purpose
  set -- "$1" ${rb_wd_st##*) }
  case $2 in Z | X) return 1 ;; esac
  echo "$1 ${21}"
}
rb_wd_alive() { [ -n "$1" ] && [ "$(rb_wd_id "${1%% *}")" = "$1" ]; }
# Whether systemd unit $1 (the activation's) is still running: it outlives a session that lost
# its connection. Only what systemctl says counts (no systemd, no unit, no answer: not running).
rb_wd_busy() {
  [ -n "$1" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 || return 1
  case $(systemctl is-active "$1" 2>/dev/null) in
  active | activating | deactivating | reloading | refreshing) return 0 ;;
  *) return 1 ;;
  esac
}
rb_wd_detach() { if command -v setsid >/dev/null 2>&1; then setsid -f "$@"; else nohup "$@" & fi; }
rb_wd_arm() {
  rb_wd_d=$1 rb_wd_t=$2 rb_wd_a=$3 rb_wd_p=$4 rb_wd_r=$5 rb_wd_link='' rb_wd_prev=''
  # The unit this run's activation runs in: the run id is the directory's name.
  rb_wd_unit=@UNIT@${rb_wd_d##*/}
  { mkdir -m 0700 @RUN_DIR@ 2>/dev/null || [ -d @RUN_DIR@ ]; } && mkdir -m 0700 "$rb_wd_d" || return
  if [ "$rb_wd_r" = restore-profile ] && [ -L "$rb_wd_p" ]; then rb_wd_link=$(readlink "$rb_wd_p"); fi
  case $rb_wd_a in
  boot) if [ -L "$rb_wd_p" ]; then rb_wd_prev=$(readlink -f "$rb_wd_p"); fi ;;
  *) if [ -e /run/current-system ]; then rb_wd_prev=$(readlink -f /run/current-system); fi ;;
  esac
  # nix-env from the system running now, its directory pinned (nix-env itself is a link to
  # nix, which looks at the name it was called by).
  rb_wd_nixenv=$(command -v nix-env 2>/dev/null) &&
    rb_wd_nixenv=$(cd "${rb_wd_nixenv%/*}" && pwd -P)/nix-env || rb_wd_nixenv=nix-env
  rb_wd_id "$$" >"$rb_wd_d/session"
  printf 'action=%s\nprofile=%s\nlink=%s\nsystem=%s\nunit=%s\n' "$rb_wd_a" "$rb_wd_p" "$rb_wd_link" "$rb_wd_prev" "$rb_wd_unit" >"$rb_wd_d/previous"
  set -- "$rb_wd_d" "$rb_wd_t" "$(cat "$rb_wd_d/session")" "$rb_wd_p" "$rb_wd_r" "$rb_wd_link" "$rb_wd_prev" "$rb_wd_a" "$rb_wd_nixenv" "$rb_wd_unit"
  if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
    rb_wd_how="systemd-run --unit=rb-watchdog-${rb_wd_d##*/}"
    rb_wd_pass="-E PATH"
    if [ -n "${LOCALE_ARCHIVE+x}" ]; then rb_wd_pass="$rb_wd_pass -E LOCALE_ARCHIVE"; fi
    echo "$rb_wd_how" >"$rb_wd_d/how"
    # systemd expands $NAME and ${NAME} in a unit's command line: each $ goes as $$, which
    # every version reads as a literal $.
    rb_wd_n=$#
    for rb_wd_x in "$rb_wd_body" rb-watchdog "$@"; do
      rb_wd_x=$(printf '%sx' "$rb_wd_x" | sed 's/[$]/$$/g')
      set -- "$@" "${rb_wd_x%x}"
    done
    shift "$rb_wd_n"
    # Its output goes to the log itself (not to the journal): it outlives this session.
    # shellcheck disable=SC2086 # the -E options are split on purpose
    rb_wd_detach systemd-run --unit="rb-watchdog-${rb_wd_d##*/}" --collect --quiet \
      --service-type=exec -p "StandardOutput=append:$rb_wd_d/log" \
      -p "StandardError=append:$rb_wd_d/log" $rb_wd_pass -- /bin/sh -c "$@" \
      </dev/null >>"$rb_wd_d/log" 2>&1
  else
    rb_wd_how="a detached process"
    echo "$rb_wd_how" >"$rb_wd_d/how"
    rb_wd_detach /bin/sh -c "$rb_wd_body" rb-watchdog "$@" </dev/null >>"$rb_wd_d/log" 2>&1
  fi
  rb_wd_end=$(($(rb_wd_now) + 15))
  while [ ! -e "$rb_wd_d/armed" ]; do
    if [ "$(rb_wd_now)" -ge "$rb_wd_end" ]; then
      mkdir "$rb_wd_d/decision" 2>/dev/null
      echo "@PROG@: the watchdog did not start ($rb_wd_how); its log:"
      cat "$rb_wd_d/log"
      return 1
    fi
    rb_wd_tick
  done
  # From here on the session must finish what it started even if rb's connection drops: tell
  # the watchdog when the activation fails, or let it end. Writing to the dead connection
  # then fails instead of killing the session half way (sshd sends no SIGHUP to a session
  # without a terminal; SIGPIPE is what stops it). What the session runs inherits this, as
  # systemd's units ignore SIGPIPE by default.
  trap '' PIPE
  if [ "$rb_wd_r" != restore-profile ]; then rb_wd_to=
  elif [ -n "$rb_wd_link" ]; then rb_wd_to="puts $rb_wd_p back to generation $(rb_wd_number "$rb_wd_link") and "
  else rb_wd_to="removes $rb_wd_p (it has no generation yet) and "; fi
  if [ -n "$rb_wd_prev" ]; then rb_wd_to="${rb_wd_to}runs switch-to-configuration $rb_wd_a of $rb_wd_prev"
  else rb_wd_to="${rb_wd_to}has no previous system to activate"; fi
  echo "@PROG@: armed a watchdog on $(uname -n) ($rb_wd_how): unless rb confirms within ${rb_wd_t}s of the activation, it $rb_wd_to"
}
rb_wd_number() { rb_wd_n=${1%-link}; echo "${rb_wd_n##*-}"; }
rb_wd_report() { for rb_wd_kv in "$@"; do printf '@rb-watchdog %s\n' "$rb_wd_kv"; done; }
rb_wd_settle() {
  rb_wd_m=$1 rb_wd_d=$2
  if [ ! -e "$rb_wd_d/armed" ]; then
    rb_wd_report outcome=unknown "detail=there is no watchdog in $rb_wd_d (was the host restarted?)"
    return 0
  fi
  rb_wd_end=$(($(rb_wd_now) + @WAIT@))
  rb_wd_unit=$(sed -n 's/^unit=//p' "$rb_wd_d/previous")
  # When rb lost its connection during activation, the deploying session may still run, and
  # switch-to-configuration goes on in its unit after the session: confirm only once both ended.
  while { rb_wd_alive "$(cat "$rb_wd_d/session")" || rb_wd_busy "$rb_wd_unit"; } &&
    [ ! -e "$rb_wd_d/rollback-now" ]; do
    if [ "$(rb_wd_now)" -ge "$rb_wd_end" ]; then
      rb_wd_report outcome=pending "detail=the activation is still running"
      return 0
    fi
    rb_wd_tick
  done
  if [ "$rb_wd_m" = rollback ]; then
    : >"$rb_wd_d/rollback-now"
  elif [ ! -e "$rb_wd_d/rollback-now" ] && mkdir "$rb_wd_d/decision" 2>/dev/null; then
    echo "confirmed by rb" >"$rb_wd_d/decision/by"
    rb_wd_a=$(sed -n 's/^action=//p' "$rb_wd_d/previous")
    rb_wd_p=$(sed -n 's/^profile=//p' "$rb_wd_d/previous")
    rb_wd_gen='' rb_wd_sys='' rb_wd_psys=''
    if rb_wd_l=$(readlink "$rb_wd_p" 2>/dev/null); then
      rb_wd_gen=$(rb_wd_number "$rb_wd_l") rb_wd_psys=$(readlink -f "$rb_wd_p")
    fi
    case $rb_wd_a in
    boot) rb_wd_sys=$rb_wd_psys ;;
    *) if [ -e /run/current-system ]; then rb_wd_sys=$(readlink -f /run/current-system); fi ;;
    esac
    printf 'outcome=confirmed\naction=%s\nprofile=%s\ngeneration=%s\nprofile-system=%s\nsystem=%s\n' \
      "$rb_wd_a" "$rb_wd_p" "$rb_wd_gen" "$rb_wd_psys" "$rb_wd_sys" >"$rb_wd_d/result.tmp" &&
      mv "$rb_wd_d/result.tmp" "$rb_wd_d/result"
  fi
  while [ ! -e "$rb_wd_d/result" ]; do
    if ! rb_wd_alive "$(cat "$rb_wd_d/pid" 2>/dev/null)" && [ ! -e "$rb_wd_d/result" ]; then
      rb_wd_report outcome=unknown "detail=the watchdog stopped without leaving a result"
      return 0
    fi
    if [ "$(rb_wd_now)" -ge "$rb_wd_end" ]; then
      rb_wd_report outcome=pending "detail=the watchdog is still rolling back"
      return 0
    fi
    rb_wd_tick
  done
  sed 's/^/@rb-watchdog /' "$rb_wd_d/result"
}
rb_watchdog() {
  case $1 in
  arm) shift && rb_wd_arm "$@" ;;
  roll-back-now) : >"$2/rollback-now" && echo "@PROG@: told the watchdog to roll back at once" ;;
  confirm | rollback) rb_wd_settle "$1" "$2" ;;
  *) echo "@PROG@: rb_watchdog: unknown mode '$1'" >&2 && return 2 ;;
  esac
}"#;

/// The watchdog itself, run detached:
/// `sh -c BODY rb-watchdog DIR SECONDS "SESSION-PID STARTTIME" PROFILE restore-profile|keep-profile LINK SYSTEM ACTION NIX-ENV UNIT`.
/// Its output goes to DIR/log.
const BODY: &str = r#"d=$1 t=$2 spid=$3 p=$4 r=$5 link=$6 prev=$7 a=$8 nix_env=$9 unit=${10-}
now() { read -r u _ </proc/uptime; echo "${u%%.*}"; }
tick() { sleep 0.2 2>/dev/null || sleep 1; }
# Whether the activation's systemd unit is still active (as rb_wd_busy).
busy() {
  [ -n "$unit" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 || return 1
  case $(systemctl is-active "$unit" 2>/dev/null) in
  active | activating | deactivating | reloading | refreshing) return 0 ;;
  *) return 1 ;;
  esac
}
# Waits while the activation's unit is active, until $ue; false if it still is then.
wait_unit() {
  while busy; do
    if [ "$(now)" -ge "$ue" ]; then return 1; fi
    tick
  done
}
ident() {
  # dash reports a failed `<` before a later `2>` applies, so the braces take the message.
  { read -r st <"/proc/$1/stat"; } 2>/dev/null || return 1
  # shellcheck disable=SC2086 # the fields after "(comm) " are split on purpose
  set -- "$1" ${st##*) }
  case $2 in Z | X) return 1 ;; esac
  echo "$1 ${21}"
}
ident "$$" >"$d/pid"
: >"$d/armed"
echo "armed; waiting for the deploying session (pid ${spid%% *}) to end"
while [ "$(ident "${spid%% *}")" = "$spid" ] && [ ! -e "$d/rollback-now" ]; do tick; done
# The session may have lost its connection while switch-to-configuration goes on in its unit.
ue=$(($(now) + @UNIT_WAIT@))
if [ ! -e "$d/rollback-now" ] && busy; then
  echo "waiting for the activation ($unit) to end"
  if wait_unit; then echo "the activation ($unit) has ended"
  else echo "the activation ($unit) is still active after @UNIT_WAIT@s"; fi
fi
end=$(($(now) + t))
echo "waiting ${t}s for a confirmation"
reason=
while [ -z "$reason" ]; do
  if [ -d "$d/decision" ]; then echo "confirmed; exiting"; exit 0; fi
  if [ -e "$d/rollback-now" ]; then reason=requested
  elif [ "$(now)" -ge "$end" ]; then reason=timeout
  else tick; fi
done
if ! mkdir "$d/decision" 2>/dev/null; then echo "confirmed at the last moment; exiting"; exit 0; fi
echo "watchdog ($reason)" >"$d/decision/by"
echo "rolling back ($reason)"
failed=
# Never the previous system's switch-to-configuration while the new one's still runs.
if busy; then
  echo "waiting for the activation ($unit) to end first"
  if ! wait_unit; then
    echo "the activation ($unit) is still active after @UNIT_WAIT@s: stopping it"
    systemctl stop "$unit"
    if busy; then failed="the activation ($unit) was still active, even after systemctl stop"; fi
  fi
fi
if [ -n "$failed" ]; then :
elif [ "$r" = restore-profile ]; then
  if [ -n "$link" ]; then
    n=${link%-link}
    n=${n##*-}
    "$nix_env" -p "$p" --switch-generation "$n" || failed="nix-env --switch-generation $n exited with status $?"
  else
    rm -f "$p" || failed="could not remove $p"
  fi
fi
if [ -z "$failed" ]; then
  if [ -n "$prev" ]; then
    env -i ${PATH+PATH="$PATH"} ${LOCALE_ARCHIVE+LOCALE_ARCHIVE="$LOCALE_ARCHIVE"} NIXOS_INSTALL_BOOTLOADER=0 \
      "$prev/bin/switch-to-configuration" "$a" ||
      failed="switch-to-configuration $a of $prev exited with status $?"
  else
    failed="there was no previous system to go back to"
  fi
fi
gen='' sys='' psys=''
if l=$(readlink "$p" 2>/dev/null); then gen=${l%-link}; gen=${gen##*-}; psys=$(readlink -f "$p"); fi
case $a in
boot) sys=$psys ;;
*) if [ -e /run/current-system ]; then sys=$(readlink -f /run/current-system); fi ;;
esac
if [ -z "$failed" ]; then outcome=rolled-back; else outcome=rollback-failed; fi
{
  printf 'outcome=%s\nreason=%s\naction=%s\nprofile=%s\ngeneration=%s\nprofile-system=%s\nsystem=%s\n' \
    "$outcome" "$reason" "$a" "$p" "$gen" "$psys" "$sys"
  if [ -n "$failed" ]; then printf 'failed=%s\n' "$failed"; fi
} >"$d/result.tmp" && mv "$d/result.tmp" "$d/result"
echo "$outcome"
"#;

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
    fn the_shell_functions_are_filled_in() {
        let f = functions("nixos-rebuild");
        for placeholder in [
            "@BODY@",
            "@PROG@",
            "@WAIT@",
            "@RUN_DIR@",
            "@UNIT@",
            "@UNIT_WAIT@",
        ] {
            assert!(!f.contains(placeholder), "{placeholder}");
        }
        assert!(f.contains("nixos-rebuild: armed a watchdog"));
        assert!(f.contains("rb_wd_body='d=$1 "));
        assert!(f.contains("+ 600))"));
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
    /// only fail the check, never print into rb's output.
    #[test]
    fn a_gone_process_is_checked_quietly_under_dash() {
        for (script, call, first_use) in [
            (functions("rb"), "rb_wd_id", "rb_wd_arm() {"),
            (body(), "ident", "ident \"$$\""),
        ] {
            // The helpers are defined before the script's first use of them.
            let defs: String = script
                .split_inclusive('\n')
                .take_while(|l| !l.starts_with(first_use))
                .collect();
            let probe = format!("{defs}\n{call} 2147483646 && exit 9; {call} $$ >/dev/null");
            let out = std::process::Command::new("dash")
                .args(["-c", &probe])
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "{call}: {out:?}");
            assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{call}");
        }
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
        assert!(
            f.contains("rb_wd_unit=nixos-rebuild-switch-to-configuration-${rb_wd_d##*/}\n"),
            "{f}"
        );
        assert!(f.contains(r#""$rb_wd_a" "$rb_wd_nixenv" "$rb_wd_unit""#));
        assert!(f.contains(r#"unit=%s\n' "#));
        let b = body();
        assert!(b.starts_with(
            "d=$1 t=$2 spid=$3 p=$4 r=$5 link=$6 prev=$7 a=$8 nix_env=$9 unit=${10-}\n"
        ));
        assert!(b.contains("systemctl is-active \"$unit\""));
        assert!(b.contains(&format!("ue=$(($(now) + {ACTIVATION_WAIT_SECS}))")));
        // The confirming session reads it back and does not confirm while the unit is active.
        assert!(f.contains("rb_wd_unit=$(sed -n 's/^unit=//p' \"$rb_wd_d/previous\")"));
        assert!(f.contains("rb_wd_busy \"$rb_wd_unit\"; }"));
    }
}
