#!/usr/bin/env bash
# Runs in an image's build stage: copies the given binaries (and plugins) and only the shared
# libraries they load into DEST, as a tree to be copied onto the base image, with a package list.
#   images/collect-runtime.sh DEST BIN... [--plugin SO...]
#
# - Each plugin (a shared object the binaries open with dlopen, which ldd cannot see: the CUDA
#   plugin libtandem-cuda.so) goes to DEST/usr/local/lib/tandem/ (stripped), and the libraries
#   it loads are shipped as a binary's are.
# - Each binary goes to DEST/usr/local/bin/ (stripped).
# - Each library ldd resolves is kept out when a package of the base image owns it (the base
#   already has it: /usr/share/tandem/base-packages.txt), copied at its own path when another
#   Debian package owns it (symlink chain and all; plus that package's copyright file and its dpkg
#   status entry in DEST/var/lib/dpkg/status.d/, where SBOM scanners look), and copied to
#   DEST/usr/local/lib/tandem/ when it comes from a Python wheel (the CUDA libraries): then the
#   wheel's name and version come from its dist-info and its license files are kept.
# - cuDNN opens its engine libraries with dlopen, which ldd cannot see: when libcudnn.so.N is
#   linked, its libcudnn_*.so.N siblings are shipped too.
# - An unresolved library ("not found") fails the build, except the NVIDIA driver's own
#   (libcuda.so.1, libnvidia-ml.so.1), which the container toolkit mounts at run time.
# DEST/usr/share/tandem/packages.txt lists what the tree adds: "origin name version" per line.
set -euo pipefail
dest=$1
shift
base_list=/usr/share/tandem/base-packages.txt
[[ -f $base_list ]] || { echo "collect-runtime: $base_list missing: not a Tandem base image" >&2; exit 1; }
driver_libs='^(libcuda\.so\.1|libnvidia-ml\.so\.1)$'

mkdir -p "$dest/usr/local/bin" "$dest/usr/share/tandem" "$dest/var/lib/dpkg/status.d"
declare -A seen_pkg=() seen_lib=()
list=$dest/usr/share/tandem/packages.txt.tmp
: >"$list"

# Bookworm's root is merged-/usr: /lib, /lib64, /bin and /sbin are symlinks into /usr. ldd names
# libraries under /lib; the tree must name them under /usr, or copying it onto the base would put
# a directory where the base has the /lib symlink.
canon() {
  case $1 in
    /lib/* | /lib64/* | /bin/* | /sbin/*) echo "/usr$1" ;;
    *) echo "$1" ;;
  esac
}

# Copies PATH and, when it is a symlink, every link of its chain and the file it ends at.
copy_chain() {
  local p=$1 target dst
  while :; do
    dst=$(canon "$p")
    mkdir -p "$dest$(dirname "$dst")"
    cp -a "$p" "$dest$dst"
    [[ -L $p ]] || break
    target=$(readlink "$p")
    [[ $target == /* ]] || target=$(dirname "$p")/$target
    p=$(realpath -s "$target")
  done
}

owner_of() {  # the Debian package owning the library (by its real path or the /usr-merged twin)
  local real cand
  real=$(realpath "$1")
  for cand in "$real" "${real#/usr}" "/usr$real" "$1"; do
    dpkg -S "$cand" 2>/dev/null | sed -n '1s/^\([^:]*\):.*/\1/p' | grep . && return 0
  done
  return 1
}

