//! Runs a plan: each session as one process on its host, values flowing from captured output
//! into later sessions, recorded step by step. `transport.rs` gives each session's process
//! (here, or over its host's SSH master), this module says where its output goes, and
//! `process.rs` starts it; the plan's confirmation (magic rollback) runs afterwards from
//! `app.rs` (`rollback::confirm`).

use crate::closure_diff;
use crate::error::{Error, Result};
use crate::generations;
use crate::host::Host;
use crate::interrupt;
use crate::plan::{Capture, Output, Pick, Plan, Session, StepKind, Var};
use crate::process::{self, Stdin};
use crate::render::{MARKER, PGID_MARKER, Site, Values, render};
use crate::report::Report;
use crate::transport::Transport;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How a step went.
#[derive(Debug, Clone)]
pub struct StepRecord {
    pub kind: StepKind,
    pub host: String,
    pub duration: Duration,
    /// The exit status of the session when this step was the one that failed.
    pub failed: Option<i32>,
}

#[derive(Debug, Default)]
pub struct Record {
    pub values: Values,
    pub steps: Vec<StepRecord>,
}

pub struct Executor<'a, 'r> {
    pub transport: &'a mut Transport,
    pub report: &'r Report,
    /// Sent on stdin to sessions elevated with a password.
    pub password: Option<String>,
    /// `--json`: stdout carries the result document alone, so even an editor's or a repl's
    /// output goes to stderr.
    pub stdout_reserved: bool,
    /// rb's environment, read once: what local commands keep of it.
    pub local_env: &'a std::collections::BTreeMap<String, String>,
}

impl Executor<'_, '_> {
    /// The plan's sessions in order. The hosts are connected to while the sessions that need
    /// none (the local evaluation and build) run, and before the first that needs one.
    /// (A plan's confirmation is not among them: `confirm::settle` runs it afterwards.)
    pub fn run_sessions(&mut self, plan: &Plan, record: &mut Record) -> Result<()> {
        record.values.extend(plan.inputs.iter().cloned());
        let mut connecting = Some(self.transport.connect_in_background(&plan.connect)?);
        let result = self.run_sessions_connecting(plan, record, &mut connecting);
        // Wait for every connection, so that each master that opened is closed at the end.
        let connected = match connecting.take() {
            Some(c) => self.transport.finish_connecting(c),
            None => Ok(()),
        };
        match (result, connected) {
            (Err(Error::Interrupted(sig)), _) => Err(Error::Interrupted(sig)),
            // The build was stopped because a host could not be reached: that is the error.
            (Err(_), Err(e)) => Err(or_interrupted(e)),
            (result, _) => result,
        }
    }

    fn run_sessions_connecting(
        &mut self,
        plan: &Plan,
        record: &mut Record,
        connecting: &mut Option<crate::transport::Connecting>,
    ) -> Result<()> {
        for session in &plan.sessions {
            if let Some(sig) = interrupt::signal() {
                return Err(Error::Interrupted(sig));
            }
            // (`--ask`'s preview before a copy reaches the target over its connection too.)
            let needs_hosts = !session.host.is_local()
                || session
                    .steps
                    .iter()
                    .any(|s| matches!(s.output, Output::CopyLog | Output::Ask));
            if let Some(c) = connecting.take_if(|c| needs_hosts || c.failed()) {
                self.transport
                    .finish_connecting(c)
                    .map_err(or_interrupted)?;
            }
            let mut result = self.run_session(session, record);
            let mut fallback = &session.fallback;
            // A failed command (not an interruption, a lost connection or a signature
            // refusal) has the session's fallback run instead, and so on down the chain.
            while let (Err(Error::Command { .. }), Some(instead)) = (&result, fallback) {
                result = self.run_session(instead, record);
                fallback = &instead.fallback;
            }
            result.map_err(|e| self.explain(plan, session, e))?;
            // `--ask`: the session showed what changes; go on only if the answer is yes.
            if session.steps.iter().any(|s| s.output == Output::Ask) {
                crate::progress::ask::confirm(self.report, plan)?;
            }
        }
        Ok(())
    }

