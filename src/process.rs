//! Every process rb starts, it starts here.
//!
//! Which process runs what is decided elsewhere: `transport.rs` picks, for a session's host, a
//! local command or `ssh` through the host's master connection (whose words `ssh.rs` knows);
//! `exec.rs` says where a session's output goes. They hand the `Command` they built to this
//! module, which is the one place that knows how rb starts, feeds and waits for a process:
//! - stdin is nothing, the terminal, or one line (the sudo password: it only ever travels on
//!   the stdin of the process whose sudo reads it, never in argv or the environment);
//! - the processes rb is waiting for are recorded, so that a signal to rb (`interrupt.rs`), or
//!   a host found unreachable while the build runs (`transport.rs`), stops them too (several
//!   at once when several targets deploy in parallel, `several.rs`);
//! - a process that cannot start is an [`Error::Spawn`] naming it;
//! - small questions (`nix --version`) and chores (closing a master, `stty`) whose failure
//!   has a fallback run quietly.
//!
//! Test helpers under `#[cfg(test)]` start their own shells: they check scripts, not rb.

use crate::error::{Error, Result};
use std::io::Write;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;

/// What a process reads on its stdin.
#[derive(Debug, Clone, Copy)]
pub enum Stdin<'a> {
    /// Nothing: reading it ends at once.
    Nothing,
    /// rb's own stdin, the terminal (an editor, `nix repl`, `stty`).
    Terminal,
    /// One line, then the end (the sudo password; see the module doc).
    Line(&'a str),
}

impl Stdin<'_> {
    fn stdio(&self) -> Stdio {
        match self {
            Stdin::Nothing => Stdio::null(),
            Stdin::Terminal => Stdio::inherit(),
            Stdin::Line(_) => Stdio::piped(),
        }
    }

    /// Writes the line, if any, to a started child's stdin and closes it.
    fn feed(&self, child: &mut Child) {
        if let (Stdin::Line(line), Some(mut stdin)) = (self, child.stdin.take()) {
            // A closed pipe means the process ended (or its remote side did) before reading
            // it; its exit status says why, so this is no error of its own.
            let _ = stdin.write_all(format!("{line}\n").as_bytes());
        }
    }
}

/// How [`stop_child`] stops a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM, then wait for it to end however long that takes (an activation, a profile
    /// change: cutting them short is worse than waiting).
    Term,
    /// SIGTERM, then SIGKILL if it still runs [`KILL_AFTER`] later. For builds and copies
    /// (`plan::Step::may_be_killed`): a `nix copy` blocked reading a stalled remote does not
    /// see SIGTERM until the read returns, and Ctrl-C must not wait for a remote timeout.
    TermThenKill,
}

/// How long a [`Stop::TermThenKill`] process has to end after SIGTERM.
pub const KILL_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// The processes rb waits for, one per thread that runs a session (`several.rs` runs one
/// thread per target), and how each is stopped by [`stop_child`].
static CHILDREN: Mutex<Vec<(u32, Stop)>> = Mutex::new(Vec::new());

fn waiting_for(pid: u32, stop: Stop) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.push((pid, stop));
    }
}

fn ended(pid: u32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.retain(|&(p, _)| p != pid);
    }
}

/// Whether rb still waits for `pid` (it is not reaped, so the number is still its own).
fn still_waiting_for(pid: u32) -> bool {
    CHILDREN
        .lock()
        .map(|c| c.iter().any(|&(p, _)| p == pid))
        .unwrap_or(false)
}

fn spawn_error(program: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Spawn {
        program: program.to_string(),
        source,
    }
}

/// Starts `cmd` as the process rb waits for: [`stop_child`] stops it (as `stop` says) until
/// [`wait`] (or [`wait_with_output`]) says it ended. `program` names it if it cannot start.
pub fn start(cmd: &mut Command, program: &str, stdin: Stdin, stop: Stop) -> Result<Child> {
    let mut child = cmd
        .stdin(stdin.stdio())
        .spawn()
        .map_err(spawn_error(program))?;
    waiting_for(child.id(), stop);
    stdin.feed(&mut child);
    Ok(child)
}

/// Waits for a child [`start`] started (whose stdout the caller may have read already).
pub fn wait(child: &mut Child) -> Result<ExitStatus> {
    let status = child.wait();
    ended(child.id());
    status.map_err(spawn_error("wait"))
}

/// Waits for a child [`start`] started, collecting what it writes to piped stdout and stderr.
pub fn wait_with_output(child: Child, program: &str) -> Result<Output> {
    let pid = child.id();
    let out = child.wait_with_output();
    ended(pid);
    out.map_err(spawn_error(program))
}

