//! Deploys to the machine rb runs on (the fleet's workstation): every action, what
//! switch-to-configuration was asked, which generation the host ends on, exit statuses.

use crate::fleet::{Fleet, RbCall, RunCall, SYSTEM_PROFILE};

const WS: &str = "ws";

fn fleet() -> Fleet {
    Fleet::up(&[WS])
}

/// The unit name rb gives systemd-run, from a line of the fake systemd-run's log.
fn unit_of(line: &str) -> &str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("unit="))
        .unwrap_or("")
}

#[test]
fn switch_builds_sets_the_profile_and_activates_with_ngs_environment() {
    let f = fleet();
    let r = f.rb_with(RbCall {
        args: &["switch", "--flake", &f.flake(WS)],
        env: vec![
            ("LOCALE_ARCHIVE".into(), "/locale/archive".into()),
            ("RB_TEST_LEAK".into(), "must-not-arrive".into()),
        ],
        ..Default::default()
    });
    r.assert_success();
    let path = r.stdout_trimmed().to_string();
    assert!(path.starts_with("/nix/store/") && path.ends_with("-nixos-system-ws-26.05.1"));
    assert_eq!(
        r.stdout,
        format!("{path}\n"),
        "stdout is the store path line only"
    );
    assert_eq!(f.generations(WS, SYSTEM_PROFILE), [1]);
    assert_eq!(
        f.profile_target(WS, SYSTEM_PROFILE).as_deref(),
        Some(&*path)
    );
    assert_eq!(f.current_system(WS).as_deref(), Some(&*path));

    let acts = f.activations(WS);
    assert_eq!(acts.len(), 1);
    let a = &acts[0];
    assert_eq!((a.action.as_str(), a.uid), ("switch", 0));
    assert_eq!(a.install_bootloader.as_deref(), Some("0"));
    assert_eq!(a.toplevel, path);
    assert_eq!(a.specialisation, None);
    // Through systemd-run: the service gets only the variables named with -E (and its PATH).
    assert_eq!(
        a.env,
        ["LOCALE_ARCHIVE", "NIXOS_INSTALL_BOOTLOADER", "PATH"],
        "{a:?}"
    );
    let runs = f.systemd_runs(WS);
    assert_eq!(runs.len(), 1);
    assert!(
        unit_of(&runs[0]).starts_with("nixos-rebuild-switch-to-configuration-"),
        "{runs:?}"
    );
    assert!(
        runs[0].contains("env=LOCALE_ARCHIVE,NIXOS_NO_CHECK,NIXOS_INSTALL_BOOTLOADER"),
        "{runs:?}"
    );
    assert!(
        !f.workdir().join("result").exists(),
        "switch leaves no ./result"
    );

    // A second run gets a unit name of its own.
    f.knob(WS, "rev", "2");
    f.rb(&["switch", "--flake", &f.flake(WS)]).assert_success();
    let runs = f.systemd_runs(WS);
    assert_ne!(unit_of(&runs[0]), unit_of(&runs[1]));
    assert_eq!(f.generations(WS, SYSTEM_PROFILE), [1, 2]);
    assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(2));
}

#[test]
fn without_systemd_the_environment_is_exactly_ngs() {
    let f = Fleet::up(&["ws:nosystemd"]);
    let r = f.rb_with(RbCall {
        args: &["test", "--flake", &f.flake(WS), "--install-bootloader"],
        env: vec![
            ("NIXOS_NO_CHECK".into(), "1".into()),
            ("RB_TEST_LEAK".into(), "x".into()),
        ],
        ..Default::default()
    });
    r.assert_success();
    let a = &f.activations(WS)[0];
    assert_eq!(a.action, "test");
    assert_eq!(a.install_bootloader.as_deref(), Some("1"));
    // sh adds PWD/SHLVL/_ to any script it runs; nothing of rb's own environment leaks.
    let env: Vec<&str> = a
        .env
        .iter()
        .map(String::as_str)
        .filter(|v| !["PWD", "SHLVL", "_"].contains(v))
        .collect();
    assert_eq!(env, ["NIXOS_INSTALL_BOOTLOADER", "NIXOS_NO_CHECK", "PATH"]);
    assert!(f.systemd_runs(WS).is_empty());
    // test changes no profile.
    assert!(f.generations(WS, SYSTEM_PROFILE).is_empty());
    assert_eq!(f.current_system(WS).as_deref(), Some(r.stdout_trimmed()));
}

