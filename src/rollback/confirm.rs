//! Magic rollback's end (`--confirm-timeout`): after the plan's sessions, reach the target
//! over a NEW SSH connection, confirm, and tell the truth about what the target runs now.
//!
//! The activation session armed a watchdog on the target (`watchdog.rs`). Here rb runs the
//! plan's confirming session over a fresh connection, retrying while the target does not
//! accept one, and reads the watchdog's verdict:
//! - confirmed: exit 0 (for `switch`, once the watchdog has made it the boot default; if
//!   that failed, [`Error::NotBootDefault`]);
//! - rolled back (the confirmation came too late, or activation failed and rb had the
//!   watchdog roll back at once): [`Error::RolledBack`], saying which generation is active;
//!   [`Error::CheckFailed`] when a `--confirm-check` failed (the confirming session runs them
//!   before it confirms, and has the watchdog roll back at once when one fails);
//! - anything else (never reachable again, rollback failed, no watchdog): [`Error::Unconfirmed`],
//!   saying what to check.
//!
//! When activation fails, rb does not wait for the timeout: the session has already told the
//! watchdog to roll back, and the confirming session asks again and waits for the result.
//! When rb loses its connection during activation, that is no failure of the activation: rb
//! warns and confirms over a new connection; the session goes on without rb (and tells the
//! watchdog if the activation fails), and the confirming session waits for the activation to
//! end first (see `watchdog.rs`).

use super::watchdog::{self, Mode, Outcome as Said, Verdict};
use crate::error::{Error, Result, exit};
use crate::exec::{Executor, Record, StepRecord};
use crate::host::{Host, SshHost};
use crate::interrupt;
use crate::plan::{Confirm, StepKind, Var};
use crate::render::{Site, Values, render};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long rb keeps trying to reach the target after the deadline, to learn what its
/// watchdog did (the previous system's activation must bring SSH back first).
pub const GRACE: Duration = Duration::from_secs(120);

/// Pause between connection attempts.
const RETRY: Duration = Duration::from_millis(500);

/// Settles a run whose plan has a confirmation, given how its sessions went.
pub fn settle(
    exec: &mut Executor,
    confirm: &Confirm,
    result: Result<()>,
    record: &mut Record,
) -> Result<()> {
    let armed = record
        .steps
        .iter()
        .any(|s| s.kind == StepKind::ArmWatchdog && s.failed.is_none());
    let Host::Ssh(host) = &confirm.session.host else {
        return result;
    };
    if !armed {
        // Nothing changed on the target (or the plan never got that far).
        return result;
    }
    let (mode, failure) = match result {
        Ok(()) => (Mode::Confirm, None),
        Err(Error::Interrupted(sig)) => {
            exec.report.warn(&format!(
                "{} will roll back by itself {}s after the activation: nothing confirms it now",
                host.dest, confirm.timeout
            ));
            return Err(Error::Interrupted(sig));
        }
        // The connection dropped during activation (the executor's `ConnectionLost`; a bare
        // ssh status 255 the same): that says nothing about the activation, and the target
        // knows better. If it failed there, the session has asked the watchdog to roll back;
        // otherwise the confirming session waits for the activation to end, then confirms.
        // (Lost before activation, the profile may be new with nothing activated: roll back.)
        Err(
            e @ (Error::ConnectionLost { .. }
            | Error::Command {
                status: exit::SSH, ..
            }),
        ) if record
            .steps
            .last()
            .is_some_and(|s| s.kind == StepKind::Activate) =>
        {
            exec.report.warn(&e.to_string());
            (Mode::Confirm, Some(e.to_string()))
        }
        Err(e) => (Mode::RollBack, Some(e.to_string())),
    };
    match (mode, &failure) {
        (Mode::Confirm, None) => exec.report.info(&format!(
            "confirming the new configuration over a new SSH connection to {}...",
            host.dest
        )),
        (Mode::Confirm, Some(_)) => exec.report.info(&format!(
            "confirming the new configuration over a new SSH connection to {} once its \
             activation is over (the watchdog there knows whether it failed)...",
            host.dest
        )),
        (Mode::RollBack, _) => exec.report.info(&format!(
            "activation failed: waiting for {}'s watchdog to roll back (over a new SSH connection)...",
            host.dest
        )),
    }
    // The system deployed, when it is a store path (not a generation's link) and the run made
    // it the profile's (the verdict's action is the rollback's, which for `switch` is `test`).
    let sets_profile = record.steps.iter().any(|s| s.kind == StepKind::SetProfile);
    let new_system = record
        .values
        .get(&Var::System)
        .filter(|s| {
            sets_profile
                && s.strip_prefix("/nix/store/")
                    .is_some_and(|n| !n.contains('/'))
        })
        .cloned();
    let started = Instant::now();
    // The live area shows the wait (which is no step of the plan's, so says so itself): as a
    // line of its own for one target, on its target's line for several.
    let report = exec.report;
    let what = format!("{} on {}", StepKind::Confirm.name(), host.dest);
    if let Some(live) = report.live() {
        live.start(&host.dest, &what, "");
    }
    let reached = reach(exec, confirm, host, mode);
    if let Some(live) = report.live() {
        live.finish(&host.dest, None, false);
    }
    let reached = reached?;
    if let Reached::Verdict(v, _) = &reached {
        // For the --json document's `confirmation`.
        record.values.insert(Var::Verdict, v.report_lines());
    }
    let settled = verdict(
        exec.report,
        confirm,
        host,
        mode,
        failure,
        new_system.as_deref(),
        reached,
    );
    record.steps.push(StepRecord {
        kind: StepKind::Confirm,
        host: host.dest.clone(),
        duration: started.elapsed(),
        failed: settled.as_ref().err().map(Error::exit_status),
    });
    settled
}

