//! How a rendered session reaches its host: a local process, or a command over the host's
//! SSH master connection.

use crate::error::{Error, Result};
use crate::host::{Host, SshHost};
use crate::render::Invocation;
use crate::ssh::Ssh;
use std::collections::BTreeMap;
use std::process::Command;

pub struct Transport {
    env: BTreeMap<String, String>,
    /// Made on first use, so that a local run creates no SSH control directory.
    ssh: Option<Ssh>,
}

impl Transport {
    pub fn new(env: &BTreeMap<String, String>) -> Self {
        Transport {
            env: env.clone(),
            ssh: None,
        }
    }

    fn ssh(&mut self) -> Result<&mut Ssh> {
        if self.ssh.is_none() {
            self.ssh = Some(Ssh::new(&self.env)?);
        }
        self.ssh
            .as_mut()
            .ok_or_else(|| Error::Output("internal: no ssh".into()))
    }

    pub fn connect(&mut self, host: &SshHost) -> Result<()> {
        self.ssh()?.connect(host)
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
                    .ok_or_else(|| Error::Output("internal: empty command".into()))?;
                let mut cmd = Command::new(program);
                cmd.args(args).envs(inv.env.iter().cloned());
                Ok(cmd)
            }
            Host::Ssh(h) => {
                let ssh = self.ssh()?;
                ssh.connect(h)?;
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

    /// The host name a machine reports, for the default configuration name.
    pub fn hostname(&mut self, host: &SshHost) -> Result<String> {
        let ssh = self.ssh()?;
        ssh.connect(host)?;
        ssh.query(host, &["uname".to_string(), "-n".to_string()])
            .map(|s| s.trim().to_string())
    }

    /// Which of `commands` the PATH of an SSH session on `host` lacks; empty when none is
    /// missing or the host cannot be asked.
    pub fn missing_commands(&self, host: &SshHost, commands: &[&str]) -> Vec<String> {
        let script = format!(
            "for c in {}; do command -v \"$c\" >/dev/null 2>&1 || printf '%s\\n' \"$c\"; done",
            crate::shell::join(commands)
        );
        self.ssh
            .as_ref()
            .and_then(|ssh| ssh.probe(host, &["sh".into(), "-c".into(), script]))
            .map(|out| out.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Closes the masters and removes the control directory.
    pub fn close(&mut self) {
        self.ssh = None;
    }
}
