//! The sandbox fleet from Rust: fake NixOS hosts (own /nix, /run, hostname, sshd) made by
//! `tests/fleet/fleet`, and helpers to run rb on them and to look at what it did.
//!
//! ```ignore
//! let fleet = Fleet::up(&["ws", "aquamarine"]);          // ws = workstation, rb runs there
//! let r = fleet.rb(&["switch", "--flake", &fleet.flake("aquamarine"),
//!                    "--target-host", "root@aquamarine"]);
//! assert_eq!(r.status, 0, "{r:?}");
//! assert_eq!(fleet.activations("aquamarine")[0].action, "switch");
//! ```
//!
//! Every fleet lives in its own temporary directory and is stopped (`fleet down`) and removed
//! on drop; set `RB_FLEET_KEEP=1` to keep the directories for a post-mortem. Commands run through
//! the fleet have a time limit (`RB_FLEET_TIMEOUT` seconds, default 120).
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer};

/// The fleet's hosts are mount and UTS namespaces made by root: without them, every test says
/// so in one line instead of failing on the first namespace error.
fn require_root_and_namespaces() {
    static CHECKED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        let uid = fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(u32::MAX);
        if uid != 0 {
            return Err(format!("running as uid {uid}"));
        }
        match Command::new("unshare")
            .args(["-m", "-u", "true"])
            .stderr(Stdio::piped())
            .output()
        {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(String::from_utf8_lossy(&out.stderr)
                .trim()
                .replace('\n', "; ")),
            Err(e) => Err(format!("unshare: {e}")),
        }
    });
    if let Err(why) = checked {
        panic!(
            "the end-to-end tests need root and namespaces (unshare -m -u), which this run \
             lacks ({why}): run them as root, e.g. `sudo tests/run`"
        );
    }
}

/// The fleet script, the single source of truth for fleets.
pub const FLEET_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fleet/fleet");
/// The rb binary under test.
pub const RB: &str = env!("CARGO_BIN_EXE_rb");
/// PATH of `fleet run` (and of ssh sessions) on a host without the `nonix` option.
pub const HOST_PATH: &str = "/run/rb-fleet/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
/// The system profile, as rb's `--profile-name` default names it.
pub const SYSTEM_PROFILE: &str = "/nix/var/nix/profiles/system";
/// Password of the `deploypw` user (sudo with password).
pub const DEPLOYPW_PASSWORD: &str = "hunter2";

/// A `tests/fleet/fleet` command. Hosts on a Debian root (see `fleet up`) see this machine's
/// paths only where the fleet binds them in: it binds this repository, and here also the folder
/// of the rb under test (a `CARGO_TARGET_DIR` may be elsewhere).
pub fn fleet_command() -> Command {
    let mut cmd = Command::new(FLEET_SCRIPT);
    let rb_dir = Path::new(RB).parent().expect("rb's folder");
    let mut bind = std::env::var("RB_FLEET_BIND").unwrap_or_default();
    if !bind.is_empty() {
        bind.push(':');
    }
    bind.push_str(&rb_dir.to_string_lossy());
    cmd.env("RB_FLEET_BIND", bind);
    cmd
}

/// What a command run on the fleet did.
#[derive(Clone, PartialEq, Eq)]
pub struct RunResult {
    /// Exit status; 128 + N when killed by signal N; -1 when the time limit was hit.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl RunResult {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// Panics (showing everything) unless the status is 0; returns self for chaining.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert_eq!(self.status, 0, "command failed: {self:?}");
        self
    }

    /// Panics (showing everything) unless the status is `status`.
    #[track_caller]
    pub fn assert_status(&self, status: i32) -> &Self {
        assert_eq!(self.status, status, "unexpected exit status: {self:?}");
        self
    }

    /// stdout without the trailing newline(s).
    pub fn stdout_trimmed(&self) -> &str {
        self.stdout.trim_end_matches('\n')
    }
}