#[test]
fn no_systemd_run_when_asked() {
    let f = fleet();
    f.rb_with(RbCall {
        args: &["switch", "--flake", &f.flake(WS)],
        env: vec![("NIXOS_REBUILD_NO_SYSTEMD_RUN".into(), "1".into())],
        ..Default::default()
    })
    .assert_success();
    assert!(f.systemd_runs(WS).is_empty());
    assert_eq!(f.activations(WS).len(), 1);
}

#[test]
fn boot_sets_the_profile_and_installs_the_bootloader_without_switching() {
    let f = fleet();
    let r = f.rb(&["boot", "--flake", &f.flake(WS), "--install-bootloader"]);
    r.assert_success();
    let a = &f.activations(WS)[0];
    assert_eq!(a.action, "boot");
    assert_eq!(a.install_bootloader.as_deref(), Some("1"));
    assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(1));
    assert_eq!(
        f.current_system(WS),
        None,
        "boot does not switch the running system"
    );
}

#[test]
fn build_leaves_result_and_activates_nothing() {
    let f = fleet();
    let r = f.rb(&["build", "--flake", &f.flake(WS)]);
    r.assert_success();
    let link = std::fs::read_link(f.workdir().join("result")).expect("./result");
    assert_eq!(link.to_string_lossy(), r.stdout_trimmed());
    assert!(f.activations(WS).is_empty());
    assert!(f.generations(WS, SYSTEM_PROFILE).is_empty());
}

#[test]
fn dry_build_builds_nothing_and_prints_nothing() {
    let f = fleet();
    let r = f.rb(&["dry-run", "--flake", &f.flake(WS)]);
    r.assert_success();
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("will be built"), "{r:?}");
    // Nix's own words, not its JSON.
    assert!(!r.stderr.contains("\"drvPath\""), "{r:?}");
    assert!(!f.workdir().join("result").exists());
    assert!(f.activations(WS).is_empty());
}

#[test]
fn dry_activate_asks_switch_to_configuration_and_changes_no_profile() {
    let f = fleet();
    f.rb(&["dry-activate", "--flake", &f.flake(WS)])
        .assert_success();
    assert_eq!(f.activations(WS)[0].action, "dry-activate");
    assert!(f.generations(WS, SYSTEM_PROFILE).is_empty());
    assert_eq!(f.current_system(WS), None);
}

#[test]
fn classic_and_file_modes() {
    let f = fleet();
    // <nixpkgs/nixos> picks the host's own configuration.
    let r = f.rb_with(RbCall {
        args: &["switch", "--no-flake"],
        env: vec![("NIX_PATH".into(), f.nix_path())],
        ..Default::default()
    });
    r.assert_success();
    assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(1));
    assert!(r.stdout_trimmed().ends_with("-nixos-system-ws-26.05.1"));

    f.knob("other", "rev", "7");
    let file = f.config_dir().join("default.nix");
    let r = f.rb(&["boot", "-f", file.to_str().unwrap(), "-A", "other"]);
    r.assert_success();
    assert!(
        r.stdout_trimmed().ends_with("-nixos-system-other-26.05.7"),
        "{r:?}"
    );
    assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(2));
}

#[test]
fn flake_name_defaults_to_the_hostname() {
    let f = fleet();
    let config = f.config_dir();
    let r = f.rb(&["build", "--flake", config.to_str().unwrap()]);
    r.assert_success();
    assert!(
        r.stdout_trimmed().ends_with("-nixos-system-ws-26.05.1"),
        "{r:?}"
    );
}

