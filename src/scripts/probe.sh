# shellcheck shell=sh
# What rb learns about a host in the session that opens its connection (src/probe.rs reads
# it), so that what would fail later is found before the build:
#   sh -c "$(cat probe.sh)" rb-probe CHECK...
# CHECK: `nix=CMD,CMD` (commands that must be on the PATH), `sudo` (may sudo run commands
# without a password?), `sudo-password` (does sudo take the password, the first line of this
# session's stdin?), `run0` (is there a run0, and does polkit let it run commands without a
# password?). Prints `rb-probe 1`, `uid N`, `hostname H`, then `missing CMD`,
# `sudo ok|password`, `run0 ok|missing|refused` lines.
echo 'rb-probe 1'
echo "uid $(id -u)"
echo "hostname $(uname -n)"
for check in "$@"; do
  case $check in
  nix=*)
    commands=${check#nix=}
    while [ -n "$commands" ]; do
      c=${commands%%,*}
      case $commands in *,*) commands=${commands#*,} ;; *) commands= ;; esac
      command -v "$c" >/dev/null 2>&1 || echo "missing $c"
    done
    ;;
  sudo)
    if sudo --non-interactive true </dev/null >/dev/null 2>&1; then echo 'sudo ok'; else echo 'sudo password'; fi
    ;;
  sudo-password)
    # sudo reads the password from stdin (nowhere else: not argv, not a variable); when it
    # needs none (NOPASSWD, a cached timestamp) the line stays unread and ends with the session.
    if sudo --prompt= --stdin true >/dev/null 2>&1; then echo 'sudo ok'; else echo 'sudo password'; fi
    ;;
  run0)
    if ! command -v run0 >/dev/null 2>&1; then
      echo 'run0 missing'
    elif run0 --no-ask-password true </dev/null >/dev/null 2>&1; then
      echo 'run0 ok'
    else
      echo 'run0 refused'
    fi
    ;;
  esac
done
