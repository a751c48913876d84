//! rb: a drop-in nixos-rebuild for deploying NixOS to other machines.
//!
//! Layers, in the order a run goes through them:
//! `cli` (what was typed) → `request` (what it means) → `planner`/`plan` (what will run
//! where) → `exec`/`render`/`transport`/`ssh` (running it) → `report` (what is printed).
//! Concepts every layer asks rather than decides again: `action` (what an action does),
//! `elevation` (sudo, run0, being root), `error` (kinds, hints, exit statuses), `process`
//! (starting any process), `systemd` (commands under systemd-run); the shell run on hosts is
//! in `src/scripts/`. Magic rollback
//! (`--confirm-timeout`) is `rollback`: `rollback::watchdog` (the script armed on the target,
//! and its place in the plan) and `rollback::confirm` (confirming over a new connection, and
//! the verdict), run by `app` after the plan's sessions. Several `--target-host` are
//! `several`: one plan per target, one build for all, the targets deployed in parallel.
//! The binary is `main.rs`; this library exists so that tests and tools (man page and
//! completion generation) can use the same definitions.

pub mod action;
pub mod app;
pub mod cli;
pub mod closure_diff;
pub mod elevation;
pub mod error;
pub mod exec;
pub mod flake;
pub mod generations;
pub mod host;
pub mod interrupt;
pub mod nix;
pub mod password;
pub mod plan;
pub mod planner;
pub mod probe;
pub mod process;
pub mod progress;
pub mod render;
pub mod report;
pub mod request;
pub mod rollback;
pub mod several;
pub mod shell;
pub mod ssh;
pub mod systemd;
pub mod transport;
