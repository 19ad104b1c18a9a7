#!/usr/bin/env bash
# Renders the Helm chart without Helm (air-gapped machines, CI): builds
# deploy/tools/chart-render offline from Debian's Go packages into
# $BUILD_DIR/deploy-tools on first use (or when its sources change), then
# passes every argument through. Examples:
#   scripts/render_chart.sh --set workers.replicas=8 | kubectl apply -n llm -f -
#   scripts/render_chart.sh --output json --set workers.kind=LeaderWorkerSet
#   scripts/render_chart.sh --output notes
#   scripts/render_chart.sh --set security.publicTls.existingSecret=tessera-public-tls
# The manifests mount TLS and token Secrets that must exist first
# (deploy/make-certs.sh prints how to create them; deploy/README.md, Security).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BUILD_DIR:-build}/deploy-tools/chart-render
if [ ! -x "$out" ] || [ -n "$(find deploy/tools/chart-render -type f -newer "$out")" ]; then
  bash deploy/tools/chart-render/build.sh "$out" >&2
fi
exec "$out" deploy/helm/tessera "$@"
