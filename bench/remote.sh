#!/usr/bin/env bash
# Remote deploy benchmark on the sandbox fleet (tests/fleet): for each scenario, rb next to a
# minimal hand-written shell pipeline doing the same Nix and SSH work (the floor: one master
# connection per host, no checks, no systemd-run, no safety). Prints wall time, TCP connections
# and remote sessions per host. Each run gets fresh hosts, so both build and copy everything.
#
#   bench/remote.sh [ROUNDS]      (default 3; needs root, nix-bin, openssh-server; builds rb)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
FLEET=$PWD/tests/fleet/fleet
cargo build --release --quiet
RB=$PWD/target/release/rb
WORK=$(mktemp -d /tmp/rb-bench.XXXXXX)
trap 'for d in "$WORK"/*/; do "$FLEET" down "$d" >/dev/null 2>&1 || true; done; rm -rf "$WORK"' EXIT

now() { date +%s.%N; }

# The floor: what a careful person would type, sharing one master per host.
floor() {
  local scenario=$1 cfg=$2
  local inst="$cfg#nixosConfigurations.\"aquamarine\".config.system.build.toplevel"
  local ctl="-o ControlMaster=auto -o ControlPath=/tmp/rb-bench-%C -o ControlPersist=60"
  local set="nix-env -p /nix/var/nix/profiles/system --set \$p && \$p/bin/switch-to-configuration switch"
  cat <<EOF
set -e
export NIX_SSHOPTS="$ctl"
case $scenario in
target)
  p=\$(nix build --no-link --json '$inst' | sed 's/.*"out":"\([^"]*\)".*/\1/')
  nix-copy-closure --to aquamarine "\$p"
  ssh $ctl aquamarine "p=\$p; $set" ;;
build-host)
  d=\$(nix eval --raw '${inst}.drvPath')
  nix-copy-closure --to builder "\$d"
  p=\$(ssh $ctl builder nix-store --realise "\$d")
  nix-copy-closure --from builder "\$p"
  eval "$set" ;;
both)
  d=\$(nix eval --raw '${inst}.drvPath')
  nix-copy-closure --to builder "\$d"
  p=\$(ssh $ctl builder nix-store --realise "\$d")
  ssh $ctl builder nix-copy-closure --to aquamarine "\$p"
  ssh $ctl aquamarine "p=\$p; $set" ;;
same-host)
  d=\$(nix eval --raw '${inst}.drvPath')
  nix-copy-closure --to aquamarine "\$d"
  ssh $ctl aquamarine "p=\\\$(nix-store --realise \$d) && nix-env -p /nix/var/nix/profiles/system --set \\\$p && \\\$p/bin/switch-to-configuration switch" ;;
esac
for s in /tmp/rb-bench-*; do ssh -o ControlPath="\$s" -O exit x 2>/dev/null || true; done
EOF
}

rb_args() {
  local cfg=$1
  case $2 in
  target) echo "switch --flake $cfg#aquamarine --target-host root@aquamarine" ;;
  build-host) echo "switch --flake $cfg#aquamarine --build-host builder" ;;
  both) echo "switch --flake $cfg#aquamarine --build-host builder --target-host root@aquamarine" ;;
  same-host) echo "switch --flake $cfg#aquamarine --build-host aquamarine --target-host aquamarine" ;;
  esac
}

counts() {
  local dir=$1 out=""
  for h in aquamarine builder; do
    read -r c s < <("$FLEET" sessions "$dir" "$h" | sed 's/connections=\([0-9]*\) sessions=\([0-9]*\)/\1 \2/')
    out+=$(printf '%-11s %3s %4s  ' "$h" "$c" "$s")
  done
  echo "$out"
}

printf "%-11s %-6s %8s   %-22s %-22s\n" scenario tool "wall(s)" "host        conn sess" "host        conn sess"
for scenario in target build-host both same-host; do
  for tool in rb floor; do
    total=0
    for round in $(seq "$ROUNDS"); do
      dir=$WORK/$scenario-$tool-$round
      # The workstation is named after the target here, so the "build-host only" scenario
      # activates a configuration that exists.
      "$FLEET" up "$dir" aquamarine-ws aquamarine builder >/dev/null
      "$FLEET" knob "$dir" aquamarine-ws rev 1
      start=$(now)
      if [[ $tool == rb ]]; then
        # shellcheck disable=SC2046
        "$FLEET" run "$dir" aquamarine-ws --cwd "$dir/work" -- "$RB" $(rb_args "$dir/config" "$scenario") >/dev/null 2>&1
      else
        "$FLEET" run "$dir" aquamarine-ws --cwd "$dir/work" -- sh -c "$(floor "$scenario" "$dir/config")" >/dev/null 2>&1
      fi
      end=$(now)
      total=$(awk "BEGIN { print $total + $end - $start }")
      line=$(counts "$dir")
      "$FLEET" down "$dir" >/dev/null
    done
    printf '%-11s %-6s %8.2f   %s\n' "$scenario" "$tool" "$(awk "BEGIN { print $total / $ROUNDS }")" "$line"
  done
done
