//! What a run left behind: each host's profiles, activations and system closures, rb's control
//! directory and master connections; and rb running in the background, to be interrupted or
//! to have its host cut off while it runs.
#![allow(dead_code)]

use crate::fleet::{Fleet, HOST_PATH, RB, RunCall, RunResult, fleet_command};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What a deploy can change on a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostState {
    /// Every `system*` entry of /nix/var/nix/profiles and system-profiles/, with its target.
    pub profiles: BTreeMap<String, String>,
    /// switch-to-configuration calls so far.
    pub activations: usize,
    /// `readlink /run/current-system`.
    pub current_system: Option<String>,
    /// Store entries of system closures (`*nixos-system*`, derivations left out: evaluating
    /// writes those, and they change nothing).
    pub systems: BTreeSet<String>,
}

pub fn host_state(f: &Fleet, host: &str) -> HostState {
    let mut profiles = BTreeMap::new();
    for dir in [
        "/nix/var/nix/profiles",
        "/nix/var/nix/profiles/system-profiles",
    ] {
        for e in fs::read_dir(f.host_path(host, dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if dir.ends_with("profiles") && !name.starts_with("system") {
                continue;
            }
            let target = fs::read_link(e.path())
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "<not a link>".into());
            profiles.insert(format!("{dir}/{name}"), target);
        }
    }
    let systems = fs::read_dir(f.host_path(host, "/nix/store"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("nixos-system") && !n.ends_with(".drv") && !n.ends_with(".lock"))
        .collect();
    HostState {
        profiles,
        activations: f.activations(host).len(),
        current_system: f.current_system(host),
        systems,
    }
}

/// Every host of the fleet.
pub fn fleet_state(f: &Fleet) -> BTreeMap<String, HostState> {
    f.hosts()
        .iter()
        .map(|h| (h.clone(), host_state(f, h)))
        .collect()
}

/// The profile of `host` is sound: every generation link points at a valid, complete system
/// (`nixos-version` and `bin/switch-to-configuration` there), the profile points at one of
/// them, and that one is `before` (what it was) or `new` (the system being deployed).
#[track_caller]
pub fn assert_profile_old_or_new(
    f: &Fleet,
    host: &str,
    profile: &str,
    before: Option<&str>,
    new: &str,
    context: &str,
) -> Option<String> {
    let now = f.profile_target(host, profile);
    assert!(
        now.as_deref() == before || now.as_deref() == Some(new),
        "{context}: {host}'s profile is {now:?}, neither the old {before:?} nor the new {new}"
    );
    for n in f.generations(host, profile) {
        let link = format!("{profile}-{n}-link");
        let target = f
            .resolve(host, &link)
            .unwrap_or_else(|| panic!("{context}: {link} on {host} dangles"));
        for file in ["nixos-version", "bin/switch-to-configuration"] {
            assert!(
                f.host_path(host, &format!("{target}/{file}")).exists(),
                "{context}: {link} on {host} points at an incomplete system ({file} missing)"
            );
        }
        let valid = f.run(
            host,
            RunCall {
                argv: &["nix-store", "--check-validity", &target],
                path: Some(HOST_PATH.to_string()),
                ..Default::default()
            },
        );
        assert!(
            valid.success(),
            "{context}: {link} on {host} points at {target}, not valid in its store: {valid:?}"
        );
    }
    if now.is_some() {
        assert!(
            f.current_generation(host, profile).is_some(),
            "{context}: {profile} on {host} does not point at a generation"
        );
    }
    now
}

/// A directory for rb's `XDG_RUNTIME_DIR` (so its SSH control directory is somewhere only
/// this test looks), short enough for rb to use it.
pub fn runtime_dir(f: &Fleet, name: &str) -> PathBuf {
    let dir = f.dir().join(name);
    fs::create_dir_all(&dir).unwrap();
    assert!(dir.as_os_str().len() <= 40, "{} is too long", dir.display());
    dir
}

/// Nothing of rb's is left in `dir`, and no ssh master with a control socket there runs.
#[track_caller]
pub fn assert_nothing_left(dir: &Path, context: &str) {
    let left: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.is_empty(),
        "{context}: left in {}: {left:?}",
        dir.display()
    );
    let masters = processes()
        .into_iter()
        // A master names itself `ssh: CONTROL-PATH [mux]` once in the background.
        .filter(|p| {
            p.cmdline.starts_with("ssh") && p.cmdline.contains(&format!("{}/", dir.display()))
        })
        .collect::<Vec<_>>();
    assert!(
        masters.is_empty(),
        "{context}: ssh left running: {masters:?}"
    );
}

/// A process of this machine (every fleet host shares its /proc).
#[derive(Clone, Debug)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    /// argv joined with spaces.
    pub cmdline: String,
}