#[test]
fn profile_name_creates_its_directory() {
    let f = fleet();
    f.rb(&["switch", "--flake", &f.flake(WS), "-p", "web"])
        .assert_success();
    let profile = "/nix/var/nix/profiles/system-profiles/web";
    assert_eq!(f.generations(WS, profile), [1]);
    assert!(f.generations(WS, SYSTEM_PROFILE).is_empty());
}

#[test]
fn specialisation_activates_its_own_switch_to_configuration() {
    let f = fleet();
    f.rb(&["switch", "--flake", &f.flake(WS), "-c", "web"])
        .assert_success();
    let a = &f.activations(WS)[0];
    assert_eq!(a.specialisation.as_deref(), Some("web"));
    assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(1));
}

#[test]
fn a_missing_specialisation_fails_before_anything_changes() {
    let f = fleet();
    let r = f.rb(&["switch", "--flake", &f.flake(WS), "-c", "nope"]);
    r.assert_status(1);
    assert!(
        r.stderr
            .lines()
            .any(|l| l == "rb: error: specialisation not found: nope"),
        "{r:?}"
    );
    assert!(f.generations(WS, SYSTEM_PROFILE).is_empty());
    assert!(f.activations(WS).is_empty());
}

#[test]
fn a_failing_build_exits_with_nixs_status_and_changes_nothing() {
    let f = fleet();
    f.seed_generation(WS, WS);
    f.knob(WS, "rev", "2");
    f.knob(WS, "failBuild", "true");
    let nix = f.sh(
        WS,
        &format!(
            "nix build --no-link '{}#nixosConfigurations.\"ws\".config.system.build.toplevel'",
            f.config_dir().display()
        ),
    );
    assert_ne!(nix.status, 0);
    let r = f.rb(&["switch", "--flake", &f.flake(WS)]);
    r.assert_status(nix.status);
    assert_eq!(r.stdout, "");
    // Nix runs quiet (README, "Progress"), but the failed build's log still shows.
    assert!(
        r.stderr.contains("failed on purpose (knob failBuild)"),
        "{r:?}"
    );
    assert_eq!(f.generations(WS, SYSTEM_PROFILE), [1]);
    assert!(f.activations(WS).is_empty());
}

#[test]
fn an_unknown_attribute_is_an_evaluation_error() {
    let f = fleet();
    f.seed_generation(WS, WS);
    let r = f.rb(&[
        "switch",
        "--flake",
        &format!("{}#no-such-host", f.config_dir().display()),
    ]);
    r.assert_status(1);
    assert!(r.stderr.contains("no-such-host"), "{r:?}");
    assert_eq!(f.generations(WS, SYSTEM_PROFILE), [1]);
    assert!(f.activations(WS).is_empty());
}

#[test]
fn activation_status_is_passed_on_and_the_profile_restored() {
    let f = fleet();
    let first = f.seed_generation(WS, WS);
    f.knob(WS, "rev", "2");
    f.knob(WS, "activationExit", "4");
    let r = f.rb(&["switch", "--flake", &f.flake(WS)]);
    r.assert_status(4);
    assert_eq!(r.stdout, "");
    // The failed switch, then the restored generation's `boot`, so that the boot loader's
    // default is the profile's again.
    let acts = f.activations(WS);
    assert_eq!(acts.len(), 2, "{acts:?}");
    assert_eq!(acts[0].action, "switch");
    assert_eq!(
        (acts[1].action.as_str(), acts[1].toplevel.as_str()),
        ("boot", &*first)
    );
    assert_eq!(acts[1].install_bootloader.as_deref(), Some("0"));
    assert_eq!(f.profile_target(WS, SYSTEM_PROFILE), Some(first));
    assert!(r.stderr.contains("back where it was"), "{r:?}");

    // On a host that had no profile at all, the profile is removed again.
    let g = fleet();
    g.knob(WS, "activationExit", "4");
    g.rb(&["boot", "--flake", &g.flake(WS)]).assert_status(4);
    assert_eq!(g.profile_target(WS, SYSTEM_PROFILE), None);
}

