# shellcheck shell=sh disable=SC2154 # inputs come from the derivation attributes
# Builder of config.system.build.images.<variant>: a file at passthru.filePath.
PATH=/usr/bin:/bin
set -eu
mkdir -p "$out/$(dirname "$filePath")"
printf 'rb-fleet fake %s image of %s\n' "$variant" "$toplevel" > "$out/$filePath"
mkdir -p "$out/nix-support"
printf '%s\n' "$toplevel" > "$out/nix-support/system"
