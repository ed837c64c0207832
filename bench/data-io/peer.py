"""PyTorch side of bench/data-io: the same measurements as data_io_bench.cc, under PyTorch 2.x
(the pinned venv) or Debian's 1.13.

Prints one JSON object: {"idx_load_s", "reader_examples_per_s", "reader_setting",
"ckpt_write_gib_per_s", "ckpt_read_gib_per_s", "torch"}. Best of `--repeats` runs each.
The reader is PyTorch's at its best for a dataset held in memory, the faster of two ways: a
DataLoader over a TensorDataset (per-example indexing and collation, num_workers=0: worker
processes only add copies for tensors already in memory), and a DataLoader whose sampler is a
BatchSampler (one tensor index per batch, no per-example collation).
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

    def one_pass_batched():
        n = 0
        sampler = torch.utils.data.BatchSampler(
            torch.utils.data.RandomSampler(ds, generator=g), batch_size=64, drop_last=False)
        for x, y in torch.utils.data.DataLoader(ds, sampler=sampler, batch_size=None):
            n += x.shape[0]
        assert n == 60000

    readers = {"per_example": best(one_pass, a.repeats),
               "batch_sampler": best(one_pass_batched, a.repeats)}
    reader_setting = min(readers, key=readers.get)
    reader_s = readers[reader_setting]

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
                      "reader_setting": reader_setting,
                      "ckpt_write_gib_per_s": gib / write_s, "ckpt_read_gib_per_s": gib / read_s,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
