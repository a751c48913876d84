//! Several targets in one run: `--target-host` given more than once (README, "Several
//! targets").
//!
//! One request and one plan per target, as for one target (`request::resolve_for`,
//! `planner::plan`), then `planner::several` takes the build out of each plan and makes it one
//! for all (one evaluation, one build). The run:
//! 1. every target's connection opens, each with its probe (`probe.rs`): its host name, its
//!    Nix and its elevation, the sudo password (asked once for all, before anything) tried
//!    there. They open while the build runs, as one target's does: with `--flake FLAKE`
//!    without `#name` each configuration is named after a guess of its target's host name
//!    (`SshHost::guessed_name`) that its probe checks; a probe that denies it stops the build,
//!    which runs again, once, with every target's real name. Only when a target gives no
//!    guess (an IP address) do the connections open first, all at once, since the plans
//!    need those names. A target that fails here is reported and left out; the others go
//!    on (a build running beside is stopped only once every target has failed);
//! 2. one evaluation (here) and one build (here or on `--build-host`) of every configuration
//!    (`planner/several.rs`), through the build's own transport. With a build host, that
//!    transport's connection there is the build host's one for the run (one probe), opened
//!    while the evaluation runs; every target's transport shares its SSH control directory
//!    (`Transport::sharing`) and adopts that connection for its copy from the build host
//!    (`Transport::adopt`), which closes when every target is over;
//! 3. each target's plan (copy, profile, activation, magic rollback) on a thread of its own,
//!    at most `--max-parallel` at once, each with its own `Transport` (its one SSH master),
//!    `Executor` and `Report`. A failure stops only that target, unless `--fail-fast`: then no
//!    other target starts (those running finish). Ctrl-C stops them all (`process::stop_child`
//!    stops every process rb waits for);
//! 4. a summary table on stderr, `HOST<TAB>PATH` on stdout for each target deployed (or one
//!    `--json` document with each target's result), and the exit status of the first target
//!    that was not deployed (`Error::TargetsFailed`).
//!
//! On a terminal the live area has a line per target for the whole run (`progress/live.rs`,
//! `Live::add_targets`): its state (connecting, waiting for the build, each step of its plan:
//! its report draws on that line, `Live::for_target`), then its result; the build has its
//! own line, once for all. Piped, each step is a plain line naming its target.

use crate::app::{
    context_with, local_hostname, result_document, run_id, say_not_the_guess, use_nom,
};
use crate::cli::{Action, Cli};
use crate::error::{Error, Result};
use crate::exec::{Executor, Record};
use crate::host::{Host, SshHost};
use crate::interrupt;
use crate::nix::NixCaps;
use crate::plan::{Connect, Finish, Plan, SCHEMA_VERSION, StepKind, Var};
use crate::planner::{self, Several};
use crate::probe::Checks;
use crate::progress::live::{self, Live};
use crate::report::Report;
use crate::request::{self, Request};
use crate::rollback::confirm;
use crate::transport::{Connecting, Transport};
use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The actions that take several targets: those that deploy a configuration built here.
const ACTIONS: [Action; 5] = [
    Action::Switch,
    Action::Boot,
    Action::Test,
    Action::DryActivate,
    Action::Build,
];

/// Why a target did not start: `--fail-fast`, after another target failed.
const NOT_STARTED: &str = "not started: --fail-fast, and another target failed";

fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(msg.into())
}

/// The run's context, with `hostname` the one a target's request gets for its name;
/// `asked` is set when a request asks a remote host for it.
fn context(
    env: &BTreeMap<String, String>,
    hostname: Option<String>,
    asked: &Rc<Cell<bool>>,
) -> request::Context {
    let asked = asked.clone();
    context_with(
        env.clone(),
        Box::new(move |host, _| match (host, &hostname) {
            (Host::Local, _) => Ok(local_hostname()),
            (Host::Ssh(_), Some(name)) => Ok(name.clone()),
            (Host::Ssh(h), None) => {
                asked.set(true);
                Ok(format!("<host name of {}>", h.dest))
            }
        }),
    )
}

