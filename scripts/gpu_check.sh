#!/usr/bin/env bash
# gpu_check.sh: the CUDA tests, fixture evals and a multi-GPU comparison on a
# GPU host, from a bundle built elsewhere (the GPU host has no compiler).
#
#   Here (build machine):  scripts/gpu_check.sh pack BUILD_DIR OUT_DIR
#     bundles the gpu-labelled test binaries (BUILD_DIR/tests/{kernels_gpu,nccl,
#     engine_gpu}/*_test and the CUDA twins tests/*/*_test_gpu, whichever exist),
#     bench/{attention,ssd,moe,forward,decode_attention,decode,decode_step,decode_during_prefill,prefix_reuse,cp_scaling}_bench if built, the
#     `tessera` and `tessera-coordinator` binaries, their shared libraries
#     (through ../shared/tools/gpu-bundle.sh), this script, bench/sdpa_bench.py,
#     and the Hugging Face fixtures (../shared/fixtures/hf-tiny, or
#     $GPU_CHECK_FIXTURES_SRC) under
#     OUT_DIR/fixtures/hf-tiny. cuBLAS is left out (over 500 MB): the GPU host's
#     CUDA or PyTorch provides it. With GPU_CHECK_TARBALL=FILE.tar.xz the bundle
#     is also written compressed (~17 MB with tessera and OpenBLAS, against ~70 MB).
#   There (GPU host):      source OUT_DIR/env.sh && bash OUT_DIR/gpu_check.sh [run]
#     tests:  every *_test binary in OUT_DIR/bin with a GoogleTest XML report;
#     evals:  `tessera eval` in process on every fixture, fp32 (tolerance 1e-3)
#             and bf16 (3e-2);
#     multi:  with >= 2 GPUs, the same evals through 2 worker processes (one GPU
#             each), then a random 8B-shaped model and `tessera compare` of 1
#             worker vs 2 over a 64K-token prompt in bf16 (fp32 as well with
#             GPU_CHECK_COMPARE_FP32=1), and cp_scaling_bench over 1…every GPU
#             (GPU_CHECK_SCALING_LENGTH tokens, default 131072; contiguous and
#             zigzag over NCCL: prefill ms and the efficiency T1 / (W·TW)).
#     A markdown table comes last: check | device count | result | key numbers.
#     Exit status 0 only if nothing failed; a check not run is SKIPPED (with the
#     reason), never passed. Every command's output is appended to
#     $OUT/gpu_check_logs.txt when $OUT is set (else OUT_DIR/reports/).
#
# Environment (run):
#   GPU_CHECK_PARTS=tests,evals,multi  the parts to run (default: all three)
#   GPU_CHECK_BACKEND=cuda             cpu runs the eval/compare logic on a CPU-only
#                                      machine (every precision becomes fp32)
#   GPU_CHECK_GPUS=N                   device count to assume (default: nvidia-smi -L)
#   GPU_CHECK_COMPARE_FP32=1           also compare in fp32 (default: SKIPPED)
#   GPU_CHECK_RANDOM_PRESET, GPU_CHECK_PROMPT_LENGTH, GPU_CHECK_STEPS
#                                      the comparison's model and prompt
#                                      (default nemotron-h-8b-shaped, 65536, 8)
#   GPU_CHECK_FIXTURES=DIR             fixture dirs to evaluate (default OUT_DIR/fixtures/hf-tiny)
#   GPU_CHECK_TIMEOUT_S=400            limit per command (a device run may have 600 s in all)
set -uo pipefail
shopt -s nullglob

