# Sourced by images/*.sh and the image tests: the one place that says how buildah and podman are
# run on this project's machines (root, cgroups v1, no systemd, no registry, no Docker engine).
#
#   source images/engine.sh
#   "${BUILDAH[@]}" images          # buildah on Tandem's own image store
#   "${PODMAN[@]}" run --rm IMG ... # podman on the same store
#
# What works here, and why each flag is there (images/README.md has the longer story):
#  - storage: the kernel's overlay when a test mount of it works (as root on ext4 it does: each
#    build step then costs only what it changes), else vfs, which works everywhere at the price
#    of one full copy of the layer stack per build step and container. TANDEM_STORAGE_DRIVER
#    forces one. Each driver has its own store (they cannot share one).
#  - isolation chroot for builds: RUN steps share the host's network (so apt-get and pip reach
#    Debian's archive and PyPI) and need no user namespaces.
#  - runc and cgroupfs for podman: no systemd to ask for cgroups, and the cgroups are v1.
#  - the nofile/nproc ulimits: podman's defaults copy the host's hard limits, which runc rejects here.
#  - events to a file: the default (journald) needs systemd.
# The store lives under the cache, never in /work: vfs copies whole layers, so it is big.

TANDEM_CACHE=${TANDEM_CACHE:-/var/cache/tandem}
TANDEM_CONTAINERS=${TANDEM_CONTAINERS:-$TANDEM_CACHE/containers}

_tandem_overlay_works() {
  local d
  d=$(mktemp -d "$TANDEM_CACHE/.overlay-probe.XXXXXX" 2>/dev/null) || return 1
  mkdir -p "$d"/{lower,upper,work,merged}
  if mount -t overlay overlay -o "lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work" "$d/merged" 2>/dev/null; then
    umount "$d/merged"
    rm -rf "$d"
    return 0
  fi
  rm -rf "$d"
  return 1
}
if [[ -z ${TANDEM_STORAGE_DRIVER:-} ]]; then
  mkdir -p "$TANDEM_CACHE"
  if _tandem_overlay_works; then TANDEM_STORAGE_DRIVER=overlay; else TANDEM_STORAGE_DRIVER=vfs; fi
fi
export TANDEM_STORAGE_DRIVER
_tandem_store=(--root "$TANDEM_CONTAINERS/storage-$TANDEM_STORAGE_DRIVER"
               --runroot "$TANDEM_CONTAINERS/run-$TANDEM_STORAGE_DRIVER"
               --storage-driver "$TANDEM_STORAGE_DRIVER")
BUILDAH=(buildah "${_tandem_store[@]}")
PODMAN=(podman "${_tandem_store[@]}" --runtime runc --cgroup-manager cgroupfs
        --events-backend file --tmpdir "$TANDEM_CONTAINERS/tmp")
PODMAN_RUN_LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
unset _tandem_store

# The images' names. The version is the project's (CMakeLists.txt), one definition.
TANDEM_VERSION=$(sed -n 's/^project(tandem VERSION \([0-9.]*\).*/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../CMakeLists.txt")
TANDEM_REGISTRY=${TANDEM_REGISTRY:-localhost/tandem}

tandem_engine_check() {
  local tool
  for tool in buildah podman runc netavark aardvark-dns; do
    if ! command -v "$tool" >/dev/null && [[ ! -x /usr/lib/podman/$tool ]]; then
      echo "images: '$tool' is missing; run scripts/install-deps.sh" >&2
      return 1
    fi
  done
  mkdir -p "$TANDEM_CONTAINERS"/{"storage-$TANDEM_STORAGE_DRIVER","run-$TANDEM_STORAGE_DRIVER",tmp}
}
