# shellcheck shell=sh
# Realises several derivations with one nix-store, which prints their outputs in the order
# given, one per line (several targets, src/planner/several.rs).
# $1: the derivations, one per line; the other arguments are nix-store's options.
drvs=$1
shift
# Split at new lines only, without globbing: store paths have neither spaces nor patterns.
IFS='
'
set -f
# shellcheck disable=SC2086
exec nix-store --realise $drvs "$@"
