# Classic mode: `nix-build '<nixpkgs/nixos>' -A system` (or -A config.system.build.toplevel)
# with nixpkgs=<this config>/nixpkgs on NIX_PATH (every fleet host's nix.conf sets `nix-path`).
#
# Which configuration: $RB_FLEET_CONFIG if set and non-empty, else the name in
# /etc/nix/fleet-host (written by `fleet up` into every host: the host's own name).
{ configuration ? null, system ? null }:
let
  knobs = builtins.fromJSON (builtins.readFile ../../knobs.json);
  fromEnv = builtins.getEnv "RB_FLEET_CONFIG";
  hostFile = /etc/nix/fleet-host;
  fromHost =
    if builtins.pathExists hostFile
    then builtins.head (builtins.match "[[:space:]]*([^[:space:]]*)[[:space:]]*" (builtins.readFile hostFile))
    else "default";
  name = if fromEnv != "" then fromEnv else fromHost;
in
import ../../fake-nixos.nix { inherit knobs name; }
