#!/usr/bin/env bash
# Generates the control plane's PKI with openssl into <dir>:
#   ca.{crt,key}                    the cluster CA (signs serving and client certificates)
#   apiserver.{crt,key}             kube-apiserver serving certificate (127.0.0.1, localhost, kubernetes*)
#   admin.{crt,key}                 client certificate CN=tandem-admin O=system:masters
#   kcm.{crt,key}                   client certificate CN=system:kube-controller-manager
#   kwok.{crt,key}                  client certificate CN=kwok-controller O=system:masters
#   sa.{key,pub}                    ServiceAccount token signing key pair
#   apiserver-kubelet-client.{crt,key}  kube-apiserver's client certificate towards kubelets (O=system:masters)
# and for the real node of node.sh (named <node>, address <node-ip>):
#   kubelet.{crt,key}               client certificate CN=system:node:<node> O=system:nodes (the Node authorizer)
#   kubelet-serving.{crt,key}       the kubelet's serving certificate (IP <node-ip>, DNS <node>)
#   kube-proxy.{crt,key}            client certificate CN=system:kube-proxy (bootstrap RBAC: system:node-proxier)
#   scheduler.{crt,key}             client certificate CN=system:kube-scheduler
#   coredns.{crt,key}               client certificate CN=tandem:coredns (node.sh binds it to read-only rights)
# Usage: tests/cluster/pki.sh <dir> <node> <node-ip>
set -euo pipefail
dir="$1" node="$2" node_ip="$3"; mkdir -p "$dir"; cd "$dir"
command -v openssl >/dev/null || { echo "pki.sh: openssl is missing (scripts/install-deps.sh)" >&2; exit 1; }
days=30
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/CN=tandem-test-ca" -out ca.crt \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
# sign <name> <subject> <extfile-content>
sign() {
  key "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  printf '%b\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days "$days" \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
sign apiserver "/CN=kube-apiserver" \
  "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
client="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth"
sign admin "/O=system:masters/CN=tandem-admin" "$client"
sign kcm "/CN=system:kube-controller-manager" "$client"
sign kwok "/O=system:masters/CN=kwok-controller" "$client"
sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
sign kubelet "/O=system:nodes/CN=system:node:$node" "$client"
sign kubelet-serving "/CN=$node" \
  "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:$node_ip,DNS:$node"
sign kube-proxy "/CN=system:kube-proxy" "$client"
sign scheduler "/CN=system:kube-scheduler" "$client"
sign coredns "/CN=tandem:coredns" "$client"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
openssl pkey -in sa.key -pubout -out sa.pub
chmod 600 ./*.key
