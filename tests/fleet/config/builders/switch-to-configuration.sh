# shellcheck shell=sh disable=SC2154 # inputs come from the derivation attributes
# rb-fleet's fake switch-to-configuration (the builder puts `#!/bin/sh` and the variables
# toplevel, specialisation, activation_exit, bootloader_exit, break_ssh and activation_seconds
# above this text).
#
# switch-to-configuration ACTION appends ONE JSON line to /run/rb-fleet/activations.log:
#   {"action":…,"uid":…,"installBootloader":<$NIXOS_INSTALL_BOOTLOADER or null>,
#    "hostname":…,"toplevel":…,"specialisation":<name or null>,
#    "env":[<names of the variables it received, sorted>],"path":<its PATH or null>,
#    "stdin":<whether a line could be read from its stdin>,
#    "cgroup":<its cgroup v2 path from /proc/self/cgroup, "" without one>}
# then sleeps activation_seconds (the activationSeconds knob: a slow activation to interrupt),
# then, for switch and boot, makes its toplevel the boot loader's default (as NixOS's
# install-bootloader does with the toplevel it is given): /run/rb-fleet/boot-default holds its
# path, unless the bootloaderExit knob (bootloader_exit) makes that fail: it exits with it
# there, before a switch activates anything; then, for switch and test, points /run/current-system at its toplevel, on a host with a real
# systemd (/run/rb-fleet/real-systemd) stops the units of the previous generation that this one
# lacks and restarts its own (knob units; /run/rb-fleet/units lists them) through systemctl,
# and on a remote host stops its sshd (knob breakSsh; on a real systemd the unit
# rb-fleet-sshd.service) or starts it again if it was stopped; it exits 4 when a unit failed
# (as NixOS's does), else with the activationExit knob. The PATH it received is recorded,
# never used.
received_env_file=/proc/$$/environ
received_path=${PATH-}
# (sh gives itself a default PATH when it received none: ask the kernel what it received)
received_path_set=
if /usr/bin/grep -qz '^PATH=' "$received_env_file"; then received_path_set=1; fi
PATH=/usr/bin:/bin
export PATH
action=${1-}
log=/run/rb-fleet/activations.log
units_failed=

# json_string VALUE: VALUE as a JSON string.
json_string() {
  V="$1" LC_ALL=C /usr/bin/awk '
    BEGIN {
      for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i
      s = ENVIRON["V"]; out = ""; n = length(s)
      for (i = 1; i <= n; i++) {
        c = substr(s, i, 1)
        if (c == "\\") out = out "\\\\"
        else if (c == "\"") out = out "\\\""
        else if (c == "\n") out = out "\\n"
        else if (c == "\t") out = out "\\t"
        else if (c == "\r") out = out "\\r"
        else if (ord[c] < 32) out = out sprintf("\\u%04x", ord[c])
        else out = out c
      }
      printf "\"%s\"", out
    }'
}

# The names of the variables this process received, as a JSON array body.
env_names=$(
  /usr/bin/sed -z 's/=.*//' "$received_env_file" | LC_ALL=C /usr/bin/sort -z -u | /usr/bin/tr '\0' '\n' |
    LC_ALL=C /usr/bin/awk '
      {
        s = $0; out = ""
        gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s)
        printf "%s\"%s\"", (NR > 1 ? "," : ""), s
      }'
)

if [ -n "${NIXOS_INSTALL_BOOTLOADER+1}" ]; then
  install_bootloader=$(json_string "$NIXOS_INSTALL_BOOTLOADER")
else
  install_bootloader=null
fi
if [ -n "$specialisation" ]; then
  specialisation_json=$(json_string "$specialisation")
else
  specialisation_json=null
fi
if [ -n "$received_path_set" ]; then
  path_json=$(json_string "$received_path")
else
  path_json=null
fi

# Whether anything was waiting on stdin (rb must leave nothing there, a sudo password least of
# all); rb's sessions give a pipe or /dev/null, so this does not block.
if IFS= read -r _ 2>/dev/null; then stdin_json=true; else stdin_json=false; fi

cgroup=$(/usr/bin/sed -n 's/^0:://p' /proc/self/cgroup 2>/dev/null || true)
line=$(printf '{"action":%s,"uid":%s,"installBootloader":%s,"hostname":%s,"toplevel":%s,"specialisation":%s,"env":[%s],"path":%s,"stdin":%s,"cgroup":%s}' \
  "$(json_string "$action")" "$(/usr/bin/id -u)" "$install_bootloader" \
  "$(json_string "$(/bin/cat /proc/sys/kernel/hostname)")" "$(json_string "$toplevel")" \
  "$specialisation_json" "$env_names" "$path_json" "$stdin_json" "$(json_string "$cgroup")")
printf '%s\n' "$line" >> "$log"

if [ "${activation_seconds:-0}" -gt 0 ]; then
  /bin/sleep "$activation_seconds"
fi

case "$action" in
  switch | boot)
    if [ "${bootloader_exit:-0}" -ne 0 ]; then
      echo "installing the boot loader failed (knob bootloaderExit)" >&2
      exit "$bootloader_exit"
    fi
    printf '%s\n' "$toplevel" >/run/rb-fleet/boot-default
    ;;
esac

case "$action" in
  switch | test)
    echo "activating the configuration..." >&2
    if ! /bin/ln -sfn "$toplevel" /run/current-system 2>/dev/null; then
      echo "switch-to-configuration: cannot update /run/current-system (not root?)" >&2
      exit 1
    fi
    if [ -e /run/rb-fleet/real-systemd ]; then
      new_units=$(/bin/cat "$toplevel/rb-fleet-units" 2>/dev/null || true)
      old_units=$(/bin/cat /run/rb-fleet/units 2>/dev/null || true)
      for u in $old_units; do
        if ! printf '%s\n' "$new_units" | /usr/bin/grep -qx "$u"; then
          echo "stopping the following units: $u.service" >&2
          systemctl stop "$u.service" || true
          /bin/rm -f "/run/systemd/system/$u.service"
        fi
      done
      for u in $new_units; do
        /bin/ln -sfn "$toplevel/etc/systemd/system/$u.service" "/run/systemd/system/$u.service"
      done
      systemctl daemon-reload
      for u in $new_units; do
        echo "restarting $u.service" >&2
        systemctl restart "$u.service" || units_failed="$units_failed $u.service"
      done
      printf '%s\n' "$new_units" > /run/rb-fleet/units
    fi
    # /run/rb-fleet/sshd-ctl exists on the fleet's remote hosts only.
    if [ -x /run/rb-fleet/sshd-ctl ]; then
      if [ -n "$break_ssh" ]; then
        echo "stopping sshd (knob breakSsh)" >&2
        /run/rb-fleet/sshd-ctl stop || true
      else
        /run/rb-fleet/sshd-ctl start || true
      fi
    fi
    ;;
  boot)
    echo "updating the boot loader..." >&2
    ;;
  dry-activate)
    echo "would activate the configuration..." >&2
    ;;
  check) ;;
  *)
    echo "Usage: switch-to-configuration [check|switch|boot|test|dry-activate]" >&2
    exit 1
    ;;
esac
if [ -n "$units_failed" ]; then
  echo "warning: the following units failed:$units_failed" >&2
  exit 4
fi
exit "$activation_exit"
