#!/usr/bin/python3
"""Tandem's ring all-reduce against torch.distributed/gloo and Open MPI, side by side, in one run.

    /usr/bin/python3 bench/allreduce-vs-peers/run.py --build build [--json out.json]

gloo is torch.distributed's gloo backend of PyTorch 2.x (pinned; scripts/install-bench-peers.sh
installs it on first use); --peers gloo113 adds Debian's PyTorch 1.13 as another column.
For every rank count (--ranks, default 2,4) and size (--sizes-mib, default 1,16,64,256) it runs
our all-reduce twice -- as `tandem run` uses it (shared memory between ranks of one host) and
forced onto the TCP ring (TANDEM_COLLECTIVE_SHM=0) -- beside gloo, Open MPI as it comes (shared
memory between the processes of one host) and Open MPI forced onto TCP (--mca pml ob1 --mca btl
tcp,self), --repeats times, interleaved so that background load hits every implementation alike,
and keeps each one's best mean time. It also measures one TCP stream over loopback, the limit a
TCP ring works against on this host.

busbw = 2(n-1)/n * bytes / time (nccl-tests' definition); ratio = tandem busbw / peer busbw.
--json PATH writes records {"name","unit","tandem","peer","ratio"} (unit GB/s busbw):
  gloo_<size>MiB_n<n>, mpi_<size>MiB_n<n>: our default path (shm) against that peer;
  mpitcp_<size>MiB_n<n>: our TCP ring against Open MPI over TCP (both on sockets);
  tcp_gloo_<size>MiB_n<n>: our TCP ring against gloo (which is TCP only).
"""
import argparse
import json
import os
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "peers"))
import torch_peers  # noqa: E402


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def parse(lines):
    out = []
    for line in lines.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def run_ranks(cmds, envs, timeout):
    procs = [subprocess.Popen(c, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c, e in zip(cmds, envs)]
    outs = []
    failed = None
    for i, p in enumerate(procs):
        try:
            o, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise RuntimeError(f"{cmds[i][0]} timed out after {timeout}s")
        if p.returncode != 0 and failed is None:
            failed = f"rank {i} of {cmds[i][0]} exited {p.returncode}: {err.strip()[-500:]}"
        outs.append(o)
    if failed:
        raise RuntimeError(failed)
    return parse(outs[0])


def run_tandem(args, n, sizes, iters, warmup, shm):
    ports = free_ports(n)
    peers = ",".join(f"127.0.0.1:{p}" for p in ports)
    binary = os.path.join(args.build, "bin", "tandem-allreduce-bench")
    cmds, envs = [], []
    for r in range(n):
        env = dict(os.environ, TANDEM_PEERS=peers, TANDEM_RANK=str(r), TANDEM_WORLD_SIZE=str(n),
                   TANDEM_LOG_LEVEL="warn", TANDEM_COLLECTIVE_SHM="1" if shm else "0")
        cmds.append([binary, "--sizes-mib", sizes, "--iters", str(iters), "--warmup", str(warmup)])
        envs.append(env)
    recs = run_ranks(cmds, envs, args.timeout)
    for r in recs:
        r["impl"] = "tandem" if shm else "tandemtcp"
    return recs


def run_gloo(args, peer, n, sizes, iters, warmup):
    port = free_ports(1)[0]
    script = os.path.join(HERE, "gloo_allreduce_bench.py")
    env = peer.env(1)
    cmds = [[peer.python, script, str(r), str(n), str(port), sizes, str(iters), str(warmup)]
            for r in range(n)]
    recs = run_ranks(cmds, [env] * n, args.timeout)
    for r in recs:
        r["impl"] = "gloo" if peer.label == "pytorch2" else "gloo113"
    return recs


def run_mpi(args, n, sizes, iters, warmup, tcp):
    binary = os.path.join(args.build, "bench", "allreduce-vs-peers", "mpi-allreduce-bench")
    if not os.path.exists(binary):
        binary = os.path.join(args.build, "bin", "mpi-allreduce-bench")
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(n)]
    if tcp:
        cmd += ["--mca", "pml", "ob1", "--mca", "btl", "tcp,self"]
    cmd += [binary, sizes, str(iters), str(warmup)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=args.timeout)
    if p.returncode != 0:
        raise RuntimeError(f"mpirun exited {p.returncode}: {p.stderr.strip()[-500:]}")
    recs = parse(p.stdout)
    for r in recs:
        r["impl"] = "mpitcp" if tcp else "mpi"
    return recs


