//! rb: a drop-in nixos-rebuild for deploying NixOS to other machines.
//!
//! Layers, in the order a run goes through them:
//! `cli` (what was typed) → `request` (what it means) → `planner`/`plan` (what will run
//! where) → `exec`/`render`/`transport` (running it) → `report` (what is printed).

mod app;
mod cli;
mod error;
mod exec;
mod flake;
mod host;
mod nix;
mod password;
mod plan;
mod planner;
mod render;
mod report;
mod request;
mod shell;
mod ssh;
mod transport;

fn main() {
    std::process::exit(app::run(std::env::args_os().collect()));
}
