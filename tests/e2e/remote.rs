//! Deploys over SSH: target host, build host, both, the same one; elevation; failures.
//! sshd's own log counts TCP connections and remote sessions (round trips).

use crate::fleet::{
    DEPLOYPW_PASSWORD, Fleet, HOST_PATH, RbCall, RunCall, RunResult, SYSTEM_PROFILE, Sessions,
};
use std::path::Path;

const WS: &str = "ws";
const T: &str = "aquamarine";
const B: &str = "builder";

/// Whether `host` built configuration `config`'s toplevel itself: Nix keeps a build log on
/// the machine that ran the builder.
fn built_on(f: &Fleet, host: &str, config: &str) -> bool {
    fn walk(dir: &Path, needle: &str) -> bool {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, needle)
                } else {
                    e.file_name().to_string_lossy().contains(needle)
                }
            })
    }
    walk(
        &f.host_path(host, "/nix/var/log/nix/drvs"),
        &format!("-nixos-system-{config}-"),
    )
}

/// `rb switch` of the target's configuration to `host`, with `extra` options.
fn switch_to(f: &Fleet, host: &str, extra: &[&str]) -> RunResult {
    let flake = f.flake(T);
    let mut args = vec!["switch", "--flake", &flake, "--target-host", host];
    args.extend(extra);
    f.rb(&args)
}

/// `rb switch` of the target's configuration, built on the builder, to root@ the target.
fn switch_through_builder(f: &Fleet) -> RunResult {
    let target = format!("root@{T}");
    f.rb(&[
        "switch",
        "--flake",
        &f.flake(T),
        "--build-host",
        B,
        "--target-host",
        &target,
    ])
}

/// `rb switch -S` of the target's configuration to `user@` the target, `password` on stdin.
fn switch_with_password(f: &Fleet, user: &str, password: &str) -> RunResult {
    let host = format!("{user}@{T}");
    f.rb_with(RbCall {
        args: &[
            "switch",
            "--flake",
            &f.flake(T),
            "--target-host",
            &host,
            "-S",
        ],
        stdin: Some(format!("{password}\n")),
        ..Default::default()
    })
}

fn sessions(connections: usize, sessions: usize) -> Sessions {
    Sessions {
        connections,
        sessions,
    }
}

#[test]
fn target_host_builds_here_copies_and_activates_there_in_two_sessions() {
    let f = Fleet::up(&[WS, T]);
    let r = switch_to(&f, &format!("root@{T}"), &[]);
    r.assert_success();
    let path = r.stdout_trimmed();
    assert!(path.ends_with("-nixos-system-aquamarine-26.05.1"), "{r:?}");
    assert_eq!(f.generations(T, SYSTEM_PROFILE), [1]);
    assert_eq!(f.profile_target(T, SYSTEM_PROFILE).as_deref(), Some(path));
    let a = &f.activations(T)[0];
    assert_eq!(
        (a.action.as_str(), a.uid, a.hostname.as_str()),
        ("switch", 0, T)
    );
    assert_eq!(
        f.systemd_runs(T).len(),
        1,
        "activation ran under systemd-run"
    );
    assert!(built_on(&f, WS, T) && !built_on(&f, T, T));
    assert!(f.generations(WS, SYSTEM_PROFILE).is_empty());
    assert!(f.activations(WS).is_empty());
    // One connection: its first session, the probe (src/probe.rs), during the build; one for
    // the copy, one for profile + activation.
    assert_eq!(f.sessions(T), sessions(1, 3));
}

#[test]
fn the_default_name_is_the_targets_hostname() {
    let f = Fleet::up(&[WS, T]);
    let config = f.config_dir();
    let r = f.rb(&[
        "boot",
        "--flake",
        config.to_str().unwrap(),
        "--target-host",
        T,
    ]);
    r.assert_success();
    assert!(
        r.stdout_trimmed()
            .ends_with("-nixos-system-aquamarine-26.05.1"),
        "{r:?}"
    );
    assert_eq!(f.activations(T)[0].action, "boot");
    // The name is guessed from the destination and checked by the probe: the sessions of
    // a run with `#name`.
    assert_eq!(f.sessions(T), sessions(1, 3));
}

