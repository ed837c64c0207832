#!/usr/bin/env bash
# Writes built images as docker-archive tars (the `docker save` format, which `docker load`,
# `ctr images import` and `podman load` read) into ${TANDEM_CACHE}/images/, and prints each path:
#   images/export.sh                    # operator, trainer and, when built, trainer-gpu
#   images/export.sh trainer            # only this one
#   ctr -n k8s.io images import "$(images/export.sh operator)"   # a real node's containerd
# The tar names the image by its full tag (localhost/tandem/...), so pods can refer to it with
# imagePullPolicy: IfNotPresent or Never. A tar already written for the same image ID is kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=images/engine.sh
source "$here/engine.sh"
tandem_engine_check
wanted=("$@")
explicit=${#wanted[@]}
((explicit)) || wanted=(operator trainer trainer-gpu)
out=$TANDEM_CACHE/images
mkdir -p "$out"
for w in "${wanted[@]}"; do
  tag=$("$here/build.sh" --tags "$w")
  if ! id=$("${BUILDAH[@]}" inspect --type image --format '{{.FromImageID}}' "$tag" 2>/dev/null); then
    if ((explicit)); then echo "images/export.sh: $tag is not built (images/build.sh $w)" >&2; exit 1; fi
    echo "images/export.sh: $tag is not built; skipped" >&2
    continue
  fi
  name=${tag##*/}
  file=$out/${name/:/_}-${id:0:12}.tar
  if [[ ! -f $file ]]; then
    rm -f "$out/${name%%:*}_"*.tar
    "${BUILDAH[@]}" push --quiet "$tag" "docker-archive:$file.tmp:$tag" >/dev/null
    mv "$file.tmp" "$file"
  fi
  echo "$file"
done
