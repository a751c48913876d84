# shellcheck shell=sh disable=SC2154 # inputs come from the derivation attributes
# Builder of config.system.build.vm / vmWithBootLoader: bin/run-<name>-vm.
PATH=/usr/bin:/bin
set -eu
mkdir -p "$out/bin"
ln -s "$toplevel" "$out/system"
cat > "$out/bin/run-$configName-vm" <<SCRIPT
#!/bin/sh
echo "rb-fleet: fake $kind of $configName ($toplevel)"
SCRIPT
chmod +x "$out/bin/run-$configName-vm"
