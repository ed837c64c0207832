"""The torch.distributed (gloo backend) peer of bench/allreduce-vs-peers.

One rank; started N times by run.py. Times dist.all_reduce exactly like tandem_allreduce_bench
(barrier, one call, per iteration) and prints one JSON line per size from rank 0.
Usage: gloo_allreduce_bench.py RANK WORLD PORT SIZES_MIB ITERS WARMUP
"""
import json
import sys
import time

import torch
import torch.distributed as dist


def main():
    rank, world, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    sizes = [float(s) for s in sys.argv[4].split(",")]
    iters, warmup = int(sys.argv[5]), int(sys.argv[6])
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    for mib in sizes:
        count = int(mib * (1 << 20)) // 4
        t = ((torch.arange(count, dtype=torch.int64) + rank) % 64).to(torch.float32)
        total, best = 0.0, float("inf")
        for it in range(warmup + iters):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(t)
            sec = time.perf_counter() - t0
            if it >= warmup:
                total += sec
                best = min(best, sec)
        if rank == 0 and iters > 0:
            mean = total / iters
            nbytes = count * 4
            print(json.dumps({"impl": "gloo", "n": world, "bytes": nbytes, "seconds": mean,
                              "best_seconds": best,
                              "busbw": 2 * (world - 1) / world * nbytes / mean}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
