//! One run of rb: command line → request → plan → execution → report.

use crate::cli::Cli;
use crate::error::{Error, Result, exit};
use crate::exec::{Executor, Outcome};
use crate::generations;
use crate::host::Host;
use crate::nix::NixCaps;
use crate::password;
use crate::plan::{Finish, Plan, SCHEMA_VERSION, Var};
use crate::planner;
use crate::report::Report;
use crate::request::Elevation;
use crate::request::{self, Context, Request};
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

pub fn command(program: &str) -> clap::Command {
    Cli::command()
        .name(program.to_string())
        .bin_name(program.to_string())
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
    let report = Report {
        program: program.clone(),
        debug: cli.output.debug || cli.nix.verbose > 0,
    };
    match run_cli(&cli, &report) {
        Ok(()) => exit::SUCCESS,
        Err(e) => {
            match &e {
                Error::Command { reported: true, .. } => {}
                Error::Usage(msg) => {
                    report.error(msg);
                    usage_hint(&program);
                }
                other => report.error(&other.to_string()),
            }
            e.exit_status()
        }
    }
}

fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| duct::cmd!("uname", "-n").read().ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn context(program: &str, transport: Rc<RefCell<Option<Transport>>>) -> Context {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    Context {
        env,
        program: program.to_string(),
        etc_nixos_flake: std::fs::canonicalize("/etc/nixos/flake.nix")
            .ok()
            .and_then(|p| p.parent().map(|d| d.to_string_lossy().into_owned())),
        hostname: Box::new(move |host| match host {
            Host::Local => Ok(local_hostname()),
            Host::Ssh(h) => match transport.borrow_mut().as_mut() {
                Some(t) => t.hostname(h),
                None => Err(Error::Output("internal: no transport".into())),
            },
        }),
    }
}

/// A name unique to this run, for the systemd unit and temporary files.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{:05x}", std::process::id(), nanos & 0xfffff)
}

fn run_cli(cli: &Cli, report: &Report) -> Result<()> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    // The transport is shared with resolution, which may ask the target for its host name.
    let ssh_options = match env.get("NIX_SSHOPTS") {
        Some(s) => crate::shell::split(s).map_err(|e| Error::Usage(format!("NIX_SSHOPTS: {e}")))?,
        None => Vec::new(),
    };
    let shared = Rc::new(RefCell::new(Some(Transport::new(&env, ssh_options)?)));
    let result = run_with(cli, report, &shared);
    if let Some(mut t) = shared.borrow_mut().take() {
        t.close();
    }
    result
}

fn run_with(cli: &Cli, report: &Report, shared: &Rc<RefCell<Option<Transport>>>) -> Result<()> {
    let ctx = context(&report.program, shared.clone());
    let req = request::resolve(cli, &ctx)?;
    for w in &req.warnings {
        report.warn(w);
    }
    let caps = NixCaps::detect();
    let mut guard = shared.borrow_mut();
    let transport = guard
        .as_mut()
        .ok_or_else(|| Error::Output("internal: no transport".into()))?;
    let nix_sshopts = transport.nix_sshopts();
    let id = run_id();
    let cwd = std::env::current_dir()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "/".into());
    let plan = planner::plan(
        &req,
        &caps,
        &planner::RunEnv {
            run_id: &id,
            nix_sshopts: &nix_sshopts,
            cwd: &cwd,
            program: &report.program,
        },
    )?;
    if cli.output.plan {
        print_plan(&plan, &req, &caps, cli.output.json, report);
        return Ok(());
    }
    let password = match &req.elevation {
        Elevation::Sudo {
            ask_password: true, ..
        } if !req.target_host.is_local() => Some(password::ask(&req.target_host.to_string())?),
        _ => None,
    };
    let mut executor = Executor {
        transport,
        report,
        password,
    };
    let mut outcome = Outcome::default();
    executor.execute(&plan, &mut outcome)?;
    finish(&plan, &outcome, report)
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

fn finish(plan: &Plan, outcome: &Outcome, report: &Report) -> Result<()> {
    let system = outcome.values.get(&Var::System);
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
            let file = outcome.values.get(&Var::ImageFile).ok_or_else(|| {
                Error::Output("internal: the plan finished without the image's file name".into())
            })?;
            report.result(
                "Done. The disk image can be found in ",
                &format!("{path}/{file}"),
            );
        }
        (Finish::Generations { json }, _) => {
            let listing = outcome
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
            return Err(Error::Output(
                "internal: the plan finished without a system path".into(),
            ));
        }
    }
    Ok(())
}
