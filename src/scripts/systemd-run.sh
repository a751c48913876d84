# shellcheck shell=sh
# Runs its arguments as a command, for commands that go through systemd-run. systemd expands
# $NAME and ${NAME} in the command line of the unit systemd-run makes, and reads $$ as one `$`:
# so every argument after the `--` that ends systemd-run's options has each `$` doubled, and
# the unit's command gets its words exactly as given. Without a `systemd-run … --` in them, the
# arguments run unchanged.
rb_systemd_run() {
  rb_sr_state=before
  rb_sr_n=$#
  while [ "$rb_sr_n" -gt 0 ]; do
    rb_sr_w=$1
    shift
    case $rb_sr_state in
    before) if [ "$rb_sr_w" = systemd-run ]; then rb_sr_state=options; fi ;;
    options) if [ "$rb_sr_w" = -- ]; then rb_sr_state=unit-command; fi ;;
    unit-command)
      rb_sr_rest=$rb_sr_w
      rb_sr_w=
      while :; do
        case $rb_sr_rest in
        *\$*)
          rb_sr_w=$rb_sr_w${rb_sr_rest%%\$*}\$\$
          rb_sr_rest=${rb_sr_rest#*\$}
          ;;
        *) break ;;
        esac
      done
      rb_sr_w=$rb_sr_w$rb_sr_rest
      ;;
    esac
    set -- "$@" "$rb_sr_w"
    rb_sr_n=$((rb_sr_n - 1))
  done
  "$@"
}
