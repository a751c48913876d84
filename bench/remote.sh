#!/usr/bin/env bash
# Remote deploy benchmark on the sandbox fleet (tests/fleet): rb next to the floor (a minimal
# hand-written pipeline: `nix copy` over ssh-ng through one master connection per host, plus one
# remote call for profile and activation; no checks, no safety) and nixos-rebuild-ng when it is
# on the PATH. For each scenario (target; build host + target) it runs a first deploy (fresh
# hosts) and an incremental one (a new generation: only the toplevel changes), and prints wall
# time, TCP connections and remote sessions per host. Scenarios: `target` (built here, deployed
# to aquamarine), `both` (built on builder, copied from there to aquamarine), `back` (built on
# builder, copied back and activated here, on ws).
#
#   bench/remote.sh [--rtt MS] [--paths N] [--rounds R] [--only SCENARIO]
#       --rtt MS     round-trip time between any two hosts (default 0): bench/relay.rs, in front
#                    of each host's sshd, delays each direction by MS/2
#       --paths N    extra store paths in the system's closure (default 0; fleet knob
#                    closurePaths, 64 KiB each)
#       --rounds R   mean of R rounds (default 1)
#       --only S     just scenario S (target, both or back)
#       --several "1 3 10"
#                    instead: one rb run deploying to each of that many fleet hosts at once
#                    (several --target-host, each its own configuration, --max-parallel the
#                    number of hosts), a first deploy, wall time and its ratio to one host's,
#                    and the CPU time the whole machine spent meanwhile (the hosts run here)
# The fleet's Nix is this machine's unless RB_FLEET_ROOT names a root (bookworm 2.8, trixie
# 2.26, sid 2.34: tests/fleet/roots ensure makes them); the first line says which ran.
# Needs root, nix-bin, openssh-server, rustc and cargo (builds rb and the relay).
set -euo pipefail
cd "$(dirname "$0")/.."
RTT=0 PATHS=0 ROUNDS=1 SCENARIOS=(target both back) SEVERAL=""
while (($#)); do
  case $1 in
  --rtt) RTT=$2 && shift 2 ;;
  --several) SEVERAL=$2 && shift 2 ;;
  --paths) PATHS=$2 && shift 2 ;;
  --rounds) ROUNDS=$2 && shift 2 ;;
  --only) SCENARIOS=("$2") && shift 2 ;;
  *) sed -n '2,25s/^# \{0,1\}//p' "$0" >&2 && exit 2 ;;
  esac
done
FLEET=$PWD/tests/fleet/fleet
cargo build --release --quiet
RB=$PWD/target/release/rb
WORK=$(mktemp -d /tmp/rb-bench.XXXXXX)
rustc -O --edition 2021 bench/relay.rs -o "$WORK/relay"
RELAYS=()
cleanup() {
  local pid d
  for pid in "${RELAYS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for d in "$WORK"/*/; do "$FLEET" down "$d" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
NG=$(command -v nixos-rebuild-ng || true)

now() { date +%s.%N; }

# Put a relay in front of each remote host's sshd (HOST... after DIR, default aquamarine and
# builder) and point every ssh config at it.
add_latency() {
  local dir=$1 h port relayed u
  shift
  (($#)) || set -- aquamarine builder
  ((RTT > 0)) || return 0
  for h in "$@"; do
    port=$(cat "$dir/hosts/$h/port")
    "$WORK/relay" 0 "$port" $((RTT / 2)) >"$dir/relay-$h" &
    RELAYS+=("$!")
    until [[ -s $dir/relay-$h ]]; do sleep 0.01; done
    relayed=$(cat "$dir/relay-$h")
    sed -i "/^Host $h\$/,/^Host /s/^  Port $port\$/  Port $relayed/" "$dir/ssh/config"
  done
  for u in deploy deploypw; do
    install -m 0600 -o "$u" -g "$u" "$dir/ssh/config" "$dir/ssh-$u/config"
  done
}

# The floor: what a careful person would type, sharing one master per host.
floor() {
  local scenario=$1 cfg=$2
  local inst="$cfg#nixosConfigurations.\"aquamarine\".config.system.build.toplevel"
  local ctl="-o ControlMaster=auto -o ControlPath=/tmp/rb-bench-%C -o ControlPersist=60"
  local set="nix-env -p /nix/var/nix/profiles/system --set \$p && \$p/bin/switch-to-configuration switch"
  local copy="nix --extra-experimental-features nix-command copy --no-check-sigs"
  cat <<EOF
set -e
export NIX_SSHOPTS="$ctl"
case $scenario in
target)
  p=\$(nix build --no-link --json '$inst' | sed 's/.*"out":"\([^"]*\)".*/\1/')
  $copy --to ssh-ng://root@aquamarine "\$p"
  ssh $ctl root@aquamarine "p=\$p; $set" ;;
both)
  d=\$(nix eval --raw '${inst}.drvPath')
  $copy --derivation --to ssh-ng://builder "\$d"
  p=\$(ssh $ctl builder nix-store --realise "\$d")
  ssh $ctl builder $copy --to ssh-ng://root@aquamarine "\$p"
  ssh $ctl root@aquamarine "p=\$p; $set" ;;
back)
  # What this store lacks of the closure, in one stream (\`nix copy --from ssh-ng://\` asks
  # path by path).
  d=\$(nix eval --raw '${inst}.drvPath')
  $copy --derivation --to ssh-ng://builder "\$d"
  p=\$(ssh $ctl builder nix-store --realise "\$d")
  m=\$(nix-store --check-validity --print-invalid \$(ssh $ctl builder nix-store -qR "\$p"))
  [ -z "\$m" ] || ssh $ctl builder nix-store --export \$m | nix-store --import >/dev/null
  $set ;;
esac
for s in /tmp/rb-bench-*; do ssh -o ControlPath="\$s" -O exit x 2>/dev/null || true; done
EOF
}

