# shellcheck shell=sh
all=$1
updated=
for dir in /nix/var/nix/profiles/per-user/root/channels/*/; do
  [ -d "$dir" ] || continue
  name=${dir%/}
  name=${name##*/}
  if [ "$all" = 1 ] || [ "$name" = nixos ] || [ -e "$dir.update-on-nixos-rebuild" ]; then
    updated=1
    nix-channel --update "$name" || echo "$0: warning: could not update the channel '$name'"
  fi
done
[ -n "$updated" ] || echo "$0: warning: '--upgrade' flag passed but no channels to update"
exit 0
