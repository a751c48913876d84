//! Magic rollback (`--confirm-timeout`; README, "Magic rollback"), in two halves:
//! - `watchdog`: the planner's side — the step that arms a watchdog on the target in the
//!   activation's session, the confirming session, and the shell they run
//!   (`src/scripts/watchdog*.sh`);
//! - `confirm`: the settling — after the plan's sessions ran, `app.rs` has it confirm over a
//!   new SSH connection and turn the watchdog's verdict into rb's exit status.
//!
//! The halves sit on either side of running: `watchdog` needs only the plan's types (the
//! planner and `render.rs` ask it), while `confirm` runs through `exec.rs` and `render.rs`.
//! Neither file imports anything that imports it back.

pub mod confirm;
pub mod watchdog;
