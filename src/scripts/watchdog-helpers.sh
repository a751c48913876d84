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

# Writes the run's verdict, DIR/result (read back as `@rb-watchdog` lines, Verdict in
# src/rollback/watchdog.rs), with the profile's generation and system and what runs as they are now:
#   rb_wd_result DIR OUTCOME REASON ACTION PROFILE [KEY=VALUE...]
rb_wd_result() {
  rb_wd_rd=$1 rb_wd_ro=$2 rb_wd_rr=$3 rb_wd_ra=$4 rb_wd_rp=$5
  shift 5
  rb_wd_rg='' rb_wd_rs='' rb_wd_rps=''
  if rb_wd_rl=$(readlink "$rb_wd_rp" 2>/dev/null); then
    rb_wd_rg=$(rb_generation_of "$rb_wd_rl") rb_wd_rps=$(readlink -f "$rb_wd_rp")
  fi
  case $rb_wd_ra in
  boot) rb_wd_rs=$rb_wd_rps ;;
  *) if [ -e /run/current-system ]; then rb_wd_rs=$(readlink -f /run/current-system); fi ;;
  esac
  {
    printf 'outcome=%s\n' "$rb_wd_ro"
    if [ -n "$rb_wd_rr" ]; then printf 'reason=%s\n' "$rb_wd_rr"; fi
    printf 'action=%s\nprofile=%s\ngeneration=%s\nprofile-system=%s\nsystem=%s\n' \
      "$rb_wd_ra" "$rb_wd_rp" "$rb_wd_rg" "$rb_wd_rps" "$rb_wd_rs"
    for rb_wd_kv in "$@"; do printf '%s\n' "$rb_wd_kv"; done
  } >"$rb_wd_rd/result.tmp" && mv "$rb_wd_rd/result.tmp" "$rb_wd_rd/result"
}
