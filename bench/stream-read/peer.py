"""PyTorch side of bench/stream-read: reads a directory of libsvm click files in name order, as a
PyTorch user streams them: a torch.utils.data.IterableDataset that lists the directory, reads each
file line by line and parses `label [qid:Q] field:id:value ...` into (ids [fields] int64, label),
batched by a DataLoader (batch_size, num_workers=0: one reader, as each Tandem trainer has).
A second variant parses a whole chunk of lines per step with numpy-free string splitting and
builds the batch tensor directly (no per-example collation); the faster of the two is reported.

Prints one JSON object: {"records_per_s", "mib_per_s", "setting", "torch"}. Best of --repeats.
"""
import argparse, json, os, time

import torch


def parse(line, fields):
    parts = line.split()
    ids = [0] * fields
    for tok in parts[1:]:
        if tok.startswith("qid:"):
            continue
        f, i, _ = tok.split(":")
        ids[int(f)] = int(i) & 0x7FFFFFFFFFFFFFFF
    return ids, float(parts[0])


class StreamDataset(torch.utils.data.IterableDataset):
    def __init__(self, root, fields):
        self.root, self.fields = root, fields

    def __iter__(self):
        for name in sorted(os.listdir(self.root)):
            if name.startswith(".") or not name.endswith(".svm"):
                continue
            with open(os.path.join(self.root, name)) as f:
                for line in f:
                    if line.strip() and not line.startswith("#"):
                        ids, label = parse(line, self.fields)
                        yield torch.tensor(ids, dtype=torch.int64), torch.tensor(label)


class BatchedStreamDataset(torch.utils.data.IterableDataset):
    """Whole batches per item: no per-example tensors or collation."""

    def __init__(self, root, fields, batch):
        self.root, self.fields, self.batch = root, fields, batch

    def __iter__(self):
        ids, labels = [], []
        for name in sorted(os.listdir(self.root)):
            if name.startswith(".") or not name.endswith(".svm"):
                continue
            with open(os.path.join(self.root, name)) as f:
                for line in f:
                    if not line.strip() or line.startswith("#"):
                        continue
                    i, l = parse(line, self.fields)
                    ids.append(i)
                    labels.append(l)
                    if len(labels) == self.batch:
                        yield torch.tensor(ids, dtype=torch.int64), torch.tensor(labels)
                        ids, labels = [], []
        if labels:
            yield torch.tensor(ids, dtype=torch.int64), torch.tensor(labels)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--fields", type=int, default=26)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(1)
    total_bytes = sum(os.path.getsize(os.path.join(a.dir, n)) for n in os.listdir(a.dir)
                      if n.endswith(".svm"))
    results = {}
    for setting in ("per-example", "per-batch"):
        best = 1e30
        for _ in range(a.repeats):
            if setting == "per-example":
                loader = torch.utils.data.DataLoader(StreamDataset(a.dir, a.fields),
                                                     batch_size=a.batch, num_workers=0)
            else:
                loader = torch.utils.data.DataLoader(
                    BatchedStreamDataset(a.dir, a.fields, a.batch), batch_size=None, num_workers=0)
            t0 = time.perf_counter()
            n = 0
            for ids, labels in loader:
                n += labels.shape[0]
            best = min(best, time.perf_counter() - t0)
        results[setting] = (n, best)
    setting = min(results, key=lambda k: results[k][1])
    n, secs = results[setting]
    print(json.dumps({"records_per_s": n / secs, "mib_per_s": total_bytes / secs / 2**20,
                      "records": n, "setting": setting, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
