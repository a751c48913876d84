//! One run of rb: command line → request → plan → execution → report.

use crate::cli::Cli;
use crate::error::{Error, Result, exit};
use crate::exec::{Executor, Record};
use crate::generations;
use crate::host::{Host, SshHost};
use crate::nix::NixCaps;
use crate::plan::{Finish, Plan, SCHEMA_VERSION, Var};
use crate::planner;
use crate::report::Report;
use crate::request::{self, Context, Request};
use crate::rollback::confirm;
use crate::transport::Transport;
use clap::{CommandFactory, FromArgMatches};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::rc::Rc;

/// The name rb answers to: `nixos-rebuild` when installed or linked under that name.
fn program_name(argv0: Option<&OsString>) -> String {
    let base = argv0
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if base.starts_with("nixos-rebuild") {
        "nixos-rebuild".into()
    } else {
        "rb".into()
    }
}

/// The clap command, named `program` in usage lines, help and examples.
pub fn command(program: &str) -> clap::Command {
    Cli::command()
        .name(program.to_string())
        .bin_name(program.to_string())
        .after_help(crate::cli::after_help(program))
}

fn usage_hint(program: &str) {
    eprintln!("Usage: {program} [ACTION] [OPTIONS]; try '{program} --help' for more information.");
}

pub fn run(args: Vec<OsString>) -> i32 {
    let program = program_name(args.first());
    let matches = match command(&program).try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => {
            use clap::error::ErrorKind::*;
            if matches!(e.kind(), DisplayHelp | DisplayVersion) {
                let _ = e.print();
                return exit::SUCCESS;
            }
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid command line");
            eprintln!(
                "{program}: error: {}",
                first.strip_prefix("error: ").unwrap_or(first)
            );
            usage_hint(&program);
            return exit::USAGE;
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("{program}: error: {e}");
            return exit::USAGE;
        }
    };
    if cli.action.is_none() {
        let _ = command(&program).print_help();
        return exit::SUCCESS;
    }
    crate::interrupt::install();
    let report = Report::new(program.clone(), cli.output.debug || cli.nix.verbose > 0);
    let result = run_cli(&cli, &report);
    // What the status area still shows (an interrupted phase) goes before the last words.
    if let Some(live) = report.live() {
        live.clear();
    }
    match result {
        Ok(()) => exit::SUCCESS,
        Err(e) => {
            match &e {
                told if report.was_told(told) => {}
                Error::Usage(msg) => {
                    report.error(msg);
                    usage_hint(&program);
                }
                other => report.error(&other.to_string()),
            }
            for hint in e.hints() {
                report.hint(&hint);
            }
            // --json promises a document however the run ends; list-generations keeps ng's
            // output, which is nothing on failure.
            let ng_format = cli.action == Some(crate::cli::Action::ListGenerations);
            if cli.output.json && !report.json_printed.get() && !ng_format {
                let doc = serde_json::json!({
                    "version": SCHEMA_VERSION,
                    "action": cli.action,
                    "success": false,
                    "error": {
                        "step": null,
                        "host": null,
                        "status": e.exit_status(),
                        "message": e.to_string(),
                        "hints": e.hints(),
                    },
                });
                report.stdout(&serde_json::to_string_pretty(&doc).unwrap_or_default());
            }
            e.exit_status()
        }
    }
}

pub(crate) fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| crate::process::stdout_of(&["uname", "-n"]))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Where `context` keeps the target and the name it guessed for it.
type Guessed = Rc<RefCell<Option<(SshHost, String)>>>;

/// `plan_only`: `--plan` connects to no host, so a remote target's host name (the default
/// configuration name) is shown as a placeholder instead of asked.
///
/// `guessed`: when set, a remote target's name is guessed from how it is named
/// (`SshHost::guessed_name`) instead of asked, and the guess is kept there, for its
/// connection's probe to check (the connection then opens while the build runs).
fn context(
    env: BTreeMap<String, String>,
    transport: Rc<RefCell<Option<Transport>>>,
    plan_only: bool,
    guessed: Option<Guessed>,
) -> Context {
    context_with(
        env,
        Box::new(move |host, checks| match host {
            Host::Local => Ok(local_hostname()),
            Host::Ssh(h) if plan_only => Ok(format!("<host name of {}>", h.dest)),
            Host::Ssh(h) if guessed.is_some() && h.guessed_name().is_some() => {
                let name = h.guessed_name().unwrap_or_default();
                if let Some(g) = &guessed {
                    *g.borrow_mut() = Some((h.clone(), name.clone()));
                }
                Ok(name)
            }
            Host::Ssh(h) => match transport.borrow_mut().as_mut() {
                Some(t) => t.hostname(h, checks),
                None => Err(Error::Internal("no transport".into())),
            },
        }),
    )
}

