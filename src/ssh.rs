//! SSH: one multiplexed master connection per host for the whole run.
//!
//! The control sockets live in a private directory (mode 0700) with a short path, so that no
//! TMPDIR or host name can make the socket path too long for a Unix socket. Every session,
//! and the `nix copy`/`nix-copy-closure` processes through `NIX_SSHOPTS`, share the masters.
//! Dropping [`Ssh`] closes the masters it opened; the directory goes with the last [`Ssh`]
//! that uses it ([`Ssh::sharing`]: several targets' connections beside the build host's one).
//!
//! This module knows ssh's words (options, destinations, the control socket); the processes
//! it builds start in `process.rs`.

use crate::error::{Error, Result};
use crate::host::SshHost;
use crate::probe::{Checks, Facts};
use crate::process::{self, Stdin};
use crate::shell;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A socket path is at most 107 bytes: the base, `/rb.XXXXXX` (10), `/` + 40 (`%C`) and the
/// 17 bytes of ssh's temporary suffix.
const MAX_BASE_LEN: usize = 107 - 10 - 41 - 17;

/// Connections begun in this run, for their log files' names: unique across every [`Ssh`]
/// that shares a control directory.
static OPENINGS: AtomicUsize = AtomicUsize::new(0);

pub struct Ssh {
    /// `NIX_SSHOPTS`, split like a shell would.
    user: Vec<String>,
    /// The multiplexing options (or `NIXOS_REBUILD_SSH_DEFAULT_OPTS`).
    control: Vec<String>,
    /// The control directory, shared with the [`Ssh`]s made by [`Ssh::sharing`]: removed when
    /// the last of them is dropped.
    dir: Option<Arc<tempfile::TempDir>>,
    /// Hosts connected to (with a master of ours when `dir` is set), by destination.
    connected: BTreeSet<String>,
    /// Hosts whose master another [`Ssh`] opened and closes ([`Ssh::adopt`]).
    adopted: BTreeSet<String>,
    /// Hosts a master of ours began to open to, whatever came of it: an opening whose ssh
    /// was stopped by a signal (Ctrl-C reaches rb's process group) after its master went to
    /// the background (ControlPersist) failed, yet left that master running.
    attempted: BTreeSet<String>,
    /// What each connected host's probe found, by destination.
    facts: BTreeMap<String, Facts>,
}

/// Opening one master connection: the ssh process, which runs the probe (`probe.rs`) in its
/// first session, and where it says why it failed.
pub struct Opening {
    dest: String,
    cmd: Command,
    log: Option<std::path::PathBuf>,
    checks: Checks,
    /// The sudo password, for a probe that tries it (the first line of the session's stdin).
    password: Option<String>,
}

/// A connection that opened, and what its probe found.
pub struct Probed {
    pub dest: String,
    /// The host's facts, or why the run cannot go on there.
    pub facts: Result<Facts>,
}

impl Opening {
    /// Connects (blocking until the probe ran). `Err` only when no connection was made.
    pub fn run(mut self) -> Result<Probed> {
        let stdin = match &self.password {
            Some(pw) => Stdin::Line(pw),
            None => Stdin::Nothing,
        };
        let out = process::output(&mut self.cmd, "ssh", stdin)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        // ssh's own failures are 255; anything else is the remote command's status.
        if out.status.code() == Some(255) || out.status.code().is_none() {
            let why = match &self.log {
                Some(log) => std::fs::read_to_string(log).unwrap_or_default(),
                None => String::from_utf8_lossy(&out.stderr).into_owned(),
            };
            let why = crate::error::one_line(&why);
            return Err(Error::Unreachable {
                host: self.dest,
                why: if why.is_empty() {
                    format!(
                        "ssh exited with status {}",
                        out.status.code().unwrap_or(255)
                    )
                } else {
                    why
                },
            });
        }
        let facts = crate::probe::verdict(&self.checks, &self.dest, &stdout);
        Ok(Probed {
            dest: self.dest,
            facts,
        })
    }
}

