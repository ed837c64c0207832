#!/usr/bin/env bash
# An image follows the project's image rules (images/README.md):
#   conventions_test.sh operator|trainer|trainer-gpu
# non-root numeric user 65532, OCI labels naming this version and a commit, no
# NVIDIA_VISIBLE_DEVICES baked in (and the driver capabilities and CUDA versions on the GPU
# image), a package list inside, no compiler or build tool inside, every binary starting on a
# read-only root, and a size under its budget.
source "$(dirname "$0")/lib.sh"
which=$1
img=$(image_tag "$which")
"${PODMAN[@]}" image inspect "$img" >"$WORK/inspect.json"

python3 - "$WORK/inspect.json" "$which" "$TANDEM_VERSION" <<'PY' || fail "$img: its configuration breaks the rules above"
import json, re, sys
cfg = json.load(open(sys.argv[1]))[0]
which, version = sys.argv[2], sys.argv[3]
c = cfg["Config"]
labels = c.get("Labels") or {}
env = dict(e.split("=", 1) for e in c.get("Env") or [])
bad = []
if c.get("User") != "65532:65532":
    bad.append(f"User is {c.get('User')!r}, want '65532:65532'")
want = {"org.opencontainers.image.title": f"tandem-{which}",
        "org.opencontainers.image.version": version}
for k, v in want.items():
    if labels.get(k) != v:
        bad.append(f"label {k} is {labels.get(k)!r}, want {v!r}")
if not re.fullmatch(r"[0-9a-f]{40}(-dirty)?", labels.get("org.opencontainers.image.revision", "")):
    bad.append(f"label org.opencontainers.image.revision is {labels.get('org.opencontainers.image.revision')!r}, want a commit")
for k in ("org.opencontainers.image.source", "org.opencontainers.image.base.name"):
    if not labels.get(k):
        bad.append(f"label {k} is missing")
if "NVIDIA_VISIBLE_DEVICES" in env:
    bad.append("NVIDIA_VISIBLE_DEVICES is baked in: a pod without a GPU request would see GPUs")
if which == "trainer-gpu":
    if env.get("NVIDIA_DRIVER_CAPABILITIES") != "compute,utility":
        bad.append(f"NVIDIA_DRIVER_CAPABILITIES is {env.get('NVIDIA_DRIVER_CAPABILITIES')!r}, want 'compute,utility'")
    for lib in ("cuda", "cublas", "cudnn", "nccl"):
        v = labels.get(f"dev.tandem.{lib}.version", "")
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)+", v):
            bad.append(f"label dev.tandem.{lib}.version is {v!r}, want a version")
for b in bad:
    print(f"FAIL: {which}: {b}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
pass "$img: user 65532, OCI labels, environment"

bins=(tandem-operator)
[[ $which == operator ]] || bins=(tandem-trainer tandem-pserver)
[[ $which == trainer ]] && bins+=(tandem-serve)  # the serving pods' command (spec.serving)
# Everything below runs inside the image as its own user, on a read-only root.
"${PODMAN[@]}" "${RUN_SAFE[@]}" --rm --network none --entrypoint /bin/sh "$img" -c '
  set -e
  test -s /usr/share/tandem/packages.txt || { echo "no /usr/share/tandem/packages.txt"; exit 1; }
  test -s /usr/share/tandem/base-packages.txt || { echo "no /usr/share/tandem/base-packages.txt"; exit 1; }
  for tool in gcc g++ cc c++ nvcc cmake make ld as ptxas; do
    if command -v $tool >/dev/null; then echo "build tool in the image: $(command -v $tool)"; exit 1; fi
  done
  if [ -d /usr/include ] && [ -n "$(ls -A /usr/include)" ]; then echo "headers in /usr/include"; exit 1; fi
  for b in '"${bins[*]}"'; do
    out=$($b --version) || { echo "$b --version failed: $out"; exit 1; }
    echo "$out"
  done
  touch /should-not-work 2>/dev/null && { echo "the root file system is writable"; exit 1; }
  touch /tmp/ok
' >"$WORK/inside.txt" 2>&1 || fail "$img: $(cat "$WORK/inside.txt")"
grep -c "$TANDEM_VERSION" "$WORK/inside.txt" >/dev/null || fail "$img: no binary printed version $TANDEM_VERSION: $(cat "$WORK/inside.txt")"
pass "$img: package list inside, no build tools or headers, read-only root, $(paste -sd, "$WORK/inside.txt")"

# Budgets (MB, uncompressed): well under the PyTorch images users otherwise run (images/README.md).
declare -A budget=([operator]=150 [trainer]=250 [trainer-gpu]=2500)
size=$(( $("${PODMAN[@]}" image inspect --format '{{.Size}}' "$img") / 1000000 ))
((size <= ${budget[$which]})) || fail "$img is $size MB, over its budget of ${budget[$which]} MB"
pass "$img: $size MB (budget ${budget[$which]} MB)"