/// With `--flake FLAKE` (no `#name`) the configuration's name is guessed from the target
/// (`root@aquamarine` → `aquamarine`), so its connection opens while the build runs, as
/// with `#name`: its probe's session starts before the build has made the toplevel.
#[test]
fn the_guessed_name_lets_the_connection_open_during_the_build() {
    let f = Fleet::up(&[WS, T]);
    let config = f.config_dir().display().to_string();
    let target = format!("root@{T}");
    // A probe that refuses the target (deploy is not root, no --sudo) stops a build that
    // had started: without the guess rb would have connected first and never built.
    f.knob(T, "buildSeconds", "60");
    let started = std::time::Instant::now();
    let r = f.rb(&[
        "switch",
        "--flake",
        &config,
        "--target-host",
        &format!("deploy@{T}"),
    ]);
    r.assert_status(1);
    assert!(r.stderr.contains("rb: build on local"), "{r:?}");
    assert!(r.stderr.contains("not root"), "{r:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(50),
        "{r:?}"
    );
    assert!(
        !f.has_path(WS, &toplevel_path(&f)),
        "the build was stopped: {r:?}"
    );
    assert_eq!(f.sessions(T), sessions(1, 1), "only the probe ran there");
    f.knob(T, "buildSeconds", "4");
    let toplevel = toplevel_path(&f);
    let (r, probed_while_building) = std::thread::scope(|scope| {
        let run = scope.spawn(|| f.rb(&["switch", "--flake", &config, "--target-host", &target]));
        let mut seen = None;
        while !run.is_finished() && seen.is_none() {
            if f.sessions(T).sessions >= 1 {
                seen = Some(!f.has_path(WS, &toplevel));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        (run.join().unwrap(), seen)
    });
    r.assert_success();
    assert_eq!(r.stdout_trimmed(), toplevel, "{r:?}");
    assert_eq!(probed_while_building, Some(true), "{r:?}");
    assert_eq!(f.sessions(T), sessions(2, 4));
    // The same as with `#name`.
    f.knob(T, "buildSeconds", "0");
    let before = f.sessions(T);
    switch_to(&f, &target, &[]).assert_success();
    let after = f.sessions(T);
    assert_eq!(
        sessions(
            after.connections - before.connections,
            after.sessions - before.sessions
        ),
        sessions(1, 3)
    );
}

/// A target named by an alias that is not its host name: the guess (the alias) is wrong,
/// its probe says so, and rb builds the configuration named after the host's real name over
/// the same connection: no second connection, no second probe.
#[test]
fn a_wrong_guess_builds_again_with_the_targets_host_name() {
    let f = Fleet::up(&[WS, T]);
    let ssh_config = f.ssh_config_with_alias("beryl", T);
    let config = f.config_dir().display().to_string();
    let rb = |f: &Fleet| {
        f.rb_with(RbCall {
            args: &["switch", "--flake", &config, "--target-host", "root@beryl"],
            env: vec![("NIX_SSHOPTS".into(), format!("-F {}", ssh_config.display()))],
            ..Default::default()
        })
    };
    let note =
        format!("rb: root@beryl's host name is '{T}', not 'beryl': building its configuration");

    // The flake has no configuration `beryl`: Nix fails at once; rb waits for the probe.
    let r = rb(&f);
    r.assert_success();
    assert!(
        r.stdout_trimmed()
            .ends_with("-nixos-system-aquamarine-26.05.1"),
        "{r:?}"
    );
    assert_eq!(r.stderr.matches(&note).count(), 1, "{r:?}");
    assert!(!r.stderr.contains("rb: error:"), "{r:?}");
    assert_eq!(f.activations(T).len(), 1);
    assert_eq!(f.sessions(T), sessions(1, 3));

    // A configuration `beryl` that exists and builds slowly: the probe stops its build.
    f.knob("beryl", "buildSeconds", "60");
    f.knob(T, "rev", "2");
    let started = std::time::Instant::now();
    let r = rb(&f);
    r.assert_success();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(50),
        "the guessed build was stopped: {r:?}"
    );
    assert_eq!(r.stderr.matches(&note).count(), 1, "{r:?}");
    assert!(
        r.stdout_trimmed()
            .ends_with("-nixos-system-aquamarine-26.05.2"),
        "{r:?}"
    );
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(2));
    assert_eq!(f.sessions(T), sessions(2, 6));
}

#[test]
fn build_host_only_builds_there_and_activates_here() {
    let f = Fleet::up(&[WS, B]);
    let r = f.rb(&["switch", "--flake", &f.flake(WS), "--build-host", B]);
    r.assert_success();
    assert!(built_on(&f, B, WS), "built on the builder");
    assert!(!built_on(&f, WS, WS), "nothing built here");
    assert!(f.has_path(WS, r.stdout_trimmed()), "result copied back");
    assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(1));
    assert_eq!(f.activations(WS).len(), 1);
    assert!(f.activations(B).is_empty());
    // Probe, derivation in, realise, result out: four sessions on one connection.
    assert_eq!(f.sessions(B), sessions(1, 4));
}

#[test]
fn build_and_target_hosts_copy_directly_between_them() {
    let f = Fleet::up(&[WS, B, T]);
    let r = switch_through_builder(&f);
    r.assert_success();
    let path = r.stdout_trimmed();
    assert!(built_on(&f, B, T));
    assert!(!built_on(&f, WS, T) && !built_on(&f, T, T));
    assert!(f.has_path(T, path));
    assert!(
        !f.has_path(WS, path),
        "the closure did not travel through here"
    );
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    assert!(!r.stderr.contains("relaying"), "{r:?}");
    // The target saw rb's connection and the builder's own.
    assert_eq!(f.sessions(T).connections, 2);
    assert_eq!(f.sessions(B), sessions(1, 4));
}

