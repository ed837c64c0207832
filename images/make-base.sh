#!/usr/bin/env bash
# Makes Tandem's base image from Debian's packages alone (no registry): debootstrap bookworm
# (minbase) into a folder cached outside git, then FROM scratch + that rootfs. Prints the tag:
#   base=$(images/make-base.sh)          # e.g. localhost/tandem/base:bookworm-2026-07-11-3f2a9c1d0b7e
#
# The tag is the pin: the date of Debian's bookworm archive the rootfs came from, and the hash of
# its package list (name=version). The same packages give the same tag; the tar is written
# deterministically (sorted, numeric owners, every mtime set to that archive date), so the same
# packages give the same layer too. The rootfs is kept in
# ${TANDEM_CACHE:-/var/cache/tandem}/tandem-base-bookworm/ and reused until
# TANDEM_BASE_REFRESH=1 makes a new one (newer Debian packages).
#
# The rootfs carries the non-root user the images run as (uid/gid 65532, the operator's default
# runAsUser for worker pods), Debian's full bookworm sources (main, updates, security) and dpkg
# excludes for docs, man pages and locales (copyright files are kept).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=images/engine.sh
source "$here/engine.sh"
tandem_engine_check

mirror=${TANDEM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${TANDEM_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
dir=$TANDEM_CACHE/tandem-base-bookworm
log() { echo "make-base: $*" >&2; }

build_rootfs() {
  local root=$dir/rootfs.new start
  start=$(date +%s)
  rm -rf "$root"
  mkdir -p "$dir"
  command -v debootstrap >/dev/null || { log "debootstrap is missing; run scripts/install-deps.sh"; exit 1; }
  log "debootstrap --variant=minbase bookworm from $mirror (first run only, ~2 min)"
  if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$dir/debootstrap.log" 2>&1; then
    tail -20 "$dir/debootstrap.log" >&2
    log "debootstrap failed; the log is $dir/debootstrap.log"
    exit 1
  fi
  cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
  cat >"$root/etc/dpkg/dpkg.cfg.d/tandem-excludes" <<'EOF'
# Tandem images: no docs, man pages or translations; license texts stay.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
  cat >"$root/etc/apt/apt.conf.d/90tandem" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
  # Bring the rootfs to the archive's current updates and security fixes, so a build stage's
  # apt-get sees the same versions of the base's own libraries (glibc above all).
  log "apt-get upgrade inside the rootfs (updates, security)"
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c 'apt-get update -qq && apt-get upgrade -y -qq' >>"$dir/debootstrap.log" 2>&1 ||
    { tail -20 "$dir/debootstrap.log" >&2; log "apt-get upgrade in the rootfs failed"; exit 1; }
  local date_line
  date_line=$(sed -n 's/^Date: //p' "$root"/var/lib/apt/lists/*_dists_bookworm_InRelease | head -1)
  date -u -d "$date_line" +%s >"$dir/archive-epoch"
  # The user the images run as; no home, no shell, no password.
  echo 'tandem:x:65532:65532:tandem:/nonexistent:/usr/sbin/nologin' >>"$root/etc/passwd"
  echo 'tandem:x:65532:' >>"$root/etc/group"
  echo 'tandem:!:1::::::' >>"$root/etc/shadow"
  # What varies from run to run and nobody needs in an image.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/ldconfig/aux-cache \
    "$root"/var/log/* "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old \
    "$root"/usr/share/doc/*/changelog* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/tmp/* "$root"/root/.[!.]* "$root"/etc/hostname
  find "$root"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  find "$root"/usr/share/doc -type f ! -name copyright -delete 2>/dev/null || true
  : >"$root/etc/resolv.conf"
  mkdir -p "$root/usr/share/tandem"
  chroot "$root" dpkg-query -W -f '${Package}=${Version}\n' | LC_ALL=C sort >"$root/usr/share/tandem/base-packages.txt"
  rm -rf "$dir/rootfs"
  mv "$root" "$dir/rootfs"
  log "rootfs ready in $(($(date +%s) - start)) s ($(du -sh "$dir/rootfs" | cut -f1))"
}

if [[ ${TANDEM_BASE_REFRESH:-0} == 1 || ! -f $dir/rootfs/usr/share/tandem/base-packages.txt ]]; then
  build_rootfs
fi

epoch=$(cat "$dir/archive-epoch")
hash=$(sha256sum <"$dir/rootfs/usr/share/tandem/base-packages.txt" | cut -c1-12)
tag=$TANDEM_REGISTRY/base:bookworm-$(date -u -d "@$epoch" +%F)-$hash

if ! "${BUILDAH[@]}" inspect --type image "$tag" >/dev/null 2>&1; then
  tar_file=$dir/rootfs-$hash.tar
  if [[ ! -f $tar_file ]]; then
    tar --sort=name --numeric-owner --mtime="@$epoch" --format=posix \
      --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
      -C "$dir/rootfs" -cf "$tar_file.tmp" .
    mv "$tar_file.tmp" "$tar_file"
  fi
  ctr=$("${BUILDAH[@]}" from scratch)
  trap '"${BUILDAH[@]}" rm "$ctr" >/dev/null 2>&1 || true' EXIT
  "${BUILDAH[@]}" add "$ctr" "$tar_file" / >/dev/null
  "${BUILDAH[@]}" config \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 \
    --cmd /bin/bash \
    --label org.opencontainers.image.title=tandem-base \
    --label "org.opencontainers.image.description=Debian bookworm (debootstrap minbase) for Tandem's images" \
    --label "org.opencontainers.image.version=bookworm-$(date -u -d "@$epoch" +%F)-$hash" \
    --label org.opencontainers.image.licenses=various \
    --label "dev.tandem.debian.archive-date=$(date -u -d "@$epoch" +%FT%TZ)" \
    "$ctr"
  "${BUILDAH[@]}" commit --quiet --timestamp "$epoch" "$ctr" "$tag" >/dev/null
  rm -f "$tar_file"
  log "committed $tag"
fi
echo "$tag"
