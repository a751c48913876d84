# shellcheck shell=sh
# Succeeds only as root: run first by a session that must be root, whatever its elevation
# (src/elevation.rs, root_check); with none, rb's own user must be root.
[ "$(id -u)" = 0 ]