/// What several targets refuse before anything runs, with one line each (exit 2): the
/// requests themselves are checked as for one target by resolving them.
fn refuse(cli: &Cli) -> Result<()> {
    let action = cli.action.unwrap_or(Action::Build);
    if !ACTIONS.contains(&action) {
        return Err(usage(format!(
            "several --target-host can only be used with 'switch', 'boot', 'test', \
             'dry-activate' and 'build', not '{}'",
            action.name()
        )));
    }
    if cli.activation.ask && !cli.activation.yes {
        // Each target would ask on the one terminal at once, from its own thread.
        return Err(usage(
            "--ask asks about one target; with several --target-host add --yes to show each \
             target's changes and go on",
        ));
    }
    if cli.activation.rollback || cli.activation.generation.is_some() {
        return Err(usage(
            "--rollback and --generation take one --target-host: each host has generations of \
             its own",
        ));
    }
    if cli.source.upgrade || cli.source.upgrade_all {
        return Err(usage(
            "--upgrade and --upgrade-all update this machine's channels: not with several \
             --target-host",
        ));
    }
    let targets = &cli.hosts.target_host;
    if let Some((_, t)) = targets
        .iter()
        .enumerate()
        .find(|(i, t)| targets[..*i].contains(t))
    {
        return Err(usage(format!("--target-host {t} is given twice")));
    }
    if let Some(b) = &cli.hosts.build_host
        && targets.contains(b)
    {
        return Err(usage(format!(
            "--build-host {b} is also one of several --target-host: build elsewhere, or deploy \
             it on its own"
        )));
    }
    Ok(())
}

/// Two targets that are one machine to ssh (`a` and `root@a` for root, two aliases in
/// ~/.ssh/config), or a target that is the build host, refused (exit 2) before anything
/// connects: the one machine would be deployed twice at once, through one SSH master whose
/// first user to finish would close it under the other.
fn refuse_same_machine(
    env: &BTreeMap<String, String>,
    targets: &[SshHost],
    builder: Host,
) -> Result<()> {
    let ssh = crate::ssh::Ssh::new(env)?;
    let mut seen: Vec<(String, &SshHost)> = Vec::new();
    for t in targets {
        let Some(machine) = ssh.resolve(t) else {
            continue;
        };
        if let Some((_, first)) = seen.iter().find(|(m, _)| *m == machine) {
            return Err(usage(format!(
                "--target-host {} and --target-host {} are the same machine to ssh ({machine}): \
                 give it once",
                first.dest, t.dest
            )));
        }
        seen.push((machine, t));
    }
    if let Host::Ssh(b) = builder
        && let Some(machine) = ssh.resolve(&b)
        && let Some((_, t)) = seen.iter().find(|(m, _)| *m == machine)
    {
        return Err(usage(format!(
            "--build-host {} is --target-host {} to ssh ({machine}): build elsewhere, or \
             deploy it on its own",
            b.dest, t.dest
        )));
    }
    Ok(())
}

/// One target: its host and, once planned, its request, plan and connection.
struct Target {
    host: SshHost,
    transport: Transport,
    planned: Option<(Request, Plan)>,
    /// Why it is left out before the build (unreachable, refused by its probe, …).
    failed: Option<Error>,
}

/// How one target went.
struct Outcome {
    dest: String,
    result: Result<()>,
    /// Whether its plan ran at all (false: left out, or not started after --fail-fast).
    started: bool,
    record: Record,
    took: Duration,
    /// Its request and plan (without the build), when it got that far.
    planned: Option<(Request, Plan)>,
}

impl Outcome {
    /// Its line in the live area says how it ended.
    fn show(&self, live: Option<&Live>) {
        let error = self.result.as_ref().err();
        show_ended(live, &self.dest, error, generation(self), self.took);
    }

    /// A target whose plan never ran, `e` saying why; its connection is closed. `keep_plan`:
    /// its `--json` document still shows the plan it would have run.
    fn not_started(t: &mut Target, e: Error, keep_plan: bool) -> Outcome {
        t.transport.close();
        Outcome {
            dest: t.host.dest.clone(),
            result: Err(e),
            started: false,
            record: Record::default(),
            took: Duration::ZERO,
            planned: t.planned.take().filter(|_| keep_plan),
        }
    }
}

