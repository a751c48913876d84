{
  description = "rb-fleet: fake NixOS configurations, one per name in knobs.json";

  # No inputs: nothing is fetched.
  outputs = { self }:
    let
      knobs = builtins.fromJSON (builtins.readFile ./knobs.json);
      names = builtins.filter (n: builtins.isAttrs knobs.${n}) (builtins.attrNames knobs);
    in
    {
      nixosConfigurations = builtins.listToAttrs (map
        (name: { inherit name; value = import ./fake-nixos.nix { inherit knobs name; }; })
        names);
    };
}
