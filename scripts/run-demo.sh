#!/usr/bin/env bash
# The newcomer's main job: install, build, then check the bundled tiny models
# against their Hugging Face references on the CPU engine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
for model in tests/data/hf-tiny/*/; do
  ./build/tools/tessera eval --model "$model"
done
