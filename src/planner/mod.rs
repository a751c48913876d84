//! From a [`Request`] to a [`Plan`]: which commands run on which host, in which order.
//!
//! The planner decides everything; the executor only follows. A new action or pipeline is a
//! new function here, not a branch in the executor.

mod activate;
mod build;
mod copy;
mod several;
#[cfg(test)]
mod tests;
mod tools;

pub use several::{How, Several, several};

use activate::*;
use build::*;
use copy::*;
use tools::*;

use crate::cli::Action;
use crate::elevation::Elevation;
use crate::error::{Error, Result};
use crate::generations::list_script;
use crate::host::Host;
use crate::nix::{FEATURES, NixCaps, NixCommand};
use crate::plan::{
    Capture, Command, Env, EnvVar, Finish, Output, Pick, Plan, Session, Step, StepKind, Undo, Var,
    Word,
};
use crate::request::{Request, Source, Upgrade};
use serde::Serialize;

/// What the planner needs from this run besides the request.
pub struct RunEnv<'a> {
    /// Makes names unique per run (the systemd unit).
    pub run_id: &'a str,
    /// `NIX_SSHOPTS` for copies: the user's options and the run's shared connections.
    pub nix_sshopts: &'a str,
    /// rb's working directory: `repl` hands Nix absolute paths (`builtins.getFlake` refuses
    /// relative ones, and a temporary file would change what a relative path means).
    pub cwd: &'a str,
    /// `rb` or `nixos-rebuild`: how scripts on hosts sign their notes and warnings.
    pub program: &'a str,
    /// Local builds go through nix-output-monitor (`NIXOS_REBUILD_USE_NOM`, `nom` on the PATH,
    /// stderr a terminal: when nixos-rebuild-ng would).
    pub use_nom: bool,
    /// rb draws progress on the terminal (`progress::drawn`): builds and copies write Nix's
    /// `internal-json` log instead of being only `--quiet`.
    pub progress: bool,
}

/// Builds the plan.
pub fn plan(req: &Request, caps: &NixCaps, run: &RunEnv) -> Result<Plan> {
    refuse_unavailable(req)?;
    let mut sessions = Vec::new();
    let mut inputs = Vec::new();
    // Channels are updated before anything reads them, whatever the action (as ng does).
    if req.upgrade != Upgrade::None {
        sessions.push(upgrade_channels(req, run));
    }

    let finish = match req.action {
        Action::Edit => {
            sessions.extend(edit(req));
            Finish::Nothing
        }
        Action::Repl => {
            sessions.push(repl(req, caps, run));
            Finish::Nothing
        }
        Action::ListGenerations => {
            sessions.push(list_generations(req));
            Finish::Generations { json: req.json }
        }
        _ => deploy(req, caps, run, &mut sessions, &mut inputs)?,
    };

    let connect = hosts_to_connect(req, &sessions);
    Ok(Plan {
        action: req.action,
        connect,
        inputs,
        sessions: merge_sessions(sessions),
        confirm: req
            .confirm_timeout
            .map(|t| crate::rollback::watchdog::confirm(req, run.run_id, t)),
        finish,
    })
}

/// The actions that build (or take) a system and may copy and activate it.
fn deploy(
    req: &Request,
    caps: &NixCaps,
    run: &RunEnv,
    sessions: &mut Vec<Session>,
    inputs: &mut Vec<(Var, String)>,
) -> Result<Finish> {
    let activates = req.action.activates();
    // A wrong password is found out before anything is built: on a remote target by the
    // probe of its connection (`probe.rs`), here by a session of its own.
    if req.elevation.sends_password()
        && req.target_host.is_local()
        && (activates || matches!(req.source, Source::Rollback { .. }))
    {
        sessions.push(check_elevation(req));
    }

    let copies = req.action != Action::DryBuild;
    // `--ask` with a closure here to copy to a remote target: asked before the copy.
    let ask_before_copy = req.ask && !req.ask_yes && activates;
    let mut asked = false;
    let mut preview_here = |sessions: &mut Vec<Session>, to: &crate::host::SshHost| {
        if ask_before_copy {
            sessions.push(preview_before_copy(to, run));
            asked = true;
        }
    };
    match &req.source {
        Source::StorePath { path } => {
            inputs.push((Var::System, path.clone()));
            if let Host::Ssh(to) = &req.target_host {
                preview_here(sessions, to);
                sessions.push(copy_to(req, to, Var::System, run, caps));
            }
        }
        Source::Rollback { .. } => sessions.push(find_generation(req)),
        Source::Flake(_) | Source::Classic | Source::File { .. } => match &req.build_host {
            Host::Local => {
                if req.action == Action::BuildImage {
                    sessions.push(image_variants(req));
                    if req.image_variant.is_none() {
                        // The evaluation fails, listing the variants to choose from.
                        return Ok(Finish::Nothing);
                    }
                }
                sessions.push(build(req, run.use_nom, run.progress)?);
                if let (Host::Ssh(to), true) = (&req.target_host, copies) {
                    sessions.extend(specialisation_before_copy(req, &req.build_host));
                    preview_here(sessions, to);
                    sessions.push(copy_to(req, to, Var::System, run, caps));
                }
            }
            Host::Ssh(builder) => {
                sessions.extend(build_remotely(req, builder, run, caps));
                match &req.target_host {
                    _ if !copies => {}
                    Host::Local => {
                        sessions.extend(specialisation_before_copy(req, &req.build_host));
                        sessions.push(copy_from(req, builder, run, caps))
                    }
                    Host::Ssh(to) if to == builder => {}
                    Host::Ssh(to) => {
                        sessions.extend(specialisation_before_copy(req, &req.build_host));
                        sessions.push(copy_between(req, builder, to, run))
                    }
                }
            }
        },
    }

    Ok(match req.action {
        _ if activates => {
            if req.ask && !asked {
                sessions.push(preview(req, run));
            }
            sessions.push(activation(req, run));
            Finish::NewConfiguration
        }
        Action::Build => {
            if req.diff {
                sessions.push(Session {
                    host: req.target_host.clone(),
                    elevation: Elevation::None,
                    steps: vec![diff_step(run)],
                    fallback: None,
                });
            }
            Finish::NewConfiguration
        }
        Action::BuildVm | Action::BuildVmWithBootloader => Finish::VirtualMachine,
        Action::BuildImage => Finish::Image,
        _ => Finish::Nothing,
    })
}