    /// A command that was not found on a remote host (the shell's 127), or a failed copy
    /// (Nix's own message for a remote side without Nix is "cannot connect"): if a host lacks
    /// Nix's commands on its PATH, that is the error to report.
    fn explain(&mut self, plan: &Plan, session: &Session, err: Error) -> Error {
        let Error::Command { status, .. } = &err else {
            return err;
        };
        if interrupt::signal().is_some() {
            return err;
        }
        let hosts = match &session.host {
            Host::Ssh(h) if *status == 127 => vec![h.clone()],
            _ if session.steps.iter().any(|s| s.output == Output::CopyLog) => {
                plan.connect.iter().map(|c| c.host.clone()).collect()
            }
            _ => return err,
        };
        for host in hosts {
            let mut wanted = vec!["nix-store", "nix-env"];
            if host.scheme == "ssh-ng" {
                wanted.push("nix-daemon");
            }
            let missing = self.transport.missing_commands(&host, &wanted);
            if let Some((last, rest)) = missing.split_last() {
                let commands = match rest {
                    [] => last.clone(),
                    _ => format!("{} and {last}", rest.join(", ")),
                };
                return Error::NotOnPath {
                    host: host.dest,
                    commands,
                };
            }
        }
        err
    }

    fn run_session(&mut self, session: &Session, record: &mut Record) -> Result<()> {
        let site = if session.host.is_local() {
            Site::Local(self.local_env)
        } else {
            Site::Remote
        };
        let inv = render(session, &record.values, &site, &self.report.program)?;
        self.report
            .debug(&format!("on {}: {:?}", session.host, inv.argv));
        let mut cmd = self.transport.command(&session.host, &inv)?;
        // An editor or `nix repl` gets the terminal: stdin, stdout and Ctrl-C.
        let interactive = session.steps.iter().any(|s| s.output == Output::Terminal);
        let captures = session.steps.iter().any(|s| s.capture.is_some());
        if interactive && !self.stdout_reserved {
            cmd.stdout(Stdio::inherit());
        } else if inv.markers || captures {
            cmd.stdout(Stdio::piped());
        } else {
            // stdout is rb's result channel: children's output goes to stderr.
            cmd.stdout(Stdio::from(
                std::io::stderr()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| Error::Spawn {
                        program: "stderr".into(),
                        source: e,
                    })?,
            ));
        }
        // A copy's stderr is read on its way through, for messages rb can explain better; with
        // the live status area, every command's is, for Nix's progress and to keep its lines
        // above the area (`progress::live`).
        let copies = session.steps.iter().any(|s| s.output == Output::CopyLog);
        let live = self.report.live().filter(|_| !interactive).cloned();
        if copies || live.is_some() {
            cmd.stderr(Stdio::piped());
        }
        if copies {
            // `nix copy` stopped by SIGTERM leaves its temporary directory behind; in rb's
            // private directory, it goes when that does.
            if let (true, Some(dir)) = (session.host.is_local(), self.transport.scratch_dir()) {
                cmd.env("TMPDIR", dir);
            }
        }
        let program = if session.host.is_local() {
            inv.argv.first().cloned().unwrap_or_default()
        } else {
            "ssh".into()
        };
        let mut child = self.start(&mut cmd, session, interactive, program)?;
        let host = session.host.to_string();
        let stderr_tail = child.stderr.take().map(|err| {
            let host = host.clone();
            std::thread::spawn(move || match live {
                Some(live) => live.follow(&host, err).tail,
                None => tee(err),
            })
        });
        let interactive_guard = interactive.then(interrupt::Interactive::start);