pub fn run(cli: &Cli, report: &Report) -> Result<()> {
    refuse(cli)?;
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let action = cli.action.unwrap_or(Action::Build);
    // Every target's request, resolved without asking any host: the command line's errors
    // (as for one target) before anything connects, and the requests `--plan` shows. When
    // none of them asked a host for its name, these are the requests that run.
    let asked = Rc::new(Cell::new(false));
    let mut hosts = Vec::new();
    let mut unnamed = Vec::new();
    for t in &cli.hosts.target_host {
        let req = request::resolve_for(cli, &context(&env, None, &asked), Some(t))?;
        match &req.target_host {
            Host::Ssh(h) => hosts.push(h.clone()),
            Host::Local => {
                return Err(usage(format!(
                    "with several --target-host each is a remote host; '{t}' is this machine"
                )));
            }
        }
        unnamed.push(req);
    }
    refuse_same_machine(&env, &hosts, unnamed[0].build_host.clone())?;
    // `--flake FLAKE` without `#name`: each configuration is named after the target's host
    // name. rb guesses it from the destination (`SshHost::guessed_name`) and each
    // connection's probe checks it while the build runs; a target given as an IP address
    // gives no guess, and then the connections open before the build, to ask.
    let names_from_hosts = asked.get();
    let guesses: Option<Vec<String>> = match names_from_hosts {
        true => hosts.iter().map(SshHost::guessed_name).collect(),
        false => None,
    };
    let connect_first = names_from_hosts && guesses.is_none();
    // The command line's warnings and notes, the same for every target: said once.
    for w in &unnamed[0].warnings {
        report.warn(w);
    }
    for n in &unnamed[0].notes {
        report.debug(n);
    }
    let caps = NixCaps::detect();
    let id = run_id();
    let cwd = std::env::current_dir()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "/".into());
    let builder = match &unnamed[0].build_host {
        Host::Ssh(b) => Some(b.clone()),
        Host::Local => None,
    };
    // The build's own transport: with a build host, its one connection there for the run.
    // Each target's transport shares its SSH control directory, so that the target's copy
    // from the build host (and its relay through here, by `NIX_SSHOPTS`) goes through that
    // connection instead of one of the target's own.
    let mut build_transport = Transport::new(&env);
    let mut targets = Vec::new();
    for host in hosts {
        let transport = match &builder {
            Some(_) => Transport::sharing(&mut build_transport)?,
            None => Transport::new(&env),
        };
        targets.push(Target {
            host,
            transport,
            planned: None,
            failed: None,
        });
    }

    if cli.output.plan {
        // Connecting to no host: each remote host name is a placeholder, as for one target.
        let mut plans = Vec::new();
        for (t, req) in targets.iter_mut().zip(&unnamed) {
            plans.push(plan_for(
                req,
                &mut t.transport,
                &caps,
                &id,
                &cwd,
                &env,
                report,
            )?);
        }
        let reqs = unnamed;
        let how = planner::How {
            connect_first,
            progress: report.live().is_some(),
        };
        let several = planner::several(&reqs, plans, how)?;
        close_all(&mut targets);
        if cli.output.json {
            let doc = serde_json::json!({
                "version": SCHEMA_VERSION,
                "nix": caps.version_string(),
                "requests": reqs,
                "plan": several,
            });
            report.stdout(&serde_json::to_string_pretty(&doc).unwrap_or_default());
        } else {
            report.stdout(&several.to_string());
        }
        return Ok(());
    }

    // One password for every target, asked before any connection opens.
    let checks = Checks::target(action, &unnamed[0].elevation);
    let password = match checks.needs_password() {
        true => Some(crate::password::ask(&cli.hosts.target_host.join(", "))?),
        false => None,
    };
    // On a terminal, the live area, once the password is asked: a line for each target.
    if crate::progress::drawn(cli, &env) {
        report.draw_progress();
        if let Some(live) = report.live() {
            live.add_targets(
                &targets
                    .iter()
                    .map(|t| t.host.dest.clone())
                    .collect::<Vec<_>>(),
            );
        }
    }
    for t in &mut targets {
        t.transport.set_password(password.clone());
    }
    if connect_first {
        connect_all(&mut targets, &checks, report);
        if let Some(sig) = interrupt::signal() {
            close_all(&mut targets);
            return Err(Error::Interrupted(sig));
        }
    }
    let plan = |req: Request, transport: &mut Transport| -> Result<(Request, Plan)> {
        let plan = plan_for(&req, transport, &caps, &id, &cwd, &env, report)?;
        Ok((req, plan))
    };
    // Each target's request and plan, then the one build's plan. `guessed`: the names
    // guessed for the targets (else each is asked of its connection, or not needed).
    let plan_all = |targets: &mut [Target],
                    unnamed: Vec<Request>,
                    guessed: Option<&[String]>|
     -> Result<Option<Several>> {
        let given = cli.hosts.target_host.iter();
        for (i, ((t, req), arg)) in targets.iter_mut().zip(unnamed).zip(given).enumerate() {
            if t.failed.is_some() {
                continue;
            }
            let req = match (names_from_hosts, guessed) {
                (true, Some(names)) => {
                    let ctx = context(&env, Some(names[i].clone()), &asked);
                    request::resolve_for(cli, &ctx, Some(arg))
                }
                (true, None) => t.transport.hostname(&t.host, &checks).and_then(|name| {
                    request::resolve_for(cli, &context(&env, Some(name), &asked), Some(arg))
                }),
                (false, _) => Ok(req),
            };
            match req.and_then(|req| plan(req, &mut t.transport)) {
                Ok(p) => t.planned = Some(p),
                Err(e) => {
                    say_error(report, &t.host.dest, &e);
                    t.failed = Some(e);
                }
            }
        }
        let (reqs, plans): (Vec<Request>, Vec<Plan>) =
            targets.iter().filter_map(|t| t.planned.clone()).unzip();
        if plans.is_empty() {
            return Ok(None);
        }
        let how = planner::How {
            connect_first,
            progress: report.live().is_some(),
        };
        Ok(Some(planner::several(&reqs, plans, how)?))
    };
    let again = unnamed.clone();
    let mut several = plan_all(&mut targets, unnamed, guesses.as_deref())?;
    if let Some(names) = &guesses {
        report.debug(&format!(
            "the configurations are named {} after the targets, without asking them; each \
             connection's first session checks that its host name is that",
            names.join(", ")
        ));
    }
    // The names known (or guessed) without asking: the targets' connections open while the
    // build runs, as one target's does.
    let connecting = match connect_first {
        true => Vec::new(),
        false => connect_beside_build(&mut targets, &checks, guesses.as_deref(), report.live()),
    };
    // (Connecting beside the build, a target's line waits for it once its connection is
    // ready: `connect_beside_build`.)
    show_connected(
        report.live(),
        &targets,
        connect_first && several.as_ref().is_some_and(|s| !s.build.is_empty()),
    );
    // The build, once for all; a failed build fails every target that got that far.
    let mut built = match &several {
        Some(s) => build(s, &mut build_transport, &env, report),
        None => Ok(Vec::new()),
    };
    let mut connected = finish_connecting(&mut targets, connecting);
    // A guess that a probe denied stopped the build: the evaluation and build again, once,
    // with every target's real name (their connections are open, their probes done).
    let misnamed: Vec<usize> = targets
        .iter()
        .enumerate()
        .filter(|(_, t)| matches!(t.failed, Some(Error::NotTheGuess { .. })))
        .map(|(i, _)| i)
        .collect();
    if !misnamed.is_empty() && interrupt::signal().is_none() {
        for &i in &misnamed {
            if let Some(e) = targets[i].failed.take() {
                say_not_the_guess(report, &e);
            }
        }
        for t in targets.iter_mut() {
            t.planned = None;
        }
        several = plan_all(&mut targets, again, None)?;
        built = match &several {
            Some(s) => build(s, &mut build_transport, &env, report),
            None => Ok(Vec::new()),
        };
        connected.every_target_failed = targets.iter().all(|t| t.failed.is_some());
    }
    let systems = match built {
        Ok(systems) => systems,
        // Every target failed while it connected, which stopped the build: theirs are the
        // errors, below. (A signal's is the run's.)
        Err(_) if connected.every_target_failed && interrupt::signal().is_none() => Vec::new(),
        Err(e) => {
            // No target gets anything: the build's error is the run's, as for one target.
            for t in targets.iter().filter(|t| t.planned.is_some()) {
                show_ended(report.live(), &t.host.dest, Some(&e), None, Duration::ZERO);
            }
            close_all(&mut targets);
            return Err(e);
        }
    };
    for t in targets
        .iter()
        .filter(|t| connected.failed.contains(&t.host.dest))
    {
        if let Some(e) = &t.failed {
            say_error(report, &t.host.dest, e);
        }
    }
    if let Some(b) = &builder {
        for t in &mut targets {
            // Its copy from the build host goes through the build's connection there.
            t.transport.adopt(&build_transport, b);
        }
    }
    let outcomes = deploy(
        cli,
        report,
        &env,
        targets,
        several.as_ref(),
        &systems,
        password,
    );
    // Only now, every target's copy from there over: the build host's connection.
    build_transport.close();
    conclude(cli, report, action, outcomes)
}

