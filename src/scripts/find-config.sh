# shellcheck shell=sh
file=${NIXOS_CONFIG-}
if [ -z "$file" ]; then
  file=$(nix-instantiate --find-file nixos-config "$@" 2>/dev/null) || file=
fi
[ -n "$file" ] || file=/etc/nixos
if [ -d "$file" ]; then file=${file%/}/default.nix; fi
[ -e "$file" ] || exit 1
case $file in /*) ;; *) file=$PWD/$file ;; esac
printf '%s\n' "$file"
