//! Magic rollback (`--confirm-timeout`): a watchdog armed on the target keeps the new
//! generation only if rb confirms it over a new SSH connection in time.

use crate::fleet::{DEPLOYPW_PASSWORD, Fleet, RB, RbCall, SYSTEM_PROFILE, Sessions, fleet_command};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WS: &str = "ws";
const T: &str = "aquamarine";
const ROLLED_BACK: i32 = 10;
const UNCONFIRMED: i32 = 11;

/// rb's line saying the target is back on generation 1 (`gen1`), and the target's state.
pub fn assert_rolled_back_to_1(f: &Fleet, r: &crate::fleet::RunResult, gen1: &str) {
    assert!(
        r.stderr.contains(&format!(
            "root@aquamarine was rolled back: generation 1 of {SYSTEM_PROFILE} ({gen1}) is active"
        )),
        "{r:?}"
    );
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    assert_eq!(f.current_system(T).as_deref(), Some(gen1));
}

fn target() -> String {
    format!("root@{T}")
}

/// A fleet whose target runs generation 1 (switched to with plain rb, no watchdog); returns
/// it and generation 1's system.
fn fleet_on_generation_1(target_options: &str) -> (Fleet, String) {
    let f = Fleet::up(&[WS, &format!("{T}{target_options}")]);
    let r = f.rb(&["switch", "--flake", &f.flake(T), "--target-host", &target()]);
    r.assert_success();
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    (f, r.stdout_trimmed().to_string())
}

/// The same, generation 1 made and activated without rb (`nix-env --set`, then its
/// switch-to-configuration): rb keeps no state of its own.
fn fleet_on_foreign_generation_1() -> (Fleet, String) {
    let f = Fleet::up(&[WS, T]);
    let gen1 = f.seed_generation(T, T);
    f.sh(T, &format!("{gen1}/bin/switch-to-configuration switch"))
        .assert_success();
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    assert_eq!(f.current_system(T).as_deref(), Some(gen1.as_str()));
    (f, gen1)
}

/// The switch-to-configuration calls on the target: (action, whether it was `system`'s).
fn calls(f: &Fleet, system: &str) -> Vec<(String, bool)> {
    f.activations(T)
        .into_iter()
        .map(|a| (a.action, a.toplevel == system))
        .collect()
}

fn call(action: &str, of_system: bool) -> (String, bool) {
    (action.to_string(), of_system)
}

/// A boot default the fake boot loader never writes itself: one that stays means nothing
/// changed it.
const BOOT_BEFORE: &str = "/nix/store/00000000000000000000000000000000-boot-default-before-the-run";

fn set_boot_default(f: &Fleet, system: &str) {
    std::fs::write(
        f.host_path(T, "/run/rb-fleet/boot-default"),
        format!("{system}\n"),
    )
    .unwrap();
}

fn delta(before: Sessions, after: Sessions) -> (usize, usize) {
    (
        after.connections - before.connections,
        after.sessions - before.sessions,
    )
}

