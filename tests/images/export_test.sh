#!/usr/bin/env bash
# images/export.sh writes a docker-archive tar that names the image by its tag, and that tar loads
# into an empty store of another engine instance (as `ctr images import` or `docker load` would
# on a node) and runs there.
source "$(dirname "$0")/lib.sh"
img=$(image_tag operator)
tar_file=$("$TANDEM_SOURCE_DIR/images/export.sh" operator) || fail "images/export.sh operator failed"
[[ $tar_file == "$TANDEM_CACHE/images/"*.tar && -s $tar_file ]] || fail "no tar at '$tar_file'"
tar -xOf "$tar_file" manifest.json | grep -q "\"RepoTags\":\[\"$img\"\]" ||
  fail "$tar_file does not name $img: $(tar -xOf "$tar_file" manifest.json | head -c 300)"
other=(podman --root "$WORK/store" --runroot "$WORK/run" --storage-driver vfs --runtime runc
       --cgroup-manager cgroupfs --events-backend file)
defer "\"\${other[@]}\" rmi -a -f; rm -rf \"$WORK/store\""
"${other[@]}" load -q -i "$tar_file" >"$WORK/load.txt" 2>&1 || fail "podman load $tar_file: $(cat "$WORK/load.txt")"
out=$("${other[@]}" run --rm "${PODMAN_RUN_LIMITS[@]}" --network none "$img" --version 2>&1) ||
  fail "the loaded image does not run: $out"
[[ $out == "tandem-operator $TANDEM_VERSION" ]] || fail "the loaded image printed '$out'"
pass "$tar_file ($(( $(stat -c %s "$tar_file") / 1000000 )) MB) loads into an empty store and runs: $out"
