//! Progress of the Nix commands a run starts, here or on a host: Nix's
//! `--log-format internal-json` events ([`nixlog`]) and what they add up to ([`state`]).
//! The executor feeds a command's stderr through these to draw one status line per phase
//! instead of Nix's line per store path.

pub mod nixlog;
pub mod state;