/// The watchdog directories (/run/rb/<run id>) on `host`.
pub fn watchdog_dirs(f: &Fleet, host: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(f.host_path(host, "/run/rb"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

pub fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Polls `cond` every 50 ms for up to `secs` seconds.
pub fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

#[test]
fn a_confirmed_switch_is_kept_and_costs_one_more_connection() {
    let (f, _) = fleet_on_generation_1("");
    let plain = f.sessions(T);
    f.knob(T, "rev", "2");
    let before = f.sessions(T);
    let r = deploy(&f, "switch", "30");
    r.assert_success();
    assert!(r.stdout_trimmed().ends_with("-26.05.2"), "{r:?}");
    assert!(
        r.stderr
            .contains("confirmed over a new SSH connection: root@aquamarine keeps the new configuration (generation 2)"),
        "{r:?}"
    );
    // The first, plain switch: one connection, three sessions (probe, copy, activation). This
    // one: the same plus exactly one connection with one session, the confirmation.
    assert_eq!(delta(Sessions::default(), plain), (1, 3));
    assert_eq!(delta(before, f.sessions(T)), (2, 4));
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(2));
    // No rollback: generation 2 was activated with `test`, and made the boot default (its
    // `boot`) once confirmed.
    let gen2 = r.stdout_trimmed();
    assert_eq!(
        calls(&f, gen2),
        [
            call("switch", false),
            call("test", true),
            call("boot", true)
        ]
    );
    assert_eq!(f.boot_default(T).as_deref(), Some(gen2));
    assert!(
        r.stderr
            .contains(&format!("root@aquamarine: {gen2} is the boot default now")),
        "{r:?}"
    );
    // The watchdog ran as a transient systemd unit and stood down.
    let [dir] = watchdog_dirs(&f, T).try_into().unwrap();
    assert!(read(&dir.join("how")).starts_with("systemd-run --unit=rb-watchdog-"));
    assert!(
        f.systemd_runs(T)
            .iter()
            .any(|l| l.starts_with("unit=rb-watchdog-")),
        "{:?}",
        f.systemd_runs(T)
    );
    assert!(read(&dir.join("result")).starts_with("outcome=confirmed\n"));
    assert!(
        eventually(5, || read(&dir.join("log")).contains("confirmed; exiting")),
        "{}",
        read(&dir.join("log"))
    );
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(2));
}

#[test]
fn a_switch_that_cuts_ssh_is_rolled_back_and_rb_says_to_what() {
    let (f, gen1) = fleet_on_foreign_generation_1();
    f.knob(T, "rev", "2");
    f.knob(T, "breakSsh", "true");
    set_boot_default(&f, BOOT_BEFORE);
    let started = Instant::now();
    let r = deploy(&f, "switch", "3");
    r.assert_status(ROLLED_BACK);
    assert!(started.elapsed() < Duration::from_secs(20), "{r:?}");
    assert!(r.stdout.is_empty(), "no result path for a rollback: {r:?}");
    assert!(
        r.stderr
            .contains("cannot reach root@aquamarine over a new SSH connection"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains(&format!(
            "the new configuration was not confirmed within 3s: rb could not reach {} over a new \
             SSH connection",
            target()
        )),
        "{r:?}"
    );
    assert_rolled_back_to_1(&f, &r, &gen1);
    // Generation 2 was only tested, generation 1 tested again: the boot loader was never
    // touched, so its default is what it was before the run (here set apart from the running
    // system, to tell).
    assert_eq!(
        calls(&f, &gen1),
        [
            call("switch", true),
            call("test", false),
            call("test", true)
        ]
    );
    assert_eq!(f.boot_default(T).as_deref(), Some(BOOT_BEFORE));
    // Generation 1's activation brought sshd back.
    let again = f.rb(&["switch", "--flake", &f.flake(T), "--target-host", &target()]);
    assert_eq!(again.status, 0, "{again:?}");
}

#[test]
fn a_failed_activation_rolls_back_at_once() {
    let (f, gen1) = fleet_on_generation_1("");
    f.knob(T, "rev", "2");
    f.knob(T, "activationExit", "4");
    let started = Instant::now();
    let r = deploy(&f, "switch", "60");
    r.assert_status(ROLLED_BACK);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "rolled back at once, not after the timeout: {:?}",
        started.elapsed()
    );
    assert!(
        r.stderr.contains(&format!(
            "activating the configuration failed on root@aquamarine (exit status 4); \
             root@aquamarine was rolled back: generation 1 of {SYSTEM_PROFILE} ({gen1}) is active"
        )),
        "{r:?}"
    );
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    assert_eq!(f.current_system(T).as_deref(), Some(gen1.as_str()));
    // The failed activation of generation 2 (`test`, until confirmed); the profile put back
    // without touching the boot loader; the watchdog's `test` of generation 1. The boot
    // default is generation 1's, from before the run.
    assert_eq!(
        calls(&f, &gen1),
        [
            call("switch", true),
            call("test", false),
            call("test", true)
        ]
    );
    assert_eq!(f.boot_default(T).as_deref(), Some(gen1.as_str()));
    assert!(
        r.stderr.contains(&format!(
            "rb: the profile {SYSTEM_PROFILE} is back where it was before this run, and the boot \
             loader's default was not changed"
        )),
        "{r:?}"
    );
    let [dir] = watchdog_dirs(&f, T).try_into().unwrap();
    let result = read(&dir.join("result"));
    assert!(
        result.starts_with("outcome=rolled-back\nreason=requested\n"),
        "{result}"
    );
}

#[test]
fn a_failed_test_activation_goes_back_to_the_running_system_with_test() {
    let (f, gen1) = fleet_on_generation_1("");
    f.knob(T, "rev", "2");
    f.knob(T, "activationExit", "3");
    let r = deploy(&f, "test", "60");
    r.assert_status(ROLLED_BACK);
    assert!(
        r.stderr.contains(&format!(
            "root@aquamarine was rolled back: generation 1 of {SYSTEM_PROFILE} ({gen1}) is active"
        )),
        "{r:?}"
    );
    assert_eq!(f.generations(T, SYSTEM_PROFILE), [1]);
    let acts = f.activations(T);
    assert_eq!(
        (acts[2].action.as_str(), acts[2].toplevel.as_str()),
        ("test", gen1.as_str())
    );
}

#[test]
fn killed_after_activation_the_target_rolls_back_by_itself() {
    // No systemd on this target: the watchdog is a detached process.
    let (f, gen1) = fleet_on_generation_1(":nosystemd");
    f.knob(T, "rev", "2");
    // The new system is switched to (and logged) first; its activation then takes one more
    // second, in which rb is killed: it never gets to confirm.
    f.knob(T, "activationSeconds", "1");
    let workdir = f.workdir();
    let flake = f.flake(T);
    let mut rb = fleet_command()
        .arg("run")
        .arg(f.dir())
        .arg(WS)
        .arg("--cwd")
        .arg(&workdir)
        .args(["--", RB, "switch", "--flake", &flake, "--target-host"])
        .arg(target())
        .args(["--confirm-timeout", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // `fleet run` execs rb: killing the child kills rb.
    let activated = eventually(60, || f.activations(T).len() == 2);
    rb.kill().unwrap();
    rb.wait().unwrap();
    assert!(activated, "the new generation was never activated");
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(2));
    assert!(
        eventually(20, || f.current_generation(T, SYSTEM_PROFILE) == Some(1)
            && f.activations(T).len() == 3),
        "no rollback: {:?}",
        f.activations(T)
    );
    assert_eq!(f.activations(T)[2].toplevel, gen1);
    assert!(
        eventually(5, || f.current_system(T).as_deref() == Some(gen1.as_str())),
        "{:?}",
        f.current_system(T)
    );
    let [dir] = watchdog_dirs(&f, T).try_into().unwrap();
    assert_eq!(read(&dir.join("how")), "a detached process\n");
    assert!(
        eventually(5, || read(&dir.join("result"))
            .starts_with("outcome=rolled-back\nreason=timeout\n")),
        "{}",
        read(&dir.join("result"))
    );
    assert!(f.systemd_runs(T).is_empty());
}

#[test]
fn a_rollback_that_fails_is_not_called_a_rollback() {
    let (f, _) = fleet_on_generation_1("");
    // The system running before the deploy cannot be activated again.
    f.knob("broken", "activationExit", "4");
    let broken = f.build_toplevel(T, "broken");
    f.sh(T, &format!("ln -sfn {broken} /run/current-system"))
        .assert_success();
    f.knob(T, "rev", "2");
    f.knob(T, "breakSsh", "true");
    let r = deploy(&f, "switch", "2");
    r.assert_status(UNCONFIRMED);
    assert!(
        r.stderr.contains(&format!(
            "root@aquamarine's watchdog tried to roll back, but switch-to-configuration test of \
             {broken} exited with status 4"
        )),
        "{r:?}"
    );
    assert!(r.stderr.contains("check root@aquamarine"), "{r:?}");
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
}

#[test]
fn the_plan_shows_the_watchdog_and_the_confirmation() {
    let f = Fleet::up(&[WS, T]);
    let r = f.rb(&[
        "boot",
        "--flake",
        &f.flake(T),
        "--target-host",
        &target(),
        "--confirm-timeout",
        "30",
        "--plan",
    ]);
    r.assert_success();
    assert!(
        r.stdout
            .contains("arm-watchdog          rb-watchdog arm /run/rb/"),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains(" 30 boot /nix/var/nix/profiles/system restore-profile"),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("session 4 on root@aquamarine, over a NEW SSH connection, within 30s"),
        "{r:?}"
    );
    assert!(f.activations(T).is_empty());
    let r = f.rb(&["build", "--flake", &f.flake(T), "--confirm-timeout", "3"]);
    r.assert_status(2);
}

#[test]
fn the_confirmation_is_elevated_with_the_same_password() {
    let f = Fleet::up(&[WS, T]);
    let host = format!("deploypw@{T}");
    let args = [
        "switch",
        "--flake",
        &f.flake(T),
        "--target-host",
        &host,
        "-S",
        "--confirm-timeout",
        "30",
    ];
    let r = f.rb_with(RbCall {
        args: &args,
        stdin: Some(format!("{DEPLOYPW_PASSWORD}\n")),
        ..Default::default()
    });
    r.assert_success();
    // No previous system: nothing to go back to, but nothing needed either.
    assert!(
        r.stderr.contains("has no previous system to activate"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("keeps the new configuration (generation 1)"),
        "{r:?}"
    );
    // Probe (it tried the password), copy, activation on the master; the confirmation on
    // its own.
    assert_eq!(delta(Sessions::default(), f.sessions(T)), (2, 4));
    assert!(!r.stderr.contains(DEPLOYPW_PASSWORD));
}

/// `rb ACTION --target-host root@T --confirm-timeout SECONDS` of T's configuration.
fn deploy(f: &Fleet, action: &str, seconds: &str) -> crate::fleet::RunResult {
    f.rb(&[
        action,
        "--flake",
        &f.flake(T),
        "--target-host",
        &target(),
        "--confirm-timeout",
        seconds,
    ])
}

/// Kills rb's SSH control masters (their sockets are under `runtime_dir`): the deploying
/// connection drops, while the target still accepts new ones.
pub fn kill_masters(runtime_dir: &std::path::Path) -> usize {
    let rt = runtime_dir.to_string_lossy().to_string();
    let masters: Vec<u32> = crate::state::processes()
        .into_iter()
        .filter(|p| {
            // The master: the ssh that opened the connection (running rb's probe) and
            // stays in the background; it then names itself `ssh: CONTROL-PATH [mux]`.
            p.cmdline.starts_with("ssh: ")
                && p.cmdline.ends_with("[mux]")
                && p.cmdline.contains(&rt)
        })
        .map(|p| p.pid)
        .collect();
    for pid in &masters {
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
    }
    masters.len()
}

/// Deploys generation 2 with `--confirm-timeout 30` and cuts rb's connection to the target
/// while it activates (its activation takes 2 more seconds once logged); rb's result.
fn deploy_and_cut_the_connection(f: &Fleet) -> crate::fleet::RunResult {
    start_and_cut_the_connection(f).wait(Duration::from_secs(60))
}

/// The same, returning rb while it still runs.
fn start_and_cut_the_connection(f: &Fleet) -> crate::state::Running {
    use crate::state::{runtime_dir, switch_until_activating};
    f.knob(T, "rev", "2");
    f.knob(T, "activationSeconds", "2");
    let rt = runtime_dir(f, "rt");
    let run = switch_until_activating(
        f,
        T,
        &["--confirm-timeout", "30"],
        &[("XDG_RUNTIME_DIR", &rt)],
    );
    assert_eq!(kill_masters(&rt), 1, "rb's control master");
    run
}

#[test]
fn a_connection_lost_during_activation_is_confirmed_over_a_new_one() {
    let (f, _) = fleet_on_generation_1("");
    let started = Instant::now();
    let r = deploy_and_cut_the_connection(&f);
    r.assert_success();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "confirmed without waiting for the timeout: {:?}",
        started.elapsed()
    );
    assert!(
        r.stderr.contains(
            "rb: warning: lost the connection to root@aquamarine while activating the \
             configuration (ssh exit status 255)"
        ),
        "{r:?}"
    );
    assert!(
        r.stderr.contains(
            "confirmed over a new SSH connection: root@aquamarine keeps the new configuration \
             (generation 2)"
        ),
        "{r:?}"
    );
    assert!(!r.stderr.contains("rolled back"), "{r:?}");
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(2));
    // The activation ran to its end without the connection, and rb confirmed after that.
    assert_eq!(f.current_system(T).as_deref(), Some(r.stdout_trimmed()));
    // No rollback activation; generation 2 became the boot default once confirmed.
    assert_eq!(
        calls(&f, r.stdout_trimmed()),
        [
            call("switch", false),
            call("test", true),
            call("boot", true)
        ]
    );
    assert_eq!(f.boot_default(T).as_deref(), Some(r.stdout_trimmed()));
    let [dir] = watchdog_dirs(&f, T).try_into().unwrap();
    assert!(read(&dir.join("result")).starts_with("outcome=confirmed\n"));
    assert!(
        eventually(5, || read(&dir.join("log")).contains("confirmed; exiting")),
        "{}",
        read(&dir.join("log"))
    );
}

#[test]
fn a_connection_lost_during_a_failing_activation_rolls_back() {
    let (f, gen1) = fleet_on_generation_1("");
    f.knob(T, "activationExit", "4");
    let r = deploy_and_cut_the_connection(&f);
    r.assert_status(ROLLED_BACK);
    // The session went on without rb and told the watchdog that the activation failed.
    assert!(
        r.stderr.contains(&format!(
            "rb: error: lost the connection to root@aquamarine while activating the \
             configuration (ssh exit status 255); the profile there is already the new \
             generation, whose activation may not have finished, and the activation failed on \
             root@aquamarine; root@aquamarine was rolled back: generation 1 of {SYSTEM_PROFILE} \
             ({gen1}) is active"
        )),
        "{r:?}"
    );
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    assert_eq!(f.current_system(T).as_deref(), Some(gen1.as_str()));
    let [dir] = watchdog_dirs(&f, T).try_into().unwrap();
    let result = read(&dir.join("result"));
    assert!(
        result.starts_with("outcome=rolled-back\nreason=requested\n"),
        "{result}"
    );
}

/// The fleet has no systemctl of its own (its fake systemd-run runs activation in the
/// foreground), so these tests give the target one, first on its PATH: `is-active UNIT` says
/// `active` while /run/rb-fleet/unit-active exists, `stop` removes that file; every call is
/// logged to /run/rb-fleet/systemctl.log. Returns the flag file's real path.
fn fake_systemctl_with_an_active_unit(f: &Fleet) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = f.host_path(T, "/run/rb-fleet/bin/systemctl");
    std::fs::write(
        &bin,
        "#!/bin/sh\n\
         echo \"$*\" >>/run/rb-fleet/systemctl.log\n\
         case $1 in\n\
         is-active) if [ -e /run/rb-fleet/unit-active ]; then echo active; else echo inactive && exit 3; fi ;;\n\
         stop) rm -f /run/rb-fleet/unit-active ;;\n\
         esac\n",
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let flag = f.host_path(T, "/run/rb-fleet/unit-active");
    std::fs::write(&flag, "").unwrap();
    flag
}

/// The units the fake systemctl was asked about.
fn systemctl_units(f: &Fleet) -> Vec<String> {
    let mut units: Vec<String> = read(&f.host_path(T, "/run/rb-fleet/systemctl.log"))
        .lines()
        .filter_map(|l| l.strip_prefix("is-active "))
        .map(String::from)
        .collect();
    units.dedup();
    units
}

#[test]
fn no_rollback_while_the_activation_unit_is_still_active() {
    use crate::state::{spawn_rb, wait_until};
    let (f, gen1) = fleet_on_generation_1("");
    f.knob(T, "rev", "2");
    f.knob(T, "breakSsh", "true");
    let flag = fake_systemctl_with_an_active_unit(&f);
    let flake = f.flake(T);
    let tgt = target();
    let run = spawn_rb(
        &f,
        &[
            "switch",
            "--flake",
            &flake,
            "--target-host",
            &tgt,
            "--confirm-timeout",
            "1",
        ],
        &[],
        None,
    );
    // rb cannot confirm (sshd is stopped); the watchdog waits for the activation's unit.
    let dir = || watchdog_dirs(&f, T).pop().unwrap_or_default();
    wait_until("the watchdog to wait", Duration::from_secs(60), || {
        read(&dir().join("log")).contains("waiting for the activation (")
    });
    let id = dir().file_name().unwrap().to_string_lossy().to_string();
    let unit = format!("nixos-rebuild-switch-to-configuration-{id}");
    assert!(
        read(&dir().join("log")).contains(&format!("waiting for the activation ({unit}) to end")),
        "{}",
        read(&dir().join("log"))
    );
    // Well past the timeout: still the new generation, no rollback activation.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(f.activations(T).len(), 2);
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(2));
    assert!(!dir().join("decision").exists());
    // Once the unit is over, the timeout counts, then the watchdog rolls back.
    std::fs::remove_file(&flag).unwrap();
    let r = run.wait(Duration::from_secs(60));
    r.assert_status(ROLLED_BACK);
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    assert_eq!(f.activations(T)[2].toplevel, gen1);
    let log = read(&dir().join("log"));
    assert!(
        log.contains(&format!(
            "the activation ({unit}) has ended\nwaiting 1s for a confirmation\nrolling back (timeout)"
        )),
        "{log}"
    );
    assert_eq!(systemctl_units(&f), [unit]);
}

