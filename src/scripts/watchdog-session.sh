# shellcheck shell=sh disable=SC2154 # rb_wd_prog, rb_wd_run_dir, rb_wd_unit_prefix, rb_wd_wait and rb_wd_body are set before these functions (src/rollback/watchdog.rs)
# The watchdog's functions in the sessions that arm it and confirm it (`rb-watchdog MODE …` in
# a plan becomes `rb_watchdog MODE …`). After watchdog-helpers.sh and systemd-run.sh.

rb_wd_detach() { if command -v setsid >/dev/null 2>&1; then setsid -f "$@"; else nohup "$@" & fi; }

# Arms the watchdog:
#   rb_wd_arm DIR SECONDS ACTION PROFILE restore-profile|keep-profile [boot-when-confirmed STC INSTALL-BOOTLOADER]
# ACTION is what rolls back to the previous system; with boot-when-confirmed, rb's
# confirmation has the watchdog run the profile's STC (bin/switch-to-configuration, or a
# specialisation's) with `boot` (see watchdog.sh).
rb_wd_arm() {
  rb_wd_d=$1 rb_wd_t=$2 rb_wd_a=$3 rb_wd_p=$4 rb_wd_r=$5 rb_wd_link='' rb_wd_prev=''
  rb_wd_boot='' rb_wd_ib=0
  if [ "${6-}" = boot-when-confirmed ]; then rb_wd_boot=$7 rb_wd_ib=$8; fi
  # The unit this run's activation runs in: the run id is the directory's name.
  rb_wd_unit=$rb_wd_unit_prefix${rb_wd_d##*/}
  { mkdir -m 0700 "$rb_wd_run_dir" 2>/dev/null || [ -d "$rb_wd_run_dir" ]; } && mkdir -m 0700 "$rb_wd_d" || return
  if [ "$rb_wd_r" = restore-profile ] && [ -L "$rb_wd_p" ]; then rb_wd_link=$(readlink "$rb_wd_p"); fi
  case $rb_wd_a in
  boot) if [ -L "$rb_wd_p" ]; then rb_wd_prev=$(readlink -f "$rb_wd_p"); fi ;;
  *) if [ -e /run/current-system ]; then rb_wd_prev=$(readlink -f /run/current-system); fi ;;
  esac
  # nix-env from the system running now, its directory pinned (nix-env itself is a link to
  # nix, which looks at the name it was called by).
  rb_wd_nixenv=$(command -v nix-env 2>/dev/null) &&
    rb_wd_nixenv=$(cd "${rb_wd_nixenv%/*}" && pwd -P)/nix-env || rb_wd_nixenv=nix-env
  rb_wd_id "$$" >"$rb_wd_d/session"
  printf 'action=%s\nprofile=%s\nlink=%s\nsystem=%s\nunit=%s\nboot=%s\n' "$rb_wd_a" "$rb_wd_p" "$rb_wd_link" "$rb_wd_prev" "$rb_wd_unit" "$rb_wd_boot" >"$rb_wd_d/previous"
  set -- "$rb_wd_d" "$rb_wd_t" "$(cat "$rb_wd_d/session")" "$rb_wd_p" "$rb_wd_r" "$rb_wd_link" "$rb_wd_prev" "$rb_wd_a" "$rb_wd_nixenv" "$rb_wd_unit" "$rb_wd_boot" "$rb_wd_ib"
  if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
    rb_wd_how="systemd-run --unit=rb-watchdog-${rb_wd_d##*/}"
    rb_wd_pass="-E PATH"
    if [ -n "${LOCALE_ARCHIVE+x}" ]; then rb_wd_pass="$rb_wd_pass -E LOCALE_ARCHIVE"; fi
    echo "$rb_wd_how" >"$rb_wd_d/how"
    # Its output goes to the log itself (not to the journal): it outlives this session.
    # shellcheck disable=SC2086 # the -E options are split on purpose
    rb_systemd_run rb_wd_detach systemd-run --unit="rb-watchdog-${rb_wd_d##*/}" --collect --quiet \
      --service-type=exec -p "StandardOutput=append:$rb_wd_d/log" \
      -p "StandardError=append:$rb_wd_d/log" $rb_wd_pass -- /bin/sh -c "$rb_wd_body" \
      rb-watchdog "$@" </dev/null >>"$rb_wd_d/log" 2>&1
  else
    rb_wd_how="a detached process"
    echo "$rb_wd_how" >"$rb_wd_d/how"
    rb_wd_detach /bin/sh -c "$rb_wd_body" rb-watchdog "$@" </dev/null >>"$rb_wd_d/log" 2>&1
  fi
  rb_wd_end=$(($(rb_wd_now) + 15))
  while [ ! -e "$rb_wd_d/armed" ]; do
    if [ "$(rb_wd_now)" -ge "$rb_wd_end" ]; then
      mkdir "$rb_wd_d/decision" 2>/dev/null
      echo "$rb_wd_prog: the watchdog did not start ($rb_wd_how); its log:"
      cat "$rb_wd_d/log"
      return 1
    fi
    rb_wd_tick
  done
  # From here on the session must finish what it started even if rb's connection drops: tell
  # the watchdog when the activation fails, or let it end. Writing to the dead connection
  # then fails instead of killing the session half way (sshd sends no SIGHUP to a session
  # without a terminal; SIGPIPE is what stops it). What the session runs inherits this, as
  # systemd's units ignore SIGPIPE by default.
  trap '' PIPE
  if [ "$rb_wd_r" != restore-profile ]; then rb_wd_to=
  elif [ -n "$rb_wd_link" ]; then rb_wd_to="puts $rb_wd_p back to generation $(rb_generation_of "$rb_wd_link") and "
  else rb_wd_to="removes $rb_wd_p (it has no generation yet) and "; fi
  if [ -n "$rb_wd_prev" ]; then rb_wd_to="${rb_wd_to}runs switch-to-configuration $rb_wd_a of $rb_wd_prev"
  else rb_wd_to="${rb_wd_to}has no previous system to activate"; fi
  if [ -n "$rb_wd_boot" ]; then rb_wd_to="$rb_wd_to; the new generation becomes the boot default once confirmed"; fi
  echo "$rb_wd_prog: armed a watchdog on $(uname -n) ($rb_wd_how): unless rb confirms within ${rb_wd_t}s of the activation, it $rb_wd_to"
}

