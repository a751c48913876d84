//! Several targets in one run (`--target-host` given more than once, src/several.rs): one
//! build of every configuration, the targets deployed in parallel, each with its own one SSH
//! connection, a failure stopping only its own target, and the exit status of the first
//! target (in the order given) that was not deployed.

use crate::fleet::{
    DEPLOYPW_PASSWORD, Fleet, RB, RbCall, RunResult, SYSTEM_PROFILE, Sessions, run_command,
};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const WS: &str = "ws";
const A: &str = "aquamarine";
const B: &str = "beryl";
const GONE: &str = "root@no-such-host.invalid";

/// How many build logs on `host` name `needle`: Nix keeps one per derivation it built.
fn build_logs(f: &Fleet, host: &str, needle: &str) -> usize {
    fn walk(dir: &Path, needle: &str) -> usize {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, needle)
                } else {
                    usize::from(e.file_name().to_string_lossy().contains(needle))
                }
            })
            .sum()
    }
    walk(&f.host_path(host, "/nix/var/log/nix/drvs"), needle)
}

fn root(host: &str) -> String {
    format!("root@{host}")
}

/// `args`, then `--target-host DEST` for each of `dests`.
fn with_targets<'a>(args: &[&'a str], dests: &'a [String]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    for d in dests {
        all.extend(["--target-host", d.as_str()]);
    }
    all
}

/// rb with `args` and several targets, `stdin` its input and `env` added to its environment.
fn rb_to(
    f: &Fleet,
    args: &[&str],
    dests: &[String],
    stdin: Option<&str>,
    env: &[(&str, &Path)],
) -> RunResult {
    f.rb_with(RbCall {
        args: &with_targets(args, dests),
        stdin: stdin.map(String::from),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string_lossy().into_owned()))
            .collect(),
        ..Default::default()
    })
}

fn phase_lines(r: &RunResult, phase: &str) -> usize {
    r.stderr.lines().filter(|l| l.starts_with(phase)).count()
}

fn summary_row<'a>(stderr: &'a str, dest: &str) -> &'a str {
    stderr
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{dest} ")))
        .unwrap_or_else(|| panic!("no summary row for {dest}: {stderr}"))
}

