//! What rb shows while it runs (README, "Progress"): the live status area on a terminal
//! (`script` gives rb a pseudo-terminal), plain lines when piped, the summary line, `--ask`.
//! Assertions are on rb's own words, never on one Nix version's.

use crate::fleet::{Fleet, RB, RunCall, RunResult};

const WS: &str = "ws";
const T: &str = "aquamarine";
const B: &str = "builder";

/// rb with `args` on a terminal of the workstation; what it wrote there is in `stdout`
/// (a terminal has one output), `input` typed in.
fn on_terminal(f: &Fleet, args: &[&str], input: Option<&str>) -> RunResult {
    let line = std::iter::once(RB.to_string())
        .chain(args.iter().map(|a| format!("'{a}'")))
        .collect::<Vec<_>>()
        .join(" ");
    f.run(
        WS,
        RunCall {
            argv: &["script", "-qec", &line, "/dev/null"],
            env: vec![("TERM".into(), "xterm".into())],
            stdin: input.map(String::from),
            cwd: Some(f.workdir()),
            ..Default::default()
        },
    )
}

/// `rb switch --flake FLAKE` and `extra` on a terminal, deploying to every one of `dests`.
fn switch_on_terminal(f: &Fleet, flake: &str, dests: &[&str], extra: &[&str]) -> RunResult {
    let mut args = vec!["switch", "--flake", flake];
    for d in dests {
        args.extend(["--target-host", d]);
    }
    args.extend_from_slice(extra);
    on_terminal(f, &args, None)
}

#[test]
fn a_big_deploy_shows_live_progress_on_a_terminal() {
    let f = Fleet::up(&[WS, T]);
    f.knob(T, "closurePaths", "300");
    f.knob(T, "closurePathKiB", "1");
    let target = format!("root@{T}");
    let r = on_terminal(
        &f,
        &["switch", "--flake", &f.flake(T), "--target-host", &target],
        None,
    );
    r.assert_success();
    let out = &r.stdout;
    assert!(out.contains('\x1b'), "the area is drawn: {r:?}");
    let copied = lines(out)
        .into_iter()
        .find(|l| l.starts_with("rb: copy on local done in "))
        .unwrap_or_else(|| panic!("{r:?}"));
    // "(copied 304 of 304 paths…)": the closure and the system's own paths, as the area
    // counted them.
    let n = count_after(&copied, "(copied ");
    assert!(n >= 300, "{copied}");
    assert!(
        copied.contains(&format!("copied {n} of {n} paths")),
        "{copied}"
    );
    assert!(!out.contains("copying path"), "{r:?}");
    assert!(
        lines(out).iter().any(|l| l.starts_with(&format!(
            "rb: switch on {target}: generation 1, /nix/store/"
        ))),
        "the summary line: {r:?}"
    );
}

/// What the terminal shows in the end: lines without escape sequences, each line as its
/// last redraw left it.
fn lines(out: &str) -> Vec<String> {
    // A redraw clears its line first (`ESC [2K`): what follows is the line's new text.
    let plain = rb::progress::live::strip_escapes(&out.replace("\x1b[2K", "\r"));
    plain
        .split('\n')
        .map(|l| {
            let l = l.trim_end_matches('\r');
            l.rsplit('\r').next().unwrap_or(l).trim().to_string()
        })
        .collect()
}

