# shellcheck shell=sh disable=SC2154 # rb_wd_unit_wait is set before this script (src/rollback/watchdog.rs)
# The magic-rollback watchdog itself, run detached (after watchdog-helpers.sh):
#   sh -c SCRIPT rb-watchdog DIR SECONDS "SESSION-PID STARTTIME" PROFILE restore-profile|keep-profile LINK SYSTEM ACTION NIX-ENV UNIT [BOOT INSTALL-BOOTLOADER]
# Its output goes to DIR/log. With BOOT (the path of a switch-to-configuration inside a
# system, e.g. bin/switch-to-configuration), rb's confirmation has it run that of the
# profile's system with `boot` (NIXOS_INSTALL_BOOTLOADER=INSTALL-BOOTLOADER) before it writes
# the verdict: the watchdog outlives rb's connection, so a lost one cannot cut that short.
d=$1 t=$2 spid=$3 p=$4 r=$5 link=$6 prev=$7 a=$8 nix_env=$9 unit=${10-} boot=${11-} ib=${12-0}
# rb confirmed (DIR/decision is its): with BOOT, make the profile's system the boot default and
# write the verdict (the confirming session waits for it); then exit.
confirmed() {
  if [ -z "$boot" ]; then echo "confirmed; exiting"; exit 0; fi
  psys=$(readlink -f "$p")
  echo "confirmed; making $psys the boot default"
  bfailed=
  env -i ${PATH+PATH="$PATH"} ${LOCALE_ARCHIVE+LOCALE_ARCHIVE="$LOCALE_ARCHIVE"} NIXOS_INSTALL_BOOTLOADER="$ib" \
    "$psys/$boot" boot || bfailed="switch-to-configuration boot of $psys exited with status $?"
  if [ -z "$bfailed" ]; then
    rb_wd_result "$d" confirmed '' "$a" "$p" "boot=$psys"
  else
    echo "$bfailed"
    rb_wd_result "$d" confirmed '' "$a" "$p" "boot-failed=$bfailed"
  fi
  echo "confirmed; exiting"
  exit 0
}
# Waits while the activation's unit is active, until $ue; false if it still is then.
wait_unit() {
  while rb_wd_busy "$unit"; do
    if [ "$(rb_wd_now)" -ge "$ue" ]; then return 1; fi
    rb_wd_tick
  done
}
rb_wd_id "$$" >"$d/pid"
: >"$d/armed"
echo "armed; waiting for the deploying session (pid ${spid%% *}) to end"
while rb_wd_alive "$spid" && [ ! -e "$d/rollback-now" ]; do rb_wd_tick; done
# The session may have lost its connection while switch-to-configuration goes on in its unit.
ue=$(($(rb_wd_now) + rb_wd_unit_wait))
if [ ! -e "$d/rollback-now" ] && rb_wd_busy "$unit"; then
  echo "waiting for the activation ($unit) to end"
  if wait_unit; then echo "the activation ($unit) has ended"
  else echo "the activation ($unit) is still active after ${rb_wd_unit_wait}s"; fi
fi
end=$(($(rb_wd_now) + t))
# The confirming session's checks (--confirm-check) must end before this.
echo "$end" >"$d/deadline"
echo "waiting ${t}s for a confirmation"
reason=
while [ -z "$reason" ]; do
  if [ -d "$d/decision" ]; then confirmed; fi
  if [ -e "$d/rollback-now" ]; then reason=requested
  elif [ "$(rb_wd_now)" -ge "$end" ]; then reason=timeout
  else rb_wd_tick; fi
done
if ! mkdir "$d/decision" 2>/dev/null; then echo "confirmed at the last moment"; confirmed; fi
echo "watchdog ($reason)" >"$d/decision/by"
echo "rolling back ($reason)"
failed=
# Never the previous system's switch-to-configuration while the new one's still runs.
if rb_wd_busy "$unit"; then
  echo "waiting for the activation ($unit) to end first"
  if ! wait_unit; then
    echo "the activation ($unit) is still active after ${rb_wd_unit_wait}s: stopping it"
    systemctl stop "$unit"
    if rb_wd_busy "$unit"; then failed="the activation ($unit) was still active, even after systemctl stop"; fi
  fi
fi
if [ -n "$failed" ]; then :
elif [ "$r" = restore-profile ]; then
  if [ -n "$link" ]; then
    n=$(rb_generation_of "$link")
    "$nix_env" -p "$p" --switch-generation "$n" || failed="nix-env --switch-generation $n exited with status $?"
  else
    rm -f "$p" || failed="could not remove $p"
  fi
fi
if [ -z "$failed" ]; then
  if [ -n "$prev" ]; then
    env -i ${PATH+PATH="$PATH"} ${LOCALE_ARCHIVE+LOCALE_ARCHIVE="$LOCALE_ARCHIVE"} NIXOS_INSTALL_BOOTLOADER=0 \
      "$prev/bin/switch-to-configuration" "$a" ||
      failed="switch-to-configuration $a of $prev exited with status $?"
  else
    failed="there was no previous system to go back to"
  fi
fi
if [ -z "$failed" ]; then outcome=rolled-back; else outcome=rollback-failed; fi
if [ -n "$failed" ]; then set -- "failed=$failed"; else set --; fi
rb_wd_result "$d" "$outcome" "$reason" "$a" "$p" "$@"
echo "$outcome"