#[test]
fn the_same_build_and_target_host_needs_no_copy() {
    let f = Fleet::up(&[WS, T]);
    let host = format!("root@{T}");
    let r = f.rb(&[
        "test",
        "--flake",
        &f.flake(T),
        "--build-host",
        &host,
        "--target-host",
        &host,
    ]);
    r.assert_success();
    assert!(built_on(&f, T, T) && !built_on(&f, WS, T));
    assert_eq!(f.activations(T)[0].action, "test");
    // Probe; derivation in; realise and activate in one session.
    assert_eq!(f.sessions(T), sessions(1, 3));
}

#[test]
fn profile_name_specialisation_and_bootloader_on_a_fresh_target() {
    let f = Fleet::up(&[WS, T]);
    switch_to(&f, T, &["-p", "web", "-c", "web", "--install-bootloader"]).assert_success();
    assert_eq!(
        f.generations(T, "/nix/var/nix/profiles/system-profiles/web"),
        [1]
    );
    let a = &f.activations(T)[0];
    assert_eq!(a.specialisation.as_deref(), Some("web"));
    assert_eq!(a.install_bootloader.as_deref(), Some("1"));
}

#[test]
fn rollback_on_the_target() {
    let f = Fleet::up(&[WS, T]);
    let first = f.seed_generation(T, T);
    f.knob(T, "rev", "2");
    f.rb(&["switch", "--flake", &f.flake(T), "--target-host", T])
        .assert_success();
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(2));
    let r = f.rb(&["switch", "--rollback", "--target-host", T]);
    r.assert_success();
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    let a = f.activations(T).pop().unwrap();
    assert_eq!(a.toplevel, first);
    assert!(f.generations(WS, SYSTEM_PROFILE).is_empty());
}

#[test]
fn sudo_without_password_elevates_only_the_target_steps() {
    let f = Fleet::up(&[WS, T]);
    let r = switch_to(&f, &format!("deploy@{T}"), &["--sudo"]);
    r.assert_success();
    assert_eq!(f.activations(T)[0].uid, 0);
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    // Probe (it checked that sudo needs no password), copy, activation.
    assert_eq!(f.sessions(T), sessions(1, 3));
}

#[test]
fn sudo_password_is_asked_once_and_checked_before_building() {
    let f = Fleet::up(&[WS, T]);
    let r = switch_with_password(&f, "deploypw", DEPLOYPW_PASSWORD);
    r.assert_success();
    assert_eq!(f.activations(T)[0].uid, 0);
    // Probe (it tried the password), copy, activation: no session of its own for the check.
    assert_eq!(f.sessions(T), sessions(1, 3));
    assert!(!r.stdout.contains(DEPLOYPW_PASSWORD) && !r.stderr.contains(DEPLOYPW_PASSWORD));

    // A wrong one stops the build, which the probe's session runs beside.
    let g = Fleet::up(&[WS, T]);
    g.knob(T, "buildSeconds", "60");
    let toplevel = toplevel_path(&g);
    let r = switch_with_password(&g, "deploypw", "wrong");
    r.assert_status(1);
    assert!(
        r.stderr.contains(&format!(
            "rb: error: sudo on deploypw@{T} refused: the password was not accepted"
        )),
        "{r:?}"
    );
    assert!(!g.has_path(WS, &toplevel), "the build was stopped: {r:?}");
    assert!(g.activations(T).is_empty());
    assert!(g.generations(T, SYSTEM_PROFILE).is_empty());
    assert_eq!(g.sessions(T), sessions(1, 1), "only the probe ran there");
}

/// The store path the target's configuration would build to, without building it.
pub(crate) fn toplevel_path(f: &Fleet) -> String {
    let installable = format!(
        "{}#nixosConfigurations.{T}.config.system.build.toplevel.outPath",
        f.config_dir().display()
    );
    f.run(
        WS,
        RunCall {
            argv: &["nix", "eval", "--raw", &installable],
            ..Default::default()
        },
    )
    .assert_success()
    .stdout
    .clone()
}