/// What the attempts to reach the target gave.
enum Reached {
    /// The watchdog's verdict, and whether a connection failed before it came.
    Verdict(Verdict, Option<String>),
    /// The confirming session ran but said nothing rb understands.
    Failed { status: i32, stderr: String },
    /// No connection until rb gave up; the last reason.
    Never(String),
}

fn reach(exec: &mut Executor, confirm: &Confirm, host: &SshHost, mode: Mode) -> Result<Reached> {
    let session = watchdog::session(confirm, mode);
    let inv = render(
        &session,
        &Values::new(),
        &Site::Remote,
        &exec.report.program,
    )?;
    exec.report.debug(&format!(
        "on {} (new connection): {:?}",
        host.dest, inv.argv
    ));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(confirm.timeout);
    let give_up = deadline + GRACE;
    let mut last_failure: Option<String> = None;
    let mut said_deadline = false;
    loop {
        let left = give_up.saturating_duration_since(Instant::now()).as_secs();
        let mut cmd = exec
            .transport
            .fresh_command(host, &inv, left.clamp(1, 10))?;
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        // A signal to rb alone stops this attempt too.
        let child = exec.start(&mut cmd, &session, false, "ssh".into())?;
        let out = crate::process::wait_with_output(child, "ssh")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let lines: Vec<&str> = stdout.lines().collect();
        let status = out.status.code().unwrap_or(255);
        if let Some(v) = Verdict::parse(&lines) {
            for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
                exec.report.passthrough(line);
            }
            return Ok(Reached::Verdict(v, last_failure));
        }
        if let Some(sig) = interrupt::signal() {
            return Err(interrupted(exec, confirm, host, sig));
        }
        if status != 255 {
            return Ok(Reached::Failed { status, stderr });
        }
        let why = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("ssh exited with status 255")
            .to_string();
        let now = Instant::now();
        if last_failure.is_none() && now < deadline {
            exec.report.warn(&format!(
                "cannot reach {} over a new SSH connection ({why}); trying again for {}s",
                host.dest,
                deadline.saturating_duration_since(now).as_secs().max(1)
            ));
        }
        last_failure = Some(why);
        if now >= give_up {
            return Ok(Reached::Never(last_failure.unwrap_or_default()));
        }
        if now >= deadline && !said_deadline {
            said_deadline = true;
            exec.report.warn(&format!(
                "no confirmation within {}s: {}'s watchdog rolls it back now; waiting up to {}s \
                 for it to be reachable again",
                confirm.timeout,
                host.dest,
                GRACE.as_secs()
            ));
        }
        std::thread::sleep(RETRY);
        if let Some(sig) = interrupt::signal() {
            return Err(interrupted(exec, confirm, host, sig));
        }
    }
}

/// Interrupted before the watchdog's verdict came: say what the target does by itself.
fn interrupted(exec: &Executor, confirm: &Confirm, host: &SshHost, sig: i32) -> Error {
    exec.report.warn(&format!(
        "interrupted before rb could confirm on {h}: unless the confirmation got there, its \
         watchdog rolls back {}s after the activation; `cat {}/result` there says what it did",
        confirm.timeout,
        confirm.dir,
        h = host.dest
    ));
    Error::Interrupted(sig)
}

/// The `--confirm-check` command a check's report is about.
fn check_command(confirm: &Confirm, c: &watchdog::CheckRun) -> String {
    confirm
        .checks
        .get(c.number - 1)
        .cloned()
        .unwrap_or_else(|| format!("number {}", c.number))
}

