# shellcheck shell=sh
expr=$1
shift
tmp=$(mktemp "${TMPDIR:-/tmp}/rb-repl.XXXXXX") || exit
trap 'rm -f "$tmp"' EXIT
trap : INT QUIT
printf '%s\n' "$expr" >"$tmp" || exit
"$@" "$tmp"
