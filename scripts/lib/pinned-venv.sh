# Sourced by scripts/install-cuda.sh and scripts/install-bench-peers.sh: a venv of pinned wheels
# in the machine's cache directory, installed once by whichever checkout gets there first.
#
#   source scripts/lib/pinned-venv.sh
#   if pinned_venv_lock "$dir"; then ...already complete...; fi
#   pinned_venv_pip "$dir" pkg==1.0 ...        # then touch "$dir/.complete"

# Creates DIR and takes DIR.lock on file descriptor 9, held until the calling script exits, so
# builds in several checkouts wait for the one that installs. Succeeds when DIR/.complete exists
# (someone finished meanwhile: nothing to do), fails otherwise.
pinned_venv_lock() {
  mkdir -p "$1"
  exec 9>"$1.lock"
  flock 9
  [[ -f "$1/.complete" ]]
}

# Creates DIR/venv from Debian's python (python3-venv, from install-deps.sh; not whatever python3
# a PATH puts first) when missing, then pip-installs exactly the given requirements into it
# (--no-deps: the pins are the whole set). Progress goes to stderr.
pinned_venv_pip() {
  local dir=$1 python
  shift
  python=$(command -v /usr/bin/python3 || command -v python3)
  if [[ ! -x "$dir/venv/bin/pip" ]]; then
    echo "creating the venv $dir/venv" >&2
    "$python" -m venv "$dir/venv" >&2
  fi
  "$dir/venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "$@" >&2
}
