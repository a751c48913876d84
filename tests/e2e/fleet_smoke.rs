//! Tests of the sandbox fleet itself (no rb): if these fail, every end-to-end test is suspect.
//! Each test has its own fleet, so running them in parallel also shows fleets don't collide.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::fleet::{Fleet, RunCall, SYSTEM_PROFILE};

const SYSTEMD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn is_executable(path: &std::path::Path) -> bool {
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[test]
fn toplevel_layout_in_flake_classic_and_file_mode() {
    let fleet = Fleet::up(&["ws", "aquamarine", "beryl"]);
    let top = fleet.build_toplevel("ws", "aquamarine");
    assert!(
        top.starts_with("/nix/store/") && top.ends_with("-nixos-system-aquamarine-26.05.1"),
        "{top}"
    );
    assert!(fleet.has_path("ws", &top));
    let real = fleet.host_path("ws", &top);

    assert_eq!(
        fs::read_to_string(real.join("nixos-version")).unwrap(),
        "26.05.1"
    );
    assert!(is_executable(&real.join("init")));
    assert!(is_executable(&real.join("bin/switch-to-configuration")));
    // kernel -> <kernel>/bzImage, with lib/modules/<version> next to it (B's lookup) and
    // kernel-modules/lib/modules/<version> (NG's lookup).
    let kernel = fleet.resolve("ws", &format!("{top}/kernel")).unwrap();
    assert!(kernel.ends_with("-linux-6.1.0-rb/bzImage"), "{kernel}");
    let kernel_dir = kernel.strip_suffix("/bzImage").unwrap();
    assert!(
        fleet
            .host_path("ws", &format!("{kernel_dir}/lib/modules/6.1.0-rb"))
            .is_dir()
    );
    assert!(
        fleet
            .host_file("ws", &format!("{top}/kernel-modules/lib/modules/6.1.0-rb"))
            .unwrap()
            .is_dir()
    );
    // specialisation/web: a toplevel of its own with the same layout.
    let web = fleet
        .resolve("ws", &format!("{top}/specialisation/web"))
        .unwrap();
    assert_ne!(web, top);
    let web_real = fleet.host_path("ws", &web);
    assert!(is_executable(&web_real.join("bin/switch-to-configuration")));
    assert!(
        fleet
            .host_file("ws", &format!("{web}/kernel-modules/lib/modules/6.1.0-rb"))
            .is_some()
    );
    assert_eq!(
        fs::read_dir(real.join("specialisation")).unwrap().count(),
        1
    );

    let r = fleet.sh(
        "ws",
        &format!("{top}/sw/bin/nixos-version; {top}/sw/bin/nixos-version --configuration-revision"),
    );
    assert_eq!(r.assert_success().stdout, "26.05.1\nrev-1\n");

    // Classic: <nixpkgs/nixos> from the nix-path in every host's nix.conf (and NIX_PATH);
    // the configuration is $RB_FLEET_CONFIG, else the host's own name. Same derivations.
    let classic = fleet.run(
        "ws",
        RunCall {
            argv: &[
                "nix-build",
                "<nixpkgs/nixos>",
                "-A",
                "config.system.build.toplevel",
                "--no-out-link",
            ],
            env: vec![
                ("NIX_PATH".into(), fleet.nix_path()),
                ("RB_FLEET_CONFIG".into(), "aquamarine".into()),
            ],
            ..Default::default()
        },
    );
    assert_eq!(classic.assert_success().stdout_trimmed(), top);
    let r = fleet.sh(
        "ws",
        "nix-build '<nixpkgs/nixos>' -A system --no-out-link && \
         nix-build '<nixpkgs/nixos>' -A vm --no-out-link",
    );
    let lines: Vec<&str> = r.assert_success().stdout.lines().collect();
    assert!(lines[0].ends_with("-nixos-system-ws-26.05.1"), "{r:?}");
    assert!(lines[1].ends_with("-nixos-vm"), "{r:?}");

    // File mode: -f <config>/default.nix -A <name>.
    let file = fleet.config_file();
    let r = fleet.sh(
        "ws",
        &format!(
            "nix-build {} -A aquamarine.config.system.build.toplevel --no-out-link",
            file.display()
        ),
    );
    assert_eq!(r.assert_success().stdout_trimmed(), top);

    // vm, vmWithBootLoader, images.<variant> with passthru.filePath.
    let vm = fleet.build_attr("ws", "aquamarine", "config.system.build.vmWithBootLoader");
    assert!(
        fleet
            .host_path("ws", &format!("{vm}/bin/run-aquamarine-vm"))
            .is_file()
    );
    let iso = fleet.build_attr("ws", "aquamarine", "config.system.build.images.iso");
    assert!(
        fleet
            .host_path("ws", &format!("{iso}/iso/nixos.iso"))
            .is_file()
    );
    let r = fleet.sh(
        "ws",
        &format!(
            "nix eval --json {}#nixosConfigurations.aquamarine.config.system.build.images \
             --apply 'builtins.mapAttrs (n: v: v.passthru.filePath)'",
            fleet.config_dir().display()
        ),
    );
    assert_eq!(
        r.assert_success().stdout_trimmed(),
        r#"{"iso":"iso/nixos.iso","qcow2":"nixos.qcow2"}"#
    );
    let r = fleet.sh(
        "ws",
        &format!(
            "nix eval --json {}#nixosConfigurations --apply builtins.attrNames",
            fleet.config_dir().display()
        ),
    );
    assert_eq!(
        r.assert_success().stdout_trimmed(),
        r#"["aquamarine","beryl","ws"]"#
    );
}

#[test]
fn switch_to_configuration_through_the_fake_systemd_run() {
    let fleet = Fleet::up(&["ws", "aquamarine", "beryl:nosystemd"]);
    let top = fleet.build_toplevel("aquamarine", "aquamarine");

    // As rb would: over ssh from the workstation, through systemd-run.
    let r = fleet.sh(
        "ws",
        &format!(
            "ssh root@aquamarine 'NIXOS_INSTALL_BOOTLOADER=1 LOCALE_ARCHIVE=/x FOO=bar systemd-run \
             -E LOCALE_ARCHIVE -E NIXOS_INSTALL_BOOTLOADER -E NIXOS_NO_CHECK --collect --no-ask-password \
             --unit=nixos-rebuild-switch-to-configuration --wait -- {top}/bin/switch-to-configuration switch'"
        ),
    );
    r.assert_success();
    let acts = fleet.activations("aquamarine");
    assert_eq!(acts.len(), 1, "{acts:?}");
    let a = &acts[0];
    assert_eq!(a.action, "switch");
    assert_eq!(a.uid, 0);
    assert_eq!(a.install_bootloader.as_deref(), Some("1"));
    assert_eq!(a.hostname, "aquamarine");
    assert_eq!(a.toplevel, top);
    assert_eq!(a.specialisation, None);
    assert_eq!(
        a.env,
        ["LOCALE_ARCHIVE", "NIXOS_INSTALL_BOOTLOADER", "PATH"]
    );
    assert_eq!(a.path, SYSTEMD_PATH);
    assert_eq!(
        fleet.current_system("aquamarine").as_deref(),
        Some(top.as_str())
    );
    assert_eq!(
        fleet.systemd_runs("aquamarine"),
        [format!(
            "unit=nixos-rebuild-switch-to-configuration env=LOCALE_ARCHIVE,NIXOS_INSTALL_BOOTLOADER,NIXOS_NO_CHECK \
             uid=0 cmd={top}/bin/switch-to-configuration switch"
        )]
    );
    assert!(fleet.activations("ws").is_empty() && fleet.current_system("ws").is_none());

    // A specialisation, run directly with a chosen environment; activationExit passes through.
    fleet.knob("aquamarine", "activationExit", "4");
    let top4 = fleet.build_toplevel("aquamarine", "aquamarine");
    assert_ne!(top4, top);
    let web = fleet
        .resolve("aquamarine", &format!("{top4}/specialisation/web"))
        .unwrap();
    let r = fleet.sh(
        "aquamarine",
        &format!("env -i NIXOS_INSTALL_BOOTLOADER= 'PATH=/a b:\"q\"' {top4}/specialisation/web/bin/switch-to-configuration test"),
    );
    r.assert_status(4);
    let a = fleet.activations("aquamarine").pop().unwrap();
    assert_eq!(a.action, "test");
    assert_eq!(a.specialisation.as_deref(), Some("web"));
    assert_eq!(a.toplevel, web);
    assert_eq!(a.install_bootloader.as_deref(), Some(""));
    assert_eq!(a.env, ["NIXOS_INSTALL_BOOTLOADER", "PATH"]);
    assert_eq!(a.path, "/a b:\"q\"");
    assert_eq!(
        fleet.current_system("aquamarine").as_deref(),
        Some(web.as_str())
    );

    // boot leaves /run/current-system alone; a non-root caller cannot use systemd-run.
    fleet
        .sh(
            "aquamarine",
            &format!("env -i {top}/bin/switch-to-configuration boot"),
        )
        .assert_success();
    let a = fleet.activations("aquamarine").pop().unwrap();
    assert_eq!(
        (a.action.as_str(), a.install_bootloader, a.env.len()),
        ("boot", None, 0)
    );
    assert_eq!(
        fleet.current_system("aquamarine").as_deref(),
        Some(web.as_str())
    );
    let r = fleet.sh_as("aquamarine", "deploy", "systemd-run --wait true");
    assert_eq!(r.status, 1, "{r:?}");
    assert!(r.stderr.contains("Access denied"), "{r:?}");

    // nosystemd: neither /run/systemd/system nor the fake systemd-run.
    let beryl = fleet.host_dir("beryl");
    assert!(!beryl.join("run/systemd/system").exists());
    assert!(!beryl.join("run/rb-fleet/bin/systemd-run").exists());
    assert!(
        fleet
            .host_dir("aquamarine")
            .join("run/systemd/system")
            .is_dir()
    );
}

#[test]
fn ssh_copies_land_in_the_target_store_and_are_counted() {
    let fleet = Fleet::up(&["ws", "aquamarine", "beryl"]);
    let r = fleet.sh(
        "ws",
        "hostname; ssh aquamarine hostname; ssh root@beryl hostname",
    );
    assert_eq!(r.assert_success().stdout, "ws\naquamarine\nberyl\n");
    assert_eq!(
        fleet.sessions("aquamarine"),
        crate::fleet::Sessions {
            connections: 1,
            sessions: 1
        }
    );
    assert_eq!(fleet.sessions("beryl").connections, 1);

    // Hosts are isolated: a path built on one host is absent from the others.
    let top = fleet.build_toplevel("ws", "aquamarine");
    assert!(fleet.has_path("ws", &top));
    assert!(!fleet.has_path("aquamarine", &top) && !fleet.has_path("beryl", &top));

    fleet
        .sh("ws", &format!("nix-copy-closure --to aquamarine {top}"))
        .assert_success();
    assert!(fleet.has_path("aquamarine", &top));
    assert!(!fleet.has_path("beryl", &top));
    let r = fleet.sh(
        "aquamarine",
        &format!("nix-store --verify-path {top} && nix-store -qR {top} | wc -l"),
    );
    // The toplevel, its specialisation, the kernel and the default package (hello-2.12).
    assert_eq!(r.assert_success().stdout.trim(), "4");
    assert_eq!(
        fleet.sessions("aquamarine"),
        crate::fleet::Sessions {
            connections: 2,
            sessions: 2
        }
    );

    // A builder reaches the target the same way (aquamarine -> beryl).
    fleet
        .sh(
            "aquamarine",
            &format!("nix-copy-closure --to root@beryl {top}"),
        )
        .assert_success();
    assert!(fleet.has_path("beryl", &top));

    // One multiplexed connection carries many sessions.
    let before = fleet.sessions("aquamarine");
    let r = fleet.sh(
        "ws",
        "set -e; o='-o ControlMaster=auto -o ControlPath=/tmp/rb-fleet-smoke-%C -o ControlPersist=30'; \
         ssh $o aquamarine true; ssh $o aquamarine true; ssh $o aquamarine true; ssh $o -O exit aquamarine 2>/dev/null",
    );
    r.assert_success();
    let after = fleet.sessions("aquamarine");
    assert_eq!(
        (
            after.connections - before.connections,
            after.sessions - before.sessions
        ),
        (1, 3)
    );
}

#[test]
fn knobs_change_what_gets_built() {
    let fleet = Fleet::up(&["ws"]);
    let one = fleet.build_toplevel("ws", "ws");
    fleet.knob("ws", "rev", "2");
    let two = fleet.build_toplevel("ws", "ws");
    assert_ne!(one, two);
    assert!(two.ends_with("-nixos-system-ws-26.05.2"), "{two}");
    let r = fleet.sh(
        "ws",
        &format!("{two}/sw/bin/nixos-version --configuration-revision"),
    );
    assert_eq!(r.assert_success().stdout, "rev-2\n");

    fleet.knob("ws", "kernelVersion", "\"6.6.6\"");
    fleet.knob("ws", "specialisations", "[\"a\", \"b\"]");
    fleet.knob("ws", "configurationRevision", "\"abc 'q'\"");
    fleet.knob("ws", "nixosVersion", "\"99.99\"");
    let p = fleet.build_toplevel("ws", "ws");
    let real = fleet.host_path("ws", &p);
    assert!(
        fleet
            .host_file("ws", &format!("{p}/kernel-modules/lib/modules/6.6.6"))
            .unwrap()
            .is_dir()
    );
    assert_eq!(
        fs::read_to_string(real.join("nixos-version")).unwrap(),
        "99.99"
    );
    let mut specs: Vec<String> = fs::read_dir(real.join("specialisation"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    specs.sort();
    assert_eq!(specs, ["a", "b"]);
    let r = fleet.sh(
        "ws",
        &format!("{p}/sw/bin/nixos-version --configuration-revision"),
    );
    assert_eq!(r.assert_success().stdout, "abc 'q'\n");

    fleet.knob("ws", "failBuild", "true");
    let flake = fleet.config_dir().display().to_string();
    let r = fleet.sh(
        "ws",
        &format!("nix build --no-link {flake}#nixosConfigurations.ws.config.system.build.toplevel"),
    );
    assert_eq!(r.status, 1, "{r:?}");
    assert!(
        r.stderr.contains("failed on purpose (knob failBuild)"),
        "{r:?}"
    );

    // A new configuration name, with an evaluation error.
    fleet.knob("broken", "evalError", "true");
    let r = fleet.sh(
        "ws",
        &format!(
            "nix eval --raw {flake}#nixosConfigurations.broken.config.system.build.toplevel.outPath"
        ),
    );
    assert_eq!(r.status, 1, "{r:?}");
    assert!(
        r.stderr.contains("failed on purpose (knob evalError)"),
        "{r:?}"
    );

    fleet.knob("ws", "failBuild", "false");
    fleet.knob("ws", "activationExit", "4");
    let p = fleet.build_toplevel("ws", "ws");
    fleet
        .sh("ws", &format!("{p}/bin/switch-to-configuration switch"))
        .assert_status(4);
    assert_eq!(fleet.current_system("ws").as_deref(), Some(p.as_str()));
    // The configuration repository stays clean (no "Git tree is dirty" warnings).
    let r = fleet.sh("ws", &format!("git -C {flake} status --porcelain"));
    assert_eq!(r.assert_success().stdout, "");
}

#[test]
fn deploy_users_build_through_the_daemon_and_sudo() {
    let fleet = Fleet::up(&["ws", "aquamarine"]);
    let flake = fleet.config_dir().display().to_string();
    let r = fleet.sh_as(
        "ws",
        "deploy",
        &format!("id -un; echo $HOME; nix build --no-link --json {flake}#nixosConfigurations.aquamarine.config.system.build.toplevel"),
    );
    r.assert_success();
    assert!(r.stdout.starts_with("deploy\n/home/deploy\n[{"), "{r:?}");
    assert!(fleet.host_dir("ws").join("nix-daemon.log").exists());
    let top = fleet.build_toplevel("ws", "aquamarine"); // already there: same path
    assert!(r.stdout.contains(&top), "{r:?}");

    // deploy on the workstation reaches deploy@aquamarine with its own key; sudo needs no password.
    let r = fleet.sh_as(
        "ws",
        "deploy",
        &format!(
            "ssh aquamarine 'id -un; sudo -n id -u' && nix-copy-closure --to aquamarine {top}"
        ),
    );
    assert_eq!(r.assert_success().stdout, "deploy\n0\n");
    assert!(fleet.has_path("aquamarine", &top));
    // root reaches deploy@ too.
    let r = fleet.sh("ws", "ssh deploy@aquamarine sudo -n true");
    r.assert_success();
    // deploypw needs its password.
    let r = fleet.sh("ws", "ssh deploypw@aquamarine sudo -n true");
    assert_eq!(r.status, 1, "{r:?}");
    let r = fleet.run(
        "ws",
        RunCall {
            argv: &["ssh", "deploypw@aquamarine", "sudo -S -p '' id -u"],
            stdin: Some(format!("{}\n", crate::fleet::DEPLOYPW_PASSWORD)),
            ..Default::default()
        },
    );
    assert_eq!(r.assert_success().stdout, "0\n");
    // sudo's secure_path keeps the fake systemd-run first.
    let r = fleet.sh(
        "ws",
        "ssh deploy@aquamarine 'sudo -n sh -c \"command -v systemd-run\"'",
    );
    assert_eq!(r.assert_success().stdout, "/run/rb-fleet/bin/systemd-run\n");
}

#[test]
fn fleet_run_passes_status_stdin_env_and_cwd() {
    let fleet = Fleet::up(&["ws", "aquamarine:nonix"]);
    let r = fleet.run(
        "ws",
        RunCall {
            argv: &[
                "sh",
                "-c",
                "echo \"$(hostname) $PWD $RB_SMOKE $PATH\"; cat; echo err >&2; exit 7",
            ],
            env: vec![("RB_SMOKE".into(), "x y".into())],
            stdin: Some("from stdin\n".into()),
            cwd: Some(fleet.workdir()),
            ..Default::default()
        },
    );
    assert_eq!(r.status, 7, "{r:?}");
    assert_eq!(
        r.stdout,
        format!(
            "ws {} x y {}\nfrom stdin\n",
            fleet.workdir().display(),
            crate::fleet::HOST_PATH
        )
    );
    assert_eq!(r.stderr, "err\n");

    // nonix: no nix tools on the PATH of ssh sessions there.
    let r = fleet.sh(
        "ws",
        "ssh aquamarine 'command -v nix-env || echo none; command -v sh'",
    );
    assert_eq!(
        r.assert_success().stdout,
        "none\n/run/rb-fleet/nonix-bin/sh\n"
    );
    let r = fleet.sh("ws", "command -v nix-env");
    assert_eq!(r.assert_success().stdout, "/usr/bin/nix-env\n");
}

#[test]
fn generations_and_profiles() {
    let fleet = Fleet::up(&["ws", "aquamarine"]);
    assert_eq!(
        fleet.generations("aquamarine", SYSTEM_PROFILE),
        Vec::<u32>::new()
    );
    assert_eq!(fleet.current_generation("aquamarine", SYSTEM_PROFILE), None);
    let one = fleet.seed_generation("aquamarine", "aquamarine");
    fleet.knob("aquamarine", "rev", "2");
    let two = fleet.seed_generation("aquamarine", "aquamarine");
    assert_eq!(fleet.generations("aquamarine", SYSTEM_PROFILE), [1, 2]);
    assert_eq!(
        fleet.current_generation("aquamarine", SYSTEM_PROFILE),
        Some(2)
    );
    assert_eq!(
        fleet
            .profile_target("aquamarine", SYSTEM_PROFILE)
            .as_deref(),
        Some(two.as_str())
    );
    assert_eq!(
        fleet
            .profile_target("aquamarine", &format!("{SYSTEM_PROFILE}-1-link"))
            .as_deref(),
        Some(one.as_str())
    );
    // Seeding neither activates nor touches other hosts.
    assert_eq!(fleet.current_system("aquamarine"), None);
    assert!(fleet.generations("ws", SYSTEM_PROFILE).is_empty());
    let r = fleet.sh(
        "aquamarine",
        &format!("nix-env -p {SYSTEM_PROFILE} --rollback && readlink -f {SYSTEM_PROFILE}"),
    );
    assert_eq!(r.assert_success().stdout_trimmed(), one);
    assert_eq!(
        fleet.current_generation("aquamarine", SYSTEM_PROFILE),
        Some(1)
    );
}
