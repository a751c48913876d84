# shellcheck shell=sh
# `--ask` before a copy to a remote target: the lines of package-diff.sh, made before the new
# closure is there: its half here, where it is, and the running system's half on the target,
# over the run's master connection (NIX_SSHOPTS, split into words as Nix splits them).
#   sh -c "$(cat package-diff-here.sh)" PROGRAM NEW-SYSTEM HOST REMOTE-COMMAND
# REMOTE-COMMAND runs package-diff.sh on HOST with no new system, quoted for its shell: it
# prints the `current`, `size` and `- PATH` lines, or nothing when HOST runs no system yet.
# rb reads the whole (src/closure_diff.rs), and never fails the run for it.
set -u
new=$(readlink -f "$1") || new=$1
host=$2 remote=$3
printf 'new %s\n' "$new"
nix --extra-experimental-features nix-command path-info -S "$new" |
  while read -r path size; do printf 'size %s %s\n' "$path" "$size"; done
nix-store -qR "$new" | sed 's/^/+ /' || exit 0
# shellcheck disable=SC2086,SC2029 # NIX_SSHOPTS is a list of words; REMOTE-COMMAND is quoted
ssh $NIX_SSHOPTS "$host" "$remote" || exit 0
