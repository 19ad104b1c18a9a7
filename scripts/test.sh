#!/usr/bin/env bash
# The newcomer's and CI's test command: install dependencies, build, run every
# test that this machine can run (GPU tests skip cleanly without a device).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "${JOBS:-$(nproc)}" --timeout 600
