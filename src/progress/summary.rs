//! The run's one summary line (README, "Progress"), on a terminal and piped alike: what the
//! action did to which host, the generation, the store path, and the time of each phase.
//!
//! `rb: switch on root@aquamarine: generation 5, /nix/store/…-nixos-system-aq in 12.3s (build 8.1s, copy 3.0s, activate 1.2s)`

use crate::exec::Record;
use crate::plan::Var;
use std::time::Duration;

/// The line, or None when the run made no system (a dry run, `list-generations`, `edit`).
pub fn line(program: &str, action: &str, target: &str, record: &Record) -> Option<String> {
    let system = record.values.get(&Var::System)?;
    let mut phases: Vec<(&str, Duration)> = Vec::new();
    for step in &record.steps {
        // The steps inside a phase (checking the closure, setting the profile) are left out
        // of the phases' times, as of rb's phase lines, and counted in the total.
        let name = step.kind.name();
        match phases.iter_mut().find(|(n, _)| *n == name) {
            Some((_, d)) if step.kind.is_phase() => *d += step.duration,
            _ if step.kind.is_phase() => phases.push((name, step.duration)),
            _ => {}
        }
    }
    let total: Duration = record.steps.iter().map(|s| s.duration).sum();
    let generation = record
        .values
        .get(&Var::Generation)
        .map(|g| format!("generation {g}, "))
        .unwrap_or_default();
    let times: Vec<String> = phases
        .iter()
        .map(|(n, d)| format!("{n} {}", seconds(*d)))
        .collect();
    Some(format!(
        "{program}: {action} on {target}: {generation}{system} in {}{}",
        seconds(total),
        match times.is_empty() {
            true => String::new(),
            false => format!(" ({})", times.join(", ")),
        }
    ))
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::StepRecord;
    use crate::plan::StepKind;

    fn step(kind: StepKind, ms: u64) -> StepRecord {
        StepRecord {
            kind,
            host: "h".into(),
            duration: Duration::from_millis(ms),
            failed: None,
        }
    }

    #[test]
    fn one_line_with_the_generation_and_each_phase() {
        let mut r = Record::default();
        assert_eq!(line("rb", "switch", "local", &r), None);
        r.values.insert(Var::System, "/nix/store/x-sys".into());
        r.values.insert(Var::Generation, "5".into());
        r.steps = vec![
            step(StepKind::Build, 8100),
            step(StepKind::Copy, 3000),
            step(StepKind::CheckClosure, 10),
            step(StepKind::SetProfile, 20),
            step(StepKind::Activate, 1200),
        ];
        assert_eq!(
            line("rb", "switch", "root@aq", &r).unwrap(),
            "rb: switch on root@aq: generation 5, /nix/store/x-sys in 12.3s \
             (build 8.1s, copy 3.0s, activate 1.2s)"
        );
        r.values.remove(&Var::Generation);
        r.steps.truncate(1);
        assert_eq!(
            line("rb", "build", "local", &r).unwrap(),
            "rb: build on local: /nix/store/x-sys in 8.1s (build 8.1s)"
        );
    }
}