#[test]
fn rollback_switch_goes_to_the_previous_generation() {
    let f = fleet();
    let first = f.seed_generation(WS, WS);
    f.knob(WS, "rev", "2");
    f.rb(&["switch", "--flake", &f.flake(WS)]).assert_success();
    assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(2));

    let r = f.rb(&["switch", "--rollback"]);
    r.assert_success();
    assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(1));
    let last = f.activations(WS).pop().unwrap();
    assert_eq!(
        (last.action.as_str(), last.toplevel.as_str()),
        ("switch", &*first)
    );
    assert_eq!(r.stdout_trimmed(), format!("{SYSTEM_PROFILE}-1-link"));

    // Already at the oldest: an error, nothing changes.
    let r = f.rb(&["switch", "--rollback"]);
    r.assert_status(1);
    assert!(
        r.stderr.contains("could not find previous generation"),
        "{r:?}"
    );
    assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(1));
    assert_eq!(f.activations(WS).len(), 2);
}

#[test]
fn rollback_test_and_build_use_the_newest_other_generation() {
    let f = fleet();
    f.seed_generation(WS, WS);
    f.knob(WS, "rev", "2");
    let second = f.seed_generation(WS, WS);
    // Make generation 1 current again; the newest other one is 2.
    f.sh(
        WS,
        &format!("nix-env -p {SYSTEM_PROFILE} --switch-generation 1"),
    )
    .assert_success();
    let r = f.rb(&["test", "--rollback"]);
    r.assert_success();
    let a = f.activations(WS).pop().unwrap();
    assert_eq!((a.action.as_str(), a.toplevel.as_str()), ("test", &*second));
    assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(1));
    let r = f.rb(&["build", "--rollback"]);
    r.assert_success();
    assert_eq!(r.stdout_trimmed(), format!("{SYSTEM_PROFILE}-2-link"));

    let empty = fleet();
    let r = empty.rb(&["build", "--rollback"]);
    r.assert_status(1);
    assert!(r.stderr.contains("rb: error:"), "{r:?}");
}

#[test]
fn local_sudo_elevates_only_activation() {
    let f = fleet();
    let r = f.rb_with(RbCall {
        args: &["switch", "--flake", &f.flake(WS), "--sudo"],
        user: Some("deploy"),
        ..Default::default()
    });
    r.assert_success();
    let a = &f.activations(WS)[0];
    assert_eq!(a.uid, 0, "switch-to-configuration ran as root");
    assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(1));
    // The build ran as deploy through the daemon: the path is in the store, owned by root.
    assert!(f.has_path(WS, r.stdout_trimmed()));
}

#[test]
fn local_sudo_password_is_asked_once_and_checked_first() {
    let f = fleet();
    let args = ["switch", "--flake", &f.flake(WS), "-S"];
    let r = f.rb_with(RbCall {
        args: &args,
        user: Some("deploypw"),
        stdin: Some(format!("{}\n", crate::fleet::DEPLOYPW_PASSWORD)),
        ..Default::default()
    });
    r.assert_success();
    assert_eq!(f.activations(WS)[0].uid, 0);

    f.knob(WS, "rev", "2");
    let r = f.rb_with(RbCall {
        args: &args,
        user: Some("deploypw"),
        stdin: Some("wrong\n".into()),
        ..Default::default()
    });
    r.assert_status(1);
    assert!(r.stderr.contains("password was not accepted"), "{r:?}");
    assert!(
        !r.stderr.contains("building"),
        "checked before building: {r:?}"
    );
    assert_eq!(f.activations(WS).len(), 1);
}

