#!/usr/bin/env bash
# Builds chart-render offline from Debian's packaged Go sources:
#   golang-go golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev
#   golang-github-xeipuuv-gojsonschema-dev
# GOPATH mode (no module downloads, GOPROXY=off): a throwaway GOPATH entry
# links this folder in as tessera/chart-render next to /usr/share/gocode.
# Usage: build.sh OUTPUT_BINARY [WORK_DIR]   (WORK_DIR holds GOPATH + GOCACHE)
set -euo pipefail
out=$(realpath -m "${1:?usage: build.sh OUTPUT_BINARY [WORK_DIR]}")
src=$(cd "$(dirname "$0")" && pwd)
work=$(realpath -m "${2:-$(dirname "$out")/chart-render-work}")
mkdir -p "$work/gopath/src/tessera" "$(dirname "$out")"
ln -sfn "$src" "$work/gopath/src/tessera/chart-render"
for dir in github.com/Masterminds/sprig sigs.k8s.io/yaml github.com/xeipuuv/gojsonschema; do
  if [ ! -d "/usr/share/gocode/src/$dir" ]; then
    echo "chart-render: /usr/share/gocode/src/$dir is missing (install the Debian golang-*-dev packages above)" >&2
    exit 1
  fi
done
cd "$work"
env GO111MODULE=off GOENV=off GOPATH="$work/gopath:/usr/share/gocode" GOCACHE="$work/gocache" \
  GOPROXY=off GOFLAGS= GOTOOLCHAIN=local \
  go build -o "$out" tessera/chart-render
