//! Interrupting rb: the remote work stops, nothing is left behind, the exit status says so.

use crate::fleet::{Fleet, RB, SYSTEM_PROFILE, fleet_command};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WS: &str = "ws";
const B: &str = "builder";

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn running(f: &Fleet, pattern: &str) -> bool {
    !f.sh(WS, &format!("pgrep -f '{pattern}' || true"))
        .stdout
        .trim()
        .is_empty()
}

#[test]
fn sigint_stops_the_remote_build_and_cleans_up() {
    let f = Fleet::up(&[WS, B]);
    // A build that sleeps a recognisable number of seconds on the builder.
    f.knob(WS, "buildSeconds", "97");
    let tmp = f.dir().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let flake = f.flake(WS);
    let mut child = fleet_command()
        .arg("run")
        .arg(f.dir())
        .args([WS, "--cwd"])
        .arg(f.workdir())
        .args(["--", RB, "switch", "--flake", &flake, "--build-host", B])
        .env("XDG_RUNTIME_DIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the remote build", Duration::from_secs(60), || {
        running(&f, "sleep 9[7]")
    });
    let pattern = format!("{RB} switch --flake {flake} --build-host {B}");
    Command::new("pkill")
        .args(["-INT", "-f", "-x", &pattern])
        .status()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "rb did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("rb: error: interrupted"), "{stderr}");
    wait_until("the remote build to stop", Duration::from_secs(15), || {
        !running(&f, "sleep 9[7]")
    });
    assert!(
        // Masters name themselves `ssh: CONTROL-PATH [mux]` in the background.
        !running(&f, &format!("ssh.*{}/r[b]", tmp.display())),
        "master left"
    );
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(f.generations(WS, SYSTEM_PROFILE).is_empty());
}
