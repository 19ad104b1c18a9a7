#!/usr/bin/env bash
# Checks that the folders show the architecture and nothing reaches back up:
#   1. every #include between the repo's folders is an edge the table below
#      allows (the folder says who may call whom);
#   2. no two folders include each other (at any depth: worker/ and worker/cuda
#      count as two folders);
#   3. with a build dir: the coordinator binary links no BLAS, CUDA or NCCL
#      (ldd) and holds no kernel or worker code (nm).
# Usage: scripts/check_layout.sh [BUILD_DIR]. Exit 0 when all hold; 1 with
# every violation printed otherwise. Runs in CI as the ctest test LayoutCheck.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-}

# Top-level folder -> the top-level folders its code may include (itself is
# always allowed). proto/ is generated code (tessera/v1/*.pb.h), included by
# its path, and tests/, bench/ may include anything.
declare -A allowed=(
  [common]=""
  [kernels]="common"
  [model]="common"
  [rpc]="common"
  [transport]="common kernels rpc"
  [worker]="common kernels model transport rpc"
  [coordinator]="common model rpc"
  [services]="common coordinator worker transport model rpc"
  [tools]="common kernels model rpc transport worker coordinator services"
)

violations=0
report() {
  echo "layout: $*"
  violations=$((violations + 1))
}

# Every include edge "from_dir to_dir file" between files of this repo.
if git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
  sources=$(git ls-files --cached --others --exclude-standard '*.h' '*.cc' '*.cu' '*.cuh')
else  # a copy without .git: every source below the root, build dirs aside
  sources=$(find . -type f \( -name '*.h' -o -name '*.cc' -o -name '*.cu' -o -name '*.cuh' \) -not -path './build*' |
    sed 's|^\./||')
fi
files=$(grep -vE '^(tests|bench|deploy|build[^/]*)/' <<< "$sources" | while read -r f; do [ -f "$f" ] && echo "$f"; done)
edges=$(grep -oHE '^#include "[^"]+"' $files | sed -E 's/:#include "(.*)"$/ \1/' |
  while read -r file inc; do
    [ -f "$inc" ] || continue  # system, third-party or generated (proto) headers
    echo "${file%/*} ${inc%/*} $file"
  done | sort -u)

# 1. Allowed edges between top-level folders.
while read -r from to file; do
  [ -n "$from" ] || continue
  top_from=${from%%/*}
  top_to=${to%%/*}
  [ "$top_from" = "$top_to" ] && continue
  if [ -z "${allowed[$top_from]+set}" ]; then
    report "$file: folder $top_from/ is not in the table of scripts/check_layout.sh"
    continue
  fi
  case " ${allowed[$top_from]} " in
    *" $top_to "*) ;;
    *) report "$file includes $to/ (a $top_from/ file may include only: ${allowed[$top_from]:-nothing outside it})" ;;
  esac
done <<< "$edges"

# 2. No pair of folders that include each other.
pairs=$(awk '$1 != $2 {print $1, $2}' <<< "$edges" | sort -u)
while read -r a b; do
  [ -n "$a" ] || continue
  if grep -qx "$b $a" <<< "$pairs"; then
    [[ "$a" < "$b" ]] && report "$a/ and $b/ include each other: $(awk -v a="$a" -v b="$b" '($1==a&&$2==b)||($1==b&&$2==a){print $3}' <<< "$edges" | tr '\n' ' ')"
  fi
done <<< "$pairs"

# 3. The coordinator binary, when built.
if [ -n "$build_dir" ]; then
  coordinator="$build_dir/tools/tessera-coordinator"
  if [ ! -x "$coordinator" ]; then
    report "$coordinator was not built"
  else
    linked=$(ldd "$coordinator" | grep -oiE 'lib(openblas|blas|cudart|cublas|cublasLt|nccl|cuda)[^ ]*' | sort -u | tr '\n' ' ' || true)
    [ -z "$linked" ] || report "tessera-coordinator links $linked"
    code=$(nm -C "$coordinator" 2>/dev/null | grep -oE 'tessera::(cpu|cuda|cuda_engine)::[A-Za-z]+|tessera::(Engine|ShardRunner|ShardState|LayerLoop)\b' | sort -u | head -5 | tr '\n' ' ' || true)
    [ -z "$code" ] || report "tessera-coordinator holds kernel or worker code: $code"
  fi
fi

if [ "$violations" -gt 0 ]; then
  echo "layout: $violations violation(s)"
  exit 1
fi
echo "layout: ok ($(wc -l <<< "$edges") include edges checked${build_dir:+; tessera-coordinator links no BLAS/CUDA/NCCL})"
