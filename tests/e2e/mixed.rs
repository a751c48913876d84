//! Mixed-version fleets: the workstation, the build host and the target each on another Nix
//! (Debian roots, see tests/fleet/roots), as in a fleet where a laptop on the newest Nix deploys
//! to a server on an old one, and the other way round.

use crate::fleet::{Fleet, RbCall, SYSTEM_PROFILE};

const WS: &str = "ws";
const B: &str = "builder";
const T: &str = "aquamarine";

/// The `root=` host option for a Nix version: the machine's own Nix where it is that version
/// (Debian 12's 2.8), else the Debian root that has it.
fn root(version: &str) -> String {
    let own = std::process::Command::new("nix")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if own.contains(&format!(" {version}.")) {
        return "root=host".into();
    }
    let suite = match version {
        "2.8" => "bookworm",
        "2.26" => "trixie",
        "2.34" => "sid",
        _ => panic!("no Debian root has Nix {version}"),
    };
    format!("root={suite}")
}

/// A fleet whose hosts run the given Nix versions (`(name, version)`, workstation first); checks
/// that each host really runs its version, so a test can never pass on one Nix by mistake.
fn mixed(hosts: &[(&str, &str)]) -> Fleet {
    let specs: Vec<String> = hosts
        .iter()
        .map(|(name, version)| format!("{name}:{}", root(version)))
        .collect();
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let f = Fleet::up(&specs);
    for (name, version) in hosts {
        let r = f.sh(name, "nix --version");
        assert!(
            r.assert_success().stdout.contains(&format!(" {version}.")),
            "{name} should run Nix {version}: {r:?}"
        );
    }
    f
}

fn deploy(f: &Fleet, extra: &[&str]) -> crate::fleet::RunResult {
    let flake = f.flake(T);
    let mut args = vec!["switch", "--flake", &flake];
    args.extend(extra);
    f.rb_with(RbCall {
        args: &args,
        ..Default::default()
    })
}

#[test]
fn the_newest_nix_deploys_to_the_oldest_over_ssh_and_ssh_ng() {
    let f = mixed(&[(WS, "2.34"), (T, "2.8")]);
    let r = deploy(&f, &["--target-host", "root@aquamarine"]);
    r.assert_success();
    assert!(f.has_path(T, r.stdout_trimmed()));
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    assert_eq!(f.activations(T).len(), 1);

    f.knob(T, "rev", "2");
    let r = deploy(&f, &["--target-host", "ssh-ng://root@aquamarine"]);
    r.assert_success();
    assert!(r.stdout_trimmed().ends_with("-26.05.2"), "{r:?}");
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(2));
    assert_eq!(f.current_system(T).as_deref(), Some(r.stdout_trimmed()));

    // --store-path: a path built here, switched to there.
    f.knob(T, "rev", "3");
    let path = f.build_toplevel(WS, T);
    let r = f.rb(&[
        "switch",
        "--store-path",
        &path,
        "--target-host",
        "root@aquamarine",
    ]);
    r.assert_success();
    assert_eq!(f.current_system(T).as_deref(), Some(path.as_str()));
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(3));
}

#[test]
fn the_oldest_nix_builds_elsewhere_and_deploys_to_the_newest() {
    let f = mixed(&[(WS, "2.8"), (B, "2.26"), (T, "2.34")]);
    for (builder, target, rev) in [
        ("root@builder", "root@aquamarine", 1),
        ("ssh-ng://root@builder", "ssh-ng://root@aquamarine", 2),
    ] {
        if rev > 1 {
            f.knob(T, "rev", &rev.to_string());
        }
        let r = deploy(&f, &["--build-host", builder, "--target-host", target]);
        r.assert_success();
        let path = r.stdout_trimmed();
        assert!(f.has_path(B, path), "built on the builder: {r:?}");
        assert!(f.has_path(T, path), "copied to the target: {r:?}");
        assert!(
            !f.has_path(WS, path),
            "never through the workstation: {r:?}"
        );
        assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(rev));
        assert!(
            !r.stderr.contains("relaying the closure"),
            "the builder copied straight to the target: {r:?}"
        );
    }
}

#[test]
fn magic_rollback_across_versions() {
    let f = mixed(&[(WS, "2.8"), (T, "2.34")]);
    let target = ["--target-host", "root@aquamarine", "--confirm-timeout", "3"];
    let r = deploy(&f, &target);
    r.assert_success();
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    let gen1 = f.current_system(T).unwrap();

    f.knob(T, "rev", "2");
    f.knob(T, "breakSsh", "true");
    let before = f.sessions(T);
    let r = deploy(&f, &target);
    r.assert_status(10);
    crate::magic_rollback::assert_rolled_back_to_1(&f, &r, &gen1);
    // The deploy connection and the (failed) confirmation's attempt reached the target.
    assert!(f.sessions(T).connections > before.connections);
}