mode=${1:-run}
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ $mode == pack ]]; then
  build=${2:?usage: gpu_check.sh pack BUILD_DIR OUT_DIR}
  out=${3:?usage: gpu_check.sh pack BUILD_DIR OUT_DIR}
  repo=$(cd "$script_dir/.." && pwd)
  bundler=${GPU_BUNDLE:-$repo/../shared/tools/gpu-bundle.sh}
  fixtures_src=${GPU_CHECK_FIXTURES_SRC:-$repo/../shared/fixtures/hf-tiny}
  bins=()
  for bin in "$build"/tests/kernels_gpu/*_test "$build"/tests/nccl/*_test "$build"/tests/engine_gpu/*_test \
             "$build"/tests/*/*_test_gpu; do
    [[ -f $bin && -x $bin ]] && bins+=("$bin")
  done
  for bench in attention_bench ssd_bench moe_bench forward_bench decode_attention_bench decode_bench decode_step_bench decode_during_prefill_bench prefix_reuse_bench cp_scaling_bench; do
    [[ -x $build/bench/$bench ]] && bins+=("$build/bench/$bench")
  done
  if [[ -x $build/tools/tessera ]]; then
    bins+=("$build/tools/tessera")
    # `tessera coordinator` (eval --workers, compare) execs it from the same directory.
    if [[ -x $build/tools/tessera-coordinator ]]; then
      bins+=("$build/tools/tessera-coordinator")
    else
      echo "warning: $build/tools/tessera-coordinator is not built: multi-worker evals and the comparison will fail" >&2
    fi
  else
    echo "warning: $build/tools/tessera is not built: the evals and the comparison will not run" >&2
  fi
  if [[ ${#bins[@]} -eq 0 ]]; then
    echo "nothing to bundle in $build" >&2
    exit 1
  fi
  rm -rf "$out"
  bash "$bundler" "$out" "${bins[@]}" || exit 1
  rm -f "$out"/lib/libcublas*.so* 2>/dev/null
  strip --strip-debug "$out"/bin/* 2>/dev/null
  cp "$repo/scripts/gpu_check.sh" "$repo/bench/sdpa_bench.py" "$out/"
  for peer in ssd_peer.py moe_peer.py torch_timing.py; do [[ -f $repo/bench/$peer ]] && cp "$repo/bench/$peer" "$out/"; done
  # Fixtures: the files eval reads (config, weights, references, tokenizer), whatever exists.
  fixtures=0
  for src in "$fixtures_src"/*/; do
    src=${src%/}
    dst=$out/fixtures/hf-tiny/$(basename "$src")
    mkdir -p "$dst"
    for f in "$src"/config.json "$src"/*.safetensors "$src"/*.safetensors.index.json "$src"/reference* \
             "$src"/tokenizer* "$src"/special_tokens_map.json; do
      [[ -f $f ]] && cp "$f" "$dst/" && chmod u+w "$dst/$(basename "$f")"
    done
    fixtures=$((fixtures + 1))
  done
  [[ $fixtures -eq 0 ]] && echo "warning: no fixtures under $fixtures_src" >&2
  echo "bundled ${#bins[@]} binaries and $fixtures fixtures: $(cd "$out/bin" && echo *)"
  du -sh "$out" | awk '{print "bundle after dropping cuBLAS and debug info: " $1}'
  if [[ -n ${GPU_CHECK_TARBALL:-} ]]; then  # e.g. to carry the bundle under a size limit
    tar -C "$out" -cf - . | xz -T0 -6 >"$GPU_CHECK_TARBALL" || exit 1
    du -sh "$GPU_CHECK_TARBALL" | awk '{print "tarball: " $2 " " $1}'
  fi
  exit 0
fi

bundle=$script_dir
reports=$(mktemp -d)
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
trap 'rm -rf "$work"' EXIT
log_dir=${OUT:-$bundle/reports}
mkdir -p "$log_dir"
log=$log_dir/gpu_check_logs.txt
rows=$reports/rows.txt  # check|devices|result|key numbers, in order
: >"$rows"

parts=${GPU_CHECK_PARTS:-tests,evals,multi}
backend=${GPU_CHECK_BACKEND:-cuda}
fixtures_dir=${GPU_CHECK_FIXTURES:-$bundle/fixtures/hf-tiny}
timeout_s=${GPU_CHECK_TIMEOUT_S:-400}
tessera=$bundle/bin/tessera
status=0

has_part() { [[ ,$parts, == *,$1,* ]]; }
add_row() { echo "$1|$2|$3|$4" >>"$rows"; }
seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
# The precision a check really runs at: the CPU backend computes in fp32 only.
effective_precision() { if [[ $backend == cpu ]]; then echo fp32; else echo "$1"; fi; }
result_of() {  # exit code -> table result
  case $1 in
    0) echo passed ;;
    1) echo FAILED ;;
    124|137) echo "FAILED (timeout ${timeout_s}s)" ;;
    *) echo "FAILED (exit $1)" ;;
  esac
}

# cuBLAS and cudart from the host: its CUDA toolkit, else PyTorch's wheels.
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
         $(python3 -c 'import nvidia, os; p = list(nvidia.__path__)[0]; print(" ".join(os.path.join(p, s, "lib") for s in ("cu13", "cublas", "cuda_runtime")))' 2>/dev/null); do
  [[ -e $d/libcublas.so.13 || -e $d/libcudart.so.13 ]] && LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}${LD_LIBRARY_PATH:+:}$d"
done
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}"

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: none"
gpus=${GPU_CHECK_GPUS:-$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')}
gpus=${gpus:-0}
echo "GPUs: $gpus, backend: $backend, parts: $parts, log: $log"

# Runs a tessera command with the time limit; output to $reports/$1.log and the log.
run_tessera() {
  local name=$1; shift
  local out=$reports/$name.log
  echo "==== $name: tessera $*" | tee -a "$log"
  timeout --kill-after=30 "$timeout_s" "$tessera" "$@" >"$out" 2>&1
  local rc=$?
  { cat "$out"; echo "==== $name (exit $rc)"; } >>"$log"
  return $rc
}

tessera_ok() {  # the binary is there and loads; else the reason
  if [[ ! -x $tessera ]]; then
    echo "no tessera binary in the bundle"
  elif ldd "$tessera" | grep -q "not found"; then
    echo "missing libraries: $(ldd "$tessera" | grep "not found" | awk '{print $1}' | tr '\n' ' ')"
  fi
}

# ---- tests
run_tests() {
  local ran=0
  for bin in "$bundle"/bin/*_test "$bundle"/bin/*_test_gpu; do
    [[ -x $bin ]] || continue
    ran=1
    local name missing start rc secs
    name=$(basename "$bin")
    missing=$(ldd "$bin" | grep "not found")
    if [[ -n $missing ]]; then
      echo "$name: missing libraries: $missing"
      add_row "$name (binary)" "$gpus" "NOT RUN (missing libraries)" "-"
      status=1
      continue
    fi
    start=$EPOCHREALTIME
    "$bin" --gtest_output="xml:$reports/$name.xml" >"$reports/$name.log" 2>&1
    rc=$?
    secs=$(seconds_since "$start")
    echo "==== $name (exit $rc, ${secs}s)"
    { echo "==== $name (exit $rc)"; cat "$reports/$name.log"; } >>"$log"
    grep -E "^\[  FAILED |Failure|rror|bf16:" "$reports/$name.log" | head -40
    [[ $rc -ne 0 ]] && status=1
    python3 - "$reports/$name.xml" "$gpus" >>"$rows" <<'PY'
import os, sys
import xml.etree.ElementTree as ET
path, gpus = sys.argv[1], sys.argv[2]
binary = os.path.basename(path)[:-4]
if os.path.exists(path):
    for case in ET.parse(path).getroot().iter("testcase"):
        if case.find("failure") is not None:
            result = "FAILED"
        elif case.get("result") == "skipped" or case.find("skipped") is not None:
            result = "SKIPPED"
        elif case.get("status") == "notrun":
            result = "NOT RUN"
        else:
            result = "passed"
        print(f"{binary}: {case.get('classname')}.{case.get('name')}|{gpus}|{result}|{case.get('time')} s")
PY
    add_row "$name (binary)" "$gpus" "$(if [[ $rc -eq 0 ]]; then echo passed; else echo "FAILED (exit $rc)"; fi)" "$secs s"
  done
  if [[ $ran -eq 0 ]]; then
    add_row "tests" "$gpus" "NOT RUN (no *_test binaries in the bundle)" "-"
    status=1
  fi
}

# ---- evals: "eval FIXTURE PRECISION TOLERANCE WORKERS"
# eval prints one row per prompt length (length, prompt_rel_l2, prompt_max_abs,
# decode_rel_l2, decode_max_abs, greedy m/n, ok|FAIL), then PASS|FAIL: ...
eval_numbers() {
  awk '$1 ~ /^[0-9]+$/ && NF >= 7 && $6 ~ /\// {
         v = $2; if (v !~ /^[0-9]/) bad = 1; else if (v + 0 > worst) worst = v + 0
         split($6, g, "/"); matched += g[1]; total += g[2]; n++ }
       END { if (n == 0) { print "no report"; exit }
             printf "worst prompt rel L2 %s, greedy %d/%d", bad ? "inf/nan" : sprintf("%.3e", worst), matched, total }' "$1"
}

run_eval() {
  local fixture=$1 precision=$2 tolerance=$3 workers=$4
  local name label devices start rc secs
  name=eval_$(basename "$fixture")_${precision}_w${workers}
  precision=$(effective_precision "$precision")
  label="eval $(basename "$fixture") $backend $precision tol $tolerance"
  if [[ $workers -gt 0 ]]; then
    label="$label, $workers workers"
    devices=$([[ $backend == cpu ]] && echo "0 (cpu)" || echo "$workers")
  else
    label="$label, in process"
    devices=$([[ $backend == cpu ]] && echo "0 (cpu)" || echo 1)
  fi
  start=$EPOCHREALTIME
  run_tessera "$name" eval --model "$fixture" --backend "$backend" --precision "$precision" \
    --tolerance "$tolerance" --workers "$workers"
  rc=$?
  secs=$(seconds_since "$start")
  grep -E "^\s*[0-9]+ |^(PASS|FAIL)|^tessera" "$reports/$name.log"
  [[ $rc -ne 0 ]] && status=1
  add_row "$label" "$devices" "$(result_of $rc)" "$(eval_numbers "$reports/$name.log"), $secs s"
}

fixture_dirs() {
  local d
  for d in "$fixtures_dir"/*/; do [[ -f $d/config.json ]] && echo "${d%/}"; done
}

run_evals() {  # $1: workers (0: in process)
  local fixtures
  mapfile -t fixtures < <(fixture_dirs)
  if [[ ${#fixtures[@]} -eq 0 ]]; then
    add_row "evals ($1 workers)" "-" "NOT RUN (no fixtures under $fixtures_dir)" "-"
    status=1
    return
  fi
  for f in "${fixtures[@]}"; do
    run_eval "$f" fp32 1e-3 "$1"
    run_eval "$f" bf16 3e-2 "$1"
  done
}

# ---- multi: random 8B-shaped model, 1 worker vs 2 over a long prompt
compare_numbers() {
  awk '/^(PASS|FAIL): prompt_rel_l2=/ {
         for (i = 2; i <= NF; ++i) { split($i, kv, "="); v[kv[1]] = kv[2] } }
       /^run baseline:/ { for (i = 3; i <= NF; ++i) { split($i, kv, "="); if (kv[1] == "generate_s") b = kv[2] } }
       /^run candidate:/ { for (i = 3; i <= NF; ++i) { split($i, kv, "="); if (kv[1] == "generate_s") c = kv[2] } }
       END { if (!("prompt_rel_l2" in v)) { print "no verdict"; exit }
             printf "prompt rel L2 %s, decode rel L2 %s, max abs %s, greedy %s, generate %s s (1 worker) / %s s (2)",
                    v["prompt_rel_l2"], v["decode_rel_l2"], v["prompt_max_abs"], v["greedy"], b, c }' "$1"
}

run_compare() {
  local model=$1 precision=$2 tolerance=$3
  local name label devices start rc secs device_flags=()
  name=compare_$precision
  precision=$(effective_precision "$precision")
  label="compare $(basename "$model") ${prompt_length} tokens $backend $precision tol $tolerance, 1 vs 2 workers"
  if [[ $backend == cpu ]]; then devices="0 (cpu)"; else devices=2; device_flags=(--devices 2); fi
  start=$EPOCHREALTIME
  run_tessera "$name" compare --model "$model" --prompt-length "$prompt_length" --steps "$steps" \
    --backend "$backend" --precision "$precision" "${device_flags[@]}" --tolerance "$tolerance" \
    --baseline-workers 1 --candidate-workers 2
  rc=$?
  secs=$(seconds_since "$start")
  grep -E "^(compare|run|PASS|FAIL)|^tessera" "$reports/$name.log"
  [[ $rc -ne 0 ]] && status=1
  add_row "$label" "$devices" "$(result_of $rc)" "$(compare_numbers "$reports/$name.log"), $secs s"
}

run_multi() {
  run_evals 2
  local preset=${GPU_CHECK_RANDOM_PRESET:-nemotron-h-8b-shaped}
  prompt_length=${GPU_CHECK_PROMPT_LENGTH:-65536}
  steps=${GPU_CHECK_STEPS:-8}
  local model=$work/$preset start rc secs
  start=$EPOCHREALTIME
  run_tessera make_random_model make-random-model --out "$model" --preset "$preset"
  rc=$?
  secs=$(seconds_since "$start")
  tail -1 "$reports/make_random_model.log"
  add_row "make-random-model $preset" "-" "$(result_of $rc)" "$(du -sh "$model" 2>/dev/null | cut -f1), $secs s"
  if [[ $rc -ne 0 ]]; then
    status=1
    add_row "compare $preset" "2" "NOT RUN (no model)" "-"
    return
  fi
  run_compare "$model" bf16 1e-2
  if [[ ${GPU_CHECK_COMPARE_FP32:-0} == 1 ]]; then
    run_compare "$model" fp32 1e-3
  else
    add_row "compare $preset ${prompt_length} tokens $backend fp32, 1 vs 2 workers" "2" "SKIPPED (set GPU_CHECK_COMPARE_FP32=1)" "-"
  fi
  run_scaling "$model"
}

# Context-parallel scaling over every GPU (issue 17): 1…W ranks, contiguous and zigzag, over NCCL.
run_scaling() {
  local model=$1 length=${GPU_CHECK_SCALING_LENGTH:-131072} rc
  if [[ ! -x $bundle/bin/cp_scaling_bench ]]; then
    add_row "cp_scaling_bench" "$gpus" "NOT RUN (not in the bundle)" "-"
    return
  fi
  timeout 900 "$bundle/bin/cp_scaling_bench" --model "$model" --length "$length" --workers "$gpus" --repeats 3 \
    >"$reports/cp_scaling.log" 2>&1
  rc=$?
  cat "$reports/cp_scaling.log" >>"$log"
  grep '^|' "$reports/cp_scaling.log"
  add_row "cp_scaling_bench ${length} tokens, 1..$gpus ranks" "$gpus" "$(result_of $rc)" \
    "$(awk -F'|' -v w="$gpus" '$2+0 == w { printf "W=%s %s: %s ms, efficiency %s; ", w, $3, $5, $6 }' "$reports/cp_scaling.log")"
  [[ $rc -ne 0 ]] && status=1
}

if has_part tests; then
  echo; echo "## tests"
  run_tests
else
  add_row "tests" "$gpus" "SKIPPED (GPU_CHECK_PARTS=$parts)" "-"
fi

# Why evals / multi cannot run, if they cannot.
tessera_missing=""
if has_part evals || has_part multi; then
  tessera_missing=$(tessera_ok)
  [[ -n $tessera_missing ]] && echo "tessera: $tessera_missing"
fi

if ! has_part evals; then
  add_row "fixture evals (in process)" "1" "SKIPPED (GPU_CHECK_PARTS=$parts)" "-"
elif [[ -n $tessera_missing ]]; then
  add_row "fixture evals (in process)" "1" "NOT RUN ($tessera_missing)" "-"
  status=1
else
  echo; echo "## fixture evals (in process)"
  run_evals 0
fi

if ! has_part multi; then
  add_row "multi-GPU evals and compare" "$gpus" "SKIPPED (GPU_CHECK_PARTS=$parts)" "-"
elif [[ $gpus -lt 2 && $backend != cpu ]]; then
  add_row "multi-GPU evals and compare" "$gpus" "SKIPPED (needs >= 2 GPUs)" "-"
elif [[ -n $tessera_missing ]]; then
  add_row "multi-GPU evals and compare" "$gpus" "NOT RUN ($tessera_missing)" "-"
  status=1
else
  echo; echo "## multi-GPU: evals through 2 workers, random model comparison"
  run_multi
fi

echo
echo "| check | device count | result | key numbers |"
echo "|---|---|---|---|"
while IFS='|' read -r check devices result numbers; do
  echo "| $check | $devices | $result | $numbers |"
done <"$rows"
echo
echo "gpu_check: $(if [[ $status -eq 0 ]]; then echo "all checks that ran passed"; else echo FAILED; fi) (log: $log)"
exit $status