/// What rb finds around it, with `hostname` asking a host for its name (`several.rs` gives
/// each target's request the name its connection learned).
pub(crate) fn context_with(
    env: BTreeMap<String, String>,
    hostname: Box<crate::request::HostnameOf>,
) -> Context {
    Context {
        env,
        etc_nixos_flake: std::fs::canonicalize("/etc/nixos/flake.nix")
            .ok()
            .and_then(|p| p.parent().map(|d| d.to_string_lossy().into_owned())),
        etc_nixos_system: std::path::Path::new("/etc/nixos/system.nix").exists(),
        system_nix_in_cwd: std::path::Path::new("system.nix").exists(),
        hostname,
    }
}

/// Whether local builds go through nix-output-monitor, as nixos-rebuild-ng decides it:
/// `NIXOS_REBUILD_USE_NOM` set (not empty or `0`), `nom` on the PATH, stderr a terminal.
pub(crate) fn use_nom(env: &BTreeMap<String, String>) -> bool {
    use std::io::IsTerminal;
    crate::request::env_switch(env, "NIXOS_REBUILD_USE_NOM")
        && which::which("nom").is_ok()
        && std::io::stderr().is_terminal()
}

/// A name unique to this run, for the systemd unit and temporary files.
pub(crate) fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{:05x}", std::process::id(), nanos & 0xfffff)
}

fn run_cli(cli: &Cli, report: &Report) -> Result<()> {
    // Several targets: one plan each, run by `several.rs`.
    if cli.hosts.target_host.len() > 1 {
        return crate::several::run(cli, report);
    }
    let env: BTreeMap<String, String> = std::env::vars().collect();
    // The transport is shared with resolution, which may ask the target for its host name.
    let shared = Rc::new(RefCell::new(Some(Transport::new(&env))));
    let mut result = run_with(cli, report, env.clone(), &shared, true);
    // The target's name was guessed and its probe says another: the same run again with its
    // name, over the connection already open (its facts are known: no second probe).
    if let Err(e @ Error::NotTheGuess { .. }) = &result {
        say_not_the_guess(report, e);
        result = run_with(cli, report, env, &shared, false);
    }
    if let Some(mut t) = shared.borrow_mut().take() {
        t.close();
    }
    result
}

/// One run. `first`: the first attempt, which may guess a remote target's name (`guess` in
/// `context`); the second (after [`Error::NotTheGuess`]) asks it, and does not say again
/// what the first said.
/// The one line that says a guessed configuration name was wrong ([`Error::NotTheGuess`])
/// and that rb builds again with the host's own (one target here, several in `several.rs`).
pub(crate) fn say_not_the_guess(report: &Report, e: &Error) {
    report.info(&format!(
        "{}: {e}: building its configuration",
        report.program
    ));
}

