#!/usr/bin/env bash
# Makes what a Tessera release's Secrets hold, with the openssl command-line
# tool (Debian package openssl), and prints the kubectl commands that create
# them. The chart never generates keys: they would land in Helm's release
# history.
#
#   deploy/make-certs.sh OUT_DIR [--namespace NS] [--release NAME] [--dns NAME]...
#
# OUT_DIR/ca.crt, ca.key  the cluster CA (keep ca.key off the cluster: it
#                         signs new members, nothing running needs it)
# OUT_DIR/tls.crt, tls.key  the member certificate that the coordinator and
#                         every worker present, as server and as client; it
#                         names DNS:tessera-internal (the chart's
#                         security.clusterTls.serverName), the public
#                         Service's names for NS and NAME, localhost and
#                         127.0.0.1 (kubectl port-forward), and every --dns
# OUT_DIR/tokens          one random bearer token for the public API
#
# Certificates last 365 days (CERT_DAYS to change). Rotation: deploy/README.md.
set -euo pipefail

usage() { echo "usage: deploy/make-certs.sh OUT_DIR [--namespace NS] [--release NAME] [--dns NAME]..." >&2; exit 2; }
[[ $# -ge 1 && "$1" != -* ]] || usage
out=$1
shift
namespace=default
release=tessera
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --namespace) namespace=$2; shift 2 ;;
    --release) release=$2; shift 2 ;;
    --dns) extra+=("$2"); shift 2 ;;
    *) usage ;;
  esac
done
days=${CERT_DAYS:-365}
command -v openssl > /dev/null || { echo "make-certs: needs openssl (apt-get install openssl)" >&2; exit 1; }

# The coordinator's public Service, as the chart names it (fullname).
if [[ "$release" == *tessera* ]]; then fullname=$release; else fullname="$release-tessera"; fi
coordinator="$fullname-coordinator"
san="DNS:tessera-internal,DNS:$coordinator,DNS:$coordinator.$namespace,DNS:$coordinator.$namespace.svc"
san="$san,DNS:$coordinator.$namespace.svc.cluster.local,DNS:localhost,IP:127.0.0.1"
for name in "${extra[@]}"; do san="$san,DNS:$name"; done

mkdir -p "$out"
chmod 700 "$out"
trap '[[ -s "$out/openssl.log" ]] && cat "$out/openssl.log" >&2' ERR
umask 077
cat > "$out/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = tessera-internal
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[member_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
if [[ ! -s "$out/ca.crt" || ! -s "$out/ca.key" ]]; then  # keep an existing CA: members signed by it stay valid
  openssl req -x509 -config "$out/openssl.cnf" -extensions ca_ext "${key[@]}" -keyout "$out/ca.key" \
    -out "$out/ca.crt" -days "$days" -subj "/CN=Tessera cluster CA $namespace $release" 2> "$out/openssl.log"
fi
openssl req -new -config "$out/openssl.cnf" "${key[@]}" -keyout "$out/tls.key" -out "$out/tls.csr" \
  -subj "/CN=tessera-internal" 2>> "$out/openssl.log"
openssl x509 -req -in "$out/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial -CAserial "$out/ca.srl" \
  -days "$days" -extfile "$out/openssl.cnf" -extensions member_ext -out "$out/tls.crt" 2>> "$out/openssl.log"
if [[ ! -s "$out/tokens" ]]; then
  { echo "# Bearer tokens of the Tessera public API, one per line."; openssl rand -hex 32; } > "$out/tokens"
fi
rm -f "$out/tls.csr" "$out/openssl.cnf" "$out/openssl.log"

cat <<EOF
made in $out: ca.crt ca.key tls.crt tls.key tokens (subjectAltName $san)
create the Secrets the chart mounts:
  kubectl -n $namespace create secret generic tessera-cluster-tls \\
    --from-file=tls.crt=$out/tls.crt --from-file=tls.key=$out/tls.key --from-file=ca.crt=$out/ca.crt
  kubectl -n $namespace create secret generic tessera-api-tokens --from-file=tokens=$out/tokens
clients: tessera generate --server HOST:PORT --tls-ca $out/ca.crt --token-file $out/tokens ...
EOF