/// The remote hosts the run needs, connected to before anything runs: those a session runs
/// on, and the target when a closure is copied there (by a local process, or by the builder
/// with a relay through here as its fallback). A host named but not needed (the target of a
/// dry-build, the builder of a rollback) is not bothered.
fn hosts_to_connect(req: &Request, sessions: &[Session]) -> Vec<crate::plan::Connect> {
    use crate::probe::Checks;
    let copies = sessions
        .iter()
        .flat_map(|s| &s.steps)
        .any(|s| s.kind == StepKind::Copy);
    let mut hosts: Vec<crate::plan::Connect> = Vec::new();
    let used = sessions
        .iter()
        .map(|s| &s.host)
        .chain(copies.then_some(&req.target_host));
    for host in used {
        let Host::Ssh(h) = host else { continue };
        // What the host must offer: a target gets the system (and may need root), a build
        // host builds; listing generations only reads.
        let mut checks = match (req.action, &req.build_host) {
            (Action::ListGenerations, _) => Checks::default(),
            _ if host == &req.target_host => Checks::target(req.action, &req.elevation),
            (_, Host::Ssh(b)) if b == h => Checks::builder(),
            _ => Checks::default(),
        };
        if host == &req.target_host && req.build_host == req.target_host {
            checks.merge(&Checks::builder());
        }
        match hosts.iter_mut().find(|c| &c.host == h) {
            Some(c) => c.checks.merge(&checks),
            None => hosts.push(crate::plan::Connect {
                host: h.clone(),
                checks,
            }),
        }
    }
    hosts
}

/// Consecutive sessions on the same remote host with the same elevation become one: one
/// round trip instead of two (e.g. realise and activate when the build host is the target).
/// A value the first captures reaches the second through a shell variable of the script,
/// which works for path captures only.
fn merge_sessions(sessions: Vec<Session>) -> Vec<Session> {
    let mut out: Vec<Session> = Vec::new();
    for session in sessions {
        if let Some(prev) = out.last_mut()
            && !prev.host.is_local()
            && prev.host == session.host
            && prev.elevation == session.elevation
            && prev.fallback.is_none()
            && session.fallback.is_none()
            && prev.steps.iter().all(|s| {
                matches!(s.capture, None | Some(Capture::PathLine(_))) && s.commands.len() == 1
            })
        {
            prev.steps.extend(session.steps);
            continue;
        }
        out.push(session);
    }
    out
}

/// Options and actions whose implementation has not landed yet: validated by `resolve`,
/// refused here with a clear message rather than half done.
fn refuse_unavailable(req: &Request) -> Result<()> {
    // polkit-stdin-agent would be needed on the target to hand run0 a password.
    let missing = req
        .elevation
        .wants_unavailable_password()
        .then_some("--ask-sudo-password with run0");
    match missing {
        Some(what) => Err(Error::NotYetAvailable(what)),
        None => Ok(()),
    }
}

/// A session of one unelevated step on this machine.
fn local(kind: StepKind, command: Command) -> Session {
    Session::one(Host::Local, Elevation::None, Step::new(kind, vec![command]))
}

/// The attribute of the configuration an action builds.
fn attribute(req: &Request) -> String {
    match (req.action, &req.image_variant) {
        (Action::BuildVm, _) => "config.system.build.vm".into(),
        (Action::BuildVmWithBootloader, _) => "config.system.build.vmWithBootLoader".into(),
        (Action::BuildImage, Some(variant)) => format!("config.system.build.images.{variant}"),
        _ => "config.system.build.toplevel".into(),
    }
}

fn nix_new_style(subcommand: &str) -> Vec<String> {
    let mut argv = vec!["nix".to_string()];
    argv.extend(FEATURES.map(String::from));
    argv.push(subcommand.into());
    argv
}