fn run_with(
    cli: &Cli,
    report: &Report,
    env: BTreeMap<String, String>,
    shared: &Rc<RefCell<Option<Transport>>>,
    first: bool,
) -> Result<()> {
    let guessed = Rc::new(RefCell::new(None));
    let said = std::cell::Cell::new(false);
    let caps = NixCaps::detect();
    let id = run_id();
    let cwd = std::env::current_dir()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "/".into());
    let plan_for = |guess: bool| -> Result<(Context, Request, Plan, bool)> {
        let guessing = (guess && !cli.output.plan).then(|| guessed.clone());
        let ctx = context(env.clone(), shared.clone(), cli.output.plan, guessing);
        let req = request::resolve(cli, &ctx)?;
        // Said once, as soon as known (before the plan, which may fail).
        if first && !said.replace(true) {
            for w in &req.warnings {
                report.warn(w);
            }
            for n in &req.notes {
                report.debug(n);
            }
        }
        let remote = !(req.target_host.is_local() && req.build_host.is_local());
        let nix_sshopts = match shared.borrow_mut().as_mut() {
            Some(t) if remote => t.nix_sshopts()?,
            Some(_) => String::new(),
            None => return Err(Error::Internal("no transport".into())),
        };
        let progress = crate::progress::drawn(cli, &ctx.env);
        let plan = planner::plan(
            &req,
            &caps,
            &planner::RunEnv {
                run_id: &id,
                nix_sshopts: &nix_sshopts,
                cwd: &cwd,
                program: &report.program,
                use_nom: use_nom(&ctx.env),
                progress,
            },
        )?;
        Ok((ctx, req, plan, progress))
    };
    let (mut ctx, mut req, mut plan, mut progress) = plan_for(first)?;
    if let Some((host, name)) = guessed.borrow_mut().take() {
        // The guess holds only if the target's connection opens with a probe to check it;
        // otherwise the name is asked before anything runs, as without a guess.
        match plan
            .connect
            .iter_mut()
            .find(|c| c.host == host && !c.checks.is_empty())
        {
            Some(c) => {
                report.debug(&format!(
                    "the configuration is named '{name}' after {}, without asking it; its \
                     connection's first session checks that its host name is that",
                    host.dest
                ));
                c.checks.expect_hostname = Some(name);
            }
            None => (ctx, req, plan, progress) = plan_for(false)?,
        }
    }
    if !cli.output.plan {
        crate::progress::ask::check(&req)?;
    }
    let mut guard = shared.borrow_mut();
    let transport = guard
        .as_mut()
        .ok_or_else(|| Error::Internal("no transport".into()))?;
    if cli.output.plan {
        print_plan(&plan, &req, &caps, cli.output.json, report);
        return Ok(());
    }
    // Asked once, before anything runs, when a session or a connection's probe will need it
    // (or already, if resolution opened the target's connection).
    let needs_password = plan.sessions.iter().any(|s| s.elevation.sends_password())
        || plan.connect.iter().any(|c| c.checks.needs_password());
    if needs_password {
        transport.ensure_password(&req.target_host.to_string())?;
    }
    let password = transport.password().map(String::from);
    if progress {
        report.draw_progress();
    }
    let mut executor = Executor {
        transport,
        report,
        password,
        stdout_reserved: cli.output.json,
        local_env: &ctx.env,
    };
    let mut record = Record::default();
    let mut result = executor.run_sessions(&plan, &mut record);
    if let Err(e @ Error::NotTheGuess { .. }) = result {
        // Nothing reached the target yet: `run_cli` runs again with the host's name.
        return Err(e);
    }
    if let Some(c) = &plan.confirm {
        // Magic rollback: whatever happened, say what the target's watchdog did.
        result = confirm::settle(&mut executor, c, result, &mut record);
    }
    // list-generations --json keeps ng's own document.
    if cli.output.json && !matches!(plan.finish, Finish::Generations { .. }) {
        let doc = result_document(&req, &plan, &record, result.as_ref().err());
        report.stdout(&serde_json::to_string_pretty(&doc).unwrap_or_default());
        report.json_printed.set(true);
        return result;
    }
    result?;
    let summary = crate::progress::summary::line(
        &report.program,
        req.action.name(),
        &req.target_host.to_string(),
        &record,
    );
    if let Some(line) = summary {
        report.info(&line);
    }
    finish(&plan, &record, report)
}