pub fn processes() -> Vec<Process> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // Fields after "(comm) ": state ppid …
        let Some(ppid) = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
        else {
            continue;
        };
        let cmdline = fs::read(e.path().join("cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .trim_end_matches('\0')
                    .replace('\0', " ")
            })
            .unwrap_or_default();
        out.push(Process { pid, ppid, cmdline });
    }
    out
}

/// The processes below `pid`, children first.
pub fn descendants(pid: u32) -> Vec<Process> {
    let all = processes();
    let mut found: Vec<Process> = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            frontier.push(p.pid);
            found.push(p.clone());
        }
    }
    found
}

fn kill(signal: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(|p| p.to_string()))
        .stderr(Stdio::null())
        .status();
}

/// Cuts `host` off: SIGKILL to its sshd and every process below it (connections, sessions
/// and what they run), as when the machine or the network goes away.
pub fn kill_sshd(f: &Fleet, host: &str) {
    let recorded = fs::read_to_string(f.host_dir(host).join("sshd.pid")).unwrap();
    let pid: u32 = recorded.split_whitespace().next().unwrap().parse().unwrap();
    let mut pids = vec![pid];
    pids.extend(descendants(pid).iter().map(|p| p.pid));
    kill("KILL", &pids);
}

#[track_caller]
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `rb switch --flake <host> --target-host root@<host>` and `extra` in the background
/// (with `env`), and returns once the new generation's activation has begun on `host` (its
/// second activation: the fleet is on generation 1), for tests that cut or stop something
/// while switch-to-configuration runs (set knob activationSeconds to give them time).
pub fn switch_until_activating(
    f: &Fleet,
    host: &str,
    extra: &[&str],
    env: &[(&str, &Path)],
) -> Running {
    let flake = f.flake(host);
    let target = format!("root@{host}");
    let mut args = vec!["switch", "--flake", &flake, "--target-host", &target];
    args.extend_from_slice(extra);
    let run = spawn_rb(f, &args, env, None);
    wait_until("the activation", Duration::from_secs(60), || {
        f.activations(host).len() == 2
    });
    run
}

/// rb running in the background on the fleet's workstation, in a process group of its own
/// (as a shell runs a foreground job).
pub struct Running {
    child: Child,
    out: Option<JoinHandle<Vec<u8>>>,
    err: Option<JoinHandle<Vec<u8>>>,
}

pub fn spawn_rb(f: &Fleet, args: &[&str], env: &[(&str, &Path)], stdin: Option<&str>) -> Running {
    let mut cmd = fleet_command();
    cmd.arg("run")
        .arg(f.dir())
        .arg(f.workstation())
        .arg("--cwd")
        .arg(f.workdir())
        .arg("--")
        .arg(RB)
        .args(args)
        .process_group(0)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start rb");
    if let Some(text) = stdin {
        // rb reads one line; the pipe then stays open as a terminal would.
        child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let reader = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    // `fleet run` execs into rb: once the process is rb, signals reach rb itself.
    let pid = child.id();
    wait_until("rb to start", Duration::from_secs(10), || {
        fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == Path::new(RB))
    });
    Running {
        child,
        out: Some(out),
        err: Some(err),
    }
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn finished(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// SIGINT to rb's whole process group: what Ctrl-C in a terminal does.
    pub fn ctrl_c(&self) {
        let _ = Command::new("kill")
            .args(["-INT", "--", &format!("-{}", self.pid())])
            .status();
    }

    /// A signal to rb alone, e.g. "TERM" (what `kill` or a service manager does).
    pub fn signal(&self, signal: &str) {
        kill(signal, &[self.pid()]);
    }

    /// Waits for rb to end (at most `limit`, then kills it and fails).
    #[track_caller]
    pub fn wait(mut self, limit: Duration) -> RunResult {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("rb did not end within {limit:?}");
            }
            thread::sleep(Duration::from_millis(20));
        };
        drop(self.child.stdin.take());
        use std::os::unix::process::ExitStatusExt;
        // Something rb started may still hold its output open: do not wait for it forever.
        let text = |h: Option<JoinHandle<Vec<u8>>>| {
            let h = h.unwrap();
            let until = Instant::now() + Duration::from_secs(10);
            while !h.is_finished() && Instant::now() < until {
                thread::sleep(Duration::from_millis(10));
            }
            if !h.is_finished() {
                return "<output still held open by a process rb started>".to_string();
            }
            String::from_utf8_lossy(&h.join().unwrap()).into_owned()
        };
        RunResult {
            status: status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            stdout: text(self.out.take()),
            stderr: text(self.err.take()),
        }
    }
}

/// The lines of rb's own errors (`rb: error: …`) in `stderr`.
pub fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("rb: error: "))
        .collect()
}