#[test]
fn a_connection_lost_during_activation_is_confirmed_once_its_unit_is_over() {
    let (f, _) = fleet_on_generation_1("");
    let flag = fake_systemctl_with_an_active_unit(&f);
    let mut run = start_and_cut_the_connection(&f);
    // The activation (2 more seconds) ends without rb; the confirming session then waits
    // while the activation's unit is active.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        f.current_system(T).as_deref(),
        f.profile_target(T, SYSTEM_PROFILE).as_deref()
    );
    assert!(!run.finished());
    let [dir] = watchdog_dirs(&f, T).try_into().unwrap();
    assert!(!dir.join("decision").exists());
    std::fs::remove_file(&flag).unwrap();
    let r = run.wait(Duration::from_secs(30));
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
    assert_eq!(
        calls(&f, r.stdout_trimmed()),
        [
            call("switch", false),
            call("test", true),
            call("boot", true)
        ]
    );
    assert_eq!(
        systemctl_units(&f),
        [format!(
            "nixos-rebuild-switch-to-configuration-{}",
            dir.file_name().unwrap().to_string_lossy()
        )]
    );
}

#[test]
fn interrupted_while_trying_to_confirm_rb_stops_and_says_what_follows() {
    use crate::state::switch_until_activating;
    let (f, _) = fleet_on_generation_1("");
    f.knob(T, "rev", "2");
    f.knob(T, "breakSsh", "true");
    let run = switch_until_activating(&f, T, &["--confirm-timeout", "3"], &[]);
    // rb now tries new connections, which sshd refuses.
    std::thread::sleep(Duration::from_millis(1500));
    let stopped = Instant::now();
    run.signal("TERM");
    let r = run.wait(Duration::from_secs(20));
    assert!(stopped.elapsed() < Duration::from_secs(5), "{r:?}");
    r.assert_status(128 + 15);
    assert!(
        r.stderr
            .contains("cannot reach root@aquamarine over a new SSH connection"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains(
            "interrupted before rb could confirm on root@aquamarine: unless the confirmation got \
             there, its watchdog rolls back 3s after the activation"
        ),
        "{r:?}"
    );
    // It does (its result comes once generation 1's activation, which starts sshd again, is
    // over: only then may the fleet go down).
    let [dir] = watchdog_dirs(&f, T).try_into().unwrap();
    assert!(
        eventually(20, || read(&dir.join("result"))
            .starts_with("outcome=rolled-back\nreason=timeout\n")),
        "{}",
        read(&dir.join("log"))
    );
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    assert_eq!(f.activations(T).len(), 3);
}

/// `rb ACTION … --confirm-timeout SECONDS` with more options (`--confirm-check`, `--json`).
fn deploy_with(f: &Fleet, action: &str, seconds: &str, extra: &[&str]) -> crate::fleet::RunResult {
    let flake = f.flake(T);
    let tgt = target();
    let mut args = vec![
        action,
        "--flake",
        &flake,
        "--target-host",
        &tgt,
        "--confirm-timeout",
        seconds,
    ];
    args.extend(extra);
    f.rb(&args)
}

/// Checks that pass: run on the target after the activation, before the confirmation (the
/// boot default they see is still the previous one), elevated like activation; then the
/// confirmation makes generation 2 the boot default. `--json` says so.
#[test]
fn passing_checks_are_confirmed_and_only_then_is_the_new_generation_the_boot_default() {
    let (f, gen1) = fleet_on_generation_1("");
    assert_eq!(f.boot_default(T).as_deref(), Some(gen1.as_str()));
    f.knob(T, "rev", "2");
    let checks = [
        // What the boot default and the running system are while the checks run.
        "cat /run/rb-fleet/boot-default >/run/rb-fleet/boot-at-check",
        "readlink /run/current-system >/run/rb-fleet/running-at-check; id -u >/run/rb-fleet/uid-at-check",
    ];
    let host = format!("deploy@{T}");
    let flake = f.flake(T);
    let r = f.rb(&[
        "switch",
        "--flake",
        &flake,
        "--target-host",
        &host,
        "--sudo",
        "--confirm-timeout",
        "30",
        "--confirm-check",
        checks[0],
        "--confirm-check",
        checks[1],
        "--json",
    ]);
    r.assert_success();
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let gen2 = doc["storePath"].as_str().unwrap().to_string();
    let at_check = |file: &str| read(&f.host_path(T, &format!("/run/rb-fleet/{file}")));
    assert_eq!(at_check("boot-at-check"), format!("{gen1}\n"));
    assert_eq!(at_check("running-at-check"), format!("{gen2}\n"));
    assert_eq!(at_check("uid-at-check"), "0\n", "elevated like activation");
    assert_eq!(f.boot_default(T).as_deref(), Some(gen2.as_str()));
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(2));
    assert_eq!(
        calls(&f, &gen2),
        [
            call("switch", false),
            call("test", true),
            call("boot", true)
        ]
    );
    for (i, check) in checks.iter().enumerate() {
        assert!(
            r.stderr
                .contains(&format!("rb: confirmation check {}: {check}", i + 1)),
            "{r:?}"
        );
    }
    assert_eq!(
        doc["confirmation"],
        serde_json::json!({
            "timeout": 30,
            "outcome": "confirmed",
            "checks": [
                { "command": checks[0], "status": 0, "timedOut": false, "output": [] },
                { "command": checks[1], "status": 0, "timedOut": false, "output": [] },
            ],
            "bootDefault": gen2,
        }),
        "{doc}"
    );
}