/// `--json`: what happened, as one document on stdout (schema in README, "JSON output").
pub(crate) fn result_document(
    req: &Request,
    plan: &Plan,
    record: &Record,
    error: Option<&Error>,
) -> serde_json::Value {
    use serde_json::json;
    let activates = plan
        .sessions
        .iter()
        .flat_map(|s| &s.steps)
        .any(|s| s.kind == crate::plan::StepKind::Activate);
    let sets_profile = plan
        .sessions
        .iter()
        .flat_map(|s| &s.steps)
        .any(|s| s.kind == crate::plan::StepKind::SetProfile);
    let activated = record
        .steps
        .iter()
        .find(|s| s.kind == crate::plan::StepKind::Activate);
    let failed = record.steps.iter().rev().find(|s| s.failed.is_some());
    json!({
        "version": SCHEMA_VERSION,
        "action": req.action,
        "success": error.is_none(),
        "buildHost": req.build_host.to_string(),
        "targetHost": req.target_host.to_string(),
        "storePath": record.values.get(&Var::System),
        "profile": sets_profile.then(|| req.profile.path()),
        "generation": record
            .values
            .get(&Var::Generation)
            .filter(|_| error.is_none() && sets_profile)
            .and_then(|g| g.parse::<u64>().ok()),
        "activation": activates.then(|| json!({
            "ran": activated.is_some(),
            "status": activated.map(|s| s.failed.unwrap_or(0)),
        })),
        "diff": record
            .values
            .get(&Var::Diff)
            .and_then(|d| crate::closure_diff::parse(d)),
        "confirmation": plan.confirm.as_ref().map(|c| confirmation(c, record)),
        "steps": record.steps.iter().map(|s| json!({
            "step": s.kind,
            "host": s.host,
            "seconds": (s.duration.as_secs_f64() * 1000.0).round() / 1000.0,
            "status": s.failed.unwrap_or(0),
        })).collect::<Vec<_>>(),
        "error": error.map(|e| json!({
            "step": failed.map(|s| s.kind),
            "host": failed.map(|s| s.host.clone()),
            "status": e.exit_status(),
            "message": e.to_string(),
            "hints": e.hints(),
        })),
    })
}

/// `--json`'s `confirmation` (magic rollback): what the target's watchdog said, the checks
/// that ran, and the system the confirmation made the boot default.
fn confirmation(confirm: &crate::plan::Confirm, record: &Record) -> serde_json::Value {
    use crate::rollback::watchdog::{Outcome, Verdict};
    let verdict = record
        .values
        .get(&Var::Verdict)
        .and_then(|lines| Verdict::parse(&lines.lines().collect::<Vec<_>>()));
    let outcome = verdict.as_ref().map(|v| match v.outcome {
        Outcome::Confirmed => "confirmed",
        Outcome::RolledBack => "rolled-back",
        Outcome::RollbackFailed => "rollback-failed",
        Outcome::Pending => "pending",
        Outcome::Unknown => "unknown",
    });
    let checks = verdict.as_ref().map(Verdict::checks).unwrap_or_default();
    serde_json::json!({
        "timeout": confirm.timeout,
        "outcome": outcome,
        "checks": checks.iter().map(|c| serde_json::json!({
            "command": confirm.checks.get(c.number - 1),
            "status": c.status,
            "timedOut": c.timed_out.is_some(),
            "output": c.output,
        })).collect::<Vec<_>>(),
        "bootDefault": verdict.as_ref().and_then(|v| v.boot_default()),
    })
}

fn print_plan(plan: &Plan, req: &Request, caps: &NixCaps, json: bool, report: &Report) {
    if json {
        let doc = serde_json::json!({
            "version": SCHEMA_VERSION,
            "nix": caps.version_string(),
            "request": req,
            "plan": plan,
        });
        report.stdout(&serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        report.stdout(&plan.to_string());
    }
}

fn finish(plan: &Plan, record: &Record, report: &Report) -> Result<()> {
    let system = record.values.get(&Var::System);
    match (&plan.finish, system) {
        (Finish::Nothing, _) => {}
        (Finish::NewConfiguration, Some(path)) => {
            report.result("Done. The new configuration is ", path)
        }
        (Finish::VirtualMachine, Some(path)) => {
            let script = std::fs::read_dir(format!("{path}/bin"))
                .ok()
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("run-") && n.ends_with("-vm"))
                .min()
                .map(|n| format!("{path}/bin/{n}"))
                .unwrap_or_else(|| "not-found".into());
            report.result(
                "Done. The virtual machine can be started by running ",
                &script,
            );
        }
        (Finish::Image, Some(path)) => {
            let file = record.values.get(&Var::ImageFile).ok_or_else(|| {
                Error::Internal("the plan finished without the image's file name".into())
            })?;
            report.result(
                "Done. The disk image can be found in ",
                &format!("{path}/{file}"),
            );
        }
        (Finish::Generations { json }, _) => {
            let listing = record
                .values
                .get(&Var::Generations)
                .map_or("", String::as_str);
            let gens = generations::parse(listing)?;
            report.stdout(&if *json {
                generations::json(&gens)
            } else {
                generations::table(&gens)
            });
        }
        (_, None) => {
            return Err(Error::Internal(
                "the plan finished without a system path".into(),
            ));
        }
    }
    Ok(())
}