#[test]
fn three_targets_one_build_a_failed_activation_and_an_unreachable_host() {
    let f = Fleet::up(&[WS, A, B]);
    f.knob(B, "activationExit", "4");
    // A derivation both configurations have (the fake configurations share none otherwise).
    f.knob(A, "sharedKernel", "true");
    f.knob(B, "sharedKernel", "true");
    let config = f.config_dir();
    let (ra, rb_) = (root(A), root(B));
    let r = rb_to(
        &f,
        &["switch", "--flake", config.to_str().unwrap()],
        &[ra.clone(), rb_.clone(), GONE.to_string()],
        None,
        &[],
    );
    // The first target that was not deployed, in the order given: beryl's activation.
    r.assert_status(4);

    // aquamarine got its own configuration, named after its host name.
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{r:?}");
    let (dest, path) = lines[0].split_once('\t').expect("HOST<TAB>PATH");
    assert_eq!(dest, ra);
    assert!(path.ends_with("-nixos-system-aquamarine-26.05.1"), "{r:?}");
    assert_eq!(f.generations(A, SYSTEM_PROFILE), [1]);
    assert_eq!(f.profile_target(A, SYSTEM_PROFILE).as_deref(), Some(path));
    let a = f.activations(A);
    assert_eq!((a.len(), a[0].action.as_str()), (1, "switch"));

    // beryl's own configuration was activated, failed, and its profile was put back.
    let b = f.activations(B);
    assert_eq!(b.len(), 1, "{r:?}");
    assert!(b[0].toplevel.contains("-nixos-system-beryl-"), "{b:?}");
    assert_eq!(f.current_generation(B, SYSTEM_PROFILE), None, "{r:?}");

    // One evaluation and one build of both configurations, and the derivation they share (the
    // kernel) built once.
    for phase in ["rb: evaluate on local done", "rb: build on local done"] {
        let n = r.stderr.lines().filter(|l| l.starts_with(phase)).count();
        assert_eq!(n, 1, "{phase}: {r:?}");
    }
    assert_eq!(build_logs(&f, WS, "-linux-6.1.0-rb.drv"), 1, "{r:?}");
    assert!(build_logs(&f, WS, "-nixos-system-beryl-") > 0, "built here");

    // Each target as if deployed alone: one connection, its probe, the copy, the activation.
    let one = Sessions {
        connections: 1,
        sessions: 3,
    };
    assert_eq!(f.sessions(A), one);
    assert_eq!(f.sessions(B), one);

    // Each said, then the summary, then one line for the run.
    assert!(
        r.stderr
            .contains("cannot connect to root@no-such-host.invalid"),
        "{r:?}"
    );
    assert!(summary_row(&r.stderr, &ra).contains("deployed"));
    assert!(summary_row(&r.stderr, &rb_).contains("failed (exit status 4)"));
    assert!(summary_row(&r.stderr, GONE).contains("unreachable (exit status 255)"));
    assert!(r.stderr.contains("rb: 1 of 3 targets deployed:"), "{r:?}");
    assert_eq!(
        r.stderr.lines().last(),
        Some("rb: error: 2 of 3 targets were not deployed: root@beryl, root@no-such-host.invalid"),
        "{r:?}"
    );

    // The same run with --json: one document, a member per target in the order given.
    let r = rb_to(
        &f,
        &["test", "--flake", config.to_str().unwrap(), "--json"],
        &[ra.clone(), rb_.clone(), GONE.to_string()],
        None,
        &[],
    );
    r.assert_status(4);
    let d: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    assert_eq!(d["success"], false);
    let t = d["targets"].as_array().unwrap();
    assert_eq!(t.len(), 3);
    assert_eq!(
        (t[0]["targetHost"].clone(), t[0]["success"].clone()),
        (ra.as_str().into(), true.into())
    );
    assert_eq!(t[1]["error"]["step"], "activate", "{d}");
    assert_eq!(t[1]["activation"]["status"], 4);
    // Left out before its plan ran: the short document, naming it.
    assert_eq!(t[2]["targetHost"], GONE);
    assert_eq!(t[2]["error"]["status"], 255);
    assert!(t[2].get("steps").is_none(), "{d}");
}

/// Whether `host` built a configuration named `config` itself (Nix keeps a build log there).
fn built_on(f: &Fleet, host: &str, config: &str) -> bool {
    build_logs(f, host, &format!("-nixos-system-{config}-")) > 0
}

#[test]
fn a_build_host_builds_every_configuration_and_copies_each_to_its_target() {
    let f = Fleet::up(&[WS, "builder", A, B]);
    let (ra, rb_) = (root(A), root(B));
    let r = rb_to(
        &f,
        &[
            "switch",
            "--flake",
            f.config_dir().to_str().unwrap(),
            "--build-host",
            "builder",
        ],
        &[ra.clone(), rb_.clone()],
        None,
        &[],
    );
    r.assert_success();
    for host in [A, B] {
        assert!(built_on(&f, "builder", host), "{host}: {r:?}");
        assert!(!built_on(&f, WS, host) && !built_on(&f, host, host));
        let a = f.activations(host);
        assert_eq!(a.len(), 1, "{r:?}");
        assert!(a[0].toplevel.contains(&format!("-nixos-system-{host}-")));
        assert_eq!(f.generations(host, SYSTEM_PROFILE), [1]);
    }
    // Each target as alone: rb's connection and the builder's, three sessions (probe, the
    // builder's copy, activation). The builder: one connection for the run, its probe, the
    // derivations' copy and the build once, and each target's copy from there (alone: 1
    // connection, 4 sessions).
    for host in [A, B] {
        assert_eq!(
            f.sessions(host),
            Sessions {
                connections: 2,
                sessions: 3
            }
        );
    }
    assert_eq!(
        f.sessions("builder"),
        Sessions {
            connections: 1,
            sessions: 5
        }
    );
    // One evaluation here, the derivations copied once, one build there.
    for phase in ["rb: evaluate on local done", "rb: build on builder done"] {
        let n = r.stderr.lines().filter(|l| l.starts_with(phase)).count();
        assert_eq!(n, 1, "{phase}: {r:?}");
    }
    // One configuration for both: built there as for one target.
    f.knob(A, "rev", "2");
    let r = rb_to(
        &f,
        &["boot", "--flake", &f.flake(A), "--build-host", "builder"],
        &[ra.clone(), rb_.clone()],
        None,
        &[],
    );
    r.assert_success();
    assert!(
        f.activations(B)[1]
            .toplevel
            .ends_with("-nixos-system-aquamarine-26.05.2"),
        "{r:?}"
    );
    // A build host that is one of the targets is refused.
    let r = rb_to(
        &f,
        &[
            "switch",
            "--flake",
            f.config_dir().to_str().unwrap(),
            "--build-host",
            &ra,
        ],
        &[ra.clone(), rb_.clone()],
        None,
        &[],
    );
    r.assert_status(2);
}