/// A check that fails: the target rolls back at once (not at the timeout), rb exits 10 with
/// its own message naming the check and its last lines; the checks after it do not run; the
/// boot default was never changed.
#[test]
fn a_failing_check_rolls_back_at_once_and_is_named_with_its_output() {
    let (f, gen1) = fleet_on_generation_1("");
    f.knob(T, "rev", "2");
    set_boot_default(&f, BOOT_BEFORE);
    let failing = "echo checking the web server; echo 'web server: connection refused' >&2; exit 3";
    let started = Instant::now();
    let r = deploy_with(
        &f,
        "switch",
        "60",
        &[
            "--confirm-check",
            "true",
            "--confirm-check",
            failing,
            "--confirm-check",
            "touch /run/rb-fleet/third-check-ran",
        ],
    );
    r.assert_status(ROLLED_BACK);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "rolled back at once, not after the timeout: {:?}",
        started.elapsed()
    );
    assert!(
        r.stderr.contains(&format!(
            "rb: error: the confirmation check '{failing}' failed (exit status 3) on \
             root@aquamarine: checking the web server; web server: connection refused; \
             root@aquamarine was rolled back: generation 1 of {SYSTEM_PROFILE} ({gen1}) is active"
        )),
        "{r:?}"
    );
    let [dir] = watchdog_dirs(&f, T).try_into().unwrap();
    let log = format!(
        "/run/rb/{}/check-2.log",
        dir.file_name().unwrap().to_string_lossy()
    );
    assert!(
        r.stderr.contains(&format!(
            "hint: the check's whole output is in {log} on root@aquamarine"
        )),
        "{r:?}"
    );
    assert!(r.stdout.is_empty(), "{r:?}");
    assert!(!f.host_path(T, "/run/rb-fleet/third-check-ran").exists());
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    assert_eq!(f.current_system(T).as_deref(), Some(gen1.as_str()));
    assert_eq!(
        calls(&f, &gen1),
        [
            call("switch", true),
            call("test", false),
            call("test", true)
        ]
    );
    assert_eq!(f.boot_default(T).as_deref(), Some(BOOT_BEFORE));
    assert!(
        read(&dir.join("result")).starts_with("outcome=rolled-back\nreason=requested\n"),
        "{}",
        read(&dir.join("result"))
    );
}

