//! Activation against a real systemd: the target boots its Debian root's systemd as PID 1
//! (fleet host option `systemd`), with sshd and nix-daemon as its units. rb's activation runs in
//! a transient unit (`systemd-run`), the generation's units are started and stopped through
//! `systemctl`, the magic-rollback watchdog is a transient unit of its own.
//!
//! The target's root is the one of `$RB_FLEET_ROOT` (the Nix version under test), or bookworm
//! (Nix 2.8, the machine's own) when the fleet runs on this machine's file system, which does
//! not boot systemd.

use crate::fleet::{Fleet, RunCall, SYSTEM_PROFILE};
use crate::magic_rollback::{eventually, kill_masters, read, watchdog_dirs};
use crate::state::{runtime_dir, switch_until_activating};
use std::time::{Duration, Instant};

const WS: &str = "ws";
const T: &str = "aquamarine";
const ROLLED_BACK: i32 = 10;
const ACTIVATION_UNIT: &str = "nixos-rebuild-switch-to-configuration-";

/// The target's fleet options: a real systemd on the root of the Nix version under test.
fn target_options() -> String {
    let root = match std::env::var("RB_FLEET_ROOT").unwrap_or_default().as_str() {
        "" | "host" => "bookworm".to_string(),
        other => other.to_string(),
    };
    format!("{T}:systemd,root={root}")
}

fn target() -> String {
    format!("root@{T}")
}

fn fleet() -> Fleet {
    Fleet::up(&[WS, &target_options()])
}

/// `systemctl ARGS` on the target: its stdout, trimmed (whatever the exit status).
fn systemctl(f: &Fleet, args: &[&str]) -> String {
    let mut argv = vec!["systemctl"];
    argv.extend_from_slice(args);
    f.run(
        T,
        RunCall {
            argv: &argv,
            ..Default::default()
        },
    )
    .stdout_trimmed()
    .to_string()
}

fn is_active(f: &Fleet, unit: &str) -> String {
    systemctl(f, &["is-active", unit])
}

fn switch(f: &Fleet, extra: &[&str], env: &[(&str, &str)]) -> crate::fleet::RunResult {
    let flake = f.flake(T);
    let tgt = target();
    let mut args = vec!["switch", "--flake", &flake, "--target-host", &tgt];
    args.extend_from_slice(extra);
    f.rb_with(crate::fleet::RbCall {
        args: &args,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    })
}

/// The fleet with generation 1 (unit `web`) switched to by rb; returns it and its system.
fn on_generation_1() -> (Fleet, String) {
    let f = fleet();
    f.knob(T, "units", r#"{"web": "ok"}"#);
    let r = switch(&f, &[], &[]);
    r.assert_success();
    assert_eq!(is_active(&f, "web.service"), "active");
    (f, r.stdout_trimmed().to_string())
}

fn watchdog_dir(f: &Fleet) -> std::path::PathBuf {
    let [dir] = watchdog_dirs(f, T)
        .try_into()
        .expect("one watchdog directory");
    dir
}

#[test]
fn the_host_runs_systemd_and_stops_cleanly() {
    let mut f = fleet();
    let r = f.sh(
        T,
        "hostname; cat /proc/1/comm; systemctl is-active rb-fleet-sshd.service nix-daemon.service",
    );
    assert_eq!(
        r.assert_success().stdout,
        "aquamarine\nsystemd\nactive\nactive\n"
    );
    let pid: u32 = read(&f.host_dir(T).join("systemd.pid"))
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let cgroup = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap()
        .to_string();
    assert!(cgroup.contains("/rb-fleet/"), "{cgroup}");
    f.down();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    // Nothing of the host is left: no process and no cgroup.
    let left: Vec<_> = crate::state::processes()
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{}/cgroup", p.pid))
                .is_ok_and(|c| c.lines().any(|l| l.strip_prefix("0::") == Some(&cgroup)))
        })
        .collect();
    assert!(
        left.is_empty(),
        "{:?}",
        left.iter().map(|p| &p.cmdline).collect::<Vec<_>>()
    );
    let mount = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mount.contains(&f.dir().display().to_string()), "{mount}");
    assert!(
        !std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains("merged"),
        "overlay left mounted"
    );
}