#[test]
fn the_plan_shows_one_build_and_each_targets_pipeline_and_connects_nowhere() {
    let mut cmd = std::process::Command::new(RB);
    cmd.args([
        "switch",
        "--flake",
        "/nonexistent",
        "--target-host",
        "root@a.invalid",
        "--target-host",
        "root@b.invalid",
        "--plan",
    ]);
    let r = run_command(cmd, None);
    r.assert_success();
    for line in [
        "plan for 'switch' on 2 targets:",
        "first, one build for every target:",
        "then, for root@a.invalid ($system: line 1 of $systems), at most --max-parallel targets at once:",
        "then, for root@b.invalid ($system: line 2 of $systems), at most --max-parallel targets at once:",
    ] {
        assert!(r.stdout.lines().any(|l| l == line), "{line}: {r:?}");
    }
    assert!(
        r.stdout.contains("\"<host name of root@b.invalid>\""),
        "{r:?}"
    );
}

#[test]
fn one_configuration_for_every_target_and_one_document_with_each() {
    let f = Fleet::up(&[WS, A, B]);
    let (ra, rb_) = (root(A), root(B));
    let r = rb_to(
        &f,
        &["boot", "--flake", &f.flake(A), "--json"],
        &[ra.clone(), rb_.clone()],
        None,
        &[],
    );
    r.assert_success();
    let d: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    assert_eq!(
        (d["success"].clone(), d["action"].clone()),
        (true.into(), "boot".into())
    );
    let targets = d["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    for (t, dest) in targets.iter().zip([&ra, &rb_]) {
        // Each the document a run with that target alone gives.
        assert_eq!(t["targetHost"], dest.as_str(), "{d}");
        assert_eq!(t["success"], true);
        assert_eq!(t["generation"], 1);
        assert!(
            t["storePath"]
                .as_str()
                .unwrap()
                .ends_with("-nixos-system-aquamarine-26.05.1")
        );
    }
    assert_eq!(f.activations(B)[0].action, "boot");
    assert!(
        f.activations(B)[0]
            .toplevel
            .contains("-nixos-system-aquamarine-")
    );
}

