# rb, built with nixpkgs' Rust tooling:
#
#   nix-build                                        # ./result/bin/rb
#   nix-build --arg withNixosRebuildAlias true       # also ./result/bin/nixos-rebuild
#
# The man page and the shell completions are generated from src/cli.rs by
# `cargo test --test generated` and checked in, so this needs no extra build step for them.
{
  pkgs ? import <nixpkgs> { },
  # Also install rb as `nixos-rebuild` (program and man page), to use it as a drop-in.
  withNixosRebuildAlias ? false,
}:

let
  inherit (pkgs) lib;
  cargoToml = lib.importTOML ./Cargo.toml;
in
pkgs.rustPlatform.buildRustPackage {
  pname = cargoToml.package.name;
  version = cargoToml.package.version;

  src = lib.fileset.toSource {
    root = ./.;
    fileset = lib.fileset.unions [
      ./Cargo.toml
      ./Cargo.lock
      ./src
      ./man
      ./completions
    ];
  };

  cargoLock.lockFile = ./Cargo.lock;

  nativeBuildInputs = [ pkgs.installShellFiles ];

  # The end-to-end tests need root, user and network namespaces and a sandbox fleet of fake
  # NixOS hosts with sshd (tests/e2e), none of which the Nix build sandbox has. CI runs them.
  doCheck = false;

  postInstall =
    ''
      installManPage man/rb.8
      installShellCompletion --cmd rb \
        --bash completions/rb.bash \
        --zsh completions/_rb \
        --fish completions/rb.fish
    ''
    + lib.optionalString withNixosRebuildAlias ''
      # rb names itself nixos-rebuild in its messages when invoked under that name.
      ln -s rb $out/bin/nixos-rebuild
      # Compressed with rb.8 by the fixup phase, which re-points this link.
      ln -s rb.8 $out/share/man/man8/nixos-rebuild.8
    '';

  meta = {
    description = cargoToml.package.description;
    license = lib.licenses.mit;
    mainProgram = "rb";
    platforms = lib.platforms.linux;
  };
}