args() {
  local cfg=$1
  case $2 in
  target) echo "switch --flake $cfg#aquamarine --target-host root@aquamarine" ;;
  both) echo "switch --flake $cfg#aquamarine --build-host builder --target-host root@aquamarine" ;;
  back) echo "switch --flake $cfg#aquamarine --build-host builder" ;;
  esac
}

counts() {
  local dir=$1 h c s out=""
  for h in aquamarine builder; do
    read -r c s < <("$FLEET" sessions "$dir" "$h" | sed 's/connections=\([0-9]*\) sessions=\([0-9]*\)/\1 \2/')
    out+="$c/$s "
  done
  echo "$out"
}

# deploy DIR TOOL SCENARIO: one deploy; prints "SECONDS CONNS/SESSIONS(target) (builder)",
# counting only this deploy's connections and sessions.
deploy() {
  local dir=$1 tool=$2 scenario=$3 before after start end a b
  before=$(counts "$dir")
  start=$(now)
  case $tool in
  rb)
    # shellcheck disable=SC2046
    "$FLEET" run "$dir" ws --cwd "$dir/work" -- "$RB" $(args "$dir/config" "$scenario") >/dev/null 2>&1
    ;;
  ng)
    # shellcheck disable=SC2046
    "$FLEET" run "$dir" ws --cwd "$dir/work" -- "$NG" $(args "$dir/config" "$scenario") >/dev/null 2>&1
    ;;
  floor) "$FLEET" run "$dir" ws --cwd "$dir/work" -- sh -c "$(floor "$scenario" "$dir/config")" >/dev/null 2>&1 ;;
  esac
  end=$(now)
  after=$(counts "$dir")
  read -r a b <<<"$(paste -d' ' <(tr ' ' '\n' <<<"$before" | sed '/^$/d') <(tr ' ' '\n' <<<"$after" | sed '/^$/d') |
    awk -F'[ /]' '{ printf "%d/%d ", $3 - $1, $4 - $2 }')"
  echo "$(awk "BEGIN { print $end - $start }") $a $b"
}