/// A check that hangs is stopped within the confirmation window (with what it started), and
/// the target rolls back: exit 10, the check named as not finished in time.
#[test]
fn a_hanging_check_times_out_within_the_window_and_rolls_back() {
    let (f, gen1) = fleet_on_generation_1("");
    f.knob(T, "rev", "2");
    let hanging = "echo waiting for the database; sleep 600";
    let started = Instant::now();
    let r = deploy_with(&f, "switch", "6", &["--confirm-check", hanging, "--json"]);
    r.assert_status(ROLLED_BACK);
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let message = doc["error"]["message"].as_str().unwrap();
    let prefix = format!("the confirmation check '{hanging}' did not finish within ");
    assert!(message.starts_with(&prefix), "{message}");
    assert!(
        message.ends_with(&format!(
            "s on root@aquamarine: waiting for the database; root@aquamarine was rolled back: \
             generation 1 of {SYSTEM_PROFILE} ({gen1}) is active"
        )),
        "{message}"
    );
    // Within the window: at most the timeout.
    let secs: u64 = message[prefix.len()..]
        .split('s')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..6).contains(&secs), "{message}");
    assert!(r.stderr.contains(&format!("rb: error: {message}")), "{r:?}");
    assert_eq!(doc["error"]["status"], 10);
    assert_eq!(doc["confirmation"]["outcome"], "rolled-back");
    assert_eq!(doc["confirmation"]["checks"][0]["timedOut"], true);
    assert_eq!(
        doc["confirmation"]["checks"][0]["status"],
        serde_json::Value::Null
    );
    assert_eq!(doc["confirmation"]["bootDefault"], serde_json::Value::Null);
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    assert_eq!(f.current_system(T).as_deref(), Some(gen1.as_str()));
    assert_eq!(f.boot_default(T).as_deref(), Some(gen1.as_str()));
    // The check's sleep was stopped with it.
    let sleeping = crate::state::processes()
        .into_iter()
        .any(|p| p.cmdline.contains("sleep 600"));
    assert!(!sleeping, "the hanging check's sleep still runs");
}

