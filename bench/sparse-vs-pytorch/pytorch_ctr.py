#!/usr/bin/python3
"""PyTorch side of bench/sparse-vs-pytorch: the same CTR model on the same click log (written by
tandem-ctr-gen): 26 fields hashed into one 1,451,594 x 64 nn.EmbeddingBag(mode='sum',
sparse=True), one id per field summed per field, MLP 1664-256-128-1, BCE with logits, plain SGD
lr 0.05, batch 128, one pass in file order. Prints one JSON line. --compile: torch.compile of
the MLP (the sparse EmbeddingBag stays eager: its sparse gradient is not traced by inductor).
Runs under PyTorch 2.x (the pinned venv) or Debian's 1.13 (eager only)."""
import argparse, json, resource, time
import numpy as np
import torch

VOCAB, DIM, FIELDS = 1451594, 64, 26

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="prefix of PREFIX.ids / PREFIX.labels")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--compile", action="store_true")
    a = p.parse_args()
    import_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # torch's own cost
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    ids = np.fromfile(a.data + ".ids", dtype=np.uint64).reshape(-1, FIELDS)
    # The trainer's hashing: (id & 0x7fffffff) % vocab.
    rows = torch.from_numpy(((ids & np.uint64(0x7fffffff)) % np.uint64(VOCAB)).astype(np.int64))
    labels = torch.from_numpy(np.fromfile(a.data + ".labels", dtype=np.float32))
    n = rows.shape[0]
    emb = torch.nn.EmbeddingBag(VOCAB, DIM, mode="sum", sparse=True)
    torch.nn.init.normal_(emb.weight, 0.0, 0.01)
    mlp = torch.nn.Sequential(torch.nn.Linear(FIELDS * DIM, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 1))
    mlp_run = torch.compile(mlp) if a.compile else mlp
    opt = torch.optim.SGD(list(emb.parameters()) + list(mlp.parameters()), lr=0.05)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    offsets_full = torch.arange(0, a.batch * FIELDS, dtype=torch.int64)
    if a.compile:
        # Compile outside the timed pass, for both batch shapes of the pass (full and last),
        # with gradients thrown away: the model is unchanged.
        for m in sorted({a.batch, n % a.batch} - {0}):
            x = rows[:m]
            out = emb(x.reshape(-1), offsets_full[:m * FIELDS]).view(m, FIELDS * DIM)
            mlp_run(out).sum().backward()
        opt.zero_grad(set_to_none=True)
    start = time.perf_counter()
    total_loss, seen = 0.0, 0
    for b in range(0, n, a.batch):
        x = rows[b:b + a.batch]
        y = labels[b:b + a.batch]
        m = x.shape[0]
        out = emb(x.reshape(-1), offsets_full[:m * FIELDS]).view(m, FIELDS * DIM)
        logit = mlp_run(out).squeeze(1)
        loss = loss_fn(logit, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total_loss += loss.item() * m
        seen += m
    secs = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"examples_per_sec": seen / secs, "peak_rss_mib": rss, "train_s": secs,
                      "examples": seen, "threads": a.threads, "train_loss": total_loss / seen,
                      "torch": torch.__version__, "compile": a.compile,
                      "import_rss_mib": import_rss}))

if __name__ == "__main__":
    main()
