//! How a rendered session reaches its host: a local process, or a command over the host's
//! SSH master connection (opened here, in the background while the build runs). It builds
//! the process; `process.rs` starts it.

use crate::error::{Error, Result};
use crate::host::{Host, SshHost};
use crate::plan::Connect;
use crate::probe::Checks;
use crate::render::Invocation;
use crate::ssh::Ssh;
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Connections being opened while local work runs.
pub struct Connecting {
    threads: Vec<std::thread::JoinHandle<Result<crate::ssh::Probed>>>,
    failed: Arc<AtomicBool>,
}

impl Connecting {
    /// Whether a host has turned out unreachable (the local child was then stopped).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }
}

pub struct Transport {
    env: BTreeMap<String, String>,
    /// Made on first use, so that a local run creates no SSH control directory.
    ssh: Option<Ssh>,
    /// The sudo password (`-S`), asked once, before the first connection whose probe tries
    /// it or the first session that needs it.
    password: Option<String>,
}

/// What [`Transport::connect_beside`] calls as each opening ends: why it failed, or None.
pub type OnEnd = Arc<dyn Fn(Option<&Error>) + Send + Sync>;

impl Transport {
    pub fn new(env: &BTreeMap<String, String>) -> Self {
        Transport {
            env: env.clone(),
            ssh: None,
            password: None,
        }
    }

    /// A transport whose connections share `other`'s SSH control directory, so that it can
    /// [`adopt`](Transport::adopt) `other`'s master connection to a host (several targets
    /// and their one build host, `several.rs`).
    pub fn sharing(other: &mut Transport) -> Result<Transport> {
        let ssh = other.ssh()?.sharing();
        Ok(Transport {
            env: other.env.clone(),
            ssh: Some(ssh),
            password: None,
        })
    }

    /// Runs this transport's sessions on `host` through `owner`'s master connection to it,
    /// which `owner` (made with or shared by [`Transport::sharing`]) opened and closes: no
    /// connection or probe of its own there. False when `owner` has no such connection.
    pub fn adopt(&mut self, owner: &Transport, host: &SshHost) -> bool {
        match (&mut self.ssh, &owner.ssh) {
            (Some(ssh), Some(theirs)) => ssh.adopt(theirs, host),
            _ => false,
        }
    }

    fn ssh(&mut self) -> Result<&mut Ssh> {
        if self.ssh.is_none() {
            self.ssh = Some(Ssh::new(&self.env)?);
        }
        self.ssh
            .as_mut()
            .ok_or_else(|| Error::Internal("no ssh".into()))
    }

    /// Asks for the sudo password (naming `host`) unless it was asked already.
    pub fn ensure_password(&mut self, host: &str) -> Result<()> {
        if self.password.is_none() {
            self.password = Some(crate::password::ask(host)?);
        }
        Ok(())
    }

    /// Sets the sudo password asked once for several targets (`several.rs`).
    pub fn set_password(&mut self, password: Option<String>) {
        self.password = password;
    }

    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Begins opening the master connection to each of `hosts`, each on a thread of its own,
    /// so that the round trips of connecting overlap the evaluation and build (README,
    /// "Copies"). A host that cannot be reached stops the local child rb is waiting for.
    pub fn connect_in_background(&mut self, hosts: &[Connect]) -> Result<Connecting> {
        self.connect_beside(
            hosts,
            Arc::new(|why: Option<&Error>| {
                if why.is_some() {
                    crate::process::stop_child();
                }
            }),
        )
    }

    /// As [`Transport::connect_in_background`], with `on_end` called on the connection's
    /// thread as each host's opening ends: with why for a host that cannot be reached or
    /// whose probe refuses it (instead of stopping the build: with several targets, one such
    /// target is left out while the build goes on for the others, `several.rs`), with None
    /// for one that is ready.
    pub fn connect_beside(&mut self, hosts: &[Connect], on_end: OnEnd) -> Result<Connecting> {
        let failed = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        if hosts.is_empty() {
            return Ok(Connecting { threads, failed });
        }
        let password = self.password.clone();
        let ssh = self.ssh()?;
        for c in hosts {
            let Some(opening) = ssh.opening(&c.host, &c.checks, password.as_deref()) else {
                continue;
            };
            let (failed, on_end) = (failed.clone(), on_end.clone());
            threads.push(std::thread::spawn(move || {
                let result = opening.run();
                let why = match &result {
                    Err(e) => Some(e),
                    Ok(p) => p.facts.as_ref().err(),
                };
                if why.is_some() {
                    failed.store(true, Ordering::SeqCst);
                }
                on_end(why);
                result
            }));
        }
        Ok(Connecting { threads, failed })
    }

