//! Several targets (`--target-host` given more than once): one plan per target, as
//! [`plan`](super::plan) makes it for one, and one build of every configuration in front of
//! them (README, "Several hosts").
//!
//! Each target's plan is planned alone, from its own request, so nothing here assumes one
//! target and nothing in the single-target planner knows about several. What this module does
//! is take the build out of each plan and make it one Nix invocation: `nix build` of every
//! configuration's installable with `--json`, so that shared derivations are built once and
//! the flake is evaluated by one process. Each target's plan then starts at its copy, its
//! `$system` handed to it from the build's `$systems` (`several.rs` at the top level runs it).

use super::*;

/// The plans of a run with several targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Several {
    /// The one build of every configuration, on this machine; None when nothing is built
    /// (`--store-path`, whose path every plan has as an input).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<Session>,
    /// Each target's plan without the build, in the order the targets were given.
    pub plans: Vec<Plan>,
    /// For each plan, which line of the build's `$systems` is its `$system`; empty when the
    /// build yields `$system` itself (every target gets the same configuration).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system_of: Vec<usize>,
}

/// Whether `session` is a plan's build on this machine (what `deploy` makes with `build`).
fn is_build(session: &Session) -> bool {
    session.host.is_local() && session.steps.iter().any(|s| s.kind == StepKind::Build)
}

/// Takes the build out of each target's plan (`plans`, made by [`plan`] from each target's
/// request) and makes it one.
pub fn several(mut plans: Vec<Plan>) -> Result<Several> {
    let mut builds = Vec::new();
    for plan in &mut plans {
        let (build, rest): (Vec<Session>, Vec<Session>) =
            plan.sessions.drain(..).partition(is_build);
        plan.sessions = rest;
        builds.push(build);
    }
    if builds.iter().all(Vec::is_empty) {
        return Ok(Several {
            build: None,
            plans,
            system_of: Vec::new(),
        });
    }
    let builds: Vec<Session> = builds
        .into_iter()
        .map(|mut b| match b.len() {
            1 => Ok(b.remove(0)),
            _ => Err(Error::Internal(
                "a target's plan does not have exactly one build".into(),
            )),
        })
        .collect::<Result<_>>()?;
    // The same configuration for every target (`--flake FLAKE#name`, `-f`, `<nixpkgs/nixos>`):
    // that build as it is, its `$system` for all.
    if builds.iter().all(|b| b == &builds[0]) {
        return Ok(Several {
            build: builds.into_iter().next(),
            plans,
            system_of: Vec::new(),
        });
    }
    combine(&builds).map(|(build, system_of)| Several {
        build: Some(build),
        plans,
        system_of,
    })
}

/// One `nix build --json` of every configuration's installable (each once) from builds that
/// differ only in it (a flake's configurations named after each target's host name).
fn combine(builds: &[Session]) -> Result<(Session, Vec<usize>)> {
    let argv = |b: &Session| -> Option<Vec<Word>> {
        match b.steps.as_slice() {
            [step] if step.capture == Some(Capture::BuildJson) && step.commands.len() == 1 => {
                Some(step.commands[0].argv.clone())
            }
            _ => None,
        }
    };
    let differ =
        || Error::Internal("the targets' builds differ in more than the configuration".into());
    let first = argv(&builds[0]).ok_or_else(differ)?;
    let others: Vec<Vec<Word>> = builds
        .iter()
        .map(|b| argv(b).ok_or_else(differ))
        .collect::<Result<_>>()?;
    // The installable is the one word in which the builds differ.
    let at = (0..first.len())
        .find(|&i| others.iter().any(|o| o.get(i) != first.get(i)))
        .ok_or_else(differ)?;
    let mut installables: Vec<Word> = Vec::new();
    let mut system_of = Vec::new();
    for o in &others {
        let same_elsewhere =
            o.len() == first.len() && (0..first.len()).all(|i| i == at || o[i] == first[i]);
        if !same_elsewhere {
            return Err(differ());
        }
        let n = match installables.iter().position(|w| w == &o[at]) {
            Some(n) => n,
            None => {
                installables.push(o[at].clone());
                installables.len() - 1
            }
        };
        system_of.push(n);
    }
    let mut words = first[..at].to_vec();
    words.extend(installables);
    words.extend_from_slice(&first[at + 1..]);
    let mut build = builds[0].clone();
    let step = &mut build.steps[0];
    step.commands[0].argv = words;
    step.capture = Some(Capture::BuildJsonAll);
    step.message = Some("building the system configurations...".into());
    Ok((build, system_of))
}

impl fmt::Display for Several {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = self.plans.first().map_or("", |p| p.action.name());
        writeln!(f, "plan for '{action}' on {} targets:", self.plans.len())?;
        if let Some(build) = &self.build {
            // A plan of the build alone, shown as the plans are.
            let alone = Plan {
                action: self.plans[0].action,
                connect: Vec::new(),
                inputs: Vec::new(),
                sessions: vec![build.clone()],
                confirm: None,
                finish: Finish::Nothing,
            };
            let text = alone.to_string();
            let mut lines: Vec<&str> = text.lines().skip(1).collect();
            lines.pop();
            writeln!(f, "first, one build for every target:")?;
            for line in lines {
                writeln!(f, "{line}")?;
            }
        }
        for (i, plan) in self.plans.iter().enumerate() {
            let host = plan
                .connect
                .first()
                .map_or("?".to_string(), |c| c.host.dest.clone());
            let system = match self.system_of.get(i) {
                Some(n) => format!("line {} of $systems", n + 1),
                None if self.build.is_some() => "the build's $system".to_string(),
                None => "as given".to_string(),
            };
            writeln!(
                f,
                "then, for {host} ($system: {system}), at most --max-parallel targets at once:"
            )?;
            // Its connection opens before the build (every target's at once), and what it
            // prints comes at the end, for all targets.
            let text = plan
                .to_string()
                .replace("opened while building", "opened before the build");
            let mut lines: Vec<&str> = text.lines().skip(1).collect();
            lines.pop();
            for line in lines {
                writeln!(f, "  {line}")?;
            }
        }
        write!(
            f,
            "finally a summary table on stderr, `HOST<TAB>PATH` on stdout for each target deployed"
        )
    }
}

use std::fmt;
