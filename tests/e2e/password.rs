//! The sudo password (`-S`) travels only on the stdin of the remote sudo: it is never in the
//! command line or the environment of any process, here or on the target (the fleet's hosts
//! share this machine's /proc), nor in any output or log. Checked while the deploy runs.

use crate::fleet::{DEPLOYPW_PASSWORD, Fleet, SYSTEM_PROFILE};
use crate::state::{error_lines, runtime_dir, spawn_rb, wait_until};
use std::fs;
use std::time::Duration;

const WS: &str = "ws";
const T: &str = "aquamarine";

/// Processes whose command line or environment holds `secret`, and whether one of them was
/// the remote sudo that reads it.
fn scan(secret: &[u8]) -> (Vec<String>, bool) {
    let mut leaks = Vec::new();
    let mut saw_sudo = false;
    for e in fs::read_dir("/proc").unwrap().flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
        let environ = fs::read(e.path().join("environ")).unwrap_or_default();
        let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if shown.starts_with("sudo --prompt= --stdin ") {
            saw_sudo = true;
        }
        for (what, bytes) in [("cmdline", &cmdline), ("environ", &environ)] {
            if bytes.windows(secret.len()).any(|w| w == secret) {
                leaks.push(format!(
                    "{} {what}: {shown}",
                    e.file_name().to_string_lossy()
                ));
            }
        }
    }
    (leaks, saw_sudo)
}

#[test]
fn the_sudo_password_shows_in_no_process_and_no_output() {
    let f = Fleet::up(&[WS, T]);
    // Time to look: a build that takes a second, an activation (under sudo) that takes two.
    f.knob(T, "buildSeconds", "1");
    f.knob(T, "activationSeconds", "2");
    let rt = runtime_dir(&f, "rt");
    let host = format!("deploypw@{T}");
    let secret = DEPLOYPW_PASSWORD.as_bytes();
    let mut run = spawn_rb(
        &f,
        &[
            "switch",
            "--flake",
            &f.flake(T),
            "--target-host",
            &host,
            "-S",
        ],
        &[("XDG_RUNTIME_DIR", &*rt)],
        Some(&format!("{DEPLOYPW_PASSWORD}\n")),
    );
    let mut scans = 0;
    let mut while_elevated = 0;
    let mut leaks = Vec::new();
    while !run.finished() {
        let (found, saw_sudo) = scan(secret);
        leaks.extend(found);
        scans += 1;
        while_elevated += usize::from(saw_sudo);
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = run.wait(Duration::from_secs(60));
    r.assert_success();
    assert!(leaks.is_empty(), "the password is visible: {leaks:#?}");
    assert!(
        scans >= 50 && while_elevated >= 10,
        "looked {scans} times, {while_elevated} while sudo ran"
    );
    assert_eq!(f.current_generation(T, SYSTEM_PROFILE), Some(1));
    assert_eq!(f.activations(T)[0].uid, 0);
    assert!(error_lines(&r.stderr).is_empty(), "{r:?}");

    // Nor in anything rb or the hosts wrote.
    let pw = DEPLOYPW_PASSWORD;
    assert!(!r.stdout.contains(pw) && !r.stderr.contains(pw), "{r:?}");
    for host in [WS, T] {
        for log in [
            "sshd.log",
            "run/rb-fleet/activations.log",
            "run/rb-fleet/systemd-run.log",
        ] {
            let text = fs::read_to_string(f.host_dir(host).join(log)).unwrap_or_default();
            assert!(!text.contains(pw), "{host}'s {log} holds the password");
        }
    }
    wait_until("rb's directory to go", Duration::from_secs(5), || {
        fs::read_dir(&rt).unwrap().next().is_none()
    });
}
