#!/usr/bin/env bash
# Prints the Debian/Ubuntu packages that provide the shared libraries the
# BINARY files link, one per line. The Dockerfile's build stage runs it so
# the runtime stage installs exactly what the binaries need (on Ubuntu 24.04 that is
# libgrpc++1.51t64, libprotobuf32t64, libabsl20220623t64, libopenblas0-*,
# libpcre2-8-0, libprometheus-cpp-*, ...) instead of a hand-kept list that
# drifts. Fails if a library is missing or belongs to no package, unless it
# lives under /usr/local/cuda (the CUDA runtime image provides those).
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: runtime-packages.sh BINARY..." >&2; exit 2; }
for binary in "$@"; do
  if ldd "$binary" | grep -q 'not found'; then
    ldd "$binary" | grep 'not found' >&2
    exit 1
  fi
done
for binary in "$@"; do ldd "$binary"; done |
  awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u |
while read -r lib; do
  owner=""
  for candidate in "$lib" "$(realpath "$lib")" "/usr$lib" "${lib#/usr}"; do
    owner=$(dpkg -S "$candidate" 2>/dev/null | head -n1 | cut -d: -f1) && [ -n "$owner" ] && break
  done
  if [ -n "$owner" ]; then
    echo "$owner"
  elif [[ "$(realpath "$lib")" != /usr/local/cuda* ]]; then
    echo "runtime-packages: no package owns $lib" >&2
    exit 1
  fi
done | sort -u