/// The plan of one target, with its connection's `NIX_SSHOPTS` for its copy.
fn plan_for(
    req: &Request,
    transport: &mut Transport,
    caps: &NixCaps,
    id: &str,
    cwd: &str,
    env: &BTreeMap<String, String>,
    report: &Report,
) -> Result<Plan> {
    let nix_sshopts = transport.nix_sshopts()?;
    planner::plan(
        req,
        caps,
        &planner::RunEnv {
            run_id: id,
            nix_sshopts: &nix_sshopts,
            cwd,
            program: &report.program,
            use_nom: use_nom(env),
            // Nix's log for the live area: each target's steps go on its own line there
            // (`Live::for_target`), not on the host's they run on (all copy "on local").
            progress: report.live().is_some(),
        },
    )
}

/// Opens every target's connection at once, each running its probe (whose host name names
/// its configuration); a target that cannot be reached or deployed to is marked failed (and
/// said), the others go on.
fn connect_all(targets: &mut [Target], checks: &Checks, report: &Report) {
    std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter_mut()
            .map(|t| {
                scope.spawn(move || {
                    if let Err(e) = t.transport.hostname(&t.host, checks) {
                        t.failed = Some(e);
                    }
                })
            })
            .collect();
        for h in handles {
            let _ = h.join();
        }
    });
    for t in targets.iter() {
        if let Some(e) = &t.failed {
            say_error(report, &t.host.dest, e);
        }
    }
}

