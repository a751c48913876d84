//! Copying closures between hosts (README, "Copies").
//!
//! A plain `[user@]host` gets `nix copy` over `ssh-ng://` (the remote `nix-daemon --stdio`,
//! through the run's master connection): it asks once which paths the destination lacks and
//! streams them, so its round trips do not grow with the closure. `nix-copy-closure` (the
//! legacy `ssh://` protocol, one or two round trips per path) is its fallback, for a remote
//! side that cannot do that (no `nix-daemon` on its PATH). What the user wrote as `ssh://host`
//! or `ssh-ng://host` is used as written, without a fallback.
//!
//! Copies *from* a plain host are one SSH session of `scripts/copy-from.sh`: the host lists the
//! closure, this machine answers with what it lacks, and the host streams exactly that
//! (`nix-store --export` into `nix-store --import`). `nix copy --from ssh-ng://` would ask for
//! every path on its own, so it is no faster than `nix-copy-closure --from`, which stays the
//! fallback (README, "Copies").

use super::*;
use crate::host::SshHost;
use crate::shell;

/// This machine's half of a copy from a host (see the module's doc).
pub(super) const COPY_FROM_SCRIPT: &str = include_str!("../scripts/copy-from.sh");

/// The host's half, which `COPY_FROM_SCRIPT` runs there over ssh.
pub(super) const EXPORT_CLOSURE_SCRIPT: &str = include_str!("../scripts/export-closure.sh");

/// Nix's options for a copy: the user's, and rb's own
/// ([`NixArgs::rb_log_options`](crate::cli::NixArgs): `--quiet`, and Nix's `internal-json` log
/// when rb draws progress).
fn copy_options(req: &Request, cmd: NixCommand, progress: bool) -> impl Iterator<Item = Word> {
    let quiet = req.nix.rb_log_options(progress);
    req.nix
        .for_command(cmd)
        .into_iter()
        .chain(quiet)
        .map(Word::Lit)
}

/// `nix-copy-closure --to|--from HOST PATH`: the legacy protocol, one or two round trips per
/// store path, on every Nix.
fn legacy(
    req: &Request,
    direction: &str,
    host: &SshHost,
    what: Var,
    on: Nix,
    progress: bool,
) -> Command {
    let mut argv = vec![Word::lit("nix-copy-closure")];
    argv.extend(copy_options(req, NixCommand::CopyClosure, progress));
    argv.extend([
        Word::lit(direction),
        Word::lit(host.legacy_dest(on == Nix::Known(true))),
        Word::var(what, ""),
    ]);
    Command::new(argv)
}

/// What is known of the Nix that runs a legacy copy: whether it wants an IPv6 host in
/// brackets ([`NixCaps::brackets_ipv6_hosts`]). A build host's Nix is not asked, so its legacy
/// copy gets the bare form; when that fails there, the relay through this machine follows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Nix {
    Known(bool),
    Unknown,
}

impl Nix {
    pub(super) fn local(caps: &NixCaps) -> Self {
        Nix::Known(caps.brackets_ipv6_hosts())
    }
}

/// `nix copy` between stores given as `--from`/`--to` URIs.
fn nix_copy(req: &Request, stores: &[(&str, String)], what: Var, progress: bool) -> Command {
    let mut argv: Vec<Word> = nix_new_style("copy").into_iter().map(Word::Lit).collect();
    argv.extend(copy_options(req, NixCommand::Copy, progress));
    // Like nix-copy-closure: a closure we built ourselves needs no signature; the
    // destination honours this only for trusted users, so the trust rules stay Nix's own.
    argv.push(Word::lit("--no-check-sigs"));
    if what == Var::Drv {
        // The derivation's closure itself: Nix 2.8 would otherwise build it here and copy
        // its outputs; newer Nix reads a `.drv` path this way anyway.
        argv.push(Word::lit("--derivation"));
    }
    for (direction, uri) in stores {
        argv.extend([Word::lit(*direction), Word::lit(uri)]);
    }
    argv.push(Word::var(what, ""));
    Command::new(argv)
}

/// Whether copies to `host` stream over `ssh-ng://`.
fn streams_to(host: &SshHost) -> bool {
    host.scheme == "ssh-ng" || !host.scheme_given
}

/// A session of one copy step on `on`, saying `message` when it starts.
fn copy_session(on: &Host, command: Command, message: Option<String>) -> Session {
    let mut session = local(StepKind::Copy, command);
    session.host = on.clone();
    session.steps[0].message = message;
    session.steps[0].output = Output::CopyLog;
    session
}

