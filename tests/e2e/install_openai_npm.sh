#!/usr/bin/env bash
# Installs OpenAI's official npm client (openai@4) into DIR for
# openai_http_test (ctest fixture openai_npm), with the npm of Debian's
# nodejs/npm (scripts/setup.sh). Never fails: when npm is missing or cannot
# install (no network), it says why, and openai_http_test's client test
# skips with that message (DIR/npm-install.log keeps npm's output).
# Usage: install_openai_npm.sh DIR
set -u
dir=${1:?usage: install_openai_npm.sh DIR}
mkdir -p "$dir"
if [ -f "$dir/node_modules/openai/package.json" ]; then
  echo "openai npm client already in $dir"
  exit 0
fi
if ! command -v npm > /dev/null 2>&1; then
  echo "npm not found: install nodejs and npm (scripts/setup.sh)" | tee "$dir/npm-install.log"
  exit 0
fi
if timeout 240 npm install --no-audit --no-fund --prefix "$dir" openai@4 > "$dir/npm-install.log" 2>&1; then
  echo "installed openai $(node -p "require('$dir/node_modules/openai/package.json').version") into $dir"
else
  echo "npm could not install openai (see $dir/npm-install.log):"
  tail -n 5 "$dir/npm-install.log"
fi
exit 0
