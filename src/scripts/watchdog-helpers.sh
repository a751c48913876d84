# shellcheck shell=sh
# Helpers of the magic-rollback watchdog (src/rollback/watchdog.rs), shared by the sessions' functions
# (watchdog-session.sh) and the detached watchdog itself (watchdog.sh), after
# generation-link.sh. Every name is prefixed: they also run inside a session's own script.

# Seconds since boot.
rb_wd_now() { read -r rb_wd_u _ </proc/uptime; echo "${rb_wd_u%%.*}"; }

rb_wd_tick() { sleep 0.2 2>/dev/null || sleep 1; }

# "PID STARTTIME" of a live process, so that a reused pid is never taken for it.
rb_wd_id() {
  # dash reports a failed `<` before a later `2>` applies, so the braces take the message.
  { read -r rb_wd_st <"/proc/$1/stat"; } 2>/dev/null || return 1
  # shellcheck disable=SC2086 # the fields after "(comm) " are split on purpose
  set -- "$1" ${rb_wd_st##*) }
  case $2 in Z | X) return 1 ;; esac
  echo "$1 ${21}"
}

# Whether the process rb_wd_id said "$1" of is still that process.
rb_wd_alive() { [ -n "$1" ] && [ "$(rb_wd_id "${1%% *}")" = "$1" ]; }

# Whether systemd unit $1 (the activation's) is still running: it outlives a session that lost
# its connection. Only what systemctl says counts (no systemd, no unit, no answer: not running).
rb_wd_busy() {
  [ -n "$1" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 || return 1
  case $(systemctl is-active "$1" 2>/dev/null) in
  active | activating | deactivating | reloading | refreshing) return 0 ;;
  *) return 1 ;;
  esac
}
