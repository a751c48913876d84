//! Asking for the sudo password: once, without echo, before anything runs.
//!
//! The password only ever travels on the stdin of the process whose sudo reads it; it is never
//! put in argv, the environment, a file or a log.

use crate::error::{Error, Result};
use crate::interrupt;
use crate::process::{self, Stdin};
use std::io::{BufRead, IsTerminal, Write};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

/// Prompts on the terminal, or reads one line from stdin when stdin is not a terminal (so
/// scripts can pipe the password in). Ctrl-C at the prompt stops rb.
pub fn ask(host: &str) -> Result<String> {
    let terminal = std::io::stdin().is_terminal();
    if terminal {
        eprint!("[sudo] password for {host}: ");
        let _ = std::io::stderr().flush();
        set_echo(false);
    }
    let read = read_line_interruptibly("the sudo password");
    if terminal {
        set_echo(true);
        eprintln!();
    }
    match read? {
        Some(line) => Ok(line.trim_end_matches(['\n', '\r']).to_string()),
        None => Err(Error::Failed(
            "no sudo password: standard input ended before a line was read".into(),
        )),
    }
}

fn set_echo(on: bool) {
    process::quietly(
        Command::new("stty").arg(if on { "echo" } else { "-echo" }),
        Stdin::Terminal,
    );
}

/// One line from stdin (None at end of input), read on a thread of its own so that a signal
/// (rb's handler keeps SIGINT from killing it) can end the wait. `what` names it in an error.
pub fn read_line_interruptibly(what: &str) -> Result<Option<String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = std::io::stdin().lock().read_line(&mut line);
        let _ = tx.send(read.map(|n| (n > 0).then_some(line)));
    });
    loop {
        if let Some(sig) = interrupt::signal() {
            return Err(Error::Interrupted(sig));
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(read) => {
                return read.map_err(|e| Error::Failed(format!("could not read {what}: {e}")));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(None),
        }
    }
}
