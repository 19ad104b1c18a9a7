#!/usr/bin/env bash
# Installs everything Tessera builds and tests with, from Debian 12 packages.
# Safe to run again; skips apt when every package is already installed.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libopenblas-dev
  libabsl-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  nlohmann-json3-dev
  libcpp-httplib-dev libssl-dev
  libgtest-dev libgmock-dev
  libpcre2-dev libutf8proc-dev
  prometheus-cpp-dev
  clang-14 libclang-rt-14-dev
  golang-go golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev golang-github-xeipuuv-gojsonschema-dev
  openssl
  nodejs curl
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm runs the OpenAI client test (tests/e2e: openai_http_test). Debian's npm
# package conflicts with NodeSource's nodejs, which bundles npm: ask for it
# only when no npm command is there.
command -v npm > /dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