        let mut lines: Vec<Vec<String>> = vec![Vec::new(); session.steps.len()];
        let mut current: Option<usize> = None;
        let mut remote_pgid: Option<String> = None;
        let mut started = Instant::now();
        let report = self.report;
        let mut start = |n: usize,
                         current: &mut Option<usize>,
                         started: &mut Instant,
                         lines: &[Vec<String>]| {
            if let Some(prev) = current.take() {
                if let Some(capture) = session.steps[prev].capture.as_ref()
                    && capture.at_step_end()
                {
                    step_end_capture(capture, &lines[prev], &mut record.values, report);
                }
                let kind = session.steps[prev].kind;
                report.step_finished(kind, &host, started.elapsed(), None);
                record.steps.push(StepRecord {
                    kind,
                    host: host.clone(),
                    duration: started.elapsed(),
                    failed: None,
                });
            }
            report.step_started(session.steps[n].kind, &host);
            if let Some(msg) = &session.steps[n].message {
                report.info(msg);
            }
            *current = Some(n);
            *started = Instant::now();
        };
        if !inv.markers {
            start(0, &mut current, &mut started, &lines);
        }
        if let Some(stdout) = child.stdout.take() {
            let mut reader = BufReader::new(stdout);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                // Bytes, not UTF-8 lines: a stray byte must not stop rb from reading (and the
                // child from writing) the rest.
                match reader.read_until(b'\n', &mut raw) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = String::from_utf8_lossy(&raw)
                    .trim_end_matches(['\n', '\r'])
                    .to_string();
                if let Some(pgid) = line.strip_prefix(PGID_MARKER) {
                    remote_pgid = Some(pgid.trim().to_string());
                    continue;
                }
                match line
                    .strip_prefix(MARKER)
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    Some(n) if n < session.steps.len() => {
                        start(n, &mut current, &mut started, &lines)
                    }
                    _ => match current {
                        Some(n) => lines[n].push(line),
                        None => self.report.passthrough(&line),
                    },
                }
            }
        }
        let status = process::wait(&mut child)?;
        let stderr_tail = stderr_tail.and_then(|t| t.join().ok()).unwrap_or_default();
        drop(interactive_guard);
        if let Some(sig) = interrupt::signal() {
            self.stop_remote(session, remote_pgid.as_deref());
            // A command under systemd-run (the planner puts activation there) is a unit of
            // its own: it goes on without rb.
            let unit = current.and_then(|n| {
                session.steps[n]
                    .commands
                    .iter()
                    .find_map(|c| c.systemd_run.clone())
            });
            if let (Some(unit), Some(n)) = (unit, current) {
                self.report.warn(&format!(
                    "where {host} runs systemd, {} goes on there in the unit {unit} until it \
                     ends (`systemctl status {unit}` shows how)",
                    session.steps[n].kind.what()
                ));
            }
            return Err(Error::Interrupted(sig));
        }
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        // An elevated script that failed before its first marker never got past sudo.
        // 127: the elevation tool itself is missing, which the host check below explains.
        let refused = code != 0
            && code != 255
            && code != 127
            && (current.is_none()
                || session.steps[current.unwrap_or(0)].output == Output::ElevationCheck)
            && !session.elevation.is_none();
        let last = current.unwrap_or(0);
        if let (0, Some(capture)) = (code, session.steps[last].capture.as_ref())
            && capture.at_step_end()
        {
            step_end_capture(capture, &lines[last], &mut record.values, self.report);
        }
        self.report.step_finished(
            session.steps[last].kind,
            &host,
            started.elapsed(),
            (code != 0).then_some(code),
        );
        record.steps.push(StepRecord {
            kind: session.steps[last].kind,
            host: host.clone(),
            duration: started.elapsed(),
            failed: (code != 0).then_some(code),
        });
        if refused {
            return Err(session.elevation.refusal(host, code));
        }
        if code == 255 && !session.host.is_local() {
            return Err(Error::ConnectionLost {
                host,
                what: session.steps[last].kind.what().into(),
                // Lost before the first step started: nothing happened there yet.
                consequence: current
                    .and_then(|n| session.steps[n].if_lost.clone())
                    .unwrap_or_default(),
            });
        }
        if code != 0 && copies && lacks_signature(&stderr_tail) {
            return Err(Error::Untrusted { status: code });
        }
        if code != 0 {
            let step = &session.steps[last];
            let err = Error::Command {
                what: step.kind.what().into(),
                host,
                status: code,
            };
            // The script printed the step's own message as it failed (render.rs).
            if step.commands.iter().any(|c| c.on_failure.is_some()) {
                self.report.told_by_command(&err);
            }
            return Err(err);
        }
        for (step, out) in session.steps.iter().zip(&lines) {
            if let Some(capture) = step.capture.as_ref().filter(|c| !c.at_step_end()) {
                apply_capture(capture, out, &mut record.values)?;
            }
        }
        Ok(())
    }
}

