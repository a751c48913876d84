# shellcheck shell=sh
# The remote half of scripts/copy-from.sh, run on the host that holds the closure:
#   sh -c "$(cat export-closure.sh)" rb-export-closure
# Reads a store path, prints how many paths its closure has and then the closure, one a line,
# then reads the paths the other side lacks until the end of its input and exports them in that
# order. `nix-store --query --requisites` puts a path after the paths it references, which is
# the order `nix-store --import` needs.
set -eu
IFS= read -r path
closure=$(nix-store --query --requisites "$path")
# The count first: the other side then reads the list in blocks (`head -n`), not a byte at a
# time, and nothing follows the list until it answers (see copy-from.sh).
printf '%s\n' "$closure" | wc -l
printf '%s\n' "$closure"
set -f
# shellcheck disable=SC2046 # a list of store paths, one a line
exec nix-store --export $(cat)