/// The copy of `what` to `to`, run on `on` (with `env`): streamed, with today's legacy copy
/// as its fallback for a plain host; then `then`, if given, as the last resort. `nix`: what is
/// known of the copying side's Nix; `progress`: it writes its log for rb's status area.
fn copy_to_from(
    req: &Request,
    on: &Host,
    to: &SshHost,
    what: Var,
    env: &Env,
    then: Option<Session>,
    (nix, progress): (Nix, bool),
) -> Session {
    let with_env = |mut c: Command| {
        c.env = env.clone();
        c
    };
    if !streams_to(to) {
        let mut session = copy_session(
            on,
            with_env(legacy(req, "--to", to, what, nix, progress)),
            None,
        );
        session.fallback = then.map(Box::new);
        return session;
    }
    let streamed = with_env(nix_copy(
        req,
        &[("--to", to.streamed_uri())],
        what,
        progress,
    ));
    let mut session = copy_session(on, streamed, None);
    session.fallback = match to.scheme_given {
        true => then.map(Box::new),
        false => {
            let mut fallback = copy_session(
                on,
                with_env(legacy(req, "--to", to, what, nix, progress)),
                Some(format!(
                    "the streamed copy to {} failed; copying with nix-copy-closure instead \
                     (one round trip per store path)",
                    to.dest
                )),
            );
            fallback.fallback = then.map(Box::new);
            Some(Box::new(fallback))
        }
    };
    session
}

fn nix_sshopts(run: &RunEnv) -> Env {
    Env::Inherit(vec![("NIX_SSHOPTS".into(), run.nix_sshopts.into())])
}

/// From this machine to `to`: the system, or the derivation for a build host.
pub(super) fn copy_to(
    req: &Request,
    to: &SshHost,
    what: Var,
    run: &RunEnv,
    caps: &NixCaps,
) -> Session {
    copy_to_from(
        req,
        &Host::Local,
        to,
        what,
        &nix_sshopts(run),
        None,
        (Nix::local(caps), run.progress),
    )
}

/// From the build host to this machine: for a plain host one streamed session
/// (`COPY_FROM_SCRIPT`), with `nix-copy-closure --from` as its fallback; what the user wrote
/// as `ssh://` or `ssh-ng://` is used as written.
pub(super) fn copy_from(req: &Request, from: &SshHost, run: &RunEnv, caps: &NixCaps) -> Session {
    let env = nix_sshopts(run);
    let with_env = |mut c: Command| {
        c.env = env.clone();
        c
    };
    let legacy = with_env(legacy(
        req,
        "--from",
        from,
        Var::System,
        Nix::local(caps),
        run.progress,
    ));
    match (from.scheme.as_str(), from.scheme_given) {
        ("ssh-ng", true) => copy_session(
            &Host::Local,
            with_env(nix_copy(
                req,
                &[("--from", from.store_uri())],
                Var::System,
                run.progress,
            )),
            None,
        ),
        (_, true) => copy_session(&Host::Local, legacy, None),
        (_, false) => {
            let remote = shell::join(&["sh", "-c", EXPORT_CLOSURE_SCRIPT, "rb-export-closure"]);
            let streamed = Command::new(vec![
                Word::lit("sh"),
                Word::lit("-c"),
                Word::lit(COPY_FROM_SCRIPT),
                Word::lit("rb-copy-from"),
                Word::lit(&from.dest),
                Word::Lit(remote),
                Word::var(Var::System, ""),
            ]);
            let mut session = copy_session(&Host::Local, with_env(streamed), None);
            session.fallback = Some(Box::new(copy_session(
                &Host::Local,
                legacy,
                Some(format!(
                    "the streamed copy from {} failed; copying with nix-copy-closure instead \
                     (one round trip per store path)",
                    from.dest
                )),
            )));
            session
        }
    }
}

/// From the builder straight to the target, over the builder's own SSH access; when the
/// builder cannot reach the target, relay through this machine.
pub(super) fn copy_between(
    req: &Request,
    builder: &SshHost,
    to: &SshHost,
    run: &RunEnv,
) -> Session {
    let mut relay = nix_copy(
        req,
        &[("--from", builder.store_uri()), ("--to", to.store_uri())],
        Var::System,
        run.progress,
    );
    relay.env = nix_sshopts(run);
    let relay = copy_session(
        &Host::Local,
        relay,
        Some(format!(
            "{} could not copy to {} itself; relaying the closure through this machine",
            builder.dest, to.dest
        )),
    );
    copy_to_from(
        req,
        &Host::Ssh(builder.clone()),
        to,
        Var::System,
        &Env::Inherit(Vec::new()),
        Some(relay),
        (Nix::Unknown, run.progress),
    )
}
