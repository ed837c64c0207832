#!/usr/bin/env python3
"""Runs clang's thread-safety analysis over the sources of a CMake build (see
scripts/thread-safety.sh). Exit 0: every file parsed with no thread-safety warning; 1: a
warning (an error here) or a file clang could not parse, with clang's output; 2: bad usage."""
import argparse
import concurrent.futures
import json
import re
import os
import shlex
import subprocess
import sys
import time

# Flags of the GCC command line that matter to parsing; everything else (optimisation, warnings,
# output, dependency files) is dropped.
KEEP_WITH_VALUE = {"-I", "-isystem", "-D", "-include", "-iquote"}
KEEP_PREFIX = ("-I", "-D", "-std=", "-isystem", "-fopenmp", "-pthread", "-iquote")
CLANG_FLAGS = ["-fsyntax-only", "-Wthread-safety", "-Werror=thread-safety",
               "-Wno-unknown-warning-option"]


def ours(path, source):
    rel = os.path.relpath(path, source)
    return (not rel.startswith("..") and rel.endswith(".cc")
            and not rel.startswith(("tests/", "bench/", "build")))


# A source can meet the analysis only through a mutex or an annotation: one of these in the file
# itself or in a project header it includes (directly or through other project headers).
LOCK_MARKERS = ("absl/synchronization/mutex.h", "absl/base/thread_annotations.h", "absl::Mutex",
                "ABSL_GUARDED_BY", "ABSL_EXCLUSIVE_LOCKS_REQUIRED", "ABSL_LOCKS_EXCLUDED")
INCLUDE = re.compile(r'^#include "([^"]+)"', re.M)


def sees_locks(path, source, memo, seen=None):
    if path in memo:
        return memo[path]
    seen = set() if seen is None else seen
    if path in seen or not os.path.exists(path):
        return False
    seen.add(path)
    with open(path, errors="replace") as f:
        text = f.read()
    found = any(m in text for m in LOCK_MARKERS) or any(
        sees_locks(os.path.join(source, h), source, memo, seen) for h in INCLUDE.findall(text))
    memo[path] = found
    return found


def clang_command(entry):
    args = entry.get("arguments") or shlex.split(entry["command"])
    out = ["clang++-14"]
    i = 1
    while i < len(args):
        a = args[i]
        if a in KEEP_WITH_VALUE and i + 1 < len(args):
            out += [a, args[i + 1]]
            i += 2
            continue
        if a.startswith(KEEP_PREFIX):
            out.append(a)
        i += 1
    return out + CLANG_FLAGS + [entry["file"]]


def check(entry):
    cmd = clang_command(entry)
    p = subprocess.run(cmd, cwd=entry["directory"], capture_output=True, text=True)
    return entry["file"], p.returncode, p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--all", action="store_true",
                    help="every source, not only those that see a mutex or an annotation")
    ap.add_argument("files", nargs="*", help="only these sources (paths relative to --source)")
    a = ap.parse_args()
    source = os.path.realpath(a.source)
    build = os.path.join(source, a.build) if not os.path.isabs(a.build) else a.build
    db = os.path.join(build, "compile_commands.json")
    if not os.path.exists(db):
        print(f"thread-safety: {db} not found: configure that build first (scripts/build.sh)",
              file=sys.stderr)
        return 2
    with open(db) as f:
        entries = [e for e in json.load(f) if ours(os.path.realpath(e["file"]), source)]
    if a.files:
        wanted = {os.path.realpath(os.path.join(source, x)) for x in a.files}
        entries = [e for e in entries if os.path.realpath(e["file"]) in wanted]
        missing = wanted - {os.path.realpath(e["file"]) for e in entries}
        if missing:
            print(f"thread-safety: not in {db}: {', '.join(sorted(missing))}", file=sys.stderr)
            return 2
    elif not a.all:
        memo = {}
        entries = [e for e in entries if sees_locks(os.path.realpath(e["file"]), source, memo)]
    if not entries:
        print(f"thread-safety: no sources of {source} in {db}", file=sys.stderr)
        return 2
    start = time.monotonic()
    failed = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        for path, rc, err in pool.map(check, entries):
            if rc != 0:
                failed.append(os.path.relpath(path, source))
                sys.stderr.write(err)
    print(f"thread-safety: {len(entries)} files, {len(failed)} failed, "
          f"{time.monotonic() - start:.0f} s")
    for f in failed:
        print(f"thread-safety: FAILED {f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