/// Begins opening the connection of every target not left out yet, each on a thread of its
/// own, while the build runs. One that fails leaves its target out, but the build goes on
/// for the others: it is stopped (as one target's unreachable host stops it) only once every
/// target has failed. A target's line in the live area says its failure at once; its error
/// line comes once the build is over (`finish_connecting`).
/// `guessed`: each target's guessed name, which its probe checks; a probe that denies it
/// stops the build at once (it is built again with the real names, `run`) and leaves no
/// target out.
fn connect_beside_build(
    targets: &mut [Target],
    checks: &Checks,
    guessed: Option<&[String]>,
    live: Option<&Live>,
) -> Vec<(usize, Connecting)> {
    let left = targets.iter().filter(|t| t.failed.is_none()).count();
    let left = Arc::new(AtomicUsize::new(left));
    let mut connecting = Vec::new();
    for (i, t) in targets.iter_mut().enumerate() {
        if t.failed.is_some() {
            continue;
        }
        let (left, live, dest) = (left.clone(), live.cloned(), t.host.dest.clone());
        let on_end: crate::transport::OnEnd = Arc::new(move |why| {
            let Some(why) = why else {
                // Connected, its probe content: its line waits for the build from now on.
                if let Some(live) = &live {
                    live.target_state(&dest, "waiting for the build");
                }
                return;
            };
            if let Error::NotTheGuess { .. } = why {
                crate::process::stop_child();
                return;
            }
            show_ended(live.as_ref(), &dest, Some(why), None, Duration::ZERO);
            if left.fetch_sub(1, Ordering::SeqCst) == 1 {
                crate::process::stop_child();
            }
        });
        let mut checks = checks.clone();
        checks.expect_hostname = guessed.and_then(|names| names.get(i).cloned());
        let connect = Connect {
            host: t.host.clone(),
            checks,
        };
        match t.transport.connect_beside(&[connect], on_end.clone()) {
            Ok(c) => connecting.push((i, c)),
            Err(e) => {
                on_end(Some(&e));
                t.failed = Some(e);
            }
        }
    }
    connecting
}

/// What [`finish_connecting`] found.
struct Connected {
    /// The targets whose connection failed beside the build, to be said.
    failed: Vec<String>,
    /// Whether every target has failed (which stopped the build, if it still ran).
    every_target_failed: bool,
}

/// Waits for the connections [`connect_beside_build`] began, marking the targets whose
/// connection failed.
fn finish_connecting(targets: &mut [Target], connecting: Vec<(usize, Connecting)>) -> Connected {
    let mut failed = Vec::new();
    let began = !connecting.is_empty();
    for (i, c) in connecting {
        let t = &mut targets[i];
        if let Err(e) = t.transport.finish_connecting(c) {
            let e = match interrupt::signal() {
                Some(sig) => Error::Interrupted(sig),
                None => e,
            };
            failed.push(t.host.dest.clone());
            t.failed = Some(e);
        }
    }
    Connected {
        failed,
        every_target_failed: began && targets.iter().all(|t| t.failed.is_some()),
    }
}

fn close_all(targets: &mut [Target]) {
    for t in targets {
        t.transport.close();
    }
}

/// An error of one target, said as it happens: the error line (naming the target when the
/// message does not) and its hints.
fn say_error(report: &Report, dest: &str, e: &Error) {
    if let Error::Interrupted(_) = e {
        return;
    }
    if !report.was_told(e) {
        let msg = e.to_string();
        match msg.contains(dest) {
            true => report.error(&msg),
            false => report.error(&format!("{dest}: {msg}")),
        }
    }
    for hint in e.hints() {
        report.hint(&hint);
    }
}

