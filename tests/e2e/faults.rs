//! Faults while rb deploys: the target's sshd killed during the copy and during activation,
//! a full store on the target, rb interrupted (Ctrl-C, SIGTERM) while it builds, copies and
//! activates. After each: a non-zero exit status with one `rb: error:` line, the target's
//! profile either where it was or at the complete new system (never dangling, never a partial
//! closure), no SSH master of the run left running and no directory of rb's left behind.

use crate::fleet::{Fleet, RbCall, SYSTEM_PROFILE};
use crate::state::{
    Running, assert_nothing_left, assert_profile_old_or_new, descendants, error_lines, kill_sshd,
    processes, runtime_dir, spawn_rb, wait_until,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const WS: &str = "ws";
const LIMIT: Duration = Duration::from_secs(60);

/// A `nix-store` and a `nix-daemon` for `host` whose `--serve` and `--stdio` (the receiving
/// end of a copy, legacy or streamed) take the first
/// 2000 bytes of the copy, marks /run/rb-fleet/copy-stalled, then holds the rest until the
/// sender goes away (or 60 s pass): a copy cut off half way, with some paths already in
/// the store and one half written.
fn stall_copies(f: &Fleet, host: &str) {
    let script = r#"#!/bin/sh
prog=/usr/bin/${0##*/}
case " $* " in
*" --serve "* | *" --stdio "*) ;;
*) exec "$prog" "$@" ;;
esac
/usr/bin/perl -e '
  my $n = 0; my $k = 2000;
  while ($n < $k) { my $r = sysread(STDIN, my $b, $k - $n) or exit 0; syswrite(STDOUT, $b); $n += $r }
  open(my $m, ">", "/run/rb-fleet/copy-stalled"); close $m;
  my $held = ""; my $until = time + 60;
  while (time < $until) {
    my $rin = ""; vec($rin, 0, 1) = 1;
    next unless select($rin, undef, undef, 0.2);
    sysread(STDIN, my $b, 65536) or exit 0;
    $held .= $b;
  }
  syswrite(STDOUT, $held);
  while (sysread(STDIN, my $b, 65536)) { syswrite(STDOUT, $b) }
' | "$prog" "$@"
"#;
    for name in ["nix-store", "nix-daemon"] {
        let path = f.host_path(host, &format!("/run/rb-fleet/bin/{name}"));
        fs::write(&path, script).unwrap();
        Command::new("chmod")
            .arg("755")
            .arg(&path)
            .status()
            .unwrap();
    }
}

fn copy_stalled(f: &Fleet, host: &str) -> bool {
    f.host_path(host, "/run/rb-fleet/copy-stalled").exists()
}

/// The host's first generation (built there, not activated), then a new revision of its
/// configuration, built on the workstation: returns (old system, new system).
fn old_and_new(f: &Fleet, host: &str, knobs: &[(&str, &str)]) -> (String, String) {
    let old = f.seed_generation(host, host);
    f.knob(host, "rev", "2");
    for (k, v) in knobs {
        f.knob(host, k, v);
    }
    (old, f.build_toplevel(WS, host))
}

/// rb's runtime and temporary directories (`XDG_RUNTIME_DIR`, `TMPDIR`): empty after each run.
struct Dirs(PathBuf, PathBuf);

impl Dirs {
    fn new(f: &Fleet) -> Dirs {
        Dirs(runtime_dir(f, "rt"), runtime_dir(f, "tmp"))
    }