/// What the connection's first session learns (src/probe.rs) stops the build: a sudo that
/// wants a password nobody gave, a user who is not root with no elevation given.
#[test]
fn sudo_that_wants_a_password_fails_at_once_with_a_hint() {
    let f = Fleet::up(&[WS, T]);
    f.knob(T, "buildSeconds", "60");
    let toplevel = toplevel_path(&f);
    let r = switch_to(&f, &format!("deploypw@{T}"), &["--sudo"]);
    r.assert_status(1);
    assert!(
        r.stderr.contains(&format!(
            "rb: error: sudo on deploypw@{T} refused: it wants a password"
        )),
        "{r:?}"
    );
    assert!(r.stderr.contains("hint: pass --ask-sudo-password"), "{r:?}");
    assert!(!f.has_path(WS, &toplevel), "the build was stopped: {r:?}");
    assert!(f.activations(T).is_empty());
    assert!(f.generations(T, SYSTEM_PROFILE).is_empty());

    for action in ["switch", "boot"] {
        let r = f.rb(&[
            action,
            "--flake",
            &f.flake(T),
            "--target-host",
            &format!("deploy@{T}"),
        ]);
        r.assert_status(1);
        assert!(
            r.stderr.contains(&format!(
                "rb: error: deploy@{T} cannot be deployed to: rb connects as uid"
            )) && r.stderr.contains("not root"),
            "{action}: {r:?}"
        );
        assert!(
            r.stderr.contains(&format!("or deploy as root@{T}")),
            "{r:?}"
        );
        assert!(!f.has_path(WS, &toplevel), "the build was stopped: {r:?}");
    }
    assert!(f.generations(T, SYSTEM_PROFILE).is_empty());
}

/// An account whose shell refuses commands (here sshd runs nologin for deploy) is named with
/// its own words, during the build, which it stops.
#[test]
fn an_account_that_cannot_run_commands_is_found_before_the_build_ends() {
    let f = Fleet::up(&[WS, &format!("{T}:nologin")]);
    f.knob(T, "buildSeconds", "60");
    let toplevel = toplevel_path(&f);
    let r = switch_to(&f, &format!("deploy@{T}"), &["--sudo"]);
    r.assert_status(1);
    assert!(
        r.stderr.contains(&format!(
            "rb: error: deploy@{T} cannot be deployed to: the account cannot run commands \
             (This account is currently not available.)"
        )),
        "{r:?}"
    );
    assert!(r.stderr.contains("hint: give the user a shell"), "{r:?}");
    assert!(!f.has_path(WS, &toplevel), "the build was stopped: {r:?}");
    // root's sessions on the same host still run commands.
    f.knob(T, "buildSeconds", "0");
    switch_to(&f, &format!("root@{T}"), &[]).assert_success();
}

/// Hosts are connected to while the build runs: one that cannot be reached stops the build.
#[test]
fn unreachable_hosts_and_refused_keys_stop_the_build() {
    let f = Fleet::up(&[WS, T]);
    f.knob(T, "buildSeconds", "60");
    let toplevel = toplevel_path(&f);
    for target in ["root@no-such-host.invalid", "ghost@aquamarine"] {
        let started = std::time::Instant::now();
        let r = f.rb(&["switch", "--flake", &f.flake(T), "--target-host", target]);
        r.assert_status(255);
        let host = target.split('@').nth(1).unwrap();
        assert!(r.stderr.contains(host), "{r:?}");
        assert_eq!(
            r.stderr
                .lines()
                .filter(|l| l.starts_with("rb: error:"))
                .count(),
            1,
            "one error line: {r:?}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(50),
            "the build was stopped: {r:?}"
        );
        assert!(
            !f.has_path(WS, &toplevel),
            "the system was not built: {r:?}"
        );
    }
    let r = f.rb(&[
        "switch",
        "--flake",
        &f.flake(T),
        "--build-host",
        "no-such-host.invalid",
    ]);
    r.assert_status(255);
}

#[test]
fn no_master_connection_or_directory_is_left_behind() {
    let f = Fleet::up(&[WS, T]);
    let tmp = f.dir().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    // A long TMPDIR would make a socket path too long; rb's control directory does not care.
    let long = tmp.join("a".repeat(120));
    std::fs::create_dir_all(&long).unwrap();
    let r = f.rb_with(RbCall {
        args: &["switch", "--flake", &f.flake(T), "--target-host", T],
        env: vec![
            ("TMPDIR".into(), long.to_string_lossy().into_owned()),
            ("XDG_RUNTIME_DIR".into(), tmp.to_string_lossy().into_owned()),
        ],
        ..Default::default()
    });
    r.assert_success();
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("rb."))
        .collect();
    assert!(left.is_empty(), "control directory left: {left:?}");
    let masters = f.sh(
        WS,
        // Also `ssh: CONTROL-PATH [mux]`, as a master names itself in the background.
        &format!("pgrep -fa 'ssh.*{}/r[b]' || true", tmp.display()),
    );
    assert_eq!(masters.stdout.trim(), "", "master left running");

    // An XDG_RUNTIME_DIR too long for a socket path is passed over (for /tmp), not fatal.
    f.knob(T, "rev", "2");
    let r = f.rb_with(RbCall {
        args: &["switch", "--flake", &f.flake(T), "--target-host", T],
        env: vec![(
            "XDG_RUNTIME_DIR".into(),
            long.to_string_lossy().into_owned(),
        )],
        ..Default::default()
    });
    r.assert_success();
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(2));
    assert_eq!(std::fs::read_dir(&long).unwrap().count(), 0);
}