/// The live area, once the targets are connected and planned: a target left out says why,
/// the others that they wait for the build (`building`).
fn show_connected(live: Option<&Live>, targets: &[Target], building: bool) {
    for t in targets {
        match &t.failed {
            Some(e) => show_ended(live, &t.host.dest, Some(e), None, Duration::ZERO),
            None if building => {
                if let Some(live) = live {
                    live.target_state(&t.host.dest, "waiting for the build");
                }
            }
            None => {}
        }
    }
}

/// `dest`'s line in the live area, if rb draws one, says how it ended: `error`, or deployed
/// (with its `generation`, when it set one, and the time it took).
fn show_ended(
    live: Option<&Live>,
    dest: &str,
    error: Option<&Error>,
    generation: Option<u64>,
    took: Duration,
) {
    if let Some(live) = live {
        live.ended(
            dest,
            &ended_message(error, generation, took),
            error.is_none(),
        );
    }
}

/// What a target's line says once it is over: its result as the summary table says it, with
/// the generation and time when deployed, else the failed step or the error's first line.
fn ended_message(error: Option<&Error>, generation: Option<u64>, took: Duration) -> String {
    let word = result_word(error);
    match (error, generation) {
        (None, Some(g)) => format!("{word}: generation {g} in {:.2}s", took.as_secs_f64()),
        (None, None) => format!("{word} in {:.2}s", took.as_secs_f64()),
        (Some(Error::Interrupted(_)), _) => word,
        (Some(Error::Failed(m)), _) if m == NOT_STARTED => {
            live::ended_message(&word, Some("--fail-fast"))
        }
        (Some(Error::Command { what, .. }), _) => live::ended_message(&word, Some(what)),
        (Some(e), _) => live::ended_message(&word, Some(&e.to_string())),
    }
}

/// Runs the one build; the system of each planned target, in order.
/// `transport`: the build's own; with a build host, its connection there opens while the
/// evaluation runs (the build host's one connection and probe for the run), and the targets'
/// transports adopt it afterwards for their copies from there.
fn build(
    several: &Several,
    transport: &mut Transport,
    env: &BTreeMap<String, String>,
    report: &Report,
) -> Result<Vec<String>> {
    if several.build.is_empty() {
        return Ok(Vec::new());
    }
    let plan = Plan {
        action: several.plans[0].action,
        connect: several.connect.clone(),
        inputs: Vec::new(),
        sessions: several.build.clone(),
        confirm: None,
        finish: Finish::Nothing,
    };
    let mut executor = Executor {
        transport,
        report,
        password: None,
        stdout_reserved: true,
        local_env: env,
    };
    let mut record = Record::default();
    executor.run_sessions(&plan, &mut record)?;
    let missing = || Error::Internal("the build gave no system path".into());
    match several.system_of.is_empty() {
        true => {
            let system = record.values.get(&Var::System).ok_or_else(missing)?;
            Ok(vec![system.clone(); several.plans.len()])
        }
        false => {
            let built: Vec<&str> = record
                .values
                .get(&Var::Systems)
                .ok_or_else(missing)?
                .lines()
                .collect();
            several
                .system_of
                .iter()
                .map(|&n| built.get(n).map(|s| s.to_string()).ok_or_else(missing))
                .collect()
        }
    }
}