impl std::fmt::Debug for RunResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "RunResult {{ status: {} }}", self.status)?;
        writeln!(f, "----- stdout -----")?;
        write!(f, "{}", self.stdout)?;
        if !self.stdout.is_empty() && !self.stdout.ends_with('\n') {
            writeln!(f)?;
        }
        writeln!(f, "----- stderr -----")?;
        write!(f, "{}", self.stderr)?;
        if !self.stderr.is_empty() && !self.stderr.ends_with('\n') {
            writeln!(f)?;
        }
        write!(f, "------------------")
    }
}

/// One run of rb (see [`Fleet::rb_with`]). Build it with struct update syntax:
/// `RbCall { args: &["switch"], user: Some("deploy"), ..Default::default() }`.
#[derive(Clone, Debug, Default)]
pub struct RbCall<'a> {
    pub args: &'a [&'a str],
    /// Extra environment variables for rb (on top of the test process's environment).
    /// A `PATH` here replaces the host's default PATH.
    pub env: Vec<(String, String)>,
    /// Run as this user (`deploy`, `deploypw`) instead of root.
    pub user: Option<&'a str>,
    /// Text fed to stdin; None = /dev/null.
    pub stdin: Option<String>,
    /// Working directory; None = [`Fleet::workdir`].
    pub cwd: Option<PathBuf>,
    /// Host to run rb on; None = the workstation.
    pub host: Option<&'a str>,
}

/// A command to run on a host (see [`Fleet::run`]).
#[derive(Clone, Debug, Default)]
pub struct RunCall<'a> {
    pub argv: &'a [&'a str],
    pub env: Vec<(String, String)>,
    pub user: Option<&'a str>,
    pub stdin: Option<String>,
    pub cwd: Option<PathBuf>,
    /// PATH inside the host; None = the host's default (see `fleet run`).
    pub path: Option<String>,
}

/// One line of a host's /run/rb-fleet/activations.log: a switch-to-configuration call.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activation {
    /// switch, boot, test, dry-activate, …
    pub action: String,
    /// `id -u` of switch-to-configuration.
    pub uid: u32,
    /// NIXOS_INSTALL_BOOTLOADER as received (None = unset).
    pub install_bootloader: Option<String>,
    pub hostname: String,
    /// The toplevel the script belongs to (a specialisation's own toplevel for a specialisation).
    pub toplevel: String,
    /// Specialisation name, None for the main configuration.
    pub specialisation: Option<String>,
    /// Names of all environment variables it received, sorted.
    pub env: Vec<String>,
    /// The PATH it received ("" when it received none).
    #[serde(deserialize_with = "null_as_empty")]
    pub path: String,
    /// Whether a line was waiting on its stdin (it should never be).
    #[serde(default)]
    pub stdin: bool,
    /// Its cgroup (v2 path; on a host with a real systemd, the unit it ran in).
    #[serde(default)]
    pub cgroup: String,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// sshd's view of a remote host, from its VERBOSE log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Sessions {
    /// `Accepted publickey` lines: authenticated TCP connections.
    pub connections: usize,
    /// `Starting session` lines: remote commands (and shells).
    pub sessions: usize,
}

/// A running fleet. The first host is the workstation (no sshd); the others are remote hosts
/// reachable from every host as `NAME`, `root@NAME`, `deploy@NAME`, `deploypw@NAME`.
pub struct Fleet {
    tempdir: Option<tempfile::TempDir>,
    dir: PathBuf,
    hosts: Vec<String>,
    down: bool,
}

fn timeout() -> Duration {
    let secs = std::env::var("RB_FLEET_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(120);
    Duration::from_secs(secs)
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        _ => -1,
    }
}

/// Runs `cmd` to completion with `stdin` (None = /dev/null), capturing stdout and stderr,
/// killing it after the fleet time limit.
pub fn run_command(mut cmd: Command, stdin: Option<String>) -> RunResult {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let writer = stdin.map(|text| {
        let mut pipe = child.stdin.take().unwrap();
        thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        })
    });
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    // A killed command may leave grandchildren holding the pipes: don't wait for them forever.
    let collect = |h: thread::JoinHandle<Vec<u8>>| -> String {
        if timed_out {
            let until = Instant::now() + Duration::from_secs(2);
            while !h.is_finished() && Instant::now() < until {
                thread::sleep(Duration::from_millis(10));
            }
            if !h.is_finished() {
                return String::from(
                    "<output not collected: still held open after the time limit>",
                );
            }
        }
        String::from_utf8_lossy(&h.join().unwrap_or_default()).into_owned()
    };
    let stdout = collect(out_reader);
    let mut stderr = collect(err_reader);
    let status = match status {
        Some(s) => exit_code(s),
        None => {
            stderr.push_str(&format!(
                "\n[rb-fleet: killed after the time limit of {:?}: {cmd:?}]\n",
                timeout()
            ));
            -1
        }
    };
    RunResult {
        status,
        stdout,
        stderr,
    }
}

