# shellcheck shell=sh disable=SC2154 # inputs come from the derivation attributes
# Builder of the fake kernel: bzImage next to lib/modules/<version>, as in nixpkgs.
PATH=/usr/bin:/bin
set -eu
mkdir -p "$out/lib/modules/$kernelVersion"
printf 'rb-fleet fake kernel %s\n' "$kernelVersion" > "$out/bzImage"
printf 'rb-fleet fake initrd\n' > "$out/initrd"
: > "$out/lib/modules/$kernelVersion/modules.dep"
