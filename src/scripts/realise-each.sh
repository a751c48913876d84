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
  # nix-store runs as a job of its own, its output in a file: a shell stopped while it waits
  # for a command substitution would leave nix-store building (rb stops the build when a
  # target's connection fails or its name was guessed wrong); the trap passes the stop on.
  list=$(mktemp) || exit
  # shellcheck disable=SC2086
  nix-store --realise $real "$@" >"$list" &
  realise=$!
  stopped=
  trap 'stopped=1; kill -TERM "$realise" 2>/dev/null' TERM INT HUP
  wait "$realise"
  status=$?
  if [ -n "$stopped" ]; then
    wait "$realise"
    rm -f "$list"
    exit 143
  fi
  out=$(cat "$list")
  rm -f "$list"
  [ "$status" = 0 ] || exit "$status"
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
