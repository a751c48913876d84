# shellcheck shell=sh
# `--ask`: which units switching to the new system would stop, restart and start, in
# switch-to-configuration's own words, run on the target (elevated, as activation is) before
# rb asks whether to go on. It never fails the run: a system that cannot tell says so.
#   sh -c "$(cat dry-activate.sh)" PROGRAM SWITCH-TO-CONFIGURATION
# Everything goes to stderr, where rb shows the commands' output (stdout is its own).
# (`sh -c` makes PROGRAM its $0.)
program=$0
"$1" dry-activate 1>&2 ||
  printf '%s: warning: could not tell which units would change (switch-to-configuration dry-activate failed)\n' "$program" >&2
exit 0