wheel_of() {  # "name version" of the wheel whose RECORD lists the library's real file
  local real site rel rec
  real=$(realpath "$1")
  site=${real%%/site-packages/*}/site-packages
  [[ $site != "$real/site-packages" ]] || return 1
  rel=${real#"$site"/}
  for rec in "$site"/*.dist-info/RECORD; do
    if grep -q "^$rel," "$rec"; then
      sed -n 's/^Name: //p;s/^Version: //p' "$(dirname "$rec")/METADATA" | head -2 | paste -sd' '
      return 0
    fi
  done
  return 1
}

ship_lib() {
  local lib=$1 pkg name wheel
  [[ -n ${seen_lib[$lib]:-} ]] && return 0
  seen_lib[$lib]=1
  if pkg=$(owner_of "$lib"); then
    name=${pkg%%:*}
    grep -q "^$name=" "$base_list" && return 0
    copy_chain "$lib"
    if [[ -z ${seen_pkg[$name]:-} ]]; then
      seen_pkg[$name]=1
      echo "debian $name $(dpkg-query -W -f '${Version}' "$pkg")" >>"$list"
      dpkg-query -s "$pkg" >"$dest/var/lib/dpkg/status.d/$name"
      if [[ -f /usr/share/doc/$name/copyright ]]; then
        mkdir -p "$dest/usr/share/doc/$name"
        cp "/usr/share/doc/$name/copyright" "$dest/usr/share/doc/$name/"
      fi
    fi
  elif wheel=$(wheel_of "$lib"); then
    mkdir -p "$dest/usr/local/lib/tandem"
    cp -L "$lib" "$dest/usr/local/lib/tandem/$(basename "$lib")"
    name=${wheel%% *}
    if [[ -z ${seen_pkg[$name]:-} ]]; then
      seen_pkg[$name]=1
      echo "pypi $wheel" >>"$list"
      local info real
      real=$(realpath "$lib")
      info=$(dirname "$(grep -l "^Name: $name\$" "${real%%/site-packages/*}"/site-packages/*.dist-info/METADATA | head -1)")
      mkdir -p "$dest/usr/share/doc/pypi-$name"
      find "$info" -maxdepth 2 -iname '*licen[cs]e*' -type f -exec cp {} "$dest/usr/share/doc/pypi-$name/" \;
    fi
  else
    echo "collect-runtime: $lib belongs to no Debian package and no wheel; refusing to ship it" >&2
    return 1
  fi
}

# The libraries one ELF file loads, as resolved paths; fails on any that ldd cannot resolve.
resolve() {
  local out line name path
  out=$(ldd "$1") || { echo "collect-runtime: ldd $1 failed" >&2; return 1; }
  while read -r line; do
    case $line in
      *"=> not found"*)
        name=${line%% *}
        if [[ $name =~ $driver_libs ]]; then continue; fi
        echo "collect-runtime: $1 needs $name, which nothing in the build stage provides" >&2
        return 1 ;;
      *"=> /"*)
        path=${line#*=> }
        echo "${path%% (*}" ;;
    esac
  done <<<"$out"
}

bins=() plugins=()
for arg in "$@"; do
  case $arg in
    --plugin) mode=plugin ;;
    *) if [[ ${mode:-bin} == plugin ]]; then plugins+=("$arg"); else bins+=("$arg"); fi ;;
  esac
done
for bin in "${bins[@]}" "${plugins[@]}"; do
  where=/usr/local/bin
  for p in "${plugins[@]}"; do [[ $p == "$bin" ]] && where=/usr/local/lib/tandem; done
  mkdir -p "$dest$where"
  install -m 0755 "$bin" "$dest$where/"
  strip --strip-unneeded "$dest$where/$(basename "$bin")"
  mapfile -t libs < <(resolve "$bin")
  for lib in "${libs[@]}"; do
    ship_lib "$lib"
    if [[ $(basename "$lib") =~ ^libcudnn\.so\.([0-9]+)$ ]]; then
      for extra in "$(dirname "$(realpath "$lib")")"/libcudnn_*.so."${BASH_REMATCH[1]}"; do
        [[ -e $extra ]] || continue
        ship_lib "$extra"
        mapfile -t more < <(resolve "$extra")
        for m in "${more[@]}"; do ship_lib "$m"; done
      done
    fi
  done
done

if [[ -d $dest/usr/local/lib/tandem ]]; then
  mkdir -p "$dest/etc/ld.so.conf.d"
  echo /usr/local/lib/tandem >"$dest/etc/ld.so.conf.d/tandem.conf"
fi
LC_ALL=C sort -u "$list" >"$dest/usr/share/tandem/packages.txt"
rm -f "$list"
echo "collect-runtime: $(wc -l <"$dest/usr/share/tandem/packages.txt") packages, $(du -sh "$dest" | cut -f1) into $dest" >&2
