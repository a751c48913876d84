//! How a rendered session reaches its host: a local process, or ssh.

use crate::error::{Error, Result};
use crate::host::Host;
use crate::render::Invocation;
use std::process::Command;

#[derive(Default)]
pub struct Transport {}

impl Transport {
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
            Host::Ssh(_) => Err(Error::NotYetAvailable("--target-host/--build-host")),
        }
    }
}
