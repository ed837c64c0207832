#!/usr/bin/env bash
# Installs the serving benchmark's peer, ONNX Runtime and onnx (bench/serving/requirements.txt,
# pinned), into the project's own venv and prints that venv's python:
#   py=$(scripts/install-serving-peers.sh)
# The venv is ${TANDEM_CACHE:-/var/cache/tandem}/onnxruntime-<version>-<hash of the pins>/, shared
# by every checkout on the machine (scripts/lib/pinned-venv.sh). Only bench/serving needs it.
# Idempotent. Progress goes to stderr; stdout is only the python path.
set -euo pipefail
# shellcheck source=lib/pinned-venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/pinned-venv.sh"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
req=$here/bench/serving/requirements.txt
log() { echo "install-serving-peers: $*" >&2; }
pin=$(sed -n 's/^onnxruntime==//p' "$req")
key=$(grep -v '^#' "$req" | sed '/^$/d' | sha256sum | cut -c1-12)
dir=${TANDEM_CACHE:-/var/cache/tandem}/onnxruntime-$pin-$key
py=$dir/venv/bin/python
if [[ -f "$dir/.complete" ]] || pinned_venv_lock "$dir"; then
  echo "$py"
  exit 0
fi
log "pip-installing onnxruntime $pin and onnx into $dir/venv (first run only)"
pinned_venv_pip "$dir" -r "$req"
got=$("$py" -c 'import onnx, onnxruntime; print(onnxruntime.__version__)')
[[ "$got" == "$pin" ]] || { log "installed onnxruntime $got, pinned $pin"; exit 1; }
touch "$dir/.complete"
echo "$py"
