# shellcheck shell=sh
set -f; exec ${EDITOR:-nano} "$1"