#[test]
fn fail_fast_starts_no_other_target() {
    let f = Fleet::up(&[WS, A, B]);
    f.knob(B, "activationExit", "3");
    let (ra, rb_) = (root(A), root(B));
    let r = f.rb_with(RbCall {
        args: &[
            "test",
            "--flake",
            f.config_dir().to_str().unwrap(),
            "--target-host",
            &rb_,
            "--target-host",
            &ra,
            "--max-parallel",
            "1",
            "--fail-fast",
        ],
        ..Default::default()
    });
    r.assert_status(3);
    assert!(f.activations(A).is_empty(), "{r:?}");
    assert!(summary_row(&r.stderr, &ra).contains("not started"), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
}

#[test]
fn what_several_targets_refuse_before_anything_runs() {
    for (args, says) in [
        (
            &["edit"][..],
            "can only be used with 'switch', 'boot', 'test', 'dry-activate' and 'build', not 'edit'",
        ),
        (
            &["switch", "--rollback"],
            "--rollback and --generation take one --target-host",
        ),
        (&["switch", "--upgrade"], "--upgrade and --upgrade-all"),
        (&["switch", "--ask"], "--ask asks about one target"),
        // ssh lowercases host names: root@A is root@a.
        (
            &["switch", "--target-host", "root@A"],
            "--target-host root@A and --target-host root@a are the same machine to ssh \
             (root@a:22)",
        ),
        (
            &["switch", "--build-host", "root@B"],
            "--build-host root@B is --target-host root@b to ssh",
        ),
        (
            &["switch", "--target-host", "root@a"],
            "--target-host root@a is given twice",
        ),
        (
            &["switch", "--target-host", "localhost"],
            "'localhost' is this machine",
        ),
    ] {
        let mut cmd = std::process::Command::new(RB);
        cmd.args(args).args([
            "--flake",
            "/nonexistent#x",
            "--target-host",
            "root@a",
            "--target-host",
            "root@b",
        ]);
        let r = run_command(cmd, None);
        r.assert_status(2);
        assert!(r.stderr.contains(says), "{args:?}: {r:?}");
        assert_eq!(
            r.stderr
                .lines()
                .filter(|l| l.starts_with("rb: error:"))
                .count(),
            1,
            "{r:?}"
        );
    }
}

#[test]
fn one_sudo_password_for_every_target() {
    let f = Fleet::up(&[WS, A, B]);
    let config = f.config_dir();
    let (pa, pb) = (format!("deploypw@{A}"), format!("deploypw@{B}"));
    let deploy = |password: &str| {
        let args = ["switch", "--flake", config.to_str().unwrap(), "-S"];
        let stdin = format!("{password}\n");
        rb_to(&f, &args, &[pa.clone(), pb.clone()], Some(&stdin), &[])
    };
    // A wrong one is refused by each target's first session, beside the build (the names
    // are guessed from the targets: `guessed_names_connect_beside_the_build_…`); nothing
    // reaches either target.
    let r = deploy("wrong");
    r.assert_status(1);
    for host in [A, B] {
        assert!(f.activations(host).is_empty(), "{host}: {r:?}");
        assert!(
            f.generations(host, SYSTEM_PROFILE).is_empty(),
            "{host}: {r:?}"
        );
    }
    for dest in [&pa, &pb] {
        assert!(
            r.stderr.contains(&format!(
                "sudo on {dest} refused: the password was not accepted"
            )),
            "{r:?}"
        );
    }
    // Read once (stdin has one line), tried and used on both.
    let r = deploy(DEPLOYPW_PASSWORD);
    r.assert_success();
    for host in [A, B] {
        let a = f.activations(host);
        assert_eq!((a.len(), a[0].uid), (1, 0), "{host}: {r:?}");
    }
}

#[test]
fn magic_rollback_confirms_each_target_over_a_new_connection() {
    let f = Fleet::up(&[WS, A, B]);
    let (ra, rb_) = (root(A), root(B));
    let r = rb_to(
        &f,
        &[
            "switch",
            "--flake",
            f.config_dir().to_str().unwrap(),
            "--confirm-timeout",
            "30",
        ],
        &[ra.clone(), rb_.clone()],
        None,
        &[],
    );
    r.assert_success();
    for (host, dest) in [(A, &ra), (B, &rb_)] {
        assert!(
            r.stderr.contains(&format!(
                "confirmed over a new SSH connection: {dest} keeps the new configuration \
                 (generation 1)"
            )),
            "{r:?}"
        );
        // As for one target: its connection (probe, copy, activation), and the confirmation's.
        assert_eq!(
            f.sessions(host),
            Sessions {
                connections: 2,
                sessions: 4
            }
        );
        assert_eq!(f.current_generation(host, SYSTEM_PROFILE), Some(1));
    }
}

#[test]
fn a_signal_stops_every_target_at_once() {
    let f = Fleet::up(&[WS, A, B]);
    for host in [A, B] {
        f.knob(host, "activationSeconds", "40");
    }
    let tmp = crate::state::runtime_dir(&f, "rt");
    let config = f.config_dir();
    let (ra, rb_) = (root(A), root(B));
    let running = crate::state::spawn_rb(
        &f,
        &[
            "test",
            "--flake",
            config.to_str().unwrap(),
            "--target-host",
            &ra,
            "--target-host",
            &rb_,
        ],
        &[("XDG_RUNTIME_DIR", &tmp)],
        None,
    );
    crate::state::wait_until(
        "both activations",
        std::time::Duration::from_secs(60),
        || f.activations(A).len() == 1 && f.activations(B).len() == 1,
    );
    // SIGTERM to rb alone: it stops what it waits for on every target's thread.
    let started = std::time::Instant::now();
    running.signal("TERM");
    let r = running.wait(std::time::Duration::from_secs(30));
    r.assert_status(143);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "stopped at once: {r:?}"
    );
    crate::state::assert_nothing_left(&tmp, "after SIGTERM");
}

