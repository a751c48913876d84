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
    let acts = f.activations(T);
    assert_eq!(acts.len(), 2, "no rollback activation: {acts:?}");
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
    let acts: Vec<_> = f
        .activations(T)
        .into_iter()
        .map(|a| (a.action, a.toplevel == gen1))
        .collect();
    assert_eq!(
        acts,
        [
            ("switch".to_string(), true),
            ("switch".to_string(), false),
            ("switch".to_string(), true)
        ]
    );
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
    // The failed switch; the profile put back with its boot entry; the watchdog's switch back.
    let acts = f.activations(T);
    assert_eq!(acts.len(), 4, "{acts:?}");
    assert_eq!(
        (acts[2].action.as_str(), acts[2].toplevel.as_str()),
        ("boot", &*gen1)
    );
    assert_eq!(
        (acts[3].action.as_str(), acts[3].toplevel.as_str()),
        ("switch", &*gen1)
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
            "root@aquamarine's watchdog tried to roll back, but switch-to-configuration switch of \
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
    // The probe (which tries the password), copy and activation on the master; the
    // confirmation on a connection of its own.
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
    use crate::state::{runtime_dir, spawn_rb, wait_until};
    f.knob(T, "rev", "2");
    f.knob(T, "activationSeconds", "2");
    let rt = runtime_dir(f, "rt");
    let flake = f.flake(T);
    let tgt = target();
    let run = spawn_rb(
        f,
        &[
            "switch",
            "--flake",
            &flake,
            "--target-host",
            &tgt,
            "--confirm-timeout",
            "30",
        ],
        &[("XDG_RUNTIME_DIR", &rt)],
        None,
    );
    wait_until("the activation", Duration::from_secs(60), || {
        f.activations(T).len() == 2
    });
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
    let acts = f.activations(T);
    assert_eq!(acts.len(), 2, "no rollback activation: {acts:?}");
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
    assert_eq!(f.activations(T).len(), 2);
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
    use crate::state::{spawn_rb, wait_until};
    let (f, _) = fleet_on_generation_1("");
    f.knob(T, "rev", "2");
    f.knob(T, "breakSsh", "true");
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
            "3",
        ],
        &[],
        None,
    );
    wait_until("the activation", Duration::from_secs(60), || {
        f.activations(T).len() == 2
    });
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
