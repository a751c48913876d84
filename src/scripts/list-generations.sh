# shellcheck shell=sh
# Lists the generations of the profile $1 (after generation-link.sh); see src/generations.rs.
profile=$1
dir=${profile%/*}
base=${profile##*/}
current=$(readlink "$profile") || current=
current=${current##*/}
fact() { printf '%s ' "$1"; printf '%s' "$2" | tr '\n\t' '  '; printf '\n'; }
for link in "$dir/$base"-*-link; do
  [ -L "$link" ] || continue
  name=${link##*/}
  n=$(rb_generation_of "$name")
  # Only this profile's: `$base-x-N-link` is another profile's.
  case $n in '' | *[!0-9]*) continue ;; esac
  [ "$name" = "$base-$n-link" ] || continue
  fact generation "$n"
  fact date "$(stat -c %Y "$link")"
  [ "$name" = "$current" ] && fact current yes
  if v=$(cat "$link/nixos-version" 2>/dev/null); then fact nixos-version "$v"; fi
  kernel=
  for m in "$link"/kernel-modules/lib/modules/*; do
    [ -e "$m" ] && kernel=${m##*/} && break
  done
  if [ -z "$kernel" ] && k=$(readlink -f "$link/kernel" 2>/dev/null); then
    for m in "${k%/*}"/lib/modules/*; do
      [ -e "$m" ] && kernel=${m##*/} && break
    done
  fi
  [ -n "$kernel" ] && fact kernel "$kernel"
  if r=$("$link/sw/bin/nixos-version" --configuration-revision 2>/dev/null); then
    fact revision "$r"
  fi
  for s in "$link"/specialisation/*; do
    [ -d "$s" ] && fact specialisation "${s##*/}"
  done
done
exit 0