impl Fleet {
    /// Starts a fleet in a fresh temporary directory. `hosts[0]` is the workstation; a host may
    /// carry options: `"aquamarine:nosystemd"`, `"beryl:nonix"`, `"c:nosystemd,nonix"`.
    #[track_caller]
    pub fn up(hosts: &[&str]) -> Fleet {
        assert!(!hosts.is_empty(), "a fleet needs at least a workstation");
        require_root_and_namespaces();
        let tempdir = tempfile::Builder::new()
            .prefix("rb-fleet-")
            .tempdir()
            .expect("create the fleet's temporary directory");
        let dir = tempdir.path().to_path_buf();
        let mut cmd = fleet_command();
        cmd.arg("up").arg(&dir).args(hosts);
        let r = run_command(cmd, None);
        let names = hosts
            .iter()
            .map(|h| h.split(':').next().unwrap().to_string())
            .collect();
        let fleet = Fleet {
            tempdir: Some(tempdir),
            dir,
            hosts: names,
            down: false,
        };
        assert_eq!(r.status, 0, "fleet up {hosts:?} failed: {r:?}");
        fleet
    }

    /// The fleet's directory (see tests/fleet/fleet for its layout).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The fake NixOS configuration: a git repository usable as a flake, `<nixpkgs/nixos>`
    /// (`<config_dir>/nixpkgs`) and a file for `-f <config_dir>/default.nix -A <name>`.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.join("config")
    }

    /// `<config_dir>#<name>`: a git flake reference for rb's `--flake`.
    pub fn flake(&self, name: &str) -> String {
        format!("{}#{}", self.config_dir().display(), name)
    }

    /// `path:<config_dir>#<name>`.
    pub fn path_flake(&self, name: &str) -> String {
        format!("path:{}#{}", self.config_dir().display(), name)
    }

    /// `<config_dir>/default.nix` for file mode (`-f … -A <name>`).
    pub fn config_file(&self) -> PathBuf {
        self.config_dir().join("default.nix")
    }

    /// `nixpkgs=<config_dir>/nixpkgs`: every host's nix.conf already has it as `nix-path`;
    /// the classic configuration is `$RB_FLEET_CONFIG`, else the host's own name.
    pub fn nix_path(&self) -> String {
        format!("nixpkgs={}", self.config_dir().join("nixpkgs").display())
    }

    /// A scratch directory (mode 1777) where rb runs by default.
    pub fn workdir(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// Host names, workstation first (without options).
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    pub fn workstation(&self) -> &str {
        &self.hosts[0]
    }

    /// DIR/hosts/NAME: the host's nix/, run/, etc-nix/, home/, sshd.log, …
    pub fn host_dir(&self, host: &str) -> PathBuf {
        assert!(
            self.hosts.iter().any(|h| h == host),
            "no host {host:?} in {:?}",
            self.hosts
        );
        self.dir.join("hosts").join(host)
    }

    /// Where a path as seen inside `host` lives on the real filesystem
    /// (/nix, /run, /etc/nix, /etc/nixos, /root and the fleet users' homes are the host's own).
    pub fn host_path(&self, host: &str, path: &str) -> PathBuf {
        let h = self.host_dir(host);
        let map = |prefix: &str, to: PathBuf| -> Option<PathBuf> {
            if path == prefix {
                Some(to)
            } else {
                path.strip_prefix(prefix)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .map(|rest| to.join(rest))
            }
        };
        map("/nix", h.join("nix"))
            .or_else(|| map("/run", h.join("run")))
            .or_else(|| map("/etc/nix", h.join("etc-nix")))
            .or_else(|| map("/etc/nixos", h.join("etc-nixos")))
            .or_else(|| map("/root/.ssh", self.dir.join("ssh")))
            .or_else(|| map("/root", h.join("home/root")))
            .or_else(|| map("/home/deploypw/.ssh", self.dir.join("ssh-deploypw")))
            .or_else(|| map("/home/deploypw", h.join("home/deploypw")))
            .or_else(|| map("/home/deploy/.ssh", self.dir.join("ssh-deploy")))
            .or_else(|| map("/home/deploy", h.join("home/deploy")))
            .unwrap_or_else(|| PathBuf::from(path))
    }

    /// Where `path` as seen inside `host`, with every symlink followed there, lives on the real
    /// filesystem (e.g. `<toplevel>/kernel-modules/lib/modules`). None if it doesn't exist.
    pub fn host_file(&self, host: &str, path: &str) -> Option<PathBuf> {
        self.resolve(host, path).map(|p| self.host_path(host, &p))
    }

    /// Whether `store_path` (/nix/store/…) is present in `host`'s store.
    pub fn has_path(&self, host: &str, store_path: &str) -> bool {
        fs::symlink_metadata(self.host_path(host, store_path)).is_ok()
    }

    /// sshd port of a remote host.
    /// An ssh configuration (to give ssh with `-F`, e.g. in `NIX_SSHOPTS`) that is the
    /// fleet's own plus `alias`, a second name for `host` that is not its host name.
    pub fn ssh_config_with_alias(&self, alias: &str, host: &str) -> PathBuf {
        let path = self.dir.join(format!("ssh-config-{alias}"));
        let shared = fs::read_to_string(self.dir.join("ssh/config")).unwrap();
        fs::write(
            &path,
            format!(
                "{shared}\nHost {alias}\n  HostName 127.0.0.1\n  Port {}\n  \
                 StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  \
                 IdentityFile ~/.ssh/id_ed25519\n",
                self.port(host)
            ),
        )
        .unwrap();
        path
    }

    pub fn port(&self, host: &str) -> u16 {
        fs::read_to_string(self.host_dir(host).join("port"))
            .unwrap_or_else(|e| panic!("{host} has no sshd port (the workstation has none): {e}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Runs rb on the workstation, as root, in [`Fleet::workdir`], stdin /dev/null.
    pub fn rb(&self, args: &[&str]) -> RunResult {
        self.rb_with(RbCall {
            args,
            ..Default::default()
        })
    }

    /// Runs rb as described by `call`.
    pub fn rb_with(&self, call: RbCall<'_>) -> RunResult {
        let mut argv = vec![RB];
        argv.extend_from_slice(call.args);
        self.run(
            call.host.unwrap_or(self.workstation()),
            RunCall {
                argv: &argv,
                env: call.env,
                user: call.user,
                stdin: call.stdin,
                cwd: Some(call.cwd.unwrap_or_else(|| self.workdir())),
                path: None,
            },
        )
    }

    /// Runs `call.argv` on `host` through `fleet run` (the host's mounts and hostname).
    pub fn run(&self, host: &str, call: RunCall<'_>) -> RunResult {
        let _ = self.host_dir(host);
        let mut cmd = fleet_command();
        cmd.arg("run").arg(&self.dir).arg(host);
        if let Some(user) = call.user {
            cmd.args(["--user", user]);
        }
        if let Some(cwd) = &call.cwd {
            cmd.arg("--cwd").arg(cwd);
        }
        let mut path = call.path;
        for (k, v) in &call.env {
            if k == "PATH" {
                path = Some(v.clone());
            } else {
                cmd.env(k, v);
            }
        }
        if let Some(path) = path {
            cmd.args(["--path", &path]);
        }
        cmd.arg("--").args(call.argv);
        run_command(cmd, call.stdin)
    }

    /// `sh -c script` on `host` as root (cwd /).
    pub fn sh(&self, host: &str, script: &str) -> RunResult {
        self.run(
            host,
            RunCall {
                argv: &["sh", "-c", script],
                ..Default::default()
            },
        )
    }

    /// `sh -c script` on `host` as `user`.
    pub fn sh_as(&self, host: &str, user: &str, script: &str) -> RunResult {
        self.run(
            host,
            RunCall {
                argv: &["sh", "-c", script],
                user: Some(user),
                ..Default::default()
            },
        )
    }

    /// `sh -c script` on `host` as root with the full default PATH (nix reachable even on a
    /// `nonix` host): what the harness's own helpers use.
    fn admin_sh(&self, host: &str, script: &str) -> RunResult {
        self.run(
            host,
            RunCall {
                argv: &["sh", "-c", script],
                path: Some(HOST_PATH.to_string()),
                ..Default::default()
            },
        )
    }

    /// Sets knob `key` of configuration `config` to `json_value` (JSON text, e.g. `"2"`,
    /// `"true"`, `"[\"a\"]"`, `"\"text\""`) and commits it. Knobs: rev, failBuild,
    /// activationExit, specialisations, configurationRevision, nixosVersion, kernelVersion,
    /// sharedKernel,
    /// evalError, buildSeconds, breakSsh, activationSeconds, closurePaths, closurePathKiB,
    /// changedPaths, units (see tests/fleet/config/fake-nixos.nix).
    /// A new config name becomes a new nixosConfigurations entry.
    #[track_caller]
    pub fn knob(&self, config: &str, key: &str, json_value: &str) {
        let mut cmd = fleet_command();
        cmd.arg("knob")
            .arg(&self.dir)
            .args([config, key, json_value]);
        run_command(cmd, None).assert_success();
    }

    /// The switch-to-configuration calls on `host`, oldest first.
    pub fn activations(&self, host: &str) -> Vec<Activation> {
        let log = self.host_dir(host).join("run/rb-fleet/activations.log");
        fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!("bad activation line {l:?} in {}: {e}", log.display())
                })
            })
            .collect()
    }

    /// Lines of `host`'s /run/rb-fleet/systemd-run.log, oldest first:
    /// `unit=<unit> env=<-E names, comma-separated> uid=<uid> cmd=<command line>`.
    pub fn systemd_runs(&self, host: &str) -> Vec<String> {
        fs::read_to_string(self.host_dir(host).join("run/rb-fleet/systemd-run.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Generation numbers N for which `<profile>-N-link` exists on `host`, ascending.
    /// `profile` is the full path, e.g. [`SYSTEM_PROFILE`].
    pub fn generations(&self, host: &str, profile: &str) -> Vec<u32> {
        let real = self.host_path(host, profile);
        let (Some(parent), Some(base)) = (real.parent(), real.file_name()) else {
            return vec![];
        };
        let prefix = format!("{}-", base.to_string_lossy());
        let mut gens: Vec<u32> = fs::read_dir(parent)
            .map(|rd| {
                rd.filter_map(|e| {
                    let name = e.ok()?.file_name().to_string_lossy().into_owned();
                    name.strip_prefix(&prefix)?
                        .strip_suffix("-link")?
                        .parse()
                        .ok()
                })
                .collect()
            })
            .unwrap_or_default();
        gens.sort_unstable();
        gens
    }

    /// N such that `profile` points at `<profile>-N-link` on `host`.
    pub fn current_generation(&self, host: &str, profile: &str) -> Option<u32> {
        let target = fs::read_link(self.host_path(host, profile)).ok()?;
        let base = Path::new(profile)
            .file_name()?
            .to_string_lossy()
            .into_owned();
        let name = target.file_name()?.to_string_lossy().into_owned();
        name.strip_prefix(&format!("{base}-"))?
            .strip_suffix("-link")?
            .parse()
            .ok()
    }

    /// `readlink -f profile` on `host` (a /nix/store path), None if missing.
    pub fn profile_target(&self, host: &str, profile: &str) -> Option<String> {
        self.resolve(host, profile)
    }

    /// `readlink /run/current-system` on `host`.
    pub fn current_system(&self, host: &str) -> Option<String> {
        fs::read_link(self.host_dir(host).join("run/current-system"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }

    /// The toplevel `host`'s boot loader boots by default: the fake switch-to-configuration's
    /// last `switch` or `boot` wrote it (/run/rb-fleet/boot-default); None before any.
    pub fn boot_default(&self, host: &str) -> Option<String> {
        fs::read_to_string(self.host_dir(host).join("run/rb-fleet/boot-default"))
            .ok()
            .map(|s| s.trim_end().to_string())
    }

    /// `readlink -f path` as seen inside `host`; None if some component is missing.
    pub fn resolve(&self, host: &str, path: &str) -> Option<String> {
        let mut pending: Vec<String> = path.split('/').rev().map(str::to_string).collect();
        let mut resolved: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = pending.pop() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            let candidate = format!(
                "/{}",
                resolved
                    .iter()
                    .chain([&c])
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("/")
            );
            let real = self.host_path(host, &candidate);
            let meta = fs::symlink_metadata(&real).ok()?;
            if meta.file_type().is_symlink() {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                let target = fs::read_link(&real).ok()?.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    resolved.clear();
                }
                pending.extend(target.split('/').rev().map(str::to_string));
            } else {
                resolved.push(c);
            }
        }
        Some(format!("/{}", resolved.join("/")))
    }

    /// Connections and sessions sshd of `host` has seen so far.
    pub fn sessions(&self, host: &str) -> Sessions {
        let log = fs::read_to_string(self.host_dir(host).join("sshd.log")).unwrap_or_default();
        Sessions {
            connections: log
                .lines()
                .filter(|l| l.contains("Accepted publickey for "))
                .count(),
            sessions: log
                .lines()
                .filter(|l| l.contains("Starting session: "))
                .count(),
        }
    }

    /// Builds configuration `config`'s toplevel with plain `nix build` on `host` (as root, no
    /// rb involved) and returns its store path.
    #[track_caller]
    pub fn build_toplevel(&self, host: &str, config: &str) -> String {
        self.build_attr(host, config, "config.system.build.toplevel")
    }

    /// Builds `nixosConfigurations."<config>".<attr>` on `host` and returns its out path.
    #[track_caller]
    pub fn build_attr(&self, host: &str, config: &str, attr: &str) -> String {
        let installable = format!(
            "{}#nixosConfigurations.\"{}\".{}",
            self.config_dir().display(),
            config,
            attr
        );
        let r = self.run(
            host,
            RunCall {
                argv: &["nix", "build", "--no-link", "--json", &installable],
                path: Some(HOST_PATH.to_string()),
                ..Default::default()
            },
        );
        r.assert_success();
        let json: serde_json::Value = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("nix build --json gave no JSON ({e}): {r:?}"));
        json[0]["outputs"]["out"]
            .as_str()
            .unwrap_or_else(|| panic!("no out path in {r:?}"))
            .to_string()
    }

    /// Builds `config`'s toplevel on `host` and makes it a new generation of the system profile
    /// there (`nix-env -p /nix/var/nix/profiles/system --set`), without rb and without
    /// activating it. Returns the store path.
    #[track_caller]
    pub fn seed_generation(&self, host: &str, config: &str) -> String {
        let path = self.build_toplevel(host, config);
        self.admin_sh(host, &format!("nix-env -p {SYSTEM_PROFILE} --set '{path}'"))
            .assert_success();
        path
    }

    /// Stops the fleet's daemons now (also done on drop).
    pub fn down(&mut self) {
        if self.down {
            return;
        }
        self.down = true;
        let mut cmd = fleet_command();
        cmd.arg("down").arg(&self.dir);
        let r = run_command(cmd, None);
        if r.status != 0 {
            eprintln!("fleet down {} failed: {r:?}", self.dir.display());
        }
    }

    /// Keeps the fleet's directory after drop (daemons are still stopped); returns it.
    pub fn keep(&mut self) -> PathBuf {
        if let Some(t) = self.tempdir.take() {
            let _ = t.keep();
        }
        self.dir.clone()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.down();
        let keep = std::env::var_os("RB_FLEET_KEEP").is_some_and(|v| !v.is_empty() && v != "0");
        if keep || thread::panicking() {
            eprintln!("rb-fleet: fleet directory {}", self.dir.display());
        }
        if keep {
            self.keep();
        }
    }
}
