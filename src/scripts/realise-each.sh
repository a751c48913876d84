# shellcheck shell=sh
# Realises several derivations with one nix-store and prints their outputs in the order given,
# one per line, `-` for a configuration the flake lacks (several targets,
# src/planner/several.rs).
# $1: the derivations, one per line (`-` where there is none); the other arguments are
# nix-store's options.
drvs=$1
shift
# Split at new lines only, without globbing: store paths have neither spaces nor patterns.
IFS='
'
set -f
real=
for d in $drvs; do
  [ "$d" = - ] || real="$real$d
"
done
out=
if [ -n "$real" ]; then
  # shellcheck disable=SC2086
  out=$(nix-store --realise $real "$@") || exit
fi
# The outputs, one per derivation (a NixOS system has one), in the order of $drvs.
# shellcheck disable=SC2086
set -- $out
for d in $drvs; do
  if [ "$d" = - ]; then
    echo -
  else
    echo "$1"
    shift
  fi
done