/// Runs each planned target's plan, at most `--max-parallel` at once; every target's
/// outcome, in the order given.
fn deploy(
    cli: &Cli,
    report: &Report,
    env: &BTreeMap<String, String>,
    targets: Vec<Target>,
    several: Option<&Several>,
    systems: &[String],
    password: Option<String>,
) -> Vec<Outcome> {
    let total = targets.len();
    let live = report.live();
    let outcomes: Mutex<Vec<Option<Outcome>>> = Mutex::new((0..total).map(|_| None).collect());
    let mut queue = VecDeque::new();
    let mut planned = 0;
    for (i, mut t) in targets.into_iter().enumerate() {
        // Its plan among `several.plans`: a target left out after it was planned (its
        // connection failed while the build ran) has one too.
        let n = t.planned.is_some().then(|| {
            planned += 1;
            planned - 1
        });
        match (t.failed.take(), several, n) {
            (Some(e), _, _) => {
                outcomes.lock().unwrap_or_else(|p| p.into_inner())[i] =
                    Some(Outcome::not_started(&mut t, e, false));
            }
            (None, Some(_), Some(n)) if systems.get(n).map(String::as_str) == Some("-") => {
                // The flake has no configuration of that name (`planner/several.rs`).
                let name = match t.planned.as_ref().map(|p| &p.0.source) {
                    Some(crate::request::Source::Flake(f)) => f.configuration(),
                    _ => "its configuration".into(),
                };
                let e = Error::Failed(format!(
                    "the flake has no configuration {name} for {}",
                    t.host.dest
                ));
                say_error(report, &t.host.dest, &e);
                let outcome = Outcome::not_started(&mut t, e, true);
                outcome.show(live);
                outcomes.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(outcome);
            }
            (None, Some(s), Some(n)) => {
                let plan = s.plans[n].clone();
                if let Some(p) = t.planned.as_mut() {
                    // The document of the target shows the plan that ran, without the build.
                    p.1 = plan.clone();
                }
                queue.push_back((i, t, plan, systems.get(n).cloned()));
            }
            (None, _, _) => {}
        }
    }
    let queue = Mutex::new(queue);
    let failed = AtomicBool::new(false);
    let workers = (cli.hosts.max_parallel as usize).clamp(1, total.max(1));
    if let Some(live) = live {
        let queued = queue.lock().unwrap_or_else(|p| p.into_inner());
        for (_, t, _, _) in queued.iter().skip(workers) {
            let waiting = format!("waiting: at most {workers} at once (--max-parallel)");
            live.target_state(&t.host.dest, &waiting);
        }
    }
    let (program, debug) = (&report.program, report.debug);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (queue, outcomes, failed, password) = (&queue, &outcomes, &failed, &password);
            scope.spawn(move || {
                loop {
                    let Some((i, mut t, plan, system)) =
                        queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
                    else {
                        break;
                    };
                    let skip = interrupt::signal().map(Error::Interrupted).or_else(|| {
                        (cli.hosts.fail_fast && failed.load(Ordering::SeqCst))
                            .then(|| Error::Failed(NOT_STARTED.into()))
                    });
                    let outcome = match skip {
                        Some(e) => Outcome::not_started(&mut t, e, true),
                        None => {
                            // Targets run side by side: each line of theirs names its target
                            // (`rb: root@web1: copy on local`), their scripts' lines too.
                            let report = Report::new(format!("{program}: {}", t.host.dest), debug);
                            // Its steps on its line of the live area.
                            if let Some(live) = live {
                                report.draw_progress_on(live.for_target(&t.host.dest));
                            }
                            one(&mut t, &plan, system, password.clone(), env, &report)
                        }
                    };
                    if outcome.result.is_err() {
                        failed.store(true, Ordering::SeqCst);
                    }
                    outcome.show(live);
                    outcomes.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(outcome);
                }
            });
        }
    });
    outcomes
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// One target's plan, as `app.rs` runs the plan of a run with one target.
fn one(
    t: &mut Target,
    plan: &Plan,
    system: Option<String>,
    password: Option<String>,
    env: &BTreeMap<String, String>,
    report: &Report,
) -> Outcome {
    let started = Instant::now();
    let mut record = Record::default();
    if let Some(system) = system {
        record.values.insert(Var::System, system);
    }
    let mut executor = Executor {
        transport: &mut t.transport,
        report,
        password,
        stdout_reserved: true,
        local_env: env,
    };
    let mut result = executor.run_sessions(plan, &mut record);
    if let Some(c) = &plan.confirm {
        result = confirm::settle(&mut executor, c, result, &mut record);
    }
    t.transport.close();
    if let Err(e) = &result
        && !matches!(e, Error::Interrupted(_))
        && !report.was_told(e)
    {
        // The report's lines name the target already.
        report.error(&e.to_string());
        for hint in e.hints() {
            report.hint(&hint);
        }
    }
    Outcome {
        dest: t.host.dest.clone(),
        result,
        started: true,
        record,
        took: started.elapsed(),
        planned: t.planned.take(),
    }
}

/// What the summary says of a target's result (`error`: none when it was deployed).
fn result_word(error: Option<&Error>) -> String {
    match error {
        None => "deployed".into(),
        Some(Error::Interrupted(_)) => "interrupted".into(),
        Some(Error::Failed(m)) if m == NOT_STARTED => "not started".into(),
        Some(e @ Error::Unreachable { .. }) => {
            format!("unreachable (exit status {})", e.exit_status())
        }
        Some(e @ (Error::RolledBack { .. } | Error::CheckFailed { .. })) => {
            format!("rolled back (exit status {})", e.exit_status())
        }
        Some(e) => format!("failed (exit status {})", e.exit_status()),
    }
}

fn generation(o: &Outcome) -> Option<u64> {
    let sets_profile = o
        .record
        .steps
        .iter()
        .any(|s| s.kind == StepKind::SetProfile);
    o.record
        .values
        .get(&Var::Generation)
        .filter(|_| o.result.is_ok() && sets_profile)
        .and_then(|g| g.parse().ok())
}

