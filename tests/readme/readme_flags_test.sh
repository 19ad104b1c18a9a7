#!/usr/bin/env bash
# The README's promises about the launchers' flags, against the real binary:
# `local`, `eval` and `compare` take the workers' flags (--backend,
# --precision, --device, --memory-budget-mb) and pass them on, and
# `local --metrics-port N` serves the coordinator's metrics on N and each
# worker's on a free port, printing every address. CPU only: --device is
# checked for its refusal on CPU workers and its conflict with --devices.
# Binds 127.0.0.1 on free ports only; stops what it starts on any exit.
# Usage: readme_flags_test.sh TESSERA_BINARY REPO_ROOT
set -u
tessera=$(readlink -f "$1")
model="$2/tests/data/hf-tiny/bamba-tiny"
work=$(mktemp -d "${TMPDIR:-/tmp}/readme-flags.XXXXXX")
local_pid=""
cleanup() {
  if [[ -n "$local_pid" ]]; then
    kill -INT "$local_pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$local_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$local_pid" 2>/dev/null
    wait "$local_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
passed=0
failed=0
check() {  # name expected actual
  if [[ "$2" == "$3" ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $1: expected [$2] got [$3]"; fi
}
contains() {  # name needle haystack
  if [[ "$3" == *"$2"* ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $1: no [$2] in:"; echo "$3" | sed 's/^/    /'; fi
}
http_get() {  # HOST:PORT PATH -> the response body
  local host=${1%:*} port=${1##*:}
  exec 3<>"/dev/tcp/$host/$port" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$2" "$1" >&3
  timeout 5 cat <&3
  exec 3<&-
}

# local --metrics-port 0: the coordinator and both workers serve /metrics.
env --default-signal=INT "$tessera" local --workers 2 --model "$model" --port 0 --metrics-port 0 --backend cpu \
  --memory-budget-mb 64 --log-file "$work/children.log" > "$work/local.out" 2>&1 &
local_pid=$!
for _ in $(seq 600); do
  grep -q "workers ready" "$work/local.out" && break
  kill -0 "$local_pid" 2>/dev/null || break
  sleep 0.1
done
banner=$(cat "$work/local.out")
contains local-ready "2 workers ready" "$banner"
metrics_line=$(grep "  metrics: " "$work/local.out")
contains local-metrics-line "metrics: coordinator http://127.0.0.1:" "$metrics_line"
mapfile -t urls < <(grep -o 'http://127\.0\.0\.1:[0-9]*/metrics' <<< "$metrics_line")
check local-metrics-addresses 3 "${#urls[@]}"
ports=$(for url in "${urls[@]}"; do url=${url#http://127.0.0.1:}; echo "${url%/metrics}"; done | sort -u | wc -l)
check local-metrics-distinct-ports 3 "$ports"
if [[ ${#urls[@]} -eq 3 ]]; then
  address=${urls[0]#http://}
  contains coordinator-metrics "tessera_build_info" "$(http_get "${address%/metrics}" /metrics)"
  address=${urls[1]#http://}
  contains worker-metrics "# TYPE tessera_" "$(http_get "${address%/metrics}" /metrics)"
fi
contains local-budget-passed-on "K/V budget 64 MiB" "$(cat "$work/children.log")"
kill -INT "$local_pid"
wait "$local_pid"
check local-sigint-exit 0 $?
local_pid=""

# --device names a GPU: refused, with the reason, for CPU workers.
err=$("$tessera" local --workers 1 --model "$model" --port 0 --backend cpu --device 0 2>&1 >/dev/null)
check local-device-on-cpu-exit 2 $?
contains local-device-on-cpu-message "--device 0 applies to CUDA workers" "$err"
"$tessera" local --workers 1 --model "$model" --port 0 --metrics-port 70000 >/dev/null 2>&1
check local-metrics-port-range-exit 2 $?
err=$("$tessera" eval --model "$model" --backend cpu --device 0 2>&1 >/dev/null)
check eval-device-on-cpu-exit 2 $?
contains eval-device-on-cpu-message "--device 0 applies to CUDA" "$err"
err=$("$tessera" eval --model "$model" --memory-budget-mb 64 2>&1 >/dev/null)
check eval-budget-in-process-exit 2 $?
contains eval-budget-in-process-message "give --workers N too" "$err"
"$tessera" compare --model "$model" --device 0 --devices 2 >/dev/null 2>&1
check compare-device-and-devices-exit 2 $?
for command in local eval compare; do
  help=$("$tessera" "$command" --help)
  for flag in --backend --precision --device --memory-budget-mb; do
    contains "$command-help$flag" "  $flag " "$help"
  done
done
contains local-help--metrics-port "  --metrics-port " "$("$tessera" local --help)"

# eval --workers 1 passes --memory-budget-mb on to its worker.
out=$("$tessera" eval --model "$model" --workers 1 --memory-budget-mb 64 2>&1)
check eval-workers-budget-exit 0 $?
contains eval-workers-budget-passed-on "K/V budget 64 MiB" "$out"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