impl Executor<'_, '_> {
    /// Starts `cmd`, the process of `session` (through `process::start`: the one child a
    /// signal to rb stops too). Its stdin is the terminal (`terminal`), else the password when
    /// the session's elevation sends one, else nothing.
    pub fn start(
        &self,
        cmd: &mut std::process::Command,
        session: &Session,
        terminal: bool,
        program: String,
    ) -> Result<std::process::Child> {
        let stdin = match &self.password {
            _ if terminal => Stdin::Terminal,
            Some(pw) if session.elevation.sends_password() => Stdin::Line(pw),
            _ => Stdin::Nothing,
        };
        let stop = match session.steps.iter().all(|s| s.may_be_killed()) {
            true => process::Stop::TermThenKill,
            false => process::Stop::Term,
        };
        process::start(cmd, &program, stdin, stop)
    }

    /// After an interruption: stop what the session started on its host. Elevated sessions
    /// are left alone (activation runs under systemd-run and must not be cut half way).
    fn stop_remote(&mut self, session: &Session, pgid: Option<&str>) {
        let (crate::host::Host::Ssh(_), Some(pgid), crate::elevation::Elevation::None) =
            (&session.host, pgid, &session.elevation)
        else {
            return;
        };
        if !pgid.bytes().all(|b| b.is_ascii_digit()) {
            return;
        }
        self.report
            .info(&format!("stopping what rb started on {}...", session.host));
        let inv = crate::render::Invocation {
            argv: vec![
                "kill".into(),
                "-TERM".into(),
                "--".into(),
                format!("-{pgid}"),
            ],
            env: Vec::new(),
            markers: false,
        };
        if let Ok(mut cmd) = self.transport.command(&session.host, &inv) {
            process::quietly(&mut cmd, Stdin::Nothing);
        }
    }
}

/// A connection that failed because rb was interrupted is the interruption.
fn or_interrupted(e: Error) -> Error {
    match interrupt::signal() {
        Some(sig) => Error::Interrupted(sig),
        None => e,
    }
}

/// Copies a child's stderr to rb's as it comes (progress lines included) and keeps its end.
fn tee(mut from: impl std::io::Read) -> String {
    const KEEP: usize = 64 * 1024;
    let mut tail = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let _ = std::io::stderr().lock().write_all(&buf[..n]);
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > KEEP {
                    tail.drain(..tail.len() - KEEP);
                }
            }
        }
    }
    String::from_utf8_lossy(&tail).into_owned()
}

/// Nix's refusal of unsigned paths from a user it does not trust (2.8 and newer wordings).
fn lacks_signature(stderr: &str) -> bool {
    stderr.contains("lacks a valid signature")
        || stderr.contains("lacks a signature by a trusted key")
}

