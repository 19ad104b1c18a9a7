#!/usr/bin/env bash
# Builds one libFuzzer target of the standalone clang project in tests/fuzz
# (ASan + UBSan) and fuzzes it for SECONDS (default 60), starting from its
# committed seeds: tests/fuzz/NAME_corpus for TARGET NAME_fuzzer (the
# tokenizer's are tests/fuzz/corpus) and tests/fuzz/NAME.dict when present.
# Exits non-zero when libFuzzer finds a crash, leak, timeout or invariant
# violation; the reproducer is left in $BUILD/artifacts/TARGET/. Needs
# clang++ and libFuzzer (Debian: clang-14 libclang-rt-14-dev).
#   scripts/fuzz.sh TARGET [SECONDS]
#   TESSERA_FUZZ_BUILD_DIR=dir  where to build (default: build/fuzz)
#   TESSERA_FUZZ_JOBS=N         parallel fuzzing processes (default: 1)
# Targets: tokenizer_fuzzer, model_fuzzer, run_shard_fuzzer,
# peer_block_fuzzer, attend_kv_fuzzer, worker_status_fuzzer.
set -euo pipefail
target="${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}"
seconds="${2:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${TESSERA_FUZZ_BUILD_DIR:-$root/build/fuzz}"
cxx="$(command -v clang++ || command -v clang++-14 || true)"
cc="$(command -v clang || command -v clang-14 || true)"
if [[ -z "$cxx" || -z "$cc" ]]; then
  echo "fuzz.sh: clang++ not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 2
fi
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
mkdir -p "$build"
cmake -S "$root/tests/fuzz" -B "$build" "${generator[@]}" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build/configure.log" 2>&1 || { cat "$build/configure.log" >&2; exit 2; }
cmake --build "$build" --target "$target" -j "$(nproc)" >"$build/build-$target.log" 2>&1 ||
  { tail -50 "$build/build-$target.log" >&2; exit 2; }

name="${target%_fuzzer}"
seeds="$root/tests/fuzz/${name}_corpus"
[[ -d "$seeds" ]] || seeds="$root/tests/fuzz/corpus"
# Fuzz into a scratch corpus so the committed seeds stay as they are.
work="$build/corpus-$target"
artifacts="$build/artifacts/$target"
mkdir -p "$work" "$artifacts"
jobs="${TESSERA_FUZZ_JOBS:-1}"
args=(-max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1
      -artifact_prefix="$artifacts/")
if [[ -f "$root/tests/fuzz/${name}.dict" ]]; then args+=(-dict="$root/tests/fuzz/${name}.dict"); fi
if [[ "$jobs" -gt 1 ]]; then args+=(-fork="$jobs"); fi
echo "fuzz.sh: fuzzing $target for ${seconds}s (${jobs} job(s)) from $seeds; artifacts in $artifacts"
# UBSan findings abort (the build uses -fno-sanitize-recover); leaks are findings too.
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" "$build/$target" "${args[@]}" "$work" "$seeds"