#[test]
fn nix_sshopts_is_split_like_a_shell_and_honoured() {
    let f = Fleet::up(&[WS, T]);
    let r = f.rb_with(RbCall {
        args: &["switch", "--flake", &f.flake(T), "--target-host", T],
        env: vec![(
            "NIX_SSHOPTS".into(),
            "-o 'ServerAliveCountMax 3' -o ConnectTimeout=9".into(),
        )],
        ..Default::default()
    });
    r.assert_success();
    let r = f.rb_with(RbCall {
        args: &["switch", "--flake", &f.flake(T), "--target-host", T],
        env: vec![("NIX_SSHOPTS".into(), "-o 'unterminated".into())],
        ..Default::default()
    });
    r.assert_status(2);
    assert!(r.stderr.contains("NIX_SSHOPTS"), "{r:?}");
}

/// Any word survives rb's quoting through ssh, the remote login shell and a nested `sh -c`.
#[test]
fn remote_quoting_round_trips_through_real_shells() {
    let f = Fleet::up(&[WS, T]);
    let alphabet: Vec<char> = "ab $'\"\\`*?~#&;|<>(){}[]!%^=,.-_/\n\t é✓"
        .chars()
        .collect();
    let mut seed: u64 = 0x5eed;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let mut words: Vec<String> = vec![String::new(), "-n".into(), "--".into(), "'".into()];
    for _ in 0..300 {
        let len = next() % 12;
        words.push(
            (0..len)
                .map(|_| alphabet[next() % alphabet.len()])
                .collect(),
        );
    }
    let mut printf = vec!["printf".to_string(), "%s\\0".to_string()];
    printf.extend(words.iter().cloned());
    let nested = rb::shell::join(&["/bin/sh".to_string(), "-c".into(), rb::shell::join(&printf)]);
    for remote in [rb::shell::join(&printf), nested] {
        let r = f.run(
            WS,
            RunCall {
                argv: &["ssh", T, "--", &remote],
                ..Default::default()
            },
        );
        r.assert_success();
        let got: Vec<&str> = r.stdout.split('\0').collect();
        assert_eq!(
            got[..got.len() - 1],
            words.iter().map(String::as_str).collect::<Vec<_>>()[..]
        );
    }
}

#[test]
fn build_with_a_target_copies_there_and_leaves_result_here() {
    let f = Fleet::up(&[WS, T]);
    let r = f.rb(&["build", "--flake", &f.flake(T), "--target-host", T]);
    r.assert_success();
    let path = r.stdout_trimmed();
    assert!(f.has_path(T, path), "copied to the target");
    let link = std::fs::read_link(f.workdir().join("result")).expect("./result");
    assert_eq!(link.to_string_lossy(), path);
    assert!(f.activations(T).is_empty());
    assert!(f.generations(T, SYSTEM_PROFILE).is_empty());
}

#[test]
fn ssh_ng_targets_are_copied_with_nix_copy() {
    let f = Fleet::up(&[WS, T]);
    let target = format!("ssh-ng://root@{T}");
    // The plan copies with `nix copy` to the ssh-ng store (Nix's own progress lines name the
    // store differently between versions).
    let plan = switch_to(&f, &target, &["--use-substitutes", "--plan"]);
    assert!(
        plan.assert_success()
            .stdout
            .lines()
            .any(|l| l.contains(" copy ") && l.contains("--to ssh-ng://root@aquamarine")),
        "{plan:?}"
    );
    let r = switch_to(&f, &target, &["--use-substitutes"]);
    r.assert_success();
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    assert_eq!(f.sessions(T).connections, 1);
}

#[test]
fn a_builder_that_cannot_reach_the_target_relays_through_here() {
    let f = Fleet::up(&[WS, B, T]);
    // A name for the target that only this machine knows (through NIX_SSHOPTS).
    let config = f.dir().join("ws-only-ssh-config");
    let shared = std::fs::read_to_string(f.dir().join("ssh/config")).unwrap();
    std::fs::write(
        &config,
        format!(
            "{shared}\nHost private-target\n  HostName 127.0.0.1\n  Port {}\n  \
             StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  \
             IdentityFile ~/.ssh/id_ed25519\n",
            f.port(T)
        ),
    )
    .unwrap();
    let r = f.rb_with(RbCall {
        args: &[
            "switch",
            "--flake",
            &f.flake(T),
            "--build-host",
            B,
            "--target-host",
            "root@private-target",
        ],
        env: vec![("NIX_SSHOPTS".into(), format!("-F {}", config.display()))],
        ..Default::default()
    });
    r.assert_success();
    assert!(
        r.stderr
            .contains("relaying the closure through this machine"),
        "{r:?}"
    );
    assert!(built_on(&f, B, T) && !built_on(&f, WS, T));
    assert!(f.has_path(T, r.stdout_trimmed()));
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
}

