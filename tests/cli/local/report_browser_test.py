#!/usr/bin/env python3
"""Opens a real run's report.html in headless Chromium and checks that its charts are drawn.

  report_browser_test.py RUN_DIR

RUN_DIR comes from a real `tandem run` (ctest: the observability test's run). Checks:
  * the page is self-contained: no src/href to any URL, a Content-Security-Policy that forbids
    every fetch, and Chromium runs with networking in the background off;
  * after load, the DOM (--dump-dom) has every chart drawn by our script (data-drawn, SVG
    polylines for loss, accuracy and examples/s, bars for the step-time split);
  * the browser logs no console message at all (our script writes none: any is an error, a CSP
    violation or a failed load);
  * the screenshot is not blank: many non-white pixels, in several colours (the series' colours).
  * a run with a restart shows it (the restarts table has a row, the count is not 0) when the
    run's summary.json says it restarted.
Python standard library only (PNG decoded with zlib).
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--window-size=1280,1600", "--enable-logging=stderr", "--v=0"]


def chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("FAIL: chromium is not installed (scripts/install-deps.sh installs Debian's chromium)")


def browse(url, extra, profile):
    r = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, url],
                       capture_output=True, text=True, timeout=180)
    return r


def png_pixels(path):
    """(width, height, rows of RGB tuples) of an 8-bit RGB or RGBA PNG."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), f"unexpected PNG format depth={depth} type={ctype}"
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(w)])
        prev = line
    return w, h, rows


def main(argv):
    if len(argv) != 2:
        raise SystemExit("usage: report_browser_test.py RUN_DIR")
    report = os.path.join(argv[1], "report.html")
    if not os.path.exists(report):
        raise SystemExit(f"FAIL: {report} does not exist (tandem run writes it at the end of a run)")
    html = open(report, encoding="utf-8").read()
    failures = []
    # Self-contained: nothing is loaded from anywhere.
    for m in re.finditer(r'\b(src|href)\s*=\s*"([^"]*)"', html):
        failures.append(f"the page loads {m.group(2)!r} ({m.group(1)})")
    if "default-src 'none'" not in html:
        failures.append("no Content-Security-Policy forbidding fetches")
    if re.search(r"\b(fetch|XMLHttpRequest|WebSocket|importScripts)\s*\(", html):
        failures.append("the page's script makes network calls")

    work = tempfile.mkdtemp(prefix="tandem-report-browser-")
    try:
        url = "file://" + os.path.abspath(report)
        dom = browse(url, ["--dump-dom"], os.path.join(work, "profile-dom"))
        if dom.returncode != 0:
            failures.append(f"chromium --dump-dom exited {dom.returncode}: {dom.stderr[-800:]}")
        consoles = [l for l in dom.stderr.splitlines() if ":CONSOLE(" in l or "Uncaught" in l]
        shot = os.path.join(work, "report.png")
        pic = browse(url, [f"--screenshot={shot}"], os.path.join(work, "profile-shot"))
        consoles += [l for l in pic.stderr.splitlines() if ":CONSOLE(" in l or "Uncaught" in l]
        for line in consoles:
            failures.append(f"console: {line.strip()[:300]}")
        out = dom.stdout
        if 'data-ready="1"' not in out:
            failures.append("the script did not finish (body has no data-ready)")
        for chart in ("chart-loss", "chart-accuracy", "chart-throughput", "chart-split"):
            m = re.search(rf'id="{chart}"[^>]*data-drawn="(\d+)"', out) or re.search(rf'data-drawn="(\d+)"[^>]*id="{chart}"', out)
            if not m or int(m.group(1)) < 1:
                failures.append(f"{chart} was not drawn")
            else:
                print(f"ok  {chart}: {m.group(1)} series")
        summary_path = os.path.join(argv[1], "summary.json")
        restarts = json.load(open(summary_path)).get("restarts", 0) if os.path.exists(summary_path) else 0
        if restarts:
            shown = re.search(r'id="restart-count">(\d+)<', out)
            if not shown or int(shown.group(1)) < 1:
                failures.append(f"summary.json says {restarts} restarts, the page shows none")
            rows = re.search(r'<tbody id="restart-rows">(.*?)</tbody>', out, re.S)
            if not rows or "restarted worker-" not in rows.group(1):
                failures.append("the restarts table lists no restart")
            else:
                print(f"ok  restarts shown: {shown.group(1)}")
        lines = out.count('<polyline')
        bars = len(re.findall(r'<rect[^>]*class="series"', out))
        if lines < 6:
            failures.append(f"only {lines} line series (loss, accuracy, examples/s for 2 workers: 6)")
        if bars < 2:
            failures.append(f"only {bars} step-time bars")
        if not os.path.exists(shot):
            failures.append(f"no screenshot: {pic.stderr[-800:]}")
        else:
            w, h, rows = png_pixels(shot)
            pixels = [p for row in rows for p in row]
            non_white = sum(1 for p in pixels if min(p) < 235)
            colours = {(p[0] // 32, p[1] // 32, p[2] // 32) for p in pixels if max(p) - min(p) > 60}
            print(f"screenshot {w}x{h}: {100.0 * non_white / len(pixels):.1f}% non-white, {len(colours)} saturated colour bins")
            if non_white < 0.02 * len(pixels):
                failures.append("the screenshot is blank")
            if len(colours) < 4:
                failures.append(f"the screenshot has {len(colours)} saturated colours (series colours missing)")
            keep = os.environ.get("TANDEM_BINARY_DIR")
            if keep:
                os.makedirs(os.path.join(keep, "tests", "charts"), exist_ok=True)
                shutil.copy(shot, os.path.join(keep, "tests", "charts", "report.png"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
