//! End-to-end tests: the rb binary on a sandbox fleet of fake NixOS hosts (tests/fleet).

mod bad_input;
mod faults;
mod fleet;
mod fleet_smoke;
mod interrupt;
mod json;
mod local;
mod magic_rollback;
mod mixed;
mod password;
mod progress;
mod remote;
mod several;
mod state;
mod surface;
mod systemd;
