#!/usr/bin/env bash
# Builds the pod sandbox ("pause") image of the real test node (tests/cluster/node.sh) with no
# registry: Kubernetes' own build/pause/linux/pause.c, taken from the k8s.io/kubernetes module that
# scripts/tools/build-k8s.sh builds from, compiled static with upstream's flags, in an image
# FROM scratch (upstream's layout: /pause, user 65535, entrypoint /pause). Writes it as a
# docker-archive tar for `ctr images import` and prints the tar's path (last line of stdout):
#   ${TANDEM_CACHE:-/var/cache/tandem}/images/pause_<version>-<image id>.tar
# Tag: localhost/tandem/pause:<version>; containerd's `sandbox_image` names it. Reproducible: one
# fixed timestamp (the k8s version's, not the build's), so the same pause.c gives the same image.
# Usage: images/pause.sh          (TANDEM_TOOLS_NO_BUILD=1: only print the tar when it exists)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION="${K8S_VERSION:-v1.36.3}"
PAUSE_VERSION="${PAUSE_VERSION:-3.10.2}"   # build/pause/Makefile's TAG at that k8s version
TANDEM_CACHE=${TANDEM_CACHE:-/var/cache/tandem}
out=$TANDEM_CACHE/images
tag=localhost/tandem/pause:$PAUSE_VERSION
shopt -s nullglob
existing=("$out/pause_$PAUSE_VERSION"-*.tar)
if ((${#existing[@]})); then echo "${existing[0]}"; exit 0; fi
if [[ -n "${TANDEM_TOOLS_NO_BUILD:-}" ]]; then echo "images/pause.sh: not built yet: $out/pause_$PAUSE_VERSION-*.tar" >&2; exit 1; fi

# shellcheck source=images/engine.sh
source "$here/engine.sh"
tandem_engine_check
command -v go >/dev/null || { echo "images/pause.sh: go is not installed (it locates pause.c)" >&2; exit 1; }
src="$(GOTOOLCHAIN=local GOFLAGS=-modcacherw go env GOMODCACHE)/k8s.io/kubernetes@$K8S_VERSION/build/pause/linux/pause.c"
if [[ ! -f $src ]]; then
  (cd /tmp && GOTOOLCHAIN=local GOFLAGS=-modcacherw go mod download "k8s.io/kubernetes@$K8S_VERSION")
fi
[[ -f $src ]] || { echo "images/pause.sh: $src is missing from the k8s.io/kubernetes module" >&2; exit 1; }
work=$(mktemp -d "$TANDEM_CACHE/.pause.XXXXXX")
ctr=""
trap '[[ -n $ctr ]] && "${BUILDAH[@]}" rm "$ctr" >/dev/null 2>&1; rm -rf "$work"' EXIT
gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION" -o "$work/pause" "$src"
strip "$work/pause"
"$work/pause" -v | grep -q "v$PAUSE_VERSION" || { echo "images/pause.sh: the built pause does not report v$PAUSE_VERSION" >&2; exit 1; }
# The commit time of k8s.io/kubernetes@version, from the module proxy's .info (fixed per version).
epoch=$(date -d "$(cd /tmp && GOTOOLCHAIN=local go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Time": "\(.*\)".*/\1/p')" +%s)
ctr=$("${BUILDAH[@]}" from scratch)
"${BUILDAH[@]}" copy --chmod 0755 "$ctr" "$work/pause" /pause >/dev/null
"${BUILDAH[@]}" config --entrypoint '["/pause"]' --cmd '' --user 65535:65535 \
  --label "org.opencontainers.image.title=pause" \
  --label "org.opencontainers.image.version=$PAUSE_VERSION" \
  --label "org.opencontainers.image.source=k8s.io/kubernetes@$K8S_VERSION build/pause/linux/pause.c" \
  --label "org.opencontainers.image.licenses=Apache-2.0" "$ctr"
"${BUILDAH[@]}" commit --quiet --timestamp "$epoch" "$ctr" "$tag" >/dev/null
id=$("${BUILDAH[@]}" inspect --type image --format '{{.FromImageID}}' "$tag")
mkdir -p "$out"
file=$out/pause_$PAUSE_VERSION-${id:0:12}.tar
"${BUILDAH[@]}" push --quiet "$tag" "docker-archive:$file.tmp:$tag" >/dev/null
mv "$file.tmp" "$file"
echo "$file"
