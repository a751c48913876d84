//! `--json`: one document on stdout for every action, on success and on failure; progress
//! lines on stderr, without control characters when piped.

use crate::fleet::{Fleet, RbCall};
use serde_json::Value;

const WS: &str = "ws";
const T: &str = "aquamarine";

fn doc(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not one JSON document ({e}): {stdout}"))
}

#[test]
fn every_action_reports_one_document() {
    let f = Fleet::up(&[WS]);
    for (action, activates, sets_profile, has_path) in [
        ("switch", true, true, true),
        ("boot", true, true, true),
        ("test", true, false, true),
        ("dry-activate", true, false, true),
        ("build", false, false, true),
        ("dry-build", false, false, false),
        ("build-vm", false, false, true),
        ("build-vm-with-bootloader", false, false, true),
    ] {
        let r = f.rb(&[action, "--flake", &f.flake(WS), "--json"]);
        r.assert_success();
        let d = doc(&r.stdout);
        assert_eq!(d["version"], 1, "{action}");
        assert_eq!(d["action"], action);
        assert_eq!(d["success"], true);
        assert_eq!(d["targetHost"], "local");
        assert_eq!(d["error"], Value::Null);
        assert_eq!(d["storePath"].is_string(), has_path, "{action}: {d}");
        assert_eq!(d["activation"]["ran"] == true, activates, "{action}: {d}");
        assert_eq!(d["generation"].is_u64(), sets_profile, "{action}: {d}");
        let steps = d["steps"].as_array().unwrap();
        assert_eq!(steps[0]["step"], "build", "{action}: {d}");
        assert!(
            steps
                .iter()
                .all(|s| s["seconds"].is_f64() && s["status"] == 0)
        );
    }
}

#[test]
fn the_other_actions_report_too() {
    let f = Fleet::up(&[WS]);
    // Actions that deploy nothing: one document each, without a store path where nothing
    // was built.
    for (args, built) in [
        (vec!["build-image", "--image-variant", "iso"], true),
        (vec!["edit"], false),
        (vec!["repl"], false),
    ] {
        let flake = f.flake(WS);
        let mut all = args.clone();
        all.extend(["--flake", &flake, "--json"]);
        let r = f.rb_with(RbCall {
            args: &all,
            env: vec![("EDITOR".into(), "true".into())],
            ..Default::default()
        });
        r.assert_success();
        let d = doc(&r.stdout);
        assert_eq!(d["action"], args[0], "{r:?}");
        assert_eq!(d["success"], true);
        assert_eq!(d["storePath"].is_string(), built, "{d}");
        assert!(!d["steps"].as_array().unwrap().is_empty());
    }
    // list-generations --json keeps nixos-rebuild's own format: a list of generations.
    f.seed_generation(WS, WS);
    let r = f.rb(&["list-generations", "--json"]);
    r.assert_success();
    assert_eq!(doc(&r.stdout)[0]["generation"], 1);
}

#[test]
fn a_failure_names_the_step_and_its_status() {
    let f = Fleet::up(&[WS, T]);
    f.knob(T, "activationExit", "4");
    let r = f.rb(&[
        "switch",
        "--flake",
        &f.flake(T),
        "--target-host",
        T,
        "--json",
    ]);
    r.assert_status(4);
    let d = doc(&r.stdout);
    assert_eq!(d["success"], false);
    assert_eq!(d["error"]["step"], "activate");
    assert_eq!(d["error"]["host"], T);
    assert_eq!(d["error"]["status"], 4);
    assert_eq!(d["activation"]["status"], 4);
    assert_eq!(d["generation"], Value::Null, "the profile was put back");
    assert!(r.stderr.contains("rb: error:"), "{r:?}");
}

#[test]
fn progress_lines_are_plain_when_piped() {
    let f = Fleet::up(&[WS, T]);
    let r = f.rb_with(RbCall {
        args: &["switch", "--flake", &f.flake(T), "--target-host", T],
        ..Default::default()
    });
    r.assert_success();
    for line in [
        "rb: build on local",
        "rb: copy on local",
        "rb: activate on aquamarine",
    ] {
        assert!(r.stderr.lines().any(|l| l == line), "{line:?}: {r:?}");
    }
    assert!(
        r.stderr
            .lines()
            .any(|l| l.starts_with("rb: activate on aquamarine done in ")),
        "{r:?}"
    );
    assert!(!r.stderr.contains('\x1b'), "no escape sequences when piped");
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let f = Fleet::up(&[WS]);
    // `script` gives rb a terminal for stdout and stderr.
    let line = format!("{} build --flake '{}'", crate::fleet::RB, f.flake(WS));
    let on_tty = |env: Vec<(String, String)>| {
        f.run(
            WS,
            crate::fleet::RunCall {
                argv: &["script", "-qec", &line, "/dev/null"],
                env,
                cwd: Some(f.workdir()),
                ..Default::default()
            },
        )
    };
    let r = on_tty(vec![]);
    r.assert_success();
    assert!(
        r.stdout.contains("\x1b[1;34mrb:\x1b[0m build on local"),
        "rb's own colour on a terminal: {r:?}"
    );
    let r = on_tty(vec![("NO_COLOR".into(), "1".into())]);
    r.assert_success();
    assert!(r.stdout.contains("rb: build on local"), "{r:?}");
    assert!(!r.stdout.contains("\x1b["), "NO_COLOR: {r:?}");
}

#[test]
fn a_run_that_fails_before_anything_runs_still_reports() {
    let f = Fleet::up(&[WS]);
    let r = f.rb(&[
        "switch",
        "--flake",
        &f.flake(WS),
        "--target-host",
        "root@no-such-host.invalid",
        "--json",
    ]);
    r.assert_status(255);
    let d = doc(&r.stdout);
    assert_eq!(d["success"], false);
    assert_eq!(d["error"]["status"], 255);
    assert_eq!(d["error"]["hints"], serde_json::json!([]), "{d}");
    assert!(
        d["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-host.invalid"),
        "{d}"
    );
}