    /// Waits for the connections begun by [`Transport::connect_in_background`]; the first
    /// error, in the plan's order. Every connection that did open is recorded, so that
    /// [`Transport::close`] closes it whatever happens next.
    pub fn finish_connecting(&mut self, connecting: Connecting) -> Result<()> {
        let mut first = Ok(());
        for thread in connecting.threads {
            let result = thread
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("a connection thread panicked".into())));
            let verdict = result.and_then(|probed| self.ssh()?.opened(probed));
            if let (Err(e), true) = (verdict, first.is_ok()) {
                first = Err(e);
            }
        }
        first
    }

    /// `NIX_SSHOPTS` for copies, so that they go through the same connections.
    pub fn nix_sshopts(&mut self) -> Result<String> {
        Ok(self.ssh()?.nix_sshopts())
    }

    /// The process that runs `inv` on `host`.
    pub fn command(&mut self, host: &Host, inv: &Invocation) -> Result<Command> {
        match host {
            Host::Local => {
                let (program, args) = inv
                    .argv
                    .split_first()
                    .ok_or_else(|| Error::Internal("empty command".into()))?;
                let mut cmd = Command::new(program);
                cmd.args(args).envs(inv.env.iter().cloned());
                Ok(cmd)
            }
            Host::Ssh(h) => {
                let ssh = self.ssh()?;
                ssh.connect(h, &Checks::default(), None)?;
                let mut cmd = ssh.command(h, &inv.argv);
                cmd.envs(inv.env.iter().cloned());
                Ok(cmd)
            }
        }
    }

    /// The process that runs `inv` on `host` over a new SSH connection of its own.
    pub fn fresh_command(
        &mut self,
        host: &SshHost,
        inv: &Invocation,
        connect_timeout: u64,
    ) -> Result<Command> {
        let mut cmd = self.ssh()?.fresh_command(host, &inv.argv, connect_timeout);
        cmd.envs(inv.env.iter().cloned());
        Ok(cmd)
    }

    /// The host name a machine reports, for the default configuration name: from the probe
    /// of the connection this opens (with `checks`, what the host must offer later), so
    /// learning it costs no session of its own.
    pub fn hostname(&mut self, host: &SshHost, checks: &Checks) -> Result<String> {
        if checks.needs_password() {
            self.ensure_password(&host.dest)?;
        }
        let password = self.password.clone();
        let ssh = self.ssh()?;
        ssh.connect(host, checks, password.as_deref())?;
        if let Some(name) = ssh.hostname_of(host) {
            return Ok(name.to_string());
        }
        ssh.query(host, &["uname".to_string(), "-n".to_string()])
            .map(|s| s.trim().to_string())
    }

    /// Which of `commands` the PATH of an SSH session on `host` lacks; empty when none is
    /// missing or the host cannot be asked.
    pub fn missing_commands(&self, host: &SshHost, commands: &[&str]) -> Vec<String> {
        const SCRIPT: &str = include_str!("scripts/missing-commands.sh");
        let mut words = vec!["sh".to_string(), "-c".into(), SCRIPT.into(), "sh".into()];
        words.extend(commands.iter().map(|c| c.to_string()));
        self.ssh
            .as_ref()
            .and_then(|ssh| ssh.probe(host, &words))
            .map(|out| out.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// rb's private directory (the SSH control directory), removed at the end of the run.
    pub fn scratch_dir(&self) -> Option<std::path::PathBuf> {
        self.ssh.as_ref().and_then(|s| s.dir())
    }

    /// Closes the masters and removes the control directory.
    pub fn close(&mut self) {
        self.ssh = None;
    }
}