# several "1 3 10": rb deploying to that many hosts in one run (README, "Several targets").
several() {
  local n dir hosts targets seconds start end one="" i total cpu c0 c1 c s
  printf "%-6s %8s %8s %8s   %-18s\n" hosts "wall(s)" "x 1 host" "cpu(s)" "h1 conn/sessions"
  for n in $1; do
    total=0 cpu=0
    for round in $(seq "$ROUNDS"); do
      dir=$WORK/several-$n-$round
      hosts=() targets=()
      for i in $(seq "$n"); do
        hosts+=("h$i") targets+=(--target-host "root@h$i")
      done
      "$FLEET" up "$dir" ws "${hosts[@]}" >/dev/null
      for i in "${hosts[@]}"; do "$FLEET" knob "$dir" "$i" closurePaths "$PATHS"; done
      add_latency "$dir" "${hosts[@]}"
      c0=$(cpu_seconds)
      start=$(now)
      "$FLEET" run "$dir" ws --cwd "$dir/work" -- "$RB" switch --flake "$dir/config" \
        "${targets[@]}" --max-parallel "$n" >/dev/null 2>&1
      end=$(now)
      c1=$(cpu_seconds)
      total=$(awk "BEGIN { print $total + $end - $start }")
      cpu=$(awk "BEGIN { print $cpu + $c1 - $c0 }")
      read -r c s < <("$FLEET" sessions "$dir" h1 | sed 's/connections=\([0-9]*\) sessions=\([0-9]*\)/\1 \2/')
      "$FLEET" down "$dir" >/dev/null
    done
    seconds=$(awk "BEGIN { print $total / $ROUNDS }")
    [[ -n $one ]] || one=$seconds
    printf "%-6s %8.2f %8.2f %8.2f   %-18s\n" "$n" "$seconds" "$(awk "BEGIN { print $seconds / $one }")" \
      "$(awk "BEGIN { print $cpu / $ROUNDS }")" "$c/$s"
  done
}

# The CPU time this machine has spent so far, all cores, user and system (/proc/stat's first
# line, in clock ticks of 1/100 s): the fleet's hosts run here, so their work counts too.
cpu_seconds() {
  awk '/^cpu / { print ($2 + $3 + $4 + $7 + $8) / 100 }' /proc/stat
}

# The Nix the fleet runs (its root's, see tests/fleet/roots), not necessarily this machine's.
fleet_nix() {
  "$FLEET" up "$WORK/version" ws >/dev/null
  "$FLEET" run "$WORK/version" ws -- nix --version
  "$FLEET" down "$WORK/version" >/dev/null
}
echo "rtt ${RTT} ms, ${PATHS} extra store paths, $(fleet_nix), mean of $ROUNDS round(s)"
if [[ -n $SEVERAL ]]; then
  several "$SEVERAL"
  exit 0
fi
[[ -n $NG ]] || echo "nixos-rebuild-ng: not on the PATH, not measured"
printf "%-7s %-12s %-6s %8s %8s   %-9s %-9s\n" scenario deploy tool "wall(s)" "x floor" "target" "builder"
for scenario in "${SCENARIOS[@]}"; do
  for kind in first incremental; do
    declare -A wall=() line=()
    tools=(rb floor)
    [[ -z $NG ]] || tools+=(ng)
    for tool in "${tools[@]}"; do
      total=0
      for round in $(seq "$ROUNDS"); do
        dir=$WORK/$scenario-$kind-$tool-$round
        "$FLEET" up "$dir" ws aquamarine builder >/dev/null
        "$FLEET" knob "$dir" aquamarine closurePaths "$PATHS"
        add_latency "$dir"
        if [[ $kind == incremental ]]; then
          # The previous generation, deployed the same way, then a change of the toplevel.
          deploy "$dir" "$tool" "$scenario" >/dev/null
          "$FLEET" knob "$dir" aquamarine rev 2
        fi
        read -r seconds t b < <(deploy "$dir" "$tool" "$scenario")
        total=$(awk "BEGIN { print $total + $seconds }")
        line[$tool]="$t $b"
        "$FLEET" down "$dir" >/dev/null
      done
      wall[$tool]=$(awk "BEGIN { print $total / $ROUNDS }")
    done
    for tool in "${tools[@]}"; do
      read -r t b <<<"${line[$tool]}"
      [[ $scenario != target ]] || b=-
      [[ $scenario != back ]] || t=-
      printf "%-7s %-12s %-6s %8.2f %8.2f   %-9s %-9s\n" "$scenario" "$kind" "$tool" "${wall[$tool]}" \
        "$(awk "BEGIN { print ${wall[$tool]} / ${wall[floor]} }")" "$t" "$b"
    done
    unset wall line
  done
done
