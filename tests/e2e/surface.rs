//! The rest of nixos-rebuild's surface on the fleet: list-generations (here and on a target),
//! edit, repl, build-vm, build-image, --upgrade, --store-path and --diff, with their errors.

use crate::fleet::{Fleet, RbCall, SYSTEM_PROFILE};
use serde_json::Value;
use std::fs;
use std::path::Path;

const WS: &str = "ws";
const AQ: &str = "aquamarine";

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn is_iso8601_utc(date: &str) -> bool {
    let b = date.as_bytes();
    b.len() == 20
        && date.ends_with('Z')
        && b[10] == b'T'
        && [4, 7].iter().all(|&i| b[i] == b'-')
        && [13, 16].iter().all(|&i| b[i] == b':')
        && b.iter()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19].contains(&i) || c.is_ascii_digit())
}

fn stderr_has_line(r: &crate::fleet::RunResult, line: &str) -> bool {
    r.stderr.lines().any(|l| l == line)
}

#[test]
fn list_generations_as_json_and_as_a_table() {
    let f = Fleet::up(&[WS]);
    f.rb(&["switch", "--flake", &f.flake(WS)]).assert_success();
    f.knob(WS, "rev", "2");
    f.knob(WS, "specialisations", r#"["a", "b"]"#);
    f.knob(WS, "kernelVersion", r#""6.2.0-rb""#);
    f.knob(WS, "configurationRevision", r#""abc123""#);
    f.rb(&["boot", "--flake", &f.flake(WS)]).assert_success();

    let r = f.rb(&["list-generations", "--json"]);
    r.assert_success();
    let gens = json(&r.stdout);
    let gens = gens.as_array().unwrap();
    assert_eq!(gens.len(), 2);
    // Newest first, with nixos-rebuild's keys in its order.
    let keys: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("    \""))
        .map(|l| l.trim().split('"').nth(1).unwrap())
        .take(7)
        .collect();
    assert_eq!(
        keys,
        [
            "generation",
            "date",
            "nixosVersion",
            "kernelVersion",
            "configurationRevision",
            "specialisations",
            "current"
        ]
    );
    let (new, old) = (&gens[0], &gens[1]);
    assert_eq!(new["generation"], 2);
    assert_eq!(new["nixosVersion"], "26.05.2");
    assert_eq!(new["kernelVersion"], "6.2.0-rb");
    assert_eq!(new["configurationRevision"], "abc123");
    assert_eq!(new["specialisations"], json(r#"["a", "b"]"#));
    assert_eq!(new["current"], true, "boot made generation 2 the profile's");
    assert_eq!(old["generation"], 1);
    assert_eq!(old["kernelVersion"], "6.1.0-rb");
    assert_eq!(old["configurationRevision"], "rev-1");
    assert_eq!(old["specialisations"], json(r#"["web"]"#));
    assert_eq!(old["current"], false);
    for g in gens {
        assert!(is_iso8601_utc(g["date"].as_str().unwrap()), "{g}");
    }

    let r = f.rb(&["list-generations"]);
    r.assert_success();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{r:?}");
    assert_eq!(
        lines[0]
            .split("  ")
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>(),
        [
            "Generation",
            "Build-date",
            "NixOS version",
            "Kernel",
            "Configuration Revision",
            "Specialisation",
            "Current"
        ]
    );
    assert!(lines[1].starts_with("2 "), "{r:?}");
    assert!(
        lines[1].contains("a, b") && lines[1].ends_with("yes"),
        "{r:?}"
    );
    assert!(
        lines[2].starts_with("1 ") && lines[2].ends_with("web"),
        "{r:?}"
    );
    assert!(r.stdout.lines().all(|l| l == l.trim_end()));

    // --profile-name: its own generations.
    f.rb(&["switch", "--flake", &f.flake(WS), "-p", "web"])
        .assert_success();
    let r = f.rb(&["list-generations", "-p", "web", "--json"]);
    r.assert_success();
    let gens = json(&r.stdout);
    assert_eq!(gens.as_array().unwrap().len(), 1);
    assert_eq!(gens[0]["generation"], 1);
    assert_eq!(gens[0]["nixosVersion"], "26.05.2");
    assert_eq!(gens[0]["current"], true);
}

#[test]
fn list_generations_without_the_profile_is_an_error() {
    let f = Fleet::up(&[WS]);
    for args in [
        &["list-generations"][..],
        &["list-generations", "-p", "nope", "--json"],
    ] {
        let r = f.rb(args);
        r.assert_status(1);
        assert_eq!(r.stdout, "");
        let name = if args.len() > 1 { "nope" } else { "system" };
        assert!(
            stderr_has_line(&r, &format!("rb: error: no profile '{name}' found")),
            "{r:?}"
        );
    }
}

#[test]
fn list_generations_date_is_when_the_generation_was_made() {
    let f = Fleet::up(&[WS]);
    let path = f.seed_generation(WS, WS);
    // nix-env made the link when it made the generation; pretend that was in 2001.
    f.sh(
        WS,
        &format!("touch -h -d '2001-02-03 04:05:06 UTC' {SYSTEM_PROFILE}-1-link"),
    )
    .assert_success();
    let date = |f: &Fleet| json(&f.rb(&["list-generations", "--json"]).stdout)[0]["date"].clone();
    assert_eq!(date(&f), "2001-02-03T04:05:06Z");
    // Optimising the store (hard links) or touching the system changes the ctime of the
    // link's target, which nixos-rebuild-ng shows; the generation's date stays.
    f.sh(WS, &format!("nix-store --optimise && touch '{path}'"))
        .assert_success();
    assert_eq!(date(&f), "2001-02-03T04:05:06Z");
}

#[test]
fn list_generations_of_a_target_in_one_session_without_root() {
    let f = Fleet::up(&[WS, AQ]);
    f.seed_generation(AQ, AQ);
    f.knob(AQ, "rev", "2");
    f.seed_generation(AQ, AQ);
    let before = f.sessions(AQ);
    let r = f.rb(&[
        "list-generations",
        "--json",
        "--target-host",
        &format!("deploy@{AQ}"),
    ]);
    r.assert_success();
    let after = f.sessions(AQ);
    assert_eq!(after.sessions - before.sessions, 1, "one remote command");
    assert_eq!(after.connections - before.connections, 1);
    let gens = json(&r.stdout);
    assert_eq!(gens[0]["generation"], 2);
    assert_eq!(gens[0]["nixosVersion"], "26.05.2");
    assert_eq!(gens[0]["current"], true);
    assert_eq!(gens[1]["generation"], 1);
    // The workstation's own profile was not looked at (it has none).
    assert!(f.generations(WS, SYSTEM_PROFILE).is_empty());

    let r = f.rb(&[
        "list-generations",
        "-p",
        "nope",
        "--target-host",
        &format!("deploy@{AQ}"),
    ]);
    r.assert_status(1);
    assert!(
        stderr_has_line(&r, "rb: error: no profile 'nope' found"),
        "{r:?}"
    );
    // A build host has nothing to do with listing generations.
    let r = f.rb(&["list-generations", "--build-host", AQ]);
    r.assert_status(2);
    assert!(r.stderr.starts_with(
        "rb: error: --target-host/--build-host is not supported with 'list-generations'"
    ));
}

/// An `$EDITOR` that records what it was asked to open.
fn editor(f: &Fleet) -> (String, std::path::PathBuf) {
    let script = f.workdir().join("editor");
    let log = f.workdir().join("editor.log");
    fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s\\n' \"$*\" >> {}\n", log.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    // Split like the bash tool and `nix edit` split it.
    (format!("{} --wait", script.display()), log)
}

fn last_line(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .last()
        .unwrap_or("")
        .to_string()
}

#[test]
fn edit_opens_the_flake_or_the_classic_configuration() {
    let f = Fleet::up(&[WS]);
    let (editor, log) = editor(&f);
    let env = |extra: &[(&str, String)]| {
        let mut env = vec![("EDITOR".to_string(), editor.clone())];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        env
    };

    // A flake: `nix edit` of its configuration, which runs $EDITOR.
    f.rb_with(RbCall {
        args: &["edit", "--flake", &f.flake(WS)],
        env: env(&[]),
        ..Default::default()
    })
    .assert_success();
    // Nix copies the flake to the store first (2.8-2.26) or opens it where it lives (2.34).
    let line = last_line(&log);
    let in_place = format!("--wait {}/", f.config_dir().display());
    assert!(
        (line.starts_with("--wait /nix/store/") || line.starts_with(&in_place))
            && line.ends_with("/flake.nix"),
        "{line}"
    );

    // Classic: $NIXOS_CONFIG (a directory means its default.nix) ...
    let config = f.config_dir();
    f.rb_with(RbCall {
        args: &["edit", "--no-flake"],
        env: env(&[("NIXOS_CONFIG", config.display().to_string())]),
        ..Default::default()
    })
    .assert_success();
    assert_eq!(
        last_line(&log),
        format!("--wait {}/default.nix", config.display())
    );
    // ... else <nixos-config>.
    let file = config.join("fake-nixos.nix");
    f.rb_with(RbCall {
        args: &[
            "edit",
            "--no-flake",
            "-I",
            &format!("nixos-config={}", file.display()),
        ],
        env: env(&[]),
        ..Default::default()
    })
    .assert_success();
    assert_eq!(last_line(&log), format!("--wait {}", file.display()));

    // Nothing there: ng's error, and no editor.
    let lines = fs::read_to_string(&log).unwrap().lines().count();
    let r = f.rb_with(RbCall {
        args: &["edit", "--no-flake"],
        env: env(&[("NIXOS_CONFIG", "/nonexistent/configuration.nix".into())]),
        ..Default::default()
    });
    r.assert_status(1);
    assert!(
        stderr_has_line(&r, "rb: error: cannot find NixOS config file"),
        "{r:?}"
    );
    // -f/-A do not go with edit (a usage error).
    let r = f.rb_with(RbCall {
        args: &["edit", "-f", &f.config_file().display().to_string()],
        env: env(&[]),
        ..Default::default()
    });
    r.assert_status(2);
    assert!(
        r.stderr
            .starts_with("rb: error: --file and --attr are not supported with 'edit'")
    );
    assert_eq!(fs::read_to_string(&log).unwrap().lines().count(), lines);
}

/// `text` without ANSI colour sequences (`nix repl` colours values).
fn without_colours(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn repl_loads_the_configuration() {
    let f = Fleet::up(&[WS]);
    let tmp = f.workdir().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let input = ":p config.networking.hostName\n:p config.system.build.toplevel.name\n\
                 :p options.networking.hostName.description\n:p lib.version\n\
                 :p builtins.attrNames flake.nixosConfigurations\n";
    let repl = |args: &[&str], cwd: &Path| {
        let r = f.rb_with(RbCall {
            args,
            stdin: Some(input.into()),
            cwd: Some(cwd.to_path_buf()),
            env: vec![("TMPDIR".into(), tmp.display().to_string())],
            ..Default::default()
        });
        r.assert_success();
        r
    };

    // A flake named relative to the current directory, with everything in scope.
    // `:p` quotes strings on Nix 2.8 and not on 2.26+: compare the values without quotes.
    let values = |r: &crate::fleet::RunResult| without_colours(&r.stdout).replace('"', "");
    let r = repl(&["repl", "--flake", ".#ws"], &f.config_dir());
    let stdout = values(&r);
    for printed in [
        "\nws\n",
        "nixos-system-ws-26.05.1",
        "The name of the machine.",
        "26.05.1",
        "ws ]",
    ] {
        assert!(stdout.contains(printed), "{printed} missing: {r:?}");
    }
    assert!(
        r.stderr.contains("nixosConfigurations.\"ws\""),
        "the greeting: {r:?}"
    );
    // The expression file Nix 2.8 needs is gone.
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);

    // Classic (<nixpkgs/nixos>) and file mode, as nixos-rebuild-ng loads them.
    let r = repl(&["repl", "--no-flake"], &f.workdir());
    assert!(values(&r).contains("nixos-system-ws-26.05.1"), "{r:?}");
    f.knob("other", "rev", "3");
    let r = repl(
        &["repl", "-f", "default.nix", "-A", "other"],
        &f.config_dir(),
    );
    assert!(values(&r).contains("\nother\n"), "{r:?}");
    assert!(values(&r).contains("nixos-system-other-26.05.3"), "{r:?}");
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
}

#[test]
fn build_vm_leaves_result_and_prints_the_run_script() {
    let f = Fleet::up(&[WS]);
    for (action, kind) in [
        ("build-vm", "vm"),
        ("build-vm-with-bootloader", "vmWithBootLoader"),
    ] {
        let r = f.rb(&[action, "--flake", &f.flake(WS)]);
        r.assert_success();
        let result = fs::read_link(f.workdir().join("result")).expect("./result");
        let script = format!("{}/bin/run-ws-vm", result.display());
        assert_eq!(r.stdout, format!("{script}\n"));
        assert!(
            r.stderr
                .contains("Done. The virtual machine can be started by running "),
            "{r:?}"
        );
        let run = f.sh(WS, &script);
        assert!(
            run.assert_success()
                .stdout
                .starts_with(&format!("rb-fleet: fake {kind} of ws")),
            "{run:?}"
        );
    }
    assert!(f.activations(WS).is_empty());
    assert!(f.generations(WS, SYSTEM_PROFILE).is_empty());
}

fn image_built(f: &Fleet) -> bool {
    fs::read_dir(f.host_path(WS, "/nix/store"))
        .map(|d| {
            d.filter_map(|e| e.ok()).any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.contains("nixos-image-") && !n.ends_with(".drv")
            })
        })
        .unwrap_or(false)
}

#[test]
fn build_image_needs_a_known_variant_and_prints_the_image() {
    let f = Fleet::up(&[WS]);
    for args in [
        &["build-image", "--flake", &f.flake(WS)][..],
        &[
            "build-image",
            "--flake",
            &f.flake(WS),
            "--image-variant",
            "vmdk",
        ],
    ] {
        let r = f.rb(args);
        r.assert_status(1);
        assert_eq!(r.stdout, "");
        // After the progress lines of the one evaluation, nothing but the error.
        assert_eq!(
            r.stderr
                .lines()
                .skip_while(|l| !l.contains("error"))
                .collect::<Vec<_>>(),
            [
                "rb: error: please specify one of the following supported image variants via --image-variant:",
                "- iso",
                "- qcow2",
            ],
            "{r:?}"
        );
    }
    assert!(!image_built(&f), "nothing was built");
    assert!(!f.workdir().join("result").exists());

    let r = f.rb(&[
        "build-image",
        "--flake",
        &f.flake(WS),
        "--image-variant",
        "iso",
    ]);
    r.assert_success();
    let result = fs::read_link(f.workdir().join("result")).expect("./result");
    assert_eq!(r.stdout, format!("{}/iso/nixos.iso\n", result.display()));
    assert!(
        r.stderr.contains("Done. The disk image can be found in "),
        "{r:?}"
    );
    let image = fs::read_to_string(f.host_path(WS, r.stdout_trimmed())).unwrap();
    assert!(image.starts_with("rb-fleet fake iso image of"), "{image}");

    // Classic mode, too.
    let r = f.rb(&["build-image", "--no-flake", "--image-variant", "qcow2"]);
    r.assert_success();
    assert!(r.stdout_trimmed().ends_with("/nixos.qcow2"), "{r:?}");
    assert!(f.host_path(WS, r.stdout_trimmed()).is_file());
}

/// A channel tarball `<name>.tar.xz` in the work directory: a `<name>/` tree with a `version`
/// file, `.update-on-nixos-rebuild` when `marked`, and for `nixos` a `nixos/default.nix`
/// building the workstation's configuration at revision `rev`.
fn channel(f: &Fleet, name: &str, rev: u32, marked: bool) -> String {
    let root = f.workdir().join(format!("channel-src-{name}"));
    let _ = fs::remove_dir_all(&root);
    let dir = root.join(name);
    fs::create_dir_all(dir.join("nixos")).unwrap();
    fs::write(dir.join("version"), format!("{rev}\n")).unwrap();
    if marked {
        fs::write(dir.join(".update-on-nixos-rebuild"), "").unwrap();
    }
    let config = f.config_dir();
    fs::write(
        dir.join("nixos/default.nix"),
        format!(
            "{{ ... }}:\nlet knobs = builtins.fromJSON (builtins.readFile {c}/knobs.json);\n\
             in import {c}/fake-nixos.nix {{\n  \
             knobs = knobs // {{ ws = knobs.ws // {{ rev = {rev}; }}; }};\n  name = \"ws\";\n}}\n",
            c = config.display()
        ),
    )
    .unwrap();
    let tarball = f.workdir().join(format!("{name}.tar.xz"));
    let status = std::process::Command::new("tar")
        .arg("-cJf")
        .arg(&tarball)
        .arg("-C")
        .arg(&root)
        .arg(name)
        .status()
        .unwrap();
    assert!(status.success());
    tarball.display().to_string()
}

fn channel_version(f: &Fleet, name: &str) -> String {
    let path = format!("/nix/var/nix/profiles/per-user/root/channels/{name}/version");
    fs::read_to_string(f.host_file(WS, &path).unwrap())
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn upgrade_updates_roots_channels_before_building() {
    let f = Fleet::up(&[WS]);
    // The same URL serves each new tarball: no download cache in between.
    let conf = f.host_path(WS, "/etc/nix/nix.conf");
    let mut text = fs::read_to_string(&conf).unwrap();
    text.push_str("tarball-ttl = 0\n");
    fs::write(&conf, text).unwrap();
    let mut add = String::new();
    for (name, marked) in [("nixos", false), ("extra", true), ("other", false)] {
        let tarball = channel(&f, name, 1, marked);
        add.push_str(&format!("nix-channel --add file://{tarball} {name} && "));
    }
    f.sh(WS, &format!("{add}nix-channel --update"))
        .assert_success();
    for name in ["nixos", "extra", "other"] {
        channel(&f, name, 2, name == "extra");
    }
    // <nixpkgs> is root's nixos channel (-I: the fleet's nix.conf sets nix-path).
    let channel_nixpkgs = "nixpkgs=/nix/var/nix/profiles/per-user/root/channels/nixos";

    // Not root and no --sudo: ng's error, before anything is updated or built.
    let r = f.rb_with(RbCall {
        args: &["build", "--no-flake", "--upgrade", "-I", channel_nixpkgs],
        user: Some("deploy"),
        ..Default::default()
    });
    r.assert_status(1);
    assert!(
        stderr_has_line(
            &r,
            "rb: error: if you pass the '--upgrade' or '--upgrade-all' flag, you must also pass \
             '--sudo', '--run0', or run the command as root (e.g., with sudo)"
        ),
        "{r:?}"
    );
    assert_eq!(channel_version(&f, "nixos"), "1");
    assert!(!f.workdir().join("result").exists());

    // --upgrade: nixos and the marked channel, then the build sees the new nixos.
    let r = f.rb_with(RbCall {
        args: &[
            "build",
            "--no-flake",
            "--upgrade",
            "--sudo",
            "-I",
            channel_nixpkgs,
        ],
        user: Some("deploy"),
        ..Default::default()
    });
    r.assert_success();
    assert!(
        r.stdout_trimmed().ends_with("-nixos-system-ws-26.05.2"),
        "{r:?}"
    );
    assert_eq!(channel_version(&f, "nixos"), "2");
    assert_eq!(channel_version(&f, "extra"), "2");
    assert_eq!(channel_version(&f, "other"), "1");

    // --upgrade-all, as root: every channel.
    for name in ["nixos", "extra", "other"] {
        channel(&f, name, 3, false);
    }
    let r = f.rb_with(RbCall {
        args: &[
            "build",
            "--no-flake",
            "--upgrade-all",
            "-I",
            channel_nixpkgs,
        ],
        ..Default::default()
    });
    r.assert_success();
    assert!(
        r.stdout_trimmed().ends_with("-nixos-system-ws-26.05.3"),
        "{r:?}"
    );
    for name in ["nixos", "extra", "other"] {
        assert_eq!(channel_version(&f, name), "3", "{name}");
    }
}

#[test]
fn store_path_deploys_a_closure_built_elsewhere() {
    let f = Fleet::up(&[WS, AQ]);
    // Built on the workstation without rb, deployed to the target.
    let path = f.build_toplevel(WS, AQ);
    assert!(!f.has_path(AQ, &path));
    let r = f.rb(&[
        "switch",
        "--store-path",
        &path,
        "--target-host",
        &format!("root@{AQ}"),
    ]);
    r.assert_success();
    assert_eq!(r.stdout, format!("{path}\n"));
    assert!(f.has_path(AQ, &path));
    assert_eq!(f.current_generation(AQ, SYSTEM_PROFILE), Some(1));
    assert_eq!(
        f.profile_target(AQ, SYSTEM_PROFILE).as_deref(),
        Some(&*path)
    );
    assert_eq!(f.current_system(AQ).as_deref(), Some(&*path));
    assert_eq!(f.activations(AQ)[0].action, "switch");
    assert!(f.activations(WS).is_empty());

    // And here.
    let here = f.build_toplevel(WS, WS);
    f.rb(&["test", "--store-path", &here]).assert_success();
    assert_eq!(f.current_system(WS).as_deref(), Some(&*here));
    assert!(
        f.generations(WS, SYSTEM_PROFILE).is_empty(),
        "test sets no profile"
    );

    // --store-path with --flake: a usage error that changes nothing.
    let r = f.rb(&["switch", "--store-path", &here, "--flake", &f.flake(WS)]);
    r.assert_status(2);
    assert!(
        r.stderr
            .starts_with("rb: error: --store-path cannot be used with --flake, --file, or --attr")
    );
    assert_eq!(f.activations(WS).len(), 1);
    assert!(f.generations(WS, SYSTEM_PROFILE).is_empty());
}

#[test]
fn diff_compares_with_the_targets_running_system_in_the_same_session() {
    let f = Fleet::up(&[WS, AQ]);
    let target = format!("root@{AQ}");
    let flake = f.flake(AQ);
    let deploy = |diff: bool, json_doc: bool| {
        let mut args = vec!["switch", "--flake", &flake, "--target-host", &target];
        if diff {
            args.push("--diff");
        }
        if json_doc {
            args.push("--json");
        }
        let before = f.sessions(AQ).sessions;
        let r = f.rb(&args);
        r.assert_success();
        (r, f.sessions(AQ).sessions - before)
    };
    // The lines rb shows from the first one starting with `<<< `.
    let shown = |r: &crate::fleet::RunResult| -> Vec<String> {
        r.stderr
            .lines()
            .skip_while(|l| !l.starts_with("<<< "))
            .take_while(|l| !l.starts_with("rb: "))
            .map(String::from)
            .collect()
    };
    // Nothing running yet: one line, and the deploy goes on.
    f.knob(AQ, "packages", r#"{"hello": "2.12", "nano": "7.2"}"#);
    let (r, _) = deploy(true, false);
    let first = f.current_system(AQ).unwrap();
    assert!(
        stderr_has_line(
            &r,
            &format!("nothing to compare with: the target runs no NixOS system yet (new: {first})")
        ),
        "{r:?}"
    );
    assert!(!r.stderr.contains("<<< "), "{r:?}");

    // One package upgraded, one added, one removed: exactly those, and the closure.
    f.knob(AQ, "packages", r#"{"hello": "2.12.1", "firefox": "121.0"}"#);
    let (r, with_diff) = deploy(true, false);
    let second = f.current_system(AQ).unwrap();
    assert_ne!(first, second);
    let lines = shown(&r);
    assert_eq!(
        lines[..8],
        [
            format!("<<< {first}"),
            format!(">>> {second}"),
            "Version changes:".into(),
            "[U] hello 2.12 -> 2.12.1".into(),
            "Added packages:".into(),
            "[A] firefox 121.0".into(),
            "Removed packages:".into(),
            "[R] nano 7.2".into(),
        ],
        "{r:?}"
    );
    // Both closures have as many paths (one package gone, one new) and a size.
    let closure = &lines[8];
    let paths = closure
        .strip_prefix("Closure: ")
        .and_then(|c| c.split_once(" -> "))
        .map(|(a, rest)| (a.to_string(), rest.split(' ').next().unwrap().to_string()));
    let (a, b) = paths.unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(a, b, "{closure}");
    assert!(
        closure.contains(" paths, ") && closure.ends_with(')'),
        "{closure}"
    );
    // The diff is shown before activation, on stderr only.
    let diff_at = r.stderr.find("<<< ").unwrap();
    assert!(diff_at < r.stderr.find("activating the configuration").unwrap());
    assert_eq!(r.stdout, format!("{second}\n"));

    // No extra round trip: the same sessions as without --diff (copy, activation).
    f.knob(AQ, "rev", "2");
    let (_, without_diff) = deploy(false, false);
    assert_eq!(with_diff, without_diff);
    let third = f.current_system(AQ).unwrap();

    // --json carries the same: a downgrade this time.
    f.knob(AQ, "packages", r#"{"hello": "2.12", "firefox": "121.0"}"#);
    let (r, _) = deploy(true, true);
    let fourth = f.current_system(AQ).unwrap();
    let doc = json(&r.stdout);
    let diff = &doc["diff"];
    assert_eq!(diff["current"]["path"], third.as_str(), "{doc}");
    assert_eq!(diff["new"]["path"], fourth.as_str(), "{doc}");
    assert_eq!(diff["current"]["paths"], diff["new"]["paths"], "{doc}");
    assert!(diff["current"]["bytes"].is_u64(), "{doc}");
    assert!(diff["new"]["bytes"].is_u64(), "{doc}");
    assert_eq!(
        diff["changes"],
        json(
            r#"[{"kind": "downgraded", "name": "hello", "before": ["2.12.1"], "after": ["2.12"]}]"#
        ),
        "{doc}"
    );
    assert!(stderr_has_line(&r, "[D] hello 2.12.1 -> 2.12"), "{r:?}");

    // Compared with the same system: cheap.
    let r = f.rb(&["test", "--flake", &f.flake(WS), "--diff"]);
    r.assert_success();
    let r = f.rb(&["test", "--flake", &f.flake(WS), "--diff"]);
    r.assert_success();
    assert!(stderr_has_line(&r, "No changes."), "{r:?}");
    // Without --diff, the document says so.
    let r = f.rb(&["test", "--flake", &f.flake(WS), "--json"]);
    r.assert_success();
    assert_eq!(json(&r.stdout)["diff"], Value::Null);
}
