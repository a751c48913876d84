# shellcheck shell=sh
# Runs a command with store paths appended (several targets with a build host: one copy of
# every derivation to it, src/planner/several.rs):
#   sh -c "$(cat each-path.sh)" rb-each-path PATHS COMMAND [ARGUMENT...]
# PATHS: one per line, `-` for a configuration the flake lacks (left out).
paths=$1
shift
# Split at new lines only, without globbing: store paths have neither spaces nor patterns.
IFS='
'
set -f
for p in $paths; do
  [ "$p" = - ] || set -- "$@" "$p"
done
exec "$@"
