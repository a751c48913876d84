# shellcheck shell=sh
# The generation number N of a profile's link `<profile>-N-link`, as nix-env names them (on
# rb's side: generations::link_number).
rb_generation_of() { rb_gen_n=${1%-link}; echo "${rb_gen_n##*-}"; }
