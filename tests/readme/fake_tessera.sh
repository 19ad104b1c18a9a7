#!/usr/bin/env bash
# A stand-in `tessera` for readme_commands_selftest.sh: records each call's
# arguments in $FAKE_TESSERA_LOG, and plays the parts the runner relies on.
#   local     prints the "workers ready" line, then waits for SIGINT and
#             exits 0 ("local cluster: stopped"); --fake-never-ready prints
#             nothing, --fake-exit exits 1 at once.
#   generate  exits 0.
#   fail      exits 3.
#   anything else exits 2 (an unknown subcommand).
echo "$*" >> "${FAKE_TESSERA_LOG:-/dev/null}"
case "${1:-}" in
  local)
    [[ " $* " == *" --fake-exit "* ]] && exit 1
    trap 'echo "local cluster: stopped"; exit 0' INT
    [[ " $* " == *" --fake-never-ready "* ]] || echo "local cluster: coordinator on 127.0.0.1:0, 1 workers ready"
    while true; do sleep 0.1; done
    ;;
  generate) echo "fake generate"; exit 0 ;;
  fail) exit 3 ;;
  *) echo "fake tessera: unknown subcommand ${1:-}" >&2; exit 2 ;;
esac