impl Ssh {
    /// Only a run that uses SSH makes one: `NIX_SSHOPTS` (split like a shell would) matters
    /// to no other.
    pub fn new(env: &BTreeMap<String, String>) -> Result<Ssh> {
        let user_opts = match env.get("NIX_SSHOPTS") {
            Some(s) => shell::split(s).map_err(|e| Error::Usage(format!("NIX_SSHOPTS: {e}")))?,
            None => Vec::new(),
        };
        if let Some(defaults) = env.get("NIXOS_REBUILD_SSH_DEFAULT_OPTS") {
            let control = shell::split(defaults)
                .map_err(|e| Error::Usage(format!("NIXOS_REBUILD_SSH_DEFAULT_OPTS: {e}")))?;
            return Ok(Ssh {
                user: user_opts,
                control,
                dir: None,
                connected: BTreeSet::new(),
                adopted: BTreeSet::new(),
                attempted: BTreeSet::new(),
                facts: BTreeMap::new(),
            });
        }
        let base = env
            .get("XDG_RUNTIME_DIR")
            .filter(|d| d.len() <= MAX_BASE_LEN && std::path::Path::new(d).is_dir())
            .map(String::as_str)
            .unwrap_or("/tmp");
        use std::os::unix::fs::PermissionsExt;
        let private = || {
            let mut b = tempfile::Builder::new();
            b.prefix("rb.")
                .permissions(std::fs::Permissions::from_mode(0o700));
            b
        };
        let dir = private()
            .tempdir_in(base)
            .or_else(|_| private().tempdir_in("/tmp"))
            .map_err(|e| Error::Failed(format!("could not create a directory for ssh: {e}")))?;
        let path = dir.path().to_string_lossy().into_owned();
        let control = [
            "-o",
            "ControlMaster=auto",
            "-o",
            &format!("ControlPath={path}/%C"),
            "-o",
            "ControlPersist=600",
        ]
        .map(String::from)
        .to_vec();
        Ok(Ssh {
            user: user_opts,
            control,
            dir: Some(Arc::new(dir)),
            connected: BTreeSet::new(),
            adopted: BTreeSet::new(),
            attempted: BTreeSet::new(),
            facts: BTreeMap::new(),
        })
    }

    /// Another [`Ssh`] with the same options and the same control directory: its sessions
    /// (and Nix's ssh, through `NIX_SSHOPTS`) find this one's masters, which is what lets it
    /// [`adopt`](Ssh::adopt) one. The masters it opens itself are its own to close.
    pub fn sharing(&self) -> Ssh {
        Ssh {
            user: self.user.clone(),
            control: self.control.clone(),
            dir: self.dir.clone(),
            connected: BTreeSet::new(),
            adopted: BTreeSet::new(),
            attempted: BTreeSet::new(),
            facts: BTreeMap::new(),
        }
    }

    /// Uses `owner`'s master connection to `host` for this one's sessions there instead of
    /// opening one: several targets' copies from the build host all go through the build's
    /// one connection. `owner` opened it and closes it, so it must outlive this one's use of
    /// it. False (nothing adopted) unless `owner` is connected to `host` and this [`Ssh`]
    /// shares its control directory ([`Ssh::sharing`]).
    pub fn adopt(&mut self, owner: &Ssh, host: &SshHost) -> bool {
        let shared = self.control == owner.control && self.user == owner.user;
        if !shared || !owner.connected.contains(&host.dest) {
            return false;
        }
        self.adopted.insert(host.dest.clone());
        if let Some(facts) = owner.facts.get(&host.dest) {
            self.facts.insert(host.dest.clone(), facts.clone());
        }
        true
    }

    /// The private control directory, when rb opens its own masters.
    pub fn dir(&self) -> Option<std::path::PathBuf> {
        self.dir.as_ref().map(|d| d.path().to_path_buf())
    }

    fn base_args(&self) -> Vec<String> {
        let mut args = self.user.clone();
        args.extend(self.control.iter().cloned());
        args
    }

    /// `NIX_SSHOPTS` for Nix's own ssh calls (copies), sharing the masters.
    ///
    /// Nix splits `NIX_SSHOPTS` at white space, ignoring quotes, so a word such as
    /// `-o 'ProxyJump a b'` would reach ssh broken. `-o 'Key value'` is rewritten as
    /// `-oKey=value`; a word that still has white space is left out: copies go through the
    /// master connection, which was opened with every option intact.
    pub fn nix_sshopts(&self) -> String {
        let mut words: Vec<String> = Vec::new();
        let mut user = self.user.iter().peekable();
        while let Some(word) = user.next() {
            let joined = match (word.as_str(), user.peek()) {
                ("-o", Some(next)) if next.contains(char::is_whitespace) => {
                    let next = user.next().unwrap_or(word);
                    match next.trim().split_once(char::is_whitespace) {
                        Some((k, v)) if !k.contains('=') => format!("-o{k}={}", v.trim()),
                        Some(_) => next.clone(),
                        None => next.clone(),
                    }
                }
                _ => word.clone(),
            };
            if !joined.contains(char::is_whitespace) && !joined.is_empty() {
                words.push(joined);
            }
        }
        words.extend(self.control.iter().cloned());
        words.join(" ")
    }