#[test]
fn plan_prints_the_steps_and_runs_nothing() {
    let f = fleet();
    let r = f.rb(&["switch", "--flake", &f.flake(WS), "--plan"]);
    r.assert_success();
    for needle in [
        "session 1 on local",
        "build",
        "nix-env -p /nix/var/nix/profiles/system --set $system",
        "switch-to-configuration switch",
    ] {
        assert!(r.stdout.contains(needle), "{needle:?} missing: {r:?}");
    }
    let json = f.rb(&["boot", "--flake", &f.flake(WS), "--plan", "--json"]);
    json.assert_success();
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["plan"]["action"], "boot");
    assert_eq!(doc["plan"]["sessions"].as_array().unwrap().len(), 2);
    assert!(f.activations(WS).is_empty());
    assert!(f.generations(WS, SYSTEM_PROFILE).is_empty());
    let built = std::fs::read_dir(f.host_path(WS, "/nix/store"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().contains("nixos-system"))
        })
        .unwrap_or(false);
    assert!(!built, "nothing was built");
}

#[test]
fn usage_errors_exit_2_with_one_line_and_change_nothing() {
    let f = fleet();
    for args in [
        &["switch", "--no-such-option"][..],
        &["switch", "--profile-name"],
        &["frobnicate"],
        &["switch", "--flake", "a#b#c"],
        &["boot", "-c", "web"],
        &["switch", "--sudo", "--run0"],
    ] {
        let r = f.rb(args);
        r.assert_status(2);
        let first = r.stderr.lines().next().unwrap_or("");
        assert!(first.starts_with("rb: error: "), "{args:?}: {r:?}");
        assert_eq!(r.stdout, "");
    }
    assert!(f.activations(WS).is_empty());
    let help = f.rb(&["--help"]);
    help.assert_success();
    assert!(help.stdout.contains("--target-host"));
    f.rb(&[]).assert_success();
}

#[test]
fn deprecated_options_warn_like_ng() {
    let f = fleet();
    let r = f.rb(&["build", "--flake", &f.flake(WS), "--fast", "--no-build-nix"]);
    r.assert_success();
    assert!(
        r.stderr
            .contains("rb: warning: --fast is deprecated, use --no-reexec instead"),
        "{r:?}"
    );
    assert!(r.stderr.contains("--no-build-nix is deprecated"));
}

/// `--target-host localhost` deploys this machine, without SSH.
#[test]
fn target_host_localhost_is_this_machine() {
    let f = fleet();
    let r = f.rb(&[
        "switch",
        "--flake",
        &f.flake(WS),
        "--target-host",
        "localhost",
    ]);
    r.assert_success();
    assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(1));
    assert_eq!(f.activations(WS)[0].action, "switch");
}

#[test]
fn keep_generation_on_failure_leaves_the_new_generation_and_says_so() {
    for (flag, env) in [
        (Some("--keep-generation-on-failure"), vec![]),
        (
            None,
            vec![(
                "NIXOS_REBUILD_KEEP_GENERATION_ON_FAILURE".to_string(),
                "1".to_string(),
            )],
        ),
    ] {
        let f = fleet();
        let first = f.seed_generation(WS, WS);
        f.knob(WS, "rev", "2");
        f.knob(WS, "activationExit", "4");
        let mut args = vec!["switch", "--flake"];
        let flake = f.flake(WS);
        args.push(&flake);
        args.extend(flag);
        let r = f.rb_with(RbCall {
            args: &args,
            env,
            ..Default::default()
        });
        r.assert_status(4);
        // Only the failed switch ran: no `boot` of the previous generation.
        let acts = f.activations(WS);
        assert_eq!(acts.len(), 1, "{acts:?}");
        let now = f.profile_target(WS, SYSTEM_PROFILE).unwrap();
        assert_ne!(now, first);
        assert_eq!(acts[0].toplevel, now);
        assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(2));
        assert!(r.stderr.contains("stays at the new generation"), "{r:?}");
    }
}