fn verdict(
    report: &crate::report::Report,
    confirm: &Confirm,
    host: &SshHost,
    mode: Mode,
    failure: Option<String>,
    new_system: Option<&str>,
    reached: Reached,
) -> Result<()> {
    let h = &host.dest;
    let dir = &confirm.dir;
    let check_log = format!("check {h}: the watchdog's state and log are in {dir}/ there");
    let (v, unreachable) = match reached {
        Reached::Verdict(v, unreachable) => (v, unreachable),
        Reached::Failed { status, stderr } => {
            let said = crate::error::one_line(&stderr);
            return Err(Error::Unconfirmed {
                why: format!(
                    "{}the confirming session on {h} failed (exit status {status}{})",
                    failure.map(|f| format!("{f}; ")).unwrap_or_default(),
                    if said.is_empty() {
                        String::new()
                    } else {
                        format!(": {said}")
                    }
                ),
                check: format!(
                    "{h} rolls back by itself {}s after the activation unless confirmed; {check_log}",
                    confirm.timeout
                ),
            });
        }
        Reached::Never(why) => {
            return Err(Error::Unconfirmed {
                why: format!(
                    "{}rb could not reach {h} over a new SSH connection within {}s, nor in the {}s \
                     after ({why})",
                    failure.map(|f| format!("{f}; ")).unwrap_or_default(),
                    confirm.timeout,
                    GRACE.as_secs()
                ),
                check: format!(
                    "its watchdog should have rolled it back {}s after the activation; once {h} \
                     is reachable, `cat {dir}/result` there says what it did",
                    confirm.timeout
                ),
            });
        }
    };
    // Why the new configuration was not kept, when it was not.
    let failed_check = v.failed_check();
    let why = match (&failure, mode, v.reason()) {
        _ if let Some(c) = &failed_check => format!(
            "the confirmation check '{}' {} on {h}",
            check_command(confirm, c),
            c.failure()
        ),
        (Some(f), Mode::RollBack, _) => f.clone(),
        (Some(f), Mode::Confirm, Some("requested")) => {
            format!("{f}, and the activation failed on {h}")
        }
        (_, _, Some("requested")) => format!("the activation failed on {h}"),
        _ => match &unreachable {
            Some(u) => format!(
                "the new configuration was not confirmed within {}s: rb could not reach {h} over a \
                 new SSH connection ({u})",
                confirm.timeout
            ),
            None => format!(
                "the new configuration was not confirmed within {}s",
                confirm.timeout
            ),
        },
    };
    match v.outcome {
        // Confirmed after the connection was lost during activation: the deploying session
        // went on alone; if it put the profile back, the new configuration is not what stays.
        Said::Confirmed
            if mode == Mode::Confirm
                && failure.is_some()
                && new_system.is_some_and(|new| v.profile_system() != Some(new)) =>
        {
            Err(Error::Unconfirmed {
                why: format!(
                    "{}; rb confirmed over a new SSH connection, but {h}'s profile is not the new \
                     configuration ({}): {}",
                    failure.unwrap_or_default(),
                    new_system.unwrap_or_default(),
                    v.now_active()
                ),
                check: check_log,
            })
        }
        Said::Confirmed if mode == Mode::Confirm && v.boot_failed().is_some() => {
            Err(Error::NotBootDefault {
                host: h.clone(),
                why: v.boot_failed().unwrap_or_default().to_string(),
                log: format!("{dir}/log"),
            })
        }
        Said::Confirmed if mode == Mode::Confirm => {
            if let Some(system) = v.boot_default() {
                report.info(&format!("{h}: {system} is the boot default now"));
            }
            report.info(&format!(
                "confirmed over a new SSH connection: {h} keeps the new configuration{}",
                v.generation()
                    .map(|g| format!(" (generation {g})"))
                    .unwrap_or_default()
            ));
            Ok(())
        }
        Said::RolledBack => match failed_check {
            Some(c) => Err(Error::CheckFailed {
                host: h.clone(),
                // With its last lines, as a failed command's stderr in other messages.
                why: match c.output.is_empty() {
                    true => why,
                    false => format!("{why}: {}", c.output.join("; ")),
                },
                now: v.now_active(),
                log: format!("{dir}/check-{}.log", c.number),
            }),
            None => Err(Error::RolledBack {
                host: h.clone(),
                why,
                now: v.now_active(),
            }),
        },
        Said::RollbackFailed => Err(Error::Unconfirmed {
            why: format!(
                "{why}; {h}'s watchdog tried to roll back, but {}: now {}",
                v.failed().unwrap_or("something failed"),
                v.now_active()
            ),
            check: check_log,
        }),
        Said::Pending => Err(Error::Unconfirmed {
            why: format!(
                "{why}; {h}'s watchdog has not finished ({})",
                v.detail().unwrap_or("still rolling back")
            ),
            check: format!("`cat {dir}/result` on {h} will say what it did"),
        }),
        Said::Confirmed | Said::Unknown => Err(Error::Unconfirmed {
            why: format!(
                "{}rb cannot tell what {h} runs: {}",
                failure.map(|f| format!("{f}; ")).unwrap_or_default(),
                v.detail().unwrap_or("its watchdog gave no verdict")
            ),
            check: check_log,
        }),
    }
}
