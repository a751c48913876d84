//! Progress of the Nix commands a run starts, here or on a host: Nix's
//! `--log-format internal-json` events ([`nixlog`]), what they add up to ([`state`]), and the
//! live status area on a terminal that shows it ([`live`]); the run's one summary line
//! ([`summary`]).

pub mod ask;
pub mod live;
pub mod nixlog;
pub mod state;
pub mod summary;

use crate::cli::{Action, Cli, NixArgs};
use std::collections::BTreeMap;
use std::io::IsTerminal;

/// Whether rb draws the live status area: stderr is a terminal that can move its cursor
/// (not `TERM=dumb`), and the user asked for none of Nix's own output (`-v`, `-L`,
/// `--quiet`, `--log-format`: [`NixArgs::quiet_by_default`]), nor for rb's debug lines;
/// and not with `NO_COLOR`, which asks for output without escape sequences (issue 13 lists
/// it with a pipe and `--log-format`); nor for `edit` and `repl`, whose command has the
/// terminal. Otherwise rb prints plain lines, one per phase.
pub fn drawn(cli: &Cli, env: &BTreeMap<String, String>) -> bool {
    let (nix, debug): (&NixArgs, bool) = (&cli.nix, cli.output.debug);
    !matches!(cli.action, Some(Action::Edit | Action::Repl))
        && std::io::stderr().is_terminal()
        && env.get("TERM").is_none_or(|t| t != "dumb")
        && env.get("NO_COLOR").is_none_or(|v| v.is_empty())
        && nix.quiet_by_default()
        && !debug
}