/// A capture read as its step ends (`Capture::at_step_end`): kept, and shown on stderr.
fn step_end_capture(capture: &Capture, lines: &[String], values: &mut Values, report: &Report) {
    if let Capture::PackageDiff = capture {
        let text = lines.join("\n");
        match closure_diff::parse(&text) {
            Some(diff) => {
                for line in diff.lines() {
                    report.info(&line);
                }
            }
            None => report.warn("could not compare the current and the new configuration"),
        }
        values.insert(Var::Diff, text);
    }
}

fn apply_capture(capture: &Capture, lines: &[String], values: &mut Values) -> Result<()> {
    match capture {
        Capture::BuildJson => {
            let text = lines.join("\n");
            let out = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| {
                    v.get(0)?
                        .get("outputs")?
                        .get("out")?
                        .as_str()
                        .map(String::from)
                })
                .ok_or_else(|| {
                    Error::Output(format!(
                        "could not find the built path in nix's output: {text}"
                    ))
                })?;
            values.insert(Var::System, out);
        }
        Capture::PathLines(var) => {
            let paths: Vec<&str> = lines
                .iter()
                .map(|l| l.trim())
                .filter(|l| !l.is_empty())
                .collect();
            if paths.is_empty() || paths.iter().any(|p| !p.starts_with('/') && *p != "-") {
                return Err(Error::Output(format!(
                    "expected store paths, one per line, got {lines:?}"
                )));
            }
            values.insert(*var, paths.join("\n"));
        }
        Capture::PathLine(var) => {
            let path = lines
                .iter()
                .rev()
                .map(|l| l.trim())
                .find(|l| !l.is_empty())
                .filter(|l| l.starts_with('/'))
                .ok_or_else(|| {
                    Error::Output(format!(
                        "expected a store path from nix-build, got {lines:?}"
                    ))
                })?;
            values.insert(*var, path.to_string());
        }
        Capture::ProfileLink => {
            let n = lines
                .iter()
                .rev()
                .find_map(|l| generations::link_number(l.trim()))
                .ok_or_else(|| Error::Output(format!("unexpected profile link {lines:?}")))?;
            values.insert(Var::Generation, n.to_string());
        }
        Capture::Generation { profile, pick } => {
            let n = pick_generation(lines, profile, *pick)?;
            values.insert(Var::Generation, n.to_string());
            values.insert(Var::System, generations::link(profile, n));
        }
        Capture::ImageVariants { variant } => {
            let file = image_file(&lines.join("\n"), variant.as_deref())?;
            values.insert(Var::ImageFile, file);
        }
        Capture::Generations => {
            values.insert(Var::Generations, lines.join("\n"));
        }
        // Read by confirm.rs, which runs that session itself.
        Capture::Verdict => {}
        // Read as its step ends (`step_end_capture`).
        Capture::PackageDiff => {}
    }
    Ok(())
}

/// The file name of image `variant` from `{ <variant> = <filePath>; … }`; without a variant,
/// or with one that is not there, the error lists them (nixos-rebuild-ng's message).
pub fn image_file(json: &str, variant: Option<&str>) -> Result<String> {
    let variants: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| {
            Error::Output(format!("could not read the image variants ({e}): {json}"))
        })?;
    match variant.map(|v| (v, variants.get(v))) {
        Some((_, Some(serde_json::Value::String(file)))) => Ok(file.clone()),
        Some((v, Some(_))) => Err(Error::Failed(format!(
            "image variant '{v}' has no passthru.filePath"
        ))),
        _ => Err(Error::Failed(format!(
            "please specify one of the following supported image variants via --image-variant:\n{}",
            variants
                .keys()
                .map(|v| format!("- {v}"))
                .collect::<Vec<_>>()
                .join("\n")
        ))),
    }
}

