//! Copying closures between hosts: `nix-copy-closure`, or `nix copy` for `ssh-ng://` and for
//! the relay between a build host and a target.

use super::*;

/// `nix-copy-closure` (or `nix copy` for `ssh-ng://`) of a value to or from a host.
pub(super) fn copy_command(
    req: &Request,
    direction: &str,
    host: &crate::host::SshHost,
    what: Var,
) -> Command {
    let mut argv: Vec<Word> = if host.scheme == "ssh" {
        let mut a = vec![Word::lit("nix-copy-closure")];
        a.extend(
            req.nix
                .for_command(NixCommand::CopyClosure)
                .into_iter()
                .map(Word::Lit),
        );
        a.extend([Word::lit(direction), Word::lit(&host.dest)]);
        a
    } else {
        let mut a: Vec<Word> = nix_new_style("copy").into_iter().map(Word::Lit).collect();
        a.extend(
            req.nix
                .for_command(NixCommand::Copy)
                .into_iter()
                .map(Word::Lit),
        );
        // Like nix-copy-closure: a closure we built ourselves needs no signature; the
        // destination honours this only for trusted users.
        a.extend([
            Word::lit("--no-check-sigs"),
            Word::lit(direction),
            Word::lit(host.store_uri()),
        ]);
        a
    };
    argv.push(Word::var(what, ""));
    Command::new(argv)
}

pub(super) fn copy_to(req: &Request, to: &crate::host::SshHost, run: &RunEnv) -> Command {
    let mut cmd = copy_command(req, "--to", to, Var::System);
    cmd.env = Env::Inherit(vec![("NIX_SSHOPTS".into(), run.nix_sshopts.into())]);
    cmd
}

pub(super) fn copy_from(req: &Request, from: &crate::host::SshHost, run: &RunEnv) -> Command {
    let mut cmd = copy_command(req, "--from", from, Var::System);
    cmd.env = Env::Inherit(vec![("NIX_SSHOPTS".into(), run.nix_sshopts.into())]);
    cmd
}

/// From the builder straight to the target, over the builder's own SSH access; when the
/// builder cannot reach the target, relay through this machine.
pub(super) fn copy_between(
    req: &Request,
    builder: &crate::host::SshHost,
    to: &crate::host::SshHost,
    run: &RunEnv,
) -> Session {
    let mut relay = nix_new_style("copy");
    relay.extend(req.nix.for_command(NixCommand::Copy));
    relay.extend([
        "--no-check-sigs".into(),
        "--from".into(),
        builder.store_uri(),
        "--to".into(),
        to.store_uri(),
    ]);
    let mut relay: Vec<Word> = relay.into_iter().map(Word::Lit).collect();
    relay.push(Word::var(Var::System, ""));
    let mut relay = Command::new(relay);
    relay.env = Env::Inherit(vec![("NIX_SSHOPTS".into(), run.nix_sshopts.into())]);
    let mut fallback = local(StepKind::Copy, relay);
    fallback.steps[0].message = Some(format!(
        "{} could not copy to {} itself; relaying the closure through this machine",
        builder.dest, to.dest
    ));
    Session {
        host: Host::Ssh(builder.clone()),
        elevation: Elevation::None,
        steps: vec![Step {
            kind: StepKind::Copy,
            message: None,
            commands: vec![copy_command(req, "--to", to, Var::System)],
            capture: None,
        }],
        fallback: Some(Box::new(fallback)),
    }
}
