# shellcheck shell=sh
# Copies a store path's closure from a remote store into this machine's in ONE SSH session,
# whose round trips do not grow with the closure (`nix-copy-closure --from` takes one or two a
# path):
#   sh -c "$(cat copy-from.sh)" rb-copy-from HOST REMOTE-COMMAND PATH
# REMOTE-COMMAND runs scripts/export-closure.sh on HOST, quoted for its shell; NIX_SSHOPTS holds
# ssh's options (the run's master connection), split into words as Nix splits them.
# The session: PATH goes to HOST, which answers with how many paths PATH's closure has and
# the closure; the paths of it that this store lacks go back, and HOST streams them, in
# `nix-store --export` form, into `nix-store --import` here. Trust is Nix's own: the import is
# as signed or unsigned as `nix-copy-closure --from` would make it. Exits with ssh's status
# when the remote side failed, else with the import's.
set -u
host=$1 remote=$2 path=$3
dir=$(mktemp -d "${TMPDIR:-/tmp}/rb-copy.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
mkfifo "$dir/back" || exit 1

# Reads the closure from stdin, answers through the fifo, then imports the rest of stdin.
receive() {
  exec 5>"$dir/back"
  printf '%s\n' "$path" >&5
  # How many paths, then the paths. `head` reads in blocks, which cannot take any of the
  # export stream after the list: HOST sends that only once it has the answer below.
  IFS= read -r count || return 1
  closure=$(head -n "$count")
  set -f
  if [ -n "$closure" ]; then
    # shellcheck disable=SC2086 # a list of store paths
    nix-store --check-validity --print-invalid $closure >&5 || return 1
  fi
  exec 5>&-
  nix-store --import >/dev/null
}

# shellcheck disable=SC2086 # NIX_SSHOPTS is a list of words
{
  # shellcheck disable=SC2029 # REMOTE-COMMAND comes quoted for the remote shell
  ssh $NIX_SSHOPTS "$host" "$remote" <"$dir/back"
  echo "$?" >"$dir/sent"
} | receive
received=$?
sent=$(cat "$dir/sent" 2>/dev/null) || sent=1
# 141: ssh had nothing left to write to (the import side stopped first and said why).
case $sent in
0 | 141) exit "$received" ;;
*) exit "$sent" ;;
esac