# The confirming session's report: `@rb-watchdog key=value` lines (Verdict in src/rollback/watchdog.rs).
rb_wd_report() { for rb_wd_kv in "$@"; do printf '@rb-watchdog %s\n' "$rb_wd_kv"; done; }

# The confirmation checks (--confirm-check), in order, each within what is left of the
# confirmation window (the watchdog's DIR/deadline, less a margin for the confirmation itself);
# true if all succeeded. Each one's output goes to DIR/check-N.log; DIR/checks gets one
# `check-N=…` line each (`status S` or `timeout SECONDS`) and the last lines of the one that
# failed. `timeout` (coreutils, on every NixOS) stops a check with all it started.
#   rb_wd_checks DIR CHECK...
rb_wd_checks() {
  rb_wd_cd=$1 rb_wd_n=0
  shift
  : >"$rb_wd_cd/checks"
  [ $# -gt 0 ] || return 0
  # The watchdog writes its deadline once it counts (the activation is over by now).
  while [ ! -s "$rb_wd_cd/deadline" ]; do
    if [ "$(rb_wd_now)" -ge "$rb_wd_end" ]; then return 1; fi
    rb_wd_tick
  done
  for rb_wd_c in "$@"; do
    rb_wd_n=$((rb_wd_n + 1))
    rb_wd_log=$rb_wd_cd/check-$rb_wd_n.log
    rb_wd_left=$(($(cat "$rb_wd_cd/deadline") - $(rb_wd_now) - 2))
    if [ "$rb_wd_left" -lt 1 ]; then
      echo "no time left in the confirmation window to run it" >"$rb_wd_log"
      rb_wd_s=timeout rb_wd_left=0
    else
      echo "$rb_wd_prog: confirmation check $rb_wd_n: $rb_wd_c" >&2
      rb_wd_t0=$(rb_wd_now)
      timeout -k 1 "$rb_wd_left" /bin/sh -c "$rb_wd_c" </dev/null >"$rb_wd_log" 2>&1
      rb_wd_s=$?
      if [ "$rb_wd_s" -eq 124 ] || [ "$rb_wd_s" -eq 137 ]; then
        if [ $(($(rb_wd_now) - rb_wd_t0)) -ge "$rb_wd_left" ]; then rb_wd_s=timeout; fi
      fi
    fi
    if [ "$rb_wd_s" = 0 ]; then
      echo "check-$rb_wd_n=status 0" >>"$rb_wd_cd/checks"
      continue
    fi
    if [ "$rb_wd_s" = timeout ]; then
      echo "check-$rb_wd_n=timeout $rb_wd_left" >>"$rb_wd_cd/checks"
    else
      echo "check-$rb_wd_n=status $rb_wd_s" >>"$rb_wd_cd/checks"
    fi
    # Its last non-blank lines, numbered from the first of them.
    grep -v '^[[:space:]]*$' "$rb_wd_log" | tail -n 5 | cut -c 1-300 |
      awk -v n="$rb_wd_n" '{ printf "check-%s-output-%d=%s\n", n, NR, $0 }' >>"$rb_wd_cd/checks"
    return 1
  done
}

# Confirms (or has the watchdog roll back) and reports the outcome:
#   rb_wd_settle confirm|rollback DIR [CHECK...]
# A confirmation runs the checks first; one that fails has the watchdog roll back at once.
rb_wd_settle() {
  rb_wd_m=$1 rb_wd_d=$2
  shift 2
  if [ ! -e "$rb_wd_d/armed" ]; then
    rb_wd_report outcome=unknown "detail=there is no watchdog in $rb_wd_d (was the host restarted?)"
    return 0
  fi
  rb_wd_end=$(($(rb_wd_now) + rb_wd_wait))
  rb_wd_unit=$(sed -n 's/^unit=//p' "$rb_wd_d/previous")
  # When rb lost its connection during activation, the deploying session may still run, and
  # switch-to-configuration goes on in its unit after the session: confirm only once both ended.
  while { rb_wd_alive "$(cat "$rb_wd_d/session")" || rb_wd_busy "$rb_wd_unit"; } &&
    [ ! -e "$rb_wd_d/rollback-now" ]; do
    if [ "$(rb_wd_now)" -ge "$rb_wd_end" ]; then
      rb_wd_report outcome=pending "detail=the activation is still running"
      return 0
    fi
    rb_wd_tick
  done
  if [ "$rb_wd_m" = rollback ]; then
    : >"$rb_wd_d/rollback-now"
  elif [ -e "$rb_wd_d/rollback-now" ]; then :
  elif ! rb_wd_checks "$rb_wd_d" "$@"; then
    # Unless the watchdog has decided already (its deadline came first), it rolls back now.
    : >"$rb_wd_d/rollback-now"
  elif mkdir "$rb_wd_d/decision" 2>/dev/null; then
    echo "confirmed by rb" >"$rb_wd_d/decision/by"
    # With boot-when-confirmed, the watchdog makes the new generation the boot default and
    # writes the verdict itself (watchdog.sh); else it is written here.
    if [ -z "$(sed -n 's/^boot=//p' "$rb_wd_d/previous")" ]; then
      rb_wd_result "$rb_wd_d" confirmed '' "$(sed -n 's/^action=//p' "$rb_wd_d/previous")" \
        "$(sed -n 's/^profile=//p' "$rb_wd_d/previous")"
    fi
  fi
  while [ ! -e "$rb_wd_d/result" ]; do
    if ! rb_wd_alive "$(cat "$rb_wd_d/pid" 2>/dev/null)" && [ ! -e "$rb_wd_d/result" ]; then
      rb_wd_report outcome=unknown "detail=the watchdog stopped without leaving a result"
      sed 's/^/@rb-watchdog /' "$rb_wd_d/checks" 2>/dev/null
      return 0
    fi
    if [ "$(rb_wd_now)" -ge "$rb_wd_end" ]; then
      rb_wd_report outcome=pending "detail=the watchdog is still rolling back"
      sed 's/^/@rb-watchdog /' "$rb_wd_d/checks" 2>/dev/null
      return 0
    fi
    rb_wd_tick
  done
  cat "$rb_wd_d/result" "$rb_wd_d/checks" 2>/dev/null | sed 's/^/@rb-watchdog /'
}

rb_watchdog() {
  case $1 in
  arm) shift && rb_wd_arm "$@" ;;
  roll-back-now) : >"$2/rollback-now" && echo "$rb_wd_prog: told the watchdog to roll back at once" ;;
  confirm | rollback) rb_wd_settle "$@" ;;
  *) echo "$rb_wd_prog: rb_watchdog: unknown mode '$1'" >&2 && return 2 ;;
  esac
}
