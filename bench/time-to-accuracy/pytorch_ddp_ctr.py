"""PyTorch's side of bench/time-to-accuracy, CTR: examples/ctr-auc.yaml as DistributedDataParallel
over gloo (`torchrun --nproc-per-node 2`). Same model (26 fields hashed into one 1,451,594 x 16
nn.EmbeddingBag(mode='sum', sparse=True), N(0, 0.01) rows; MLP 416-256-128-1 with Xavier-uniform
weights and zero biases), same data (the click log tandem-ctr-gen writes for the job's seed and
sizes: the very examples the trainer generates in memory), each rank every W-th example of a
global shuffle per pass as Tandem's reader, batch 128 per rank, binary cross-entropy with logits, Adagrad
lr 0.05 (eps as Tandem's), one pass, then the exact test AUC over the whole test log.
Rank 0 prints {"event": "settings", ...} and one {"event": "pass", "pass", "test_auc",
"test_loss", "train_loss"} line per pass; the runner stamps them as they arrive.
"""
import argparse, json, os

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

VOCAB, DIM, FIELDS = 1451594, 16, 26

p = argparse.ArgumentParser()
p.add_argument("--train", required=True, help="PREFIX of PREFIX.ids / PREFIX.labels")
p.add_argument("--test", required=True)
p.add_argument("--passes", type=int, default=1)
p.add_argument("--batch", type=int, default=128, help="per rank")
p.add_argument("--lr", type=float, default=0.05)
p.add_argument("--eps", type=float, default=1e-10, help="Tandem's adagrad default")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--compile", action="store_true", help="torch.compile the MLP")
a = p.parse_args()

torch.set_num_threads(a.threads)
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()


def load(prefix):
    ids = np.fromfile(prefix + ".ids", dtype=np.uint64).reshape(-1, FIELDS)
    # The trainer's hashing: (id & 0x7fffffff) % vocab.
    rows = torch.from_numpy(((ids & np.uint64(0x7fffffff)) % np.uint64(VOCAB)).astype(np.int64))
    return rows, torch.from_numpy(np.fromfile(prefix + ".labels", dtype=np.float32))


train_rows, train_y = load(a.train)
test_rows, test_y = load(a.test)


class Ctr(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.EmbeddingBag(VOCAB, DIM, mode="sum", sparse=True)
        self.mlp = nn.Sequential(nn.Linear(FIELDS * DIM, 256), nn.ReLU(), nn.Linear(256, 128),
                                 nn.ReLU(), nn.Linear(128, 1))
        self.mlp_run = self.mlp

    def forward(self, rows):
        m = rows.shape[0]
        offsets = torch.arange(0, m * FIELDS, dtype=torch.int64)
        return self.mlp_run(self.emb(rows.reshape(-1), offsets).view(m, FIELDS * DIM)).squeeze(1)


torch.manual_seed(a.seed)
model = Ctr()
nn.init.normal_(model.emb.weight, 0.0, 0.01)
for m in model.mlp:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)
if a.compile:
    model.mlp_run = torch.compile(model.mlp)
ddp = nn.parallel.DistributedDataParallel(model)
opt = torch.optim.Adagrad(model.parameters(), lr=a.lr, eps=a.eps)

# As Tandem's reader (spec.data.shuffle defaults to true): every pass a global permutation of the
# examples, rank r taking positions r, r + W, ... (torch's generator, not Tandem's: the examples
# are independent draws, so only their order differs).
n = len(train_y)
if rank == 0:
    print(json.dumps({"event": "settings", "torch": torch.__version__, "world": world,
                      "threads": torch.get_num_threads(), "compile": a.compile,
                      "examples_per_rank": len(range(rank, n, world))}), flush=True)


def auc(scores, labels):
    """Exact AUC, ties counted one half (as trainer/data's ExactAuc)."""
    order = np.argsort(scores, kind="mergesort")
    s, y = scores[order], labels[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2 + 1
        i = j + 1
    pos = y.sum()
    neg = len(y) - pos
    return (ranks[y > 0.5].sum() - pos * (pos + 1) / 2) / (pos * neg)


for pass_ in range(a.passes):
    ddp.train()
    loss_sum = torch.zeros(2, dtype=torch.float64)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(a.seed + pass_))[rank::world]
    for b in range(0, len(order), a.batch):
        i = order[b:b + a.batch]
        x, y = train_rows[i], train_y[i]
        loss = F.binary_cross_entropy_with_logits(ddp(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += torch.tensor([loss.item() * len(y), len(y)], dtype=torch.float64)
    dist.all_reduce(loss_sum)
    ddp.eval()
    # Every rank scores its half of the test log; rank 0 gathers the scores for the exact AUC.
    tn = len(test_y)
    tshare = (tn + world - 1) // world
    tlo, thi = rank * tshare, min(tn, (rank + 1) * tshare)
    with torch.no_grad():
        scores = torch.cat([model(test_rows[b:min(thi, b + 4096)]) for b in range(tlo, thi, 4096)])
    padded = torch.full((tshare,), float("nan"))
    padded[:len(scores)] = scores
    gathered = [torch.empty(tshare) for _ in range(world)] if rank == 0 else None
    dist.gather(padded, gathered, dst=0)
    if rank == 0:
        all_scores = torch.cat(gathered)[:tn]
        test_loss = F.binary_cross_entropy_with_logits(all_scores, test_y).item()
        print(json.dumps({"event": "pass", "pass": pass_ + 1,
                          "test_auc": auc(all_scores.numpy(), test_y.numpy()),
                          "test_loss": test_loss,
                          "train_loss": (loss_sum[0] / loss_sum[1]).item()}), flush=True)
dist.destroy_process_group()
