"""PyTorch 1.13 side of bench/data-io: the same measurements as data_io_bench.cc.

Prints one JSON object: {"idx_load_s", "reader_examples_per_s", "ckpt_write_gib_per_s",
"ckpt_read_gib_per_s"}. Best of `--repeats` runs each.
"""
import argparse, gzip, json, os, time

import numpy as np
import torch


def best(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tmp", default="/tmp")
    a = p.parse_args()
    torch.set_num_threads(1)

    data = {}

    def load():
        with gzip.open(os.path.join(a.dir, "train-images-idx3-ubyte.gz")) as f:
            img = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
        with gzip.open(os.path.join(a.dir, "train-labels-idx1-ubyte.gz")) as f:
            lab = np.frombuffer(f.read(), np.uint8, offset=8)
        data["x"] = torch.from_numpy(img.astype(np.float32) / 255.0)
        data["y"] = torch.from_numpy(lab.astype(np.int64))

    load_s = best(load, a.repeats)
    ds = torch.utils.data.TensorDataset(data["x"], data["y"])
    g = torch.Generator().manual_seed(1)

    def one_pass():
        n = 0
        for x, y in torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, generator=g):
            n += x.shape[0]
        assert n == 60000

    reader_s = best(one_pass, a.repeats)

    t = torch.arange(a.mib * (1 << 20) // 4, dtype=torch.float32)
    path = os.path.join(a.tmp, "peer-bench-%d.pt" % os.getpid())

    def write():
        with open(path, "wb") as f:
            torch.save({"w": t}, f)
            f.flush()
            os.fsync(f.fileno())

    write_s = best(write, a.repeats)
    read_s = best(lambda: torch.load(path), a.repeats)
    os.unlink(path)
    gib = a.mib / 1024.0
    print(json.dumps({"idx_load_s": load_s, "reader_examples_per_s": 60000 / reader_s,
                      "ckpt_write_gib_per_s": gib / write_s, "ckpt_read_gib_per_s": gib / read_s}))


if __name__ == "__main__":
    main()
