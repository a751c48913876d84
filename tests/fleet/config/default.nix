# File mode: `nix-build default.nix -A <name>.config.system.build.toplevel`
# (nixos-rebuild -f <this file> -A <name>).
let
  knobs = builtins.fromJSON (builtins.readFile ./knobs.json);
  names = builtins.filter (n: builtins.isAttrs knobs.${n}) (builtins.attrNames knobs);
in
builtins.listToAttrs (map
  (name: { inherit name; value = import ./fake-nixos.nix { inherit knobs name; }; })
  names)