#[test]
fn build_copies_each_target_its_configuration_and_activates_nothing() {
    let f = Fleet::up(&[WS, A, B]);
    let (ra, rb_) = (root(A), root(B));
    let r = rb_to(
        &f,
        &["build", "--flake", f.config_dir().to_str().unwrap()],
        &[ra.clone(), rb_.clone()],
        None,
        &[],
    );
    r.assert_success();
    let lines: Vec<(&str, &str)> = r
        .stdout
        .lines()
        .map(|l| l.split_once('\t').unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{r:?}");
    for ((dest, path), host) in lines.into_iter().zip([A, B]) {
        assert_eq!(dest, root(host));
        assert!(path.contains(&format!("-nixos-system-{host}-")), "{r:?}");
        assert!(f.has_path(host, path), "{host} has its system");
        assert!(f.activations(host).is_empty());
        assert!(f.generations(host, SYSTEM_PROFILE).is_empty());
    }
}

#[test]
fn a_target_the_flake_has_no_configuration_for_fails_alone() {
    let f = Fleet::up(&[WS, A, B]);
    // The flake loses beryl's configuration (a host whose host name names none).
    let config = f.config_dir();
    let knobs = config.join("knobs.json");
    let mut all: Value = serde_json::from_str(&std::fs::read_to_string(&knobs).unwrap()).unwrap();
    all.as_object_mut().unwrap().remove(B);
    std::fs::write(&knobs, all.to_string()).unwrap();
    let mut git = std::process::Command::new("git");
    git.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args(["-c", "user.name=t", "-c", "user.email=t@localhost"])
        .args(["-c", "safe.directory=*", "-C"])
        .arg(&config)
        .args(["commit", "-qam", "no beryl"]);
    run_command(git, None).assert_success();
    let (ra, rb_) = (root(A), root(B));
    let r = rb_to(
        &f,
        &["switch", "--flake", config.to_str().unwrap()],
        &[ra.clone(), rb_.clone()],
        None,
        &[],
    );
    r.assert_status(1);
    assert!(
        r.stderr.contains(&format!(
            "rb: error: the flake has no configuration {}#nixosConfigurations.\"beryl\" for \
             root@beryl",
            config.display()
        )),
        "{r:?}"
    );
    assert!(summary_row(&r.stderr, &rb_).contains("failed (exit status 1)"));
    assert!(summary_row(&r.stderr, &ra).contains("deployed"));
    assert_eq!(f.generations(A, SYSTEM_PROFILE), [1]);
    assert!(f.activations(B).is_empty());
    // Nothing was copied to beryl: its connection's probe was its one session.
    assert_eq!(
        f.sessions(B),
        Sessions {
            connections: 1,
            sessions: 1
        }
    );
}

#[test]
fn the_build_host_has_one_connection_for_every_target() {
    const C: &str = "coral";
    let f = Fleet::up(&[WS, "builder", A, B, C]);
    let rt = crate::state::runtime_dir(&f, "rt");
    let dests = [root(A), root(B), root(C)];
    let flake = f.flake(A);
    let r = rb_to(
        &f,
        &["switch", "--flake", &flake, "--build-host", "builder"],
        &dests,
        None,
        &[("XDG_RUNTIME_DIR", &rt)],
    );
    r.assert_success();
    for host in [A, B, C] {
        let a = f.activations(host);
        assert_eq!(a.len(), 1, "{host}: {r:?}");
        assert!(a[0].toplevel.ends_with("-nixos-system-aquamarine-26.05.1"));
        // rb's connection (probe, copy from the builder, activation) and the builder's own.
        assert_eq!(
            f.sessions(host),
            Sessions {
                connections: 2,
                sessions: 3
            },
            "{host}"
        );
    }
    // One connection and one probe there for the run: the derivation's copy and the build,
    // then each target's copy from there through that same connection.
    assert_eq!(
        f.sessions("builder"),
        Sessions {
            connections: 1,
            sessions: 6
        },
        "{r:?}"
    );
    assert_eq!(phase_lines(&r, "rb: build on builder done"), 1, "{r:?}");
    // It closed once every target was over: no master or directory of rb's is left.
    crate::state::assert_nothing_left(&rt, "after three targets and a build host");
}

/// Both targets (A and B as deploypw) refuse the sudo password: the build (A's, made slow
/// here) had begun beside their connections, and it is stopped once the last of them
/// failed; nothing but the probe reached either target.
fn wrong_passwords_stop_the_build_beside_the_connections(f: &Fleet, flake: &str) {
    f.knob(A, "buildSeconds", "60");
    let toplevel = crate::remote::toplevel_path(f);
    let dests = [format!("deploypw@{A}"), format!("deploypw@{B}")];
    let started = Instant::now();
    let r = rb_to(
        f,
        &["switch", "--flake", flake, "-S"],
        &dests,
        Some("wrong\n"),
        &[],
    );
    r.assert_status(1);
    assert!(r.stderr.lines().any(|l| l == "rb: build on local"), "{r:?}");
    assert_eq!(phase_lines(&r, "rb: build on local done"), 0, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "the build was stopped: {r:?}"
    );
    assert!(
        !f.has_path(WS, &toplevel),
        "the system was not built: {r:?}"
    );
    for dest in &dests {
        assert!(
            r.stderr.contains(&format!(
                "sudo on {dest} refused: the password was not accepted"
            )),
            "{r:?}"
        );
        assert!(summary_row(&r.stderr, dest).contains("failed (exit status 1)"));
    }
    for host in [A, B] {
        let only_the_probe = Sessions {
            connections: 1,
            sessions: 1,
        };
        assert_eq!(f.sessions(host), only_the_probe, "{host}: {r:?}");
        assert!(f.activations(host).is_empty());
    }
}

/// `FLAKE#name` names every target's configuration without asking the targets, so their
/// connections (probes, sudo password check) open while the build runs, as one target's does
/// (with `--flake FLAKE` alone too, the names being guessed:
/// `guessed_names_connect_beside_the_build_and_a_wrong_one_builds_again`).
#[test]
fn with_a_named_configuration_the_targets_connect_while_the_build_runs() {
    let f = Fleet::up(&[WS, A, B]);
    let flake = f.flake(A);
    wrong_passwords_stop_the_build_beside_the_connections(&f, &flake);

    // One unreachable target is left out; the build goes on for the other, which deploys.
    f.knob(A, "buildSeconds", "0");
    let dests = [root(A), GONE.to_string()];
    let r = rb_to(&f, &["switch", "--flake", &flake], &dests, None, &[]);
    r.assert_status(255);
    assert_eq!(phase_lines(&r, "rb: build on local done"), 1, "{r:?}");
    assert!(
        r.stderr
            .contains("cannot connect to root@no-such-host.invalid"),
        "{r:?}"
    );
    assert!(summary_row(&r.stderr, &root(A)).contains("deployed"));
    assert!(summary_row(&r.stderr, GONE).contains("unreachable (exit status 255)"));
    assert_eq!(f.generations(A, SYSTEM_PROFILE), [1]);
}

/// A build that fails with the targets' connections open beside it fails the run with the
/// build's own error and status, as for one target; no target gets anything.
#[test]
fn a_failed_build_beside_the_connections_is_the_runs_error() {
    let f = Fleet::up(&[WS, A, B]);
    f.knob(A, "failBuild", "true");
    let flake = f.flake(A);
    let r = rb_to(
        &f,
        &["switch", "--flake", &flake],
        &[root(A), root(B)],
        None,
        &[],
    );
    assert!(r.status != 0 && r.status != 255, "{r:?}");
    assert!(
        r.stderr.contains("failed on purpose (knob failBuild)"),
        "{r:?}"
    );
    assert!(!r.stderr.contains("targets deployed"), "no summary: {r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    for host in [A, B] {
        assert!(f.activations(host).is_empty());
        // Its connection opened beside the build: its probe, nothing else.
        assert_eq!(
            f.sessions(host),
            Sessions {
                connections: 1,
                sessions: 1
            },
            "{host}: {r:?}"
        );
    }
}

/// A build host that cannot be reached is the run's one error (exit 255, naming it), as for
/// one target: the build never starts and nothing reaches any target.
#[test]
fn an_unreachable_build_host_is_the_runs_error() {
    let f = Fleet::up(&[WS, A, B]);
    for flake in [f.flake(A), f.config_dir().display().to_string()] {
        let r = rb_to(
            &f,
            &["switch", "--flake", &flake, "--build-host", GONE],
            &[root(A), root(B)],
            None,
            &[],
        );
        r.assert_status(255);
        let errors: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| l.starts_with("rb: error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{flake}: {r:?}");
        assert!(errors[0].contains("no-such-host.invalid"), "{flake}: {r:?}");
        assert!(r.stdout.is_empty(), "{flake}: {r:?}");
        for host in [A, B] {
            assert!(f.activations(host).is_empty(), "{flake}: {host}");
            assert_eq!(f.current_generation(host, SYSTEM_PROFILE), None, "{host}");
        }
    }
}

/// With `--flake FLAKE` alone each target's name is guessed from its destination and checked
/// by its probe, so the connections open while the build runs, as with `FLAKE#name`; a target
/// named by an alias that is not its host name stops the build, which runs again, once, with
/// every target's real name over the connections already open.
#[test]
fn guessed_names_connect_beside_the_build_and_a_wrong_one_builds_again() {
    let f = Fleet::up(&[WS, A, B]);
    let config = f.config_dir().display().to_string();
    wrong_passwords_stop_the_build_beside_the_connections(&f, &config);

    // `jade` is B's alias; the flake's configuration `jade` builds slowly.
    f.knob(A, "buildSeconds", "0");
    f.knob("jade", "buildSeconds", "60");
    let ssh_config = f.ssh_config_with_alias("jade", B);
    let opts = format!("-F {}", ssh_config.display());
    let started = Instant::now();
    let r = rb_to(
        &f,
        &["switch", "--flake", &config],
        &[root(A), "root@jade".to_string()],
        None,
        &[("NIX_SSHOPTS", Path::new(&opts))],
    );
    r.assert_success();
    assert!(started.elapsed() < Duration::from_secs(50), "{r:?}");
    let note = "rb: root@jade's host name is 'beryl', not 'jade': building its configuration";
    assert_eq!(r.stderr.matches(note).count(), 1, "{r:?}");
    assert!(!r.stderr.contains("rb: error:"), "{r:?}");
    for (host, dest) in [(A, root(A)), (B, "root@jade".to_string())] {
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{dest}\t")))
            .unwrap_or_else(|| panic!("{dest}: {r:?}"));
        assert!(line.contains(&format!("-nixos-system-{host}-")), "{r:?}");
        assert_eq!(f.current_generation(host, SYSTEM_PROFILE), Some(1));
        // This run: one connection, three sessions, as for one target.
        assert_eq!(
            f.sessions(host),
            Sessions {
                connections: 2,
                sessions: 4
            },
            "{host}: {r:?}"
        );
    }
}
