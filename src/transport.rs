//! How a rendered session reaches its host: a local process, or a command over the host's
//! SSH master connection.

use crate::error::{Error, Result};
use crate::host::{Host, SshHost};
use crate::render::Invocation;
use crate::ssh::Ssh;
use std::collections::BTreeMap;
use std::process::Command;

pub struct Transport {
    ssh: Ssh,
}

impl Transport {
    pub fn new(env: &BTreeMap<String, String>, ssh_options: Vec<String>) -> Result<Self> {
        Ok(Transport {
            ssh: Ssh::new(env, ssh_options)?,
        })
    }

    pub fn connect(&mut self, host: &SshHost) -> Result<()> {
        self.ssh.connect(host)
    }

    /// `NIX_SSHOPTS` for copies, so that they go through the same connections.
    pub fn nix_sshopts(&self) -> String {
        self.ssh.nix_sshopts()
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
                self.ssh.connect(h)?;
                let mut cmd = self.ssh.command(h, &inv.argv);
                cmd.envs(inv.env.iter().cloned());
                Ok(cmd)
            }
        }
    }

    /// The host name a machine reports, for the default configuration name.
    pub fn hostname(&mut self, host: &SshHost) -> Result<String> {
        self.ssh.connect(host)?;
        self.ssh
            .query(host, &["uname".to_string(), "-n".to_string()])
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
            .probe(host, &["sh".into(), "-c".into(), script])
            .map(|out| out.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    pub fn close(&mut self) {
        self.ssh.close();
    }
}