/// `/etc/nixos/system.nix` (a whole system expression) is built when no flake is used, and
/// `-A` alone picks from it; a `nixos-system` entry of `NIX_PATH` comes first.
#[test]
fn a_whole_system_expression_in_etc_nixos() {
    let f = fleet();
    let all = f.config_dir().join("default.nix");
    let system_nix = f.host_path(WS, "/etc/nixos/system.nix");
    std::fs::write(&system_nix, format!("(import {}).{WS}\n", all.display())).unwrap();
    let r = f.rb(&["switch"]);
    r.assert_success();
    assert!(
        r.stdout_trimmed().ends_with("-nixos-system-ws-26.05.1"),
        "{r:?}"
    );
    assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(1));

    // `-A other` without `-f` reads /etc/nixos/system.nix, here the set of every configuration.
    std::fs::write(&system_nix, format!("import {}\n", all.display())).unwrap();
    f.knob("other", "rev", "3");
    let r = f.rb(&["build", "-A", "other"]);
    r.assert_success();
    assert!(
        r.stdout_trimmed().ends_with("-nixos-system-other-26.05.3"),
        "{r:?}"
    );

    // <nixos-system> wins over /etc/nixos/system.nix (given with -I: the fleet's nix.conf sets
    // `nix-path`, which Nix 2.8 lets win over NIX_PATH).
    let elsewhere = f.workdir().join("elsewhere.nix");
    std::fs::write(&elsewhere, format!("(import {}).other\n", all.display())).unwrap();
    let include = format!("nixos-system={}", elsewhere.display());
    let r = f.rb(&["build", "-I", &include]);
    r.assert_success();
    assert!(
        r.stdout_trimmed().ends_with("-nixos-system-other-26.05.3"),
        "{r:?}"
    );
}

/// `NIXOS_REBUILD_USE_NOM`: with `nom` on the PATH and stderr a terminal (here a pty from
/// `script`), the local build goes through it; without a terminal it does not. The fake `nom`
/// and `nom-build` log their calls and hand over to Nix.
#[test]
fn nom_builds_when_asked_and_stderr_is_a_terminal() {
    use std::os::unix::fs::PermissionsExt;
    let f = fleet();
    for (name, exec) in [
        ("nom", "[ \"$1\" = build ] && shift; exec nix build \"$@\""),
        ("nom-build", "exec nix-build \"$@\""),
    ] {
        let fake = f.host_path(WS, &format!("/run/rb-fleet/bin/{name}"));
        std::fs::write(
            &fake,
            format!("#!/bin/sh\necho \"{name} $*\" >>/run/rb-fleet/nom.log\n{exec}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let log = f.host_path(WS, "/run/rb-fleet/nom.log");
    let use_nom = || vec![("NIXOS_REBUILD_USE_NOM".to_string(), "1".to_string())];
    let in_terminal = |rb_args: &str| {
        let line = format!("{} {rb_args}", crate::fleet::RB);
        f.run(
            WS,
            RunCall {
                argv: &["script", "-qec", &line, "/dev/null"],
                env: use_nom(),
                user: None,
                stdin: None,
                cwd: Some(f.workdir()),
                path: None,
            },
        )
    };
    in_terminal(&format!("switch --flake {}", f.flake(WS))).assert_success();
    assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(1));
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(calls.starts_with("nom build "), "{calls}");

    let file = f.config_dir().join("default.nix");
    f.knob("other", "rev", "5");
    in_terminal(&format!("build -f {} -A other", file.display())).assert_success();
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().count(), 2, "{calls}");
    assert!(
        calls.lines().nth(1).unwrap().starts_with("nom-build "),
        "{calls}"
    );

    // stderr not a terminal: Nix's own build, as ng does.
    f.knob(WS, "rev", "2");
    f.rb_with(RbCall {
        args: &["switch", "--flake", &f.flake(WS)],
        env: use_nom(),
        ..Default::default()
    })
    .assert_success();
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 2);
    assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(2));
}

#[test]
fn generation_n_here() {
    let f = fleet();
    f.seed_generation(WS, WS);
    f.knob(WS, "rev", "2");
    f.rb(&["switch", "--flake", &f.flake(WS)]).assert_success();
    f.rb(&["boot", "--generation", "1"]).assert_success();
    assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(1));
    let last = f.activations(WS).pop().unwrap();
    assert_eq!(last.action, "boot");
    let r = f.rb(&["switch", "--generation", "5"]);
    r.assert_status(1);
    assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(1));
}
