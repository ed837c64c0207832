# Shared helpers for the `images` tests (bash). Source it first:
#   source "$(dirname "$0")/lib.sh"
# Gives the engine commands of images/engine.sh (BUILDAH, PODMAN, PODMAN_RUN_LIMITS), image_tag,
# fail/pass, defer (cleanups run on exit, last first) and a work dir $WORK.
set -euo pipefail
: "${TANDEM_SOURCE_DIR:?}"
# shellcheck source=images/engine.sh
source "$TANDEM_SOURCE_DIR/images/engine.sh"
TEST_NAME=$(basename "$0" .sh)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tandem-$TEST_NAME.XXXXXX")
_cleanups=()
_on_exit() {
  local rc=$? i
  for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do eval "${_cleanups[$i]}" >/dev/null 2>&1 || true; done
  if ((rc != 0)); then echo "FAILED ($TEST_NAME), work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
  exit $rc
}
trap _on_exit EXIT
defer() { _cleanups+=("$*"); }
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# image_tag operator|trainer|trainer-gpu: the tag images/build.sh gives it; fails when that image
# was not built (the images_build fixture failed or did not run).
image_tag() {
  local tag
  tag=$("$TANDEM_SOURCE_DIR/images/build.sh" --tags "$1")
  "${PODMAN[@]}" image exists "$tag" || fail "image $tag is not built (images/build.sh $1)"
  echo "$tag"
}

# The hardened way every test runs a container: the image's own non-root user, read-only root,
# no capabilities, no new privileges, a tmpfs /tmp (what the worker pods get).
RUN_SAFE=(run "${PODMAN_RUN_LIMITS[@]}" --read-only --tmpfs /tmp:rw,size=256m,mode=1777
          --cap-drop ALL --security-opt no-new-privileges)