    /// Opens the master connection to `host` (once): authentication happens here, and a
    /// refused key or an unreachable host fails here.
    pub fn connect(
        &mut self,
        host: &SshHost,
        checks: &Checks,
        password: Option<&str>,
    ) -> Result<()> {
        match self.opening(host, checks, password) {
            Some(opening) => self.opened(opening.run()?),
            None => Ok(()),
        }
    }

    /// What opening the master connection to `host` takes, to run now or on another thread
    /// ([`Opening::run`]); None when it is open already. Every connection of the run is
    /// opened here: the one place to learn about a host in the same round trip. `password`:
    /// the sudo password, sent to a probe that checks it.
    pub fn opening(
        &mut self,
        host: &SshHost,
        checks: &Checks,
        password: Option<&str>,
    ) -> Option<Opening> {
        if self.connected.contains(&host.dest) || self.adopted.contains(&host.dest) {
            return None;
        }
        let mut cmd = Command::new("ssh");
        cmd.args(self.base_args())
            .args(["-o", "ConnectTimeout=15", "-o", "ServerAliveInterval=15"])
            .stdout(Stdio::piped());
        let opening = OPENINGS.fetch_add(1, Ordering::Relaxed) + 1;
        let log = match &self.dir {
            Some(dir) => {
                self.attempted.insert(host.dest.clone());
                // Our master: it runs the probe, then stays in the background for the run
                // (ControlPersist). -E keeps its messages (and its open stderr, which would
                // hold our pipe open) away from ours.
                let log = dir.path().join(format!("connect-{opening}.log"));
                cmd.arg("-E").arg(&log).stderr(Stdio::null());
                if checks.is_empty() {
                    // Nothing to learn: no session at all (-N), backgrounded once connected.
                    // Its stdout stays with the backgrounded master: not our pipe.
                    cmd.args(["-f", "-N"]).arg(&host.dest).stdout(Stdio::null());
                } else {
                    cmd.arg(&host.dest)
                        .arg("--")
                        .arg(shell::join(&checks.words()));
                }
                Some(log)
            }
            None => {
                // The user's own connection options (NIXOS_REBUILD_SSH_DEFAULT_OPTS): no
                // master of ours to open or to close, so only ask the probe.
                cmd.arg(&host.dest)
                    .arg("--")
                    .arg(shell::join(&checks.words()))
                    .stderr(Stdio::piped());
                None
            }
        };
        Some(Opening {
            dest: host.dest.clone(),
            cmd,
            log,
            checks: checks.clone(),
            password: password
                .filter(|_| checks.needs_password())
                .map(String::from),
        })
    }

    /// Records a connection [`Opening::run`] opened, so that [`Ssh::close`] closes it
    /// whatever its probe found; then that verdict.
    /// A host whose name was not the guess keeps its facts (the run goes on with its name).
    pub fn opened(&mut self, probed: Probed) -> Result<()> {
        self.connected.insert(probed.dest.clone());
        match probed.facts {
            Ok(facts) => {
                self.facts.insert(probed.dest, facts);
                Ok(())
            }
            Err(Error::NotTheGuess { host, guess, facts }) => {
                self.facts.insert(probed.dest, (*facts).clone());
                Err(Error::NotTheGuess { host, guess, facts })
            }
            Err(e) => Err(e),
        }
    }

    /// The host name a connected host's probe reported.
    pub fn hostname_of(&self, host: &SshHost) -> Option<&str> {
        self.facts
            .get(&host.dest)
            .map(|f| f.hostname.as_str())
            .filter(|h| !h.is_empty())
    }

    /// The machine ssh would connect to for `host`, as `ssh -G` works it out from its
    /// configuration and `NIX_SSHOPTS` without connecting: `user@hostname:port`. Two names of
    /// one machine (`a` and `root@a` for root, two aliases) give the same. None when ssh
    /// cannot say.
    pub fn resolve(&self, host: &SshHost) -> Option<String> {
        let mut cmd = Command::new("ssh");
        cmd.arg("-G")
            .args(&self.user)
            .arg(&host.dest)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let out = process::output(&mut cmd, "ssh", Stdin::Nothing).ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        Some(format!(
            "{}@{}:{}",
            value("user")?,
            value("hostname")?,
            value("port")?
        ))
    }