#[test]
fn activation_runs_in_a_transient_unit_that_starts_the_generations_units() {
    let (f, gen1) = on_generation_1();
    let [act] = f.activations(T).try_into().unwrap();
    assert_eq!(act.toplevel, gen1);
    assert!(
        act.cgroup
            .starts_with(&format!("/system.slice/{ACTIVATION_UNIT}"))
            && act.cgroup.ends_with(".service"),
        "activation ran in {:?}",
        act.cgroup
    );
    // The unit is gone once over (--collect), and it ran in / with systemd's PATH only.
    let unit = act.cgroup.rsplit('/').next().unwrap().to_string();
    assert_eq!(is_active(&f, &unit), "inactive");
    // A new generation without `web`, with `api`: web is stopped, api started.
    f.knob(T, "units", r#"{"api": "ok"}"#);
    switch(&f, &[], &[]).assert_success();
    assert_eq!(is_active(&f, "web.service"), "inactive");
    assert_eq!(is_active(&f, "api.service"), "active");

    // With NIXOS_REBUILD_NO_SYSTEMD_RUN the activation runs in the SSH session itself.
    f.knob(T, "units", r#"{"api": "ok", "db": "ok"}"#);
    switch(&f, &[], &[("NIXOS_REBUILD_NO_SYSTEMD_RUN", "1")]).assert_success();
    let act = f.activations(T).pop().unwrap();
    assert!(
        act.cgroup
            .starts_with("/system.slice/rb-fleet-sshd.service"),
        "activation ran in {:?}",
        act.cgroup
    );
    assert_eq!(is_active(&f, "db.service"), "active");
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(3));
}

#[test]
fn a_unit_that_fails_to_start_gives_exit_status_4_with_and_without_systemd_run() {
    let (f, _) = on_generation_1();
    f.knob(T, "units", r#"{"web": "ok", "db": "fail"}"#);
    for env in [vec![], vec![("NIXOS_REBUILD_NO_SYSTEMD_RUN", "1")]] {
        let r = switch(&f, &[], &env);
        r.assert_status(4);
        assert!(r.stderr.contains("rb: error:"), "{env:?}: {r:?}");
        assert_eq!(is_active(&f, "db.service"), "failed", "{env:?}");
        assert_eq!(is_active(&f, "web.service"), "active", "{env:?}");
        f.knob(T, "rev", "2");
    }
}

#[test]
fn magic_rollback_when_the_new_generation_stops_sshd() {
    let (f, gen1) = on_generation_1();
    f.knob(T, "rev", "2");
    f.knob(T, "breakSsh", "true");
    f.knob(T, "units", r#"{"web": "ok", "api": "ok"}"#);
    let started = Instant::now();
    let r = switch(&f, &["--confirm-timeout", "3"], &[]);
    r.assert_status(ROLLED_BACK);
    assert!(started.elapsed() < Duration::from_secs(40), "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "root@aquamarine was rolled back: generation 1 of {SYSTEM_PROFILE} ({gen1}) is active"
        )),
        "{r:?}"
    );
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    assert_eq!(f.current_system(T).as_deref(), Some(gen1.as_str()));
    // Generation 1's activation, run by the watchdog, started sshd again and stopped `api`.
    assert_eq!(is_active(&f, "rb-fleet-sshd.service"), "active");
    assert_eq!(is_active(&f, "api.service"), "inactive");
    assert_eq!(is_active(&f, "web.service"), "active");
    let acts = f.activations(T);
    assert_eq!(acts.len(), 3, "{acts:?}");
    assert_eq!(acts[2].toplevel, gen1);
    // The watchdog was a transient unit, and its own output reached its log.
    let dir = watchdog_dir(&f);
    assert!(
        acts[2].cgroup.starts_with("/system.slice/rb-watchdog-"),
        "rollback ran in {:?}",
        acts[2].cgroup
    );
    assert!(read(&dir.join("how")).starts_with("systemd-run --unit=rb-watchdog-"));
    let log = read(&dir.join("log"));
    assert!(
        log.contains("waiting 3s for a confirmation\nrolling back (timeout)\n"),
        "{log}"
    );
    assert!(
        read(&dir.join("result")).starts_with("outcome=rolled-back\nreason=timeout\n"),
        "{}",
        read(&dir.join("result"))
    );
}

#[test]
fn a_confirmed_switch_is_kept_and_the_watchdog_unit_ends() {
    let (f, gen1) = on_generation_1();
    f.knob(T, "rev", "2");
    f.knob(T, "units", r#"{"web": "ok"}"#);
    // A check as users write them, `$` and all: the new generation's unit runs.
    let check = r#"test "$(systemctl is-active web.service)" = active"#;
    let r = switch(
        &f,
        &["--confirm-timeout", "20", "--confirm-check", check],
        &[],
    );
    r.assert_success();
    assert!(
        r.stderr
            .contains(&format!("rb: confirmation check 1: {check}")),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("root@aquamarine keeps the new configuration (generation 2)"),
        "{r:?}"
    );
    let dir = watchdog_dir(&f);
    let unit = format!(
        "rb-watchdog-{}.service",
        dir.file_name().unwrap().to_string_lossy()
    );
    assert!(
        eventually(10, || read(&dir.join("log")).contains("confirmed; exiting")),
        "{}",
        read(&dir.join("log"))
    );
    assert!(eventually(10, || is_active(&f, &unit) == "inactive"));
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(2));
    // Generation 2 activated with `test`, then made the boot default by the watchdog's unit
    // once confirmed; generation 1 is not activated again.
    let gen2 = r.stdout_trimmed();
    let acts = f.activations(T);
    let calls: Vec<(&str, bool)> = acts
        .iter()
        .map(|a| (a.action.as_str(), a.toplevel == gen2))
        .collect();
    assert_eq!(calls, [("switch", false), ("test", true), ("boot", true)]);
    assert_eq!(acts[0].toplevel, gen1);
    assert!(
        acts[2].cgroup.starts_with("/system.slice/rb-watchdog-"),
        "boot ran in {:?}",
        acts[2].cgroup
    );
    assert_eq!(f.boot_default(T).as_deref(), Some(gen2));
}

/// A check that fails against real systemd: a unit the new generation lacks is not active;
/// the target rolls back at once (exit 10), its boot default untouched.
#[test]
fn a_failing_check_rolls_back_against_real_systemd() {
    let (f, gen1) = on_generation_1();
    f.knob(T, "rev", "2");
    f.knob(T, "units", r#"{"web": "ok"}"#);
    let check = "systemctl is-active api.service";
    let started = Instant::now();
    let r = switch(
        &f,
        &["--confirm-timeout", "60", "--confirm-check", check],
        &[],
    );
    r.assert_status(ROLLED_BACK);
    assert!(started.elapsed() < Duration::from_secs(40), "{r:?}");
    // (systemctl's own status and words for a unit it does not know differ between systemd
    // versions: rb's message is what counts.)
    let error = r
        .stderr
        .lines()
        .find(|l| l.starts_with("rb: error: "))
        .unwrap_or_default();
    assert!(
        error.starts_with(&format!(
            "rb: error: the confirmation check '{check}' failed (exit status "
        )) && error.contains(") on root@aquamarine: "),
        "{r:?}"
    );
    assert!(
        r.stderr.contains(&format!(
            "root@aquamarine was rolled back: generation 1 of {SYSTEM_PROFILE} ({gen1}) is active"
        )),
        "{r:?}"
    );
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    assert_eq!(f.current_system(T).as_deref(), Some(gen1.as_str()));
    assert_eq!(f.boot_default(T).as_deref(), Some(gen1.as_str()));
}

#[test]
fn a_connection_lost_during_activation_the_unit_finishes_and_rb_confirms() {
    let (f, _) = on_generation_1();
    f.knob(T, "rev", "2");
    f.knob(T, "activationSeconds", "3");
    f.knob(T, "units", r#"{"web": "ok", "api": "ok"}"#);
    let rt = runtime_dir(&f, "rt");
    let run = switch_until_activating(
        &f,
        T,
        &["--confirm-timeout", "30"],
        &[("XDG_RUNTIME_DIR", &rt)],
    );
    // Drop rb's connection (its control master) while switch-to-configuration sleeps.
    assert_eq!(kill_masters(&rt), 1, "rb's control master");
    let r = run.wait(Duration::from_secs(90));
    r.assert_success();
    assert!(
        r.stderr
            .contains("rb: warning: lost the connection to root@aquamarine while activating"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("root@aquamarine keeps the new configuration (generation 2)"),
        "{r:?}"
    );
    // The activation's unit went on without the connection and did all its work.
    assert_eq!(f.current_system(T).as_deref(), Some(r.stdout_trimmed()));
    assert_eq!(is_active(&f, "api.service"), "active");
    // Its `test`, then the confirmation's `boot`: no rollback.
    let acts: Vec<String> = f.activations(T).into_iter().map(|a| a.action).collect();
    assert_eq!(acts, ["switch", "test", "boot"]);
}

#[test]
fn ctrl_c_during_activation_leaves_the_unit_to_finish() {
    let (f, _) = on_generation_1();
    f.knob(T, "rev", "2");
    f.knob(T, "activationSeconds", "3");
    f.knob(T, "units", r#"{"web": "ok", "api": "ok"}"#);
    let run = switch_until_activating(&f, T, &[], &[]);
    run.ctrl_c();
    let r = run.wait(Duration::from_secs(30));
    r.assert_status(130);
    assert!(r.stderr.contains("rb: error: interrupted"), "{r:?}");
    // rb says the activation goes on in its unit, and names it.
    let unit = f.activations(T)[1]
        .cgroup
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(".service")
        .to_string();
    assert!(unit.starts_with(ACTIVATION_UNIT), "{unit}");
    assert!(
        r.stderr.contains(&format!(
            "where root@aquamarine runs systemd, activating the configuration goes on there in \
             the unit {unit} until it ends"
        )),
        "{r:?}"
    );
    // The activation goes on in its unit: the new system becomes the running one.
    let new = f.profile_target(T, SYSTEM_PROFILE).unwrap();
    assert!(
        eventually(20, || f.current_system(T).as_deref() == Some(new.as_str())
            && is_active(&f, "api.service") == "active"),
        "{:?}",
        f.current_system(T)
    );
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(2));
}

#[test]
fn diff_reads_the_targets_running_system() {
    let (f, gen1) = on_generation_1();
    f.knob(T, "kernelVersion", r#""6.2.0-rb""#);
    let r = switch(&f, &["--diff"], &[]);
    r.assert_success();
    let gen2 = f.current_system(T).unwrap();
    assert_ne!(gen1, gen2);
    assert!(
        r.stderr.lines().any(|l| l == format!("<<< {gen1}")),
        "{r:?}"
    );
    assert!(
        r.stderr.lines().any(|l| l == format!(">>> {gen2}")),
        "{r:?}"
    );
    assert!(
        r.stderr
            .lines()
            .any(|l| l == "[U] linux 6.1.0-rb -> 6.2.0-rb"),
        "{r:?}"
    );
}

/// Whether the target's root has run0 (systemd 256 and newer: not bookworm's 252).
fn root_has_run0(f: &Fleet) -> bool {
    f.sh(T, "command -v run0").success()
}

#[test]
fn run0_elevates_through_polkit_without_a_password() {
    let f = fleet();
    f.knob(T, "units", r#"{"web": "ok"}"#);
    let flake = f.flake(T);
    let tgt = format!("deploy@{T}");
    let r = f.rb(&[
        "switch",
        "--flake",
        &flake,
        "--target-host",
        &tgt,
        "--elevate",
        "run0",
    ]);
    if !root_has_run0(&f) {
        // No run0 on the target: rb says so, and nothing changed there.
        assert_ne!(r.status, 0, "{r:?}");
        assert!(r.stderr.contains("run0"), "{r:?}");
        assert!(f.activations(T).is_empty());
        return;
    }
    r.assert_success();
    let [act] = f.activations(T).try_into().unwrap();
    assert_eq!(act.uid, 0);
    // run0 is a transient unit of its own; activation inside it is one more.
    assert!(
        act.cgroup
            .starts_with(&format!("/system.slice/{ACTIVATION_UNIT}")),
        "{:?}",
        act.cgroup
    );
    assert_eq!(is_active(&f, "web.service"), "active");
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
}

#[test]
fn run0_that_wants_a_password_is_refused_with_rbs_message() {
    let f = fleet();
    let flake = f.flake(T);
    let tgt = format!("deploypw@{T}");
    let r = f.rb(&[
        "switch",
        "--flake",
        &flake,
        "--target-host",
        &tgt,
        "--elevate",
        "run0",
    ]);
    assert_ne!(r.status, 0, "{r:?}");
    if root_has_run0(&f) {
        // Found by the connection's probe, before anything reached the target.
        r.assert_status(1);
        assert_eq!(f.sessions(T).sessions, 1, "only the probe ran there: {r:?}");
        assert!(
            r.stderr.contains(&format!(
                "rb: error: run0 on {tgt} refused: polkit does not let the user run commands \
                 without a password"
            )) && r
                .stderr
                .contains("hint: let the user manage units without a password"),
            "{r:?}"
        );
    }
    assert!(f.activations(T).is_empty());
    assert!(f.generations(T, SYSTEM_PROFILE).is_empty());
    // A password for run0 is not something rb can hand over (no polkit agent on stdin).
    let r = f.rb(&[
        "switch",
        "--flake",
        &flake,
        "--target-host",
        &tgt,
        "--elevate",
        "run0",
        "--ask-sudo-password",
    ]);
    assert_ne!(r.status, 0, "{r:?}");
    assert!(r.stderr.contains("--ask-sudo-password with run0"), "{r:?}");
    assert!(f.activations(T).is_empty());
}

#[test]
fn the_watchdog_waits_for_the_activation_unit_after_the_session_is_gone() {
    let (f, gen1) = on_generation_1();
    f.knob(T, "rev", "2");
    f.knob(T, "breakSsh", "true");
    f.knob(T, "activationSeconds", "4");
    let rt = runtime_dir(&f, "rt");
    let run = switch_until_activating(
        &f,
        T,
        &["--confirm-timeout", "1"],
        &[("XDG_RUNTIME_DIR", &rt)],
    );
    // rb and its connection die, and so does the deploying session on the target: only the
    // activation's unit is left.
    run.signal("KILL");
    for p in crate::state::processes() {
        // Clients and the master (which names itself `ssh: CONTROL-PATH [mux]`).
        if p.cmdline.starts_with("ssh") && p.cmdline.contains(&*rt.to_string_lossy()) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &p.pid.to_string()])
                .status();
        }
    }
    let dir = watchdog_dir(&f);
    let session = read(&dir.join("session"));
    let pid = session.split_whitespace().next().unwrap();
    // (It may be gone already with the connection.)
    f.sh(T, &format!("kill -KILL {pid} 2>/dev/null || true"))
        .assert_success();
    let _ = run.wait(Duration::from_secs(10));
    let unit = format!(
        "{ACTIVATION_UNIT}{}",
        dir.file_name().unwrap().to_string_lossy()
    );
    assert!(
        eventually(60, || read(&dir.join("result")).starts_with("outcome=")),
        "{}",
        read(&dir.join("log"))
    );
    let log = read(&dir.join("log"));
    let journal = f
        .sh(T, &format!("journalctl --no-pager -o short-monotonic -u {unit} -u 'rb-watchdog-*' -u rb-fleet-sshd 2>&1 | tail -40"))
        .stdout;
    assert!(
        log.contains(&format!(
            "waiting for the activation ({unit}) to end\nthe activation ({unit}) has ended\n\
             waiting 1s for a confirmation\nrolling back (timeout)\n"
        )),
        "{log}\n{journal}"
    );
    // The rollback came after the new generation's activation: generation 1 is what runs.
    assert!(
        read(&dir.join("result")).starts_with("outcome=rolled-back\n"),
        "{}",
        read(&dir.join("result"))
    );
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    assert_eq!(f.current_system(T).as_deref(), Some(gen1.as_str()));
    assert_eq!(is_active(&f, "rb-fleet-sshd.service"), "active");
    let acts = f.activations(T);
    assert_eq!(acts.len(), 3, "{acts:?}");
    assert_eq!(acts[2].toplevel, gen1);
}