    fn env(&self) -> [(&'static str, &Path); 2] {
        [("XDG_RUNTIME_DIR", &self.0), ("TMPDIR", &self.1)]
    }

    #[track_caller]
    fn assert_clean(&self, context: &str) {
        assert_nothing_left(&self.0, context);
        assert_nothing_left(&self.1, context);
    }
}

/// `rb switch` of `host`'s configuration to root@`host`, in the background.
fn switch(f: &Fleet, host: &str, dirs: &Dirs) -> Running {
    let target = format!("root@{host}");
    let args = [
        "switch",
        "--flake",
        &f.flake(host),
        "--target-host",
        &target,
    ];
    spawn_rb(f, &args, &dirs.env(), None)
}

#[test]
fn target_cut_off_during_the_copy_and_during_activation() {
    const COPY: &str = "copycut";
    const ACT: &str = "actcut";
    let f = Fleet::up(&[WS, COPY, ACT]);
    let dirs = Dirs::new(&f);

    // During the copy: the closure is half way there.
    let (old, new) = old_and_new(&f, COPY, &[]);
    stall_copies(&f, COPY);
    let run = switch(&f, COPY, &dirs);
    wait_until("the copy", LIMIT, || copy_stalled(&f, COPY));
    kill_sshd(&f, COPY);
    let r = run.wait(LIMIT);
    r.assert_status(1);
    assert_eq!(
        error_lines(&r.stderr),
        ["rb: error: copying the system closure failed on local (exit status 1)"],
        "{r:?}"
    );
    let now = assert_profile_old_or_new(&f, COPY, SYSTEM_PROFILE, Some(&old), &new, "copy");
    assert_eq!(now.as_deref(), Some(&*old), "{r:?}");
    assert!(f.activations(COPY).is_empty());
    dirs.assert_clean("copy");

    // During activation: the profile is already the new system.
    let (old, new) = old_and_new(&f, ACT, &[("activationSeconds", "30")]);
    let run = switch(&f, ACT, &dirs);
    wait_until("activation", LIMIT, || f.activations(ACT).len() == 1);
    kill_sshd(&f, ACT);
    let r = run.wait(LIMIT);
    r.assert_status(255);
    assert_eq!(
        error_lines(&r.stderr),
        [format!(
            "rb: error: lost the connection to root@{ACT} while activating the configuration \
             (ssh exit status 255); the profile there is already the new generation, whose \
             activation may not have finished"
        )],
        "{r:?}"
    );
    let now = assert_profile_old_or_new(&f, ACT, SYSTEM_PROFILE, Some(&old), &new, "activation");
    assert_eq!(now.as_deref(), Some(&*new), "{r:?}");
    dirs.assert_clean("activation");
}

#[test]
fn a_full_target_store_changes_nothing() {
    const FULL: &str = "full";
    let f = Fleet::up(&[WS, FULL]);
    let dirs = Dirs::new(&f);
    let new = f.build_toplevel(WS, FULL);
    // A 16 KiB store, seen by the target's sshd and the sessions it starts (its mount
    // namespace) and nothing else; it goes away with that namespace, or at the end here.
    let sshd = fs::read_to_string(f.host_dir(FULL).join("sshd.pid")).unwrap();
    let sshd = sshd.split_whitespace().next().unwrap().to_string();
    let in_target = |args: &[&str]| {
        Command::new("nsenter")
            .args(["-t", &sshd, "-m", "--"])
            .args(args)
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            .output()
            .unwrap()
    };
    let mount = in_target(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=16k,mode=0755",
        "rb-full",
        "/nix/store",
    ]);
    assert!(mount.status.success(), "{mount:?}");

    let r = f.rb_with(RbCall {
        args: &["switch", "--flake", &f.flake(FULL), "--target-host", FULL],
        env: dirs
            .env()
            .map(|(k, v)| (k.to_string(), v.to_string_lossy().into_owned()))
            .to_vec(),
        ..Default::default()
    });
    let valid = in_target(&["nix-store", "--check-validity", &new]);
    let umount = in_target(&["umount", "/nix/store"]);
    r.assert_status(1);
    assert!(r.stderr.contains("No space left on device"), "{r:?}");
    assert_eq!(
        error_lines(&r.stderr),
        ["rb: error: copying the system closure failed on local (exit status 1)"],
        "{r:?}"
    );
    assert!(!valid.status.success(), "the new system is not valid there");
    assert!(umount.status.success(), "{umount:?}");
    assert_eq!(
        assert_profile_old_or_new(&f, FULL, SYSTEM_PROFILE, None, &new, "full"),
        None
    );
    assert!(f.activations(FULL).is_empty());
    dirs.assert_clean("full store");
}