#[test]
fn confirm_checks_need_a_confirm_timeout_and_show_in_the_plan() {
    let f = Fleet::up(&[WS, T]);
    let flake = f.flake(T);
    let tgt = target();
    let r = f.rb(&[
        "switch",
        "--flake",
        &flake,
        "--target-host",
        &tgt,
        "--confirm-check",
        "true",
    ]);
    r.assert_status(2);
    assert!(
        r.stderr
            .contains("rb: error: --confirm-check needs --confirm-timeout"),
        "{r:?}"
    );
    let r = deploy_with(
        &f,
        "switch",
        "30",
        &[
            "--confirm-check",
            "systemctl is-active nginx",
            "--plan",
            "--json",
        ],
    );
    r.assert_success();
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        doc["plan"]["confirm"]["checks"],
        serde_json::json!(["systemctl is-active nginx"])
    );
    assert_eq!(
        doc["plan"]["confirm"]["boot"],
        format!("{SYSTEM_PROFILE}/bin/switch-to-configuration")
    );
    let r = deploy_with(
        &f,
        "switch",
        "30",
        &["--confirm-check", "systemctl is-active nginx", "--plan"],
    );
    assert!(
        r.stdout
            .contains("checks first, in order, each within the window")
            && r.stdout.contains("  1. systemctl is-active nginx\n"),
        "{r:?}"
    );
    assert!(f.activations(T).is_empty());
}

