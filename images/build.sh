#!/usr/bin/env bash
# Builds Tandem's container images with buildah (daemonless, no registry) and prints their sizes.
#   images/build.sh                       # tandem-operator, tandem-trainer, tandem-trainer-gpu
#   images/build.sh operator trainer      # only these
#   images/build.sh --tags trainer        # print the tag each would get, build nothing
#
# Reproducible: the base is pinned by its package list (images/make-base.sh), every timestamp is
# SOURCE_DATE_EPOCH (the commit's time unless set), labels carry the version and the commit.
# Cached: buildah's layer cache (--layers) and a ccache directory under ${TANDEM_CACHE}; a second
# run with nothing changed rebuilds nothing. The GPU image needs scripts/install-cuda.sh (its CUDA
# wheel pins; the toolchain is cached under ${TANDEM_CACHE} and shared with the host's builds).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=images/engine.sh
source "$here/engine.sh"

tags_only=0
if [[ ${1:-} == --tags ]]; then tags_only=1; shift; fi
wanted=("$@")
((${#wanted[@]})) || wanted=(operator trainer trainer-gpu)

# The GPU image's versions come from the one list of CUDA pins.
cuda_script=$repo/scripts/install-cuda.sh
pin() { sed -n "s/^ *$1==\([0-9.]*\).*/\1/p" "$cuda_script" 2>/dev/null | head -1 || true; }
cuda_version=$(pin nvidia-cuda-runtime)
cuda_mm=$(echo "$cuda_version" | cut -d. -f1,2)

tag_of() {
  case $1 in
    operator) echo "$TANDEM_REGISTRY/tandem-operator:$TANDEM_VERSION" ;;
    trainer) echo "$TANDEM_REGISTRY/tandem-trainer:$TANDEM_VERSION" ;;
    trainer-gpu) echo "$TANDEM_REGISTRY/tandem-trainer-gpu:$TANDEM_VERSION-cuda${cuda_mm:-none}-cudnn$(pin nvidia-cudnn-cu13 | cut -d. -f1)" ;;
    *) echo "images/build.sh: unknown image '$1' (known: operator trainer trainer-gpu)" >&2; return 1 ;;
  esac
}

if ((tags_only)); then
  for w in "${wanted[@]}"; do tag_of "$w"; done
  exit 0
fi

tandem_engine_check
base=$("$here/make-base.sh")
revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
if [[ $revision != unknown ]] && [[ -n $(git -C "$repo" status --porcelain -- . ':!images/README.md' 2>/dev/null) ]]; then
  revision+="-dirty"
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || cat "$TANDEM_CACHE/tandem-base-bookworm/archive-epoch")}
mkdir -p "$TANDEM_CACHE/images-ccache"

common=(bud --layers --isolation chroot --timestamp "$SOURCE_DATE_EPOCH"
        -f "$here/Containerfile"
        --build-arg "BASE_IMAGE=$base" --build-arg "BASE_NAME=$base"
        --build-arg "VERSION=$TANDEM_VERSION" --build-arg "REVISION=$revision"
        -v "$TANDEM_CACHE/images-ccache:/ccache")

failed=()
for w in "${wanted[@]}"; do
  tag=$(tag_of "$w")
  extra=()
  if [[ $w == trainer-gpu ]]; then
    if [[ -z $cuda_version ]]; then
      echo "images/build.sh: $w: scripts/install-cuda.sh (the CUDA wheel pins) is not in this tree; skipped" >&2
      failed+=("$w")
      continue
    fi
    extra=(--build-arg "TANDEM_CACHE=$TANDEM_CACHE" -v "$TANDEM_CACHE:$TANDEM_CACHE"
           --build-arg "CUDA_VERSION=$cuda_version" --build-arg "CUDA_MAJOR=${cuda_version%%.*}"
           --build-arg "CUBLAS_VERSION=$(pin nvidia-cublas)"
           --build-arg "CUDNN_VERSION=$(pin nvidia-cudnn-cu13)"
           --build-arg "NCCL_VERSION=$(pin nvidia-nccl-cu13)")
  fi
  start=$(date +%s)
  echo "images/build.sh: building $tag" >&2
  if "${BUILDAH[@]}" "${common[@]}" "${extra[@]}" --target "tandem-$w" -t "$tag" "$repo" \
       >"$TANDEM_CONTAINERS/build-$w.log" 2>&1; then
    echo "images/build.sh: $tag built in $(($(date +%s) - start)) s" >&2
  else
    tail -30 "$TANDEM_CONTAINERS/build-$w.log" >&2
    echo "images/build.sh: $tag failed; the log is $TANDEM_CONTAINERS/build-$w.log" >&2
    failed+=("$w")
  fi
done

# Each build leaves the previous build's images untagged; on overlay each holds a full copy of
# what its steps changed (about 1-2 GB for the GPU image), and they added up to 40 GB over a day
# of builds. Remove them; images that later builds' steps still start from are kept (podman
# prunes only untagged images that no other image depends on), so the layer cache survives.
if ! "${PODMAN[@]}" image prune -f >/dev/null 2>&1; then
  echo "images/build.sh: could not remove the previous builds' untagged images" >&2
fi

printf '%-60s %10s\n' IMAGE SIZE
for w in "${wanted[@]}"; do
  tag=$(tag_of "$w")
  if size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$tag" 2>/dev/null); then
    printf '%-60s %7d MB\n' "$tag" $((size / 1000000))
  fi
done
if ((${#failed[@]})); then
  echo "images/build.sh: not built: ${failed[*]}" >&2
  exit 1
fi
