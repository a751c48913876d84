//! `--ask` (README, "Progress"): the plan's preview session (`planner/activate.rs`,
//! `preview`) showed what changes on the target; here rb asks on the terminal whether to go
//! on. No leaves the target's profile and running system as they were (exit status 12,
//! `error::exit::DECLINED`).

use crate::error::{Error, Result};
use crate::plan::{Plan, StepKind};
use crate::report::Report;
use crate::request::Request;
use std::io::{IsTerminal, Write};

/// `--ask` needs someone to answer: stdin and stderr a terminal, or `--yes`.
pub fn check(req: &Request) -> Result<()> {
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    match req.ask && !req.ask_yes && !terminal {
        true => Err(Error::Usage(
            "--ask needs a terminal to answer on; add --yes to show what changes and go on".into(),
        )),
        false => Ok(()),
    }
}

/// Asks whether to go on with the plan's action on its target (the host that activates; the
/// preview may have run elsewhere, before a copy); anything but yes is [`Error::Declined`].
pub fn confirm(report: &Report, plan: &Plan) -> Result<()> {
    let action = plan.action;
    let host = plan
        .sessions
        .iter()
        .find(|s| s.steps.iter().any(|s| s.kind == StepKind::Activate))
        .map(|s| s.host.to_string())
        .ok_or_else(|| Error::Internal("--ask in a plan that activates nothing".into()))?;
    if let Some(live) = report.live() {
        live.clear();
    }
    eprint!(
        "{}: go on with '{}' on {host}? [y/N] ",
        report.program,
        action.name()
    );
    let _ = std::io::stderr().flush();
    let line = crate::password::read_line_interruptibly("the answer")?;
    match line.as_deref().map(answer) {
        Some(true) => Ok(()),
        Some(false) => Err(Error::Declined {
            host: host.clone(),
            why: "the answer was no".into(),
        }),
        None => {
            eprintln!();
            Err(Error::Declined {
                host: host.clone(),
                why: "the input ended before an answer".into(),
            })
        }
    }
}

/// Whether `line` says yes: `y` or `yes`, in any case.
fn answer(line: &str) -> bool {
    matches!(line.trim().to_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_is_yes() {
        for yes in ["y\n", "Y", " yes ", "YES\r\n"] {
            assert!(answer(yes), "{yes:?}");
        }
        for no in ["", "\n", "n", "no", "yep", "ja"] {
            assert!(!answer(no), "{no:?}");
        }
    }
}