/// Runs `cmd` to its end and collects what it writes to its stdout and stderr where the
/// caller piped them (one left unset goes to rb's own, as with [`start`]). Not the process a
/// signal stops: connections open on threads of their own while the build is that process.
pub fn output(cmd: &mut Command, program: &str, stdin: Stdin) -> Result<Output> {
    let mut child = cmd
        .stdin(stdin.stdio())
        .spawn()
        .map_err(spawn_error(program))?;
    stdin.feed(&mut child);
    child.wait_with_output().map_err(spawn_error(program))
}

/// Runs `cmd` for its effect alone, its stdout and stderr dropped; None when it could not
/// start. For chores whose failure changes nothing rb does next.
pub fn quietly(cmd: &mut Command, stdin: Stdin) -> Option<ExitStatus> {
    cmd.stdin(stdin.stdio())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
}

/// The standard output of `argv` run here, whatever its status; None when it cannot start.
/// Its stderr is dropped: these are questions whose failure has a fallback.
pub fn stdout_of(argv: &[&str]) -> Option<String> {
    let (program, args) = argv.split_first()?;
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sends SIGTERM to the processes rb waits for, if any: on a signal (`interrupt.rs`), or when
/// a host connected to during the build turns out unreachable (`transport.rs`).
pub fn stop_child() {
    let children = CHILDREN.lock().map(|c| c.clone()).unwrap_or_default();
    for (pid, stop) in children {
        kill("-TERM", pid);
        if stop == Stop::TermThenKill {
            std::thread::spawn(move || {
                std::thread::sleep(KILL_AFTER);
                if still_waiting_for(pid) {
                    kill("-KILL", pid);
                }
            });
        }
    }
}

fn kill(signal: &str, pid: u32) {
    quietly(
        Command::new("kill").args([signal, &pid.to_string()]),
        Stdin::Nothing,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stdout_or_says_it_could_not_start() {
        assert_eq!(
            stdout_of(&["sh", "-c", "echo out; echo err >&2; exit 3"]).as_deref(),
            Some("out\n")
        );
        assert_eq!(stdout_of(&["/nonexistent/rb-test"]), None);
        assert_eq!(stdout_of(&[]), None);
    }

    #[test]
    fn a_line_on_stdin_reaches_the_process_and_nothing_else_does() {
        let read = |stdin| {
            let out = output(
                Command::new("sh")
                    .args(["-c", "cat; echo end"])
                    .stdout(Stdio::piped()),
                "sh",
                stdin,
            )
            .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert_eq!(read(Stdin::Line("secret")), "secret\nend\n");
        assert_eq!(read(Stdin::Nothing), "end\n");
        match output(
            &mut Command::new("/nonexistent/rb-test"),
            "rb-test",
            Stdin::Nothing,
        ) {
            Err(Error::Spawn { program, .. }) => assert_eq!(program, "rb-test"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_started_process_is_the_one_stop_child_stops_until_it_ended() {
        let mut child = start(
            Command::new("sleep").arg("30").stdout(Stdio::null()),
            "sleep",
            Stdin::Nothing,
            Stop::Term,
        )
        .unwrap();
        let pid = child.id();
        assert!(still_waiting_for(pid));
        stop_child();
        let status = wait(&mut child).unwrap();
        assert!(!status.success());
        assert!(!still_waiting_for(pid));
    }

    #[test]
    fn a_build_or_copy_that_ignores_sigterm_is_killed_and_nothing_else_is() {
        // A process that ignores SIGTERM, as a `nix copy` blocked on a stalled remote does.
        let stubborn = |stop| {
            let mut child = start(
                Command::new("sh")
                    .args(["-c", "trap '' TERM; echo ready; sleep 30 & wait; sleep 30"])
                    .stdout(Stdio::piped()),
                "sh",
                Stdin::Nothing,
                stop,
            )
            .unwrap();
            let mut ready = String::new();
            use std::io::BufRead;
            std::io::BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut ready)
                .unwrap();
            child
        };
        let mut killable = stubborn(Stop::TermThenKill);
        let mut patient = stubborn(Stop::Term);
        let started = std::time::Instant::now();
        stop_child();
        let status = wait(&mut killable).unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status:?}");
        assert!(started.elapsed() >= KILL_AFTER);
        // The other one is still running, SIGTERM notwithstanding.
        assert!(patient.try_wait().unwrap().is_none());
        patient.kill().unwrap();
        wait(&mut patient).unwrap();
    }
}