/// The summary table on stderr, one row per target in the order given.
pub fn summary(rows: &[(String, String, String, String)]) -> Vec<String> {
    let head = (
        "HOST".to_string(),
        "RESULT".to_string(),
        "GENERATION".to_string(),
        "TIME".to_string(),
    );
    let all: Vec<_> = std::iter::once(&head).chain(rows).collect();
    let w0 = all.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = all.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let w2 = all.iter().map(|r| r.2.len()).max().unwrap_or(0);
    all.iter()
        .map(|r| {
            format!("  {:<w0$}  {:<w1$}  {:<w2$}  {}", r.0, r.1, r.2, r.3)
                .trim_end()
                .to_string()
        })
        .collect()
}

fn conclude(cli: &Cli, report: &Report, action: Action, outcomes: Vec<Outcome>) -> Result<()> {
    // The targets' lines (their results) stay above the table.
    if let Some(live) = report.live() {
        live.clear();
    }
    let rows: Vec<_> = outcomes
        .iter()
        .map(|o| {
            (
                o.dest.clone(),
                result_word(o.result.as_ref().err()),
                generation(o).map_or("-".to_string(), |g| g.to_string()),
                match o.started {
                    true => format!("{:.2}s", o.took.as_secs_f64()),
                    false => "-".to_string(),
                },
            )
        })
        .collect();
    let deployed = outcomes.iter().filter(|o| o.result.is_ok()).count();
    report.info(&format!(
        "{}: {deployed} of {} targets deployed:",
        report.program,
        outcomes.len()
    ));
    for line in summary(&rows) {
        report.info(&line);
    }
    if cli.output.json {
        let doc = serde_json::json!({
            "version": SCHEMA_VERSION,
            "action": action,
            "success": deployed == outcomes.len(),
            "targets": outcomes.iter().map(target_document).collect::<Vec<_>>(),
        });
        report.stdout(&serde_json::to_string_pretty(&doc).unwrap_or_default());
        report.json_printed.set(true);
    } else {
        for o in outcomes.iter().filter(|o| o.result.is_ok()) {
            if let Some(path) = o.record.values.get(&Var::System) {
                report.stdout(&format!("{}\t{path}", o.dest));
            }
        }
    }
    if let Some(sig) = interrupt::signal() {
        return Err(Error::Interrupted(sig));
    }
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.result.is_err()).collect();
    match failed.first() {
        None => Ok(()),
        Some(first) => Err(Error::TargetsFailed {
            failed: failed.len(),
            of: outcomes.len(),
            hosts: failed
                .iter()
                .map(|o| o.dest.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            status: first.result.as_ref().err().map_or(1, Error::exit_status),
        }),
    }
}

/// `--json`: one target's result, the document a run with that target alone gives.
/// A target left out before its plan ran gets the short document of a run that failed before
/// its plan, with its `targetHost`.
fn target_document(o: &Outcome) -> serde_json::Value {
    match &o.planned {
        Some((req, plan)) => result_document(req, plan, &o.record, o.result.as_ref().err()),
        None => {
            let e = o.result.as_ref().err();
            serde_json::json!({
                "version": SCHEMA_VERSION,
                "success": e.is_none(),
                "targetHost": o.dest,
                "error": e.map(|e| serde_json::json!({
                    "step": null,
                    "host": o.dest,
                    "status": e.exit_status(),
                    "message": e.to_string(),
                    "hints": e.hints(),
                })),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_targets_line_ends_with_its_result_and_why() {
        let took = Duration::from_millis(1234);
        assert_eq!(
            ended_message(None, Some(42), took),
            "deployed: generation 42 in 1.23s"
        );
        assert_eq!(ended_message(None, None, took), "deployed in 1.23s");
        let activation = Error::Command {
            what: "activating the configuration".into(),
            host: "root@beryl".into(),
            status: 4,
        };
        assert_eq!(
            ended_message(Some(&activation), None, took),
            "failed (exit status 4): activating the configuration"
        );
        assert_eq!(
            ended_message(Some(&Error::Interrupted(2)), None, took),
            "interrupted"
        );
        let skipped = Error::Failed(NOT_STARTED.into());
        assert_eq!(
            ended_message(Some(&skipped), None, Duration::ZERO),
            "not started: --fail-fast"
        );
        let gone = Error::Unreachable {
            host: "root@x".into(),
            why: "ssh: Could not resolve hostname x".into(),
        };
        assert_eq!(
            ended_message(Some(&gone), None, Duration::ZERO),
            "unreachable (exit status 255): cannot connect to root@x: ssh: Could not resolve \
             hostname x"
        );
    }
}
