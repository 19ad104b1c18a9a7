#!/usr/bin/env bash
# Builds the tokenizer libFuzzer target (clang, ASan + UBSan) and fuzzes it
# for SECONDS (default 60), starting from tests/fuzz/corpus. Exits non-zero
# when libFuzzer finds a crash, leak, timeout or invariant violation; the
# reproducer is left in $BUILD/artifacts/. Needs clang++ and libFuzzer
# (Debian: clang-14 libclang-rt-14-dev).
#   scripts/fuzz_tokenizer.sh [SECONDS]
#   TESSERA_FUZZ_BUILD_DIR=dir  where to build (default: build/fuzz)
#   TESSERA_FUZZ_JOBS=N         parallel fuzzing processes (default: 1)
set -euo pipefail
seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${TESSERA_FUZZ_BUILD_DIR:-$root/build/fuzz}"
cxx="$(command -v clang++ || command -v clang++-14 || true)"
cc="$(command -v clang || command -v clang-14 || true)"
if [[ -z "$cxx" || -z "$cc" ]]; then
  echo "fuzz_tokenizer.sh: clang++ not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 2
fi
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
cmake -S "$root/tests/fuzz" -B "$build" "${generator[@]}" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build.configure.log" 2>&1 || { cat "$build.configure.log" >&2; exit 2; }
cmake --build "$build" -j "$(nproc)" >"$build.build.log" 2>&1 || { cat "$build.build.log" >&2; exit 2; }

# Fuzz into a scratch corpus so the committed seeds stay as they are.
work="$build/corpus"
mkdir -p "$work" "$build/artifacts"
jobs="${TESSERA_FUZZ_JOBS:-1}"
args=(-max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1
      -artifact_prefix="$build/artifacts/" -dict="$root/tests/fuzz/tokenizer.dict")
if [[ "$jobs" -gt 1 ]]; then args+=(-fork="$jobs"); fi
echo "fuzz_tokenizer.sh: fuzzing for ${seconds}s (${jobs} job(s)); artifacts in $build/artifacts"
# UBSan findings abort (the build uses -fno-sanitize-recover); leaks are findings too.
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" "$build/tokenizer_fuzzer" "${args[@]}" "$work" "$root/tests/fuzz/corpus"
