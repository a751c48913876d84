complete -c rb -s F -l flake -d 'Build the NixOS configuration of a flake: FLAKE#NAME, NAME defaulting to the target\'s host name' -r
complete -c rb -s f -l file -d 'Build the configuration from this Nix file instead of <nixpkgs/nixos>' -r -F
complete -c rb -s A -l attr -d 'Build the configuration from this attribute (of --file, default ./default.nix)' -r -f
complete -c rb -l store-path -d 'Deploy this already built system closure instead of building one' -r -f -a "(__fish_complete_directories)"
complete -c rb -l image-variant -d 'The image variant to build with build-image (an attribute of config.system.build.images)' -r -f
complete -c rb -s p -l profile-name -d 'Use the system profile /nix/var/nix/profiles/system-profiles/NAME' -r -f
complete -c rb -s c -l specialisation -d 'Activate the specialisation NAME of the configuration (switch and test)' -r -f
complete -c rb -l generation -d 'Make generation N of the profile current instead of building (switch, boot, test)' -r
complete -c rb -l elevate -d 'How to elevate the steps that need root' -r -f -a "none\t'Run everything as the connecting user'
sudo\t'Use sudo for the steps that need root'
run0\t'Use run0 (systemd) for the steps that need root'"
complete -c rb -l confirm-timeout -d 'Magic rollback: keep the new configuration only if the target is reached again over a new SSH connection within SECONDS after activating it; otherwise the target goes back to its previous generation by itself (switch, boot and test, with --target-host)' -r
complete -c rb -l confirm-check -d 'Magic rollback: run CMD on the target before confirming; it must succeed (repeatable)' -r
complete -c rb -l target-host -d 'Deploy to this machine over SSH: [user@]host, ssh://[user@]host, ssh-ng://[user@]host' -r -f -a "(__fish_print_hostnames)"
complete -c rb -l build-host -d 'Build on this machine over SSH: [user@]host, ssh://[user@]host, ssh-ng://[user@]host' -r -f -a "(__fish_print_hostnames)"
complete -c rb -l max-parallel -d 'With several --target-host: deploy at most N hosts at once (copies and activations)' -r
complete -c rb -s j -l max-jobs -d 'Number of build jobs Nix runs in parallel' -r -f
complete -c rb -l cores -d 'Number of cores each build may use' -r -f
complete -c rb -l log-format -d 'Format of Nix\'s log output, such as raw, bar-with-logs or internal-json' -r -f
complete -c rb -l option -d 'Set the Nix configuration option NAME to VALUE, as in nix.conf' -r -f
complete -c rb -l builders -d 'Remote builders for Nix to use, as in nix.conf\'s builders setting' -r -f
complete -c rb -s I -l include -d 'Add PATH or NAME=PATH to the Nix search path (<nixpkgs>, <nixos-config>)' -r
complete -c rb -l update-input -d 'Update one input of the flake\'s lock file' -r -f
complete -c rb -l override-input -d 'Use FLAKEREF for the flake\'s input INPUT' -r -f
complete -c rb -l version -d 'Print version information'
complete -c rb -l no-flake -d 'Do not use /etc/nixos/flake.nix even if it exists'
complete -c rb -l upgrade -d 'Update the root user\'s nixos channel (and the ones marked for it) first'
complete -c rb -l upgrade-all -d 'Update all of the root user\'s channels first'
complete -c rb -l rollback -d 'Go back to the previous generation instead of building'
complete -c rb -l install-bootloader -d 'Install the boot loader again while activating (NIXOS_INSTALL_BOOTLOADER=1)'
complete -c rb -l diff -d 'Show what changes between the current system and the new one before activating'
complete -c rb -l ask -d 'Show what changes and ask before changing the target'
complete -c rb -l yes -d 'With --ask: show what changes, and go on without asking (for runs without a terminal)'
complete -c rb -l sudo -d 'Elevate the steps that need root with sudo'
complete -c rb -s S -l ask-sudo-password -l ask-elevate-password -d 'Ask for the sudo password once, before anything is built; implies --sudo'
complete -c rb -l run0 -d 'Elevate the steps that need root with run0'
complete -c rb -l keep-generation-on-failure -d 'When activation fails, keep the new generation as the profile and boot default'
complete -c rb -l fail-fast -d 'With several --target-host: start no more hosts once one has failed'
complete -c rb -l json -d 'Print one JSON document on stdout: the result of the run, the plan, or the generations'
complete -c rb -l plan -d 'Print the steps that would run, with their hosts, and exit without running anything'
complete -c rb -l debug -d 'Print debug messages on stderr'
complete -c rb -l use-remote-sudo -d 'Deprecated: use --sudo'
complete -c rb -l install-grub -d 'Deprecated: use --install-bootloader'
complete -c rb -l fast -d 'Deprecated: use --no-reexec'
complete -c rb -l no-reexec -d 'Accepted for compatibility; there is no re-execution to skip'
complete -c rb -l no-build-nix -d 'Deprecated: Nix is never built'
complete -c rb -l no-ssh-tty -d 'Deprecated: no TTY is ever allocated over SSH'
complete -c rb -s v -l verbose -d 'More verbose Nix output; repeat for more'
complete -c rb -l quiet -d 'Less verbose Nix output; repeat for less'
complete -c rb -s k -l keep-going -d 'Keep building other derivations when one fails'
complete -c rb -s K -l keep-failed -d 'Keep the build directories of failed builds'
complete -c rb -l fallback -d 'Build from source when a substitute fails'
complete -c rb -l repair -d 'Repair corrupted or missing store paths while building'
complete -c rb -s L -l print-build-logs -d 'Print full build logs'
complete -c rb -l show-trace -d 'Show traces of evaluation errors'
complete -c rb -l offline -d 'Use only what is cached locally; no downloads'
complete -c rb -l no-net -d 'Do not use the network'
complete -c rb -l accept-flake-config -d 'Accept the nixConfig of the flake'
complete -c rb -l refresh -d 'Refetch the flake and its inputs'
complete -c rb -l impure -d 'Allow impure evaluation'
complete -c rb -l recreate-lock-file -d 'Recreate the flake\'s lock file'
complete -c rb -l no-update-lock-file -d 'Do not update the flake\'s lock file'
complete -c rb -l no-write-lock-file -d 'Do not write the flake\'s lock file'
complete -c rb -l no-registries -d 'Do not use flake registries'
complete -c rb -l commit-lock-file -d 'Commit changes to the flake\'s lock file'
complete -c rb -s Q -l no-build-output -l no-link -d 'Do not show build output; for flakes also leaves no result link'
complete -c rb -s s -l use-substitutes -l substitute-on-destination -d 'Let the destination of a copy fetch paths from its substituters'
complete -c rb -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rb -n "not __fish_seen_subcommand_from switch boot test build dry-build dry-run dry-activate edit repl build-vm build-vm-with-bootloader build-image list-generations" -f -a switch -d 'Build, make it the boot default and activate it now'
complete -c rb -n "not __fish_seen_subcommand_from switch boot test build dry-build dry-run dry-activate edit repl build-vm build-vm-with-bootloader build-image list-generations" -f -a boot -d 'Build and make it the boot default, without activating it now'
complete -c rb -n "not __fish_seen_subcommand_from switch boot test build dry-build dry-run dry-activate edit repl build-vm build-vm-with-bootloader build-image list-generations" -f -a test -d 'Build and activate it now, without making it the boot default'
complete -c rb -n "not __fish_seen_subcommand_from switch boot test build dry-build dry-run dry-activate edit repl build-vm build-vm-with-bootloader build-image list-generations" -f -a build -d 'Build it and leave a `result` link in the current directory'
complete -c rb -n "not __fish_seen_subcommand_from switch boot test build dry-build dry-run dry-activate edit repl build-vm build-vm-with-bootloader build-image list-generations" -f -a dry-build -d 'Show what would be built or fetched, without building'
complete -c rb -n "not __fish_seen_subcommand_from switch boot test build dry-build dry-run dry-activate edit repl build-vm build-vm-with-bootloader build-image list-generations" -f -a dry-activate -d 'Build and copy it, then show what activating it would change'
complete -c rb -n "not __fish_seen_subcommand_from switch boot test build dry-build dry-run dry-activate edit repl build-vm build-vm-with-bootloader build-image list-generations" -f -a edit -d 'Open the configuration in an editor'
complete -c rb -n "not __fish_seen_subcommand_from switch boot test build dry-build dry-run dry-activate edit repl build-vm build-vm-with-bootloader build-image list-generations" -f -a repl -d 'Open `nix repl` with the configuration loaded'
complete -c rb -n "not __fish_seen_subcommand_from switch boot test build dry-build dry-run dry-activate edit repl build-vm build-vm-with-bootloader build-image list-generations" -f -a build-vm -d 'Build a QEMU virtual machine running the configuration and print how to start it'
complete -c rb -n "not __fish_seen_subcommand_from switch boot test build dry-build dry-run dry-activate edit repl build-vm build-vm-with-bootloader build-image list-generations" -f -a build-vm-with-bootloader -d 'Like build-vm, booting through the boot loader'
complete -c rb -n "not __fish_seen_subcommand_from switch boot test build dry-build dry-run dry-activate edit repl build-vm build-vm-with-bootloader build-image list-generations" -f -a build-image -d 'Build a disk image of the configuration (see --image-variant)'
complete -c rb -n "not __fish_seen_subcommand_from switch boot test build dry-build dry-run dry-activate edit repl build-vm build-vm-with-bootloader build-image list-generations" -f -a list-generations -d 'List the generations of the system profile (as JSON with --json)'