#[test]
fn run0_elevates_the_target_steps() {
    let f = Fleet::up(&[WS, T]);
    let r = switch_to(&f, &format!("deploy@{T}"), &["--elevate", "run0"]);
    r.assert_success();
    assert_eq!(f.activations(T)[0].uid, 0);
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    // Two run0 calls, by the deploy user: the probe's try (`true`, before the build), and
    // one for the whole activation session.
    let calls = std::fs::read_to_string(f.host_path(T, "/run/rb-fleet/run0.log")).unwrap();
    let calls: Vec<&str> = calls.lines().filter(|l| l.starts_with("uid=")).collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls[0].ends_with(" cmd=true"), "{calls:?}");
    assert!(calls.iter().all(|c| !c.starts_with("uid=0 ")), "{calls:?}");
    assert_eq!(f.sessions(T), sessions(1, 3));
}

#[test]
fn ipv6_targets_in_brackets_and_with_a_scheme() {
    let f = Fleet::up(&[WS, "aquamarine:ipv6"]);
    for target in ["root@[::1]", "ssh://root@[::1]"] {
        let r = f.rb(&["boot", "--flake", &f.flake(T), "--target-host", target]);
        r.assert_success();
        assert!(
            f.has_path(T, r.stdout_trimmed()),
            "{target}: copied over IPv6"
        );
    }
    assert_eq!(f.generations(T, SYSTEM_PROFILE), [1]);
    assert_eq!(f.activations(T).len(), 2);
    assert!(
        std::fs::read_to_string(f.host_dir(T).join("sshd.log"))
            .unwrap()
            .contains("from ::1"),
        "the connections came over IPv6"
    );
}

#[test]
fn an_untrusted_user_is_told_about_signatures() {
    let f = Fleet::up(&[WS, T]);
    // The target trusts root only.
    let conf = f.host_dir(T).join("etc-nix/nix.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let text: Vec<&str> = text
        .lines()
        .map(|l| {
            if l.starts_with("trusted-users") {
                "trusted-users = root"
            } else {
                l
            }
        })
        .collect();
    std::fs::write(&conf, text.join("\n") + "\n").unwrap();
    let mut cmd = std::process::Command::new(crate::fleet::FLEET_SCRIPT);
    cmd.arg("restart-daemon").arg(f.dir()).arg(T);
    crate::fleet::run_command(cmd, None).assert_success();

    let r = switch_to(&f, &format!("deploy@{T}"), &["--sudo"]);
    r.assert_status(1);
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("rb: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{r:?}");
    assert!(errors[0].contains("lack a signature"), "{r:?}");
    // What to do about it follows, as a hint of its own.
    assert!(
        r.stderr
            .lines()
            .any(|l| l.starts_with("hint: deploy as root") && l.contains("trusted-users")),
        "{r:?}"
    );
    // Nix's own line passes through too (its words differ between versions).
    assert!(
        r.stderr
            .lines()
            .any(|l| !l.starts_with("rb:") && l.contains("signature")),
        "Nix's own error passes through: {r:?}"
    );
    assert!(f.generations(T, SYSTEM_PROFILE).is_empty());
}

/// With NOPASSWD, sudo never reads the password rb sends: it must not reach activation.
#[test]
fn a_password_sudo_did_not_need_is_read_by_nothing_else() {
    let f = Fleet::up(&[WS, T]);
    let r = switch_with_password(&f, "deploy", DEPLOYPW_PASSWORD);
    r.assert_success();
    let a = &f.activations(T)[0];
    assert_eq!(a.uid, 0);
    assert!(
        !a.stdin,
        "the password reached switch-to-configuration's stdin"
    );
}

/// NIXOS_REBUILD_SSH_DEFAULT_OPTS replaces rb's multiplexing: rb then opens no master of its
/// own and closes none.
#[test]
fn ssh_default_opts_replace_the_master_connection() {
    let f = Fleet::up(&[WS, T]);
    let r = f.rb_with(RbCall {
        args: &["switch", "--flake", &f.flake(T), "--target-host", T],
        env: vec![("NIXOS_REBUILD_SSH_DEFAULT_OPTS".into(), String::new())],
        ..Default::default()
    });
    r.assert_success();
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    // Without multiplexing every ssh is a connection of its own: check, copy, activation.
    assert_eq!(f.sessions(T).connections, 3);
    // Only this fleet's (the ssh rb started works in its directory): other tests' fleets run
    // ssh to a host of the same name at the same time.
    let left = f.sh(
        WS,
        &format!(
            "for p in $(pgrep -x ssh); do \
             [ \"$(readlink /proc/$p/cwd)\" = {} ] && ps -o pid=,args= -p $p; done; true",
            f.workdir().display()
        ),
    );
    assert_eq!(left.stdout.trim(), "", "a connection was left running");
}

/// `--plan` connects to nothing, even when the configuration name would come from the target.
#[test]
fn plan_asks_no_host_anything() {
    let f = Fleet::up(&[WS, T]);
    let config = f.config_dir();
    let r = f.rb(&[
        "switch",
        "--flake",
        config.to_str().unwrap(),
        "--target-host",
        &format!("root@{T}"),
        "--plan",
    ]);
    r.assert_success();
    assert!(
        r.stdout
            .contains("nixosConfigurations.\"<host name of root@aquamarine>\""),
        "{r:?}"
    );
    assert_eq!(f.sessions(T), sessions(0, 0));
}

/// A closure of hundreds of store paths costs the connections and sessions of one path: every
/// copy streams (README, "Copies").
#[test]
fn a_closure_of_many_paths_costs_the_sessions_of_a_small_one() {
    let f = Fleet::up(&[WS, B, T]);
    let both = |f: &Fleet| {
        switch_through_builder(f).assert_success();
    };
    let counts = |f: &Fleet| (f.sessions(B), f.sessions(T));
    let delta =
        |a: Sessions, b: Sessions| sessions(b.connections - a.connections, b.sessions - a.sessions);
    switch_to(&f, T, &[]).assert_success();
    both(&f);
    let small = counts(&f);
    f.knob(T, "closurePaths", "300");
    f.knob(T, "closurePathKiB", "1");
    switch_to(&f, T, &[]).assert_success();
    both(&f);
    let big = counts(&f);
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(2));
    // The second pair of runs copied 300 paths more, in as many sessions as the first pair.
    assert_eq!(delta(small.0, big.0), small.0, "builder");
    assert_eq!(delta(small.1, big.1), small.1, "target");
}