/// The number right after `after` in `line`.
fn count_after(line: &str, after: &str) -> u64 {
    let rest = &line[line.find(after).map_or(0, |i| i + after.len())..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_failed_build_shows_its_last_lines_and_one_error() {
    let f = Fleet::up(&[WS]);
    f.knob(WS, "failBuild", "true");
    let r = on_terminal(&f, &["build", "--flake", &f.flake(WS)], None);
    assert_ne!(r.status, 0, "{r:?}");
    let out = lines(&r.stdout);
    // The builder's last words (the fleet's), whether Nix's error or rb shows them.
    assert!(
        out.iter()
            .any(|l| l.contains("failed on purpose (knob failBuild)")),
        "{r:?}"
    );
    assert!(
        out.iter()
            .any(|l| l.starts_with("rb: build on local failed (exit status ")),
        "{r:?}"
    );
    let errors: Vec<_> = out.iter().filter(|l| l.starts_with("rb: error:")).collect();
    assert_eq!(errors.len(), 1, "{r:?}");
    assert!(!out.iter().any(|l| l.starts_with("@nix")), "{r:?}");
}

#[test]
fn a_build_on_a_build_host_shows_progress() {
    let f = Fleet::up(&[WS, B, T]);
    let target = format!("root@{T}");
    let r = on_terminal(
        &f,
        &[
            "switch",
            "--flake",
            &f.flake(T),
            "--build-host",
            B,
            "--target-host",
            &target,
        ],
        None,
    );
    r.assert_success();
    let out = lines(&r.stdout);
    let built = out
        .iter()
        .find(|l| l.starts_with("rb: build on builder done in "))
        .unwrap_or_else(|| panic!("{r:?}"));
    let n = count_after(built, "(built ");
    assert!(n >= 1 && built.contains(" derivation"), "{built}");
    assert!(
        out.iter()
            .any(|l| l.starts_with("rb: copy on builder done in ") && l.contains(" paths")),
        "{r:?}"
    );
    assert!(!out.iter().any(|l| l.starts_with("@nix")), "{r:?}");
}

#[test]
fn piped_output_is_plain_with_one_summary_line() {
    let f = Fleet::up(&[WS, T]);
    let target = format!("root@{T}");
    let r = f.rb(&["switch", "--flake", &f.flake(T), "--target-host", &target]);
    r.assert_success();
    assert!(!r.stderr.contains('\x1b'), "{r:?}");
    assert!(!r.stderr.contains("@nix"), "{r:?}");
    let summary: Vec<_> = r
        .stderr
        .lines()
        .filter(|l| {
            l.starts_with(&format!(
                "rb: switch on {target}: generation 1, /nix/store/"
            ))
        })
        .collect();
    assert_eq!(summary.len(), 1, "{r:?}");
    assert!(summary[0].contains("(build "), "{r:?}");
}

/// `rb switch --ask` of the target's configuration to root@ the target.
fn ask_args(f: &Fleet) -> Vec<String> {
    [
        "switch",
        "--flake",
        &f.flake(T),
        "--target-host",
        &format!("root@{T}"),
        "--ask",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn ask_shows_what_changes_and_yes_goes_on() {
    let f = Fleet::up(&[WS, T]);
    let args = ask_args(&f);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = on_terminal(&f, &args, Some("y\n"));
    r.assert_success();
    // The question stays on its line until the answer is typed (here before it was asked).
    let drawn = rb::progress::live::strip_escapes(&r.stdout);
    assert!(
        drawn.contains(&format!("rb: go on with 'switch' on root@{T}? [y/N]")),
        "{r:?}"
    );
    // The package diff, in rb's words: the target runs no system yet.
    assert!(drawn.contains("nothing to compare with"), "{r:?}");
    assert_eq!(
        f.current_generation(T, crate::fleet::SYSTEM_PROFILE),
        Some(1)
    );
    // Once the target runs a system, the diff made before the copy compares with it.
    f.knob(T, "closurePaths", "3");
    let r = on_terminal(&f, &args, Some("y\n"));
    r.assert_success();
    let drawn = rb::progress::live::strip_escapes(&r.stdout);
    assert!(drawn.contains("<<< /nix/store/"), "{r:?}");
    assert!(drawn.contains("Added packages:"), "{r:?}");
    assert_eq!(
        f.current_generation(T, crate::fleet::SYSTEM_PROFILE),
        Some(2)
    );
}

#[test]
fn ask_answered_no_leaves_the_target_alone() {
    let f = Fleet::up(&[WS, T]);
    let args = ask_args(&f);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = on_terminal(&f, &args, Some("n\n"));
    r.assert_status(12);
    assert_eq!(f.current_generation(T, crate::fleet::SYSTEM_PROFILE), None);
    // Asked before the copy: nothing went to the target.
    assert!(f.activations(T).is_empty(), "{r:?}");
    let system = f.rb(&["build", "--flake", &f.flake(T)]);
    system.assert_success();
    assert!(!f.has_path(T, system.stdout_trimmed()), "{r:?}");
    let drawn = rb::progress::live::strip_escapes(&r.stdout);
    assert!(
        drawn.contains(&format!(
            "rb: error: not changing root@{T}: the answer was no"
        )),
        "{r:?}"
    );
}

#[test]
fn ask_without_a_terminal_needs_yes() {
    let f = Fleet::up(&[WS, T]);
    let args = ask_args(&f);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = f.rb(&args);
    r.assert_status(2);
    assert!(
        r.stderr.contains("rb: error: --ask needs a terminal"),
        "{r:?}"
    );
    assert_eq!(f.current_generation(T, crate::fleet::SYSTEM_PROFILE), None);
    // With --yes: what changes is shown, and the run goes on.
    let mut with_yes = args.clone();
    with_yes.push("--yes");
    let r = f.rb(&with_yes);
    r.assert_success();
    let actions: Vec<String> = f.activations(T).into_iter().map(|a| a.action).collect();
    assert_eq!(actions, ["dry-activate", "switch"], "{r:?}");
    // A local target the same way.
    let r = f.rb(&["switch", "--flake", &f.flake(WS), "--ask", "--yes"]);
    r.assert_success();
    let actions: Vec<String> = f.activations(WS).into_iter().map(|a| a.action).collect();
    assert_eq!(actions, ["dry-activate", "switch"], "{r:?}");

    assert!(!r.stderr.contains("[y/N]"), "{r:?}");
    assert_eq!(
        f.current_generation(T, crate::fleet::SYSTEM_PROFILE),
        Some(1)
    );
}

#[test]
fn nix_output_asked_for_gives_plain_lines_on_a_terminal() {
    let f = Fleet::up(&[WS]);
    for asked in ["--log-format=bar-with-logs", "-L"] {
        let r = on_terminal(&f, &["build", "--flake", &f.flake(WS), asked], None);
        r.assert_success();
        let out = lines(&r.stdout);
        // rb's own start line, which the status area would have replaced.
        assert!(
            out.iter().any(|l| l == "rb: build on local"),
            "{asked}: {r:?}"
        );
        assert!(!r.stdout.contains("@nix {"), "{asked}: {r:?}");
    }
}

/// What the area's line of `dest` said, frame after frame, in `text` (the terminal's output
/// without escape sequences): the text after `dest` each time it starts a line, up to the end
/// of that line. (The area writes its lines one after the other, each filled with spaces to
/// the terminal's width, so a frame is no line of `text`.)
fn states_of(text: &str, dest: &str) -> Vec<String> {
    text.match_indices(dest)
        .filter_map(|(i, _)| {
            let rest = &text[i + dest.len()..];
            // Not "rb: root@a: …" (a line above the area) nor another target's name.
            rest.starts_with(' ').then(|| {
                let line = rest.trim_start();
                line[..line.find(['\n', '\r']).unwrap_or(line.len())]
                    .trim_end()
                    .to_string()
            })
        })
        .collect()
}

#[test]
fn several_targets_show_a_line_each_with_its_state_then_its_result() {
    const B2: &str = "beryl";
    let f = Fleet::up(&[WS, T, B2]);
    for host in [T, B2] {
        // Long enough for the area to draw each state (at most 20 frames a second): a build
        // of a second, a copy of 100 paths, an activation of a second.
        f.knob(host, "buildSeconds", "1");
        f.knob(host, "closurePaths", "100");
        f.knob(host, "closurePathKiB", "1");
        f.knob(host, "activationSeconds", "1");
    }
    f.knob(B2, "activationExit", "4");
    let (ra, rb_) = (format!("root@{T}"), format!("root@{B2}"));
    let config = f.config_dir();
    let r = switch_on_terminal(&f, config.to_str().unwrap(), &[&ra, &rb_], &[]);
    r.assert_status(4);
    assert!(r.stdout.contains('\x1b'), "the area is drawn: {r:?}");
    let text = rb::progress::live::strip_escapes(&r.stdout);
    let table = text
        .find("rb: 1 of 2 targets deployed:")
        .unwrap_or_else(|| panic!("the summary table stays: {r:?}"));
    let (area, rest) = text.split_at(table);
    for dest in [&ra, &rb_] {
        let states = states_of(area, dest);
        // Its line, keyed by the target (the copies all run on local), in each state.
        for state in [
            "connecting",
            "waiting for the build",
            "copy on local",
            "activate",
        ] {
            assert!(
                states.iter().any(|s| s.starts_with(state)),
                "{dest}: '{state}' never drawn: {states:#?}\n{r:?}"
            );
        }
        // The area's last frame stays above the table: the target's result.
        let last = states.last().unwrap_or_else(|| panic!("{r:?}"));
        let result = match dest == &ra {
            true => "deployed: generation 1 in ",
            false => "failed (exit status 4): ",
        };
        assert!(last.starts_with(result), "{dest}: {last}\n{r:?}");
        assert!(
            rest.lines()
                .any(|l| l.trim_start().starts_with(dest.as_str())),
            "{dest}'s summary row: {r:?}"
        );
    }
    // The build's own line in the area (not only its line above it), once for all.
    assert!(
        area.match_indices("build on local")
            .any(|(i, _)| !area[..i].ends_with("rb: ")),
        "{r:?}"
    );
    // Each target's phases above the area, as piped, and the run's error after the table.
    let said = lines(&r.stdout);
    for line in [
        format!("rb: {ra}: copy on local done in "),
        format!("rb: {rb_}: activate on {rb_} failed (exit status 4)"),
        format!("rb: error: 1 of 2 targets were not deployed: {rb_}"),
    ] {
        assert!(said.iter().any(|l| l.starts_with(&line)), "{line}: {r:?}");
    }
    assert!(!r.stdout.contains("@nix"), "{r:?}");
    assert_eq!(f.generations(T, crate::fleet::SYSTEM_PROFILE), [1]);
}

/// With `--max-parallel 1` the second target's line says it waits its turn, and magic
/// rollback's wait for the confirmation shows as the first target's `confirm`.
#[test]
fn several_targets_show_their_turn_and_the_confirmation() {
    const B2: &str = "beryl";
    let f = Fleet::up(&[WS, T, B2]);
    for host in [T, B2] {
        // A second of activation: long enough for the area to draw the waiting target.
        f.knob(host, "activationSeconds", "1");
    }
    let (ra, rb_) = (format!("root@{T}"), format!("root@{B2}"));
    let config = f.config_dir();
    let extra = ["--max-parallel", "1", "--confirm-timeout", "30"];
    let r = switch_on_terminal(&f, config.to_str().unwrap(), &[&ra, &rb_], &extra);
    r.assert_success();
    let text = rb::progress::live::strip_escapes(&r.stdout);
    let waited = states_of(&text, &rb_);
    assert!(
        waited
            .iter()
            .any(|s| s.starts_with("waiting: at most 1 at once (--max-parallel)")),
        "{waited:#?}\n{r:?}"
    );
    let first = states_of(&text, &ra);
    assert!(
        first.iter().any(|s| s.starts_with("confirm")),
        "{first:#?}\n{r:?}"
    );
    for host in [T, B2] {
        assert_eq!(f.generations(host, crate::fleet::SYSTEM_PROFILE), [1]);
    }
}

/// With the configuration named (`FLAKE#name`) the targets connect while the build runs, and
/// a target that cannot be reached says so on its line at once, not after the build.
#[test]
fn an_unreachable_target_says_so_while_the_build_runs() {
    let f = Fleet::up(&[WS, T]);
    f.knob(T, "buildSeconds", "3");
    let (ra, gone) = (format!("root@{T}"), "root@no-such-host.invalid");
    let r = switch_on_terminal(&f, &f.flake(T), &[&ra, gone], &[]);
    r.assert_status(255);
    let text = rb::progress::live::strip_escapes(&r.stdout);
    let said = text
        .find(&format!("{gone} unreachable (exit status 255)"))
        .unwrap_or_else(|| panic!("{r:?}"));
    let built = text
        .find("build on local done")
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(said < built, "{r:?}");
    assert_eq!(f.generations(T, crate::fleet::SYSTEM_PROFILE), [1]);
}
