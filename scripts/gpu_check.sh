#!/usr/bin/env bash
# gpu_check.sh: the CUDA kernel tests on a GPU host, from a bundle built elsewhere.
#
#   Here (build machine):  scripts/gpu_check.sh pack BUILD_DIR OUT_DIR
#     bundles the gpu-labelled test binaries (BUILD_DIR/tests/kernels_gpu/*_test),
#     bench/ssd_scan_bench if built, their shared libraries (through
#     ../shared/tools/gpu-bundle.sh), this script and bench/sdpa_bench.py. cuBLAS
#     is left out (over 500 MB): the GPU host's CUDA or PyTorch provides it.
#   There (GPU host):      source OUT_DIR/env.sh && bash OUT_DIR/gpu_check.sh [run]
#     runs every *_test binary in OUT_DIR/bin with a GoogleTest XML report and
#     prints a table (test, result, seconds) last. Exit status 0 only if every
#     binary exited 0 and no test failed. Skipped tests are reported as SKIPPED,
#     never as passed. The binaries' output is appended to $OUT/gpu_check_logs.txt
#     when $OUT is set (else OUT_DIR/reports/gpu_check_logs.txt).
set -uo pipefail

mode=${1:-run}
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ $mode == pack ]]; then
  build=${2:?usage: gpu_check.sh pack BUILD_DIR OUT_DIR}
  out=${3:?usage: gpu_check.sh pack BUILD_DIR OUT_DIR}
  repo=$(cd "$script_dir/.." && pwd)
  bundler=${GPU_BUNDLE:-$repo/../shared/tools/gpu-bundle.sh}
  bins=("$build"/tests/kernels_gpu/*_test)
  [[ -x $build/bench/ssd_scan_bench ]] && bins+=("$build/bench/ssd_scan_bench")
  rm -rf "$out"
  bash "$bundler" "$out" "${bins[@]}" || exit 1
  rm -f "$out"/lib/libcublas*.so* 2>/dev/null
  strip --strip-debug "$out"/bin/* 2>/dev/null
  cp "$repo/scripts/gpu_check.sh" "$repo/bench/sdpa_bench.py" "$out/"
  du -sh "$out" | awk '{print "bundle after dropping cuBLAS and debug info: " $1}'
  exit 0
fi

bundle=$script_dir
reports=$(mktemp -d)
log_dir=${OUT:-$bundle/reports}
mkdir -p "$log_dir"
log=$log_dir/gpu_check_logs.txt

# cuBLAS and cudart from the host: its CUDA toolkit, else PyTorch's wheels.
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
         $(python3 -c 'import nvidia, os; p = list(nvidia.__path__)[0]; print(" ".join(os.path.join(p, s, "lib") for s in ("cu13", "cublas", "cuda_runtime")))' 2>/dev/null); do
  [[ -e $d/libcublas.so.13 || -e $d/libcudart.so.13 ]] && LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}${LD_LIBRARY_PATH:+:}$d"
done
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}"

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: none"
status=0
summary=()
for bin in "$bundle"/bin/*_test; do
  [[ -x $bin ]] || continue
  name=$(basename "$bin")
  missing=$(ldd "$bin" | grep "not found")
  if [[ -n $missing ]]; then
    echo "$name: missing libraries: $missing"
    summary+=("$name|NOT RUN (missing libraries)|0")
    status=1
    continue
  fi
  start=$EPOCHREALTIME
  "$bin" --gtest_output="xml:$reports/$name.xml" >"$reports/$name.log" 2>&1
  rc=$?
  secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
  echo "==== $name (exit $rc, ${secs}s)"
  { echo "==== $name (exit $rc)"; cat "$reports/$name.log"; } >>"$log"
  grep -E "^\[  FAILED |Failure|rror|bf16:" "$reports/$name.log" | head -40
  [[ $rc -ne 0 ]] && status=1
  summary+=("$name|exit $rc|$secs")
done

echo
echo "| test | result | time (s) |"
echo "|---|---|---|"
python3 - "$reports" <<'PY'
import glob, os, sys
import xml.etree.ElementTree as ET
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.xml"))):
    binary = os.path.basename(path)[:-4]
    for case in ET.parse(path).getroot().iter("testcase"):
        if case.find("failure") is not None:
            result = "FAILED"
        elif case.get("result") == "skipped" or case.find("skipped") is not None:
            result = "SKIPPED"
        elif case.get("status") == "notrun":
            result = "NOT RUN"
        else:
            result = "passed"
        print(f"| {binary}: {case.get('classname')}.{case.get('name')} | {result} | {case.get('time')} |")
PY
for row in "${summary[@]}"; do
  IFS='|' read -r name result secs <<<"$row"
  echo "| $name (binary) | $result | $secs |"
done
exit $status