def loopback(args):
    binary = os.path.join(args.build, "bin", "tandem-allreduce-bench")
    best = 0.0
    for _ in range(args.repeats):
        p = subprocess.run([binary, "--loopback-mib", "2048"], stdout=subprocess.PIPE, text=True,
                           timeout=args.timeout)
        for r in parse(p.stdout):
            best = max(best, r["bytes_per_second"])
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", default="build", help="CMake build folder")
    ap.add_argument("--ranks", default="2,4")
    ap.add_argument("--sizes-mib", default="1,16,64,256")
    ap.add_argument("--repeats", type=int, default=3, help="runs per implementation; best kept")
    ap.add_argument("--iters", type=int, default=5, help="timed all-reduces per run and size")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--peers", default="gloo,mpi,mpitcp",
                    help="which peers to run: gloo (PyTorch 2.x), gloo113 (Debian's PyTorch 1.13), "
                         "mpi, mpitcp")
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--json", help="write comparison records here")
    torch_peers.add_args(ap, torch113_default=False)
    args = ap.parse_args()

    peers = [p for p in args.peers.split(",") if p]
    for p in peers:
        if p not in ("gloo", "gloo113", "mpi", "mpitcp"):
            sys.exit(f"--peers: unknown peer {p!r} (known: gloo, gloo113, mpi, mpitcp)")
    if "gloo113" in peers:
        args.torch113 = True
    torch_by_impl = {}
    if "gloo" in peers or "gloo113" in peers:
        resolved = torch_peers.resolve(args)
        torch_by_impl = {"gloo": resolved[0]}
        if len(resolved) > 1:
            torch_by_impl["gloo113"] = resolved[1]
        elif "gloo113" in peers:
            sys.exit("--peers gloo113: Debian's python3-torch is not installed")
        for impl, peer in torch_by_impl.items():
            print(f"{impl}: torch.distributed gloo of {peer.describe()}", flush=True)
    impls = ["tandem", "tandemtcp"] + peers
    ranks = [int(x) for x in args.ranks.split(",")]
    sizes = [float(x) for x in args.sizes_mib.split(",")]

    limit = loopback(args)
    print(f"TCP loopback, one stream (best of {args.repeats}): {limit / 1e9:.2f} GB/s", flush=True)

    best = {}  # (impl, n, bytes) -> record with the lowest mean time
    errors = []
    for n in ranks:
        for rep in range(args.repeats):
            for impl in impls:
                try:
                    if impl in ("tandem", "tandemtcp"):
                        recs = run_tandem(args, n, args.sizes_mib, args.iters, args.warmup,
                                          impl == "tandem")
                    elif impl in ("gloo", "gloo113"):
                        recs = run_gloo(args, torch_by_impl[impl], n, args.sizes_mib, args.iters,
                                        args.warmup)
                    else:
                        recs = run_mpi(args, n, args.sizes_mib, args.iters, args.warmup,
                                       impl == "mpitcp")
                except Exception as e:  # report and keep going with the other peers
                    errors.append(f"{impl} n={n} run {rep + 1}: {e}")
                    print(f"  ! {errors[-1]}", file=sys.stderr, flush=True)
                    continue
                for r in recs:
                    key = (impl, n, int(r["bytes"]))
                    if key not in best or r["seconds"] < best[key]["seconds"]:
                        best[key] = r
            print(f"  n={n}: run {rep + 1}/{args.repeats} done", file=sys.stderr, flush=True)

    # Which ratio compares what: our default path against every peer, except Open MPI over TCP,
    # which meets our TCP ring (apples to apples); gloo is TCP-only, so our TCP ring meets it too.
    comparisons = [(p, "tandem", p, f"vs {p}") for p in peers if p != "mpitcp"]
    comparisons += [("mpitcp", "tandemtcp", "mpitcp", "tcp/mpitcp")] if "mpitcp" in peers else []
    comparisons += [("tcp_gloo", "tandemtcp", "gloo", "tcp/gloo")] if "gloo" in peers else []
    comparisons += [("tcp_gloo113", "tandemtcp", "gloo113", "tcp/gl1.13")] if "gloo113" in peers else []
    transports = {impl: sorted({r.get("transport", "?") for (i, _, _), r in best.items() if i == impl})
                  for impl in ("tandem", "tandemtcp")}
    print(f"\nload average at the end: {torch_peers.load_now():.1f} (2 cores)")
    print("time ms / busbw GB/s (best mean of each implementation); ratio = tandem busbw / peer busbw")
    print(f"tandem = our default path (transport used: {','.join(transports['tandem']) or '-'}); "
          f"tandemtcp = TANDEM_COLLECTIVE_SHM=0 (transport used: "
          f"{','.join(transports['tandemtcp']) or '-'})")
    header = f"{'size':>8} {'n':>2} | " + " | ".join(f"{i:>17}" for i in impls) + " | " + \
        " | ".join(f"{c[3]:>10}" for c in comparisons)
    print(header)
    print("-" * len(header))
    records = []
    for n in ranks:
        for mib in sizes:
            nbytes = int(mib * (1 << 20)) // 4 * 4
            cells, ratios = [], []
            for impl in impls:
                r = best.get((impl, n, nbytes))
                cells.append(f"{r['seconds'] * 1e3:8.2f} {r['busbw'] / 1e9:6.2f}" if r else f"{'-':>17}")
            for name, ours_impl, peer, _ in comparisons:
                ours, r = best.get((ours_impl, n, nbytes)), best.get((peer, n, nbytes))
                if ours and r:
                    ratio = ours["busbw"] / r["busbw"]
                    ratios.append(f"{ratio:9.2f}x")
                    records.append({"name": f"{name}_{mib:g}MiB_n{n}", "unit": "GB/s",
                                    "tandem": round(ours["busbw"] / 1e9, 4),
                                    "peer": round(r["busbw"] / 1e9, 4), "ratio": round(ratio, 3)})
                else:
                    ratios.append(f"{'-':>10}")
            print(f"{mib:>5g}MiB {n:>2} | " + " | ".join(cells) + " | " + " | ".join(ratios))
    print(f"\nlimit: one loopback TCP stream {limit / 1e9:.2f} GB/s; "
          f"a 2-rank ring moves each byte once per direction, so busbw <= that stream's rate "
          f"when both directions share the CPUs.")
    if errors:
        print("\nfailed runs:\n  " + "\n  ".join(errors))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
        print(f"wrote {len(records)} records to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