    /// The `ssh` process running `words` on `host` through its master.
    pub fn command(&self, host: &SshHost, words: &[String]) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(self.base_args())
            .arg(&host.dest)
            .arg("--")
            .arg(shell::join(words));
        cmd
    }

    /// The `ssh` process running `words` on `host` over a NEW connection, not through the
    /// master: magic rollback's proof that the target still accepts connections. ssh takes
    /// the first value it is given for an option, so these come before `NIX_SSHOPTS` and win
    /// over it and over ~/.ssh/config.
    pub fn fresh_command(&self, host: &SshHost, words: &[String], connect_timeout: u64) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args([
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            "-o",
            &format!("ConnectTimeout={connect_timeout}"),
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
        ])
        .args(&self.user)
        .arg(&host.dest)
        .arg("--")
        .arg(shell::join(words));
        cmd
    }

    /// Runs `words` on `host` and returns its stdout (for small queries such as the host name).
    pub fn query(&self, host: &SshHost, words: &[String]) -> Result<String> {
        let out = process::output(
            self.command(host, words)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit()),
            "ssh",
            Stdin::Nothing,
        )?;
        if !out.status.success() {
            return Err(Error::Command {
                what: format!("running {}", shell::join(words)),
                host: host.dest.clone(),
                status: out.status.code().unwrap_or(255),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `words` on `host` to explain a failure: quietly, through the master if it is
    /// still there, never becoming one, and giving up soon. None if it could not run.
    pub fn probe(&self, host: &SshHost, words: &[String]) -> Option<String> {
        let mut cmd = Command::new("ssh");
        cmd.args(["-o", "ControlMaster=no", "-o", "ConnectTimeout=10"])
            .args(["-o", "BatchMode=yes"])
            .args(self.base_args())
            .arg(&host.dest)
            .arg("--")
            .arg(shell::join(words))
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let out = process::output(&mut cmd, "ssh", Stdin::Nothing).ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Closes every master it opened (not those it adopted); safe to call more than once.
    pub fn close(&mut self) {
        self.adopted.clear();
        let mut ours = std::mem::take(&mut self.connected);
        ours.append(&mut self.attempted);
        if self.dir.is_none() {
            // Not our masters to close.
            return;
        }
        // `-O exit` where no master listens fails at once, without connecting.
        for dest in ours {
            process::quietly(
                Command::new("ssh")
                    .args(self.base_args())
                    .args(["-O", "exit", &dest]),
                Stdin::Nothing,
            );
        }
    }
}

impl Drop for Ssh {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix_sshopts_survives_nixs_whitespace_splitting() {
        let env = [
            (
                "NIXOS_REBUILD_SSH_DEFAULT_OPTS".to_string(),
                "-o ControlPath=/c".to_string(),
            ),
            (
                "NIX_SSHOPTS".to_string(),
                "-p 2222 -o 'ServerAliveCountMax 3' -o 'ProxyCommand=ssh -W x' -i k".to_string(),
            ),
        ]
        .into();
        let ssh = Ssh::new(&env).unwrap();
        assert_eq!(
            ssh.nix_sshopts(),
            "-p 2222 -oServerAliveCountMax=3 -i k -o ControlPath=/c"
        );
    }

    #[test]
    fn a_sharing_ssh_adopts_a_master_it_neither_opens_nor_closes() {
        let mut owner = Ssh::new(&BTreeMap::new()).unwrap();
        let dir = owner.dir().unwrap();
        let mut sharing = owner.sharing();
        // Its sessions and Nix's ssh look for masters where the owner's are.
        assert_eq!(sharing.dir(), Some(dir.clone()));
        assert_eq!(sharing.nix_sshopts(), owner.nix_sshopts());
        let builder = SshHost::parse("--build-host", "bld").unwrap();
        assert!(
            !sharing.adopt(&owner, &builder),
            "the owner has no master there"
        );
        owner.connected.insert(builder.dest.clone());
        assert!(sharing.adopt(&owner, &builder));
        assert!(
            sharing
                .opening(&builder, &Checks::builder(), None)
                .is_none()
        );
        assert!(
            sharing.connected.is_empty(),
            "nothing of its own to close there"
        );
        // Another control directory cannot reach the owner's master.
        let mut apart = Ssh::new(&BTreeMap::new()).unwrap();
        assert!(!apart.adopt(&owner, &builder));
        // (No master really runs: nothing for `close` to ask to exit.)
        owner.connected.clear();
        drop(owner);
        assert!(dir.is_dir(), "kept while an Ssh sharing it lives");
        drop(sharing);
        assert!(!dir.exists());
    }

    #[test]
    fn a_malformed_nix_sshopts_is_a_usage_error() {
        let env = [("NIX_SSHOPTS".to_string(), "-o 'open".to_string())].into();
        assert!(matches!(Ssh::new(&env), Err(Error::Usage(m)) if m.starts_with("NIX_SSHOPTS")));
    }
}
