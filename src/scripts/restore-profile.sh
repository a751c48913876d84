# shellcheck shell=sh
# Undoes a failed session's change of a profile (after generation-link.sh):
#   rb_restore_profile PROFILE LINK boot|keep-boot MESSAGE
# LINK is where PROFILE pointed before the change, empty when it did not exist. The failed
# activation may already have made the new generation the boot loader's default: with `boot`,
# the restored generation's `boot` makes it the default again, so that profile and boot menu
# agree. `keep-boot` when the activation left the boot loader alone (`switch` under magic
# rollback activates with `test`: src/action.rs).
rb_restore_profile() {
  if [ -n "$2" ]; then
    nix-env -p "$1" --switch-generation "$(rb_generation_of "$2")" >&2 &&
      if [ "$3" = boot ]; then
        env -i ${PATH+PATH="$PATH"} NIXOS_INSTALL_BOOTLOADER=0 "$1/bin/switch-to-configuration" boot >&2
      fi
  else
    rm -f "$1"
  fi
  printf '%s\n' "$4" >&2
}
