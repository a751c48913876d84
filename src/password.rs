//! Asking for the sudo password: once, without echo, before anything runs.
//!
//! The password only ever travels on the stdin of the ssh process whose remote sudo reads it;
//! it is never put in argv, the environment, a file or a log.

use crate::error::{Error, Result};
use std::io::{BufRead, IsTerminal, Write};
use std::process::{Command, Stdio};

/// Prompts on the terminal, or reads one line from stdin when stdin is not a terminal (so
/// scripts can pipe the password in).
pub fn ask(host: &str) -> Result<String> {
    let fail = |e: std::io::Error| Error::Failed(format!("could not read the sudo password: {e}"));
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(fail)?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    eprint!("[sudo] password for {host}: ");
    let _ = std::io::stderr().flush();
    let echo = |on: bool| {
        Command::new("stty")
            .arg(if on { "echo" } else { "-echo" })
            .stdin(Stdio::inherit())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
    };
    let _ = echo(false);
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    let _ = echo(true);
    eprintln!();
    read.map_err(fail)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