/// Results come back from a build host in one streamed session (scripts/copy-from.sh), not
/// nix-copy-closure's round trips per path: no fallback note, and 300 paths more cost no
/// session more.
#[test]
fn results_come_back_from_a_build_host_in_one_streamed_session() {
    let f = Fleet::up(&[WS, B]);
    let back = |f: &Fleet| {
        let r = f.rb(&["switch", "--flake", &f.flake(WS), "--build-host", B]);
        r.assert_success();
        assert!(!r.stderr.contains("nix-copy-closure instead"), "{r:?}");
        assert!(f.has_path(WS, r.stdout_trimmed()), "result copied back");
        assert!(!built_on(f, WS, WS), "nothing built here");
        f.sessions(B)
    };
    let small = back(&f);
    f.knob(WS, "closurePaths", "300");
    f.knob(WS, "closurePathKiB", "1");
    let big = back(&f);
    assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(2));
    assert_eq!(
        sessions(
            big.connections - small.connections,
            big.sessions - small.sessions
        ),
        small
    );
}

/// When this machine cannot make the streamed copy back (here: its `mkfifo` fails, as
/// scripts/copy-from.sh needs one), rb says so in one line, copies back with
/// nix-copy-closure --from and switches as usual.
#[test]
fn results_come_back_the_legacy_way_when_the_stream_cannot_be_made() {
    let f = Fleet::up(&[WS, B]);
    let broken = f.dir().join("no-mkfifo");
    std::fs::create_dir_all(&broken).unwrap();
    let mkfifo = broken.join("mkfifo");
    std::fs::write(
        &mkfifo,
        "#!/bin/sh\necho 'mkfifo: refused by the test' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&mkfifo, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{HOST_PATH}", broken.display());
    let r = f.rb_with(RbCall {
        args: &["switch", "--flake", &f.flake(WS), "--build-host", B],
        env: vec![("PATH".into(), path)],
        ..Default::default()
    });
    r.assert_success();
    let notes = fallback_notes(&r);
    assert_eq!(notes.len(), 1, "{r:?}");
    assert!(notes[0].contains(B), "{r:?}");
    assert!(!r.stderr.contains("rb: error:"), "{r:?}");
    assert!(f.has_path(WS, r.stdout_trimmed()), "result copied back");
    assert!(!built_on(&f, WS, WS), "nothing built here");
    assert_eq!(f.current_generation(WS, SYSTEM_PROFILE), Some(1));
}

/// A target whose SSH sessions have no nix-daemon cannot take a streamed copy: rb says so in
/// one line, copies the legacy way and succeeds.
#[test]
fn a_target_without_nix_daemon_gets_the_legacy_copy() {
    let f = Fleet::up(&[WS, "aquamarine:nodaemon"]);
    let r = switch_to(&f, &format!("root@{T}"), &[]);
    r.assert_success();
    let notes = fallback_notes(&r);
    assert_eq!(notes.len(), 1, "{r:?}");
    assert!(!r.stderr.contains("rb: error:"), "{r:?}");
    assert!(f.has_path(T, r.stdout_trimmed()));
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
}

