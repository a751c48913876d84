# shellcheck shell=sh
# Prints each of its arguments that is no command on this shell's PATH, one a line: why a
# command was not found on a host, asked after the failure (src/transport.rs).
for c in "$@"; do
  command -v "$c" >/dev/null 2>&1 || printf '%s\n' "$c"
done