/// The confirmation's `boot` fails (the boot loader cannot be installed): the new
/// configuration runs and stays the profile's, the boot default stays generation 1, and rb
/// says so (exit 1), never "kept" alone.
#[test]
fn a_boot_that_fails_at_confirmation_is_said() {
    let (f, gen1) = fleet_on_generation_1("");
    f.knob(T, "rev", "2");
    f.knob(T, "bootloaderExit", "1");
    let r = deploy_with(&f, "switch", "30", &["--json"]);
    r.assert_status(1);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let gen2 = doc["storePath"].as_str().unwrap().to_string();
    let [dir] = watchdog_dirs(&f, T).try_into().unwrap();
    let id = dir.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        r.stderr.contains(&format!(
            "rb: error: root@aquamarine keeps the new configuration, but it is not the boot \
             default: switch-to-configuration boot of {gen2} exited with status 1\n\
             hint: the watchdog's log is /run/rb/{id}/log on root@aquamarine"
        )),
        "{r:?}"
    );
    assert_eq!(doc["confirmation"]["outcome"], "confirmed");
    assert_eq!(doc["confirmation"]["bootDefault"], serde_json::Value::Null);
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(2));
    assert_eq!(f.current_system(T).as_deref(), Some(gen2.as_str()));
    assert_eq!(f.boot_default(T).as_deref(), Some(gen1.as_str()));
    assert_eq!(
        calls(&f, &gen2),
        [
            call("switch", false),
            call("test", true),
            call("boot", true)
        ]
    );
}