/// Ctrl-C (SIGINT to rb's process group, as a terminal sends it) and SIGTERM (to rb alone)
/// while rb builds, copies and activates.
#[test]
fn interrupted_while_building_copying_and_activating() {
    const BUILD: &str = "ibuild";
    const COPY: &str = "icopy";
    const ACT: &str = "iact";
    let f = Fleet::up(&[WS, BUILD, COPY, ACT]);
    let dirs = Dirs::new(&f);
    let (build_old, _) = old_and_new(&f, BUILD, &[]);
    // Set after the new system is built on the workstation: rb's build now sleeps first.
    f.knob(BUILD, "buildSeconds", "91");
    let (copy_old, copy_new) = old_and_new(&f, COPY, &[]);
    stall_copies(&f, COPY);
    let (act_old, act_new) = old_and_new(&f, ACT, &[("activationSeconds", "30")]);
    let builder_sleeps = || processes().iter().any(|p| p.cmdline == "sleep 91");

    for (signal, status) in [("INT", 130), ("TERM", 143)] {
        let interrupt = |run: Running, step: &str| {
            match signal {
                "INT" => run.ctrl_c(),
                _ => run.signal(signal),
            }
            let r = run.wait(LIMIT);
            let ctx = format!("SIG{signal} during {step}");
            assert_eq!(r.status, status, "{ctx}: {r:?}");
            assert_eq!(
                error_lines(&r.stderr),
                ["rb: error: interrupted"],
                "{ctx}: {r:?}"
            );
            assert_eq!(r.stdout, "", "{ctx}: {r:?}");
            dirs.assert_clean(&ctx);
        };

        // While building (here, for the target): the build stops too.
        let run = switch(&f, BUILD, &dirs);
        let pid = run.pid();
        wait_until("the build", LIMIT, || {
            descendants(pid).iter().any(|p| p.cmdline == "sleep 91")
        });
        interrupt(run, "the build");
        wait_until("the build to stop", LIMIT, || !builder_sleeps());
        let now =
            assert_profile_old_or_new(&f, BUILD, SYSTEM_PROFILE, Some(&build_old), "", "build");
        assert_eq!(now.as_deref(), Some(&*build_old));
        assert!(f.activations(BUILD).is_empty());

        // While copying.
        let _ = fs::remove_file(f.host_path(COPY, "/run/rb-fleet/copy-stalled"));
        let run = switch(&f, COPY, &dirs);
        wait_until("the copy", LIMIT, || copy_stalled(&f, COPY));
        interrupt(run, "the copy");
        let now =
            assert_profile_old_or_new(&f, COPY, SYSTEM_PROFILE, Some(&copy_old), &copy_new, "copy");
        assert_eq!(now.as_deref(), Some(&*copy_old));
        assert!(f.activations(COPY).is_empty());

        // While activating: the profile was set just before.
        let before = f.profile_target(ACT, SYSTEM_PROFILE);
        let activations = f.activations(ACT).len();
        let run = switch(&f, ACT, &dirs);
        wait_until("activation", LIMIT, || {
            f.activations(ACT).len() > activations
        });
        interrupt(run, "activation");
        let now = assert_profile_old_or_new(
            &f,
            ACT,
            SYSTEM_PROFILE,
            before.as_deref(),
            &act_new,
            "activation",
        );
        assert_eq!(now.as_deref(), Some(&*act_new));
        if signal == "INT" {
            assert_eq!(before.as_deref(), Some(&*act_old));
        }
    }
}

/// Ctrl-C while the target's connection is still in its first session (the probe, which
/// runs while the build does): ssh has already put the master in the background, so the
/// opening fails with the signal yet leaves a master running, which rb closes too.
#[test]
fn interrupted_while_the_connection_runs_its_probe() {
    const SLOW: &str = "slowprobe";
    let f = Fleet::up(&[WS, SLOW]);
    let dirs = Dirs::new(&f);
    f.knob(SLOW, "buildSeconds", "60");
    // sshd runs ~/.ssh/rc before each session's command (the fleet's hosts share root's
    // ~/.ssh): every session now takes 30 s, once its connection is up.
    fs::write(f.dir().join("ssh/rc"), "sleep 30\n").unwrap();
    let run = switch(&f, SLOW, &dirs);
    let rt = dirs.0.to_string_lossy().into_owned();
    wait_until("the master", LIMIT, || {
        processes()
            .iter()
            .any(|p| p.cmdline.starts_with("ssh: ") && p.cmdline.contains(&rt))
    });
    run.ctrl_c();
    let r = run.wait(LIMIT);
    r.assert_status(130);
    assert_eq!(error_lines(&r.stderr), ["rb: error: interrupted"], "{r:?}");
    dirs.assert_clean("SIGINT during the probe");
    assert!(f.activations(SLOW).is_empty());
}