/// The "NixOS & Flakes" guide's command line: `--build-host localhost` builds right here, with
/// no SSH to this machine (the workstation runs no sshd, so any attempt would fail), and the
/// target is deployed as usual. `root@localhost` still means SSH.
#[test]
fn the_guides_build_host_localhost_is_this_machine() {
    let f = Fleet::up(&[WS, T]);
    let host = format!("root@{T}");
    let r = switch_to(&f, &host, &["--build-host", "localhost", "--verbose"]);
    r.assert_success();
    assert!(built_on(&f, WS, T) && !built_on(&f, T, T), "{r:?}");
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    assert!(
        r.stderr.contains("--build-host localhost is this machine"),
        "{r:?}"
    );
    assert_eq!(f.sessions(T), sessions(1, 3));

    // --plan says where each step runs: nothing on a host called localhost.
    let plan = switch_to(&f, &host, &["--build-host", "localhost", "--plan"]);
    plan.assert_success();
    assert!(
        !plan.stderr.contains("localhost") && !plan.stdout.contains("localhost"),
        "{plan:?}"
    );

    // Written with a user, it is an SSH host: refused here, with rb's own line and exit 255.
    let r = switch_to(&f, &host, &["--build-host", "root@localhost"]);
    r.assert_status(255);
    assert!(
        r.stderr.contains("cannot connect to root@localhost"),
        "{r:?}"
    );
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
}

/// `--generation N`: any generation of the profile becomes current, on the target; with a
/// specialisation; one that does not exist is rb's error before anything changes.
#[test]
fn generation_n_on_the_target() {
    let f = Fleet::up(&[WS, T]);
    let first = f.seed_generation(T, T);
    for rev in ["2", "3"] {
        f.knob(T, "rev", rev);
        f.rb(&["switch", "--flake", &f.flake(T), "--target-host", T])
            .assert_success();
    }
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(3));

    let r = f.rb(&["switch", "--generation", "1", "--target-host", T]);
    r.assert_success();
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    assert_eq!(f.activations(T).pop().unwrap().toplevel, first);
    assert_eq!(r.stdout_trimmed(), format!("{SYSTEM_PROFILE}-1-link"));

    // test: generation 2's specialisation runs; the profile stays at 1.
    let r = f.rb(&["test", "--generation", "2", "-c", "web", "--target-host", T]);
    r.assert_success();
    let a = f.activations(T).pop().unwrap();
    assert_eq!(
        (a.action.as_str(), a.specialisation.as_deref()),
        ("test", Some("web"))
    );
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));

    let before = f.activations(T).len();
    let r = f.rb(&["boot", "--generation", "9", "--target-host", T]);
    r.assert_status(1);
    assert!(
        r.stderr.contains(&format!(
            "rb: error: generation 9 of {SYSTEM_PROFILE} does not exist"
        )),
        "{r:?}"
    );
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    assert_eq!(f.activations(T).len(), before);
}

/// Piped, a deploy of a 300-path closure prints a line as each phase starts and ends and
/// nothing per store path (issue 13's budget: at most 15 lines); `-v` shows every step and
/// Nix's own lines again.
#[test]
fn a_big_deploy_prints_a_few_lines_when_piped() {
    let f = Fleet::up(&[WS, T]);
    f.knob(T, "closurePaths", "300");
    f.knob(T, "closurePathKiB", "1");
    let r = switch_to(&f, &format!("root@{T}"), &[]);
    r.assert_success();
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(lines.len() <= 15, "{} lines: {lines:#?}", lines.len());
    assert!(!r.stderr.contains("copying path"), "{r:?}");
    for phase in [
        "build on local",
        "copy on local",
        &format!("activate on root@{T}"),
    ] {
        assert!(
            lines.iter().any(|l| *l == format!("rb: {phase}")),
            "{phase}: {r:?}"
        );
    }
    assert!(!r.stderr.contains("set-profile"), "{r:?}");
    assert!(f.has_path(T, r.stdout_trimmed()));

    f.knob(T, "closurePaths", "301");
    let r = switch_to(&f, &format!("root@{T}"), &["-v"]);
    r.assert_success();
    assert!(
        r.stderr.contains(&format!("rb: set-profile on root@{T}")),
        "{r:?}"
    );
    assert!(r.stderr.contains("copying path"), "{r:?}");
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(2));
}

/// rb's lines saying a streamed copy failed and the legacy one runs instead.
fn fallback_notes(r: &RunResult) -> Vec<&str> {
    r.stderr
        .lines()
        .filter(|l| l.contains("copying with nix-copy-closure instead"))
        .collect()
}