/// Chooses the generation to roll back to from `nix-env --list-generations` output, whose
/// lines look like `   3   2026-11-25 17:23:18   (current)`.
pub fn pick_generation(lines: &[String], profile: &str, pick: Pick) -> Result<u64> {
    let gens: Vec<(u64, bool)> = lines
        .iter()
        .filter_map(|l| {
            let id = l.split_whitespace().next()?.parse().ok()?;
            Some((id, l.contains("(current)")))
        })
        .collect();
    if gens.is_empty() {
        return Err(Error::Failed(format!(
            "no generations found in profile {profile}; nothing to roll back to"
        )));
    }
    if let Pick::Number(n) = pick {
        return match gens.iter().any(|g| g.0 == n) {
            true => Ok(n),
            false => Err(Error::Failed(format!(
                "generation {n} of {profile} does not exist; `list-generations` shows the ones \
                 there are"
            ))),
        };
    }
    let current = gens.iter().find(|g| g.1).map(|g| g.0);
    let others = gens.iter().filter(|g| !g.1).map(|g| g.0);
    let chosen = match (pick, current) {
        (Pick::OlderThanCurrent, Some(c)) => others.filter(|&n| n < c).max(),
        (Pick::OlderThanCurrent, None) | (Pick::NewestOther | Pick::Number(_), _) => others.max(),
    };
    chosen.ok_or_else(|| {
        Error::Failed(match current {
            Some(c) => format!(
                "could not find previous generation: {profile} has no generation before the current one ({c})"
            ),
            None => format!("could not find previous generation in {profile}"),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(String::from).collect()
    }

    #[test]
    fn picks_generations_like_nix_env_and_ng() {
        let l = lines(
            "   1   2026-11-25 17:23:18\n   2   2026-11-25 17:24:18   (current)\n   3   2026-11-25 17:25:00",
        );
        assert_eq!(pick_generation(&l, "p", Pick::OlderThanCurrent).unwrap(), 1);
        assert_eq!(pick_generation(&l, "p", Pick::NewestOther).unwrap(), 3);
        let only = lines("   1   2026-11-25 17:23:18   (current)");
        let err = pick_generation(&only, "/p", Pick::OlderThanCurrent).unwrap_err();
        assert!(
            err.to_string()
                .contains("could not find previous generation")
        );
        assert!(pick_generation(&[], "/p", Pick::NewestOther).is_err());
        assert_eq!(pick_generation(&l, "p", Pick::Number(1)).unwrap(), 1);
        assert_eq!(pick_generation(&l, "p", Pick::Number(2)).unwrap(), 2);
        let err = pick_generation(&l, "/p", Pick::Number(7)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "generation 7 of /p does not exist; `list-generations` shows the ones there are"
        );
    }

    #[test]
    fn image_variants_are_checked_and_listed() {
        let json = r#"{"iso":"iso/nixos.iso","qcow2":"nixos.qcow2"}"#;
        assert_eq!(image_file(json, Some("iso")).unwrap(), "iso/nixos.iso");
        let listing = "please specify one of the following supported image variants via \
                       --image-variant:\n- iso\n- qcow2";
        for v in [None, Some("vmdk")] {
            match image_file(json, v) {
                Err(Error::Failed(msg)) => assert_eq!(msg, listing),
                other => panic!("{other:?}"),
            }
        }
        assert!(image_file(r#"{"iso":null}"#, Some("iso")).is_err());
        assert!(image_file("oops", Some("iso")).is_err());
    }

    #[test]
    fn captures_build_output() {
        let mut v = Values::new();
        apply_capture(
            &Capture::BuildJson,
            &lines(r#"[{"drvPath":"/nix/store/a.drv","outputs":{"out":"/nix/store/b-sys"}}]"#),
            &mut v,
        )
        .unwrap();
        assert_eq!(v[&Var::System], "/nix/store/b-sys");
        apply_capture(
            &Capture::PathLine(Var::System),
            &lines("/nix/store/c-sys\n"),
            &mut v,
        )
        .unwrap();
        assert_eq!(v[&Var::System], "/nix/store/c-sys");
        assert!(apply_capture(&Capture::PathLine(Var::System), &lines("oops"), &mut v).is_err());
    }
}
