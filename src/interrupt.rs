//! Ctrl-C and termination: stop the running child (`process::stop_child`), let the executor
//! clean up (remote processes, SSH masters, the control directory), exit with 128 + the signal.

use crate::process;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Set by the signal handler itself, so that it is set before rb can see a child that the
/// same Ctrl-C stopped (the whole process group gets it) end.
static SIGNAL: AtomicUsize = AtomicUsize::new(0);
static INTERACTIVE: AtomicBool = AtomicBool::new(false);

/// Starts the thread that receives SIGINT, SIGTERM and SIGHUP for the rest of the run.
pub fn install() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        let _ = signal_hook::flag::register_usize(sig, &SIGNAL, sig as usize);
    }
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        for sig in signals.forever() {
            // An editor or `nix repl` in the foreground handles Ctrl-C itself.
            if sig == SIGINT && INTERACTIVE.load(Ordering::SeqCst) {
                continue;
            }
            SIGNAL.store(sig as usize, Ordering::SeqCst);
            // A terminal's Ctrl-C reaches the child too; a SIGTERM sent to rb alone does not.
            process::stop_child();
        }
    });
}

/// The signal that interrupted the run, if one did.
pub fn signal() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s as i32),
    }
}

/// While it lives, Ctrl-C belongs to the interactive child (an editor, `nix repl`): rb lets it
/// pass, as a shell does while a foreground job runs.
pub struct Interactive;

impl Interactive {
    pub fn start() -> Self {
        INTERACTIVE.store(true, Ordering::SeqCst);
        Interactive
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        INTERACTIVE.store(false, Ordering::SeqCst);
        // The low-level handler records every SIGINT; one meant for the editor or the repl
        // does not interrupt rb.
        let sigint = signal_hook::consts::SIGINT as usize;
        let _ = SIGNAL.compare_exchange(sigint, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}
