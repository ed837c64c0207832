#!/usr/bin/env bash
# Installs the benchmarks' PyTorch 2.x peer (bench/peers/requirements.txt, pinned) into the
# project's own venv and prints that venv's python:
#   py=$(scripts/install-bench-peers.sh)     # then: "$py" bench/.../peer.py
#
# Only the benchmarks need it: scripts/main.sh and scripts/test.sh never run this script. The
# venv lives in ${TANDEM_CACHE:-/var/cache/tandem}/torch-<torch version>-<hash of the pins>/,
# so a second run, and every clone on this machine, costs nothing; changing a pin makes a new
# one. PyPI's linux torch wheel needs its CUDA wheels even to import on a CPU (see the
# requirements file), so the whole pinned set is installed with --no-deps: exactly what is
# pinned, nothing the resolver would pick on a later day.
#
# Idempotent. Progress goes to stderr; stdout is only the python path.
set -euo pipefail
# shellcheck source=lib/pinned-venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/pinned-venv.sh"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
req=$here/bench/peers/requirements.txt
log() { echo "install-bench-peers: $*" >&2; }

torch_pin=$(sed -n 's/^torch==//p' "$req")
[[ -n "$torch_pin" ]] || { log "$req: no torch==VERSION line"; exit 1; }
key=$(grep -v '^#' "$req" | sed '/^$/d' | sha256sum | cut -c1-12)
cache=${TANDEM_CACHE:-/var/cache/tandem}
dir=$cache/torch-$torch_pin-$key
py=$dir/venv/bin/python
if [[ -f "$dir/.complete" ]]; then
  echo "$py"
  exit 0
fi
# Several checkouts may run a benchmark at once: one installs, the others wait and reuse it.
if pinned_venv_lock "$dir"; then
  echo "$py"
  exit 0
fi
start=$(date +%s)
log "pip-installing torch $torch_pin and its pinned dependencies into $dir/venv (first run only)"
pinned_venv_pip "$dir" -r "$req"
# The check that matters: it imports, runs a convolution, and is the version pinned.
got=$("$py" -c 'import torch; torch.nn.functional.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 2, 2)); print(torch.__version__)')
[[ "$got" == "$torch_pin"* ]] || { log "venv imports torch $got, pinned $torch_pin"; exit 1; }
touch "$dir/.complete"
log "torch $got ready in $(($(date +%s) - start)) s ($(du -sh "$dir/venv" | cut -f1))"
echo "$py"
