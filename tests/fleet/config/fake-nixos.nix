# One fake NixOS configuration, built by real Nix in a fraction of a second.
#
#   import ./fake-nixos.nix { knobs = builtins.fromJSON (builtins.readFile ./knobs.json); name = "aquamarine"; }
#
# returns what `nixpkgs.lib.nixosSystem` returns as far as nixos-rebuild looks:
#   config.system.build.{toplevel, vm, vmWithBootLoader, images.{iso,qcow2}}
# plus the classic top-level attributes `system`, `vm` and `vmWithBootLoader`, what `repl`
# puts in scope (`options`, `pkgs` and `lib` as module arguments, `_module.specialArgs`) and a
# `meta.position` for `nix edit` (the attributes of a real flake have positions; these are made
# by listToAttrs and have none).
#
# Knobs (knobs.json, per configuration name; every key optional):
#   rev                   int     1            change it to get a new toplevel store path
#   failBuild             bool    false        the toplevel's builder exits 1 with a message
#   activationExit        int     0            switch-to-configuration exits with it
#   bootloaderExit        int     0            switch/boot: installing the boot loader fails
#                                              with this status (the boot default stays; a
#                                              switch stops before activating, as NixOS's)
#   specialisations       [str]   ["web"]      specialisation/<name> inside the toplevel
#   configurationRevision str     "rev-<rev>"  sw/bin/nixos-version --configuration-revision
#   nixosVersion          str     "26.05.<rev>"
#   kernelVersion         str     "6.1.0-rb"   kernel-modules/lib/modules/<kernelVersion>
#   sharedKernel          bool    false        the kernel's derivation leaves out the
#                                              configuration's name, so configurations with it
#                                              and the same kernelVersion share that derivation
#   evalError             bool    false        evaluating `config` throws
#   buildSeconds          int     0            the toplevel's builder first sleeps this long
#   breakSsh              bool    false        switch/test stop the host's sshd (existing
#                                              connections live on, new ones are refused);
#                                              a switch/test without it starts sshd again
#   activationSeconds     int     0            switch-to-configuration sleeps this long after
#                                              logging its call, before it changes anything
#   closurePaths          int     0            the toplevel's closure has this many more store
#                                              paths (builtins.toFile, made at evaluation time:
#                                              a big closure without slow builds)
#   closurePathKiB        int     64           the size of each of them
#   changedPaths          int     0            how many of them change with rev (the others
#                                              stay the same from one generation to the next)
#   units                 {str: str} {}        the generation's systemd units, NAME.service
#                                              each, "ok" (starts) or "fail" (fails to start):
#                                              on a host with a real systemd (fleet option
#                                              systemd), switch/test stop the previous
#                                              generation's units that are gone, restart these
#                                              through systemctl and exit 4 if one failed
#   packages              {str: str} {"hello": "2.12"}  store paths NAME-VERSION in the
#                                              toplevel's closure (builtins.toFile), what
#                                              `--diff` shows as the packages of the system
# The top-level key "system" (e.g. "x86_64-linux") is the derivations' system.
{ knobs, name }:
let
  k = knobs.${name} or { };
  system = knobs.system or "x86_64-linux";
  rev = k.rev or 1;
  failBuild = k.failBuild or false;
  activationExit = k.activationExit or 0;
  bootloaderExit = k.bootloaderExit or 0;
  specialisations = map
    (s: if builtins.match "[A-Za-z0-9_][A-Za-z0-9_.-]*" s != null then s
        else throw "rb-fleet: bad specialisation name '${s}' in knobs.json")
    (k.specialisations or [ "web" ]);
  configurationRevision = k.configurationRevision or "rev-${toString rev}";
  nixosVersion = k.nixosVersion or "26.05.${toString rev}";
  kernelVersion = k.kernelVersion or "6.1.0-rb";
  evalError = k.evalError or false;
  buildSeconds = k.buildSeconds or 0;
  breakSsh = k.breakSsh or false;
  activationSeconds = k.activationSeconds or 0;
  closurePaths = k.closurePaths or 0;
  closurePathKiB = k.closurePathKiB or 64;
  changedPaths = k.changedPaths or 0;
  units = k.units or { };
  packages = k.packages or { hello = "2.12"; };
  packagePaths = map
    (p: if builtins.match "[A-Za-z][A-Za-z0-9_.+-]*" p != null
          && builtins.match "[0-9][A-Za-z0-9_.+-]*" packages.${p} != null
        then builtins.toFile "${p}-${packages.${p}}" "rb-fleet package ${p} ${packages.${p}}\n"
        else throw "rb-fleet: bad package '${p}' (version ${builtins.toJSON packages.${p}}) in knobs.json")
    (builtins.attrNames packages);
  unitSpecs = map
    (u: if builtins.match "[A-Za-z0-9_][A-Za-z0-9_.-]*" u != null
          && builtins.elem units.${u} [ "ok" "fail" ]
        then "${u}=${units.${u}}"
        else throw "rb-fleet: bad unit '${u}' (state ${builtins.toJSON units.${u}}) in knobs.json")
    (builtins.attrNames units);

  # `closurePaths` files of `closurePathKiB` each, listed in the toplevel (see builders/toplevel.sh).
  kibiByte = builtins.concatStringsSep "" (builtins.genList (_: "rb-fleet closure filler.\n") 40)
    + "(a kibibyte of filler)\n\n";
  closure = builtins.genList
    (i: builtins.toFile "rb-fleet-path-${toString i}" (
      "path ${toString i}${if i < changedPaths then " of rev ${toString rev}" else ""}\n"
      + builtins.concatStringsSep "" (builtins.genList (_: kibiByte) closurePathKiB)))
    closurePaths;

  # Every build is `/bin/sh -c <script>`; the scripts set PATH themselves.
  mkDerivation = drvName: scriptFile: attrs:
    derivation ({
      name = drvName;
      inherit system;
      builder = "/bin/sh";
      args = [ "-c" (builtins.readFile scriptFile) ];
      configName = name;
    } // attrs);

  kernel = mkDerivation "linux-${kernelVersion}" ./builders/kernel.sh ({
    inherit kernelVersion;
  } // (if k.sharedKernel or false then { configName = "shared"; } else { }));

  mkToplevel = { specialisation ? "", specialisationPaths ? [ ], failBuild ? false, buildSeconds ? 0, closure ? [ ], unitSpecs ? [ ] }:
    mkDerivation "nixos-system-${name}-${nixosVersion}" ./builders/toplevel.sh {
      inherit rev kernel nixosVersion configurationRevision kernelVersion activationExit bootloaderExit
        specialisation specialisationPaths failBuild buildSeconds breakSsh activationSeconds;
      stcTemplate = builtins.readFile ./builders/switch-to-configuration.sh;
      # A file, not an environment variable: one variable is capped at 128 KiB.
      closure = builtins.concatStringsSep "\n" closure;
      unitSpecs = builtins.concatStringsSep " " unitSpecs;
      passAsFile = [ "closure" ];
    };

  specialisationToplevels = map
    (s: { name = s; toplevel = mkToplevel { specialisation = s; }; })
    specialisations;

  toplevel = mkToplevel {
    inherit failBuild buildSeconds unitSpecs;
    closure = closure ++ packagePaths;
    specialisationPaths = map (s: "${s.name}=${s.toplevel}") specialisationToplevels;
  };

  mkVm = kind: mkDerivation "nixos-vm" ./builders/vm.sh {
    inherit toplevel kind;
  };

  mkImage = variant: filePath:
    mkDerivation "nixos-image-${variant}-${nixosVersion}" ./builders/image.sh {
      inherit toplevel variant filePath;
    } // { passthru = { inherit filePath; }; };

  build = {
    inherit toplevel;
    vm = mkVm "vm";
    vmWithBootLoader = mkVm "vmWithBootLoader";
    images = {
      iso = mkImage "iso" "iso/nixos.iso";
      qcow2 = mkImage "qcow2" "nixos.qcow2";
    };
  };

  config =
    if evalError
    then throw "rb-fleet: evaluating configuration '${name}' failed on purpose (knob evalError)"
    else {
      system.build = build;
      system.nixos.version = nixosVersion;
      system.configurationRevision = configurationRevision;
      networking.hostName = name;
      nixpkgs.system = system;
    };
  # Tiny stand-ins for the Nixpkgs library and package set.
  lib = {
    version = nixosVersion;
    id = x: x;
  };
  pkgs = {
    inherit lib system;
    linux = kernel;
  };
  options = {
    networking.hostName = {
      type = "string";
      description = "The name of the machine.";
    };
    system.nixos.version = {
      type = "string";
      description = "The NixOS version.";
    };
  };
in
{
  _type = "configuration";
  class = "nixos";
  inherit config options;
  _module = {
    args = { inherit pkgs; };
    specialArgs = { modulesPath = "/rb-fleet/modules"; };
  };
  meta.position = "${builtins.toString ./flake.nix}:1";
  # What `nix-build '<nixpkgs/nixos>' -A system|vm|vmWithBootLoader` asks for.
  system = config.system.build.toplevel;
  vm = config.system.build.vm;
  vmWithBootLoader = config.system.build.vmWithBootLoader;
}
