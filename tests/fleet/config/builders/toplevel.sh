# shellcheck shell=sh disable=SC2154 # inputs come from the derivation attributes
# Builder of a fake NixOS toplevel (also used for each specialisation's toplevel).
# Inputs (derivation attributes): configName rev kernel nixosVersion configurationRevision
# kernelVersion activationExit bootloaderExit activationSeconds specialisation specialisationPaths failBuild
# buildSeconds breakSsh stcTemplate closurePath (a file listing the closure's extra paths)
# unitSpecs (NAME=ok|fail ...: the systemd units etc/systemd/system/NAME.service, listed in
# rb-fleet-units).
PATH=/usr/bin:/bin
set -eu
if [ "${buildSeconds:-0}" -gt 0 ]; then
  sleep "$buildSeconds"
fi
if [ -n "${failBuild:-}" ]; then
  echo "rb-fleet: building configuration '$configName' failed on purpose (knob failBuild)" >&2
  exit 1
fi

# q VALUE: VALUE as one single-quoted sh word.
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

mkdir -p "$out/bin" "$out/sw/bin" "$out/specialisation"
printf '%s' "$nixosVersion" > "$out/nixos-version"
printf '%s' "$system" > "$out/system"
printf '%s' "$rev" > "$out/rb-fleet-rev"
ln -s "$kernel/bzImage" "$out/kernel"
ln -s "$kernel/initrd" "$out/initrd"
ln -s "$kernel" "$out/kernel-modules"

{
  echo '#!/bin/sh'
  echo "echo rb-fleet: fake init of $(q "$configName")"
} > "$out/init"

{
  echo '#!/bin/sh'
  echo "version=$(q "$nixosVersion")"
  echo "revision=$(q "$configurationRevision")"
  cat <<'SCRIPT'
case "${1-}" in
  --configuration-revision) printf '%s\n' "$revision" ;;
  --json) printf '{"nixosVersion":"%s","configurationRevision":"%s"}\n' "$version" "$revision" ;;
  *) printf '%s\n' "$version" ;;
esac
SCRIPT
} > "$out/sw/bin/nixos-version"

{
  echo '#!/bin/sh'
  echo "toplevel=$(q "$out")"
  echo "specialisation=$(q "$specialisation")"
  echo "activation_exit=$(q "$activationExit")"
  echo "bootloader_exit=$(q "${bootloaderExit:-0}")"
  echo "break_ssh=$(q "${breakSsh:-}")"
  echo "activation_seconds=$(q "${activationSeconds:-0}")"
  printf '%s\n' "$stcTemplate"
} > "$out/bin/switch-to-configuration"

# The generation's systemd units (started by switch-to-configuration on a real systemd).
mkdir -p "$out/etc/systemd/system"
: > "$out/rb-fleet-units"
for spec in ${unitSpecs:-}; do
  unit=${spec%%=*}
  case ${spec#*=} in fail) exec_start=/bin/false ;; *) exec_start=/bin/true ;; esac
  cat > "$out/etc/systemd/system/$unit.service" <<UNIT
[Unit]
Description=rb-fleet unit $unit of $configName (rev $rev)
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=$exec_start
UNIT
  echo "$unit" >> "$out/rb-fleet-units"
done

# The extra paths become the toplevel's runtime references.
cp "$closurePath" "$out/rb-fleet-closure"

chmod +x "$out/init" "$out/sw/bin/nixos-version" "$out/bin/switch-to-configuration"

for s in $specialisationPaths; do
  ln -s "${s#*=}" "$out/specialisation/${s%%=*}"
done
