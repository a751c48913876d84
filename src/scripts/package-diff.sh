# shellcheck shell=sh
# What `--diff` compares, run on the target, where both closures are: the running system's
# and the new one's store paths, and their closure sizes. rb reads it (src/closure_diff.rs).
#   sh -c "$(cat package-diff.sh)" PROGRAM NEW-SYSTEM
# Prints `current PATH`, `new PATH`, `size PATH BYTES` lines, then `- PATH` for each path of
# the current closure and `+ PATH` for each of the new one; only `new PATH` when there is no
# /run/current-system. Without NEW-SYSTEM, only the current system's lines (the target's half
# of package-diff-here.sh).
new=
if [ -n "${1:-}" ]; then
  new=$(readlink -f "$1") || new=$1
  printf 'new %s\n' "$new"
fi
[ -e /run/current-system ] || exit 0
current=$(readlink -f /run/current-system)
printf 'current %s\n' "$current"
[ "$current" = "$new" ] && exit 0
# shellcheck disable=SC2086 # no NEW-SYSTEM: no word
nix --extra-experimental-features nix-command path-info -S "$current" $new |
  while read -r path size; do printf 'size %s %s\n' "$path" "$size"; done
nix-store -qR "$current" | sed 's/^/- /' || exit
[ -z "$new" ] || nix-store -qR "$new" | sed 's/^/+ /'
