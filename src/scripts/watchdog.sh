# shellcheck shell=sh disable=SC2154 # rb_wd_unit_wait is set before this script (src/rollback/watchdog.rs)
# The magic-rollback watchdog itself, run detached (after watchdog-helpers.sh):
#   sh -c SCRIPT rb-watchdog DIR SECONDS "SESSION-PID STARTTIME" PROFILE restore-profile|keep-profile LINK SYSTEM ACTION NIX-ENV UNIT
# Its output goes to DIR/log.
d=$1 t=$2 spid=$3 p=$4 r=$5 link=$6 prev=$7 a=$8 nix_env=$9 unit=${10-}
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
echo "waiting ${t}s for a confirmation"
reason=
while [ -z "$reason" ]; do
  if [ -d "$d/decision" ]; then echo "confirmed; exiting"; exit 0; fi
  if [ -e "$d/rollback-now" ]; then reason=requested
  elif [ "$(rb_wd_now)" -ge "$end" ]; then reason=timeout
  else rb_wd_tick; fi
done
if ! mkdir "$d/decision" 2>/dev/null; then echo "confirmed at the last moment; exiting"; exit 0; fi
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
gen='' sys='' psys=''
if l=$(readlink "$p" 2>/dev/null); then gen=$(rb_generation_of "$l"); psys=$(readlink -f "$p"); fi
case $a in
boot) sys=$psys ;;
*) if [ -e /run/current-system ]; then sys=$(readlink -f /run/current-system); fi ;;
esac
if [ -z "$failed" ]; then outcome=rolled-back; else outcome=rollback-failed; fi
{
  printf 'outcome=%s\nreason=%s\naction=%s\nprofile=%s\ngeneration=%s\nprofile-system=%s\nsystem=%s\n' \
    "$outcome" "$reason" "$a" "$p" "$gen" "$psys" "$sys"
  if [ -n "$failed" ]; then printf 'failed=%s\n' "$failed"; fi
} >"$d/result.tmp" && mv "$d/result.tmp" "$d/result"
echo "$outcome"
