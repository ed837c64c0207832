"""The benchmarks' PyTorch peers, defined once: which interpreters run them, their versions, and
the environment each gets for a thread count. Every bench/*/run*.py imports this module.

  import torch_peers                       # after sys.path.insert(0, <repo>/bench/peers)
  torch_peers.add_args(parser)             # --peer-python, --torch113 / --no-torch113
  peers = torch_peers.resolve(args)        # [Peer("pytorch2", ...), Peer("pytorch113", ...)]
  env = peers[0].env(threads=2)

The main peer is the PyTorch 2.x that scripts/install-bench-peers.sh pins and installs into the
project's venv under /var/cache/tandem (first use downloads it: about 4 GiB, see
bench/peers/requirements.txt for why a CPU machine needs the CUDA wheels). The second column is
Debian's python3-torch 1.13 on /usr/bin/python3, kept where a benchmark can afford it.
"""
import json
import os
import subprocess
import sys
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEBIAN_PYTHON = "/usr/bin/python3"


@dataclass
class Peer:
    label: str    # "pytorch2" or "pytorch113": the JSON records' field prefix
    python: str   # the interpreter that imports this torch
    version: str  # torch.__version__

    def env(self, threads, base=None):
        """The environment for a peer process at `threads` compute threads (as Tandem's)."""
        e = dict(base if base is not None else os.environ)
        e["OMP_NUM_THREADS"] = str(threads)
        e["MKL_NUM_THREADS"] = str(threads)
        # As for Tandem's processes: spinning OpenMP barriers collapse when a shared machine
        # deschedules a thread; passive waits cost little on a quiet one.
        e["OMP_WAIT_POLICY"] = "passive"
        if self.label == "pytorch113":
            # Debian's 1.13 uses Debian's OpenBLAS, which falls back to SSE3 kernels on this CPU
            # unless told its type, and whose own pool fights PyTorch's at 2 threads.
            e["OPENBLAS_CORETYPE"] = "SkylakeX"
            e["OPENBLAS_NUM_THREADS"] = "1" if threads > 1 else str(threads)
        return e

    def describe(self):
        if self.label == "pytorch113":
            return (f"PyTorch {self.version} (Debian python3-torch, {self.python}; "
                    "OPENBLAS_CORETYPE=SkylakeX, OPENBLAS_NUM_THREADS=1 at 2 threads)")
        return f"PyTorch {self.version} (PyPI, pinned in bench/peers/requirements.txt; {self.python})"


def add_args(parser, torch113_default=True):
    parser.add_argument("--peer-python",
                        help="python of the PyTorch 2.x peer (default: scripts/install-bench-peers.sh"
                             ", which installs the pinned version on first use)")
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--torch113", dest="torch113", action="store_true", default=torch113_default,
                   help="also run Debian's PyTorch 1.13 as a second column" +
                        (" (default)" if torch113_default else ""))
    g.add_argument("--no-torch113", dest="torch113", action="store_false")


def torch_version(python):
    p = subprocess.run([python, "-c", "import torch; print(torch.__version__)"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return None
    return p.stdout.strip().splitlines()[-1]


def install_pytorch2():
    """The pinned PyTorch 2.x venv's python (installing it on first use)."""
    script = os.path.join(REPO, "scripts", "install-bench-peers.sh")
    p = subprocess.run([script], stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"{script} failed ({p.returncode}); see its messages above")
    return p.stdout.strip().splitlines()[-1]


def resolve(args):
    """The peers to run, PyTorch 2.x first. Exits with a message when the 2.x peer is missing."""
    python = args.peer_python or install_pytorch2()
    version = torch_version(python)
    if version is None:
        sys.exit(f"--peer-python {python}: cannot import torch")
    if not version.startswith("2."):
        sys.exit(f"--peer-python {python}: torch {version}, want a 2.x")
    peers = [Peer("pytorch2", python, version)]
    if args.torch113:
        v113 = torch_version(DEBIAN_PYTHON)
        if v113 is None:
            print(f"note: {DEBIAN_PYTHON} cannot import torch (apt-get install python3-torch); "
                  "no PyTorch 1.13 column", file=sys.stderr)
        else:
            peers.append(Peer("pytorch113", DEBIAN_PYTHON, v113))
    return peers


def load_now():
    """The 1-minute load average, printed beside every figure (the machine is shared)."""
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def settings_line(best_by_setting, winner, best_113=None):
    """The line under a benchmark's result: PyTorch 2.x's best run per setting, the winner's
    peak RSS right after 'import torch' (the library's own cost), and 1.13's peak RSS.
    Runs are the peer scripts' JSON dicts (examples_per_sec, peak_rss_mib, import_rss_mib)."""
    parts = [f"{s} {r['examples_per_sec']:.1f} ex/s {r['peak_rss_mib']:.0f} MiB"
             for s, r in best_by_setting.items()]
    line = "         pt2 by setting: " + ", ".join(parts)
    line += f"; pt2 after 'import torch' {winner['import_rss_mib']:.0f} MiB"
    if best_113:
        line += f"; pt1.13 {best_113['peak_rss_mib']:.0f} MiB"
    return line


def run_json(cmd, env):
    """Runs one benchmark process; its last stdout line is its JSON record. Exits on failure."""
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def faster(a, b):
    """The record with more examples/s (a may be None: nothing yet)."""
    return b if a is None or b["examples_per_sec"] > a["examples_per_sec"] else a
